//! The line-counting sink: reads a server's stdout and notes when the last
//! expected line has arrived.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::clock::now_ns;

/// How long the output may stay silent before a run is declared stuck.
const STALL_MS: libc::c_int = 10_000;

/// Reads `fd` until `lines` newlines have come; returns the
/// [`crate::clock`] time at which the last one was read.
pub fn read_lines(fd: BorrowedFd<'_>, lines: u64) -> io::Result<u64> {
    read(fd, lines, None)
}

/// [`read_lines`], keeping what was read in `kept`.
pub fn read_lines_into(fd: BorrowedFd<'_>, lines: u64, kept: &mut Vec<u8>) -> io::Result<u64> {
    read(fd, lines, Some(kept))
}

fn read(fd: BorrowedFd<'_>, lines: u64, mut kept: Option<&mut Vec<u8>>) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen = 0u64;
    while seen < lines {
        wait_readable(fd)?;
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return Err(io::Error::other(format!("output ended after {seen} of {lines} lines"))),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => {
                let data = &buf[..n as usize];
                seen += count_newlines(data);
                if let Some(kept) = kept.as_deref_mut() {
                    kept.extend_from_slice(data);
                }
            }
        }
    }
    Ok(now_ns())
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b == b'\n')).sum()
}

fn wait_readable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut pollfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: `pollfd` is one valid element for the duration of the call.
        match unsafe { libc::poll(&mut pollfd, 1, STALL_MS) } {
            0 => return Err(io::Error::new(io::ErrorKind::TimedOut, "no output for 10 s")),
            n if n > 0 => return Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}
