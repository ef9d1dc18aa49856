//! A stream socket (TCP, Unix, a socketpair, any stream descriptor) as one
//! source: lines in, a bounded buffer out that is written once per round.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::sources::lines::{read_shared, split_lines_while, CHUNK};
use crate::sys::{ignore_sigpipe, is_socket, send_or_write, set_nonblocking};
use crate::{Context, Handler, Interest, Readiness, TimerKey, Token};

/// How many reads of 64 KiB one readiness report may take, as a `LineReader`.
const READS_PER_READY: usize = 4;

/// How many writes one flush may take: a socket that takes less than
/// everything in one write is full for now.
const WRITES_PER_FLUSH: usize = 4;

type OnLine = Box<dyn FnMut(&[u8], &ConnectionHandle, &mut Context)>;
type OnEvent = Box<dyn FnMut(&ConnectionHandle, &mut Context)>;
type OnError = Box<dyn FnMut(&io::Error, &ConnectionHandle, &mut Context)>;

/// A connected stream as one source: each line that arrives goes to a
/// closure with a [`ConnectionHandle`] to this connection and the
/// [`Context`]; what is written through a handle is buffered, bounded, and
/// written once per round.
///
/// - **Lines in.** As a [`LineReader`](crate::sources::LineReader): up to
///   four reads of 64 KiB per readiness into the buffer all readers share, a
///   line longer than `max_line` in pieces. A last line without `\n` is
///   delivered at end of input. A connection closed before its input ended
///   (by [`close`](ConnectionHandle::close), an error, or the reactor's
///   shutdown) does not deliver an unfinished line as a line: it goes to
///   [`on_unfinished`](Connection::on_unfinished), or is dropped.
/// - **Bytes out, coalesced.** [`write`](ConnectionHandle::write) and
///   [`write_line`](ConnectionHandle::write_line) only append to the
///   connection's buffer; the buffer is written at the end of the round (a
///   `Context::after` timer due at once, no descriptor), so that a burst of
///   lines written in one round leaves in one `send`. What the socket does
///   not take waits for `WRITABLE`, which is watched only while bytes wait.
/// - **Bounded.** A write that would take the buffer past `limit` bytes
///   (256 KiB unless [`limit`](Connection::limit) says otherwise) first
///   writes the buffer out, as a `BufWriter` does; if the socket does not
///   take enough, it is refused whole with `WouldBlock` (a write into an
///   empty buffer is always taken). After a refusal,
///   [`on_drain`](Connection::on_drain) runs once the buffer has emptied.
/// - **Reading can pause.** [`pause_reading`](ConnectionHandle::pause_reading)
///   holds: no line is delivered (the rest of a read in progress is kept,
///   bounded by one read) and nothing is read, whatever the peer does, while
///   writing goes on; [`resume_reading`](ConnectionHandle::resume_reading)
///   delivers what was kept, then reads again. (`uv_read_stop` and
///   `uv_read_start`.)
/// - **End.** At end of input the connection stops reading and closes once
///   its buffer is written (an echo's last reply goes out).
///   [`close`](ConnectionHandle::close) closes at once, dropping what is
///   buffered; [`close_when_drained`](ConnectionHandle::close_when_drained)
///   after the buffer is written. [`on_close`](Connection::on_close) runs
///   once, whatever the reason.
/// - **Errors.** A peer that goes away (`EPIPE`, `ECONNRESET`) closes the
///   connection and goes to [`on_error`](Connection::on_error) if given. Any
///   other error does too; without `on_error` it is returned to the reactor,
///   which reports it. Never a `SIGPIPE` death (`MSG_NOSIGNAL`).
///
/// Every callback is made by the connection's own handler, so
/// [`Context::current`] is its token in each. [`Context::pause`] works on a
/// connection as on any source, but it stops writing too (the socket leaves
/// epoll); `pause_reading` is the one that keeps writing.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use std::os::unix::net::UnixStream;
/// use reactor::{sources::Connection, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let (ours, mut theirs) = UnixStream::pair()?;
/// let mut reactor = Reactor::new()?;
/// Connection::new(ours, |line, conn, ctx| {
///     let _ = conn.write_line(ctx, &line.to_ascii_uppercase()); // an echo that shouts
/// })?
/// .on_close(|_, ctx| ctx.stop())
/// .register(&mut reactor)?;
/// theirs.write_all(b"hello\nworld")?;
/// theirs.shutdown(std::net::Shutdown::Write)?; // end of input: the last line has no \n
/// reactor.run()?;
/// let replies: Vec<String> = BufReader::new(theirs).lines().collect::<Result<_, _>>()?;
/// assert_eq!(replies, ["HELLO", "WORLD"]);
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    fd: OwnedFd,
    conn: ConnectionHandle,
    max_line: usize,
    partial: Vec<u8>,
    /// Bytes read while reading was paused by a line: delivered first on
    /// resume. Empty (no allocation) unless a pause came in mid-read.
    held: Vec<u8>,
    on_line: OnLine,
    on_unfinished: Option<OnLine>,
    on_close: Option<OnEvent>,
    on_drain: Option<OnEvent>,
    on_error: Option<OnError>,
}

