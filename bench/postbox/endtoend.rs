//! The servers end to end: messages in through the queue or over TCP, lines
//! out through a pipe to the sink. Ours, mio's and the C server (when it
//! was built) take turns, each round starting one further along (A B C,
//! B C A, C A B …; with two, A B, B A) so that none always runs first; the
//! raw limits run in the same rounds. Every ratio thus compares figures
//! measured side by side.

use std::path::Path;

use crate::children::{Server, ServerSpec, Side, Worker, SIDES};
use crate::cleanup::QueueName;
use crate::clock;
use crate::placement::Placement;
use crate::procfs;
use crate::raw::{self, Receive};
use crate::report::{median, CFigure, Table, Target, Unit};
use crate::sink;
use crate::syscalls::{Calls, Counter};
use crate::Plan;

const MESSAGE_SIZES: [usize; 3] = [16, 1024, 8192];
const SENDERS: u64 = 4;
const CONNECTIONS: [usize; 4] = [1, 10, 100, 1000];
/// `--message-size` for TCP runs: the longest line, well above 64 bytes.
const TCP_MESSAGE_SIZE: usize = 1024;

/// What the runs saw of each server besides throughput, for the footprint
/// rows; indexed by [`Side`].
#[derive(Default)]
pub struct Observed {
    /// From exec to `ready`, ms, per side.
    pub ready_ms: [Vec<f64>; SIDES],
    /// From SIGTERM to exit, ms, per side.
    pub stop_ms: [Vec<f64>; SIDES],
    /// VmHWM after the 8 KiB queue load, KiB, per side.
    pub mq_peak_kib: [Vec<f64>; SIDES],
}

impl Observed {
    fn launch(&mut self, side: Side, server: Server) {
        self.ready_ms[side as usize].push(server.ready_after.as_secs_f64() * 1e3);
        self.stop_ms[side as usize].push(server.stop().as_secs_f64() * 1e3);
    }
}

/// How a run's server is started and watched, beyond which side it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup<'a> {
    /// More arguments for the server.
    pub extra: &'a [&'a str],
    /// Another build of our server, run in place of this one (`--baseline`).
    pub program: Option<&'a Path>,
    /// Count the server's system calls ([`crate::syscalls`]).
    pub count_calls: bool,
}

/// What a run feeds its server.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// `senders` processes send messages of `size` bytes through the queue.
    Queue { size: usize, senders: u64 },
    /// One client process writes 64-byte lines over `connections` connections.
    Tcp { connections: usize },
}

impl Load {
    /// The load as a row names it.
    pub fn label(self) -> String {
        match self {
            Load::Queue { size, senders: 1 } => format!("mq {size} B"),
            Load::Queue { size, senders } => format!("mq {size} B, {senders} senders"),
            Load::Tcp { connections: 1 } => "tcp 64 B lines, 1 connection".to_string(),
            Load::Tcp { connections } => format!("tcp 64 B lines, {connections} connections"),
        }
    }

    /// What one item of the load is called in a row.
    pub fn item(self) -> &'static str {
        match self {
            Load::Queue { .. } => "message",
            Load::Tcp { .. } => "line",
        }
    }

    /// One run of this load against `side`'s server.
    pub fn run(self, side: Side, setup: Setup<'_>, plan: Plan, observed: &mut Observed) -> Run {
        match self {
            Load::Queue { size, senders } => mq_run_with(side, size, senders, setup, plan, observed),
            Load::Tcp { connections } => tcp_run(side, connections, setup, plan, observed),
        }
    }
}

/// One end-to-end run: items per second, the server's CPU per item, and
/// its system calls per item if they were counted.
pub struct Run {
    rate: f64,
    cpu_ns: f64,
    pub calls: Option<Calls>,
}

impl Run {
    /// Items per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// What a run reads from its server over the part it measures, from just
/// before the go to the last line read by the sink: the server's CPU time,
/// and its system calls when they are counted.
struct Meter {
    pid: u32,
    cpu_before: u64,
    calls: Option<Counter>,
}

impl Meter {
    /// Call just before the go.
    fn start(pid: u32, count_calls: bool) -> Meter {
        let calls = count_calls.then(|| {
            let mut counter = Counter::attach(pid);
            counter.start();
            counter
        });
        Meter { pid, cpu_before: procfs::cpu_time_ns(pid), calls }
    }

