//! A TCP echo server of bytes: `Listener` accepts, `SignalFd` stops the loop on
//! Ctrl-C or SIGTERM, and each client is an `Fd` source that reads its socket
//! and replies through a `Writer` on a `dup` of it. Past the writer's limit
//! the reader is held (reads nothing) until the client has read its replies;
//! at its end of input the replies end too (`shutdown_write`), once written.
//!
//! `cargo run -p reactor --example echo -- 127.0.0.1:7777`, then `nc 127.0.0.1 7777`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use reactor::sources::{Fd, Listener, Signal, SignalFd, Writer};
use reactor::{Interest, Reactor};

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr = arg.parse().map_err(|e| io::Error::other(format!("address {arg:?}: {e}")))?;
    let mut reactor = Reactor::new()?;
    // Before any thread exists: creating it blocks the signals it reads.
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |_, ctx| ctx.stop())?)?;
    let listener = Listener::tcp_accept(addr, |fd, _, ctx| {
        let replies = Writer::new(fd.try_clone()?, 256 * 1024)?.register(ctx)?;
        let client = Fd::new(TcpStream::from(fd), Interest::READABLE, move |client, _, ctx| {
            let mut buf = [0; 16 * 1024];
            match client.read(&mut buf) {
                Ok(0) => {
                    replies.shutdown_write(ctx); // the client sees end of file once all is written
                    ctx.remove_self();
                }
                Ok(n) => replies.write_or_pause(ctx, &buf[..n], ctx.current())?, // held while full
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}                // readiness is a hint
                Err(e) => return Err(e), // the reactor logs it and removes the client
            }
            Ok(())
        });
        ctx.register(client.named("echo")).map(drop).map_err(io::Error::from)
    })?;
    writeln!(io::stdout(), "listening on {}", listener.local_addr())?; // line-buffered: sent now
    reactor.register(listener)?;
    reactor.run()
}
