//! A job dispatcher with workers that crash: each line of stdin is a job,
//! given to a worker of its own (this program, run as `--worker JOB RUN`).
//! A worker that crashes has its job given to a new one after a back-off,
//! at most twice; here every fourth job's first worker calls `abort`.
//! Prints each reply, and exits with how many jobs failed for good once
//! stdin has ended and every job is done.
//!
//! `seq 10 | cargo run -p reactor --example dispatcher`

use std::cell::Cell;
use std::io;
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::{Child, LineReader, Supervisor};
use reactor::Reactor;

fn main() -> io::Result<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, job, run] = &args[..] {
        if flag == "--worker" && job.parse::<u32>().is_ok_and(|n| n % 4 == 0) && run == "1" {
            std::process::abort();
        }
        println!("job {job} done by worker {run}, pid {}", std::process::id());
        return Ok(ExitCode::SUCCESS);
    }
    let (mut reactor, exe, failed) = (Reactor::new()?, std::env::current_exe()?, Rc::new(Cell::new(0)));
    let lost = failed.clone();
    let stdin = io::stdin().as_fd().try_clone_to_owned()?;
    reactor.register(LineReader::new(stdin, 1024, move |line, ctx| {
        let (job, exe, lost) = (String::from_utf8_lossy(line).into_owned(), exe.clone(), lost.clone());
        let name = job.clone();
        let spawned = Supervisor::new(move |run| {
            let mut worker = Command::new(&exe);
            worker.args(["--worker", &job, &run.to_string()]).stdout(Stdio::piped());
            Ok(Child::spawn(&mut worker)?
                .on_stdout(1024, |reply, _| println!("{}", String::from_utf8_lossy(reply))))
        })
        .backoff(Duration::from_millis(20), 2.0, Duration::from_secs(1))
        .limit(2, Duration::from_secs(60))
        .on_exit(move |(run, status), _| println!("job {name}, worker {run}: {status}"))
        .on_done(move |(_, status), _| lost.set(lost.get() + u8::from(!status.success())))
        .register(ctx);
        spawned.map(drop).unwrap_or_else(|e| eprintln!("dispatcher: {e}"));
    }))?;
    reactor.run()?; // until stdin has ended and every job is done
    Ok(ExitCode::from(failed.get()))
}
