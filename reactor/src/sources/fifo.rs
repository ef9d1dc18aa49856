//! A named pipe (FIFO) read as lines, by any number of writers in turn.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sources::LineReader;
use crate::sys::{self, syscall};
use crate::Context;

/// A FIFO that a reader made, removed when the reader goes (shutdown,
/// removal, drop, panic).
#[derive(Debug)]
pub(crate) struct MadeFifo(PathBuf);

impl Drop for MadeFifo {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.0) {
            log::warn!("cannot remove {}: {e}", self.0.display());
        }
    }
}

impl LineReader {
    /// A reader of the FIFO (named pipe) at `path`, made with permissions
    /// `mode` (set exactly, whatever the umask) unless a FIFO is there
    /// already (its mode untouched), that passes each line (or piece of at
    /// most `max_line` bytes) to `on_line`: a [`LineReader`] in all else,
    /// named `fifo PATH`, with the same callbacks, pausable as any. A FIFO
    /// it made goes when the reader goes (shutdown, removal, drop, panic);
    /// one that was there stays.
    ///
    /// It opens the FIFO for reading *and writing* (`O_RDWR`, which Linux
    /// allows on a FIFO): holding a write end itself, it never reaches end
    /// of file when the last writer closes, so writers may come and go.
    /// Opened read-only, it would: epoll would then report a hang-up every
    /// round (a busy loop) until the reader reopened it, and a writer
    /// arriving in between would find no reader. Hence what becomes of a
    /// last line without `\n`: a writer's is joined to the next writer's
    /// first line, and the part held when the reader goes (at shutdown or
    /// removal) goes to [`on_unfinished`](LineReader::on_unfinished), or is
    /// dropped; [`on_close`](LineReader::on_close) runs then, and only then.
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
    ///
    /// ```
    /// use std::io::Write;
    /// use reactor::{sources::LineReader, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("reactor-doc-fifo-{}", std::process::id()));
    /// let mut reactor = Reactor::new()?;
    /// let reader = LineReader::fifo(&path, 0o600, 4096, |line, ctx| {
    ///     assert_eq!(line, b"hello");
    ///     ctx.stop();
    /// })?;
    /// reactor.register(reader)?;
    /// // A writer comes and goes (non-blocking: the reader is already there).
    /// let mut writer = std::fs::OpenOptions::new().write(true).open(&path)?;
    /// writer.write_all(b"hello\n")?;
    /// drop(writer);
    /// reactor.run()?;
    /// assert!(!path.exists(), "removed at shutdown");
    /// # Ok(())
    /// # }
    /// ```
    pub fn fifo(
        path: impl AsRef<Path>,
        mode: u32,
        max_line: usize,
        on_line: impl FnMut(&[u8], &mut Context) + 'static,
    ) -> io::Result<LineReader> {
        let path = path.as_ref();
        let made = make_fifo(path, mode)?;
        let fd = open_fifo(path)
            .and_then(|fd| check_fifo(path, &fd, made.then_some(mode), mode).map(|()| fd))
            .inspect_err(|e| {
                // Ours, unless what is at the path now is not the FIFO we made.
                if made && !is_refusal(e) {
                    let _ = fs::remove_file(path);
                }
            })?;
        let mut reader = LineReader::new(fd, max_line, on_line).named(format!("fifo {}", path.display()));
        reader.extra_mut().made = made.then(|| MadeFifo(path.to_path_buf()));
        Ok(reader)
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
