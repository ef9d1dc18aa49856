//! The one rule for full, and a bound that holds whoever writes: each sink
//! (`Writer`, `Connection`, `QueueWriter`) at the exact boundary, and
//! flooded from a handler, from a timer, and from outside any handler (the
//! reactor itself as the `Context`). Defect A of issue 24: a `QueueWriter`
//! of limit 4 sent to from a timer held 1 998 messages, refusing none.

mod util;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use ipc::Access;
use reactor::sources::{Connection, Fd, LineReader, Output, QueueWriter, QueueWriterHandle, Writer};
use reactor::{Context, Interest, Reactor, Token};
use util::{doorbell, pipe, ring, run_until, set_send_buffer, socketpair, within_deadline, TestQueue};

/// Where the writes come from.
#[derive(Clone, Copy, Debug)]
enum Place {
    Handler,
    Timer,
    Outside,
}

const PLACES: [Place; 3] = [Place::Handler, Place::Timer, Place::Outside];

/// Runs `flood` once from `place`, with the `Context` there; returns the
/// token of the source that ran it (the handler), if any.
fn from(place: Place, reactor: &mut Reactor, flood: impl FnMut(&mut Context) + 'static) -> Option<Token> {
    let mut flood = Some(flood);
    let mut once = move |ctx: &mut Context| flood.take().map(|mut f| f(ctx)).is_some();
    match place {
        Place::Outside => {
            once(reactor);
            None
        }
        Place::Timer => {
            let done = Rc::new(Cell::new(false));
            let seen = done.clone();
            reactor.after(Duration::ZERO, move |ctx| seen.set(once(ctx)));
            run_until(reactor, "the timer", |_| done.get());
            None
        }
        Place::Handler => {
            let (ours, bell) = doorbell();
            ring(&bell);
            let done = Rc::new(Cell::new(false));
            let seen = done.clone();
            let source = Fd::new(ours, Interest::READABLE, move |fd, _, ctx| {
                util::drain(&*fd);
                seen.set(seen.get() || once(ctx));
                Ok(())
            });
            let token = reactor.register(source).unwrap();
            run_until(reactor, "the handler", |_| done.get());
            Some(token)
        }
    }
}

/// A sink's output whose peer never reads, over a small socket.
fn unread_output(connection: bool) -> (Output, OwnedFd, Reactor) {
    let (ours, theirs) = socketpair();
    set_send_buffer(ours.as_fd(), 16 * 1024);
    let mut reactor = Reactor::new().unwrap();
    let limit = 32 * 1024;
    let out = if connection {
        Connection::new(ours).unwrap().limit(limit).register(&mut reactor).unwrap()
    } else {
        Writer::new(ours, limit).unwrap().register(&mut reactor).unwrap()
    };
    (out, theirs, reactor)
}

