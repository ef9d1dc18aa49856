//! The reactor's own timers, `Context::after` and `every`: re-armed from
//! their own callback, cancelled before they fire, ten thousand at once.
//! (`Timer`, a timerfd source, is tested in `sources.rs`.)

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::Reactor;
use util::{run_until, within_deadline};

#[test]
fn a_timer_rearmed_from_its_own_callback_fires_again() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let fired = Rc::new(RefCell::new(Vec::new()));
        let seen = fired.clone();
        let key = Rc::new(Cell::new(None));
        let me = key.clone();
        let start = Instant::now();
        let timer = reactor.after(Duration::from_millis(5), move |ctx| {
            seen.borrow_mut().push(start.elapsed());
            if seen.borrow().len() < 3 {
                assert!(ctx.rearm(me.get().expect("set"), Duration::from_millis(5)));
            }
        });
        key.set(Some(timer));
        run_until(&mut reactor, "three calls", |_| fired.borrow().len() == 3);
        assert!(!reactor.is_armed(timer), "not re-armed the third time: gone");
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
        let victim = reactor.after(Duration::from_millis(20), move |_| called.set(true));
        // Cancelled from another callback, before its deadline.
        reactor.after(Duration::from_millis(1), move |ctx| assert!(ctx.cancel(victim)));
        let seen = witness.clone();
        reactor.after(Duration::from_millis(60), move |ctx| {
            seen.set(true);
            ctx.stop();
        });
        reactor.run().unwrap();
        assert!(witness.get(), "the loop ran past the cancelled deadline");
        assert!(!doomed.get(), "a cancelled timer was called");
        assert!(!reactor.cancel(victim), "already gone");
    });
}

#[test]
fn ten_thousand_timers_and_a_periodic_one_stay_cheap() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let fired = Rc::new(Cell::new(0));
        for i in 0..10_000u64 {
            let count = fired.clone();
            reactor.after(Duration::from_micros(i * 50), move |_| count.set(count.get() + 1));
        }
        let ticks = Rc::new(Cell::new(0));
        let count = ticks.clone();
        let periodic = reactor.every(Duration::from_millis(10), move |_| count.set(count.get() + 1));
        run_until(&mut reactor, "every one-shot timer", |_| fired.get() == 10_000);
        run_until(&mut reactor, "some ticks", |_| ticks.get() >= 3);
        assert!(reactor.cancel(periodic));
        assert_eq!(reactor.len(), 0, "no descriptor per timer");
    });
}
