//! The event loop: wait for readiness, dispatch it to handlers, apply what
//! they asked for, and repeat until one of them asks to stop.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::callback::OnEvent;
use crate::event::{Interest, Readiness, Token};
use crate::handler::{Handler, RegisterError};
use crate::sys::{Epoll, Events};
use crate::timer_heap::{TimerHeap, TimerKey};

/// How many events one `epoll_wait` may return.
const BATCH: usize = 256;

/// What [`Reactor::on_error`] calls with a handler's error.
type ErrorHook = Box<dyn FnMut(&str, &io::Error, &mut Context)>;

/// A single-threaded epoll event loop that owns its handlers.
///
/// Each round of [`run`](Reactor::run) has three phases:
///
/// 1. **before wait**: the hooks added with [`before_wait`](Reactor::before_wait)
///    run (the place to flush buffered output once per round);
/// 2. **wait**: one `epoll_wait` for up to 256 events, no longer than until
///    the earliest timer of [`Context::after`] or [`Context::every`];
/// 3. **dispatch**: each event goes to its handler's
///    [`on_ready`](Handler::on_ready), unless the handler was removed earlier
///    in the same batch; then every timer that is due is called.
///    Registrations, removals, interest changes and stop requests made by
///    callbacks take effect at once.
///
/// When a handler asks to [`stop`](Context::stop), the loop finishes the
/// round, then shuts every remaining handler down, last registered first.
/// Whether that is under way, or done, is the reactor's [`StopFlag`].
pub struct Reactor {
    ctx: Context,
    hooks: Vec<OnEvent>,
    events: Events,
}

/// The loop's state, and the one door to it: register, remove, change
/// interest, pause and resume, set timers, stop.
///
/// Every callback the reactor or a source calls gets `&mut Context`.
/// Outside the loop, a [`Reactor`] is one: it dereferences to its
/// `Context`, so `reactor.register(..)` and `Writer::new(..)?.register(&mut
/// reactor)` work before [`run`](Reactor::run) as inside a callback.
pub struct Context {
    /// `None` after a shutdown closed it; made again when next needed.
    epoll: Option<Epoll>,
    slots: Slab<Slot>,
    /// Registrations so far. A slot's number in this count orders shutdown
    /// (last first), and its low 32 bits are the generation in its token.
    order: u64,
    /// How many slots are `watched`: with none and no timer, nothing can
    /// wake a wait again.
    watched: usize,
    started: bool,
    /// Where the run is in its end; shared with every [`StopFlag`].
    phase: Rc<Cell<Phase>>,
    timers: TimerHeap,
    /// `None`: [`report`] (a log line, or stderr without a logger).
    on_error: Option<ErrorHook>,
    /// The handler being called: see [`Context::current`].
    current: Option<Token>,
    /// The code given to [`Context::exit`] in this run.
    exit_code: Option<i32>,
}

struct Slot {
    order: u64,
    fd: RawFd,
    /// What the handler waits for: epoll's interest while it is watched.
    interest: Interest,
    /// Set by [`Context::pause`]: no input whatever the interest.
    paused: bool,
    /// Holds of full sinks ([`Context::hold`]): no input while any stands.
    holds: u32,
    /// Whether the descriptor is in the epoll instance now: when not paused
    /// and the interest is not `NONE`, and not after a shutdown closed the
    /// instance.
    watched: bool,
    /// `None` while the handler runs: it is out of the slab so that it can
    /// borrow the rest of the reactor through its `Context`.
    handler: Option<Box<dyn Handler>>,
}

impl Slot {
    /// Whether the handler's input is held: paused by the program, or held
    /// by a full sink ([`Context::hold`]).
    fn input_held(&self) -> bool {
        self.paused || self.holds > 0
    }
}

/// Where a reactor's run is in its end: what its [`StopFlag`]s read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No stop asked since the reactor was made, or since the first round
    /// that followed its last shutdown.
    Running,
    /// A stop asked, or the shutdown under way: the loop ends its round,
    /// runs no further one, and shuts its handlers down.
    Stopping,
    /// Shut down. The next round of the reactor starts a new run:
    /// [`Phase::Running`] again.
    Stopped,
}

