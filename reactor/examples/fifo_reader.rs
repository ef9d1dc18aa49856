//! Prints the lines written into a named pipe (FIFO) by any number of writers,
//! one after another: `echo hello > PATH`. Creates the FIFO if it is missing
//! (and then removes it on exit); Ctrl-C or SIGTERM stops it.
//!
//! `cargo run -p reactor --example fifo_reader -- /tmp/fifo`

use std::io::{self, Write};
use std::path::PathBuf;

use reactor::sources::{Fifo, SignalFd};
use reactor::Reactor;

fn main() -> io::Result<()> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: fifo_reader PATH"));
    };
    let mut reactor = Reactor::new()?;
    reactor.register(SignalFd::new(&[libc::SIGINT, libc::SIGTERM], |_, ctx| ctx.stop())?)?;
    // Writers come and go: the Fifo holds a write end itself, so it never sees end
    // of file, and it removes the FIFO at shutdown if it made it.
    reactor.register(Fifo::create(&path, 0o600, 64 * 1024, |line, ctx| {
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(line).and_then(|()| stdout.write_all(b"\n")) {
            eprintln!("stdout: {e}");
            ctx.stop();
        }
    })?)?;
    println!("reading {}", path.display());
    reactor.run()
}
