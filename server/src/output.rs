//! The one sink for messages: a buffer for stdout, flushed once per loop
//! round and whenever it holds more than a pipe can take. The buffer is the
//! output journal (`crate::journal`), which outlives a killed server: its
//! unwritten lines are printed by the next server on the queue.
//!
//! When stdout is a pipe, the server writes through a private, non-blocking
//! open file of that pipe (`/proc/self/fd/1` opened anew: its flags are its
//! own, unlike a `dup`'s); when it is a socket, with `send(MSG_DONTWAIT)`. A
//! reader that stops reading then makes the server wait in `poll`, where a
//! stop can still reach it, instead of in a `write` that nothing but
//! `SIGKILL` could end. (A terminal or a file is written as it is.)
//!
//! Lines are written whole: into a pipe, a write never ends inside a line
//! (see [`Output::flush`]), so when a stop gives up on a reader that takes
//! nothing, what was printed ends at a line's end and the lines not printed
//! stay in the journal, for the next server.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ipc::SharedMemory;

use crate::escape::{escape_line_into, Sink};
use crate::journal::{capacity_for, count_lines, inspect, journal_name, Journal, Left};
use crate::lifecycle::SharedLifecycle;
use crate::pipe_room::PipeRoom;
use crate::stats::{Counters, Source};
use crate::sys::{cvt, geteuid, retry};

/// The output, as the handlers share it.
pub type SharedOutput = Rc<RefCell<Output>>;

/// The capacity of a pipe: past this, a single write would stall the loop.
pub const FLUSH_AT: usize = 64 * 1024;

/// A write of at most this many bytes into a pipe is atomic: all or nothing.
const PIPE_BUF: usize = libc::PIPE_BUF;

/// How long a stopping server waits for a reader that takes nothing.
const PATIENCE_WHEN_STOPPING: Duration = Duration::from_secs(1);

/// The longest tag a line can have (`tcp[[IPV6%SCOPE]:PORT]: `), with
/// room to spare: what a line may take besides its escaped message.
const TAG_ROOM: usize = 96;

/// What stdout is, as far as writing it goes.
#[derive(Debug)]
enum Kind {
    /// A pipe: written through a private non-blocking open file, line-whole.
    Pipe(PipeRoom),
    /// A socket: `send(MSG_DONTWAIT)`.
    Socket,
    /// A terminal or a file: plain blocking writes.
    Other,
}

/// Lines for stdout, one line per message, buffered in the journal, and
/// the count of what went through it.
#[derive(Debug)]
pub struct Output {
    stdout: Stdout,
    journal: Journal,
    /// Lines in the journal not yet written.
    lines: u64,
    /// Why output stopped: set by the first write error, which is logged.
    closed: Option<io::ErrorKind>,
    /// The last write was done and the journal removed or kept.
    finished: bool,
    /// Per-source figures, published to shared memory once per round:
    /// written here only, through the methods below for what the sources see.
    counters: Counters,
}

/// Standard output, and how it is written.
#[derive(Debug)]
struct Stdout {
    fd: RawFd,
    /// The private open file behind `fd`, when stdout is a pipe.
    _private: Option<OwnedFd>,
    kind: Kind,
    lifecycle: SharedLifecycle,
    /// Signals that end a wait for a full stdout.
    stop_signals: &'static [i32],
}

impl Output {
    /// Output to standard output, buffered in private memory until
    /// [`open_journal`](Output::open_journal) moves it into the journal;
    /// lines hold messages of up to `longest` bytes. While stdout is full,
    /// one of `stop_signals` pending, or a stop under way for a second,
    /// ends the wait and gives up on stdout.
    pub fn stdout(lifecycle: SharedLifecycle, stop_signals: &'static [i32], longest: usize) -> SharedOutput {
        let file_type = std::fs::metadata("/proc/self/fd/1").map(|m| m.file_type()).ok();
        let private = file_type.filter(|t| t.is_fifo()).and_then(|_| private_pipe_writer());
        let kind = match &private {
            Some(fd) => Kind::Pipe(PipeRoom::new(grow_pipe(fd.as_raw_fd()))),
            None if file_type.is_some_and(|t| t.is_socket()) => Kind::Socket,
            None => Kind::Other,
        };
        let stdout = Stdout {
            fd: private.as_ref().map_or(libc::STDOUT_FILENO, |fd| fd.as_raw_fd()),
            _private: private,
            kind,
            lifecycle,
            stop_signals,
        };
        Rc::new(RefCell::new(Output {
            stdout,
            journal: Journal::private(capacity_for(longest)),
            lines: 0,
            closed: None,
            finished: false,
            counters: Counters::default(),
        }))
    }

