//! A supervised child: started again when it ends, after a back-off that
//! grows, until a limit of restarts within a window.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Child, ChildHandle};
use crate::callback::Callback;
use crate::{Context, TimerKey};

/// When a [`Supervisor`] starts its child again after it ended (systemd's
/// `Restart=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Restart {
    /// After an exit with a code other than 0, or a death by a signal (the
    /// default).
    #[default]
    OnFailure,
    /// After every end.
    Always,
    /// Never: one run, reported as the others are.
    Never,
}

/// Runs a child again and again: each run is a [`Child`] made by a closure
/// given the run's number (1 for the first), so that its `Command` is built
/// afresh; when it ends, the [`Restart`] policy says whether another run
/// starts, after a back-off.
///
/// - Each start goes to [`on_start`](Supervisor::on_start) with the run's
///   number and [`ChildHandle`] (its pid, its stdin, a way to signal it);
///   each end to [`on_exit`](Supervisor::on_exit) with its number and
///   status, once, whoever ended it (the `Child`'s own `on_exit`, if the
///   closure set one, runs first).
/// - The back-off before restart `n` within the window is
///   `first * factor^(n-1)`, at most `ceiling` (default 100 ms, 2, 5 s).
/// - At most `limit` restarts within `window` (default 5 within 10 s, as
///   systemd's `StartLimitBurst`): the end that would need one more is the
///   last.
/// - After the last run's `on_exit`, [`on_done`](Supervisor::on_done) is
///   called once with its number and status, whatever made it the last:
///   the policy, the limit, [`SupervisorHandle::stop`] or the reactor's
///   stop. The place to `ctx.exit(Child::shell_code(status))`.
/// - A run that cannot be spawned counts as one that exited with 127 (what
///   a shell says of a command it cannot run), and the error is logged. The
///   first run's error is returned by [`register`](Supervisor::register).
/// - A [`watchdog`](Supervisor::watchdog) ends a run that falls silent
///   on its stdout and starts another; so does
///   [`SupervisorHandle::restart`], a watchdog of the program's own.
/// - No run starts once the reactor is stopping: the current one is ended
///   as its [`AtShutdown`](super::AtShutdown) says, and reported;
///   [`SupervisorHandle::stop`] does the same while the loop runs on. Give
///   each run [`Child::die_with_parent`] for it to end even when the
///   reactor's process is killed.
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// use reactor::{sources::{Child, Supervisor}, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// Supervisor::new(|run| Child::spawn(Command::new("sh").args(["-c", &format!("exit {run}")])))
///     .backoff(Duration::from_millis(1), 2.0, Duration::from_millis(10))
///     .limit(2, Duration::from_secs(60))
///     .on_done(|(run, status), ctx| ctx.exit(100 * run as i32 + Child::shell_code(status)))
///     .register(&mut reactor)?;
/// reactor.run()?;
/// assert_eq!(reactor.exit_code(), Some(303)); // runs 1 and 2 restarted, run 3 not
/// # Ok(())
/// # }
/// ```
pub struct Supervisor {
    spawn: Box<dyn FnMut(u32) -> io::Result<Child>>,
    restart: Restart,
    backoff: (Duration, f64, Duration),
    limit: (usize, Duration),
    watchdog: Option<Duration>,
    on_start: Option<Callback<(u32, ChildHandle)>>,
    on_exit: Option<Callback<(u32, ExitStatus)>>,
    on_done: Option<Callback<(u32, ExitStatus)>>,
}

impl Supervisor {
    /// A supervisor whose run `n` is `spawn(n)`: typically
    /// `Child::spawn(&mut command)` and the `Child`'s own settings (its
    /// outputs' callbacks, its [`at_shutdown`](Child::at_shutdown), its
    /// [`die_with_parent`](Child::die_with_parent)). The closure must not
    /// use the [`SupervisorHandle`].
    pub fn new(spawn: impl FnMut(u32) -> io::Result<Child> + 'static) -> Supervisor {
        Supervisor {
            spawn: Box::new(spawn),
            restart: Restart::default(),
            backoff: (Duration::from_millis(100), 2.0, Duration::from_secs(5)),
            limit: (5, Duration::from_secs(10)),
            watchdog: None,
            on_start: None,
            on_exit: None,
            on_done: None,
        }
    }

