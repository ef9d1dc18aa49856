//! POSIX named semaphores and shared memory, as the test's own process
//! sees them: a semaphore held by a "stuck reader", a forged statistics
//! page, and where both live in `/dev/shm`.

use std::io;
use std::path::{Path, PathBuf};

use ipc::{NamedSemaphore, SharedMemory};

use crate::DEADLINE;

/// A named semaphore opened by the test, closed on drop. The test may hold
/// it (take it and not give it back) to play a stuck reader; whatever it
/// still holds at drop is posted back.
#[derive(Debug)]
pub struct TestSemaphore {
    sem: NamedSemaphore,
    held: u32,
}

impl TestSemaphore {
    /// Opens an existing semaphore.
    pub fn open(name: &str) -> io::Result<TestSemaphore> {
        Ok(TestSemaphore { sem: NamedSemaphore::open(name)?, held: 0 })
    }

    /// Creates a semaphore that must not exist yet, with mode 0600 and
    /// `value`. Its name must be removed by the caller (a
    /// [`TestQueue`](crate::TestQueue) removes `NAME.stats`).
    pub fn create(name: &str, value: u32) -> io::Result<TestSemaphore> {
        Ok(TestSemaphore { sem: NamedSemaphore::create(name, 0o600, value)?, held: 0 })
    }

    /// Takes the semaphore, waiting at most [`DEADLINE`] for it.
    pub fn take(&mut self) {
        let taken = self.sem.wait_timeout(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
        assert!(taken, "semaphore {} stayed taken for {DEADLINE:?}", self.sem.name());
        self.held += 1;
    }

    /// Gives back what [`take`](TestSemaphore::take) took.
    pub fn post(&mut self) {
        assert!(self.held > 0, "post without take");
        self.sem.post().unwrap_or_else(|e| panic!("{e}"));
        self.held -= 1;
    }

    /// Makes a child process take the semaphore, then kills it
    /// (`SIGKILL`): a reader that died holding it. Returns once the child
    /// is reaped; the token is gone with it.
    pub fn taken_by_a_killed_process(&self) {
        // SAFETY: the child only calls `sem_wait` (on a semaphore mapped
        // before the fork), `pause` and `_exit`: no lock another thread may hold.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", io::Error::last_os_error());
        if child == 0 {
            // SAFETY: the semaphore stays mapped in the child; it dies waiting.
            unsafe {
                libc::sem_wait(self.sem.as_ptr());
                loop {
                    libc::pause();
                }
            }
        }
        crate::wait_until("the child to take the semaphore", || self.value() == 0);
        // SAFETY: `child` is our own child, not yet reaped.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
    }

    /// The semaphore's value (`sem_getvalue`).
    pub fn value(&self) -> u32 {
        self.sem.value().unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for TestSemaphore {
    fn drop(&mut self) {
        for _ in 0..self.held {
            let _ = self.sem.post();
        }
    }
}

/// Creates a POSIX shared memory object that must not exist yet (mode
/// 0600) holding `bytes`. Its name must be removed by the caller (a
/// [`TestQueue`](crate::TestQueue) removes `NAME.stats`).
pub fn create_shared_memory(name: &str, bytes: &[u8]) -> io::Result<()> {
    let shm = SharedMemory::create(name, bytes.len(), 0o600)?;
    shm.write_at(bytes, 0)
}

/// The path in `/dev/shm` of the shared memory object `name` (`/X` is
/// `/dev/shm/X`), and of the named semaphore `name` (`/dev/shm/sem.X`).
pub fn shm_paths(name: &str) -> (PathBuf, PathBuf) {
    let base = name.trim_start_matches('/');
    (Path::new("/dev/shm").join(base), Path::new("/dev/shm").join(format!("sem.{base}")))
}
