//! A supervisor: runs a command, passes its lines on, and starts it again
//! each time it fails, after 100 ms, 200 ms, 400 ms... at most 2 s; gives up
//! after 3 restarts within a minute. Ctrl-C or SIGTERM stops the command
//! gracefully (SIGTERM, 2 s, SIGKILL); the command dies with the supervisor
//! even if that is killed. Exits with the last run's code, as a shell says it.
//!
//! `cargo run -p reactor --example supervisor -- sh -c 'echo working; sleep 1; exit 3'`

use std::io;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use reactor::sources::{Child, Signal, SignalFd, Supervisor};
use reactor::Reactor;

fn main() -> io::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: supervisor PROGRAM [ARG...]"));
    }
    let mut reactor = Reactor::new()?;
    // Stopped by a signal: 128 + its number, whatever the last run's end says (the first exit wins).
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |signal, ctx| ctx.exit(128 + signal))?)?;
    Supervisor::new(move |_run| {
        let mut command = Command::new(&args[0]);
        command.args(&args[1..]).stdout(Stdio::piped());
        let child = Child::spawn(Child::die_with_parent(&mut command, libc::SIGKILL))?;
        Ok(child.on_stdout(64 * 1024, |line, _| println!("{}", String::from_utf8_lossy(line))))
    })
    .backoff(Duration::from_millis(100), 2.0, Duration::from_secs(2))
    .limit(3, Duration::from_secs(60))
    .on_start(|(run, child), _| println!("run {run}: started, pid {}", child.id()))
    .on_exit(|(run, status), _| println!("run {run}: {status}"))
    .on_done(|(runs, status), ctx| {
        println!("done after {runs} runs");
        ctx.exit(Child::shell_code(status));
    })
    .register(&mut reactor)?;
    reactor.run()?;
    Ok(ExitCode::from(reactor.exit_code().unwrap_or(1) as u8))
}
