//! A small single-threaded event loop on Linux epoll.
//!
//! A [`Reactor`] holds handlers, each of which owns one descriptor. A round
//! of [`Reactor::run`] waits until descriptors are ready or a timer is due,
//! then calls the [`Handler`]s and the timers concerned; every callback is
//! lent `&mut` [`Context`], the one door to the loop (register, remove,
//! pause, timers, stop, exit). Outside the loop the `Reactor` is that door
//! too: it dereferences to its `Context`. Handlers are written by hand or
//! taken ready-made from [`sources`] (the list below).
//!
//! ```
//! use std::time::Duration;
//!
//! use reactor::{sources::channel, Reactor};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut reactor = Reactor::new()?;
//! let (sender, receiver) = channel::<i32>()?; // from any thread to this one
//! let worker = std::thread::spawn(move || (1..=3).try_for_each(|n| sender.send(n * n)));
//! let (mut sum, mut count) = (0, 0);
//! reactor.register(receiver.on_message(move |square, ctx| {
//!     (sum, count) = (sum + square, count + 1);
//!     if count == 3 {
//!         ctx.exit(sum); // the loop ends its round and shuts down
//!     }
//! }))?;
//! reactor.after(Duration::from_secs(10), |ctx| ctx.exit(-1)); // a timer, in case
//! reactor.run()?;
//! # worker.join().expect("the worker does not panic").expect("the loop took every item");
//! assert_eq!(reactor.exit_code(), Some(14)); // std::process::exit(14) in a program
//! # Ok(())
//! # }
//! ```
//!
//! # Sources
//!
//! This is the one list of the ready-made handlers; each links to its
//! reference.
//!
//! Bytes in:
//! - [`LineReader`](sources::LineReader): bytes cut into lines, from a
//!   stream (a pipe, a socket, a terminal); from any descriptor with
//!   [`stdin`](sources::LineReader::stdin) or
//!   [`for_any_fd`](sources::LineReader::for_any_fd) (a regular file or
//!   `/dev/null`, which epoll refuses, read a piece per round); from a
//!   named pipe with [`fifo`](sources::LineReader::fifo); from a file as it
//!   grows with [`follow`](sources::LineReader::follow) (`tail -F`, on
//!   inotify).
//! - [`DirWatch`](sources::DirWatch): the names created, removed and moved
//!   in a directory, each a [`Change`](sources::Change), on inotify.
//! - [`Listener`](sources::Listener): a listening TCP or Unix socket, with a
//!   handler or a closure for each accepted connection.
//! - [`QueueReader`](sources::QueueReader): the messages of a POSIX message
//!   queue, with their priorities.
//! - [`SignalFd`](sources::SignalFd): signals (named by
//!   [`Signal`](sources::Signal)) as events, through a `signalfd`.
//!
//! Bytes out, each bounded, each able to hold whoever feeds it (any source,
//! by its [`Token`]):
//! - [`Output`](sources::Output): the handle that a `Writer`, a
//!   `Connection` and a child's stdin return, the one place that says when
//!   a stream is full, how a producer is held, and how a stream ends (its
//!   [`StreamState`](sources::StreamState)).
//! - [`Writer`](sources::Writer): a buffer out to a pipe, a socket or
//!   stdout.
//! - [`QueueWriter`](sources::QueueWriter): messages into a message queue,
//!   held while it is full, through its
//!   [`QueueWriterHandle`](sources::QueueWriterHandle).
//! - [`Connection`](sources::Connection): a stream socket both ways, lines in
//!   and an `Output` out, accepted or connected (TCP, Unix) without blocking.
//! - [`Fanout`](sources::Fanout): a line to every connection of a group, with
//!   a [`SlowReader`](sources::SlowReader) policy for one that lags.
//!
//! Other processes and threads:
//! - [`Child`](sources::Child): a child process, its exit learnt through a
//!   pidfd, its output as lines, its stdin an `Output`; signalled through
//!   its [`ChildHandle`](sources::ChildHandle), ended at shutdown as its
//!   [`AtShutdown`](sources::AtShutdown) says.
//! - [`Supervisor`](sources::Supervisor): a child run again when it ends,
//!   with a [`Restart`](sources::Restart) policy, a back-off, a limit and a
//!   watchdog; steered through its
//!   [`SupervisorHandle`](sources::SupervisorHandle).
//! - [`channel`](sources::channel): items of any type from other threads
//!   ([`Sender`](sources::Sender)) to a closure on the loop's
//!   ([`Receiver`](sources::Receiver)).
//! - [`Waker`](sources::Waker): a wake-up from another thread, with no data.
//! - [`Blocking`](sources::Blocking): a blocking call with no descriptor (a
//!   `sem_wait`) on a thread of its own, each result handed to the loop.
//!
//! Time, and anything else:
//! - [`Timer`](sources::Timer): a `timerfd`. Timers that need no descriptor
//!   are [`Context::after`] and [`Context::every`].
//! - [`Fd`](sources::Fd): any descriptor of yours with a closure, for what no
//!   source covers.
//!
//! The guide, `docs/reactor.md` in the repository, gives the reasons: the
//! model at length, the phases of a round, ownership, the handler's
//! contract, a tutorial, a comparison with mio, calloop, libuv and Redis's
//! `ae`, and recipes for the course's exercises. Whole programs are in
//! `examples/`.

#![warn(missing_docs, missing_debug_implementations)]

mod callback;
mod event;
mod handler;
mod reactor;
pub mod sources;
mod sys;
mod timer_heap;

pub use event::{Interest, Readiness, Token};
pub use handler::{Handler, RegisterError};
pub use reactor::{Context, Reactor, StopFlag};
pub use timer_heap::TimerKey;

/// The crate's `README.md`, whose example is a doc test too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

/// `docs/reactor.md`, compiled here so that its Rust blocks are doc tests
/// (`cargo test -p reactor --doc`) and cannot drift from the code. Only in
/// doc tests: the page is outside the package.
#[cfg(doctest)]
#[doc = include_str!("../../docs/reactor.md")]
pub struct ReactorGuide;

/// `docs/architecture.md`, for the same reason: any Rust block it holds is
/// a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../docs/architecture.md")]
pub struct ArchitectureGuide;
