//! Runs each example in `reactor/examples/` as a process of its own, the way a
//! student would, so that the examples cannot rot.
//!
//! Cargo builds no examples for `cargo test --test examples` and offers no
//! `CARGO_BIN_EXE_` variable for them, so the tests run `cargo build
//! --examples` once (cargo decides what is stale; an existence check would run
//! yesterday's binary) and find them next to this test's own directory.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use ipc::{Access, MessageQueue};
use util::{exchange_lines, TestQueue};

mod util;

/// How long any expected output or exit may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn echo_returns_every_byte_to_concurrent_clients_and_exits_0_on_sigterm() {
    let mut server = Running::start("echo", ["127.0.0.1:0"]);
    let first = server.next_line();
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("echo: expected `listening on ADDR`, got {first:?}"));

    let mut clients: Vec<_> = (0..8).map(|id| thread::spawn(move || echo_client(addr, id))).collect();
    clients.push(thread::spawn(move || stalling_client(addr)));
    for (id, client) in clients.into_iter().enumerate() {
        let result = client.join().unwrap_or_else(|_| panic!("client {id} panicked"));
        result.unwrap_or_else(|e| panic!("client {id}: {e}"));
    }

    server.signal(libc::SIGTERM);
    let (rest, status) = server.finish();
    assert!(rest.is_empty(), "echo printed more than its address: {rest:?}");
    assert!(status.success(), "echo exited with {status} after SIGTERM");
}

#[test]
fn ticker_prints_n_ticks_then_its_one_shot_timer_stops_it() {
    let ticker = Running::start("ticker", ["3"]);
    let (lines, status) = ticker.finish();
    assert_eq!(lines, ["tick 1", "tick 2", "tick 3", "stopping after 3 ticks"]);
    assert!(status.success(), "ticker exited with {status}");
}

#[test]
fn fifo_reader_prints_lines_of_successive_writers_and_removes_its_fifo_on_sigterm() {
    let fifo = TempPath::new("fifo");
    let mut reader = Running::start("fifo_reader", [fifo.path()]);
    assert_eq!(reader.next_line(), format!("reading {}", fifo.path().display()));

    for writer in ["first", "second"] {
        // No O_CREAT, so never a regular file by mistake; O_NONBLOCK, so that a
        // dead reader fails the open (ENXIO) instead of blocking the test.
        let mut pipe = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo.path())
            .unwrap_or_else(|e| panic!("{writer} writer: open {}: {e}", fifo.path().display()));
        write!(pipe, "{writer} 1\n{writer} 2\n").unwrap_or_else(|e| panic!("{writer} writer: {e}"));
        drop(pipe); // the writer leaves; the reader must go on serving the next one
        assert_eq!(reader.next_line(), format!("{writer} 1"));
        assert_eq!(reader.next_line(), format!("{writer} 2"));
    }

    reader.signal(libc::SIGTERM);
    let (rest, status) = reader.finish();
    assert!(rest.is_empty(), "fifo_reader printed more lines: {rest:?}");
    assert!(status.success(), "fifo_reader exited with {status} after SIGTERM");
    assert!(!fifo.path().exists(), "fifo_reader left {} behind", fifo.path().display());
}

#[test]
fn child_prints_the_commands_lines_and_exits_with_its_status() {
    let script = "echo one; read x < /dev/null; echo two; exit 3";
    let child = Running::start("child", ["sh", "-c", script]);
    let (lines, status) = child.finish();
    assert_eq!(lines, ["one", "two", "exited: exit status: 3"]);
    assert_eq!(status.code(), Some(3), "child exits with the command's status");
}