/// What callbacks write and close through: a cheap clone (`Rc`) of a
/// [`Connection`]'s shared side, valid after the connection is gone (writes
/// then fail with `BrokenPipe`).
#[derive(Clone)]
pub struct ConnectionHandle {
    state: Rc<State>,
}

struct State {
    fd: RawFd,
    socket: bool,
    limit: Cell<usize>,
    token: Cell<Option<Token>>,
    /// The descriptor is open: the handler exists and was not shut down.
    open: Cell<bool>,
    life: RefCell<Life>,
    /// The peer's input ended: nothing more to read.
    ended: Cell<bool>,
    reading: Cell<bool>,
    /// The handler keeps lines read before a pause.
    holds_input: Cell<bool>,
    out: RefCell<Outbox>,
    /// A write was refused since the buffer last emptied.
    refused: Cell<bool>,
    /// The round's flush, while one is due.
    flush: Cell<Option<TimerKey>>,
    flush_due: Cell<bool>,
    /// Producers paused until this buffer drains (or the connection goes).
    waiters: RefCell<Vec<ConnectionHandle>>,
    /// As a producer: how many buffers this connection waits on. It is
    /// resumed when the last of them drains, not the first: resumed by one
    /// while another is still full, it would add a line to that one each
    /// time, and the full buffer would grow past its bound.
    waiting_on: Cell<usize>,
    stall: Cell<Option<TimerKey>>,
    written: Cell<u64>,
    dropped: Cell<u64>,
}

/// Where the connection is in its life. Only an open one takes writes.
#[derive(Debug)]
enum Life {
    /// Reads (unless paused or ended) and takes writes.
    Open,
    /// Takes no more writes; closes once the buffer is written (asked by
    /// `close_when_drained`, or the input ended).
    Closing,
    /// A write failed outside the handler (in the round's flush, or a write
    /// that flushed first): the handler reports it, then the connection
    /// closes.
    Failed(io::Error),
    /// Closed at once (`close`, an error) or removed: no more lines, no more
    /// writes.
    Closed,
}

impl State {
    fn is_open(&self) -> bool {
        matches!(*self.life.borrow(), Life::Open)
    }

    fn is_closing(&self) -> bool {
        matches!(*self.life.borrow(), Life::Closing)
    }

    fn has_failed(&self) -> bool {
        matches!(*self.life.borrow(), Life::Failed(_))
    }

    fn is_closed(&self) -> bool {
        matches!(*self.life.borrow(), Life::Closed)
    }

    fn set_life(&self, life: Life) {
        *self.life.borrow_mut() = life;
    }

    /// No more writes: an open connection starts closing. A failure is still
    /// reported, and a closed connection stays closed.
    fn stop_writes(&self) {
        if self.is_open() {
            self.set_life(Life::Closing);
        }
    }

