//! A TCP echo server: `Listener` accepts, `SignalFd` stops the loop on Ctrl-C or
//! SIGTERM, and `Echo`, a handler written by hand, replies through a `Writer`
//! that holds it (stops its input) while the client does not read.
//!
//! `cargo run -p reactor --example echo -- 127.0.0.1:7777`, then `nc 127.0.0.1 7777`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use reactor::sources::{Listener, Output, Signal, SignalFd, Writer};
use reactor::{Context, Handler, Reactor, Readiness};

/// One client, and a `Writer` on a `dup` of its socket for the replies.
struct Echo {
    client: TcpStream,
    replies: Option<Output>,
}

impl Handler for Echo {
    fn fd(&self) -> BorrowedFd<'_> {
        self.client.as_fd()
    }
    fn name(&self) -> &str {
        "echo"
    }
    fn on_start(&mut self, ctx: &mut Context) -> io::Result<()> {
        let me = ctx.current();
        let writer = Writer::new(self.client.try_clone()?, 256 * 1024)?
            .on_error(move |_, _, ctx| _ = me.map(|me| ctx.remove(me))); // held, we would not know
        writer.register(ctx).map(|out| self.replies = Some(out))
    }
    /// Past its limit the writer holds us (no input) until it has drained.
    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let Some(out) = &self.replies else { return Ok(()) };
        let mut buf = [0; 16 * 1024];
        match self.client.read(&mut buf) {
            Ok(0) => ctx.remove_self(), // end of file
            Ok(n) => out.write_or_pause(ctx, &buf[..n], ctx.current())?,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {} // readiness is a hint
            Err(e) => return Err(e),                          // the reactor logs it and removes us
        }
        Ok(())
    }
    fn on_remove(&mut self, ctx: &mut Context) {
        self.replies.take().inspect(|out| out.shutdown_write(ctx)); // then the client sees EOF
    }
}

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr = arg.parse().map_err(|e| io::Error::other(format!("address {arg:?}: {e}")))?;
    let mut reactor = Reactor::new()?;
    // Before any thread exists: creating it blocks the signals it reads.
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |_, ctx| ctx.stop())?)?;
    let listener =
        Listener::tcp(addr, |fd, _| Box::new(Echo { client: TcpStream::from(fd), replies: None }))?;
    writeln!(io::stdout(), "listening on {}", listener.local_addr())?; // line-buffered: sent now
    reactor.register(listener)?;
    reactor.run()
}
