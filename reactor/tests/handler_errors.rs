//! A handler's error is never silent: without a logger it reaches stderr,
//! with `Reactor::on_error` it reaches the program, which may stop the loop.
//!
//! Whether a logger is installed is a property of the process, and what
//! reaches stderr is only real in a process of its own: the stderr test runs
//! this test binary again, as a child, with one test selected.

use std::cell::RefCell;
use std::io;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::rc::Rc;

use reactor::sources::Fd;
use reactor::{Interest, Reactor};

/// Set in the child: run the failing reactor instead of spawning.
const CHILD: &str = "REACTOR_ERRORS_TEST_CHILD";

/// A reactor with one handler that fails at once (a socket is writable at
/// once), named `failing`, and a second that stays: `run` would wait for
/// ever, so one round is run.
fn failing_reactor() -> (Reactor, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut reactor = Reactor::new().unwrap();
    let fails = Fd::new(ours, Interest::WRITABLE, |_, _, _| Err(io::Error::other("boom")));
    reactor.register(fails.named("failing")).unwrap();
    (reactor, theirs)
}

#[test]
fn without_a_logger_a_handlers_error_goes_to_stderr() {
    if std::env::var_os(CHILD).is_some() {
        let (mut reactor, _peer) = failing_reactor();
        reactor.run().unwrap(); // returns once the failed handler is gone
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["--exact", "without_a_logger_a_handlers_error_goes_to_stderr", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed: {stderr}");
    let lines: Vec<_> = stderr.lines().filter(|l| l.contains("boom")).collect();
    assert_eq!(lines, ["failing: boom; removing it"], "stderr: {stderr}");
}

#[test]
fn on_error_gets_the_name_the_error_and_the_failing_token_and_may_stop() {
    let (mut reactor, _peer) = failing_reactor();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let errors = seen.clone();
    reactor.on_error(move |name, error, ctx| {
        errors.borrow_mut().push((
            name.to_owned(),
            error.to_string(),
            ctx.current(),
            ctx.contains(ctx.current().unwrap()),
        ));
        ctx.stop();
    });
    let (quiet, _quiet_peer) = UnixStream::pair().unwrap();
    let stays = reactor.register(Fd::new(quiet, Interest::READABLE, |_, _, _| Ok(()))).unwrap();
    reactor.run().unwrap(); // a stop, not an empty reactor: the second handler stays
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (name, error, current, contained) = &seen[0];
    assert_eq!((name.as_str(), error.as_str()), ("failing", "boom"));
    assert!(current.is_some_and(|t| t != stays) && *contained, "{seen:?}");
}
