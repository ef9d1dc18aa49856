//! What no user should be able to do to the server or the client: an
//! endless stdin, a client left waiting on a queue whose server stopped,
//! arguments that are not UTF-8, a startup that fails halfway.

use std::fs::File;
use std::io;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// `server < /dev/zero`: epoll refuses the device, and reading it never
/// ends; the server reads it a chunk per round and still obeys SIGTERM.
#[test]
fn endless_unpollable_stdin_does_not_keep_the_server_from_stopping() {
    let queue = TestQueue::new();
    let zero = File::open("/dev/zero").expect("open /dev/zero");
    let mut server = ServerBuilder::on(&queue).stdin(Input::File(zero)).raw_stdout().start();
    let mut stdout = server.take_stdout();
    let reader = thread::spawn(move || io::copy(&mut stdout, &mut io::sink()));

    send(&queue, "still served");
    let status = server.terminate();

    assert_eq!(status.code(), Some(0), "stderr: {:?}", server.stderr.snapshot());
    assert!(!queue.exists(), "the queue must be removed");
    let copied = reader.join().expect("reader thread").expect("read the server's stdout");
    assert!(copied > 0, "stdin was read");
    let log = server.stderr.snapshot().join("\n");
    assert!(log.contains("mq 1"), "the queue was served meanwhile: {log}");
}

/// `yes`: an input that never ends, killed at the end of the test.
struct Endless(std::process::Child);

impl Endless {
    fn lines_of(text: &str) -> Endless {
        let yes = Command::new("yes").arg(text).stdout(Stdio::piped()).spawn().expect("run yes");
        Endless(yes)
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client waiting for room in a full queue whose server then stops must
/// not wait for ever on the removed queue. Its input never ends, so it
/// outlasts whatever the stopping server still drains (for at most a
/// couple of seconds), and is left waiting for room in the removed queue.
#[test]
fn client_waiting_for_room_gives_up_when_the_server_stops() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue); // capacity 10
    server.pause();
    let mut endless = Endless::lines_of("more");
    let input = endless.0.stdout.take().expect("yes's stdout is piped");
    let sender = Process::start_reading(client_command(["--queue", queue.name()]), input);
    sender.wait_blocked_on_a_queue();

    server.signal(libc::SIGTERM);
    server.resume();
    assert_eq!(server.wait_exit().code(), Some(0));

    let sent = sender.finish(DEADLINE);
    assert_eq!(sent.code(), 1, "stderr: {}", sent.stderr);
    assert!(sent.stderr.contains("was removed while waiting for room"), "stderr: {}", sent.stderr);
    drop(endless);
}

#[test]
fn arguments_that_are_not_utf8_are_usage_errors_not_panics() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bad = OsStr::from_bytes(b"/\xff");

    let server = ServerBuilder::bare().args([OsStr::new("--queue"), bad]).run_to_exit();
    assert_eq!(server.code(), 2, "stderr: {}", server.stderr);
    assert!(server.stderr.contains("not valid UTF-8"), "stderr: {}", server.stderr);

    let client = client([OsStr::new("--queue"), bad, OsStr::new("x")]);
    assert_eq!(client.code(), 2, "stderr: {}", client.stderr);
    assert!(!client.stderr.contains("panicked"), "stderr: {}", client.stderr);
}

/// A message is bytes: an argument that is not UTF-8 is sent as it is, and
/// the server prints the bytes escaped.
#[test]
fn a_message_argument_that_is_not_utf8_is_sent_as_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let queue = TestQueue::new();
    let server = start_server(&queue);

    client([OsStr::new("--queue"), OsStr::new(queue.name()), OsStr::from_bytes(b"caf\xe9")]).assert_success();

    server.stdout.wait_exact("mq[0]: caf\\xe9");
}

/// Out of descriptors right after creating the queue: the startup fails
/// and the queue it created is removed again.
#[test]
fn startup_failing_after_the_queue_was_created_leaves_no_queue() {
    let queue = TestQueue::new();
    let mut builder = ServerBuilder::on(&queue).args(["--listen", "none"]);
    builder = builder.pre_exec_hook(|| {
        // 0, 1, 2, the epoll instance, the signalfd and the queue: no room
        // for the second look at the queue's name.
        let limit = libc::rlimit { rlim_cur: 6, rlim_max: 6 };
        // SAFETY: plain call with a valid struct.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    });

    let run = builder.run_to_exit();

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(!queue.exists(), "the queue created before the failure must be removed");
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

/// A server killed with SIGKILL leaves its statistics; the next one, even
/// if it fails to bind its address, replaces them before it goes.
#[test]
fn statistics_left_by_a_killed_server_go_even_if_the_next_server_fails_to_bind() {
    let queue = TestQueue::new();
    let mut first = start_server(&queue);
    first.signal(libc::SIGKILL);
    first.wait_exit();
    assert!(!queue.shared_memory().is_empty(), "SIGKILL leaves the statistics");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let run = ServerBuilder::on(&queue).args(["--listen", &addr]).run_to_exit();

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

/// A client waiting for room checks every second that its queue is still
/// there, and closes what it opened for that: its descriptors stay flat.
#[test]
fn client_waiting_for_room_does_not_leak_descriptors() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // capacity 10
    server.pause();
    for n in 1..=10 {
        send(&queue, &format!("fill {n}"));
    }
    let waiting = Process::start(client_command(["--queue", queue.name(), "one too many"]), b"");
    let queue_fds = || waiting.open_files().iter().filter(|f| f.contains(&queue.name()[1..])).count();
    server.wait_for("the client to wait", || queue_fds() == 1);
    let before = waiting.open_files().len();

    // Three checks of the queue go by (one a second): a measuring window.
    let start = Instant::now();
    server.wait_for("three seconds", || start.elapsed() >= Duration::from_millis(3300));

    // A check under way holds a second descriptor for a moment: what
    // matters is that the count comes back, with one queue descriptor.
    server.wait_for("the client's descriptors back to where they were", || {
        queue_fds() == 1 && waiting.open_files().len() == before
    });
}

/// A write error other than a reader leaving is logged as it happens and
/// fails the run: here stdout is /dev/full (ENOSPC).
#[test]
fn stdout_write_error_is_logged_and_exits_1() {
    let queue = TestQueue::new();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
    let mut server = ServerBuilder::on(&queue).args(["--listen", "none"]).stdout_to(full).start();

    // Sent by the test itself: the server stops at once and removes the
    // queue, which a client's last check of its queue may then report.
    RawQueue::open(queue.name(), Access::Send).expect("open the queue").send(b"nowhere to go", 0);

    assert_eq!(server.wait_exit().code(), Some(1));
    let log = server.stderr.snapshot().join("\n");
    assert!(log.contains("No space left on device"), "the cause is logged: {log}");
    assert!(!queue.exists(), "the queue must be removed");
}
