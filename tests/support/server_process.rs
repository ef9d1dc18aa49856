//! A server process: how to start it ([`ServerBuilder`]), and what a test
//! does with it while it runs ([`Server`]).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Instant;

use crate::output_lines::tail;
use crate::{binary, pipe_is_full, wait_until_or, Finished, Lines, TestQueue, DEADLINE, POLL_INTERVAL};

/// What the server reads as stdin.
#[derive(Debug)]
pub enum Input {
    /// `/dev/null`.
    Null,
    /// A pipe the test writes to ([`Server::write_stdin`]) and closes.
    Pipe,
    /// A regular file.
    File(File),
}

/// How to start a server.
#[derive(Debug)]
pub struct ServerBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    input: Input,
    raw_stdout: bool,
    stdout_file: Option<File>,
    umask: Option<libc::mode_t>,
    ignored: Vec<libc::c_int>,
    pre_exec: Option<fn()>,
    program: Option<PathBuf>,
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
            stdout_file: None,
            umask: None,
            ignored: Vec::new(),
            pre_exec: None,
            program: None,
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

    /// Makes `file` the server's stdout (`/dev/full`, say); nothing is
    /// collected.
    pub fn stdout_to(mut self, file: File) -> ServerBuilder {
        self.stdout_file = Some(file);
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

    /// Runs the server at `program` instead of this build's (a
    /// [`SharedBinaries`](crate::SharedBinaries) copy, say).
    pub fn program(mut self, program: PathBuf) -> ServerBuilder {
        self.program = Some(program);
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
        let mut command = Command::new(self.program.clone().unwrap_or_else(|| binary("server")));
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
        if let Some(file) = self.stdout_file {
            command.stdout(Stdio::from(file));
        }
        let mut child = command.spawn().expect("cannot start the server");
        let (out_lines, raw_stdout) = match child.stdout.take() {
            None => (Lines::collect("server stdout (a file)", io::empty()), None),
            Some(stdout) if self.raw_stdout => {
                (Lines::collect("server stdout (not collected)", io::empty()), Some(stdout))
            }
            Some(stdout) => (Lines::collect("server stdout", stdout), None),
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
#[derive(Debug)]
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
    /// The process id.
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

    /// Whether the server's stdout, a pipe, takes no more bytes now (see
    /// [`pipe_is_full`]): a server printing lines of up to 4096 bytes that
    /// has more to print then waits on it. It is asked through a write end
    /// of the pipe of its own (`/proc/PID/fd/1`), on which nothing is
    /// written.
    pub fn stdout_is_full(&self) -> bool {
        let path = format!("/proc/{}/fd/1", self.pid());
        let probe = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {path} (the server's stdout) for writing: {e}"));
        pipe_is_full(&probe)
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

    /// Waits until `condition` holds, looking every few milliseconds; the
    /// failure after [`DEADLINE`] shows what the server logged.
    pub fn wait_for(&self, what: &str, condition: impl FnMut() -> bool) {
        wait_until_or(what, condition, || format!("; server stderr:\n{}", tail(&self.stderr.snapshot(), 30)))
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
