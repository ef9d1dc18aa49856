//! The benchmark's own queues, on the workspace's `ipc` crate: the senders'
//! and the raw receivers'.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use ipc::{Access, MessageQueue, QueueOptions};

use crate::cleanup::QueueName;

/// Capacity of every benchmark queue, in messages: the unprivileged default.
pub const CAPACITY: i64 = 10;

/// An open queue, closed on drop.
pub struct Queue(MessageQueue);

impl Queue {
    /// Creates a queue of [`CAPACITY`] messages of `size` bytes, to receive from.
    pub fn create(name: &QueueName, size: usize, nonblocking: bool) -> io::Result<Queue> {
        let options = QueueOptions {
            access: Access::Receive,
            max_messages: CAPACITY,
            message_size: size as i64,
            nonblocking,
            ..QueueOptions::default()
        };
        MessageQueue::create(name.as_str(), &options).map(Queue)
    }

    /// Opens an existing queue to send to, blocking while it is full.
    pub fn open_to_send(name: &str) -> io::Result<Queue> {
        MessageQueue::open(name, Access::Send).map(Queue)
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        self.0.send(message, 0)
    }

    pub fn send_with_priority(&self, message: &[u8], priority: u32) -> io::Result<()> {
        self.0.send(message, priority)
    }

    /// Receives one message into `buf` (at least the message size), waiting
    /// at most `timeout` if the queue blocks.
    pub fn receive(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.0.receive_timeout(buf, timeout).map(|(len, _)| len)
    }

    /// Receives one message without a deadline, as the server does: on a
    /// non-blocking descriptor, `WouldBlock` when the queue is empty.
    pub fn receive_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.receive(buf).map(|(len, _)| len)
    }
}

/// A message of `size` printable bytes: nothing in it needs escaping.
pub fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}
