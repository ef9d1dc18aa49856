//! What the ipc tests share: a unique object name whose objects are
//! removed when it is dropped, even when the test fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use ipc::{MessageQueue, NamedSemaphore, SharedMemory};

/// A name of this test run (pid and a counter), and its objects removed on
/// drop: a queue, a shared memory object and a semaphore of that name.
pub struct Name(pub String);

impl Name {
    pub fn new() -> Name {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Name(format!("/ipc-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink(&self.0);
        let _ = SharedMemory::unlink(&self.0);
        let _ = NamedSemaphore::unlink(&self.0);
    }
}

/// Which of the three objects named `name` exist: queue, shared memory,
/// semaphore.
#[allow(dead_code)] // not every test file asks
pub fn which_exist(name: &str) -> [bool; 3] {
    let absent = |e: std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    [
        !MessageQueue::open_to_inspect(name).is_err_and(absent),
        !SharedMemory::open(name, false).is_err_and(absent),
        !NamedSemaphore::open(name).is_err_and(absent),
    ]
}
