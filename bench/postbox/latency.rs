//! What a user feels first: latency, the time from a sender's send to its
//! line reaching the reader of the server's stdout, at a fixed offered
//! rate: a light one (1 000 items/s) and a heavy one (half of what the C
//! server takes at most, measured in the same run), through the queue and
//! over one TCP connection, for ours, mio's and the C server side by side,
//! on one CPU as the throughput rows.
//!
//! Each message carries its own send time: the paced worker
//! ([`paced_sender`], [`paced_tcp`]) writes the [`crate::clock`] time read
//! just before the `mq_send` (or the `write`) as the message's 20 digits,
//! and the sink ([`read_stamps`]) subtracts it from the time each read of
//! stdout returned. The figure thus includes the send call itself (a
//! microsecond or two on a queue with room). A worker that wakes late
//! sends what fell due at once: over TCP, in one write, all stamped alike,
//! as a client's lines coalesce.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::children::{Server, ServerSpec, Side, Worker, SIDES};
use crate::cleanup::QueueName;
use crate::clock::now_ns;
use crate::endtoend::{order, Load, Observed, Setup};
use crate::placement::Placement;
use crate::queue::Queue;
use crate::report::{thousands, Table, Target, Unit};
use crate::roles::{report, wait_for_go};
use crate::Plan;

/// The light rate, items per second.
const LIGHT: u64 = 1000;

/// Digits of a stamp: any [`now_ns`] fits.
const STAMP_DIGITS: usize = 20;

/// The most items one late wake-up sends at once.
const MOST_AT_ONCE: u64 = 4096;

/// The rows: for the queue and for one TCP connection, p50 and p99 at the
/// light rate and at the heavy one.
pub fn workloads(plan: Plan, table: &mut Table) {
    Placement::OneCpu.apply();
    let seconds = if plan.quick { 0.1 } else { 2.0 };
    let throughput = Load::Queue { size: 16, senders: 1 };
    for (tcp, load) in [(false, throughput), (true, Load::Tcp { connections: 1 })] {
        let heavy = half_of_the_c_servers_most(load, plan);
        for rate in [LIGHT, heavy] {
            let count = ((rate as f64 * seconds) as u64).max(100);
            let mut p50: [Vec<f64>; SIDES] = Default::default();
            let mut p99: [Vec<f64>; SIDES] = Default::default();
            for round in 0..plan.repeats {
                for side in order(&Side::servers(), round) {
                    let mut latencies = run(side, tcp, rate, count);
                    latencies.sort_by(f64::total_cmp);
                    p50[side as usize].push(percentile(&latencies, 0.50));
                    p99[side as usize].push(percentile(&latencies, 0.99));
                }
            }
            let what = if tcp { "tcp lines, 1 connection" } else { "mq 20 B" };
            let label = format!("latency, {what}, {} /s", thousands(rate as f64));
            eprintln!("{label}: p50 {p50:.1?}, p99 {p99:.1?} µs");
            for (name, figures) in [("p50", &p50), ("p99", &p99)] {
                let [ours, mio, c] = figures;
                let c = Some(c.as_slice());
                table.add_paired(
                    format!("{label}, {name}"),
                    Unit::Microseconds,
                    ours,
                    mio,
                    c,
                    None,
                    Target::None,
                );
            }
        }
    }
}

/// Half the rate the C server (or ours, without a C compiler) takes of
/// `load` at most, measured now.
fn half_of_the_c_servers_most(load: Load, plan: Plan) -> u64 {
    let side = if Side::servers().contains(&Side::C) { Side::C } else { Side::Ours };
    let most = load.run(side, Setup::default(), plan, &mut Observed::default()).rate();
    (most / 2.0) as u64
}

