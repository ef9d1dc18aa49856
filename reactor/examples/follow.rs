//! Prints the lines of a log file as it grows, as `tail -F` does: from its
//! start (with `--end`, only what is written from now on), through
//! truncations and rotations (the file renamed and made again at its path),
//! until Ctrl-C or SIGTERM. Nothing polls: inotify says when the file changes.
//!
//! `cargo run -p reactor --example follow -- [--end] PATH`

use std::io::{self, SeekFrom, Write};

use reactor::sources::{LineReader, Signal, SignalFd};
use reactor::Reactor;

fn main() -> io::Result<()> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let from = match args.first().and_then(|arg| arg.to_str()) {
        Some("--end") => {
            args.remove(0);
            SeekFrom::End(0)
        }
        _ => SeekFrom::Start(0),
    };
    let [path] = &args[..] else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: follow [--end] PATH"));
    };
    let mut reactor = Reactor::new()?;
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |_, ctx| ctx.stop())?)?;
    reactor.register(LineReader::follow(path, from, 64 * 1024, |line, ctx| {
        // One write per line, and a closed stdout ends the program instead of a panic.
        if let Err(e) = io::stdout().write_all(&[line, b"\n"].concat()) {
            eprintln!("stdout: {e}");
            ctx.stop();
        }
    })?)?;
    println!("following {}", path.to_string_lossy());
    reactor.run()
}
