//! `server --notify signal`: `mq_notify` with a real-time signal read from
//! a signalfd, instead of epoll on the queue's descriptor. It must deliver
//! exactly what the default mode delivers, in the same order.

use std::io;

use support::*;

/// A server on `queue` in the given mode (`epoll`, the default, or `signal`).
fn server_in(mode: &str, queue: &TestQueue) -> ServerBuilder {
    ServerBuilder::on(queue).args(["--notify", mode])
}

/// Registers the test process for `SIGEV_NONE` notification on `queue`
/// (no signal is ever sent to the test). The registration ends when the
/// descriptor is closed, or when this process closes any other descriptor
/// of the queue (reading its file in the mqueue filesystem included).
fn register(queue: &RawQueue) -> io::Result<()> {
    // SAFETY: `sigevent` is a plain C struct; all-zero is a valid start.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_NONE;
    // SAFETY: the descriptor is open and `event` lives across the call.
    if unsafe { libc::mq_notify(queue.raw(), &event) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn messages_sent_while_stopped_are_printed_highest_priority_first(mode: &str) {
    let queue = TestQueue::new();
    let server = server_in(mode, &queue).start();
    send(&queue, "first, before the stop");
    server.stdout.wait_exact("mq[0]: first, before the stop");
    server.pause();
    for (priority, text) in [(1, "p1"), (5, "p5 first"), (3, "p3"), (0, "p0"), (5, "p5 second"), (9, "p9")] {
        send_with_priority(&queue, priority, text);
    }

    server.resume();

    let expected =
        ["mq[9]: p9", "mq[5]: p5 first", "mq[5]: p5 second", "mq[3]: p3", "mq[1]: p1", "mq[0]: p0"];
    assert_eq!(server.stdout.wait_count(7)[1..], expected);
    // Re-armed after that: the next message is seen too.
    send(&queue, "after");
    server.stdout.wait_exact("mq[0]: after");
}

#[test]
fn notify_signal_prints_messages_sent_while_stopped_highest_priority_first() {
    messages_sent_while_stopped_are_printed_highest_priority_first("signal");
}

#[test]
fn notify_epoll_prints_messages_sent_while_stopped_highest_priority_first() {
    messages_sent_while_stopped_are_printed_highest_priority_first("epoll");
}

/// Four clients send numbered lines at once, sender `k` with priority `k`:
/// the queue goes from empty to non-empty over and over, each time a
/// notification that must be re-armed in time. A lost race leaves the
/// server unaware of a queue that fills up; the bursts are repeated to make
/// a narrow race show.
fn bursts_from_four_senders_lose_nothing_and_keep_each_senders_order(mode: &str) {
    const BURSTS: usize = 5;
    const SENDERS: u32 = 4;
    const LINES: usize = 2000;
    let queue = TestQueue::new();
    let server = server_in(mode, &queue).args(["--listen", "none"]).start();

    for burst in 0..BURSTS {
        let senders: Vec<Process> = (0..SENDERS)
            .map(|k| {
                let input: String = (0..LINES).map(|n| format!("b{burst} s{k} {n}\n")).collect();
                let priority = k.to_string();
                let command = client_command(["--queue", queue.name(), "--priority", &priority]);
                Process::start(command, input.as_bytes())
            })
            .collect();
        for sender in senders {
            sender.finish(DEADLINE).assert_success();
        }
        // One last message after all the others: once it is printed,
        // nothing sent before can still come (and nothing may come twice).
        let end = format!("end of burst {burst}");
        send(&queue, &end);
        server.stdout.wait_exact(&format!("mq[0]: {end}"));
        let lines = server.stdout.snapshot();

        let per_burst = SENDERS as usize * LINES + 1;
        assert_eq!(lines.len(), (burst + 1) * per_burst, "every line exactly once");
        let this_burst = &lines[burst * per_burst..];
        assert_eq!(this_burst.last(), Some(&format!("mq[0]: {end}")));
        for k in 0..SENDERS {
            let prefix = format!("mq[{k}]: b{burst} s{k} ");
            let numbers: Vec<usize> = this_burst
                .iter()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..LINES).collect::<Vec<_>>(), "the lines of sender {k} in burst {burst}");
        }
    }
    let stats = stats_of(&queue);
    assert_eq!(SourceFigures::of(&stats, "mq").messages, (BURSTS * (SENDERS as usize * LINES + 1)) as u64);
}

#[test]
fn notify_signal_loses_no_message_of_four_concurrent_senders() {
    bursts_from_four_senders_lose_nothing_and_keep_each_senders_order("signal");
}

#[test]
fn notify_epoll_loses_no_message_of_four_concurrent_senders() {
    bursts_from_four_senders_lose_nothing_and_keep_each_senders_order("epoll");
}

