//! Files followed as they grow (`tail -F`) and directories watched, on
//! inotify: nothing polls on a timer.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::callback::Callback;
use crate::sources::lines::READS_PER_READY;
use crate::sources::{LineReader, LineSink};
use crate::sys::{self, syscall};
use crate::{Context, Handler, Readiness};

/// What a directory watch is told of a name: created, removed, moved.
const DIR_EVENTS: u32 = libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;

/// Where a followed file is, and how far it was read.
#[derive(Debug)]
pub(crate) struct Following {
    path: PathBuf,
    /// The file's name in its directory, whose events say it may have been
    /// replaced.
    name: Vec<u8>,
    dir_watch: i32,
    file_watch: i32,
    offset: u64,
    /// The name may be another file now: look at the next end of file.
    look: bool,
    /// The name is another file now: go to it at the old one's next end.
    replaced: bool,
}

impl LineReader {
    /// A reader of the regular file at `path` that follows it as it grows,
    /// by name, as `tail -F` does, from `from` (`SeekFrom::Start(0)`: all
    /// of it; `SeekFrom::End(0)`: what is written from now on). It waits
    /// for more at the end of the file, woken by inotify (nothing polls on
    /// a timer), and reads at most four pieces of 64 KiB per round: a file
    /// far behind is caught up round by round while the loop goes on. (What
    /// inotify does not see is not followed: a file on NFS written from
    /// another machine, or one in `/proc`.)
    ///
    /// - **Truncated** (found shorter than what was read, as `> file` or a
    ///   copy-and-truncate rotation leaves it): read again from its start.
    ///   A truncation followed by writes past the point read, before the
    ///   reader looks, cannot be told from growth (nor by `tail -F`).
    /// - **Replaced** (a log rotation renames it and makes a new file at the
    ///   path): the old file is read to its end, then the new one from its
    ///   start; what is written to the old one after that is not read (nor
    ///   by `tail -F`). **Removed**: the old file is still read (a writer
    ///   may hold it), and a file made again at the path is followed from
    ///   its start. A new file that cannot be read ends the reader, through
    ///   [`on_error`](LineReader::on_error).
    ///   At each change, a last line without `\n` of the old content is
    ///   delivered as a line, as at the end of a file.
    /// - It never ends by itself: a part of a line held when it is removed
    ///   or shut down goes to [`on_unfinished`](LineReader::on_unfinished).
    ///
    /// A [`LineReader`] in all else (named `follow PATH`): the same
    /// callbacks, pausable. Refused: a path that is not a regular file, and
    /// one whose directory cannot be watched; unlike `tail -F`, a path that
    /// does not exist yet (`NotFound`): to wait for it, watch its directory
    /// with a [`DirWatch`] and follow the file once it is
    /// [`Created`](Change::Created) or [`MovedIn`](Change::MovedIn). Out of watches (`ENOSPC`),
    /// the error names the path and the limit to raise,
    /// `fs.inotify.max_user_watches`.
    ///
    /// ```
    /// use std::io::{SeekFrom, Write};
    /// use reactor::{sources::LineReader, Reactor};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let log = std::env::temp_dir().join(format!("reactor-doc-follow-{}", std::process::id()));
    /// std::fs::write(&log, "there before\n")?;
    /// let lines = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    /// let seen = lines.clone();
    /// let mut reactor = Reactor::new()?;
    /// let on_line = move |line: &[u8], _: &mut reactor::Context| seen.borrow_mut().push(line.to_vec());
    /// reactor.register(LineReader::follow(&log, SeekFrom::End(0), 1024, on_line)?)?;
    /// std::fs::OpenOptions::new().append(true).open(&log)?.write_all(b"new\n")?;
    /// while lines.borrow().is_empty() {
    ///     reactor.run_once(None)?; // woken by inotify
    /// }
    /// assert_eq!(*lines.borrow(), [b"new"]);
    /// # std::fs::remove_file(&log)
    /// # }
    /// ```
    pub fn follow(
        path: impl AsRef<Path>,
        from: SeekFrom,
        max_line: usize,
        on_line: impl FnMut(&[u8], &mut Context) + 'static,
    ) -> io::Result<LineReader> {
        let path = path.as_ref();
        let named = |e: io::Error| io::Error::new(e.kind(), format!("follow {}: {e}", path.display()));
        let no_name = || named(io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"));
        let name = path.file_name().ok_or_else(no_name)?;
        let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let inotify = inotify().map_err(named)?;
        let dir_watch = add_watch(&inotify, dir, DIR_EVENTS | libc::IN_ONLYDIR).map_err(named)?;
        let mut file = open_regular(path).map_err(named)?;
        let offset = file.seek(from).map_err(named)?;
        let file_watch = watch_file(&inotify, &file).map_err(named)?;
        // Lines there already: a read of one byte (that does not move the
        // offset) is an access, which calls the reader in its first round.
        file.read_at(&mut [0], offset).map_err(named)?;
        let mut reader =
            LineReader::new(file.into(), max_line, on_line).named(format!("follow {}", path.display()));
        reader.extra_mut().instead = Some(inotify);
        let name = name.as_bytes().to_vec();
        let (look, replaced) = (false, false);
        let follow =
            Following { path: path.to_path_buf(), name, dir_watch, file_watch, offset, look, replaced };
        reader.extra_mut().follow = Some(follow);
        Ok(reader)
    }
}

impl<S: LineSink> LineReader<S> {
    /// A round of a followed file: the events (which say whether the name
    /// may be another file now), then up to four pieces of the file. Each
    /// read that brings bytes makes inotify report an access to the file,
    /// which wakes the reader next round: a file read in part is read on
    /// without a timer, and one read to its end waits for a change.
    pub(crate) fn follow_round(&mut self, ctx: &mut Context) -> io::Result<()> {
        let Some(mut follow) = self.extra.as_mut().and_then(|extra| extra.follow.take()) else {
            return Ok(());
        };
        let result = self.follow_some(&mut follow, ctx);
        self.extra_mut().follow = Some(follow);
        // A followed file has no end: a part of a line held at removal is unfinished.
        self.at_end = false;
        result.inspect_err(|e| self.sink.error(e, ctx))
    }