/// 2 MB of lines offered, each naming the caller's source as producer:
/// from a handler, it is held and the rest of what it offers past 64 KiB
/// more is refused; from a timer or outside, what does not fit is refused.
/// Either way the bound holds.
#[test]
fn a_byte_sink_flooded_from_anywhere_stays_within_its_bound() {
    within_deadline(|| {
        for (connection, place) in [false, true].into_iter().flat_map(|c| PLACES.map(|p| (c, p))) {
            let (out, _peer, mut reactor) = unread_output(connection);
            let (sink, refused, held) = (out.clone(), Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
            let (count, was_held) = (refused.clone(), held.clone());
            let producer = from(place, &mut reactor, move |ctx| {
                for _ in 0..20_000 {
                    match sink.write_line_or_pause(ctx, &[b'x'; 99], ctx.current()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => count.set(count.get() + 1),
                        Err(e) => panic!("{e}"),
                    }
                }
                was_held.set(ctx.current().is_some_and(|me| ctx.is_paused(me)));
            });
            let what = format!("{} from {place:?}", if connection { "connection" } else { "writer" });
            let bound = out.limit() + if producer.is_some() { 64 * 1024 } else { 0 };
            assert!(out.buffered() <= bound, "{what}: holds {} bytes, bound {bound}", out.buffered());
            assert!(refused.get() > 0, "{what}: nothing refused");
            assert_eq!(held.get(), producer.is_some(), "{what}: the producer held");
        }
    });
}

/// The same for the queue sink, with `send` (refused past the limit from
/// anywhere) and with `send_or_pause` (from a handler: the producer held,
/// one message more taken).
#[test]
fn a_queue_writer_flooded_from_anywhere_stays_within_its_limit() {
    within_deadline(|| {
        for (pausing, place) in [false, true].into_iter().flat_map(|c| PLACES.map(|p| (c, p))) {
            let queue = TestQueue::new("bound");
            let mut reactor = Reactor::new().unwrap();
            let limit = 4;
            let out =
                QueueWriter::new(queue.open(Access::Send), limit).unwrap().register(&mut reactor).unwrap();
            let (sink, refused) = (out.clone(), Rc::new(Cell::new(0)));
            let count = refused.clone();
            let producer = from(place, &mut reactor, move |ctx| {
                for i in 0..2_000u32 {
                    let producer = if pausing { ctx.current() } else { None };
                    match sink.send_or_pause(ctx, &i.to_ne_bytes(), 0, producer) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => count.set(count.get() + 1),
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            let what = format!("{} from {place:?}", if pausing { "send_or_pause" } else { "send" });
            let bound = limit + usize::from(pausing && producer.is_some());
            assert_eq!(out.held(), bound, "{what}");
            assert_eq!(queue.depth() as usize + out.held() + refused.get(), 2_000, "{what}: messages lost");
            if let (Some(producer), true) = (producer, pausing) {
                assert!(reactor.is_paused(producer), "{what}: the producer is not held");
            }
        }
    });
}

/// A producer to hold: a reader of a pipe nobody writes.
fn idle_producer(reactor: &mut Reactor) -> (Token, OwnedFd) {
    let (read_end, write_end) = pipe();
    (reactor.register(LineReader::new(read_end, 1024, |_, _| {})).unwrap(), write_end)
}

/// `buffered + n <= limit` fits; one byte more does not; the producer is
/// held exactly when the buffer reaches its limit.
fn exact_boundary(connection: bool) {
    let (out, _peer, mut reactor) = unread_output(connection);
    let chunk = vec![b'x'; 64 * 1024];
    while out.buffered() == 0 {
        // Until the socket is full and keeps some (a connection writes at the round's end).
        out.write(&mut reactor, &chunk[..4096]).unwrap();
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }
    let (producer, _writer) = idle_producer(&mut reactor);
    let room = out.limit() - out.buffered();
    assert!(room > 1 && out.buffered() > 0, "room {room}, buffered {}", out.buffered());
    assert!(out.fits(room) && !out.fits(room + 1));
    out.write_or_pause(&mut reactor, &chunk[..room - 1], Some(producer)).unwrap();
    assert!(!reactor.is_paused(producer), "held below the limit");
    assert!(out.fits(1));
    assert_eq!(out.write(&mut reactor, &chunk[..2]).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    out.write_or_pause(&mut reactor, &chunk[..1], Some(producer)).unwrap();
    assert_eq!(out.buffered(), out.limit());
    assert!(reactor.is_paused(producer), "not held at the limit");
    assert!(!out.fits(1));
    assert_eq!(out.write(&mut reactor, b"x").unwrap_err().kind(), io::ErrorKind::WouldBlock);
    assert_eq!(out.buffered(), out.limit(), "a refused write took something");
}

#[test]
fn a_writer_is_full_at_exactly_its_limit() {
    within_deadline(|| exact_boundary(false));
}

#[test]
fn a_connection_is_full_at_exactly_its_limit() {
    within_deadline(|| exact_boundary(true));
}

#[test]
fn a_queue_writer_is_full_at_exactly_its_limit() {
    within_deadline(|| {
        let queue = TestQueue::new("boundary");
        let mut reactor = Reactor::new().unwrap();
        let out: QueueWriterHandle =
            QueueWriter::new(queue.open(Access::Send), 3).unwrap().register(&mut reactor).unwrap();
        let (producer, _writer) = idle_producer(&mut reactor);
        for i in 0..6u8 {
            out.send_or_pause(&mut reactor, &[i], 0, Some(producer)).unwrap(); // 4 to the queue, 2 held
        }
        assert_eq!((queue.depth(), out.held()), (4, 2));
        assert!(!reactor.is_paused(producer), "held below the limit");
        out.send_or_pause(&mut reactor, b"3rd", 0, Some(producer)).unwrap();
        assert!(reactor.is_paused(producer), "not held at the limit");
        let refused = out.send(&mut reactor, b"4th", 0).unwrap_err();
        assert_eq!((refused.kind(), out.held()), (io::ErrorKind::WouldBlock, 3));
        out.send_or_pause(&mut reactor, b"4th", 0, Some(producer)).unwrap(); // one more for a held producer
        let refused = out.send_or_pause(&mut reactor, b"5th", 0, Some(producer)).unwrap_err();
        assert_eq!((refused.kind(), out.held()), (io::ErrorKind::WouldBlock, 4));
    });
}
