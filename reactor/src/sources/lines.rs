//! A byte stream (stdin, a connection, a FIFO) cut into lines.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::callback::{OnBytes, OnError, OnEvent};
use crate::sources::fifo::MadeFifo;
use crate::sources::follow::Following;
use crate::sys::{self, is_nonblocking, syscall, Epoll};
use crate::{Context, Handler, Interest, Readiness, Token};

/// How much one read takes: the capacity of a pipe.
pub(crate) const CHUNK: usize = 64 * 1024;

/// How many full reads one readiness report may take from a non-blocking
/// descriptor: 256 KiB, enough to write output in whole buffers, little
/// enough that one chatty stream never starves the others.
pub(crate) const READS_PER_READY: u8 = 4;

thread_local! {
    /// One read buffer for every reader of the thread: only a partial line is
    /// kept per reader, so an idle connection costs no buffer at all.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
}

/// Where a [`LineReader`] delivers: each line, then the end of the stream,
/// each with the reactor's [`Context`].
///
/// A closure `FnMut(&[u8], &mut Context)` is a sink; [`LineReader::new`]
/// wraps one in [`Callbacks`]. A type of your own costs one object per
/// reader, where separate closures would cost an allocation each.
pub trait LineSink {
    /// A line without its `\n`, or a piece of at most `max_line` bytes.
    fn line(&mut self, line: &[u8], ctx: &mut Context);

    /// The stream ended (end of file, error, removal, or shutdown), after
    /// the last line. Called once, unless a panic unwinds out of the
    /// reader's own callback (there is no `Context` to lend then).
    fn closed(&mut self, ctx: &mut Context) {
        let _ = ctx;
    }

    /// The bytes of a line that never ended: the reader was removed or shut
    /// down, or the stream failed, after part of a line and before its
    /// `\n` (at end of file such a last line is a [`line`](LineSink::line)).
    /// Called before [`closed`](LineSink::closed), and only if there are such
    /// bytes. By default they are dropped.
    fn unfinished(&mut self, partial: &[u8], ctx: &mut Context) {
        let _ = (partial, ctx);
    }

    /// The error that ends the stream (a reset connection included), before
    /// [`closed`](LineSink::closed).
    fn error(&mut self, error: &io::Error, ctx: &mut Context) {
        let _ = (error, ctx);
    }

    /// A name for log lines.
    fn name(&self) -> &str {
        "lines"
    }
}

impl<F: FnMut(&[u8], &mut Context)> LineSink for F {
    fn line(&mut self, line: &[u8], ctx: &mut Context) {
        self(line, ctx);
    }
}

/// The sink of [`LineReader::new`]: a closure per event and a name.
pub struct Callbacks {
    name: String,
    on_line: OnBytes,
    on_close: Option<OnEvent>,
    on_error: Option<OnError>,
    on_unfinished: Option<OnBytes>,
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("name", &self.name)
            .field("on_close", &self.on_close.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish_non_exhaustive()
    }
}

impl LineSink for Callbacks {
    fn line(&mut self, line: &[u8], ctx: &mut Context) {
        (self.on_line)(line, ctx);
    }

    fn closed(&mut self, ctx: &mut Context) {
        if let Some(on_close) = &mut self.on_close {
            on_close(ctx);
        }
    }

    fn unfinished(&mut self, partial: &[u8], ctx: &mut Context) {
        if let Some(on_unfinished) = &mut self.on_unfinished {
            on_unfinished(partial, ctx);
        }
    }

