//! Support for the end-to-end tests in `tests/`.
//!
//! The tests run the release binaries `server` and `client` as separate
//! processes, the way a user would. This crate builds them once per test run,
//! starts servers on unique queues and free ports, reads their output on
//! threads, and waits for what the tests expect with a deadline. Whatever a
//! test leaves behind is cleaned up on drop, also when the test fails:
//!
//! - [`TestQueue`] unlinks its queue name, and removes what a killed server
//!   leaves under that name in `/dev/shm` (its statistics);
//! - [`Server`] kills (`SIGKILL`) and reaps its process if it still runs,
//!   and asks the kernel to kill it should the test process die first;
//! - [`TempDir`] removes its directory.
//!
//! Nothing here sleeps to synchronise: every wait is for a condition (a line
//! of output, an exit, a process state, a descriptor count) and gives up
//! with a panic that shows what the server printed after [`DEADLINE`].

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::mem;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long any expected event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How often a condition that cannot be waited for (a process state, an
/// exit, a count in `/proc`) is looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

// ---------------------------------------------------------------------------
// The binaries

/// The workspace root, which holds `target/release/{server,client}`.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The path of a release binary of the workspace, built once per test run.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "-p", "server", "-p", "client"])
            .current_dir(workspace())
            .status()
            .expect("cannot run cargo to build the server and the client");
        assert!(status.success(), "cargo build --release -p server -p client failed: {status}");
    });
    workspace().join("target/release").join(name)
}

