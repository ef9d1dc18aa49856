//! `Connection` on real socketpairs and a real Unix listener: writes
//! coalesced per round, eviction, a pause that holds, the partial line at
//! shutdown, writing to another connection by its token.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use reactor::sources::{Connection, ListenAddr, Listener, Output, StreamState, Writer};
use reactor::Reactor;
use util::{run_for, run_until, set_send_buffer, socketpair, within_deadline, TempDir};

const LINES: usize = 10_000;

/// Reads `fd` (made blocking) to its end on a thread.
fn read_all_on_a_thread(fd: OwnedFd) -> thread::JoinHandle<Vec<u8>> {
    let mut stream = UnixStream::from(fd);
    stream.set_nonblocking(false).expect("blocking");
    thread::spawn(move || {
        let mut all = Vec::new();
        stream.read_to_end(&mut all).expect("read to end");
        all
    })
}

fn numbered(i: usize) -> String {
    format!("line {i:05}")
}

/// 10 000 lines of 11 bytes written in one round, a buffer limit of 16 KiB,
/// a send buffer of 208 KiB, the reader not reading yet, each refused line
/// dropped. Written line by line, the socket would fill by its count of
/// small packets after a few hundred lines (each `send` is a packet of
/// about 1 KiB of accounting) and the buffer after 1 500 more: thousands
/// refused. Coalesced, they leave in a few writes of 16 KiB and all fit.
#[test]
fn a_burst_of_short_lines_in_one_round_is_coalesced_and_none_is_refused() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        set_send_buffer(ours.as_fd(), 212_992 / 2); // the kernel doubles it: Linux's usual default
        let mut reactor = Reactor::new().unwrap();
        let conn = Connection::new(ours).unwrap().limit(16 * 1024);
        let conn = conn.register(&mut reactor).unwrap();
        let refused = Rc::new(Cell::new(0));
        let (out, count) = (conn.clone(), refused.clone());
        reactor.after(Duration::ZERO, move |ctx| {
            for i in 0..LINES {
                if out.write_line(ctx, numbered(i).as_bytes()).is_err() {
                    count.set(count.get() + 1);
                }
            }
        });
        reactor.run_once(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(refused.get(), 0, "lines refused in one round");
        // Written from a timer, the last bytes go at the end of the next round.
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(conn.buffered(), 0, "the socket did not take the rest");

        let reader = read_all_on_a_thread(theirs);
        conn.close_when_drained(&mut reactor);
        run_until(&mut reactor, "the connection to close", |r| r.is_empty());
        let got = String::from_utf8(reader.join().unwrap()).unwrap();
        let expected: Vec<String> = (0..LINES).map(numbered).collect();
        assert!(got.lines().eq(expected.iter().map(String::as_str)), "lines lost or out of order");
    });
}

/// Fills the peer's socket and the connection's buffer, nobody reading.
fn stuffed(reactor: &mut Reactor, conn: &Output) -> usize {
    let chunk = vec![b'x'; 64 * 1024];
    let mut queued = 0;
    while conn.write(reactor, &chunk).is_ok() {
        queued += chunk.len();
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert!(conn.buffered() > 0, "the socket took everything");
    queued
}

#[test]
fn close_evicts_at_once_dropping_what_is_buffered() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut reactor = Reactor::new().unwrap();
        let closes = Rc::new(Cell::new(0));
        let count = closes.clone();
        let conn = Connection::new(ours)
            .unwrap()
            .limit(256 * 1024)
            .on_close(move |_, _| count.set(count.get() + 1))
            .register(&mut reactor)
            .unwrap();
        let queued = stuffed(&mut reactor, &conn);

        conn.close(&mut reactor);
        assert_eq!(closes.get(), 1, "on_close once, at once");
        assert!(conn.state() == StreamState::Closed && reactor.is_empty());
        let err = conn.write_line(&mut reactor, b"more").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        reactor.run().unwrap(); // returns at once: no handler, and no timer left behind
        let got = read_all_on_a_thread(theirs).join().unwrap();
        assert!(got.len() < queued, "the buffer was written, not dropped ({} of {queued})", got.len());
        assert_eq!(closes.get(), 1);
    });
}

#[test]
fn a_writer_handle_closes_at_once_dropping_what_is_buffered() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut reactor = Reactor::new().unwrap();
        let out = Writer::new(ours, 1 << 20).unwrap().register(&mut reactor).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut queued = 0;
        while out.buffered() == 0 {
            out.write(&mut reactor, &chunk).unwrap();
            queued += chunk.len();
        }
        out.close(&mut reactor);
        assert!(out.state() == StreamState::Closed && reactor.is_empty());
        assert_eq!(out.write(&mut reactor, b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        let got = read_all_on_a_thread(theirs).join().unwrap();
        assert!(got.len() < queued, "the buffer was written, not dropped");
    });
}

/// Reading paused by a line holds: the lines after it in the same read are
/// kept, nothing more is read, and the peer's hang-up does not wake the
/// loop (no spin). Resumed, the kept lines come, then the rest, then the
/// close.
#[test]
fn a_paused_connection_reads_nothing_even_after_its_peer_hung_up() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut reactor = Reactor::new().unwrap();
        let lines = Rc::new(RefCell::new(Vec::new()));
        let (seen, closed) = (lines.clone(), lines.clone());
        let conn = Connection::new(ours)
            .unwrap()
            .on_line(move |line, me, ctx| {
                seen.borrow_mut().push(String::from_utf8_lossy(line).into_owned());
                if line == b"pause" {
                    ctx.pause(me.token().unwrap()).unwrap();
                }
            })
            .on_close(move |_, _| closed.borrow_mut().push("(closed)".into()))
            .register(&mut reactor)
            .unwrap();
        util::write(&theirs, b"one\npause\ntwo\n");
        let token = conn.token().unwrap();
        run_until(&mut reactor, "the pause", |r| r.is_paused(token));
        util::write(&theirs, b"three\nfour");
        drop(theirs); // hang-up: reported whatever the interest, to a socket in epoll
        let rounds = run_for(&mut reactor, Duration::from_millis(200));
        assert!(rounds <= 2, "{rounds} rounds in 200 ms: the paused connection spins");
        assert_eq!(*lines.borrow(), ["one", "pause"]);

        reactor.resume(token).unwrap();
        run_until(&mut reactor, "the close", |r| r.is_empty());
        assert_eq!(*lines.borrow(), ["one", "pause", "two", "three", "four", "(closed)"]);
    });
}

