//! `make send MSG=...` passes MSG to the client as exactly one argument,
//! whatever it holds.

use std::process::Command;
use std::time::Duration;

use postbox::*;

/// `make send` builds the workspace first; allow for a real build.
const BUILD_LIMIT: Duration = Duration::from_secs(300);

fn make_send(queue: &TestQueue, message: &str) -> Finished {
    binary("client"); // the build, once, before make's own (a no-op then)
    let mut command = Command::new("make");
    command
        .arg("-s")
        .arg("-C")
        .arg(workspace())
        .arg("send")
        .arg(format!("MSG={message}"))
        .arg(format!("QUEUE={}", queue.name()))
        .env("CARGO", env!("CARGO"))
        .env_remove("POSTBOX_QUEUE")
        .env_remove("MAKEFLAGS");
    run_to_end(command, b"", BUILD_LIMIT)
}

#[test]
fn make_send_passes_msg_as_exactly_one_argument() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let message = r#"a  "b" $HOME 'c' d"#;

    make_send(&queue, message).assert_success();

    assert_eq!(server.stdout.wait_count(1), [format!("mq[0]: {message}")]);
}

#[test]
fn make_send_keeps_shell_and_make_syntax_in_msg_as_text() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let messages = [r"$(shell echo x) `id` ; \ %", "--priority 5", "'", r#"$$ ""#];

    for message in messages {
        make_send(&queue, message).assert_success();
    }

    let expected: Vec<String> =
        messages.iter().map(|m| format!("mq[0]: {}", escaped(m.as_bytes()))).collect();
    assert_eq!(server.stdout.wait_count(messages.len()), expected);
}