// ---------------------------------------------------------------------------
// Names, queues and directories that belong to one test

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test of any concurrent run uses: `PREFIX-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A queue name for one test, `/pbtest-<pid>-<n>`, unlinked on drop whoever
/// created the queue (a server that was killed leaves it behind).
pub struct TestQueue {
    name: String,
}

impl TestQueue {
    /// A fresh name; no queue is created.
    pub fn new() -> TestQueue {
        TestQueue { name: unique("/pbtest") }
    }

    /// A guard for a well-known name such as `/postbox`, for a test that
    /// must not create that queue: should it be created all the same, it is
    /// removed at the end of the test. The queue must not exist yet.
    pub fn well_known(name: &str) -> TestQueue {
        assert!(!queue_exists(name), "a {name} queue exists on this machine: this test needs it absent");
        TestQueue { name: name.to_string() }
    }

    /// The name, with its leading slash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a queue of this name exists.
    pub fn exists(&self) -> bool {
        queue_exists(&self.name)
    }
}

impl Default for TestQueue {
    fn default() -> Self {
        TestQueue::new()
    }
}

impl TestQueue {
    /// The POSIX shared memory objects and named semaphores (files in
    /// `/dev/shm`) whose names start with the queue's name and a dot, such
    /// as the server's statistics `NAME.stats`.
    pub fn shared_memory(&self) -> Vec<PathBuf> {
        let base = &self.name[1..];
        let prefixes = [format!("{base}."), format!("sem.{base}.")];
        let Ok(entries) = fs::read_dir("/dev/shm") else { return Vec::new() };
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                prefixes.iter().any(|p| entry.file_name().to_string_lossy().starts_with(p.as_str()))
            })
            .map(|entry| entry.path())
            .collect()
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let name = CString::new(self.name.as_str()).expect("queue names have no NUL");
        // SAFETY: `name` is NUL-terminated. ENOENT (already removed) is fine.
        unsafe { libc::mq_unlink(name.as_ptr()) };
        // A server killed with SIGKILL also leaves its statistics behind.
        for path in self.shared_memory() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Whether a queue exists: `mq_open` succeeds, or fails with anything but
/// `ENOENT`.
pub fn queue_exists(name: &str) -> bool {
    match RawQueue::open(name, libc::O_RDONLY) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
        Err(e) => panic!("mq_open {name}: {e}"),
    }
}

/// A queue descriptor the test itself holds, to make or inspect queues
/// without the server. Closed on drop.
pub struct RawQueue {
    mqd: libc::mqd_t,
}

/// What `mq_getattr` says about a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAttr {
    pub max_messages: i64,
    pub message_size: i64,
    pub current: i64,
}

impl RawQueue {
    /// Creates a queue that must not exist yet (`O_CREAT|O_EXCL`), read-write.
    pub fn create(
        name: &str,
        max_messages: i64,
        message_size: i64,
        mode: libc::mode_t,
    ) -> io::Result<RawQueue> {
        let c_name = CString::new(name).expect("queue names have no NUL");
        // SAFETY: `mq_attr` is a plain C struct; all-zero is a valid value.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        attr.mq_maxmsg = max_messages;
        attr.mq_msgsize = message_size;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC;
        // SAFETY: `c_name` is NUL-terminated and `attr` lives across the call.
        let mqd = unsafe { libc::mq_open(c_name.as_ptr(), flags, mode, &attr) };
        if mqd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawQueue { mqd })
    }

    /// Opens an existing queue with `flags` (`O_RDONLY`, `O_WRONLY`, ...).
    pub fn open(name: &str, flags: libc::c_int) -> io::Result<RawQueue> {
        let c_name = CString::new(name).expect("queue names have no NUL");
        // SAFETY: `c_name` is NUL-terminated; without O_CREAT no more arguments are read.
        let mqd = unsafe { libc::mq_open(c_name.as_ptr(), flags | libc::O_CLOEXEC) };
        if mqd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawQueue { mqd })
    }

    /// Sends one message; blocks if the queue is full.
    pub fn send(&self, message: &[u8], priority: u32) {
        // SAFETY: the message is readable for its length.
        let res = unsafe { libc::mq_send(self.mqd, message.as_ptr().cast(), message.len(), priority) };
        assert_eq!(res, 0, "mq_send: {}", io::Error::last_os_error());
    }

    /// The queue's attributes.
    pub fn attributes(&self) -> QueueAttr {
        // SAFETY: `mq_attr` is a plain C struct, filled in by `mq_getattr`.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        // SAFETY: the descriptor is open and `attr` is writable.
        let res = unsafe { libc::mq_getattr(self.mqd, &mut attr) };
        assert_eq!(res, 0, "mq_getattr: {}", io::Error::last_os_error());
        QueueAttr { max_messages: attr.mq_maxmsg, message_size: attr.mq_msgsize, current: attr.mq_curmsgs }
    }

    /// The permission bits of the queue (`fstat` on its descriptor).
    pub fn mode(&self) -> u32 {
        // SAFETY: `stat` is a plain C struct, filled in by `fstat`.
        let mut st: libc::stat = unsafe { mem::zeroed() };
        // SAFETY: on Linux an `mqd_t` is a descriptor; `st` is writable.
        let res = unsafe { libc::fstat(self.mqd, &mut st) };
        assert_eq!(res, 0, "fstat on a queue: {}", io::Error::last_os_error());
        st.st_mode & 0o7777
    }
}

impl Drop for RawQueue {
    fn drop(&mut self) {
        // SAFETY: the descriptor is open and ours alone.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// A directory for one test (Unix socket paths, input files), removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique("pbtest"));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Output, read line by line on a thread

/// The lines a process writes to one pipe, collected by a thread as they
/// come, without their `\n`. A line that is not UTF-8 (the server's output
/// always is) or a last line without `\n` is kept with a visible marker, so
/// that exact comparisons fail.
#[derive(Clone)]
pub struct Lines {
    what: Arc<str>,
    shared: Arc<(Mutex<Collected>, Condvar)>,
}

#[derive(Default)]
struct Collected {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts a thread that reads `source` to its end.
    pub fn collect(what: &str, source: impl Read + Send + 'static) -> Lines {
        let lines = Lines { what: what.into(), shared: Arc::default() };
        let sink = lines.clone();
        thread::spawn(move || sink.read_all(source));
        lines
    }

    fn read_all(&self, source: impl Read) {
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let complete = buf.last() == Some(&b'\n');
                    if complete {
                        buf.pop();
                    }
                    let mut line = match String::from_utf8(buf.clone()) {
                        Ok(line) => line,
                        Err(_) => format!("<not UTF-8: {:?}>", String::from_utf8_lossy(&buf)),
                    };
                    if !complete {
                        line.push_str("<no newline at end>");
                    }
                    let (state, changed) = &*self.shared;
                    state.lock().unwrap().lines.push(line);
                    changed.notify_all();
                }
            }
        }
        let (state, changed) = &*self.shared;
        state.lock().unwrap().closed = true;
        changed.notify_all();
    }

    /// The lines so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().lines.clone()
    }

    /// Waits until `done` says yes to the lines so far (it is asked again
    /// after each new line, and once more at end of file), and returns them.
    pub fn wait_until(&self, what: &str, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
        let (state, changed) = &*self.shared;
        let deadline = Instant::now() + DEADLINE;
        let mut collected = state.lock().unwrap();
        loop {
            if done(&collected.lines) {
                return collected.lines.clone();
            }
            let now = Instant::now();
            if collected.closed || now >= deadline {
                let why = if collected.closed { "end of output" } else { "deadline" };
                panic!(
                    "{}: {why} while waiting for {what}; last lines:\n{}",
                    self.what,
                    tail(&collected.lines, 30)
                );
            }
            collected = changed.wait_timeout(collected, deadline - now).unwrap().0;
        }
    }

    /// Waits for the first line for which `matches` holds, and returns it.
    pub fn wait_line(&self, what: &str, mut matches: impl FnMut(&str) -> bool) -> String {
        let mut checked = 0;
        let mut found = None;
        self.wait_until(what, |lines| {
            found = lines[checked..].iter().find(|l| matches(l)).cloned();
            checked = lines.len();
            found.is_some()
        });
        found.expect("wait_until returned without a match")
    }

    /// Waits for a line that is exactly `line`.
    pub fn wait_exact(&self, line: &str) {
        self.wait_line(&format!("the line {line:?}"), |l| l == line);
    }

    /// Waits for a line that contains `needle`, and returns it.
    pub fn wait_containing(&self, needle: &str) -> String {
        self.wait_line(&format!("a line containing {needle:?}"), |l| l.contains(needle))
    }

    /// Waits until there are at least `n` lines, and returns all of them.
    pub fn wait_count(&self, n: usize) -> Vec<String> {
        self.wait_until(&format!("{n} lines"), |lines| lines.len() >= n)
    }

    /// Waits for the end of the output (the writer closed its end), and
    /// returns every line.
    pub fn wait_closed(&self) -> Vec<String> {
        let (state, changed) = &*self.shared;
        let deadline = Instant::now() + DEADLINE;
        let mut collected = state.lock().unwrap();
        while !collected.closed {
            let now = Instant::now();
            assert!(now < deadline, "{}: still open after {DEADLINE:?}", self.what);
            collected = changed.wait_timeout(collected, deadline - now).unwrap().0;
        }
        collected.lines.clone()
    }
}

fn tail(lines: &[String], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    let shown: Vec<String> = lines[start..].iter().map(|l| format!("  {}", shorten(l))).collect();
    if shown.is_empty() {
        "  (none)".to_string()
    } else {
        shown.join("\n")
    }
}

fn shorten(line: &str) -> String {
    if line.len() <= 300 {
        return line.to_string();
    }
    let mut end = 300;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &line[..end], line.len())
}

// ---------------------------------------------------------------------------
// The server

/// What the server reads as stdin.
pub enum Input {
    /// `/dev/null`.
    Null,
    /// A pipe the test writes to ([`Server::write_stdin`]) and closes.
    Pipe,
    /// A regular file.
    File(File),
}

/// How to start a server.
pub struct ServerBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    input: Input,
    raw_stdout: bool,
    umask: Option<libc::mode_t>,
    ignored: Vec<libc::c_int>,
    pre_exec: Option<fn()>,
}

impl ServerBuilder {
    /// A server with no arguments at all (and no `POSTBOX_QUEUE` from the
    /// environment of the test run).
    pub fn bare() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            env: vec![("POSTBOX_QUEUE".into(), None)],
            input: Input::Null,
            raw_stdout: false,
            umask: None,
            ignored: Vec::new(),
            pre_exec: None,
        }
    }

    /// A server on `queue` with small messages (256 bytes; the default
    /// capacity of 10) and TCP on a free port of 127.0.0.1.
    pub fn on(queue: &TestQueue) -> ServerBuilder {
        ServerBuilder::bare().args([
            "--queue",
            queue.name(),
            "--message-size",
            "256",
            "--listen",
            "127.0.0.1:0",
        ])
    }

    /// Appends arguments. A later `--listen` or `--message-size` wins.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> ServerBuilder {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: &str, value: &str) -> ServerBuilder {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// What the server reads as stdin ([`Input::Null`] unless said).
    pub fn stdin(mut self, input: Input) -> ServerBuilder {
        self.input = input;
        self
    }

    /// Leaves stdout to the test ([`Server::take_stdout`]) instead of
    /// collecting it.
    pub fn raw_stdout(mut self) -> ServerBuilder {
        self.raw_stdout = true;
        self
    }

    /// Starts the server with this umask.
    pub fn umask(mut self, mask: libc::mode_t) -> ServerBuilder {
        self.umask = Some(mask);
        self
    }

    /// Starts the server with `signal` ignored, as `cmd &` in a script
    /// starts it with `SIGINT` ignored.
    pub fn ignoring(mut self, signal: libc::c_int) -> ServerBuilder {
        self.ignored.push(signal);
        self
    }

    /// Runs `hook` in the child between fork and exec (async-signal-safe
    /// calls only), for example to lower a resource limit.
    pub fn pre_exec_hook(mut self, hook: fn()) -> ServerBuilder {
        self.pre_exec = Some(hook);
        self
    }

    /// Starts the server and waits until stderr says `ready`.
    pub fn start(self) -> Server {
        let server = self.spawn();
        server.stderr.wait_containing("ready");
        server
    }

    /// Starts the server without waiting for anything.
    pub fn spawn(self) -> Server {
        let mut command = Command::new(binary("server"));
        command.args(&self.args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command.stdin(match self.input {
            Input::Null => Stdio::null(),
            Input::Pipe => Stdio::piped(),
            Input::File(file) => Stdio::from(file),
        });
        let (umask, ignored, hook) = (self.umask, self.ignored.clone(), self.pre_exec);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Should the test process die without its destructors, the
                // server dies too instead of being left behind. (The signal
                // comes when the spawning thread ends: servers are spawned and
                // dropped by the test's own thread.)
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(mask) = umask {
                    libc::umask(mask);
                }
                for &signal in &ignored {
                    libc::signal(signal, libc::SIG_IGN);
                }
                if let Some(hook) = hook {
                    hook();
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("cannot start the server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (out_lines, raw_stdout) = if self.raw_stdout {
            (Lines::collect("server stdout (not collected)", io::empty()), Some(stdout))
        } else {
            (Lines::collect("server stdout", stdout), None)
        };
        let stderr = Lines::collect("server stderr", child.stderr.take().expect("stderr is piped"));
        let stdin = child.stdin.take();
        Server { child, stdout: out_lines, stderr, stdin, raw_stdout, exited: None }
    }

    /// Runs a server that is expected to exit by itself (a startup failure),
    /// and returns how it ended.
    pub fn run_to_exit(self) -> Finished {
        let mut server = self.spawn();
        let status = server.wait_exit();
        Finished {
            status,
            stdout: server.stdout.wait_closed().join("\n"),
            stderr: server.stderr.wait_closed().join("\n"),
        }
    }
}

/// A running server process, killed (`SIGKILL`) and reaped on drop if it
/// has not exited.
pub struct Server {
    child: Child,
    /// What the server printed on stdout: the messages.
    pub stdout: Lines,
    /// What the server printed on stderr: the logs.
    pub stderr: Lines,
    stdin: Option<ChildStdin>,
    raw_stdout: Option<ChildStdout>,
    exited: Option<ExitStatus>,
}

/// Starts a server on `queue` as [`ServerBuilder::on`] sets it up, and waits
/// until it is ready.
pub fn start_server(queue: &TestQueue) -> Server {
    ServerBuilder::on(queue).start()
}

impl Server {
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// The address of `listening on ADDR` on stderr, as printed
    /// (`127.0.0.1:PORT` or `unix:PATH`).
    pub fn listen_addr(&self) -> String {
        let line = self.stderr.wait_containing("listening on ");
        let (_, rest) = line.split_once("listening on ").expect("line contains it");
        rest.split_whitespace().next().expect("an address after 'listening on'").to_string()
    }

    /// The TCP address the server listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        let addr = self.listen_addr();
        addr.parse().unwrap_or_else(|e| panic!("'listening on {addr}' is not a TCP address: {e}"))
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain system call; the child is ours and not yet reaped.
        let res = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(res, 0, "kill({}, {signal}): {}", self.pid(), io::Error::last_os_error());
    }

    /// Stops the server (`SIGSTOP`) and waits until it is stopped, so that
    /// whatever is sent next waits in the queue.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        self.wait_for("the server to be stopped", || self.state() == 'T');
    }

    /// Lets a stopped server go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Writes to the server's stdin (started with [`Input::Pipe`]).
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("the server was started with Input::Pipe");
        stdin.write_all(bytes).expect("write to the server's stdin");
        stdin.flush().expect("flush the server's stdin");
    }

    /// Closes the server's stdin: it sees end of file.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take().expect("the server was started with Input::Pipe"));
    }

    /// The server's stdout (started with [`ServerBuilder::raw_stdout`]).
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.raw_stdout.take().expect("the server was started with raw_stdout()")
    }

    /// Waits until the server exits, then until its output is read to the
    /// end, and returns how it exited.
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waitpid on the server") {
                break status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the server did not exit within {DEADLINE:?}; stderr:\n{}\nstdout:\n{}",
                    tail(&self.stderr.snapshot(), 30),
                    tail(&self.stdout.snapshot(), 30)
                );
            }
            thread::sleep(POLL_INTERVAL);
        };
        self.exited = Some(status);
        self.stdout.wait_closed();
        self.stderr.wait_closed();
        status
    }

    /// Sends `SIGTERM` and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Whether the process is still alive (not exited, not reaped).
    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && self.child.try_wait().expect("waitpid on the server").is_none()
    }

    /// The process state letter from `/proc/PID/stat` (`S`, `R`, `T`, ...).
    pub fn state(&self) -> char {
        let fields = self.stat_fields();
        fields[0].chars().next().expect("a state letter")
    }

    /// CPU time used so far, in clock ticks: `utime + stime` (fields 14
    /// and 15 of `/proc/PID/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let fields = self.stat_fields();
        // Field 3 (the state) is the first after the command name.
        let field = |n: usize| fields[n - 3].parse::<u64>().expect("a tick count");
        field(14) + field(15)
    }

    /// The fields of `/proc/PID/stat` after the command name, from the state.
    fn stat_fields(&self) -> Vec<String> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/PID/stat");
        let after_name = &stat[stat.rfind(')').expect("a command name in parentheses") + 1..];
        after_name.split_whitespace().map(str::to_string).collect()
    }

    /// The peak resident set size (`VmHWM` in `/proc/PID/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/PID/status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("a VmHWM line");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB")
    }

    /// How many descriptors the server has open.
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid())).expect("read /proc/PID/fd").count()
    }

    /// Waits until `condition` holds, looking every few milliseconds.
    pub fn wait_for(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !condition() {
            if Instant::now() >= deadline {
                panic!(
                    "no {what} within {DEADLINE:?}; server stderr:\n{}",
                    tail(&self.stderr.snapshot(), 30)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Short-lived processes: the client, make, a failing server

/// How a process that ran to its end ended, and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code; panics if a signal ended the process.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!("killed by signal {:?}; stderr: {}", self.status.signal(), self.stderr),
        }
    }

    /// The lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Asserts exit code 0.
    pub fn assert_success(&self) -> &Finished {
        assert_eq!(self.code(), 0, "expected success; stderr: {}", self.stderr);
        self
    }
}

/// A short-lived process that the test lets run (a client that waits for
/// room in a full queue), killed and reaped on drop if it did not finish.
pub struct Process {
    child: Child,
    description: String,
    writer: Option<thread::JoinHandle<()>>,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Option<thread::JoinHandle<String>>,
    finished: bool,
}

impl Process {
    /// Starts `command` with `input` on stdin, collecting its output.
    pub fn start(mut command: Command, input: &[u8]) -> Process {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let description = format!("{command:?}");
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {description}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A process that exits without reading its input gets EPIPE here: fine.
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let read = |mut source: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = source.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("stdout is piped")));
        let stderr = read(Box::new(child.stderr.take().expect("stderr is piped")));
        Process {
            child,
            description,
            writer: Some(writer),
            stdout: Some(stdout),
            stderr: Some(stderr),
            finished: false,
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Waits until the process sleeps in the kernel waiting for room in a
    /// message queue (`wq_sleep` in `/proc/PID/wchan`).
    pub fn wait_blocked_on_a_queue(&self) {
        let wchan = format!("/proc/{}/wchan", self.pid());
        wait_until("the process to block on a full queue", || {
            fs::read_to_string(&wchan).is_ok_and(|w| w.trim() == "wq_sleep")
        });
    }

    /// Waits for the process to end, at most `limit`, and returns how it
    /// ended and what it printed.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                break status;
            }
            assert!(Instant::now() < deadline, "{} did not finish within {limit:?}", self.description);
            thread::sleep(POLL_INTERVAL);
        };
        self.finished = true;
        let join = |handle: Option<thread::JoinHandle<String>>| {
            handle.map(|h| h.join().unwrap()).unwrap_or_default()
        };
        let _ = self.writer.take().map(thread::JoinHandle::join);
        Finished { status, stdout: join(self.stdout.take()), stderr: join(self.stderr.take()) }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to its end with `input` on stdin, killing it and failing
