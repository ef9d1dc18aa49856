//! `client --stats`: reads the server's live statistics from shared memory.
//!
//! Opens the object read-only, takes the semaphore with a deadline
//! (`sem_timedwait`), copies, releases. A semaphore that stays taken past
//! the deadline means its holder is stuck or dead: the client then copies
//! without it, says so, and exits 1, so that it never hangs.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::layout::{stats_name, StatsPage, MAGIC, SOURCE_NAMES, VERSION};
use crate::queue::{self, realtime_deadline};

/// A copy of the statistics, and how far to trust it.
pub struct Snapshot {
    pub page: StatsPage,
    /// The semaphore was taken for the copy.
    pub consistent: bool,
    /// A server holds the queue's lock.
    pub server_running: bool,
}

/// Reads the statistics of `queue`, waiting at most `timeout` for the lock.
pub fn read(queue: &str, timeout: Duration) -> io::Result<Snapshot> {
    let name = stats_name(queue);
    let c_name = CString::new(name.as_str()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let missing = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENOENT) => io::Error::new(
            e.kind(),
            format!("no statistics for queue {queue} ({name} does not exist): is the server running?"),
        ),
        _ => io::Error::new(e.kind(), format!("{name}: {e}")),
    };
    let map = Mapping::open(&c_name).map_err(missing)?;
    let sem = Semaphore::open(&c_name).map_err(missing)?;
    let consistent = sem.wait(timeout)?;
    // SAFETY: the mapping holds a whole `StatsPage`; volatile because the server writes it.
    let page = unsafe { ptr::read_volatile(map.page) };
    if consistent {
        sem.post();
    }
    if page.magic != MAGIC || page.version != VERSION || page.size as usize != mem::size_of::<StatsPage>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{name}: layout version {} ({} bytes), but this client reads version {VERSION} ({} bytes): \
                 use the client built with the server",
                page.version,
                page.size,
                mem::size_of::<StatsPage>()
            ),
        ));
    }
    let server_running = queue::server_running(queue)?;
    Ok(Snapshot { page, consistent, server_running })
}

/// The warning that goes with a snapshot, if any.
pub fn warning(queue: &str, snapshot: &Snapshot, timeout: Duration) -> Option<String> {
    let pid = snapshot.page.pid;
    match (snapshot.server_running, snapshot.consistent) {
        (true, true) => None,
        (false, _) => Some(format!(
            "no server owns queue {queue} any more (pid {pid} is gone): these figures are its last"
        )),
        (true, false) => Some(format!(
            "the statistics stayed locked for {} s (a reader stuck or killed while holding the \
             semaphore?): figures read without the lock, they may be torn",
            timeout.as_secs_f64()
        )),
    }
}

/// A readable table.
pub fn table(queue: &str, s: &Snapshot) -> String {
    let p = &s.page;
    let now = now_ns();
    let mut out = format!(
        "statistics of queue {queue}: server pid {}, up {}, updated {} ago, {} rounds\n",
        p.pid,
        human(now.saturating_sub(p.started_ns)),
        human(now.saturating_sub(p.updated_ns)),
        p.rounds
    );
    out += &format!("queue depth (last seen): {} of {} messages\n", p.queue_depth, p.queue_capacity);
    out += &format!(
        "{:<8}{:>12}{:>14}{:>8}{:>8}{:>8}\n",
        "source", "messages", "bytes", "open", "total", "errors"
    );
    for (name, src) in SOURCE_NAMES.iter().zip(&p.sources) {
        out += &format!(
            "{name:<8}{:>12}{:>14}{:>8}{:>8}{:>8}\n",
            src.messages, src.bytes, src.connections_open, src.connections_total, src.errors
        );
    }
    out
}

/// One JSON object, for scripts.
pub fn json(queue: &str, s: &Snapshot) -> String {
    let p = &s.page;
    let sources: Vec<String> = SOURCE_NAMES
        .iter()
        .zip(&p.sources)
        .map(|(name, src)| {
            format!(
                "\"{name}\":{{\"messages\":{},\"bytes\":{},\"connections_open\":{},\"connections_total\":{},\"errors\":{}}}",
                src.messages, src.bytes, src.connections_open, src.connections_total, src.errors
            )
        })
        .collect();
    format!(
        "{{\"queue\":{},\"pid\":{},\"started_unix_ns\":{},\"updated_unix_ns\":{},\"rounds\":{},\
         \"queue_depth\":{},\"queue_capacity\":{},\"server_running\":{},\"consistent\":{},\"sources\":{{{}}}}}",
        json_string(queue),
        p.pid,
        p.started_ns,
        p.updated_ns,
        p.rounds,
        p.queue_depth,
        p.queue_capacity,
        s.server_running,
        s.consistent,
        sources.join(",")
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out + "\""
}

fn human(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    match secs {
        0 => format!("{} ms", ns / 1_000_000),
        1..=59 => format!("{secs} s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs / 60 % 60),
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A read-only mapping of the statistics object.
struct Mapping {
    page: *const StatsPage,
}

impl Mapping {
    fn open(name: &CString) -> io::Result<Mapping> {
        // SAFETY: `name` is NUL-terminated.
        let raw = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0) };
        if raw == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `shm_open` just returned this descriptor; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `stat` is a plain C struct, filled in by `fstat`.
        let mut st: libc::stat = unsafe { mem::zeroed() };
        // SAFETY: the descriptor is open and `st` is writable.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let size = mem::size_of::<StatsPage>();
        if (st.st_size as usize) < size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the object is {} bytes, smaller than the {size} this client reads", st.st_size),
            ));
        }
        // SAFETY: a fresh read-only shared mapping of an object at least `size` bytes long.
        let page = unsafe {
            libc::mmap(ptr::null_mut(), size, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0)
        };
        if page == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { page: page.cast() })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our mapping of exactly one `StatsPage`, unused after this.
        unsafe { libc::munmap(self.page as *mut libc::c_void, mem::size_of::<StatsPage>()) };
    }
}

/// The named semaphore that guards the object.
struct Semaphore(*mut libc::sem_t);

impl Semaphore {
    fn open(name: &CString) -> io::Result<Semaphore> {
        // SAFETY: `name` is NUL-terminated; without O_CREAT no more arguments are read.
        let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Semaphore(sem))
    }

    /// Takes the semaphore; `false` if it stayed taken until the deadline.
    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = realtime_deadline(timeout)?;
        loop {
            // SAFETY: the semaphore is open and `deadline` lives across the call.
            if unsafe { libc::sem_timedwait(self.0, &deadline) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ETIMEDOUT) => return Ok(false),
                _ => return Err(e),
            }
        }
    }

    fn post(&self) {
        // SAFETY: the semaphore is open, and we hold it.
        unsafe { libc::sem_post(self.0) };
    }
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        // SAFETY: the semaphore is open and unused after this.
        unsafe { libc::sem_close(self.0) };
    }
}
