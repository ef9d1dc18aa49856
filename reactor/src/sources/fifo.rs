//! A named pipe (FIFO) read as lines, by any number of writers in turn.

use std::ffi::CString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sources::LineReader;
use crate::sys::syscall;
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
    /// says so). Anything else at `path` is an
    /// error (`AlreadyExists`). Each line (or piece of at most `max_line`
    /// bytes) goes to `on_line`.
    pub fn create(
        path: impl AsRef<Path>,
        mode: u32,
        max_line: usize,
        on_line: impl FnMut(&[u8], &mut Context<'_>) + 'static,
    ) -> io::Result<Fifo> {
        let path = path.as_ref();
        let guard = Unlink { path: path.to_path_buf(), unlink: make_fifo(path, mode)? };
        // Should the open fail, dropping the guard removes what we made.
        let fd = open_fifo(path)?;
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
    pub fn on_close(self, on_close: impl FnMut(&mut Context<'_>) + 'static) -> Fifo {
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

    fn on_ready(&mut self, readiness: Readiness, ctx: &mut Context<'_>) -> io::Result<()> {
        self.reader.on_ready(readiness, ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context<'_>) {
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

/// `mkfifo` with the exact mode; `Ok(false)` if a FIFO was already there.
fn make_fifo(path: &Path, mode: u32) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    match syscall!(mkfifo(c_path.as_ptr(), mode as libc::mode_t)) {
        Ok(_) => {
            // mkfifo applies the umask; the caller asked for this mode.
            if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
                let _ = fs::remove_file(path);
                return Err(e);
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(path)?.file_type().is_fifo() {
                Ok(false)
            } else {
                Err(io::Error::new(e.kind(), format!("{} exists and is not a FIFO", path.display())))
            }
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("mkfifo {}: {e}", path.display()))),
    }
}

fn open_fifo(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    // std opens with O_CLOEXEC; O_RDWR never blocks on a FIFO.
    let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    Ok(file.into())
}
