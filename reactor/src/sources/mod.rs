//! Ready-made handlers that other programs can use as they are.
//!
//! Each owns the descriptor it creates (always `O_CLOEXEC` and non-blocking)
//! and does a bounded amount of work per readiness, so that none of them can
//! starve the others.

mod blocking;
mod channel;
mod child;
mod connection;
mod fanout;
mod fd;
mod fifo;
mod idle;
mod lines;
mod listener;
mod mqueue;
mod outbox;
mod signal;
mod timerfd;
mod waker;
mod writer;

pub use blocking::Blocking;
pub use channel::{channel, Receiver, SendError, Sender};
pub use child::{AtShutdown, Child, ChildHandle};
pub use connection::Connection;
pub use fanout::{Fanout, SlowReader};
pub use fd::Fd;
pub use fifo::Fifo;
pub use idle::Idle;
pub use lines::{split_lines, Callbacks, LineReader, LineSink};
pub use listener::{ListenAddr, Listener, Peer};
pub use mqueue::{QueueReader, QueueWriter, QueueWriterHandle};
pub use outbox::{Output, StreamState};
pub use signal::{Signal, SignalFd};
pub use timerfd::Timer;
pub use waker::{WakeHandle, Waker};
pub use writer::Writer;