    /// The journal of `queue`, whose server this process now is (it holds
    /// the queue's lock). A journal a killed server left is printed first,
    /// byte for byte, then replaced by this server's own, whose lines hold
    /// messages of up to `longest` bytes. A journal that is not one this
    /// user's server left is refused: the error says why, and it is left
    /// alone. If no journal can be made, the output stays in private
    /// memory, with a warning.
    pub fn open_journal(&mut self, queue: &str, longest: usize) -> io::Result<()> {
        let name = journal_name(queue);
        let capacity = capacity_for(longest);
        debug_assert_eq!(self.journal.pending(), 0, "nothing is printed before the journal");
        if let Err(e) = self.stdout.end_unfinished_line() {
            // stdout fails already: a journal left is left for the next server.
            self.close(&e);
            self.journal = Journal::private(capacity);
            return Ok(());
        }
        if let Some(problem) = ipc::name_problem(&name) {
            // A queue name near the limit leaves no room for `.journal`.
            log::warn!("journal {name}: the name {problem}; running without: a SIGKILL loses the lines not yet written");
            self.journal = Journal::private(capacity);
            return Ok(());
        }
        if let Some((old, left)) = inspect(&name, true, geteuid())? {
            if !self.replay(&old, &left) {
                // stdout took not all of it: the rest stays for the next
                // server, and this one stops at once (its stdout failed).
                self.journal = Journal::private(capacity);
                return Ok(());
            }
            match SharedMemory::unlink(&name) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.journal = Journal::create(&name, capacity).unwrap_or_else(|e| {
            log::warn!("journal {name}: {e}; running without: a SIGKILL loses the lines not yet written");
            Journal::private(capacity)
        });
        Ok(())
    }

    /// Prints what `left` holds unwritten ([`Left::replay`]) and counts it.
    /// Returns whether all of it was printed; an error closes stdout.
    fn replay(&mut self, old: &File, left: &Left) -> bool {
        let stdout = &mut self.stdout;
        let (lines, failed) = left.replay(old, |bytes| stdout.write_some(bytes));
        self.counters.lines_replayed += lines;
        if let Some(e) = &failed {
            self.close(e);
        }
        failed.is_none()
    }

    /// Appends `PREFIX MESSAGE\n`: `prefix` is the source's `TAG: `, the
    /// message is escaped so that it stays one line.
    pub fn line(&mut self, source: Source, prefix: &str, message: &[u8]) {
        if !self.make_room(prefix.len() + 4 * message.len() + 1) {
            return self.drop_line(source, message);
        }
        self.end_line(source, prefix.as_bytes(), message);
    }

    /// Appends a message from the queue: `mq[PRIO]: MESSAGE\n`.
    pub fn queue_line(&mut self, priority: u32, message: &[u8]) {
        if !self.make_room(TAG_ROOM + 4 * message.len() + 1) {
            return self.drop_line(Source::Queue, message);
        }
        self.journal.put_with(TAG_ROOM, |room| queue_tag(room, priority));
        self.end_line(Source::Queue, b"", message);
    }

    /// The figures so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A connection (or stdin) of `source` opened.
    pub fn connection_opened(&mut self, source: Source) {
        let counts = self.counters.source(source);
        counts.connections_open += 1;
        counts.connections_total += 1;
    }

    /// A connection (or stdin) of `source` ended.
    pub fn connection_closed(&mut self, source: Source) {
        self.counters.source(source).connections_open -= 1;
    }

    /// A read from `source` failed.
    pub fn source_failed(&mut self, source: Source) {
        self.counters.source(source).errors += 1;
    }

    /// The queue held `depth` messages when it was last looked at.
    pub fn saw_queue_depth(&mut self, depth: i64) {
        self.counters.queue_depth = depth;
    }

    /// Whether a message of up to `size` bytes from the queue may be taken
    /// now: its line fits in the journal, after a write if need be. Once
    /// stdout is gone, only while a journal keeps the lines for the next
    /// server; a message not taken stays in the queue, for that server.
    #[inline]
    pub fn takes_queue_message(&mut self, size: usize) -> bool {
        // While stdout takes the output, a line always fits after a write,
        // which the line itself makes (`queue_line`).
        self.closed.is_none() || self.journal.is_durable() && self.journal.fits(TAG_ROOM + 4 * size + 1)
    }

    /// Whether a line of at most `worst` bytes fits in the journal, after
    /// a write if need be. It always does while stdout takes the output; a
    /// journal that keeps lines for the next server may fill up.
    fn make_room(&mut self, worst: usize) -> bool {
        if !self.journal.fits(worst) && self.closed.is_none() {
            // An error is kept in `closed` and reported by the next `flush`.
            let _ = self.flush();
        }
        self.journal.fits(worst)
    }

    fn end_line(&mut self, source: Source, prefix: &[u8], message: &[u8]) {
        let counts = self.counters.source(source);
        counts.messages += 1;
        counts.bytes += message.len() as u64;
        escape_line_into(&mut self.journal, prefix, message);
        self.journal.commit();
        self.lines += 1;
        if self.journal.pending() >= FLUSH_AT {
            // An error is kept in `closed` and reported by the next `flush`.
            let _ = self.flush();
        }
    }

    /// A line that no longer fits anywhere: counted, and lost.
    fn drop_line(&mut self, source: Source, message: &[u8]) {
        let counts = self.counters.source(source);
        counts.messages += 1;
        counts.bytes += message.len() as u64;
        self.counters.lines_dropped += 1;
    }

    /// Lines not written that the journal keeps for the next server: once
    /// stdout is closed, every line still buffered.
    pub fn kept_lines(&self) -> u64 {
        if self.closed.is_some() && self.journal.is_durable() {
            self.lines
        } else {
            0
        }
    }

    /// Whether output is no longer written (no reader left, or given up).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Writes out everything buffered. An error marks the output closed and
    /// is logged once: the lines not written stay in the journal for the
    /// next server (or are dropped, and counted so, without a journal), and
    /// every flush returns an error of the same kind, so that the caller
    /// shuts down. [`reader_left`] tells a reader that went away (news, not
    /// a failure) from output lost.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(kind) = self.closed {
            self.set_aside();
            return Err(io::Error::from(kind));
        }
        let mut start = self.journal.written();
        let result = loop {
            if self.journal.check_shrunk() {
                self.journal_lost();
                start = 0;
            }
            if self.journal.pending() == 0 {
                break Ok(());
            }
            match self.stdout.write_some(self.journal.unwritten()) {
                Ok(n) => self.journal.advance(n),
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) && self.journal.is_durable() => {
                    // Pages of a shrunk journal: touched, they fault and are replaced.
                    self.journal.probe();
                    if !self.journal.check_shrunk() {
                        break Err(e);
                    }
                    self.journal_lost();
                    start = 0;
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.counters.lines_printed += self.lines;
                self.lines = 0;
                Ok(())
            }
            Err(e) => {
                let printed = count_lines(&self.journal.bytes_from(start)[..self.journal.written() - start]);
                self.counters.lines_printed += printed;
                self.lines -= printed;
                self.close(&e);
                Err(e)
            }
        }
    }

    /// Marks the output closed by `e`, logs it, and sets aside what was not
    /// written.
    fn close(&mut self, e: &io::Error) {
        self.closed = Some(e.kind());
        if reader_left(e) {
            log::info!("stdout closed by its reader");
        } else {
            log::error!("stdout: {e}");
        }
        if self.journal.skip_partial_line() {
            // Begun, not finished: a line that can never be printed whole.
            self.lines -= 1;
            self.counters.lines_dropped += 1;
        }
        if self.lines > 0 {
            match self.journal.name() {
                Some(name) if self.journal.is_durable() => log::warn!(
                    "stdout: {} line(s) not printed, kept in journal {name} for the next server",
                    self.lines
                ),
                _ => log::warn!("stdout: {} line(s) not printed", self.lines),
            }
        }
        self.set_aside();
    }

    /// After stdout is closed: lines stay in a durable journal, for the
    /// next server; without one they are dropped, and counted so.
    fn set_aside(&mut self) {
        if !self.journal.is_durable() {
            self.counters.lines_dropped += self.lines;
            self.lines = 0;
            self.journal.clear();
        }
    }

    /// Another process shrank the journal: what it held is gone.
    fn journal_lost(&mut self) {
        let name = self.journal.name().unwrap_or("").to_string();
        log::warn!(
            "journal {name}: shrunk by another process; {} line(s) not yet printed are lost, and \
             the output goes on in private memory: a SIGKILL now loses what is not written",
            self.lines
        );
        self.counters.lines_dropped += self.lines;
        self.lines = 0;
        self.journal.clear();
    }

    /// The last write, at exit. A journal whose lines are all written is
    /// removed; one that keeps lines stdout did not take stays, for the
    /// next server on the queue, which prints them first. Once only.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let result = self.flush();
        if self.journal.is_durable() && self.journal.pending() > 0 {
            self.counters.lines_kept = self.lines;
            if let Some(name) = self.journal.name() {
                log::warn!(
                    "journal {name}: {} line(s) not printed are kept: the next server on this queue prints them first",
                    self.lines
                );
            }
        } else if let Err(e) = self.journal.remove() {
            log::error!("{e}");
            self.stdout.lifecycle.mark_failed();
        }
        result
    }
}

