//! Live statistics: the shared memory object and semaphore `NAME.stats`
//! that the server keeps for its queue, and `client --stats [--json]`
//! that reads them.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

/// The bound on a `--stats` read: its timeout plus a generous margin for
/// starting a process on a busy machine.
const READ_BOUND: Duration = Duration::from_secs(5);

/// What the server counts for a queue message: its bytes without one
/// trailing newline.
fn counted(message: &[u8]) -> u64 {
    message.strip_suffix(b"\n").unwrap_or(message).len() as u64
}

/// The rows of the table that `client --stats` prints, by source.
fn table_rows(table: &str) -> Vec<(String, SourceFigures)> {
    let header = table.lines().position(|l| l.split_whitespace().next() == Some("source"));
    let header = header.unwrap_or_else(|| panic!("no header row in the table:\n{table}"));
    table
        .lines()
        .skip(header + 1)
        .map(|row| {
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cells.len(), 6, "a row of six cells: {row:?}");
            let n = |i: usize| cells[i].parse::<u64>().unwrap_or_else(|_| panic!("not a count in {row:?}"));
            let figures = SourceFigures {
                messages: n(1),
                bytes: n(2),
                connections_open: n(3),
                connections_total: n(4),
                errors: n(5),
            };
            (cells[0].to_string(), figures)
        })
        .collect()
}

/// Polls `client --stats --json` until `done` says yes, and returns that object.
fn stats_when(queue: &TestQueue, what: &str, mut done: impl FnMut(&Json) -> bool) -> Json {
    let mut last = None;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stats = stats_of(queue);
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "no {what} within {DEADLINE:?}; last figures: {last:?}");
        last = Some(stats);
        thread::sleep(Duration::from_millis(20));
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn stats_count_exactly_the_messages_and_bytes_of_the_queue_stdin_and_two_tcp_connections() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).stdin(Input::Pipe).start();
    // The queue: one trailing newline is dropped and not counted; the bytes
    // are the message's own, not the escaped text that is printed.
    let sent_by_client: [&str; 3] = ["hello", "", "café"];
    let sent_raw: [&[u8]; 4] = [b"with newline\n", b"two newlines\n\n", b"tab\there", b"\xff\xfe"];
    for message in sent_by_client {
        send(&queue, message);
    }
    let raw = RawQueue::open(queue.name(), Access::Send).unwrap();
    for message in sent_raw {
        raw.send(message, 0);
    }
    let mq_bytes: u64 = sent_by_client.iter().map(|m| counted(m.as_bytes())).sum::<u64>()
        + sent_raw.iter().map(|m| counted(m)).sum::<u64>();
    // stdin: the newline that ends a line is not counted; a line longer than
    // --message-size (256) is two messages.
    let long = "x".repeat(300);
    server.write_stdin(format!("one\ntwo\n\nthree\n{long}\n").as_bytes());
    // tcp: two connections, the second ending with a partial line.
    let addr = server.tcp_addr();
    let mut first = TcpStream::connect(addr).unwrap();
    let mut second = TcpStream::connect(addr).unwrap();
    first.write_all(b"alpha\nbeta\ncrlf\r\n").unwrap();
    second.write_all(b"gamma\n").unwrap();
    server.stdout.wait_count(7 + 6 + 4);

    let both_open = stats_of(&queue);
    assert_eq!(SourceFigures::of(&both_open, "tcp").connections_open, 2);
    second.write_all(b"delta").unwrap();
    drop((first, second));
    server.stdout.wait_count(7 + 6 + 5);
    let stats =
        stats_when(&queue, "tcp connections closed", |s| SourceFigures::of(s, "tcp").connections_open == 0);

    let mq = SourceFigures { messages: 7, bytes: mq_bytes, ..SourceFigures::default() };
    let stdin = SourceFigures {
        messages: 6,
        bytes: 3 + 3 + 5 + 300,
        connections_open: 1,
        connections_total: 1,
        errors: 0,
    };
    let tcp = SourceFigures {
        messages: 5,
        bytes: 5 + 4 + 5 + 5 + 5,
        connections_open: 0,
        connections_total: 2,
        errors: 0,
    };
    let expected = [mq, stdin, tcp, SourceFigures::default()];
    let figures: Vec<SourceFigures> = SOURCES.iter().map(|s| SourceFigures::of(&stats, s)).collect();
    assert_eq!(figures, expected, "in the order {SOURCES:?}");
    assert_eq!(stats["queue_depth"].i64(), 0);

    // The table says the same.
    let table = client(["--stats", "--queue", queue.name()]);
    table.assert_success();
    let rows = table_rows(&table.stdout);
    let named: Vec<(String, SourceFigures)> = SOURCES.iter().map(|s| s.to_string()).zip(expected).collect();
    assert_eq!(rows, named, "table:\n{}", table.stdout);

    // End of file on stdin closes its "connection".
    server.close_stdin();
    let closed = stats_when(&queue, "stdin closed", |s| SourceFigures::of(s, "stdin").connections_open == 0);
    assert_eq!(SourceFigures::of(&closed, "stdin"), SourceFigures { connections_open: 0, ..stdin });
}

