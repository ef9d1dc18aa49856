//! A byte stream (stdin, a connection, a FIFO) cut into lines.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::syscall;
use crate::{Context, Handler, Readiness};

/// How much one read takes: the capacity of a pipe.
const CHUNK: usize = 64 * 1024;

/// How many full reads one readiness report may take from a non-blocking
/// descriptor: 256 KiB, enough to write output in whole buffers, little
/// enough that one chatty stream never starves the others.
const READS_PER_READY: u8 = 4;

thread_local! {
    /// One read buffer for every reader of the thread: only a partial line is
    /// kept per reader, so an idle connection costs no buffer at all.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
}

/// Where a [`LineReader`] delivers: each line, then the end of the stream.
///
/// A closure `FnMut(&[u8])` is a sink; [`LineReader::new`] wraps one in
/// [`Callbacks`]. A type of your own costs one object per reader, where
/// separate closures would cost an allocation each.
pub trait LineSink {
    /// A line without its `\n`, or a piece of at most `max_line` bytes.
    fn line(&mut self, line: &[u8]);

    /// The stream ended (end of file, error, or shutdown), after the last
    /// line. Called once.
    fn closed(&mut self) {}

    /// The error that ends the stream (a reset connection included), before
    /// [`closed`](LineSink::closed).
    fn error(&mut self, error: &io::Error) {
        let _ = error;
    }

    /// A name for log lines.
    fn name(&self) -> &str {
        "lines"
    }
}

impl<F: FnMut(&[u8])> LineSink for F {
    fn line(&mut self, line: &[u8]) {
        self(line);
    }
}

type OnLine = Box<dyn FnMut(&[u8])>;
type OnClose = Box<dyn FnMut()>;
type OnError = Box<dyn FnMut(&io::Error)>;

/// The sink of [`LineReader::new`]: a closure per event and a name.
pub struct Callbacks {
    name: String,
    on_line: OnLine,
    on_close: Option<OnClose>,
    on_error: Option<OnError>,
}

impl LineSink for Callbacks {
    fn line(&mut self, line: &[u8]) {
        (self.on_line)(line);
    }

    fn closed(&mut self) {
        if let Some(on_close) = &mut self.on_close {
            on_close();
        }
    }