#[test]
fn notify_signal_prints_an_adopted_queues_messages_first_then_new_ones() {
    let queue = TestQueue::new();
    let raw = RawQueue::create(queue.name(), 10, 256, 0o600).unwrap();
    for (priority, text) in [(0, "old low"), (4, "old high"), (0, "old low again")] {
        raw.send(text.as_bytes(), priority);
    }
    drop(raw);

    let server = server_in("signal", &queue).start();
    assert_eq!(server.stdout.wait_count(3), ["mq[4]: old high", "mq[0]: old low", "mq[0]: old low again"]);
    // The registration was made while the queue was not empty: it must
    // still fire when the emptied queue gets a message.
    send(&queue, "new");

    assert_eq!(server.stdout.wait_count(4)[3], "mq[0]: new");
}

#[test]
fn notify_signal_shutdown_prints_what_is_left_and_removes_the_queue() {
    let queue = TestQueue::new();
    let mut server = server_in("signal", &queue).start();
    server.pause();
    let messages: Vec<String> = (1..=10).map(|n| format!("left over {n}")).collect();
    for message in &messages {
        send(&queue, message);
    }

    server.signal(libc::SIGTERM);
    server.resume();

    assert_eq!(server.wait_exit().code(), Some(0));
    let expected: Vec<String> = messages.iter().map(|m| format!("mq[0]: {m}")).collect();
    assert_eq!(server.stdout.snapshot(), expected);
    assert!(!queue.exists(), "the queue must be removed");
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

#[test]
fn notify_signal_registration_shows_in_the_mqueue_filesystem_while_the_server_waits() {
    let Some(mount) = mqueue_mount_or_skip() else { return };
    let queue = TestQueue::new();
    let server = server_in("signal", &queue).start();
    let registered = |fields: &[(String, i64)]| {
        field(fields, "NOTIFY") == libc::SIGEV_SIGNAL as i64
            && field(fields, "SIGNO") == libc::SIGRTMIN() as i64
            && field(fields, "NOTIFY_PID") == server.pid() as i64
    };
    // The registration is made in the first round, after `ready`.
    wait_until("the server's registration", || registered(&mqueue_file_fields(&mount, &queue)));
    assert_eq!(libc::SIGRTMIN(), 34, "SIGRTMIN on glibc");

    // A notification uses the registration up; the server makes a new one.
    for n in 0..3 {
        send(&queue, &format!("message {n}"));
        server.stdout.wait_exact(&format!("mq[0]: message {n}"));
        let fields = mqueue_file_fields(&mount, &queue);
        assert!(registered(&fields), "not registered again after message {n}: {fields:?}");
    }
}

#[test]
fn notify_epoll_server_leaves_the_queue_without_registration() {
    let Some(mount) = mqueue_mount_or_skip() else { return };
    let queue = TestQueue::new();
    let server = start_server(&queue);
    send(&queue, "seen by epoll");
    server.stdout.wait_exact("mq[0]: seen by epoll");

    let fields = mqueue_file_fields(&mount, &queue);
    assert_eq!((field(&fields, "NOTIFY_PID"), field(&fields, "SIGNO")), (0, 0), "{fields:?}");
}

#[test]
fn notify_signal_registration_makes_another_processs_mq_notify_fail_with_ebusy() {
    let queue = TestQueue::new();
    let server = server_in("signal", &queue).start();
    // Idle and empty, after a round trip: the registration stands.
    send(&queue, "round trip");
    server.stdout.wait_exact("mq[0]: round trip");
    let ours = RawQueue::open(queue.name(), Access::Receive).unwrap();

    let refused = register(&ours).expect_err("the server's registration should stand in the way");

    assert_eq!(refused.raw_os_error(), Some(libc::EBUSY), "{refused}");
    // The server is unharmed.
    send(&queue, "still notified");
    server.stdout.wait_exact("mq[0]: still notified");
}

/// The same call succeeds next to a default server: the refusal above
/// comes from the server's registration, not from the call.
#[test]
fn notify_epoll_server_lets_another_process_register() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    send(&queue, "round trip");
    server.stdout.wait_exact("mq[0]: round trip");
    let ours = RawQueue::open(queue.name(), Access::Receive).unwrap();

    register(&ours).expect("no one else is registered");

    drop(ours); // closing the descriptor ends the registration
    send(&queue, "still served");
    server.stdout.wait_exact("mq[0]: still served");
}

#[test]
fn notify_signal_server_exits_1_when_another_process_is_registered() {
    let queue = TestQueue::new();
    let ours = RawQueue::create(queue.name(), 10, 256, 0o600).unwrap();
    register(&ours).unwrap();

    let mut server = server_in("signal", &queue).spawn();
    let status = server.wait_exit();
    let stderr = server.stderr.snapshot().join("\n");

    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("another process is registered"), "stderr: {stderr}");
    assert!(!stderr.contains("ready"), "a failed startup is not ready: {stderr}");
    drop(ours);
}
