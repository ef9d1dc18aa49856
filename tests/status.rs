//! `client --status`: the queue's attributes (`mq_getattr`), its owner,
//! and its file in the mqueue filesystem.

use support::*;

/// The value after `label` on the line that starts with it.
fn value_of<'a>(status: &'a str, label: &str) -> &'a str {
    let line = status.lines().find(|l| l.starts_with(label));
    let line = line.unwrap_or_else(|| panic!("no {label:?} line in:\n{status}"));
    line[label.len()..].trim()
}

fn status_of(queue: &TestQueue) -> String {
    let run = client(["--status", "--queue", queue.name()]);
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr);
    run.stdout
}

#[test]
fn status_shows_the_waiting_messages_and_their_bytes_and_then_no_owner_after_sigkill() {
    let Some(mount) = mqueue_mount_or_skip() else { return };
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["--max-messages", "7"]).start();
    server.pause();
    let messages = ["one", "twenty-two", "a message of 3x"];
    for message in messages {
        send(&queue, message);
    }
    let bytes: usize = messages.iter().map(|m| m.len()).sum();

    let status = status_of(&queue);

    assert_eq!(status.lines().next(), Some(format!("queue {}", queue.name()).as_str()), "{status}");
    assert_eq!(value_of(&status, "messages waiting"), "3", "{status}");
    assert_eq!(value_of(&status, "capacity"), "7 messages", "{status}");
    assert_eq!(value_of(&status, "message size"), "256 bytes", "{status}");
    assert!(value_of(&status, "flags").starts_with("O_NONBLOCK"), "{status}");
    assert!(value_of(&status, "owner").starts_with("a running server"), "{status}");
    let file = mount.join(queue.name().trim_start_matches('/'));
    let (_, shown) = status
        .lines()
        .find_map(|l| l.split_once(&format!("{}: ", file.display())))
        .unwrap_or_else(|| panic!("no line for {} in:\n{status}", file.display()));
    let fields = mqueue_fields(shown);
    assert_eq!(field(&fields, "QSIZE"), bytes as i64, "{status}");
    assert_eq!(field(&fields, "NOTIFY_PID"), 0, "the default server does not use mq_notify");
    assert_eq!(fields, mqueue_file_fields(&mount, &queue), "the file as the test reads it");

    server.signal(libc::SIGKILL);
    server.wait_exit();
    let status = status_of(&queue);

    assert!(value_of(&status, "owner").starts_with("none"), "{status}");
    assert_eq!(value_of(&status, "messages waiting"), "3", "the messages stay in the queue");
}

#[test]
fn status_of_a_missing_queue_says_is_the_server_running_and_exits_1() {
    let queue = TestQueue::new();

    let run = client(["--status", "--queue", queue.name()]);

    assert_eq!(run.code(), 1);
    assert!(run.stderr.contains(&format!("queue {} does not exist", queue.name())), "{}", run.stderr);
    assert!(run.stderr.contains("is the server running?"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn status_sees_messages_leave_the_queue_when_the_server_goes_on() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    server.pause();
    send(&queue, "waiting");
    assert_eq!(value_of(&status_of(&queue), "messages waiting"), "1");

    server.resume();
    server.stdout.wait_exact("mq[0]: waiting");

    assert_eq!(value_of(&status_of(&queue), "messages waiting"), "0");
}
