//! Nothing outlives the benchmark: every child process and every queue name
//! is recorded while it lives, and an interrupt (SIGINT, SIGTERM, SIGHUP)
//! ends the children and unlinks the queues before the conductor exits.
//!
//! The conductor blocks those signals in its main thread before it starts any
//! other thread, so they all inherit the mask; one thread waits for them with
//! `sigwait`. Children do not inherit the mask: [`crate::children::Proc`]
//! clears it in the child before `exec`.

use std::ffi::CString;
use std::io;
use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// What lives now and must be gone when the conductor exits.
struct Live {
    /// Child process ids, with the signal that asks each to stop cleanly.
    children: Vec<(libc::pid_t, libc::c_int)>,
    queues: Vec<CString>,
}

static LIVE: Mutex<Live> = Mutex::new(Live { children: Vec::new(), queues: Vec::new() });

const INTERRUPTS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Blocks the interrupt signals and starts the thread that handles them.
/// Call first thing, before any other thread exists.
pub fn catch_interrupts() {
    let set = interrupt_set();
    // SAFETY: `set` is an initialised signal set; the old mask is not wanted.
    let err = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
    assert_eq!(err, 0, "bench setup: cannot block the interrupt signals");
    thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: `set` is initialised and `signal` is writable.
        while unsafe { libc::sigwait(&set, &mut signal) } != 0 {}
        eprintln!("bench: interrupted: stopping children and removing queues");
        clean_up_everything();
        std::process::exit(128 + signal);
    });
}

fn interrupt_set() -> libc::sigset_t {
    // SAFETY: `sigset_t` is a plain C bit set; `sigemptyset` initialises it.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is writable, and the signals are valid numbers.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in INTERRUPTS {
            libc::sigaddset(&mut set, signal);
        }
    }
    set
}

/// Asks every child to stop, kills those that do not within a second, and
/// unlinks every recorded queue (a server killed by SIGKILL leaves its own).
fn clean_up_everything() {
    let live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for &(pid, signal) in &live.children {
        // SAFETY: plain call; the pid is a child that has not been reaped yet.
        unsafe { libc::kill(pid, signal) };
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    for &(pid, _) in &live.children {
        while !reaped(pid) {
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                // SAFETY: blocking wait for our own child.
                unsafe { libc::waitpid(pid, ptr::null_mut(), 0) };
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    for name in &live.queues {
        unlink_all(name);
    }
}

/// Removes a queue and what a server keeps beside it: the statistics pair
/// (`NAME.stats` in shared memory and as a semaphore) and the output
/// journal (`NAME.journal`, which a server killed with SIGKILL leaves, as
/// the footprint rows' kernel floor does). Names that are gone already
/// (the usual case: their server removed them) are no error.
fn unlink_all(queue: &CString) {
    let beside =
        |suffix: &[u8]| CString::new([queue.as_bytes(), suffix].concat()).expect("queue names have no NUL");
    let (stats, journal) = (beside(b".stats"), beside(b".journal"));
    // SAFETY: every name is NUL-terminated.
    unsafe {
        libc::mq_unlink(queue.as_ptr());
        libc::shm_unlink(stats.as_ptr());
        libc::sem_unlink(stats.as_ptr());
        libc::shm_unlink(journal.as_ptr());
    }
}

fn reaped(pid: libc::pid_t) -> bool {
    // SAFETY: non-blocking wait for our own child; the status is not wanted.
    unsafe { libc::waitpid(pid, ptr::null_mut(), libc::WNOHANG) != 0 }
}

/// Removes what earlier runs left when they were killed with SIGKILL (the
/// one signal that cannot be caught): queues, statistics and journals named
/// `pbbench-PID-N` whose PID is gone. Needs the mqueue filesystem mounted
/// on `/dev/mqueue` (and `/dev/shm`) to see them; without it, does nothing.
pub fn sweep_dead_runs() {
    let dirs = ["/dev/mqueue", "/dev/shm"];
    for entry in dirs.iter().filter_map(|dir| std::fs::read_dir(dir).ok()).flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("sem.").unwrap_or(&name).strip_prefix("pbbench-") else {
            continue;
        };
        let Some((pid, number)) = rest.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let number = number.trim_end_matches(".stats").trim_end_matches(".journal");
            let queue = CString::new(format!("/pbbench-{pid}-{number}")).expect("no NUL in a file name");
            unlink_all(&queue);
        }
    }
}

/// Records a child until [`forget_child`] is called for it.
pub fn track_child(pid: u32, stop_signal: libc::c_int) {
    lock().children.push((pid as libc::pid_t, stop_signal));
}

/// The child has been reaped.
pub fn forget_child(pid: u32) {
    lock().children.retain(|&(p, _)| p != pid as libc::pid_t);
}

/// A queue name unique to this run (`/pbbench-PID-N`), unlinked (with the
/// server's statistics and journal beside it) when it is dropped or the
/// conductor is interrupted.
pub struct QueueName {
    name: String,
    c_name: CString,
}

impl QueueName {
    pub fn new() -> QueueName {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("/pbbench-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let c_name = CString::new(name.clone()).expect("queue names have no NUL");
        lock().queues.push(c_name.clone());
        QueueName { name, c_name }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl Drop for QueueName {
    fn drop(&mut self) {
        unlink_all(&self.c_name);
        lock().queues.retain(|q| *q != self.c_name);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
