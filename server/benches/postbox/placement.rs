//! Where the processes of a run may execute.
//!
//! On this kind of machine (a VM with two vCPUs) a wake-up that crosses
//! CPUs costs several microseconds, more than a small message's whole
//! journey, and whether the scheduler puts a sender and its receiver on the
//! same CPU or not changes a run's throughput fourfold. Runs are therefore
//! made on one CPU, where they are steady and measure the work each side
//! does; a few rows are repeated unpinned to show the other regime, and
//! the SIGKILL-window rows put the server on a CPU of its own, where every
//! wake-up crosses CPUs (the placement of the measurements).
//!
//! The conductor pins its own main thread; children (and the threads the
//! conductor starts afterwards) inherit the mask across `fork` and `exec`.

use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The CPU a server is moved to when it starts, or `usize::MAX` for none.
static SERVER_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Where a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Every process of the run on CPU 0.
    OneCpu,
    /// Wherever the scheduler likes, on all CPUs.
    Unpinned,
    /// The server alone on the last CPU, everything else on CPU 0: every
    /// write that wakes the sink, and every message that wakes a sender,
    /// crosses CPUs.
    Apart,
}

impl Placement {
    /// Applies this placement to the calling thread and what it starts next.
    pub fn apply(self) {
        let cpus = match self {
            Placement::OneCpu | Placement::Apart => 0..1,
            Placement::Unpinned => 0..online_cpus(),
        };
        let server_cpu = match self {
            Placement::Apart => online_cpus() - 1,
            _ => usize::MAX,
        };
        SERVER_CPU.store(server_cpu, Ordering::Relaxed);
        set_affinity(0, cpus);
    }

    /// Moves a server just started where this placement wants it.
    pub fn place_server(pid: u32) {
        let cpu = SERVER_CPU.load(Ordering::Relaxed);
        if cpu != usize::MAX {
            set_affinity(pid as libc::pid_t, cpu..cpu + 1);
        }
    }

    /// A label for the table, empty for the usual placement.
    pub fn label(self) -> &'static str {
        match self {
            Placement::OneCpu => "",
            Placement::Unpinned => ", unpinned",
            Placement::Apart => ", server on its own CPU",
        }
    }
}

/// Lets `pid` (0: this thread) run on `cpus` only.
fn set_affinity(pid: libc::pid_t, cpus: std::ops::Range<usize>) {
    // SAFETY: `cpu_set_t` is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    for cpu in cpus {
        // SAFETY: `cpu` is below the number of CPUs, within the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is initialised and lives across the call.
    let res = unsafe { libc::sched_setaffinity(pid, mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(res, 0, "bench setup: sched_setaffinity failed");
}

/// CPUs online, whatever this thread's affinity.
pub fn online_cpus() -> usize {
    // SAFETY: plain call.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}
