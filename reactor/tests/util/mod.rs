//! Helpers shared by the reactor's integration tests, in the manner of mio's
//! `tests/util`: real kernel objects (eventfds, pipes, socketpairs), a
//! handler that writes down what happens to it, and waits that give up at a
//! deadline instead of hanging.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code, unused_macros)]

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use reactor::sources::LineReader;
use reactor::{Context, Handler, Interest, Reactor, Readiness};

/// How long a test waits for something that should happen at once.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// How long a test watches for something that should not happen.
pub const QUIET: Duration = Duration::from_millis(20);

/// CPU ticks (of 1/100 s) a thread may use in one second and still count as
/// idle. A thread spinning on a descriptor uses about 100.
pub const IDLE_TICKS: u64 = 10;

// ----------------------------------------------------------------------------
// What happened, in order.

/// An ordered record of what handlers saw, such as `"a: ready"`.
#[derive(Clone, Default)]
pub struct Journal(Rc<RefCell<Vec<String>>>);

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// The entries that end with `suffix`, such as `": shutdown"`.
    pub fn ending_with(&self, suffix: &str) -> Vec<String> {
        self.0.borrow().iter().filter(|e| e.ends_with(suffix)).cloned().collect()
    }

    pub fn count(&self, entry: &str) -> usize {
        self.0.borrow().iter().filter(|e| *e == entry).count()
    }

    pub fn contains(&self, entry: &str) -> bool {
        self.count(entry) > 0
    }

    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

// ----------------------------------------------------------------------------
// A handler that records its life.

type OnReady = Box<dyn FnMut(BorrowedFd<'_>, Readiness, &mut Context) -> io::Result<()>>;

/// A handler that writes `"<name>: start"`, `"<name>: ready"` and
/// `"<name>: shutdown"` into a journal, and otherwise does what its
/// `on_ready` closure says: by default nothing, so a level-triggered source
/// that is not drained stays ready.
pub struct Probe {
    name: String,
    fd: OwnedFd,
    interest: Interest,
    journal: Journal,
    on_ready: OnReady,
}

impl Probe {
    pub fn new(name: &str, fd: OwnedFd, journal: &Journal) -> Probe {
        Probe {
            name: name.to_owned(),
            fd,
            interest: Interest::READABLE,
            journal: journal.clone(),
            on_ready: Box::new(|_, _, _| Ok(())),
        }
    }

    pub fn with_interest(mut self, interest: Interest) -> Probe {
        self.interest = interest;
        self
    }

    pub fn on_ready(
        mut self,
        on_ready: impl FnMut(BorrowedFd<'_>, Readiness, &mut Context) -> io::Result<()> + 'static,
    ) -> Probe {
        self.on_ready = Box::new(on_ready);
        self
    }
}

impl Handler for Probe {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn interest(&self) -> Interest {
        self.interest
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        self.journal.push(format!("{}: ready", self.name));
        (self.on_ready)(self.fd.as_fd(), readiness, ctx)
    }

    fn on_start(&mut self, _: &mut Context) -> io::Result<()> {
        self.journal.push(format!("{}: start", self.name));
        Ok(())
    }

    fn on_shutdown(&mut self) {
        self.journal.push(format!("{}: shutdown", self.name));
    }
}

/// A `LineReader` that writes each line into the journal as
/// `"<name>: <line>"`, an unfinished one as `"<name>: unfinished <part>"`,
/// and its close as `"<name>: closed"`.
pub fn line_journal(name: &str, fd: OwnedFd, max_line: usize, journal: &Journal) -> LineReader {
    let (lines, rest, closes) = (journal.clone(), journal.clone(), journal.clone());
    let (line_prefix, close_entry) = (format!("{name}: "), format!("{name}: closed"));
    let rest_prefix = format!("{name}: unfinished ");
    LineReader::new(fd, max_line, move |line, _| {
        lines.push(format!("{line_prefix}{}", String::from_utf8_lossy(line)));
    })
    .named(name)
    .on_unfinished(move |part, _| rest.push(format!("{rest_prefix}{}", String::from_utf8_lossy(part))))
    .on_close(move |_| closes.push(close_entry.clone()))
}

// ----------------------------------------------------------------------------
// Kernel objects.

/// Turns a raw descriptor that a system call just returned into an `OwnedFd`.
fn owned(raw: libc::c_int, what: &str) -> OwnedFd {
    assert!(raw >= 0, "{what}: {}", io::Error::last_os_error());
    // SAFETY: the system call just returned this descriptor; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// A non-blocking, close-on-exec eventfd with a zero counter.
pub fn eventfd() -> OwnedFd {
    // SAFETY: plain system call with constant flags.
    owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }, "eventfd")
}

/// A doorbell: an eventfd for a handler to own, and a second descriptor on
/// the same eventfd for the test to [`ring`] it with or [`drain`] it.
pub fn doorbell() -> (OwnedFd, OwnedFd) {
    let fd = eventfd();
    let bell = fd.try_clone().expect("dup eventfd");
    (fd, bell)
}

/// Makes an eventfd readable (adds 1 to its counter).
pub fn ring(fd: impl AsFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live local buffer to a valid descriptor.
    let n = unsafe { libc::write(fd.as_fd().as_raw_fd(), one.as_ptr().cast(), one.len()) };
    assert_eq!(n, 8, "ring eventfd: {}", io::Error::last_os_error());
}

/// Resets an eventfd's counter, if it was set.
pub fn drain(fd: impl AsFd) {
    let mut count = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live local buffer.
    let n = unsafe { libc::read(fd.as_fd().as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    let err = io::Error::last_os_error();
    assert!(n == 8 || err.kind() == io::ErrorKind::WouldBlock, "drain eventfd: {err}");
}

/// A pipe as `(read end, write end)`, both non-blocking and close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    let res = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(res, 0, "pipe2: {}", io::Error::last_os_error());
    (owned(fds[0], "pipe2"), owned(fds[1], "pipe2"))
}

/// A connected pair of Unix stream sockets, non-blocking and close-on-exec.
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for the two descriptors `socketpair` writes.
    let res = unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) };
    assert_eq!(res, 0, "socketpair: {}", io::Error::last_os_error());
    (owned(fds[0], "socketpair"), owned(fds[1], "socketpair"))
}

