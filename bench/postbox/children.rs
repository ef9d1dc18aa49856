//! The child processes the conductor starts: servers (ours, mio's, C) and
//! workers (senders and TCP clients, which are this binary in a role).
//!
//! Each is held by a guard that stops it when dropped, and is recorded with
//! [`cleanup`] while it lives. Children also get `PR_SET_PDEATHSIG`, so that
//! even a conductor killed with SIGKILL takes them along.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::c_server;
use crate::cleanup::{self, QueueName};

/// How long a child may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child process, stopped with `stop_signal` (then SIGKILL after
/// two seconds) when dropped.
pub struct Proc {
    child: Child,
    stop_signal: libc::c_int,
    reaped: bool,
}

impl Proc {
    /// Spawns `command` with no signal blocked; the child receives
    /// `stop_signal` if the conductor dies.
    pub fn spawn(command: &mut Command, stop_signal: libc::c_int) -> Proc {
        // SAFETY: `sigemptyset`, `pthread_sigmask` and `prctl` are
        // async-signal-safe and touch only the closure's own set, so they may
        // run between `fork` and `exec`.
        unsafe {
            command.pre_exec(move || {
                // The conductor blocks the interrupt signals ([`cleanup`]) and
                // the mask survives `exec`: a child that does not block its
                // stop signal itself (perf) would never see it.
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                let err = libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                if err != 0 {
                    return Err(io::Error::from_raw_os_error(err));
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, stop_signal as libc::c_ulong) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("bench setup: cannot start a child process");
        cleanup::track_child(child.id(), stop_signal);
        Proc { child, stop_signal, reaped: false }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the stop signal and waits for the exit; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let start = Instant::now();
        self.signal(self.stop_signal);
        self.wait();
        start.elapsed()
    }

    /// SIGKILL, and how long until the process has exited.
    pub fn kill(&mut self) -> Duration {
        let start = Instant::now();
        self.signal(libc::SIGKILL);
        self.wait();
        start.elapsed()
    }

    /// Waits for the child to exit by itself.
    pub fn wait(&mut self) {
        if let Err(e) = self.child.wait() {
            eprintln!("bench: waiting for child {}: {e}", self.pid());
        }
        self.reaped = true;
        cleanup::forget_child(self.pid());
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain call; the child has not been reaped, so the pid is ours.
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
    }

    fn wait_at_most(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        self.signal(self.stop_signal);
        if !self.wait_at_most(Duration::from_secs(2)) {
            self.signal(libc::SIGKILL);
        }
        self.wait();
    }
}

/// Which server runs: its index in the per-side arrays is `side as usize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `target/release/server`, on our reactor ([`our_server`]).
    Ours,
    /// The same server code on mio ([`crate::mio_server`]).
    Mio,
    /// The small C server ([`crate::c_server`]), if it could be built.
    C,
}

/// How many sides there are, for per-side arrays.
pub const SIDES: usize = 3;

impl Side {
    /// The servers of this run: ours, mio's, and the C server if it was built.
    pub fn servers() -> Vec<Side> {
        let mut sides = vec![Side::Ours, Side::Mio];
        if c_server::binary().is_some() {
            sides.push(Side::C);
        }
        sides
    }
}

/// What a server is started for.
pub struct ServerSpec<'a> {
    pub queue: &'a QueueName,
    pub message_size: usize,
    /// Listen on a free TCP port of 127.0.0.1.
    pub tcp: bool,
    /// More arguments for the server (ours: `--notify signal`, `--no-stats`;
    /// the C server implements neither).
    pub extra: &'a [&'a str],
    /// For [`Side::Ours`]: another build of our server to run instead.
    pub program: Option<&'a Path>,
}

/// A server started and ready, its stdout a pipe for the sink.
pub struct Server {
    // Fields drop in order: stdout closes first, so a server still writing
    // gets EPIPE instead of blocking while it is being stopped.
    stdout: ChildStdout,
    proc: Proc,
    /// From `exec` to the `ready` line on stderr.
    pub ready_after: Duration,
    pub addr: Option<SocketAddr>,
}

