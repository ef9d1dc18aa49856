//! `Writer` on real pipes and sockets: the bound, back-pressure, draining,
//! closing, and a reader that goes away.

mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use reactor::sources::{Fd, Writer};
use reactor::{Interest, Reactor};
use util::{pipe, run_until, socketpair, within_deadline};

const CHUNK: usize = 4096;

fn pipe_size(fd: &OwnedFd) -> usize {
    // SAFETY: F_GETPIPE_SZ only reads the pipe's capacity.
    let size = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ: {}", io::Error::last_os_error());
    size as usize
}

/// Reads everything that arrives into `sink`, and counts end of file.
fn collector(fd: OwnedFd, sink: Rc<RefCell<Vec<u8>>>, eof: Rc<Cell<bool>>) -> Fd<OwnedFd> {
    Fd::new(fd, Interest::READABLE, move |fd, _, ctx| {
        let mut buf = [0u8; 64 * 1024];
        // SAFETY: reads into a live local buffer of its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => {
                eof.set(true);
                ctx.remove_self();
            }
            n if n > 0 => sink.borrow_mut().extend_from_slice(&buf[..n as usize]),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}

#[test]
fn a_writer_whose_reader_stops_stays_under_its_bound_reports_full_then_drains() {
    within_deadline(|| {
        let (read_end, write_end) = pipe();
        let capacity = pipe_size(&read_end);
        let limit = 4 * capacity;
        let mut reactor = Reactor::new().unwrap();
        let drained = Rc::new(Cell::new(0));
        let count = drained.clone();
        let out = Writer::new(write_end, limit)
            .unwrap()
            .on_drain(move |_, _| count.set(count.get() + 1))
            .register(&mut reactor)
            .unwrap();

        // Nobody reads: fill the pipe, then the buffer, until a write is refused.
        let mut sent = Vec::new();
        let mut n = 0u32;
        loop {
            let chunk: Vec<u8> = (0..CHUNK).map(|i| (n as usize * 7 + i) as u8).collect();
            match out.write(&mut reactor, &chunk) {
                Ok(()) => sent.extend_from_slice(&chunk),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
            n += 1;
            assert!(sent.len() <= capacity + limit + CHUNK, "accepted {} bytes: no bound", sent.len());
        }
        assert!(sent.len() >= capacity + limit - CHUNK, "refused early, after {} bytes", sent.len());
        assert!(out.buffered() <= limit, "holds {} bytes over its limit {limit}", out.buffered());
        assert!(!out.fits(CHUNK));
        // Level-triggered WRITABLE is on while data waits, but a full pipe is not writable.
        assert_eq!(reactor.interest(out.token().unwrap()), Some(Interest::WRITABLE));
        assert_eq!(reactor.run_once(Some(util::QUIET)).unwrap(), 0, "a full pipe must not wake the writer");

        // The reader resumes: everything arrives, in order, and the writer stops watching.
        let (received, eof) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(false)));
        reactor.register(collector(read_end, received.clone(), eof.clone())).unwrap();
        run_until(&mut reactor, "every byte", |_| received.borrow().len() == sent.len());
        assert!(*received.borrow() == sent, "bytes differ");
        assert_eq!(out.buffered(), 0);
        assert_eq!(drained.get(), 1, "on_drain once, after the refusal");
        assert_eq!(reactor.interest(out.token().unwrap()), Some(Interest::HANGUP));

        // Closing when drained: the reader sees end of file.
        out.write_line(&mut reactor, b"last").unwrap();
        out.close_when_drained(&mut reactor);
        assert!(out.write(&mut reactor, b"late").is_err(), "closing refuses writes");
        run_until(&mut reactor, "end of file", |_| eof.get());
        assert!(received.borrow().ends_with(b"last\n"));
        assert!(!reactor.contains(out.token().unwrap()), "the writer went with its descriptor");
    });
}

#[test]
fn a_socket_writer_sends_more_than_the_socket_buffer_then_closes() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut reactor = Reactor::new().unwrap();
        let out = Writer::new(ours, 16 << 20).unwrap().register(&mut reactor).unwrap();
        let payload: Vec<u8> = (0..8 << 20).map(|i: usize| (i % 251) as u8).collect();
        out.write(&mut reactor, &payload).unwrap();
        assert!(out.buffered() > 0, "8 MiB cannot fit a socket buffer");
        out.close_when_drained(&mut reactor);
        let (received, eof) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(false)));
        reactor.register(collector(theirs, received.clone(), eof.clone())).unwrap();
        run_until(&mut reactor, "end of file", |_| eof.get());
        assert!(*received.borrow() == payload, "bytes differ");
    });
}