    /// Call as soon as the sink has the last of the run's `items`; returns
    /// the CPU time per item and the calls per item.
    fn stop(self, items: u64) -> (f64, Option<Calls>) {
        let cpu = procfs::cpu_time_ns(self.pid) - self.cpu_before;
        (cpu as f64 / items as f64, self.calls.map(|counter| counter.finish(items)))
    }
}

/// The runs of every side, indexed by [`Side`].
struct Runs {
    rate: [Vec<f64>; SIDES],
    cpu_ns: [Vec<f64>; SIDES],
    /// Whether the C server takes part (`n/a` in its column if it was not built).
    with_c: bool,
}

impl Runs {
    /// Runs of ours, mio's and the C server's.
    fn new() -> Runs {
        Runs { rate: Default::default(), cpu_ns: Default::default(), with_c: true }
    }

    /// Runs of two sides only, with no C column.
    fn without_c() -> Runs {
        Runs { with_c: false, ..Runs::new() }
    }

    fn push(&mut self, side: Side, run: Run) {
        self.rate[side as usize].push(run.rate);
        self.cpu_ns[side as usize].push(run.cpu_ns);
    }

    fn log(&self, what: &str) {
        let [ours, mio, c] = &self.rate;
        let [ours_cpu, mio_cpu, c_cpu] = &self.cpu_ns;
        eprintln!(
            "{what}: ours {ours:.0?}, mio {mio:.0?}, C {c:.0?} per s; CPU ns {ours_cpu:.0?}, {mio_cpu:.0?}, {c_cpu:.0?}"
        );
    }

    /// The throughput row, with its share of `raw_limit`.
    fn add_rate(
        &self,
        table: &mut Table,
        workload: String,
        unit: Unit,
        raw_limit: Option<f64>,
        target: Target,
    ) {
        let [ours, mio, c] = &self.rate;
        let c = self.with_c.then_some(c.as_slice());
        table.add_paired(workload, unit, ours, mio, c, raw_limit, target);
    }