/// the test if it takes longer than `limit`.
pub fn run_to_end(command: Command, input: &[u8], limit: Duration) -> Finished {
    Process::start(command, input).finish(limit)
}

/// Waits until `condition` holds, looking every few milliseconds, and fails
/// the test after [`DEADLINE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "no {what} within {DEADLINE:?}");
        thread::sleep(POLL_INTERVAL);
    }
}

/// A `client` command with `args`, and no `POSTBOX_QUEUE` from the
/// environment of the test run.
pub fn client_command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(binary("client"));
    command.args(args).env_remove("POSTBOX_QUEUE");
    command
}

/// Runs the client with `args` and empty stdin.
pub fn client<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Finished {
    run_to_end(client_command(args), b"", DEADLINE)
}

/// Runs the client with `args`, feeding it `input` on stdin.
pub fn client_with_input<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, input: &[u8]) -> Finished {
    run_to_end(client_command(args), input, DEADLINE)
}

/// Sends `message` to `queue` with the client, and asserts that it worked.
pub fn send(queue: &TestQueue, message: &str) {
    client(["--queue", queue.name(), "--", message]).assert_success();
}

/// Sends `message` with `priority` to `queue` with the client, and asserts
/// that it worked.
pub fn send_with_priority(queue: &TestQueue, priority: u32, message: &str) {
    client(["--queue", queue.name(), "--priority", &priority.to_string(), "--", message]).assert_success();
}