#[test]
fn stats_count_unix_socket_lines_and_connections() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let path = dir.join("stats.sock");
    let server = ServerBuilder::on(&queue).args([format!("--listen=unix:{}", path.display())]).start();

    let mut first = UnixStream::connect(&path).unwrap();
    let mut second = UnixStream::connect(&path).unwrap();
    first.write_all(b"from the first\n\n").unwrap();
    second.write_all(b"from the second\nand a partial").unwrap();
    server.stdout.wait_count(3);
    assert_eq!(SourceFigures::of(&stats_of(&queue), "unix").connections_open, 2);
    drop((first, second));
    server.stdout.wait_exact("unix[2]: and a partial");
    let stats =
        stats_when(&queue, "unix connections closed", |s| SourceFigures::of(s, "unix").connections_open == 0);

    let unix = SourceFigures {
        messages: 4,
        bytes: 14 + 15 + 13,
        connections_open: 0,
        connections_total: 2,
        errors: 0,
    };
    assert_eq!(SourceFigures::of(&stats, "unix"), unix);
    assert_eq!(SourceFigures::of(&stats, "mq"), SourceFigures::default());
    assert_eq!(SourceFigures::of(&stats, "tcp"), SourceFigures::default());
    // stdin is /dev/null: read to its end at once, one "connection", closed.
    let stdin = SourceFigures { connections_total: 1, ..SourceFigures::default() };
    assert_eq!(SourceFigures::of(&stats, "stdin"), stdin);
}

#[test]
fn stats_count_a_reset_tcp_connection_as_an_error() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut rude = TcpStream::connect(server.tcp_addr()).unwrap();
    rude.write_all(b"before the reset\n").unwrap();
    server.stdout.wait_count(1);

    reset(rude);

    let stats = stats_when(&queue, "the reset connection closed", |s| {
        SourceFigures::of(s, "tcp").connections_open == 0
    });
    let tcp = SourceFigures { messages: 1, bytes: 16, connections_open: 0, connections_total: 1, errors: 1 };
    assert_eq!(SourceFigures::of(&stats, "tcp"), tcp);
}

#[test]
fn stats_json_names_the_queue_the_server_and_its_capacity_with_exactly_the_documented_fields() {
    let queue = TestQueue::new();
    let before_start = now_ns();
    let server = ServerBuilder::on(&queue).args(["--max-messages", "5"]).start();
    let ready = now_ns();

    // Figures of a round: those of the page's creation carry a precise
    // time, later ones the server's coarse clock (see below).
    let stats = stats_when(&queue, "the first round's figures", |s| s["rounds"].u64() >= 1);

    let keys = [
        "queue",
        "pid",
        "started_unix_ns",
        "updated_unix_ns",
        "rounds",
        "queue_depth",
        "queue_capacity",
        "lines_printed",
        "lines_dropped",
        "lines_replayed",
        "server_running",
        "consistent",
        "sources",
    ];
    assert_eq!(stats.keys(), keys);
    assert_eq!(stats["sources"].keys(), SOURCES);
    for source in SOURCES {
        let fields = ["messages", "bytes", "connections_open", "connections_total", "errors"];
        assert_eq!(stats["sources"][source].keys(), fields, "fields of {source}");
    }
    assert_eq!(stats["queue"].str(), queue.name());
    assert_eq!(stats["pid"].u64(), server.pid() as u64);
    assert_eq!(stats["queue_capacity"].i64(), 5);
    assert_eq!(stats["queue_depth"].i64(), 0);
    assert!(stats["server_running"].bool());
    assert!(stats["consistent"].bool());
    let started = stats["started_unix_ns"].u64();
    assert!(before_start <= started && started <= ready, "{before_start} <= {started} <= {ready}");

    // Each round publishes: a message makes at least one more.
    send(&queue, "one more round");
    server.stdout.wait_exact("mq[0]: one more round");
    let later = stats_of(&queue);
    assert!(later["rounds"].u64() > stats["rounds"].u64());
    assert!(later["updated_unix_ns"].u64() >= stats["updated_unix_ns"].u64());
    // The server's clock for updates is coarse (a few milliseconds).
    assert!(later["updated_unix_ns"].u64() + 10_000_000 >= started);
    assert_eq!(later["started_unix_ns"], stats["started_unix_ns"]);

    let table = client(["--stats", "--queue", queue.name()]);
    table.assert_success();
    let first = table.stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains(queue.name()) && first.contains(&format!("server pid {}", server.pid())),
        "{first}"
    );
    assert!(table.stdout.contains("queue depth (last seen): 0 of 5 messages"), "{}", table.stdout);
}

