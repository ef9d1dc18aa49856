//! What another local user can and cannot do to a server, and the windows
//! in which a message can be lost: capture of the queue, the statistics
//! objects as a weapon or a forgery, modes, SIGKILL and SIGTERM under load.
//!
//! Tests that need a second user run only as root (they switch to the
//! unprivileged uids 65534 and 65533); elsewhere they say why they skip.
//! What they run as that user is a copy of the binaries that any user may
//! run ([`SharedBinaries`]), wherever the build is.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::Duration;

use ipc::{Access, MessageQueue, QueueOptions, SharedMemory};
use support::*;

/// The user a server runs as, in the tests that need a second user.
const SERVER_UID: u32 = 65534;
/// Another user: the attacker.
const OTHER_UID: u32 = 65533;

/// Whether the test can switch users; prints why not.
fn can_switch_users(test: &str) -> bool {
    // SAFETY: plain call.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped: needs root, to run processes as uids {SERVER_UID} and {OTHER_UID}");
    }
    root
}

/// `pre_exec` hook: become [`SERVER_UID`] (groups, gid, uid), before exec.
fn become_server_user() {
    // SAFETY: async-signal-safe calls between fork and exec; a failure aborts the child.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(SERVER_UID) != 0
            || libc::setuid(SERVER_UID) != 0
        {
            libc::_exit(120);
        }
    }
}

/// Gives the file at `path` to `uid`.
fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mode_of(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------
// 1. The queue cannot be captured

#[test]
fn a_queue_that_others_may_read_is_not_adopted() {
    let queue = TestQueue::new();
    let options =
        QueueOptions { max_messages: 10, message_size: 256, mode: 0o666, ..QueueOptions::default() };
    let planted = MessageQueue::create(queue.name(), &options).expect("plant a queue");

    let run = ServerBuilder::on(&queue).run_to_exit();

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("mode 0666") && run.stderr.contains("not safe to adopt"),
        "stderr: {}",
        run.stderr
    );
    assert!(queue.exists(), "a queue the server refused is not the server's to remove");
    drop(planted);
}

#[test]
fn a_queue_of_another_user_is_not_adopted_and_the_owner_is_named() {
    if !can_switch_users("a_queue_of_another_user_is_not_adopted") {
        return;
    }
    let queue = TestQueue::new();
    let options =
        QueueOptions { max_messages: 10, message_size: 256, mode: 0o600, ..QueueOptions::default() };
    drop(MessageQueue::create(queue.name(), &options).expect("plant a queue"));
    let Some(mount) = mqueue_mount_or_skip() else { return };
    chown(&mount.join(queue.name().trim_start_matches('/')), OTHER_UID);

    let run = ServerBuilder::on(&queue).run_to_exit();

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains(&format!("owned by user {OTHER_UID}")), "stderr: {}", run.stderr);
    assert!(queue.exists());
}

/// A queue planted under `queue`'s name with `mode`, no server; its
/// attributes through a descriptor of the test's own.
fn plant(queue: &TestQueue, mode: libc::mode_t) -> RawQueue {
    RawQueue::create(queue.name(), 10, 256, mode).expect("plant a queue")
}

#[test]
fn the_owners_client_sends_into_a_queue_shared_with_a_group_whatever_its_mode() {
    for (mode, readers) in [("0660", "and the members of group"), ("0620", "alone (mode 0620)")] {
        let queue = TestQueue::new();
        let mut server = ServerBuilder::on(&queue).umask(0o022).args(["--mode", mode]).start();

        send(&queue, &format!("for the course group, mode {mode}"));

        server.stdout.wait_exact(&format!("mq[0]: for the course group, mode {mode}"));
        let status = client(["--status", "--queue", queue.name()]);
        let read_by = status.stdout.lines().find(|l| l.starts_with("read by")).unwrap_or_default();
        assert!(read_by.contains("this user") && read_by.contains(readers), "{}", status.stdout);
        assert!(!status.stdout.contains("refuses"), "{}", status.stdout);
        assert_eq!(server.terminate().code(), Some(0));
    }
}

