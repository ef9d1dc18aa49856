//! A reader that stops reading must not make the server unstoppable: with
//! stdout a full pipe, a stop signal still ends the server, the queue is
//! still removed, and the output not delivered is reported (exit 1) and
//! kept in the journal for the next server. A reader that only comes late
//! loses nothing.
//!
//! Each test makes the full pipe certain, not likely: it sends more than
//! the pipe, the server's own buffer and the queue can hold together
//! ([`messages_to_stall`]), and waits for the pipe to take no more.

use support::*;

/// The queue's capacity: [`ServerBuilder::on`] keeps the default.
const QUEUE_CAPACITY: usize = 10;

/// `count` lines of `text`, each numbered if `numbered`.
fn lines(count: usize, text: &str, numbered: bool) -> String {
    (0..count).map(|n| if numbered { format!("{n} {text}\n") } else { format!("{text}\n") }).collect()
}

#[test]
fn sigterm_stops_a_server_whose_stdout_pipe_is_full_and_nobody_reads() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let unread = server.take_stdout(); // open, never read: the pipe fills up
    let line = "x".repeat(200);
    let count = messages_to_stall(&unread, "mq[0]: \n".len() + line.len(), QUEUE_CAPACITY);

    // The server stalls on its output, the queue stays full, and the client
    // gives up after a second.
    let sent =
        client_with_input(["--queue", queue.name(), "--timeout", "1"], lines(count, &line, false).as_bytes());

    assert_eq!(sent.code(), 1, "the queue should have stayed full: {}", sent.stderr);
    assert!(sent.stderr.contains("is full"), "{}", sent.stderr);
    assert!(server.stdout_is_full(), "the server waits on its full stdout");

    let status = server.terminate();

    assert_eq!(status.code(), Some(1), "output not delivered is a failure");
    assert!(!queue.exists(), "the queue must be removed");
    let log = server.stderr.snapshot().join("\n");
    assert!(log.contains("nobody reads it"), "stderr: {log}");
    assert!(!log.contains("panicked"), "stderr: {log}");
    drop(unread);
}

#[test]
fn a_reader_that_comes_late_loses_nothing() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let stdout = server.take_stdout();
    let line = "y".repeat(200);
    // Numbered lines: each prints a few bytes more than counted here.
    let count = messages_to_stall(&stdout, "mq[0]: \n".len() + line.len(), QUEUE_CAPACITY);
    let sender =
        Process::start(client_command(["--queue", queue.name()]), lines(count, &line, true).as_bytes());

    // The reader starts only once the server's stdout is full and the
    // queue is full behind it.
    let probe = RawQueue::open(queue.name(), Access::Receive).expect("open the queue");
    server.wait_for("a full stdout and a full queue", || {
        server.stdout_is_full() && probe.attributes().current == QUEUE_CAPACITY as i64
    });
    let lines = Lines::collect("late reader", stdout);
    lines.wait_count(count);
    sender.finish(DEADLINE).assert_success();

    assert_eq!(server.terminate().code(), Some(0));
    for (n, printed) in lines.snapshot().iter().enumerate() {
        assert_eq!(printed, &format!("mq[0]: {n} {line}"));
    }
    assert_eq!(lines.snapshot().len(), count);
}

/// A reader that keeps up should rarely find the pipe full: the server
/// asks for the largest pipe an unprivileged process may have.
#[test]
fn the_server_grows_its_stdout_pipe_to_the_unprivileged_maximum() {
    let most = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let stdout = server.take_stdout();

    assert!(most > 64 * 1024, "pipe-max-size {most}: nothing to grow to");
    assert_eq!(pipe_capacity(&stdout), most);
}

/// What the shutdown drain takes while stdout stays full is kept in the
/// journal for the next server, and the log says so: not "printed".
#[test]
fn messages_left_at_a_stop_with_stdout_full_are_logged_as_kept() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let unread = server.take_stdout();
    // The test fills the pipe itself, so that the idle server has nothing
    // buffered: the first message it takes then stalls it in its round's
    // last write, with nothing taken behind it.
    fill_pipe(&format!("/proc/{}/fd/1", server.pid()));
    let sender = RawQueue::open(queue.name(), Access::Send).expect("open the queue");
    sender.send(b"stalls the server", 0);
    server.wait_for("the server to take the first message", || sender.attributes().current == 0);
    for n in 0..QUEUE_CAPACITY {
        sender.send(format!("left {n}").as_bytes(), 0);
    }

    let status = server.terminate();

    assert_eq!(status.code(), Some(1), "output not delivered is a failure");
    let log = server.stderr.snapshot().join("\n");
    let at_shutdown = |word: &str| log.lines().any(|l| l.contains(word) && l.contains("left at shutdown"));
    assert!(at_shutdown(&format!("kept {QUEUE_CAPACITY} message(s)")), "stderr: {log}");
    assert!(!at_shutdown("printed"), "stderr: {log}");
    drop(unread);
}

/// A stop the loop has already read leaves no signal pending to end a wait
/// on a full stdout; the server still knows a stop is under way (the
/// reactor's stop flag), so the round's last write gives the reader a
/// second, not for ever: then the lines stay in the journal, and the
/// server exits.
#[test]
fn a_stop_already_read_waits_for_a_full_stdout_about_a_second() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let unread = server.take_stdout();
    let sender = RawQueue::open(queue.name(), Access::Send).expect("open the queue");
    // A first line written shows the loop past its first round's start,
    // where the queue is drained before any signal is read.
    sender.send(b"first", 0);
    server.wait_for("the first line on stdout", || bytes_waiting(&unread) > 0);
    fill_pipe(&format!("/proc/{}/fd/1", server.pid()));
    // Frozen, the server finds the messages and the stop signal ready at
    // once: one round takes both, reading the signal before its last write.
    server.pause();
    for n in 0..QUEUE_CAPACITY {
        sender.send(format!("stalled {n}").as_bytes(), 0);
    }
    server.signal(libc::SIGTERM);
    let resumed = std::time::Instant::now();
    server.resume();

    let status = server.wait_exit();

    let waited = resumed.elapsed();
    let log = server.stderr.snapshot().join("\n");
    assert_eq!(status.code(), Some(1), "output not delivered is a failure; stderr: {log}");
    assert!(log.contains("SIGTERM: shutting down"), "the loop read the signal; stderr: {log}");
    assert!(log.contains("a stop was asked: output dropped"), "stderr: {log}");
    assert!(
        waited >= std::time::Duration::from_secs(1),
        "gave up after {waited:?}, before the second a stopping server gives its reader; stderr: {log}"
    );
    assert!(!queue.exists(), "the queue must be removed");
    drop(unread);
}

/// Writes into the pipe at `path` until it takes no more.
fn fill_pipe(path: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let chunk = [b'.'; 4096];
    loop {
        match pipe.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("write {path}: {e}"),
        }
    }
    // A write of a whole page can fail while a smaller one still fits.
    while pipe.write(b".").is_ok() {}
}
