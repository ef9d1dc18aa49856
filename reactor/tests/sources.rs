//! The ready-made handlers on real descriptors: `LineReader` on pipes and
//! sockets, `Timer` on timerfds, `Listener` on TCP and Unix-domain sockets.
//! `SignalFd` has its own target (`tests/signals.rs`), and the listener out
//! of descriptors too (`tests/emfile.rs`).

mod util;

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::{LineReader, LineSink, ListenAddr, Listener, Peer, Timer};
use reactor::{Context, Handler, Interest, Reactor};
use util::{
    line_journal, pipe, run_for, run_until, socketpair, write, CpuClock, Journal, Probe, TempDir, IDLE_TICKS,
};

// ----------------------------------------------------------------------------
// LineReader

/// Writes `input` into a pipe, closes it, and returns what a `LineReader`
/// with `max_line` made of it.
fn read_lines(input: &[u8], max_line: usize) -> Vec<String> {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (read, written) = pipe();
    reactor.register(line_journal("in", read, max_line, &journal)).unwrap();
    write(&written, input);
    drop(written);
    run_until(&mut reactor, "the reader to remove itself at end of file", |reactor| reactor.is_empty());
    journal.entries()
}

#[test]
fn lines_are_delivered_without_their_newline() {
    assert_eq!(read_lines(b"one\n\nthree\n", 64), ["in: one", "in: ", "in: three", "in: closed"]);
}

#[test]
fn long_line_is_delivered_in_pieces_of_max_line() {
    assert_eq!(read_lines(b"abcdefghij\nk\n", 4), ["in: abcd", "in: efgh", "in: ij", "in: k", "in: closed"]);
}

#[test]
fn line_of_exactly_max_line_bytes_is_one_line() {
    assert_eq!(read_lines(b"abcd\nefgh\n", 4), ["in: abcd", "in: efgh", "in: closed"]);
}

#[test]
fn partial_last_line_is_delivered_at_end_of_file_before_the_close() {
    assert_eq!(read_lines(b"one\ntwo", 64), ["in: one", "in: two", "in: closed"]);
}

#[test]
fn line_split_across_reads_is_delivered_whole() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (ours, theirs) = socketpair();
    reactor.register(line_journal("conn", ours, 64, &journal)).unwrap();

    write(&theirs, b"hel");
    reactor.run_once(Some(util::DEADLINE)).unwrap();
    assert!(journal.entries().is_empty(), "no line before its end");
    write(&theirs, b"lo\n");
    run_until(&mut reactor, "the line", |_| journal.contains("conn: hello"));
    assert_eq!(journal.entries(), ["conn: hello"]);
}

#[test]
fn line_reader_removes_itself_when_the_connection_is_reset() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (ours, theirs) = socketpair();
    write(&theirs, b"partial");
    // Closing a Unix socket with unread data resets the connection.
    write(&ours, b"never read");
    drop(theirs);
    reactor.register(line_journal("conn", ours, 64, &journal)).unwrap();

    run_until(&mut reactor, "the reader to remove itself", |reactor| reactor.is_empty());
    // A reset is no end of file: the part of a line is not a line.
    assert_eq!(journal.entries(), ["conn: unfinished partial", "conn: closed"]);
}

#[test]
fn line_reader_on_a_hung_up_pipe_removes_itself_and_leaves_the_loop_idle() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (read, written) = pipe();
    reactor.register(line_journal("in", read, 64, &journal)).unwrap();
    let (idle, _idle_writer) = pipe();
    reactor.register(Probe::new("idle", idle, &journal)).unwrap();
    write(&written, b"bye");
    drop(written);

    // A reader left registered after EOF would be woken by EPOLLHUP for
    // ever: about 100 ticks of CPU in this second instead of about none.
    let clock = CpuClock::for_this_thread();
    let before = clock.ticks();
    let rounds = run_for(&mut reactor, Duration::from_secs(1));
    let spent = clock.ticks() - before;

    assert!(spent <= IDLE_TICKS, "{spent} CPU ticks in {rounds} rounds in one idle second");
    assert_eq!(journal.entries(), ["idle: start", "in: bye", "in: closed"]);
    assert_eq!(reactor.len(), 1, "only the idle pipe is left");
}

