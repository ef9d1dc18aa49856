//! Output, read line by line on a thread, and waited for with a deadline.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use crate::DEADLINE;

/// The lines a process writes to one pipe, collected by a thread as they
/// come, without their `\n`. A line that is not UTF-8 (the server's output
/// always is) or a last line without `\n` is kept with a visible marker, so
/// that exact comparisons fail.
#[derive(Clone)]
pub struct Lines {
    what: Arc<str>,
    shared: Arc<(Mutex<Collected>, Condvar)>,
}

#[derive(Default)]
struct Collected {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts a thread that reads `source` to its end.
    pub fn collect(what: &str, source: impl Read + Send + 'static) -> Lines {
        let lines = Lines { what: what.into(), shared: Arc::default() };
        let sink = lines.clone();
        thread::spawn(move || sink.read_all(source));
        lines
    }

    fn read_all(&self, source: impl Read) {
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let complete = buf.last() == Some(&b'\n');
                    if complete {
                        buf.pop();
                    }
                    let mut line = match String::from_utf8(buf.clone()) {
                        Ok(line) => line,
                        Err(_) => format!("<not UTF-8: {:?}>", String::from_utf8_lossy(&buf)),
                    };
                    if !complete {
                        line.push_str("<no newline at end>");
                    }
                    let (state, changed) = &*self.shared;
                    lock(state).lines.push(line);
                    changed.notify_all();
                }
            }
        }
        let (state, changed) = &*self.shared;
        lock(state).closed = true;
        changed.notify_all();
    }

    /// The lines so far.
    pub fn snapshot(&self) -> Vec<String> {
        lock(&self.shared.0).lines.clone()
    }

    /// Waits until `done` says yes to the lines so far (it is asked again
    /// after each new line, and once more at end of file), and returns them.
    pub fn wait_until(&self, what: &str, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
        let (state, changed) = &*self.shared;
        let deadline = Instant::now() + DEADLINE;
        let mut collected = lock(state);
        loop {
            if done(&collected.lines) {
                return collected.lines.clone();
            }
            let now = Instant::now();
            if collected.closed || now >= deadline {
                let why = if collected.closed { "end of output" } else { "deadline" };
                panic!(
                    "{}: {why} while waiting for {what}; last lines:\n{}",
                    self.what,
                    tail(&collected.lines, 30)
                );
            }
            collected =
                changed.wait_timeout(collected, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Waits for the first line for which `matches` holds, and returns it.
    pub fn wait_line(&self, what: &str, mut matches: impl FnMut(&str) -> bool) -> String {
        let mut checked = 0;
        let mut found = None;
        self.wait_until(what, |lines| {
            found = lines[checked..].iter().find(|l| matches(l)).cloned();
            checked = lines.len();
            found.is_some()
        });
        found.expect("wait_until returned without a match")
    }

    /// Waits for a line that is exactly `line`.
    pub fn wait_exact(&self, line: &str) {
        self.wait_line(&format!("the line {line:?}"), |l| l == line);
    }

    /// Waits for a line that contains `needle`, and returns it.
    pub fn wait_containing(&self, needle: &str) -> String {
        self.wait_line(&format!("a line containing {needle:?}"), |l| l.contains(needle))
    }

    /// Waits until there are at least `n` lines, and returns all of them.
    pub fn wait_count(&self, n: usize) -> Vec<String> {
        self.wait_until(&format!("{n} lines"), |lines| lines.len() >= n)
    }

    /// Waits for the end of the output (the writer closed its end), and
    /// returns every line.
    pub fn wait_closed(&self) -> Vec<String> {
        let (state, changed) = &*self.shared;
        let deadline = Instant::now() + DEADLINE;
        let mut collected = lock(state);
        while !collected.closed {
            let now = Instant::now();
            assert!(now < deadline, "{}: still open after {DEADLINE:?}", self.what);
            collected =
                changed.wait_timeout(collected, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        collected.lines.clone()
    }
}

/// The collected lines, also after a test failed while it held them (its
/// panic leaves the lock poisoned; the lines are whole all the same).
fn lock(state: &Mutex<Collected>) -> MutexGuard<'_, Collected> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last `n` of `lines`, indented and shortened, for a failure message.
pub(crate) fn tail(lines: &[String], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    let shown: Vec<String> = lines[start..].iter().map(|l| format!("  {}", shorten(l))).collect();
    if shown.is_empty() {
        "  (none)".to_string()
    } else {
        shown.join("\n")
    }
}

fn shorten(line: &str) -> String {
    if line.len() <= 300 {
        return line.to_string();
    }
    let mut end = 300;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &line[..end], line.len())
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let collected = lock(&self.shared.0);
        f.debug_struct("Lines")
            .field("what", &self.what)
            .field("lines", &collected.lines.len())
            .field("closed", &collected.closed)
            .finish()
    }
}
