//! `make bench`: the postbox server against the limits of the kernel,
//! against the same server built on mio, and against a small C server.
//!
//! One binary plays every part. Run without a role it is the conductor: it
//! starts servers, senders and clients as child processes (itself again,
//! through `std::env::current_exe()` and `--role NAME`), reads the servers'
//! output as the line-counting sink, and prints one table. Run with a role it
//! is one of those children:
//!
//! - `sender`: sends messages to a queue (see [`roles::sender`]);
//! - `tcp-client`, `tcp-idle`: write lines over TCP, or hold idle connections;
//! - `paced-sender`, `paced-tcp`: send stamped items at a fixed rate ([`latency`]);
//! - `mio-server`: the postbox server on mio ([`mio_server`]).
//!
//! The C server ([`c_server`]) is built from `bench/c_server` at
//! the start of a run when a C compiler is present (its column says `n/a`
//! otherwise), and [`check`] makes sure that every server prints exactly the
//! bytes ours prints before anything is measured.
//!
//! Every queue and process it starts is removed or ended when it finishes,
//! fails, or is interrupted ([`cleanup`]).
//!
//! Arguments: `--quick` (a tenth of the work, one run each: a smoke test),
//! `--only GROUP` (one group of workloads, see [`GROUPS`]; `check` runs
//! only the check of the output), `--repeats N` (runs of each side, for a
//! closer look), `--baseline PATH` (adds the `baseline` group: this build
//! of the server against the one at PATH).

mod c_server;
mod check;
mod children;
mod cleanup;
mod clock;
mod dispatch;
mod endtoend;
mod footprint;
mod latency;
mod mio_server;
mod placement;
mod procfs;
mod queue;
mod raw;
mod report;
mod roles;
mod sink;
mod syscalls;

use std::process::ExitCode;

use endtoend::Observed;
use report::Table;

/// How much work each workload does, and how often it is repeated.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    /// Runs of each side, in alternating order; the median is reported.
    pub repeats: usize,
    /// The same for TCP, whose runs are short (tens of milliseconds).
    pub tcp_repeats: usize,
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
            repeats: 5,
            tcp_repeats: 9,
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
            tcp_repeats: 1,
            mq_messages: 20_000,
            tcp_lines: 20_000,
            dispatch_events: 200_000,
            dispatch_repeats: 1,
            idle_seconds: 1,
        }
    }
}

/// What `--only` accepts: the groups of workloads, and `check` (the output
/// check alone, which every run makes first).
const GROUPS: [&str; 10] =
    ["mq", "notify", "stats", "baseline", "tcp", "latency", "syscalls", "dispatch", "footprint", "check"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        return roles::run(&args[1..]);
    }
    // `cargo bench` adds `--bench`; other arguments are ignored.
    let mut plan = if args.iter().any(|a| a == "--quick") { Plan::quick() } else { Plan::full() };
    let value_of = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    if let Some(repeats) = value_of("--repeats") {
        plan.repeats = repeats.parse().expect("--repeats takes a number");
        plan.tcp_repeats = plan.repeats;
        plan.dispatch_repeats = plan.repeats;
    }
    let only = value_of("--only");
    if let Some(group) = only.filter(|group| !GROUPS.contains(&group.as_str())) {
        eprintln!("bench: no group {group:?}; --only takes one of {}", GROUPS.join(", "));
        return ExitCode::from(2);
    }
    let baseline = value_of("--baseline").map(std::path::PathBuf::from);
    if only.is_some_and(|only| only == "baseline") && baseline.is_none() {
        eprintln!("bench: --only baseline needs --baseline PATH (another build of the server)");
        return ExitCode::from(2);
    }
    // Cargo runs the bench in the package's directory (bench/), not where
    // it was called from: a relative path would name the wrong file.
    if let Some(path) = baseline.as_deref().filter(|path| !path.is_absolute() || !path.is_file()) {
        eprintln!("bench: --baseline takes the absolute path of a server binary, not {}", path.display());
        return ExitCode::from(2);
    }
    if !children::our_server().is_file() {
        eprintln!("bench: {} does not exist: run `make build` first", children::our_server().display());
        return ExitCode::from(2);
    }
    let wanted = |group: &str| only.map_or(true, |only| only == group);
    cleanup::catch_interrupts();
    cleanup::sweep_dead_runs();
    procfs::raise_fd_limit();
    c_server::build();
    check::outputs_agree();
    let mut table = Table::new(plan);
    let mut observed = Observed::default();
    if wanted("mq") {
        endtoend::mq_workloads(plan, &mut table, &mut observed);
    }
    if wanted("notify") {
        endtoend::variant_workloads(&["--notify", "signal"], plan, &mut table);
    }
    if wanted("stats") {
        endtoend::variant_workloads(&["--no-stats"], plan, &mut table);
    }
    if let Some(program) = baseline.as_deref().filter(|_| wanted("baseline")) {
        endtoend::baseline_workloads(program, plan, &mut table);
    }
    if wanted("tcp") {
        endtoend::tcp_workloads(plan, &mut table, &mut observed);
    }
    if wanted("latency") {
        latency::workloads(plan, &mut table);
    }
    if wanted("syscalls") {
        syscalls::workloads(plan, &mut table);
    }
    if wanted("dispatch") {
        dispatch::workloads(plan, &mut table);
    }
    if wanted("footprint") {
        footprint::workloads(plan, &mut table, &observed);
    }
    print!("{}", table.render());
    ExitCode::SUCCESS
}
