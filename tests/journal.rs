//! The output journal: what a killed server had received and not yet
//! written is printed by the next server on the queue; a journal that is
//! not one this user's server left is refused; a shrunk one does not kill
//! the server; a clean stop removes it.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use ipc::{MessageQueue, SharedMemory};
use support::*;

/// The number in `replayed N line(s)`, if the server's log says it.
fn replayed(log: &[String]) -> usize {
    log.iter().find_map(|line| line.split_once("replayed ")?.1.split(' ').next()?.parse().ok()).unwrap_or(0)
}

/// A small generator of pseudo-random numbers (xorshift), seeded from the
/// clock; the seed is printed, so a failure can be looked at again.
struct Random(u64);

impl Random {
    fn from_clock() -> Random {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        eprintln!("random seed {seed}");
        Random(seed)
    }

    /// A number in `1..=most`.
    fn up_to(&mut self, most: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + self.0 % most
    }
}

/// What one server printed, and how many of its first lines it replayed.
struct Printed {
    lines: Vec<String>,
    replayed: usize,
}

/// The duplicates a replay may bring: lines the killed server had handed to
/// a `write` that completed just before the kill. They are among its last
/// lines, within what one write takes (at most the buffer's threshold and
/// one line), and they come again among the next server's replayed lines.
fn check_duplicates(previous: &Printed, next: &Printed) -> usize {
    let mut tail_bytes = 0;
    let last_write: Vec<&String> = previous
        .lines
        .iter()
        .rev()
        .take_while(|line| {
            tail_bytes += line.len() + 1;
            tail_bytes <= server::output::FLUSH_AT + 512
        })
        .collect();
    let before: std::collections::HashSet<&String> = previous.lines.iter().collect();
    let mut duplicates = 0;
    for (at, line) in next.lines.iter().enumerate() {
        if before.contains(line) {
            assert!(at < next.replayed, "{line:?} printed again, not by a replay (line {at})");
            assert!(last_write.contains(&line), "{line:?} replayed, but it was not in the last write");
            duplicates += 1;
        }
    }
    duplicates
}

#[test]
fn fifty_sigkills_under_load_lose_at_most_one_message_each_and_print_the_rest_once() {
    const SENDERS: usize = 4;
    const EACH: usize = 5_000;
    const KILLS: usize = 50;
    // What each sender is given to send per server: the senders run ahead
    // of the kills by no more than that.
    const SLICE: usize = EACH / KILLS;
    let mut random = Random::from_clock();
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    let mut senders: Vec<Process> =
        (0..SENDERS).map(|_| Process::start_fed(client_command(["--queue", queue.name()]))).collect();

    let mut printed = Vec::new();
    for kill in 0..KILLS {
        for (s, sender) in senders.iter_mut().enumerate() {
            let slice: String = (kill * SLICE..(kill + 1) * SLICE).map(|n| format!("{s}-{n}\n")).collect();
            sender.feed(slice.as_bytes());
        }
        // At a random moment: after 1 to 200 lines, while the rest of the
        // slice (400 messages) still comes.
        let wanted = random.up_to(200) as usize;
        server.stdout.wait_count(wanted);
        server.signal(libc::SIGKILL);
        server.wait_exit();
        let lines = server.stdout.wait_closed();
        printed.push(Printed { lines, replayed: replayed(&server.stderr.wait_closed()) });
        server = start_server(&queue);
    }
    for sender in senders {
        sender.finish(DEADLINE).assert_success();
    }
    // The shutdown drains what is left.
    assert_eq!(server.terminate().code(), Some(0));
    let lines = server.stdout.wait_closed();
    printed.push(Printed { lines, replayed: replayed(&server.stderr.wait_closed()) });

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in printed.iter().flat_map(|p| &p.lines) {
        let message = line.strip_prefix("mq[0]: ").unwrap_or_else(|| panic!("not a queue line: {line:?}"));
        *seen.entry(message).or_default() += 1;
    }
    let lost = SENDERS * EACH - seen.len();
    let duplicates: usize = printed.windows(2).map(|pair| check_duplicates(&pair[0], &pair[1])).sum();
    let replays = printed.iter().filter(|p| p.replayed > 0).count();
    eprintln!("{KILLS} kills: {lost} message(s) lost, {duplicates} printed twice, {replays} replay(s)");
    assert_eq!(seen.values().map(|&n| n - 1).sum::<usize>(), duplicates, "every duplicate is a replay's");
    assert!(lost <= KILLS, "{lost} messages lost at {KILLS} kills: at most one per kill may be");
}

