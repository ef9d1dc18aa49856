//! Shutdown on SIGINT and SIGTERM: what is still in the queue is printed,
//! the output flushed, the queue and the Unix socket file removed, exit 0.
//! A closed stdout is a reason for the same clean shutdown.

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;

use support::*;

/// Fills the queue while the server is stopped, signals it while still
/// stopped (the signal waits, blocked, for the loop), lets it go on, and
/// checks the shutdown.
fn shutdown_prints_the_full_queue_and_removes_it(signal: libc::c_int, name: &str) {
    let queue = TestQueue::new();
    let mut server = start_server(&queue); // capacity 10
    server.pause();
    let messages: Vec<String> = (1..=10).map(|n| format!("left over {n}")).collect();
    for message in &messages {
        send(&queue, message);
    }
    let full = client(["--queue", queue.name(), "--nonblock", "one too many"]);
    assert_eq!(full.code(), 1, "the queue should be full: {}", full.stderr);

    server.signal(signal);
    server.resume();

    assert_eq!(server.wait_exit().code(), Some(0));
    let expected: Vec<String> = messages.iter().map(|m| format!("mq[0]: {m}")).collect();
    assert_eq!(server.stdout.snapshot(), expected);
    assert!(!queue.exists(), "the queue must be removed: opening it finds nothing");
    server.stderr.wait_containing(name);
}

#[test]
fn sigterm_prints_what_is_left_in_the_queue_removes_it_and_exits_0() {
    shutdown_prints_the_full_queue_and_removes_it(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_prints_what_is_left_in_the_queue_removes_it_and_exits_0() {
    shutdown_prints_the_full_queue_and_removes_it(libc::SIGINT, "SIGINT");
}

#[test]
fn sighup_prints_what_is_left_in_the_queue_removes_it_and_exits_0() {
    shutdown_prints_the_full_queue_and_removes_it(libc::SIGHUP, "SIGHUP");
}

/// `make run-server &` from a script starts the server with SIGINT
/// ignored; SIGINT must still shut it down.
#[test]
fn sigint_shuts_down_a_server_that_was_started_with_sigint_ignored() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).ignoring(libc::SIGINT).start();

    server.signal(libc::SIGINT);

    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(!queue.exists());
}

#[test]
fn sigterm_on_an_idle_server_exits_0_and_removes_the_queue() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);

    assert_eq!(server.terminate().code(), Some(0));

    assert!(!queue.exists());
    assert_eq!(server.stdout.snapshot(), Vec::<String>::new());
    assert!(!server.stderr.snapshot().iter().any(|l| l.contains("panicked")));
}

#[test]
fn shutdown_leaves_no_shared_memory_or_semaphore_named_after_the_queue() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    send(&queue, "counted");
    server.stdout.wait_exact("mq[0]: counted");

    assert_eq!(server.terminate().code(), Some(0));

    assert_eq!(queue.shared_memory(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn unix_socket_file_exists_while_serving_and_is_removed_at_shutdown() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let path = dir.join("postbox.sock");
    let mut server = ServerBuilder::on(&queue).args([format!("--listen=unix:{}", path.display())]).start();
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    let mut stream = UnixStream::connect(&path).unwrap();
    stream.write_all(b"before shutdown\n").unwrap();
    server.stdout.wait_exact("unix[1]: before shutdown");

    assert_eq!(server.terminate().code(), Some(0));

    assert!(!path.exists(), "{} is still there after shutdown", path.display());
    assert!(!queue.exists());
}

#[test]
fn partial_line_of_a_connected_client_is_printed_at_shutdown() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    let mut stream = std::net::TcpStream::connect(server.tcp_addr()).unwrap();
    let tag = format!("tcp[{}]", stream.local_addr().unwrap());
    stream.write_all(b"line\nunfinished").unwrap();
    server.stdout.wait_exact(&format!("{tag}: line"));

    assert_eq!(server.terminate().code(), Some(0));

    assert_eq!(server.stdout.snapshot(), [format!("{tag}: line"), format!("{tag}: unfinished")]);
}

/// `server | head -n 1`: the reader goes away after one line.
#[test]
fn closed_stdout_shuts_down_cleanly_and_removes_the_queue() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let mut head = BufReader::new(server.take_stdout());
    send(&queue, "the one line");
    let mut line = String::new();
    head.read_line(&mut line).unwrap();
    assert_eq!(line, "mq[0]: the one line\n");

    drop(head);
    // The server learns that its reader left from its next write. A child
    // that another test is forking may hold a copy of the read end for an
    // instant (until its exec closes it), and a write then still succeeds:
    // so messages are sent until one finds the reader gone.
    wait_until("the server to exit once its reader left", || {
        let _ = client(["--queue", queue.name(), "--nonblock", "nobody reads this"]);
        !server.is_running()
    });

    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(!queue.exists(), "the queue must be removed after stdout closed");
    let log = server.stderr.snapshot();
    assert!(!log.iter().any(|l| l.contains("panicked")), "stderr: {log:?}");
}
