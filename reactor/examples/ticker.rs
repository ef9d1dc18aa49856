//! Timers and a before-wait hook: `Context::every` prints `tick 1`, `tick 2`,
//! ...; `Context::after` stops the loop after N ticks (argv[1], default 5).
//! Timers only append to a buffer; a hook writes it out once per round.
//!
//! `cargo run -p reactor --example ticker -- 3`

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

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
    // A late loop skips missed ticks rather than bunching them.
    reactor.every(PERIOD, move |_| {
        ticks += 1;
        sink.borrow_mut().extend_from_slice(format!("tick {ticks}\n").as_bytes());
    });
    // Half a period after the n-th tick; the timers run in deadline order.
    let sink = out.clone();
    reactor.after(PERIOD * n + PERIOD / 2, move |ctx| {
        sink.borrow_mut().extend_from_slice(format!("stopping after {n} ticks\n").as_bytes());
        ctx.stop(); // the loop finishes this round, then shuts every handler down
    });
    // One write per round, however many callbacks wrote. A hook cannot return
    // an error, so it keeps it for later and stops the loop.
    let (sink, failed) = (out.clone(), Rc::new(Cell::new(None)));
    let failure = failed.clone();
    reactor.before_wait(move |ctx| {
        if let Err(e) = write_out(&sink) {
            failure.set(Some(e));
            ctx.stop();
        }
    });
    reactor.run()?;
    // The hooks do not run after the last round: write out what it left.
    failed.take().map_or_else(|| write_out(&out), Err)
}

fn write_out(buf: &RefCell<Vec<u8>>) -> io::Result<()> {
    let mut buf = buf.borrow_mut();
    let mut stdout = io::stdout().lock();
    stdout.write_all(&buf)?;
    buf.clear();
    stdout.flush()
}
