//! `client --status`: the server's output journal, and the lines that wait
//! in it for the next server.
//!
//! The journal is opened without blocking or following a link, its type
//! checked with `fstat` (a FIFO planted under its name cannot hang the
//! status), read with `pread` only (an object shrunk under the reader
//! cannot fault it), and checked as the server checks it before a replay:
//! `server::journal::inspect`. Its mode is 0600, so only the server's user
//! can read it.

use std::io;

use server::journal::{inspect, journal_name};

/// One line for the status: what the journal of `queue`, whose owner is
/// `owner`, holds.
pub fn describe(queue: &str, owner: u32) -> String {
    let name = journal_name(queue);
    let what = match inspect(&name, false, owner) {
        Ok(None) => "none".to_string(),
        Ok(Some((_, left))) => {
            let pid = left.header.pid;
            let alive = if left.pid_alive() { "alive" } else { "gone" };
            match left.lines() {
                0 => format!("{name}: nothing waiting (pid {pid}, {alive})"),
                lines => format!(
                    "{name}: {lines} line(s) ({} bytes) not yet printed, left by pid {pid} ({alive}); \
                     the next server on this queue prints them first",
                    left.unwritten.len()
                ),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            format!("{name}: exists, but only the server's user may read it (mode 0600)")
        }
        Err(e) => e.to_string(),
    };
    format!("journal           {what}\n")
}

/// The journal line for a queue that does not exist, if a journal does
/// (this user's: a server killed during its shutdown drain left it).
pub fn orphan(queue: &str) -> String {
    let me = server::sys::geteuid();
    match inspect(&journal_name(queue), false, me) {
        Ok(None) => String::new(),
        _ => describe(queue, me),
    }
}
