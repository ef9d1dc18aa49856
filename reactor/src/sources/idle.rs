//! A handler called every round, whatever its descriptor says.

use std::any::Any;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;
use crate::{Context, Handler, Readiness};

/// Runs the handler it wraps once every round, as if its descriptor were
/// always readable (libuv's idle handles do the same): for descriptors
/// that epoll refuses with `EPERM` (a regular file, `/dev/null`,
/// `/dev/zero`), which never block but may never end either. The inner
/// handler does a bounded amount of work per call, so the other sources
/// keep their turns, and it removes itself (`ctx.remove_self()`) when done.
///
/// Underneath is an eventfd holding a count that is never read: always
/// readable, it costs no system call per round beyond the loop's own wait.
///
/// ```
/// use std::cell::RefCell;
/// use std::fs::File;
/// use std::rc::Rc;
/// use reactor::sources::{Idle, LineReader};
/// use reactor::Reactor;
///
/// # fn main() -> std::io::Result<()> {
/// let lines = Rc::new(RefCell::new(Vec::new()));
/// let seen = lines.clone();
/// let file = File::open("/proc/self/status")?; // epoll refuses regular files
/// let reader = LineReader::new(file.into(), 4096, move |line, _ctx| seen.borrow_mut().push(line.to_vec()))
///     .one_read_per_readiness();
/// let mut reactor = Reactor::new()?;
/// match reactor.register(reader) {
///     Err(e) if e.is_unpollable() => drop(reactor.register(Idle::new(e.handler)?)?),
///     other => drop(other?),
/// }
/// while !reactor.is_empty() {
///     reactor.run_once(None)?;
/// }
/// assert!(lines.borrow().iter().any(|line| line.starts_with(b"Name:")));
/// # Ok(())
/// # }
/// ```
pub struct Idle<H> {
    inner: H,
    always_ready: OwnedFd,
}

impl<H: Handler> Idle<H> {
    /// Wraps `inner`, to be called every round.
    pub fn new(inner: H) -> io::Result<Idle<H>> {
        let always_ready = sys::eventfd(1)?;
        Ok(Idle { inner, always_ready })
    }

    /// The wrapped handler.
    pub fn get_mut(&mut self) -> &mut H {
        &mut self.inner
    }
}

impl<H: Handler + 'static> Handler for Idle<H> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.always_ready.as_fd()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        self.inner.on_ready(readiness, ctx)
    }

    fn on_start(&mut self, ctx: &mut Context) -> io::Result<()> {
        self.inner.on_start(ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        self.inner.on_remove(ctx);
    }

    fn on_shutdown(&mut self) {
        self.inner.on_shutdown();
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

impl<H: Handler> fmt::Debug for Idle<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idle").field("inner", &self.inner.name()).finish_non_exhaustive()
    }
}
