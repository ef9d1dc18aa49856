//! How much a pipe surely takes in one write that the kernel will not cut:
//! the server writes only whole lines into a pipe, and a write longer than
//! `PIPE_BUF` may be cut wherever the pipe is full.
//!
//! A pipe is a ring of page-sized slots. A write of `n` bytes puts what
//! does not fill a page into the last slot if it fits there, and the rest
//! into new slots, so it takes at most `n.div_ceil(PAGE)` slots of its own
//! (counting the one it may share with the write before). A slot is free
//! again once the reader has read all of it. The bytes waiting in the pipe
//! (`FIONREAD`) do not say how many slots they fill, but with the sizes of
//! our own writes they say which writes the reader has finished: only the
//! others can still hold slots. This holds as long as the server is the
//! pipe's only writer.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use crate::sys::cvt;

/// A pipe's slots are pages.
pub const PAGE: usize = 4096;

/// The writes into a pipe that its reader may not have finished, and the
/// slots they may hold.
#[derive(Debug)]
pub struct PipeRoom {
    capacity: usize,
    /// Bytes written since the pipe was opened.
    written: u64,
    /// For each write not known to be read: where it ends (in `written`)
    /// and the slots it may hold.
    unread: VecDeque<(u64, usize)>,
    /// The slots of every write in `unread`.
    slots: usize,
}

impl PipeRoom {
    /// A pipe of `capacity` bytes that holds nothing of ours.
    pub fn new(capacity: usize) -> PipeRoom {
        PipeRoom { capacity, written: 0, unread: VecDeque::new(), slots: 0 }
    }

    /// The pipe's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes that surely fit, by what is known without asking the pipe.
    pub fn surely_free(&self) -> usize {
        self.capacity.saturating_sub(self.slots * PAGE)
    }

    /// Records a completed write of `n` bytes.
    pub fn wrote(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.written += n as u64;
        let slots = n.div_ceil(PAGE);
        self.unread.push_back((self.written, slots));
        self.slots += slots;
    }

    /// Asks the pipe behind `fd` how many bytes wait in it (`FIONREAD`),
    /// and frees the slots of the writes its reader has finished. Returns
    /// whether the pipe is empty; an error counts as "not empty" and frees
    /// nothing, the careful answer.
    pub fn ask(&mut self, fd: RawFd) -> bool {
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; `waiting` is writable.
        if cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) }).is_err() {
            return false;
        }
        let read = self.written.saturating_sub(u64::try_from(waiting).unwrap_or(u64::MAX));
        while let Some(&(end, slots)) = self.unread.front() {
            if end > read {
                break;
            }
            self.unread.pop_front();
            self.slots -= slots;
        }
        waiting == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// A real pipe: (read end, write end).
    fn pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned by nobody else.
        unsafe {
            use std::os::fd::FromRawFd;
            (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1]))
        }
    }

    #[test]
    fn writes_the_reader_finished_give_their_slots_back() {
        let (mut reader, mut writer) = pipe();
        let mut room = PipeRoom::new(64 * 1024);
        for _ in 0..3 {
            writer.write_all(&[b'x'; 10_000]).unwrap();
            room.wrote(10_000);
        }
        assert_eq!(room.surely_free(), 64 * 1024 - 9 * PAGE);
        // Still unread: nothing is freed by asking.
        assert!(!room.ask(writer.as_raw_fd()));
        assert_eq!(room.surely_free(), 64 * 1024 - 9 * PAGE);
        // The first write read, and part of the second: its slots only.
        let mut buf = vec![0; 15_000];
        reader.read_exact(&mut buf).unwrap();
        assert!(!room.ask(writer.as_raw_fd()));
        assert_eq!(room.surely_free(), 64 * 1024 - 6 * PAGE);
        // All read: empty, every slot free.
        reader.read_exact(&mut vec![0; 15_000]).unwrap();
        assert!(room.ask(writer.as_raw_fd()));
        assert_eq!(room.surely_free(), 64 * 1024);
    }

    #[test]
    fn what_it_says_is_free_is_taken_whole_by_a_nonblocking_write() {
        // The bound against the kernel: write until the pipe refuses, with
        // the reader taking odd amounts in between; every write that the
        // room said would fit must go in whole.
        let (mut reader, writer) = pipe();
        for fd in [reader.as_raw_fd(), writer.as_raw_fd()] {
            // SAFETY: plain fcntl calls on an open descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
        }
        // SAFETY: as above.
        let capacity = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_GETPIPE_SZ) } as usize;
        let mut room = PipeRoom::new(capacity);
        let mut seed = 0x9e37_79b9_u32;
        let mut next = |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            1 + seed as usize % bound
        };
        let mut whole = 0;
        for _ in 0..2000 {
            room.ask(writer.as_raw_fd());
            let len = next(3 * PAGE);
            if room.surely_free() >= len {
                let bytes = vec![b'y'; len];
                // SAFETY: the pointer and length describe `bytes`.
                let n = unsafe { libc::write(writer.as_raw_fd(), bytes.as_ptr().cast(), len) };
                assert_eq!(n, len as isize, "a write the room said fits was cut or refused");
                room.wrote(len);
                whole += 1;
            }
            let mut buf = vec![0; next(2 * PAGE)];
            let _ = reader.read(&mut buf);
        }
        assert!(whole > 100, "too few writes tried: {whole}");
    }
}
