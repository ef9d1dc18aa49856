//! Signals as events: a `signalfd` read by the loop like any descriptor.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use crate::sys::syscall;
use crate::{Context, Handler, Readiness};

type Callback = Box<dyn FnMut(i32, &mut Context<'_>)>;

/// Turns signals into callbacks run by the loop, where any code is safe to
/// run (unlike in a signal handler).
///
/// Creating it blocks the signals for the calling thread, so do it before any
/// other thread starts: a thread that does not block them would receive them
/// the old way. Signals of the same kind coalesce while pending, so the
/// callback may see one `SIGTERM` for several sent. The signals stay blocked
/// after the `SignalFd` is dropped: unblocking would deliver pending ones
/// with their default action.
pub struct SignalFd {
    fd: OwnedFd,
    callback: Callback,
}

impl SignalFd {
    /// Blocks `signals` and reads them from a new signalfd, calling `callback`
    /// with each signal number.
    ///
    /// An inherited "ignore" disposition (`cmd &` from a script ignores
    /// `SIGINT`) is reset to the default, which is harmless while the signal
    /// is blocked. Linux would queue the blocked signal anyway (a blocked
    /// signal is never treated as ignored), but POSIX lets a system discard
    /// a signal generated while it is ignored, and the pending ones are
    /// discarded whenever something sets "ignore" again.
    pub fn new(
        signals: &[i32],
        callback: impl FnMut(i32, &mut Context<'_>) + 'static,
    ) -> io::Result<SignalFd> {
        let set = signal_set(signals)?;
        // SAFETY: `set` is an initialised signal set; the old mask is not wanted.
        let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        for &signal in signals {
            stop_ignoring(signal)?;
        }
        // SAFETY: `set` is an initialised signal set.
        let raw = syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
        // SAFETY: `signalfd` just returned this descriptor; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(SignalFd { fd, callback: Box::new(callback) })
    }
}

fn signal_set(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: `sigset_t` is a plain C bit set; `sigemptyset` initialises it next.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a writable signal set.
    syscall!(sigemptyset(&mut set))?;
    for &signal in signals {
        // SAFETY: `set` was initialised by `sigemptyset`.
        syscall!(sigaddset(&mut set, signal))?;
    }
    Ok(set)
}

fn stop_ignoring(signal: i32) -> io::Result<()> {
    // SAFETY: `sigaction` is a plain C struct; all-zero is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action only reads the old one into `old`.
    syscall!(sigaction(signal, ptr::null(), &mut old))?;
    if old.sa_sigaction == libc::SIG_IGN {
        // SAFETY: as above; the zeroed action with `SIG_DFL` (0) restores the default.
        let mut default: libc::sigaction = unsafe { mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        // SAFETY: `default` is a valid action; the old one is not wanted.
        syscall!(sigaction(signal, &default, ptr::null_mut()))?;
    }
    Ok(())
}

impl SignalFd {
    /// Reads one pending signal, or `None` when none is pending. For
    /// handlers that own a `SignalFd` to learn of their own signal.
    pub fn read_signal(&mut self) -> io::Result<Option<i32>> {
        loop {
            // SAFETY: `signalfd_siginfo` is a plain C struct; all-zero is valid.
            let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
            let size = mem::size_of::<libc::signalfd_siginfo>();
            let buf = (&mut info as *mut libc::signalfd_siginfo).cast();
            // SAFETY: `buf` points to `info`, writable for `size` bytes.
            return match syscall!(read(self.fd.as_raw_fd(), buf, size)) {
                Ok(n) if n as usize == size => Ok(Some(info.ssi_signo as i32)),
                Ok(n) => Err(io::Error::other(format!("short read of {n} bytes from signalfd"))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }
}

impl Handler for SignalFd {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        "signals"
    }

    /// Drains the signalfd: a pending signal left unread would wake the loop
    /// again at once, and there are never more than a few.
    fn on_ready(&mut self, _: Readiness, ctx: &mut Context<'_>) -> io::Result<()> {
        while let Some(signal) = self.read_signal()? {
            (self.callback)(signal, ctx);
        }
        Ok(())
    }
}

impl fmt::Debug for SignalFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalFd").field("fd", &self.fd).finish_non_exhaustive()
    }
}