/// Runs a server on a queue that holds one message, next to a journal
/// planted by `planting`; it must refuse to start, saying `why`, and leave
/// the queue with its message, and the journal, as they were.
fn refused(why: &str, planting: impl FnOnce(&TestQueue)) {
    let queue = TestQueue::new();
    let waiting = RawQueue::create(queue.name(), 10, 256, 0o600).expect("make the queue");
    waiting.send(b"waiting", 0);
    planting(&queue);

    let run = ServerBuilder::on(&queue).run_to_exit();

    assert_eq!(run.code(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("journal") && run.stderr.contains(why), "{why}: stderr: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "", "nothing is printed from a refused journal");
    assert_eq!(waiting.attributes().current, 1, "the queue's message stays for a server that can have it");
    assert!(
        queue.shared_memory().iter().any(|path| path.ends_with(&journal_name(&queue)[1..])),
        "the journal stays: {:?}",
        queue.shared_memory()
    );
}

const PLANTED: &[u8] = b"mq[0]: planted\n";

fn capacity() -> usize {
    server::journal::capacity_for(256)
}

/// Plants a journal as a server of this user leaves it, holding `data`
/// unwritten, with `mode`.
fn plant(queue: &TestQueue, mode: libc::mode_t, data: &[u8]) {
    plant_journal(queue, mode, &journal_header_for(capacity(), 0, data), data, HEADER_SIZE + capacity());
}

#[test]
fn a_journal_of_a_wrong_mode_is_refused() {
    refused("mode 0644", |queue| plant(queue, 0o644, PLANTED));
}

#[test]
fn a_journal_of_another_layout_is_refused() {
    refused("layout version", |queue| {
        let header = Header { version: 99, ..journal_header_for(capacity(), 0, PLANTED) };
        plant_journal(queue, 0o600, &header, PLANTED, HEADER_SIZE + capacity());
    });
    refused("layout version", |queue| {
        let header = Header { magic: 42, ..journal_header_for(capacity(), 0, PLANTED) };
        plant_journal(queue, 0o600, &header, PLANTED, HEADER_SIZE + capacity());
    });
}

#[test]
fn a_truncated_journal_is_refused() {
    refused("shrunk or grown", |queue| {
        plant_journal(queue, 0o600, &journal_header_for(capacity(), 0, PLANTED), PLANTED, HEADER_SIZE + 100)
    });
    refused("shorter than a journal's header", |queue| {
        plant_journal(queue, 0o600, &journal_header_for(capacity(), 0, PLANTED), PLANTED, 10)
    });
}

#[test]
fn a_journal_whose_offsets_or_bytes_are_not_the_servers_is_refused() {
    refused("out of bounds", |queue| {
        let header =
            Header { offsets: server::journal::pack(20, 10), ..journal_header_for(capacity(), 0, PLANTED) };
        plant_journal(queue, 0o600, &header, PLANTED, HEADER_SIZE + capacity());
    });
    refused("not lines the server prints", |queue| {
        let garbage = b"\x1b[2J\x1b[31mforged\n";
        plant(queue, 0o600, garbage);
    });
}

#[test]
fn a_journal_holding_bytes_the_server_prints_as_hex_is_refused() {
    // A lone 0xff, a lone 0x85 (Latin-1 NEL), an 8-bit CSI that clears some terminals.
    for raw in [&b"mq[0]: a\xffb\n"[..], b"mq[0]: \x85\n", b"mq[0]: \x9b2J\n"] {
        refused("not lines the server prints", |queue| plant(queue, 0o600, raw));
    }
}

#[test]
fn a_journal_of_another_user_is_refused() {
    // SAFETY: plain call.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "a_journal_of_another_user_is_refused: skipped: needs root, to give the journal to uid 65533"
        );
        return;
    }
    refused("owned by user 65533", |queue| {
        plant(queue, 0o600, PLANTED);
        let path = shm_paths(&journal_name(queue)).0;
        std::os::unix::fs::chown(&path, Some(65533), Some(65533)).expect("chown the journal");
    });
}

