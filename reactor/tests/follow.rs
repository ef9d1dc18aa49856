//! Files followed on inotify (`LineReader::follow`): grown, truncated,
//! rotated by rename and removed, every line comes once and in order; from
//! the end, only what is written after; at its end, asleep; not a regular
//! file, refused. And
//! `DirWatch`: each name created, removed and moved, in order, until the
//! directory itself goes.

mod util;

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::{Change, DirWatch, LineReader};
use reactor::Reactor;
use util::{run_for, run_until, CpuClock, TempDir, IDLE_TICKS};

/// A writer that appends to the file at `path` (made if missing).
fn appender(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A follower of `path` from `from`, and the lines it delivered, an
/// unfinished part as `unfinished PART`.
fn follower(path: &Path, from: SeekFrom) -> (LineReader, Rc<RefCell<Vec<String>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (lines, rest) = (seen.clone(), seen.clone());
    let reader = LineReader::follow(path, from, 1024, move |line, _| {
        lines.borrow_mut().push(String::from_utf8_lossy(line).into_owned())
    })
    .unwrap()
    .on_unfinished(move |part, _| {
        rest.borrow_mut().push(format!("unfinished {}", String::from_utf8_lossy(part)))
    });
    (reader, seen)
}

#[test]
fn a_followed_file_grown_truncated_rotated_and_removed_gives_every_line_once_in_order() {
    let dir = TempDir::new("follow");
    let (path, rotated) = (dir.path().join("log"), dir.path().join("log.1"));
    let mut log = appender(&path);
    log.write_all(b"a1\na2\n").unwrap();
    let (reader, seen) = follower(&path, SeekFrom::Start(0));
    let mut reactor = Reactor::new().unwrap();
    reactor.register(reader).unwrap();
    let expect = |reactor: &mut Reactor, lines: &[&str], why: &str| {
        run_until(reactor, why, |_| seen.borrow().len() >= lines.len());
        assert_eq!(*seen.borrow(), lines, "{why}");
    };
    expect(&mut reactor, &["a1", "a2"], "what was there");

    log.write_all(b"a3\n").unwrap();
    expect(&mut reactor, &["a1", "a2", "a3"], "grown");

    File::create(&path).unwrap(); // truncated, as `> log` does
    log.write_all(b"b1\n").unwrap(); // shorter than what was read: from the start
    expect(&mut reactor, &["a1", "a2", "a3", "b1"], "truncated");

    fs::rename(&path, &rotated).unwrap(); // rotated: the writer still writes the old file
    log.write_all(b"b2\n").unwrap();
    let mut log = appender(&path);
    log.write_all(b"c1\n").unwrap();
    expect(&mut reactor, &["a1", "a2", "a3", "b1", "b2", "c1"], "rotated by rename");

    fs::remove_file(&path).unwrap(); // removed: the old file is still read
    log.write_all(b"c2\n").unwrap();
    expect(&mut reactor, &["a1", "a2", "a3", "b1", "b2", "c1", "c2"], "removed");
    appender(&path).write_all(b"d1\nd-part").unwrap(); // made again: followed from its start
    expect(&mut reactor, &["a1", "a2", "a3", "b1", "b2", "c1", "c2", "d1"], "made again");

    drop(reactor); // a followed file has no end: the part is unfinished
    assert_eq!(seen.borrow().last().map(String::as_str), Some("unfinished d-part"));
    assert_eq!(seen.borrow().len(), 9, "{:?}", seen.borrow());
}

#[test]
fn a_file_followed_from_its_end_gives_only_what_is_written_after() {
    let dir = TempDir::new("follow-end");
    let path = dir.path().join("log");
    let mut log = appender(&path);
    log.write_all(b"old 1\nold 2\n").unwrap();
    let (reader, seen) = follower(&path, SeekFrom::End(0));
    let mut reactor = Reactor::new().unwrap();
    reactor.register(reader).unwrap();
    log.write_all(b"new\n").unwrap();
    run_until(&mut reactor, "the new line", |_| !seen.borrow().is_empty());
    assert_eq!(*seen.borrow(), ["new"]);
}

/// At the end of its file a follower sleeps until the file changes: no
/// timer, no spin (its own reads wake it once more, then it is quiet).
#[test]
fn a_follower_at_the_end_of_its_file_costs_no_cpu_until_it_grows() {
    let dir = TempDir::new("follow-idle");
    let path = dir.path().join("log");
    let mut log = appender(&path);
    log.write_all(&b"a line of the log\n".repeat(10_000)).unwrap();
    let (reader, seen) = follower(&path, SeekFrom::Start(0));
    let mut reactor = Reactor::new().unwrap();
    reactor.register(reader).unwrap();
    run_until(&mut reactor, "what was there", |_| seen.borrow().len() == 10_000);

    let cpu = CpuClock::for_this_thread();
    let before = cpu.ticks();
    run_for(&mut reactor, Duration::from_secs(1) / 2);
    let used = cpu.ticks() - before;
    assert!(used <= IDLE_TICKS / 2 + 1, "{used} ticks in half a second: the follower spins");

    log.write_all(b"one more\n").unwrap();
    run_until(&mut reactor, "the new line", |_| seen.borrow().len() == 10_001);
}

#[test]
fn following_what_is_not_a_regular_file_or_watching_what_is_not_a_directory_is_refused_with_its_path() {
    let dir = TempDir::new("follow-refused");
    let missing = dir.path().join("missing");
    for (path, kind) in
        [(dir.path(), io::ErrorKind::InvalidInput), (missing.as_path(), io::ErrorKind::NotFound)]
    {
        let e = LineReader::follow(path, SeekFrom::Start(0), 64, |_, _| {}).expect_err("not a regular file");
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().starts_with(&format!("follow {}: ", path.display())), "{e}");
    }
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let e = DirWatch::new(&file, |_, _| {}).expect_err("not a directory");
    assert!(e.to_string().starts_with(&format!("dir watch {}: ", file.display())), "{e}");
}

#[test]
fn a_directory_watch_reports_each_name_created_removed_and_moved_until_the_directory_goes() {
    let (top, elsewhere) = (TempDir::new("dirwatch"), TempDir::new("dirwatch-elsewhere"));
    let dir = top.path().join("watched");
    fs::create_dir(&dir).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let changes = seen.clone();
    let mut reactor = Reactor::new().unwrap();
    let watch =
        reactor.register(DirWatch::new(&dir, move |change, _| changes.borrow_mut().push(change)).unwrap());
    let watch = watch.unwrap();
    let (a, b, out) = (dir.join("a"), dir.join("b"), elsewhere.path().join("a"));

    fs::write(&a, b"").unwrap();
    fs::rename(&a, &b).unwrap();
    fs::rename(&b, &out).unwrap();
    fs::rename(&out, &a).unwrap();
    fs::remove_file(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let expected = [
        Change::Created(a.clone()),
        Change::MovedOut(a.clone()),
        Change::MovedIn(b.clone()),
        Change::MovedOut(b.clone()),
        Change::MovedIn(a.clone()),
        Change::Removed(a.clone()),
        Change::Created(b.clone()),
    ];
    run_until(&mut reactor, "the seven changes", |_| seen.borrow().len() >= expected.len());
    assert_eq!(*seen.borrow(), expected);

    fs::remove_dir(&b).unwrap();
    fs::remove_dir(&dir).unwrap();
    run_until(&mut reactor, "the watch to remove itself", |reactor| !reactor.contains(watch));
    assert_eq!(seen.borrow().last(), Some(&Change::Removed(b)));
}