    /// Keeps a write failure for the handler to report (a closed connection
    /// has nobody left to report it).
    fn keep_failure(&self, e: io::Error) {
        if !self.is_closed() {
            self.set_life(Life::Failed(e));
        }
    }

    /// The failure waiting to be reported, if any; the connection is then
    /// closed.
    fn take_failure(&self) -> Option<io::Error> {
        let mut life = self.life.borrow_mut();
        match std::mem::replace(&mut *life, Life::Closed) {
            Life::Failed(e) => Some(e),
            other => {
                *life = other;
                None
            }
        }
    }
}

/// The bytes queued for the socket: `data[start..]`.
#[derive(Default)]
struct Outbox {
    data: Vec<u8>,
    start: usize,
}

impl Outbox {
    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn push(&mut self, parts: &[&[u8]]) {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        if self.start > 0 && self.data.len() + size > self.data.capacity() {
            // Reuse the room already written out before asking for more.
            self.data.drain(..self.start);
            self.start = 0;
        }
        for part in parts {
            self.data.extend_from_slice(part);
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }
}

impl Connection {
    /// A connection on `fd` (made non-blocking) that passes each line, or
    /// piece of at most 64 KiB, to `on_line` with a handle to itself.
    pub fn new(
        fd: impl Into<OwnedFd>,
        on_line: impl FnMut(&[u8], &ConnectionHandle, &mut Context) + 'static,
    ) -> io::Result<Connection> {
        let fd: OwnedFd = fd.into();
        set_nonblocking(fd.as_fd())?;
        let socket = is_socket(fd.as_fd())?;
        if !socket {
            ignore_sigpipe();
        }
        let state = State {
            fd: fd.as_raw_fd(),
            socket,
            limit: Cell::new(256 * 1024),
            token: Cell::new(None),
            open: Cell::new(true),
            life: RefCell::new(Life::Open),
            ended: Cell::new(false),
            reading: Cell::new(true),
            holds_input: Cell::new(false),
            out: RefCell::new(Outbox::default()),
            refused: Cell::new(false),
            flush: Cell::new(None),
            flush_due: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            waiting_on: Cell::new(0),
            stall: Cell::new(None),
            written: Cell::new(0),
            dropped: Cell::new(0),
        };
        Ok(Connection {
            fd,
            conn: ConnectionHandle { state: Rc::new(state) },
            max_line: CHUNK,
            partial: Vec::new(),
            held: Vec::new(),
            on_line: Box::new(on_line),
            on_unfinished: None,
            on_close: None,
            on_drain: None,
            on_error: None,
        })
    }

    /// The most bytes the buffer holds before refusing writes (256 KiB by
    /// default).
    pub fn limit(self, limit: usize) -> Connection {
        self.conn.state.limit.set(limit.max(1));
        self
    }

    /// The longest line delivered whole (64 KiB by default); longer ones
    /// come in pieces.
    pub fn max_line(mut self, max_line: usize) -> Connection {
        self.max_line = max_line.max(1);
        self
    }

    /// Called with the part of a line held when the connection goes before
    /// its input ended (closed, failed, shut down), just before `on_close`.
    /// Without it, that part is dropped.
    pub fn on_unfinished(
        mut self,
        f: impl FnMut(&[u8], &ConnectionHandle, &mut Context) + 'static,
    ) -> Connection {
        self.on_unfinished = Some(Box::new(f));
        self
    }

    /// Called once when the connection leaves the reactor, whatever the
    /// reason (end of input, `close`, an error, shutdown).
    pub fn on_close(mut self, f: impl FnMut(&ConnectionHandle, &mut Context) + 'static) -> Connection {
        self.on_close = Some(Box::new(f));
        self
    }

    /// Called when the buffer has emptied after a write was refused.
    pub fn on_drain(mut self, f: impl FnMut(&ConnectionHandle, &mut Context) + 'static) -> Connection {
        self.on_drain = Some(Box::new(f));
        self
    }

