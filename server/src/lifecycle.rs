//! Where the server is in its life: whether it is stopping, and whether the
//! run has failed. One place, shared by the handlers, the hooks and `main`.
//!
//! Stopping is the reactor's own stop flag, seen through a
//! [`reactor::StopFlag`]: handlers stop the loop with `ctx.stop()` (or
//! [`Lifecycle::fail`]), and the reactor raises the flag then, and when its
//! shutdown begins however the run ended (a stop, or an `epoll_wait`
//! failure), and keeps it raised through the shutdown and after it. The
//! handle is for the code that holds no `Context` when it asks: the
//! output's wait on a full stdout, in a round, in the queue's drain at
//! shutdown (`ServerQueue::on_shutdown`), and in the last write after the
//! loop (`Output::finish`). A stopping server waits for a full stdout only
//! briefly.

use std::cell::Cell;
use std::rc::Rc;

use reactor::{Context, StopFlag};

/// The loop's control state: the reactor's stop flag, and whether the run
/// has failed (exit status 1).
#[derive(Debug)]
pub struct Lifecycle {
    stop: StopFlag,
    failed: Cell<bool>,
}

/// The lifecycle, as the handlers hold it.
pub type SharedLifecycle = Rc<Lifecycle>;

impl Lifecycle {
    /// A server that has not failed, and is stopping when the reactor
    /// behind `stop` (its [`Context::stop_flag`](reactor::Context::stop_flag))
    /// says so.
    pub fn new(stop: StopFlag) -> SharedLifecycle {
        Rc::new(Lifecycle { stop, failed: Cell::new(false) })
    }

    /// Records a failure (exit status 1) and stops the loop.
    pub fn fail(&self, ctx: &mut Context) {
        self.mark_failed();
        ctx.stop();
    }

    /// Records a failure found outside the loop (during shutdown).
    pub fn mark_failed(&self) {
        self.failed.set(true);
    }

    /// Whether a stop is under way, or done: the reactor's stop flag.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_raised()
    }

    /// Whether something failed: the exit status is 1.
    pub fn has_failed(&self) -> bool {
        self.failed.get()
    }
}
