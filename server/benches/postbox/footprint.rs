//! What a server costs when it does nothing: CPU while idle, memory per idle
//! connection and at its peak, and the time to start and to stop.
//!
//! Both servers run at once, each with its own client holding 1000 idle
//! connections, so that they are sampled over the same seconds.

use std::thread;
use std::time::Duration;

use crate::children::{Server, ServerSpec, Side, Worker};
use crate::cleanup::QueueName;
use crate::endtoend::Observed;
use crate::procfs;
use crate::report::{median, Table, Target, Unit};
use crate::sink;
use crate::Plan;

const IDLE_CONNECTIONS: usize = 1000;
const SIDES: [Side; 2] = [Side::Ours, Side::Mio];

/// What one server showed with the idle connections.
struct Idle {
    ticks: u64,
    rss_per_connection: f64,
    peak_kib: u64,
    stop_ms: f64,
}

pub fn workloads(plan: Plan, table: &mut Table, observed: &Observed) {
    let [ours, mio] = idle_side_by_side(plan);
    eprintln!(
        "idle: ticks {} / {}, B per connection {:.0} / {:.0}, peak {} / {} KiB",
        ours.ticks, mio.ticks, ours.rss_per_connection, mio.rss_per_connection, ours.peak_kib, mio.peak_kib
    );
    let idle = format!("CPU over {} s idle, {IDLE_CONNECTIONS} idle connections", plan.idle_seconds);
    table.add(idle, Unit::Ticks, ours.ticks as f64, Some(mio.ticks as f64), None, Target::Zero);
    let per_connection = "RSS per idle connection";
    let (o, m) = (ours.rss_per_connection, mio.rss_per_connection);
    table.add(per_connection, Unit::Bytes, o, Some(m), None, Target::AtMostMio);
    let peak = format!("peak RSS, {IDLE_CONNECTIONS} idle connections");
    let (o, m) = (ours.peak_kib as f64, mio.peak_kib as f64);
    table.add(peak, Unit::Kib, o, Some(m), None, Target::AtMostMio);
    // The rows below come from the runs of the other groups, if they ran.
    let under_10_ms = Target::UnderMs(10.0);
    if let Some((o, m)) = medians(&observed.mq_peak_kib) {
        table.add("peak RSS after mq load (8 KiB)", Unit::Kib, o, Some(m), None, Target::AtMostMio);
    }
    if let Some((o, m)) = medians(&observed.ready_ms) {
        table.add(
            "exec to `ready` (median of all starts)",
            Unit::Milliseconds,
            o,
            Some(m),
            None,
            under_10_ms,
        );
    }
    if let Some((o, m)) = medians(&observed.stop_ms) {
        table.add("SIGTERM to exit (median of all stops)", Unit::Milliseconds, o, Some(m), None, under_10_ms);
    }
    let stop = format!("SIGTERM to exit, {IDLE_CONNECTIONS} idle connections");
    table.add(stop, Unit::Milliseconds, ours.stop_ms, Some(mio.stop_ms), None, under_10_ms);
    let floor = format!("SIGKILL to exit, {IDLE_CONNECTIONS} idle connections (kernel floor)");
    table.add(floor, Unit::Milliseconds, kill_floor_ms(), None, None, Target::None);
}

/// The medians of ours and mio's runs, if there were any.
fn medians([ours, mio]: &[Vec<f64>; 2]) -> Option<(f64, f64)> {
    (!ours.is_empty() && !mio.is_empty()).then(|| (median(ours), median(mio)))
}

/// How long the kernel alone takes to end a process that holds the idle
/// connections: our server killed with SIGKILL, so none of its code runs.
fn kill_floor_ms() -> f64 {
    let queue = QueueName::new();
    let server =
        Server::start(Side::Ours, &ServerSpec { queue: &queue, message_size: 1024, tcp: true, extra: &[] });
    let addr = server.addr.expect("a TCP server says where it listens");
    let holder = Worker::start("tcp-idle", &[addr.to_string(), IDLE_CONNECTIONS.to_string()]);
    sink::read_lines(server.output(), IDLE_CONNECTIONS as u64).expect("idle connections: sink");
    let floor = server.kill().as_secs_f64() * 1e3;
    holder.finish();
    floor
}

fn idle_side_by_side(plan: Plan) -> [Idle; 2] {
    let queues = [QueueName::new(), QueueName::new()];
    let servers = [0, 1].map(|i| {
        let spec = ServerSpec { queue: &queues[i], message_size: 1024, tcp: true, extra: &[] };
        Server::start(SIDES[i], &spec)
    });
    let rss_before = servers.each_ref().map(|s| procfs::status_kib(s.pid(), "VmRSS"));
    let holders = servers.each_ref().map(|server| {
        let addr = server.addr.expect("a TCP server says where it listens");
        Worker::start("tcp-idle", &[addr.to_string(), IDLE_CONNECTIONS.to_string()])
    });
    // One line per connection: when all are printed, all are accepted.
    for server in &servers {
        sink::read_lines(server.output(), IDLE_CONNECTIONS as u64).expect("idle connections: sink");
    }
    let rss_after = servers.each_ref().map(|s| procfs::status_kib(s.pid(), "VmRSS"));
    let ticks_before = servers.each_ref().map(|s| procfs::cpu_ticks(s.pid()));
    thread::sleep(Duration::from_secs(plan.idle_seconds));
    let ticks_after = servers.each_ref().map(|s| procfs::cpu_ticks(s.pid()));
    let peak_kib = servers.each_ref().map(|s| procfs::status_kib(s.pid(), "VmHWM"));
    let stop_ms = servers.map(|s| s.stop().as_secs_f64() * 1e3);
    for holder in holders {
        holder.finish();
    }
    [0, 1].map(|i| Idle {
        ticks: ticks_after[i] - ticks_before[i],
        rss_per_connection: (rss_after[i] as f64 - rss_before[i] as f64) * 1024.0 / IDLE_CONNECTIONS as f64,
        peak_kib: peak_kib[i],
        stop_ms: stop_ms[i],
    })
}
