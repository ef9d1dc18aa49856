//! `client --stats`: reads the server's live statistics from shared memory.
//!
//! Opens the object read-only, takes the semaphore with a deadline
//! (`sem_timedwait`), copies, releases. A semaphore that stays taken past
//! the deadline means its holder is stuck or dead: the client then copies
//! without it, says so, and exits 1, so that it never hangs.

use std::fs;
use std::io;
use std::mem;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipc::{sigbus, MessageQueue, NamedSemaphore, ObjectInfo, SharedMemory};
use server::stats_page::{stats_name, StatsPage, MAGIC, SOURCE_NAMES, VERSION};

use crate::queue;

/// A copy of the statistics, and how far to trust it.
#[derive(Debug)]
pub struct Snapshot {
    /// The figures.
    pub page: StatsPage,
    /// The semaphore was taken for the copy.
    pub consistent: bool,
    /// A server holds the queue's lock.
    pub server_running: bool,
}

/// Reads the statistics of `queue`, waiting at most `timeout` for the lock,
/// and checks that they are the queue's server's: a page that is not whole,
/// not of this layout, or not written by the owner of the queue (another
/// user's forgery, or a process that is not the server) is refused.
pub fn read(queue: &str, timeout: Duration) -> io::Result<Snapshot> {
    let name = stats_name(queue);
    let shm = SharedMemory::open(&name, false).map_err(|e| unreadable(queue, &name, e))?;
    let sem = NamedSemaphore::open(&name).map_err(|e| unreadable(queue, &name, e))?;
    // Whoever may take the semaphore may also shrink its file, and glibc's
    // mapping of it would then fault: refuse a short file at once, and
    // survive one shrunk after this look.
    if sem.info()?.size < mem::size_of::<libc::sem_t>() as u64 {
        return Err(shrunk(queue, &sem));
    }
    sigbus::watch(sigbus::Region::Semaphore, sem.as_ptr().cast(), 1)?;
    let consistent = sem.wait_timeout(timeout)?;
    if sigbus::take_tampered(sigbus::Region::Semaphore) {
        return Err(shrunk(queue, &sem));
    }
    let mut bytes = [0u8; mem::size_of::<StatsPage>()];
    // `pread`, not a mapping: an object shrunk under us cannot fault.
    let read = shm.read_at(&mut bytes, 0);
    if consistent {
        sem.post()?;
    }
    let page = check_layout(&name, &bytes[..read?])?;
    let open = match MessageQueue::open_to_inspect(queue) {
        Ok(open) => Some(open),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let server_running = open.as_ref().map(queue::held_by_server).transpose()?.unwrap_or(false);
    check_owner(queue, &name, &page, &shm.info()?, open.as_ref(), server_running)?;
    Ok(Snapshot { page, consistent, server_running })
}

/// Another process shrank the semaphore's file: it guards nothing.
fn shrunk(queue: &str, sem: &NamedSemaphore) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "statistics of queue {queue}: the semaphore's file {} was shrunk (truncated) by another \
             process, so it guards nothing: not read (the server goes on without statistics)",
            sem.path()
        ),
    )
}

/// The object exists but cannot be opened, or does not exist: say which.
fn unreadable(queue: &str, name: &str, e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(
            e.kind(),
            format!("no statistics for queue {queue} ({name} does not exist): is the server running?"),
        ),
        io::ErrorKind::PermissionDenied => io::Error::new(
            e.kind(),
            format!(
                "statistics of queue {queue} exist ({name}) but this user may not read them: \
                 the server's --mode does not let this user in"
            ),
        ),
        _ => e,
    }
}

/// The page must be whole and of this client's layout.
fn check_layout(name: &str, bytes: &[u8]) -> io::Result<StatsPage> {
    let size = mem::size_of::<StatsPage>();
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {why}"));
    let Some(page) = StatsPage::from_bytes(bytes) else {
        return Err(invalid(format!("{} bytes, not the {size} of a statistics page", bytes.len())));
    };
    if page.magic != MAGIC {
        return Err(invalid("not a postbox statistics page".to_string()));
    }
    if page.version != VERSION || page.size as usize != size {
        return Err(invalid(format!(
            "layout version {} ({} bytes), but this client reads version {VERSION} ({size} bytes): \
             use the client built with the server",
            page.version, page.size
        )));
    }
    if !page.is_sealed() {
        return Err(invalid(
            "the figures do not match their checksum: the page was not written whole by the server \
             (changed by another program?)"
                .to_string(),
        ));
    }
    Ok(page)
}

/// The page must be the queue's server's: its object owned by the queue's
/// owner, the user the page names, and (while a server runs) written by
/// the process that holds the queue's lock, with the queue's capacity.
/// `open` is the queue, if it still exists.
fn check_owner(
    queue: &str,
    name: &str,
    page: &StatsPage,
    object: &ObjectInfo,
    open: Option<&MessageQueue>,
    server_running: bool,
) -> io::Result<()> {
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is not the statistics of queue {queue}'s server: {why}"),
        ))
    };
    if object.uid != page.uid {
        return refuse(format!(
            "the object belongs to user {}, the page names user {}",
            object.uid, page.uid
        ));
    }
    // The queue is gone: the page is checked against itself only.
    let Some(open) = open else {
        return Ok(());
    };
    let queue_info = open.info()?;
    if queue_info.uid != object.uid {
        return refuse(format!(
            "the queue belongs to user {}, the statistics object to user {}",
            queue_info.uid, object.uid
        ));
    }
    if !server_running {
        return Ok(());
    }
    if !holds_lock(page.pid, queue_info.identity) {
        return refuse(format!("the server holding the queue is not pid {}, which the page names", page.pid));
    }
    let capacity = open.attributes()?.max_messages;
    if page.queue_capacity != capacity || !(0..=capacity).contains(&page.queue_depth) {
        return refuse(format!(
            "the page says {} of {} messages, the queue holds at most {capacity}",
            page.queue_depth, page.queue_capacity
        ));
    }
    Ok(())
}

/// Whether process `pid` holds a `flock` on the object `identity` (device,
/// inode), as `/proc/locks` lists them: `1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ...`.
fn holds_lock(pid: u32, (dev, ino): (u64, u64)) -> bool {
    let Ok(locks) = fs::read_to_string("/proc/locks") else {
        return false;
    };
    let file = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    let pid = pid.to_string();
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK")
            && fields.get(4) == Some(&pid.as_str())
            && fields.get(5) == Some(&file.as_str())
    })
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
        "lines printed: {}, dropped: {}, replayed: {}\n",
        p.lines_printed, p.lines_dropped, p.lines_replayed
    );
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
         \"queue_depth\":{},\"queue_capacity\":{},\"lines_printed\":{},\"lines_dropped\":{},\"lines_replayed\":{},\"server_running\":{},\"consistent\":{},\"sources\":{{{}}}}}",
        json_string(queue),
        p.pid,
        p.started_ns,
        p.updated_ns,
        p.rounds,
        p.queue_depth,
        p.queue_capacity,
        p.lines_printed,
        p.lines_dropped,
        p.lines_replayed,
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