// ---------------------------------------------------------------------------
// The escaping rule, written down independently of the server's code

/// What the server prints for `message`: `\n`, tab and backslash as `\n`,
/// `\t`, `\\`; other control bytes (below 0x20, and 0x7f) and every byte
/// that is not part of valid UTF-8 as `\xNN` in lowercase hex; valid UTF-8
/// as it is.
pub fn escaped(message: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = message;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(text) => (text, 0),
            Err(e) => {
                let text = std::str::from_utf8(&rest[..e.valid_up_to()]).expect("valid up to here");
                // `None`: an incomplete sequence at the end, all of it invalid.
                (text, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for c in valid.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        let bad = &rest[valid.len()..valid.len() + invalid];
        for byte in bad {
            out.push_str(&format!("\\x{byte:02x}"));
        }
        rest = &rest[valid.len() + invalid..];
    }
    out
}

// ---------------------------------------------------------------------------
// The live statistics: `client --stats --json`, parsed

/// A JSON value, as `client --stats --json` prints it. Numbers keep their
/// text, so that 64-bit counters and nanosecond times stay exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses one JSON value that takes the whole of `text` (surrounding
    /// whitespace allowed). Strict: a trailing comma, a bare word or a
    /// second value is an error.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut parser = JsonParser { bytes: text.as_bytes(), at: 0 };
        let value = parser.value()?;
        parser.skip_space();
        if parser.at != parser.bytes.len() {
            return Err(parser.error("the end of the text"));
        }
        Ok(value)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The keys of an object, in order.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Json::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// A whole number that fits a `u64`; panics otherwise.
    pub fn as_u64(&self) -> u64 {
        match self {
            Json::Number(text) => text.parse().unwrap_or_else(|_| panic!("{text} is not a u64")),
            other => panic!("expected a number, found {other:?}"),
        }
    }

    /// A whole number that fits an `i64`; panics otherwise.
    pub fn as_i64(&self) -> i64 {
        match self {
            Json::Number(text) => text.parse().unwrap_or_else(|_| panic!("{text} is not an i64")),
            other => panic!("expected a number, found {other:?}"),
        }
    }

    /// A boolean; panics otherwise.
    pub fn as_bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            other => panic!("expected true or false, found {other:?}"),
        }
    }

    /// A string; panics otherwise.
    pub fn as_str(&self) -> &str {
        match self {
            Json::String(s) => s,
            other => panic!("expected a string, found {other:?}"),
        }
    }
}