    fn follow_some(&mut self, follow: &mut Following, ctx: &mut Context) -> io::Result<()> {
        if let Some(inotify) = self.instead() {
            read_events(inotify.as_fd(), |wd, mask, name| {
                let about_name = wd == follow.dir_watch && name == follow.name;
                follow.look |= about_name || mask & libc::IN_Q_OVERFLOW != 0;
            })?;
        }
        let mut reads = 0;
        // Not once a line callback paused us: the access just reported wakes us after the resume.
        while reads < READS_PER_READY && ctx.current_is_watched() {
            match self.read_once(ctx)? {
                0 if self.next_file(follow, ctx)? => {}
                0 => break,
                n => {
                    follow.offset += n as u64;
                    reads += 1;
                }
            }
        }
        Ok(())
    }

    /// At the end of the file: starts over if it was truncated; goes to the
    /// file now at the path if it was replaced and has been read to its end
    /// since. Returns whether to read again.
    fn next_file(&mut self, follow: &mut Following, ctx: &mut Context) -> io::Result<bool> {
        let here = sys::fstat(self.fd.as_fd())?;
        if (here.st_size as u64) < follow.offset {
            // SAFETY: `fd` is open; an offset of 0 from the start is valid.
            syscall!(lseek(self.fd.as_raw_fd(), 0, libc::SEEK_SET))?;
            follow.offset = 0;
        } else if follow.replaced {
            follow.replaced = false;
            let file = match open_regular(&follow.path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false), // gone again
                file => file?,
            };
            if let Some(inotify) = self.instead() {
                // SAFETY: integer arguments only; a watch gone already is EINVAL, and harmless.
                let _ = unsafe { libc::inotify_rm_watch(inotify.as_raw_fd(), follow.file_watch) };
                follow.file_watch = watch_file(inotify, &file)?;
            }
            (self.fd, follow.offset) = (file.into(), 0);
        } else if mem::take(&mut follow.look) {
            let now = fs::metadata(&follow.path);
            follow.replaced = now.is_ok_and(|m| (m.dev(), m.ino()) != (here.st_dev, here.st_ino));
            // Read the old file once more: what was written before the new one came.
            return Ok(follow.replaced);
        } else {
            return Ok(false);
        }
        // The old content ended here: its last line without `\n` is a line.
        let partial = mem::take(&mut self.partial);
        if !partial.is_empty() {
            self.sink.line(&partial, ctx);
        }
        Ok(true)
    }
}

/// What happened to a name in a directory that a [`DirWatch`] watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A file, directory or other object was made at this path.
    Created(PathBuf),
    /// What was at this path was removed.
    Removed(PathBuf),
    /// What was at this path was renamed away (within the directory, a
    /// [`MovedIn`](Change::MovedIn) of its new name follows).
    MovedOut(PathBuf),
    /// Something was renamed to this path.
    MovedIn(PathBuf),
    /// The kernel's queue of events overflowed
    /// (`fs.inotify.max_queued_events`): some changes were lost; read the
    /// directory again to know what is there.
    Overflow,
}

/// Watches a directory (not its subdirectories) on inotify, and reports
/// each name created, removed and moved in or out, in order, to a callback,
/// with the [`Context`] (whose [`current`](Context::current) is the watch's
/// token). One read of inotify's events per round, a bounded batch. When
/// the directory itself goes (removed, or its file system unmounted), the
/// watch removes itself.
///
/// ```
/// use reactor::sources::{Change, DirWatch};
/// use reactor::Reactor;
///
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("reactor-doc-dirwatch-{}", std::process::id()));
/// std::fs::create_dir(&dir)?;
/// let mut reactor = Reactor::new()?;
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let changes = seen.clone();
/// reactor.register(DirWatch::new(&dir, move |change, _| changes.borrow_mut().push(change))?)?;
/// std::fs::write(dir.join("new"), b"")?;
/// std::fs::rename(dir.join("new"), dir.join("old"))?;
/// while seen.borrow().len() < 3 {
///     reactor.run_once(None)?;
/// }
/// let (new, old) = (dir.join("new"), dir.join("old"));
/// assert_eq!(*seen.borrow(), [Change::Created(new.clone()), Change::MovedOut(new), Change::MovedIn(old)]);
/// # std::fs::remove_dir_all(&dir)
/// # }
/// ```
pub struct DirWatch {
    inotify: OwnedFd,
    dir: PathBuf,
    name: String,
    on_change: Callback<Change>,
}

