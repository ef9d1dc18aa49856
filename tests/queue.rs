//! The server's message queue: its name, its attributes, its mode, one
//! server per queue, adopting a queue a killed server left, priorities.

use support::*;

#[test]
fn queue_message_is_printed_with_its_priority() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    send_with_priority(&queue, 7, "hello world");

    server.stdout.wait_exact("mq[7]: hello world");
}

#[test]
fn queue_name_comes_from_postbox_queue_when_no_queue_option_is_given() {
    let queue = TestQueue::new();
    let server = ServerBuilder::bare()
        .env("POSTBOX_QUEUE", queue.name())
        .args(["--message-size", "256", "--listen", "none"])
        .start();

    assert!(queue.exists(), "the server should have created {}", queue.name());
    let mut command = client_command(["from the environment"]);
    command.env("POSTBOX_QUEUE", queue.name());
    run_to_end(command, b"", DEADLINE).assert_success();
    server.stdout.wait_exact("mq[0]: from the environment");
}

#[test]
fn queue_option_wins_over_postbox_queue() {
    let queue = TestQueue::new();
    let ignored = TestQueue::new();
    let _server = ServerBuilder::on(&queue).env("POSTBOX_QUEUE", ignored.name()).start();

    assert!(queue.exists());
    assert!(!ignored.exists(), "POSTBOX_QUEUE must not be used when --queue is given");
}

/// Asking for more than the system allows fails before any queue exists,
/// and the message names the queue: that shows the default name without
/// creating `/postbox`, which a real server might be using.
#[test]
fn queue_name_defaults_to_postbox_without_option_or_environment() {
    let postbox = TestQueue::well_known("/postbox");
    let too_many = (mqueue_limit("msg_max") + 1).to_string();
    let run = ServerBuilder::bare().args(["--listen", "none", "--max-messages", &too_many]).run_to_exit();

    assert_eq!(run.code(), 1);
    assert!(run.stderr.contains("queue /postbox:"), "stderr: {}", run.stderr);
    assert!(!postbox.exists());
}

#[test]
fn queue_is_created_with_the_requested_capacity_and_message_size() {
    let queue = TestQueue::new();
    let _server = ServerBuilder::on(&queue).args(["--max-messages", "3", "--message-size", "100"]).start();

    let attr = RawQueue::open(queue.name(), Access::Receive).unwrap().attributes();
    assert_eq!((attr.max_messages, attr.message_size), (3, 100));
}

#[test]
fn queue_defaults_to_10_messages_of_8192_bytes() {
    let queue = TestQueue::new();
    let _server = ServerBuilder::bare().args(["--queue", queue.name(), "--listen", "none"]).start();

    let attr = RawQueue::open(queue.name(), Access::Receive).unwrap().attributes();
    assert_eq!((attr.max_messages, attr.message_size), (10, 8192));
}

#[test]
fn queue_mode_defaults_to_0600() {
    let queue = TestQueue::new();
    let _server = ServerBuilder::on(&queue).umask(0o022).start();

    assert_eq!(RawQueue::open(queue.name(), Access::Receive).unwrap().mode(), 0o600);
}

#[test]
fn queue_mode_is_taken_from_the_mode_option() {
    let queue = TestQueue::new();
    let _server = ServerBuilder::on(&queue).umask(0o022).args(["--mode", "0640"]).start();

    assert_eq!(RawQueue::open(queue.name(), Access::Receive).unwrap().mode(), 0o640);
}

#[test]
fn queue_mode_is_exactly_the_mode_option_whatever_the_umask() {
    let queue = TestQueue::new();
    let _server = ServerBuilder::on(&queue).umask(0o077).args(["--mode", "0666"]).start();

    assert_eq!(RawQueue::open(queue.name(), Access::Receive).unwrap().mode(), 0o666);
}

#[test]
fn queue_shows_up_in_the_mqueue_filesystem_while_the_server_runs() {
    let Some(mount) = mqueue_mount_or_skip() else { return };
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).umask(0o022).start();
    let file = mount.join(queue.name().trim_start_matches('/'));

    let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!file.exists(), "{} should be gone after shutdown", file.display());
}

#[test]
fn second_server_on_a_live_servers_queue_exits_1_and_leaves_it_working() {
    let queue = TestQueue::new();
    let first = start_server(&queue);
    first.pause();
    send(&queue, "waiting for the first");

    let second = ServerBuilder::on(&queue).run_to_exit();

    assert_eq!(second.code(), 1);
    assert!(second.stderr.contains("in use by another running server"), "stderr: {}", second.stderr);
    assert_eq!(second.stdout, "", "the second server must not take messages");
    assert!(queue.exists(), "the first server's queue must stay");
    first.resume();
    send(&queue, "still here");
    assert_eq!(first.stdout.wait_count(2), ["mq[0]: waiting for the first", "mq[0]: still here"]);
}

