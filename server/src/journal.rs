//! The output journal: the server's output buffer, kept in a POSIX shared
//! memory object that outlives the server.
//!
//! A message taken out of the queue exists nowhere else until it is
//! written. The kernel keeps a shared-memory object after its creator dies,
//! as it keeps the queue: so every line is appended to a mapping of the
//! object `NAME.journal` (the queue's name and `.journal`), and a server
//! killed with `SIGKILL` leaves its unwritten lines there. The next server
//! on the queue prints them first ([`inspect`], then
//! `Output::open_journal`), and the output is written once per round.
//!
//! The object is a [`Header`] and a data area, the buffer. Lines go to the
//! data area in the order they are printed; the header says how far the
//! bytes were handed to `write` (`written`) and how far complete lines
//! reach (`complete`). Both live in one 8-byte word, stored at once: a
//! `SIGKILL` at any instruction leaves a header that agrees with itself.
//! A line's bytes are stored before the word that covers them; a `write`
//! that completed moves `written` at once after it returns; when
//! everything is written, both go back to 0.
//!
//! The object is created `O_EXCL` with mode 0600, whatever `--mode` says:
//! other users cannot open it at all. A process of the server's own user
//! can; if it shrinks the object, the server's next access faults, and
//! `sigbus` puts private memory in its place: the server goes on without a
//! durable journal, and says so.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use ipc::{Mapping, SharedMemory};

use crate::context;
use crate::escape::{is_printable, Sink};
use crate::output::FLUSH_AT;
use crate::sys::{cvt, geteuid};
use ipc::sigbus::{self, Region};

/// Identifies a postbox journal: "PBJOURN" and a NUL.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PBJOURN\0");

/// Bumped whenever [`Header`] or the meaning of the data area changes.
pub const VERSION: u32 = 1;

/// The header's size; the data area follows it.
pub const HEADER_SIZE: usize = 64;

/// The journal's mode, whatever `--mode` says: it holds the messages
/// themselves, which only the server's user may read.
pub const MODE: u32 = 0o600;

/// The start of a journal object.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// Always [`VERSION`] for this layout.
    pub version: u32,
    /// [`HEADER_SIZE`], a second check on the layout.
    pub header_size: u32,
    /// The data area's size in bytes: the object is `HEADER_SIZE + capacity`.
    pub capacity: u64,
    /// The (effective) user id of the server that made it.
    pub uid: u32,
    /// Its process id.
    pub pid: u32,
    /// `written` in the high 32 bits, `complete` in the low ones: one word,
    /// so that no kill can fall between two stores (see [`pack`]).
    pub offsets: u64,
    /// Zeros.
    pub reserved: [u64; 3],
}

// SAFETY: integers only, laid out by `repr(C)` without padding (checked below): any bytes are a header.
unsafe impl ipc::Plain for Header {}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

/// Where [`Header::offsets`] lies in the object.
pub const OFFSETS_AT: usize = std::mem::offset_of!(Header, offsets);

/// `written` and `complete` as one word.
pub fn pack(written: usize, complete: usize) -> u64 {
    (written as u64) << 32 | complete as u64
}

impl Header {
    /// The header as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: a `repr(C)` struct of integers without padding: every byte is initialised.
        unsafe { std::slice::from_raw_parts((self as *const Header).cast(), HEADER_SIZE) }
    }

    /// A header from bytes read back; `None` if there are too few.
    pub fn from_bytes(bytes: &[u8]) -> Option<Header> {
        let bytes = bytes.get(..HEADER_SIZE)?;
        // SAFETY: `bytes` holds a whole header, any bytes are a valid one, and the read is unaligned.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
    }

    /// How far the bytes were handed to `write`, and it completed.
    pub fn written(&self) -> u64 {
        self.offsets >> 32
    }

    /// How far complete lines reach.
    pub fn complete(&self) -> u64 {
        self.offsets & 0xffff_ffff
    }
}

/// The name of the journal of `queue`: `/postbox` gives `/postbox.journal`
/// (in `/dev/shm` as `postbox.journal`).
pub fn journal_name(queue: &str) -> String {
    format!("{queue}.journal")
}

