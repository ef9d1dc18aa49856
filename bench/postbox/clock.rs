//! One clock for every process of a run: `CLOCK_MONOTONIC` is system-wide,
//! so a sender's "first send" and the sink's "last line" can be subtracted.

/// Nanoseconds on the monotonic clock.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is writable; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Items per second for `count` items between two [`now_ns`] readings.
pub fn rate(count: u64, start_ns: u64, end_ns: u64) -> f64 {
    count as f64 * 1e9 / end_ns.saturating_sub(start_ns).max(1) as f64
}
