//! Parent and child over two pipes: the parent sends each line of its stdin to
//! a child (this same program, run with `--child`), which uppercases it; the
//! parent prints the replies. At end of stdin the parent closes the child's
//! stdin once drained, and exits when the child has.
//!
//! `printf 'hello\nworld\n' | cargo run -p reactor --example uppercase`

use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

use reactor::sources::{Child, LineReader};
use reactor::Reactor;

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        // The child: a plain blocking loop, one reply per line, flushed.
        let mut out = io::stdout().lock();
        for line in io::stdin().lock().lines() {
            writeln!(out, "{}", line?.to_uppercase())?;
            out.flush()?;
        }
        return Ok(());
    }
    let mut reactor = Reactor::new()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").stdin(Stdio::piped()).stdout(Stdio::piped());
    let child = Child::spawn(&mut command)?
        .on_stdout(64 * 1024, |reply, _| println!("{}", String::from_utf8_lossy(reply)))
        .on_exit(|status, ctx| {
            eprintln!("child {status}");
            ctx.stop();
        })
        .register(&mut reactor.context())?;
    let to_child = child.stdin().cloned().ok_or_else(|| io::Error::other("stdin not piped"))?;
    // Our stdin as an OwnedFd of our own (a dup: closing it leaves fd 0 alone).
    let stdin: OwnedFd = io::stdin().as_fd().try_clone_to_owned()?;
    let end = to_child.clone();
    let lines = LineReader::new(stdin, 64 * 1024, move |line, ctx| {
        if let Err(e) = to_child.write_line(ctx, line) {
            eprintln!("to child: {e}");
        }
    });
    reactor.register(lines.one_read_per_readiness().on_close(move |ctx| end.close_when_drained(ctx)))?;
    reactor.run()
}