/// The data area for lines of messages of up to `longest` bytes: the
/// output is written when it passes [`FLUSH_AT`], and one more line, every
/// byte escaped to four and a tag, must fit after that.
pub fn capacity_for(longest: usize) -> usize {
    let wanted = HEADER_SIZE + FLUSH_AT + 4 * longest + 256;
    wanted.next_multiple_of(4096) - HEADER_SIZE
}

/// The largest data area a server makes: for messages of 16 MiB, the
/// kernel's ceiling (`HARD_MSGSIZEMAX`). A replay reads at most this much.
const LARGEST_CAPACITY: usize = HEADER_SIZE + FLUSH_AT + 4 * (16 << 20) + 4096;

/// A journal found under a queue's name, checked: its header, and the
/// lines it holds that were never written.
#[derive(Debug)]
pub struct Left {
    /// The object's name.
    pub name: String,
    /// Its header as read.
    pub header: Header,
    /// The bytes from `written` to `complete`: what the next server prints.
    pub unwritten: Vec<u8>,
}

impl Left {
    /// The lines in [`unwritten`](Left::unwritten).
    pub fn lines(&self) -> u64 {
        count_lines(&self.unwritten)
    }

    /// Prints what it holds unwritten, one `write` (which returns how much
    /// it took) at a time, moving the journal's `written` in `file` after
    /// every write, so that a kill now repeats at most the last write.
    /// Returns the lines printed, and the error that stopped it before the
    /// end: then the rest stays in the journal, for the next server.
    pub fn replay(
        &self,
        file: &File,
        mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> (u64, Option<io::Error>) {
        let (mut written, complete) = (self.header.written() as usize, self.header.complete() as usize);
        let alive = if self.pid_alive() { "still alive, but not holding the queue" } else { "gone" };
        let (name, pid) = (&self.name, self.header.pid);
        let mut done = 0;
        while done < self.unwritten.len() {
            match write(&self.unwritten[done..]) {
                Ok(n) => {
                    done += n;
                    written += n;
                    if let Err(e) = advance_left(file, written, complete) {
                        log::warn!("{e}");
                    }
                }
                Err(e) => {
                    let lines = count_lines(&self.unwritten[..done]);
                    log::warn!(
                        "journal {name}: replayed {lines} of {} line(s) left by pid {pid} ({alive}); the rest stays in it for the next server",
                        self.lines()
                    );
                    return (lines, Some(e));
                }
            }
        }
        match self.lines() {
            0 => log::debug!("journal {name}: left by pid {pid} ({alive}), nothing unwritten"),
            lines => log::warn!(
                "journal {name}: replayed {lines} line(s) ({} bytes) left by pid {pid} ({alive})",
                self.unwritten.len()
            ),
        }
        (self.lines(), None)
    }

    /// Whether the process that made it still exists (a server whose queue
    /// was removed under it, or another process that got its pid).
    pub fn pid_alive(&self) -> bool {
        let pid = match libc::pid_t::try_from(self.header.pid) {
            Ok(pid) if pid > 0 => pid,
            _ => return false,
        };
        // SAFETY: signal 0 only asks whether the process exists.
        cvt(unsafe { libc::kill(pid, 0) }).map_or_else(|e| e.raw_os_error() == Some(libc::EPERM), |_| true)
    }
}

/// Where the shared memory object `name` is a file: `shm_open` names a
/// file of `/dev/shm`.
fn object_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

/// Opens the journal `name` and checks it, never through a mapping (an
/// object shrunk under the reader cannot fault it): it must be a regular
/// file, belong to `owner`, have mode 0600, this layout, offsets within
/// its data area, and hold lines as the server prints them. `Ok(None)`:
/// there is none. `writable`: open it read-write (the server replaying it
/// moves its `written` as it goes).
///
/// Any user may make a file in `/dev/shm`, so the name is opened as a file,
/// without blocking and without following a link (a FIFO planted there
/// would block an open for reading for ever), and what it is checked with
/// `fstat` before a byte is read.
pub fn inspect(name: &str, writable: bool, owner: u32) -> io::Result<Option<(File, Left)>> {
    let refuse = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "journal {name}: {why}; it is not a journal this server left, so it is neither printed \
                 nor replaced. Remove it (its owner or root: rm /dev/shm/{}) or choose another name with --queue",
                name.trim_start_matches('/')
            ),
        )
    };
    let opened = OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(object_path(name));
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse("a symbolic link".to_string())),
        Err(e) => return Err(context(format!("journal {name}"), e)),
    };
    let meta = file.metadata().map_err(|e| context(format!("journal {name}"), e))?;
    if !meta.file_type().is_file() {
        let kind = if meta.file_type().is_fifo() { "FIFO" } else { "special file or directory" };
        return Err(refuse(format!("a {kind}, not a shared memory object")));
    }
    let (uid, mode, size) = (meta.uid(), meta.mode() & 0o7777, meta.size());
    if uid != owner {
        return Err(refuse(format!("owned by user {uid}, not by user {owner}")));
    }
    if mode != MODE {
        return Err(refuse(format!("mode {mode:04o}, not {MODE:04o}: others may have read or changed it")));
    }
    let mut bytes = [0u8; HEADER_SIZE];
    let got = file.read_at(&mut bytes, 0)?;
    let Some(header) = Header::from_bytes(&bytes[..got]) else {
        return Err(refuse(format!("{size} bytes, shorter than a journal's header ({HEADER_SIZE})")));
    };
    if header.magic != MAGIC || header.version != VERSION || header.header_size as usize != HEADER_SIZE {
        return Err(refuse(format!(
            "not a journal of layout version {VERSION} (magic {:#x}, version {}, header {} bytes)",
            header.magic, header.version, header.header_size
        )));
    }
    if header.capacity > LARGEST_CAPACITY as u64 {
        return Err(refuse(format!(
            "a data area of {} bytes, more than any server makes ({LARGEST_CAPACITY})",
            header.capacity
        )));
    }
    if size != HEADER_SIZE as u64 + header.capacity {
        return Err(refuse(format!(
            "{} bytes, but its header says {HEADER_SIZE} + {}: shrunk or grown",
            size, header.capacity
        )));
    }
    let (written, complete) = (header.written(), header.complete());
    if written > complete || complete > header.capacity {
        return Err(refuse(format!(
            "offsets out of bounds (written {written}, complete {complete}, capacity {})",
            header.capacity
        )));
    }
    let mut unwritten = vec![0u8; (complete - written) as usize];
    let got = file.read_at(&mut unwritten, HEADER_SIZE as u64 + written)?;
    if got != unwritten.len() {
        return Err(refuse(format!("shrunk while being read ({got} of {} bytes)", unwritten.len())));
    }
    if unwritten.last().is_some_and(|&b| b != b'\n') || !is_printable(&unwritten) {
        return Err(refuse("its unwritten bytes are not lines the server prints".to_string()));
    }
    Ok(Some((file, Left { name: name.to_string(), header, unwritten })))
}

