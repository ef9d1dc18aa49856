//! The sending end of the server's queue: opened without `O_CREAT`, sent
//! to with `mq_timedsend`, closed on drop.

use std::io;
use std::time::Duration;

use ipc::{Access, MessageQueue};

use crate::trust;

/// How long one wait for room lasts before the client checks that the
/// queue is still there.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// An open, write-only queue.
#[derive(Debug)]
pub struct Queue {
    queue: MessageQueue,
    message_size: usize,
}

impl Queue {
    /// Opens an existing queue for writing; never creates one. Refuses
    /// (`PermissionDenied`) a queue whose owner is not `trusted`, whatever
    /// its mode (who else may read it is its owner's choice): checked on the
    /// descriptor, so the queue sent into is the queue checked.
    pub fn open(name: &str, nonblock: bool, trusted: u32) -> io::Result<Queue> {
        let queue = MessageQueue::open_with(name, Access::Send, nonblock).map_err(not_running)?;
        if let Some(why) = trust::refusal(&queue.info()?, trusted) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("queue {name}: {why}; nothing sent"),
            ));
        }
        let message_size = queue.attributes()?.message_size as usize;
        Ok(Queue { queue, message_size })
    }

    /// Sends one message. With a timeout, waits at most that long for room;
    /// on a non-blocking queue, fails at once when it is full.
    pub fn send(&self, message: &[u8], priority: u32, timeout: Option<Duration>) -> io::Result<()> {
        let name = self.queue.name();
        if message.len() > self.message_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message is {} bytes; queue {name} takes at most {} bytes",
                    message.len(),
                    self.message_size
                ),
            ));
        }
        // Without a timeout, wait in slices of a second, and between them
        // make sure the queue is still there: a server that stops removes
        // it, and a wait on a removed queue would never end.
        let slice = timeout.unwrap_or(WAIT_SLICE);
        loop {
            match self.queue.send_timeout(message, priority, slice) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(full(name, "it is full (--nonblock)"));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut && timeout.is_none() => {
                    self.check_still_there("waiting for room in it")?
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let waited = slice.as_secs_f64();
                    return Err(full(name, &format!("it stayed full for {waited} s (--timeout)")));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fails if the queue's name no longer names the queue this client has
    /// open: the server stopped and removed it (and perhaps another queue
    /// took the name), so what was sent into it may never be read.
    /// `while_doing` says what the client was doing meanwhile.
    pub fn check_still_there(&self, while_doing: &str) -> io::Result<()> {
        if self.queue.is_still_named()? {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "queue {} was removed while {while_doing} (the server stopped): \
                 what was sent into it may not have been read",
                self.queue.name()
            ),
        ))
    }
}

/// Whether a live server owns `queue`. A server holds an exclusive `flock`
/// on its queue for its whole life, and the kernel drops it when the server
/// dies; so if a shared lock can be had, no server is there. (The shared
/// lock goes when `queue` is closed.)
pub fn held_by_server(queue: &MessageQueue) -> io::Result<bool> {
    Ok(!queue.try_lock(false)?)
}

fn full(name: &str, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, format!("queue {name} is full: {why}"))
}

/// A queue that does not exist, in the client's words: its server is the
/// one that makes it.
pub fn not_running(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(e.kind(), format!("{e}: is the server running?")),
        _ => e,
    }
}
