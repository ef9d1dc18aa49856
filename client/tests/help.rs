//! `client --help` lists every option with its default, the environment
//! variable, and an example; `--version` names the program and its version.
//!
//! These tests also make `cargo test --workspace` build the `client`
//! binary, which the end-to-end tests of the workspace run.

use std::process::{Command, Output};

fn client(arg: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_client"))
        .arg(arg)
        .env_remove("POSTBOX_QUEUE")
        .output()
        .expect("run the client")
}

fn help() -> String {
    let run = client("--help");
    assert!(run.status.success(), "--help failed: {run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stderr), "", "--help writes to stdout only");
    String::from_utf8(run.stdout).expect("--help is UTF-8")
}

#[test]
fn help_lists_every_option_default_environment_and_an_example() {
    let text = help();

    assert!(text.starts_with("Usage: client"), "{text}");
    for part in [
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
    ] {
        assert!(text.contains(part), "--help does not mention {part:?}:\n{text}");
    }
}

#[test]
fn short_h_is_help_too() {
    let run = client("-h");

    assert!(run.status.success());
    assert_eq!(String::from_utf8_lossy(&run.stdout), help());
}

#[test]
fn version_prints_the_name_and_the_package_version() {
    for arg in ["--version", "-V"] {
        let run = client(arg);

        assert!(run.status.success(), "{arg} failed: {run:?}");
        let expected = format!("client {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(String::from_utf8_lossy(&run.stdout), expected, "{arg}");
    }
}

/// A bad argument is a usage error (exit 2) that points to `--help`, and
/// nothing is sent.
#[test]
fn unknown_option_is_a_usage_error_that_points_to_help() {
    let run = client("--frobnicate");

    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("client: ") && stderr.contains("--frobnicate"), "{stderr}");
    assert!(stderr.contains("--help"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "");
}
