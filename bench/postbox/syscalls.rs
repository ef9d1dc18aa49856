//! System calls per message or line: what each server asks of the kernel
//! for its work, ours beside mio's and the C server's.
//!
//! `perf stat` counts the kernel's syscall tracepoints in the server (an
//! increment in the kernel per call: nothing is recorded or copied out).
//! It attaches with its counters off; they are switched on over perf's
//! control descriptor just before the go and off once the sink has the last
//! line, each switch acknowledged before the run goes on, so the server's
//! start and stop are not counted. Where `perf` is missing or may not trace
//! (`perf_event_paranoid`, no tracefs), a note says so and the group adds
//! no rows.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::children::{Proc, Side, SIDES};
use crate::endtoend::{order, Load, Observed, Setup};
use crate::report::{median, Table, Target, Unit};
use crate::Plan;

/// The calls counted one by one, each with the tracepoints that make it up;
/// whatever else the server calls is counted as `other`.
const CALLS: [(&str, &[&str]); 8] = [
    ("mq_receive", &["mq_timedreceive"]),
    ("epoll_wait", &["epoll_wait", "epoll_pwait"]),
    // mio's TCP streams receive with `recvfrom`, the others `read`.
    ("read, recvfrom", &["read", "recvfrom"]),
    ("write", &["write"]),
    ("ioctl (FIONREAD)", &["ioctl"]),
    ("pwrite (statistics)", &["pwrite64"]),
    ("mq_getattr", &["mq_getsetattr"]),
    ("other", &[]),
];

/// Every system call, for the total and for `other`.
const ALL: &str = "raw_syscalls:sys_enter";

/// Calls per item of one run, in the order of [`CALLS`], then the total.
pub type Calls = Vec<f64>;

/// Queue messages of 16 B from one sender and from four, of 8 KiB from
/// one, and 64-byte TCP lines on one connection.
const LOADS: [Load; 4] = [
    Load::Queue { size: 16, senders: 1 },
    Load::Queue { size: 16, senders: 4 },
    Load::Queue { size: 8192, senders: 1 },
    Load::Tcp { connections: 1 },
];

/// For each load, a row of all calls per item and one per call any server
/// makes; ours, mio's and the C server's runs interleaved as everywhere.
/// These runs stay out of the footprint rows (perf is attached to them).
pub fn workloads(plan: Plan, table: &mut Table) {
    if let Err(why) = perf_works() {
        eprintln!("system calls: perf cannot count them here ({why}); no rows");
        return;
    }
    let observed = &mut Observed::default();
    let setup = Setup { count_calls: true, ..Setup::default() };
    for load in LOADS {
        // runs[side][call]: that call's count per item, one entry per run.
        let mut runs: [Vec<Vec<f64>>; SIDES] = Default::default();
        for side_runs in &mut runs {
            *side_runs = vec![Vec::new(); CALLS.len() + 1];
        }
        for round in 0..plan.repeats {
            for side in order(&Side::servers(), round) {
                let calls = load.run(side, setup, plan, observed).calls.expect("a counted run has its calls");
                for (call, per_item) in runs[side as usize].iter_mut().zip(calls) {
                    call.push(per_item);
                }
            }
        }
        add_rows(table, &runs, load);
    }
}

/// One row for all calls, then one per call that some server makes. A
/// side without runs (the C server, if it was not built) says `n/a`.
fn add_rows(table: &mut Table, runs: &[Vec<Vec<f64>>; SIDES], load: Load) {
    let [ours, mio, c] = runs;
    let per = if load.item() == "line" { "line" } else { "msg" };
    let unit = Unit::PerItem(per);
    let all = CALLS.len();
    let workload = format!("system calls per {per}, {}", load.label());
    table.add_paired(workload, unit, &ours[all], &mio[all], Some(&c[all]), None, Target::None);
    for (call, (name, _)) in CALLS.iter().enumerate() {
        let made = |side: &Vec<Vec<f64>>| !side[call].is_empty() && median(&side[call]) > 0.0;
        if made(ours) || made(mio) || made(c) {
            let workload = format!("  {name}");
            table.add_paired(workload, unit, &ours[call], &mio[call], Some(&c[call]), None, Target::None);
        }
    }
}

