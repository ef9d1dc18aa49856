//! `Supervisor` and `Child::die_with_parent` with real processes: restarts
//! after each kind of failure with the back-off measured, the limit, the
//! policies, a watchdog ending a stopped child, a graceful stop, and
//! children that die with a parent killed by `SIGKILL`.

mod util;

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::sources::{AtShutdown, Child, Restart, Supervisor, SupervisorHandle};
use reactor::Reactor;
use util::{run_until, within_deadline, DEADLINE};

/// What a supervisor reported, in order, with when.
#[derive(Clone, Debug, PartialEq)]
enum Event {
    Start(u32),
    Exit(u32, ExitStatus),
    Done(u32, ExitStatus),
}

type Log = Rc<RefCell<Vec<(Instant, Event)>>>;

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

/// A supervisor of `sh -c script` that logs every start, exit and end.
fn logged(script: &'static str, log: &Log) -> Supervisor {
    logging(Supervisor::new(move |_| Child::spawn(&mut sh(script))), log)
}

/// `supervisor`, logging every start, exit and end.
fn logging(supervisor: Supervisor, log: &Log) -> Supervisor {
    let (starts, exits, end) = (log.clone(), log.clone(), log.clone());
    supervisor
        .on_start(move |(run, _), _| starts.borrow_mut().push((Instant::now(), Event::Start(run))))
        .on_exit(move |(run, status), _| exits.borrow_mut().push((Instant::now(), Event::Exit(run, status))))
        .on_done(move |(run, status), _| end.borrow_mut().push((Instant::now(), Event::Done(run, status))))
}

fn events(log: &Log) -> Vec<Event> {
    log.borrow().iter().map(|(_, event)| event.clone()).collect()
}

#[test]
fn a_failing_child_is_restarted_after_a_growing_back_off_until_the_limit_ends_it() {
    within_deadline(|| {
        const FIRST: Duration = Duration::from_millis(40);
        for (script, status) in [
            ("exit 3", ExitStatus::from_raw(3 << 8)),
            ("kill -KILL $$", ExitStatus::from_raw(libc::SIGKILL)),
            ("ulimit -c 0; kill -SEGV $$", ExitStatus::from_raw(libc::SIGSEGV)), // no core file
        ] {
            let log = Log::default();
            let mut reactor = Reactor::new().unwrap();
            logged(script, &log)
                .backoff(FIRST, 2.0, 3 * FIRST)
                .limit(3, Duration::from_secs(60))
                .register(&mut reactor)
                .unwrap();
            // Nothing is left to wait for once it gave up: `run` returns.
            reactor.run().unwrap();
            let mut expected = Vec::new();
            for run in 1..=4 {
                expected.extend([Event::Start(run), Event::Exit(run, status)]);
            }
            expected.push(Event::Done(4, status));
            assert_eq!(events(&log), expected, "{script}");
            let log = log.borrow();
            for (n, wait) in [(1, FIRST), (2, 2 * FIRST), (3, 3 * FIRST)] {
                // From the exit of run n to the start of run n + 1.
                let waited = log[2 * n].0.duration_since(log[2 * n - 1].0);
                assert!(
                    waited >= wait,
                    "{script}: restart {n} after {waited:?}, before its back-off {wait:?}"
                );
            }
        }
    });
}

#[test]
fn each_policy_restarts_what_it_says() {
    within_deadline(|| {
        let ok = ExitStatus::from_raw(0);
        let failed = ExitStatus::from_raw(1 << 8);
        for (policy, script, status, runs) in [
            (Restart::Always, "exit 0", ok, 3),
            (Restart::OnFailure, "exit 0", ok, 1),
            (Restart::OnFailure, "exit 1", failed, 3),
            (Restart::Never, "exit 1", failed, 1),
        ] {
            let log = Log::default();
            let mut reactor = Reactor::new().unwrap();
            let supervisor =
                logged(script, &log).restart(policy).backoff(Duration::ZERO, 1.0, Duration::ZERO);
            supervisor.limit(2, Duration::from_secs(60)).register(&mut reactor).unwrap();
            reactor.run().unwrap();
            let ends =
                events(&log).into_iter().filter(|e| !matches!(e, Event::Start(..))).collect::<Vec<_>>();
            let mut expected: Vec<_> = (1..=runs).map(|run| Event::Exit(run, status)).collect();
            expected.push(Event::Done(runs, status));
            assert_eq!(ends, expected, "{policy:?} {script}");
        }
    });
}