impl std::ops::Index<&str> for Json {
    type Output = Json;

    /// The member `key` of an object; panics, naming the key, if absent.
    fn index(&self, key: &str) -> &Json {
        self.get(key).unwrap_or_else(|| panic!("no member {key:?} in {self:?}"))
    }
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn error(&self, expected: &str) -> String {
        let rest = String::from_utf8_lossy(&self.bytes[self.at.min(self.bytes.len())..]);
        format!("JSON: expected {expected} at byte {}, found {:?}", self.at, shorten(&rest))
    }

    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.bytes[self.at..].starts_with(token.as_bytes()) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_space();
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => Ok(self.number()),
            _ if self.eat("true") => Ok(Json::Bool(true)),
            _ if self.eat("false") => Ok(Json::Bool(false)),
            _ if self.eat("null") => Ok(Json::Null),
            _ => Err(self.error("a value")),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.at += 1;
        let mut members = Vec::new();
        self.skip_space();
        if self.eat("}") {
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_space();
            if self.bytes.get(self.at) != Some(&b'"') {
                return Err(self.error("a member name"));
            }
            let key = self.string()?;
            self.skip_space();
            if !self.eat(":") {
                return Err(self.error("':'"));
            }
            members.push((key, self.value()?));
            self.skip_space();
            if self.eat("}") {
                return Ok(Json::Object(members));
            }
            if !self.eat(",") {
                return Err(self.error("',' or '}'"));
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.eat("]") {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            if self.eat("]") {
                return Ok(Json::Array(items));
            }
            if !self.eat(",") {
                return Err(self.error("',' or ']'"));
            }
        }
    }

    fn number(&mut self) -> Json {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
            self.at += 1;
        }
        Json::Number(String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned())
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.bytes.get(self.at) {
                None => return Err(self.error("the end of a string")),
                Some(b'"') => {
                    self.at += 1;
                    return String::from_utf8(out).map_err(|_| self.error("UTF-8 in a string"));
                }
                Some(b'\\') => {
                    let escaped = match self.bytes.get(self.at + 1) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'u') => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6).unwrap_or_default();
                            let code =
                                std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok());
                            self.at += 4;
                            code.and_then(char::from_u32).ok_or_else(|| self.error("\\uXXXX"))?
                        }
                        _ => return Err(self.error("an escape")),
                    };
                    self.at += 2;
                    out.extend_from_slice(escaped.encode_utf8(&mut [0; 4]).as_bytes());
                }
                Some(&b) if b < 0x20 => return Err(self.error("no control byte in a string")),
                Some(&b) => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }
}

