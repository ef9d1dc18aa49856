//! What `/proc` says about a process: CPU time and memory.

use std::fs;

/// utime + stime of a process, in clock ticks (`/proc/PID/stat`).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("bench: reading /proc/PID/stat");
    // The command name may hold spaces; the fields after it are numbered
    // from 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let after_name = &stat[stat.rfind(')').expect("/proc/PID/stat has a command name") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| fields[i].parse::<u64>().expect("/proc/PID/stat fields are numbers");
    field(11) + field(12)
}

/// A `kB` line of `/proc/PID/status`, such as `VmRSS` or `VmHWM`, in KiB.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("bench: reading /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {key}"))
}

/// Raises the soft limit on open descriptors to the hard limit: the
/// dispatch workload opens 10 000 eventfds, the TCP ones 1000 connections.
/// Children inherit it.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is writable, then read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// CPU time a process has used so far (user and system), in nanoseconds,
/// from its CPU-time clock: exact, where `/proc/PID/stat` counts 10 ms ticks.
pub fn cpu_time_ns(pid: u32) -> u64 {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: both out-parameters are writable; the pid is our live child.
    let ok = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
    };
    assert!(ok, "bench: cannot read the CPU clock of process {pid}");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
