//! A wake from another thread to its callback: `reactor::sources::Waker`
//! against `mio::Waker`, measured in the same run, interleaved.
//!
//! - latency: one thread wakes and spins until the loop's callback has
//!   stored a counter: a round trip is one wake, one `epoll_wait` return,
//!   one callback.
//! - throughput: 4 threads wake as fast as they can for a fixed time; the
//!   figure is wakes per second issued while the loop keeps up (wakes
//!   coalesce, so callbacks are fewer).
//!
//! `cargo bench -p bench --bench wake`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::sources::Waker;
use reactor::Reactor;

/// What wakes the loop (run on other threads), and the loop itself.
type Wake = Box<dyn Fn() + Send>;
type SharedWake = Arc<dyn Fn() + Send + Sync>;
type Run = Box<dyn FnOnce()>;

const ROUND_TRIPS: u64 = 20_000;
const THREADS: usize = 4;
const FLOOD: Duration = Duration::from_millis(300);
const REPEATS: usize = 5;

/// Runs `wake` on another thread `ROUND_TRIPS` times, each time waiting for
/// the loop's callback to answer; returns the mean round trip in ns.
fn round_trip(ours: bool) -> f64 {
    // The mio waker's eventfd closes when its last owner drops it, and a
    // closed descriptor's pending event is gone: keep one until the end.
    let mut keep = None;
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (wake, run): (Wake, Run) = if ours {
        let mut reactor = Reactor::new().expect("reactor");
        let (seen, done) = (answered.clone(), stop.clone());
        let waker = Waker::new(move |ctx| {
            seen.fetch_add(1, Ordering::Release);
            if done.load(Ordering::Acquire) {
                ctx.stop();
            }
        })
        .expect("waker");
        let handle = waker.handle();
        reactor.register(waker).expect("register");
        (Box::new(move || handle.wake().expect("wake")), Box::new(move || reactor.run().expect("run")))
    } else {
        let mut poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        keep = Some(waker.clone());
        let (seen, done) = (answered.clone(), stop.clone());
        let run = move || {
            let mut events = mio::Events::with_capacity(64);
            loop {
                poll.poll(&mut events, None).expect("poll");
                for _ in events.iter() {
                    seen.fetch_add(1, Ordering::Release);
                }
                if done.load(Ordering::Acquire) {
                    return;
                }
            }
        };
        (Box::new(move || waker.wake().expect("wake")), Box::new(run))
    };
    let seen = answered.clone();
    let done = stop.clone();
    let waking = thread::spawn(move || {
        let start = Instant::now();
        for i in 1..=ROUND_TRIPS {
            wake();
            while seen.load(Ordering::Acquire) < i {
                std::hint::spin_loop();
            }
        }
        let elapsed = start.elapsed();
        done.store(true, Ordering::Release);
        wake();
        elapsed
    });
    run();
    let elapsed = waking.join().expect("waking thread");
    drop(keep);
    elapsed.as_nanos() as f64 / ROUND_TRIPS as f64
}

/// Wakes issued per second by `THREADS` threads during `FLOOD`.
fn flood(ours: bool) -> f64 {
    let issued = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (wake, run): (SharedWake, Run) = if ours {
        let mut reactor = Reactor::new().expect("reactor");
        let done = stop.clone();
        let waker = Waker::new(move |ctx| {
            if done.load(Ordering::Acquire) {
                ctx.stop();
            }
        })
        .expect("waker");
        let handle = waker.handle();
        reactor.register(waker).expect("register");
        (Arc::new(move || handle.wake().expect("wake")), Box::new(move || reactor.run().expect("run")))
    } else {
        let mut poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let done = stop.clone();
        let run = move || {
            let mut events = mio::Events::with_capacity(64);
            while !done.load(Ordering::Acquire) {
                poll.poll(&mut events, None).expect("poll");
            }
        };
        (Arc::new(move || waker.wake().expect("wake")), Box::new(run))
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (wake, issued, stop) = (wake.clone(), issued.clone(), stop.clone());
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    wake();
                    n += 1;
                }
                issued.fetch_add(n, Ordering::Relaxed);
                wake(); // the loop sees `stop` after this
            })
        })
        .collect();
    let timer = {
        let stop = stop.clone();
        thread::spawn(move || {
            thread::sleep(FLOOD);
            stop.store(true, Ordering::Release);
        })
    };
    let start = Instant::now();
    run();
    timer.join().expect("timer");
    for t in threads {
        t.join().expect("waking thread");
    }
    issued.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let nproc = thread::available_parallelism().map_or(1, |n| n.get());
    let date = std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output();
    let date = date.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let (mut lat, mut mio_lat, mut rate, mut mio_rate) = (vec![], vec![], vec![], vec![]);
    for _ in 0..REPEATS {
        lat.push(round_trip(true));
        mio_lat.push(round_trip(false));
        rate.push(flood(true));
        mio_rate.push(flood(false));
    }
    let (l, ml, r, mr) = (median(lat), median(mio_lat), median(rate), median(mio_rate));
    println!(
        "\nnproc {nproc}, {date}; median of {REPEATS} runs, ours and mio interleaved; unpinned (the waking"
    );
    println!("threads and the loop must run at once to measure a cross-thread wake)\n");
    println!("| workload                              | ours          | mio           | ours / mio |");
    println!("| ------------------------------------- | ------------- | ------------- | ---------- |");
    println!(
        "| wake to callback, round trip          | {:>10.0} ns | {:>10.0} ns | {:>10.2} |",
        l,
        ml,
        l / ml
    );
    println!(
        "| wakes per second from {THREADS} threads       | {:>11.2}M | {:>11.2}M | {:>10.2} |",
        r / 1e6,
        mr / 1e6,
        r / mr
    );
}