/// A journal of this user's, as a killed server leaves it, is printed
/// first, byte for byte, from where its writes had reached.
#[test]
fn a_journal_left_by_a_killed_server_is_printed_first_from_where_it_was_written() {
    let queue = TestQueue::new();
    let data = b"mq[0]: printed already\nmq[0]: left one\nmq[0]: left two\n";
    plant_journal(&queue, 0o600, &journal_header_for(capacity(), 23, data), data, HEADER_SIZE + capacity());

    let mut server = start_server(&queue);
    send(&queue, "new");

    server.stdout.wait_exact("mq[0]: new");
    assert_eq!(server.stdout.snapshot(), ["mq[0]: left one", "mq[0]: left two", "mq[0]: new"]);
    server.stderr.wait_containing("replayed 2 line(s) (32 bytes) left by pid 1 (");
    assert_eq!(stats_of(&queue)["lines_replayed"].u64(), 2);
    assert_eq!(server.terminate().code(), Some(0));
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

#[test]
fn a_clean_stop_removes_the_journal_and_the_journal_is_the_users_alone() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["--mode", "0622"]).start();
    send(&queue, "hello");
    server.stdout.wait_exact("mq[0]: hello");
    let path = shm_paths(&journal_name(&queue)).0;
    let mode = std::fs::metadata(&path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.expect("the journal exists") & 0o777, 0o600, "whatever --mode says");

    assert_eq!(server.terminate().code(), Some(0));
    assert!(journal_header(&queue).is_none(), "a clean stop removes the journal");
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

