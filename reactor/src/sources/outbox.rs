//! The one core for outgoing bytes, under [`Writer`](super::Writer) and
//! [`Connection`](super::Connection): the bounded buffer, the write loop,
//! the lifecycle, and back-pressure on any registered source, named by
//! its [`Token`].

use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::lines::CHUNK;
use crate::sys::{ignore_sigpipe, is_socket, send_or_write, set_nonblocking, syscall};
use crate::{Context, Interest, Readiness, TimerKey, Token};

/// How many `write`s one readiness (or one round's flush) may take: a
/// descriptor that takes less than everything in that many is full for now.
const WRITES_PER_READY: usize = 4;

/// A callback of a stream, with the stream's [`Output`]: a drain, a close,
/// an end of input, a connect.
pub(crate) type OnOutput = Box<dyn FnMut(&Output, &mut Context)>;

/// The error that ends a stream, with the stream's [`Output`].
pub(crate) type OnFailure = Box<dyn FnMut(&io::Error, &Output, &mut Context)>;

/// The output side of a [`Writer`](super::Writer) or a
/// [`Connection`](super::Connection): what callbacks write, close and
/// half-close through. A cheap clone (`Rc`), valid after the stream is gone
/// (writes then fail with `BrokenPipe`).
///
/// - **One rule for full.** `n` more bytes *fit* ([`fits`](Output::fits))
///   when the buffer is empty or `buffered() + n <= limit()`: an empty
///   buffer takes any write whole, so a message larger than the limit still
///   goes. The stream is *full* when one more byte would not fit
///   (`buffered() >= limit()`).
/// - **Refused, or the producer held.** [`write`](Output::write) and
///   [`write_line`](Output::write_line) take all of their bytes if they fit,
///   or none, with `WouldBlock` (wait for `on_drain`): the buffer never
///   holds more than `limit()` bytes, or one write larger than that.
///   [`write_or_pause`](Output::write_or_pause) and
///   [`write_line_or_pause`](Output::write_line_or_pause) name the
///   *producer*, the registered source whose input this is (a
///   [`LineReader`](super::LineReader) of a pipe, a FIFO or stdin, a
///   [`Connection`](super::Connection), a channel, a queue reader: any
///   [`Token`]): they take the bytes even past the limit, and if the stream
///   is then full, its input is held ([`Context::is_paused`] is true for it)
///   until the buffer has emptied or the stream is gone. A producer held by
///   several streams resumes when the last of them drains. Past the limit
///   they take up to 64 KiB more for each producer held, what a producer
///   hands over before its hold takes effect (one line for a `Connection`,
///   the rest of one read for a `LineReader`), and refuse the
///   rest with `WouldBlock`: the buffer never holds more than `limit()`
///   plus 64 KiB per held producer. With no producer (`None`: a timer,
///   code outside the loop), they are `write` and `write_line`: the bound
///   holds whoever calls.
/// - **Coalesced.** A [`Writer`](super::Writer) writes straight into an
///   empty buffer's descriptor; a [`Connection`](super::Connection) only
///   appends, and writes once at the end of the round (a timer due at
///   once), so that a burst of lines leaves in one `send`; a write that does
///   not fit first writes out what the round queued, as a `BufWriter` does.
///   What the descriptor does not take waits for `WRITABLE`, watched only
///   while bytes wait.
/// - **Life** ([`state`](Output::state)): [`close`](Output::close) ends
///   the stream at once, dropping what waits;
///   [`close_when_drained`](Output::close_when_drained) once it is written;
///   [`shutdown_write`](Output::shutdown_write) ends our writing once it is
///   written (`shutdown(SHUT_WR)`; the peer reads end of file) and a
///   connection goes on reading. A write error (`EPIPE`, a reset) goes to
///   `on_error` once and the stream leaves. Never a `SIGPIPE` death: sockets
///   are written with `MSG_NOSIGNAL`, and for anything else `SIGPIPE` is
///   made sure to be ignored.
#[derive(Clone)]
pub struct Output {
    core: Rc<Core>,
}

