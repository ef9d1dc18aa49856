//! The postbox client: opens the server's existing queue, sends, closes.
//! Also reads the server's live statistics (`--stats`) and the queue's
//! status (`--status`).

mod args;
mod journal;
mod queue;
mod stats;
mod status;
mod trust;

use std::io::{self, BufRead};
use std::process::ExitCode;
use std::time::Duration;

use args::{Command, Options};
use queue::Queue;
use server::queue_name;

fn main() -> ExitCode {
    let parsed =
        queue_name::queue_from_env().and_then(|queue| args::parse(std::env::args_os().skip(1), queue));
    let result = match parsed {
        Ok(Command::Send(options)) => send(&options),
        Ok(Command::Stats { queue, json, timeout }) => print_stats(&queue, json, timeout),
        Ok(Command::Status { queue, trusted }) => {
            status::describe(&queue, trusted).map(|text| print!("{text}"))
        }
        Ok(Command::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("client {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => return e.report("client"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the statistics; a stale or torn copy is printed too, with a
/// warning and a failing exit status.
fn print_stats(queue: &str, json: bool, timeout: Duration) -> io::Result<()> {
    let snapshot = stats::read(queue, timeout)?;
    let text = if json { stats::json(queue, &snapshot) + "\n" } else { stats::table(queue, &snapshot) };
    print!("{text}");
    match stats::warning(queue, &snapshot, timeout) {
        Some(warning) => Err(io::Error::other(warning)),
        None => Ok(()),
    }
}

/// Sends the arguments as one message, or else each line of stdin as one.
fn send(options: &Options) -> io::Result<()> {
    let queue = Queue::open(&options.queue, options.nonblock, options.trusted)?;
    send_all(&queue, options)?;
    // A server that stopped meanwhile removed the queue after its last
    // read: what was sent after that is in a queue nobody will read.
    queue.check_still_there("this client had it open")
}

/// The message of the arguments, or each line of stdin.
fn send_all(queue: &Queue, options: &Options) -> io::Result<()> {
    if let Some(message) = &options.message {
        return queue.send(message, options.priority, options.timeout);
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let message = line.strip_suffix(b"\n").unwrap_or(&line);
        queue
            .send(message, options.priority, options.timeout)
            .map_err(|e| io::Error::new(e.kind(), format!("stdin line {number}: {e}")))?;
    }
    Ok(())
}
