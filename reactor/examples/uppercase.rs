//! Parent and child over two pipes: the parent sends each line of its stdin to
//! a child (this same program, run with `--child`), which uppercases it; the
//! parent prints the replies, stops reading while the child's stdin is full,
//! and closes that stdin at end of its own, then exits when the child has.
//!
//! Its stdin may be anything: a terminal, a pipe, a file, `/dev/null`.
//!
//! `printf 'hello\nworld\n' | cargo run -p reactor --example uppercase`
//! `cargo run -p reactor --example uppercase < Cargo.toml`

use std::io::{self, BufRead, ErrorKind, Write};
use std::process::{Command, Stdio};

use reactor::sources::{Child, LineReader};
use reactor::Reactor;

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        for line in io::stdin().lock().lines() {
            writeln!(io::stdout(), "{}", line?.to_uppercase())?; // line-buffered: one reply per line
        }
        return Ok(());
    }
    let mut reactor = Reactor::new()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").stdin(Stdio::piped()).stdout(Stdio::piped());
    let child = Child::spawn(&mut command)?
        .on_stdout(64 * 1024, |reply, _| println!("{}", String::from_utf8_lossy(reply)))
        .on_exit(|_, ctx| ctx.stop())
        .register(&mut reactor)?;
    let to_child = child.stdin().cloned().ok_or(ErrorKind::BrokenPipe)?;
    let end = to_child.clone();
    // Stdin, whatever it is: a file or /dev/null, which epoll refuses, is read a piece per round.
    let lines = LineReader::stdin(64 * 1024, move |line, ctx| {
        // Past the child's limit, our reader is paused until its stdin drains: nothing is held here.
        let me = ctx.current().expect("a reader's callback has its token");
        if let Err(e) = to_child.write_line_or_pause(ctx, line, Some(me)) {
            eprintln!("to child: {e}");
        }
    })?;
    // At the end of our input the child's stdin closes once drained: the child sees end of file.
    reactor.register(lines.on_close(move |ctx| end.close_when_drained(ctx)))?;
    reactor.run()
}