#[test]
fn the_client_sends_into_its_own_users_queue_that_every_user_may_read_and_says_who_may() {
    let queue = TestQueue::new();
    let planted = plant(&queue, 0o644);

    client(["--queue", queue.name(), "the owner's choice"]).assert_success();

    assert_eq!(planted.attributes().current, 1);
    let status = client(["--status", "--queue", queue.name()]);
    assert!(
        status.stdout.contains("read by           this user and every other user (mode 0644)"),
        "{}",
        status.stdout
    );
}

#[test]
fn the_client_sends_nothing_into_a_queue_another_user_made_first_unless_told_to_trust_them() {
    if !can_switch_users("the_client_sends_nothing_into_a_queue_another_user_made_first") {
        return;
    }
    let Some(mount) = mqueue_mount_or_skip() else { return };
    let queue = TestQueue::new();
    let planted = plant(&queue, 0o666);
    let file = mount.join(queue.name().trim_start_matches('/'));
    chown(&file, OTHER_UID);

    let run = client(["--queue", queue.name(), "my password is hunter2"]);

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    let named = format!("owned by user {OTHER_UID} with mode 0666, not by this user");
    assert!(run.stderr.contains(&named), "stderr: {}", run.stderr);
    assert_eq!(planted.attributes().current, 0, "the message must not be in the queue");
    let status = client(["--status", "--queue", queue.name()]);
    let belongs = status.stdout.lines().find(|l| l.starts_with("belongs to")).unwrap_or_default();
    assert!(belongs.contains("another user") && belongs.contains(&named), "{}", status.stdout);

    // A mode that shuts everybody else out does not make it this user's...
    fs::set_permissions(&file, fs::Permissions::from_mode(0o622)).unwrap();
    assert_eq!(client(["--queue", queue.name(), "still no"]).code(), 1);
    assert_eq!(planted.attributes().current, 0);
    // ...and trusting its owner is enough, whatever the mode.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    let owner = OTHER_UID.to_string();
    client(["--owner", &owner, "--queue", queue.name(), "trusted"]).assert_success();
    assert_eq!(planted.attributes().current, 1);
}

#[test]
fn client_status_answers_at_once_when_another_user_planted_a_fifo_as_the_journal() {
    if !can_switch_users("client_status_answers_at_once_when_another_user_planted_a_fifo_as_the_journal") {
        return;
    }
    let queue = TestQueue::new();
    let fifo = std::path::Path::new("/dev/shm").join(journal_name(&queue).trim_start_matches('/'));
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `path` is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o666) }, 0, "mkfifo {}", fifo.display());
    chown(&fifo, OTHER_UID);

    // With no queue (the journal of a server killed in its drain), then with one.
    for planted in [None, Some(plant(&queue, 0o600))] {
        let run = run_to_end(client_command(["--status", "--queue", queue.name()]), b"", DEADLINE);

        let journal = run.stdout.lines().find(|l| l.starts_with("journal")).unwrap_or_default();
        assert!(journal.contains("a FIFO, not a shared memory object"), "{}{}", run.stdout, run.stderr);
        drop(planted);
    }
}

#[test]
fn a_queue_that_cannot_be_removed_at_shutdown_is_an_error_not_removed() {
    if !can_switch_users("a_queue_that_cannot_be_removed_at_shutdown") {
        return;
    }
    let Some(mount) = mqueue_mount_or_skip() else { return };
    let queue = TestQueue::new();
    let binaries = SharedBinaries::new();
    let mut server =
        ServerBuilder::on(&queue).program(binaries.path("server")).pre_exec_hook(become_server_user).start();
    // Someone with the power to (root) gives the queue away under the server.
    chown(&mount.join(queue.name().trim_start_matches('/')), OTHER_UID);

    server.signal(libc::SIGTERM);

    assert_eq!(server.wait_exit().code(), Some(1));
    let logs = server.stderr.wait_closed().join("\n");
    assert!(logs.contains("permission denied"), "stderr: {logs}");
    assert!(!logs.contains(": removed"), "stderr: {logs}");
}

// ---------------------------------------------------------------------------
// 2. The statistics objects cannot kill the server, and have the modes readers need

#[test]
fn a_shrunk_statistics_object_does_not_kill_the_server() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["--mode", "0620"]).start();
    let shm = SharedMemory::open(&stats_name(&queue), true).expect("open the statistics");

    shm.set_len(0).expect("ftruncate to 0");
    send(&queue, "still here");
    server.stdout.wait_exact("mq[0]: still here");
    send(&queue, "and again");
    server.stdout.wait_exact("mq[0]: and again");

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!queue.exists() && queue.shared_memory().is_empty(), "left: {:?}", queue.shared_memory());
}

