//! A blocking call (a `sem_wait`, a library without descriptors) run on a
//! thread of its own, its results handed to a callback on the loop's thread.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;

use crate::sources::channel::{channel, Receiver};
use crate::{Context, Handler, Readiness};

type OnResult<T> = Box<dyn FnMut(T, &mut Context) -> io::Result<()>>;
type OnStop = Box<dyn FnOnce()>;

/// Runs a blocking call on a thread and delivers each result to a callback
/// with the [`Context`], once ([`once`](Blocking::once)) or again and again
/// ([`repeat`](Blocking::repeat)) until the source leaves the reactor.
///
/// - **One call at a time.** The thread calls, hands the result over, and
///   calls again only once the callback has taken it: at most one result
///   waits, and the thread never runs ahead of the loop.
/// - **Stopping.** Remove the source (`ctx.remove_self()` from the callback,
///   whose [`current`](Context::current) is the source's token, or
///   `ctx.remove(token)`), or stop the loop: no further call is started.
///   A result delivered in a round that asks the loop to stop starts no
///   further call either.
/// - **A call in progress is not interrupted**: nothing can portably wake a
///   thread out of `sem_wait` or a library call. The thread ends when the
///   call returns. If it may never return (no more posts will come), give
///   [`on_stop`](Blocking::on_stop) a way to release it (post the semaphore
///   once more, close what it reads); otherwise the thread stays blocked
///   until the process exits. The loop never waits for the thread.
/// - **Errors.** The callback returns `io::Result<()>`: an `Err` removes the
///   source and reaches [`Reactor::on_error`](crate::Reactor::on_error), as a
///   handler's error does. If the call panics, the thread's panic is printed
///   and the source fails with an error that says so.
///
/// ```
/// use std::time::Duration;
/// use reactor::{sources::Blocking, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let mut n = 0;
/// let slow = Blocking::repeat(
///     move || { std::thread::sleep(Duration::from_millis(1)); n += 1; n },
///     |n, ctx| {
///         if n == 3 {
///             ctx.stop(); // starts no fourth call
///         }
///         Ok(())
///     },
/// )?;
/// reactor.register(slow)?;
/// reactor.run()?;
/// # Ok(())
/// # }
/// ```
pub struct Blocking<T> {
    results: Receiver<T>,
    on_result: OnResult<T>,
    /// One per result taken: lets the thread make its next call. Dropped
    /// when the source leaves, which ends a thread waiting for it.
    go_on: Option<SyncSender<()>>,
    stopped: Arc<AtomicBool>,
    on_stop: Option<OnStop>,
    /// Whether the source leaves after its first result.
    once: bool,
    name: String,
}

impl<T: Send + 'static> Blocking<T> {
    /// Runs `call` once on a new thread and hands its result to
    /// `on_result`; the source then leaves the reactor.
    ///
    /// ```
    /// use reactor::{sources::Blocking, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let lookup = Blocking::once(
    ///     || std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|a| a.count()),
    ///     |found, _ctx| {
    ///         println!("{} address(es)", found?);
    ///         Ok(())
    ///     },
    /// )?;
    /// reactor.register(lookup)?;
    /// reactor.run()?; // until its one result is handled
    /// # Ok(())
    /// # }
    /// ```
    pub fn once(
        call: impl FnOnce() -> T + Send + 'static,
        on_result: impl FnOnce(T, &mut Context) -> io::Result<()> + 'static,
    ) -> io::Result<Blocking<T>> {
        let mut call = Some(call);
        let mut on_result = Some(on_result);
        let on_result = move |result, ctx: &mut Context| on_result.take().map_or(Ok(()), |f| f(result, ctx));
        Blocking::start(move || call.take().map(|call| call()), Box::new(on_result), true)
    }

    /// Runs `call` on a new thread again and again, one call at a time,
    /// and hands each result to `on_result`, until the source leaves the
    /// reactor (see the type's documentation for how, and for a call that
    /// may block for ever).
    pub fn repeat(
        mut call: impl FnMut() -> T + Send + 'static,
        on_result: impl FnMut(T, &mut Context) -> io::Result<()> + 'static,
    ) -> io::Result<Blocking<T>> {
        Blocking::start(move || Some(call()), Box::new(on_result), false)
    }

    /// The thread: a call, its result sent, then a wait for the loop to
    /// take it, until the loop stops wanting more or `call` has no more.
    fn start(
        mut call: impl FnMut() -> Option<T> + Send + 'static,
        on_result: OnResult<T>,
        once: bool,
    ) -> io::Result<Blocking<T>> {
        let (sender, results) = channel::<T>()?;
        let (go_on, taken) = mpsc::sync_channel::<()>(1);
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        thread::Builder::new().name(String::from("blocking")).spawn(move || {
            while let Some(result) = call() {
                if sender.send(result).is_err() || taken.recv().is_err() || stop.load(Ordering::Acquire) {
                    break;
                }
            }
        })?;
        let name = String::from("blocking");
        Ok(Blocking { results, on_result, go_on: Some(go_on), stopped, on_stop: None, once, name })
    }
}

impl<T> Blocking<T> {
    /// Names the source in error reports (`"blocking"` by default).
    pub fn named(mut self, name: impl Into<String>) -> Blocking<T> {
        self.name = name.into();
        self
    }

    /// Runs `release` on the loop's thread when the source leaves the
    /// reactor (removed, failed, or shut down with the loop), after it has
    /// stopped asking for calls: the place to wake a thread blocked in its
    /// call for good, such as one more `post` of the semaphore it waits on.
    pub fn on_stop(mut self, release: impl FnOnce() + 'static) -> Blocking<T> {
        self.on_stop = Some(Box::new(release));
        self
    }
}

impl<T: 'static> Handler for Blocking<T> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.results.fd()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let (on_result, mut got) = (&mut self.on_result, false);
        let ended = self.results.receive(ctx, |result, ctx| {
            got = true;
            on_result(result, ctx)
        })?;
        if got && self.once {
            ctx.remove_self();
        } else if ended {
            return Err(io::Error::other("the blocking call's thread ended without a result: it panicked"));
        } else if got && !ctx.is_stopping() && ctx.current().is_some_and(|me| ctx.contains(me)) {
            // The thread may call again, unless the callback removed us or
            // stopped the loop. Never full: one call at a time.
            if let Some(go_on) = &self.go_on {
                let _ = go_on.try_send(());
            }
        }
        Ok(())
    }

    /// Asks for no more calls, ends a thread waiting to call again, and
    /// runs the release hook. Here rather than in `on_remove`, which a
    /// panic of the callback skips.
    fn on_shutdown(&mut self) {
        self.stopped.store(true, Ordering::Release);
        self.go_on = None;
        if let Some(release) = self.on_stop.take() {
            release();
        }
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("name", &self.name)
            .field("once", &self.once)
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
