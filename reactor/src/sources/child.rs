//! A child process as a source: its exit learnt through a `pidfd`, its
//! output as lines, its input as a `Writer`.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::rc::Rc;

use super::outbox::OnOutput;
use super::process::{signal_pidfd, unblock_signals, Process};
use crate::callback::{Callback, OnBytes, OnError};
use crate::sources::{AtShutdown, LineReader, Output, Writer};
use crate::sys::set_nonblocking;
use crate::{Context, Handler, Readiness, Token};

/// Spawns a [`Command`] and reports its end: lines of its stdout and stderr
/// (when piped) to closures, then its [`ExitStatus`] to `on_exit`.
///
/// - Its exit is learnt through a `pidfd` (`pidfd_open`, Linux 5.3 and
///   later), not `SIGCHLD`: no signal handling, no mask to set, and other
///   children of the process are not disturbed. On a kernel without pidfd,
///   [`spawn`](Child::spawn) kills and reaps the child it started and fails
///   with `ErrorKind::Unsupported` naming the cause (`ENOSYS`).
/// - Signal it with [`ChildHandle::signal`], through the pidfd: never
///   `kill(2)` on its [`id`](ChildHandle::id), which may name another
///   process once the child has been reaped.
/// - `on_exit` runs exactly once for every end of a registered child,
///   whoever caused it (the child itself, a signal, `remove` of its token,
///   the reactor's stop), with the status, after the exit *and* after the
///   end of file of every piped output stream, whatever order they come in:
///   every line is delivered before the status. (A grandchild that keeps
///   the pipe open keeps `on_exit` waiting, until the reactor stops; give
///   it `Stdio::null()` or close its copy.)
/// - The child is reaped as soon as its exit is seen: no zombie. One still
///   running when its source leaves is ended as [`AtShutdown`] says
///   (default: `SIGTERM`, up to 2 s, then `SIGKILL`), without blocking the
///   loop; the reactor's stop waits for it within that bound. To end it
///   even when the program is killed, spawn it with
///   [`die_with_parent`](Child::die_with_parent); to run it again when it
///   ends, see [`Supervisor`](super::Supervisor).
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
///     .on_exit(|status, ctx| ctx.exit(Child::shell_code(status)))
///     .register(&mut reactor)?;
/// reactor.run()?;
/// assert_eq!(*lines.borrow(), [b"one".to_vec(), b"two".to_vec()]);
/// assert_eq!(reactor.exit_code(), Some(3)); // what `sh` would say in `$?`
/// # Ok(())
/// # }
/// ```
pub struct Child {
    process: Process,
    /// Its piped stdout and stderr, each with its longest line and callback
    /// (by default, one that discards lines, so the child never blocks on a
    /// full pipe).
    pub(super) outputs: [Option<(OwnedFd, usize, OnBytes)>; 2],
    stdin: Option<OwnedFd>,
    stdin_limit: usize,
    on_stdin_drain: Option<OnOutput>,
    on_stdin_error: Option<OnError>,
    pub(super) on_exit: Option<Callback<ExitStatus>>,
}

/// What [`Child::register`] returns: the child's pid, its token, its stdin,
/// and its pidfd to signal it by.
#[derive(Debug, Clone)]
pub struct ChildHandle {
    pid: u32,
    token: Token,
    pidfd: Rc<OwnedFd>,
    stdin: Option<Output>,
}

