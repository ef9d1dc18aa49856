//! The statistics page: the layout of the live statistics in POSIX shared memory.
//!
//! One definition for both ends: the server writes it, the client
//! (`client --stats`) reads it, both through this library. Change the
//! layout only together with [`VERSION`].
//!
//! A reader must be able to tell the server's figures from anything else
//! under that name: the page carries the server's pid and user, a sequence
//! number that grows with every publication, and a checksum over all of it
//! ([`StatsPage::seal`], [`StatsPage::is_sealed`]).

/// Identifies a postbox statistics object: "PBSTATS" and a NUL.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PBSTATS\0");

/// Bumped whenever [`StatsPage`] changes.
pub const VERSION: u32 = 3;

/// The sources, in the order of [`StatsPage::sources`].
pub const SOURCE_NAMES: [&str; 4] = ["mq", "stdin", "tcp", "unix"];

/// What one source has delivered.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Messages (lines, for streams) received and handed to the output.
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
    /// The server's (effective) user id.
    pub uid: u32,
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
    /// Lines written to stdout, all sources together.
    pub lines_printed: u64,
    /// Lines received and lost: not printed, and not kept in the journal
    /// for the next server.
    pub lines_dropped: u64,
    /// Lines a killed server had left unwritten in the journal, printed by
    /// this server before its own.
    pub lines_replayed: u64,
    /// Per source, in the order of [`SOURCE_NAMES`].
    pub sources: [SourceStats; 4],
    /// Publications since the start: grows by one each time.
    pub sequence: u64,
    /// FNV-1a over every byte before this field.
    pub checksum: u64,
}

// SAFETY: integers only, laid out by `repr(C)` without padding (checked below): any bytes are a page.
unsafe impl ipc::Plain for StatsPage {}

const _: () = assert!(std::mem::size_of::<StatsPage>() == 8 * 13 + 40 * 4);

impl StatsPage {
    /// The page as bytes, for `pwrite`.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: a `repr(C)` struct of integers without padding: every byte is initialised.
        unsafe {
            std::slice::from_raw_parts((self as *const StatsPage).cast(), std::mem::size_of::<StatsPage>())
        }
    }

    /// A page from bytes read back (`pread`); `None` if there are too few.
    pub fn from_bytes(bytes: &[u8]) -> Option<StatsPage> {
        let bytes = bytes.get(..std::mem::size_of::<StatsPage>())?;
        // SAFETY: `bytes` holds a whole page, any bytes are a valid page, and the read is unaligned.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
    }

    /// Sets the checksum over everything else.
    pub fn seal(&mut self) {
        self.checksum = self.compute_checksum();
    }

    /// Whether the checksum matches the rest: the page is whole, as one
    /// publication wrote it.
    pub fn is_sealed(&self) -> bool {
        self.checksum == self.compute_checksum()
    }

    fn compute_checksum(&self) -> u64 {
        let bytes = self.as_bytes();
        let body = &bytes[..bytes.len() - std::mem::size_of::<u64>()];
        body.iter()
            .fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }
}

/// The name of the statistics object and of its semaphore, derived from the
/// queue's: `/postbox` gives `/postbox.stats` (in `/dev/shm` as
/// `postbox.stats` and `sem.postbox.stats`).
pub fn stats_name(queue: &str) -> String {
    format!("{queue}.stats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_page_survives_bytes_and_any_change_breaks_the_seal() {
        let mut page =
            StatsPage { magic: MAGIC, version: VERSION, pid: 42, rounds: 7, ..StatsPage::default() };
        page.seal();
        let back = StatsPage::from_bytes(page.as_bytes()).unwrap();
        assert_eq!(back, page);
        assert!(back.is_sealed());
        let mut bytes = page.as_bytes().to_vec();
        for at in [0, 20, 100, bytes.len() - 9] {
            bytes[at] ^= 1;
            assert!(!StatsPage::from_bytes(&bytes).unwrap().is_sealed(), "byte {at}");
            bytes[at] ^= 1;
        }
        assert!(StatsPage::from_bytes(&bytes[1..]).is_none());
    }
}