impl Stdout {
    /// A regular file that does not end in a newline where this server
    /// writes (a server killed in the middle of a write left the start of
    /// a line, which the journal prints again whole) gets one first: every
    /// line printed from here on is whole, and starts a line.
    fn end_unfinished_line(&mut self) -> io::Result<()> {
        match self.ends_inside_a_line() {
            Ok(false) => Ok(()),
            Ok(true) => {
                log::warn!("stdout: a file that ends inside a line (a server killed while it wrote?): starting a new line");
                self.write_some(b"\n").map(drop)
            }
            Err(e) => {
                log::debug!("stdout: cannot tell whether it ends inside a line: {e}");
                Ok(())
            }
        }
    }

    /// Whether stdout is a regular file whose byte before where this server
    /// writes is not a newline. Read through an open file of its own
    /// (stdout's is usually write-only), once `stat` said it is a file.
    fn ends_inside_a_line(&self) -> io::Result<bool> {
        let own = "/proc/self/fd/1";
        if !matches!(self.kind, Kind::Other) || !std::fs::metadata(own)?.is_file() {
            return Ok(false);
        }
        let file = File::open(own)?;
        let len = file.metadata()?.len();
        // SAFETY: plain calls on stdout, open for as long as the process runs;
        // an `lseek` of 0 from `SEEK_CUR` only reads the offset.
        let (flags, offset) =
            unsafe { (libc::fcntl(self.fd, libc::F_GETFL), libc::lseek(self.fd, 0, libc::SEEK_CUR)) };
        let at = if cvt(flags)? & libc::O_APPEND != 0 { len } else { (cvt(offset)? as u64).min(len) };
        let mut last = [0u8];
        Ok(at > 0 && file.read_at(&mut last, at - 1)? == 1 && last[0] != b'\n')
    }

