//! The one sink for messages: a buffer for stdout, flushed once per loop
//! round and whenever it holds more than a pipe can take.
//!
//! When stdout is a pipe, the server writes through a private, non-blocking
//! open file of that pipe (`/proc/self/fd/1` opened anew: its flags are its
//! own, unlike a `dup`'s); when it is a socket, with `send(MSG_DONTWAIT)`. A
//! reader that stops reading then makes the server wait in `poll`, where a
//! stop can still reach it, instead of in a `write` that nothing but
//! `SIGKILL` could end. (A terminal or a file is written as it is.)

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::escape::escape_into;
use crate::stats::{Counters, Source};

/// The capacity of a pipe: past this, a single write would stall the loop.
const FLUSH_AT: usize = 64 * 1024;

/// The output shared by every handler of the server.
pub type SharedOutput = Rc<RefCell<Output>>;

/// How long a stopping server waits for a reader that takes nothing.
const PATIENCE_WHEN_STOPPING: Duration = Duration::from_secs(1);

/// Buffered lines for a descriptor (stdout), one line per message, and
/// the count of what went through it.
pub struct Output {
    fd: RawFd,
    /// The private open file behind `fd`, when stdout is a pipe.
    _private: Option<OwnedFd>,
    /// Stdout is a socket: written with `send(MSG_DONTWAIT)`.
    socket: bool,
    /// Signals that end a wait for a full stdout.
    stop_signals: &'static [i32],
    buf: Vec<u8>,
    /// Why output stopped: set by the first write error, which is logged.
    closed: Option<io::ErrorKind>,
    /// The server is stopping: a full stdout is waited for only briefly.
    pub stopping: bool,
    /// Output was lost (other than to a reader that left): exit 1.
    pub failed: bool,
    /// Per-source figures, published to shared memory once per round.
    pub counters: Counters,
}

impl Output {
    /// Output to standard output. While stdout is full, one of
    /// `stop_signals` pending ends the wait and drops the output.
    pub fn stdout(stop_signals: &'static [i32]) -> SharedOutput {
        let kind = std::fs::metadata("/proc/self/fd/1").map(|m| m.file_type()).ok();
        let private = kind.filter(|k| k.is_fifo()).and_then(|_| private_pipe_writer());
        Rc::new(RefCell::new(Output {
            fd: private.as_ref().map_or(libc::STDOUT_FILENO, |fd| fd.as_raw_fd()),
            _private: private,
            socket: kind.is_some_and(|k| k.is_socket()),
            stop_signals,
            buf: Vec::with_capacity(2 * FLUSH_AT),
            closed: None,
            stopping: false,
            failed: false,
            counters: Counters::default(),
        }))
    }

    /// Appends `TAG: MESSAGE\n`, the message escaped so that it stays one line.
    pub fn line(&mut self, source: Source, tag: &str, message: &[u8]) {
        self.buf.extend_from_slice(tag.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.end_line(source, message);
    }

    /// Appends a message from the queue: `mq[PRIO]: MESSAGE\n`.
    pub fn queue_line(&mut self, priority: u32, message: &[u8]) {
        self.buf.extend_from_slice(b"mq[");
        push_decimal(&mut self.buf, priority);
        self.buf.extend_from_slice(b"]: ");
        self.end_line(Source::Queue, message);
    }

    fn end_line(&mut self, source: Source, message: &[u8]) {
        let counts = self.counters.source(source);
        counts.messages += 1;
        counts.bytes += message.len() as u64;
        escape_into(&mut self.buf, message);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            // An error is kept in `closed` and reported by the next `flush`.
            let _ = self.flush();
        }
    }

    /// Whether output is no longer written (no reader left, or given up).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Writes out everything buffered. An error marks the output closed and
    /// is logged once: later lines are dropped, and every flush returns an
    /// error of the same kind so that the caller shuts down. A reader that
    /// left is news; any other error (a full stdout given up, a full disk)
    /// also marks the run failed.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(kind) = self.closed {
            self.buf.clear();
            return Err(io::Error::from(kind));
        }
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match write(self.fd, &self.buf[written..], self.socket) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.wait_writable() {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.buf.clear();
        if let Err(e) = &result {
            self.closed = Some(e.kind());
            if reader_left(e) {
                log::info!("stdout closed by its reader");
            } else {
                log::error!("stdout: {e}");
                self.failed = true;
            }
        }
        result
    }

    /// Waits until stdout takes data again. A stop signal waiting to be
    /// read (the loop cannot read it while we wait here), or a stop already
    /// under way and a second of waiting, ends the wait: nobody reads the
    /// output, and the user wants the server to stop.
    fn wait_writable(&self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let mut pollfd = libc::pollfd { fd: self.fd, events: libc::POLLOUT, revents: 0 };
            // SAFETY: `pollfd` is a valid array of one element for the call's duration.
            if unsafe { libc::poll(&mut pollfd, 1, 200) } > 0 {
                return Ok(());
            }
            let impatient = self.stopping && started.elapsed() >= PATIENCE_WHEN_STOPPING;
            if impatient || any_pending(self.stop_signals) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "full, nobody reads it, and a stop was asked: output dropped",
                ));
            }
        }
    }
}

/// The digits of `n`: `write!` would cost as much as the rest of a short
/// message's line (`docs/performance.md`).
fn push_decimal(buf: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

fn write(fd: RawFd, bytes: &[u8], socket: bool) -> io::Result<usize> {
    let n = if socket {
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: the pointer and length describe a live, initialised slice.
        unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags) }
    } else {
        // SAFETY: the pointer and length describe a live, initialised slice.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking open file of its own for stdout, which is a pipe. (A
/// terminal or a file is left alone: a terminal's open file is shared with
/// the shell, and a file's offset must stay shared.)
fn private_pipe_writer() -> Option<OwnedFd> {
    // std opens with O_CLOEXEC. A pipe without a reader gives ENXIO: then
    // the plain stdout will report EPIPE on the first write.
    let file = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open("/proc/self/fd/1").ok()?;
    Some(file.into())
}

/// The reader went away: a pipe's (`EPIPE`) or a socket's, which resets
/// the connection if it left unread data behind.
pub fn reader_left(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

fn any_pending(signals: &[i32]) -> bool {
    // SAFETY: `sigset_t` is a plain C bit set, filled in by `sigpending`.
    let mut pending: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `pending` is writable.
    if unsafe { libc::sigpending(&mut pending) } != 0 {
        return false;
    }
    // SAFETY: `pending` is an initialised set.
    signals.iter().any(|&signal| unsafe { libc::sigismember(&pending, signal) } == 1)
}

impl Drop for Output {
    /// Whatever is still buffered when the server ends early (a startup
    /// failure that drained an adopted queue) is written, if it can be.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_are_plain_digits() {
        for n in [0, 7, 10, 32767, u32::MAX] {
            let mut buf = Vec::new();
            super::push_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
        }
    }
}
