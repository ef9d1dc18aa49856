//! Signals as events: a `signalfd` read by the loop like any descriptor.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use crate::callback::Callback;
use crate::sys::{self, syscall};
use crate::{Context, Handler, Readiness};

/// A signal by name, for [`SignalFd::new`] without `libc`. A raw number
/// (`libc::SIGRTMIN()`, say) is accepted wherever a `Signal` is, and the
/// callback's number compares with a `Signal` (`signal == Signal::Term`).
///
/// ```
/// use reactor::sources::Signal;
///
/// assert_eq!(Signal::Term.number(), 15);
/// assert_eq!(Signal::from_number(15), Some(Signal::Term));
/// assert!(15 == Signal::Term);
/// assert_eq!(Signal::Int.to_string(), "SIGINT");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGINT`: Ctrl-C.
    Int,
    /// `SIGTERM`: the polite request to end (`kill`'s default).
    Term,
    /// `SIGHUP`: the terminal went away; by convention, reload.
    Hup,
    /// `SIGQUIT`: Ctrl-\.
    Quit,
    /// `SIGUSR1`: the program's own.
    Usr1,
    /// `SIGUSR2`: the program's own.
    Usr2,
    /// `SIGCHLD`: a child stopped or ended (a `Child` source needs none).
    Child,
    /// `SIGPIPE`: a write to a pipe or socket with no reader.
    Pipe,
    /// `SIGALRM`: `alarm(2)` expired.
    Alrm,
    /// `SIGWINCH`: the terminal's size changed.
    Winch,
    /// `SIGCONT`: continued after a stop.
    Cont,
    /// `SIGTSTP`: Ctrl-Z.
    Tstp,
}

impl Signal {
    const ALL: [(Signal, libc::c_int, &'static str); 12] = [
        (Signal::Int, libc::SIGINT, "SIGINT"),
        (Signal::Term, libc::SIGTERM, "SIGTERM"),
        (Signal::Hup, libc::SIGHUP, "SIGHUP"),
        (Signal::Quit, libc::SIGQUIT, "SIGQUIT"),
        (Signal::Usr1, libc::SIGUSR1, "SIGUSR1"),
        (Signal::Usr2, libc::SIGUSR2, "SIGUSR2"),
        (Signal::Child, libc::SIGCHLD, "SIGCHLD"),
        (Signal::Pipe, libc::SIGPIPE, "SIGPIPE"),
        (Signal::Alrm, libc::SIGALRM, "SIGALRM"),
        (Signal::Winch, libc::SIGWINCH, "SIGWINCH"),
        (Signal::Cont, libc::SIGCONT, "SIGCONT"),
        (Signal::Tstp, libc::SIGTSTP, "SIGTSTP"),
    ];

    /// The signal's number on this system.
    pub fn number(self) -> i32 {
        Signal::ALL[self as usize].1
    }

    /// The signal of a number, if it is one of these.
    pub fn from_number(number: i32) -> Option<Signal> {
        Signal::ALL.iter().find(|entry| entry.1 == number).map(|entry| entry.0)
    }

    /// Its C name, such as `"SIGTERM"`.
    pub fn name(self) -> &'static str {
        Signal::ALL[self as usize].2
    }
}

impl From<Signal> for i32 {
    fn from(signal: Signal) -> i32 {
        signal.number()
    }
}

impl PartialEq<Signal> for i32 {
    fn eq(&self, signal: &Signal) -> bool {
        *self == signal.number()
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    callback: Callback<i32>,
}

impl SignalFd {
    /// Blocks `signals` ([`Signal`]s, or raw numbers) and reads them from a
    /// new signalfd, calling `callback` with each signal's number.
    ///
    /// An inherited "ignore" disposition (`cmd &` from a script ignores
    /// `SIGINT`) is reset to the default, which is harmless while the signal
    /// is blocked. Linux would queue the blocked signal anyway (a blocked
    /// signal is never treated as ignored), but POSIX lets a system discard
    /// a signal generated while it is ignored, and the pending ones are
    /// discarded whenever something sets "ignore" again.
    ///
    /// ```
    /// use reactor::sources::{Signal, SignalFd};
    /// use reactor::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// reactor.register(SignalFd::new(&[Signal::Usr1, Signal::Term], |signal, ctx| {
    ///     assert!(signal == Signal::Usr1);
    ///     ctx.stop();
    /// })?)?;
    /// // SAFETY: raising a signal the reactor blocked and will read.
    /// unsafe { libc::raise(Signal::Usr1.number()) };
    /// reactor.run()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new<S: Copy + Into<i32>>(
        signals: &[S],
        callback: impl FnMut(i32, &mut Context) + 'static,
    ) -> io::Result<SignalFd> {
        let signals: Vec<i32> = signals.iter().map(|&s| s.into()).collect();
        let signals = &signals[..];
        let set = signal_set(signals)?;
        // SAFETY: `set` is an initialised signal set; the old mask is not wanted.
        let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        for &signal in signals {
            sys::replace_disposition(signal, libc::SIG_IGN, libc::SIG_DFL)?;
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
    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_is_at_its_own_place_in_the_table() {
        for (i, &(signal, number, name)) in Signal::ALL.iter().enumerate() {
            assert_eq!(signal as usize, i, "{name}");
            assert_eq!((signal.number(), signal.name()), (number, name));
            assert_eq!(Signal::from_number(number), Some(signal));
        }
        assert_eq!(Signal::from_number(libc::SIGRTMIN()), None);
    }
}