impl Server {
    /// Starts a server and waits for its `ready` line. A server that does not
    /// get ready is a broken benchmark: this panics.
    pub fn start(side: Side, spec: &ServerSpec<'_>) -> Server {
        let mut command = match side {
            Side::Ours => Command::new(spec.program.unwrap_or(our_server())),
            Side::Mio => own_role("mio-server"),
            Side::C => Command::new(c_server::binary().expect("the C server runs only when it was built")),
        };
        let size = spec.message_size.to_string();
        let listen = if spec.tcp { "127.0.0.1:0" } else { "none" };
        command
            .args(["--queue", spec.queue.as_str(), "--listen", listen])
            .args(["--max-messages", "10", "--message-size", &size])
            .args(spec.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut proc = Proc::spawn(&mut command, libc::SIGTERM);
        let log = relay_lines(proc.child.stderr.take().expect("stderr is piped"));
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let mut addr = None;
        let ready_after = loop {
            let (at, line) = match log.recv_timeout(READY_TIMEOUT) {
                Ok(entry) => entry,
                Err(RecvTimeoutError::Timeout) => panic!("{side:?} server: no `ready` line in 10 s"),
                Err(RecvTimeoutError::Disconnected) => panic!("{side:?} server exited before `ready`"),
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                addr = Some(rest.trim().parse().expect("`listening on ADDR` has a TCP address"));
            }
            if line.contains("ready") {
                break at.duration_since(started);
            }
        };
        Server { stdout, proc, ready_after, addr }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The server's stdout, for the sink.
    pub fn output(&self) -> BorrowedFd<'_> {
        self.stdout.as_fd()
    }

    /// SIGTERM, and how long until the process has exited.
    pub fn stop(mut self) -> Duration {
        self.proc.stop()
    }

    /// SIGTERM, then what the server printed until it exited (what its
    /// shutdown drained). The rest must fit in the pipe.
    pub fn stop_and_read_rest(mut self) -> Vec<u8> {
        self.proc.stop();
        let mut rest = Vec::new();
        self.stdout.read_to_end(&mut rest).expect("bench: reading a stopped server's output");
        rest
    }

    /// SIGKILL, and how long until the process has exited. Its queue stays
    /// behind, for the [`QueueName`] to remove.
    pub fn kill(mut self) -> Duration {
        self.proc.kill()
    }
}

/// Reads lines from `stream` on a thread, each stamped with when it came,
/// until end of file. Lines after the ones waited for are simply dropped.
fn relay_lines(stream: impl Read + Send + 'static) -> Receiver<(Instant, String)> {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if send.send((Instant::now(), line)).is_err() {
                // Nobody listens any more; keep draining so the child never blocks.
                continue;
            }
        }
    });
    receive
}

/// The directory of the release binaries, `<target>/release`: the parent
/// of the `deps/` directory that holds this bench binary, wherever the
/// target directory is.
pub fn release_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let dir = exe.parent().ok_or("the bench binary has no directory")?;
    let dir =
        if dir.file_name().is_some_and(|name| name == "deps") { dir.parent().unwrap_or(dir) } else { dir };
    Ok(dir.to_path_buf())
}

/// Our server, `<target>/release/server`. `make build` builds it: Cargo
/// builds no binary of another package for a bench target, so a bench run
/// on its own measures whatever release build is there.
pub fn our_server() -> &'static Path {
    static SERVER: OnceLock<PathBuf> = OnceLock::new();
    SERVER.get_or_init(|| release_dir().expect("bench setup").join("server"))
}

/// This binary, in another role.
pub fn own_role(role: &str) -> Command {
    let exe = std::env::current_exe().expect("bench setup: cannot find the bench binary");
    let mut command = Command::new(exe);
    command.args(["--role", role]);
    command
}

/// A sender or client that prepares, says `ready`, waits for the go (end of
/// its stdin), works, and reports when its work started and ended.
pub struct Worker {
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    proc: Proc,
}

impl Worker {
    /// Starts this binary as `role` with `args`, and waits until it is ready.
    pub fn start(role: &str, args: &[String]) -> Worker {
        let mut command = own_role(role);
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut proc = Proc::spawn(&mut command, libc::SIGKILL);
        let stdin = proc.child.stdin.take();
        let stdout = BufReader::new(proc.child.stdout.take().expect("stdout is piped"));
        let mut worker = Worker { stdin, stdout, proc };
        let line = worker.read_line();
        assert_eq!(line.trim(), "ready", "{role} worker did not get ready");
        worker
    }

    /// Lets the worker start its work.
    pub fn go(&mut self) {
        self.stdin = None;
    }

    /// Waits for the worker to finish; returns its start and end, in
    /// [`crate::clock`] nanoseconds.
    pub fn finish(mut self) -> (u64, u64) {
        self.go();
        let line = self.read_line();
        self.proc.wait();
        let mut times = line.split_whitespace().map(|t| t.parse::<u64>().expect("worker reports times"));
        match (times.next(), times.next()) {
            (Some(start), Some(end)) => (start, end),
            _ => panic!("worker reported {line:?} instead of its start and end"),
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("bench setup: reading a worker's report");
        line
    }
}
