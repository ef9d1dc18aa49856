//! A child process as a source: its exit learnt through a `pidfd`, its
//! output as lines, its input as a `Writer`.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus};
use std::rc::Rc;

use crate::callback::{Callback, OnBytes, OnError};
use crate::sources::{LineReader, Output, Writer};
use crate::sys::set_nonblocking;
use crate::{Context, Handler, Readiness, Token};

type OnDrain = Box<dyn FnMut(&Output, &mut Context)>;

/// What happens to a child still running when its source leaves the
/// reactor (the loop stops, the source is removed, the reactor is dropped,
/// or the `Child` is dropped unregistered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AtShutdown {
    /// `SIGKILL`, then reap it (the default): no orphan, no zombie.
    #[default]
    Kill,
    /// Wait for it to exit on its own, blocking the shutdown meanwhile.
    Wait,
}

/// Spawns a [`Command`] and reports its end: lines of its stdout and stderr
/// (when piped) to closures, then its [`ExitStatus`] to `on_exit`.
///
/// - Its exit is learnt through a `pidfd` (`pidfd_open`, Linux 5.3 and
///   later), not `SIGCHLD`: no signal handling, no mask to set, and other
///   children of the process are not disturbed. On a kernel without pidfd,
///   [`spawn`](Child::spawn) kills and reaps the child it started and fails
///   with `ErrorKind::Unsupported` naming the cause (`ENOSYS`).
/// - `on_exit` runs once, after the exit *and* after the end of file of every
///   piped output stream, whatever order they come in: every line is
///   delivered before the status. (A grandchild that keeps the pipe open
///   keeps `on_exit` waiting; give it `Stdio::null()` or close its copy.)
/// - The child is reaped as soon as its exit is seen: no zombie. One still
///   running when the source leaves is killed and reaped, or waited for,
///   as [`AtShutdown`] says (default: kill).
/// - A piped stdin becomes a [`Writer`] whose handle
///   [`ChildHandle::stdin`] gives; close it with `close_when_drained`. A
///   producer that sees a write refused (`WouldBlock`, the writer is full)
///   stops producing and resumes in [`on_stdin_drain`](Child::on_stdin_drain).
///   A child that exits closes its end, and the writer then fails with
///   `BrokenPipe`: [`on_stdin_error`](Child::on_stdin_error) takes that
///   error (otherwise the writer logs it as a warning).
///
/// ```
/// use std::process::{Command, Stdio};
/// use reactor::{sources::Child, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let lines = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let seen = lines.clone();
/// Child::spawn(Command::new("sh").args(["-c", "echo one; echo two; exit 3"]).stdout(Stdio::piped()))?
///     .on_stdout(1024, move |line, _ctx| seen.borrow_mut().push(line.to_vec()))
///     .on_exit(|status, ctx| {
///         assert_eq!(status.code(), Some(3));
///         ctx.stop();
///     })
///     .register(&mut reactor)?;
/// reactor.run()?;
/// assert_eq!(*lines.borrow(), [b"one".to_vec(), b"two".to_vec()]);
/// # Ok(())
/// # }
/// ```
pub struct Child {
    process: Process,
    pidfd: OwnedFd,
    stdout: Option<(OwnedFd, usize, OnBytes)>,
    stderr: Option<(OwnedFd, usize, OnBytes)>,
    stdout_pipe: Option<OwnedFd>,
    stderr_pipe: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_limit: usize,
    on_stdin_drain: Option<OnDrain>,
    on_stdin_error: Option<OnError>,
    on_exit: Option<Callback<ExitStatus>>,
}

/// What [`Child::register`] returns: the child's pid, its token, its stdin.
#[derive(Debug, Clone)]
pub struct ChildHandle {
    pid: u32,
    token: Token,
    stdin: Option<Output>,
}

impl ChildHandle {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The token of the source that watches its exit; removing it kills
    /// (or waits for) the child as its [`AtShutdown`] says.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Its stdin, if it was piped.
    pub fn stdin(&self) -> Option<&Output> {
        self.stdin.as_ref()
    }
}

