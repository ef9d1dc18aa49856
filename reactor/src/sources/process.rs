//! The process behind a [`Child`](super::Child): signalled through its
//! pidfd, ended within a bound, always reaped; and a death signal for
//! children that must not outlive their parent.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Child;
use crate::sys::{round_up_millis, syscall};

/// How a child that still runs is ended when its source leaves the
/// reactor: its token is [`remove`](crate::Context::remove)d, or the
/// reactor stops or is dropped.
///
/// The end never blocks a running loop: the child's exit is watched on
/// (under a new token) and `SIGKILL` comes from a timer at the bound. The
/// reactor's stop waits for it, within the bound: every child is signalled
/// first, then each is waited for until its own deadline, so the stop takes
/// the longest bound, not their sum. However it ends, `on_exit` then runs
/// once with the status. Lines the child writes after the reactor's stop
/// began are not delivered, but its pipes stay open until it is reaped, so
/// that its last writes do not fail. A [`Child`] dropped unregistered is
/// ended the same way, blocking, and has no `on_exit` to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtShutdown {
    /// `SIGKILL` at once.
    Kill,
    /// This signal (followed by `SIGCONT`, so that a stopped child acts on
    /// it), then up to this long for the child to exit, then `SIGKILL`. The
    /// default is `Signal(libc::SIGTERM, Duration::from_secs(2))`.
    Signal(libc::c_int, Duration),
    /// No signal: up to this long for the child to exit on its own (a piped
    /// stdin is closed when the reactor stops), then `SIGKILL`.
    Wait(Duration),
}

impl Default for AtShutdown {
    fn default() -> AtShutdown {
        AtShutdown::Signal(libc::SIGTERM, Duration::from_secs(2))
    }
}

/// A spawned process and its pidfd; on drop, one still running is ended as
/// its [`AtShutdown`] says, blocking, and reaped.
pub(super) struct Process {
    /// `None` once reaped.
    child: Option<std::process::Child>,
    pub(super) pidfd: Rc<OwnedFd>,
    pub(super) at_shutdown: AtShutdown,
    /// Set when its end has begun: it must have exited by then, or it is killed.
    pub(super) deadline: Option<Instant>,
}

impl Process {
    /// Opens a pidfd on a child just spawned, not yet reapable by anyone
    /// else, so that the pidfd names it; if that fails, kills and reaps it.
    pub(super) fn new(mut child: std::process::Child) -> io::Result<Process> {
        let pid = child.id();
        // SAFETY: plain system call with integer arguments; returns a new descriptor or -1.
        match syscall!(syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0)) {
            Ok(raw) => {
                // SAFETY: `pidfd_open` just returned this descriptor (close-on-exec); nobody else owns it.
                let pidfd = Rc::new(unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) });
                Ok(Process { child: Some(child), pidfd, at_shutdown: AtShutdown::default(), deadline: None })
            }
            Err(e) => {
                let _ = child.kill().and_then(|()| child.wait());
                Err(pidfd_error(e, &format!("child {pid}: pidfd_open")))
            }
        }
    }

    pub(super) fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Its status, reaping it, if it has exited.
    pub(super) fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        let Some(child) = &mut self.child else { return Ok(None) };
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Begins its end as [`AtShutdown`] says; returns how long it is given.
    pub(super) fn begin_end(&mut self) -> Duration {
        let (signal, grace) = match self.at_shutdown {
            AtShutdown::Kill => (Some(libc::SIGKILL), Duration::ZERO),
            AtShutdown::Signal(signal, grace) => (Some(signal), grace),
            AtShutdown::Wait(grace) => (None, grace),
        };
        for signal in signal.into_iter().flat_map(|signal| [signal, libc::SIGCONT]) {
            if let Err(e) = signal_pidfd(&self.pidfd, self.id(), signal) {
                log::warn!("{e}");
            }
        }
        self.deadline = Some(Instant::now() + grace);
        grace
    }

    /// Ends it, blocking: waits for its exit until the deadline (begins the
    /// end first if need be), kills it if it still runs, and reaps it.
    pub(super) fn end(&mut self) -> Option<ExitStatus> {
        self.child.as_ref()?;
        let deadline = self.deadline.unwrap_or_else(|| Instant::now() + self.begin_end());
        if !exits_by(&self.pidfd, deadline) {
            let _ = signal_pidfd(&self.pidfd, self.id(), libc::SIGKILL);
        }
        let mut child = self.child.take()?;
        child.wait().map_err(|e| log::warn!("child {}: wait: {e}", child.id())).ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.end();
    }
}

