//! Live statistics in POSIX shared memory, guarded by a named semaphore.
//!
//! The handlers count into [`Counters`] (plain integers, no locking); once
//! per loop round [`StatsShm::publish`] copies them into the shared object
//! while holding the semaphore. Readers (`client --stats`) take the
//! semaphore with a timeout, copy, and release.
//!
//! Both names derive from the queue's (`/postbox` → `/postbox.stats`), and
//! the pair belongs to whoever owns the queue: a server that holds the
//! queue's lock removes any pair left by a killed predecessor and creates
//! its own.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::layout::{stats_name, SourceStats, StatsPage, MAGIC, VERSION};

/// How long the semaphore may stay taken before its holder is presumed
/// dead: readers hold it for the copy of a few hundred bytes.
const HOLD_LIMIT_SECS: u64 = 1;

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Queue = 0,
    Stdin = 1,
    Tcp = 2,
    Unix = 3,
}

/// What the handlers count, published once per round.
#[derive(Debug, Default)]
pub struct Counters {
    pub sources: [SourceStats; 4],
    pub queue_depth: i64,
}

impl Counters {
    /// The counters of one source.
    pub fn source(&mut self, source: Source) -> &mut SourceStats {
        &mut self.sources[source as usize]
    }
}

/// The shared object and its semaphore, removed on drop.
pub struct StatsShm {
    name: CString,
    page: *mut StatsPage,
    sem: *mut libc::sem_t,
    header: StatsPage,
    busy_since: Option<Instant>,
}

impl StatsShm {
    /// Creates the pair for `queue`, replacing a stale one. The caller must
    /// own the queue (hold its lock).
    pub fn create(queue: &str, mode: libc::mode_t, queue_capacity: i64) -> io::Result<StatsShm> {
        let name = checked_name(queue)?;
        unlink_stale(&name);
        let started = now_ns();
        let mut shm = StatsShm {
            name,
            page: ptr::null_mut(),
            sem: libc::SEM_FAILED,
            header: StatsPage {
                magic: MAGIC,
                version: VERSION,
                size: std::mem::size_of::<StatsPage>() as u32,
                pid: std::process::id(),
                started_ns: started,
                updated_ns: started,
                queue_capacity,
                ..StatsPage::default()
            },
            busy_since: None,
        };
        shm.page = map_new_object(&shm.name, mode)?;
        // SAFETY: `page` maps a whole `StatsPage`, which no one else can
        // open yet: the semaphore that readers wait for does not exist.
        unsafe { ptr::write_volatile(shm.page, shm.header) };
        // SAFETY: `name` is NUL-terminated; O_CREAT reads the mode and the value.
        shm.sem = unsafe {
            libc::sem_open(shm.name.as_ptr(), libc::O_CREAT | libc::O_EXCL, mode, 1 as libc::c_uint)
        };
        if shm.sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(shm)
    }

    /// The object's name, for logs.
    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    /// Copies the counters into the shared object, unless a reader holds the
    /// semaphore right now; then the next round will. A holder that keeps it
    /// for over a second is presumed dead and its hold undone.
    pub fn publish(&mut self, counters: &Counters) {
        self.header.rounds += 1;
        // SAFETY: `sem` is an open semaphore until drop.
        if unsafe { libc::sem_trywait(self.sem) } != 0 {
            self.release_if_abandoned();
            return;
        }
        self.busy_since = None;
        self.absorb_extra_tokens();
        let page = StatsPage {
            updated_ns: coarse_now_ns(),
            queue_depth: counters.queue_depth,
            sources: counters.sources,
            ..self.header
        };
        // SAFETY: `page` maps a whole `StatsPage` until drop, and we hold the semaphore.
        unsafe { ptr::write_volatile(self.page, page) };
        // SAFETY: as above.
        unsafe { libc::sem_post(self.sem) };
    }

    /// A dead holder's hold undone while it was in fact alive leaves a
    /// token too many once it posts: take extras while we hold the
    /// semaphore. (`sem_getvalue` is a plain read: nothing to pay otherwise.)
    fn absorb_extra_tokens(&mut self) {
        let mut value = 0;
        // SAFETY: `sem` is an open semaphore until drop; `value` is writable.
        while unsafe { libc::sem_getvalue(self.sem, &mut value) } == 0 && value > 0 {
            // SAFETY: as above.
            unsafe { libc::sem_trywait(self.sem) };
        }
    }

    fn release_if_abandoned(&mut self) {
        let since = *self.busy_since.get_or_insert_with(Instant::now);
        if since.elapsed().as_secs() >= HOLD_LIMIT_SECS {
            log::warn!(
                "{}: semaphore held for over {HOLD_LIMIT_SECS} s; its holder died? releasing it",
                self.name()
            );
            // SAFETY: `sem` is an open semaphore until drop.
            unsafe { libc::sem_post(self.sem) };
            self.busy_since = None;
        }
    }
}

impl Drop for StatsShm {
    fn drop(&mut self) {
        if !self.page.is_null() {
            // SAFETY: `page` is our mapping of exactly one `StatsPage`, unused after this.
            unsafe { libc::munmap(self.page.cast(), std::mem::size_of::<StatsPage>()) };
        }
        if self.sem != libc::SEM_FAILED {
            // SAFETY: `sem` is open and unused after this.
            unsafe { libc::sem_close(self.sem) };
        }
        unlink_stale(&self.name);
    }
}

/// `shm_open` + `ftruncate` + `mmap` of a new object; the descriptor is
/// closed at once, the mapping stays.
fn map_new_object(name: &CString, mode: libc::mode_t) -> io::Result<*mut StatsPage> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated.
    let raw = unsafe { libc::shm_open(name.as_ptr(), flags, mode) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `shm_open` just returned this descriptor; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = std::mem::size_of::<StatsPage>();
    // SAFETY: plain call on an open descriptor.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a fresh shared mapping of the object's whole size; no existing memory is touched.
    let page = unsafe { libc::mmap(ptr::null_mut(), size, prot, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
    if page == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(page.cast())
}

/// Removes the pair's names; a missing name is not an error.
fn unlink_stale(name: &CString) {
    // SAFETY: `name` is NUL-terminated.
    let result = unsafe { libc::shm_unlink(name.as_ptr()) };
    warn_unless_missing(name, "shm_unlink", result);
    // SAFETY: `name` is NUL-terminated.
    let result = unsafe { libc::sem_unlink(name.as_ptr()) };
    warn_unless_missing(name, "sem_unlink", result);
}

fn warn_unless_missing(name: &CString, call: &str, result: libc::c_int) {
    if result == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            log::warn!("{}: {call}: {e}", name.to_string_lossy());
        }
    }
}

/// The pair's name; a semaphore's file is `sem.` plus the name, and both
/// must fit in a file name.
fn checked_name(queue: &str) -> io::Result<CString> {
    let name = stats_name(queue);
    if name.len() - 1 + "sem.".len() > 255 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: too long for a semaphore name"),
        ));
    }
    CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The time of the last tick (a few milliseconds of precision), without a
/// system call or a clock read: enough for "updated N ms ago", cheap enough
/// for every round.
fn coarse_now_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is writable; the clock id is valid on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } != 0 {
        return now_ns();
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
