//! The server's output journal (`NAME.journal` in `/dev/shm`), as a test
//! sees it: its name, its header, and journals planted by "someone else".

use std::io;

use ipc::SharedMemory;
pub use server::journal::{Header, HEADER_SIZE};

use crate::TestQueue;

/// The journal's name for `queue`: `/Q.journal`.
pub fn journal_name(queue: &TestQueue) -> String {
    server::journal::journal_name(queue.name())
}

/// The journal's header as it is now, read with `pread`; `None` if there
/// is no journal.
pub fn journal_header(queue: &TestQueue) -> Option<Header> {
    let shm = match SharedMemory::open(&journal_name(queue), false) {
        Ok(shm) => shm,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{e}"),
    };
    let mut bytes = [0u8; HEADER_SIZE];
    let got = shm.read_at(&mut bytes, 0).unwrap_or_else(|e| panic!("{e}"));
    Some(Header::from_bytes(&bytes[..got]).unwrap_or_else(|| panic!("a journal of {got} bytes")))
}

/// A header as a server of this user would write it, for `data` of which
/// the first `written` bytes were written: a capacity of `capacity` bytes.
pub fn journal_header_for(capacity: usize, written: usize, data: &[u8]) -> Header {
    Header {
        magic: server::journal::MAGIC,
        version: server::journal::VERSION,
        header_size: HEADER_SIZE as u32,
        capacity: capacity as u64,
        // SAFETY: plain call.
        uid: unsafe { libc::geteuid() },
        pid: 1,
        offsets: server::journal::pack(written, data.len()),
        reserved: [0; 3],
    }
}

/// Creates the journal of `queue` with exactly `mode`, `header`, and `data`
/// after it, in an object of `size` bytes. The [`TestQueue`] removes it.
pub fn plant_journal(queue: &TestQueue, mode: libc::mode_t, header: &Header, data: &[u8], size: usize) {
    let shm = SharedMemory::create(&journal_name(queue), size, mode).unwrap_or_else(|e| panic!("{e}"));
    shm.write_at(header.as_bytes(), 0).unwrap_or_else(|e| panic!("{e}"));
    shm.write_at(data, HEADER_SIZE as u64).unwrap_or_else(|e| panic!("{e}"));
    shm.set_len(size).unwrap_or_else(|e| panic!("{e}"));
}
