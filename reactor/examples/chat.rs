//! A chat room on a Unix socket: each line a client sends goes to every other
//! client. What happens to a client that does not read is one argument:
//! `pause` (the default: senders wait for it, and it is closed after 1 s
//! without progress), `drop` (its lines are dropped and counted) or
//! `disconnect`. Stops on Ctrl-C or SIGTERM and removes its socket.
//!
//! `cargo run -p reactor --example chat -- /tmp/chat.sock pause`, then
//! `nc -U /tmp/chat.sock` in two terminals.

use std::io::{self, Write};
use std::time::Duration;

use reactor::sources::{Connection, Fanout, Listener, Signal, SignalFd, SlowReader};
use reactor::Reactor;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/chat.sock".into());
    let policy = match args.next().as_deref() {
        None | Some("pause") => SlowReader::Pause(Duration::from_secs(1)),
        Some("drop") => SlowReader::Drop,
        Some("disconnect") => SlowReader::Disconnect,
        Some(other) => return Err(io::Error::other(format!("{other}: expected pause, drop or disconnect"))),
    };
    let mut reactor = Reactor::new()?;
    // Before any thread exists: creating it blocks the signals it reads.
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |_, ctx| ctx.stop())?)?;
    let room = Fanout::new(policy);
    let listener = Listener::unix_accept(&path, move |fd, _peer, ctx| {
        let to_room = room.clone();
        let conn = Connection::new(fd)?.on_line(move |line, me, ctx| to_room.send(ctx, me.token(), line));
        room.join(&conn.limit(64 * 1024).register(ctx)?);
        Ok(())
    })?;
    writeln!(io::stdout(), "listening on {}", listener.local_addr())?;
    reactor.register(listener)?;
    reactor.run()
}
