//! The life of a reactor and its handlers: start, rounds, stop, shutdown in
//! reverse order exactly once (also on drop and on panic), errors that remove
//! one handler only, and how long one round waits.

mod util;

use std::cell::Cell;
use std::io;

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::Reactor;
use util::{
    doorbell, drain, eventfd, expect_no_events, pipe, ring, within_deadline, Journal, Probe, DEADLINE,
};

#[test]
fn on_start_runs_once_when_the_loop_first_runs() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    reactor.register(Probe::new("a", eventfd(), &journal)).unwrap();
    assert!(journal.entries().is_empty(), "not started before the loop runs");

    reactor.run_once(Some(Duration::ZERO)).unwrap();
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(journal.entries(), ["a: start"]);
}

#[test]
fn shutdown_runs_once_per_handler_last_registered_first() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        let (a_fd, a_bell) = doorbell();
        let mut newcomer = Some(Probe::new("c", eventfd(), &journal));
        let a = Probe::new("a", a_fd, &journal).on_ready(move |fd, _, ctx| {
            drain(fd);
            if let Some(c) = newcomer.take() {
                ctx.register(c)?;
            }
            Ok(())
        });
        reactor.register(a).unwrap();
        let (b_fd, b_bell) = doorbell();
        reactor
            .register(Probe::new("b", b_fd, &journal).on_ready(|_, _, ctx| {
                ctx.stop();
                Ok(())
            }))
            .unwrap();
        let d = reactor.register(Probe::new("d", eventfd(), &journal)).unwrap();
        assert!(reactor.remove(d));

        // a registers c, then b asks to stop: all in one round.
        ring(&a_bell);
        ring(&b_bell);
        reactor.run().unwrap();
        assert!(reactor.is_empty());
        assert_eq!(
            journal.ending_with(": shutdown"),
            ["d: shutdown", "c: shutdown", "b: shutdown", "a: shutdown"]
        );

        drop(reactor);
        assert_eq!(journal.ending_with(": shutdown").len(), 4, "nobody is shut down twice");
    });
}

#[test]
fn stop_lets_the_round_finish_then_run_returns() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        let (a_fd, a_bell) = doorbell();
        reactor
            .register(Probe::new("a", a_fd, &journal).on_ready(|_, _, ctx| {
                ctx.stop();
                Ok(())
            }))
            .unwrap();
        let (b_fd, b_bell) = doorbell();
        reactor.register(Probe::new("b", b_fd, &journal)).unwrap();

        ring(&a_bell);
        ring(&b_bell);
        reactor.run().unwrap();
        assert_eq!(
            journal.entries(),
            ["a: start", "b: start", "a: ready", "b: ready", "b: shutdown", "a: shutdown"]
        );
    });
}

#[test]
fn stop_from_a_hook_ends_the_round_before_waiting() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (fd, bell) = doorbell();
    reactor.register(Probe::new("a", fd, &journal)).unwrap();
    let rounds = Rc::new(Cell::new(0));
    reactor.before_wait({
        let rounds = rounds.clone();
        move |ctx| {
            rounds.set(rounds.get() + 1);
            if rounds.get() == 2 {
                ctx.stop();
            }
        }
    });

    // a stays readable: had the second round waited, it would have been called.
    ring(&bell);
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 0);
    assert!(reactor.is_stopping());
    assert_eq!(journal.count("a: ready"), 1);

    reactor.shutdown();
    assert!(reactor.is_stopping(), "the run is over until a new one begins");
    assert!(reactor.is_empty());
    assert_eq!(journal.count("a: shutdown"), 1);
}

#[test]
fn run_returns_once_no_handler_is_left() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        let (fd, bell) = doorbell();
        let leaver = Probe::new("a", fd, &journal).on_ready(|_, _, ctx| {
            ctx.remove_self();
            Ok(())
        });
        reactor.register(leaver).unwrap();

        ring(&bell);
        reactor.run().unwrap();
        assert_eq!(journal.entries(), ["a: start", "a: ready", "a: shutdown"]);
    });
}