/// Sends `signal` through a pidfd (`pidfd_send_signal`, Linux 5.1).
pub(super) fn signal_pidfd(pidfd: &OwnedFd, pid: u32, signal: libc::c_int) -> io::Result<()> {
    let (pidfd, info) = (pidfd.as_raw_fd(), std::ptr::null::<libc::siginfo_t>());
    // SAFETY: an open pidfd, a null `siginfo` (the kernel fills one in), no flags.
    syscall!(syscall(libc::SYS_pidfd_send_signal, pidfd, signal, info, 0))
        .map_err(|e| pidfd_error(e, &format!("child {pid}: pidfd_send_signal({signal})")))?;
    Ok(())
}

/// Whether the process exits by `deadline`: its pidfd becomes readable.
fn exits_by(pidfd: &OwnedFd, deadline: Instant) -> bool {
    let mut poll = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        let millis = round_up_millis(deadline.saturating_duration_since(Instant::now()));
        // SAFETY: one live `pollfd`, as the count says.
        match syscall!(poll(&mut poll, 1, millis)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            ready => return ready.is_ok_and(|n| n > 0),
        }
    }
}

/// A pidfd call's error, naming the child and saying what it means.
fn pidfd_error(e: io::Error, what: &str) -> io::Error {
    let (kind, meaning) = match e.raw_os_error() {
        Some(libc::ENOSYS) => (io::ErrorKind::Unsupported, ": this kernel has no pidfd (Linux 5.3 or later)"),
        Some(libc::ESRCH) => (io::ErrorKind::NotFound, ": it has exited and been reaped (ESRCH)"),
        _ => (e.kind(), ""),
    };
    io::Error::new(kind, format!("{what}: {e}{meaning}"))
}

/// Makes `command` empty the child's signal mask before `exec`.
pub(super) fn unblock_signals(command: &mut Command) -> &mut Command {
    let unblock = || {
        // SAFETY: all zeroes is a valid `sigset_t`, emptied at once; `sigemptyset`
        // and `sigprocmask` are async-signal-safe, as the time between fork and exec needs.
        let mut none: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above; the set lives on this stack.
        unsafe { libc::sigemptyset(&mut none) };
        // SAFETY: as above.
        syscall!(sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut())).map(drop)
    };
    // SAFETY: `unblock` runs in the child after fork, and is async-signal-safe.
    unsafe { command.pre_exec(unblock) }
}

impl Child {
    /// Makes `command` start a child that receives `signal` when the
    /// process that spawns it dies, however it dies, `SIGKILL` included:
    /// `prctl(PR_SET_PDEATHSIG)`, set in the child before `exec` through
    /// [`CommandExt::pre_exec`]. A parent that died before that was set
    /// (the child's `getppid()` is no longer the spawner) makes the child
    /// fail before `exec`, so that no orphan runs on. `SIGKILL` is sure;
    /// another signal can be caught or ignored by the child.
    ///
    /// The kernel sends it when the *thread* that forked exits, not the
    /// process: spawn from the thread that runs the reactor (a thread that
    /// ends early would take its children with it). It is not inherited by
    /// the child's own children, and `exec` of a set-user-ID program clears
    /// it.
    ///
    /// ```
    /// use std::process::Command;
    /// use reactor::{sources::Child, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let mut command = Command::new("sleep");
    /// Child::spawn(Child::die_with_parent(command.arg("30"), libc::SIGKILL))?.register(&mut reactor)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn die_with_parent(command: &mut Command, signal: libc::c_int) -> &mut Command {
        let parent = std::process::id() as libc::pid_t;
        let death = move || {
            // SAFETY: between fork and exec only async-signal-safe calls, and no allocation.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: as above; `getppid` cannot fail.
            match unsafe { libc::getppid() } == parent {
                true => Ok(()),
                false => Err(io::Error::from_raw_os_error(libc::ESRCH)),
            }
        };
        // SAFETY: `death` runs in the child after fork, and is async-signal-safe.
        unsafe { command.pre_exec(death) }
    }
}
