//! The contract between the reactor and the code it calls.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

use crate::event::{Interest, Readiness};
use crate::reactor::Context;

/// A source of events: owns one file descriptor and reacts when it is ready.
///
/// The reactor holds handlers as `Box<dyn Handler>`. The contract:
///
/// - [`fd`](Handler::fd) returns the same descriptor for the handler's whole
///   life, and the handler keeps it open until it is dropped. The reactor
///   removes the descriptor from epoll before it drops the handler, so a
///   handler never has to deregister itself before closing.
/// - [`on_ready`](Handler::on_ready) is called when epoll reports the
///   descriptor. Do a bounded amount of work and return: with the default
///   level-triggered interest, whatever is left is reported again next round,
///   and the other handlers get their turn in between.
/// - Returning an error from a callback gets the error reported with the
///   handler's [`name`](Handler::name) (to [`Reactor::on_error`](crate::Reactor::on_error)'s
///   hook, or logged, or on stderr without a logger), the handler shut down
///   and removed; the loop and the other handlers go on.
/// - [`on_start`](Handler::on_start) runs once, when the loop first runs, or
///   at registration if it already does.
/// - [`on_remove`](Handler::on_remove) runs when the handler leaves the
///   reactor, with a [`Context`], so that a source can tell its user (a line
///   reader's close callback, a child's exit) and the user can act on it;
///   then [`on_shutdown`](Handler::on_shutdown) runs, exactly once, when the
///   handler is removed, when the loop stops, or when the reactor is
///   dropped; it is the place to flush, to unlink names, to say goodbye.
///   Only `on_shutdown` runs when a panic unwinds out of the handler's own
///   callback: the reactor cannot lend a `Context` then.
pub trait Handler {
    /// The descriptor to watch.
    fn fd(&self) -> BorrowedFd<'_>;

    /// What to watch it for, read once at registration. Change it later with
    /// [`Context::set_interest`].
    fn interest(&self) -> Interest {
        Interest::READABLE
    }

    /// A short name for log lines, such as `"stdin"` or `"tcp 127.0.0.1:7777"`.
    fn name(&self) -> &str;

    /// Called with what epoll reported.
    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()>;

    /// Called once when the handler starts to run.
    fn on_start(&mut self, ctx: &mut Context) -> io::Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called when the handler leaves the reactor (removed by itself or
    /// another, after an error, at shutdown), just before
    /// [`on_shutdown`](Handler::on_shutdown), with a `Context` whose
    /// [`current`](Context::current) is this handler's token, although the
    /// handler is already out of the reactor (`contains` is `false`, and
    /// `remove_self` does nothing). Not called when a panic unwinds out of
    /// the handler's own callback.
    fn on_remove(&mut self, ctx: &mut Context) {
        let _ = ctx;
    }

    /// Called exactly once when the handler leaves the reactor.
    fn on_shutdown(&mut self) {}

    /// The handler as `Any`, for [`Context::handler_mut`]; `None` (the
    /// default) keeps it opaque. Implement it as `Some(self)` to let the
    /// handler be reached by its concrete type while registered.
    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        None
    }
}

/// A registration that epoll refused, with the handler handed back so that
/// nothing it owns is lost.
///
/// Its message names the handler and the error; for a descriptor epoll
/// cannot watch at all (`EPERM`: a regular file, `/dev/null`, as stdin is
/// under `< file`), it also says what to do: read it with
/// [`LineReader::for_any_fd`](crate::sources::LineReader::for_any_fd) or
/// [`LineReader::stdin`](crate::sources::LineReader::stdin). `?` turns it
/// into an `io::Error` of the same kind with that message.
pub struct RegisterError<H> {
    /// Why it was refused.
    pub error: io::Error,
    /// The handler, untouched: its descriptor is still open.
    pub handler: H,
}

impl<H> RegisterError<H> {
    /// Whether epoll refused the descriptor because it cannot be polled at
    /// all (`EPERM`): a regular file, a directory, `/dev/null`. Such a
    /// descriptor never blocks: a [`LineReader`](crate::sources::LineReader)
    /// made [`for_any_fd`](crate::sources::LineReader::for_any_fd) reads it.
    pub fn is_unpollable(&self) -> bool {
        self.error.raw_os_error() == Some(libc::EPERM)
    }

    /// The message, for the handler named `name`.
    fn message(&self, name: &str) -> String {
        if self.is_unpollable() {
            format!(
                "{name}: epoll cannot watch this descriptor ({}): it is a regular file, a directory \
                 or a device such as /dev/null (stdin under `< file` or `< /dev/null`); to read its \
                 lines, use LineReader::new(..).for_any_fd(), which takes any descriptor \
                 (LineReader::stdin for standard input)",
                self.error
            )
        } else {
            format!("{name}: cannot register: {}", self.error)
        }
    }
}

impl<H> fmt::Debug for RegisterError<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterError").field("error", &self.error).finish_non_exhaustive()
    }
}

/// The handler's name, then why epoll refused it and, for a descriptor it
/// cannot watch, what to do.
impl<H: Handler> fmt::Display for RegisterError<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(self.handler.name()))
    }
}

impl fmt::Display for RegisterError<Box<dyn Handler>> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(self.handler.name()))
    }
}

impl<H> Error for RegisterError<H>
where
    RegisterError<H>: fmt::Display,
{
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

/// The error, of the same kind, with the message of `Display`: what `?`
/// turns a refused registration into.
impl<H> From<RegisterError<H>> for io::Error
where
    RegisterError<H>: fmt::Display,
{
    fn from(e: RegisterError<H>) -> io::Error {
        io::Error::new(e.error.kind(), e.to_string())
    }
}
