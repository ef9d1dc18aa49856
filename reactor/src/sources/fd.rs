//! Any descriptor with a closure: the handler a user does not have to write.

use std::any::Any;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use crate::{Context, Handler, Interest, Readiness, Token};

type OnReady<T> = Box<dyn FnMut(&mut T, Readiness, &mut Context) -> io::Result<()>>;

/// Owns any `T: AsFd` (an `OwnedFd`, a `File`, a socket, a message queue)
/// and calls a closure with it when epoll reports it.
///
/// The closure gets the object, what was reported and the `Context`; an
/// error it returns is logged and removes the source, as for any handler.
/// The usual rules hold: do a bounded amount of work, treat `WouldBlock` as
/// "not now", remove yourself at end of file (epoll reports a hang-up until
/// you do). The object should be non-blocking if the closure reads more than
/// once per call.
///
/// While registered, the object is reached with [`Fd::get`] (another
/// callback) or inside its own closure; [`Fd::take`] removes the source and
/// hands the object back. The interest epoll watches it for now is
/// [`Context::interest`]; change it with [`Context::set_interest`].
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use reactor::{sources::Fd, Interest, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let (mut theirs, ours) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?;
/// theirs.write_all(b"ping")?;
/// let mut reactor = Reactor::new()?;
/// let token = reactor.register(Fd::new(ours, Interest::READABLE, |stream, _ready, ctx| {
///     let mut buf = [0; 4];
///     stream.read_exact(&mut buf)?;
///     stream.write_all(b"pong")?;
///     // Done: stop watching it, but keep it registered.
///     let me = ctx.current().expect("inside its own callback");
///     ctx.set_interest(me, Interest::NONE)?;
///     ctx.stop();
///     Ok(())
/// }))?;
/// reactor.run_once(None)?;
/// assert_eq!(reactor.interest(token), Some(Interest::NONE));
/// // Borrowed while registered, taken back after.
/// assert!(Fd::<UnixStream>::get(&mut reactor, token).is_some());
/// let stream: UnixStream = Fd::take(&mut reactor, token).expect("registered");
/// assert!(!reactor.contains(token));
/// let mut reply = [0; 4];
/// theirs.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"pong");
/// # drop(stream);
/// # Ok(())
/// # }
/// ```
pub struct Fd<T> {
    /// `Some` until [`Fd::take`] takes it, after the source left epoll.
    inner: Option<T>,
    interest: Interest,
    name: String,
    callback: OnReady<T>,
}

impl<T: AsFd + 'static> Fd<T> {
    /// A source that watches `inner` for `interest` and calls `callback`.
    pub fn new(
        inner: T,
        interest: Interest,
        callback: impl FnMut(&mut T, Readiness, &mut Context) -> io::Result<()> + 'static,
    ) -> Fd<T> {
        Fd { inner: Some(inner), interest, name: String::from("fd"), callback: Box::new(callback) }
    }

    /// Names the source in log lines.
    pub fn named(mut self, name: impl Into<String>) -> Fd<T> {
        self.name = name.into();
        self
    }

    /// The object, before registration.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("an Fd holds its object until Fd::take")
    }

    /// The object back, before registration.
    pub fn into_inner(mut self) -> T {
        self.inner.take().expect("an Fd holds its object until Fd::take")
    }

    /// Borrows the object of the `Fd<T>` registered as `token`, from another
    /// callback (inside its own closure, it is the closure's argument).
    /// `None` for a stale token, a source of another type, or a source that
    /// is running.
    pub fn get(ctx: &mut Context, token: Token) -> Option<&mut T> {
        ctx.handler_mut::<Fd<T>>(token)?.inner.as_mut()
    }

    /// Removes the `Fd<T>` registered as `token` (out of epoll first) and
    /// hands its object back, open. `None` (and nothing removed) for a stale
    /// token, a source of another type, or the source being called: from
    /// its own closure, remove it with [`Context::remove_self`] instead.
    pub fn take(ctx: &mut Context, token: Token) -> Option<T> {
        ctx.remove_with::<Fd<T>, _>(token, |fd| fd.inner.take()).flatten()
    }
}

impl<T: AsFd + 'static> Handler for Fd<T> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.inner.as_ref().expect("the reactor asks for the descriptor only while the Fd holds it").as_fd()
    }

    fn interest(&self) -> Interest {
        self.interest
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        match &mut self.inner {
            Some(inner) => (self.callback)(inner, readiness, ctx),
            None => Ok(()),
        }
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

impl<T> fmt::Debug for Fd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fd")
            .field("name", &self.name)
            .field("interest", &self.interest)
            .field("taken", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}
