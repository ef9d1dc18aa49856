//! Shared memory + named semaphores ("empty", "full"): a producer thread, which
//! opens its own handles by name as another process would, puts 5 values one at
//! a time into a shared `u64`. The loop waits for "full" through `Blocking`
//! (`sem_wait` has no descriptor to poll), prints each value and posts "empty";
//! meanwhile it writes `tick` to stderr every 100 ms. What `main` creates it
//! removes when it drops, on an error return as at the end.
//!
//! `cargo run -p reactor --example shm_semaphore`

use std::{io, sync::Arc, thread, time::Duration};

use ipc::{NamedSemaphore, SharedMemory};
use reactor::sources::Blocking;
use reactor::Reactor;

fn main() -> io::Result<()> {
    let name = |what: &str| format!("/reactor-example-{what}-{}", std::process::id());
    let (shm, _created) = SharedMemory::create_or_open(&name("shm"), 8, 0o600)?;
    let (empty, _) = NamedSemaphore::create_or_open(&name("empty"), 0o600, 1)?;
    let (_owner, _) = NamedSemaphore::create_or_open(&name("full"), 0o600, 0)?; // removes the name
    let full = Arc::new(NamedSemaphore::open(&name("full"))?); // the waiting thread may outlive main
    let producer = thread::spawn(move || -> io::Result<()> {
        let slot = SharedMemory::open(&name("shm"), true)?.array::<u64>(1)?;
        let (empty, full) = (NamedSemaphore::open(&name("empty"))?, NamedSemaphore::open(&name("full"))?);
        for i in 1..=5 {
            empty.wait()?;
            slot.set(0, i * 10)?;
            full.post()?;
        }
        Ok(())
    });
    let (value, waiter) = (shm.array::<u64>(1)?, full.clone());
    let mut reactor = Reactor::new()?;
    reactor.every(Duration::from_millis(100), |_| eprintln!("tick"));
    let values = Blocking::repeat(
        move || waiter.wait(),
        move |waited, ctx| {
            waited?;
            println!("got {}", value.get(0)?);
            if value.get(0)? == 50 {
                ctx.stop(); // the last one: starts no further wait
            }
            empty.post()
        },
    );
    // Stopped from elsewhere, the thread would still be in `sem_wait`: one more post releases it.
    reactor.register(values?.on_stop(move || drop(full.post())))?;
    reactor.run()?;
    producer.join().map_err(|_| io::Error::other("the producer panicked"))?
}
