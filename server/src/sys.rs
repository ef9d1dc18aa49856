//! The server's one way to call the kernel, as the reactor's `syscall!`
//! and `ipc`'s `cvt` are theirs: a raw call's `-1` becomes the `errno` it
//! set, read once ([`cvt`]), and the call that cannot fail is named once
//! ([`geteuid`]).

use std::io;

/// The result of a raw `libc` call: `-1` becomes the error that `errno`
/// holds (read at once, before anything else can change it); any other
/// value is the call's result.
pub fn cvt<T: Copy + PartialEq + From<i8>>(result: T) -> io::Result<T> {
    if result == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// [`cvt`] for a call that `EINTR` may interrupt: called again until it
/// ends otherwise.
pub fn retry<T: Copy + PartialEq + From<i8>>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(call()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// The effective user id of this process: whose objects it makes, and
/// whose it trusts.
pub fn geteuid() -> u32 {
    // SAFETY: plain call, cannot fail.
    unsafe { libc::geteuid() }
}
