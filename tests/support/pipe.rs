//! Pipes that fill up: how much a pipe holds, how much waits in it,
//! whether it takes more, and how much the server keeps for its stdout
//! besides.
//!
//! A test that needs the server stalled on a full stdout must not count on
//! "a lot" of output being enough. It sends more than the pipe
//! ([`pipe_capacity`]), the server's own buffer ([`SERVER_OUTPUT_BUFFER`])
//! and the queue can hold together ([`messages_to_stall`]), and then waits
//! for the pipe to take no more
//! ([`Server::stdout_is_full`](crate::Server::stdout_is_full)).
//!
//! The server writes whole lines into a pipe: lines of up to `PIPE_BUF`
//! (4096) bytes one at a time when room is short, so it waits on its
//! stdout only once the pipe is full. A longer line waits until it surely
//! fits, and the pipe may then have room left: with such lines, wait for
//! something else ([`bytes_waiting`], say).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// The most the server keeps of its stdout before it must write: it
/// flushes once a round, and as soon as its buffer holds
/// [`server::output::FLUSH_AT`]; counted here as twice that, the capacity
/// its buffer starts with, to be sure.
pub const SERVER_OUTPUT_BUFFER: usize = 2 * server::output::FLUSH_AT;

/// How many bytes the pipe holds at most (`fcntl(F_GETPIPE_SZ)`); `pipe`
/// is either end.
pub fn pipe_capacity(pipe: &impl AsFd) -> usize {
    // SAFETY: plain call on an open descriptor.
    let size = unsafe { libc::fcntl(pipe.as_fd().as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ: {}", io::Error::last_os_error());
    size as usize
}

/// How many bytes wait in the pipe to be read (`ioctl(FIONREAD)`); `pipe`
/// is either end.
pub fn bytes_waiting(pipe: &impl AsFd) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, and `waiting` is one.
    let res = unsafe { libc::ioctl(pipe.as_fd().as_raw_fd(), libc::FIONREAD, &mut waiting) };
    assert_eq!(res, 0, "FIONREAD: {}", io::Error::last_os_error());
    waiting as usize
}

/// How many messages it takes to stall a server whose stdout nobody
/// reads: each printed as `printed` bytes, they are more than twice what
/// the pipe `stdout` and the server's own buffer hold, and fill a queue of
/// `queue_capacity` messages besides. The server must then wait on its
/// stdout, and the queue stays full.
pub fn messages_to_stall(stdout: &impl AsFd, printed: usize, queue_capacity: usize) -> usize {
    2 * (pipe_capacity(stdout) + SERVER_OUTPUT_BUFFER).div_ceil(printed) + queue_capacity + 1
}

/// Whether the write end `pipe` takes no more bytes now: every slot of the
/// pipe is in use, so `poll` gives no `POLLOUT` (a pipe's slots are pages,
/// and a slot may be partly filled: the bytes waiting can be fewer than
/// the capacity when the pipe is full).
pub fn pipe_is_full(pipe: &impl AsFd) -> bool {
    let mut pollfd = libc::pollfd { fd: pipe.as_fd().as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: `pollfd` is an array of one element that lives across the call; no wait.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    assert!(ready >= 0, "poll: {}", io::Error::last_os_error());
    pollfd.revents & libc::POLLOUT == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::FromRawFd;

    /// A pipe with both ends non-blocking: (read end, write end).
    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: `fds` is an array of two ints for the new descriptors.
        let res = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        assert_eq!(res, 0, "pipe2: {}", io::Error::last_os_error());
        // SAFETY: `pipe2` just made both descriptors; each is owned once, here.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_pipe_is_full_when_it_takes_no_more_bytes() {
        let (read_end, mut write_end) = pipe();
        let capacity = pipe_capacity(&read_end);
        assert_eq!(pipe_capacity(&write_end), capacity);
        assert!(!pipe_is_full(&write_end));
        assert_eq!(bytes_waiting(&read_end), 0);

        let chunk = vec![b'x'; 1000];
        let mut written = 0;
        while let Ok(n) = write_end.write(&chunk) {
            written += n;
        }

        assert!(pipe_is_full(&write_end));
        assert!(written <= capacity, "{written} bytes in a pipe of {capacity}");
        assert_eq!(bytes_waiting(&read_end), written);
        drop(read_end);
    }

    #[test]
    fn messages_to_stall_pass_twice_the_pipe_and_the_buffer() {
        let (read_end, _write_end) = pipe();
        let capacity = pipe_capacity(&read_end);
        let n = messages_to_stall(&read_end, 100, 10);
        assert!(n * 100 >= 2 * (capacity + SERVER_OUTPUT_BUFFER) + 10 * 100);
    }
}
