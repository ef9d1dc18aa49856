//! Bytes in from any descriptor: `LineReader::for_any_fd` reads a regular
//! file, `/dev/null`, a pipe and a socket alike (epoll refuses the first
//! two with `EPERM`), a large file in bounded pieces while the loop goes
//! on, paused and resumed by its token; a plain registration refused with
//! `EPERM` says what to do; and every callback of a reader, on either
//! path, has the reader's token as `ctx.current()`.

mod util;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::LineReader;
use reactor::{Context, Reactor, Token};
use util::{line_journal, pipe, run_until, socketpair, write, Journal, TempDir};

/// The most one read takes, as `LineReader` documents it.
const CHUNK: usize = 64 * 1024;

/// A regular file holding `contents`, opened for reading.
fn file_with(dir: &TempDir, contents: &[u8]) -> OwnedFd {
    let path = dir.path().join("input");
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into()
}

/// Registers `reader` made `for_any_fd`, runs until it has removed itself,
/// and returns the journal's entries.
fn read_all(reader: LineReader, journal: &Journal) -> Vec<String> {
    let mut reactor = Reactor::new().unwrap();
    reactor.register(reader.for_any_fd().unwrap()).unwrap();
    run_until(&mut reactor, "the reader to reach its end", |reactor| reactor.is_empty());
    journal.entries()
}

#[test]
fn one_reader_reads_a_regular_file_dev_null_a_pipe_and_a_socket() {
    let dir = TempDir::new("any-fd");
    let (pipe_in, pipe_out) = pipe();
    let (ours, theirs) = socketpair();
    for (_, writer) in [(&pipe_in, pipe_out), (&ours, theirs)] {
        write(&writer, b"one\ntwo\nlast");
    }
    let inputs: [(&str, OwnedFd, &[&str]); 4] = [
        ("file", file_with(&dir, b"one\ntwo\nlast"), &["one", "two", "last"]),
        ("null", File::open("/dev/null").unwrap().into(), &[]),
        ("pipe", pipe_in, &["one", "two", "last"]),
        ("socket", ours, &["one", "two", "last"]),
    ];
    for (name, fd, lines) in inputs {
        let journal = Journal::new();
        let mut expected: Vec<String> = lines.iter().map(|line| format!("{name}: {line}")).collect();
        expected.push(format!("{name}: closed"));
        assert_eq!(read_all(line_journal(name, fd, 64, &journal), &journal), expected, "{name}");
    }
}

#[test]
fn a_plain_registration_of_a_regular_file_names_the_reader_and_the_remedy() {
    let dir = TempDir::new("any-fd-refused");
    let mut reactor = Reactor::new().unwrap();
    let reader = LineReader::new(file_with(&dir, b"x\n"), 64, |_, _| {}).named("stdin");

    let refused = reactor.register(reader).expect_err("epoll refuses a regular file");

    assert!(refused.is_unpollable(), "{refused}");
    let message = refused.to_string();
    assert!(message.starts_with("stdin: "), "{message}");
    assert!(message.contains("for_any_fd"), "{message}");
    // What `?` makes of it keeps the message (it was a bare EPERM).
    let error = io::Error::from(refused);
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(error.to_string(), message);
}