/// Moves `written` of a journal that is being replayed, with `pwrite`.
fn advance_left(file: &File, written: usize, complete: usize) -> io::Result<()> {
    file.write_all_at(&pack(written, complete).to_ne_bytes(), OFFSETS_AT as u64)
}

/// Where the journal's bytes live.
#[derive(Debug)]
enum Backing {
    /// The shared object, mapped.
    Shared { shm: SharedMemory, _mapping: Mapping },
    /// Memory of this process only: no journal (none could be made), or
    /// the benchmark's server. (A shrunk journal stays `Shared`: `sigbus`
    /// put private pages in its mapping's place.)
    Private { _words: Box<[u64]> },
}

/// The output buffer, in the journal's data area.
#[derive(Debug)]
pub struct Journal {
    backing: Backing,
    /// The header's first byte; the data area begins [`HEADER_SIZE`] later.
    base: NonNull<u8>,
    capacity: usize,
    /// How far the bytes were written.
    written: usize,
    /// How far bytes were appended. Between two lines, also how far
    /// complete lines reach.
    len: usize,
    /// A `SIGKILL` leaves the lines to the next server.
    durable: bool,
}

impl Journal {
    /// A buffer in this process's memory: nothing survives the process.
    pub fn private(capacity: usize) -> Journal {
        let mut words = vec![0u64; (HEADER_SIZE + capacity).div_ceil(8)].into_boxed_slice();
        let base = NonNull::from(&mut words[0]).cast();
        Journal {
            backing: Backing::Private { _words: words },
            base,
            capacity,
            written: 0,
            len: 0,
            durable: false,
        }
    }

