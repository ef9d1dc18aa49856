//! `Fanout` with each `SlowReader` policy: two real clients exchange 10 000
//! lines each (1.2 MB each way) while a third never reads; the two must get
//! every line, the third must cost no more than its bound.

mod util;

use std::cell::Cell;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::sources::{Connection, Fanout, Output, SlowReader, StreamState};
use reactor::Reactor;
use util::{exchange_lines, set_send_buffer, socketpair};

const LINES: usize = 10_000;
/// Bytes per line, `\n` included.
const LINE: usize = 120;
/// Each client's whole traffic: 1.2 MB.
const TRAFFIC: usize = LINES * LINE;
/// The send buffer of every server-side socket (the kernel doubles the
/// 106 496 asked for): Linux's usual default, set so that the sizes below
/// hold on any machine.
const SEND_BUFFER: usize = 212_992;
/// How long a test may take before it fails.
const DEADLINE: Duration = Duration::from_secs(30);

struct Outcome {
    /// The most any connection held, seen at the start of each round.
    max_buffered: usize,
    /// Whether a sender's reading was seen paused.
    paused: bool,
    slow: Output,
    /// What the slow reader's connection held when the room shut down
    /// (dropped then, unwritten).
    slow_buffered: usize,
    /// The client that never read.
    slow_client: UnixStream,
}

/// Runs the room until both exchanging clients have got everything and
/// left, then shuts it down.
fn chat(policy: SlowReader, limit: usize) -> Outcome {
    let room = Fanout::new(policy);
    let mut reactor = Reactor::new().unwrap();
    let left = Rc::new(Cell::new(0));
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (server, client) = socketpair();
        set_send_buffer(server.as_fd(), SEND_BUFFER / 2);
        let (to_room, gone) = (room.clone(), left.clone());
        let conn = Connection::new(server)
            .unwrap()
            .on_line(move |line, me, ctx| to_room.send(ctx, me.token(), line))
            .limit(limit)
            .on_close(move |_, _| gone.set(gone.get() + 1))
            .register(&mut reactor)
            .unwrap();
        room.join(&conn);
        servers.push(conn);
        clients.push(client);
    }
    let slow_client = UnixStream::from(clients.pop().unwrap());
    let exchange = |fd, me, other| exchange_lines(UnixStream::from(fd), me, other, LINES, LINE, DEADLINE);
    let b = exchange(clients.pop().unwrap(), "b", "a");
    let a = exchange(clients.pop().unwrap(), "a", "b");

    let (max, paused) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let (seen_max, seen_paused, watched) = (max.clone(), paused.clone(), servers.clone());
    reactor.before_wait(move |ctx| {
        for conn in &watched {
            seen_max.set(seen_max.get().max(conn.buffered()));
        }
        let senders = &watched[..2];
        let held = |c: &Output| c.token().is_some_and(|t| ctx.is_paused(t));
        seen_paused.set(seen_paused.get() || senders.iter().any(held));
    });
    let deadline = Instant::now() + DEADLINE;
    let (a_done, b_done) = (&servers[0], &servers[1]);
    while a_done.token().is_some_and(|t| reactor.contains(t))
        || b_done.token().is_some_and(|t| reactor.contains(t))
    {
        assert!(Instant::now() < deadline, "the clients did not finish within {DEADLINE:?}");
        reactor.run_once(Some(Duration::from_millis(100))).unwrap();
    }
    for (name, client) in [("a", a), ("b", b)] {
        client.join().unwrap_or_else(|_| panic!("client {name} panicked")).unwrap_or_else(|e| panic!("{e}"));
    }
    let slow = servers.pop().unwrap();
    let slow_buffered = slow.buffered();
    drop(reactor);
    Outcome { max_buffered: max.get(), paused: paused.get(), slow, slow_buffered, slow_client }
}

fn received_by(mut slow_client: UnixStream) -> usize {
    slow_client.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut all = Vec::new();
    slow_client.read_to_end(&mut all).expect("the room closed the slow client");
    all.len()
}

