//! The reactor's own timers (re-armed, cancelled, many) and `Fifo` (no spin
//! without writers, removed at shutdown unless kept).

mod util;

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::sources::Fifo;
use reactor::Reactor;
use util::{run_for, run_until, within_deadline, CpuClock, TempDir, IDLE_TICKS};

#[test]
fn a_timer_rearmed_from_its_own_callback_fires_again() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let fired = Rc::new(RefCell::new(Vec::new()));
        let seen = fired.clone();
        let key = Rc::new(Cell::new(None));
        let me = key.clone();
        let start = Instant::now();
        let timer = reactor.context().after(Duration::from_millis(5), move |ctx| {
            seen.borrow_mut().push(start.elapsed());
            if seen.borrow().len() < 3 {
                assert!(ctx.rearm(me.get().expect("set"), Duration::from_millis(5)));
            }
        });
        key.set(Some(timer));
        run_until(&mut reactor, "three calls", |_| fired.borrow().len() == 3);
        assert!(!reactor.context().is_armed(timer), "not re-armed the third time: gone");
        let times = fired.borrow().clone();
        assert!(times[2] >= Duration::from_millis(15), "{times:?}");
        reactor.run().unwrap(); // nothing left: returns at once
    });
}

#[test]
fn a_timer_cancelled_before_it_fires_is_never_called() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let (doomed, witness) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
        let called = doomed.clone();
        let victim = reactor.context().after(Duration::from_millis(20), move |_| called.set(true));
        // Cancelled from another callback, before its deadline.
        reactor.context().after(Duration::from_millis(1), move |ctx| assert!(ctx.cancel(victim)));
        let seen = witness.clone();
        reactor.context().after(Duration::from_millis(60), move |ctx| {
            seen.set(true);
            ctx.stop();
        });
        reactor.run().unwrap();
        assert!(witness.get(), "the loop ran past the cancelled deadline");
        assert!(!doomed.get(), "a cancelled timer was called");
        assert!(!reactor.context().cancel(victim), "already gone");
    });
}

#[test]
fn ten_thousand_timers_and_a_periodic_one_stay_cheap() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let fired = Rc::new(Cell::new(0));
        for i in 0..10_000u64 {
            let count = fired.clone();
            reactor.context().after(Duration::from_micros(i * 50), move |_| count.set(count.get() + 1));
        }
        let ticks = Rc::new(Cell::new(0));
        let count = ticks.clone();
        let periodic =
            reactor.context().every(Duration::from_millis(10), move |_| count.set(count.get() + 1));
        run_until(&mut reactor, "every one-shot timer", |_| fired.get() == 10_000);
        run_until(&mut reactor, "some ticks", |_| ticks.get() >= 3);
        assert!(reactor.context().cancel(periodic));
        assert_eq!(reactor.len(), 0, "no descriptor per timer");
    });
}

#[test]
fn a_fifo_without_writers_does_not_spin_and_serves_successive_writers() {
    within_deadline(|| {
        let dir = TempDir::new("fifo");
        let path = dir.path().join("fifo");
        let mut reactor = Reactor::new().unwrap();
        let lines = Rc::new(RefCell::new(Vec::new()));
        let seen = lines.clone();
        reactor
            .register(
                Fifo::create(&path, 0o640, 1024, move |line, _| seen.borrow_mut().push(line.to_vec()))
                    .unwrap(),
            )
            .unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640, "the mode asked for, whatever the umask");
        for writer in ["first", "second"] {
            let mut pipe = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&path).unwrap();
            writeln!(pipe, "{writer}").unwrap();
            drop(pipe); // the last writer leaves
            run_until(&mut reactor, writer, |_| {
                lines.borrow().last().map(|l| l.as_slice()) == Some(writer.as_bytes())
            });
            // No writer now: a second of the loop must cost (almost) no CPU.
            let cpu = CpuClock::for_this_thread();
            let before = cpu.ticks();
            run_for(&mut reactor, Duration::from_secs(1) / 2);
            let used = cpu.ticks() - before;
            assert!(used <= IDLE_TICKS / 2 + 1, "{used} ticks in half a second: the reader spins");
        }
        reactor.shutdown();
        assert!(!path.exists(), "removed at shutdown");
    });
}

#[test]
fn a_kept_fifo_stays_and_an_existing_one_is_not_removed() {
    let dir = TempDir::new("fifo-keep");
    let path = dir.path().join("fifo");
    let mut reactor = Reactor::new().unwrap();
    reactor.register(Fifo::create(&path, 0o600, 64, |_, _| {}).unwrap().keep()).unwrap();
    reactor.shutdown();
    assert!(path.exists(), "kept");
    // Already there: used, and left in place.
    reactor.register(Fifo::create(&path, 0o600, 64, |_, _| {}).unwrap()).unwrap();
    reactor.shutdown();
    assert!(path.exists(), "not ours to remove");
    let regular = dir.path().join("file");
    std::fs::write(&regular, b"").unwrap();
    assert!(Fifo::create(&regular, 0o600, 64, |_, _| {}).is_err(), "not a FIFO");
}
