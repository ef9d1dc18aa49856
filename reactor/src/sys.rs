//! The system calls that more than one module makes: epoll (the only
//! place that talks to it), and the descriptor helpers the sources share
//! (`eventfd`, `set_nonblocking`, `is_nonblocking`, `fstat`, `is_socket`,
//! `send_or_write`, `ignore_sigpipe`, `replace_disposition`), each written
//! once.
//!
//! Everything above the epoll wrappers speaks in [`Token`]s, [`Interest`]s
//! and [`Readiness`]; everything below them is `libc`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::event::{Interest, Readiness, Token};

/// Calls a `libc` function and turns the C convention (`-1` and `errno`)
/// into an `io::Result` of the return value.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each use passes open descriptors, and pointers to live
        // memory of the sizes it states, as the `SAFETY:` line above it says.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// An epoll instance, closed on drop.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: integer flags only; returns a new descriptor or -1.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `epoll_create1` just returned this descriptor; nobody else owns it.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub(crate) fn add(&self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    pub(crate) fn modify(&self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // Kernels before 2.6.9 wanted a non-null event even for DEL; pass one.
        self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::NONE, Token::from_raw(0))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let mut event = libc::epoll_event { events: interest.bits(), u64: token.as_raw() };
        // SAFETY: `event` is a live `epoll_event` for the duration of the call.
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event))?;
        Ok(())
    }

    /// Waits for events into `events` (its capacity is the batch size) and
    /// returns how many arrived. `EINTR` is retried with what is left of the
    /// timeout, so a signal never ends the wait early with an error.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        loop {
            let millis = match deadline {
                None | Some(None) => -1,
                Some(Some(at)) => round_up_millis(at.saturating_duration_since(Instant::now())),
            };
            let capacity = events.list.capacity() as libc::c_int;
            // SAFETY: the buffer has room for `capacity` events; the kernel writes no more.
            let res = syscall!(epoll_wait(self.fd.as_raw_fd(), events.list.as_mut_ptr(), capacity, millis));
            match res {
                Ok(n) => {
                    // SAFETY: the kernel initialised the first `n` entries, and `n <= capacity`.
                    unsafe { events.list.set_len(n as usize) };
                    return Ok(n as usize);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Converts a timeout to epoll's milliseconds, rounding up: a wait for 100 µs
/// must sleep 1 ms, not return at once and spin. Zero stays zero (a poll).
pub(crate) fn round_up_millis(timeout: Duration) -> libc::c_int {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    millis.min(libc::c_int::MAX as u128) as libc::c_int
}

/// A reusable buffer of `epoll_event`s filled by [`Epoll::wait`].
pub(crate) struct Events {
    list: Vec<libc::epoll_event>,
}

impl Events {
    pub(crate) fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity) }
    }

    /// The `i`-th event of the last batch, decoded.
    pub(crate) fn get(&self, i: usize) -> (Token, Readiness) {
        let event = self.list[i];
        (Token::from_raw(event.u64), Readiness::from_bits(event.events))
    }
}

/// A new eventfd (non-blocking, close-on-exec) whose counter starts at
/// `initial`: readable at once if it is not zero.
pub(crate) fn eventfd(initial: u32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; returns a new descriptor or -1.
    let raw = syscall!(eventfd(initial, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
    // SAFETY: `eventfd` just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sets `O_NONBLOCK` on the open file (shared with every `dup` of it, and
/// with the shell for stdout); nothing to do if it is set already.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL only reads the open file's flags.
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: F_SETFL with the flags just read plus O_NONBLOCK.
        syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Whether the open file has `O_NONBLOCK` (`false` if that cannot be read).
pub(crate) fn is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL only reads the open file's flags.
    syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL)).is_ok_and(|flags| flags & libc::O_NONBLOCK != 0)
}

/// The descriptor's `stat`: type, owner, mode.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: `stat` is a plain C struct; all-zero is valid to be overwritten.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is writable and of the size `fstat` expects.
    syscall!(fstat(fd.as_raw_fd(), &mut stat))?;
    Ok(stat)
}

/// Whether the descriptor is a socket (written with `send`, not `write`).
pub(crate) fn is_socket(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// One write of `bytes`: `send` with `MSG_NOSIGNAL` to a socket (a peer gone
/// is `EPIPE`, never a `SIGPIPE`), `write` to anything else (see
/// [`ignore_sigpipe`]). Returns how many bytes were taken.
pub(crate) fn send_or_write(fd: RawFd, socket: bool, bytes: &[u8]) -> io::Result<usize> {
    let n = if socket {
        // SAFETY: sends from a live slice of the given length.
        syscall!(send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL))?
    } else {
        // SAFETY: writes from a live slice of the given length.
        syscall!(write(fd, bytes.as_ptr().cast(), bytes.len()))?
    };
    Ok(n as usize)
}

/// Makes sure a write to a pipe without reader fails with `EPIPE` instead of
/// killing the process: sets `SIGPIPE` to "ignore" if it is at the default.
/// A handler someone installed is left alone (it returns, and so does the
/// write, with `EPIPE`).
pub(crate) fn ignore_sigpipe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(true) = replace_disposition(libc::SIGPIPE, libc::SIG_DFL, libc::SIG_IGN) {
            log::debug!("SIGPIPE was at its default: now ignored, so writes report EPIPE");
        }
    });
}

/// Sets `signal`'s disposition to `to` (`SIG_DFL` or `SIG_IGN`) if it is
/// `from` now; a handler someone installed is left alone. Whether it changed.
pub(crate) fn replace_disposition(
    signal: libc::c_int,
    from: libc::sighandler_t,
    to: libc::sighandler_t,
) -> io::Result<bool> {
    // SAFETY: `sigaction` is a plain C struct; all-zero is valid to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    syscall!(sigaction(signal, std::ptr::null(), &mut old))?;
    if old.sa_sigaction != from {
        return Ok(false);
    }
    // SAFETY: as above; no flags, an empty mask.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = to;
    // SAFETY: `new` is a valid action that runs no handler; the old one is not wanted.
    syscall!(sigaction(signal, &new, std::ptr::null_mut()))?;
    Ok(true)
}
