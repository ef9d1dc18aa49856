//! Runs a command, prints its stdout lines as they come, prints `tick` every
//! 100 ms meanwhile (to stderr), and exits with the command's exit code as a
//! shell gives it (`128 + N` for a command that signal `N` ended).
//!
//! `cargo run -p reactor --example child -- sh -c 'echo one; sleep 0.3; echo two; exit 3'`

use std::io;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use reactor::sources::Child;
use reactor::Reactor;

fn main() -> io::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: child PROGRAM [ARG...]"));
    };
    let mut reactor = Reactor::new()?;
    reactor.every(Duration::from_millis(100), |_| eprintln!("tick"));
    Child::spawn(Command::new(program).args(rest).stdout(Stdio::piped()))?
        .on_stdout(64 * 1024, |line, _| println!("{}", String::from_utf8_lossy(line)))
        // After the exit and the last line, whatever order they came in.
        .on_exit(|status, ctx| {
            println!("exited: {status}");
            ctx.exit(Child::shell_code(status));
        })
        .register(&mut reactor)?;
    reactor.run()?;
    Ok(ExitCode::from(reactor.exit_code().unwrap_or(1) as u8))
}