/// A read-only view of a reactor's stop flag: whether its run is ending or
/// has ended. Cheap to clone (an `Rc`), for code that holds no [`Context`]
/// when it needs to know: a handler's [`on_shutdown`](Handler::on_shutdown),
/// a write that waits on its own, code that runs after the loop. Got from
/// [`Context::stop_flag`] (a [`Reactor`] is a `Context` too); every handle of one
/// reactor reads the same flag.
///
/// The flag is raised by [`Context::stop`], at once (the loop still
/// finishes its round), and when [`Reactor::shutdown`] begins, whatever led
/// there: [`run`](Reactor::run) ending after a stop, with nothing left to
/// wait for, or on an `epoll_wait` failure, or the reactor being dropped.
/// It stays raised through the shutdown and after it, also once the reactor
/// is gone. Only a new run lowers it, when its first round begins (the
/// first [`run_once`](Reactor::run_once) of the same reactor after a
/// shutdown, or the first that [`run`](Reactor::run) makes), unless a stop
/// was asked since.
///
/// [`Context::is_stopping`] reads the same flag, where a `Context` is at
/// hand.
///
/// ```
/// use std::time::Duration;
/// use reactor::{sources::Timer, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let flag = reactor.stop_flag();
/// let seen = flag.clone();
/// reactor.register(Timer::once(Duration::from_millis(1), move |_, ctx| {
///     assert!(!seen.is_raised());
///     ctx.stop(); // the round goes on, then the shutdown
///     assert!(seen.is_raised());
/// })?)?;
/// assert!(!flag.is_raised());
/// reactor.run()?;
/// assert!(flag.is_raised()); // and stays so: the run is over
/// assert!(reactor.is_stopping()); // the same flag, read through the reactor
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StopFlag(Rc<Cell<Phase>>);

impl StopFlag {
    /// A flag that no reactor holds: never raised. For code that takes a
    /// reactor's flag but runs without a reactor (a benchmark's own loop).
    pub fn never() -> StopFlag {
        StopFlag(Rc::new(Cell::new(Phase::Running)))
    }

    /// Whether the reactor's run is ending or has ended: a stop was asked,
    /// or a shutdown has begun, and no round of a new run has begun since.
    pub fn is_raised(&self) -> bool {
        self.0.get() != Phase::Running
    }
}

impl fmt::Debug for StopFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopFlag").field("raised", &self.is_raised()).finish()
    }
}

