//! How events reach handlers: registering and removing handlers from inside
//! a handler, the interest modes (level, edge, oneshot), fairness between a
//! flood and a quiet source, and descriptors that epoll refuses.

mod util;

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use reactor::{Interest, Reactor, Token};
use util::{
    doorbell, drain, eventfd, expect_no_events, line_journal, pipe, ring, run_until, socketpair, try_write,
    write, Journal, Probe, TempDir, DEADLINE,
};

#[test]
fn handler_registered_from_on_ready_is_started_at_once_and_then_served() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (c_fd, c_bell) = doorbell();
    let mut newcomer = Some(Probe::new("c", c_fd, &journal).on_ready(|fd, _, _| {
        drain(fd);
        Ok(())
    }));
    let registered = Rc::new(Cell::new(None));
    let (a_fd, a_bell) = doorbell();
    let a = Probe::new("a", a_fd, &journal).on_ready({
        let registered = registered.clone();
        move |fd, _, ctx| {
            drain(fd);
            if let Some(c) = newcomer.take() {
                registered.set(Some(ctx.register(c)?));
            }
            Ok(())
        }
    });
    reactor.register(a).unwrap();

    ring(&a_bell);
    reactor.run_once(Some(DEADLINE)).unwrap();
    let c = registered.get().expect("a registered c");
    assert!(reactor.contains(c));
    assert_eq!(journal.entries(), ["a: start", "a: ready", "c: start"]);

    ring(&c_bell);
    reactor.run_once(Some(DEADLINE)).unwrap();
    assert_eq!(journal.entries(), ["a: start", "a: ready", "c: start", "c: ready"]);
}

#[test]
fn handler_that_removes_itself_is_shut_down_before_the_next_event_of_the_batch() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (a_fd, a_bell) = doorbell();
    // `a` never drains its eventfd: only its removal keeps it from being called again.
    let a = reactor
        .register(Probe::new("a", a_fd, &journal).on_ready(|_, _, ctx| {
            ctx.remove_self();
            Ok(())
        }))
        .unwrap();
    let (b_fd, b_bell) = doorbell();
    reactor
        .register(Probe::new("b", b_fd, &journal).on_ready(|fd, _, _| {
            drain(fd);
            Ok(())
        }))
        .unwrap();

    ring(&a_bell);
    ring(&b_bell);
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 2);
    assert_eq!(journal.entries(), ["a: start", "b: start", "a: ready", "a: shutdown", "b: ready"]);
    assert!(!reactor.contains(a));
    assert!(!reactor.remove(a), "a removed handler cannot be removed twice");

    expect_no_events(&mut reactor);
    drop(reactor);
    assert_eq!(journal.count("a: shutdown"), 1);
}

#[test]
fn handler_removed_earlier_in_the_batch_is_not_called_and_its_descriptor_is_closed() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let victim = Rc::new(Cell::new(None::<Token>));
    let (a_fd, a_bell) = doorbell();
    let a = Probe::new("a", a_fd, &journal).on_ready({
        let victim = victim.clone();
        move |fd, _, ctx| {
            drain(fd);
            assert!(ctx.remove(victim.get().expect("b is registered")));
            Ok(())
        }
    });
    reactor.register(a).unwrap();
    let (b_read, b_write) = pipe();
    victim.set(Some(reactor.register(Probe::new("b", b_read, &journal)).unwrap()));

    // a's event comes first in the batch, b's second.
    ring(&a_bell);
    write(&b_write, b"x");
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 2);
    assert_eq!(journal.entries(), ["a: start", "b: start", "a: ready", "b: shutdown"]);
    assert_eq!(reactor.len(), 1);
    let err = try_write(&b_write, b"x").expect_err("b's read end is closed");
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
}

#[test]
fn level_triggered_handler_is_called_every_round_until_drained() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (fd, bell) = doorbell();
    reactor.register(Probe::new("level", fd, &journal)).unwrap();

    ring(&bell);
    for round in 1..=3 {
        assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
        assert_eq!(journal.count("level: ready"), round);
    }
    drain(&bell);
    expect_no_events(&mut reactor);
    assert_eq!(journal.count("level: ready"), 3);
}

