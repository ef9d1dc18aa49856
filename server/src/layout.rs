//! The layout of the live statistics in POSIX shared memory.
//!
//! One definition for both ends: the server writes it, the client
//! (`client --stats`) reads it; the client includes this very file with
//! `#[path]`, so the two can never disagree. Change the layout only together
//! with [`VERSION`].

/// Identifies a postbox statistics object: "PBSTATS" and a NUL.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PBSTATS\0");

/// Bumped whenever [`StatsPage`] changes.
pub const VERSION: u32 = 1;

/// The sources, in the order of [`StatsPage::sources`].
pub const SOURCE_NAMES: [&str; 4] = ["mq", "stdin", "tcp", "unix"];

/// What one source has delivered.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Messages (lines, for streams) printed.
    pub messages: u64,
    /// Their bytes, without the newline that ends a line (for the queue,
    /// without the one trailing newline that is dropped).
    pub bytes: u64,
    /// Connections open now (stream sockets; stdin counts as one while open).
    pub connections_open: u64,
    /// Connections accepted since the start.
    pub connections_total: u64,
    /// Read or receive errors, resets included.
    pub errors: u64,
}

/// The whole shared object, as the server last published it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsPage {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// Always [`VERSION`] for this layout.
    pub version: u32,
    /// `size_of::<StatsPage>()`, a second check on the layout.
    pub size: u32,
    /// The server's process id.
    pub pid: u32,
    /// Padding, always zero.
    pub reserved: u32,
    /// When the server started, in nanoseconds since the Unix epoch.
    pub started_ns: u64,
    /// When these figures were published, in nanoseconds since the epoch.
    pub updated_ns: u64,
    /// Loop rounds since the start.
    pub rounds: u64,
    /// Messages waiting in the queue when the server last looked.
    pub queue_depth: i64,
    /// The queue's capacity in messages.
    pub queue_capacity: i64,
    /// Per source, in the order of [`SOURCE_NAMES`].
    pub sources: [SourceStats; 4],
}

/// The name of the statistics object and of its semaphore, derived from the
/// queue's: `/postbox` gives `/postbox.stats` (in `/dev/shm` as
/// `postbox.stats` and `sem.postbox.stats`).
pub fn stats_name(queue: &str) -> String {
    format!("{queue}.stats")
}