#[test]
fn drop_loses_lines_for_the_slow_reader_alone_and_keeps_it_within_its_limit() {
    // A limit that holds a whole client's traffic: a reading client can
    // never lose a line, whatever the scheduling. The slow one is offered
    // 2.4 MB, far past its limit plus its socket (1.5 MB).
    let limit = 1280 * 1024;
    assert!(limit >= TRAFFIC && 2 * TRAFFIC > limit + SEND_BUFFER + 64 * 1024);
    let outcome = chat(SlowReader::Drop, limit);
    assert!(outcome.slow.dropped() > 0, "nothing was dropped for the reader that never reads");
    assert!(outcome.max_buffered <= limit, "held {} bytes, limit {limit}", outcome.max_buffered);
    let kept = received_by(outcome.slow_client) + outcome.slow_buffered;
    assert_eq!(kept, 2 * TRAFFIC - outcome.slow.dropped() as usize * LINE, "lines lost but not counted");
}

#[test]
fn disconnect_closes_the_slow_reader_and_the_others_go_on() {
    let limit = 1280 * 1024;
    let outcome = chat(SlowReader::Disconnect, limit);
    assert_eq!(outcome.slow.state(), StreamState::Closed, "the reader that never reads is still connected");
    assert!(outcome.max_buffered <= limit, "held {} bytes, limit {limit}", outcome.max_buffered);
    let got = received_by(outcome.slow_client);
    assert!(got < 2 * TRAFFIC, "the slow reader got everything ({got} bytes)");
}

#[test]
fn pause_slows_the_senders_loses_nothing_and_closes_a_reader_that_never_reads() {
    let limit = 64 * 1024;
    let outcome = chat(SlowReader::Pause(Duration::from_secs(1)), limit);
    assert!(outcome.paused, "no sender was ever paused");
    assert_eq!(
        outcome.slow.state(),
        StreamState::Closed,
        "the reader that never reads was not closed after its stall"
    );
    // One line past the limit per sender, at most.
    let bound = limit + 2 * LINE;
    assert!(outcome.max_buffered <= bound, "held {} bytes, bound {bound}", outcome.max_buffered);
    let got = received_by(outcome.slow_client);
    assert!(got < 2 * TRAFFIC, "the slow reader got everything ({got} bytes)");
}

/// A line from no source (a timer's announcement) reaches every member;
/// with `Pause` there is no sender to hold, so a full member misses it
/// and it is counted, as with `Drop`: its bound holds.
#[test]
fn broadcast_reaches_every_member_and_a_full_one_misses_lines_without_pausing_anyone() {
    const ANNOUNCEMENTS: usize = 5_000; // 600 kB: far past the stuck member's socket and limit
    let room = Fanout::new(SlowReader::Pause(Duration::from_secs(1)));
    let mut reactor = Reactor::new().unwrap();
    let (reading, reader) = socketpair();
    let (stuck, _never_read) = socketpair();
    set_send_buffer(stuck.as_fd(), SEND_BUFFER / 2);
    let reading = Connection::new(reading).unwrap().limit(1 << 20);
    let stuck = Connection::new(stuck).unwrap().limit(16 * 1024);
    let (reading, stuck) = (reading.register(&mut reactor).unwrap(), stuck.register(&mut reactor).unwrap());
    room.join(&reading);
    room.join(&stuck);
    let announcer = room.clone();
    reactor.after(Duration::ZERO, move |ctx| {
        for i in 0..ANNOUNCEMENTS {
            announcer.send(ctx, None, util::chat_line("server", i, LINE).as_bytes());
        }
    });
    let mut reader = UnixStream::from(reader);
    reader.set_nonblocking(false).unwrap();
    let counting = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).map(|_| all.len())
    });
    let deadline = Instant::now() + DEADLINE;
    while reading.written() < (ANNOUNCEMENTS * LINE) as u64 {
        assert!(Instant::now() < deadline, "the reading member did not get every line");
        reactor.run_once(Some(Duration::from_millis(100))).unwrap();
    }
    let paused = |out: &Output| reactor.is_paused(out.token().unwrap());
    assert!(!paused(&reading) && !paused(&stuck), "a broadcast paused a member");
    assert!(stuck.buffered() <= stuck.limit(), "the stuck member holds {} bytes", stuck.buffered());
    assert_eq!(reading.dropped(), 0);
    assert!(stuck.dropped() > 0, "the member that never reads missed nothing");
    drop(reactor);
    assert_eq!(counting.join().unwrap().unwrap(), ANNOUNCEMENTS * LINE);
}

