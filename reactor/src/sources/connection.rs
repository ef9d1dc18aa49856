//! A stream socket (TCP, Unix, a socketpair, any stream descriptor) as one
//! source, accepted or connected without blocking: lines in, an [`Output`]
//! out, each direction ended on its own.

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::listener::{inet_sockaddr, socket, unix_sockaddr};
use super::outbox::{OnOutput, Output, Sink};
use crate::sources::lines::{read_shared, split_lines_while, CHUNK};
use crate::sys::syscall;
use crate::{Context, Handler, Interest, Readiness, TimerKey};

/// How many reads of 64 KiB one readiness report may take, as a `LineReader`.
const READS_PER_READY: usize = 4;

/// How often a Unix connect refused for a full backlog (`EAGAIN`) is tried
/// again.
const RETRY: Duration = Duration::from_millis(10);

type OnLine = Box<dyn FnMut(&[u8], &Output, &mut Context)>;

/// A connected stream as one source: each line that arrives goes to a
/// closure with the connection's [`Output`] and the [`Context`]; what is
/// written through the output is bounded, coalesced, and written once per
/// round (the rules are the [`Output`]'s).
///
/// - **Lines in.** As a [`LineReader`](crate::sources::LineReader): up to
///   four reads of 64 KiB per readiness into the buffer all readers share, a
///   line longer than `max_line` in pieces. A last line without `\n` is
///   delivered at end of input. A connection closed before its input ended
///   (by [`Output::close`], an error, or the reactor's shutdown) does not
///   deliver an unfinished line as a line: it goes to
///   [`on_unfinished`](Connection::on_unfinished), or is dropped.
/// - **Pausing holds input only.** [`Context::pause`] on its token (or a
///   full sink that holds it as a producer) stops the lines at once: the
///   rest of a read in progress is kept, and delivered when the pause ends;
///   writing goes on. (`uv_read_stop` and `uv_read_start`.)
/// - **Both directions end on their own.** The peer's end of input goes to
///   [`on_end`](Connection::on_end), and writing goes on until the program
///   closes, or ends its own writing with [`Output::shutdown_write`] (the
///   connection goes on reading). A connection whose directions have both
///   ended closes. Without `on_end`, end of input closes the connection
///   once its buffer is written (an echo's last reply goes out).
///   [`on_close`](Connection::on_close) runs once, whatever the reason.
/// - **Errors.** A read or write error, a failed connect, a peer gone
///   (`EPIPE`, `ECONNRESET`) closes the connection and goes to
///   [`on_error`](Connection::on_error), then `on_close`; without
///   `on_error`, it goes where a handler's error goes
///   ([`Reactor::on_error`](crate::Reactor::on_error): the hook, a log
///   line, or stderr), except a peer gone (`EPIPE`, `ECONNRESET`), logged
///   at debug level.
/// - **Outgoing.** [`tcp`](Connection::tcp) and [`unix`](Connection::unix)
///   connect without blocking the loop (see there).
///
/// Every callback is made by the connection's own handler, so
/// [`Context::current`] is its token in each, and `Output::token` too.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use std::os::unix::net::UnixStream;
/// use reactor::{sources::Connection, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let (ours, mut theirs) = UnixStream::pair()?;
/// let mut reactor = Reactor::new()?;
/// Connection::new(ours)?
///     .on_line(|line, out, ctx| drop(out.write_line(ctx, &line.to_ascii_uppercase()))) // an echo that shouts
///     .on_close(|_, ctx| ctx.stop())
///     .register(&mut reactor)?;
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
    sink: Sink,
    max_line: usize,
    partial: Vec<u8>,
    /// Bytes read before the input was paused: delivered first when it
    /// resumes. Empty (no allocation) unless a pause came in mid-read.
    held: Vec<u8>,
    on_line: OnLine,
    on_unfinished: Option<OnLine>,
    on_end: Option<OnOutput>,
    on_connect: Option<OnOutput>,
    dial: Option<Dial>,
}