/// How a reader leaves before its stream ends.
#[derive(Clone, Copy, Debug)]
enum Leaves {
    Removed,
    Shutdown,
    Dropped,
}

#[test]
fn reader_leaving_before_its_stream_ends_hands_the_unfinished_line_apart_with_its_token() {
    for how in [Leaves::Removed, Leaves::Shutdown, Leaves::Dropped] {
        let (ours, theirs) = socketpair();
        write(&theirs, b"whole\nhalf a li"); // and the writer stays: no end of file
        let mut reactor = Reactor::new().unwrap();
        let journal = Journal::new();
        let (lines, rest, closes) = (journal.clone(), journal.clone(), journal.clone());
        // Every callback unwraps its token, as the docs allow: none may panic,
        // not even inside `Reactor::drop`.
        let reader = LineReader::new(ours, 1024, move |line, ctx| {
            lines.push(format!("line {} {:?}", String::from_utf8_lossy(line), ctx.current().unwrap()));
        })
        .on_unfinished(move |part, ctx| {
            rest.push(format!("unfinished {} {:?}", String::from_utf8_lossy(part), ctx.current().unwrap()));
        })
        .on_close(move |ctx| closes.push(format!("closed {:?}", ctx.current().unwrap())));
        let token = reactor.register(reader).unwrap();
        run_until(&mut reactor, "the whole line", |_| journal.count(&format!("line whole {token:?}")) == 1);
        match how {
            Leaves::Removed => assert!(reactor.remove(token)),
            Leaves::Shutdown => reactor.shutdown(),
            Leaves::Dropped => drop(reactor),
        }
        let expected = [
            format!("line whole {token:?}"),
            format!("unfinished half a li {token:?}"),
            format!("closed {token:?}"),
        ];
        assert_eq!(journal.entries(), expected, "{how:?}");
    }
}

// ----------------------------------------------------------------------------
// Timer
// ----------------------------------------------------------------------------
// Timer

#[test]
fn one_shot_timer_fires_once_and_removes_itself() {
    let mut reactor = Reactor::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let timer = Timer::once(Duration::from_millis(1), {
        let fired = fired.clone();
        move |expirations, _| fired.borrow_mut().push(expirations)
    })
    .unwrap();
    reactor.register(timer).unwrap();

    run_until(&mut reactor, "the timer to fire and leave", |reactor| reactor.is_empty());
    assert_eq!(*fired.borrow(), [1]);
}

#[test]
fn periodic_timer_reports_missed_expirations_and_stays_registered() {
    let mut reactor = Reactor::new().unwrap();
    let period = Duration::from_millis(2);
    let fired = Rc::new(RefCell::new(Vec::new()));
    let periodic = Timer::every(period, {
        let fired = fired.clone();
        move |expirations, _| fired.borrow_mut().push(expirations)
    })
    .unwrap();
    let token = reactor.register(periodic).unwrap();
    // Nobody reads the periodic timer for five periods: then a one-shot
    // timer, created later, turns it back on.
    reactor.set_interest(token, Interest::NONE).unwrap();
    let wake = Timer::once(5 * period, move |_, ctx| ctx.set_interest(token, Interest::READABLE).unwrap());
    reactor.register(wake.unwrap()).unwrap();

    run_until(&mut reactor, "three calls", |_| fired.borrow().len() >= 3);
    let fired = fired.borrow();
    assert!(fired[0] >= 5, "the first call counts every missed expiration: {fired:?}");
    assert!(fired.iter().all(|&n| n >= 1), "{fired:?}");
    assert!(reactor.contains(token));
}

// ----------------------------------------------------------------------------
// Listener

/// A factory that registers a line journal named `conn` for each connection
/// and writes down its peer.
fn conn_journal(
    journal: &Journal,
    peers: &Rc<RefCell<Vec<Peer>>>,
) -> impl FnMut(OwnedFd, Peer) -> Box<dyn Handler> + 'static {
    let (journal, peers) = (journal.clone(), peers.clone());
    move |fd, peer| {
        peers.borrow_mut().push(peer);
        Box::new(line_journal("conn", fd, 64, &journal))
    }
}