#[test]
fn dropping_a_reactor_that_never_stopped_shuts_every_handler_down_last_first() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    for name in ["a", "b", "c"] {
        reactor.register(Probe::new(name, eventfd(), &journal)).unwrap();
    }
    reactor.run_once(Some(Duration::ZERO)).unwrap();

    drop(reactor);
    assert_eq!(
        journal.entries(),
        ["a: start", "b: start", "c: start", "c: shutdown", "b: shutdown", "a: shutdown"]
    );
}

#[test]
fn panic_in_a_handler_still_shuts_every_handler_down_once() {
    within_deadline(|| {
        let journal = Journal::new();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            // Like `main` unwinding: the reactor is dropped by the panic.
            let mut reactor = Reactor::new().unwrap();
            reactor.register(Probe::new("a", eventfd(), &journal)).unwrap();
            let (b_fd, b_bell) = doorbell();
            let b = Probe::new("b", b_fd, &journal).on_ready(|_, _, _| panic!("b fails"));
            reactor.register(b).unwrap();
            reactor.register(Probe::new("c", eventfd(), &journal)).unwrap();
            ring(&b_bell);
            reactor.run()
        }));

        assert!(outcome.is_err(), "the panic goes through run");
        assert_eq!(journal.ending_with(": shutdown"), ["b: shutdown", "c: shutdown", "a: shutdown"]);
    });
}

#[test]
fn after_a_caught_panic_the_panicked_handlers_token_removes_nothing() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (a_fd, a_bell) = doorbell();
    let a = reactor.register(Probe::new("a", a_fd, &journal).on_ready(|_, _, _| panic!("a fails"))).unwrap();
    ring(&a_bell);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| reactor.run_once(Some(DEADLINE))));
    assert!(outcome.is_err(), "the panic goes through run_once");
    assert!(!reactor.contains(a) && reactor.is_empty(), "the panicked handler's slot is gone");
    assert_eq!(journal.ending_with(": shutdown"), ["a: shutdown"]);

    // The reactor is used again. The next descriptor usually gets a's old
    // number (the lowest free one; another test's thread may take it first):
    // a stale slot would then take b out of epoll. Either way a's token
    // must name nothing.
    let (b_fd, b_bell) = doorbell();
    let b = Probe::new("b", b_fd, &journal).on_ready(|fd, _, _| {
        drain(fd);
        Ok(())
    });
    let b = reactor.register(b).unwrap();
    assert!(!reactor.remove(a), "a stale token removed a handler");
    assert!(reactor.contains(b));
    ring(&b_bell);
    reactor.run_once(Some(DEADLINE)).unwrap();
    assert_eq!(journal.count("b: ready"), 1, "b is still in epoll");
}

#[test]
fn handler_returning_an_error_is_removed_and_shut_down_while_others_go_on() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        // Neither drains its eventfd: both stay ready every round.
        let (bad_fd, bad_bell) = doorbell();
        let failing = Probe::new("bad", bad_fd, &journal).on_ready(|_, _, _| Err(io::Error::other("boom")));
        let bad = reactor.register(failing).unwrap();
        let (good_fd, good_bell) = doorbell();
        let calls = Rc::new(Cell::new(0));
        let good = Probe::new("good", good_fd, &journal).on_ready({
            let calls = calls.clone();
            move |_, _, ctx| {
                calls.set(calls.get() + 1);
                if calls.get() == 3 {
                    ctx.stop();
                }
                Ok(())
            }
        });
        reactor.register(good).unwrap();

        ring(&bad_bell);
        ring(&good_bell);
        reactor.run().expect("a handler's error does not end the loop");
        assert!(!reactor.contains(bad));
        assert_eq!(
            journal.entries(),
            [
                "bad: start",
                "good: start",
                "bad: ready",
                "bad: shutdown",
                "good: ready",
                "good: ready",
                "good: ready",
                "good: shutdown"
            ]
        );
    });
}

