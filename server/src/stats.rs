//! Live statistics in POSIX shared memory, guarded by a named semaphore.
//!
//! The handlers count into [`Counters`] (plain integers, no locking); once
//! per loop round [`StatsShm::publish`] writes them into the shared object
//! while holding the semaphore. Readers (`client --stats`) take the
//! semaphore with a timeout, copy, and release.
//!
//! The page is written with `pwrite`, never through a mapping: another
//! process that shrinks the object cannot make the server fault (`SIGBUS`).
//! The semaphore is mapped (glibc does that), and its users could shrink
//! its file: a fault there is caught (`sigbus`), and the statistics stop.
//! The object is readable, never writable, by the users the queue's mode
//! lets in; the semaphore is theirs to take and give back.
//!
//! Both names derive from the queue's (`/postbox` → `/postbox.stats`), and
//! the pair belongs to whoever owns the queue: a server that holds the
//! queue's lock removes any pair left by a killed predecessor and creates
//! its own.

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipc::{sigbus, NamedSemaphore, SharedMemory};

use crate::lifecycle::SharedLifecycle;
use crate::stats_page::{stats_name, SourceStats, StatsPage, MAGIC, VERSION};
use crate::sys::{cvt, geteuid};

/// How long the semaphore may stay taken before its holder is presumed
/// dead: readers hold it for the copy of a few hundred bytes.
const HOLD_LIMIT_SECS: u64 = 1;

/// How often the loop must publish, even when idle: a semaphore left held
/// by a dead reader is noticed and taken back only by a publish.
pub const PUBLISH_AT_LEAST_EVERY: Duration = Duration::from_millis(500);

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The message queue.
    Queue = 0,
    /// Standard input.
    Stdin = 1,
    /// A TCP connection.
    Tcp = 2,
    /// A Unix-socket connection.
    Unix = 3,
}

/// What the handlers count, published once per round.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per source, in the order of [`Source`].
    pub sources: [SourceStats; 4],
    /// Messages in the queue when it was last looked at.
    pub queue_depth: i64,
    /// Lines written to stdout.
    pub lines_printed: u64,
    /// Lines received and lost: not written, and not kept in the journal
    /// for the next server either (see `crate::journal`).
    pub lines_dropped: u64,
    /// Lines left unwritten by a server that was killed, printed by this one
    /// first (from the journal).
    pub lines_replayed: u64,
    /// Lines not printed at the end, kept in the journal for the next
    /// server (counted once, at exit).
    pub lines_kept: u64,
}

impl Counters {
    /// The counters of one source.
    pub fn source(&mut self, source: Source) -> &mut SourceStats {
        &mut self.sources[source as usize]
    }

    /// Messages received from every source together.
    pub fn received(&self) -> u64 {
        self.sources.iter().map(|s| s.messages).sum()
    }
}

/// The permission bits of the statistics object for a queue of `mode`:
/// the owner reads and writes; whoever the queue lets in (group, others)
/// may read, never write.
pub fn page_mode(mode: libc::mode_t) -> libc::mode_t {
    0o600 | readers(mode) & 0o044
}

/// The permission bits of the semaphore: readers take it and give it back,
/// which needs read and write.
pub fn semaphore_mode(mode: libc::mode_t) -> libc::mode_t {
    0o600 | readers(mode)
}

/// `rw` bits for the group and for others, where `mode` gives them any access.
fn readers(mode: libc::mode_t) -> libc::mode_t {
    let group = if mode & 0o070 != 0 { 0o060 } else { 0 };
    let others = if mode & 0o007 != 0 { 0o006 } else { 0 };
    group | others
}

/// The shared object and its semaphore, removed on drop.
#[derive(Debug)]
pub struct StatsShm {
    name: String,
    shm: SharedMemory,
    sem: NamedSemaphore,
    page: StatsPage,
    busy_since: Option<Instant>,
    /// Another process shrank the semaphore's file: publishing has stopped.
    tampered: bool,
    /// Told when the pair cannot be removed at the end.
    lifecycle: SharedLifecycle,
}