impl ChildHandle {
    /// The child's process id. It names the child only until the child is
    /// reaped, which happens as soon as its exit is seen, before `on_exit`
    /// runs (which may wait for the end of its output): after that the pid
    /// may name another process. For a log line it is fine; to signal the
    /// child, use [`signal`](ChildHandle::signal).
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (`libc::SIGTERM`, say) to this child through its
    /// pidfd (`pidfd_send_signal`), which names this process and no other
    /// for as long as the handle lives. A child that has exited but is not
    /// yet reaped takes it and nothing happens, as with `kill(2)`; once it
    /// is reaped the call fails with `ErrorKind::NotFound` (`ESRCH`) and
    /// reaches no process, whichever now has its pid. (The call is Linux 5.1,
    /// older than the `pidfd_open` that [`Child::spawn`] needs: where that
    /// worked, so does this.)
    ///
    /// ```
    /// use std::process::Command;
    /// use reactor::{sources::Child, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// let child = Child::spawn(Command::new("sleep").arg("30"))?
    ///     .on_exit(|status, ctx| ctx.exit(Child::shell_code(status)))
    ///     .register(&mut reactor)?;
    /// child.signal(libc::SIGTERM)?;
    /// reactor.run()?;
    /// assert_eq!(reactor.exit_code(), Some(128 + libc::SIGTERM));
    /// assert_eq!(child.signal(libc::SIGTERM).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// # Ok(())
    /// # }
    /// ```
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        signal_pidfd(&self.pidfd, self.pid, signal)
    }

    /// The token of the source that watches its exit. Removing it ends the
    /// child as its [`AtShutdown`] says: the token leaves at once, the end
    /// is seen through under another, and `on_exit` says when it is over.
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
    /// (which sets `SIGPIPE` back to its default in the child). The child's
    /// signal mask is emptied before `exec` (`command` keeps that step): a
    /// child inherits its parent's mask, and a [`SignalFd`](super::SignalFd)
    /// blocks `SIGTERM` and `SIGINT` in the reactor's process, which would
    /// block them in the child too and make every graceful stop a `SIGKILL`.
    pub fn spawn(command: &mut Command) -> io::Result<Child> {
        let program = Path::new(command.get_program()).display().to_string();
        let mut child = unblock_signals(command)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
        let stdin = child.stdin.take().map(OwnedFd::from);
        let stdout = child.stdout.take().map(|pipe| discard(pipe.into()));
        let stderr = child.stderr.take().map(|pipe| discard(pipe.into()));
        Ok(Child {
            process: Process::new(child)?,
            outputs: [stdout, stderr],
            stdin,
            stdin_limit: 64 * 1024,
            on_stdin_drain: None,
            on_stdin_error: None,
            on_exit: None,
        })
    }

    /// The child's process id (see [`ChildHandle::id`] for how long it
    /// names the child).
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// The exit code a shell gives for `status` (its `$?`): the code of a
    /// child that exited, `128 + N` for one that signal `N` ended (143 for
    /// `SIGTERM`, 137 for `SIGKILL`). The value to end a program with that
    /// passes its child's result on: `ctx.exit(Child::shell_code(status))`
    /// in `on_exit`, then `reactor.exit_code()` after
    /// [`run`](crate::Reactor::run).
    pub fn shell_code(status: ExitStatus) -> i32 {
        status.code().or(status.signal().map(|signal| 128 + signal)).unwrap_or(1)
    }

    /// Each line of its stdout, or piece of at most `max_line` bytes. Only
    /// a piped stdout (`Stdio::piped()`) has lines: for any other, the
    /// callback is dropped unused.
    pub fn on_stdout(self, max_line: usize, on_line: impl FnMut(&[u8], &mut Context) + 'static) -> Child {
        self.on_output(0, max_line, Box::new(on_line))
    }

    /// Each line of its stderr, as [`on_stdout`](Child::on_stdout).
    pub fn on_stderr(self, max_line: usize, on_line: impl FnMut(&[u8], &mut Context) + 'static) -> Child {
        self.on_output(1, max_line, Box::new(on_line))
    }

    fn on_output(mut self, stream: usize, max_line: usize, on_line: OnBytes) -> Child {
        if let Some(output) = &mut self.outputs[stream] {
            (output.1, output.2) = (max_line, on_line);
        }
        self
    }

    /// Its exit status, after every line of its piped outputs; once for
    /// every end, whoever caused it.
    pub fn on_exit(mut self, on_exit: impl FnMut(ExitStatus, &mut Context) + 'static) -> Child {
        self.on_exit = Some(Box::new(on_exit));
        self
    }

    /// How to end it if it still runs when its source leaves (default:
    /// `SIGTERM`, up to 2 s, then `SIGKILL`).
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
    /// callback discards its lines), and a writer for a piped stdin.
    pub fn register(mut self, ctx: &mut Context) -> io::Result<ChildHandle> {
        let pid = self.id();
        let state = Rc::new(RefCell::new(Exit { status: None, open: 0, on_exit: self.on_exit.take() }));
        let (mut readers, mut held) = (Vec::new(), Vec::new());
        for (fd, max_line, mut on_line) in self.outputs.into_iter().flatten() {
            set_nonblocking(fd.as_fd())?;
            held.push(fd.try_clone()?);
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
        let pidfd = self.process.pidfd.clone();
        let name = format!("child {pid}");
        let watch =
            ExitWatch { process: Some(self.process), pidfd: pidfd.clone(), held, state, stdin_slot, name };
        let token = ctx.register(watch)?;
        for reader in readers {
            ctx.register(reader)?;
        }
        let stdin = stdin.map(|writer| writer.register(ctx)).transpose()?;
        Ok(ChildHandle { pid, token, pidfd, stdin })
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

/// The handler: readable pidfd means the child exited.
struct ExitWatch {
    /// `None` once reaped, or handed over to the watch that sees its end through.
    process: Option<Process>,
    pidfd: Rc<OwnedFd>,
    /// Read ends of its output pipes, kept until it is reaped: a child that
    /// writes after its readers left (at the reactor's stop) gets no `EPIPE`.
    held: Vec<OwnedFd>,
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
        let Some(process) = &mut self.process else { return Ok(()) };
        // Reaps it: no zombie from here on.
        let Some(status) = process.try_reap()? else { return Ok(()) };
        self.process = None;
        self.state.borrow_mut().status = Some(status);
        Exit::report(&self.state, ctx);
        ctx.remove_self();
        Ok(())
    }

    /// Removed while the child runs: the end begins (its signal), and a new
    /// watch sees it through, with a timer that removes that one at the
    /// deadline. Removed with its end begun (by that timer, or by the
    /// reactor's shutdown): waits until the deadline, kills, reaps.
    fn on_remove(&mut self, ctx: &mut Context) {
        let Some(mut process) = self.process.take() else { return };
        if process.deadline.is_none() {
            let grace = process.begin_end();
            let (held, stdin_slot) = (std::mem::take(&mut self.held), std::mem::take(&mut self.stdin_slot));
            let (pidfd, state, name) = (self.pidfd.clone(), self.state.clone(), self.name.clone());
            match ctx.register(ExitWatch { process: Some(process), pidfd, held, state, stdin_slot, name }) {
                Ok(token) if !ctx.is_stopping() => {
                    ctx.after(grace, move |ctx| {
                        ctx.remove(token);
                    });
                }
                Ok(_) => {}
                Err(mut refused) => refused.handler.on_remove(ctx),
            }
            return;
        }
        self.state.borrow_mut().status = process.end();
        Exit::report(&self.state, ctx);
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.id())
            .field("pidfd", &self.process.pidfd)
            .field("at_shutdown", &self.process.at_shutdown)
            .finish_non_exhaustive()
    }
}
