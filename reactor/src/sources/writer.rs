//! A buffered outgoing stream: bytes queued by callbacks, written when the
//! descriptor takes them, with a bound and back-pressure.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::paused::PausedProducers;
use crate::callback::{OnError, OnEvent};
use crate::sys::{ignore_sigpipe, is_socket, send_or_write, set_nonblocking};
use crate::{Context, Handler, Interest, Readiness, Token};

/// How many `write`s one readiness report may take.
const WRITES_PER_READY: usize = 4;

struct State {
    /// The descriptor's number, for the handle's direct writes; `open` says
    /// whether the `Writer` (which owns it) still holds it.
    fd: RawFd,
    open: Cell<bool>,
    socket: bool,
    limit: usize,
    token: Cell<Option<Token>>,
    inner: RefCell<Buffer>,
    on_error: Cell<Option<OnError>>,
    on_drain: Cell<Option<OnEvent>>,
    /// Producers paused by [`WriterHandle::write_line_or_pause`], resumed
    /// when the buffer empties or the writer goes.
    paused: PausedProducers,
}

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    /// Bytes of `data` already written.
    start: usize,
    life: Life,
    /// A write was refused for want of room since the buffer last emptied.
    refused: bool,
}

/// Where the stream is in its life. Only an open stream takes writes.
#[derive(Debug)]
enum Life {
    /// Takes writes. `armed`: epoll watches for `WRITABLE`, because bytes wait.
    Open { armed: bool },
    /// Closes once the buffer is written (`close_when_drained`), or at once
    /// (`close`).
    Closing,
    /// A write into the empty buffer failed: the handler reports the error
    /// at its next readiness (epoll reports the broken descriptor at once),
    /// then the writer goes.
    Failed(io::Error),
    /// The error was reported; the writer has removed itself.
    Broken,
}

impl Default for Life {
    fn default() -> Life {
        Life::Open { armed: false }
    }
}

impl Buffer {
    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn is_open(&self) -> bool {
        matches!(self.life, Life::Open { .. })
    }

    fn is_armed(&self) -> bool {
        matches!(self.life, Life::Open { armed: true })
    }

    /// Whether epoll must watch for `WRITABLE`: bytes wait, or a failure
    /// does.
    fn wants_writable(&self) -> bool {
        self.len() > 0 || matches!(self.life, Life::Failed(_))
    }

    /// No more writes: an open stream starts closing. A failure is still
    /// reported if the writer gets to run.
    fn stop_writes(&mut self) {
        if self.is_open() {
            self.life = Life::Closing;
        }
    }