    /// Creates the journal `name` (`O_EXCL`, mode 0600) with a data area of
    /// `capacity` bytes, and maps it.
    pub fn create(name: &str, capacity: usize) -> io::Result<Journal> {
        let shm = SharedMemory::create(name, HEADER_SIZE + capacity, MODE)?;
        let created = Journal::map(shm, capacity);
        if created.is_err() {
            let _ = SharedMemory::unlink(name);
        }
        created
    }

    fn map(shm: SharedMemory, capacity: usize) -> io::Result<Journal> {
        let mapping = shm.map()?;
        let base = NonNull::new(mapping.as_ptr()).ok_or_else(|| io::Error::other("mapped at 0"))?;
        sigbus::watch(Region::Mapping, base.as_ptr(), mapping.len())?;
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            header_size: HEADER_SIZE as u32,
            capacity: capacity as u64,
            uid: geteuid(),
            pid: std::process::id(),
            offsets: 0,
            reserved: [0; 3],
        };
        // SAFETY: the mapping is at least a header long, page-aligned, and writable.
        unsafe { std::ptr::write_volatile(base.as_ptr().cast::<Header>(), header) };
        let backing = Backing::Shared { shm, _mapping: mapping };
        Ok(Journal { backing, base, capacity, written: 0, len: 0, durable: true })
    }

    /// The shared object's name, unless the buffer is private.
    pub fn name(&self) -> Option<&str> {
        match &self.backing {
            Backing::Shared { shm, .. } => Some(shm.name()),
            Backing::Private { .. } => None,
        }
    }

    /// Whether a `SIGKILL` now would leave the lines to the next server.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether `more` bytes fit after what is appended.
    pub fn fits(&self, more: usize) -> bool {
        self.capacity - self.len >= more
    }

    /// Bytes appended and not yet written.
    pub fn pending(&self) -> usize {
        self.len - self.written
    }

    /// How far the bytes were written.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The bytes from `from` to the end of what is appended.
    pub fn bytes_from(&self, from: usize) -> &[u8] {
        &self.data()[from..self.len]
    }

    /// The bytes appended and not yet written.
    pub fn unwritten(&self) -> &[u8] {
        self.bytes_from(self.written)
    }

    /// Makes the line appended since the last commit part of the journal:
    /// after its bytes, one store of the header's word.
    pub fn commit(&mut self) {
        self.store_offsets();
    }

    /// `n` more bytes were written: stored at once. When everything is
    /// written, the journal starts again at 0.
    pub fn advance(&mut self, n: usize) {
        self.written += n;
        if self.written == self.len {
            self.written = 0;
            self.len = 0;
        }
        self.store_offsets();
    }

    /// Forgets what is not written.
    pub fn clear(&mut self) {
        self.written = 0;
        self.len = 0;
        self.store_offsets();
    }

    /// If a write stopped inside a line, the rest of that line is skipped:
    /// nobody could print it whole any more. Returns whether one was.
    pub fn skip_partial_line(&mut self) -> bool {
        if self.written == 0 || self.data()[self.written - 1] == b'\n' {
            return false;
        }
        let rest = self.unwritten();
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        self.advance(end);
        true
    }

    /// Whether another process shrank the object since the last call: its
    /// pages were replaced by private ones (`sigbus`), whose bytes are
    /// zeros. From then on the buffer is private; what it held is lost.
    pub fn check_shrunk(&mut self) -> bool {
        if !self.durable || !sigbus::take_tampered(Region::Mapping) {
            return false;
        }
        self.durable = false;
        true
    }

    /// Touches every page of the unwritten bytes, so that pages another
    /// process cut off fault now and are replaced (a `write` from them
    /// fails with `EFAULT` instead of faulting).
    pub fn probe(&self) {
        let start = HEADER_SIZE + self.written;
        for at in (start..HEADER_SIZE + self.len).step_by(4096) {
            // SAFETY: within the mapping; a fault there is handled by `sigbus`.
            unsafe { std::ptr::read_volatile(self.base.as_ptr().add(at)) };
        }
    }

    /// Removes the object's name, if it still names this journal (a server
    /// of a queue removed under it must not remove its successor's).
    pub fn remove(&self) -> io::Result<()> {
        let Backing::Shared { shm, .. } = &self.backing else { return Ok(()) };
        let ours = shm.info()?.identity;
        match SharedMemory::open(shm.name(), false) {
            Ok(named) if named.info()?.identity == ours => SharedMemory::unlink(shm.name()),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn data(&self) -> &[u8] {
        // SAFETY: the data area is `capacity` bytes after the header, mapped (or allocated) for
        // as long as `self` lives. Only this process writes it (mode 0600, made O_EXCL); a process
        // of the same user that writes it anyway changes what is printed, as ptrace could.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(HEADER_SIZE), self.capacity) }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes this the only reference from this process.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(HEADER_SIZE), self.capacity) }
    }

    fn store_offsets(&self) {
        let word = self.base.as_ptr().wrapping_add(OFFSETS_AT).cast::<u64>();
        // SAFETY: the header's word, 8-byte aligned in a page-aligned mapping, lives as long as
        // `self`; other processes only read it. Release: a line's bytes are stored before it.
        unsafe { AtomicU64::from_ptr(word) }.store(pack(self.written, self.len), Ordering::Release);
    }
}

impl Sink for Journal {
    /// Appends `bytes`; the caller made sure they fit ([`Journal::fits`]).
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        let at = self.len;
        self.data_mut()[at..end].copy_from_slice(bytes);
        self.len = end;
    }

    /// Lends the room after the bytes appended; the caller made sure `max`
    /// more fit ([`Journal::fits`]).
    fn put_with(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) {
        let at = self.len;
        let n = fill(&mut self.data_mut()[at..at + max]);
        self.len = at + n.min(max);
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if matches!(self.backing, Backing::Shared { .. }) {
            sigbus::unwatch(Region::Mapping);
        }
    }
}

