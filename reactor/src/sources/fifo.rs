//! A named pipe (FIFO) read as lines, by any number of writers in turn.

use std::ffi::CString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sources::LineReader;
use crate::sys::{self, syscall};
use crate::{Context, Handler, Readiness};

/// Creates a FIFO (or uses the one already at its path), reads it as lines,
/// and removes it when the source goes (shutdown, removal, drop, panic)
/// unless told to [`keep`](Fifo::keep) it.
///
/// It opens the FIFO for reading *and writing* (`O_RDWR`, which Linux
/// allows on a FIFO): holding a write end itself, the FIFO never lacks a
/// writer, so it never reaches end of file when the last writer closes.
/// Opened read-only, it would: epoll would then report a hang-up every round
/// (a busy loop) until the reader reopened it, and a writer arriving in
/// between would find no reader. The price: a last line without `\n` from
/// one writer is joined to the next writer's first line.
///
/// ```
/// use std::io::Write;
/// use reactor::{sources::Fifo, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let path = std::env::temp_dir().join(format!("reactor-doc-fifo-{}", std::process::id()));
/// let mut reactor = Reactor::new()?;
/// reactor.register(Fifo::create(&path, 0o600, 4096, |line, ctx| {
///     assert_eq!(line, b"hello");
///     ctx.stop();
/// })?)?;
/// // A writer comes and goes (non-blocking: the reader is already there).
/// let mut writer = std::fs::OpenOptions::new().write(true).open(&path)?;
/// writer.write_all(b"hello\n")?;
/// drop(writer);
/// reactor.run()?;
/// assert!(!path.exists(), "removed at shutdown");
/// # Ok(())
/// # }
/// ```
pub struct Fifo {
    reader: LineReader,
    guard: Unlink,
}

/// Removes the FIFO on drop, if asked to.
struct Unlink {
    path: PathBuf,
    unlink: bool,
}

impl Drop for Unlink {
    fn drop(&mut self) {
        if self.unlink {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

impl Fifo {
    /// Makes a FIFO at `path` with permissions `mode` (set exactly, whatever
    /// the umask), or takes the FIFO already there (its mode untouched; it is
    /// then not removed at shutdown unless [`remove_at_shutdown`](Fifo::remove_at_shutdown)
    /// says so). Each line (or piece of at most `max_line` bytes) goes to
    /// `on_line`.
    ///
    /// The path is acted on once: after `mkfifo`, everything goes through
    /// the descriptor (`open` with `O_NOFOLLOW`, then `fstat` and
    /// `fchmod`), so a symbolic link swapped in by another user who may
    /// write the directory is refused, never followed. Refused, with an
    /// error that names the owner and the mode: a symbolic link, anything
    /// but a FIFO (`AlreadyExists`), and a FIFO that another user owns or
    /// whose mode grants the group or others a permission `mode` does not
    /// (`PermissionDenied`): its other readers would take lines meant for
    /// this one.
    pub fn create(
        path: impl AsRef<Path>,
        mode: u32,
        max_line: usize,
        on_line: impl FnMut(&[u8], &mut Context) + 'static,
    ) -> io::Result<Fifo> {
        let path = path.as_ref();
        let made = make_fifo(path, mode)?;
        // Should what follows fail, dropping the guard removes what we made.
        let mut guard = Unlink { path: path.to_path_buf(), unlink: made };
        let fd = open_fifo(path)
            .and_then(|fd| check_fifo(path, &fd, made.then_some(mode), mode).map(|()| fd))
            .inspect_err(|e| {
                if is_refusal(e) {
                    // What is at the path now is not the FIFO we made: not ours to remove.
                    guard.unlink = false;
                }
            })?;
        let reader = LineReader::new(fd, max_line, on_line).named(format!("fifo {}", path.display()));
        Ok(Fifo { reader, guard })
    }

    /// Leaves the FIFO in place when the source goes.
    pub fn keep(mut self) -> Fifo {
        self.guard.unlink = false;
        self
    }

    /// Removes the FIFO when the source goes, even one that was there before.
    pub fn remove_at_shutdown(mut self) -> Fifo {
        self.guard.unlink = true;
        self
    }

    /// Calls `on_close` when the source is removed or shut down (a FIFO held
    /// open for writing by its reader never ends by itself).
    pub fn on_close(self, on_close: impl FnMut(&mut Context) + 'static) -> Fifo {
        Fifo { reader: self.reader.on_close(on_close), guard: self.guard }
    }

    /// Where the FIFO is.
    pub fn path(&self) -> &Path {
        &self.guard.path
    }
}

impl Handler for Fifo {
    fn fd(&self) -> BorrowedFd<'_> {
        self.reader.fd()
    }

    fn name(&self) -> &str {
        self.reader.name()
    }

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context) -> io::Result<()> {
        self.reader.on_ready(readiness, ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        self.reader.on_remove(ctx);
    }

    fn on_shutdown(&mut self) {
        self.reader.on_shutdown();
    }
}

impl fmt::Debug for Fifo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fifo")
            .field("path", &self.guard.path)
            .field("remove_at_shutdown", &self.guard.unlink)
            .field("reader", &self.reader)
            .finish()
    }
}