/// Writes `bytes` in one `write`, which must take all of them.
pub fn write(fd: impl AsFd, bytes: &[u8]) {
    // SAFETY: writes from a live slice of the given length.
    let n = unsafe { libc::write(fd.as_fd().as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(n, bytes.len() as isize, "write: {}", io::Error::last_os_error());
}

/// One `write`, returning the error if it fails.
pub fn try_write(fd: impl AsFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a live slice of the given length.
    let n = unsafe { libc::write(fd.as_fd().as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether the descriptor is closed when the process executes a program.
pub fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: `F_GETFD` only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0, "fcntl(F_GETFD): {}", io::Error::last_os_error());
    flags & libc::FD_CLOEXEC != 0
}

/// Whether reads and writes on the descriptor return `EAGAIN` instead of blocking.
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: `F_GETFL` only reads the open file's status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl(F_GETFL): {}", io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

// ----------------------------------------------------------------------------
// Running the loop.

/// Runs rounds until `done` holds; panics if it does not within [`DEADLINE`].
pub fn run_until(reactor: &mut Reactor, what: &str, mut done: impl FnMut(&Reactor) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(reactor) {
        let left = deadline.checked_duration_since(Instant::now());
        let left = left.unwrap_or_else(|| panic!("timed out waiting for {what}"));
        reactor.run_once(Some(left.min(Duration::from_millis(100)))).expect("run_once");
    }
}

/// Runs `test` on a thread of its own and fails if it has not finished
/// within [`DEADLINE`]: a loop that never returns then fails the test
/// instead of hanging it. `test` makes what it needs (reactor, handlers) on
/// that thread.
pub fn within_deadline(test: impl FnOnce() + Send + 'static) {
    let (finished, done) = mpsc::channel();
    let thread = thread::spawn(move || {
        test();
        let _ = finished.send(());
    });
    if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(DEADLINE) {
        panic!("still running after {DEADLINE:?}: the loop never returned");
    }
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Runs one round and checks that nothing was reported within [`QUIET`].
pub fn expect_no_events(reactor: &mut Reactor) {
    let n = reactor.run_once(Some(QUIET)).expect("run_once");
    assert_eq!(n, 0, "expected no events");
}

/// Runs rounds for `period` of wall-clock time; returns how many it ran.
pub fn run_for(reactor: &mut Reactor, period: Duration) -> usize {
    let start = Instant::now();
    let mut rounds = 0;
    while let Some(left) = period.checked_sub(start.elapsed()) {
        reactor.run_once(Some(left)).expect("run_once");
        rounds += 1;
    }
    rounds
}

// ----------------------------------------------------------------------------
// Sockets and message queues.

/// Asks for a send buffer of `bytes` (the kernel doubles it).
pub fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) {
    let bytes = libc::c_int::try_from(bytes).expect("a send buffer size fits in c_int");
    // SAFETY: `bytes` is a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_SNDBUF: {}", io::Error::last_os_error());
}

/// A message queue of 4 messages of 256 bytes, so that "full" is certain,
/// with a unique name; removed when dropped, even by a failing test.
pub struct TestQueue {
    pub name: String,
}

impl TestQueue {
    pub fn new(what: &str) -> TestQueue {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("/reactor-test-{what}-{}-{n}", std::process::id());
        let options = ipc::QueueOptions { max_messages: 4, message_size: 256, ..Default::default() };
        drop(ipc::MessageQueue::create(&name, &options).unwrap_or_else(|e| panic!("{name}: {e}")));
        TestQueue { name }
    }

    pub fn open(&self, access: ipc::Access) -> ipc::MessageQueue {
        ipc::MessageQueue::open(&self.name, access).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// How many messages it holds now.
    pub fn depth(&self) -> i64 {
        self.open(ipc::Access::Receive).attributes().expect("mq_getattr").current_messages
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let _ = ipc::MessageQueue::unlink(&self.name);
    }
}

// ----------------------------------------------------------------------------
// Chat clients.

/// Line `i` of client `who`: `len` bytes with its `\n`, numbered, so that a
/// lost, repeated or foreign line shows.
pub fn chat_line(who: &str, i: usize, len: usize) -> String {
    let head = format!("{who} {i:05} ");
    format!("{head}{}", "x".repeat(len - 1 - head.len()))
}

/// A chat client on a thread: writes `lines` lines of `len` bytes (on a
/// thread of its own, so that reading never waits for writing) while it
/// reads as many lines of `other`, then closes. Fails unless every line of
/// `other` came, in order, within `timeout` of the one before.
pub fn exchange_lines(
    stream: std::os::unix::net::UnixStream,
    me: &'static str,
    other: &'static str,
    lines: usize,
    len: usize,
    timeout: Duration,
) -> thread::JoinHandle<io::Result<()>> {
    use std::io::BufRead;
    thread::spawn(move || {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut out = stream.try_clone()?;
        let writer = thread::spawn(move || -> io::Result<()> {
            let all: String = (0..lines).map(|i| chat_line(me, i, len) + "\n").collect();
            out.write_all(all.as_bytes())
        });
        let mut got = io::BufReader::new(stream).lines();
        for i in 0..lines {
            let line = got.next().ok_or_else(|| io::Error::other(format!("{me}: end after {i} lines")))??;
            if line != chat_line(other, i, len) {
                return Err(io::Error::other(format!("{me}: line {i} of {other} is {line:?}")));
            }
        }
        writer.join().map_err(|_| io::Error::other(format!("{me}: writer panicked")))?
    })
}

// ----------------------------------------------------------------------------
// CPU time.

/// The CPU time of the calling thread, from `/proc/thread-self/stat`.
///
/// Per thread, so that tests running in parallel do not count each other.
/// The file stays open and is re-read from offset 0, so it can be read when
/// the process has no descriptor left.
pub struct CpuClock(File);

impl CpuClock {
    pub fn for_this_thread() -> CpuClock {
        CpuClock(File::open("/proc/thread-self/stat").expect("open /proc/thread-self/stat"))
    }

    /// User plus system time (`utime` + `stime`, fields 14 and 15), in ticks.
    pub fn ticks(&self) -> u64 {
        let mut buf = [0u8; 1024];
        let n = self.0.read_at(&mut buf, 0).expect("read /proc/thread-self/stat");
        let stat = std::str::from_utf8(&buf[..n]).expect("stat is ASCII");
        // The command name (field 2) may hold spaces; count from after it.
        let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |number: usize| -> u64 { fields[number - 3].parse().expect("a tick count") };
        field(14) + field(15)
    }
}

// ----------------------------------------------------------------------------
// Files.

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(purpose: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique =
            format!("reactor-{purpose}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ----------------------------------------------------------------------------
// For `harness = false` targets.

/// `main` for a `harness = false` target: runs the named test functions.
macro_rules! harness_free_main {
    ($($test:ident),* $(,)?) => {
        fn main() {
            util::run_tests(&[$((stringify!($test), $test as fn())),*]);
        }
    };
}

/// Runs each test in turn on the main thread, printing as the standard
/// harness does; a failing test panics, which fails the whole binary. Like
/// the standard harness, runs only the tests whose names contain the first
/// argument that is not an option, if there is one.
pub fn run_tests(tests: &[(&str, fn())]) {
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-')).unwrap_or_default();
    let chosen: Vec<_> = tests.iter().filter(|(name, _)| name.contains(&filter)).collect();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    println!("\nrunning {} test{}", chosen.len(), plural(chosen.len()));
    for (name, test) in &chosen {
        print!("test {name} ... ");
        io::stdout().flush().expect("flush stdout");
        test();
        println!("ok");
    }
    let filtered = tests.len() - chosen.len();
    println!("\ntest result: ok. {} passed; {filtered} filtered out\n", chosen.len());
}