/// The newlines in `bytes`.
pub fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offsets_are_one_word_and_read_back() {
        let header = Header { offsets: pack(7, 4096), ..Header::default() };
        let back = Header::from_bytes(header.as_bytes()).unwrap();
        assert_eq!((back.written(), back.complete()), (7, 4096));
        assert!(Header::from_bytes(&header.as_bytes()[1..]).is_none());
    }

    #[test]
    fn a_private_journal_starts_again_at_zero_once_all_is_written() {
        let mut journal = Journal::private(capacity_for(10));
        journal.put(b"one\ntwo\n");
        journal.commit();
        assert_eq!(journal.unwritten(), b"one\ntwo\n");
        journal.advance(4);
        assert_eq!((journal.written(), journal.unwritten()), (4, &b"two\n"[..]));
        journal.advance(4);
        assert_eq!((journal.written(), journal.pending()), (0, 0));
        assert!(journal.fits(capacity_for(10)) && !journal.fits(capacity_for(10) + 1));
    }

    #[test]
    fn a_write_stopped_inside_a_line_skips_the_rest_of_it() {
        let mut journal = Journal::private(capacity_for(10));
        journal.put(b"one\ntwo\nthree\n");
        journal.advance(6);
        assert!(journal.skip_partial_line());
        assert_eq!(journal.unwritten(), b"three\n");
        assert!(!journal.skip_partial_line());
    }
}
