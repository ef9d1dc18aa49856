//! Shared arrays, create-or-open and removal at drop across real
//! processes. Each child is this executable again, run as `child ROLE
//! NAME...`: it makes or opens the objects, says what it did on stdout, one
//! line at a time, and waits for a line on stdin where the test must act
//! between two of its steps.
//!
//! Without the standard harness (`harness = false`): a child that stops on
//! SIGTERM through the reactor's `SignalFd` must be a process of one thread,
//! and the tests run one after the other on the main thread. Arguments that
//! do not start with `-` select the tests whose names contain them.

mod common;

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::panic;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::{which_exist, Name};
use ipc::{Access, MessageQueue, NamedSemaphore, QueueOptions, SharedMemory};
use reactor::sources::{Signal, SignalFd};
use reactor::Reactor;

/// The first argument of a child.
const CHILD: &str = "child";

/// How long a test waits for a child to speak or end: far more than it takes.
const PATIENCE: Duration = Duration::from_secs(10);

ipc::plain! {
    /// What the tests put in a shared array: a record of three fields.
    #[derive(Debug, PartialEq)]
    struct Record {
        index: u32,
        writer: u32,
        value: u64,
    }
}

const RECORDS: usize = 64;

/// The increments each of two processes makes.
const INCREMENTS: u64 = 100_000;

/// The size and mode the creator that stops gives its object.
const STALLED_SIZE: usize = 8192;
const STALLED_MODE: libc::mode_t = 0o666;

/// Who the children that play another user become.
const NOBODY: libc::uid_t = 65534;

fn queue_options() -> QueueOptions {
    QueueOptions { max_messages: 2, message_size: 64, ..QueueOptions::default() }
}

const TESTS: &[(&str, fn())] = &[
    (
        "records_written_by_one_process_are_read_by_another",
        records_written_by_one_process_are_read_by_another,
    ),
    ("atomics_incremented_by_two_processes_sum_exactly", atomics_incremented_by_two_processes_sum_exactly),
    (
        "create_or_open_from_four_processes_at_once_creates_once",
        create_or_open_from_four_processes_at_once_creates_once,
    ),
    (
        "an_opener_waits_for_a_creator_stopped_between_creating_and_sizing",
        an_opener_waits_for_a_creator_stopped_between_creating_and_sizing,
    ),
    ("an_opener_gives_up_on_a_creator_that_never_sizes", an_opener_gives_up_on_a_creator_that_never_sizes),
    (
        "as_root_an_opener_of_another_user_waits_for_a_creator_stopped_before_sizing",
        as_root_an_opener_of_another_user_waits_for_a_creator_stopped_before_sizing,
    ),
    (
        "as_root_an_opener_of_another_user_refused_by_the_mode_fails_at_once",
        as_root_an_opener_of_another_user_refused_by_the_mode_fails_at_once,
    ),
    ("the_creator_removes_its_names_when_main_returns", the_creator_removes_its_names_when_main_returns),
    ("the_creator_removes_its_names_on_an_error_return", the_creator_removes_its_names_on_an_error_return),
    (
        "the_creator_removes_its_names_when_sigterm_stops_its_reactor",
        the_creator_removes_its_names_when_sigterm_stops_its_reactor,
    ),
    ("an_opener_removes_nothing_when_it_ends", an_opener_removes_nothing_when_it_ends),
    ("after_sigkill_the_names_remain", after_sigkill_the_names_remain),
    (
        "a_lock_held_by_another_process_times_out_then_comes_back_on_its_error_return",
        a_lock_held_by_another_process_times_out_then_comes_back_on_its_error_return,
    ),
    (
        "a_lock_held_by_a_killed_process_stays_taken_until_its_owner_posts",
        a_lock_held_by_a_killed_process_stays_taken_until_its_owner_posts,
    ),
];