#[test]
fn a_stopped_child_ended_by_the_watchdog_is_restarted() {
    within_deadline(|| {
        const TIMEOUT: Duration = Duration::from_millis(300);
        let mut reactor = Reactor::new().unwrap();
        let (log, beats) = (Log::default(), Rc::new(RefCell::new(Vec::new())));
        let heard = beats.clone();
        let supervisor = Supervisor::new(move |run| {
            let heard = heard.clone();
            let child = Child::spawn(sh("while :; do echo beat; sleep 0.01; done").stdout(Stdio::piped()))?;
            let child = child.at_shutdown(AtShutdown::Signal(libc::SIGTERM, DEADLINE));
            Ok(child.on_stdout(64, move |_, _| heard.borrow_mut().push((run, Instant::now()))))
        });
        let handle = logging(supervisor.watchdog(TIMEOUT), &log).register(&mut reactor).unwrap();
        run_until(&mut reactor, "a beat of run 1", |_| !beats.borrow().is_empty());
        handle.current().expect("run 1").signal(libc::SIGSTOP).unwrap();
        let stopped = Instant::now();
        run_until(&mut reactor, "a beat of run 2", |_| beats.borrow().iter().any(|(run, _)| *run == 2));
        // SIGTERM reached it though it was stopped: SIGCONT came after it.
        let ends: Vec<_> = events(&log).into_iter().filter(|e| !matches!(e, Event::Start(..))).collect();
        assert_eq!(ends, [Event::Exit(1, ExitStatus::from_raw(libc::SIGTERM))]);
        let last_beat = beats.borrow().iter().rfind(|(run, _)| *run == 1).map(|(_, at)| *at).unwrap();
        let ended =
            log.borrow().iter().find(|(_, e)| matches!(e, Event::Exit(..))).map(|(at, _)| *at).unwrap();
        assert!(ended.duration_since(last_beat) >= TIMEOUT, "ended before the timeout");
        assert!(last_beat <= stopped + TIMEOUT, "run 1 went on beating after SIGSTOP");
        // Beating, run 2 is left alone for twice the timeout.
        let span_of_2 = || {
            let beats = beats.borrow();
            let mut of_2 = beats.iter().filter(|(run, _)| *run == 2).map(|(_, at)| *at);
            let first = of_2.next();
            first.zip(of_2.next_back()).map_or(Duration::ZERO, |(first, last)| last.duration_since(first))
        };
        run_until(&mut reactor, "two timeouts of beats of run 2", |_| span_of_2() >= 2 * TIMEOUT);
        assert_eq!(handle.run(), 2);
    });
}

#[test]
fn the_reactors_stop_or_the_handles_stop_ends_the_run_gracefully_and_starts_no_other() {
    within_deadline(|| {
        for by_the_handle in [false, true] {
            let log = Log::default();
            let mut reactor = Reactor::new().unwrap();
            let handle: SupervisorHandle =
                logged("exec sleep 30", &log).restart(Restart::Always).register(&mut reactor).unwrap();
            let pid = handle.current().expect("run 1").id();
            if by_the_handle {
                handle.stop(&mut reactor);
                reactor.run().unwrap(); // returns: nothing is left, no restart is pending
            } else {
                reactor.shutdown();
            }
            let terminated = ExitStatus::from_raw(libc::SIGTERM);
            let expected = [Event::Start(1), Event::Exit(1, terminated), Event::Done(1, terminated)];
            assert_eq!(events(&log), expected, "by the handle: {by_the_handle}");
            assert!(handle.current().is_none());
            assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "run 1 not reaped");
        }
    });
}

/// Set in the copy of this test binary that plays the parent.
const PARENT: &str = "REACTOR_TEST_DYING_PARENT";

/// A parent (this test binary again) runs a reactor with a child spawned
/// with `die_with_parent`, says the child's pid, and is killed with
/// `SIGKILL`: the child must be gone within the deadline. Its pidfd, opened
/// while it runs, says so whoever reaps it.
#[test]
fn a_parent_killed_by_sigkill_leaves_no_child_alive() {
    let name = "a_parent_killed_by_sigkill_leaves_no_child_alive";
    if std::env::var_os(PARENT).is_some() {
        return be_the_parent();
    }
    let exe = std::env::current_exe().unwrap();
    let mut parent = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(PARENT, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(parent.stdout.take().unwrap()).lines();
    let pid: libc::pid_t = loop {
        let line = lines.next().expect("the parent said no pid").unwrap();
        // After the harness's `test NAME ... `, on the same line.
        if let Some((_, pid)) = line.rsplit_once("child pid ") {
            break pid.parse().unwrap();
        }
    };
    // SAFETY: plain system call; the pid is the child's, which runs until its parent dies.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(raw >= 0, "pidfd_open({pid}): {}", std::io::Error::last_os_error());
    // SAFETY: `pidfd_open` just returned this descriptor; nobody else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) };
    parent.kill().unwrap();
    assert_eq!(parent.wait().unwrap().signal(), Some(libc::SIGKILL));
    let mut poll = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one live pollfd, as the count says.
    let ready = unsafe { libc::poll(&mut poll, 1, DEADLINE.as_millis() as libc::c_int) };
    assert_eq!(ready, 1, "child {pid} still alive {DEADLINE:?} after its parent was killed");
}

fn be_the_parent() {
    let mut reactor = Reactor::new().unwrap();
    let mut command = Command::new("sleep");
    let child = Child::spawn(Child::die_with_parent(command.arg("30"), libc::SIGKILL)).unwrap();
    println!("child pid {}", child.id());
    child.register(&mut reactor).unwrap();
    reactor.run().unwrap();
}
