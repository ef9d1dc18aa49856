//! Where the processes of a run may execute.
//!
//! On this kind of machine (a VM with two vCPUs) a wake-up that crosses
//! CPUs costs several microseconds, more than a small message's whole
//! journey, and whether the scheduler puts a sender and its receiver on the
//! same CPU or not changes a run's throughput fourfold. Runs are therefore
//! made on one CPU, where they are steady and measure the work each side
//! does; a few rows are repeated unpinned to show the other regime.
//!
//! The conductor pins its own main thread; children (and the threads the
//! conductor starts afterwards) inherit the mask across `fork` and `exec`.

use std::mem;

/// Where a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Every process of the run on CPU 0.
    OneCpu,
    /// Wherever the scheduler likes, on all CPUs.
    Unpinned,
}

impl Placement {
    /// Applies this placement to the calling thread and what it starts next.
    pub fn apply(self) {
        // SAFETY: `cpu_set_t` is a plain bit set; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
        let cpus = match self {
            Placement::OneCpu => 1,
            Placement::Unpinned => online_cpus(),
        };
        for cpu in 0..cpus {
            // SAFETY: `cpu` is below the number of CPUs, within the set's capacity.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        // SAFETY: `set` is initialised and lives across the call; 0 is this thread.
        let res = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
        assert_eq!(res, 0, "bench setup: sched_setaffinity failed");
    }

    /// A label for the table, empty for the usual placement.
    pub fn label(self) -> &'static str {
        match self {
            Placement::OneCpu => "",
            Placement::Unpinned => ", unpinned",
        }
    }
}

/// CPUs online, whatever this thread's affinity.
pub fn online_cpus() -> usize {
    // SAFETY: plain call.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}
