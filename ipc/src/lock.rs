//! A named semaphore as a lock around a scope: [`NamedSemaphore::lock`],
//! [`NamedSemaphore::try_lock`], [`NamedSemaphore::lock_timeout`], and the
//! [`SemaphoreGuard`] that gives the token back when it is dropped.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::NamedSemaphore;

/// A token taken from a [`NamedSemaphore`], given back (`sem_post`) when
/// the guard is dropped: at the end of its scope, on an error return (`?`)
/// and when a panic unwinds. Not when the process dies: see
/// [`NamedSemaphore::lock_timeout`].
#[must_use = "the token is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    semaphore: &'a NamedSemaphore,
}

impl NamedSemaphore {
    /// `sem_wait`, then a guard that posts on drop: the scope of the guard
    /// holds one token. Waits while there is none, for as long as it takes;
    /// [`lock_timeout`](Self::lock_timeout) is the bounded wait.
    ///
    /// ```
    /// use ipc::NamedSemaphore;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-lock-{}", std::process::id());
    /// let (lock, _created) = NamedSemaphore::create_or_open(&name, 0o600, 1)?;
    /// let worker = |name: String| move || -> std::io::Result<()> {
    ///     // Each process (a thread here) opens the semaphore by its name.
    ///     let lock = NamedSemaphore::open(&name)?;
    ///     for _ in 0..100 {
    ///         let _held = lock.lock()?; // given back at the end of each turn
    ///     }
    ///     Ok(())
    /// };
    /// let (a, b) = (std::thread::spawn(worker(name.clone())), std::thread::spawn(worker(name.clone())));
    /// a.join().expect("a")?;
    /// b.join().expect("b")?;
    /// assert_eq!(lock.value()?, 1, "every token came back");
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self) -> io::Result<SemaphoreGuard<'_>> {
        self.wait()?;
        Ok(SemaphoreGuard { semaphore: self })
    }

    /// `sem_trywait`: a guard if a token was free, `None` if not.
    pub fn try_lock(&self) -> io::Result<Option<SemaphoreGuard<'_>>> {
        // `then`, not `then_some`: a guard made and dropped when none is free would post.
        Ok(self.try_wait()?.then(|| SemaphoreGuard { semaphore: self }))
    }

    /// `sem_timedwait`: a guard, waiting at most `timeout` for a token;
    /// `TimedOut`, naming the semaphore, if none came. The deadline is on
    /// the realtime clock, as POSIX has it (setting the clock moves it),
    /// and a signal that interrupts the wait resumes it until the same
    /// deadline.
    ///
    /// POSIX named semaphores are not robust: a process that dies holding
    /// a token (`SIGKILL`, a crash, `process::exit` inside the scope) never
    /// gives it back, and the semaphore stays taken for everyone. A program
    /// therefore waits with a bound, and on `TimedOut` either reports the
    /// semaphore stuck, or (only the program that owns it: the one that
    /// created it, such as a server) presumes the holder dead and posts
    /// once with [`post`](NamedSemaphore::post), then takes back any
    /// extra token ([`value`](NamedSemaphore::value),
    /// [`try_wait`](NamedSemaphore::try_wait)) when it holds the semaphore
    /// later, in case the holder was only slow. `docs/ipc.md` of postbox
    /// shows the server doing that.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ipc::NamedSemaphore;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-lock-timeout-{}", std::process::id());
    /// let (lock, _created) = NamedSemaphore::create_or_open(&name, 0o600, 1)?;
    /// let held = lock.lock()?;
    /// // Another process (a thread here) gives up after 50 ms.
    /// let waiter = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || -> std::io::Result<std::io::ErrorKind> {
    ///         let lock = NamedSemaphore::open(&name)?;
    ///         Ok(lock.lock_timeout(Duration::from_millis(50)).map(drop).expect_err("held").kind())
    ///     }
    /// });
    /// assert_eq!(waiter.join().expect("the waiter")?, std::io::ErrorKind::TimedOut);
    /// drop(held);
    /// assert!(lock.try_lock()?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> io::Result<SemaphoreGuard<'_>> {
        if self.wait_timeout(timeout)? {
            return Ok(SemaphoreGuard { semaphore: self });
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "semaphore {}: no token came within {timeout:?}; if it stays taken, its holder may \
                 have died holding it (named semaphores are not robust): its owner may post once",
                self.name()
            ),
        ))
    }
}

impl SemaphoreGuard<'_> {
    /// The semaphore it holds a token of.
    pub fn semaphore(&self) -> &NamedSemaphore {
        self.semaphore
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Fails only on a semaphore at its maximum value (EOVERFLOW): nothing to give back then.
        let _ = self.semaphore.post();
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").field("semaphore", &self.semaphore.name()).finish()
    }
}