    fn error(&mut self, error: &io::Error, ctx: &mut Context) {
        if let Some(on_error) = &mut self.on_error {
            on_error(error, ctx);
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Reads a stream and delivers each line, without its `\n`, to its sink.
///
/// - A line longer than `max_line` bytes is delivered in pieces of
///   `max_line` bytes, so memory stays bounded whatever the input.
/// - At end of file, a last line without `\n` is delivered as it is. When
///   the reader goes before its stream ends (removed, shut down with the
///   loop, or failed), a line it holds in part is not a line: it goes to
///   [`on_unfinished`](LineReader::on_unfinished), or is dropped.
/// - Every callback gets the `Context`, whose [`current`](Context::current)
///   is the reader's token: for each line, the error, the unfinished part
///   and the close, at shutdown too.
/// - Paused ([`Context::pause`], or [`Interest::NONE`]), it reads nothing,
///   whatever its peer does, until resumed. A line callback that pauses
///   its own reader still gets the other lines of the read in progress
///   (they were read; at most 64 KiB); no read follows.
/// - On end of file, a reset connection or a read error, the reader removes
///   itself (errors are reported by the reactor); it never spins on a hang-up.
/// - At most four reads of 64 KiB per round on a non-blocking descriptor
///   (a short read ends them), one on a blocking one: a chatty stream
///   never starves the loop.
///
/// The descriptor may be blocking: stdin, which the reader never switches
/// to non-blocking (its open file is shared with the shell), and after a
/// readiness report one read does not block. Epoll refuses a regular file
/// and `/dev/null`, which is what stdin is under `< file` and `< /dev/null`:
/// [`for_any_fd`](LineReader::for_any_fd) makes the reader take those too.
/// Two more constructors make what they read: [`fifo`](LineReader::fifo), a
/// named pipe for writers that come and go, and [`follow`](LineReader::follow),
/// a regular file followed as it grows (`tail -F`).
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use reactor::{sources::LineReader, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let (mut theirs, ours) = UnixStream::pair()?;
/// theirs.write_all(b"one\ntwo\nthree")?;
/// drop(theirs); // end of file after "three"
/// let mut reactor = Reactor::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let (lines, closed) = (seen.clone(), seen.clone());
/// reactor.register(
///     LineReader::new(ours.into(), 1024, move |line, _ctx| lines.borrow_mut().push(line.to_vec()))
///         .on_close(move |ctx| {
///             closed.borrow_mut().push(b"(closed)".to_vec());
///             ctx.stop();
///         }),
/// )?;
/// reactor.run()?;
/// assert_eq!(*seen.borrow(), [&b"one"[..], b"two", b"three", b"(closed)"]);
/// # Ok(())
/// # }
/// ```
pub struct LineReader<S = Callbacks> {
    pub(crate) fd: OwnedFd,
    /// End of file was read: a partial line left is the last line.
    pub(crate) at_end: bool,
    finished: bool,
    /// Reads per readiness: several on a non-blocking descriptor, one on a
    /// blocking one (a second read could block).
    reads_per_ready: u8,
    max_line: usize,
    pub(crate) partial: Vec<u8>,
    pub(crate) sink: S,
    /// What only some readers have, boxed: a reader of a connection pays
    /// one pointer for it.
    pub(crate) extra: Option<Box<Extra>>,
}

/// The parts of a [`LineReader`] that a stream does not need.
#[derive(Default)]
pub(crate) struct Extra {
    /// What epoll watches instead of `fd`: an eventfd that is always ready
    /// for a descriptor epoll refuses ([`LineReader::for_any_fd`]), the
    /// inotify descriptor of a followed file ([`LineReader::follow`]).
    pub(crate) instead: Option<OwnedFd>,
    /// The FIFO this reader made, removed when it goes.
    pub(crate) made: Option<MadeFifo>,
    /// Where a followed file is, and how far it was read.
    pub(crate) follow: Option<Following>,
}

impl LineReader<Callbacks> {
    /// A reader of `fd` that passes each line (or piece of at most
    /// `max_line` bytes) to `on_line`.
    pub fn new(
        fd: OwnedFd,
        max_line: usize,
        on_line: impl FnMut(&[u8], &mut Context) + 'static,
    ) -> LineReader {
        let sink = Callbacks {
            name: String::from("lines"),
            on_line: Box::new(on_line),
            on_close: None,
            on_error: None,
            on_unfinished: None,
        };
        LineReader::with_sink(fd, max_line, sink)
    }

    /// A reader of this process's standard input, whatever it is (a
    /// terminal, a pipe, a socket, a file, `/dev/null`), named `stdin`: a
    /// [`for_any_fd`](LineReader::for_any_fd) reader of a duplicate of
    /// descriptor 0, which it closes at its end while descriptor 0 stays
    /// open, and blocking (its open file is shared with the shell).
    pub fn stdin(
        max_line: usize,
        on_line: impl FnMut(&[u8], &mut Context) + 'static,
    ) -> io::Result<LineReader> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("stdin: {e}"));
        let fd = io::stdin().as_fd().try_clone_to_owned().map_err(named)?;
        LineReader::new(fd, max_line, on_line).named("stdin").for_any_fd()
    }

    /// Names the reader in log lines.
    pub fn named(mut self, name: impl Into<String>) -> LineReader {
        self.sink.name = name.into();
        self
    }

    /// Calls `on_close` once when the stream ends or the reader is removed,
    /// after the last line.
    pub fn on_close(mut self, on_close: impl FnMut(&mut Context) + 'static) -> LineReader {
        self.sink.on_close = Some(Box::new(on_close));
        self
    }

    /// Calls `on_unfinished` with the part of a line the reader holds when
    /// it goes before its stream ends (removed, shut down, or failed), just
    /// before `on_close`. Without it, that part is dropped.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{sources::LineReader, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let (mut theirs, ours) = UnixStream::pair()?;
    /// theirs.write_all(b"whole\nhalf a li")?; // and the writer stays
    /// let mut reactor = Reactor::new()?;
    /// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    /// let (lines, rest) = (seen.clone(), seen.clone());
    /// let reader = LineReader::new(ours.into(), 1024, move |line, _| lines.borrow_mut().push(line.to_vec()))
    ///     .on_unfinished(move |part, _| rest.borrow_mut().push([b"unfinished: ", part].concat()));
    /// reactor.register(reader)?;
    /// reactor.run_once(None)?;
    /// drop(reactor); // shuts the reader down before its stream ends
    /// assert_eq!(*seen.borrow(), [&b"whole"[..], b"unfinished: half a li"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_unfinished(mut self, on_unfinished: impl FnMut(&[u8], &mut Context) + 'static) -> LineReader {
        self.sink.on_unfinished = Some(Box::new(on_unfinished));
        self
    }

    /// Calls `on_error` with the error that ends the stream (a reset
    /// connection included), before the reader goes away.
    pub fn on_error(mut self, on_error: impl FnMut(&io::Error, &mut Context) + 'static) -> LineReader {
        self.sink.on_error = Some(Box::new(on_error));
        self
    }
}

impl<S: LineSink> LineReader<S> {
    /// The descriptor epoll watches in place of `fd`, if any.
    pub(crate) fn instead(&self) -> Option<&OwnedFd> {
        self.extra.as_ref()?.instead.as_ref()
    }

    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// A reader of `fd` that delivers to `sink`.
    pub fn with_sink(fd: OwnedFd, max_line: usize, sink: S) -> LineReader<S> {
        let reads_per_ready = if is_nonblocking(fd.as_fd()) { READS_PER_READY } else { 1 };
        LineReader {
            fd,
            at_end: false,
            finished: false,
            reads_per_ready,
            max_line: max_line.max(1),
            partial: Vec::new(),
            sink,
            extra: None,
        }
    }