    /// Called with the error that closes the connection (a peer gone
    /// included), before `on_close`.
    pub fn on_error(
        mut self,
        f: impl FnMut(&io::Error, &ConnectionHandle, &mut Context) + 'static,
    ) -> Connection {
        self.on_error = Some(Box::new(f));
        self
    }

    /// A handle to write through; writes are flushed once it is registered.
    pub fn handle(&self) -> ConnectionHandle {
        self.conn.clone()
    }

    /// Registers the connection and returns its handle.
    pub fn register(self, ctx: &mut Context) -> io::Result<ConnectionHandle> {
        let conn = self.handle();
        let token = ctx.register(self)?;
        conn.state.token.set(Some(token));
        conn.update_interest(ctx)?;
        Ok(conn)
    }

    /// The handle of the connection registered as `token`, to write to it
    /// from anywhere. `None` for a stale token, another kind of source, or
    /// the connection being called (its own callbacks get its handle).
    pub fn handle_of(ctx: &mut Context, token: Token) -> Option<ConnectionHandle> {
        ctx.handler_mut::<Connection>(token).map(|c| c.handle())
    }

    /// Writes what waits, and reports what the round's flush met. `false`
    /// once the connection is closing: nothing more to do.
    fn output(&mut self, ctx: &mut Context) -> io::Result<bool> {
        let state = &self.conn.state;
        let result = match state.take_failure() {
            Some(e) => Err(e),
            None => state.write_out(),
        };
        match result {
            Err(e) => self.fail(e, ctx).map(|()| false),
            Ok(false) => Ok(true),
            Ok(true) if !state.is_open() => {
                ctx.remove_self();
                Ok(false)
            }
            Ok(true) => {
                if state.refused.replace(false) {
                    self.conn.wake_waiters(ctx);
                    if let Some(on_drain) = &mut self.on_drain {
                        on_drain(&self.conn, ctx);
                    }
                }
                Ok(true)
            }
        }
    }

    /// Delivers kept lines, then reads a bounded number of times.
    fn input(&mut self, ctx: &mut Context) -> io::Result<()> {
        let Connection { conn, max_line, partial, held, on_line, .. } = self;
        if !held.is_empty() {
            let used = deliver(held, partial, *max_line, on_line, conn, ctx);
            held.drain(..used);
            conn.state.holds_input.set(!held.is_empty());
            if !held.is_empty() {
                return Ok(());
            }
        }
        for _ in 0..READS_PER_READY {
            if !conn.listening() {
                return Ok(());
            }
            let read = read_shared(self.fd.as_raw_fd(), |data| {
                let used = deliver(data, partial, *max_line, on_line, conn, ctx);
                held.extend_from_slice(&data[used..]);
                data.len()
            });
            conn.state.holds_input.set(!held.is_empty());
            match read {
                Ok(0) => return self.end(ctx),
                Ok(n) if n < CHUNK => return Ok(()), // drained for now
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    return Ok(())
                }
                Err(e) => return self.fail(e, ctx),
            }
        }
        Ok(())
    }

    /// End of input: the last unfinished line, then close once written.
    fn end(&mut self, ctx: &mut Context) -> io::Result<()> {
        let state = &self.conn.state;
        state.ended.set(true);
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            (self.on_line)(&last, &self.conn, ctx);
        }
        state.stop_writes();
        if state.out.borrow().len() == 0 && !state.has_failed() {
            ctx.remove_self();
        }
        Ok(())
    }

    /// Closes after an error: reported to `on_error`, or returned to the
    /// reactor if nobody listens and it is not a peer going away.
    fn fail(&mut self, e: io::Error, ctx: &mut Context) -> io::Result<()> {
        self.conn.state.set_life(Life::Closed);
        ctx.remove_self();
        match &mut self.on_error {
            Some(on_error) => on_error(&e, &self.conn, ctx),
            None if is_peer_gone(&e) => log::debug!("connection: {e}"),
            None => return Err(e),
        }
        Ok(())
    }
}

