//! Shared memory + named semaphores ("empty", "full"): a producer thread, which
//! opens its own handles by name as another process would, puts 5 values one at
//! a time into a shared `u64`. The loop waits for "full" through `Blocking`
//! (`sem_wait` has no descriptor to poll), prints each value and posts "empty";
//! meanwhile it writes `tick` to stderr every 100 ms.
//!
//! `cargo run -p reactor --example shm_semaphore`

use std::{io, sync::Arc, thread, time::Duration};

use ipc::{NamedSemaphore, SharedMemory};
use reactor::sources::Blocking;
use reactor::Reactor;

fn main() -> io::Result<()> {
    let name = |what: &str| format!("/reactor-example-{what}-{}", std::process::id());
    let view = SharedMemory::create(&name("shm"), 8, 0o600)?.view::<u64>()?;
    let empty = NamedSemaphore::create(&name("empty"), 0o600, 1)?;
    let full = Arc::new(NamedSemaphore::create(&name("full"), 0o600, 0)?);
    let producer = thread::spawn(move || -> io::Result<()> {
        let slot = SharedMemory::open(&name("shm"), true)?.view::<u64>()?;
        let (empty, full) = (NamedSemaphore::open(&name("empty"))?, NamedSemaphore::open(&name("full"))?);
        for i in 1..=5 {
            empty.wait()?;
            slot.write(i * 10);
            full.post()?;
        }
        Ok(())
    });
    let mut reactor = Reactor::new()?;
    reactor.every(Duration::from_millis(100), |_| eprintln!("tick"));
    let waiter = full.clone();
    let values = Blocking::repeat(
        move || waiter.wait(),
        move |waited, ctx| {
            waited?;
            println!("got {}", view.read());
            if view.read() == 50 {
                ctx.stop(); // the last one: starts no further wait
            }
            empty.post()
        },
    );
    // Stopped from elsewhere, the thread would still be in `sem_wait`: one more post releases it.
    reactor.register(values?.on_stop(move || drop(full.post())))?;
    reactor.run()?;
    let produced = producer.join().map_err(|_| io::Error::other("the producer panicked"))?;
    SharedMemory::unlink(&name("shm")).and(NamedSemaphore::unlink(&name("empty")))?;
    NamedSemaphore::unlink(&name("full")).and(produced)
}
