//! Support for the end-to-end tests in `tests/` (this crate's test targets).
//!
//! The tests run the `server` and `client` binaries as separate processes,
//! the way a user would: the binaries that `cargo test --workspace` built
//! for this very run ([`binary`] says where they are). This crate starts
//! servers on unique queues and free ports, reads their output on threads,
//! and waits for what the tests expect with a deadline. Whatever a test
//! leaves behind is cleaned up on drop, also when the test fails:
//!
//! - [`TestQueue`] unlinks its queue name, and removes what a killed server
//!   leaves under that name in `/dev/shm` (its statistics and journal);
//! - [`Server`] and [`Process`] kill (`SIGKILL`) and reap their process if
//!   it still runs; a server is also killed by the kernel should the test
//!   process die first;
//! - [`TempDir`] removes its directory.
//!
//! Nothing here sleeps to synchronise: every wait is for a condition (a line
//! of output, an exit, a process state, a descriptor count) and gives up
//! with a panic that shows what the server printed after [`DEADLINE`].
//!
//! The POSIX objects the tests make or inspect themselves (a queue made by
//! "someone else", a semaphore held by a stuck reader, a forged statistics
//! page) go through the workspace's `ipc` crate.
//!
//! The modules, by topic:
//!
//! | module | what |
//! | --- | --- |
//! | `binaries` | where the `server` and `client` of this build are; [`SharedBinaries`], copies any user may run |
//! | `test_queue` | [`TestQueue`], [`RawQueue`]: queues of one test |
//! | `server_process` | [`ServerBuilder`], [`Server`]: a server process |
//! | `process` | [`Process`], [`Finished`]: short-lived processes |
//! | `client_run` | running the client: [`client`], [`send`] |
//! | `output_lines` | [`Lines`]: output read line by line, waited for |
//! | `pipe` | a pipe's capacity, fill and room, what the server buffers |
//! | `stats_json` | `client --stats --json`, parsed: [`SourceFigures`] |
//! | `shm_objects` | [`TestSemaphore`], forged shared memory, `/dev/shm` paths |
//! | `journal_header` | the server's output journal: its header, planted ones |
//! | `mqueue_fs` | the mqueue file system and its fields |
//! | `expected_escape` | the escaping rule, written down independently |
//! | `tempdir` | [`TempDir`] |
//! | `tcp_reset` | a TCP reset |

#![warn(missing_docs, missing_debug_implementations)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod binaries;
mod client_run;
mod expected_escape;
mod journal_header;
mod mqueue_fs;
mod output_lines;
mod pipe;
mod process;
mod server_process;
mod shm_objects;
mod stats_json;
mod tcp_reset;
mod tempdir;
mod test_queue;

pub use binaries::{binary, workspace, SharedBinaries};
pub use client_run::{
    client, client_command, client_command_at, client_with_input, send, send_with_priority,
};
pub use expected_escape::escaped;
pub use ipc::Access;
pub use journal_header::{
    journal_header, journal_header_for, journal_name, plant_journal, Header, HEADER_SIZE,
};
pub use mqueue_fs::{
    field, mqueue_fields, mqueue_file_fields, mqueue_limit, mqueue_mount, mqueue_mount_or_skip,
};
pub use output_lines::Lines;
pub use pipe::{bytes_waiting, messages_to_stall, pipe_capacity, pipe_is_full, SERVER_OUTPUT_BUFFER};
pub use process::{run_to_end, Finished, Process};
pub use server_process::{start_server, Input, Server, ServerBuilder};
pub use shm_objects::{create_shared_memory, shm_paths, TestSemaphore};
pub use stats_json::{client_stats, stats_name, stats_of, Json, JsonExt, SourceFigures, SOURCES};
pub use tcp_reset::reset;
pub use tempdir::TempDir;
pub use test_queue::{queue_exists, QueueAttr, RawQueue, TestQueue};

/// How long any expected event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How often a condition that cannot be waited for (a process state, an
/// exit, a count in `/proc`) is looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test of any concurrent run uses: `PREFIX-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Waits until `condition` holds, looking every few milliseconds, and fails
/// the test after [`DEADLINE`].
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_or(what, condition, String::new)
}

/// [`wait_until`], with `context` added to the failure (what the server
/// printed, say).
pub(crate) fn wait_until_or(
    what: &str,
    mut condition: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        if Instant::now() >= deadline {
            panic!("no {what} within {DEADLINE:?}{}", context());
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_within_a_run_and_name_the_process() {
        let (a, b) = (unique("/pbtest"), unique("/pbtest"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("/pbtest-{}-", std::process::id())), "{a}");
    }
}
