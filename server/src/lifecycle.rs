//! Where the server is in its life: running, stopping, and whether the run
//! has failed. One place, shared by the handlers, the hooks and `main`.

use std::cell::Cell;
use std::rc::Rc;

use reactor::Context;

/// The loop's control state. Handlers stop the loop through it (not through
/// the `Context` alone) so that every part can ask whether a stop is under
/// way: a stopping server waits for a full stdout only briefly.
///
/// `stopping` twins the reactor's own flag (`Context::is_stopping`) because
/// only code holding a `Context` can read that one, and the two readers here
/// hold none: the output's wait on a full stdout, and the queue's drain in
/// `on_shutdown`. It also stays set through the shutdown, which the reactor's
/// does not when `run` ends on an `epoll_wait` failure.
#[derive(Debug, Default)]
pub struct Lifecycle {
    stopping: Cell<bool>,
    failed: Cell<bool>,
}

/// The lifecycle, as the handlers hold it.
pub type SharedLifecycle = Rc<Lifecycle>;

impl Lifecycle {
    /// A server that runs and has not failed.
    pub fn new() -> SharedLifecycle {
        Rc::new(Lifecycle::default())
    }

    /// Asks the loop to stop after this round: a clean shutdown.
    pub fn stop(&self, ctx: &mut Context<'_>) {
        self.stopping.set(true);
        ctx.stop();
    }

    /// Records a failure (exit status 1) and stops the loop.
    pub fn fail(&self, ctx: &mut Context<'_>) {
        self.mark_failed();
        self.stop(ctx);
    }

    /// Records a failure found outside the loop (during shutdown).
    pub fn mark_failed(&self) {
        self.failed.set(true);
    }

    /// Marks the stop begun, where no `Context` is at hand (the reactor's
    /// own shutdown).
    pub fn mark_stopping(&self) {
        self.stopping.set(true);
    }

    /// Whether a stop is under way.
    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Whether something failed: the exit status is 1.
    pub fn has_failed(&self) -> bool {
        self.failed.get()
    }
}