#[test]
fn tcp_listener_registers_a_handler_for_each_connection() {
    let journal = Journal::new();
    let peers = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    let listener = Listener::tcp(([127, 0, 0, 1], 0).into(), conn_journal(&journal, &peers)).unwrap();
    let ListenAddr::Tcp(addr) = listener.local_addr().clone() else { panic!("a TCP listener") };
    assert_ne!(addr.port(), 0, "the port the kernel chose");
    reactor.register(listener).unwrap();

    let mut first = TcpStream::connect(addr).unwrap();
    let mut second = TcpStream::connect(addr).unwrap();
    first.write_all(b"first\n").unwrap();
    second.write_all(b"second\n").unwrap();
    run_until(&mut reactor, "both lines", |_| {
        journal.count("conn: first") + journal.count("conn: second") == 2
    });
    let mut expected = [first.local_addr().unwrap(), second.local_addr().unwrap()].map(Peer::Tcp).to_vec();
    let mut seen = peers.borrow().clone();
    expected.sort_by_key(|p| format!("{p:?}"));
    seen.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(seen, expected);
    assert_eq!(reactor.len(), 3);

    drop(first);
    run_until(&mut reactor, "the first connection to close", |_| journal.contains("conn: closed"));
    assert_eq!(reactor.len(), 2);
}

#[test]
fn unix_listener_serves_connections_and_removes_its_socket_file() {
    let dir = TempDir::new("unix-listener");
    let path = dir.path().join("socket");
    let journal = Journal::new();
    let peers = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    let listener = Listener::unix(&path, conn_journal(&journal, &peers)).unwrap();
    assert_eq!(listener.local_addr(), &ListenAddr::Unix(path.clone()));
    reactor.register(listener).unwrap();

    UnixStream::connect(&path).unwrap().write_all(b"hello\n").unwrap();
    run_until(&mut reactor, "the line", |_| journal.contains("conn: closed"));
    assert_eq!(journal.entries(), ["conn: hello", "conn: closed"]);
    assert_eq!(*peers.borrow(), [Peer::Unix]);

    drop(reactor);
    assert!(!path.exists(), "the socket file is removed with the listener");
}

