//! A TCP echo server: `Listener` accepts, `SignalFd` stops the loop on Ctrl-C or
//! SIGTERM, and `Echo`, a handler written by hand, replies through a `Writer`.
//!
//! `cargo run -p reactor --example echo -- 127.0.0.1:7777`, then `nc 127.0.0.1 7777`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use reactor::sources::{Listener, Signal, SignalFd, Writer, WriterHandle};
use reactor::{Context, Handler, Reactor, Readiness};

/// One client, and a `Writer` on a `dup` of its socket for the replies.
struct Echo {
    client: TcpStream,
    replies: Option<WriterHandle>,
}

impl Handler for Echo {
    fn fd(&self) -> BorrowedFd<'_> {
        self.client.as_fd()
    }
    fn name(&self) -> &str {
        "echo"
    }
    fn on_start(&mut self, ctx: &mut Context) -> io::Result<()> {
        let me = ctx.current().ok_or_else(|| io::Error::other("started outside the loop"))?;
        let writer = Writer::new(self.client.try_clone()?, 256 * 1024)?
            .on_drain(move |ctx| drop(ctx.resume(me))) // after a refusal
            .on_error(move |_, ctx| _ = ctx.remove(me)); // the client is gone: paused, we would not know
        writer.register(ctx).map(|out| self.replies = Some(out))
    }
    /// Bytes leave the socket only once the writer took them: back-pressure.
    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let (Some(out), Some(me)) = (&self.replies, ctx.current()) else { return Ok(()) };
        let mut buf = [0; 16 * 1024];
        match self.client.peek(&mut buf) {
            Ok(0) => ctx.remove_self(), // end of file
            Ok(n) => match out.write(ctx, &buf[..n]) {
                Ok(()) => self.client.read_exact(&mut buf[..n])?, // consume what was taken
                Err(e) if e.kind() == ErrorKind::WouldBlock => ctx.pause(me)?,
                Err(e) => return Err(e),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => {} // readiness is a hint
            Err(e) => return Err(e),                          // the reactor logs it and removes us
        }
        Ok(())
    }
    fn on_remove(&mut self, ctx: &mut Context) {
        self.replies.take().inspect(|out| out.close_when_drained(ctx)); // then the client sees EOF
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