/// The queue's readers may read the figures and take the semaphore; no
/// one but the server may write the figures.
#[test]
fn stats_objects_take_their_modes_from_the_queues_and_are_removed_by_sigterm() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).umask(0o022).args(["--mode", "0660"]).start();
    let (shm, sem) = shm_paths(&stats_name(&queue));
    let mode = |path: &std::path::Path| {
        fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
    };

    let queue_mode = RawQueue::open(queue.name(), Access::Receive).unwrap().mode();
    assert_eq!(queue_mode, 0o660);
    assert_eq!(mode(&shm), 0o640, "the page, read-only for the group: {}", shm.display());
    assert_eq!(mode(&sem), queue_mode, "{}", sem.display());

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!shm.exists() && !sem.exists(), "left behind: {:?}", queue.shared_memory());
    let run = client(["--stats", "--queue", queue.name()]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr.contains("is the server running?"), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn stats_without_a_server_say_is_the_server_running_and_exit_1() {
    let queue = TestQueue::new();

    for json in [false, true] {
        let mut args = vec!["--stats", "--queue", queue.name()];
        if json {
            args.push("--json");
        }
        let run = client(&args);
        assert_eq!(run.code(), 1, "{args:?}");
        assert!(run.stderr.contains("is the server running?"), "stderr: {}", run.stderr);
        assert!(run.stderr.contains(queue.name()), "stderr: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn stats_reader_never_waits_longer_than_its_timeout_and_the_server_takes_back_an_abandoned_semaphore() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut held = TestSemaphore::open(&stats_name(&queue)).unwrap();
    held.take();

    let started = Instant::now();
    let run = client(["--stats", "--timeout", "0.3", "--queue", queue.name()]);
    let took = started.elapsed();

    assert!(took < READ_BOUND, "--stats --timeout 0.3 took {took:?} with the semaphore held");
    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("stayed locked"), "stderr: {}", run.stderr);
    assert!(run.stdout.contains(&format!("server pid {}", server.pid())), "stdout: {}", run.stdout);

    // The server skips publishing while the semaphore is taken; after a
    // second of rounds that find it taken, it presumes the holder dead.
    let mut ticker = TcpStream::connect(server.tcp_addr()).unwrap();
    wait_until("the server to take back the semaphore", || {
        ticker.write_all(b"tick\n").unwrap();
        server.stderr.snapshot().iter().any(|l| l.contains("semaphore held for over"))
    });
    ticker.write_all(b"last tick\n").unwrap();
    let printed = server.stdout.wait_line("the last tick", |l| l.ends_with(": last tick"));
    assert!(printed.starts_with("tcp["), "{printed}");
    let ticks = server.stdout.snapshot().iter().filter(|l| l.starts_with("tcp[")).count() as u64;

    let fresh = stats_of(&queue);
    assert!(fresh["consistent"].bool());
    assert_eq!(SourceFigures::of(&fresh, "tcp").messages, ticks, "figures of the last round");

    // The holder was alive after all and gives it back: one token too
    // many, which the server absorbs in its next round.
    held.post();
    assert_eq!(held.value(), 2);
    send(&queue, "next round");
    server.stdout.wait_exact("mq[0]: next round");
    assert_eq!(held.value(), 1, "the server should absorb the extra token");
    assert_eq!(SourceFigures::of(&stats_of(&queue), "mq").messages, 1);
}

#[test]
fn an_idle_server_takes_back_a_semaphore_left_held_by_a_dead_reader() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    stats_of(&queue);
    TestSemaphore::open(&stats_name(&queue)).unwrap().taken_by_a_killed_process();

    // No message, no connection: only the server's own timer can make it look again.
    wait_until("client --stats to succeed on the idle server", || {
        client(["--stats", "--timeout", "0.2", "--queue", queue.name()]).code() == 0
    });
    assert!(
        server.stderr.snapshot().iter().any(|l| l.contains("semaphore held for over")),
        "stderr: {:?}",
        server.stderr.snapshot()
    );
}

/// The bytes of the first `n` lines of `seq`: the digits of 1..=n.
fn digits_of_1_to(n: u64) -> u64 {
    (1..=n).map(|k| k.to_string().len() as u64).sum()
}

/// The flood comes in two halves, the second one fed to the sender only
/// once a read has seen all of the first: so at least one read certainly
/// happens during the flood, whatever the speed of the machine.
#[test]
fn stats_read_during_a_flood_are_consistent_and_never_decrease() {
    const FLOOD: u64 = 100_000;
    const HALF: u64 = FLOOD / 2;
    let queue = TestQueue::new();
    let server = ServerBuilder::on(&queue).args(["--listen", "none"]).start();
    let numbers =
        |range: std::ops::RangeInclusive<u64>| -> String { range.map(|n| format!("{n}\n")).collect() };
    let mut sender = Process::start_fed(client_command(["--queue", queue.name()]));
    sender.feed(numbers(1..=HALF).as_bytes());

    let mut reads = Vec::new();
    let mut second_half_fed = false;
    let deadline = Instant::now() + DEADLINE * 3;
    loop {
        let started = Instant::now();
        let (run, stats) = client_stats(&queue, &["--timeout", "1"]);
        let took = started.elapsed();
        assert!(took < READ_BOUND, "--stats --timeout 1 took {took:?} during the flood");
        assert_eq!(run.code(), 0, "stderr: {}", run.stderr);
        let stats = stats.expect("figures");
        assert!(stats["consistent"].bool());
        let mq = SourceFigures::of(&stats, "mq");
        // Same priority, so the first k messages received are 1..=k: a torn
        // copy would pair a count with the bytes of another round.
        assert_eq!(mq.bytes, digits_of_1_to(mq.messages), "messages and bytes from one round: {mq:?}");
        reads.push((mq.messages, stats["rounds"].u64()));
        if mq.messages == FLOOD {
            break;
        }
        if mq.messages == HALF && !second_half_fed {
            sender.feed(numbers(HALF + 1..=FLOOD).as_bytes());
            sender.end_input();
            second_half_fed = true;
        }
        assert!(Instant::now() < deadline, "the flood did not end; reads: {reads:?}");
    }

    assert!(reads.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "went back: {reads:?}");
    let during = reads.iter().filter(|(m, _)| 0 < *m && *m < FLOOD).count();
    println!("{} reads, {during} of them during the flood", reads.len());
    assert!(during > 0, "no read happened during the flood: {reads:?}");
    sender.finish(DEADLINE).assert_success();
    assert_eq!(server.stdout.wait_count(FLOOD as usize).len(), FLOOD as usize);
    assert_eq!(SourceFigures::of(&stats_of(&queue), "mq").bytes, 488_895);
}

#[test]
fn stats_left_by_a_killed_server_are_printed_with_a_warning_and_replaced_at_restart() {
    let queue = TestQueue::new();
    let mut dead = start_server(&queue);
    let dead_pid = dead.pid() as u64;
    send(&queue, "counted one");
    send(&queue, "counted two");
    dead.stdout.wait_count(2);
    let last = stats_of(&queue);
    let adopted = ["left 1", "left two", "left three!"];
    dead.pause();
    for message in adopted {
        send(&queue, message);
    }
    dead.signal(libc::SIGKILL);
    dead.wait_exit();
    let (shm, sem) = shm_paths(&stats_name(&queue));
    assert!(shm.exists() && sem.exists(), "SIGKILL leaves the pair behind: {:?}", queue.shared_memory());

    // The leftovers: the last figures, a warning, exit 1.
    let (run, stale) = client_stats(&queue, &[]);
    assert_eq!(run.code(), 1);
    let gone = format!("no server owns queue {} any more (pid {dead_pid} is gone)", queue.name());
    assert!(run.stderr.contains(&gone), "stderr: {}", run.stderr);
    let stale = stale.expect("the last figures are printed");
    assert_eq!(stale["pid"].u64(), dead_pid);
    assert!(!stale["server_running"].bool());
    let mq_before = SourceFigures { messages: 2, bytes: 22, ..SourceFigures::default() };
    assert_eq!(SourceFigures::of(&stale, "mq"), mq_before);
    assert_eq!(stale["sources"], last["sources"]);
    let table = client(["--stats", "--queue", queue.name()]);
    assert_eq!(table.code(), 1);
    assert!(table.stdout.contains(&format!("server pid {dead_pid}")), "{}", table.stdout);
    assert!(table.stderr.contains(&gone), "stderr: {}", table.stderr);

    // As if the server had died while publishing: its semaphore stays taken.
    // A reader is not held up; the next server makes a new one.
    let mut stale_semaphore = TestSemaphore::open(&stats_name(&queue)).unwrap();
    stale_semaphore.take();
    let started = Instant::now();
    let run = client(["--stats", "--timeout", "0.3", "--queue", queue.name()]);
    assert!(started.elapsed() < READ_BOUND, "took {:?}", started.elapsed());
    assert_eq!(run.code(), 1);
    assert!(run.stderr.contains(&gone), "stderr: {}", run.stderr);

    let mut server = start_server(&queue);
    let expected: Vec<String> = adopted.iter().map(|m| format!("mq[0]: {m}")).collect();
    assert_eq!(server.stdout.wait_count(3), expected);
    let fresh = stats_of(&queue);
    assert_eq!(fresh["pid"].u64(), server.pid() as u64);
    assert!(fresh["started_unix_ns"].u64() > stale["started_unix_ns"].u64());
    let mq = SourceFigures { messages: 3, bytes: 6 + 8 + 11, ..SourceFigures::default() };
    assert_eq!(SourceFigures::of(&fresh, "mq"), mq, "back to 0, plus the adopted messages");
    assert_eq!(SourceFigures::of(&fresh, "tcp"), SourceFigures::default());
    assert_eq!(stale_semaphore.value(), 0, "the old semaphore is not the one in use");

    assert_eq!(server.terminate().code(), Some(0));
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

#[test]
fn stats_of_another_layout_version_are_refused_with_both_versions_named() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    server.pause();
    let (shm, _) = shm_paths(&stats_name(&queue));
    let page = fs::read(&shm).unwrap_or_else(|e| panic!("{}: {e}", shm.display()));
    server.resume();
    // The layout: magic (8 bytes), then the version (u32).
    let version = u32::from_ne_bytes(page[8..12].try_into().unwrap());
    let copy_with = |version: u32| {
        let copy = TestQueue::new();
        let mut bytes = page.clone();
        bytes[8..12].copy_from_slice(&version.to_ne_bytes());
        create_shared_memory(&stats_name(&copy), &bytes).unwrap();
        TestSemaphore::create(&stats_name(&copy), 1).unwrap();
        copy
    };

    let other = copy_with(version + 1);
    let run = client(["--stats", "--queue", other.name()]);

    assert_eq!(run.code(), 1);
    assert_eq!(run.stdout, "", "figures of another layout must not be shown");
    let said = format!("layout version {}", version + 1);
    assert!(run.stderr.contains(&said), "stderr: {}", run.stderr);
    assert!(run.stderr.contains(&format!("this client reads version {version}")), "stderr: {}", run.stderr);

    // The same copy with the right version is read (its queue has no server).
    let same = copy_with(version);
    drop(RawQueue::create(same.name(), 10, 256, 0o600).unwrap());
    let run = client(["--stats", "--queue", same.name()]);
    assert_eq!(run.code(), 1);
    assert!(!run.stderr.contains("layout version"), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("no server owns queue"), "stderr: {}", run.stderr);
    assert!(run.stdout.contains(&format!("server pid {}", server.pid())), "stdout: {}", run.stdout);
}

#[test]
fn stats_left_by_a_killed_server_whose_queue_was_removed_are_still_printed_with_a_warning() {
    let queue = TestQueue::new();
    let mut dead = start_server(&queue);
    let dead_pid = dead.pid() as u64;
    send(&queue, "counted");
    dead.stdout.wait_count(1);
    dead.signal(libc::SIGKILL);
    dead.wait_exit();
    // Someone cleans up the queue (rm /dev/mqueue/NAME) but not /dev/shm.
    queue.unlink();

    let (run, stale) = client_stats(&queue, &[]);

    assert_eq!(run.code(), 1);
    let gone = format!("no server owns queue {} any more (pid {dead_pid} is gone)", queue.name());
    assert!(run.stderr.contains(&gone), "stderr: {}", run.stderr);
    let stale = stale.expect("the last figures are printed");
    assert_eq!(
        SourceFigures::of(&stale, "mq"),
        SourceFigures { messages: 1, bytes: 7, ..SourceFigures::default() }
    );
}

/// The page is created before the loop runs, and its first figures are
/// published at the end of the first round. A server held up in that first
/// round (its stdout full while it prints an adopted queue) shows the page
/// as it was created.
///
/// stdout is a Unix socket with the smallest buffers the kernel allows, not
/// a pipe: the server grows a pipe to 1 MiB, which the ten largest messages
/// a queue may hold cannot fill, while a socket it does not resize.
#[test]
fn stats_read_before_the_first_round_are_not_older_than_the_server() {
    let queue = TestQueue::new();
    // Ten messages of 8192 bytes that escape to four times their size.
    let raw = RawQueue::create(queue.name(), 10, 8192, 0o600).unwrap();
    for _ in 0..10 {
        raw.send(&[0xff; 8192], 0);
    }
    drop(raw);
    let (reader, writer) = UnixStream::pair().expect("socketpair");
    let buffered = shrink_buffer(&reader, libc::SO_RCVBUF) + shrink_buffer(&writer, libc::SO_SNDBUF);
    let printed = "mq[0]: \n".len() + 4 * 8192;
    assert!(10 * printed > 2 * buffered, "{buffered} bytes of socket buffers take what this test prints");
    let stdout = fs::File::from(std::os::fd::OwnedFd::from(writer));
    let server = ServerBuilder::on(&queue).stdout_to(stdout).start();
    // Printing has begun, and the first round cannot end before a reader
    // takes some of it.
    server.wait_for("the server's first output", || socket_bytes_waiting(&reader) > 0);

    let stats = stats_of(&queue);

    assert_eq!(stats["rounds"].u64(), 0, "still in the first round");
    let (started, updated) = (stats["started_unix_ns"].u64(), stats["updated_unix_ns"].u64());
    assert!(updated >= started, "updated {updated} before the start {started}");
}

/// Asks for the smallest buffer `option` (`SO_RCVBUF`, `SO_SNDBUF`) and
/// returns the size the kernel gave (it doubles and clamps what is asked).
fn shrink_buffer(socket: &UnixStream, option: libc::c_int) -> usize {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `one` is a live c_int of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&one as *const libc::c_int).cast(),
            size,
        )
    };
    assert_eq!(set, 0, "setsockopt: {}", std::io::Error::last_os_error());
    let (mut value, mut len): (libc::c_int, libc::socklen_t) = (0, size);
    // SAFETY: `value` and `len` are live and writable.
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(got, 0, "getsockopt: {}", std::io::Error::last_os_error());
    value as usize
}

/// Bytes waiting to be read on `socket` (`FIONREAD`).
fn socket_bytes_waiting(socket: &UnixStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int; `waiting` is writable.
    let res = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut waiting) };
    assert_eq!(res, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    waiting as usize
}

#[test]
fn stats_are_not_published_by_a_server_started_with_no_stats() {
    let queue = TestQueue::new();
    let server = ServerBuilder::on(&queue).args(["--no-stats"]).start();
    send(&queue, "served all the same");
    server.stdout.wait_exact("mq[0]: served all the same");

    let objects = queue.shared_memory();
    assert!(!objects.iter().any(|path| path.to_string_lossy().contains(".stats")), "published: {objects:?}");
    let run = client(["--stats", "--queue", queue.name()]);
    assert_eq!(run.code(), 1);
    assert_eq!(run.stdout, "");
}
