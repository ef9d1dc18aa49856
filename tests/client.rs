//! The client: arguments joined into one message, stdin lines as messages
//! in order, priorities, the queue name from the environment.

use support::*;

#[test]
fn arguments_joined_by_single_spaces_are_one_message() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    client(["--queue", queue.name(), "hello", "big  wide", "world"]).assert_success();
    send(&queue, "end");

    assert_eq!(server.stdout.wait_count(2), ["mq[0]: hello big  wide world", "mq[0]: end"]);
}

#[test]
fn arguments_after_double_dash_are_message_words_even_with_dashes() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    client(["--queue", queue.name(), "--", "--priority", "-n"]).assert_success();

    server.stdout.wait_exact("mq[0]: --priority -n");
}

#[test]
fn each_stdin_line_is_one_message_and_a_thousand_arrive_in_order() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // capacity 10: the client waits for room
    let input: String = (1..=1000).map(|n| format!("{n}\n")).collect();

    let run = client_with_input(["--queue", queue.name()], input.as_bytes());

    run.assert_success();
    let expected: Vec<String> = (1..=1000).map(|n| format!("mq[0]: {n}")).collect();
    assert_eq!(server.stdout.wait_count(1000), expected);
}

#[test]
fn stdin_lines_keep_empty_ones_and_a_last_line_without_newline() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    client_with_input(["--queue", queue.name()], b"first\n\nlast").assert_success();

    assert_eq!(server.stdout.wait_count(3), ["mq[0]: first", "mq[0]: ", "mq[0]: last"]);
}

#[test]
fn priority_option_sets_the_message_priority_up_to_32767() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    client(["--queue", queue.name(), "--priority", "32767", "top"]).assert_success();
    client(["--queue", queue.name(), "--priority=0", "bottom"]).assert_success();

    assert_eq!(server.stdout.wait_count(2), ["mq[32767]: top", "mq[0]: bottom"]);
}

#[test]
fn client_takes_the_queue_name_from_postbox_queue() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut command = client_command(["via", "environment"]);
    command.env("POSTBOX_QUEUE", queue.name());

    run_to_end(command, b"", DEADLINE).assert_success();

    server.stdout.wait_exact("mq[0]: via environment");
}

#[test]
fn client_queue_option_wins_over_postbox_queue() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let other = TestQueue::new();
    let mut command = client_command(["--queue", queue.name(), "explicit"]);
    command.env("POSTBOX_QUEUE", other.name());

    run_to_end(command, b"", DEADLINE).assert_success();

    server.stdout.wait_exact("mq[0]: explicit");
}

/// Without `--queue` and `POSTBOX_QUEUE` the client uses `/postbox`; it is
/// checked through the error for a missing queue, so `/postbox` must not
/// exist on this machine.
#[test]
fn client_queue_defaults_to_postbox() {
    let postbox = TestQueue::well_known("/postbox");

    let run = client(["hello"]);

    assert_eq!(run.code(), 1);
    assert!(run.stderr.contains("/postbox"), "stderr: {}", run.stderr);
    assert!(!postbox.exists(), "the client must not create the queue");
}

/// Fills the queue of a stopped server, starts a client with `options`,
/// waits until it blocks on the full queue, and lets the server drain it.
fn client_waits_for_room_until_the_server_drains(options: &[&str]) {
    let queue = TestQueue::new();
    let server = start_server(&queue); // capacity 10
    server.pause();
    for n in 1..=10 {
        send(&queue, &format!("fill {n}"));
    }
    let mut args = vec!["--queue", queue.name()];
    args.extend_from_slice(options);
    args.push("waited for room");
    let waiting = Process::start(client_command(args), b"");
    waiting.wait_blocked_on_a_queue();

    server.resume();

    waiting.finish(DEADLINE).assert_success();
    assert_eq!(server.stdout.wait_count(11)[10], "mq[0]: waited for room");
}

#[test]
fn client_waits_for_room_in_a_full_queue_by_default() {
    client_waits_for_room_until_the_server_drains(&[]);
}

#[test]
fn client_with_a_timeout_waits_for_room_in_a_full_queue() {
    client_waits_for_room_until_the_server_drains(&["--timeout", "30"]);
}
