//! A watchdog of heartbeats: runs a command that must print a line at least
//! every MILLIS ms, and passes its lines on. One that falls silent (hung, or
//! stopped with SIGSTOP) is ended (SIGTERM, then SIGKILL after 1 s) and
//! started again, whatever its status; so is one that exits. At most 5
//! restarts within a minute, then the watchdog exits with the last code.
//!
//! `cargo run -p reactor --example watchdog -- 300 sh -c 'while :; do echo alive; sleep 0.1; done'`

use std::io;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use reactor::sources::{AtShutdown, Child, Restart, Supervisor};
use reactor::Reactor;

fn main() -> io::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(millis), Some(program)) = (args.first().and_then(|ms| ms.parse().ok()), args.get(1)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: watchdog MILLIS PROGRAM [ARG...]"));
    };
    let mut command = Command::new(program);
    command.args(&args[2..]).stdout(Stdio::piped());
    let mut reactor = Reactor::new()?;
    let ending = AtShutdown::Signal(libc::SIGTERM, Duration::from_secs(1));
    Supervisor::new(move |_run| Ok(Child::spawn(&mut command)?.at_shutdown(ending).on_stdout(1024, print)))
        .watchdog(Duration::from_millis(millis))
        .restart(Restart::Always)
        .backoff(Duration::from_millis(50), 2.0, Duration::from_secs(1))
        .on_start(|(run, child), _| println!("run {run}: pid {}", child.id()))
        .on_exit(|(run, status), _| println!("run {run}: {status}"))
        .on_done(|(_, status), ctx| ctx.exit(Child::shell_code(status)))
        .register(&mut reactor)?;
    reactor.run()?;
    Ok(ExitCode::from(reactor.exit_code().unwrap_or(1) as u8))
}

fn print(line: &[u8], _: &mut reactor::Context) {
    println!("{}", String::from_utf8_lossy(line));
}
