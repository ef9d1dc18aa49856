//! The postbox server: the course exercise on POSIX message queues.
//!
//! Startup creates the queue; the main loop is told by epoll when the queue,
//! stdin, a client connection or a signal has something, and prints every
//! message as one line; shutdown prints what is left, then closes and
//! removes the queue.

mod args;
mod cli;
mod escape;
mod layout;
mod mq;
mod output;
mod stats;
mod streams;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use log::LevelFilter;
use reactor::sources::SignalFd;
use reactor::{Handler, Reactor};
use simplelog::ColorChoice;

use args::{Command, Config};
use mq::{MessageQueue, Origin, QueueSpec};
use output::{Output, SharedOutput};
use stats::StatsShm;

fn main() -> ExitCode {
    let config = match args::from_environment() {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("server: {e}\nTry 'server --help' for more information.");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);
    match serve(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Startup, main loop, shutdown.
fn serve(config: &Config) -> io::Result<()> {
    let output = Output::stdout(&STOP_SIGNALS);
    let max_line = config.message_size as usize;
    let mut reactor = Reactor::new()?;
    register_signals(&mut reactor, &output)?;
    // From here on, however `serve` ends, dropping the reactor removes the queue.
    let (capacity, size) = register_queue(&mut reactor, config, &output)?;
    // The queue is ours, so any statistics under its name are stale: replaced now.
    let stats = open_stats(config, capacity);
    if let Some(listener) = streams::listen(&config.listen, &output, max_line)? {
        log::info!("listening on {}", listener.local_addr());
        reactor.register(listener)?;
    }
    streams::register_stdin(&mut reactor, &output, max_line)?;
    end_rounds_with_output(&mut reactor, &output, stats);

    log::info!("ready: queue {} ({capacity} messages of up to {size} bytes)", config.queue);
    reactor.run()?;
    drop(reactor);
    let mut output = output.borrow_mut();
    log_summary(&output.counters);
    // What the shutdown printed; a closed stdout was reported already.
    let _ = output.flush();
    if output.failed {
        return Err(io::Error::other("output lost, or the queue failed: see above"));
    }
    Ok(())
}

/// The signals that stop the server cleanly: SIGINT, SIGTERM, and SIGHUP
/// (the terminal went away).
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The stop signals wait for the loop, which shuts down cleanly. Done
/// first, so that no signal can kill the server halfway through startup.
fn register_signals(reactor: &mut Reactor, output: &SharedOutput) -> io::Result<()> {
    let output = output.clone();
    reactor.register(SignalFd::new(&STOP_SIGNALS, move |signal, ctx| {
        log::info!("{}: shutting down", signal_name(signal));
        output.borrow_mut().stopping = true;
        ctx.stop();
    })?)?;
    Ok(())
}

/// Creates (or adopts) the queue and hands it to the reactor. Returns its
/// capacity and message size.
fn register_queue(reactor: &mut Reactor, config: &Config, output: &SharedOutput) -> io::Result<(i64, i64)> {
    let spec = QueueSpec {
        name: config.queue.clone(),
        max_messages: config.max_messages,
        message_size: config.message_size,
        mode: config.mode,
    };
    let (queue, origin) = MessageQueue::open(&spec, config.notify, output.clone())?;
    if let Origin::Adopted { waiting } = origin {
        log::warn!(
            "queue {}: existed with no server holding it (one that is gone, or another program made it): adopted, {waiting} message(s) waiting",
            config.queue
        );
    }
    let sizes = (queue.max_messages(), queue.message_size());
    reactor.register(queue).map_err(|mut e| {
        e.handler.on_shutdown();
        e.error
    })?;
    Ok(sizes)
}

/// The statistics in shared memory; we own the queue, so any pair under
/// its name is stale and replaced. Without them the server still runs.
fn open_stats(config: &Config, capacity: i64) -> Option<StatsShm> {
    if !config.stats {
        return None;
    }
    StatsShm::create(&config.queue, config.mode, capacity)
        .map_err(|e| log::warn!("statistics for queue {}: {e}; running without", config.queue))
        .ok()
}

/// The end of every round: publish the figures, then write the output. A
/// stdout whose reader left stops the server cleanly; another write error
/// stops it too, and fails the run.
fn end_rounds_with_output(reactor: &mut Reactor, output: &SharedOutput, mut stats: Option<StatsShm>) {
    let output = output.clone();
    reactor.before_wait(move |ctx| {
        let mut out = output.borrow_mut();
        if let Some(stats) = &mut stats {
            stats.publish(&out.counters);
        }
        // The error was logged by the flush that met it.
        if out.flush().is_err() && !out.stopping {
            log::info!("no more output: shutting down");
            out.stopping = true;
            ctx.stop();
        }
    });
}

/// One line at exit: how many messages each source delivered (printed, if
/// stdout took them).
fn log_summary(counters: &stats::Counters) {
    let figures: Vec<String> = layout::SOURCE_NAMES
        .iter()
        .zip(&counters.sources)
        .map(|(name, source)| format!("{name} {}", source.messages))
        .collect();
    log::info!("messages received: {}", figures.join(", "));
}

fn init_logging(level: LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .build();
    // Only fails if a logger is already set, which cannot happen here.
    let colors = if io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
    let _ = simplelog::TermLogger::init(level, config, simplelog::TerminalMode::Stderr, colors);
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".to_string(),
        libc::SIGTERM => "SIGTERM".to_string(),
        libc::SIGHUP => "SIGHUP".to_string(),
        other => format!("signal {other}"),
    }
}
