//! `server --help` lists every option with its default, the environment
//! variable, and an example; `--version` names the program and its version.
//!
//! These tests also make `cargo test --workspace` build the `server`
//! binary, which the end-to-end tests of the workspace run.

use std::process::{Command, Output};

fn server(arg: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .arg(arg)
        .env_remove("POSTBOX_QUEUE")
        .output()
        .expect("run the server")
}

fn help() -> String {
    let run = server("--help");
    assert!(run.status.success(), "--help failed: {run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stderr), "", "--help writes to stdout only");
    String::from_utf8(run.stdout).expect("--help is UTF-8")
}

#[test]
fn help_lists_every_option_default_environment_and_an_example() {
    let text = help();

    assert!(text.starts_with("Usage: server"), "{text}");
    for part in [
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
    ] {
        assert!(text.contains(part), "--help does not mention {part:?}:\n{text}");
    }
}

#[test]
fn short_h_is_help_too() {
    let run = server("-h");

    assert!(run.status.success());
    assert_eq!(String::from_utf8_lossy(&run.stdout), help());
}

#[test]
fn version_prints_the_name_and_the_package_version() {
    for arg in ["--version", "-V"] {
        let run = server(arg);

        assert!(run.status.success(), "{arg} failed: {run:?}");
        let expected = format!("server {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(String::from_utf8_lossy(&run.stdout), expected, "{arg}");
    }
}
