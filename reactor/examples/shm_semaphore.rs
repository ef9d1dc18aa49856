//! Shared memory + named semaphores ("empty", "full"): a producer thread puts 5
//! values, one at a time, into a shared slot; a bridge thread blocks in
//! `sem_wait` (no descriptor to poll) and feeds the loop through a channel; the
//! loop prints each value, and `tick` to stderr every 100 ms.
//!
//! `cargo run -p reactor --example shm_semaphore`

use std::{io, sync::Arc, thread, time::Duration};

use ipc::{NamedSemaphore, Plain, SharedMemory};
use reactor::sources::channel;
use reactor::Reactor;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Slot {
    value: u64,
}
// SAFETY: one integer, no padding: any 8 bytes are a valid `Slot`.
unsafe impl Plain for Slot {}

fn main() -> io::Result<()> {
    let name = |what: &str| format!("/reactor-example-{what}-{}", std::process::id());
    let (shm, empty, full) = (name("shm"), name("empty"), name("full"));
    let memory = SharedMemory::create(&shm, std::mem::size_of::<Slot>(), 0o600)?;
    let empty = Arc::new(NamedSemaphore::create(&empty, 0o600, 1)?);
    let full = Arc::new(NamedSemaphore::create(&full, 0o600, 0)?);
    let theirs = SharedMemory::open(&shm, true)?;
    let (e, f) = (empty.clone(), full.clone());
    let producer = thread::spawn(move || -> io::Result<()> {
        let view = theirs.view::<Slot>()?; // as another process would
        for i in 1..=5 {
            e.wait()?;
            view.write(Slot { value: i * 10 });
            f.post()?;
        }
        Ok(())
    });
    let (sender, receiver) = channel::<u64>()?;
    let bridge = thread::spawn(move || -> io::Result<()> {
        let view = memory.view::<Slot>()?;
        for _ in 0..5 {
            full.wait()?;
            let value = view.read().value;
            empty.post()?;
            sender.send(value).map_err(|_| io::Error::other("the loop is gone"))?;
        }
        Ok(()) // dropping the sender tells the loop
    });
    let mut reactor = Reactor::new()?;
    reactor.context().every(Duration::from_millis(100), |_| eprintln!("tick"));
    reactor.register(receiver.on_message(|v, _| println!("got {v}")).on_closed(|ctx| ctx.stop()))?;
    reactor.run()?;
    let joined = [producer.join(), bridge.join()];
    SharedMemory::unlink(&shm)?;
    NamedSemaphore::unlink(&name("empty")).and(NamedSemaphore::unlink(&name("full")))?;
    joined.into_iter().try_for_each(|j| j.map_err(|_| io::Error::other("a thread panicked"))?)
}
