//! Startup failures: one clear line on stderr, exit 2 for bad arguments and
//! 1 otherwise, and no queue or socket file left behind.

use std::net::TcpListener;
use std::os::unix::net::UnixListener;

use support::*;

/// Asserts a failed start: the exit code, the reason on the first line of
/// stderr (a second line may only point to --help), nothing on stdout.
fn assert_failed_start(run: &Finished, code: i32, parts: &[&str]) {
    assert_eq!(run.code(), code, "stderr: {}", run.stderr);
    let lines = run.stderr_lines();
    assert!(!lines.is_empty(), "no reason given");
    for part in parts {
        assert!(lines[0].contains(part), "{part:?} missing from the first line: {}", run.stderr);
    }
    assert!(lines[1..].iter().all(|l| l.contains("--help")), "more than one line: {}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(!run.stderr.contains("panicked"));
}

/// A bad name is a bad argument, as for the client: exit 2.
#[test]
fn queue_name_without_a_leading_slash_is_refused() {
    let dir = TempDir::new();
    let socket = dir.join("s");

    let run = ServerBuilder::bare()
        .args(["--queue", "no-slash", "--message-size", "256"])
        .args([format!("--listen=unix:{}", socket.display())])
        .run_to_exit();

    assert_failed_start(&run, 2, &["no-slash", "slash"]);
    assert!(!queue_exists("/no-slash"));
    assert!(!socket.exists(), "the socket file was left behind");
}

#[test]
fn max_messages_above_the_system_limit_is_refused_even_for_root() {
    let queue = TestQueue::new();
    let limit = mqueue_limit("msg_max");
    let wanted = (limit + 1).to_string();

    let dir = TempDir::new();
    let socket = dir.join("s");

    let run = ServerBuilder::on(&queue)
        .args(["--max-messages", &wanted])
        .args([format!("--listen=unix:{}", socket.display())])
        .run_to_exit();

    assert_failed_start(
        &run,
        1,
        &[&wanted, &limit.to_string(), "/proc/sys/fs/mqueue/msg_max", &format!("fs.mqueue.msg_max={wanted}")],
    );
    assert!(!queue.exists());
    assert!(!socket.exists(), "the socket file was left behind");
}

#[test]
fn message_size_above_the_system_limit_is_refused() {
    let queue = TestQueue::new();
    let limit = mqueue_limit("msgsize_max");
    let wanted = (limit + 1).to_string();

    let run = ServerBuilder::on(&queue).args(["--message-size", &wanted]).run_to_exit();

    assert_failed_start(&run, 1, &[&wanted, &limit.to_string(), "msgsize_max"]);
    assert!(!queue.exists());
}

#[test]
fn max_messages_at_the_system_limit_is_accepted() {
    let queue = TestQueue::new();
    let limit = mqueue_limit("msg_max");

    let _server = ServerBuilder::on(&queue).args(["--max-messages", &limit.to_string()]).start();

    let attr = RawQueue::open(queue.name(), Access::Receive).unwrap().attributes();
    assert_eq!(attr.max_messages, limit);
}

#[test]
fn tcp_address_in_use_is_refused_and_leaves_no_queue() {
    let queue = TestQueue::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let run = ServerBuilder::on(&queue).args(["--listen", &addr]).run_to_exit();

    assert_failed_start(&run, 1, &[&addr, "in use"]);
    assert!(!queue.exists());
}

#[test]
fn unix_socket_in_use_is_refused_and_left_alone() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let path = dir.join("taken.sock");
    let taken = UnixListener::bind(&path).unwrap();

    let run = ServerBuilder::on(&queue).args([format!("--listen=unix:{}", path.display())]).run_to_exit();

    assert_failed_start(&run, 1, &["in use"]);
    assert!(!queue.exists());
    assert!(path.exists(), "the other program's socket file was removed");
    std::os::unix::net::UnixStream::connect(&path).expect("the other program's socket still works");
    drop(taken);
}

#[test]
fn stale_unix_socket_file_is_replaced() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let path = dir.join("stale.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens

    let server = ServerBuilder::on(&queue).args([format!("--listen=unix:{}", path.display())]).start();

    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    std::io::Write::write_all(&mut stream, b"on the new socket\n").unwrap();
    server.stdout.wait_exact("unix[1]: on the new socket");
}

#[test]
fn bad_arguments_exit_2_and_leave_no_queue() {
    let queue = TestQueue::new();
    for (args, reason) in [
        (&["--frobnicate"][..], "--frobnicate"),
        (&["--max-messages", "0"], "--max-messages"),
        (&["--max-messages", "many"], "--max-messages"),
        (&["--message-size", "-3"], "--message-size"),
        (&["--mode", "999"], "--mode"),
        (&["--mode", "rw"], "--mode"),
        (&["--listen", "nonsense"], "--listen"),
        (&["--listen", "unix:"], "unix:"),
        (&["--queue"], "--queue"),
        (&["-v=1"], "-v"),
    ] {
        let run = ServerBuilder::on(&queue).args(args).run_to_exit();
        assert_failed_start(&run, 2, &[reason]);
        assert!(!queue.exists(), "{args:?} left the queue");
    }
}

#[test]
fn quiet_server_prints_only_errors_on_stderr() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["-q"]).spawn();
    wait_until("the queue to exist", || queue.exists());

    send(&queue, "quietly");
    server.stdout.wait_exact("mq[0]: quietly");
    assert_eq!(server.terminate().code(), Some(0));

    assert_eq!(server.stderr.snapshot(), Vec::<String>::new());
}

#[test]
fn verbose_server_prints_debug_logs_on_stderr() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["-v"]).start();

    assert_eq!(server.terminate().code(), Some(0));

    let log = server.stderr.snapshot();
    assert!(log.iter().any(|l| l.contains("DEBUG")), "no debug lines with -v: {log:?}");
}

/// `server >&- <&-`: the closed descriptors get /dev/null (Rust's runtime
/// opens it on closed standard descriptors before `main`), so that the
/// epoll instance or the queue never takes number 1 and receives the
/// messages meant for stdout; the server serves and shuts down as usual.
#[test]
fn server_started_with_stdin_and_stdout_closed_serves_and_shuts_down() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue)
        .args(["--listen", "none"])
        .pre_exec_hook(|| {
            // SAFETY: plain calls between fork and exec, on the child's own descriptors.
            unsafe {
                libc::close(0);
                libc::close(1);
            }
        })
        .start();
    let fd1 = std::fs::read_link(format!("/proc/{}/fd/1", server.pid())).expect("fd 1 is open");
    assert_eq!(fd1, std::path::Path::new("/dev/null"));

    send(&queue, "into the void");

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!queue.exists(), "the queue must be removed");
    let log = server.stderr.snapshot().join("\n");
    assert!(log.contains("mq 1"), "the message was taken and counted: {log}");
}