impl DirWatch {
    /// Watches the directory at `dir`. Refused: a path that is not a
    /// directory; out of watches (`ENOSPC`), the error names the path and
    /// the limit to raise, `fs.inotify.max_user_watches`.
    pub fn new(
        dir: impl AsRef<Path>,
        on_change: impl FnMut(Change, &mut Context) + 'static,
    ) -> io::Result<DirWatch> {
        let dir = dir.as_ref().to_path_buf();
        let name = format!("dir watch {}", dir.display());
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{name}: {e}"));
        let inotify = inotify().map_err(named)?;
        add_watch(&inotify, &dir, DIR_EVENTS | libc::IN_ONLYDIR).map_err(named)?;
        Ok(DirWatch { inotify, dir, name, on_change: Box::new(on_change) })
    }
}

impl Handler for DirWatch {
    fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let (dir, on_change) = (&self.dir, &mut self.on_change);
        read_events(self.inotify.as_fd(), |_, mask, name| {
            let path = || dir.join(OsStr::from_bytes(name));
            let is = |bit: u32| mask & bit != 0;
            let change = if is(libc::IN_CREATE) {
                Change::Created(path())
            } else if is(libc::IN_DELETE) {
                Change::Removed(path())
            } else if is(libc::IN_MOVED_FROM) {
                Change::MovedOut(path())
            } else if is(libc::IN_MOVED_TO) {
                Change::MovedIn(path())
            } else if is(libc::IN_Q_OVERFLOW) {
                Change::Overflow
            } else {
                if is(libc::IN_IGNORED) {
                    ctx.remove_self(); // the directory went
                }
                return;
            };
            on_change(change, ctx);
        })
    }
}

impl fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirWatch").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A new inotify instance (non-blocking, close-on-exec).
fn inotify() -> io::Result<OwnedFd> {
    // SAFETY: integer flags only; returns a new descriptor or -1.
    match syscall!(inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC)) {
        // SAFETY: `inotify_init1` just returned this descriptor; nobody else owns it.
        Ok(raw) => Ok(unsafe { OwnedFd::from_raw_fd(raw) }),
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => Err(io::Error::new(
            e.kind(),
            format!(
                "{e}: this user has all the inotify instances allowed (raise fs.inotify.max_user_instances)"
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Watches `path` for `mask`; returns the watch's number. Out of watches,
/// says which limit to raise.
fn add_watch(inotify: &OwnedFd, path: &Path, mask: u32) -> io::Result<i32> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    syscall!(inotify_add_watch(inotify.as_raw_fd(), c_path.as_ptr(), mask)).map_err(|e| {
        let remedy = match e.raw_os_error() {
            Some(libc::ENOSPC) => {
                ": this user has all the inotify watches allowed; raise the limit (sysctl fs.inotify.max_user_watches=N)"
            }
            _ => "",
        };
        io::Error::new(e.kind(), format!("cannot watch {}: {e}{remedy}", path.display()))
    })
}

/// Watches the open file itself, whatever its name becomes: its growth
/// (`IN_MODIFY`), and the reads that bring bytes (`IN_ACCESS`), ours
/// included, which is how a reader behind is called again.
fn watch_file(inotify: &OwnedFd, file: &impl AsRawFd) -> io::Result<i32> {
    let magic = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    add_watch(inotify, &magic, libc::IN_MODIFY | libc::IN_ACCESS)
}

/// Opens a regular file to read; anything else is refused (`O_NONBLOCK`:
/// a FIFO at the path does not block the open).
fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        let why = "not a regular file (LineReader::new reads streams)";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    Ok(file)
}

/// Reads one batch of inotify events, if any wait, and hands each to `f`
/// with its watch, its mask and its name (empty for none).
fn read_events(inotify: BorrowedFd<'_>, mut f: impl FnMut(i32, u32, &[u8])) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is writable for its whole length.
    let n = match syscall!(read(inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        n => n? as usize,
    };
    let header = mem::size_of::<libc::inotify_event>();
    let mut at = 0;
    while at + header <= n {
        // SAFETY: the kernel wrote a whole event at `at`; `read_unaligned` needs no alignment.
        let event: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
        let name = &buf[at + header..(at + header + event.len as usize).min(n)];
        f(event.wd, event.mask, &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]);
        at += header + event.len as usize;
    }
    Ok(())
}
