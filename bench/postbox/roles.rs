//! The parts this binary plays as a child of the conductor.
//!
//! The workers share one protocol with [`crate::children::Worker`]: set up,
//! print `ready`, wait for the end of stdin (the go), work, print
//! `START END` in [`crate::clock`] nanoseconds, exit.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use crate::clock::now_ns;
use crate::queue::{self, Queue};
use crate::{latency, mio_server};

/// Every TCP line is this long, its newline included.
pub const LINE_LEN: usize = 64;

/// Runs the role named by `args[0]` with the rest of `args`.
pub fn run(args: &[String]) -> ExitCode {
    let result = match args {
        [role, rest @ ..] if role == "mio-server" => return mio_server::main(rest),
        [role, name, count, size] if role == "sender" => sender(name, number(count), number(size) as usize),
        [role, addr, connections, lines] if role == "tcp-client" => {
            tcp_client(address(addr), number(connections) as usize, number(lines))
        }
        [role, name, count, rate] if role == "paced-sender" => {
            latency::paced_sender(name, number(count), number(rate))
        }
        [role, addr, count, rate] if role == "paced-tcp" => {
            latency::paced_tcp(address(addr), number(count), number(rate))
        }
        [role, addr, connections] if role == "tcp-idle" => {
            tcp_idle(address(addr), number(connections) as usize)
        }
        _ => panic!("unknown role {args:?}"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench {}: {e}", args[0]);
            ExitCode::FAILURE
        }
    }
}

fn number(arg: &str) -> u64 {
    arg.parse().expect("role arguments are numbers")
}

fn address(arg: &str) -> SocketAddr {
    arg.parse().expect("role argument is a socket address")
}

/// Sends `count` messages of `size` bytes, blocking while the queue is full.
fn sender(name: &str, count: u64, size: usize) -> io::Result<()> {
    let queue = Queue::open_to_send(name)?;
    let message = queue::message(size);
    wait_for_go()?;
    let start = now_ns();
    for _ in 0..count {
        queue.send(&message)?;
    }
    report(start, now_ns())
}

/// Writes `lines` lines over `connections` connections, round-robin, a few
/// kilobytes per connection at a time, so that they are all busy at once.
fn tcp_client(addr: SocketAddr, connections: usize, lines: u64) -> io::Result<()> {
    let mut streams = connect(addr, connections)?;
    let per_connection = lines / connections as u64;
    let lines_per_write = per_connection.min(64);
    let chunk = tcp_lines(lines_per_write as usize);
    wait_for_go()?;
    let start = now_ns();
    let mut written = 0;
    while written < per_connection {
        let n = lines_per_write.min(per_connection - written) as usize;
        for stream in &mut streams {
            stream.write_all(&chunk[..n * LINE_LEN])?;
        }
        written += n as u64;
    }
    let end = now_ns();
    report(start, end)
}

/// Opens `connections` connections, writes one line on each (so the server
/// shows it has them all), then holds them, idle, until the go.
fn tcp_idle(addr: SocketAddr, connections: usize) -> io::Result<()> {
    let mut streams = connect(addr, connections)?;
    let line = tcp_lines(1);
    for stream in &mut streams {
        stream.write_all(&line)?;
    }
    wait_for_go()?;
    report(0, 0)
}

fn connect(addr: SocketAddr, connections: usize) -> io::Result<Vec<TcpStream>> {
    (0..connections).map(|_| TcpStream::connect(addr)).collect()
}

/// `count` lines of [`LINE_LEN`] printable bytes each.
fn tcp_lines(count: usize) -> Vec<u8> {
    let mut line = queue::message(LINE_LEN - 1);
    line.push(b'\n');
    line.repeat(count)
}

/// Says `ready`, then waits until the conductor closes our stdin.
pub fn wait_for_go() -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(b"ready\n")?;
    stdout.flush()?;
    io::stdin().read_to_end(&mut Vec::new())?;
    Ok(())
}

/// Reports when the work started and ended, in [`crate::clock`] nanoseconds.
pub fn report(start: u64, end: u64) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{start} {end}")?;
    stdout.flush()
}