#[test]
fn a_stop_with_stdout_gone_keeps_the_lines_for_the_next_server() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).raw_stdout().start();
    drop(server.take_stdout());
    // A process that another test forks meanwhile may hold a copy of the
    // read end until it execs: wait until the pipe has no reader at all (a
    // byte written into it then fails with EPIPE; one that goes in is
    // never read by anyone).
    let path = format!("/proc/{}/fd/1", server.pid());
    let mut probe = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    server.wait_for("no reader of the server's stdout", || {
        std::io::Write::write(&mut probe, b".").is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    drop(probe);

    // Sent by the test itself: the server stops at once and removes the queue.
    RawQueue::open(queue.name(), Access::Send).expect("open the queue").send(b"kept for later", 0);

    assert_eq!(server.wait_exit().code(), Some(0), "a reader that left is not a failure");
    let log = server.stderr.snapshot().join("\n");
    assert!(log.contains("kept in journal") && log.contains("1 line(s) not printed are kept"), "{log}");
    assert!(log.contains("1 kept in the journal for the next server"), "{log}");
    let header = journal_header(&queue).expect("the journal stays");
    assert!(header.complete() > header.written(), "{header:?}");

    // The queue is gone; the journal shows in the status all the same.
    let status = client(["--status", "--queue", queue.name()]);
    assert_eq!(status.code(), 1, "no queue: {}", status.stderr);
    assert!(status.stdout.contains("1 line(s)") && status.stdout.contains("(gone)"), "{}", status.stdout);

    let mut next = start_server(&queue);
    next.stdout.wait_exact("mq[0]: kept for later");
    next.stderr.wait_containing(&format!("replayed 1 line(s) (22 bytes) left by pid {}", server.pid()));
    assert_eq!(next.terminate().code(), Some(0));
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

#[test]
fn client_status_shows_the_lines_waiting_in_a_journal() {
    let queue = TestQueue::new();
    let made = RawQueue::create(queue.name(), 10, 256, 0o600).expect("make the queue");
    let data = b"mq[0]: one\nmq[0]: two\n";
    plant(&queue, 0o600, data);

    let status = client(["--status", "--queue", queue.name()]);

    status.assert_success();
    let line = status.stdout.lines().find(|l| l.starts_with("journal")).expect("a journal line");
    assert!(line.contains("2 line(s) (22 bytes) not yet printed, left by pid 1 (alive)"), "{line}");
    drop(made);
}

/// A process of the server's own user shrinks the journal under load: the
/// server does not die of `SIGBUS`, says so, and goes on without it.
#[test]
fn a_journal_shrunk_under_load_does_not_kill_the_server() {
    let queue = TestQueue::new();
    let mut server = start_server(&queue);
    let input: String = (0..3000).map(|n| format!("load-{n}\n")).collect();
    let sender = Process::start(client_command(["--queue", queue.name()]), input.as_bytes());
    server.stdout.wait_count(100);

    let journal = SharedMemory::open(&journal_name(&queue), true).expect("open the journal");
    journal.set_len(0).expect("truncate -s 0");
    // Its line is the first stored past the cut, if the load's were not: it
    // may be lost with the journal's contents, but it makes the fault certain.
    send(&queue, "after the cut");

    server.stderr.wait_containing("shrunk by another process");
    sender.finish(DEADLINE).assert_success();
    send(&queue, "served on");
    server.stdout.wait_exact("mq[0]: served on");
    assert_eq!(server.terminate().code(), Some(0), "stderr: {:?}", server.stderr.snapshot());
    assert!(queue.shared_memory().is_empty(), "left behind: {:?}", queue.shared_memory());
}

/// `SIGTERM` while clients send, stdout read until the drain has begun and
/// then no more: the drain's lines wait in the journal when the server is
/// killed. The next server (on a new queue of the same name: the old one
/// was removed at the stop) prints them.
#[test]
fn a_server_killed_during_its_shutdown_drain_leaves_its_lines_to_the_next() {
    let queue = TestQueue::new();
    let mut server = ServerBuilder::on(&queue).args(["--message-size", "4096"]).raw_stdout().start();
    let mut stdout = server.take_stdout();
    // The test's own ends of the queue: one to send, and one to take what
    // is left in it once it is removed.
    let ours = MessageQueue::open_with(queue.name(), Access::Both, true).expect("open the queue");
    let to_send = MessageQueue::open(queue.name(), Access::Send).expect("open the queue");

    // Stdout is read while `reading` holds.
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let reading = reading.clone();
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            while reading.load(Ordering::SeqCst) {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                }
            }
            (stdout, bytes)
        })
    };
    // Messages of 4000 bytes (lines shorter than PIPE_BUF: the server
    // waits on its stdout only once the pipe is full), numbered, sent as
    // fast as the queue takes them until `sending` ends, so that the drain
    // never finds the queue quiet.
    let sending = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (sending, sent) = (sending.clone(), sent.clone());
        thread::spawn(move || {
            while sending.load(Ordering::SeqCst) {
                let n = sent.load(Ordering::SeqCst);
                let message = format!("{n} {}", "x".repeat(4000));
                match to_send.send_timeout(message.as_bytes(), 0, std::time::Duration::from_millis(20)) {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    server.wait_for("messages sent", || sent.load(Ordering::SeqCst) >= 20);

    server.signal(libc::SIGTERM);
    server.wait_for("the queue's removal: the drain begins", || !queue.exists());
    reading.store(false, Ordering::SeqCst);
    // Stopped where the journal holds lines not yet written (the pipe fills
    // up: the drain's writes wait for it), and killed there.
    let stdout_path = format!("/proc/{}/fd/1", server.pid());
    server.wait_for("unwritten lines in the journal", || {
        assert!(
            std::path::Path::new(&stdout_path).exists(),
            "the server ended its drain before its stdout filled up: {:?}",
            server.stderr.snapshot()
        );
        if !server.stdout_is_full() {
            return false;
        }
        server.pause();
        let header = journal_header(&queue).expect("the journal");
        if header.complete() > header.written() {
            return true;
        }
        server.resume();
        false
    });
    server.signal(libc::SIGKILL);
    server.wait_exit();
    sending.store(false, Ordering::SeqCst);
    sender.join().expect("sender");
    let (mut stdout, mut first) = reader.join().expect("reader");
    stdout.read_to_end(&mut first).expect("read the rest of the first server's output");
    let mut left = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok((len, _)) = ours.receive(&mut buf) {
        left.push(String::from_utf8_lossy(&buf[..len]).split(' ').next().unwrap_or("").to_string());
    }

    let mut next = start_server(&queue);
    let replays = replayed(&[next.stderr.wait_containing("replayed")]);
    assert!(replays > 0, "the drain's lines are replayed");
    assert_eq!(next.terminate().code(), Some(0));
    let second = next.stdout.wait_closed();

    let number = |line: &str| line.strip_prefix("mq[0]: ")?.split(' ').next().map(str::to_string);
    let first_lines: Vec<String> =
        String::from_utf8_lossy(&first).lines().map(|l| number(l).expect("a queue line")).collect();
    let replayed_lines: Vec<String> =
        second.iter().take(replays).map(|l| number(l).expect("a queue line")).collect();
    let mut times: HashMap<String, usize> = HashMap::new();
    for n in first_lines.iter().chain(&replayed_lines).chain(&left) {
        *times.entry(n.clone()).or_default() += 1;
    }
    let sent = sent.load(Ordering::SeqCst);
    let missing: Vec<usize> = (0..sent).filter(|n| !times.contains_key(&n.to_string())).collect();
    eprintln!(
        "sent {sent}: printed {}, replayed {replays}, left in the removed queue {}, missing {missing:?}",
        first_lines.len(),
        left.len()
    );
    assert!(missing.len() <= 1, "at most the message being received at the kill is lost: {missing:?}");
    let first_set: std::collections::HashSet<&String> = first_lines.iter().collect();
    assert!(
        replayed_lines.iter().all(|n| times[n] == 1 || first_set.contains(n)),
        "a line printed twice is one the killed server had written"
    );
}

/// A server killed in the middle of a write into a file leaves the start
/// of a line; the journal prints that line again whole. The next server
/// starts on a new line, so that every line it prints is whole: into a
/// file opened to append (`>>`) or at its end.
#[test]
fn a_file_that_ends_inside_a_line_gets_a_newline_before_the_replay() {
    let dir = TempDir::new();
    let data = b"mq[0]: the whole line\nmq[0]: the next\n";
    for (before, append) in [("mq[0]: the who", true), ("mq[0]: the who", false), ("mq[0]: done\n", true)] {
        let queue = TestQueue::new();
        plant_journal(
            &queue,
            0o600,
            &journal_header_for(capacity(), 0, data),
            data,
            HEADER_SIZE + capacity(),
        );
        let path = dir.join(&unique("stdout"));
        std::fs::write(&path, before).expect("write the file");
        let mut file = std::fs::OpenOptions::new().append(append).write(true).open(&path).expect("open it");
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).expect("seek to its end");

        let mut server = ServerBuilder::on(&queue).stdout_to(file).start();
        let expected = if before.ends_with('\n') { before.to_string() } else { format!("{before}\n") }
            + std::str::from_utf8(data).unwrap();
        let read = || std::fs::read_to_string(&path).unwrap_or_default();
        server.wait_for("the journal's lines in the file", || read().len() >= expected.len());
        assert_eq!(server.terminate().code(), Some(0));

        assert_eq!(read(), expected, "append: {append}");
    }
}

/// A stdout that fails from the start, as a server meets it.
enum DeadStdout {
    /// A pipe whose reader closed: `EPIPE`.
    ReaderGone,
    /// `/dev/full`: `ENOSPC`.
    Full,
    /// A TCP connection its peer reset: `ECONNRESET`, then `EPIPE`.
    Reset,
    /// A full pipe whose reader never reads: the server waits until a
    /// `SIGTERM` stops it.
    Stalled,
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both were just made and are owned by nobody else.
    unsafe { (std::os::fd::FromRawFd::from_raw_fd(fds[0]), std::os::fd::FromRawFd::from_raw_fd(fds[1])) }
}

impl DeadStdout {
    /// The server's stdout, and what the test keeps of it: the read end of
    /// a stalled pipe, or the socket's other end.
    fn make(&self) -> (std::fs::File, Option<std::fs::File>) {
        use std::io::Write;
        match self {
            DeadStdout::ReaderGone => {
                let (reader, mut writer) = pipe();
                drop(reader);
                // A process another test forks may hold a copy of the read end until it execs.
                wait_until("no reader of the pipe", || writer.write(b".").is_err());
                (writer, None)
            }
            DeadStdout::Full => (std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap(), None),
            DeadStdout::Reset => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                reset(listener.accept().unwrap().0);
                ours.set_nonblocking(true).unwrap();
                wait_until("the reset to arrive", || {
                    ours.peek(&mut [0]).is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
                });
                ours.set_nonblocking(false).unwrap();
                (std::fs::File::from(std::os::fd::OwnedFd::from(ours)), None)
            }
            DeadStdout::Stalled => {
                let (reader, writer) = pipe();
                let filler = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&writer)))
                    .unwrap();
                // As large as the server makes it, first: then full.
                // SAFETY: plain call on an open descriptor.
                unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&writer), libc::F_SETPIPE_SZ, 1 << 20) };
                while (&filler).write(b"filler\n").is_ok() {}
                (writer, Some(reader))
            }
        }
    }
}

