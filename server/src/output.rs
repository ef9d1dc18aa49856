//! The one sink for messages: a buffer for stdout, flushed once per loop
//! round and whenever it holds more than a pipe can take.

use std::cell::RefCell;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::rc::Rc;

use crate::escape::escape_into;
use crate::stats::{Counters, Source};

/// The capacity of a pipe: past this, a single write would stall the loop.
const FLUSH_AT: usize = 64 * 1024;

/// The output shared by every handler of the server.
pub type SharedOutput = Rc<RefCell<Output>>;

/// Buffered lines for a descriptor (stdout), one line per message, and
/// the count of what went through it.
pub struct Output {
    fd: RawFd,
    buf: Vec<u8>,
    closed: bool,
    /// Per-source figures, published to shared memory once per round.
    pub counters: Counters,
}

impl Output {
    /// Output to standard output.
    pub fn stdout() -> SharedOutput {
        Rc::new(RefCell::new(Output {
            fd: libc::STDOUT_FILENO,
            buf: Vec::with_capacity(2 * FLUSH_AT),
            closed: false,
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
        // `write!` into a `Vec` cannot fail.
        let _ = write!(self.buf, "mq[{priority}]: ");
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

    /// Writes out everything buffered. `EPIPE` (the reader is gone) marks the
    /// output closed: later lines are dropped, and the error is returned once
    /// per flush so that the caller can shut down.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            self.buf.clear();
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match write(self.fd, &self.buf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(self.fd)?,
                Err(e) => break Err(e),
            }
        };
        self.buf.clear();
        if result.is_err() {
            self.closed = true;
        }
        result
    }
}

fn write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe a live, initialised slice.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Stdout may have been made non-blocking by whoever shares its open file:
/// then wait for room rather than lose output.
fn wait_writable(fd: RawFd) -> io::Result<()> {
    let mut pollfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: `pollfd` is a valid array of one element for the call's duration.
    let n = unsafe { libc::poll(&mut pollfd, 1, -1) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

impl Drop for Output {
    /// Whatever is still buffered when the server ends early (a startup
    /// failure that drained an adopted queue) is written, if it can be.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