    /// Hands what `bytes` begins with to one `write`, waiting for room as
    /// long as it takes (see [`Stdout::wait_writable`]); returns how many
    /// bytes were written.
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // When the current wait for the reader began.
        let mut waiting_since = None;
        loop {
            let chunk = self.next_chunk(bytes);
            let outcome = match chunk {
                // Not even the next whole line surely fits: wait for room.
                0 => Err(io::Error::from(io::ErrorKind::WouldBlock)),
                _ => write(self.fd, &bytes[..chunk], matches!(self.kind, Kind::Socket)),
            };
            match outcome {
                Ok(n) => {
                    if let Kind::Pipe(room) = &mut self.kind {
                        room.wrote(n);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    self.wait_writable(since, chunk == 0)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How much of `rest` the next write may take. Into a pipe, a write
    /// longer than `PIPE_BUF` may be cut wherever the pipe is full, so it
    /// is given only whole lines that surely fit (`crate::pipe_room`); a
    /// write of at most `PIPE_BUF` is all or nothing. Returns 0 when not
    /// even the next line surely fits (wait, then ask again). A line longer
    /// than the whole pipe cannot be written whole: it goes when the pipe
    /// is empty, in as many writes as it takes.
    fn next_chunk(&mut self, rest: &[u8]) -> usize {
        let Kind::Pipe(room) = &mut self.kind else {
            return rest.len();
        };
        if rest.len() <= PIPE_BUF || room.surely_free() >= rest.len() {
            // Cannot be cut, or surely fits: no need to ask the pipe.
            return rest.len();
        }
        let empty = room.ask(self.fd);
        // What surely fits, or else at most PIPE_BUF, which cannot be cut either.
        let free = room.surely_free().max(PIPE_BUF).min(rest.len());
        // The bytes end with a newline, so a cut at `free` finds one unless no line fits.
        if let Some(end) = rest[..free].iter().rposition(|&b| b == b'\n') {
            return end + 1;
        }
        let first = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |end| end + 1);
        if first > room.capacity() && empty {
            first
        } else {
            0
        }
    }

    /// Waits until stdout takes data again. A stop signal waiting to be
    /// read (the loop cannot read it while we wait here), or a stop already
    /// under way and a second of waiting since `since`, ends the wait:
    /// nobody reads the output, and the user wants the server to stop.
    /// `for_room`: the pipe takes data, but not yet a whole line; `poll`
    /// would return at once, so sleep instead: briefly at first (a reader
    /// that keeps up empties a pipe in microseconds), longer the longer it
    /// lasts (one that does not should not cost a core).
    fn wait_writable(&self, since: Instant, for_room: bool) -> io::Result<()> {
        if for_room {
            let waited = since.elapsed();
            std::thread::sleep((waited / 4).clamp(Duration::from_micros(10), Duration::from_millis(5)));
        } else {
            let mut pollfd = libc::pollfd { fd: self.fd, events: libc::POLLOUT, revents: 0 };
            // SAFETY: `pollfd` is a valid array of one element for the call's duration.
            if retry(|| unsafe { libc::poll(&mut pollfd, 1, 200) })? > 0 {
                return Ok(());
            }
        }
        if self.stop_asked(since) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "full, nobody reads it, and a stop was asked: output dropped",
            ));
        }
        Ok(())
    }

