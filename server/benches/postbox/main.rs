//! `make bench`: the postbox server against the limits of the kernel and
//! against the same server built on mio.
//!
//! One binary plays every part. Run without a role it is the conductor: it
//! starts servers, senders and clients as child processes (itself again,
//! through `std::env::current_exe()` and `--role NAME`), reads the servers'
//! output as the line-counting sink, and prints one table. Run with a role it
//! is one of those children:
//!
//! - `sender`: sends messages to a queue (see [`roles::sender`]);
//! - `tcp-client`, `tcp-idle`: write lines over TCP, or hold idle connections;
//! - `mio-server`: the postbox server on mio ([`mio_server`]).
//!
//! Every queue and process it starts is removed or ended when it finishes,
//! fails, or is interrupted ([`cleanup`]).

// The server's own code, compiled into the mio server so that the event loop
// is the only difference. Not every item is used here, and bench targets are
// built with `cfg(test)` but without the `#[test]` functions, which leaves
// the test modules' imports unused.
#[allow(dead_code)]
#[path = "../../src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../../src/escape.rs"]
mod escape;
#[allow(dead_code)]
#[path = "../../src/layout.rs"]
mod layout;
#[allow(dead_code, unused_imports)]
#[path = "../../src/mq.rs"]
mod mq;
#[allow(dead_code)]
#[path = "../../src/output.rs"]
mod output;
#[allow(dead_code)]
#[path = "../../src/stats.rs"]
mod stats;

mod children;
mod cleanup;
mod clock;
mod dispatch;
mod endtoend;
mod footprint;
mod mio_server;
mod procfs;
mod queue;
mod raw;
mod report;
mod roles;
mod sink;

use std::process::ExitCode;

use endtoend::Observed;
use report::Table;

/// How much work each workload does, and how often it is repeated.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    /// Runs of each side in A B A B order; the median is reported.
    pub repeats: usize,
    pub mq_messages: u64,
    pub tcp_lines: u64,
    pub dispatch_events: u64,
    pub dispatch_repeats: usize,
    pub idle_seconds: u64,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            quick: false,
            repeats: 3,
            mq_messages: 200_000,
            tcp_lines: 200_000,
            dispatch_events: 1_000_000,
            dispatch_repeats: 5,
            idle_seconds: 5,
        }
    }

    fn quick() -> Plan {
        Plan {
            quick: true,
            repeats: 1,
            mq_messages: 20_000,
            tcp_lines: 20_000,
            dispatch_events: 200_000,
            dispatch_repeats: 1,
            idle_seconds: 1,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        return roles::run(&args[1..]);
    }
    // `cargo bench` adds `--bench`; anything but `--quick` is ignored.
    let plan = if args.iter().any(|a| a == "--quick") { Plan::quick() } else { Plan::full() };
    cleanup::catch_interrupts();
    procfs::raise_fd_limit();
    let mut table = Table::new(plan);
    let mut observed = Observed::default();
    endtoend::mq_workloads(plan, &mut table, &mut observed);
    endtoend::tcp_workloads(plan, &mut table, &mut observed);
    dispatch::workloads(plan, &mut table);
    footprint::workloads(plan, &mut table, &observed);
    print!("{}", table.render());
    ExitCode::SUCCESS
}
