//! The postbox server: the course exercise on POSIX message queues.
//!
//! Startup creates the queue; the main loop is told by epoll when the queue,
//! stdin, a client connection or a signal has something, and prints every
//! message as one line; shutdown prints what is left, then closes and
//! removes the queue.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use log::LevelFilter;
use reactor::sources::SignalFd;
use reactor::{Handler, Reactor};
use simplelog::ColorChoice;

use server::args::{self, Command, Config};
use server::lifecycle::{Lifecycle, SharedLifecycle};
use server::output::{reader_left, Output, SharedOutput};
use server::queue::{Origin, QueueSpec, ServerQueue};
use server::stats::{Counters, StatsShm, PUBLISH_AT_LEAST_EVERY};
use server::stats_page::SOURCE_NAMES;
use server::{streams, STOP_SIGNALS};

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
        Err(e) => return e.report("server"),
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
    let mut reactor = Reactor::new()?;
    // Stopping is the reactor's stop flag, which stays raised after the
    // loop: the last write below waits for a full stdout only briefly.
    let lifecycle = Lifecycle::new(reactor.stop_flag());
    let max_line = config.message_size as usize;
    let output = Output::stdout(lifecycle.clone(), &STOP_SIGNALS, max_line);
    register_signals(&mut reactor)?;
    // From here on, however `serve` ends, dropping the reactor removes the queue.
    let (capacity, size) = register_queue(&mut reactor, config, &output, &lifecycle)?;
    // What a killed server left unwritten is printed before anything else.
    output.borrow_mut().open_journal(&config.queue, max_line.max(size as usize))?;
    // The queue is ours, so any statistics under its name are stale: replaced now.
    let stats = open_stats(config, capacity, &lifecycle);
    if let Some(listener) = streams::listen(&config.listen, config.mode, &output, max_line)? {
        log::info!("listening on {}", listener.local_addr());
        reactor.register(listener)?;
    }
    streams::register_stdin(&mut reactor, &output, max_line)?;
    end_rounds_with_output(&mut reactor, &output, &lifecycle, stats);

    log::info!("ready: queue {} ({capacity} messages of up to {size} bytes)", config.queue);
    reactor.run()?;
    drop(reactor);
    let mut output = output.borrow_mut();
    // What the shutdown printed; a closed stdout was reported already.
    let _ = judge(output.finish(), &lifecycle);
    log_summary(output.counters());
    if lifecycle.has_failed() {
        return Err(io::Error::other("output lost, or the queue failed: see above"));
    }
    Ok(())
}

/// The stop signals wait for the loop, which shuts down cleanly. Done
/// first, so that no signal can kill the server halfway through startup.
fn register_signals(reactor: &mut Reactor) -> io::Result<()> {
    reactor.register(SignalFd::new(&STOP_SIGNALS, |signal, ctx| {
        log::info!("{}: shutting down", signal_name(signal));
        ctx.stop();
    })?)?;
    Ok(())
}

/// Creates (or adopts) the queue and hands it to the reactor. Returns its
/// capacity and message size.
fn register_queue(
    reactor: &mut Reactor,
    config: &Config,
    output: &SharedOutput,
    lifecycle: &SharedLifecycle,
) -> io::Result<(i64, i64)> {
    let spec = QueueSpec {
        name: config.queue.clone(),
        max_messages: config.max_messages,
        message_size: config.message_size,
        mode: config.mode,
    };
    let (queue, origin) = ServerQueue::open(&spec, config.notify, output.clone(), lifecycle.clone())?;
    if let Origin::Adopted { waiting } = origin {
        log::warn!(
            "queue {}: existed with no server holding it (one that is gone, or another program of this user made it): adopted, {waiting} message(s) waiting",
            config.queue
        );
    }
    let sizes = (queue.max_messages(), queue.message_size());
    reactor.register(queue).map_err(|mut e| {
        // The server stops: its queue's drain, like any shutdown's, waits
        // for a full stdout only briefly.
        reactor.stop();
        e.handler.on_shutdown();
        e.error
    })?;
    Ok(sizes)
}

/// The statistics in shared memory; we own the queue, so any pair under
/// its name is stale and replaced. Without them the server still runs.
fn open_stats(config: &Config, capacity: i64, lifecycle: &SharedLifecycle) -> Option<StatsShm> {
    if !config.stats {
        return None;
    }
    StatsShm::create(&config.queue, config.mode, capacity, lifecycle.clone())
        .map_err(|e| log::warn!("statistics for queue {}: {e}; running without", config.queue))
        .ok()
}

/// The end of every round: publish the figures, then write the output. A
/// stdout whose reader left stops the server cleanly; another write error
/// stops it too, and fails the run.
fn end_rounds_with_output(
    reactor: &mut Reactor,
    output: &SharedOutput,
    lifecycle: &SharedLifecycle,
    mut stats: Option<StatsShm>,
) {
    if stats.is_some() {
        // A round that publishes, should nothing else wake the loop.
        reactor.every(PUBLISH_AT_LEAST_EVERY, |_| {});
    }
    let output = output.clone();
    let lifecycle = lifecycle.clone();
    reactor.before_wait(move |ctx| {
        let mut out = output.borrow_mut();
        if let Some(stats) = &mut stats {
            stats.publish(out.counters());
        }
        // The error was logged by the flush that met it.
        if judge(out.flush(), &lifecycle).is_err() && !ctx.is_stopping() {
            log::info!("no more output: shutting down");
            ctx.stop();
        }
    });
}

/// How a write of the output went (a round's, or the last one). A reader
/// that went away is news, not a failure; any other error fails the run.
fn judge(written: io::Result<()>, lifecycle: &Lifecycle) -> io::Result<()> {
    written.inspect_err(|e| {
        if !reader_left(e) {
            lifecycle.mark_failed();
        }
    })
}

/// One line at exit: how many messages each source delivered, and how many
/// lines were printed.
fn log_summary(counters: &Counters) {
    let figures: Vec<String> = SOURCE_NAMES
        .iter()
        .zip(&counters.sources)
        .map(|(name, source)| format!("{name} {}", source.messages))
        .collect();
    log::info!("messages received: {}", figures.join(", "));
    let replayed = match counters.lines_replayed {
        0 => String::new(),
        n => format!(", and {n} replayed from the journal"),
    };
    let mut unprinted = Vec::new();
    if counters.lines_kept > 0 {
        unprinted.push(format!("{} kept in the journal for the next server", counters.lines_kept));
    }
    if counters.lines_dropped > 0 {
        unprinted.push(format!("{} dropped", counters.lines_dropped));
    }
    if unprinted.is_empty() {
        log::info!("lines printed: {}{replayed}", counters.lines_printed);
    } else {
        log::warn!(
            "lines printed: {} of {} ({}: stdout closed or full){replayed}",
            counters.lines_printed,
            counters.received(),
            unprinted.join(", ")
        );
    }
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