    /// The failure waiting to be reported, if any; the stream is then broken.
    fn take_failure(&mut self) -> Option<io::Error> {
        match std::mem::replace(&mut self.life, Life::Broken) {
            Life::Failed(e) => Some(e),
            other => {
                self.life = other;
                None
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Queues bytes for a pipe, a socket or stdout, and writes them when the
/// descriptor takes them.
///
/// - **Writability is watched only while data waits.** A write into an empty
///   buffer goes straight to the descriptor; only what it does not take is
///   kept, and only then does epoll watch for `WRITABLE`, until it is gone.
/// - **Bounded.** A write that would take the buffer past `limit` bytes is
///   refused whole with `WouldBlock` (a write into an empty buffer is always
///   taken, so a message larger than the limit still goes). The producer sees
///   [`WriterHandle::is_full`], stops producing (stops reading its own
///   input, say) and resumes in [`on_drain`](Writer::on_drain), which runs
///   when the buffer has emptied after a refusal.
/// - **Closing.** [`WriterHandle::close_when_drained`] closes the descriptor
///   once everything is written (the reader then sees end of file);
///   [`WriterHandle::close`] closes it at once, dropping what waits (to
///   evict a reader that does not keep up).
/// - **Errors.** `EPIPE` (the reader is gone), a reset connection, or any
///   other write error goes to [`on_error`](Writer::on_error), once, and the
///   writer removes itself; later writes fail with `BrokenPipe`. Never a
///   `SIGPIPE` death: sockets are written with `MSG_NOSIGNAL`, and for
///   anything else the writer makes sure `SIGPIPE` is ignored (a Rust
///   program ignores it already; the writer sets it if a host left it at
///   the default). `std::process::Command` restores the default in children.
///
/// The descriptor is made non-blocking. For stdout that changes the open
/// file shared with the shell (see `docs/reactor.md`); a `dup` shares it too.
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
/// use reactor::{sources::Writer, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let (ours, mut theirs) = UnixStream::pair()?;
/// let mut reactor = Reactor::new()?;
/// let out = Writer::new(ours, 64 * 1024)?.register(&mut reactor)?;
/// out.write_line(&mut reactor, b"hello")?;
/// out.close_when_drained(&mut reactor);
/// reactor.run()?; // nothing left once the writer has gone
/// let mut got = String::new();
/// theirs.read_to_string(&mut got)?;
/// assert_eq!(got, "hello\n");
/// # Ok(())
/// # }
/// ```
pub struct Writer {
    fd: OwnedFd,
    state: Rc<State>,
}

/// What callbacks write through: a cheap clone (`Rc`) of a [`Writer`]'s
/// shared side, valid after the writer is gone (writes then fail).
#[derive(Clone)]
pub struct WriterHandle {
    state: Rc<State>,
}

impl Writer {
    /// A writer of `fd` that holds at most `limit` bytes (see the type's
    /// documentation for the exact rule). Makes the descriptor non-blocking.
    pub fn new(fd: impl Into<OwnedFd>, limit: usize) -> io::Result<Writer> {
        let fd: OwnedFd = fd.into();
        set_nonblocking(fd.as_fd())?;
        let socket = is_socket(fd.as_fd())?;
        if !socket {
            ignore_sigpipe();
        }
        let state = Rc::new(State {
            fd: fd.as_raw_fd(),
            open: Cell::new(true),
            socket,
            limit: limit.max(1),
            token: Cell::new(None),
            inner: RefCell::new(Buffer::default()),
            on_error: Cell::new(None),
            on_drain: Cell::new(None),
            paused: PausedProducers::default(),
        });
        Ok(Writer { fd, state })
    }

    /// Called once with the error that ends the stream (`EPIPE`, a reset),
    /// before the writer removes itself. Without it, the error is logged.
    pub fn on_error(self, on_error: impl FnMut(&io::Error, &mut Context) + 'static) -> Writer {
        self.state.on_error.set(Some(Box::new(on_error)));
        self
    }

    /// Called when the buffer has emptied after a write was refused: the
    /// moment for a producer held back by [`WriterHandle::is_full`] to resume.
    pub fn on_drain(self, on_drain: impl FnMut(&mut Context) + 'static) -> Writer {
        self.state.on_drain.set(Some(Box::new(on_drain)));
        self
    }

    /// A handle to write through. It works once the writer is registered.
    pub fn handle(&self) -> WriterHandle {
        WriterHandle { state: self.state.clone() }
    }

    /// Registers the writer and returns its handle.
    pub fn register(self, ctx: &mut Context) -> io::Result<WriterHandle> {
        let handle = self.handle();
        let token = ctx.register(self)?;
        handle.state.token.set(Some(token));
        Ok(handle)
    }
}

impl WriterHandle {
    /// Queues all of `bytes`, or none: `WouldBlock` if they would take the
    /// buffer past its limit (nothing is queued; wait for `on_drain`),
    /// `BrokenPipe` once the stream failed or is closing.
    pub fn write(&self, ctx: &mut Context, bytes: &[u8]) -> io::Result<()> {
        self.write_parts(ctx, &[bytes], false)
    }

    /// Queues `line` and a `\n`, both or neither, as [`write`](Self::write).
    pub fn write_line(&self, ctx: &mut Context, line: &[u8]) -> io::Result<()> {
        self.write_parts(ctx, &[line, b"\n"], false)
    }

    /// Queues `line` and a `\n` even past the limit, and if the buffer then
    /// holds its limit or more, pauses the source `producer` (usually
    /// `ctx.current()`, the reader whose line this is: see
    /// [`Context::pause`]) until the buffer has emptied, or the writer has
    /// gone; then resumes it, before [`on_drain`](Writer::on_drain). The
    /// buffer stays bounded by the limit plus what the producer hands over
    /// before its pause takes hold (the rest of one read, for a
    /// [`LineReader`](crate::sources::LineReader)). Nothing is lost and
    /// nothing is held by hand. `BrokenPipe` once the stream failed or is
    /// closing.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{sources::{LineReader, Writer}, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let (mut input, ours_in) = UnixStream::pair()?;
    /// let (ours_out, mut output) = UnixStream::pair()?;
    /// // 320 000 bytes, more than the sockets and the limit hold together.
    /// let feeder = std::thread::spawn(move || input.write_all(&b"a line of input\n".repeat(20_000)));
    /// let mut reactor = Reactor::new()?;
    /// let out = Writer::new(ours_out, 16 * 1024)?.register(&mut reactor)?;
    /// let end = out.clone();
    /// let copy = LineReader::new(ours_in.into(), 1024, move |line, ctx| {
    ///     let me = ctx.current().expect("a reader's callback has its token");
    ///     out.write_line_or_pause(ctx, line, me).expect("the reader reads");
    /// });
    /// reactor.register(copy.on_close(move |ctx| end.close_when_drained(ctx)))?;
    /// let reader = std::thread::spawn(move || {
    ///     let mut got = Vec::new();
    ///     output.read_to_end(&mut got).map(|_| got.len())
    /// });
    /// reactor.run()?;
    /// feeder.join().expect("no panic")?;
    /// assert_eq!(reader.join().expect("no panic")?, 320_000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_line_or_pause(&self, ctx: &mut Context, line: &[u8], producer: Token) -> io::Result<()> {
        self.write_parts(ctx, &[line, b"\n"], true)?;
        if self.buffered() >= self.state.limit {
            self.state.inner.borrow_mut().refused = true;
            self.state.paused.pause(ctx, producer)?;
        }
        Ok(())
    }

    fn write_parts(&self, ctx: &mut Context, parts: &[&[u8]], past_limit: bool) -> io::Result<()> {
        let state = &self.state;
        let mut buf = state.inner.borrow_mut();
        if !buf.is_open() || !state.open.get() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the writer is closed or failed"));
        }
        let size: usize = parts.iter().map(|p| p.len()).sum();
        if !past_limit && buf.len() > 0 && buf.len() + size > state.limit {
            buf.refused = true;
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "the writer's buffer is full"));
        }
        let was_armed = buf.is_armed();
        for part in parts {
            let mut part = *part;
            if buf.len() == 0 && buf.is_open() {
                // Nothing waits: straight to the descriptor.
                match send_or_write(state.fd, state.socket, part) {
                    Ok(n) => part = &part[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        buf.life = Life::Failed(e);
                        part = &[];
                    }
                }
            }
            buf.data.extend_from_slice(part);
        }
        if buf.wants_writable() && !was_armed {
            // A failure is reported by the handler: epoll reports the
            // broken descriptor as writable (or in error) at once.
            if let Some(token) = state.token.get() {
                ctx.set_interest(token, Interest::WRITABLE)?;
                if let Life::Open { armed } = &mut buf.life {
                    *armed = true;
                }
            }
        }
        Ok(())
    }

