//! What a server costs when it does nothing: CPU while idle, memory per idle
//! connection and at its peak, and the time to start and to stop.
//!
//! The servers (ours, mio's, and the C server if it was built) run at once,
//! each with its own client holding 1000 idle connections, so that they are
//! sampled over the same seconds.

use std::thread;
use std::time::Duration;

use crate::children::{Server, ServerSpec, Side, Worker, SIDES};
use crate::cleanup::QueueName;
use crate::endtoend::Observed;
use crate::procfs;
use crate::report::{median, CFigure, Table, Target, Unit};
use crate::sink;
use crate::Plan;

const IDLE_CONNECTIONS: usize = 1000;

/// What one server showed with the idle connections.
struct Idle {
    ticks: u64,
    rss_per_connection: f64,
    peak_kib: u64,
    stop_ms: f64,
}

pub fn workloads(plan: Plan, table: &mut Table, observed: &Observed) {
    idle_servers(plan, table);
    let idle = idle_side_by_side(plan);
    let [ours, mio] = [&idle[0], &idle[1]];
    // The C server's figure of a row, or n/a.
    let c =
        |figure: fn(&Idle) -> f64| idle.get(2).map_or(CFigure::Unavailable, |c| CFigure::Value(figure(c)));
    let all = |figure: fn(&Idle) -> f64| idle.iter().map(|i| format!("{:.0}", figure(i))).collect::<Vec<_>>();
    eprintln!(
        "idle (ours, mio, C): ticks {:?}, B per connection {:?}, peak KiB {:?}",
        all(|i| i.ticks as f64),
        all(|i| i.rss_per_connection),
        all(|i| i.peak_kib as f64)
    );
    let ticks: fn(&Idle) -> f64 = |i| i.ticks as f64;
    let idle_row = format!("CPU over {} s idle, {IDLE_CONNECTIONS} idle connections", plan.idle_seconds);
    table.add(idle_row, Unit::Ticks, ticks(ours), Some(ticks(mio)), c(ticks), None, Target::Zero);
    let per_connection: fn(&Idle) -> f64 = |i| i.rss_per_connection;
    let (o, m) = (per_connection(ours), per_connection(mio));
    table.add("RSS per idle connection", Unit::Bytes, o, Some(m), c(per_connection), None, Target::AtMostMio);
    let peak: fn(&Idle) -> f64 = |i| i.peak_kib as f64;
    let peak_row = format!("peak RSS, {IDLE_CONNECTIONS} idle connections");
    table.add(peak_row, Unit::Kib, peak(ours), Some(peak(mio)), c(peak), None, Target::AtMostMio);
    // The rows below come from the runs of the other groups, if they ran.
    let under_10_ms = Target::UnderMs(10.0);
    if let Some((o, m, c)) = medians(&observed.mq_peak_kib) {
        table.add("peak RSS after mq load (8 KiB)", Unit::Kib, o, Some(m), c, None, Target::AtMostMio);
    }
    if let Some((o, m, c)) = medians(&observed.ready_ms) {
        let row = "exec to `ready` (median of all starts)";
        table.add(row, Unit::Milliseconds, o, Some(m), c, None, under_10_ms);
    }
    if let Some((o, m, c)) = medians(&observed.stop_ms) {
        let row = "SIGTERM to exit (median of all stops)";
        table.add(row, Unit::Milliseconds, o, Some(m), c, None, under_10_ms);
    }
    let stop: fn(&Idle) -> f64 = |i| i.stop_ms;
    let stop_row = format!("SIGTERM to exit, {IDLE_CONNECTIONS} idle connections");
    table.add(stop_row, Unit::Milliseconds, stop(ours), Some(stop(mio)), c(stop), None, under_10_ms);
    let floor = format!("SIGKILL to exit, {IDLE_CONNECTIONS} idle connections (kernel floor)");
    table.add(floor, Unit::Milliseconds, kill_floor_ms(), None, CFigure::NotRun, None, Target::None);
}