/// A server that adopts a queue holding 10 messages and a killed server's
/// journal holding 9 lines, with a stdout that fails from the start,
/// prints none of them, and leaves them all to the next server: the lines
/// in the journal, the messages in the queue (which it does not drain into
/// a dead stdout, nor remove). Every message is counted over every output.
#[test]
fn a_stdout_dead_at_startup_leaves_the_queue_and_the_journal_to_the_next_server() {
    use std::io::Read;
    for dead in [DeadStdout::ReaderGone, DeadStdout::Full, DeadStdout::Reset, DeadStdout::Stalled] {
        let queue = TestQueue::new();
        let journal: Vec<String> = (1..=9).map(|i| format!("mq[0]: journal {i}")).collect();
        let data = journal.iter().map(|line| format!("{line}\n")).collect::<String>();
        plant(&queue, 0o600, data.as_bytes());
        let waiting = RawQueue::create(queue.name(), 10, 256, 0o600).expect("make the queue");
        let queued: Vec<String> = (1..=10).map(|i| format!("mq[0]: queued {i}")).collect();
        for i in 1..=10 {
            waiting.send(format!("queued {i}").as_bytes(), 0);
        }
        drop(waiting);

        let (stdout, kept) = dead.make();
        let mut first = ServerBuilder::on(&queue).stdout_to(stdout).spawn();
        if let DeadStdout::Stalled = dead {
            // It holds the journal open while it replays it into the full pipe.
            let fds = format!("/proc/{}/fd", first.pid());
            let name = journal_name(&queue);
            first.wait_for("the server to replay the journal", || {
                let links = std::fs::read_dir(&fds).into_iter().flatten().flatten();
                links
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .any(|link| link.ends_with(&name[1..]))
            });
            first.signal(libc::SIGTERM);
        }
        first.wait_exit();
        let mut printed_first = String::new();
        if let Some(mut reader) = kept {
            let mut all = Vec::new();
            // SAFETY: plain call; the server is gone, so nothing more comes.
            unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&reader), libc::F_SETFL, libc::O_NONBLOCK) };
            let _ = reader.read_to_end(&mut all);
            printed_first = String::from_utf8_lossy(&all).replace("filler\n", "");
        }
        let log = first.stderr.snapshot().join("\n");
        assert!(log.contains("left in the queue for the next server"), "{log}");

        let mut next = start_server(&queue);
        let printed_next = next.stdout.wait_count(19);
        assert_eq!(next.terminate().code(), Some(0));

        assert_eq!(printed_first, "", "nothing reaches a dead stdout");
        assert_eq!(printed_next, [journal, queued].concat(), "first server's log:\n{log}");
    }
}