/// One server, one paced worker sending `count` items at `rate`; each
/// item's latency in µs.
fn run(side: Side, tcp: bool, rate: u64, count: u64) -> Vec<f64> {
    let queue = QueueName::new();
    let spec = ServerSpec { queue: &queue, message_size: 64, tcp, extra: &[], program: None };
    let server = Server::start(side, &spec);
    let target = match server.addr {
        Some(addr) if tcp => addr.to_string(),
        _ => queue.as_str().to_string(),
    };
    let role = if tcp { "paced-tcp" } else { "paced-sender" };
    let mut worker = Worker::start(role, &[target, count.to_string(), rate.to_string()]);
    worker.go();
    let latencies = read_stamps(server.output(), count).expect("latency run: sink");
    worker.finish();
    server.stop();
    latencies
}

/// Sends `count` messages to the queue `name` at `rate` per second, each
/// its own send time.
pub fn paced_sender(name: &str, count: u64, rate: u64) -> io::Result<()> {
    let queue = Queue::open_to_send(name)?;
    paced(count, rate, |due| {
        for _ in 0..due {
            queue.send(format!("{:0width$}", now_ns(), width = STAMP_DIGITS).as_bytes())?;
        }
        Ok(())
    })
}

/// Writes `count` lines over one connection to `addr` at `rate` per second,
/// each its write's time.
pub fn paced_tcp(addr: SocketAddr, count: u64, rate: u64) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut lines = Vec::new();
    paced(count, rate, |due| {
        let line = format!("{:0width$}\n", now_ns(), width = STAMP_DIGITS);
        lines.clear();
        (0..due).for_each(|_| lines.extend_from_slice(line.as_bytes()));
        stream.write_all(&lines)
    })
}

/// After the go, calls `send(n)` whenever `n` more items fell due at
/// `rate` per second, until `count` were sent; then reports.
fn paced(count: u64, rate: u64, mut send: impl FnMut(u64) -> io::Result<()>) -> io::Result<()> {
    // SAFETY: plain call; a timer slack of 1 ns makes the sleeps end on time.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1) };
    wait_for_go()?;
    let start = now_ns();
    let mut sent = 0;
    while sent < count {
        let next = start + (sent as u128 * 1_000_000_000 / u128::from(rate)) as u64;
        sleep_until(next);
        let due_by_now = ((now_ns() - start) as u128 * u128::from(rate) / 1_000_000_000) as u64 + 1;
        let due = due_by_now.min(count).saturating_sub(sent).clamp(1, MOST_AT_ONCE);
        send(due)?;
        sent += due;
    }
    report(start, now_ns())
}

/// Sleeps until the [`now_ns`] time `at`.
fn sleep_until(at: u64) {
    let ts =
        libc::timespec { tv_sec: (at / 1_000_000_000) as libc::time_t, tv_nsec: (at % 1_000_000_000) as _ };
    // SAFETY: `ts` is a valid time; no remainder is asked for with TIMER_ABSTIME.
    while unsafe {
        libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut())
    } == libc::EINTR
    {}
}

/// Reads `fd` until `count` lines have come, each ending in a stamp;
/// returns each line's latency in µs, from its stamp to the end of the
/// read that brought its newline.
fn read_stamps(fd: BorrowedFd<'_>, count: u64) -> io::Result<Vec<f64>> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut partial = Vec::new();
    let mut latencies = Vec::with_capacity(count as usize);
    while (latencies.len() as u64) < count {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let arrived = now_ns();
        match n {
            0 => return Err(io::Error::other(format!("output ended after {} lines", latencies.len()))),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => {
                partial.extend_from_slice(&buf[..n as usize]);
                let end = partial.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                for line in partial[..end].split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                    let stamp = line.get(line.len().saturating_sub(STAMP_DIGITS)..).unwrap_or(line);
                    let sent: u64 =
                        std::str::from_utf8(stamp).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
                            io::Error::other(format!(
                                "a line without a stamp: {:?}",
                                String::from_utf8_lossy(line)
                            ))
                        })?;
                    latencies.push(arrived.saturating_sub(sent) as f64 / 1e3);
                }
                partial.drain(..end);
            }
        }
    }
    Ok(latencies)
}

/// The `share` percentile of sorted `values` (nearest rank).
fn percentile(sorted: &[f64], share: f64) -> f64 {
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}