    /// When a run is followed by another (default: on failure).
    pub fn restart(mut self, restart: Restart) -> Supervisor {
        self.restart = restart;
        self
    }

    /// The wait before a restart: `first`, then `factor` (taken as at
    /// least 1) times the wait before, at most `ceiling`; counted over the
    /// restarts within the window of [`limit`](Supervisor::limit), so that
    /// a child that has run well for a window starts again after `first`.
    pub fn backoff(mut self, first: Duration, factor: f64, ceiling: Duration) -> Supervisor {
        self.backoff = (first, factor.max(1.0), ceiling);
        self
    }

    /// At most `restarts` restarts within any `window`.
    pub fn limit(mut self, restarts: usize, window: Duration) -> Supervisor {
        self.limit = (restarts, window);
        self
    }

    /// Asks each run for a heartbeat: a line on its stdout (piped) at least
    /// every `timeout`, the first within `timeout` of its start. A run that
    /// falls silent (hung, or stopped by `SIGSTOP`) is ended as its
    /// [`AtShutdown`](super::AtShutdown) says (whose `SIGCONT` wakes a
    /// stopped one for its `SIGTERM`) and restarted whatever its status, as
    /// [`SupervisorHandle::restart`] does; a warning is logged.
    pub fn watchdog(mut self, timeout: Duration) -> Supervisor {
        self.watchdog = Some(timeout);
        self
    }

    /// Called with each run's number and handle, once it is registered.
    pub fn on_start(
        mut self,
        on_start: impl FnMut((u32, ChildHandle), &mut Context) + 'static,
    ) -> Supervisor {
        self.on_start = Some(Box::new(on_start));
        self
    }

    /// Called with each run's number and status, once for every end.
    pub fn on_exit(mut self, on_exit: impl FnMut((u32, ExitStatus), &mut Context) + 'static) -> Supervisor {
        self.on_exit = Some(Box::new(on_exit));
        self
    }

    /// Called once, with the last run's number and status, after its
    /// `on_exit`, when no run follows it.
    pub fn on_done(mut self, on_done: impl FnMut((u32, ExitStatus), &mut Context) + 'static) -> Supervisor {
        self.on_done = Some(Box::new(on_done));
        self
    }

    /// Starts the first run.
    pub fn register(self, ctx: &mut Context) -> io::Result<SupervisorHandle> {
        let state =
            State { supervisor: self, run: 0, current: None, restarts: Vec::new(), timer: None, next: None };
        let state = Rc::new(RefCell::new(state));
        launch(&state, ctx)?;
        Ok(SupervisorHandle(state))
    }
}

/// What [`Supervisor::register`] returns: the current run, and the means to
/// end it or the whole supervision.
#[derive(Clone)]
pub struct SupervisorHandle(Rc<RefCell<State>>);

struct State {
    supervisor: Supervisor,
    run: u32,
    current: Option<ChildHandle>,
    /// When the restarts within the window happened.
    restarts: Vec<Instant>,
    /// The watchdog's alarm during a run; the next run's timer between runs.
    timer: Option<TimerKey>,
    /// What the current run's end leads to, when the program has decided.
    next: Option<Next>,
}

impl SupervisorHandle {
    /// The current run's number (the last one's, between runs).
    pub fn run(&self) -> u32 {
        self.0.borrow().run
    }

    /// The current run's handle; `None` between runs and after the last.
    pub fn current(&self) -> Option<ChildHandle> {
        self.0.borrow().current.clone()
    }

    /// Ends the current run as its [`AtShutdown`](super::AtShutdown) says
    /// (a watchdog's verdict on a child that hangs) and starts another
    /// whatever its status, within the back-off and the limit. Does nothing
    /// between runs.
    pub fn restart(&self, ctx: &mut Context) {
        self.end(ctx, Next::Restart);
    }

    /// Ends the supervision: the current run is ended as its
    /// [`AtShutdown`](super::AtShutdown) says (and reported), a restart
    /// waiting for its back-off is cancelled, and no run follows.
    pub fn stop(&self, ctx: &mut Context) {
        if let Some(timer) = self.0.borrow_mut().timer.take() {
            ctx.cancel(timer);
        }
        self.end(ctx, Next::Stop);
    }

