//! Queues that belong to one test: a unique name removed at the end
//! ([`TestQueue`]), and a descriptor the test holds itself ([`RawQueue`]).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use ipc::{Access, MessageQueue, QueueOptions};

use crate::unique;

/// A queue name for one test, `/pbtest-<pid>-<n>`, unlinked on drop whoever
/// created the queue (a server that was killed leaves it behind), also when
/// the test fails.
#[derive(Debug)]
pub struct TestQueue {
    name: String,
}

impl TestQueue {
    /// A fresh name; no queue is created.
    pub fn new() -> TestQueue {
        TestQueue { name: unique("/pbtest") }
    }

    /// A guard for a well-known name such as `/postbox`, for a test that
    /// must not create that queue: should it be created all the same, it is
    /// removed at the end of the test. The queue must not exist yet.
    pub fn well_known(name: &str) -> TestQueue {
        assert!(!queue_exists(name), "a {name} queue exists on this machine: this test needs it absent");
        TestQueue { name: name.to_string() }
    }

    /// The name, with its leading slash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a queue of this name exists.
    pub fn exists(&self) -> bool {
        queue_exists(&self.name)
    }

    /// Removes the queue's name, as `rm /dev/mqueue/NAME` would; panics if
    /// there is no such queue.
    pub fn unlink(&self) {
        MessageQueue::unlink(&self.name).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The POSIX shared memory objects and named semaphores (files in
    /// `/dev/shm`) whose names start with the queue's name and a dot, such
    /// as the server's statistics `NAME.stats`.
    pub fn shared_memory(&self) -> Vec<PathBuf> {
        let base = &self.name[1..];
        let prefixes = [format!("{base}."), format!("sem.{base}.")];
        let Ok(entries) = fs::read_dir("/dev/shm") else { return Vec::new() };
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                prefixes.iter().any(|p| entry.file_name().to_string_lossy().starts_with(p.as_str()))
            })
            .map(|entry| entry.path())
            .collect()
    }
}

impl Default for TestQueue {
    fn default() -> Self {
        TestQueue::new()
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        // NotFound (never made, or already removed) is the usual case.
        let _ = MessageQueue::unlink(&self.name);
        // A server killed with SIGKILL also leaves its statistics behind.
        for path in self.shared_memory() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Whether a queue exists: it can be opened, or fails to open for another
/// reason than `NotFound` (permissions).
pub fn queue_exists(name: &str) -> bool {
    match MessageQueue::open_with(name, Access::Receive, true) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => true,
        Err(e) => panic!("{e}"),
    }
}

/// A queue descriptor the test itself holds, to make or inspect queues
/// without the server; closed on drop. Its methods panic on errors: the
/// test fails, naming the queue.
#[derive(Debug)]
pub struct RawQueue {
    queue: MessageQueue,
}

/// What `mq_getattr` says about a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAttr {
    /// Capacity in messages.
    pub max_messages: i64,
    /// The largest message, in bytes.
    pub message_size: i64,
    /// Messages waiting now.
    pub current: i64,
}

impl RawQueue {
    /// Creates a queue that must not exist yet (`O_CREAT|O_EXCL`),
    /// read-write, with exactly `mode`: a queue made by someone else than
    /// the server.
    pub fn create(
        name: &str,
        max_messages: i64,
        message_size: i64,
        mode: libc::mode_t,
    ) -> io::Result<RawQueue> {
        let options = QueueOptions { max_messages, message_size, mode, ..QueueOptions::default() };
        Ok(RawQueue { queue: MessageQueue::create(name, &options)? })
    }

    /// Opens an existing queue for `access`.
    pub fn open(name: &str, access: Access) -> io::Result<RawQueue> {
        Ok(RawQueue { queue: MessageQueue::open(name, access)? })
    }

    /// Sends one message; waits if the queue is full.
    pub fn send(&self, message: &[u8], priority: u32) {
        self.queue.send(message, priority).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The queue's attributes.
    pub fn attributes(&self) -> QueueAttr {
        let attr = self.queue.attributes().unwrap_or_else(|e| panic!("{e}"));
        QueueAttr {
            max_messages: attr.max_messages,
            message_size: attr.message_size,
            current: attr.current_messages,
        }
    }

    /// The permission bits of the queue.
    pub fn mode(&self) -> u32 {
        self.queue.info().unwrap_or_else(|e| panic!("{e}")).mode
    }

    /// The descriptor, for calls the helpers do not wrap (`mq_notify` with
    /// `SIGEV_NONE`).
    pub fn raw(&self) -> RawFd {
        self.queue.as_raw_fd()
    }
}
