//! `Blocking`: a blocking call on a thread, its results on the loop's
//! thread; one call at a time; a source that leaves starts no further call,
//! and its release hook frees a thread blocked in its call.

mod util;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use reactor::sources::Blocking;
use reactor::Reactor;
use util::{within_deadline, DEADLINE};

/// Sends once when dropped: moved into a blocking call, it says that the
/// call's thread has ended (the thread drops its closure last).
struct Ended(mpsc::Sender<()>);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn ended() -> (Ended, mpsc::Receiver<()>) {
    let (sender, receiver) = mpsc::channel();
    (Ended(sender), receiver)
}

/// A call that counts its calls and returns the count (1, 2, ...); the
/// count, and the receiver that hears of the end of the call's thread.
fn counting_call() -> (Arc<AtomicUsize>, impl FnMut() -> usize + Send + 'static, mpsc::Receiver<()>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (guard, thread_ended) = ended();
    let counted = calls.clone();
    let call = move || {
        let _keep = &guard;
        counted.fetch_add(1, Ordering::SeqCst) + 1
    };
    (calls, call, thread_ended)
}

fn wait_for_the_thread(thread_ended: &mpsc::Receiver<()>) {
    thread_ended.recv_timeout(DEADLINE).expect("the blocking call's thread has ended");
}

#[test]
fn repeat_delivers_each_result_in_order_and_a_callback_that_removes_it_starts_no_further_call() {
    within_deadline(|| {
        let (calls, call, thread_ended) = counting_call();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let results = seen.clone();
        let mut reactor = Reactor::new().unwrap();
        let blocking = Blocking::repeat(call, move |n, ctx| {
            results.borrow_mut().push((n, ctx.current()));
            if n == 3 {
                ctx.remove_self();
            }
            Ok(())
        });
        let token = reactor.register(blocking.unwrap()).unwrap();
        reactor.run().unwrap(); // returns once the source has left
        wait_for_the_thread(&thread_ended);
        assert_eq!(*seen.borrow(), [(1, Some(token)), (2, Some(token)), (3, Some(token))]);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "a call after the source left");
    });
}

#[test]
fn once_delivers_its_result_then_leaves_and_its_thread_ends() {
    within_deadline(|| {
        let (guard, thread_ended) = ended();
        let seen = Rc::new(RefCell::new(None));
        let result = seen.clone();
        let mut reactor = Reactor::new().unwrap();
        let once = Blocking::once(
            move || {
                let _keep = guard;
                "done"
            },
            move |r, _| {
                *result.borrow_mut() = Some(r);
                Ok(())
            },
        );
        reactor.register(once.unwrap()).unwrap();
        reactor.run().unwrap();
        wait_for_the_thread(&thread_ended);
        assert_eq!(*seen.borrow(), Some("done"));
    });
}

/// The call blocks in `recv` as in `sem_wait`; `post` plays the semaphore's
/// post. The source is removed while its thread is blocked in the second
/// call; the release hook posts once more, and the thread ends without its
/// result being delivered.
#[test]
fn a_source_removed_while_its_call_blocks_is_released_by_on_stop_and_its_thread_ends() {
    within_deadline(|| {
        let (post, wait) = mpsc::channel::<u32>();
        let (guard, thread_ended) = ended();
        let call = move || {
            let _keep = &guard;
            wait.recv().ok()
        };
        let release = post.clone();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let results = seen.clone();
        let mut reactor = Reactor::new().unwrap();
        let blocking = Blocking::repeat(call, move |value, ctx| {
            results.borrow_mut().push(value);
            // The thread is back in `recv` soon: remove us a little later.
            let me = ctx.current().expect("the source's token");
            ctx.after(Duration::from_millis(20), move |ctx| _ = ctx.remove(me));
            Ok(())
        })
        .unwrap()
        .on_stop(move || _ = release.send(99));
        reactor.register(blocking).unwrap();
        post.send(1).unwrap();
        reactor.run().unwrap(); // until the source has left and the timer fired
        wait_for_the_thread(&thread_ended);
        assert_eq!(*seen.borrow(), [Some(1)], "the released call's result was delivered");
    });
}

#[test]
fn a_stop_in_the_callback_starts_no_further_call() {
    within_deadline(|| {
        let (calls, call, thread_ended) = counting_call();
        let mut reactor = Reactor::new().unwrap();
        let stops = Blocking::repeat(call, |_, ctx| {
            ctx.stop();
            Ok(())
        });
        reactor.register(stops.unwrap()).unwrap();
        reactor.run().unwrap();
        wait_for_the_thread(&thread_ended);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn an_error_of_the_callback_or_a_panic_of_the_call_removes_the_source_and_reaches_on_error() {
    within_deadline(|| {
        let errors = Rc::new(RefCell::new(Vec::new()));
        let seen = errors.clone();
        let mut reactor = Reactor::new().unwrap();
        reactor.on_error(move |name, e, _| seen.borrow_mut().push(format!("{name}: {e}")));
        let fails =
            Blocking::repeat(|| 1, |_, _| Err(io::Error::other("refused"))).unwrap().named("sem_wait");
        reactor.register(fails).unwrap();
        let panics =
            Blocking::repeat(|| -> u32 { panic!("the call panics (expected by the test)") }, |_, _| Ok(()));
        reactor.register(panics.unwrap()).unwrap();
        reactor.run().unwrap(); // both leave
        let mut errors = errors.borrow().clone();
        errors.sort();
        assert_eq!(
            errors,
            ["blocking: the blocking call's thread ended without a result: it panicked", "sem_wait: refused"]
        );
    });
}

#[test]
fn a_send_to_a_loop_that_is_gone_is_a_broken_pipe_for_question_mark() {
    let (sender, receiver) = reactor::sources::channel::<u32>().unwrap();
    drop(receiver);
    let send = || -> io::Result<()> { Ok(sender.send(1)?) };
    assert_eq!(send().map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
}