#[test]
fn a_reader_that_goes_away_is_reported_to_on_error_once_and_the_writer_leaves() {
    for socket in [false, true] {
        let (ours, theirs) = if socket { socketpair() } else { pipe() };
        let (theirs, ours) = if socket { (theirs, ours) } else { (ours, theirs) };
        let mut reactor = Reactor::new().unwrap();
        let errors = Rc::new(RefCell::new(Vec::new()));
        let seen = errors.clone();
        let out = Writer::new(ours, 1 << 20)
            .unwrap()
            .on_error(move |e, _, _| seen.borrow_mut().push(e.kind()))
            .register(&mut reactor)
            .unwrap();
        out.write(&mut reactor, b"before").unwrap();
        drop(theirs);
        // Told even with nothing to write: epoll reports the broken descriptor.
        run_until(&mut reactor, "the error", |_| !errors.borrow().is_empty());
        let result = out.write(&mut reactor, b"after");
        assert_eq!(result.map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
        run_until(&mut reactor, "the writer to leave", |r| r.is_empty());
        let kinds = errors.borrow().clone();
        assert_eq!(kinds.len(), 1, "socket {socket}: {kinds:?}");
        assert!(
            matches!(kinds[0], io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset),
            "socket {socket}: {kinds:?}"
        );
    }
}

#[test]
fn write_line_or_pause_pauses_the_producer_keeps_the_bound_and_loses_nothing() {
    within_deadline(|| {
        // The producer: a socket holding far more lines than the pipe and the limit together.
        let (mut producer_end, ours_in) = std::os::unix::net::UnixStream::pair().unwrap();
        let (read_end, write_end) = pipe();
        let capacity = pipe_size(&read_end);
        let limit = capacity;
        let line = [b'x'; 99];
        let lines = 8 * (capacity + limit) / 100;
        let feeder = std::thread::spawn(move || {
            let all: Vec<u8> = (0..lines).flat_map(|_| line.iter().copied().chain([b'\n'])).collect();
            io::Write::write_all(&mut producer_end, &all).unwrap();
        });
        let mut reactor = Reactor::new().unwrap();
        let out = Writer::new(write_end, limit).unwrap().register(&mut reactor).unwrap();
        let (to_pipe, peak) = (out.clone(), Rc::new(Cell::new(0)));
        let seen_peak = peak.clone();
        let producer = reactor
            .register(reactor::sources::LineReader::new(ours_in.into(), 1024, move |line, ctx| {
                let me = ctx.current();
                assert!(me.is_some(), "a reader's callback has its token");
                to_pipe.write_line_or_pause(ctx, line, me).unwrap();
                seen_peak.set(seen_peak.get().max(to_pipe.buffered()));
            }))
            .unwrap();
        // Nobody reads the pipe: the producer must end up paused, and stay so.
        run_until(&mut reactor, "the producer paused", |r| r.is_paused(producer));
        util::run_for(&mut reactor, std::time::Duration::from_millis(50));
        assert!(reactor.is_paused(producer), "still paused while the pipe is full");
        // The bound: the limit, plus what one read of the producer (64 KiB at most) carried.
        assert!(peak.get() <= limit + 64 * 1024 + 100, "peak {} over limit {limit}", peak.get());
        // Now the pipe is read: every line arrives, in order, and the producer ran to its end.
        let (sink, eof) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(false)));
        reactor.register(collector(read_end, sink.clone(), eof.clone())).unwrap();
        let expected = lines * 100;
        run_until(&mut reactor, "every line through the pipe", |_| sink.borrow().len() >= expected);
        feeder.join().unwrap();
        assert_eq!(sink.borrow().len(), expected);
        assert!(sink.borrow().chunks(100).all(|l| l[..99] == line && l[99] == b'\n'));
        assert!(!reactor.is_paused(producer), "resumed once the buffer drained");
    });
}

/// Issue 28: a socket half-closed on purpose by both sides (our end of
/// writing, then the peer's) is nobody's error. The writer ends its
/// writing with `shutdown_write` once its bytes are out, and leaves; the
/// peer reads everything, then shuts down its own writing. Before, the
/// writer saw the hang-up with nothing queued and reported `BrokenPipe`
/// to `on_error` (and a program that closed the connection on that error
/// lost what was still unread on it).
#[test]
fn a_writer_half_closed_on_purpose_by_both_sides_reports_no_error() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut theirs = std::os::unix::net::UnixStream::from(theirs);
        let mut reactor = Reactor::new().unwrap();
        let errors = Rc::new(RefCell::new(Vec::new()));
        let seen = errors.clone();
        let out = Writer::new(ours, 1 << 20)
            .unwrap()
            .on_error(move |e, _, _| seen.borrow_mut().push(e.to_string()))
            .register(&mut reactor)
            .unwrap();
        let payload = vec![b'y'; 1 << 20]; // more than the socket holds: the end waits for it
        out.write(&mut reactor, &payload).unwrap();
        out.shutdown_write(&mut reactor);
        assert_eq!(out.state(), reactor::sources::StreamState::OutputShut);
        theirs.set_nonblocking(false).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            io::Read::read_to_end(&mut theirs, &mut got).unwrap(); // to our end of writing
            theirs.shutdown(std::net::Shutdown::Write).unwrap(); // then the peer's
            (got.len(), theirs)
        });
        run_until(&mut reactor, "the writer to leave", |r| r.is_empty());
        let (got, _theirs) = reader.join().unwrap();
        assert_eq!(got, payload.len());
        util::run_for(&mut reactor, std::time::Duration::from_millis(20));
        assert_eq!(*errors.borrow(), [] as [String; 0], "an error for a half-close on purpose");
        assert_eq!(out.state(), reactor::sources::StreamState::Closed);
    });
}