/// The queue is claimed before the socket is bound: a second server given
/// the very address the first listens on is told that the queue is taken,
/// not that the address is in use.
#[test]
fn second_server_on_the_same_queue_and_address_is_told_the_queue_is_in_use() {
    let queue = TestQueue::new();
    let first = start_server(&queue);
    let addr = first.tcp_addr();

    let second = ServerBuilder::on(&queue).args([format!("--listen={addr}")]).run_to_exit();

    assert_eq!(second.code(), 1);
    assert!(second.stderr.contains("in use by another running server"), "stderr: {}", second.stderr);
    assert!(!second.stderr.contains("cannot listen"), "stderr: {}", second.stderr);
    assert_eq!(second.stdout, "");
    send(&queue, "queue still served");
    first.stdout.wait_exact("mq[0]: queue still served");
    let mut stream = std::net::TcpStream::connect(addr).expect("the first server still accepts");
    std::io::Write::write_all(&mut stream, b"socket still served\n").unwrap();
    first.stdout.wait_exact(&format!("tcp[{}]: socket still served", stream.local_addr().unwrap()));
    // Nor did the refused server touch the first one's statistics.
    assert_eq!(stats_of(&queue)["pid"].u64(), first.pid() as u64);
}

#[test]
fn second_server_refused_a_queue_removes_its_own_socket_file() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let _first = start_server(&queue);
    let socket = dir.join("second.sock");

    let second =
        ServerBuilder::on(&queue).args([format!("--listen=unix:{}", socket.display())]).run_to_exit();

    assert_eq!(second.code(), 1);
    assert!(!socket.exists(), "the refused server left {}", socket.display());
}

#[test]
fn queue_left_by_a_killed_server_is_adopted_and_its_messages_printed_first() {
    let queue = TestQueue::new();
    let mut dead = start_server(&queue);
    dead.pause();
    send_with_priority(&queue, 1, "low");
    send_with_priority(&queue, 9, "high");
    send_with_priority(&queue, 1, "low again");
    dead.signal(libc::SIGKILL);
    dead.wait_exit();
    assert!(queue.exists(), "SIGKILL leaves the queue behind");

    let server = start_server(&queue);
    send(&queue, "after adoption");

    let lines = server.stdout.wait_count(4);
    assert_eq!(lines, ["mq[9]: high", "mq[1]: low", "mq[1]: low again", "mq[0]: after adoption"]);
    server.stderr.wait_containing("adopted");
}

#[test]
fn queue_made_by_someone_else_and_not_owned_is_adopted_with_its_messages() {
    let queue = TestQueue::new();
    let raw = RawQueue::create(queue.name(), 5, 64, 0o600).unwrap();
    raw.send(b"waiting one\n", 0);
    raw.send(b"waiting two", 3);
    drop(raw);

    let server = start_server(&queue);

    assert_eq!(server.stdout.wait_count(2), ["mq[3]: waiting two", "mq[0]: waiting one"]);
    // Adopted as it is: the existing attributes, not the requested ones.
    let attr = RawQueue::open(queue.name(), Access::Receive).unwrap().attributes();
    assert_eq!((attr.max_messages, attr.message_size), (5, 64));
}

#[test]
fn messages_waiting_with_different_priorities_are_printed_highest_first() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    server.pause();
    for (priority, text) in
        [(1, "p1"), (5, "p5 first"), (3, "p3"), (0, "p0"), (5, "p5 second"), (32767, "max")]
    {
        send_with_priority(&queue, priority, text);
    }

    server.resume();

    assert_eq!(
        server.stdout.wait_count(6),
        ["mq[32767]: max", "mq[5]: p5 first", "mq[5]: p5 second", "mq[3]: p3", "mq[1]: p1", "mq[0]: p0"]
    );
}

#[test]
fn servers_started_together_on_one_name_leave_exactly_one_owner() {
    let queue = TestQueue::new();
    let mut servers: Vec<Server> = (0..4).map(|_| ServerBuilder::on(&queue).spawn()).collect();
    let ready = |server: &Server| server.stderr.snapshot().iter().any(|l| l.contains("ready"));

    wait_until("every server to be ready or gone", || {
        servers.iter_mut().all(|server| !server.is_running() || ready(server))
    });

    let (mut owners, mut refused): (Vec<Server>, Vec<Server>) =
        servers.into_iter().partition(|server| ready(server));
    assert_eq!(owners.len(), 1, "exactly one server may own the queue");
    for server in &mut refused {
        assert_eq!(server.wait_exit().code(), Some(1));
        server.stderr.wait_containing("in use by another running server");
    }
    send(&queue, "to the owner");
    owners[0].stdout.wait_exact("mq[0]: to the owner");
    assert!(owners[0].is_running());
}
