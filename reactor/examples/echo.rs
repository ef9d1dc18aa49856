//! A TCP echo server for many clients. `Listener` accepts, `SignalFd` stops the
//! loop on Ctrl-C or SIGTERM, and `Echo` is a connection handler written by hand.
//!
//! `cargo run -p reactor --example echo -- 127.0.0.1:7777`, then `nc 127.0.0.1 7777`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use reactor::sources::{Listener, SignalFd};
use reactor::{Context, Handler, Interest, Reactor, Readiness};

/// One client. It owns its socket: the reactor closes it by dropping us.
struct Echo {
    stream: TcpStream,
    name: String,
    /// Read but not yet written back: the socket's send buffer was full.
    unsent: Vec<u8>,
}

impl Handler for Echo {
    fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// At most one read per call: level-triggered, the rest is reported next
    /// round. While bytes wait, wait for WRITABLE *instead of* READABLE, so a
    /// client that sends but never reads cannot make us buffer without bound.
    fn on_ready(&mut self, _: Readiness, ctx: &mut Context<'_>) -> io::Result<()> {
        let was_waiting = !self.unsent.is_empty();
        if !was_waiting {
            let mut buf = [0; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => ctx.remove_self(), // end of file; dropping us closes the socket
                Ok(n) => self.unsent.extend_from_slice(&buf[..n]),
                // Readiness is a hint: "nothing after all" is not an error.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e), // the reactor logs it and removes us
            }
        }
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(n) => drop(self.unsent.drain(..n)), // a partial write keeps the rest
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let waiting = !self.unsent.is_empty();
        if waiting == was_waiting {
            return Ok(()); // epoll already waits for the right thing
        }
        let interest = if waiting { Interest::WRITABLE } else { Interest::READABLE };
        ctx.current().map_or(Ok(()), |me| ctx.set_interest(me, interest))
    }
}

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr =
        arg.parse().map_err(|e| io::Error::new(ErrorKind::InvalidInput, format!("address {arg:?}: {e}")))?;
    let mut reactor = Reactor::new()?;
    // Before any thread exists: creating it blocks the signals it reads.
    reactor.register(SignalFd::new(&[libc::SIGINT, libc::SIGTERM], |_, ctx| ctx.stop())?)?;
    let listener = Listener::tcp(addr, |fd, peer| {
        Box::new(Echo { stream: TcpStream::from(fd), name: format!("{peer:?}"), unsent: Vec::new() })
    })?;
    // Port 0 lets the kernel choose: say which, for whoever started us.
    writeln!(io::stdout(), "listening on {}", listener.local_addr())?;
    io::stdout().flush()?;
    reactor.register(listener)?;
    reactor.run()
}
