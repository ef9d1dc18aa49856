//! The only place that talks to epoll: six thin wrappers over the system calls.
//!
//! Everything above this module speaks in [`Token`]s, [`Interest`]s and
//! [`Readiness`]; everything below it is `libc`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::token::{Interest, Readiness, Token};

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