    /// Makes the reader take any descriptor, whatever it is. One that epoll
    /// refuses (`EPERM`: a regular file, a directory, `/dev/null`, as stdin
    /// is under `< file` and `< /dev/null`) is then read once per round,
    /// one piece of at most 64 KiB each time (four on a non-blocking
    /// descriptor), through an eventfd that is always ready: such a read
    /// never blocks, timers and the other sources keep their turns, and
    /// [`Context::pause`] holds it as any reader. A descriptor that epoll
    /// watches (a terminal, a pipe, a socket, a FIFO) is read as by
    /// [`new`](LineReader::new). Costs three system calls, to ask epoll;
    /// fails only if the eventfd cannot be made (out of descriptors).
    ///
    /// ```
    /// use reactor::{sources::LineReader, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("reactor-doc-any-fd-{}", std::process::id()));
    /// std::fs::write(&path, "one\ntwo\n")?;
    /// let file = std::fs::File::open(&path)?; // a regular file, which epoll refuses
    /// std::fs::remove_file(&path)?; // the open file stays
    /// let mut reactor = Reactor::new()?;
    /// let lines = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let seen = lines.clone();
    /// let reader = LineReader::new(file.into(), 1024, move |_, _| seen.set(seen.get() + 1))
    ///     .on_close(|ctx| ctx.stop());
    /// reactor.register(reader.for_any_fd()?)?;
    /// reactor.run()?;
    /// assert_eq!(lines.get(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn for_any_fd(mut self) -> io::Result<LineReader<S>> {
        if self.instead().is_some() {
            return Ok(self); // a followed file: inotify is watched
        }
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.sink.name()));
        // A probe: an epoll instance of its own, closed at once.
        match Epoll::new()
            .and_then(|probe| probe.add(self.fd.as_raw_fd(), Interest::READABLE, Token::new(0, 0)))
        {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                log::debug!(
                    "{}: not pollable (a file or a device): read a piece per round",
                    self.sink.name()
                );
                self.extra_mut().instead = Some(sys::eventfd(1).map_err(named)?);
            }
            result => result.map_err(named)?,
        }
        Ok(self)
    }

    /// One read, cut into lines. Returns how many bytes came: 0 at end of file.
    pub(crate) fn read_once(&mut self, ctx: &mut Context) -> io::Result<usize> {
        let (partial, max_line, sink) = (&mut self.partial, self.max_line, &mut self.sink);
        let n = read_shared(self.fd.as_raw_fd(), |data| {
            split_lines(data, partial, max_line, |line| sink.line(line, ctx));
            data.len()
        })?;
        self.at_end = n == 0;
        Ok(n)
    }

    /// Delivers what is left of a line (the last line at end of file, else
    /// an unfinished one) and closes the sink, once.
    fn finish(&mut self, ctx: &mut Context) {
        if self.finished {
            return;
        }
        self.finished = true;
        let partial = std::mem::take(&mut self.partial);
        match (partial.is_empty(), self.at_end) {
            (true, _) => {}
            (false, true) => self.sink.line(&partial, ctx),
            (false, false) => self.sink.unfinished(&partial, ctx),
        }
        self.sink.closed(ctx);
    }
}

