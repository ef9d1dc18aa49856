//! The course's POSIX IPC objects, safe: [`MessageQueue`],
//! [`SharedMemory`] (with typed arrays of records or atomics,
//! [`SharedArray`]) and [`NamedSemaphore`], and the naming rule they share
//! ([`name_problem`]).
//!
//! Each type owns what it opened and closes it on drop (`mq_close`,
//! `close`, `sem_close`); removing the name (`unlink`) is a separate,
//! explicit step, as in C: the object outlives its creator until then.
//! Unless it is told to [`remove_on_drop`](SharedMemory::remove_on_drop),
//! as `create_or_open` ([`SharedMemory::create_or_open`] and the others)
//! tells the object it created, and only that one: then the creator's drop
//! removes the name, on every way out short of `SIGKILL`.
//! Every error names the object and says what went wrong in words
//! (`queue /x does not exist (not created yet, or removed since)`), and keeps the
//! `io::ErrorKind` of the errno, so a caller can still match on it.
//! Objects are created with exactly the mode asked for: the umask takes
//! nothing away.
//!
//! ```
//! use std::time::Duration;
//! use ipc::{Access, MessageQueue, NamedSemaphore, QueueOptions, SharedMemory};
//!
//! # fn main() -> std::io::Result<()> {
//! let name = format!("/ipc-crate-doc-{}", std::process::id());
//!
//! // A queue: the receiver creates it, a sender opens it, sends, closes.
//! let options = QueueOptions { max_messages: 4, message_size: 128, ..Default::default() };
//! let queue = MessageQueue::create(&name, &options)?;
//! MessageQueue::open(&name, Access::Send)?.send(b"ping", 0)?;
//! let mut buf = [0; 128];
//! let (len, _priority) = queue.receive_timeout(&mut buf, Duration::from_secs(1))?;
//! assert_eq!(&buf[..len], b"ping");
//! MessageQueue::unlink(&name)?;
//!
//! // Shared memory guarded by a semaphore.
//! let shm = SharedMemory::create(&name, 8, 0o600)?;
//! let lock = NamedSemaphore::create(&name, 0o600, 1)?;
//! lock.wait()?;
//! shm.write_at(&42u64.to_ne_bytes(), 0)?;
//! lock.post()?;
//! assert_eq!(shm.view::<u64>()?.read(), 42);
//! SharedMemory::unlink(&name)?;
//! NamedSemaphore::unlink(&name)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, missing_debug_implementations)]

mod array;
mod info;
mod lock;
mod mqueue;
mod name;
mod open;
mod plain;
mod semaphore;
mod shm;
pub mod sigbus;
mod sys;

pub use array::{Atomic, Element, SharedArray};
pub use info::ObjectInfo;
pub use lock::SemaphoreGuard;
pub use mqueue::{mqueue_mount, Access, MessageQueue, QueueAttributes, QueueOptions};
pub use name::{name_problem, NAME_MAX};
pub use plain::Plain;
pub use semaphore::NamedSemaphore;
pub use shm::{Mapping, SharedMemory, View};

/// The crate's `README.md`, whose example is a doc test too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;

/// `docs/ipc.md`, compiled here so that any Rust block it holds is a doc
/// test of this crate (`cargo test -p ipc --doc`). Only in doc tests: the
/// page is outside the package.
#[cfg(doctest)]
#[doc = include_str!("../../docs/ipc.md")]
pub struct IpcGuide;

/// `docs/exercise.md`, for the same reason.
#[cfg(doctest)]
#[doc = include_str!("../../docs/exercise.md")]
pub struct ExerciseGuide;