impl Reactor {
    /// Creates an empty reactor with its own epoll instance (`EPOLL_CLOEXEC`).
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            ctx: Context {
                epoll: Some(Epoll::new()?),
                slots: Slab::new(),
                order: 0,
                watched: 0,
                started: false,
                phase: Rc::new(Cell::new(Phase::Running)),
                timers: TimerHeap::default(),
                on_error: None,
                current: None,
                exit_code: None,
            },
            hooks: Vec::new(),
            events: Events::with_capacity(BATCH),
        })
    }

    /// Says what becomes of a handler's error. When a callback of a handler
    /// (its `on_ready` or `on_start`) returns `Err`, the handler is removed
    /// and `on_error` is called first, with the handler's
    /// [`name`](crate::Handler::name), the error, and a `Context` whose
    /// [`current`](Context::current) is the failing handler's token: to
    /// stop the loop, count, or write the error where the program wants it.
    ///
    /// Without it, the error is never silent: it is logged with
    /// `log::error!` when a logger is installed (`log::max_level()` is not
    /// `Off`), and otherwise written to stderr as one line,
    /// `NAME: ERROR; removing it`.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{sources::Fd, Interest, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let (ours, _theirs) = UnixStream::pair()?;
    /// let mut reactor = Reactor::new()?;
    /// let failed = std::rc::Rc::new(std::cell::RefCell::new(None));
    /// let seen = failed.clone();
    /// reactor.on_error(move |name, error, ctx| {
    ///     *seen.borrow_mut() = Some(format!("{name}: {error}"));
    ///     ctx.stop();
    /// });
    /// let fails = Fd::new(ours, Interest::WRITABLE, |_, _, _| Err(std::io::Error::other("boom")));
    /// reactor.register(fails.named("socket"))?;
    /// reactor.run()?;
    /// assert_eq!(failed.borrow().as_deref(), Some("socket: boom"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_error(&mut self, on_error: impl FnMut(&str, &io::Error, &mut Context) + 'static) {
        self.ctx.on_error = Some(Box::new(on_error));
    }

    /// Adds a hook that runs at the start of every round, before the loop
    /// waits. Hooks run in the order they were added.
    pub fn before_wait(&mut self, hook: impl FnMut(&mut Context) + 'static) {
        self.hooks.push(Box::new(hook));
    }

    /// Runs rounds until a callback or hook asks to stop, or until nothing
    /// could ever wake the loop again: no timer, and no handler, or only
    /// paused ones (or ones set to [`Interest::NONE`]); then
    /// [`shutdown`](Reactor::shutdown)s every remaining handler, last
    /// registered first, and drops the timers. However it ends, the
    /// [`StopFlag`] is raised before the first handler is shut down.
    ///
    /// Errors from handlers do not end the loop (they go to
    /// [`on_error`](Reactor::on_error), whose hook may stop it); only a
    /// failure of the reactor itself (`epoll_wait` failing with anything but
    /// `EINTR`) does. The handlers are shut down in that case too. What the
    /// program should exit with, a callback says with
    /// [`Context::exit`]; [`exit_code`](Reactor::exit_code) reads it after.
    pub fn run(&mut self) -> io::Result<()> {
        let result = loop {
            if self.ctx.stop_asked() || (self.ctx.watched == 0 && self.ctx.timers.is_empty()) {
                break Ok(());
            }
            if let Err(e) = self.run_once(None) {
                break Err(e);
            }
        };
        self.shutdown();
        result
    }

    /// Runs one round: the before-wait hooks, one wait of at most `timeout`
    /// (`None` waits for ever; the timeout is rounded up to whole
    /// milliseconds) and never past the earliest timer, the dispatch of what
    /// arrived, and the timers that are due. Returns how many events arrived
    /// (timers not counted). Does not wait if a stop was requested, nor
    /// without a timeout when no timer is left and no handler is watched
    /// (none, or all paused); if a callback asks to stop, the hooks run once
    /// more at the end of the round. The caller decides when to
    /// [`shutdown`](Reactor::shutdown).
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        if !self.ctx.started {
            self.ctx.begin_run();
        }
        self.run_hooks();
        // Nothing to wait for: a stop was asked, or no handler is watched
        // to wake a wait without end (every `on_start` may have failed).
        let timeout = self.ctx.wait_timeout(timeout);
        if self.ctx.stop_asked() || (self.ctx.watched == 0 && timeout.is_none()) {
            return Ok(0);
        }
        let n = open_epoll(&mut self.ctx.epoll)?.wait(&mut self.events, timeout)?;
        for i in 0..n {
            let (token, readiness) = self.events.get(i);
            if let Some(readiness) = self.ctx.deliverable(token, readiness) {
                self.ctx.call(token, |handler, ctx| handler.on_ready(readiness, ctx));
            }
        }
        if !self.ctx.timers.is_empty() {
            self.ctx.fire_timers();
        }
        if self.ctx.stop_asked() {
            // The last round ends with the hooks, so that what it produced
            // is flushed before the handlers shut down.
            self.run_hooks();
        }
        Ok(n)
    }

    fn run_hooks(&mut self) {
        for hook in &mut self.hooks {
            self.ctx.with_current(None, |ctx| hook(ctx));
        }
    }

    /// The code a callback gave to [`Context::exit`] in the last run (kept
    /// after it, until the next run begins); `None` if none did.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// reactor.after(Duration::from_millis(1), |ctx| ctx.exit(3));
    /// reactor.run()?;
    /// assert_eq!(reactor.exit_code(), Some(3)); // std::process::exit(3) in a program
    /// # Ok(())
    /// # }
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        self.ctx.exit_code
    }

    /// Removes every handler, last registered first, running each shutdown
    /// hook once, and drops every timer. Handlers registered by an
    /// [`on_remove`](Handler::on_remove) meanwhile are removed too. The
    /// reactor is empty afterwards and may be used again.
    ///
    /// The [`StopFlag`] is raised first, whatever led here (a stop, a loop
    /// with nothing left to wait for, an `epoll_wait` failure, a drop), and
    /// stays raised afterwards, until a new run begins.
    pub fn shutdown(&mut self) {
        let ctx = &mut self.ctx;
        ctx.phase.set(Phase::Stopping);
        if !ctx.is_empty() {
            // Closing the epoll instance forgets every registration at once:
            // one `close` instead of an `EPOLL_CTL_DEL` per handler. A new
            // instance is made only if the reactor is used again.
            ctx.epoll = None;
            ctx.slots.iter_mut().for_each(|(_, slot)| slot.watched = false);
            ctx.watched = 0;
        }
        // A close callback may register something (a last message, say):
        // that is shut down too, in a few passes at most.
        for _ in 0..8 {
            let tokens = ctx.tokens_in_order();
            if tokens.is_empty() {
                break;
            }
            for token in tokens.into_iter().rev() {
                ctx.remove(token);
            }
        }
        ctx.timers.clear();
        ctx.phase.set(Phase::Stopped);
        ctx.started = false;
    }
}