#[test]
fn a_shrunk_semaphore_file_does_not_kill_the_server() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["--mode", "0620"]).start();
    let (_, sem) = shm_paths(&stats_name(&queue));

    fs::OpenOptions::new().write(true).open(&sem).and_then(|f| f.set_len(0)).expect("truncate the semaphore");
    send(&queue, "still here");
    server.stdout.wait_exact("mq[0]: still here");
    server.stderr.wait_containing("shrank the semaphore");
    send(&queue, "and again");
    server.stdout.wait_exact("mq[0]: and again");

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!queue.exists() && queue.shared_memory().is_empty(), "left: {:?}", queue.shared_memory());
}

#[test]
fn client_stats_on_a_shrunk_semaphore_file_exits_1_with_a_message_not_sigbus() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    let (_, sem) = shm_paths(&stats_name(&queue));
    stats_of(&queue);

    fs::OpenOptions::new().write(true).open(&sem).and_then(|f| f.set_len(0)).expect("truncate the semaphore");
    let run = client(["--stats", "--queue", queue.name()]);

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("was shrunk (truncated) by another process"), "stderr: {}", run.stderr);
    assert!(server.is_running(), "the server goes on");
}

#[test]
fn modes_are_exactly_what_was_asked_whatever_the_umask() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let socket = dir.join("s");
    let listen = format!("unix:{}", socket.display());
    let server = ServerBuilder::on(&queue).umask(0o022).args(["--mode", "0660", "--listen", &listen]).start();

    let queue_mode = RawQueue::open(queue.name(), Access::Receive).expect("open").mode();
    let (shm, sem) = shm_paths(&stats_name(&queue));
    assert_eq!(queue_mode, 0o660, "the queue");
    assert_eq!(mode_of(&shm), 0o640, "the statistics page: readable, never writable, by the group");
    assert_eq!(mode_of(&sem), 0o660, "the semaphore: taken and given back by the group");
    assert_eq!(mode_of(&socket), 0o620, "the socket: the group may connect");
    drop(server);

    // A umask of 0 does not widen anything either.
    let queue = TestQueue::new();
    let socket = dir.join("t");
    let listen = format!("unix:{}", socket.display());
    let _server = ServerBuilder::on(&queue).umask(0).args(["--listen", &listen]).start();
    assert_eq!(RawQueue::open(queue.name(), Access::Receive).expect("open").mode(), 0o600);
    assert_eq!(mode_of(&socket), 0o600, "the default socket is the owner's alone");
}

// ---------------------------------------------------------------------------
// 3. Statistics that are not the server's are not shown as the server's

#[test]
fn statistics_overwritten_while_the_server_runs_are_refused() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    send(&queue, "counted");
    server.stdout.wait_count(1);
    let shm = SharedMemory::open(&stats_name(&queue), true).expect("open the statistics");
    // The depth and capacity fields, as the attacker wrote them.
    shm.write_at(&[0x5a; 16], 48).expect("overwrite");

    let run = client(["--stats", "--queue", queue.name()]);

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("checksum"), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "", "forged figures must not be shown");
}

#[test]
fn statistics_forged_in_advance_by_another_user_are_refused() {
    if !can_switch_users("statistics_forged_in_advance_by_another_user_are_refused") {
        return;
    }
    // A genuine page, from a server of its own, copied under the victim's name.
    let model = TestQueue::new();
    let model_server = start_server(&model);
    let mut page = Vec::new();
    fs::File::open(shm_paths(&stats_name(&model)).0)
        .and_then(|mut f| f.read_to_end(&mut page))
        .expect("read a genuine page");
    drop(model_server);

    let queue = TestQueue::new();
    let name = stats_name(&queue);
    create_shared_memory(&name, &page).expect("forge the page");
    drop(TestSemaphore::create(&name, 1).expect("forge the semaphore"));
    let (shm, sem) = shm_paths(&name);
    chown(&shm, OTHER_UID);
    chown(&sem, OTHER_UID);
    let binaries = SharedBinaries::new();
    let server =
        ServerBuilder::on(&queue).program(binaries.path("server")).pre_exec_hook(become_server_user).start();
    server.stderr.wait_containing("running without");

    let run = client(["--stats", "--queue", queue.name()]);

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("is not the statistics of queue"), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn statistics_that_exist_but_cannot_be_read_are_not_called_missing() {
    if !can_switch_users("statistics_that_exist_but_cannot_be_read") {
        return;
    }
    let queue = TestQueue::new();
    let _server = start_server(&queue); // root's, mode 0600

    let binaries = SharedBinaries::new();
    let mut command = client_command_at(&binaries.path("client"), ["--stats", "--queue", queue.name()]);
    // SAFETY: the hook only makes async-signal-safe calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            become_server_user();
            Ok(())
        })
    };
    let run = run_to_end(command, b"", DEADLINE);

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("may not read them"), "stderr: {}", run.stderr);
    assert!(!run.stderr.contains("does not exist"), "stderr: {}", run.stderr);
}

