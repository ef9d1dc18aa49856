//! The ceiling: one sender process and one receiver (the conductor) on a
//! queue of 10 messages, nothing printed. What no server can beat.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::children::Worker;
use crate::cleanup::QueueName;
use crate::clock::{self, now_ns};
use crate::queue::Queue;

/// How long a receiver waits for the next message before giving up.
const STALL_SECONDS: i64 = 10;

/// How the receiver waits for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// `mq_receive` on a blocking descriptor.
    Blocking,
    /// A non-blocking descriptor in a level-triggered epoll set: wait, then
    /// receive until `EAGAIN`.
    Epoll,
}

/// Messages per second from the first send to the last receive.
pub fn messages_per_second(how: Receive, size: usize, count: u64) -> f64 {
    let name = QueueName::new();
    let queue = Queue::create(&name, size, how == Receive::Epoll).expect("bench setup: creating a queue");
    let args = [name.as_str().to_string(), count.to_string(), size.to_string()];
    let mut sender = Worker::start("sender", &args);
    sender.go();
    let received = match how {
        Receive::Blocking => receive_blocking(&queue, size, count),
        Receive::Epoll => receive_with_epoll(&queue, size, count),
    };
    let last = received.expect("raw receiver failed");
    let (first, _) = sender.finish();
    clock::rate(count, first, last)
}

fn receive_blocking(queue: &Queue, size: usize, count: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; size];
    let patience = std::time::Duration::from_secs(STALL_SECONDS as u64 * 6);
    for _ in 0..count {
        queue.receive(&mut buf, patience)?;
    }
    Ok(now_ns())
}

fn receive_with_epoll(queue: &Queue, size: usize, count: u64) -> io::Result<u64> {
    let epoll = epoll_for(queue)?;
    let mut buf = vec![0u8; size];
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    let mut received = 0;
    while received < count {
        // SAFETY: `event` is one writable element.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), &mut event, 1, STALL_SECONDS as i32 * 1000) };
        match n {
            0 => return Err(io::Error::new(io::ErrorKind::TimedOut, "no message for 10 s")),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            _ => loop {
                match queue.receive_now(&mut buf) {
                    Ok(_) => received += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            },
        }
    }
    Ok(now_ns())
}

fn epoll_for(queue: &Queue) -> io::Result<OwnedFd> {
    // SAFETY: plain call.
    let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `epoll_create1` just returned this descriptor; nobody else owns it.
    let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
    // SAFETY: both descriptors are open; `event` lives across the call.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, queue.fd(), &mut event) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(epoll)
}
