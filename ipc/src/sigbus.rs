//! Survives a semaphore whose file another process shrank.
//!
//! glibc maps a named semaphore's file ([`NamedSemaphore::as_ptr`](crate::NamedSemaphore::as_ptr)),
//! and every user who may take a semaphore may also `ftruncate` its file:
//! the next `sem_*` call would then fault with `SIGBUS` and kill the
//! process. After [`watch`], a handler for `SIGBUS` checks whether the
//! fault is in the semaphore's page; if it is, it maps a private page of
//! zeros over it, so that the access completes harmlessly, and notes the
//! tampering for [`take_tampered`] (the semaphore is useless from then
//! on). Any other `SIGBUS` kills the process as it would have.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The page being watched (0: none).
static WATCHED: AtomicUsize = AtomicUsize::new(0);

/// A fault in the watched page happened.
static TAMPERED: AtomicBool = AtomicBool::new(false);

/// Watches the page that holds `ptr` from now on (one page per process).
pub fn watch(ptr: *const u8) -> io::Result<()> {
    let page = page_size();
    WATCHED.store(ptr as usize & !(page - 1), Ordering::SeqCst);
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

/// Whether the watched page was replaced since the last call.
pub fn take_tampered() -> bool {
    TAMPERED.swap(false, Ordering::SeqCst)
}

fn page_size() -> usize {
    // SAFETY: plain query.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Only async-signal-safe calls: `mmap`, `signal`, `raise`.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler.
    let address = unsafe { (*info).si_addr() } as usize;
    let page = page_size();
    let watched = WATCHED.load(Ordering::SeqCst);
    if watched != 0 && address & !(page - 1) == watched {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: replaces exactly the watched page, which only the semaphore occupies.
        let mapped = unsafe { libc::mmap(watched as *mut libc::c_void, page, prot, flags, -1, 0) };
        if mapped != libc::MAP_FAILED {
            TAMPERED.store(true, Ordering::SeqCst);
            return;
        }
    }
    // SAFETY: back to the default action, then the same signal again: the process ends as it would have.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
