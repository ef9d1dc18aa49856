//! A minimal single-threaded event loop on Linux epoll.
//!
//! A [`Reactor`] owns a set of [`Handler`]s, each of which owns one file
//! descriptor. The reactor waits until some descriptors are ready and calls
//! their handlers; a handler reacts, and through its [`Context`] may register
//! new handlers, remove itself or others, change what it waits for, or stop
//! the loop. That is the whole model; the [`sources`] module has ready-made
//! handlers for signals, listening sockets, line-based streams and timers.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! use reactor::sources::Timer;
//! use reactor::Reactor;
//!
//! # fn main() -> std::io::Result<()> {
//! let mut reactor = Reactor::new()?;
//! let ticks = Rc::new(Cell::new(0));
//! let seen = ticks.clone();
//! reactor.register(Timer::every(Duration::from_millis(1), move |_expirations, ctx| {
//!     seen.set(seen.get() + 1);
//!     if seen.get() == 3 {
//!         ctx.stop();
//!     }
//! })?)?;
//! reactor.run()?;
//! assert_eq!(ticks.get(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! Design notes, the handler contract in full, and a tutorial live in
//! `docs/reactor.md` in the repository.

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
