//! `Child` with real processes: exit statuses, every line before the status
//! whatever order exit and end of file come in, and no zombie afterwards.

mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;

use reactor::sources::{AtShutdown, Child, Output};
use reactor::{Context, Reactor};
use util::{run_until, within_deadline};

/// What a child did, in order: `out LINE`, `err LINE`, `exit STATUS`.
type Log = Rc<RefCell<Vec<String>>>;

fn watched(command: &mut Command, log: &Log) -> Child {
    let (out, err, exit) = (log.clone(), log.clone(), log.clone());
    Child::spawn(command)
        .expect("spawn")
        .on_stdout(1024, move |line, _| {
            out.borrow_mut().push(format!("out {}", String::from_utf8_lossy(line)))
        })
        .on_stderr(1024, move |line, _| {
            err.borrow_mut().push(format!("err {}", String::from_utf8_lossy(line)))
        })
        .on_exit(move |status: ExitStatus, _| exit.borrow_mut().push(describe(status)))
}

fn describe(status: ExitStatus) -> String {
    format!("exit code {:?} signal {:?}", status.code(), status.signal())
}

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Neither running nor a zombie: reaped.
fn assert_reaped(pid: u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    if let Ok(stat) = stat {
        let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
        panic!("child {pid} still there, state {state:?}");
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_child_killed_by_a_signal_reports_it_and_is_reaped() {
    within_deadline(|| {
        let log = Log::default();
        let mut reactor = Reactor::new().unwrap();
        let child = watched(&mut sh("exec sleep 30"), &log).register(&mut reactor).unwrap();
        // SAFETY: plain system call; the pid is our unreaped child, so it cannot be reused.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) }, 0);
        run_until(&mut reactor, "the exit", |_| !log.borrow().is_empty());
        assert_eq!(*log.borrow(), [describe(ExitStatus::from_raw(libc::SIGKILL))]);
        assert_reaped(child.id());
    });
}

#[test]
fn exit_before_end_of_file_still_gives_every_line_then_the_status() {
    within_deadline(|| {
        let log = Log::default();
        let mut reactor = Reactor::new().unwrap();
        // The shell exits at once; a background job keeps its stdout open
        // until it has read a line from the test.
        let script = "echo first; exec 3<&0; (read x <&3; echo \"late $x\") & exit 5";
        let child = watched(&mut sh(script), &log).register(&mut reactor).unwrap();
        run_until(&mut reactor, "the exit to be seen", |r| !r.contains(child.token()));
        assert_reaped(child.id());
        assert_eq!(*log.borrow(), ["out first"], "no status before the end of file");
        let stdin = child.stdin().expect("piped");
        stdin.write_line(&mut reactor, b"go").unwrap();
        stdin.close_when_drained(&mut reactor);
        run_until(&mut reactor, "the status", |_| log.borrow().len() == 3);
        assert_eq!(
            *log.borrow(),
            ["out first".to_string(), "out late go".into(), describe(ExitStatus::from_raw(5 << 8))]
        );
    });
}

#[test]
fn end_of_file_before_exit_gives_every_line_then_the_status() {
    within_deadline(|| {
        let log = Log::default();
        let mut reactor = Reactor::new().unwrap();
        // Closes both outputs, then waits for a line before it exits.
        let script = "echo out; echo err >&2; exec >&- 2>&-; read x; exit 7";
        let child = watched(&mut sh(script), &log).register(&mut reactor).unwrap();
        // Left: the exit watch and the stdin writer; both readers saw end of file.
        run_until(&mut reactor, "both ends of file", |r| r.len() == 2);
        assert!(reactor.contains(child.token()), "still running");
        let mut lines = log.borrow().clone();
        lines.sort();
        assert_eq!(lines, ["err err", "out out"]);
        child.stdin().expect("piped").write_line(&mut reactor, b"now").unwrap();
        run_until(&mut reactor, "the status", |_| log.borrow().len() == 3);
        let status = log.borrow()[2].clone();
        assert_eq!(status, describe(ExitStatus::from_raw(7 << 8)));
        assert_reaped(child.id());
    });
}

#[test]
fn a_running_child_is_killed_and_reaped_at_shutdown_by_default() {
    let log = Log::default();
    let mut reactor = Reactor::new().unwrap();
    let child = watched(&mut sh("exec sleep 30"), &log).register(&mut reactor).unwrap();
    reactor.shutdown();
    assert_reaped(child.id());
    assert!(log.borrow().iter().all(|e| !e.starts_with("exit")), "{:?}", log.borrow());
}

#[test]
fn a_child_that_is_waited_for_at_shutdown_finishes_its_work() {
    let dir = util::TempDir::new("child-wait");
    let marker = dir.path().join("done");
    let mut reactor = Reactor::new().unwrap();
    let script = format!("read x; echo done > '{}'", marker.display());
    let mut command = sh(&script);
    let child = Child::spawn(&mut command).unwrap().at_shutdown(AtShutdown::Wait);
    let child = child.register(&mut reactor).unwrap();
    // Its stdin closes with the reactor, so `read` returns and it finishes.
    reactor.shutdown();
    assert!(marker.exists(), "waited for, not killed");
    assert_reaped(child.id());
}

#[test]
fn an_unregistered_child_is_killed_and_reaped_when_dropped() {
    let child = Child::spawn(&mut sh("exec sleep 30")).unwrap();
    let pid = child.id();
    drop(child);
    assert_reaped(pid);
}

/// Writes 4 KiB chunks to the child's stdin until a write is refused or all
/// of `TOTAL` is queued; then closes it once drained.
fn produce(stdin: &Output, sent: &Cell<usize>, ctx: &mut Context) {
    const TOTAL: usize = 1 << 20;
    while sent.get() < TOTAL {
        match stdin.write(ctx, &[b'x'; 4096]) {
            Ok(()) => sent.set(sent.get() + 4096),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(stdin.buffered() <= stdin.limit(), "the writer holds more than its limit");
                return;
            }
            Err(e) => panic!("write to the child: {e}"),
        }
    }
    stdin.close_when_drained(ctx);
}

#[test]
fn a_refused_stdin_write_is_followed_by_on_stdin_drain_and_nothing_is_lost() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let (sent, drains, counted) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)), Log::default());
        let (s, d, c) = (sent.clone(), drains.clone(), counted.clone());
        // The child reads nothing for a while: its pipe and our writer fill up.
        let child = Child::spawn(&mut sh("sleep 0.2; wc -c"))
            .unwrap()
            .stdin_limit(16 * 1024)
            .on_stdin_drain(move |stdin, ctx| {
                d.set(d.get() + 1);
                produce(stdin, &s, ctx);
            })
            .on_stdout(64, move |line, _| c.borrow_mut().push(String::from_utf8_lossy(line).trim().into()))
            .on_exit(|status, ctx| {
                assert!(status.success(), "wc: {status}");
                ctx.stop();
            })
            .register(&mut reactor)
            .unwrap();
        let stdin = child.stdin().cloned().expect("stdin is piped");
        produce(&stdin, &sent, &mut reactor);
        assert!(sent.get() < 1 << 20, "nothing was refused: the test proves nothing");
        reactor.run().unwrap();
        assert!(drains.get() >= 1, "on_stdin_drain never ran");
        assert_eq!(*counted.borrow(), [(1usize << 20).to_string()], "the child did not get every byte");
        assert_reaped(child.id());
    });
}