impl Deref for Reactor {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl DerefMut for Reactor {
    fn deref_mut(&mut self) -> &mut Context {
        &mut self.ctx
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor").field("ctx", &self.ctx).field("hooks", &self.hooks.len()).finish()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("current", &self.current)
            .field("handlers", &self.slots.len())
            .field("timers", &!self.timers.is_empty())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

impl Drop for Reactor {
    /// Shuts down whatever is still registered, so that handlers clean up
    /// (remove their names, flush) even when `run` never returned normally.
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Context {
    /// Registers a handler for the interest it states. If the loop already
    /// runs, its [`on_start`](Handler::on_start) runs now; if that fails, the
    /// handler is removed at once and the returned token is no longer
    /// [`contains`](Context::contains)ed.
    ///
    /// If epoll refuses the descriptor, the handler comes back in the error,
    /// still owning its descriptor; [`RegisterError::is_unpollable`] tells
    /// the case of a regular file or `/dev/null`, which is to be read directly.
    /// A handler whose interest is [`Interest::NONE`] is not given to epoll
    /// until it asks for more, so such a refusal comes then, from
    /// [`set_interest`](Context::set_interest).
    pub fn register<H: Handler + 'static>(&mut self, handler: H) -> Result<Token, RegisterError<H>> {
        match self.attach(handler.fd().as_raw_fd(), handler.interest()) {
            Ok(token) => Ok(self.install(token, Box::new(handler))),
            Err(error) => Err(RegisterError { error, handler }),
        }
    }

    /// Registers a handler that is already boxed, without boxing it again.
    pub fn register_boxed(
        &mut self,
        handler: Box<dyn Handler>,
    ) -> Result<Token, RegisterError<Box<dyn Handler>>> {
        match self.attach(handler.fd().as_raw_fd(), handler.interest()) {
            Ok(token) => Ok(self.install(token, handler)),
            Err(error) => Err(RegisterError { error, handler }),
        }
    }

    fn install(&mut self, token: Token, handler: Box<dyn Handler>) -> Token {
        if let Some(slot) = self.slot_mut(token) {
            slot.handler = Some(handler);
        }
        if self.started {
            self.call(token, |handler, ctx| handler.on_start(ctx));
        }
        token
    }

    /// Removes a handler: takes its descriptor out of epoll, runs its
    /// [`on_remove`](Handler::on_remove) and
    /// [`on_shutdown`](Handler::on_shutdown) and drops it, which closes the
    /// descriptor. Pending events for it in the current batch are dropped.
    /// The handler being called may remove itself; it is shut down as soon as
    /// its callback returns. Returns `false` if the token was not registered.
    pub fn remove(&mut self, token: Token) -> bool {
        match self.detach(token) {
            Some(slot) => {
                if let Some(handler) = slot.handler {
                    self.retire(token, handler);
                }
                true
            }
            None => false,
        }
    }

    /// Takes a handler out of the reactor without dropping it, if it is of
    /// type `H` (its [`as_any_mut`](Handler::as_any_mut) says so) and not the
    /// one being called, and passes it to `f`; then shuts it down as
    /// [`remove`](Context::remove) does. This is how [`Fd::take`](crate::sources::Fd::take)
    /// hands its object back.
    pub(crate) fn remove_with<H: Any, R>(&mut self, token: Token, f: impl FnOnce(&mut H) -> R) -> Option<R> {
        let slot = self.slot_mut(token)?;
        slot.handler.as_mut()?.as_any_mut()?.downcast_mut::<H>()?;
        let mut handler = self.detach(token)?.handler?;
        let result = handler.as_any_mut().and_then(|any| any.downcast_mut::<H>()).map(f);
        self.retire(token, handler);
        result
    }

    /// Borrows a registered handler by its concrete type, if it lets itself
    /// be seen ([`Handler::as_any_mut`]; the source
    /// [`Fd`](crate::sources::Fd) does). `None` for a stale token, another type,
    /// or the handler being called (it is out of its slot while it runs).
    pub fn handler_mut<H: Any>(&mut self, token: Token) -> Option<&mut H> {
        self.slot_mut(token)?.handler.as_mut()?.as_any_mut()?.downcast_mut::<H>()
    }

    /// Removes the handler being called; nothing happens in a hook.
    pub fn remove_self(&mut self) {
        if let Some(token) = self.current {
            self.remove(token);
        }
    }

    /// The token of the handler being called: `Some` in every callback the
    /// reactor makes for a handler (`on_start`, `on_ready`, `on_remove`, the
    /// error hook of [`Reactor::on_error`]) and in every callback a source
    /// makes from them (a line, a close, an exit); `None` in a hook, a
    /// timer of [`after`](Context::after) or [`every`](Context::every), and
    /// the [`Reactor`] itself outside the loop. In `on_remove` and the
    /// callbacks made from it, the handler has already left:
    /// [`contains`](Context::contains) is `false` for it.
    pub fn current(&self) -> Option<Token> {
        self.current
    }

    /// Changes what a handler waits for (`EPOLL_CTL_MOD`); re-arms a
    /// oneshot. [`Interest::NONE`] takes the descriptor out of epoll
    /// (`EPOLL_CTL_DEL`): the handler is not called at all, even if its peer
    /// hangs up, until an interest is set again (`EPOLL_CTL_ADD`). A paused
    /// handler keeps the new interest for its [`resume`](Context::resume).
    /// `NotFound` for a token not registered.
    pub fn set_interest(&mut self, token: Token, interest: Interest) -> io::Result<()> {
        let slot = self.slot(token).ok_or_else(|| unknown(token))?;
        self.update(token, interest, slot.paused, slot.holds)
    }

    /// What a handler waits for: the interest it was registered with, or the
    /// last one [`set_interest`](Context::set_interest) gave, paused or not.
    /// `None` for a token not registered.
    pub fn interest(&self, token: Token) -> Option<Interest> {
        self.slot(token).map(|slot| slot.interest)
    }

    /// Stops a handler's input until [`resume`](Context::resume): epoll no
    /// longer watches its descriptor for readability, and the input part
    /// of an event already fetched in this round is dropped. A handler
    /// that waits for input alone leaves epoll (`EPOLL_CTL_DEL`), so its
    /// peer may close meanwhile without it hearing of it; one that also
    /// waits for room to write (a connection with bytes to send) goes on
    /// being called for that, and for hang-ups and errors. This is how a
    /// full sink holds back the source that feeds it, whatever that source
    /// is: pause for a reason that ends (the sink drains, or fails). Its
    /// interest is kept for the resume. Timers of [`Context::after`] are
    /// not handlers and are not paused. Pausing twice is the same as once;
    /// `NotFound` for a token not registered.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{sources::LineReader, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let (mut theirs, ours) = UnixStream::pair()?;
    /// theirs.write_all(b"one\ntwo\n")?;
    /// drop(theirs); // end of file, reported at once and for ever
    /// let mut reactor = Reactor::new()?;
    /// let lines = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let seen = lines.clone();
    /// let reader = reactor.register(LineReader::new(ours.into(), 1024, move |_, _| seen.set(seen.get() + 1)))?;
    /// reactor.pause(reader)?;
    /// reactor.run_once(Some(Duration::from_millis(10)))?;
    /// assert_eq!(lines.get(), 0); // not called, not even for the hang-up
    /// reactor.resume(reader)?;
    /// reactor.run_once(None)?;
    /// assert_eq!(lines.get(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pause(&mut self, token: Token) -> io::Result<()> {
        let slot = self.slot(token).ok_or_else(|| unknown(token))?;
        self.update(token, slot.interest, true, slot.holds)
    }

    /// Gives a paused handler its input again: epoll watches its descriptor
    /// for its whole interest, and what happened meanwhile is reported,
    /// level-triggered, in the next round. Resuming a handler
    /// that is not paused does nothing; `NotFound` for a token not
    /// registered. A handler that a full sink holds (see
    /// [`Output`](crate::sources::Output)) stays paused until the last
    /// sink that holds it has drained: `resume` ends only this pause.
    pub fn resume(&mut self, token: Token) -> io::Result<()> {
        let slot = self.slot(token).ok_or_else(|| unknown(token))?;
        self.update(token, slot.interest, false, slot.holds)
    }

    /// Whether a handler's input is held: by [`pause`](Context::pause), or
    /// by a full sink that it writes to; `false` for a token not registered.
    pub fn is_paused(&self, token: Token) -> bool {
        self.slot(token).is_some_and(Slot::input_held)
    }

    /// One more hold on a handler's input, by a sink that is full: it is
    /// paused while any hold (or the user's [`pause`](Context::pause))
    /// stands. Each hold ends with one [`release`](Context::release).
    pub(crate) fn hold(&mut self, token: Token) -> io::Result<()> {
        let slot = self.slot(token).ok_or_else(|| unknown(token))?;
        self.update(token, slot.interest, slot.paused, slot.holds + 1)
    }

    /// Ends one [`hold`](Context::hold); the last one resumes the handler
    /// unless the user paused it. Nothing for a token gone meanwhile.
    pub(crate) fn release(&mut self, token: Token) -> io::Result<()> {
        let Some(slot) = self.slot(token) else { return Ok(()) };
        self.update(token, slot.interest, slot.paused, slot.holds.saturating_sub(1))
    }

    /// Whether the handler being called is still watched: not paused, not
    /// set to `NONE`, not removed. A source that reads several times per
    /// call stops when its own callback has paused it.
    pub(crate) fn current_is_watched(&self) -> bool {
        let slot = self.current.and_then(|token| self.slot(token));
        slot.is_some_and(|slot| slot.watched && !slot.input_held())
    }

    /// Calls `callback` once, `delay` from now (rounded up to the next
    /// millisecond by the wait), with a `Context`. Cheap: a heap entry, no
    /// descriptor. Re-arm it with [`rearm`](Context::rearm) (from its own
    /// callback too, which keeps it for another call), cancel it with
    /// [`cancel`](Context::cancel).
    pub fn after(&mut self, delay: Duration, callback: impl FnMut(&mut Context) + 'static) -> TimerKey {
        self.timers.add(delay, None, Box::new(callback))
    }

    /// Calls `callback` every `period`, the first time one period from now,
    /// until it is cancelled. Ticks missed while the loop was busy are
    /// skipped, not delivered in a burst. A zero period is taken as 1 ms.
    pub fn every(&mut self, period: Duration, callback: impl FnMut(&mut Context) + 'static) -> TimerKey {
        let period = period.max(Duration::from_millis(1));
        self.timers.add(period, Some(period), Box::new(callback))
    }

    /// Moves a timer's next call to `delay` from now. Returns `false` if the
    /// timer is gone (fired once, or cancelled). From the timer's own
    /// callback, a one-shot timer is kept for one more call.
    pub fn rearm(&mut self, timer: TimerKey, delay: Duration) -> bool {
        self.timers.rearm(timer, delay)
    }

    /// Cancels a timer, from any callback (its own included); its callback
    /// is dropped. Returns `false` if it was gone already.
    pub fn cancel(&mut self, timer: TimerKey) -> bool {
        self.timers.cancel(timer)
    }

    /// Whether a timer is still to be called.
    pub fn is_armed(&self, timer: TimerKey) -> bool {
        self.timers.contains(timer)
    }

    /// Asks the loop to stop once the current round is done; raises the
    /// [`StopFlag`]. Asked before the loop runs (or between a shutdown and
    /// the next run), the next `run` shuts down at once.
    pub fn stop(&mut self) {
        self.phase.set(Phase::Stopping);
    }

    /// Stops the loop as [`stop`](Context::stop) does, and records `code`
    /// as what the program should exit with: [`Reactor::exit_code`] returns
    /// it after `run`. The first `exit` of a run decides: a later one only
    /// stops, so that what a shutdown's callbacks say (a supervisor's last
    /// child, say) does not replace the reason the program gave first (a
    /// SIGTERM handler's `exit(143)`).
    pub fn exit(&mut self, code: i32) {
        self.exit_code.get_or_insert(code);
        self.stop();
    }

    /// Whether the run is ending or has ended: a stop was asked, or a
    /// shutdown has begun (after a stop, with nothing left to wait for, on
    /// an `epoll_wait` failure, or at a drop), and no new run has begun
    /// since. The same flag as [`StopFlag::is_raised`], read here.
    pub fn is_stopping(&self) -> bool {
        self.phase.get() != Phase::Running
    }

    /// A handle on the reactor's stop flag, to keep where no `Context`
    /// will be at hand (a shutdown hook, code run after the loop): see
    /// [`StopFlag`].
    pub fn stop_flag(&self) -> StopFlag {
        StopFlag(self.phase.clone())
    }

    /// How many handlers are registered.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `token` names a registered handler.
    pub fn contains(&self, token: Token) -> bool {
        self.slot(token).is_some()
    }
}

/// The reactor's epoll instance, made again if a shutdown closed it. (A
/// function of the field alone, so that a slot may be borrowed meanwhile.)
fn open_epoll(epoll: &mut Option<Epoll>) -> io::Result<&Epoll> {
    match epoll {
        Some(epoll) => Ok(epoll),
        None => Ok(epoll.insert(Epoll::new()?)),
    }
}

impl Context {
    /// Whether a stop was asked, or a shutdown is under way: the loop runs
    /// no further round.
    fn stop_asked(&self) -> bool {
        self.phase.get() == Phase::Stopping
    }

