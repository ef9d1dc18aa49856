//! A counter in shared memory that several processes add to, each addition
//! inside the scope of a guard of a named semaphore (`NamedSemaphore::lock`).
//! The parent makes both with `create_or_open` (so they are removed when it
//! ends, however it ends short of SIGKILL), runs N copies of itself as
//! workers, waits for them and prints the total: N × 10 000, never less.
//!
//! `cargo run -p reactor --example shared_counter -- 4`

use std::io;
use std::process::Command;

use ipc::{NamedSemaphore, SharedMemory};

const TURNS: u64 = 10_000;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, counter, lock] = &args[..] {
        return if role == "worker" {
            add(counter, lock)
        } else {
            Err(io::Error::other("usage: shared_counter [N]"))
        };
    }
    let n: u64 = args.get(1).map_or(Ok(4), |n| n.parse()).map_err(|e| io::Error::other(format!("N: {e}")))?;
    let name = |what: &str| format!("/shared-counter-{what}-{}", std::process::id());
    let (counter, lock) = (name("value"), name("lock"));
    let (shm, _created) = SharedMemory::create_or_open(&counter, 8, 0o600)?;
    let _lock = NamedSemaphore::create_or_open(&lock, 0o600, 1)?;
    let me = std::env::current_exe()?;
    let workers: Vec<_> = (0..n)
        .map(|_| Command::new(&me).args(["worker", &counter, &lock]).spawn())
        .collect::<io::Result<_>>()?;
    for mut worker in workers {
        if !worker.wait()?.success() {
            return Err(io::Error::other("a worker failed"));
        }
    }
    println!("total {}", shm.array::<u64>(1)?.get(0)?);
    Ok(())
}

/// One worker: a read and a write of the counter, TURNS times, each under the lock.
fn add(counter: &str, lock: &str) -> io::Result<()> {
    let (value, lock) = (SharedMemory::open(counter, true)?.array::<u64>(1)?, NamedSemaphore::open(lock)?);
    for _ in 0..TURNS {
        let _held = lock.lock()?; // posted back as `_held` goes, at the end of each turn
        value.set(0, value.get(0)? + 1)?;
    }
    Ok(())
}
