//! A listener in a process that has run out of descriptors, in a
//! `harness = false` target: it lowers `RLIMIT_NOFILE` and takes every
//! descriptor left, which would break any test running beside it.
//!
//! A level-triggered listener that cannot accept is woken for ever by the
//! connection that waits. `Listener` must instead close such connections
//! (clients see them closed, not hanging), stay idle, and accept again as
//! soon as descriptors are free.

#[macro_use]
mod util;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reactor::sources::{ListenAddr, Listener};
use reactor::Reactor;
use util::{line_journal, run_for, run_until, CpuClock, Journal, DEADLINE, IDLE_TICKS};

harness_free_main!(listener_out_of_descriptors_closes_connections_without_spinning_then_recovers,);

fn listener_out_of_descriptors_closes_connections_without_spinning_then_recovers() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let listener = Listener::tcp(([127, 0, 0, 1], 0).into(), {
        let journal = journal.clone();
        move |fd, _| Box::new(line_journal("conn", fd, 64, &journal))
    })
    .unwrap();
    let ListenAddr::Tcp(addr) = listener.local_addr().clone() else { panic!("a TCP listener") };
    let token = reactor.register(listener).unwrap();
    let clock = CpuClock::for_this_thread();

    // The connection waits in the backlog: the listener meets it only once
    // the process has no descriptor left.
    let mut shed = TcpStream::connect(addr).unwrap();
    let limit = FdLimit::lower_to(64);
    let hoard = take_every_descriptor();

    let before = clock.ticks();
    let rounds = run_for(&mut reactor, Duration::from_secs(1));
    let spent = clock.ticks() - before;
    assert!(spent <= IDLE_TICKS, "{spent} CPU ticks in {rounds} rounds: the listener spins on EMFILE");
    assert!(reactor.contains(token), "the listener is still registered");
    shed.set_read_timeout(Some(DEADLINE)).unwrap();
    match shed.read(&mut [0; 16]) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the waiting client should see its connection closed, got {other:?}"),
    }
    assert!(journal.entries().is_empty(), "no connection was served");

    drop(hoard);
    let mut served = TcpStream::connect(addr).unwrap();
    served.write_all(b"hello\n").unwrap();
    run_until(&mut reactor, "the new connection's line", |_| journal.contains("conn: hello"));
    drop(limit);
}

/// Takes every descriptor the process may still open.
fn take_every_descriptor() -> Vec<File> {
    let mut hoard = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return hoard,
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
}

/// `RLIMIT_NOFILE` lowered for the process, restored when dropped.
struct FdLimit(libc::rlimit);

impl FdLimit {
    fn lower_to(soft: libc::rlim_t) -> FdLimit {
        // SAFETY: a zeroed `rlimit` is valid; `getrlimit` fills it in.
        let mut old: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: `old` is a valid place for the current limits.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
        let new = libc::rlimit { rlim_cur: soft.min(old.rlim_cur), rlim_max: old.rlim_max };
        // SAFETY: lowering the soft limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
        FdLimit(old)
    }
}

impl Drop for FdLimit {
    fn drop(&mut self) {
        // SAFETY: restores the limits read before; the hard limit never changed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.0) };
    }
}
