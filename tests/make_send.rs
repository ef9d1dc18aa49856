//! `make send MSG=...` passes MSG to the client as exactly one argument,
//! whatever it holds.

use std::path::Path;
use std::process::Command;

use support::*;

/// `make send` with the client of this build: `CARGO=true` turns the
/// Makefile's build step into a no-op (the binaries are built already, by
/// the `cargo test` that runs this), and `BIN` points it to the directory
/// of this build's binaries instead of `target/release`.
fn make_send(queue: &TestQueue, message: &str) -> Finished {
    let bin = binary("client").parent().map(Path::to_path_buf).expect("the client is in a directory");
    let mut command = Command::new("make");
    command
        .arg("-s")
        .arg("-C")
        .arg(workspace())
        .arg("send")
        .arg(format!("MSG={message}"))
        .arg(format!("QUEUE={}", queue.name()))
        .arg("CARGO=true")
        .arg(format!("BIN={}", bin.display()))
        .env_remove("POSTBOX_QUEUE")
        .env_remove("MAKEFLAGS");
    run_to_end(command, b"", DEADLINE)
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
