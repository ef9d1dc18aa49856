//! `Child` with real processes: exit statuses, every line before the status
//! whatever order exit and end of file come in, and no zombie afterwards.

mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::sources::{AtShutdown, Child, ChildHandle, Output};
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
fn a_signal_through_the_handle_ends_the_child_and_on_exit_sees_it() {
    within_deadline(|| {
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            let log = Log::default();
            let mut reactor = Reactor::new().unwrap();
            let child = watched(&mut sh("exec sleep 30"), &log).register(&mut reactor).unwrap();
            child.signal(signal).expect("signal through the pidfd");
            run_until(&mut reactor, "the exit", |_| !log.borrow().is_empty());
            assert_eq!(*log.borrow(), [describe(ExitStatus::from_raw(signal))]);
            assert_eq!(Child::shell_code(ExitStatus::from_raw(signal)), 128 + signal);
            assert_reaped(child.id());
        }
    });
}

/// Runs `script` in `sh` to its end; returns its shell code.
fn shell_code_of(script: &str) -> i32 {
    let mut reactor = Reactor::new().unwrap();
    Child::spawn(Command::new("sh").args(["-c", script]))
        .unwrap()
        .on_exit(|status, ctx| ctx.exit(Child::shell_code(status)))
        .register(&mut reactor)
        .unwrap();
    reactor.run().unwrap();
    reactor.exit_code().expect("on_exit gave the code")
}

#[test]
fn the_shell_code_is_the_exit_code_or_128_plus_the_signal() {
    within_deadline(|| {
        assert_eq!(shell_code_of("exit 0"), 0);
        assert_eq!(shell_code_of("exit 3"), 3);
        assert_eq!(shell_code_of("kill -KILL $$"), 128 + libc::SIGKILL);
        // No core file left behind by the test.
        assert_eq!(shell_code_of("ulimit -c 0; kill -SEGV $$"), 128 + libc::SIGSEGV);
    });
}

/// Set in the copy of this test binary that runs in a PID namespace of its own.
const IN_NAMESPACE: &str = "REACTOR_TEST_IN_PID_NAMESPACE";

/// A pid is reused at will in a PID namespace of our own (`unshare -Urpf`:
/// a user namespace gives the right to set `ns_last_pid`). There, a child
/// is signalled, reaped, and its pid given to another process; a signal
/// through the old handle must fail with `ESRCH` and leave that process be,
/// where `kill(2)` on the old pid would reach it.
#[test]
fn a_signal_after_the_child_was_reaped_fails_and_reaches_no_other_process() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return signal_after_reaping_in_a_pid_namespace();
    }
    let name = "a_signal_after_the_child_was_reaped_fails_and_reaches_no_other_process";
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("run unshare(1): util-linux is needed for this test");
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && out.contains("1 passed"), "in the namespace: {out}{err}");
}

fn signal_after_reaping_in_a_pid_namespace() {
    let log = Log::default();
    let mut reactor = Reactor::new().unwrap();
    let child = watched(&mut sh("exec sleep 30"), &log).register(&mut reactor).unwrap();
    child.signal(libc::SIGKILL).unwrap();
    run_until(&mut reactor, "the child reaped", |r| !r.contains(child.token()));
    std::fs::write("/proc/sys/kernel/ns_last_pid", (child.id() - 1).to_string()).expect("set ns_last_pid");
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    assert_eq!(other.id(), child.id(), "the pid was not reused: the test proves nothing");
    // SAFETY: signal 0 only checks that the pid names a process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, 0) }, 0, "kill(2) would reach the other");
    let error = child.signal(libc::SIGTERM).expect_err("a reaped child cannot be signalled");
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("ESRCH"), "{error}");
    assert_eq!(other.try_wait().unwrap(), None, "the other process was signalled");
    other.kill().unwrap();
    other.wait().unwrap();
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

/// A shell that exits 42 when `signal` comes, after saying `ready` (its
/// trap set); its `sleep` is killed with it.
fn ends_on(signal: &str) -> Command {
    sh(&format!("sleep 30 & trap 'kill $!; exit 42' {signal}; echo ready; wait"))
}

/// A `sleep` that ignores `signal` (an ignored signal stays so across `exec`).
fn ignores(signal: &str) -> Command {
    sh(&format!("trap '' {signal}; echo ready; exec sleep 30"))
}

/// Registers each command with `policy`; returns the logs and the pids
/// once each child has said `ready`.
fn ready_children(
    reactor: &mut Reactor,
    commands: Vec<Command>,
    policy: AtShutdown,
) -> Vec<(Log, ChildHandle)> {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut command| {
            let log = Log::default();
            let child = watched(&mut command, &log).at_shutdown(policy).register(reactor).unwrap();
            (log, child)
        })
        .collect();
    run_until(reactor, "every child ready", |_| children.iter().all(|(log, _)| !log.borrow().is_empty()));
    children
}

/// What each child logged after `ready`.
fn ends(children: &[(Log, ChildHandle)]) -> Vec<Vec<String>> {
    children.iter().map(|(log, _)| log.borrow()[1..].to_vec()).collect()
}