impl StatsShm {
    /// Creates the pair for `queue`, replacing a stale one. The caller must
    /// own the queue (hold its lock).
    pub fn create(
        queue: &str,
        mode: libc::mode_t,
        queue_capacity: i64,
        lifecycle: SharedLifecycle,
    ) -> io::Result<StatsShm> {
        let name = stats_name(queue);
        unlink_stale(&name)?;
        let started = now_ns();
        let page = StatsPage {
            magic: MAGIC,
            version: VERSION,
            size: std::mem::size_of::<StatsPage>() as u32,
            pid: std::process::id(),
            uid: geteuid(),
            started_ns: started,
            updated_ns: started,
            queue_capacity,
            ..StatsPage::default()
        };
        let shm = SharedMemory::create(&name, std::mem::size_of::<StatsPage>(), page_mode(mode))?;
        let mut stats = StatsShm {
            sem: NamedSemaphore::create(&name, semaphore_mode(mode), 0).inspect_err(|_| {
                let _ = SharedMemory::unlink(&name);
            })?,
            name,
            shm,
            page,
            busy_since: None,
            tampered: false,
            lifecycle,
        };
        sigbus::watch(sigbus::Region::Semaphore, stats.sem.as_ptr().cast(), 1)?;
        // Nobody can read the page before the semaphore holds its first token.
        stats.write_page()?;
        stats.sem.post()?;
        Ok(stats)
    }

    /// The object's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes the counters into the shared object, unless a reader holds
    /// the semaphore right now; then the next round will. A holder that
    /// keeps it for over a second is presumed dead and its hold undone.
    pub fn publish(&mut self, counters: &Counters) {
        self.page.rounds += 1;
        if self.tampered {
            return;
        }
        let taken = self.sem.try_wait().unwrap_or(false);
        if sigbus::take_tampered(sigbus::Region::Semaphore) {
            self.tampered = true;
            log::warn!("{}: another process shrank the semaphore's file; statistics stop here", self.name);
            return;
        }
        if !taken {
            self.release_if_abandoned();
            return;
        }
        self.busy_since = None;
        self.absorb_extra_tokens();
        // The coarse clock may lag the precise one of the start by a tick: never back.
        self.page.updated_ns = coarse_now_ns().max(self.page.updated_ns);
        self.page.queue_depth = counters.queue_depth;
        self.page.lines_printed = counters.lines_printed;
        self.page.lines_dropped = counters.lines_dropped;
        self.page.lines_replayed = counters.lines_replayed;
        self.page.sources = counters.sources;
        if let Err(e) = self.write_page() {
            log::warn!("{}: {e}", self.name);
        }
        let _ = self.sem.post();
    }

    fn write_page(&mut self) -> io::Result<()> {
        self.page.sequence += 1;
        self.page.seal();
        self.shm.write_at(self.page.as_bytes(), 0)
    }

    /// A dead holder's hold undone while it was in fact alive leaves a
    /// token too many once it posts: take extras while we hold the
    /// semaphore. (`sem_getvalue` is a plain read: nothing to pay otherwise.)
    fn absorb_extra_tokens(&mut self) {
        while self.sem.value().unwrap_or(0) > 0 && self.sem.try_wait().unwrap_or(false) {}
    }

    fn release_if_abandoned(&mut self) {
        let since = *self.busy_since.get_or_insert_with(Instant::now);
        if since.elapsed().as_secs() >= HOLD_LIMIT_SECS {
            log::warn!(
                "{}: semaphore held for over {HOLD_LIMIT_SECS} s; its holder died? releasing it",
                self.name
            );
            let _ = self.sem.post();
            self.busy_since = None;
        }
    }
}

impl Drop for StatsShm {
    /// Removes both names; one that cannot be removed fails the run.
    fn drop(&mut self) {
        if let Err(e) = unlink_stale(&self.name) {
            log::error!("{e}");
            self.lifecycle.mark_failed();
        }
    }
}

/// Removes the pair's names; a missing name is not an error, any other
/// failure is (a pair we cannot remove is not ours to replace).
fn unlink_stale(name: &str) -> io::Result<()> {
    let missing_is_fine = |result: io::Result<()>| match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    missing_is_fine(SharedMemory::unlink(name))?;
    missing_is_fine(NamedSemaphore::unlink(name))
}

/// The time of the last tick (a few milliseconds of precision), without a
/// system call: enough for "updated N ms ago", cheap enough for every round.
fn coarse_now_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is writable; the clock id is valid on Linux.
    if cvt(unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) }).is_err() {
        return now_ns();
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_may_read_the_page_and_use_the_semaphore_never_write_the_page() {
        assert_eq!((page_mode(0o600), semaphore_mode(0o600)), (0o600, 0o600));
        assert_eq!((page_mode(0o660), semaphore_mode(0o660)), (0o640, 0o660));
        assert_eq!((page_mode(0o620), semaphore_mode(0o620)), (0o640, 0o660));
        assert_eq!((page_mode(0o622), semaphore_mode(0o622)), (0o644, 0o666));
    }
}
