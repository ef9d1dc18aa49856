//! A timer on a `timerfd`: one-shot or periodic.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::callback::Callback;
use crate::sys::syscall;
use crate::{Context, Handler, Readiness};

/// Calls back when a monotonic-clock timer expires, with the number of
/// expirations since the last call (more than one if the loop was late).
///
/// A one-shot timer removes itself after its call; a periodic one stays until
/// it is removed. Each is a descriptor: for many timers, the reactor's own
/// [`Context::after`] and [`Context::every`] cost none.
///
/// ```
/// use std::time::{Duration, Instant};
/// use reactor::{sources::Timer, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let start = Instant::now();
/// reactor.register(Timer::once(Duration::from_millis(5), |expirations, ctx| {
///     assert_eq!(expirations, 1);
///     ctx.stop();
/// })?)?;
/// reactor.run()?;
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// # Ok(())
/// # }
/// ```
pub struct Timer {
    fd: OwnedFd,
    periodic: bool,
    callback: Callback<u64>,
}

impl Timer {
    /// A timer that fires once, `after` from now.
    pub fn once(after: Duration, callback: impl FnMut(u64, &mut Context) + 'static) -> io::Result<Timer> {
        Timer::new(after, None, Box::new(callback))
    }

    /// A timer that fires every `period`, the first time one period from now.
    /// A zero period is refused (`InvalidInput`): it would fire without end.
    pub fn every(period: Duration, callback: impl FnMut(u64, &mut Context) + 'static) -> io::Result<Timer> {
        if period.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a periodic timer needs a period above zero",
            ));
        }
        Timer::new(period, Some(period), Box::new(callback))
    }

    fn new(first: Duration, period: Option<Duration>, callback: Callback<u64>) -> io::Result<Timer> {
        // SAFETY: integer arguments only; returns a new descriptor or -1.
        let raw = syscall!(timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC))?;
        // SAFETY: `timerfd_create` just returned this descriptor; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let spec = libc::itimerspec {
            it_interval: timespec(period.unwrap_or(Duration::ZERO)),
            // An all-zero value would disarm the timer: fire after 1 ns instead.
            it_value: timespec(first.max(Duration::from_nanos(1))),
        };
        // SAFETY: `spec` is a valid `itimerspec`; the old value is not wanted.
        syscall!(timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()))?;
        Ok(Timer { fd, periodic: period.is_some(), callback })
    }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

impl Handler for Timer {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        "timer"
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let mut expirations = 0u64;
        let buf = (&mut expirations as *mut u64).cast();
        // SAFETY: `buf` points to `expirations`, writable for 8 bytes.
        match syscall!(read(self.fd.as_raw_fd(), buf, 8)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
        (self.callback)(expirations, ctx);
        if !self.periodic {
            ctx.remove_self();
        }
        Ok(())
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("fd", &self.fd)
            .field("periodic", &self.periodic)
            .finish_non_exhaustive()
    }
}
