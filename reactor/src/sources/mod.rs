//! Ready-made handlers, to register as they are. The crate's
//! documentation lists them, each with what it is for: see
//! [the list](crate#sources).
//!
//! What they share: each owns the descriptors it makes, close-on-exec and
//! non-blocking, and each call does a bounded amount of work, so that no
//! source can starve the others.

mod blocking;
mod channel;
mod child;
mod connection;
mod fanout;
mod fd;
mod fifo;
mod follow;
mod lines;
mod listener;
mod mqueue;
mod outbox;
mod process;
mod signal;
mod supervisor;
mod timerfd;
mod waker;
mod writer;

pub use blocking::Blocking;
pub use channel::{channel, Receiver, SendError, Sender};
pub use child::{Child, ChildHandle};
pub use connection::Connection;
pub use fanout::{Fanout, SlowReader};
pub use fd::Fd;
pub use follow::{Change, DirWatch};
pub use lines::{split_lines, Callbacks, LineReader, LineSink};
pub use listener::{ListenAddr, Listener, Peer};
pub use mqueue::{QueueReader, QueueWriter, QueueWriterHandle};
pub use outbox::{Output, StreamState};
pub use process::AtShutdown;
pub use signal::{Signal, SignalFd};
pub use supervisor::{Restart, Supervisor, SupervisorHandle};
pub use timerfd::Timer;
pub use waker::{WakeHandle, Waker};
pub use writer::Writer;
