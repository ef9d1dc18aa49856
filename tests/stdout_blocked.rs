//! A reader that stops reading must not make the server unstoppable: with
//! stdout a full pipe, a stop signal still ends the server, the queue is
//! still removed, and the lost output is reported (exit 1).

use postbox::*;

#[test]
fn sigterm_stops_a_server_whose_stdout_pipe_is_full_and_nobody_reads() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let _unread = server.take_stdout(); // open, never read: the pipe fills up

    // 400 lines of 200 bytes is well past the 64 KiB of a pipe; the server
    // stalls on its output, the queue fills, and the client gives up.
    let line = "x".repeat(200);
    let input: String = (0..400).map(|_| format!("{line}\n")).collect();
    let sent = client_with_input(["--queue", queue.name(), "--timeout", "1"], input.as_bytes());
    assert_eq!(sent.code(), 1, "the queue should have stayed full: {}", sent.stderr);
    assert!(sent.stderr.contains("is full"), "{}", sent.stderr);

    let status = server.terminate();

    assert_eq!(status.code(), Some(1), "lost output is a failure");
    assert!(!queue.exists(), "the queue must be removed");
    let log = server.stderr.snapshot().join("\n");
    assert!(log.contains("nobody reads it"), "stderr: {log}");
    assert!(!log.contains("panicked"), "stderr: {log}");
}

#[test]
fn a_reader_that_comes_late_loses_nothing() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let stdout = server.take_stdout();

    let line = "y".repeat(200);
    let input: String = (0..400).map(|n| format!("{n} {line}\n")).collect();
    let sender = {
        let name = queue.name().to_string();
        std::thread::spawn(move || client_with_input(["--queue", name.as_str()], input.as_bytes()))
    };
    // The reader starts only once the server waits on its full stdout (the
    // queue is full then, and stays so).
    let probe = RawQueue::open(queue.name(), Access::Receive).expect("open the queue");
    server.wait_for("a full queue", || probe.attributes().current == 10);
    let lines = Lines::collect("late reader", stdout);
    lines.wait_count(400);
    sender.join().expect("sender thread").assert_success();

    assert_eq!(server.terminate().code(), Some(0));
    for (n, printed) in lines.snapshot().iter().enumerate() {
        assert_eq!(printed, &format!("mq[0]: {n} {line}"));
    }
}
