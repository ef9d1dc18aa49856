//! `QueueReader` and `QueueWriter` on real POSIX message queues of 4
//! messages of 256 bytes, so that "full" is certain: bounded batches with
//! priorities, messages held while the queue is full and sent highest
//! priority first, `WRITABLE` only while something is held, a producer
//! paused at the bound and resumed at the drain.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ipc::{Access, MessageQueue};
use reactor::sources::{QueueReader, QueueWriter};
use reactor::{Interest, Reactor};
use util::{expect_no_events, run_until, within_deadline, TestQueue};

type Got = Rc<RefCell<Vec<(String, u32)>>>;

fn recorder(got: &Got) -> impl FnMut(&[u8], u32, &mut reactor::Context) + 'static {
    let got = got.clone();
    move |message, priority, _| {
        got.borrow_mut().push((String::from_utf8_lossy(message).into_owned(), priority))
    }
}

fn receive(queue: &MessageQueue) -> (String, u32) {
    let mut buf = [0; 256];
    let (n, priority) = queue.receive(&mut buf).unwrap();
    (String::from_utf8_lossy(&buf[..n]).into_owned(), priority)
}

#[test]
fn a_reader_takes_a_bounded_batch_per_readiness_highest_priority_first() {
    within_deadline(|| {
        let queue = TestQueue::new("batch");
        let sender = queue.open(Access::Send);
        for (message, priority) in [("a", 1), ("b", 3), ("c", 2), ("d", 3)] {
            sender.send(message.as_bytes(), priority).unwrap();
        }
        let got = Got::default();
        let mut reactor = Reactor::new().unwrap();
        reactor
            .register(QueueReader::new(queue.open(Access::Receive), recorder(&got)).unwrap().batch(2))
            .unwrap();
        reactor.run_once(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(*got.borrow(), [("b".into(), 3), ("d".into(), 3)], "one batch of two");
        reactor.run_once(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(got.borrow()[2..], [("c".into(), 2), ("a".into(), 1)]);
        expect_no_events(&mut reactor);
    });
}

#[test]
fn a_writer_holds_while_the_queue_is_full_and_watches_writable_only_while_holding() {
    within_deadline(|| {
        let queue = TestQueue::new("hold");
        let mut reactor = Reactor::new().unwrap();
        let out = QueueWriter::new(queue.open(Access::Send), 16).unwrap().register(&mut reactor).unwrap();
        let token = out.token().unwrap();
        assert_eq!(reactor.interest(token), Some(Interest::NONE));
        for i in 0..10u32 {
            out.send(&mut reactor, format!("m{i}").as_bytes(), i % 3).unwrap();
        }
        assert_eq!((queue.depth(), out.held()), (4, 6));
        assert_eq!(reactor.interest(token), Some(Interest::WRITABLE));
        expect_no_events(&mut reactor); // a full queue does not wake the writer

        let receiver = queue.open(Access::Receive);
        let mut got = Vec::new();
        while got.len() < 10 {
            got.push(receive(&receiver));
            run_until(&mut reactor, "room taken", |_| out.held() == 0 || queue.depth() == 4);
        }
        assert_eq!(out.held(), 0);
        assert_eq!(reactor.interest(token), Some(Interest::NONE), "WRITABLE with nothing held");
        // Every message once, with its priority.
        got.sort();
        let mut sent: Vec<(String, u32)> = (0..10).map(|i| (format!("m{i}"), i % 3)).collect();
        sent.sort();
        assert_eq!(got, sent);
        let too_big = out.send(&mut reactor, &[0; 257], 0).unwrap_err();
        assert_eq!(too_big.kind(), std::io::ErrorKind::InvalidInput);
    });
}

/// The queue holds four messages of priority 0; four more wait in the
/// writer. Each time the reader takes one, the writer fills the room with
/// the highest priority it holds, so the reader sees them by priority,
/// not in the order they were sent.
#[test]
fn held_messages_go_out_highest_priority_first() {
    within_deadline(|| {
        let queue = TestQueue::new("order");
        let mut reactor = Reactor::new().unwrap();
        let out = QueueWriter::new(queue.open(Access::Send), 16).unwrap().register(&mut reactor).unwrap();
        for (message, priority) in
            [("q1", 0), ("q2", 0), ("q3", 0), ("q4", 0), ("p1", 1), ("p5", 5), ("p3", 3), ("p9", 9)]
        {
            out.send(&mut reactor, message.as_bytes(), priority).unwrap();
        }
        assert_eq!(out.held(), 4);
        let receiver = queue.open(Access::Receive);
        let mut got = Vec::new();
        for _ in 0..8 {
            got.push(receive(&receiver).0);
            run_until(&mut reactor, "the room filled", |_| out.held() == 0 || queue.depth() == 4);
        }
        assert_eq!(got, ["q1", "p9", "p5", "p3", "p1", "q2", "q3", "q4"]);
    });
}

/// A relay from one queue to another whose reader has stopped: the writer
/// holds up to its limit, then pauses the relay's reader (so the first
/// queue fills and its senders wait), and resumes it when the second queue
/// has room again. Nothing is lost, no priority changes, and no more than
/// the limit plus one message is ever held.
#[test]
fn a_relay_pauses_its_reader_at_the_bound_and_resumes_it_at_the_drain() {
    within_deadline(|| {
        let (input, output) = (TestQueue::new("relay-in"), TestQueue::new("relay-out"));
        let mut reactor = Reactor::new().unwrap();
        let limit = 3;
        let out = QueueWriter::new(output.open(Access::Send), limit).unwrap().register(&mut reactor).unwrap();
        let relay = out.clone();
        let reader = QueueReader::new(input.open(Access::Receive), move |message, priority, ctx| {
            relay.send_or_pause(ctx, message, priority, ctx.current()).expect("a message that fits");
        })
        .unwrap();
        let reader = reactor.register(reader).unwrap();
        let max_held = Rc::new(RefCell::new(0));
        let seen = max_held.clone();
        let watched = out.clone();
        reactor.before_wait(move |_| {
            let mut max = seen.borrow_mut();
            *max = (*max).max(watched.held());
        });

        let sender = MessageQueue::open_with(&input.name, Access::Send, true).unwrap();
        let mut sent = Vec::new();
        let mut next = 0u32;
        let mut send_what_fits = |sent: &mut Vec<(String, u32)>| {
            while sender.send(format!("n{next}").as_bytes(), next % 4).is_ok() {
                sent.push((format!("n{next}"), next % 4));
                next += 1;
            }
        };
        // Until the relay stops reading and the input queue is full.
        while !(reactor.is_paused(reader) && input.depth() == 4) {
            send_what_fits(&mut sent);
            reactor.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        assert_eq!(output.depth(), 4);
        assert_eq!(out.held(), limit, "the writer holds its limit when it pauses its producer");

        let receiver = output.open(Access::Receive);
        let mut got = Vec::new();
        while got.len() < sent.len() {
            got.push(receive(&receiver));
            // The output queue full again, or holding all that is left.
            let left = sent.len() - got.len();
            run_until(&mut reactor, "the relay to move", |_| output.depth() as usize == left.min(4));
        }
        assert!(!reactor.is_paused(reader), "the reader was not resumed after the drain");
        assert!(*max_held.borrow() <= limit + 1, "held {} messages, limit {limit}", max_held.borrow());
        got.sort();
        sent.sort();
        assert_eq!(got, sent, "messages lost, repeated, or with another priority");
    });
}

/// A writer removed while it holds messages must not leave the producers it
/// paused paused for ever: they are resumed when it goes.
#[test]
fn a_queue_writer_removed_while_holding_resumes_the_producers_it_paused() {
    within_deadline(|| {
        let (input, output) = (TestQueue::new("removed-in"), TestQueue::new("removed-out"));
        let mut reactor = Reactor::new().unwrap();
        let out = QueueWriter::new(output.open(Access::Send), 1).unwrap().register(&mut reactor).unwrap();
        let relay = out.clone();
        let reader = QueueReader::new(input.open(Access::Receive), move |message, priority, ctx| {
            relay.send_or_pause(ctx, message, priority, ctx.current()).expect("a message that fits");
        })
        .unwrap();
        let reader = reactor.register(reader).unwrap();
        let sender = MessageQueue::open_with(&input.name, Access::Send, true).unwrap();
        // Nobody reads the output queue: it fills (4), one more is held, and the reader pauses.
        let mut next = 0;
        while !reactor.is_paused(reader) {
            while sender.send(format!("m{next}").as_bytes(), 0).is_ok() {
                next += 1;
            }
            reactor.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        assert!(reactor.remove(out.token().expect("registered")));
        assert!(reactor.contains(reader) && !reactor.is_paused(reader), "the reader reads again");
    });
}