// ---------------------------------------------------------------------------
// 4. SIGKILL under load loses at most one message (tests/journal.rs kills fifty times)

/// Every line `sender-N` printed, from any number of servers' outputs.
fn messages_seen(outputs: &[Vec<String>]) -> std::collections::HashSet<String> {
    outputs.iter().flatten().filter_map(|line| line.strip_prefix("mq[0]: ").map(str::to_string)).collect()
}

#[test]
fn sigkill_under_load_loses_at_most_one_message() {
    const SENDERS: usize = 4;
    const EACH: usize = 5_000;
    let queue = TestQueue::new();
    let mut first = start_server(&queue);
    let senders: Vec<Process> = (0..SENDERS)
        .map(|s| {
            let input: String = (0..EACH).map(|n| format!("{s}-{n}\n")).collect();
            Process::start(client_command(["--queue", queue.name()]), input.as_bytes())
        })
        .collect();
    first.stdout.wait_count(EACH / 2);

    first.signal(libc::SIGKILL);
    first.wait_exit();
    let before = first.stdout.wait_closed();
    let second = start_server(&queue);
    for sender in senders {
        sender.finish(DEADLINE).assert_success();
    }
    let mut second = second;
    second.stdout.wait_until("the queue emptied", |_| {
        RawQueue::open(queue.name(), Access::Send).map_or(true, |q| q.attributes().current == 0)
    });
    assert_eq!(second.terminate().code(), Some(0));
    let after = second.stdout.wait_closed();

    let seen = messages_seen(&[before, after]);
    let lost = SENDERS * EACH - seen.len();
    assert!(lost <= 1, "{lost} messages lost at one SIGKILL; at most the one being received may be");
}

// ---------------------------------------------------------------------------
// 5. SIGTERM while clients still send: nothing lost silently

#[test]
fn messages_sent_during_the_shutdown_are_printed_or_left_in_the_queue_and_counted() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    // A client that opened the queue before the stop, and sends on.
    let sender = MessageQueue::open_with(queue.name(), Access::Send, true).expect("open to send");
    sender.send(b"before", 0).expect("send");
    server.stdout.wait_exact("mq[0]: before");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sent = 0u64;
            // Sends every millisecond, never waits: a full queue is counted as not sent.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if sender.send(format!("late-{sent}").as_bytes(), 0).is_ok() {
                    sent += 1;
                }
                thread::sleep(Duration::from_millis(1));
            }
            (sender, sent)
        })
    };

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sender, sent) = feeder.join().expect("feeder");

    assert_eq!(status.code(), Some(0));
    let printed = server.stdout.wait_closed().iter().filter(|l| l.starts_with("mq[0]: late-")).count() as u64;
    let left = sender.attributes().expect("getattr").current_messages as u64;
    assert_eq!(printed + left, sent, "every message sent is printed, or still in the removed queue");
    let logs = server.stderr.wait_closed().join("\n");
    assert!(logs.contains("arrived after the shutdown began"), "stderr: {logs}");
}

#[test]
fn a_client_whose_queue_was_removed_before_its_last_send_says_so() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    let mut sender = Process::start_fed(client_command(["--queue", queue.name()]));
    sender.feed(b"first\n");
    server.stdout.wait_exact("mq[0]: first");

    assert_eq!(server.terminate().code(), Some(0));
    sender.feed(b"into the void\n");
    sender.end_input();
    let run = sender.finish(DEADLINE);

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("may not have been read"), "stderr: {}", run.stderr);
}