/// Where a stream is in its life, as [`Output::state`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// An outgoing connection on its way: writes are kept, and sent once it
    /// is up.
    Connecting,
    /// Reads (a connection) and takes writes.
    Open,
    /// The peer ended its writing (end of file): nothing more to read;
    /// writes are still taken, until the program closes or shuts down its
    /// own writing.
    InputEnded,
    /// Our writing ends, or has ended ([`Output::shutdown_write`]): no more
    /// writes; a connection goes on reading, and closes at end of input.
    OutputShut,
    /// No more writes; the stream closes once its buffer is written.
    Closing,
    /// Gone: closed, failed, or shut down with the reactor.
    Closed,
}

struct Core {
    fd: RawFd,
    socket: bool,
    /// A connection: reads too, and writes at the end of the round, not
    /// straight away.
    connection: bool,
    limit: Cell<usize>,
    token: Cell<Option<Token>>,
    inner: RefCell<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    data: Vec<u8>,
    /// Bytes of `data` already written.
    start: usize,
    life: Life,
    pub(crate) input_ended: bool,
    /// The reader keeps lines read before its input was held: it must be
    /// called once that hold ends.
    pub(crate) holds_input: bool,
    /// An outgoing connection not up yet: writes are kept, none is made.
    pub(crate) connecting: bool,
    /// Out of epoll until [`Output::kick`]: a Unix connect waits for room
    /// in the listener's backlog (an unconnected socket reports hang-ups).
    pub(crate) parked: bool,
    /// A write was refused, or a producer held, since the buffer last
    /// emptied: the drain is to be told.
    refused: bool,
    /// Producers held until the buffer empties, each once.
    pub(crate) held: Vec<Token>,
    /// The round's flush, while one is due.
    flush: Option<TimerKey>,
    /// A [`Fanout`](super::Fanout)'s check for a member that writes nothing.
    pub(crate) stall: Option<TimerKey>,
    written: u64,
    pub(crate) dropped: u64,
}

/// The lifecycle; each state means one thing. (An outgoing connection is
/// `connecting` besides, until it is up.)
#[derive(Debug, Default)]
enum Life {
    /// Takes writes.
    #[default]
    Open,
    /// `shutdown_write` asked: no more writes; `SHUT_WR` once written.
    Ending,
    /// Our writing has ended (`SHUT_WR` done).
    Shut,
    /// No more writes; closes once written.
    Closing,
    /// Failed: the handler reports the error as it leaves.
    Failed(io::Error),
    /// Gone: the descriptor is closed, or about to be.
    Closed,
}

impl Inner {
    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn takes_writes(&self) -> bool {
        matches!(self.life, Life::Open)
    }

    /// Whether bytes may be written now: connected, not failed, not gone.
    fn writes_now(&self) -> bool {
        !self.connecting && matches!(self.life, Life::Open | Life::Ending | Life::Closing)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.written += n as u64;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
    }

    /// Keeps a failure for the handler to report (a closed stream has
    /// nobody left to report it).
    pub(crate) fn keep_failure(&mut self, e: io::Error) {
        if !matches!(self.life, Life::Closed) {
            self.life = Life::Failed(e);
        }
    }

    /// No more writes: an open stream starts to close, or to end its
    /// writing. A failure is still reported; a closed stream stays closed.
    fn stop_writes(&mut self, then: Life) {
        if matches!(self.life, Life::Open | Life::Ending | Life::Shut) {
            self.life = then;
        }
    }
}

impl Core {
    /// Writes what waits, a bounded number of times. A failure is kept
    /// for the handler to report; `false` then.
    fn write_out(&self) -> bool {
        let mut inner = self.inner.borrow_mut();
        for _ in 0..WRITES_PER_READY {
            if inner.len() == 0 {
                break;
            }
            match send_or_write(self.fd, self.socket, &inner.data[inner.start..]) {
                Ok(n) => inner.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    inner.keep_failure(e);
                    return false;
                }
            }
        }
        true
    }
}

impl Output {
    /// Queues all of `bytes` if they fit, else none: `WouldBlock`. See
    /// [`Output`] for the rule; `BrokenPipe` once the stream takes no more
    /// writes ([`state`](Output::state) is not `Connecting` or `Open`).
    pub fn write(&self, ctx: &mut Context, bytes: &[u8]) -> io::Result<()> {
        self.push(ctx, &[bytes], None)
    }