/// An unfinished line is delivered as a line at end of input only: at
/// shutdown the stream has not ended, and the piece goes to `on_unfinished`.
#[test]
fn an_unfinished_line_is_not_a_line_at_shutdown() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut reactor = Reactor::new().unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (lines, rest, closed) = (seen.clone(), seen.clone(), seen.clone());
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Connection::new(ours)
            .unwrap()
            .on_line(move |line, _, _| lines.borrow_mut().push(text(line)))
            .on_unfinished(move |part, _, _| rest.borrow_mut().push(format!("unfinished: {}", text(part))))
            .on_close(move |conn, _| closed.borrow_mut().push(format!("closed: {:?}", conn.state())))
            .register(&mut reactor)
            .unwrap();
        util::write(&theirs, b"whole\nhalf a li");
        run_until(&mut reactor, "the whole line", |_| !seen.borrow().is_empty());
        drop(reactor);
        assert_eq!(*seen.borrow(), ["whole", "unfinished: half a li", "closed: Closed"]);
    });
}

/// The listener hands each accepted socket to a closure with the `Context`,
/// which registers a `Connection`; each connection writes to the other by
/// its token.
#[test]
fn accepted_connections_write_to_each_other_by_token() {
    within_deadline(|| {
        let dir = TempDir::new("connection");
        let path = dir.path().join("sock");
        let mut reactor = Reactor::new().unwrap();
        let tokens = Rc::new(RefCell::new(Vec::new()));
        let known = tokens.clone();
        let listener = Listener::unix_accept(&path, move |fd, _peer, ctx| {
            let others = known.clone();
            let conn = Connection::new(fd)?
                .on_line(move |line, me, ctx| {
                    for &token in others.borrow().iter().filter(|&&t| Some(t) != me.token()) {
                        let other = Connection::output_of(ctx, token).expect("a registered connection");
                        other.write_line(ctx, line).unwrap();
                    }
                })
                .register(ctx)?;
            known.borrow_mut().push(conn.token().expect("registered"));
            Ok(())
        })
        .unwrap();
        reactor.register(listener).unwrap();
        let mut a = UnixStream::connect(&path).unwrap();
        let b = UnixStream::connect(&path).unwrap();
        run_until(&mut reactor, "two connections", |_| tokens.borrow().len() == 2);
        a.write_all(b"from a\n").unwrap();
        let mut b = BufReader::new(b);
        let mut got = String::new();
        b.get_mut().set_nonblocking(true).unwrap();
        run_until(&mut reactor, "the line at b", |_| b.read_line(&mut got).is_ok_and(|n| n > 0));
        assert_eq!(got, "from a\n");
    });
}

/// The same over TCP: the accepted socket's lines, answered on it, then
/// the close after the client's end of input.
#[test]
fn a_tcp_connection_from_tcp_accept_answers_each_line_and_closes_at_end_of_input() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let listener = Listener::tcp_accept(([127, 0, 0, 1], 0).into(), |fd, _peer, ctx| {
            Connection::new(fd)?
                .on_line(|line, me, ctx| me.write_line(ctx, &line.to_ascii_uppercase()).unwrap())
                .register(ctx)
                .map(drop)
        })
        .unwrap();
        let ListenAddr::Tcp(addr) = listener.local_addr().clone() else { panic!("a TCP listener") };
        reactor.register(listener).unwrap();
        let client = thread::spawn(move || -> io::Result<String> {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(util::DEADLINE))?;
            stream.write_all(b"one\ntwo")?;
            stream.shutdown(Shutdown::Write)?;
            let mut got = String::new();
            stream.read_to_string(&mut got)?;
            Ok(got)
        });
        run_until(&mut reactor, "the client's answer", |_| client.is_finished());
        assert_eq!(client.join().unwrap().unwrap(), "ONE\nTWO\n");
    });
}

/// A refused write is followed by `on_drain` once the buffer has emptied,
/// and only then; a producer resumes there.
#[test]
fn on_drain_runs_once_the_buffer_empties_after_a_refusal() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut reactor = Reactor::new().unwrap();
        let drains = Rc::new(Cell::new(0));
        let count = drains.clone();
        let conn = Connection::new(ours)
            .unwrap()
            .limit(64 * 1024)
            .on_drain(move |conn, _| {
                assert_eq!(conn.buffered(), 0);
                count.set(count.get() + 1);
            })
            .register(&mut reactor)
            .unwrap();
        let queued = stuffed(&mut reactor, &conn);
        run_for(&mut reactor, Duration::from_millis(50));
        assert_eq!(drains.get(), 0, "on_drain while bytes wait");

        let reader = read_all_on_a_thread(theirs);
        run_until(&mut reactor, "the drain", |_| drains.get() > 0);
        assert_eq!((drains.get(), conn.buffered()), (1, 0));
        conn.close_when_drained(&mut reactor);
        run_until(&mut reactor, "the close", |r| r.is_empty());
        assert_eq!(reader.join().unwrap().len(), queued, "bytes lost");
    });
}