/// 10 MiB of numbered lines in a regular file: read at most one piece of
/// 64 KiB per round, each round also fires a timer, and every line comes
/// once, in order. The timer re-arms itself for "now", which the reactor
/// keeps for the next round: it counts rounds.
#[test]
fn a_ten_mib_file_is_read_in_bounded_pieces_while_a_timer_fires_every_round() {
    const LINES: usize = 100 * 1024; // of 103 bytes: 10.3 MB
    let dir = TempDir::new("any-fd-large");
    let contents: String = (0..LINES).map(|i| format!("{i:0>102}\n")).collect();
    let fd = file_with(&dir, contents.as_bytes());

    let (next, bytes_this_round, most_in_a_round) =
        (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let rounds_before_end = Rc::new(Cell::new(0));
    let closed = Rc::new(Cell::new(false));
    let (n, bytes, end, done) =
        (next.clone(), bytes_this_round.clone(), rounds_before_end.clone(), closed.clone());
    let reader = LineReader::new(fd, 1024, move |line, _| {
        assert_eq!(line, format!("{:0>102}", n.get()).as_bytes(), "line {}", n.get());
        n.set(n.get() + 1);
        bytes.set(bytes.get() + line.len() + 1);
    })
    .on_close(move |_| done.set(true));
    let mut reactor = Reactor::new().unwrap();
    reactor.register(reader.for_any_fd().unwrap()).unwrap();
    let (bytes, most, ended) = (bytes_this_round.clone(), most_in_a_round.clone(), closed.clone());
    let timer = Rc::new(Cell::new(None));
    let me = timer.clone();
    timer.set(Some(reactor.after(Duration::ZERO, move |ctx| {
        most.set(most.get().max(bytes.replace(0)));
        if !ended.get() {
            end.set(end.get() + 1);
        }
        ctx.rearm(me.get().expect("the timer's key"), Duration::ZERO);
    })));

    run_until(&mut reactor, "the end of the file", |_| closed.get());

    assert_eq!(next.get(), LINES, "every line, once");
    // A read completes the partial line of the one before: 64 KiB plus one line at most.
    assert!(most_in_a_round.get() <= CHUNK + 103, "{} bytes in one round", most_in_a_round.get());
    let pieces = contents.len().div_ceil(CHUNK);
    assert!(rounds_before_end.get() >= pieces, "{} rounds for {pieces} pieces", rounds_before_end.get());
}

#[test]
fn a_paused_file_reader_reads_nothing_until_resumed() {
    const LINES: usize = 1000; // of 1000 bytes: 16 reads of 64 KiB
    let dir = TempDir::new("any-fd-pause");
    let contents: String = (0..LINES).map(|i| format!("{i:0>999}\n")).collect();
    let lines = Rc::new(Cell::new(0));
    let seen = lines.clone();
    let reader = LineReader::new(file_with(&dir, contents.as_bytes()), 1000, move |_, ctx| {
        seen.set(seen.get() + 1);
        if seen.get() == 1 {
            ctx.pause(ctx.current().expect("its token")).unwrap();
        }
    });
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.register(reader.for_any_fd().unwrap()).unwrap();

    run_until(&mut reactor, "the first line", |_| lines.get() > 0);
    let first_read = lines.get();
    assert!(first_read < LINES / 10, "{first_read} lines: more than the read in progress");
    for _ in 0..5 {
        reactor.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(lines.get(), first_read, "paused: nothing more read");
    assert!(reactor.contains(token) && reactor.is_paused(token));

    reactor.resume(token).unwrap();
    run_until(&mut reactor, "the end of the file", |reactor| reactor.is_empty());
    assert_eq!(lines.get(), LINES);
}

// ----------------------------------------------------------------------------
// `current()` in every callback.

/// What each callback saw as `ctx.current()`, against the reader's token.
#[derive(Clone, Default)]
struct Currents {
    token: Rc<Cell<Option<Token>>>,
    seen: Rc<RefCell<Vec<(&'static str, bool)>>>,
}

impl Currents {
    fn note(&self, what: &'static str, ctx: &Context) {
        let right = ctx.current().is_some() && ctx.current() == self.token.get();
        self.seen.borrow_mut().push((what, right));
    }

    /// A reader of `fd` whose every callback notes what it saw.
    fn reader(&self, fd: OwnedFd) -> LineReader {
        let (line, part, error, close) = (self.clone(), self.clone(), self.clone(), self.clone());
        LineReader::new(fd, 64, move |_, ctx| line.note("line", ctx))
            .on_unfinished(move |_, ctx| part.note("unfinished", ctx))
            .on_error(move |_, ctx| error.note("error", ctx))
            .on_close(move |ctx| close.note("close", ctx))
    }

    fn register(&self, reactor: &mut Reactor, reader: LineReader) {
        self.token.set(Some(reactor.register(reader).unwrap()));
    }

    fn assert_saw(&self, expected: &[&str], why: &str) {
        let seen = self.seen.borrow();
        let names: Vec<&str> = seen.iter().map(|(what, _)| *what).collect();
        assert_eq!(names, expected, "{why}: the callbacks");
        for (what, right) in seen.iter() {
            assert!(right, "{why}: `{what}` did not have the reader's token as current()");
        }
    }
}

#[test]
fn every_callback_of_a_reader_has_its_token_as_current() {
    let dir = TempDir::new("any-fd-current");
    let (file_at_end, file_cut) = (file_with(&dir, b"one\ntwo"), file_with(&dir, b"whole\nhalf"));
    let directory: OwnedFd = File::open(dir.path()).unwrap().into(); // a read fails: EISDIR
    let (reset, peer) = socketpair();
    write(&reset, b"never read by the peer");
    drop(peer); // closed with unread data: the connection is reset
    let (pipe_in, pipe_out) = pipe();
    write(&pipe_out, b"line\npart"); // and the writer stays
    let cases: [(&str, OwnedFd, &[&str]); 5] = [
        ("a file to its end", file_at_end, &["line", "line", "close"]),
        ("a directory", directory, &["error", "close"]),
        ("a reset socket", reset, &["error", "close"]),
        ("a file at shutdown", file_cut, &["line", "unfinished", "close"]),
        ("a pipe at shutdown", pipe_in, &["line", "unfinished", "close"]),
    ];
    for (why, fd, expected) in cases {
        let currents = Currents::default();
        let mut reactor = Reactor::new().unwrap();
        let reader = currents.reader(fd).for_any_fd().unwrap();
        currents.register(&mut reactor, reader);
        let lines_then_stop = expected.contains(&"unfinished");
        run_until(&mut reactor, why, |reactor| {
            reactor.is_empty() || (lines_then_stop && currents.seen.borrow().len() == 1)
        });
        drop(reactor); // shuts down what is left
        currents.assert_saw(expected, why);
    }
    drop(pipe_out);
}

#[test]
fn the_callbacks_of_a_fifo_reader_have_its_token_as_current() {
    let dir = TempDir::new("any-fd-current-fifo");
    let path = dir.path().join("fifo");
    let currents = Currents::default();
    let (line, part, close) = (currents.clone(), currents.clone(), currents.clone());
    let reader = LineReader::fifo(&path, 0o600, 64, move |_, ctx| line.note("line", ctx))
        .unwrap()
        .on_unfinished(move |_, ctx| part.note("unfinished", ctx))
        .on_close(move |ctx| close.note("close", ctx));
    let mut reactor = Reactor::new().unwrap();
    currents.register(&mut reactor, reader);
    std::fs::write(&path, b"whole\nhalf").unwrap(); // the reader is there: the open does not block
    run_until(&mut reactor, "the line", |_| !currents.seen.borrow().is_empty());
    drop(reactor);
    currents.assert_saw(&["line", "unfinished", "close"], "a FIFO at shutdown");
    assert!(!path.exists(), "the FIFO it made is removed");
}