    /// The first round of a run: a reactor shut down before starts a new
    /// run (its flag lowered, its exit code forgotten), then every handler
    /// starts.
    fn begin_run(&mut self) {
        self.started = true;
        if self.phase.get() == Phase::Stopped {
            self.phase.set(Phase::Running);
            self.exit_code = None;
        }
        self.start_all();
    }

    /// Runs `f` with `current` as [`Context::current`], then puts back
    /// the one it replaces (calls nest: a callback removes another handler,
    /// whose `on_remove` runs as its own).
    fn with_current<R>(&mut self, current: Option<Token>, f: impl FnOnce(&mut Context) -> R) -> R {
        let outer = std::mem::replace(&mut self.current, current);
        let result = f(self);
        self.current = outer;
        result
    }

    /// Reserves a slot and adds `fd` to epoll under its token. The slot stays
    /// empty until the caller installs the handler.
    fn attach(&mut self, fd: RawFd, interest: Interest) -> io::Result<Token> {
        let entry = self.slots.vacant_entry();
        if u32::try_from(entry.key()).is_err() {
            return Err(io::Error::other("too many handlers for a 32-bit slot number"));
        }
        let token = Token::new(entry.key(), generation(self.order));
        let watched = interest.is_watched();
        if watched {
            open_epoll(&mut self.epoll)?.add(fd, interest, token)?;
        }
        entry.insert(Slot {
            order: self.order,
            fd,
            interest,
            paused: false,
            holds: 0,
            watched,
            handler: None,
        });
        self.order += 1;
        self.watched += usize::from(watched);
        Ok(token)
    }