/// The warnings logged on each thread: a test counts only its own, while
/// the other tests of this file run beside it.
struct Warnings(std::sync::Mutex<Vec<(std::thread::ThreadId, String)>>);

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let entry = (std::thread::current().id(), record.args().to_string());
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
        }
    }

    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(std::sync::Mutex::new(Vec::new()));

/// The warnings this thread has logged so far.
fn my_warnings() -> Vec<String> {
    let me = std::thread::current().id();
    let all = WARNINGS.0.lock().unwrap_or_else(|e| e.into_inner());
    all.iter().filter(|(thread, _)| *thread == me).map(|(_, text)| text.clone()).collect()
}

/// Runs `count` children with a piped stdin that exit without reading it,
/// until every exit and every stdin error (when hooked) is in.
fn children_that_leave_their_stdin(count: usize, hooked: bool) -> Vec<String> {
    let mut reactor = Reactor::new().unwrap();
    let (exits, errors) = (Rc::new(Cell::new(0)), Rc::new(RefCell::new(Vec::new())));
    for _ in 0..count {
        let (exited, failed) = (exits.clone(), errors.clone());
        let child = Child::spawn(Command::new("true").stdin(Stdio::piped())).expect("spawn");
        let child = child.on_exit(move |_, _| exited.set(exited.get() + 1));
        let child = if hooked {
            child.on_stdin_error(move |e: &io::Error, _: &mut Context| failed.borrow_mut().push(e.kind()))
        } else {
            child
        };
        child.register(&mut reactor).expect("register");
    }
    let target = if hooked { count } else { 0 };
    run_until(&mut reactor, "every exit and every stdin error", |_| {
        exits.get() == count && errors.borrow().len() == target && (hooked || my_warnings().len() == count)
    });
    assert!(errors.borrow().iter().all(|&kind| kind == io::ErrorKind::BrokenPipe), "{:?}", errors.borrow());
    my_warnings()
}

#[test]
fn a_stdin_error_taken_by_the_program_is_not_logged() {
    let _ = log::set_logger(&WARNINGS);
    log::set_max_level(log::LevelFilter::Warn);
    within_deadline(|| {
        // Unhooked, each child's stdin writer warns once: the logger sees it.
        let unhooked = children_that_leave_their_stdin(10, false);
        assert!(unhooked.iter().all(|w| w == "writer: Broken pipe (os error 32)"), "{unhooked:?}");

        let before = my_warnings().len();
        children_that_leave_their_stdin(100, true);
        assert_eq!(my_warnings()[before..], [] as [String; 0], "hooked errors must not be logged");
    });
}