    fn error(&mut self, error: &io::Error) {
        if let Some(on_error) = &mut self.on_error {
            on_error(error);
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
/// - At end of file, a last line without `\n` is delivered as it is.
/// - On end of file, a reset connection or a read error, the reader removes
///   itself (errors are logged by the reactor); it never spins on a hang-up.
/// - At most four reads of 64 KiB per readiness on a non-blocking
///   descriptor (a short read ends them), one on a blocking one: a chatty
///   stream never starves the loop.
///
/// The descriptor may be blocking (stdin, which the reader must not switch
/// to non-blocking: the terminal's open file is shared with the shell): one
/// read after a readiness report does not block.
pub struct LineReader<S = Callbacks> {
    fd: OwnedFd,
    finished: bool,
    /// Reads per readiness: several on a non-blocking descriptor, one on a
    /// blocking one (a second read could block).
    reads_per_ready: u8,
    max_line: usize,
    partial: Vec<u8>,
    sink: S,
}

impl LineReader<Callbacks> {
    /// A reader of `fd` that passes each line (or piece of at most
    /// `max_line` bytes) to `on_line`.
    pub fn new(fd: OwnedFd, max_line: usize, on_line: impl FnMut(&[u8]) + 'static) -> LineReader {
        let sink = Callbacks {
            name: String::from("lines"),
            on_line: Box::new(on_line),
            on_close: None,
            on_error: None,
        };
        LineReader::with_sink(fd, max_line, sink)
    }

    /// Names the reader in log lines.
    pub fn named(mut self, name: impl Into<String>) -> LineReader {
        self.sink.name = name.into();
        self
    }

    /// Calls `on_close` once when the reader is shut down, after the last line.
    pub fn on_close(mut self, on_close: impl FnMut() + 'static) -> LineReader {
        self.sink.on_close = Some(Box::new(on_close));
        self
    }

    /// Calls `on_error` with the error that ends the stream (a reset
    /// connection included), before the reader goes away.
    pub fn on_error(mut self, on_error: impl FnMut(&io::Error) + 'static) -> LineReader {
        self.sink.on_error = Some(Box::new(on_error));
        self
    }
}

impl<S: LineSink> LineReader<S> {
    /// A reader of `fd` that delivers to `sink`.
    pub fn with_sink(fd: OwnedFd, max_line: usize, sink: S) -> LineReader<S> {
        let reads_per_ready = if is_nonblocking(&fd) { READS_PER_READY } else { 1 };
        LineReader {
            fd,
            finished: false,
            reads_per_ready,
            max_line: max_line.max(1),
            partial: Vec::new(),
            sink,
        }
    }

    /// One read per readiness whatever the descriptor's flags now, for a
    /// descriptor whose open file others share and may switch to blocking
    /// (stdin): a second read could then block the loop.
    pub fn one_read_per_readiness(mut self) -> LineReader<S> {
        self.reads_per_ready = 1;
        self
    }

    /// Reads the stream to its end without the reactor, for descriptors that
    /// epoll refuses (a regular file, `/dev/null`), which never block. The
    /// last partial line is delivered and the sink closed, as at shutdown.
    pub fn read_to_end(&mut self) -> io::Result<()> {
        while self.read_chunk()? {}
        Ok(())
    }

    /// Reads once (at most 64 KiB) without the reactor, for a descriptor
    /// that epoll refuses and that may never end (`/dev/zero`): a caller that
    /// takes one chunk per loop round keeps the loop going. Returns `false`
    /// once the stream has ended (end of file, or the error returned), when
    /// the last partial line has been delivered and the sink closed.
    pub fn read_chunk(&mut self) -> io::Result<bool> {
        match self.read_once() {
            Ok(0) => {
                self.finish();
                Ok(false)
            }
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => {
                self.sink.error(&e);
                self.finish();
                Err(e)
            }
        }
    }

    /// One read, cut into lines. Returns how many bytes came: 0 at end of file.
    fn read_once(&mut self) -> io::Result<usize> {
        SCRATCH.with_borrow_mut(|scratch| {
            // SAFETY: `scratch` is writable for its whole length.
            let n = syscall!(read(self.fd.as_raw_fd(), scratch.as_mut_ptr().cast(), scratch.len()))?;
            let data = &scratch[..n as usize];
            split_lines(data, &mut self.partial, self.max_line, &mut self.sink);
            Ok(n as usize)
        })
    }

    /// Delivers the last partial line and closes the sink, once.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if !self.partial.is_empty() {
            self.sink.line(&self.partial);
            self.partial = Vec::new();
        }
        self.sink.closed();
    }
}

/// Cuts `data` into lines for `sink`, as a [`LineReader`] does, for code
/// that reads by itself: completes `partial` first, keeps what is left of
/// an unfinished line in it, and delivers lines longer than `max_line` in
/// pieces of `max_line` bytes. Keeps `partial.len() <= max_line` (a full
/// piece waits for one more byte: if it is `\n`, the piece is a line).
pub fn split_lines(mut data: &[u8], partial: &mut Vec<u8>, max_line: usize, sink: &mut impl LineSink) {
    let max_line = max_line.max(1);
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
                return;
            }
        };
        if partial.is_empty() {
            sink.line(&data[..end]);
        } else {
            partial.extend_from_slice(&data[..end]);
            sink.line(partial);
            partial.clear();
        }
        data = &data[rest..];
    }
}

fn is_nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFL only reads the open file's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags != -1 && flags & libc::O_NONBLOCK != 0
}

/// The first `\n`, found by the C library's vectorised `memchr`.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe a live slice; `memchr` reads no further.
    let found = unsafe { libc::memchr(bytes.as_ptr().cast(), libc::c_int::from(b'\n'), bytes.len()) };
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

impl<S: LineSink> Handler for LineReader<S> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        self.sink.name()
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context<'_>) -> io::Result<()> {
        // Whatever was reported (data, hang-up, error), the read tells which.
        // A short read means the stream is drained for now: no further read
        // just to hear `EAGAIN`.
        let mut result = self.read_once();
        for _ in 1..self.reads_per_ready {
            match result {
                Ok(n) if n == CHUNK => result = self.read_once(),
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
                self.sink.error(&e);
                ctx.remove_self();
                Ok(())
            }
            Err(e) => {
                self.sink.error(&e);
                Err(e)
            }
        }
    }

    fn on_shutdown(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]], max_line: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let lines = std::rc::Rc::new(RefCell::new(Vec::new()));
        let sink = lines.clone();
        let mut on_line = move |l: &[u8]| sink.borrow_mut().push(l.to_vec());
        let mut partial = Vec::new();
        for chunk in chunks {
            split_lines(chunk, &mut partial, max_line, &mut on_line);
            assert!(partial.len() <= max_line);
        }
        let out = lines.borrow().clone();
        (out, partial)
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
