//! Bytes in from any descriptor: `LineReader::for_any_fd` reads a regular
//! file, `/dev/null`, a pipe and a socket alike (epoll refuses the first
//! two with `EPERM`), a large file in bounded pieces while the loop goes
//! on, paused and resumed by its token; a plain registration refused with
//! `EPERM` says what to do; a followed file far behind is read in bounded
//! pieces too; and every callback of a reader (of any descriptor, a FIFO,
//! a followed file) and of a directory watch has its token as
//! `ctx.current()`.

mod util;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::{DirWatch, LineReader};
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

/// A reader of 10 MiB of numbered lines in a regular file, built by `make`
/// from the file's path and a line callback, is read at most `most` bytes
/// (and a line) per round while a timer fires every round, and every line
/// comes once, in order. The timer re-arms itself for "now", which the
/// reactor keeps for the next round: it counts rounds.
fn ten_mib_in_pieces_of_at_most(most: usize, make: impl FnOnce(&Path, OnLine) -> LineReader) {
    const LINES: usize = 100 * 1024; // of 103 bytes: 10.3 MB
    let dir = TempDir::new("ten-mib");
    let path = dir.path().join("input");
    let contents: String = (0..LINES).map(|i| format!("{i:0>102}\n")).collect();
    std::fs::write(&path, &contents).unwrap();
    let (next, this_round) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (n, bytes) = (next.clone(), this_round.clone());
    let reader = make(
        &path,
        Box::new(move |line, _| {
            assert_eq!(line, format!("{:0>102}", n.get()).as_bytes(), "line {}", n.get());
            n.set(n.get() + 1);
            bytes.set(bytes.get() + line.len() + 1);
        }),
    );
    let mut reactor = Reactor::new().unwrap();
    reactor.register(reader).unwrap();
    let (most_in_a_round, rounds) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (largest, count) = (most_in_a_round.clone(), rounds.clone());
    let timer = Rc::new(Cell::new(None));
    let me = timer.clone();
    timer.set(Some(reactor.after(Duration::ZERO, move |ctx| {
        let bytes = this_round.replace(0);
        largest.set(largest.get().max(bytes));
        count.set(count.get() + usize::from(bytes > 0));
        ctx.rearm(me.get().expect("the timer's key"), Duration::ZERO);
    })));

    run_until(&mut reactor, "every line", |_| next.get() == LINES);

    // A read completes the partial line of the one before: one line more at most.
    assert!(most_in_a_round.get() <= most + 103, "{} bytes in one round", most_in_a_round.get());
    let pieces = contents.len().div_ceil(most);
    assert!(rounds.get() >= pieces, "{} rounds with lines for {pieces} pieces", rounds.get());
}

/// A line callback, as the readers take it.
type OnLine = Box<dyn FnMut(&[u8], &mut Context)>;

#[test]
fn a_ten_mib_file_is_read_in_bounded_pieces_while_a_timer_fires_every_round() {
    ten_mib_in_pieces_of_at_most(CHUNK, |path, on_line| {
        LineReader::new(File::open(path).unwrap().into(), 1024, on_line).for_any_fd().unwrap()
    });
}

/// Woken by inotify alone (its own reads are accesses), a follower far
/// behind catches up four pieces per round, never the whole file at once.
#[test]
fn a_followed_file_far_behind_is_read_in_bounded_pieces_while_a_timer_fires_every_round() {
    ten_mib_in_pieces_of_at_most(4 * CHUNK, |path, on_line| {
        LineReader::follow(path, SeekFrom::Start(0), 1024, on_line).unwrap()
    });
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

    /// A line callback that notes what it saw.
    fn on_line(&self) -> impl FnMut(&[u8], &mut Context) + 'static {
        let line = self.clone();
        move |_, ctx| line.note("line", ctx)
    }

    /// `reader`, with every other callback noting what it saw.
    fn callbacks(&self, reader: LineReader) -> LineReader {
        let (part, error, close) = (self.clone(), self.clone(), self.clone());
        reader
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
        let reader = currents.callbacks(LineReader::new(fd, 64, currents.on_line())).for_any_fd().unwrap();
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

/// Builds a reader whose line callback is the one given.
type MakeReader<'a> = dyn Fn(&Currents) -> LineReader + 'a;

/// A FIFO reader and a follower, each with a whole line and half a line
/// written, then shut down; and a directory watch told of a new file.
#[test]
fn the_callbacks_of_a_fifo_reader_a_follower_and_a_directory_watch_have_their_token_as_current() {
    let dir = TempDir::new("any-fd-current-named");
    let (fifo, log) = (dir.path().join("fifo"), dir.path().join("log"));
    std::fs::write(&log, b"").unwrap();
    let readers: [(&Path, &MakeReader); 2] = [
        (&fifo, &|c| LineReader::fifo(&fifo, 0o600, 64, c.on_line()).unwrap()),
        (&log, &|c| LineReader::follow(&log, SeekFrom::Start(0), 64, c.on_line()).unwrap()),
    ];
    for (path, make) in readers {
        let currents = Currents::default();
        let mut reactor = Reactor::new().unwrap();
        currents.register(&mut reactor, currents.callbacks(make(&currents)));
        std::fs::write(path, b"whole\nhalf").unwrap(); // the reader is there: a FIFO's open does not block
        run_until(&mut reactor, "the line", |_| !currents.seen.borrow().is_empty());
        drop(reactor);
        currents.assert_saw(&["line", "unfinished", "close"], &path.display().to_string());
    }
    assert!(!fifo.exists(), "the FIFO it made is removed");

    let currents = Currents::default();
    let mut reactor = Reactor::new().unwrap();
    let change = currents.clone();
    let watch = DirWatch::new(dir.path(), move |_, ctx| change.note("change", ctx)).unwrap();
    currents.token.set(Some(reactor.register(watch).unwrap()));
    std::fs::write(dir.path().join("new"), b"").unwrap();
    run_until(&mut reactor, "the change", |_| !currents.seen.borrow().is_empty());
    currents.assert_saw(&["change"], "a directory watch");
}
