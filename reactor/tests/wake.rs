//! `Waker` and `channel`: many threads wake one loop through real eventfds.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use reactor::sources::{channel, Waker};
use reactor::Reactor;
use util::{expect_no_events, run_until, within_deadline, QUIET};

const THREADS: usize = 8;
const PER_THREAD: usize = 10_000;

#[test]
fn eight_threads_times_ten_thousand_wakes_are_all_seen_by_the_loop() {
    within_deadline(|| {
        let woken = Arc::new(AtomicUsize::new(0));
        let (calls, last_seen) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0usize)));
        let mut reactor = Reactor::new().unwrap();
        let (seen, count, counter) = (last_seen.clone(), calls.clone(), woken.clone());
        let waker = Waker::new(move |_| {
            count.set(count.get() + 1);
            seen.set(counter.load(Ordering::SeqCst));
        })
        .unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (handle, woken) = (waker.handle(), woken.clone());
                thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        woken.fetch_add(1, Ordering::SeqCst);
                        handle.wake().expect("wake");
                    }
                })
            })
            .collect();
        reactor.register(waker).unwrap();
        // Every wake is followed by a callback that sees it: the last
        // callback sees all of them.
        run_until(&mut reactor, "the last wake", |_| last_seen.get() == THREADS * PER_THREAD);
        for thread in threads {
            thread.join().expect("waking thread");
        }
        // A thread counts before it rings: the last callback may have seen
        // the count of a wake that rang after it. That ring is one event at
        // most, taken here; after it, nothing is left over.
        let late = reactor.run_once(Some(QUIET)).unwrap();
        assert!(late <= 1, "{late} events after the last wake");
        assert!(calls.get() >= 1 && calls.get() <= THREADS * PER_THREAD, "{} calls", calls.get());
        // Nothing left over: no callback without a wake.
        expect_no_events(&mut reactor);
    });
}

#[test]
fn wakes_before_the_loop_runs_coalesce_into_one_call() {
    let calls = Rc::new(Cell::new(0));
    let mut reactor = Reactor::new().unwrap();
    let count = calls.clone();
    let waker = Waker::new(move |_| count.set(count.get() + 1)).unwrap();
    let handle = waker.handle();
    reactor.register(waker).unwrap();
    let other = handle.clone();
    thread::spawn(move || (0..1000).for_each(|_| other.wake().expect("wake"))).join().unwrap();
    handle.wake().unwrap();
    run_until(&mut reactor, "the call", |_| calls.get() == 1);
    expect_no_events(&mut reactor);
    assert_eq!(calls.get(), 1);
}

#[test]
fn a_wake_after_the_waker_is_removed_is_harmless() {
    let mut reactor = Reactor::new().unwrap();
    let waker = Waker::new(|_| panic!("removed, never called")).unwrap();
    let handle = waker.handle();
    let token = reactor.register(waker).unwrap();
    assert!(reactor.remove(token));
    handle.wake().expect("the eventfd lives as long as a handle");
    expect_no_events(&mut reactor);
}

#[test]
fn every_channel_item_arrives_once_in_order_per_sender_and_the_last_sender_is_reported() {
    within_deadline(|| {
        let (sender, receiver) = channel::<(usize, usize)>().unwrap();
        let next = Rc::new(RefCell::new(vec![0usize; THREADS]));
        let closed = Rc::new(Cell::new(0));
        let (expected, ends) = (next.clone(), closed.clone());
        let mut reactor = Reactor::new().unwrap();
        let token = reactor
            .register(
                receiver
                    .on_message(move |(thread, seq), _| {
                        let mut next = expected.borrow_mut();
                        assert_eq!(seq, next[thread], "sender {thread}: out of order or twice");
                        next[thread] += 1;
                    })
                    .on_closed(move |ctx| {
                        ends.set(ends.get() + 1);
                        ctx.stop();
                    }),
            )
            .unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let sender = sender.clone();
                thread::spawn(move || {
                    for seq in 0..PER_THREAD {
                        sender.send((thread, seq)).expect("the receiver is alive");
                    }
                })
            })
            .collect();
        drop(sender);
        reactor.run().unwrap();
        for thread in threads {
            thread.join().expect("sending thread");
        }
        assert_eq!(*next.borrow(), vec![PER_THREAD; THREADS], "items lost");
        assert_eq!(closed.get(), 1, "the last sender is reported once");
        assert!(!reactor.contains(token));
    });
}

#[test]
fn sending_to_a_removed_receiver_hands_the_item_back() {
    let (sender, receiver) = channel::<String>().unwrap();
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.register(receiver.on_message(|_, _| {})).unwrap();
    sender.send("first".into()).unwrap();
    reactor.remove(token);
    let error = sender.send("second".into()).expect_err("the receiver is gone");
    assert_eq!(error.0, "second");
}

#[test]
fn a_receiver_without_on_message_is_refused_at_start() {
    let (_sender, receiver) = channel::<u8>().unwrap();
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.register(receiver).unwrap();
    reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
    assert!(!reactor.contains(token), "its on_start failed, so it was removed");
}