/// Passes the lines of `data` to `on_line` until the connection stops
/// listening; returns how many bytes were used.
fn deliver(
    data: &[u8],
    partial: &mut Vec<u8>,
    max_line: usize,
    on_line: &mut OnLine,
    conn: &ConnectionHandle,
    ctx: &mut Context,
) -> usize {
    split_lines_while(data, partial, max_line, |line| {
        on_line(line, conn, ctx);
        conn.listening()
    })
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

impl ConnectionHandle {
    /// Queues all of `bytes` or none, to be written at the end of the round:
    /// `WouldBlock` if they would take the buffer past its limit (nothing is
    /// queued; see [`Connection::on_drain`]), `BrokenPipe` once the
    /// connection is closed or closing.
    pub fn write(&self, ctx: &mut Context, bytes: &[u8]) -> io::Result<()> {
        self.queue(ctx, &[bytes], false)
    }

    /// Queues `line` and a `\n`, both or neither, as [`write`](Self::write).
    pub fn write_line(&self, ctx: &mut Context, line: &[u8]) -> io::Result<()> {
        self.queue(ctx, &[line, b"\n"], false)
    }

    /// Queues `line` and a `\n` even past the limit; if that leaves the
    /// buffer over its limit, pauses the reading of `producer` (the
    /// connection the line came from) until this buffer has drained or this
    /// connection is gone. What this buffer holds is then at most its limit
    /// plus one line per producer. `BrokenPipe` once closed or closing.
    pub fn write_line_or_pause(
        &self,
        ctx: &mut Context,
        line: &[u8],
        producer: &ConnectionHandle,
    ) -> io::Result<()> {
        self.queue(ctx, &[line, b"\n"], true)?;
        if self.buffered() > self.limit() {
            self.state.refused.set(true);
            producer.pause_reading(ctx)?;
            let mut waiters = self.state.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.same(producer)) {
                waiters.push(producer.clone());
                producer.state.waiting_on.set(producer.state.waiting_on.get() + 1);
            }
        }
        Ok(())
    }

    fn queue(&self, ctx: &mut Context, parts: &[&[u8]], force: bool) -> io::Result<()> {
        let state = &*self.state;
        if !self.is_open() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the connection is closed or closing"));
        }
        let size: usize = parts.iter().map(|p| p.len()).sum();
        if self.would_refuse(size) {
            // Full before the round ends: write out now, as a `BufWriter`
            // does, and refuse only what the socket does not take either.
            if let Err(e) = state.write_out() {
                state.keep_failure(e);
                self.update_interest(ctx)?;
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the connection failed"));
            }
            if !force && self.would_refuse(size) {
                state.refused.set(true);
                self.update_interest(ctx)?;
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "the connection's buffer is full"));
            }
        }
        state.out.borrow_mut().push(parts);
        self.arm_flush(ctx);
        Ok(())
    }

    /// Makes the round's flush due: a timer due at once, which goes when it
    /// has run. (A timer kept between rounds would save its allocation but
    /// keep `Reactor::run` from returning when nothing else is left.)
    fn arm_flush(&self, ctx: &mut Context) {
        let state = &self.state;
        if state.flush_due.replace(true) {
            return;
        }
        let weak: Weak<State> = Rc::downgrade(state);
        let key = ctx.after(Duration::ZERO, move |ctx| {
            if let Some(state) = weak.upgrade() {
                ConnectionHandle { state }.round_flush(ctx);
            }
        });
        state.flush.set(Some(key));
    }

    /// The end of the round: write what the round queued. What the socket
    /// does not take, a failure, or a close to finish waits for the handler.
    fn round_flush(&self, ctx: &mut Context) {
        let state = &self.state;
        state.flush_due.set(false);
        if !state.open.get() || state.has_failed() {
            return;
        }
        if let Err(e) = state.write_out() {
            state.keep_failure(e);
        }
        if let Err(e) = self.update_interest(ctx) {
            log::debug!("connection: {e}");
        }
    }

    /// Watches the socket for what the connection needs now. Reading
    /// paused and nothing to write: out of epoll ([`Interest::NONE`]), so
    /// that not even a hang-up is reported, and the pause holds.
    fn update_interest(&self, ctx: &mut Context) -> io::Result<()> {
        let state = &self.state;
        let Some(token) = state.token.get().filter(|_| state.open.get()) else { return Ok(()) };
        let waiting = state.out.borrow().len();
        let read = self.listening() && !state.ended.get();
        let write = (waiting > 0 && !state.flush_due.get())
            || state.has_failed()
            || (waiting == 0 && (state.refused.get() || state.is_closing()))
            || (read && state.holds_input.get());
        let interest = match (read, write) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (false, false) => Interest::NONE,
        };
        if ctx.interest(token).is_some_and(|now| now != interest) {
            ctx.set_interest(token, interest)?;
        }
        Ok(())
    }

    /// Stops delivering lines and reading until
    /// [`resume_reading`](Self::resume_reading); writing goes on.
    pub fn pause_reading(&self, ctx: &mut Context) -> io::Result<()> {
        if self.state.reading.replace(false) {
            self.update_interest(ctx)?;
        }
        Ok(())
    }

    /// Delivers the lines kept by a pause (next round), then reads again.
    pub fn resume_reading(&self, ctx: &mut Context) -> io::Result<()> {
        if !self.state.reading.replace(true) {
            self.update_interest(ctx)?;
        }
        Ok(())
    }

    /// Whether lines are delivered (not paused, not ended, not closed).
    pub fn is_reading(&self) -> bool {
        self.listening() && !self.state.ended.get()
    }

    fn listening(&self) -> bool {
        self.state.reading.get() && !self.state.is_closed() && self.state.open.get()
    }

    /// Closes at once, dropping what is buffered: to evict a peer that does
    /// not keep up. `on_close` runs; later writes fail with `BrokenPipe`.
    pub fn close(&self, ctx: &mut Context) {
        self.state.set_life(Life::Closed);
        if let Some(token) = self.state.token.get() {
            ctx.remove(token);
        }
    }

    /// Closes once everything buffered is written: at once if nothing is.
    /// Reading stops; later writes fail with `BrokenPipe`.
    pub fn close_when_drained(&self, ctx: &mut Context) {
        self.state.stop_writes();
        self.state.reading.set(false);
        if let Err(e) = self.update_interest(ctx) {
            log::debug!("connection: {e}");
        }
    }

    /// Whether writes are still taken (open, not closing).
    pub fn is_open(&self) -> bool {
        let state = &self.state;
        state.open.get() && state.is_open()
    }

    /// Bytes buffered and not yet written.
    pub fn buffered(&self) -> usize {
        self.state.out.borrow().len()
    }

    /// The buffer's limit.
    pub fn limit(&self) -> usize {
        self.state.limit.get()
    }

    /// Whether a write of `bytes` more would be refused now.
    pub fn would_refuse(&self, bytes: usize) -> bool {
        let waiting = self.buffered();
        waiting > 0 && waiting + bytes > self.limit()
    }

    /// The connection's token, once registered.
    pub fn token(&self) -> Option<Token> {
        self.state.token.get()
    }

    /// Bytes written to the socket so far: progress, for stall checks.
    pub fn written(&self) -> u64 {
        self.state.written.get()
    }

    /// Lines that a [`Fanout`](crate::sources::Fanout) dropped for this
    /// connection because its buffer was full.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.get()
    }

    pub(crate) fn count_dropped(&self) {
        self.state.dropped.set(self.state.dropped.get() + 1);
    }

    /// Whether both handles name the same connection.
    pub fn same(&self, other: &ConnectionHandle) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
    }

    /// Whether producers are paused until this connection drains.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.state.waiters.borrow().is_empty()
    }

    /// Resumes the producers paused by [`write_line_or_pause`](Self::write_line_or_pause)
    /// that wait on no other buffer.
    fn wake_waiters(&self, ctx: &mut Context) {
        let waiters = std::mem::take(&mut *self.state.waiters.borrow_mut());
        for waiter in waiters {
            let waiting_on = waiter.state.waiting_on.get().saturating_sub(1);
            waiter.state.waiting_on.set(waiting_on);
            if waiting_on > 0 {
                continue;
            }
            if let Err(e) = waiter.resume_reading(ctx) {
                log::debug!("connection: resuming a producer: {e}");
            }
        }
    }

    /// Closes this connection if producers wait on it and it has written
    /// nothing for `stall`; checked every `stall` while they wait.
    pub(crate) fn watch_stall(&self, ctx: &mut Context, stall: Duration) {
        if self.state.stall.get().is_some_and(|key| ctx.is_armed(key)) {
            return;
        }
        let weak = Rc::downgrade(&self.state);
        let mut seen = self.written();
        let key = ctx.after(stall, move |ctx| {
            let Some(state) = weak.upgrade() else { return };
            let conn = ConnectionHandle { state };
            if !conn.has_waiters() || !conn.is_open() {
                return; // drained or gone: the timer goes
            }
            if conn.written() == seen {
                log::debug!("connection {:?}: no progress for {stall:?}: closed", conn.token());
                conn.close(ctx);
            } else if let Some(key) = conn.state.stall.get() {
                seen = conn.written();
                ctx.rearm(key, stall);
            }
        });
        self.state.stall.set(Some(key));
    }
}