    /// Queues `line` and a `\n`, both or neither, as [`write`](Output::write).
    pub fn write_line(&self, ctx: &mut Context, line: &[u8]) -> io::Result<()> {
        self.push(ctx, &[line, b"\n"], None)
    }

    /// Queues all of `bytes`, even past the limit, and holds the input of
    /// `from`, the producer (the source whose input this is), while the
    /// stream is full (see [`Output`]); with `None`, or a token no longer
    /// registered, it is [`write`](Output::write).
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
    ///     let me = ctx.current(); // the reader: held while the pipe is full
    ///     out.write_line_or_pause(ctx, line, me).expect("the writer is open");
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
    pub fn write_or_pause(&self, ctx: &mut Context, bytes: &[u8], from: Option<Token>) -> io::Result<()> {
        self.push(ctx, &[bytes], from)
    }

    /// Queues `line` and a `\n` as [`write_or_pause`](Output::write_or_pause).
    pub fn write_line_or_pause(&self, ctx: &mut Context, line: &[u8], from: Option<Token>) -> io::Result<()> {
        self.push(
            ctx,
            &[
                line, b"
",
            ],
            from,
        )
    }

    fn push(&self, ctx: &mut Context, parts: &[&[u8]], producer: Option<Token>) -> io::Result<()> {
        let core = &*self.core;
        if !core.inner.borrow().takes_writes() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the stream takes no more writes"));
        }
        let size = parts.iter().map(|p| p.len()).sum();
        if !self.fits(size) && core.inner.borrow().flush.is_some() {
            // Full before the round ends: write out now, and refuse only
            // what the descriptor does not take either.
            if !core.write_out() {
                self.watch(ctx)?;
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the stream failed"));
            }
        }
        let producer = producer.filter(|&p| ctx.contains(p));
        if !self.fits(size) && !self.takes_past_limit(producer, size) {
            core.inner.borrow_mut().refused = true;
            let (buffered, limit) = (self.buffered(), self.limit());
            let full = format!("the stream is full ({buffered} of {limit} bytes): wait for its on_drain");
            return Err(io::Error::new(io::ErrorKind::WouldBlock, full));
        }
        let mut inner = core.inner.borrow_mut();
        let straight = !core.connection && inner.len() == 0 && inner.writes_now();
        for part in parts {
            inner.data.extend_from_slice(part);
        }
        if straight {
            // Nothing waited: to the descriptor now, in one write.
            drop(inner);
            core.write_out();
            inner = core.inner.borrow_mut();
        }
        let hold = producer.filter(|p| inner.len() >= core.limit.get() && !inner.held.contains(p));
        if core.connection && inner.len() > 0 && inner.flush.is_none() && inner.writes_now() {
            inner.flush = Some(self.flush_at_end_of_round(ctx));
        }
        drop(inner);
        if let Some(producer) = hold {
            ctx.hold(producer)?;
            let mut inner = core.inner.borrow_mut();
            inner.held.push(producer);
            inner.refused = true;
        }
        self.watch(ctx)
    }

    /// Whether `size` bytes from `producer` are taken past the limit: by up
    /// to [`CHUNK`] (one read) for each producer held, this one included.
    fn takes_past_limit(&self, producer: Option<Token>, size: usize) -> bool {
        let Some(producer) = producer else { return false };
        let inner = self.core.inner.borrow();
        let held = inner.held.len() + usize::from(!inner.held.contains(&producer));
        inner.len() + size <= self.limit() + held * CHUNK
    }

    /// A timer due at once, which goes when it has run. (One kept between
    /// rounds would keep `Reactor::run` from returning when nothing else is
    /// left.)
    fn flush_at_end_of_round(&self, ctx: &mut Context) -> TimerKey {
        let weak: Weak<Core> = Rc::downgrade(&self.core);
        ctx.after(Duration::ZERO, move |ctx| {
            let Some(core) = weak.upgrade() else { return };
            core.inner.borrow_mut().flush = None;
            if !core.inner.borrow().writes_now() {
                return;
            }
            core.write_out();
            // What the descriptor did not take, a drain to tell, or a close
            // to finish: the handler does it.
            if let Err(e) = (Output { core }).watch(ctx) {
                log::debug!("stream: {e}");
            }
        })
    }

    /// Whether `bytes` more fit: the buffer is empty, or they take it to
    /// its limit at most. The one rule for full of every sink (see
    /// [`Output`]).
    pub fn fits(&self, bytes: usize) -> bool {
        let buffered = self.buffered();
        buffered == 0 || buffered + bytes <= self.limit()
    }

    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.core.inner.borrow().len()
    }

    /// The most bytes the buffer holds (see [`Output`]).
    pub fn limit(&self) -> usize {
        self.core.limit.get()
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.core.limit.set(limit.max(1));
    }

    /// Where the stream is in its life.
    pub fn state(&self) -> StreamState {
        let inner = self.core.inner.borrow();
        match inner.life {
            Life::Open | Life::Ending | Life::Closing if inner.connecting => StreamState::Connecting,
            Life::Open if inner.input_ended => StreamState::InputEnded,
            Life::Open => StreamState::Open,
            Life::Ending | Life::Shut => StreamState::OutputShut,
            Life::Closing => StreamState::Closing,
            Life::Failed(_) | Life::Closed => StreamState::Closed,
        }
    }

    /// The stream's token, once registered.
    pub fn token(&self) -> Option<Token> {
        self.core.token.get()
    }

    /// Bytes written to the descriptor so far: progress, for stall checks.
    pub fn written(&self) -> u64 {
        self.core.inner.borrow().written
    }

    /// Lines that a [`Fanout`](super::Fanout) dropped for this stream
    /// because it was full.
    pub fn dropped(&self) -> u64 {
        self.core.inner.borrow().dropped
    }

    /// Closes at once, dropping whatever waits: to evict a reader that does
    /// not keep up. `on_close` runs; `on_error` does not (nothing failed).
    /// Does nothing to a stream already gone.
    pub fn close(&self, ctx: &mut Context) {
        self.core.inner.borrow_mut().stop_writes(Life::Closed);
        if let Some(token) = self.core.token.get() {
            ctx.remove(token);
        }
    }

    /// Closes once everything queued is written (at once if nothing is); a
    /// connection reads no more.
    pub fn close_when_drained(&self, ctx: &mut Context) {
        self.end(ctx, Life::Closing);
    }

    /// Ends our writing once everything queued is written: `shutdown(SHUT_WR)`,
    /// and the peer reads end of file (libuv's `uv_shutdown`). A connection
    /// goes on reading, and closes when its input has ended too; a `Writer`,
    /// which has nothing left to do, closes (a pipe is closed: its reader
    /// sees end of file too).
    pub fn shutdown_write(&self, ctx: &mut Context) {
        self.end(ctx, Life::Ending);
    }

    /// Ends the writes, then the stream: at once if nothing waits.
    fn end(&self, ctx: &mut Context, then: Life) {
        self.core.inner.borrow_mut().stop_writes(then);
        if self.settle(ctx) {
            if let Err(e) = self.watch(ctx) {
                log::debug!("stream: {e}");
            }
        }
    }

    /// With nothing left to write, finishes the end asked for: `SHUT_WR`
    /// for `shutdown_write`; the close for `close_when_drained`, a failure,
    /// or both directions ended. `false` once the stream has left.
    pub(crate) fn settle(&self, ctx: &mut Context) -> bool {
        let core = &*self.core;
        let mut inner = core.inner.borrow_mut();
        if (inner.len() > 0 || inner.connecting) && !matches!(inner.life, Life::Failed(_)) {
            return true;
        }
        if matches!(inner.life, Life::Ending) {
            inner.life = match core.socket {
                // SAFETY: integer arguments only; the descriptor is the handler's, open.
                true => syscall!(shutdown(core.fd, libc::SHUT_WR)).map_or_else(Life::Failed, |_| Life::Shut),
                false => Life::Closing, // a pipe ends by closing
            };
        }
        let done = match inner.life {
            Life::Closing | Life::Failed(_) | Life::Closed => true,
            Life::Shut => inner.input_ended || !core.connection,
            _ => false,
        };
        drop(inner);
        if let Some(token) = core.token.get().filter(|_| done) {
            ctx.remove(token);
        }
        !done
    }

    /// The shared state, for the sources built on it.
    pub(crate) fn inner(&self) -> RefMut<'_, Inner> {
        self.core.inner.borrow_mut()
    }

    /// The token the handler was registered as: the output watches for it.
    pub(crate) fn registered(&self, ctx: &mut Context, token: Token) -> io::Result<()> {
        self.core.token.set(Some(token));
        self.watch(ctx)
    }

    /// Tells epoll what the stream waits for now: input while it reads, and
    /// `WRITABLE` while bytes wait for room or the handler has something to
    /// finish (a failure, a drain, an end); else hang-ups only.
    pub(crate) fn watch(&self, ctx: &mut Context) -> io::Result<()> {
        let Some(token) = self.core.token.get() else { return Ok(()) };
        let interest = self.interest();
        if ctx.interest(token).is_some_and(|now| now != interest) {
            ctx.set_interest(token, interest)?;
        }
        Ok(())
    }

    pub(crate) fn interest(&self) -> Interest {
        let inner = self.core.inner.borrow();
        let bytes_wait = inner.len() > 0 && inner.flush.is_none();
        let to_finish = inner.len() == 0
            && (inner.refused || matches!(inner.life, Life::Ending | Life::Closing | Life::Failed(_)));
        let write = inner.connecting || bytes_wait || to_finish;
        let read = self.reads(&inner);
        match (read, write) {
            _ if inner.parked => Interest::NONE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            // Lines kept from before a hold: edge-triggered `WRITABLE` calls
            // the reader once when the hold ends (the interest changes then,
            // and epoll reports a writable socket again), not every round.
            (true, false) if inner.holds_input => (Interest::READABLE | Interest::WRITABLE).edge(),
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (false, false) => Interest::HANGUP,
        }
    }

    fn reads(&self, inner: &Inner) -> bool {
        self.core.connection
            && !inner.input_ended
            && matches!(inner.life, Life::Open | Life::Ending | Life::Shut)
    }

    /// Whether a connection reads: not ended, not closing, not gone.
    pub(crate) fn is_reading(&self) -> bool {
        self.reads(&self.core.inner.borrow())
    }

    pub(crate) fn takes_writes(&self) -> bool {
        self.core.inner.borrow().takes_writes()
    }

    pub(crate) fn same(&self, other: &Output) -> bool {
        Rc::ptr_eq(&self.core, &other.core)
    }

    /// Gets the handler called: back into epoll, and `WRITABLE` for what
    /// waits (a socket just connected is writable at once).
    pub(crate) fn kick(&self, ctx: &mut Context) {
        self.core.inner.borrow_mut().parked = false;
        if let Err(e) = self.watch(ctx) {
            self.fail(ctx, e);
        }
    }

    pub(crate) fn is_connecting(&self) -> bool {
        let inner = self.core.inner.borrow();
        inner.connecting && !matches!(inner.life, Life::Failed(_) | Life::Closed)
    }

    /// Ends the stream with `e` from outside its handler (a timer): the
    /// handler reports it as it leaves.
    pub(crate) fn fail(&self, ctx: &mut Context, e: io::Error) {
        self.core.inner.borrow_mut().keep_failure(e);
        if let Some(token) = self.core.token.get() {
            ctx.remove(token);
        }
    }
}

