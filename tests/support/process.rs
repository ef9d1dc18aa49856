//! Short-lived processes: the client, make, a client left waiting.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{wait_until, POLL_INTERVAL};

/// How a process that ran to its end ended, and what it printed.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
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
/// room in a full queue, a sender fed piece by piece), killed and reaped on
/// drop if it did not finish.
pub struct Process {
    child: Child,
    description: String,
    /// Feeds stdin on a thread: pieces to write, and the end of input when
    /// the sender is dropped.
    input: Option<mpsc::Sender<Vec<u8>>>,
    writer: Option<thread::JoinHandle<()>>,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Option<thread::JoinHandle<String>>,
    finished: bool,
}

impl Process {
    /// Starts `command` with `input` as the whole of its stdin, collecting
    /// its output.
    pub fn start(command: Command, input: &[u8]) -> Process {
        let mut process = Process::start_fed(command);
        process.feed(input);
        process.end_input();
        process
    }

    /// Starts `command` with a stdin the test goes on writing to
    /// ([`feed`](Process::feed)) until it ends it
    /// ([`end_input`](Process::end_input)), collecting its output.
    pub fn start_fed(command: Command) -> Process {
        Process::launch(command, None)
    }

    /// Starts `command` with `stdin` (the output of another process, say),
    /// collecting its output.
    pub fn start_reading(command: Command, stdin: impl Into<Stdio>) -> Process {
        Process::launch(command, Some(stdin.into()))
    }

    fn launch(mut command: Command, stdin: Option<Stdio>) -> Process {
        let fed = stdin.is_none();
        command.stdin(stdin.unwrap_or_else(Stdio::piped)).stdout(Stdio::piped()).stderr(Stdio::piped());
        let description = format!("{command:?}");
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {description}: {e}"));
        let (input, pieces) = mpsc::channel();
        let writer = fed.then(|| {
            let stdin = child.stdin.take().expect("stdin is piped");
            thread::spawn(move || write_all_pieces(stdin, pieces))
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
            input: fed.then_some(input),
            writer,
            stdout: Some(stdout),
            stderr: Some(stderr),
            finished: false,
        }
    }

    /// Writes `bytes` to the process's stdin, on a thread: this returns at
    /// once, even if the process does not read.
    pub fn feed(&mut self, bytes: &[u8]) {
        let input = self.input.as_ref().expect("input was ended, or is not fed by the test");
        // The writer thread ends early only if the process stopped reading.
        let _ = input.send(bytes.to_vec());
    }

    /// Closes the process's stdin once what was fed is written: it sees
    /// end of file.
    pub fn end_input(&mut self) {
        self.input = None;
    }

    /// The process id.
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

    /// The descriptors the process has open now (`/proc/PID/fd`), as the
    /// paths they lead to.
    pub fn open_files(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(format!("/proc/{}/fd", self.pid())) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| fs::read_link(entry.path()).ok())
            .map(|target| target.to_string_lossy().into_owned())
            .collect()
    }

    /// Waits for the process to end, at most `limit`, and returns how it
    /// ended and what it printed. Its input is ended first.
    pub fn finish(mut self, limit: Duration) -> Finished {
        self.end_input();
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

/// Writes each piece that comes to `stdin`, and closes it when the sender
/// is gone. A process that exits without reading its input gets EPIPE
/// here: fine, the rest is dropped.
fn write_all_pieces(mut stdin: ChildStdin, pieces: mpsc::Receiver<Vec<u8>>) {
    for piece in pieces {
        if stdin.write_all(&piece).is_err() {
            return;
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("command", &self.description)
            .field("pid", &self.child.id())
            .field("finished", &self.finished)
            .finish()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.input = None;
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