impl Child {
    /// Spawns `command` and opens a pidfd on it. Piped streams are taken from
    /// the `std::process::Child`; the rest of the `Command` is as std does it
    /// (which resets the signal mask and `SIGPIPE` in the child).
    pub fn spawn(command: &mut Command) -> io::Result<Child> {
        let mut child = command.spawn()?;
        let stdin = child.stdin.take().map(OwnedFd::from);
        let stdout_pipe = child.stdout.take().map(OwnedFd::from);
        let stderr_pipe = child.stderr.take().map(OwnedFd::from);
        let process = Process { child: Some(child), at_shutdown: AtShutdown::Kill };
        let pidfd = pidfd_open(process.id())?; // on failure, `process` kills and reaps
        Ok(Child {
            process,
            pidfd,
            stdout: None,
            stderr: None,
            stdout_pipe,
            stderr_pipe,
            stdin,
            stdin_limit: 64 * 1024,
            on_stdin_drain: None,
            on_stdin_error: None,
            on_exit: None,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Each line of its stdout, or piece of at most `max_line` bytes. Only
    /// a piped stdout (`Stdio::piped()`) has lines: for any other, the
    /// callback is dropped unused.
    pub fn on_stdout(mut self, max_line: usize, on_line: impl FnMut(&[u8], &mut Context) + 'static) -> Child {
        if let Some(fd) = self.stdout_pipe.take() {
            self.stdout = Some((fd, max_line, Box::new(on_line)));
        }
        self
    }

    /// Each line of its stderr, as [`on_stdout`](Child::on_stdout).
    pub fn on_stderr(mut self, max_line: usize, on_line: impl FnMut(&[u8], &mut Context) + 'static) -> Child {
        if let Some(fd) = self.stderr_pipe.take() {
            self.stderr = Some((fd, max_line, Box::new(on_line)));
        }
        self
    }

    /// Its exit status, after every line of its piped outputs.
    pub fn on_exit(mut self, on_exit: impl FnMut(ExitStatus, &mut Context) + 'static) -> Child {
        self.on_exit = Some(Box::new(on_exit));
        self
    }

    /// What to do with it if it still runs when its source leaves.
    pub fn at_shutdown(mut self, policy: AtShutdown) -> Child {
        self.process.at_shutdown = policy;
        self
    }

    /// The bound of its stdin [`Writer`] (default 64 KiB).
    pub fn stdin_limit(mut self, limit: usize) -> Child {
        self.stdin_limit = limit;
        self
    }

    /// Called with its stdin's handle when that [`Writer`] has emptied after
    /// a write was refused for want of room: the moment for a producer held
    /// back by `WouldBlock` (or [`Output::fits`]) to write again and
    /// resume. This is the writer's [`on_drain`](Writer::on_drain). Never
    /// called if stdin is not piped, nor once the child has been reaped (the
    /// exit watch gone, writes to its stdin could only fail).
    pub fn on_stdin_drain(mut self, on_drain: impl FnMut(&Output, &mut Context) + 'static) -> Child {
        self.on_stdin_drain = Some(Box::new(on_drain));
        self
    }

    /// Called with the error that ends its stdin's [`Writer`] (the writer's
    /// [`on_error`](Writer::on_error)); then nothing is logged. A child
    /// that exits, or closes its stdin, makes every later write fail with
    /// `BrokenPipe`, and the writer learns it as soon as the child's end is
    /// closed, written to or not. Without this hook, the writer logs
    /// `writer: Broken pipe` as a warning for every such child.
    pub fn on_stdin_error(mut self, on_error: impl FnMut(&io::Error, &mut Context) + 'static) -> Child {
        self.on_stdin_error = Some(Box::new(on_error));
        self
    }

    /// Registers the exit watch and a reader per piped output (one without a
    /// callback discards its lines, so the child never blocks on a full
    /// pipe), and a writer for a piped stdin.
    pub fn register(mut self, ctx: &mut Context) -> io::Result<ChildHandle> {
        let pid = self.id();
        let state = Rc::new(RefCell::new(Exit { status: None, open: 0, on_exit: self.on_exit.take() }));
        let outputs = [
            self.stdout.take().or_else(|| self.stdout_pipe.take().map(discard)),
            self.stderr.take().or_else(|| self.stderr_pipe.take().map(discard)),
        ];
        let mut readers = Vec::new();
        for (fd, max_line, mut on_line) in outputs.into_iter().flatten() {
            set_nonblocking(fd.as_fd())?;
            state.borrow_mut().open += 1;
            let exit = state.clone();
            let reader =
                LineReader::new(fd, max_line, move |line, ctx| on_line(line, ctx)).on_close(move |ctx| {
                    exit.borrow_mut().open -= 1;
                    Exit::report(&exit, ctx);
                });
            readers.push(reader.named(format!("child {pid} output")));
        }
        let mut stdin = self.stdin.take().map(|fd| Writer::new(fd, self.stdin_limit)).transpose()?;
        if let Some(mut on_error) = self.on_stdin_error.take() {
            stdin = stdin.map(|writer| writer.on_error(move |e, _, ctx| on_error(e, ctx)));
        }
        // The drain callback reaches the handle through a slot that the exit
        // watch empties when it goes: a handle captured for good would make a
        // cycle (the writer's state holds the callback) and never be freed.
        let stdin_slot = Rc::new(RefCell::new(None));
        let stdin = match (stdin, self.on_stdin_drain.take()) {
            (Some(writer), Some(mut on_drain)) => {
                *stdin_slot.borrow_mut() = Some(writer.output());
                let slot = stdin_slot.clone();
                Some(writer.on_drain(move |_, ctx| {
                    let handle = slot.borrow().clone(); // not borrowed while the callback runs
                    if let Some(handle) = handle {
                        on_drain(&handle, ctx);
                    }
                }))
            }
            (stdin, _) => stdin,
        };
        let watch = ExitWatch {
            process: self.process,
            pidfd: self.pidfd,
            state,
            stdin_slot,
            name: format!("child {pid}"),
        };
        let token = ctx.register(watch)?;
        for reader in readers {
            ctx.register(reader)?;
        }
        let stdin = stdin.map(|writer| writer.register(ctx)).transpose()?;
        Ok(ChildHandle { pid, token, stdin })
    }
}

fn discard(fd: OwnedFd) -> (OwnedFd, usize, OnBytes) {
    (fd, 64 * 1024, Box::new(|_, _| {}))
}

/// The exit, and the streams still open: `on_exit` waits for both.
struct Exit {
    status: Option<ExitStatus>,
    open: usize,
    on_exit: Option<Callback<ExitStatus>>,
}

impl Exit {
    fn report(exit: &Rc<RefCell<Exit>>, ctx: &mut Context) {
        let (status, on_exit) = {
            let mut exit = exit.borrow_mut();
            match exit.status {
                Some(status) if exit.open == 0 => (status, exit.on_exit.take()),
                _ => return,
            }
        };
        if let Some(mut on_exit) = on_exit {
            on_exit(status, ctx);
        }
    }
}

/// The `std::process::Child`, reaped whatever happens: on drop, one still
/// running is killed (or waited for) and reaped.
struct Process {
    child: Option<std::process::Child>,
    at_shutdown: AtShutdown,
}

impl Process {
    fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if self.at_shutdown == AtShutdown::Kill {
            if let Err(e) = child.kill() {
                log::warn!("child {}: kill: {e}", child.id());
            }
        }
        if let Err(e) = child.wait() {
            log::warn!("child {}: wait: {e}", child.id());
        }
    }
}

/// The handler: readable pidfd means the child exited.
struct ExitWatch {
    process: Process,
    pidfd: OwnedFd,
    state: Rc<RefCell<Exit>>,
    /// Emptied on drop, which frees the stdin writer's state.
    stdin_slot: Rc<RefCell<Option<Output>>>,
    name: String,
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        self.stdin_slot.borrow_mut().take();
    }
}

impl Handler for ExitWatch {
    fn fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let Some(child) = &mut self.process.child else { return Ok(()) };
        // Reaps it: no zombie from here on.
        let Some(status) = child.try_wait()? else { return Ok(()) };
        self.process.child = None;
        self.state.borrow_mut().status = Some(status);
        Exit::report(&self.state, ctx);
        ctx.remove_self();
        Ok(())
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.id())
            .field("pidfd", &self.pidfd)
            .field("at_shutdown", &self.process.at_shutdown)
            .finish_non_exhaustive()
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments; returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if raw == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "pidfd_open: this kernel has no pidfd (Linux 5.3 or later is needed to watch a child): ENOSYS",
            ));
        }
        return Err(io::Error::new(e.kind(), format!("pidfd_open({pid}): {e}")));
    }
    // SAFETY: `pidfd_open` just returned this descriptor (close-on-exec); nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) })
}