/// Issue 24: a FIFO read as lines (`LineReader::fifo`), fanned out to three socket members
/// under `Pause`, one of them slow: the FIFO's reader is held (a source
/// like any other, named by its token), so nothing is lost for anyone and
/// no member holds more than its limit plus one read. Before, a line from
/// a FIFO had no sender to pause: a full member lost it (447 lines of a
/// subscriber that was reading).
#[test]
fn a_fifo_fanned_out_under_pause_loses_nothing_for_a_slow_member_and_stays_bounded() {
    const FIFO_LINES: usize = 20_000; // 2.4 MB: far past each member's socket and limit
    let dir = util::TempDir::new("fanout-fifo");
    let path = dir.path().join("feed");
    let limit = 16 * 1024;
    let room = Fanout::new(SlowReader::Pause(Duration::from_secs(5)));
    let mut reactor = Reactor::new().unwrap();
    let (mut members, mut readers) = (Vec::new(), Vec::new());
    for slow in [false, false, true] {
        let (server, client) = socketpair();
        set_send_buffer(server.as_fd(), SEND_BUFFER / 2);
        let member = Connection::new(server).unwrap().limit(limit).register(&mut reactor).unwrap();
        room.join(&member);
        members.push(member);
        readers.push(std::thread::spawn(move || {
            let mut client = UnixStream::from(client);
            client.set_nonblocking(false).unwrap();
            client.set_read_timeout(Some(DEADLINE)).unwrap();
            let (mut all, mut buf) = (Vec::new(), vec![0; if slow { 512 } else { 64 * 1024 }]);
            loop {
                match client.read(&mut buf) {
                    Ok(0) => return all,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("member: {e}"),
                }
                if slow {
                    std::thread::sleep(Duration::from_micros(200)); // a reader, slower than the feed
                }
            }
        }));
    }
    let to_room = room.clone();
    let fifo = reactor::sources::LineReader::fifo(&path, 0o600, 4096, move |line, ctx| {
        to_room.send(ctx, ctx.current(), line);
    })
    .unwrap();
    let fifo = reactor.register(fifo).unwrap();
    let feed = path.clone();
    let feeder = std::thread::spawn(move || {
        let mut writer = std::fs::OpenOptions::new().write(true).open(feed).unwrap();
        let text: String = (0..FIFO_LINES).map(|i| util::chat_line("feed", i, LINE) + "\n").collect();
        std::io::Write::write_all(&mut writer, text.as_bytes()).unwrap();
        text
    });
    let (max, held) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let (seen_max, seen_held, watched) = (max.clone(), held.clone(), members.clone());
    reactor.before_wait(move |ctx| {
        seen_max.set(watched.iter().map(Output::buffered).max().unwrap_or(0).max(seen_max.get()));
        seen_held.set(seen_held.get() || ctx.is_paused(fifo));
    });
    let deadline = Instant::now() + DEADLINE;
    while members.iter().any(|m| m.written() < (FIFO_LINES * LINE) as u64) {
        assert!(
            Instant::now() < deadline,
            "the members did not get every line within {DEADLINE:?}: {members:?} fifo paused {}",
            reactor.is_paused(fifo)
        );
        assert!(members.iter().all(|m| m.state() == StreamState::Open), "a member was closed");
        reactor.run_once(Some(Duration::from_millis(100))).unwrap();
    }
    for member in &members {
        member.close_when_drained(&mut reactor);
    }
    let text = feeder.join().unwrap();
    drop(reactor);
    for (i, reader) in readers.into_iter().enumerate() {
        assert!(reader.join().unwrap() == text.as_bytes(), "member {i} lost or reordered lines");
    }
    assert!(held.get(), "the FIFO was never held: the test did not fill a member");
    let bound = limit + 64 * 1024;
    assert!(max.get() <= bound, "a member held {} bytes, bound {bound}", max.get());
}
