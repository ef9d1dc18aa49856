//! The servers end to end: messages in through the queue or over TCP, lines
//! out through a pipe to the sink. Ours and mio's take turns (A B A B …);
//! the raw limits run in the same rounds, so that every ratio compares
//! figures measured side by side.

use crate::children::{Server, ServerSpec, Side, Worker};
use crate::cleanup::QueueName;
use crate::clock;
use crate::procfs;
use crate::raw::{self, Receive};
use crate::report::{median, Table, Target, Unit};
use crate::sink;
use crate::Plan;

const MESSAGE_SIZES: [usize; 3] = [16, 1024, 8192];
const SENDERS: u64 = 4;
const CONNECTIONS: [usize; 4] = [1, 10, 100, 1000];
/// `--message-size` for TCP runs: the longest line, well above 64 bytes.
const TCP_MESSAGE_SIZE: usize = 1024;

/// What the runs saw of each server besides throughput, for the footprint rows.
#[derive(Default)]
pub struct Observed {
    /// From exec to `ready`, ms, per side.
    pub ready_ms: [Vec<f64>; 2],
    /// From SIGTERM to exit, ms, per side.
    pub stop_ms: [Vec<f64>; 2],
    /// VmHWM after the 8 KiB queue load, KiB, per side.
    pub mq_peak_kib: [Vec<f64>; 2],
}

impl Observed {
    fn launch(&mut self, side: Side, server: Server) {
        self.ready_ms[side as usize].push(server.ready_after.as_secs_f64() * 1e3);
        self.stop_ms[side as usize].push(server.stop().as_secs_f64() * 1e3);
    }
}

/// Rows for the raw limits and the servers fed by the queue.
pub fn mq_workloads(plan: Plan, table: &mut Table, observed: &mut Observed) {
    let mut limit_16 = 0.0;
    for size in MESSAGE_SIZES {
        let (mut blocking, mut epoll, mut ours, mut mio) = (vec![], vec![], vec![], vec![]);
        for _ in 0..plan.repeats {
            blocking.push(raw::messages_per_second(Receive::Blocking, size, plan.mq_messages));
            epoll.push(raw::messages_per_second(Receive::Epoll, size, plan.mq_messages));
            ours.push(mq_run(Side::Ours, size, 1, plan, observed));
            mio.push(mq_run(Side::Mio, size, 1, plan, observed));
        }
        eprintln!("mq {size} B: blocking {blocking:.0?}, epoll {epoll:.0?}, ours {ours:.0?}, mio {mio:.0?}");
        let limit = median(&epoll);
        let unit = Unit::PerSecond("msg");
        table.add(
            format!("raw mq {size} B, blocking mq_receive"),
            unit,
            median(&blocking),
            None,
            None,
            Target::None,
        );
        table.add(
            format!("raw mq {size} B, epoll (LT) + mq_receive"),
            unit,
            limit,
            None,
            Some(limit),
            Target::None,
        );
        let target = if size == 16 { Target::AtLeastMioAndRaw(75.0) } else { Target::AtLeastMio };
        table.add(
            format!("mq end to end, {size} B"),
            unit,
            median(&ours),
            Some(median(&mio)),
            Some(limit),
            target,
        );
        if size == 16 {
            limit_16 = limit;
        }
    }
    let (mut ours, mut mio) = (vec![], vec![]);
    for _ in 0..plan.repeats {
        ours.push(mq_run(Side::Ours, 16, SENDERS, plan, observed));
        mio.push(mq_run(Side::Mio, 16, SENDERS, plan, observed));
    }
    eprintln!("mq 16 B, {SENDERS} senders: ours {ours:.0?}, mio {mio:.0?}");
    let workload = format!("mq end to end, 16 B, {SENDERS} senders");
    let (ours, mio) = (median(&ours), Some(median(&mio)));
    table.add(workload, Unit::PerSecond("msg"), ours, mio, Some(limit_16), Target::AtLeastMio);
}

/// One server fed by `senders` sender processes; messages per second from
/// the first send to the last line the sink reads.
fn mq_run(side: Side, size: usize, senders: u64, plan: Plan, observed: &mut Observed) -> f64 {
    let queue = QueueName::new();
    let server = Server::start(side, &ServerSpec { queue: &queue, message_size: size, tcp: false });
    let per_sender = plan.mq_messages / senders;
    let args = [queue.as_str().to_string(), per_sender.to_string(), size.to_string()];
    let mut workers: Vec<Worker> = (0..senders).map(|_| Worker::start("sender", &args)).collect();
    workers.iter_mut().for_each(Worker::go);
    let last = sink::read_lines(server.output(), per_sender * senders).expect("mq run: sink");
    let first = workers.into_iter().map(|w| w.finish().0).min().expect("at least one sender");
    if size == 8192 && senders == 1 {
        observed.mq_peak_kib[side as usize].push(procfs::status_kib(server.pid(), "VmHWM") as f64);
    }
    observed.launch(side, server);
    clock::rate(per_sender * senders, first, last)
}

/// Rows for TCP lines at each number of connections.
pub fn tcp_workloads(plan: Plan, table: &mut Table, observed: &mut Observed) {
    for connections in CONNECTIONS {
        let (mut ours, mut mio) = (vec![], vec![]);
        for _ in 0..plan.repeats {
            ours.push(tcp_run(Side::Ours, connections, plan, observed));
            mio.push(tcp_run(Side::Mio, connections, plan, observed));
        }
        eprintln!("tcp {connections}: ours {ours:.0?}, mio {mio:.0?}");
        let workload =
            format!("tcp 64 B lines, {connections} connection{}", if connections == 1 { "" } else { "s" });
        let (ours, mio) = (median(&ours), Some(median(&mio)));
        table.add(workload, Unit::PerSecond("lines"), ours, mio, None, Target::AtLeastMio);
    }
}

/// One server, one client process writing over `connections` connections;
/// lines per second from the first write to the last line read by the sink.
fn tcp_run(side: Side, connections: usize, plan: Plan, observed: &mut Observed) -> f64 {
    let queue = QueueName::new();
    let spec = ServerSpec { queue: &queue, message_size: TCP_MESSAGE_SIZE, tcp: true };
    let server = Server::start(side, &spec);
    let addr = server.addr.expect("a TCP server says where it listens");
    let lines = plan.tcp_lines / connections as u64 * connections as u64;
    let args = [addr.to_string(), connections.to_string(), lines.to_string()];
    let mut client = Worker::start("tcp-client", &args);
    client.go();
    let last = sink::read_lines(server.output(), lines).expect("tcp run: sink");
    let (first, _) = client.finish();
    observed.launch(side, server);
    clock::rate(lines, first, last)
}
