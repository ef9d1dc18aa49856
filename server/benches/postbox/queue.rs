//! Bare POSIX message queue calls for the senders and the raw receivers.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::RawFd;

use crate::cleanup::QueueName;

/// Capacity of every benchmark queue, in messages: the unprivileged default.
pub const CAPACITY: i64 = 10;

/// An open queue descriptor, closed on drop.
pub struct Queue(libc::mqd_t);

impl Queue {
    /// Creates a queue of [`CAPACITY`] messages of `size` bytes, to receive from.
    pub fn create(name: &QueueName, size: usize, nonblocking: bool) -> io::Result<Queue> {
        // SAFETY: `mq_attr` is a plain C struct; zero means "no flags".
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        attr.mq_maxmsg = CAPACITY;
        attr.mq_msgsize = size as libc::c_long;
        let mut flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDONLY | libc::O_CLOEXEC;
        if nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        // SAFETY: the name is NUL-terminated and `attr` lives across the call.
        let fd = unsafe { libc::mq_open(name.c_name().as_ptr(), flags, 0o600, &attr) };
        Queue::checked(fd)
    }

    /// Opens an existing queue to send to, blocking while it is full.
    pub fn open_to_send(name: &str) -> io::Result<Queue> {
        let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the name is NUL-terminated; without O_CREAT no more arguments are read.
        let fd = unsafe { libc::mq_open(name.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        Queue::checked(fd)
    }

    fn checked(fd: libc::mqd_t) -> io::Result<Queue> {
        if fd == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(Queue(fd))
        }
    }

    pub fn fd(&self) -> RawFd {
        self.0
    }

    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        // SAFETY: the pointer and length describe a live slice.
        let res = unsafe { libc::mq_send(self.0, message.as_ptr().cast(), message.len(), 0) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives one message into `buf` (at least the message size), waiting
    /// no later than `deadline` (CLOCK_REALTIME) if the queue blocks.
    pub fn receive(&self, buf: &mut [u8], deadline: &libc::timespec) -> io::Result<usize> {
        let mut priority = 0;
        // SAFETY: `buf` is writable for its length; `priority` and `deadline` live across the call.
        let n = unsafe {
            libc::mq_timedreceive(self.0, buf.as_mut_ptr().cast(), buf.len(), &mut priority, deadline)
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Receives one message without a deadline, as the server does: on a
    /// non-blocking descriptor, `WouldBlock` when the queue is empty.
    pub fn receive_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut priority = 0;
        // SAFETY: `buf` is writable for its length and `priority` for a u32.
        let n = unsafe { libc::mq_receive(self.0, buf.as_mut_ptr().cast(), buf.len(), &mut priority) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the descriptor is open and ours alone.
        unsafe { libc::mq_close(self.0) };
    }
}

/// A message of `size` printable bytes: nothing in it needs escaping.
pub fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The wall-clock time `seconds` from now, for `mq_timedreceive`.
pub fn deadline_in(seconds: i64) -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is writable.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec += seconds;
    ts
}