/// The source names of the statistics, in the order the server counts them.
pub const SOURCES: [&str; 4] = ["mq", "stdin", "tcp", "unix"];

/// What the statistics say about one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceFigures {
    pub messages: u64,
    pub bytes: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    pub errors: u64,
}

impl SourceFigures {
    /// The figures of `source` (`mq`, `stdin`, `tcp`, `unix`) in the object
    /// that `client --stats --json` prints.
    pub fn of(stats: &Json, source: &str) -> SourceFigures {
        let figures = &stats["sources"][source];
        SourceFigures {
            messages: figures["messages"].as_u64(),
            bytes: figures["bytes"].as_u64(),
            connections_open: figures["connections_open"].as_u64(),
            connections_total: figures["connections_total"].as_u64(),
            errors: figures["errors"].as_u64(),
        }
    }
}

/// Runs `client --stats --json --queue NAME` with `extra` arguments, and
/// returns how it ended with the object it printed (`None` if stdout is
/// empty; a panic if stdout is not exactly one JSON object on one line).
pub fn client_stats(queue: &TestQueue, extra: &[&str]) -> (Finished, Option<Json>) {
    let mut args = vec!["--stats", "--json", "--queue", queue.name()];
    args.extend_from_slice(extra);
    let run = client(&args);
    if run.stdout.is_empty() {
        return (run, None);
    }
    assert!(
        run.stdout.ends_with('\n') && run.stdout.lines().count() == 1,
        "--stats --json should print one line: {:?}",
        run.stdout
    );
    let json = Json::parse(&run.stdout).unwrap_or_else(|e| panic!("{e}\nstdout: {}", run.stdout));
    assert!(matches!(json, Json::Object(_)), "not an object: {}", run.stdout);
    (run, Some(json))
}