/// Whether `perf stat` can count syscall tracepoints in a child of ours.
fn perf_works() -> Result<(), String> {
    let output = Command::new("perf")
        .args(["stat", "-x", ",", "-e", &events().join(","), "--", "true"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("perf: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("perf failed").trim().to_string())
    }
}

/// The tracepoints perf counts, [`ALL`] first.
fn events() -> Vec<String> {
    let each = CALLS.iter().flat_map(|(_, points)| points.iter().map(|p| format!("syscalls:sys_enter_{p}")));
    std::iter::once(ALL.to_string()).chain(each).collect()
}

/// `perf stat` attached to a server, its counters off until [`Counter::start`].
pub struct Counter {
    perf: Proc,
    /// perf's control descriptor (commands in) and acknowledgements (out).
    control: File,
    acks: File,
    /// What perf prints: the counts, once it has been stopped.
    report: File,
}

impl Counter {
    /// Attaches perf to `pid`, counting nothing yet.
    pub fn attach(pid: u32) -> Counter {
        let (control_in, control) = pipe();
        let (acks, acks_out) = pipe();
        let (report, report_out) = pipe();
        let control_arg = format!("fd:{},{}", control_in.as_raw_fd(), acks_out.as_raw_fd());
        let inherited = [control_in.as_raw_fd(), acks_out.as_raw_fd()];
        let mut command = Command::new("perf");
        command
            .args(["stat", "-x", ",", "-D", "-1", "--control", &control_arg])
            .args(["-e", &events().join(","), "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(report_out));
        // SAFETY: `fcntl` is async-signal-safe and touches no memory of
        // ours, so it may run between `fork` and `exec`.
        unsafe {
            command.pre_exec(move || keep_open(inherited));
        }
        let perf = Proc::spawn(&mut command, libc::SIGINT);
        // The child has its copies; ours would keep the pipes from ending.
        drop((command, control_in, acks_out));
        Counter { perf, control: File::from(control), acks: File::from(acks), report: File::from(report) }
    }

    /// Switches the counters on.
    pub fn start(&mut self) {
        self.command("enable");
    }

    /// Switches the counters off and returns each call's count per item.
    pub fn finish(mut self, items: u64) -> Calls {
        self.command("disable");
        self.perf.stop();
        let mut report = String::new();
        self.report.read_to_string(&mut report).expect("bench: reading perf's counts");
        per_item(&report, items)
    }

    /// Sends perf a control command and waits until it is done.
    fn command(&mut self, command: &str) {
        self.control.write_all(format!("{command}\n").as_bytes()).expect("bench: perf's control pipe");
        let mut ack = [0u8; 16];
        let n = self.acks.read(&mut ack).expect("bench: perf's acknowledgement");
        assert!(ack[..n].starts_with(b"ack"), "perf did not acknowledge {command:?}");
    }
}

/// Each call of [`CALLS`] per item, then all of them, from perf's CSV lines
/// (`COUNT,UNIT,EVENT,...`; a count of `<not counted>` is none).
fn per_item(report: &str, items: u64) -> Calls {
    let count = |event: &str| -> f64 {
        let line = report.lines().find(|line| line.split(',').nth(2) == Some(event));
        let line = line.unwrap_or_else(|| panic!("perf reported no {event}:\n{report}"));
        line.split(',').next().and_then(|count| count.parse().ok()).unwrap_or(0.0)
    };
    let all = count(ALL);
    let mut calls: Calls = CALLS
        .iter()
        .map(|(_, points)| points.iter().map(|p| count(&format!("syscalls:sys_enter_{p}"))).sum())
        .collect();
    let named: f64 = calls.iter().sum();
    let other = calls.last_mut().expect("CALLS ends with other");
    *other = (all - named).max(0.0);
    calls.push(all);
    calls.iter().map(|count| count / items as f64).collect()
}

/// A pipe, both ends closed on `exec`: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let res = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(res, 0, "bench setup: pipe2 failed");
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// In the child before `exec`: lets `fds` stay open across it.
fn keep_open(fds: [RawFd; 2]) -> std::io::Result<()> {
    for fd in fds {
        // SAFETY: plain call on a descriptor the child inherited.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