    fn end(&self, ctx: &mut Context, next: Next) {
        let current = self.0.borrow().current.clone();
        if let Some(child) = current {
            self.0.borrow_mut().next = Some(next);
            ctx.remove(child.token());
        }
    }
}

/// What the program asked the current run's end to lead to.
#[derive(Clone, Copy)]
enum Next {
    Restart,
    Stop,
}

/// Starts the next run; a failure to spawn is reported as its end.
fn start(state: &Rc<RefCell<State>>, ctx: &mut Context) {
    if let Err(e) = launch(state, ctx) {
        let run = state.borrow().run;
        log::error!("supervised child, run {run}: {e}");
        ended(state, run, ExitStatus::from_raw(127 << 8), ctx);
    }
}

fn launch(state: &Rc<RefCell<State>>, ctx: &mut Context) -> io::Result<()> {
    let (run, spawned, watchdog) = {
        let mut state = state.borrow_mut();
        let run = state.run + 1;
        (state.run, state.timer) = (run, None); // the timer that started this run is spent
        (run, (state.supervisor.spawn)(run), state.supervisor.watchdog)
    };
    let mut child = spawned?;
    let (mut own, exit) = (child.on_exit.take(), state.clone());
    child.on_exit = Some(Box::new(move |status, ctx| {
        if let Some(own) = &mut own {
            own(status, ctx);
        }
        ended(&exit, run, status, ctx);
    }));
    if let (Some(timeout), Some((_, _, on_line))) = (watchdog, &mut child.outputs[0]) {
        let handle = SupervisorHandle(state.clone());
        let alarm = ctx.after(timeout, move |ctx| {
            log::warn!("supervised child, run {run}: no line for {timeout:?}; restarting it");
            handle.restart(ctx);
        });
        let mut heard = std::mem::replace(on_line, Box::new(|_, _| {}));
        *on_line = Box::new(move |line, ctx| {
            ctx.rearm(alarm, timeout);
            heard(line, ctx);
        });
        state.borrow_mut().timer = Some(alarm);
    }
    let handle = child.register(ctx)?;
    state.borrow_mut().current = Some(handle.clone());
    notify(state, |s| &mut s.supervisor.on_start, (run, handle), ctx);
    Ok(())
}

/// A run has ended: reports it, then starts the next after its back-off,
/// or reports the end of it all.
fn ended(state: &Rc<RefCell<State>>, run: u32, status: ExitStatus, ctx: &mut Context) {
    notify(state, |s| &mut s.supervisor.on_exit, (run, status), ctx);
    let mut s = state.borrow_mut();
    s.current = None;
    if let Some(alarm) = s.timer.take() {
        ctx.cancel(alarm);
    }
    let again = match (s.next.take(), s.supervisor.restart) {
        (Some(next), _) => matches!(next, Next::Restart),
        (None, Restart::Always) => true,
        (None, Restart::OnFailure) => !status.success(),
        (None, Restart::Never) => false,
    };
    let ((first, factor, ceiling), (limit, window), now) =
        (s.supervisor.backoff, s.supervisor.limit, Instant::now());
    s.restarts.retain(|&at| now.duration_since(at) < window);
    if !again || ctx.is_stopping() || s.restarts.len() >= limit {
        drop(s);
        return notify(state, |s| &mut s.supervisor.on_done, (run, status), ctx);
    }
    let wait = first.as_secs_f64() * factor.powi(s.restarts.len() as i32);
    let wait = Duration::try_from_secs_f64(wait).map_or(ceiling, |wait| wait.min(ceiling));
    s.restarts.push(now);
    let next = state.clone();
    s.timer = Some(ctx.after(wait, move |ctx| start(&next, ctx)));
}

/// Calls one of the user's callbacks, out of the state, so that it may use
/// the handle.
fn notify<T>(
    state: &RefCell<State>,
    slot: fn(&mut State) -> &mut Option<Callback<T>>,
    arg: T,
    ctx: &mut Context,
) {
    let Some(mut callback) = slot(&mut state.borrow_mut()).take() else { return };
    callback(arg, ctx);
    slot(&mut state.borrow_mut()).get_or_insert(callback);
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("restart", &self.restart)
            .field("backoff", &self.backoff)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SupervisorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.borrow();
        f.debug_struct("SupervisorHandle").field("run", &state.run).field("current", &state.current).finish()
    }
}