/// `client --stats --json` that must succeed (exit 0, nothing on stderr):
/// the object it printed.
pub fn stats_of(queue: &TestQueue) -> Json {
    let (run, json) = client_stats(queue, &[]);
    assert_eq!(run.code(), 0, "client --stats failed; stderr: {}", run.stderr);
    assert_eq!(run.stderr, "", "client --stats warned");
    json.expect("client --stats printed nothing")
}

/// The name of the statistics object and semaphore of `queue`: `/Q.stats`.
pub fn stats_name(queue: &TestQueue) -> String {
    format!("{}.stats", queue.name())
}

// ---------------------------------------------------------------------------
// POSIX named semaphores and shared memory, as the test's own process sees them

/// A named semaphore opened by the test (`sem_open`), closed on drop. The
/// test may hold it (take it and not give it back) to play a stuck reader;
/// whatever it still holds at drop is posted back.
pub struct NamedSemaphore {
    sem: *mut libc::sem_t,
    held: u32,
}

impl NamedSemaphore {
    /// Opens an existing semaphore.
    pub fn open(name: &str) -> io::Result<NamedSemaphore> {
        let c_name = CString::new(name).expect("names have no NUL");
        // SAFETY: `c_name` is NUL-terminated; without O_CREAT no more arguments are read.
        let sem = unsafe { libc::sem_open(c_name.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(NamedSemaphore { sem, held: 0 })
    }

    /// Creates a semaphore that must not exist yet, with mode 0600 and
    /// `value`. Its name must be removed by the caller (a [`TestQueue`]
    /// removes `NAME.stats`).
    pub fn create(name: &str, value: u32) -> io::Result<NamedSemaphore> {
        let c_name = CString::new(name).expect("names have no NUL");
        let mode: libc::mode_t = 0o600;
        // SAFETY: `c_name` is NUL-terminated; O_CREAT reads the mode and the value.
        let sem = unsafe { libc::sem_open(c_name.as_ptr(), libc::O_CREAT | libc::O_EXCL, mode, value) };
        if sem == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(NamedSemaphore { sem, held: 0 })
    }

    /// Takes the semaphore, waiting at most [`DEADLINE`] for it.
    pub fn take(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        // SAFETY: the semaphore is open until drop.
        while unsafe { libc::sem_trywait(self.sem) } != 0 {
            let e = io::Error::last_os_error();
            assert!(matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)), "sem_trywait: {e}");
            assert!(Instant::now() < deadline, "the semaphore stayed taken for {DEADLINE:?}");
            thread::sleep(POLL_INTERVAL);
        }
        self.held += 1;
    }

    /// Gives back what [`take`](NamedSemaphore::take) took.
    pub fn post(&mut self) {
        assert!(self.held > 0, "post without take");
        // SAFETY: the semaphore is open until drop.
        let res = unsafe { libc::sem_post(self.sem) };
        assert_eq!(res, 0, "sem_post: {}", io::Error::last_os_error());
        self.held -= 1;
    }

    /// The semaphore's value (`sem_getvalue`).
    pub fn value(&self) -> i32 {
        let mut value = 0;
        // SAFETY: the semaphore is open and `value` is writable.
        let res = unsafe { libc::sem_getvalue(self.sem, &mut value) };
        assert_eq!(res, 0, "sem_getvalue: {}", io::Error::last_os_error());
        value
    }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        for _ in 0..self.held {
            // SAFETY: the semaphore is open.
            unsafe { libc::sem_post(self.sem) };
        }
        // SAFETY: the semaphore is open and unused after this.
        unsafe { libc::sem_close(self.sem) };
    }
}

/// Creates a POSIX shared memory object that must not exist yet
/// (`shm_open(O_CREAT|O_EXCL)`, mode 0600) holding `bytes`. Its name must
/// be removed by the caller (a [`TestQueue`] removes `NAME.stats`).
pub fn create_shared_memory(name: &str, bytes: &[u8]) -> io::Result<()> {
    let c_name = CString::new(name).expect("names have no NUL");
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC;
    // SAFETY: `c_name` is NUL-terminated.
    let raw = unsafe { libc::shm_open(c_name.as_ptr(), flags, 0o600 as libc::mode_t) };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `shm_open` just returned this descriptor; nobody else owns it.
    let mut file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    file.write_all(bytes)
}