/// An outgoing connection on its way.
struct Dial {
    to: String,
    timeout: Duration,
    /// Set for a Unix connect refused with `EAGAIN`: tried again every
    /// [`RETRY`].
    retry: Option<Rc<dyn Fn(RawFd) -> io::Result<()>>>,
    timers: Vec<TimerKey>,
}

impl Connection {
    /// A connection on `fd` (made non-blocking); its lines go to
    /// [`on_line`](Connection::on_line).
    pub fn new(fd: impl Into<OwnedFd>) -> io::Result<Connection> {
        let fd: OwnedFd = fd.into();
        let sink = Sink::new(fd.as_fd(), 256 * 1024, true)?;
        Ok(Connection {
            fd,
            sink,
            max_line: CHUNK,
            partial: Vec::new(),
            held: Vec::new(),
            on_line: Box::new(|_, _, _| {}),
            on_unfinished: None,
            on_end: None,
            on_connect: None,
            dial: None,
        })
    }

    /// A TCP connection to `addr`, made without blocking the loop: the
    /// `connect` goes on while the loop runs
    /// ([`StreamState::Connecting`](crate::sources::StreamState::Connecting):
    /// writes are kept, and sent once it is up),
    /// then [`on_connect`](Connection::on_connect) runs, or `on_error` with
    /// what failed (`ECONNREFUSED`, or `TimedOut` after the
    /// [`timeout`](Connection::timeout)), the address in its message.
    /// Fails at once only if no socket can be made.
    pub fn tcp(addr: SocketAddr) -> io::Result<Connection> {
        let fd = socket(if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 })?;
        let (storage, len) = inet_sockaddr(&addr);
        // SAFETY: `storage` holds a socket address of `len` bytes.
        let connect =
            move |fd| syscall!(connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len));
        Connection::dial(fd, addr.to_string(), Rc::new(move |fd| connect(fd).map(drop)))
    }

    /// A Unix-domain connection to the socket at `path`, made as
    /// [`tcp`](Connection::tcp) makes one. A listener whose backlog is full
    /// refuses a non-blocking connect with `EAGAIN` at once: the connect is
    /// tried again every 10 ms until the timeout. A path that is no socket,
    /// or nobody's, fails (`ENOENT`, `ECONNREFUSED`) through `on_error`.
    pub fn unix(path: impl AsRef<Path>) -> io::Result<Connection> {
        let path = path.as_ref();
        let (addr, len) = unix_sockaddr(path)?;
        let fd = socket(libc::AF_UNIX)?;
        // SAFETY: `addr` holds a socket address of `len` bytes.
        let connect = move |fd| syscall!(connect(fd, (&addr as *const libc::sockaddr_un).cast(), len));
        Connection::dial(fd, path.display().to_string(), Rc::new(move |fd| connect(fd).map(drop)))
    }

    fn dial(fd: OwnedFd, to: String, connect: Rc<dyn Fn(RawFd) -> io::Result<()>>) -> io::Result<Connection> {
        let mut conn = Connection::new(fd)?;
        let mut dial = Dial { to, timeout: Duration::from_secs(10), retry: None, timers: Vec::new() };
        conn.sink.out.inner().connecting = true; // also a Unix connect done at once: on_connect is called
        match connect(conn.fd.as_raw_fd()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.sink.out.inner().parked = true;
                dial.retry = Some(connect);
            }
            Err(e) => conn.sink.out.inner().keep_failure(dial.named(e)),
        }
        conn.dial = Some(dial);
        Ok(conn)
    }

    /// Called with each line that arrives, or piece of at most `max_line`
    /// bytes, and the connection's output (to answer). Without it, lines
    /// are dropped.
    pub fn on_line(mut self, f: impl FnMut(&[u8], &Output, &mut Context) + 'static) -> Connection {
        self.on_line = Box::new(f);
        self
    }

    /// How long an outgoing connect may take (10 s unless said otherwise);
    /// then it fails with `TimedOut`. Nothing for an accepted connection.
    pub fn timeout(mut self, timeout: Duration) -> Connection {
        if let Some(dial) = &mut self.dial {
            dial.timeout = timeout;
        }
        self
    }

    /// Called once an outgoing connection is up, before the writes kept
    /// meanwhile are sent.
    pub fn on_connect(mut self, f: impl FnMut(&Output, &mut Context) + 'static) -> Connection {
        self.on_connect = Some(Box::new(f));
        self
    }

    /// Called at the peer's end of input (it shut down its writing, or
    /// closed), after the last line. The connection stays open for writing
    /// until the program closes it or calls [`Output::shutdown_write`].
    /// Without it, the connection closes once its buffer is written.
    pub fn on_end(mut self, f: impl FnMut(&Output, &mut Context) + 'static) -> Connection {
        self.on_end = Some(Box::new(f));
        self
    }

    /// The most bytes the buffer holds (256 KiB by default; the rule is
    /// [`Output`]'s).
    pub fn limit(self, limit: usize) -> Connection {
        self.sink.out.set_limit(limit);
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
    pub fn on_unfinished(mut self, f: impl FnMut(&[u8], &Output, &mut Context) + 'static) -> Connection {
        self.on_unfinished = Some(Box::new(f));
        self
    }

    /// Called once when the connection leaves the reactor, whatever the
    /// reason (both directions ended, a close, an error, shutdown).
    pub fn on_close(mut self, f: impl FnMut(&Output, &mut Context) + 'static) -> Connection {
        self.sink.on_close = Some(Box::new(f));
        self
    }

    /// Called when the buffer has emptied after a write was refused or a
    /// producer held (held producers resume first).
    pub fn on_drain(mut self, f: impl FnMut(&Output, &mut Context) + 'static) -> Connection {
        self.sink.on_drain = Some(Box::new(f));
        self
    }

    /// Called with the error that closes the connection (a failed connect,
    /// a peer gone), before `on_close`.
    pub fn on_error(mut self, f: impl FnMut(&io::Error, &Output, &mut Context) + 'static) -> Connection {
        self.sink.on_error = Some(Box::new(f));
        self
    }

    /// The output to write through; writes are sent once it is registered.
    pub fn output(&self) -> Output {
        self.sink.out.clone()
    }

    /// Registers the connection and returns its output.
    pub fn register(self, ctx: &mut Context) -> io::Result<Output> {
        let out = self.output();
        let token = ctx.register(self)?;
        out.registered(ctx, token)?;
        Ok(out)
    }

    /// The output of the connection registered as `token`, to write to it
    /// from anywhere. `None` for a stale token, another kind of source, or
    /// the connection being called (its own callbacks get its output).
    pub fn output_of(ctx: &mut Context, token: crate::Token) -> Option<Output> {
        ctx.handler_mut::<Connection>(token).map(|c| c.output())
    }

    /// The outgoing connect has an answer: up, or failed.
    fn connected(&mut self, ctx: &mut Context) -> io::Result<()> {
        let mut error: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `error` is writable for `len` bytes.
        syscall!(getsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len
        ))?;
        let Some(dial) = self.dial.as_mut() else { return Ok(()) };
        for timer in dial.timers.drain(..) {
            ctx.cancel(timer);
        }
        if error != 0 {
            let e = dial.named(io::Error::from_raw_os_error(error));
            self.sink.out.fail(ctx, e);
            return Ok(());
        }
        self.sink.out.inner().connecting = false;
        if let Some(on_connect) = &mut self.on_connect {
            on_connect(&self.sink.out, ctx);
        }
        self.sink.out.kick(ctx);
        Ok(())
    }

    /// Delivers kept lines, then reads a bounded number of times.
    fn input(&mut self, ctx: &mut Context) -> io::Result<()> {
        let Connection { sink, max_line, partial, held, on_line, .. } = self;
        let out = &sink.out;
        // The lines of `data` until the connection stops listening: how
        // many bytes were used.
        let mut deliver = |data: &[u8], ctx: &mut Context| {
            split_lines_while(data, partial, *max_line, |line| {
                on_line(line, out, ctx);
                listening(out, ctx)
            })
        };
        if !held.is_empty() {
            let used = deliver(held, ctx);
            held.drain(..used);
            out.inner().holds_input = !held.is_empty();
            if !held.is_empty() {
                return Ok(());
            }
        }
        for _ in 0..READS_PER_READY {
            if !listening(out, ctx) {
                return Ok(());
            }
            let read = read_shared(self.fd.as_raw_fd(), |data| {
                let used = deliver(data, ctx);
                held.extend_from_slice(&data[used..]);
                data.len()
            });
            out.inner().holds_input = !held.is_empty();
            match read {
                Ok(0) => return self.end(ctx),
                Ok(n) if n < CHUNK => return Ok(()), // drained for now
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    return Ok(())
                }
                Err(e) => {
                    self.sink.out.fail(ctx, e);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// End of input: the last unfinished line, then `on_end`, or the close
    /// once written.
    fn end(&mut self, ctx: &mut Context) -> io::Result<()> {
        let out = self.sink.out.clone();
        out.inner().input_ended = true;
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            (self.on_line)(&last, &out, ctx);
        }
        match &mut self.on_end {
            Some(on_end) => on_end(&out, ctx),
            None => out.close_when_drained(ctx),
        }
        out.settle(ctx); // our writing ended already: both have
        Ok(())
    }
}

impl Dial {
    /// `e`, with the address it happened to.
    fn named(&self, e: io::Error) -> io::Error {
        let hint = match e.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => "; is the server running?",
            _ => "",
        };
        io::Error::new(e.kind(), format!("connect to {}: {e}{hint}", self.to))
    }

    /// The timeout, and the retries of a Unix connect refused for a full
    /// backlog.
    fn start(&mut self, ctx: &mut Context, out: &Output, fd: RawFd) {
        let (timed_out, timeout) = (out.clone(), self.timeout);
        let e = self.named(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {timeout:?}")));
        let mut e = Some(e);
        self.timers.push(ctx.after(timeout, move |ctx| {
            if let Some(e) = e.take().filter(|_| timed_out.is_connecting()) {
                timed_out.fail(ctx, e);
            }
        }));
        let Some(connect) = self.retry.clone() else { return };
        let (retried, to) = (out.clone(), self.to.clone());
        self.timers.push(ctx.every(RETRY, move |ctx| match connect(fd) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(()) => retried.kick(ctx), // the handler finds it connected
            Err(e) => retried.fail(ctx, io::Error::new(e.kind(), format!("connect to {to}: {e}"))),
        }));
    }
}

