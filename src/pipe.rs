//! Pipes that fill up: how much a pipe holds, how much waits in it, and
//! how much the server keeps for its stdout besides.
//!
//! A test that needs the server stalled on a full stdout must not count on
//! "a lot" of output being enough: it sends more than the pipe
//! ([`pipe_capacity`]), the server's own buffer ([`SERVER_OUTPUT_BUFFER`])
//! and the queue can take together, and then waits for the pipe to be full
//! ([`bytes_waiting`]).

use std::io;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;

/// The most the server keeps of its stdout before it must write: it
/// flushes once a round, and as soon as its buffer holds a pipe's worth
/// (64 KiB, `FLUSH_AT` in `server/src/output.rs`); counted here as the
/// buffer's whole capacity, twice that, to be sure.
pub const SERVER_OUTPUT_BUFFER: usize = 128 * 1024;

/// How many bytes the pipe holds at most (`fcntl(F_GETPIPE_SZ)`); `pipe`
/// is either end.
pub fn pipe_capacity(pipe: &impl AsFd) -> usize {
    // SAFETY: plain call on an open descriptor.
    let size = unsafe { libc::fcntl(pipe.as_fd().as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ: {}", io::Error::last_os_error());
    size as usize
}

/// How many bytes wait in the pipe to be read (`ioctl(FIONREAD)` on its
/// read end).
pub fn bytes_waiting(pipe: &impl AsFd) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, and `waiting` is one.
    let res = unsafe { libc::ioctl(pipe.as_fd().as_raw_fd(), libc::FIONREAD, &mut waiting) };
    assert_eq!(res, 0, "FIONREAD: {}", io::Error::last_os_error());
    waiting as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn a_pipe_says_its_capacity_and_what_waits_in_it() {
        let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        assert!(pipe_capacity(&stdout) >= 4096);
        assert_eq!(bytes_waiting(&stdout), 0);
        child.stdin.take().unwrap().write_all(b"twelve bytes").unwrap();
        crate::wait_until("cat to copy", || bytes_waiting(&stdout) == 12);
        child.wait().unwrap();
    }
}