    /// Gives a slot a new interest, pause and holds, and epoll what follows
    /// from them: the interest, less input while paused or held; out of
    /// epoll when that leaves nothing to watch. The slot is unchanged if
    /// epoll refuses.
    fn update(&mut self, token: Token, interest: Interest, paused: bool, holds: u32) -> io::Result<()> {
        let slot = self.slot(token).ok_or_else(|| unknown(token))?;
        let (fd, was_watched) = (slot.fd, slot.watched);
        let effective = if paused || holds > 0 { interest.without_input() } else { interest };
        let watched = effective.is_watched();
        match (was_watched, watched) {
            (true, true) => open_epoll(&mut self.epoll)?.modify(fd, effective, token)?,
            (false, true) => open_epoll(&mut self.epoll)?.add(fd, effective, token)?,
            (true, false) => open_epoll(&mut self.epoll)?.delete(fd)?,
            (false, false) => {}
        }
        if let Some(slot) = self.slot_mut(token) {
            (slot.interest, slot.paused, slot.holds, slot.watched) = (interest, paused, holds, watched);
        }
        self.watched = self.watched + usize::from(watched) - usize::from(was_watched);
        Ok(())
    }

    /// Takes a slot out of epoll and the slab.
    fn detach(&mut self, token: Token) -> Option<Slot> {
        self.slot(token)?;
        let slot = self.slots.remove(token.key());
        self.watched -= usize::from(slot.watched);
        let Some(epoll) = self.epoll.as_ref().filter(|_| slot.watched) else {
            return Some(slot);
        };
        if let Err(e) = epoll.delete(slot.fd) {
            // The handler closed its descriptor early; epoll forgot it then.
            log::debug!("epoll_ctl(DEL, {}): {e}", slot.fd);
        }
        Some(slot)
    }