    /// The server's CPU time per item (less is better; no target).
    fn add_cpu(&self, table: &mut Table, per: &str) {
        let [ours, mio, c] = &self.cpu_ns;
        let c = self.with_c.then_some(c.as_slice());
        let workload = format!("  server CPU per {per}");
        table.add_paired(workload, Unit::Nanoseconds, ours, mio, c, None, Target::None);
    }
}

/// Round `round`'s order of `sides`: each round starts one further along
/// (for two sides: ours first in even rounds, mio first in odd ones).
pub fn order(sides: &[Side], round: usize) -> Vec<Side> {
    let mut order = sides.to_vec();
    order.rotate_left(round % sides.len().max(1));
    order
}

/// Rows for the raw limits and the servers fed by the queue: every size on
/// one CPU, then 16 B unpinned.
pub fn mq_workloads(plan: Plan, table: &mut Table, observed: &mut Observed) {
    Placement::OneCpu.apply();
    let mut limit_16 = 0.0;
    for size in MESSAGE_SIZES {
        let limit = mq_size(plan, size, Placement::OneCpu, table, observed);
        if size == 16 {
            limit_16 = limit;
        }
    }
    let mut runs = Runs::new();
    for round in 0..plan.repeats {
        for side in order(&Side::servers(), round) {
            runs.push(side, mq_run(side, 16, SENDERS, plan, observed));
        }
    }
    runs.log(&format!("mq 16 B, {SENDERS} senders"));
    let workload = format!("mq end to end, 16 B, {SENDERS} senders");
    runs.add_rate(table, workload, Unit::PerSecond("msg"), Some(limit_16), Target::AtLeastMio);
    runs.add_cpu(table, "message");
    Placement::Unpinned.apply();
    mq_size(plan, 16, Placement::Unpinned, table, observed);
    Placement::OneCpu.apply();
}

/// The raw limits and both servers for one message size; returns the raw
/// epoll limit.
fn mq_size(plan: Plan, size: usize, placement: Placement, table: &mut Table, observed: &mut Observed) -> f64 {
    let (mut blocking, mut epoll, mut runs) = (vec![], vec![], Runs::new());
    for round in 0..plan.repeats {
        blocking.push(raw::messages_per_second(Receive::Blocking, size, plan.mq_messages));
        epoll.push(raw::messages_per_second(Receive::Epoll, size, plan.mq_messages));
        for side in order(&Side::servers(), round) {
            runs.push(side, mq_run(side, size, 1, plan, observed));
        }
    }
    let label = placement.label();
    eprintln!("raw mq {size} B{label}: blocking {blocking:.0?}, epoll {epoll:.0?} per s");
    runs.log(&format!("mq {size} B{label}"));
    let (limit, unit) = (median(&epoll), Unit::PerSecond("msg"));
    let raw_blocking = format!("raw mq {size} B{label}, blocking mq_receive");
    table.add(raw_blocking, unit, median(&blocking), None, CFigure::NotRun, None, Target::None);
    let raw_epoll = format!("raw mq {size} B{label}, epoll (LT) + mq_receive");
    table.add(raw_epoll, unit, limit, None, CFigure::NotRun, Some(limit), Target::None);
    let target = match (placement, size) {
        (Placement::Unpinned, _) => Target::None,
        (_, 16) => Target::AtLeastMioAndRaw(75.0),
        _ => Target::AtLeastMio,
    };
    runs.add_rate(table, format!("mq end to end, {size} B{label}"), unit, Some(limit), target);
    runs.add_cpu(table, "message");
    limit
}

/// One server fed by `senders` sender processes; messages per second from
/// the first send to the last line the sink reads.
fn mq_run(side: Side, size: usize, senders: u64, plan: Plan, observed: &mut Observed) -> Run {
    mq_run_with(side, size, senders, Setup::default(), plan, observed)
}

/// [`mq_run`], the server started and watched as `setup` says.
fn mq_run_with(
    side: Side,
    size: usize,
    senders: u64,
    setup: Setup<'_>,
    plan: Plan,
    observed: &mut Observed,
) -> Run {
    let queue = QueueName::new();
    let spec = ServerSpec {
        queue: &queue,
        message_size: size,
        tcp: false,
        extra: setup.extra,
        program: setup.program,
    };
    let server = Server::start(side, &spec);
    let per_sender = plan.mq_messages / senders;
    let args = [queue.as_str().to_string(), per_sender.to_string(), size.to_string()];
    let mut workers: Vec<Worker> = (0..senders).map(|_| Worker::start("sender", &args)).collect();
    let messages = per_sender * senders;
    let meter = Meter::start(server.pid(), setup.count_calls);
    workers.iter_mut().for_each(Worker::go);
    let last = sink::read_lines(server.output(), messages).expect("mq run: sink");
    let (cpu_ns, calls) = meter.stop(messages);
    let first = workers.into_iter().map(|w| w.finish().0).min().expect("at least one sender");
    if size == 8192 && senders == 1 {
        observed.mq_peak_kib[side as usize].push(procfs::status_kib(server.pid(), "VmHWM") as f64);
    }
    observed.launch(side, server);
    Run { rate: clock::rate(messages, first, last), cpu_ns, calls }
}

/// Ours with `extra` arguments against ours with none, 16 B, with one
/// sender and with four: both columns are ours, the first with `extra`,
/// the second (in mio's) as it is by default.
pub fn variant_workloads(extra: &[&str], plan: Plan, table: &mut Table) {
    let variant = extra.join(" ");
    for senders in [1, SENDERS] {
        let load = Load::Queue { size: 16, senders };
        let runs = ours_against_ours(load, Setup { extra, ..Setup::default() }, Setup::default(), plan);
        let workload = format!("{}: {variant} / default (both ours)", load.label());
        runs.log(&workload);
        runs.add_rate(table, workload, Unit::PerSecond("msg"), None, Target::None);
        runs.add_cpu(table, load.item());
    }
}

/// This build of our server against another (`--baseline PATH`, say the
/// commit before a change), on the queue and TCP loads: what a change
/// costs, measured side by side. The second column (mio's) is the other
/// build.
pub fn baseline_workloads(program: &Path, plan: Plan, table: &mut Table) {
    let other = Setup { program: Some(program), ..Setup::default() };
    let loads = [
        Load::Queue { size: 16, senders: 1 },
        Load::Queue { size: 16, senders: SENDERS },
        Load::Queue { size: 1024, senders: 1 },
        Load::Queue { size: 8192, senders: 1 },
        Load::Tcp { connections: 1 },
        Load::Tcp { connections: 1000 },
    ];
    for load in loads {
        let runs = ours_against_ours(load, Setup::default(), other, plan);
        let workload = format!("{}: this build / baseline (both ours)", load.label());
        runs.log(&workload);
        let unit = Unit::PerSecond(if load.item() == "line" { "lines" } else { "msg" });
        runs.add_rate(table, workload, unit, None, Target::None);
        runs.add_cpu(table, load.item());
    }
}

/// Our server in both columns, on one CPU, in alternating order: set up as
/// `first` in ours, as `second` in mio's. These starts and stops stay out
/// of the footprint rows, which compare the servers over the same loads.
fn ours_against_ours(load: Load, first: Setup<'_>, second: Setup<'_>, plan: Plan) -> Runs {
    Placement::OneCpu.apply();
    let observed = &mut Observed::default();
    let mut runs = Runs::without_c();
    let repeats = if matches!(load, Load::Tcp { .. }) { plan.tcp_repeats } else { plan.repeats };
    for round in 0..repeats {
        for side in order(&[Side::Ours, Side::Mio], round) {
            let setup = if side == Side::Ours { first } else { second };
            runs.push(side, load.run(Side::Ours, setup, plan, observed));
        }
    }
    runs
}

/// Rows for TCP lines at each number of connections on one CPU, then at
/// the smallest and largest unpinned.
pub fn tcp_workloads(plan: Plan, table: &mut Table, observed: &mut Observed) {
    Placement::OneCpu.apply();
    for connections in CONNECTIONS {
        tcp_connections(plan, connections, Placement::OneCpu, table, observed);
    }
    Placement::Unpinned.apply();
    for connections in [CONNECTIONS[0], CONNECTIONS[3]] {
        tcp_connections(plan, connections, Placement::Unpinned, table, observed);
    }
    Placement::OneCpu.apply();
}

fn tcp_connections(
    plan: Plan,
    connections: usize,
    placement: Placement,
    table: &mut Table,
    observed: &mut Observed,
) {
    let mut runs = Runs::new();
    for round in 0..plan.tcp_repeats {
        for side in order(&Side::servers(), round) {
            runs.push(side, tcp_run(side, connections, Setup::default(), plan, observed));
        }
    }
    let label = placement.label();
    runs.log(&format!("tcp {connections}{label}"));
    let plural = if connections == 1 { "" } else { "s" };
    let workload = format!("tcp 64 B lines, {connections} connection{plural}{label}");
    let target = if placement == Placement::OneCpu { Target::AtLeastMio } else { Target::None };
    runs.add_rate(table, workload, Unit::PerSecond("lines"), None, target);
    if placement == Placement::OneCpu {
        runs.add_cpu(table, "line");
    }
}

/// One server, one client process writing over `connections` connections;
/// lines per second from the first write to the last line read by the sink.
/// The server is started and watched as `setup` says.
fn tcp_run(side: Side, connections: usize, setup: Setup<'_>, plan: Plan, observed: &mut Observed) -> Run {
    let queue = QueueName::new();
    let (extra, program) = (setup.extra, setup.program);
    let spec = ServerSpec { queue: &queue, message_size: TCP_MESSAGE_SIZE, tcp: true, extra, program };
    let server = Server::start(side, &spec);
    let addr = server.addr.expect("a TCP server says where it listens");
    let lines = plan.tcp_lines / connections as u64 * connections as u64;
    let args = [addr.to_string(), connections.to_string(), lines.to_string()];
    let mut client = Worker::start("tcp-client", &args);
    let meter = Meter::start(server.pid(), setup.count_calls);
    client.go();
    let last = sink::read_lines(server.output(), lines).expect("tcp run: sink");
    let (cpu_ns, calls) = meter.stop(lines);
    let (first, _) = client.finish();
    observed.launch(side, server);
    Run { rate: clock::rate(lines, first, last), cpu_ns, calls }
}