/// The handler's side of an [`Output`]: the callbacks, and what the handler
/// does for it when called. Callbacks live here, not in the shared core, so
/// that one that keeps a clone of the `Output` makes no cycle.
pub(crate) struct Sink {
    pub(crate) out: Output,
    pub(crate) on_drain: Option<OnOutput>,
    pub(crate) on_error: Option<OnFailure>,
    pub(crate) on_close: Option<OnOutput>,
    name: &'static str,
}

impl Sink {
    /// The sink of `fd`, made non-blocking, that holds `limit` bytes.
    pub(crate) fn new(fd: BorrowedFd<'_>, limit: usize, connection: bool) -> io::Result<Sink> {
        set_nonblocking(fd)?;
        let socket = is_socket(fd)?;
        if !socket {
            ignore_sigpipe();
        }
        let (limit, token, inner) = (Cell::new(limit.max(1)), Cell::new(None), RefCell::default());
        let out =
            Output { core: Rc::new(Core { fd: fd.as_raw_fd(), socket, connection, limit, token, inner }) };
        let name = if connection { "connection" } else { "writer" };
        Ok(Sink { out, on_drain: None, on_error: None, on_close: None, name })
    }

    /// Writes what waits if the descriptor said it can take it, then
    /// finishes what the stream has to: an end, a close, a drain to tell.
    /// `false` once the stream has left the reactor.
    pub(crate) fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> bool {
        let core = &self.out.core;
        let writable = readiness.is_writable() || readiness.is_error() || readiness.is_hangup();
        if writable && core.inner.borrow().writes_now() {
            core.write_out();
        }
        if !self.out.settle(ctx) {
            return false;
        }
        if self.out.buffered() == 0 && std::mem::take(&mut core.inner.borrow_mut().refused) {
            self.release_producers(ctx);
            if let Some(on_drain) = &mut self.on_drain {
                on_drain(&self.out, ctx);
            }
        }
        true
    }