#[test]
fn edge_triggered_handler_is_told_once_per_change() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (fd, bell) = doorbell();
    let edge = Probe::new("edge", fd, &journal).with_interest(Interest::READABLE.edge());
    reactor.register(edge).unwrap();

    ring(&bell);
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    // Still readable (nobody drained it), but nothing changed: no new report.
    expect_no_events(&mut reactor);
    assert_eq!(journal.count("edge: ready"), 1);

    ring(&bell);
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    assert_eq!(journal.count("edge: ready"), 2);
}

#[test]
fn oneshot_handler_is_told_once_until_set_interest_rearms_it() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (fd, bell) = doorbell();
    let once = Interest::READABLE.oneshot();
    let token = reactor.register(Probe::new("oneshot", fd, &journal).with_interest(once)).unwrap();

    ring(&bell);
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    expect_no_events(&mut reactor);
    ring(&bell);
    expect_no_events(&mut reactor);
    assert_eq!(journal.count("oneshot: ready"), 1);

    reactor.set_interest(token, once).unwrap();
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    expect_no_events(&mut reactor);
    assert_eq!(journal.count("oneshot: ready"), 2);
}

#[test]
fn set_interest_for_a_removed_handler_is_not_found() {
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.register(Probe::new("gone", eventfd(), &Journal::new())).unwrap();
    assert!(reactor.remove(token));
    let err = reactor.set_interest(token, Interest::READABLE).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn quiet_source_is_served_in_the_round_it_becomes_ready_despite_a_flood() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    // The flood is always readable. Should the reactor keep calling a ready
    // handler within one round, the flood dries up after 100 calls, so that
    // the test fails on the count below instead of hanging.
    let (flood_fd, flood_bell) = doorbell();
    let calls = Rc::new(Cell::new(0));
    let flood = Probe::new("flood", flood_fd, &journal).on_ready({
        let calls = calls.clone();
        move |fd, _, _| {
            calls.set(calls.get() + 1);
            if calls.get() == 100 {
                drain(fd);
            }
            Ok(())
        }
    });
    reactor.register(flood).unwrap();
    let (quiet, quiet_peer) = socketpair();
    reactor.register(line_journal("quiet", quiet, 64, &journal)).unwrap();

    ring(&flood_bell);
    for _ in 0..5 {
        reactor.run_once(Some(DEADLINE)).unwrap();
    }
    assert_eq!(journal.count("flood: ready"), 5);

    for round in 0..3 {
        journal.clear();
        write(&quiet_peer, format!("ping {round}\n").as_bytes());
        reactor.run_once(Some(DEADLINE)).unwrap();
        let mut seen = journal.entries();
        seen.sort();
        assert_eq!(seen, ["flood: ready".to_owned(), format!("quiet: ping {round}")], "one round");
    }
}

#[test]
fn regular_file_is_refused_as_unpollable_and_handed_back_still_open() {
    let dir = TempDir::new("unpollable");
    let path = dir.path().join("input");
    std::fs::write(&path, "one\ntwo").unwrap();
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();

    let fd = OwnedFd::from(File::open(&path).unwrap());
    let err = reactor.register(line_journal("file", fd, 64, &journal)).expect_err("epoll refuses files");
    assert!(err.is_unpollable(), "{err}");
    assert!(reactor.is_empty());

    reactor.register(err.handler.for_any_fd().unwrap()).expect("the descriptor is still open");
    run_until(&mut reactor, "the end of the file", |reactor| reactor.is_empty());
    assert_eq!(journal.entries(), ["file: one", "file: two", "file: closed"]);
}

#[test]
fn dev_null_is_refused_as_unpollable_and_handed_back_still_open() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();

    let fd = OwnedFd::from(File::open("/dev/null").unwrap());
    let err = reactor.register(line_journal("null", fd, 64, &journal)).expect_err("epoll refuses /dev/null");
    assert!(err.is_unpollable(), "{err}");
    assert!(reactor.is_empty());

    reactor.register(err.handler.for_any_fd().unwrap()).expect("the descriptor is still open");
    run_until(&mut reactor, "the end of /dev/null", |reactor| reactor.is_empty());
    assert_eq!(journal.entries(), ["null: closed"]);
}