#[test]
fn at_the_reactors_stop_a_child_gets_sigterm_by_default_and_on_exit_runs_once() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let children = ready_children(&mut reactor, vec![ends_on("TERM")], AtShutdown::default());
        reactor.shutdown();
        assert_eq!(
            ends(&children),
            [[describe(ExitStatus::from_raw(42 << 8))]],
            "SIGTERM, then on_exit once"
        );
        assert_reaped(children[0].1.id());
    });
}

#[test]
fn a_graceful_stop_sends_the_chosen_signal_waits_then_kills_a_child_that_ignores_it() {
    within_deadline(|| {
        const GRACE: Duration = Duration::from_millis(300);
        let mut reactor = Reactor::new().unwrap();
        let commands = vec![ends_on("USR1"), ignores("USR1"), ignores("USR1"), ignores("USR1")];
        let children = ready_children(&mut reactor, commands, AtShutdown::Signal(libc::SIGUSR1, GRACE));
        let began = Instant::now();
        reactor.stop();
        reactor.run().unwrap();
        let took = began.elapsed();
        let (exited, killed) = (describe(ExitStatus::from_raw(42 << 8)), describe(ExitStatus::from_raw(9)));
        assert_eq!(
            ends(&children),
            [[exited], [killed.clone()], [killed.clone()], [killed]],
            "once for each"
        );
        assert!(took >= GRACE, "killed after {took:?}, before the bound");
        assert!(took < 2 * GRACE, "the stop took {took:?}: the bounds were waited one after the other");
        children.iter().for_each(|(_, child)| assert_reaped(child.id()));
    });
}

#[test]
fn remove_ends_a_child_as_its_policy_says_without_blocking_the_loop() {
    within_deadline(|| {
        const GRACE: Duration = Duration::from_millis(300);
        for (command, policy, status) in [
            (ends_on("TERM"), AtShutdown::default(), ExitStatus::from_raw(42 << 8)),
            (ignores("TERM"), AtShutdown::Signal(libc::SIGTERM, GRACE), ExitStatus::from_raw(libc::SIGKILL)),
            (ignores("TERM"), AtShutdown::Kill, ExitStatus::from_raw(libc::SIGKILL)),
        ] {
            let mut reactor = Reactor::new().unwrap();
            let children = ready_children(&mut reactor, vec![command], policy);
            let ticks = Rc::new(Cell::new(0));
            let counted = ticks.clone();
            reactor.every(Duration::from_millis(10), move |_| counted.set(counted.get() + 1));
            let began = Instant::now();
            assert!(reactor.remove(children[0].1.token()));
            run_until(&mut reactor, "on_exit", |_| children[0].0.borrow().len() == 2);
            assert_eq!(ends(&children), [[describe(status)]], "{policy:?}");
            if let AtShutdown::Signal(_, grace) = policy {
                if status.signal() == Some(libc::SIGKILL) {
                    assert!(began.elapsed() >= grace, "killed before the bound");
                    assert!(ticks.get() >= 5, "the loop was blocked: {} ticks in {grace:?}", ticks.get());
                }
            }
            assert_reaped(children[0].1.id());
        }
    });
}

#[test]
fn a_child_that_is_waited_for_at_shutdown_finishes_its_work() {
    let dir = util::TempDir::new("child-wait");
    let marker = dir.path().join("done");
    let mut reactor = Reactor::new().unwrap();
    let log = Log::default();
    let script = format!("read x; echo done > '{}'", marker.display());
    let child = watched(&mut sh(&script), &log).at_shutdown(AtShutdown::Wait(util::DEADLINE));
    let child = child.register(&mut reactor).unwrap();
    // Its stdin closes with the reactor, so `read` returns and it finishes.
    reactor.shutdown();
    assert!(marker.exists(), "waited for, not killed");
    assert_eq!(*log.borrow(), [describe(ExitStatus::from_raw(0))]);
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

/// The signals a process blocks (`SigBlk` in `/proc/PID/status`), as a mask.
fn blocked_signals(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the child's status");
    let line = status.lines().find_map(|l| l.strip_prefix("SigBlk:")).expect("a SigBlk line");
    u64::from_str_radix(line.trim(), 16).expect("SigBlk in hexadecimal")
}

/// A `SignalFd` blocks `SIGTERM` in the reactor's thread; a child spawned
/// from it must not inherit that, or its graceful stop is a `SIGKILL`.
#[test]
fn a_child_does_not_inherit_the_signals_its_parent_blocks_and_stops_on_sigterm() {
    within_deadline(|| {
        // SAFETY: an empty set filled on this stack; the mask is this thread's own.
        let mut term: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { (libc::sigemptyset(&mut term), libc::sigaddset(&mut term, libc::SIGTERM)) };
        // SAFETY: as above; only this test's thread blocks it.
        assert_eq!(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &term, std::ptr::null_mut()) }, 0);
        let mut reactor = Reactor::new().unwrap();
        let children = ready_children(&mut reactor, vec![ends_on("TERM")], AtShutdown::default());
        assert_eq!(blocked_signals(children[0].1.id()), 0, "the child inherited a blocked signal");
        let began = Instant::now();
        reactor.shutdown();
        assert_eq!(ends(&children), [[describe(ExitStatus::from_raw(42 << 8))]], "SIGTERM reached it");
        assert!(began.elapsed() < Duration::from_secs(1), "the stop waited for SIGKILL");
    });
}
