//! What one dispatched event costs, ours against a plain mio loop, with 1,
//! 100 and 10 000 registered handlers.
//!
//! Every handler owns an eventfd that is always readable. mio is
//! edge-triggered, so its handler must make a new edge to be called again:
//! it writes 1 to its eventfd. Ours does the same write, although
//! level-triggering would call it again without, so that both do the same
//! work: one `epoll_wait` per batch of up to 256 events, one `write` per
//! event, and the loop's own bookkeeping, which is what differs.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use reactor::{Context, Handler, Reactor, Readiness};

use crate::children::Side;
use crate::endtoend;
use crate::placement::Placement;
use crate::report::{Table, Target, Unit};
use crate::Plan;

/// The handler counts of the issue.
const HANDLERS: [usize; 3] = [1, 100, 10_000];

/// Events per wait, as in our reactor.
const BATCH: usize = 256;

pub fn workloads(plan: Plan, table: &mut Table) {
    Placement::OneCpu.apply();
    for handlers in HANDLERS {
        let mut ours = Vec::new();
        let mut mio = Vec::new();
        for round in 0..plan.dispatch_repeats {
            for side in endtoend::order(&[Side::Ours, Side::Mio], round) {
                match side {
                    Side::Ours => ours.push(ns_per_event_ours(handlers, plan.dispatch_events)),
                    Side::Mio => mio.push(ns_per_event_mio(handlers, plan.dispatch_events)),
                    Side::C => unreachable!("dispatch compares ours and mio only"),
                }
            }
        }
        eprintln!("dispatch {handlers}: ours {ours:.0?} ns, mio {mio:.0?} ns");
        let workload = format!("dispatch, {handlers} handler{}", if handlers == 1 { "" } else { "s" });
        table.add_paired(workload, Unit::Nanoseconds, &ours, &mio, None, None, Target::AtMostMioTimes(1.1));
    }
}

/// An always-readable eventfd that pokes itself when called.
struct Ticker {
    fd: OwnedFd,
    calls: Rc<Cell<u64>>,
}

impl Handler for Ticker {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        "ticker"
    }

    fn on_ready(&mut self, _: Readiness, _: &mut Context) -> io::Result<()> {
        poke(self.fd.as_raw_fd());
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }
}

fn ns_per_event_ours(handlers: usize, events: u64) -> f64 {
    let mut reactor = Reactor::new().expect("bench setup: epoll");
    let calls = Rc::new(Cell::new(0));
    for _ in 0..handlers {
        let ticker = Ticker { fd: ready_eventfd(), calls: calls.clone() };
        if reactor.register(ticker).is_err() {
            panic!("bench setup: registering an eventfd");
        }
    }
    let start = Instant::now();
    while calls.get() < events {
        reactor.run_once(None).expect("reactor round");
    }
    start.elapsed().as_nanos() as f64 / calls.get() as f64
}

fn ns_per_event_mio(handlers: usize, events: u64) -> f64 {
    let mut poll = Poll::new().expect("bench setup: epoll");
    let fds: Vec<OwnedFd> = (0..handlers).map(|_| ready_eventfd()).collect();
    for (i, fd) in fds.iter().enumerate() {
        let source = &mut SourceFd(&fd.as_raw_fd());
        poll.registry().register(source, Token(i), Interest::READABLE).expect("bench setup: register");
    }
    let mut batch = Events::with_capacity(BATCH);
    let mut calls = 0u64;
    let start = Instant::now();
    while calls < events {
        poll.poll(&mut batch, None).expect("mio poll");
        for event in batch.iter() {
            poke(fds[event.token().0].as_raw_fd());
            calls += 1;
        }
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// A new eventfd with a count of 1: readable until read, which nobody does.
fn ready_eventfd() -> OwnedFd {
    // SAFETY: plain call.
    let raw = unsafe { libc::eventfd(1, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(raw >= 0, "bench setup: eventfd: {}", io::Error::last_os_error());
    // SAFETY: `eventfd` just returned this descriptor; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Adds 1 to an eventfd's count: a new edge for epoll.
fn poke(fd: RawFd) {
    let one = 1u64;
    // SAFETY: `one` is 8 readable bytes, as an eventfd write needs.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}