    /// Whether a write of `bytes` more would be refused now.
    pub fn would_refuse(&self, bytes: usize) -> bool {
        let buf = self.state.inner.borrow();
        buf.len() > 0 && buf.len() + bytes > self.state.limit
    }

    /// Whether the buffer holds its limit or more: the producer should wait
    /// for `on_drain`.
    pub fn is_full(&self) -> bool {
        self.state.inner.borrow().len() >= self.state.limit
    }

    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.state.inner.borrow().len()
    }

    /// The limit given to [`Writer::new`].
    pub fn limit(&self) -> usize {
        self.state.limit
    }

    /// Whether the writer can still take bytes (not closing, not failed,
    /// not removed).
    pub fn is_open(&self) -> bool {
        self.state.open.get() && self.state.inner.borrow().is_open()
    }

    /// The writer's token, once registered.
    pub fn token(&self) -> Option<Token> {
        self.state.token.get()
    }

    /// Closes the descriptor once everything queued is written: at once if
    /// nothing is. Later writes fail with `BrokenPipe`.
    pub fn close_when_drained(&self, ctx: &mut Context) {
        let empty = {
            let mut buf = self.state.inner.borrow_mut();
            buf.stop_writes();
            buf.len() == 0
        };
        if empty {
            if let Some(token) = self.state.token.get() {
                ctx.remove(token);
            }
        }
    }
}

