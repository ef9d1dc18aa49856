//! `--help` on both binaries lists every option with its default, the
//! environment variable, and an example.

use postbox::*;

fn run(program: &str, arg: &str) -> Finished {
    let mut command = std::process::Command::new(binary(program));
    command.arg(arg);
    run_to_end(command, b"", DEADLINE)
}

fn help(program: &str) -> String {
    let run = run(program, "--help");
    run.assert_success();
    assert_eq!(run.stderr, "");
    run.stdout
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "--help does not mention {part:?}:\n{text}");
    }
}

#[test]
fn server_help_lists_every_option_default_environment_and_an_example() {
    let text = help("server");

    assert!(text.starts_with("Usage: server"), "{text}");
    assert_mentions(
        &text,
        &[
            "--queue NAME",
            "--listen ADDR",
            "--max-messages N",
            "--message-size BYTES",
            "--mode OCTAL",
            "-v, --verbose",
            "-q, --quiet",
            "-h, --help",
            "/postbox",
            "127.0.0.1:7777",
            "unix:PATH",
            "[default: 10]",
            "[default: 8192]",
            "[default: 0600]",
            "POSTBOX_QUEUE",
            "Example",
            "server --queue",
        ],
    );
}

#[test]
fn client_help_lists_every_option_default_environment_and_an_example() {
    let text = help("client");

    assert!(text.starts_with("Usage: client"), "{text}");
    assert_mentions(
        &text,
        &[
            "--queue NAME",
            "--priority N",
            "--timeout SECONDS",
            "--nonblock",
            "-h, --help",
            "/postbox",
            "32767",
            "[default: 0]",
            "POSTBOX_QUEUE",
            "Example",
            "client ",
        ],
    );
}

#[test]
fn short_h_is_help_too() {
    for program in ["server", "client"] {
        assert_eq!(run(program, "-h").stdout, help(program));
    }
}