#[test]
fn unix_listener_replaces_a_stale_socket_file_but_not_a_live_one() {
    let dir = TempDir::new("unix-stale");
    let path = dir.path().join("socket");
    let peers = Rc::new(RefCell::new(Vec::new()));
    let journal = Journal::new();

    let live = UnixListener::bind(&path).unwrap();
    let err = Listener::unix(&path, conn_journal(&journal, &peers)).expect_err("the path is taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert_connects(&path, "the live listener keeps its socket");

    drop(live);
    assert!(path.exists(), "a dead listener leaves its socket file behind");
    let listener = Listener::unix(&path, conn_journal(&journal, &peers)).expect("a stale socket is replaced");
    assert_connects(&path, "the new listener listens");
    drop(listener);
}

#[test]
fn a_listener_on_an_address_in_use_names_it_and_says_what_to_do() {
    let dir = TempDir::new("in-use");
    let (live, file) = (dir.path().join("live"), dir.path().join("file"));
    let _taken = UnixListener::bind(&live).unwrap();
    std::fs::write(&file, b"not a socket").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap();
    let cases = [
        (Listener::unix(&live, |_, _| unreachable!()), format!("unix:{}", live.display()), "stop it"),
        (Listener::unix(&file, |_, _| unreachable!()), format!("unix:{}", file.display()), "not a socket"),
        (Listener::tcp(port, |_, _| unreachable!()), port.to_string(), "another port"),
    ];
    for (result, addr, remedy) in cases {
        let e = result.expect_err("the address is taken");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let message = e.to_string();
        assert!(message.starts_with(&format!("cannot listen on {addr}: ")), "{message}");
        assert!(message.contains(remedy), "{message}");
    }
    assert!(file.exists() && live.exists(), "what was there stays");
    assert_connects(&live, "the live listener keeps its socket");
}

#[test]
fn the_accept_callback_has_the_listeners_token_as_current() {
    let dir = TempDir::new("accept-current");
    let path = dir.path().join("socket");
    let (token, seen) = (Rc::new(std::cell::Cell::new(None)), Rc::new(RefCell::new(Vec::new())));
    let (mine, saw) = (token.clone(), seen.clone());
    let listener = Listener::unix_accept(&path, move |_, _, ctx| {
        saw.borrow_mut().push(ctx.current().is_some() && ctx.current() == mine.get());
        Ok(())
    })
    .unwrap();
    let mut reactor = Reactor::new().unwrap();
    token.set(Some(reactor.register(listener).unwrap()));
    let _clients = [UnixStream::connect(&path).unwrap(), UnixStream::connect(&path).unwrap()];
    run_until(&mut reactor, "two connections", |_| seen.borrow().len() == 2);
    assert_eq!(*seen.borrow(), [true, true]);
}

fn assert_connects(path: &Path, why: &str) {
    if let Err(e) = UnixStream::connect(path) {
        panic!("{why}: connect {}: {e}", path.display());
    }
}

#[test]
fn listener_is_a_handler_like_any_other_and_can_be_removed() {
    let journal = Journal::new();
    let peers = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    let listener = Listener::tcp(([127, 0, 0, 1], 0).into(), conn_journal(&journal, &peers)).unwrap();
    let ListenAddr::Tcp(addr) = listener.local_addr().clone() else { panic!("a TCP listener") };
    let token = reactor.register(listener).unwrap();

    assert!(reactor.remove(token));
    let err = TcpStream::connect(addr).expect_err("nobody listens any more");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(peers.borrow().is_empty());
}

#[test]
fn periodic_timer_with_a_zero_period_is_refused() {
    let error = Timer::every(Duration::ZERO, |_, _| {}).expect_err("a zero period must be refused");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(Timer::once(Duration::ZERO, |_, _| {}).is_ok(), "a one-shot timer may fire at once");
}

/// A sink of one's own: lines, the error that ended the stream, the last
/// partial line (delivered when the reader finishes), and one close.
struct Recorder(Journal);

impl LineSink for Recorder {
    fn line(&mut self, line: &[u8], _: &mut Context) {
        self.0.push(format!("line {}", String::from_utf8_lossy(line)));
    }

    fn closed(&mut self, _: &mut Context) {
        self.0.push("closed");
    }

    fn unfinished(&mut self, partial: &[u8], _: &mut Context) {
        self.0.push(format!("unfinished {}", String::from_utf8_lossy(partial)));
    }

    fn error(&mut self, error: &io::Error, _: &mut Context) {
        self.0.push(format!("error {:?}", error.kind()));
    }

    fn name(&self) -> &str {
        "recorder"
    }
}

#[test]
fn custom_sink_gets_lines_then_the_ending_error_then_one_close() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (ours, theirs) = socketpair();
    write(&theirs, b"one\ntwo\npart");
    write(&ours, b"never read"); // closing with unread data resets the connection
    drop(theirs);
    let reader = LineReader::with_sink(ours, 64, Recorder(journal.clone()));
    assert_eq!(reader.name(), "recorder");
    reactor.register(reader).unwrap();

    run_until(&mut reactor, "the reader to remove itself", |reactor| reactor.is_empty());
    drop(reactor);
    assert_eq!(
        journal.entries(),
        ["line one", "line two", "error ConnectionReset", "unfinished part", "closed"]
    );
}

/// On a non-blocking descriptor one readiness report takes several full
/// reads (so output goes out in whole buffers), at most four of 64 KiB.
#[test]
fn line_reader_takes_up_to_four_full_reads_per_round_from_a_non_blocking_stream() {
    let mut reactor = Reactor::new().unwrap();
    let (ours, theirs) = socketpair();
    let count = Rc::new(RefCell::new(0usize));
    let seen = count.clone();
    reactor.register(LineReader::new(ours, 64, move |_, _| *seen.borrow_mut() += 1)).unwrap();
    // Three 64 KiB reads' worth of 64-byte lines (63 bytes and a newline).
    let line = format!("{}\n", "x".repeat(63));
    for _ in 0..3 {
        write(&theirs, line.repeat(1024).as_bytes());
    }

    reactor.run_once(Some(Duration::from_secs(5))).unwrap();

    assert_eq!(*count.borrow(), 3 * 1024, "all three chunks in one round");
}
