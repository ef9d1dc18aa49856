//! stdin as a source: lines tagged `stdin`, end of file that removes the
//! handler while the server keeps serving, and inputs that epoll refuses (a
//! regular file, /dev/null) read directly, with no busy loop.

use std::io::Write;
use std::thread;
use std::time::Duration;

use support::*;

/// At 100 ticks per second a spinning server burns about 100 in a second.
const IDLE_TICKS: u64 = 5;

/// The CPU ticks the server uses over one second in which nothing happens.
fn ticks_over_one_idle_second(server: &Server) -> u64 {
    let before = server.cpu_ticks();
    thread::sleep(Duration::from_secs(1)); // a measuring window, not a wait
    server.cpu_ticks() - before
}

#[test]
fn stdin_lines_are_printed_tagged_stdin() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).stdin(Input::Pipe).start();

    server.write_stdin(b"first line\n\tindented\n");

    assert_eq!(server.stdout.wait_count(2), ["stdin: first line", "stdin: \\tindented"]);
}

#[test]
fn stdin_end_of_file_prints_the_partial_line_and_the_server_keeps_serving_without_spinning() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).stdin(Input::Pipe).start();
    server.write_stdin(b"whole\npartial");

    server.close_stdin();

    assert_eq!(server.stdout.wait_count(2), ["stdin: whole", "stdin: partial"]);
    let ticks = ticks_over_one_idle_second(&server);
    assert!(ticks <= IDLE_TICKS, "{ticks} CPU ticks in an idle second after stdin EOF");
    send(&queue, "after stdin EOF");
    server.stdout.wait_exact("mq[0]: after stdin EOF");
    assert!(server.is_running());
}

#[test]
fn stdin_that_is_a_regular_file_is_read_and_the_server_keeps_serving_without_spinning() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let path = dir.join("input.txt");
    std::fs::File::create(&path).unwrap().write_all(b"from a file\n\nlast, no newline").unwrap();
    let mut server =
        ServerBuilder::on(&queue).stdin(Input::File(std::fs::File::open(&path).unwrap())).start();

    assert_eq!(server.stdout.wait_count(3), ["stdin: from a file", "stdin: ", "stdin: last, no newline"]);
    let ticks = ticks_over_one_idle_second(&server);
    assert!(ticks <= IDLE_TICKS, "{ticks} CPU ticks in an idle second with a file as stdin");
    send(&queue, "after the file");
    server.stdout.wait_exact("mq[0]: after the file");
    assert!(server.is_running());
}

#[test]
fn stdin_that_is_dev_null_is_read_and_the_server_keeps_serving_without_spinning() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).stdin(Input::Null).start();

    let ticks = ticks_over_one_idle_second(&server);
    assert!(ticks <= IDLE_TICKS, "{ticks} CPU ticks in an idle second with /dev/null as stdin");
    send(&queue, "after /dev/null");
    server.stdout.wait_exact("mq[0]: after /dev/null");
    assert!(server.is_running());
    assert_eq!(server.stdout.snapshot(), ["mq[0]: after /dev/null"], "/dev/null gives no lines");
}

#[test]
fn stdin_line_longer_than_message_size_is_printed_in_pieces() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).stdin(Input::Pipe).start(); // --message-size 256

    server.write_stdin(format!("{}{}\n", "s".repeat(256), "t".repeat(10)).as_bytes());

    assert_eq!(
        server.stdout.wait_count(2),
        [format!("stdin: {}", "s".repeat(256)), format!("stdin: {}", "t".repeat(10))]
    );
}
