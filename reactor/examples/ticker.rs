//! Timers and a before-wait hook: `Context::every` prints `tick 1`, `tick 2`,
//! ...; `Context::after` stops the loop after N ticks (argv[1], default 5).
//! Timers only append to a buffer; a hook writes it out once per round, and
//! a stdout that fails ends the program with exit code 1 (`Context::exit`).
//!
//! `cargo run -p reactor --example ticker -- 3`

use std::cell::RefCell;
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
        ctx.stop(); // the round ends with the hooks, then every handler shuts down
    });
    // One write per round, however many callbacks wrote.
    reactor.before_wait(move |ctx| {
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(&out.borrow_mut().split_off(0)).and_then(|()| stdout.flush()) {
            eprintln!("ticker: stdout: {e}");
            ctx.exit(1);
        }
    });
    reactor.run()?;
    std::process::exit(reactor.exit_code().unwrap_or(0))
}
