//! The few helpers every object shares: `-1` into `io::Error`, an absolute
//! deadline on the realtime clock, `fstat`, and error context.

use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Turns a C call's `-1` into the `errno` it set; any other value passes.
pub(crate) fn cvt<T: PartialEq + From<i8>>(result: T) -> io::Result<T> {
    if result == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Calls `f` again while it fails with `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// `timeout` from now, as the absolute `CLOCK_REALTIME` time that
/// `mq_timedsend`, `mq_timedreceive` and `sem_timedwait` take.
pub(crate) fn realtime_deadline(timeout: Duration) -> io::Result<libc::timespec> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(io::Error::other)?;
    let at =
        now.checked_add(timeout).filter(|at| at.as_secs() <= libc::time_t::MAX as u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("timeout {timeout:?} is too large"))
        })?;
    Ok(libc::timespec { tv_sec: at.as_secs() as libc::time_t, tv_nsec: at.subsec_nanos() as libc::c_long })
}

/// `fstat` of a descriptor.
pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: `stat` is a plain C struct, filled in by `fstat`.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is writable; a closed `fd` gives EBADF, nothing worse.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `fchmod`: the exact permission bits, whatever the umask took away.
pub(crate) fn fchmod(fd: RawFd, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain call; a closed `fd` gives EBADF.
    cvt(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

/// `e`, its message preceded by `what` (`queue /postbox: ...`), its kind kept.
pub(crate) fn context(what: impl std::fmt::Display, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// An `open`, `create` or `unlink` of the named object `what name`
/// (`semaphore /x`, `shared memory object /x`): what the usual errnos mean
/// for the user, the kind kept.
pub(crate) fn explain_named(what: &str, name: &str, e: io::Error) -> io::Error {
    let message = match e.raw_os_error() {
        Some(libc::ENOENT) => format!("{what} {name} does not exist"),
        Some(libc::EEXIST) => format!("{what} {name} exists already"),
        Some(libc::EACCES) => {
            format!("{what} {name}: permission denied: its mode does not let this user open it")
        }
        _ => format!("{what} {name}: {e}"),
    };
    io::Error::new(e.kind(), message)
}