/// How long the tests' `lock_timeout` waits for a lock they know is held.
const SHORT: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD) {
        return match child(&args[1], &args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child {}: {e}", args[1]);
                ExitCode::FAILURE
            }
        };
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in chosen.iter().copied() {
        let result = panic::catch_unwind(test);
        println!("test {name} ... {}", if result.is_ok() { "ok" } else { "FAILED" });
        if result.is_err() {
            failed.push(name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {} passed; {} failed: {failed:?}\n",
        chosen.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---- the tests ----

fn records_written_by_one_process_are_read_by_another() {
    let name = Name::new();
    let shm = SharedMemory::create(&name.0, RECORDS * std::mem::size_of::<Record>(), 0o600).expect("create");
    let records = shm.array::<Record>(RECORDS).expect("array");
    let ours = records.slice(..RECORDS / 2).expect("the first half");
    for i in 0..ours.len() {
        ours.set(i, Record { index: i as u32, writer: std::process::id(), value: i as u64 * 1000 })
            .expect("set");
    }
    let mut child = Child::spawn("copy-records", &[&name.0]);
    assert_eq!(child.line(), "copied");
    assert!(child.wait().success());
    for i in RECORDS / 2..RECORDS {
        let record = records.get(i).expect("get");
        let from = i - RECORDS / 2;
        let expected = Record { index: i as u32, writer: child.id, value: from as u64 * 1000 + 1 };
        assert_eq!(record, expected, "slot {i}: what the child wrote, from what it read in slot {from}");
    }
}

fn atomics_incremented_by_two_processes_sum_exactly() {
    let (name, start) = (Name::new(), Name::new());
    let shm = SharedMemory::create(&name.0, 8, 0o600).expect("create");
    let go = NamedSemaphore::create(&start.0, 0o600, 0).expect("the start");
    let mut children =
        [Child::spawn("count", &[&name.0, &start.0]), Child::spawn("count", &[&name.0, &start.0])];
    for child in &mut children {
        assert_eq!(child.line(), "ready");
    }
    go.post().and(go.post()).expect("both start at once");
    for child in &mut children {
        assert!(child.wait().success());
    }
    let total =
        shm.array::<AtomicU64>(1).expect("array").with(0, |c| c.load(Ordering::SeqCst)).expect("load");
    assert_eq!(total, 2 * INCREMENTS);
}

fn create_or_open_from_four_processes_at_once_creates_once() {
    let (name, start) = (Name::new(), Name::new());
    let go = NamedSemaphore::create(&start.0, 0o600, 0).expect("the start");
    let mut children: Vec<Child> = (0..4).map(|_| Child::spawn("own", &[&name.0, &start.0])).collect();
    for child in &mut children {
        assert_eq!(child.line(), "ready");
    }
    for _ in &children {
        go.post().expect("post");
    }
    let mut creators = [0; 3];
    for child in &mut children {
        let line = child.line();
        let created: Vec<bool> = line.split(' ').map(|word| word == "created").collect();
        assert_eq!(created.len(), 3, "{line}");
        for (count, created) in creators.iter_mut().zip(created) {
            *count += created as usize;
        }
    }
    assert_eq!(creators, [1, 1, 1], "exactly one creator of each: shm, semaphore, queue");
    assert_eq!(which_exist(&name.0), [true; 3]);
    for child in &mut children {
        child.release();
    }
    for child in &mut children {
        assert!(child.wait().success());
    }
    assert_eq!(which_exist(&name.0), [false; 3], "each creator removed what it created");
}

fn an_opener_waits_for_a_creator_stopped_between_creating_and_sizing() {
    let name = Name::new();
    let mut creator = Child::spawn("stall-creator", &[&name.0]);
    assert_eq!(creator.line(), "created");
    match SharedMemory::open(&name.0, true) {
        Ok(early) => assert_eq!((early.info().expect("fstat").mode, early.len().expect("len")), (0, 0)),
        Err(e) => assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}"),
    }

    let (tid_tx, tid_rx) = mpsc::channel();
    let opener = thread::spawn({
        let name = name.0.clone();
        move || {
            // SAFETY: plain call.
            tid_tx.send(unsafe { libc::gettid() }).expect("send");
            SharedMemory::create_or_open(&name, STALLED_SIZE, 0o600)
        }
    });
    let tid = tid_rx.recv_timeout(PATIENCE).expect("the opener's thread id");
    // It sleeps only after it found the object unfinished: it is waiting now.
    wait_until("the opener waits", Duration::from_millis(1500), || is_sleeping(tid));
    assert!(!opener.is_finished(), "it did not return the unsized object");

    creator.release();
    assert_eq!(creator.line(), "sized");
    let (shm, created) = opener.join().expect("the opener").expect("create_or_open");
    assert!(!created && !shm.removes_on_drop(), "it opened the creator's object");
    let info = shm.info().expect("fstat");
    assert_eq!((info.size, info.mode), (STALLED_SIZE as u64, STALLED_MODE), "as its creator made it");
    creator.release();
    assert!(creator.wait().success());
}

fn an_opener_gives_up_on_a_creator_that_never_sizes() {
    let name = Name::new();
    let creator = Child::spawn("stall-creator", &[&name.0]);
    assert_eq!(creator.line(), "created");
    let started = Instant::now();
    let e = SharedMemory::create_or_open(&name.0, STALLED_SIZE, 0o600).expect_err("never sized");
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited its 2 s: {:?}", started.elapsed());
    let text = e.to_string();
    assert!(text.contains(&name.0) && text.contains(&format!("rm /dev/shm/{}", &name.0[1..])), "{text}");
    // The creator is killed when `creator` is dropped, and `name` removes the object.
}

/// Root plays the other user (`EACCES` while the mode is 0); any other
/// user meets `EACCES` in the test above already.
fn as_root_an_opener_of_another_user_waits_for_a_creator_stopped_before_sizing() {
    if !is_root() {
        return println!("(skipped: only root can become another user)");
    }
    let name = Name::new();
    let mut creator = Child::spawn("stall-creator", &[&name.0]);
    assert_eq!(creator.line(), "created");
    let mut opener = Child::spawn("open-as-nobody", &[&name.0]);
    // Refused, it sleeps only after it found the mode 0: it is waiting now.
    wait_until("the opener waits", Duration::from_millis(1500), || is_sleeping(opener.id as libc::pid_t));
    creator.release();
    assert_eq!(creator.line(), "sized");
    assert_eq!(opener.line(), format!("opened {STALLED_SIZE} bytes"));
    assert!(opener.wait().success());
}

fn as_root_an_opener_of_another_user_refused_by_the_mode_fails_at_once() {
    if !is_root() {
        return println!("(skipped: only root can become another user)");
    }
    let name = Name::new();
    let _made = SharedMemory::create(&name.0, STALLED_SIZE, 0o600).expect("create");
    let mut opener = Child::spawn("open-as-nobody", &[&name.0]);
    let line = opener.line();
    let waited: u64 =
        line.strip_prefix("PermissionDenied after ").and_then(|ms| ms.parse().ok()).expect(&line);
    assert!(waited < 1000, "a mode that refuses this user for good is not waited for: {waited} ms");
    assert!(opener.wait().success());
}

/// Runs the child `role`, which creates the three objects, ends it with
/// `end`, and says which of them exist after that.
fn after_the_creator_ends(role: &str, end: impl FnOnce(&mut Child)) -> [bool; 3] {
    let name = Name::new();
    let mut child = Child::spawn(role, &[&name.0]);
    assert_eq!(child.line(), "created created created");
    assert_eq!(which_exist(&name.0), [true; 3]);
    end(&mut child);
    which_exist(&name.0)
}

fn the_creator_removes_its_names_when_main_returns() {
    let left = after_the_creator_ends("own", |child| {
        child.release();
        assert!(child.wait().success());
    });
    assert_eq!(left, [false; 3]);
}

fn the_creator_removes_its_names_on_an_error_return() {
    let left = after_the_creator_ends("own-then-fail", |child| {
        child.release();
        assert_eq!(child.wait().code(), Some(1), "main returned the error");
    });
    assert_eq!(left, [false; 3]);
}

fn the_creator_removes_its_names_when_sigterm_stops_its_reactor() {
    let left = after_the_creator_ends("own-until-sigterm", |child| {
        child.signal(libc::SIGTERM);
        assert!(child.wait().success(), "the reactor's run ended and main returned");
    });
    assert_eq!(left, [false; 3]);
}

fn an_opener_removes_nothing_when_it_ends() {
    let name = Name::new();
    let ours = (
        SharedMemory::create_or_open(&name.0, 4096, 0o600).expect("shm"),
        NamedSemaphore::create_or_open(&name.0, 0o600, 1).expect("semaphore"),
        MessageQueue::create_or_open(&name.0, &queue_options()).expect("queue"),
    );
    let mut child = Child::spawn("own", &[&name.0]);
    assert_eq!(child.line(), "opened opened opened");
    child.release();
    assert!(child.wait().success());
    assert_eq!(which_exist(&name.0), [true; 3], "the opener left every name");
    drop(ours);
    assert_eq!(which_exist(&name.0), [false; 3], "the creator (this process) removed them");
}

fn after_sigkill_the_names_remain() {
    let left = after_the_creator_ends("own-until-sigterm", |child| {
        child.signal(libc::SIGKILL);
        assert_eq!(child.wait().code(), None, "killed");
    });
    assert_eq!(left, [true; 3], "no drop ran: the names stay until someone removes them");
}

fn a_lock_held_by_another_process_times_out_then_comes_back_on_its_error_return() {
    let name = Name::new();
    let lock = NamedSemaphore::create(&name.0, 0o600, 1).expect("create");
    let mut child = Child::spawn("hold-then-fail", &[&name.0]);
    assert_eq!(child.line(), "held");
    assert!(lock.try_lock().expect("try").is_none(), "taken by the child");
    // `sem_timedwait` waits on CLOCK_REALTIME: measured on that clock.
    let started = SystemTime::now();
    let e = lock.lock_timeout(SHORT).expect_err("taken by the child");
    assert!(started.elapsed().is_ok_and(|waited| waited >= SHORT), "{:?}", started.elapsed());
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(e.to_string().starts_with(&format!("semaphore {}: no token came within", name.0)), "{e}");

    child.release();
    assert_eq!(child.wait().code(), Some(1), "the child returned an error while it held the lock");
    let held = lock.lock_timeout(SHORT).expect("the child's guard gave the token back");
    assert_eq!(lock.value().expect("value"), 0);
    drop(held);
    assert_eq!(lock.value().expect("value"), 1);
}

fn a_lock_held_by_a_killed_process_stays_taken_until_its_owner_posts() {
    let name = Name::new();
    let lock = NamedSemaphore::create(&name.0, 0o600, 1).expect("create");
    let mut child = Child::spawn("hold-then-fail", &[&name.0]);
    assert_eq!(child.line(), "held");
    child.signal(libc::SIGKILL);
    assert_eq!(child.wait().code(), None, "killed");
    let e = lock.lock_timeout(SHORT).expect_err("nobody gave the token back");
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    lock.post().expect("the owner's reset: one token");
    let _held = lock.lock_timeout(SHORT).expect("free again");
}

// ---- the children ----

/// The child `role`, on the objects `names[0]` (and `names[1]`).
fn child(role: &str, names: &[String]) -> io::Result<()> {
    let name = &names[0];
    match role {
        "copy-records" => {
            let records = SharedMemory::open(name, true)?.array::<Record>(RECORDS)?;
            let (from, to) = (records.slice(..RECORDS / 2)?, records.slice(RECORDS / 2..)?);
            for i in 0..from.len() {
                let record = from.get(i)?;
                let index = (i + RECORDS / 2) as u32;
                to.set(i, Record { index, writer: std::process::id(), value: record.value + 1 })?;
            }
            println!("copied");
        }
        "count" => {
            let counter = SharedMemory::open(name, true)?.array::<AtomicU64>(1)?;
            let go = NamedSemaphore::open(&names[1])?;
            println!("ready");
            go.wait()?;
            for _ in 0..INCREMENTS {
                counter.with(0, |c| c.fetch_add(1, Ordering::Relaxed))?;
            }
        }
        "stall-creator" => stall_creator(name)?,
        // With a second name, the semaphore that says when to start.
        "own" | "own-then-fail" => {
            if let Some(start) = names.get(1) {
                let go = NamedSemaphore::open(start)?;
                println!("ready");
                go.wait()?;
            }
            let _objects = create_or_open_all(name)?;
            wait_for_a_line()?;
            if role == "own-then-fail" {
                MessageQueue::open(&format!("{name}-missing"), Access::Send)?;
            }
        }
        "hold-then-fail" => {
            let lock = NamedSemaphore::open(name)?;
            let _held = lock.lock()?;
            println!("held");
            wait_for_a_line()?;
            MessageQueue::open(&format!("{name}-missing"), Access::Send)?;
        }
        "open-as-nobody" => {
            // SAFETY: plain calls, in a process of one thread.
            if unsafe { libc::setgroups(0, std::ptr::null()) | libc::setgid(NOBODY) | libc::setuid(NOBODY) }
                != 0
            {
                return Err(io::Error::last_os_error());
            }
            let started = Instant::now();
            match SharedMemory::create_or_open(name, STALLED_SIZE, STALLED_MODE) {
                Ok((shm, created)) => println!("{} {} bytes", word(created), shm.len()?),
                Err(e) => println!("{:?} after {}", e.kind(), started.elapsed().as_millis()),
            }
        }
        "own-until-sigterm" => {
            // SIGTERM is blocked before the line that says the objects are made.
            let mut reactor = Reactor::new()?;
            reactor.register(SignalFd::new(&[Signal::Term], |_, ctx| ctx.stop())?)?;
            let _objects = create_or_open_all(name)?;
            reactor.run()?;
        }
        _ => return Err(io::Error::new(ErrorKind::InvalidInput, format!("no role {role}"))),
    }
    Ok(())
}

/// The three objects of `name`, each created or opened; prints which.
fn create_or_open_all(name: &str) -> io::Result<(SharedMemory, NamedSemaphore, MessageQueue)> {
    let (shm, a) = SharedMemory::create_or_open(name, 4096, 0o600)?;
    let (sem, b) = NamedSemaphore::create_or_open(name, 0o600, 1)?;
    let (queue, c) = MessageQueue::create_or_open(name, &queue_options())?;
    println!("{} {} {}", word(a), word(b), word(c));
    Ok((shm, sem, queue))
}

/// A creator that stops between its two steps, following the crate's
/// protocol by hand: `shm_open(O_CREAT|O_EXCL)` with mode 0, then (after a
/// line on stdin) `ftruncate` and `fchmod` to [`STALLED_MODE`].
fn stall_creator(name: &str) -> io::Result<()> {
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: `c_name` is NUL-terminated.
    let fd = unsafe { libc::shm_open(c_name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    println!("created");
    wait_for_a_line()?;
    // SAFETY: plain calls on the descriptor just opened.
    if unsafe { libc::ftruncate(fd, STALLED_SIZE as libc::off_t) | libc::fchmod(fd, STALLED_MODE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    println!("sized");
    wait_for_a_line()
}

fn word(created: bool) -> &'static str {
    if created {
        "created"
    } else {
        "opened"
    }
}

fn is_root() -> bool {
    // SAFETY: plain call.
    unsafe { libc::geteuid() == 0 }
}

fn wait_for_a_line() -> io::Result<()> {
    io::stdin().read_line(&mut String::new()).map(drop)
}

// ---- helpers ----

/// A child process, its stdout read line by line; killed if still running
/// when dropped (a failed test leaves no process behind).
struct Child {
    process: std::process::Child,
    id: u32,
    lines: mpsc::Receiver<String>,
}

impl Child {
    fn spawn(role: &str, names: &[&str]) -> Child {
        let exe = std::env::current_exe().expect("the test executable");
        let mut process = Command::new(exe)
            .arg(CHILD)
            .arg(role)
            .args(names)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a child");
        let stdout = process.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Child { id: process.id(), process, lines }
    }

    /// The next line the child prints.
    fn line(&self) -> String {
        self.lines.recv_timeout(PATIENCE).expect("a line from the child")
    }

    /// Lets the child take its next step.
    fn release(&mut self) {
        writeln!(self.process.stdin.as_mut().expect("piped"), "go").expect("write to the child");
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain call; the child is ours and not yet waited for.
        assert_eq!(unsafe { libc::kill(self.id as libc::pid_t, signal) }, 0, "kill");
    }

    /// Its status, once it has ended.
    fn wait(&mut self) -> ExitStatus {
        let mut status = None;
        wait_until("the child ends", PATIENCE, || {
            status = self.process.try_wait().expect("waitpid");
            status.is_some()
        });
        status.expect("ended")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Polls `condition` every millisecond until it holds; panics after `limit`.
fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether the thread `tid` (of this process or another) is in `nanosleep` now.
fn is_sleeping(tid: libc::pid_t) -> bool {
    let Ok(syscall) = std::fs::read_to_string(format!("/proc/{tid}/syscall")) else {
        return false;
    };
    let number = syscall.split(' ').next().and_then(|n| n.parse::<libc::c_long>().ok());
    number == Some(libc::SYS_nanosleep) || number == Some(libc::SYS_clock_nanosleep)
}