impl<S> fmt::Debug for LineReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("fd", &self.fd)
            .field("max_line", &self.max_line)
            .field("partial", &self.partial.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Cuts `data` into lines for `sink`, as a [`LineReader`] does, for code
/// that reads by itself: completes `partial` first, keeps what is left of
/// an unfinished line in it, and delivers lines longer than `max_line` in
/// pieces of `max_line` bytes. Keeps `partial.len() <= max_line` (a full
/// piece waits for one more byte: if it is `\n`, the piece is a line).
pub fn split_lines(data: &[u8], partial: &mut Vec<u8>, max_line: usize, mut sink: impl FnMut(&[u8])) {
    split_lines_while(data, partial, max_line, |line| {
        sink(line);
        true
    });
}

/// Reads once from `fd` into the buffer that every reader of the thread
/// shares, and hands what came to `f` (nothing at end of file).
pub(crate) fn read_shared<R>(fd: RawFd, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
    SCRATCH.with_borrow_mut(|scratch| {
        // SAFETY: `scratch` is writable for its whole length.
        let n = syscall!(read(fd, scratch.as_mut_ptr().cast(), scratch.len()))?;
        Ok(f(&scratch[..n as usize]))
    })
}

/// [`split_lines`] that stops as soon as `sink` returns `false`; returns how
/// many bytes of `data` it used (all of them unless it stopped).
pub(crate) fn split_lines_while(
    mut data: &[u8],
    partial: &mut Vec<u8>,
    max_line: usize,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> usize {
    let (max_line, total) = (max_line.max(1), data.len());
    while !data.is_empty() {
        let room = max_line - partial.len();
        // Look one byte past the room: a line of exactly `max_line` bytes
        // followed by its newline is one line, not a piece and an empty line.
        let window = &data[..data.len().min(room + 1)];
        let (end, rest) = match find_newline(window) {
            Some(i) => (i, i + 1),
            None if window.len() > room => (room, room),
            None => {
                partial.extend_from_slice(data);
                return total;
            }
        };
        let go_on = if partial.is_empty() {
            sink(&data[..end])
        } else {
            partial.extend_from_slice(&data[..end]);
            let go_on = sink(partial);
            partial.clear();
            go_on
        };
        data = &data[rest..];
        if !go_on {
            break;
        }
    }
    total - data.len()
}

/// The first `\n`: sixteen bytes at a time with SSE2 (part of every
/// x86-64 CPU), inline. Most lines are short, and a call to the C
/// library's `memchr` for each cost more than the search itself.
#[cfg(target_arch = "x86_64")]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // Which of sixteen bytes are newlines, one bit each.
    let newlines = |sixteen: &[u8]| {
        assert_eq!(sixteen.len(), 16);
        // SAFETY: SSE2 is part of x86-64; the slice is sixteen bytes
        // (asserted), and `loadu` needs no alignment.
        unsafe {
            let v = _mm_loadu_si128(sixteen.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))) as u32
        }
    };
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let found = newlines(&bytes[at..at + 16]);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize);
        }
        at += 16;
    }
    if at == bytes.len() {
        return None;
    }
    if bytes.len() < 16 {
        return bytes.iter().position(|&b| b == b'\n');
    }
    // The last sixteen bytes, overlapping those already searched.
    let last = bytes.len() - 16;
    let found = newlines(&bytes[last..]) >> (at - last);
    (found != 0).then(|| at + found.trailing_zeros() as usize)
}

