//! The client's errors: one clear line on stderr and a non-zero exit (2 for
//! bad arguments, 1 otherwise), and never a queue created.

use support::*;

/// Asserts a bad-arguments exit: status 2, the reason on the first line,
/// and nothing but the pointer to --help after it.
fn assert_usage_error(run: &Finished, reason: &str) {
    assert_eq!(run.code(), 2, "stderr: {}", run.stderr);
    let lines = run.stderr_lines();
    assert!(lines[0].starts_with("client: ") && lines[0].contains(reason), "stderr: {}", run.stderr);
    assert!(lines[1..].iter().all(|l| l.contains("--help")), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "");
}

/// Asserts a run-time failure: status 1 and exactly one line on stderr
/// containing every one of `parts`.
fn assert_failure(run: &Finished, parts: &[&str]) {
    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert_eq!(run.stderr_lines().len(), 1, "one line expected: {}", run.stderr);
    for part in parts {
        assert!(run.stderr.contains(part), "{part:?} missing from: {}", run.stderr);
    }
}

#[test]
fn missing_queue_asks_whether_the_server_is_running_and_creates_nothing() {
    let queue = TestQueue::new();

    let run = client(["--queue", queue.name(), "hello"]);

    assert_failure(&run, &[queue.name(), "is the server running?"]);
    assert!(!queue.exists(), "the client must never create the queue");
}

/// Root passes permission checks (CAP_DAC_OVERRIDE), so as root the
/// client runs as nobody (uid 65534) through setpriv or runuser; as anyone
/// else it runs as itself on a queue of mode 0400.
#[test]
fn permission_denied_is_reported() {
    let queue = TestQueue::new();
    let _server = ServerBuilder::on(&queue).args(["--mode", "0400"]).start();
    let args = ["--queue", queue.name(), "hello"];
    // SAFETY: plain query.
    let run = if unsafe { libc::geteuid() } != 0 {
        client(args)
    } else if let Some(command) = as_nobody(&binary("client"), &args) {
        run_to_end(command, b"", DEADLINE)
    } else {
        println!("skipped: neither setpriv nor runuser can run the client as another user");
        return;
    };

    assert_failure(&run, &[queue.name(), "permission denied"]);
}

/// A command that runs `program` with `args` as uid and gid 65534.
fn as_nobody(program: &std::path::Path, args: &[&str]) -> Option<std::process::Command> {
    let works = |tool: &str, probe: &[&str]| {
        std::process::Command::new(tool)
            .args(probe)
            .arg("true")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let runuser = ["-u", "nobody", "--"];
    let wrapper = if works("setpriv", &setpriv) {
        ("setpriv", &setpriv[..])
    } else if works("runuser", &runuser) {
        ("runuser", &runuser[..])
    } else {
        return None;
    };
    let mut command = std::process::Command::new(wrapper.0);
    command.args(wrapper.1).arg(program).args(args).env_remove("POSTBOX_QUEUE");
    Some(command)
}

#[test]
fn message_longer_than_the_queue_allows_names_both_sizes_and_is_not_sent() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // --message-size 256

    let run = client(["--queue", queue.name(), &"x".repeat(300)]);

    assert_failure(&run, &["300", "256", queue.name()]);
    send(&queue, "fits");
    assert_eq!(server.stdout.wait_count(1), ["mq[0]: fits"]);
}

#[test]
fn message_of_exactly_the_queues_size_is_sent() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // --message-size 256

    client(["--queue", queue.name(), &"y".repeat(256)]).assert_success();

    server.stdout.wait_exact(&format!("mq[0]: {}", "y".repeat(256)));
}

#[test]
fn priority_outside_0_to_32767_is_a_usage_error() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    for bad in ["32768", "-1", "high", "", "1.5"] {
        let run = client(["--queue", queue.name(), "--priority", bad, "never sent"]);
        assert_usage_error(&run, "32767");
    }
    send(&queue, "only this");
    assert_eq!(server.stdout.wait_count(1), ["mq[0]: only this"]);
}

/// Fills the queue of a stopped server, runs the client with `how` on it,
/// checks the failure names all of `said`, and that nothing was sent.
fn full_queue_refuses_the_client(how: &[&str], said: &[&str]) {
    let queue = TestQueue::new();
    let server = start_server(&queue); // capacity 10
    server.pause();
    for n in 1..=10 {
        send(&queue, &format!("fill {n}"));
    }

    let run = client([&["--queue", queue.name()], how, &["one too many"]].concat());

    let mut parts = vec![queue.name(), "full"];
    parts.extend_from_slice(said);
    assert_failure(&run, &parts);
    server.resume();
    send(&queue, "end");
    let printed = server.stdout.wait_count(11);
    assert!(!printed.iter().any(|l| l.contains("one too many")), "{printed:?}");
    assert_eq!(printed[10], "mq[0]: end");
}

#[test]
fn full_queue_with_nonblock_fails_at_once_and_sends_nothing() {
    full_queue_refuses_the_client(&["--nonblock"], &[]);
}

#[test]
fn full_queue_with_timeout_fails_after_waiting_and_sends_nothing() {
    full_queue_refuses_the_client(&["--timeout", "0.2"], &["0.2"]);
}

#[test]
fn stdin_line_too_long_names_its_line_number_and_stops() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let input = format!("first\n{}\nthird\n", "z".repeat(300));

    let run = client_with_input(["--queue", queue.name()], input.as_bytes());

    assert_failure(&run, &["line 2", "300", "256"]);
    send(&queue, "end");
    assert_eq!(server.stdout.wait_count(2), ["mq[0]: first", "mq[0]: end"]);
}

#[test]
fn bad_queue_names_are_usage_errors() {
    for bad in ["postbox", "/", "/a/b", "", "/.."] {
        let run = client(["--queue", bad, "hello"]);
        assert_usage_error(&run, "not valid");
    }
}

#[test]
fn queue_name_longer_than_255_bytes_is_refused() {
    let long = format!("/{}", "n".repeat(256));

    let run = client(["--queue", &long, "hello"]);

    assert_ne!(run.code(), 0);
    assert!(run.stderr.contains("not valid"), "stderr: {}", run.stderr);
    assert!(!queue_exists(&format!("/{}", "n".repeat(255))));
}

#[test]
fn bad_arguments_are_usage_errors() {
    for (args, reason) in [
        (&["--frobnicate", "x"][..], "--frobnicate"),
        (&["--timeout", "1", "--nonblock", "x"], "--nonblock"),
        (&["--timeout", "soon", "x"], "--timeout"),
        (&["--timeout", "-1", "x"], "--timeout"),
        (&["--priority"], "--priority"),
        (&["--queue"], "--queue"),
    ] {
        let run = client(args);
        assert_usage_error(&run, reason);
    }
}