#[test]
fn before_wait_hooks_run_in_order_once_per_round_before_the_wait() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (fd, bell) = doorbell();
    reactor
        .register(Probe::new("a", fd, &journal).on_ready(|fd, _, _| {
            drain(fd);
            Ok(())
        }))
        .unwrap();
    // The first hook makes `a` ready: the round's wait only sees that if the
    // hook ran before it.
    reactor.before_wait({
        let journal = journal.clone();
        move |_| {
            journal.push("hook 1");
            ring(&bell);
        }
    });
    reactor.before_wait({
        let journal = journal.clone();
        move |_| journal.push("hook 2")
    });

    for _ in 0..3 {
        assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    }
    let round = ["hook 1", "hook 2", "a: ready"];
    let expected: Vec<&str> = std::iter::once("a: start").chain(round.repeat(3)).collect();
    assert_eq!(journal.entries(), expected);
}

#[test]
fn sub_millisecond_timeout_waits_instead_of_returning_at_once() {
    let mut reactor = Reactor::new().unwrap();
    let (idle, _writer) = pipe();
    reactor.register(Probe::new("idle", idle, &Journal::new())).unwrap();
    expect_no_events(&mut reactor);

    // Each wait of 100 µs, rounded up to epoll's 1 ms, takes at least 1 ms.
    // Rounded down to 0 it would be a poll, and thousands would fit.
    let start = Instant::now();
    let mut waits = 0;
    while start.elapsed() < Duration::from_millis(50) {
        assert_eq!(reactor.run_once(Some(Duration::from_micros(100))).unwrap(), 0);
        waits += 1;
    }
    assert!(waits <= 55, "{waits} waits of 100 µs in 50 ms: the timeout was rounded down");
}

#[test]
fn round_that_asks_to_stop_ends_with_the_hooks_before_shutdown() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        let (fd, bell) = doorbell();
        reactor
            .register(Probe::new("a", fd, &journal).on_ready(|_, _, ctx| {
                ctx.stop();
                Ok(())
            }))
            .unwrap();
        let hook_journal = journal.clone();
        reactor.before_wait(move |_| hook_journal.push("hook"));

        ring(&bell);
        reactor.run().unwrap();
        assert_eq!(journal.entries(), ["a: start", "hook", "a: ready", "hook", "a: shutdown"]);
    });
}

/// A handler that cannot start.
struct Refuses(std::os::fd::OwnedFd);

impl reactor::Handler for Refuses {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }

    fn name(&self) -> &str {
        "refuses"
    }

    fn on_ready(&mut self, _: reactor::Readiness, _: &mut reactor::Context) -> io::Result<()> {
        Ok(())
    }

    fn on_start(&mut self, _: &mut reactor::Context) -> io::Result<()> {
        Err(io::Error::other("cannot start"))
    }
}

#[test]
fn run_returns_when_every_handler_failed_to_start() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let (fd, _bell) = doorbell();
        reactor.register(Refuses(fd)).unwrap();
        reactor.run().unwrap();
        assert!(reactor.is_empty());
    });
}

#[test]
fn a_reactor_shut_down_serves_again_even_the_same_open_file() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        // The handler holds a duplicate: the open file outlives its descriptor,
        // so only the shutdown's closing of the epoll instance forgets it.
        let (fd, bell) = doorbell();
        reactor.register(Probe::new("old", fd.try_clone().unwrap(), &journal)).unwrap();
        ring(&bell);
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        reactor.shutdown();
        assert!(reactor.is_empty());

        // The same open file again, under a new handler: no EEXIST, and its
        // readiness goes to the new handler only.
        reactor
            .register(Probe::new("new", fd.try_clone().unwrap(), &journal).on_ready(|fd, _, ctx| {
                drain(fd);
                ctx.stop();
                Ok(())
            }))
            .unwrap();
        reactor.run().unwrap();
        assert_eq!(
            journal.entries(),
            ["old: start", "old: ready", "old: shutdown", "new: start", "new: ready", "new: shutdown"]
        );
    });
}