/// The first `\n`, found by the C library's vectorised `memchr`.
#[cfg(not(target_arch = "x86_64"))]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe a live slice; `memchr` reads no further.
    let found = unsafe { libc::memchr(bytes.as_ptr().cast(), libc::c_int::from(b'\n'), bytes.len()) };
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

impl<S: LineSink> Handler for LineReader<S> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.instead().unwrap_or(&self.fd).as_fd()
    }

    fn name(&self) -> &str {
        self.sink.name()
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        if self.extra.as_ref().is_some_and(|extra| extra.follow.is_some()) {
            return self.follow_round(ctx);
        }
        // Whatever was reported (data, hang-up, error), the read tells which.
        // A short read means the stream is drained for now: no further read
        // just to hear `EAGAIN`.
        let mut result = self.read_once(ctx);
        for _ in 1..self.reads_per_ready {
            match result {
                // Not once a line callback paused us: that holds from now.
                Ok(n) if n == CHUNK && ctx.current_is_watched() => result = self.read_once(ctx),
                _ => break,
            }
        }
        match result.map(|n| n > 0) {
            Ok(true) => Ok(()),
            Ok(false) => {
                ctx.remove_self();
                Ok(())
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                log::debug!("{}: {e}", self.sink.name());
                self.sink.error(&e, ctx);
                ctx.remove_self();
                Ok(())
            }
            Err(e) => {
                self.sink.error(&e, ctx);
                Err(e)
            }
        }
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        self.finish(ctx);
    }

    fn on_shutdown(&mut self) {
        // After `on_remove`, or after a panic: no `Context`, no callback.
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]], max_line: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let lines = std::rc::Rc::new(RefCell::new(Vec::new()));
        let sink = lines.clone();
        let mut partial = Vec::new();
        for chunk in chunks {
            split_lines(chunk, &mut partial, max_line, |l: &[u8]| sink.borrow_mut().push(l.to_vec()));
            assert!(partial.len() <= max_line);
        }
        let out = lines.borrow().clone();
        (out, partial)
    }

    #[test]
    fn the_first_newline_is_found_wherever_it_is() {
        for len in 0..=70 {
            assert_eq!(find_newline(&vec![b'a'; len]), None, "none in {len} bytes");
            for first in 0..len {
                for second in [None, Some(first + 1), Some(len - 1)] {
                    let mut bytes = vec![b'a'; len];
                    bytes[first] = b'\n';
                    if let Some(second) = second.filter(|&i| i < len) {
                        bytes[second] = b'\n';
                    }
                    assert_eq!(find_newline(&bytes), Some(first), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn lines_across_reads_are_joined() {
        let (lines, partial) = cut(&[b"ab", b"c\nde", b"f\n\ng"], 10);
        assert_eq!(lines, [&b"abc"[..], b"def", b""]);
        assert_eq!(partial, b"g");
    }

    #[test]
    fn line_of_exactly_max_is_one_line() {
        let (lines, partial) = cut(&[b"abcd\nef"], 4);
        assert_eq!(lines, [b"abcd"]);
        assert_eq!(partial, b"ef");
    }

    #[test]
    fn long_line_comes_in_pieces_of_max() {
        let (lines, partial) = cut(&[b"abcdefghij\n"], 4);
        assert_eq!(lines, [&b"abcd"[..], b"efgh", b"ij"]);
        assert!(partial.is_empty());
    }

    #[test]
    fn long_line_split_across_reads_comes_in_pieces_of_max() {
        let (lines, partial) = cut(&[b"ab", b"cdef", b"gh", b"ij\n"], 4);
        assert_eq!(lines, [&b"abcd"[..], b"efgh", b"ij"]);
        assert!(partial.is_empty());
    }
}