    fn slot(&self, token: Token) -> Option<&Slot> {
        self.slots.get(token.key()).filter(|slot| generation(slot.order) == token.generation())
    }

    fn slot_mut(&mut self, token: Token) -> Option<&mut Slot> {
        self.slots.get_mut(token.key()).filter(|slot| generation(slot.order) == token.generation())
    }

    /// Every registered handler, first registered first.
    fn tokens_in_order(&self) -> Vec<Token> {
        let mut slots: Vec<(u64, usize)> = self.slots.iter().map(|(key, slot)| (slot.order, key)).collect();
        slots.sort_unstable();
        slots.into_iter().map(|(order, key)| Token::new(key, generation(order))).collect()
    }

    /// The wait's timeout: the caller's, cut short by the earliest timer.
    fn wait_timeout(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        let Some(deadline) = self.timers.next_deadline() else { return timeout };
        let until_timer = deadline.saturating_duration_since(Instant::now());
        Some(timeout.map_or(until_timer, |t| t.min(until_timer)))
    }

    /// Calls every timer due now. A timer re-armed from a callback for "now"
    /// waits for the next round, so that no timer can hold the loop.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((key, seq, mut callback)) = self.timers.pop_due(now) {
            self.with_current(None, |ctx| callback(ctx));
            self.timers.restore(key, seq, callback);
        }
    }