// ---------------------------------------------------------------------------
// 6. Output not taken at a stop: whole lines, counted, kept for the next server

#[test]
fn output_not_taken_at_a_stop_ends_with_a_whole_line_and_is_kept() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    let mut stdout = server.take_stdout();
    // Lines of 3001 bytes: no multiple of them is a pipe's or a page's size.
    let line = "y".repeat(3000);
    let count = messages_to_stall(&stdout, line.len() + 1 + "stdin: ".len(), 0);
    let input: String = (0..count).map(|_| format!("{line}\n")).collect();
    let mut tcp = std::net::TcpStream::connect(server.tcp_addr()).expect("connect");
    let writer = thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut tcp, input.as_bytes());
    });
    server.wait_for("a full stdout", || server.stdout_is_full());

    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(1), "output was not delivered: exit 1");
    let mut printed = Vec::new();
    stdout.read_to_end(&mut printed).expect("read what was printed");
    let _ = writer.join();

    assert_eq!(printed.last(), Some(&b'\n'), "the output ends inside a line");
    let lines = printed.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    let logs = server.stderr.wait_closed().join("\n");
    assert!(logs.contains("not printed, kept in journal"), "stderr: {logs}");
    assert!(logs.contains(&format!("lines printed: {lines} of ")), "printed {lines}; stderr: {logs}");
    assert!(logs.contains("kept in the journal for the next server"), "stderr: {logs}");
}

// ---------------------------------------------------------------------------
// 8. Smaller points

#[test]
fn a_timeout_too_large_for_the_clock_is_a_usage_error() {
    let queue = TestQueue::new();
    let run = client(["--queue", queue.name(), "--timeout", "1e19", "hello"]);
    assert_eq!(run.code(), 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("--timeout"), "stderr: {}", run.stderr);
}

#[test]
fn a_size_beyond_what_the_kernel_accepts_is_not_suggested() {
    let queue = TestQueue::new();
    let run = ServerBuilder::on(&queue).args(["--max-messages", "100000"]).run_to_exit();
    assert_eq!(run.code(), 1);
    assert!(run.stderr.contains("the kernel accepts at most 65536"), "stderr: {}", run.stderr);
}

#[test]
fn characters_that_disguise_lines_are_escaped_from_every_source() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).stdin(Input::Pipe).start();
    let message = "ok\u{202e}gnp.exe\u{2066}x\u{85}y\u{2028}z";
    let shown = escaped(message.as_bytes());
    assert!(!shown.contains('\u{202e}') && shown.contains("\\xe2\\x80\\xae"), "{shown}");

    send(&queue, message);
    server.stdout.wait_exact(&format!("mq[0]: {shown}"));
    server.write_stdin(format!("{message}\n").as_bytes());
    server.stdout.wait_exact(&format!("stdin: {shown}"));
    let mut tcp = std::net::TcpStream::connect(server.tcp_addr()).expect("connect");
    std::io::Write::write_all(&mut tcp, format!("{message}\n").as_bytes()).expect("write");
    server.stdout.wait_line("the tcp line", |l| l.starts_with("tcp[") && l.ends_with(&shown));
}

/// `pre_exec` hook: at most 64 descriptors.
fn at_most_64_descriptors() {
    let limit = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
    // SAFETY: async-signal-safe; `limit` lives across the call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}

#[test]
fn running_out_of_descriptors_is_logged_a_few_times_not_once_per_connection() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).pre_exec_hook(at_most_64_descriptors).start();

    let connections: Vec<std::net::TcpStream> =
        (0..500).map(|_| std::net::TcpStream::connect(server.tcp_addr()).expect("connect")).collect();
    server.stderr.wait_containing("out of file descriptors");
    // Every connection the server could not keep is closed by it: a read sees the end.
    for mut connection in connections.into_iter().skip(64) {
        connection.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut byte = [0u8; 1];
        let _ = connection.read(&mut byte);
    }
    assert_eq!(server.terminate().code(), Some(0));

    let logs = server.stderr.wait_closed();
    let warnings = logs.iter().filter(|line| line.contains("out of file descriptors")).count();
    assert!((1..=5).contains(&warnings), "{warnings} warnings for one burst: {logs:#?}");
}
