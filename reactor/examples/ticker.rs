//! Timers and before-wait hooks: a periodic timer prints `tick 1`, `tick 2`, ...;
//! a one-shot timer stops the loop after N ticks (argv[1], default 5). Handlers
//! only append to a buffer; a hook writes it out once per round, before the wait.
//!
//! `cargo run -p reactor --example ticker -- 3`

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::Timer;
use reactor::Reactor;

const PERIOD: Duration = Duration::from_millis(200);

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "5".into());
    let n: u32 = arg
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("tick count {arg:?}: {e}")))?;
    let out = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new()?;

    let (sink, mut ticks) = (out.clone(), 0);
    reactor.register(Timer::every(PERIOD, move |expirations, _| {
        // More than one expiration if the loop was late: count every one.
        for _ in 0..expirations {
            ticks += 1;
            sink.borrow_mut().extend_from_slice(format!("tick {ticks}\n").as_bytes());
        }
    })?)?;
    // Half a period after the n-th tick. Should both arrive in one batch, the stop
    // still lets the round finish, so the n-th tick is printed either way.
    let sink = out.clone();
    reactor.register(Timer::once(PERIOD * n + PERIOD / 2, move |_, ctx| {
        sink.borrow_mut().extend_from_slice(format!("stopping after {n} ticks\n").as_bytes());
        ctx.stop(); // the loop finishes this round, then shuts every handler down
    })?)?;

    // One write per round, however many handlers wrote. A hook cannot return an
    // error, so it keeps it for later and stops the loop.
    let (sink, failed) = (out.clone(), Rc::new(Cell::new(None)));
    let failure = failed.clone();
    reactor.before_wait(move |ctx| {
        if let Err(e) = write_out(&sink) {
            failure.set(Some(e));
            ctx.stop();
        }
    });
    reactor.run()?;
    match failed.take() {
        Some(e) => Err(e),
        // The hooks do not run after the last round: write out what it left.
        None => write_out(&out),
    }
}

fn write_out(buf: &RefCell<Vec<u8>>) -> io::Result<()> {
    let mut buf = buf.borrow_mut();
    let mut stdout = io::stdout().lock();
    stdout.write_all(&buf)?;
    buf.clear();
    stdout.flush()
}
