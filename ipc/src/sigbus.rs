//! Survives a shared mapping whose object another process shrank.
//!
//! Two kinds of mapping belong to objects that other processes may
//! `ftruncate`: a named semaphore (glibc maps its file
//! ([`NamedSemaphore::as_ptr`](crate::NamedSemaphore::as_ptr)), and every
//! user who may take a semaphore may also shrink it), and a shared-memory
//! object this process maps (the server's output journal: any process of
//! its owner may shrink it). An access past the new end faults with
//! `SIGBUS`, which would kill the process. After [`watch`], a handler for
//! `SIGBUS` checks whether the fault is in a watched [`Region`]; if it is,
//! it maps private memory of zeros over the whole of it, so that the access
//! completes harmlessly, and notes the tampering for [`take_tampered`] (the
//! semaphore is useless from then on; the mapping is private memory, no
//! longer shared). Any other `SIGBUS` kills the process as it would have.
//!
//! Besides the two [`Region`]s, each [`SharedArray`](crate::SharedArray)
//! watches its own mapping (up to 64 at once in a process), and turns a
//! fault into an error of the access that met it.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A range of addresses watched, whether a fault hit it, and (for the
/// slots of [`Guard`]s) whether the slot is taken.
struct Watched {
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
    taken: AtomicBool,
}

impl Watched {
    const fn new() -> Watched {
        Watched {
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            hit: AtomicBool::new(false),
            taken: AtomicBool::new(false),
        }
    }
}

/// What is watched: one of each per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The page of a named semaphore.
    Semaphore = 0,
    /// A mapping of a shared-memory object (the server's output journal).
    Mapping = 1,
}

/// How many mappings [`Guard`]s may watch at once, after the two regions.
const GUARDS: usize = 64;

static WATCHED: [Watched; 2 + GUARDS] = [const { Watched::new() }; 2 + GUARDS];

/// Watches the pages that hold `len` bytes from `ptr` as `region` from now
/// on, in place of what `region` watched before.
pub fn watch(region: Region, ptr: *const u8, len: usize) -> io::Result<()> {
    arm(&WATCHED[region as usize], ptr, len)
}

/// A watched mapping of its own, for as long as the guard lives: drop it
/// before the mapping is unmapped.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: usize,
}

impl Guard {
    /// Watches the pages that hold `len` bytes from `ptr` in a free slot.
    pub(crate) fn new(ptr: *const u8, len: usize) -> io::Result<Guard> {
        let free = |&slot: &usize| {
            WATCHED[slot].taken.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        };
        let slot = (2..2 + GUARDS).find(free).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("more than {GUARDS} shared arrays at once in this process: drop some"),
            )
        })?;
        let guard = Guard { slot };
        WATCHED[slot].hit.store(false, Ordering::SeqCst);
        arm(&WATCHED[slot], ptr, len)?;
        Ok(guard)
    }

    /// Whether a fault hit the mapping (it is private zeros from then on).
    pub(crate) fn tampered(&self) -> bool {
        WATCHED[self.slot].hit.load(Ordering::SeqCst)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        WATCHED[self.slot].start.store(0, Ordering::SeqCst);
        WATCHED[self.slot].taken.store(false, Ordering::SeqCst);
    }
}

/// Points `watched` at the pages of `len` bytes from `ptr`, and makes sure
/// the handler is installed.
fn arm(watched: &Watched, ptr: *const u8, len: usize) -> io::Result<()> {
    let page = page_size();
    let start = ptr as usize & !(page - 1);
    let end = (ptr as usize + len.max(1)).next_multiple_of(page);
    watched.start.store(0, Ordering::SeqCst);
    watched.len.store(end - start, Ordering::SeqCst);
    watched.start.store(start, Ordering::SeqCst);
    // SAFETY: `sigaction` is a plain C struct; all-zero is a valid start.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigbus;
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action` is initialised and lives across the call; the old action is not wanted.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Stops watching `region` (its mapping is about to go).
pub fn unwatch(region: Region) {
    WATCHED[region as usize].start.store(0, Ordering::SeqCst);
}

/// Whether `region` was replaced since the last call.
pub fn take_tampered(region: Region) -> bool {
    WATCHED[region as usize].hit.swap(false, Ordering::SeqCst)
}

fn page_size() -> usize {
    // SAFETY: plain query.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Only async-signal-safe calls: `mmap`, `signal`, `raise`.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler.
    let address = unsafe { (*info).si_addr() } as usize;
    for watched in &WATCHED {
        let start = watched.start.load(Ordering::SeqCst);
        let len = watched.len.load(Ordering::SeqCst);
        if start == 0 || !(start..start + len).contains(&address) {
            continue;
        }
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: replaces exactly the watched pages, which only the watched mapping occupies.
        let mapped = unsafe { libc::mmap(start as *mut libc::c_void, len, prot, flags, -1, 0) };
        if mapped != libc::MAP_FAILED {
            watched.hit.store(true, Ordering::SeqCst);
            return;
        }
    }
    // SAFETY: back to the default action, then the same signal again: the process ends as it would have.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
