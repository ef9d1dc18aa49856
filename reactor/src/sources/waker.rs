//! Waking the loop from other threads: an `eventfd` and a shared flag.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::callback::OnEvent;
use crate::sys::{self, syscall};
use crate::{Context, Handler, Readiness};

/// An eventfd with a "pending" flag in front of it: only the first wake
/// after the loop took the last one pays a `write`; the rest coalesce.
pub(crate) struct Bell {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Bell {
    pub(crate) fn new() -> io::Result<Bell> {
        let fd = sys::eventfd(0)?;
        Ok(Bell { fd, pending: AtomicBool::new(false) })
    }

    /// Makes the eventfd readable, unless a wake is already pending. What the
    /// caller did before is visible to the loop's callback (release here,
    /// acquire in `take`).
    pub(crate) fn ring(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local buffer.
        match syscall!(write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len())) {
            Ok(_) => Ok(()),
            // The counter is at its maximum: readable already.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.pending.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Clears the counter, then the flag. In this order no wake is lost: a
    /// ringer that finds the flag still set wrote (or will write) before the
    /// flag is cleared, and what it did is visible to the callback that
    /// follows (acquire here). The other order would lose one: a write that
    /// lands between the clear and the read is consumed while its ringer's
    /// flag stays set, and later ringers would then never write. Returns
    /// whether a wake was pending.
    pub(crate) fn take(&self) -> io::Result<bool> {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live local buffer.
        let read = match syscall!(read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len())) {
            Ok(_) => true,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => false,
            Err(e) => return Err(e),
        };
        let was_pending = self.pending.swap(false, Ordering::AcqRel);
        Ok(read || was_pending)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Wakes the loop from any thread and calls a closure on the loop's thread.
///
/// Make it, take [`handle`](Waker::handle)s (`Send + Sync + Clone`) for the
/// other threads, register it. Each [`WakeHandle::wake`] makes the loop call
/// the closure; wakes that arrive before the loop gets to it coalesce into
/// one call (the closure is told "something happened", not how many times:
/// keep the count, or the data, in something shared, or use
/// [`channel`](crate::sources::channel), which carries items).
///
/// A wake costs one `write` to an `eventfd` when the loop has taken the last
/// one, and an atomic swap when a wake is already pending. Handles outlive
/// the waker harmlessly: a wake after it was removed is lost.
///
/// ```
/// use reactor::{sources::Waker, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let waker = Waker::new(|ctx| ctx.stop())?;
/// let handle = waker.handle();
/// reactor.register(waker)?;
/// let thread = std::thread::spawn(move || handle.wake());
/// reactor.run()?; // returns once the thread woke it
/// thread.join().expect("no panic")?;
/// # Ok(())
/// # }
/// ```
pub struct Waker {
    bell: Arc<Bell>,
    callback: OnEvent,
}

/// The thread-safe side of a [`Waker`]: clone it, send it, share it.
#[derive(Clone)]
pub struct WakeHandle {
    bell: Arc<Bell>,
}

impl Waker {
    /// A waker (a new `eventfd`, non-blocking and close-on-exec) that calls
    /// `callback` on the loop's thread after one or more wakes.
    pub fn new(callback: impl FnMut(&mut Context) + 'static) -> io::Result<Waker> {
        Ok(Waker { bell: Arc::new(Bell::new()?), callback: Box::new(callback) })
    }

    /// A handle for another thread.
    pub fn handle(&self) -> WakeHandle {
        WakeHandle { bell: self.bell.clone() }
    }
}

impl WakeHandle {
    /// Wakes the loop. Fails only if the `eventfd` write does (never in
    /// practice: a full counter counts as woken).
    pub fn wake(&self) -> io::Result<()> {
        self.bell.ring()
    }
}

impl Handler for Waker {
    fn fd(&self) -> BorrowedFd<'_> {
        self.bell.fd()
    }

    fn name(&self) -> &str {
        "waker"
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        if self.bell.take()? {
            (self.callback)(ctx);
        }
        Ok(())
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker").field("fd", &self.bell.fd).finish_non_exhaustive()
    }
}

impl fmt::Debug for WakeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeHandle").field("fd", &self.bell.fd).finish()
    }
}