    fn start_all(&mut self) {
        for token in self.tokens_in_order() {
            self.call(token, |handler, ctx| handler.on_start(ctx));
        }
    }

    /// Hands a handler's error to the user's hook, or to [`report`].
    pub(crate) fn report(&mut self, token: Token, name: &str, error: &io::Error) {
        let Some(mut on_error) = self.on_error.take() else {
            return report(name, error);
        };
        self.with_current(Some(token), |ctx| on_error(name, error, ctx));
        // Unless the hook set another one meanwhile.
        self.on_error.get_or_insert(on_error);
    }

    /// What of `readiness` goes to the handler of `token`: nothing for a
    /// stale token (its handler removed, its slot perhaps reused) or a
    /// descriptor taken out of epoll since the event was fetched, and no
    /// input for a paused handler.
    fn deliverable(&self, token: Token, readiness: Readiness) -> Option<Readiness> {
        let slot = self.slot(token).filter(|slot| slot.watched)?;
        let readiness = if slot.input_held() { readiness.without_input() } else { readiness };
        (!readiness.is_empty()).then_some(readiness)
    }

    /// Calls one handler: takes it out of its slot, lends it the `Context`
    /// with its token as [`current`](Context::current), and puts it back
    /// unless it was removed meanwhile.
    fn call<F>(&mut self, token: Token, f: F)
    where
        F: FnOnce(&mut dyn Handler, &mut Context) -> io::Result<()>,
    {
        let Some(mut handler) = self.slot_mut(token).and_then(|slot| slot.handler.take()) else {
            return;
        };
        let result = self.with_current(Some(token), |ctx| {
            panic::catch_unwind(AssertUnwindSafe(|| f(handler.as_mut(), ctx)))
        });
        let result = match result {
            Ok(result) => result,
            Err(panic) => {
                // Out of epoll while its descriptor is still open, out of the
                // slab, then dropped: a token kept by anyone names nothing.
                self.detach(token);
                handler.on_shutdown();
                drop(handler);
                panic::resume_unwind(panic)
            }
        };
        if let Err(e) = result {
            self.report(token, handler.name(), &e);
            self.detach(token);
        }
        match self.slot_mut(token) {
            Some(slot) => slot.handler = Some(handler),
            None => self.retire(token, handler),
        }
    }

    /// The end of a handler that has left the slab: `on_remove`, with its
    /// own token as [`current`](Context::current), then `on_shutdown`, then
    /// the drop that closes its descriptor.
    fn retire(&mut self, token: Token, mut handler: Box<dyn Handler>) {
        self.with_current(Some(token), |ctx| handler.on_remove(ctx));
        handler.on_shutdown();
    }
}

/// The generation that tells apart the handlers that use one slot in turn:
/// the registration's number, wrapped to 32 bits. An event would reach the
/// wrong handler only if 2^32 registrations happened within one batch.
fn generation(order: u64) -> u32 {
    order as u32
}

/// The default for a handler's error: a log line if a logger is installed,
/// else one line on stderr, so that an error is never silent.
fn report(name: &str, error: &io::Error) {
    if log::max_level() == log::LevelFilter::Off {
        eprintln!("{name}: {error}; removing it");
    } else {
        log::error!("{name}: {error}; removing it");
    }
}

fn unknown(token: Token) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no handler registered as {token:?}"))
}
