//! The postbox server's parts: the command line, the queue handler, the
//! stream sources, the output, its journal and its escaping rule, the statistics in
//! shared memory and their layout, and the server's lifecycle.
//!
//! The `server` binary puts them together (`src/main.rs`); the client reads
//! the statistics through [`layout`] and shares [`cli`]; the benchmarks
//! build the same server on mio from these parts.
//!
//! ```
//! // One message, one line: what the server prints for a message.
//! let mut line = Vec::new();
//! server::escape::escape_into(&mut line, b"two\nlines\x07");
//! assert_eq!(line, b"two\\nlines\\x07");
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod args;
pub mod cli;
pub mod escape;
pub mod journal;
pub mod layout;
pub mod lifecycle;
pub mod output;
pub mod queue;
pub mod stats;
pub mod streams;

/// The signals that stop the server cleanly: SIGINT, SIGTERM, and SIGHUP
/// (the terminal went away). They also end a wait on a full stdout.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