    /// Whether a wait that began at `started` should give up.
    fn stop_asked(&self, started: Instant) -> bool {
        let impatient = self.lifecycle.is_stopping() && started.elapsed() >= PATIENCE_WHEN_STOPPING;
        impatient || any_pending(self.stop_signals)
    }
}

/// Writes `mq[PRIORITY]: ` at the start of `room` and returns its length,
/// in byte stores: `write!`, or a copy of a variable length, would cost as
/// much as the rest of a short message's line (`docs/performance.md`).
fn queue_tag(room: &mut [u8], priority: u32) -> usize {
    let digits = priority.checked_ilog10().map_or(1, |log| log as usize + 1);
    room[..3].copy_from_slice(b"mq[");
    let mut n = priority;
    for at in (3..3 + digits).rev() {
        room[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    room[3 + digits..6 + digits].copy_from_slice(b"]: ");
    6 + digits
}

fn write(fd: RawFd, bytes: &[u8], socket: bool) -> io::Result<usize> {
    let n = if socket {
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: the pointer and length describe a live, initialised slice.
        cvt(unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags) })?
    } else {
        // SAFETY: the pointer and length describe a live, initialised slice.
        cvt(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })?
    };
    Ok(n as usize)
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

/// What the server asks of a stdout pipe: 1 MiB, the most an unprivileged
/// process may ask by default (`/proc/sys/fs/pipe-max-size`).
const PIPE_WANTED: libc::c_int = 1 << 20;

/// Makes the stdout pipe hold up to [`PIPE_WANTED`] bytes, if the kernel
/// lets us, and returns its capacity. A reader that keeps up then meets a
/// full pipe far less often: fewer and larger writes, fewer waits. (Only
/// what is waiting costs the kernel memory, and a larger pipe never holds
/// more than the reader has not yet read.)
fn grow_pipe(fd: RawFd) -> usize {
    // SAFETY: plain call on an open descriptor; a refusal leaves the pipe as it was.
    let grown = cvt(unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_WANTED) });
    // The new capacity, or after a refusal the one it has.
    grown.map_or_else(|_| pipe_capacity(fd), |size| size as usize)
}

/// `F_GETPIPE_SZ`, or the default 64 KiB if the kernel will not say.
fn pipe_capacity(fd: RawFd) -> usize {
    // SAFETY: plain call on an open descriptor.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }).map_or(FLUSH_AT, |size| size as usize)
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
    if cvt(unsafe { libc::sigpending(&mut pending) }).is_err() {
        return false;
    }
    // SAFETY: `pending` is an initialised set.
    signals.iter().any(|&signal| unsafe { libc::sigismember(&pending, signal) } == 1)
}

impl Drop for Output {
    /// Whatever is still buffered when the server ends early (a startup
    /// failure that drained an adopted queue) is written, if it can be.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_tags_are_plain_digits() {
        for n in [0, 7, 9, 10, 99, 100, 32767, u32::MAX] {
            let mut room = [0; super::TAG_ROOM];
            let len = super::queue_tag(&mut room, n);
            assert_eq!(room[..len], *format!("mq[{n}]: ").as_bytes());
        }
    }
}
