//! The postbox server's parts: the command line and its flag parser, the
//! queue handler, the stream sources, the output, the room in its pipe,
//! its journal and its escaping rule, the statistics in shared memory and
//! their page's layout, the server's lifecycle, and its one way to call
//! the kernel ([`sys`]).
//!
//! The `server` binary puts them together (`src/main.rs`); the client reads
//! the statistics through [`stats_page`] and shares [`flags`] and
//! [`queue_name`]; the benchmarks build the same server on mio from these
//! parts.
//!
//! ```
//! // One message, one line: what the server prints for a message.
//! let mut line = Vec::new();
//! server::escape::escape_into(&mut line, b"two\nlines\x07");
//! assert_eq!(line, b"two\\nlines\\x07");
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod args;
pub mod escape;
pub mod flags;
pub mod journal;
pub mod lifecycle;
pub mod output;
pub mod pipe_room;
pub mod queue;
pub mod queue_name;
pub mod stats;
pub mod stats_page;
pub mod streams;
pub mod sys;

/// The signals that stop the server cleanly: SIGINT, SIGTERM, and SIGHUP
/// (the terminal went away). They also end a wait on a full stdout.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// `e`, its message preceded by `what` (`queue /postbox: ...`), its kind
/// kept: the server's one way to say which object an error is about.
pub(crate) fn context(what: impl std::fmt::Display, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `docs/server.md`, compiled here so that any Rust block it holds is a doc
/// test of this crate (`cargo test -p server --doc`), as `docs/reactor.md`
/// is of the reactor's.
#[cfg(doctest)]
#[doc = include_str!("../../docs/server.md")]
pub struct ServerGuide;

/// `docs/performance.md`, for the same reason.
#[cfg(doctest)]
#[doc = include_str!("../../docs/performance.md")]
pub struct PerformanceGuide;