/// `mkfifo`; `Ok(false)` if something was already there (it is opened
/// and checked next, through its descriptor).
fn make_fifo(path: &Path, mode: u32) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    match syscall!(mkfifo(c_path.as_ptr(), (mode & 0o777) as libc::mode_t)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("mkfifo {}: {e}", path.display()))),
    }
}

/// Whether `e` says that what is at the path is not a FIFO this user may
/// use (as opposed to a failure of the calls themselves).
fn is_refusal(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::PermissionDenied)
}

/// Opens the FIFO at `path` without following a symbolic link: `O_RDWR`
/// never blocks on a FIFO, and `O_NONBLOCK` keeps the open of anything
/// else swapped in from blocking.
fn open_fifo(path: &Path) -> io::Result<OwnedFd> {
    let flags = libc::O_NONBLOCK | libc::O_NOFOLLOW;
    // std adds O_CLOEXEC.
    match OpenOptions::new().read(true).write(true).custom_flags(flags).open(path) {
        Ok(file) => Ok(file.into()),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is a symbolic link, not a FIFO: refused", path.display()),
        )),
        Err(e) => Err(io::Error::new(e.kind(), format!("open {}: {e}", path.display()))),
    }
}

/// Checks through `fd` that it is a FIFO of this user that grants the
/// group and others nothing beyond `mode`; then, if `set` is given (we made
/// the FIFO), sets exactly that mode (`mkfifo` applied the umask).
fn check_fifo(path: &Path, fd: &OwnedFd, set: Option<u32>, mode: u32) -> io::Result<()> {
    let st =
        sys::fstat(fd.as_fd()).map_err(|e| io::Error::other(format!("fstat {}: {e}", path.display())))?;
    // SAFETY: plain call, cannot fail.
    let me = unsafe { libc::geteuid() };
    let (owner, found) = (st.st_uid, st.st_mode & 0o7777);
    let whose = if owner == me { "this user".to_string() } else { format!("user {owner}") };
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a FIFO (owned by {whose} with mode {found:04o})", path.display()),
        ));
    }
    if owner != me || found & !mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "FIFO {}: exists, owned by {whose} with mode {found:04o}, and is not safe to use: \
                 another user could read the lines meant for this reader (the mode asked is {mode:04o}). \
                 Remove it (its owner or root) or choose another path",
                path.display()
            ),
        ));
    }
    if let Some(mode) = set {
        // SAFETY: `fd` is open; fchmod acts on the FIFO we opened, never on a path.
        syscall!(fchmod(fd.as_raw_fd(), mode as libc::mode_t))
            .map_err(|e| io::Error::other(format!("fchmod {}: {e}", path.display())))?;
    }
    Ok(())
}
