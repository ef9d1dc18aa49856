//! A buffered outgoing stream on any descriptor: an [`Output`] and nothing
//! to read.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::outbox::{Output, Sink};
use crate::{Context, Handler, Interest, Readiness};

/// Queues bytes for a pipe, a socket or stdout, and writes them when the
/// descriptor takes them: the [`Output`] of a descriptor that is only
/// written. Its bound, back-pressure, closing and errors are the
/// [`Output`]'s; a write into an empty buffer goes straight to the
/// descriptor.
///
/// With nothing to write it watches for hang-ups only: a reader that goes
/// away (`EPIPE`, a reset, a socket whose peer closed) goes to
/// [`on_error`](Writer::on_error) at once, and the writer leaves. To end a
/// socket's writing on purpose, [`Output::shutdown_write`]: the writer then
/// leaves as soon as its `shutdown(SHUT_WR)` is done, and the peer's own
/// shutdown later is nobody's error. (A socket shut down by hand through
/// another descriptor, then by its peer, reads as a reader gone.)
///
/// The descriptor is made non-blocking. For stdout (`io::stdout().as_fd()
/// .try_clone_to_owned()`) that changes the open file the program shares
/// with its shell and whoever else holds it, a `dup` included: a program
/// that hands its terminal back, or whose stdout others write, makes it
/// blocking again (`fcntl`) once the writer is gone. A descriptor epoll
/// refuses (stdout redirected to a regular file) cannot be registered:
/// write to it directly, it never blocks.
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
    sink: Sink,
}

impl Writer {
    /// A writer of `fd` (made non-blocking) that holds `limit` bytes (see
    /// [`Output`] for the rule).
    pub fn new(fd: impl Into<OwnedFd>, limit: usize) -> io::Result<Writer> {
        let fd: OwnedFd = fd.into();
        let sink = Sink::new(fd.as_fd(), limit, false)?;
        Ok(Writer { fd, sink })
    }

    /// Called once with the error that ends the stream (`EPIPE`, a reset),
    /// as the writer leaves. Without it, the error is logged.
    pub fn on_error(mut self, f: impl FnMut(&io::Error, &Output, &mut Context) + 'static) -> Writer {
        self.sink.on_error = Some(Box::new(f));
        self
    }

    /// Called when the buffer has emptied after a write was refused or a
    /// producer held (held producers resume first): the moment to write again.
    pub fn on_drain(mut self, f: impl FnMut(&Output, &mut Context) + 'static) -> Writer {
        self.sink.on_drain = Some(Box::new(f));
        self
    }

    /// The output to write through. It works once the writer is registered.
    pub fn output(&self) -> Output {
        self.sink.out.clone()
    }

    /// Registers the writer and returns its output.
    pub fn register(self, ctx: &mut Context) -> io::Result<Output> {
        let out = self.output();
        let token = ctx.register(self)?;
        out.registered(ctx, token)?;
        Ok(out)
    }
}

impl Handler for Writer {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn interest(&self) -> Interest {
        self.sink.out.interest()
    }

    fn name(&self) -> &str {
        "writer"
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        if !self.sink.on_ready(readiness, ctx) {
            return Ok(());
        }
        if readiness.is_error() || readiness.is_hangup() {
            // Nothing to write, and the reader is gone: reported whatever the
            // interest, so it must end here or it would come every round.
            self.sink.out.fail(ctx, io::Error::from_raw_os_error(libc::EPIPE));
            return Ok(());
        }
        self.sink.out.watch(ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        self.sink.on_remove(ctx);
    }
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("fd", &self.fd).field("out", &self.sink.out).finish()
    }
}