#[test]
fn child_reports_a_command_killed_by_a_signal() {
    let child = Running::start("child", ["sh", "-c", "echo before; kill -TERM $$"]);
    let (lines, status) = child.finish();
    assert_eq!(lines, ["before", "exited: signal: 15 (SIGTERM)"]);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn child_exits_with_its_commands_exit_code() {
    let (lines, status) = Running::start("child", ["sh", "-c", "exit 7"]).finish();
    assert_eq!(lines, ["exited: exit status: 7"]);
    assert_eq!(status.code(), Some(7), "child passes its command's exit code on");
}

#[test]
fn supervisor_restarts_a_failing_command_until_its_limit_and_exits_with_its_code() {
    let (lines, status) = Running::start("supervisor", ["sh", "-c", "echo working; exit 3"]).finish();
    assert_eq!(lines.len(), 4 * 3 + 1, "{lines:?}");
    for (run, lines) in (1..=4).zip(lines.chunks(3)) {
        assert!(lines[0].starts_with(&format!("run {run}: started, pid ")), "{lines:?}");
        assert_eq!(lines[1..], ["working".to_string(), format!("run {run}: exit status: 3")]);
    }
    assert_eq!(lines[12], "done after 4 runs");
    assert_eq!(status.code(), Some(3), "supervisor exits with its command's last code");
}

#[test]
fn supervisor_stops_its_command_gracefully_on_sigterm() {
    let mut supervisor = Running::start("supervisor", ["sh", "-c", "echo ready; exec sleep 30"]);
    assert!(supervisor.next_line().starts_with("run 1: started"));
    assert_eq!(supervisor.next_line(), "ready");
    supervisor.signal(libc::SIGTERM);
    let (rest, status) = supervisor.finish();
    assert_eq!(rest, ["run 1: signal: 15 (SIGTERM)", "done after 1 runs"]);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn shared_counter_adds_every_turn_of_every_worker_and_leaves_no_name_behind() {
    let counter = Running::start("shared_counter", ["3"]);
    let pid = counter.child.id();
    let (lines, status) = counter.finish();
    assert_eq!(lines, ["total 30000"], "an addition outside the lock would lose some");
    assert!(status.success(), "shared_counter exited with {status}");
    for what in ["value", "lock"] {
        let prefix = if what == "lock" { "sem." } else { "" };
        let path = PathBuf::from(format!("/dev/shm/{prefix}shared-counter-{what}-{pid}"));
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

#[test]
fn watchdog_ends_and_restarts_a_command_that_falls_silent() {
    let silent = ["200", "sh", "-c", "echo alive; kill -STOP $$"];
    let (lines, status) = Running::start("watchdog", silent).finish();
    assert_eq!(lines.len(), 6 * 3, "5 restarts, then it gives up: {lines:?}");
    for (run, lines) in (1..=6).zip(lines.chunks(3)) {
        assert!(lines[0].starts_with(&format!("run {run}: pid ")), "{lines:?}");
        assert_eq!(lines[1..], ["alive".to_string(), format!("run {run}: signal: 15 (SIGTERM)")]);
    }
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn dispatcher_gives_the_job_of_a_crashed_worker_to_a_new_one() {
    let (dispatcher, mut stdin) = Running::start_piped("dispatcher");
    stdin.write_all(b"1\n2\n3\n4\n5\n6\n7\n8\n").expect("write the jobs");
    drop(stdin);
    let (mut lines, status) = dispatcher.finish();
    lines.retain(|line| !line.ends_with("exit status: 0"));
    lines.iter_mut().for_each(|line| *line = line.split(", pid").next().unwrap_or_default().to_string());
    lines.sort();
    let mut expected: Vec<String> = (1..=8)
        .map(|job| format!("job {job} done by worker {}", if job % 4 == 0 { 2 } else { 1 }))
        .chain([4, 8].map(|job| format!("job {job}, worker 1: signal: 6 (SIGABRT)")))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
    assert_eq!(status.code(), Some(0), "no job failed for good");
}

#[test]
fn uppercase_sends_each_line_to_its_child_and_prints_the_replies() {
    let (mut parent, mut stdin) = Running::start_piped("uppercase");
    // One line at a time: each reply comes back before the next is sent.
    for word in ["hello", "pipe pair"] {
        writeln!(stdin, "{word}").expect("write to the example");
        assert_eq!(parent.next_line(), word.to_uppercase());
    }
    // A burst of about 1 MiB, far more than the child's stdin writer holds (64
    // KiB), then end of input: every reply, in order (none dropped while the
    // writer was full), then a clean exit.
    let burst: Vec<String> = (0..100_000).map(|i| format!("line {i}")).collect();
    stdin.write_all(burst.join("\n").as_bytes()).expect("write to the example");
    drop(stdin);
    let (rest, status) = parent.finish();
    let expected: Vec<String> = burst.iter().map(|l| l.to_uppercase()).collect();
    let first_wrong = rest.iter().zip(&expected).position(|(got, want)| got != want);
    assert!(
        rest == expected,
        "{} replies for {} lines; first wrong at {first_wrong:?}",
        rest.len(),
        expected.len()
    );
    assert!(status.success(), "uppercase exited with {status}");
}

/// `uppercase < file` and `uppercase < /dev/null`: epoll refuses both
/// (they exited 1 with a bare `EPERM`); the file's lines (about 1 MiB, a
/// piece per round) come back in order, /dev/null gives none, and it exits 0.
#[test]
fn uppercase_reads_a_regular_file_or_dev_null_as_its_stdin() {
    let input = TempPath::new("uppercase-input");
    let lines: Vec<String> = (0..100_000).map(|i| format!("line {i}")).collect();
    std::fs::write(input.path(), lines.join("\n")).expect("write the input file");
    let file = std::fs::File::open(input.path()).expect("open the input file");
    for (stdin, expected) in [(Stdio::from(file), lines), (Stdio::null(), Vec::new())] {
        let (rest, status) = Running::start_with("uppercase", [""; 0], stdin).finish();
        let expected: Vec<String> = expected.iter().map(|l| l.to_uppercase()).collect();
        assert!(rest == expected, "{} replies for {} lines", rest.len(), expected.len());
        assert!(status.success(), "uppercase exited with {status}");
    }
}

#[test]
fn follow_prints_a_log_as_it_grows_and_through_a_rotation_then_exits_0_on_sigterm() {
    let (log, rotated) = (TempPath::new("follow-log"), TempPath::new("follow-log-rotated"));
    std::fs::write(log.path(), "before\n").expect("write the log");
    let append = |path: &Path, text: &str| {
        let mut file = OpenOptions::new().append(true).open(path).expect("open the log");
        file.write_all(text.as_bytes()).expect("append to the log");
    };
    let mut follow = Running::start("follow", [log.path()]);
    assert_eq!(follow.next_line(), format!("following {}", log.path().display()));
    assert_eq!(follow.next_line(), "before");
    append(log.path(), "grown\n");
    assert_eq!(follow.next_line(), "grown");
    std::fs::rename(log.path(), rotated.path()).expect("rotate the log");
    append(rotated.path(), "late in the old file\n");
    std::fs::write(log.path(), "in the new file\n").expect("write the new log");
    assert_eq!(follow.next_line(), "late in the old file");
    assert_eq!(follow.next_line(), "in the new file");

    follow.signal(libc::SIGTERM);
    let (rest, status) = follow.finish();
    assert!(rest.is_empty(), "follow printed more lines: {rest:?}");
    assert!(status.success(), "follow exited with {status} after SIGTERM");
}

/// Out of inotify watches: a user namespace of its own whose limit is 0
/// (`/proc/sys/user/max_inotify_watches`, which its root may write) makes
/// `inotify_add_watch` fail with `ENOSPC` for certain, without touching the
/// limits of the machine.
#[test]
fn follow_out_of_inotify_watches_names_the_path_and_the_limit_to_raise() {
    let log = TempPath::new("follow-enospc");
    std::fs::write(log.path(), "").expect("write the log");
    let no_watches = "echo 0 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"";
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", no_watches])
        .arg(example("follow"))
        .arg(log.path())
        .output()
        .expect("cannot run unshare (util-linux), which makes the user namespace");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("follow {}", log.path().display())), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("fs.inotify.max_user_watches"), "{stderr}");
}

#[test]
fn shm_semaphore_prints_the_five_values_of_its_producer_thread() {
    let example = Running::start("shm_semaphore", [""; 0]);
    let pid = example.child.id();
    let (lines, status) = example.finish();
    assert_eq!(lines, ["got 10", "got 20", "got 30", "got 40", "got 50"]);
    assert!(status.success(), "shm_semaphore exited with {status}");
    for name in ["reactor-example-shm", "sem.reactor-example-empty", "sem.reactor-example-full"] {
        let path = PathBuf::from(format!("/dev/shm/{name}-{pid}"));
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

#[test]
fn chat_gives_two_clients_every_line_while_a_third_never_reads_in_bounded_memory() {
    const LINES: usize = 10_000;
    const LINE: usize = 100; // 1 MB each way; 2 MB offered to the one that never reads
    let path = TempPath::new("chat");
    let mut server = Running::start("chat", [path.path().as_os_str(), OsStr::new("pause")]);
    assert_eq!(server.next_line(), format!("listening on unix:{}", path.path().display()));
    let idle = vm_hwm(&server);

    let connect = || {
        let stream = std::os::unix::net::UnixStream::connect(path.path()).expect("connect to chat");
        stream.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
        stream
    };
    // Accepted in this order, so each is in the room before the next speaks.
    let (never_reads, a, b) = (connect(), connect(), connect());
    let (mut a_lines, mut b_lines) =
        (BufReader::new(a.try_clone().unwrap()), BufReader::new(b.try_clone().unwrap()));
    let mut line = String::new();
    (&b).write_all(b"ready b\n").unwrap(); // a is in the room: it was accepted first
    a_lines.read_line(&mut line).unwrap();
    (&a).write_all(b"ready a\n").unwrap(); // b is in the room: it has spoken
    b_lines.read_line(&mut line).unwrap();
    assert_eq!(line, "ready b\nready a\n");
    drop((a_lines, b_lines));

    let a = exchange_lines(a, "a", "b", LINES, LINE, TIMEOUT);
    let b = exchange_lines(b, "b", "a", LINES, LINE, TIMEOUT);
    for (name, client) in [("a", a), ("b", b)] {
        client.join().unwrap_or_else(|_| panic!("client {name} panicked")).unwrap_or_else(|e| panic!("{e}"));
    }
    let busy = vm_hwm(&server);
    assert!(busy <= idle + 1024, "VmHWM went from {idle} kB idle to {busy} kB");
    drop(never_reads);

    server.signal(libc::SIGTERM);
    let (rest, status) = server.finish();
    assert!(rest.is_empty(), "chat printed {rest:?}");
    assert!(status.success(), "chat exited with {status} after SIGTERM");
    assert!(!path.path().exists(), "chat left its socket behind");
}

#[test]
fn queue_relay_keeps_each_messages_priority_and_order_under_a_slow_reader() {
    const MESSAGES: u32 = 2_000;
    let (from, to) = (TestQueue::new("relay-from"), TestQueue::new("relay-to"));
    let mut relay = Running::start("queue_relay", [&from.name, &to.name]);
    assert_eq!(relay.next_line(), format!("relaying {} to {}", from.name, to.name));

    let input = MessageQueue::open(&from.name, Access::Send).expect("open the input queue");
    let producer = thread::spawn(move || -> io::Result<()> {
        for seq in 0..MESSAGES {
            input.send_timeout(format!("{seq}").as_bytes(), seq % 8, TIMEOUT)?;
        }
        Ok(())
    });
    let output = MessageQueue::open(&to.name, Access::Receive).expect("open the output queue");
    let mut last_of = [None::<u32>; 8];
    let mut buf = [0; 256];
    for n in 0..MESSAGES {
        if n % 16 == 0 {
            thread::sleep(Duration::from_millis(1)); // a slow reader: the relay holds meanwhile
        }
        let (len, priority) = output.receive_timeout(&mut buf, TIMEOUT).expect("a relayed message");
        let seq: u32 = std::str::from_utf8(&buf[..len]).unwrap().parse().unwrap();
        assert_eq!(priority, seq % 8, "message {seq} came with priority {priority}");
        let last = &mut last_of[priority as usize];
        assert!(last.is_none_or(|last| last < seq), "message {seq} came after {last:?}, same priority");
        *last = Some(seq);
    }
    producer.join().expect("producer panicked").expect("producer");

    relay.signal(libc::SIGTERM);
    let (rest, status) = relay.finish();
    assert!(rest.iter().all(|l| l.starts_with("relayed ")), "queue_relay printed {rest:?}");
    assert!(status.success(), "queue_relay exited with {status} after SIGTERM");
}

/// The peak resident size of a running example, in kB (`VmHWM`).
fn vm_hwm(running: &Running) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", running.child.id())).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("a VmHWM line");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("VmHWM in kB")
}

/// The exercises of the course are to fit in 40 lines of code (blank and
/// comment lines not counted) with what the library offers.
#[test]
fn every_example_fits_in_40_lines_of_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    names.sort();
    assert!(names.len() >= 10, "examples missing from {}", dir.display());
    for path in names {
        let name = path.display();
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let code = source.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")).count();
        assert!(code <= 40, "{name}: {code} lines of code");
    }
}

/// One echo client: sends lines (and, for the first four clients, 4 MiB more)
/// while reading concurrently; then half-closes and expects every byte back,
/// in order, and end of file.
fn echo_client(addr: SocketAddr, id: usize) -> io::Result<()> {
    let mut sent = Vec::new();
    for line in 0..100 {
        writeln!(sent, "client {id} line {line}")?;
    }
    if id < 4 {
        sent.extend(pattern(0..4 << 20));
    }
    let mut stream = connect(addr)?;
    let mut writer = stream.try_clone()?;
    let payload = sent.clone();
    let writing = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&payload)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received);
    writing.join().map_err(|_| io::Error::other("writer thread panicked"))??;
    read?;
    compare(&sent, &received)
}

/// A client that sends without reading. The server must stop reading it once
/// its replies fill the socket (the echo handler then waits for WRITABLE
/// instead of READABLE), so that our writes stall: this is what the
/// partial-write path of the example is for. Then we read everything back.
fn stalling_client(addr: SocketAddr) -> io::Result<()> {
    const CAP: usize = 256 << 20;
    let mut stream = connect(addr)?;
    // A write that makes no progress for this long means the server stopped reading.
    stream.set_write_timeout(Some(Duration::from_millis(250)))?;
    let chunk: Vec<u8> = pattern(0..64 << 10).collect();
    let mut sent = 0;
    while sent < CAP {
        let start = sent % chunk.len();
        match stream.write(&chunk[start..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if sent >= CAP {
        return Err(io::Error::other(format!("the server read {CAP} bytes it could not send back")));
    }
    stream.shutdown(Shutdown::Write)?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    let expected: Vec<u8> = chunk.iter().copied().cycle().take(sent).collect();
    compare(&expected, &received)
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Bytes that are not all the same, so that a lost or repeated block shows.
fn pattern(range: std::ops::Range<u32>) -> impl Iterator<Item = u8> {
    range.map(|i| (i % 251) as u8)
}

fn compare(sent: &[u8], received: &[u8]) -> io::Result<()> {
    if received == sent {
        return Ok(());
    }
    let at = received.iter().zip(sent).position(|(a, b)| a != b).unwrap_or(received.len().min(sent.len()));
    Err(io::Error::other(format!(
        "sent {} bytes, received {}; they first differ at byte {at}",
        sent.len(),
        received.len()
    )))
}

/// An example running as a child process, its stdout read line by line by a
/// thread. Dropping it kills the child if it still runs, so a failing test
/// leaves no process behind.
struct Running {
    name: &'static str,
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    fn start<I, S>(name: &'static str, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Running::start_with(name, args, Stdio::null())
    }

    /// Starts an example whose stdin is a pipe from the test.
    fn start_piped(name: &'static str) -> (Running, std::process::ChildStdin) {
        let mut running = Running::start_with(name, [""; 0], Stdio::piped());
        let stdin = running.child.stdin.take().expect("stdin is piped");
        (running, stdin)
    }

    fn start_with<I, S>(name: &'static str, args: I, stdin: Stdio) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { name, child, lines }
    }

    /// The next line the example prints, within [`TIMEOUT`].
    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("{}: no line within {TIMEOUT:?}", self.name),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}: stdout closed early (exit: {:?})", self.name, self.child.try_wait())
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits in pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions. The child has not
        // been waited for, so its pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "{}: kill: {}", self.name, io::Error::last_os_error());
    }

    /// The lines printed until the example closed its stdout, and its exit
    /// status, both within [`TIMEOUT`].
    fn finish(mut self) -> (Vec<String>, ExitStatus) {
        let deadline = Instant::now() + TIMEOUT;
        let mut rest = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("{}: still running after {TIMEOUT:?}", self.name),
            }
        }
        // Stdout closes as the process exits; the status follows at once.
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return (rest, status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => panic!("{}: closed stdout but did not exit", self.name),
                Err(e) => panic!("{}: wait: {e}", self.name),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The path of a built example. The first call builds them all.
fn example(name: &str) -> PathBuf {
    static EXAMPLES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match EXAMPLES.get_or_init(build_examples) {
        Ok(dir) => dir.join(name),
        Err(e) => panic!("{e}"),
    }
}

/// Builds the examples with the profile this test was built with, in the same
/// target directory, and returns `target/<profile>/examples`.
fn build_examples() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // This test is `target/<profile>/deps/examples-<hash>`.
    let profile_dir =
        exe.parent().and_then(Path::parent).ok_or("test binary is not in target/<profile>/deps")?;
    let target_dir = profile_dir.parent().ok_or("no target directory above the profile directory")?;
    let profile = profile_dir.file_name().and_then(OsStr::to_str).ok_or("profile directory name")?;

    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(env!("CARGO_MANIFEST_DIR"));
    cargo.args(["build", "--quiet", "-p", "reactor", "--examples", "--target-dir"]).arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        custom => {
            cargo.args(["--profile", custom]);
        }
    }
    let output = cargo.output().map_err(|e| format!("cannot run {}: {e}", env!("CARGO")))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --examples failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(profile_dir.join("examples"))
}

/// A unique path in the temporary directory, removed (if it exists) on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(what: &str) -> TempPath {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!("reactor-example-{what}-{}-{n}", std::process::id())))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