/// The path in `/dev/shm` of the shared memory object `name` (`/X` is
/// `/dev/shm/X`), and of the named semaphore `name` (`/dev/shm/sem.X`).
pub fn shm_paths(name: &str) -> (PathBuf, PathBuf) {
    let base = name.trim_start_matches('/');
    (Path::new("/dev/shm").join(base), Path::new("/dev/shm").join(format!("sem.{base}")))
}

// ---------------------------------------------------------------------------
// The mqueue filesystem

/// Where the mqueue filesystem is mounted, mounting it on `/dev/mqueue`
/// first if it is not (once per test binary). `None`, with the reason, if
/// that is not possible (not root, no mqueue support).
pub fn mqueue_mount() -> Result<PathBuf, String> {
    static MOUNTED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    MOUNTED
        .get_or_init(|| {
            if let Some(dir) = find_mqueue_mount() {
                return Ok(dir);
            }
            let dir = Path::new("/dev/mqueue");
            fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let c = |s: &str| CString::new(s).expect("no NUL");
            let (source, target, kind) = (c("none"), c("/dev/mqueue"), c("mqueue"));
            // SAFETY: NUL-terminated strings; no mount data.
            let res =
                unsafe { libc::mount(source.as_ptr(), target.as_ptr(), kind.as_ptr(), 0, std::ptr::null()) };
            if res != 0 {
                return Err(format!("mount -t mqueue none /dev/mqueue: {}", io::Error::last_os_error()));
            }
            find_mqueue_mount().ok_or_else(|| "mounted, but not in /proc/self/mounts".to_string())
        })
        .clone()
}

/// [`mqueue_mount`], or `None` after printing why the test is skipped.
pub fn mqueue_mount_or_skip() -> Option<PathBuf> {
    mqueue_mount().map_err(|why| println!("skipped: {why}")).ok()
}

/// Resets a TCP connection: `SO_LINGER` 0 makes the close send RST, not FIN.
pub fn reset(stream: std::net::TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the socket is open; `linger` is a valid option value for its size.
    let res = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(res, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

fn find_mqueue_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&"mqueue")).then(|| PathBuf::from(fields[1]))
    })
}

/// The fields of a queue's file in the mqueue filesystem (`QSIZE`,
/// `NOTIFY`, `SIGNO`, `NOTIFY_PID`), as numbers by name.
pub fn mqueue_fields(text: &str) -> Vec<(String, i64)> {
    text.split_whitespace()
        .filter_map(|field| {
            let (key, value) = field.split_once(':')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Reads the queue's file in the mounted mqueue filesystem and returns
/// its fields. Never call it from a process registered with `mq_notify`
/// on that queue: closing any descriptor of the queue removes the
/// caller's registration.
pub fn mqueue_file_fields(mount: &Path, queue: &TestQueue) -> Vec<(String, i64)> {
    let file = mount.join(queue.name().trim_start_matches('/'));
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    mqueue_fields(&text)
}

/// One field of [`mqueue_fields`]; panics if missing.
pub fn field(fields: &[(String, i64)], key: &str) -> i64 {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

impl RawQueue {
    /// The descriptor, for calls the helpers do not wrap (`mq_notify`).
    pub fn raw(&self) -> libc::mqd_t {
        self.mqd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_parser_reads_what_client_stats_prints_and_keeps_numbers_exact() {
        let text = r#"{"queue":"/q\"\\\u0041","pid":12,"ns":1795617264507680021,"ok":true,"no":false,
                       "nested":{"a":[1, -2.5e3, null]},"empty":{}}"#;
        let json = Json::parse(text).unwrap();
        assert_eq!(json["queue"].as_str(), "/q\"\\A");
        assert_eq!(json["pid"].as_u64(), 12);
        assert_eq!(json["ns"].as_u64(), 1_795_617_264_507_680_021);
        assert!(json["ok"].as_bool() && !json["no"].as_bool());
        let items = Json::Array(vec![Json::Number("1".into()), Json::Number("-2.5e3".into()), Json::Null]);
        assert_eq!(json["nested"]["a"], items);
        assert_eq!(json.keys(), ["queue", "pid", "ns", "ok", "no", "nested", "empty"]);
        assert!(json["empty"].keys().is_empty());
    }

    #[test]
    fn json_parser_refuses_what_is_not_one_json_value() {
        for bad in ["", "{", r#"{"a":1,}"#, r#"{"a" 1}"#, "{} {}", "[1 2]", "tru", r#""open"#, "{a:1}"] {
            assert!(Json::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn mqueue_fields_are_read_by_name() {
        let fields = mqueue_fields("QSIZE:28         NOTIFY:0     SIGNO:34    NOTIFY_PID:4242 \n");
        assert_eq!(field(&fields, "QSIZE"), 28);
        assert_eq!(field(&fields, "SIGNO"), 34);
        assert_eq!(field(&fields, "NOTIFY_PID"), 4242);
    }
}