impl State {
    /// Writes what is queued, a bounded number of times. `Ok(true)` when
    /// nothing is left.
    fn write_out(&self) -> io::Result<bool> {
        let mut out = self.out.borrow_mut();
        for _ in 0..WRITES_PER_FLUSH {
            if out.len() == 0 {
                break;
            }
            match send_or_write(self.fd, self.socket, &out.data[out.start..]) {
                Ok(n) => {
                    out.consume(n);
                    self.written.set(self.written.get() + n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out.len() == 0)
    }
}

impl Handler for Connection {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        "connection"
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        let state = &self.conn.state;
        let output_due = readiness.is_writable() || readiness.is_error() || readiness.is_hangup();
        let has_output = state.out.borrow().len() > 0 || state.has_failed() || state.refused.get();
        if (output_due && has_output || state.is_closing()) && !self.output(ctx)? {
            return Ok(());
        }
        if self.conn.listening() && !self.conn.state.ended.get() {
            self.input(ctx)?;
        }
        self.conn.update_interest(ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        let state = &self.conn.state;
        state.set_life(Life::Closed);
        for key in [state.flush.take(), state.stall.take()].into_iter().flatten() {
            ctx.cancel(key);
        }
        self.conn.wake_waiters(ctx);
        if let Some(on_unfinished) = self.on_unfinished.as_mut().filter(|_| !self.partial.is_empty()) {
            on_unfinished(&self.partial, &self.conn, ctx);
        }
        if let Some(on_close) = &mut self.on_close {
            on_close(&self.conn, ctx);
        }
    }

    fn on_shutdown(&mut self) {
        // The descriptor closes when we drop: the handle must not use it.
        // Handles may outlive us (in a `Fanout` until its next send): what
        // was buffered is freed now, not with the last handle.
        let state = &self.conn.state;
        state.open.set(false);
        state.waiters.borrow_mut().clear();
        *state.out.borrow_mut() = Outbox::default();
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.conn.state.open.set(false);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd)
            .field("handle", &self.conn)
            .field("partial", &self.partial.len())
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("token", &self.token())
            .field("buffered", &self.buffered())
            .field("limit", &self.limit())
            .field("reading", &self.is_reading())
            .field("open", &self.is_open())
            .finish()
    }
}