impl WriterHandle {
    /// Closes the descriptor at once, dropping whatever is still queued: to
    /// evict a reader that does not keep up. Later writes fail with
    /// `BrokenPipe`; `on_error` is not called (nothing failed). Does nothing
    /// to a writer already gone.
    pub fn close(&self, ctx: &mut Context) {
        self.state.inner.borrow_mut().stop_writes();
        if let Some(token) = self.state.token.get() {
            ctx.remove(token);
        }
    }
}

impl Writer {
    /// Writes what the buffer holds, a bounded number of times. `Ok(true)`
    /// when it is empty.
    fn flush(&self) -> io::Result<bool> {
        let mut buf = self.state.inner.borrow_mut();
        if let Some(e) = buf.take_failure() {
            return Err(e);
        }
        for _ in 0..WRITES_PER_READY {
            if buf.len() == 0 {
                break;
            }
            match send_or_write(self.state.fd, self.state.socket, &buf.data[buf.start..]) {
                Ok(n) => buf.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.len() == 0)
    }

    /// Resumes the producers that [`WriterHandle::write_line_or_pause`]
    /// paused (those still registered).
    fn resume_producers(&self, ctx: &mut Context) {
        if let Err(e) = self.state.paused.resume_all(ctx) {
            log::warn!("writer: resuming a paused producer: {e}");
        }
    }

    fn fail(&mut self, e: io::Error, ctx: &mut Context) {
        self.state.inner.borrow_mut().life = Life::Broken;
        match self.state.on_error.take() {
            Some(mut on_error) => {
                on_error(&e, ctx);
                self.state.on_error.set(Some(on_error));
            }
            None => log::warn!("writer: {e}"),
        }
        ctx.remove_self();
    }
}

impl Handler for Writer {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn interest(&self) -> Interest {
        let mut buf = self.state.inner.borrow_mut();
        let want = buf.wants_writable();
        if let Life::Open { armed } = &mut buf.life {
            *armed = want;
        }
        if want {
            Interest::WRITABLE
        } else {
            Interest::HANGUP
        }
    }

    fn name(&self) -> &str {
        "writer"
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        let empty = match self.flush() {
            Ok(empty) => empty,
            Err(e) => {
                self.fail(e, ctx);
                return Ok(());
            }
        };
        if !empty {
            return Ok(());
        }
        if readiness.is_error() || readiness.is_hangup() {
            // Nothing to write, and the reader is gone: reported whatever the
            // interest, so it must end here or it would come every round.
            self.fail(io::Error::from_raw_os_error(libc::EPIPE), ctx);
            return Ok(());
        }
        let (closing, refused, was_armed) = {
            let mut buf = self.state.inner.borrow_mut();
            let closing = matches!(buf.life, Life::Closing);
            let was_armed = match &mut buf.life {
                Life::Open { armed } => std::mem::replace(armed, false),
                _ => false,
            };
            (closing, std::mem::take(&mut buf.refused), was_armed)
        };
        if closing {
            ctx.remove_self();
            return Ok(());
        }
        self.resume_producers(ctx);
        if was_armed {
            if let Some(me) = ctx.current() {
                ctx.set_interest(me, Interest::HANGUP)?;
            }
        }
        if refused {
            if let Some(mut on_drain) = self.state.on_drain.take() {
                on_drain(ctx);
                self.state.on_drain.set(Some(on_drain));
            }
        }
        Ok(())
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        // Closed, evicted or failed: a paused producer is told by its next write.
        self.resume_producers(ctx);
    }

    fn on_shutdown(&mut self) {
        // The descriptor closes when we drop: the handle must not use it.
        self.state.open.set(false);
        let left = self.state.inner.borrow().len();
        if left > 0 {
            log::debug!("writer: {left} unwritten bytes dropped at shutdown");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.state.open.set(false);
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("fd", &self.fd).field("handle", &self.handle()).finish()
    }
}

impl fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.state.inner.borrow();
        f.debug_struct("WriterHandle")
            .field("token", &self.state.token.get())
            .field("buffered", &buf.len())
            .field("limit", &self.state.limit)
            .field("life", &buf.life)
            .field("open", &self.state.open.get())
            .finish()
    }
}