    fn release_producers(&mut self, ctx: &mut Context) {
        let held = std::mem::take(&mut self.out.core.inner.borrow_mut().held);
        release(ctx, held, self.name);
    }

    /// The stream has left: its timers go, the producers it held resume,
    /// a failure is reported, then the close.
    pub(crate) fn on_remove(&mut self, ctx: &mut Context) {
        let (failure, timers) = {
            let mut inner = self.out.core.inner.borrow_mut();
            let failure = match std::mem::replace(&mut inner.life, Life::Closed) {
                Life::Failed(e) => Some(e),
                _ => None,
            };
            (failure, [inner.flush.take(), inner.stall.take()])
        };
        for timer in timers.into_iter().flatten() {
            ctx.cancel(timer);
        }
        self.release_producers(ctx);
        match (failure, &mut self.on_error) {
            (Some(e), Some(on_error)) => on_error(&e, &self.out, ctx),
            // A connection's peer going away is its ordinary end; a writer's
            // reader gone is worth a warning.
            (Some(e), None) if self.out.core.connection && peer_gone(&e) => log::debug!("{}: {e}", self.name),
            (Some(e), None) if peer_gone(&e) => log::warn!("{}: {e}", self.name),
            // Any other failure (a refused connect, say) is never silent: the
            // reactor's error hook, a log line, or stderr.
            (Some(e), None) => match ctx.current() {
                Some(me) => ctx.report(me, self.name, &e),
                None => log::warn!("{}: {e}", self.name),
            },
            (None, _) => {}
        }
        if let Some(on_close) = &mut self.on_close {
            on_close(&self.out, ctx);
        }
    }
}

impl Drop for Sink {
    /// The descriptor closes with the handler: the handles must not use it.
    /// Handles may outlive it (in a `Fanout` until its next send): what was
    /// buffered is freed now, not with the last handle.
    fn drop(&mut self) {
        let mut inner = self.out.core.inner.borrow_mut();
        inner.life = Life::Closed;
        if inner.len() > 0 {
            log::debug!("{}: {} unwritten bytes dropped", self.name, inner.len());
        }
        (inner.data, inner.start) = (Vec::new(), 0);
    }
}

/// Ends the holds of a sink that drained or left, on the producers still
/// registered; each resumes when no other hold (nor the user's pause) stands.
pub(crate) fn release(ctx: &mut Context, held: Vec<Token>, sink: &str) {
    for producer in held {
        if let Err(e) = ctx.release(producer) {
            log::warn!("{sink}: releasing a held producer: {e}");
        }
    }
}

fn peer_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("token", &self.token())
            .field("buffered", &self.buffered())
            .field("limit", &self.limit())
            .field("state", &self.state())
            .finish()
    }
}
