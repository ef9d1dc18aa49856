//! Sockets as a rude client uses them.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Resets a TCP connection: `SO_LINGER` 0 makes the close send RST, not FIN.
pub fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the socket is open; `linger` is a valid option value of the size given.
    let res = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(res, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}