/// Whether lines are to be delivered: not paused or held, and reading.
fn listening(out: &Output, ctx: &Context) -> bool {
    out.is_reading() && !ctx.current().is_some_and(|me| ctx.is_paused(me))
}

impl Handler for Connection {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn interest(&self) -> Interest {
        self.sink.out.interest()
    }

    fn name(&self) -> &str {
        "connection"
    }

    fn on_start(&mut self, ctx: &mut Context) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // A connect that failed at once leaves now, and its error is told.
        if let Some(dial) = self.dial.as_mut().filter(|_| self.sink.out.settle(ctx)) {
            dial.start(ctx, &self.sink.out, fd);
        }
        Ok(())
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        if self.sink.out.is_connecting() {
            return self.connected(ctx);
        }
        if !self.sink.on_ready(readiness, ctx) {
            return Ok(());
        }
        if listening(&self.sink.out, ctx) {
            self.input(ctx)?;
        } else if readiness.is_hangup() && !self.sink.out.is_reading() && self.sink.out.buffered() == 0 {
            ctx.remove_self(); // both directions are gone, nothing waits
            return Ok(());
        }
        self.sink.out.watch(ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        for timer in self.dial.iter_mut().flat_map(|dial| dial.timers.drain(..)) {
            ctx.cancel(timer);
        }
        if let Some(on_unfinished) = self.on_unfinished.as_mut().filter(|_| !self.partial.is_empty()) {
            on_unfinished(&self.partial, &self.sink.out, ctx);
        }
        self.sink.on_remove(ctx);
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd)
            .field("out", &self.sink.out)
            .finish_non_exhaustive()
    }
}
