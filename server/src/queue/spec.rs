//! What the server asks of its queue: its name, size and mode
//! ([`QueueSpec`]), how it learns that messages arrived ([`Notify`]), and
//! how it came to own it ([`Origin`]).

/// How a queue is to be created.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Its name, `/NAME`.
    pub name: String,
    /// Capacity in messages.
    pub max_messages: i64,
    /// The largest message in bytes.
    pub message_size: i64,
    /// Its permission bits, exactly.
    pub mode: libc::mode_t,
}

/// How the server came to own its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made by this server.
    Created,
    /// Left behind by a server that is gone, with this many messages in it.
    Adopted {
        /// Messages waiting when it was adopted.
        waiting: i64,
    },
}

/// How the server learns that messages arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// The queue's descriptor is watched by epoll (the default on Linux).
    Epoll,
    /// `mq_notify` sends a real-time signal, read from a signalfd.
    Signal,
}