/// Servers with nothing to do, side by side, several times: their resident
/// memory once ready, and how long a SIGTERM takes to end them.
fn idle_servers(plan: Plan, table: &mut Table) {
    let sides = Side::servers();
    let mut rss: [Vec<f64>; SIDES] = Default::default();
    let mut stop: [Vec<f64>; SIDES] = Default::default();
    for _ in 0..if plan.quick { 1 } else { 7 } {
        for &side in &sides {
            let queue = QueueName::new();
            let server = Server::start(
                side,
                &ServerSpec { queue: &queue, message_size: 1024, tcp: true, extra: &[], program: None },
            );
            thread::sleep(Duration::from_millis(200));
            rss[side as usize].push(procfs::status_kib(server.pid(), "VmRSS") as f64);
            stop[side as usize].push(server.stop().as_secs_f64() * 1e3);
        }
    }
    if let Some((o, m, c)) = medians(&rss) {
        table.add("idle RSS", Unit::Kib, o, Some(m), c, None, Target::AtMostMio);
    }
    if let Some((o, m, c)) = medians(&stop) {
        table.add("SIGTERM to exit, idle", Unit::Milliseconds, o, Some(m), c, None, Target::None);
    }
}

/// The medians of ours, mio's and the C server's runs, if ours and mio's
/// ran (the C server's are `n/a` if it did not).
fn medians([ours, mio, c]: &[Vec<f64>; SIDES]) -> Option<(f64, f64, CFigure)> {
    let c = if c.is_empty() { CFigure::Unavailable } else { CFigure::Value(median(c)) };
    (!ours.is_empty() && !mio.is_empty()).then(|| (median(ours), median(mio), c))
}

/// How long the kernel alone takes to end a process that holds the idle
/// connections: our server killed with SIGKILL, so none of its code runs.
fn kill_floor_ms() -> f64 {
    let queue = QueueName::new();
    let server = Server::start(
        Side::Ours,
        &ServerSpec { queue: &queue, message_size: 1024, tcp: true, extra: &[], program: None },
    );
    let addr = server.addr.expect("a TCP server says where it listens");
    let holder = Worker::start("tcp-idle", &[addr.to_string(), IDLE_CONNECTIONS.to_string()]);
    sink::read_lines(server.output(), IDLE_CONNECTIONS as u64).expect("idle connections: sink");
    let floor = server.kill().as_secs_f64() * 1e3;
    holder.finish();
    floor
}

/// What each server of [`Side::servers`] showed, in that order.
fn idle_side_by_side(plan: Plan) -> Vec<Idle> {
    let sides = Side::servers();
    let queues: Vec<QueueName> = sides.iter().map(|_| QueueName::new()).collect();
    let servers: Vec<Server> = sides
        .iter()
        .zip(&queues)
        .map(|(&side, queue)| {
            Server::start(
                side,
                &ServerSpec { queue, message_size: 1024, tcp: true, extra: &[], program: None },
            )
        })
        .collect();
    let each = |what: &dyn Fn(u32) -> u64| servers.iter().map(|s| what(s.pid())).collect::<Vec<u64>>();
    let rss_before = each(&|pid| procfs::status_kib(pid, "VmRSS"));
    let holders: Vec<Worker> = servers
        .iter()
        .map(|server| {
            let addr = server.addr.expect("a TCP server says where it listens");
            Worker::start("tcp-idle", &[addr.to_string(), IDLE_CONNECTIONS.to_string()])
        })
        .collect();
    // One line per connection: when all are printed, all are accepted.
    for server in &servers {
        sink::read_lines(server.output(), IDLE_CONNECTIONS as u64).expect("idle connections: sink");
    }
    let rss_after = each(&|pid| procfs::status_kib(pid, "VmRSS"));
    let ticks_before = each(&procfs::cpu_ticks);
    thread::sleep(Duration::from_secs(plan.idle_seconds));
    let ticks_after = each(&procfs::cpu_ticks);
    let peak_kib = each(&|pid| procfs::status_kib(pid, "VmHWM"));
    let stop_ms: Vec<f64> = servers.into_iter().map(|s| s.stop().as_secs_f64() * 1e3).collect();
    for holder in holders {
        holder.finish();
    }
    (0..sides.len())
        .map(|i| Idle {
            ticks: ticks_after[i] - ticks_before[i],
            rss_per_connection: (rss_after[i] as f64 - rss_before[i] as f64) * 1024.0
                / IDLE_CONNECTIONS as f64,
            peak_kib: peak_kib[i],
            stop_ms: stop_ms[i],
        })
        .collect()
}
