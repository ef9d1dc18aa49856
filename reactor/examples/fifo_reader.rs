//! Prints the lines written into a named pipe (FIFO) by any number of writers,
//! one after another: `echo hello > PATH`. Creates the FIFO if it is missing
//! (and then removes it on exit); Ctrl-C or SIGTERM stops it.
//!
//! `cargo run -p reactor --example fifo_reader -- /tmp/fifo`

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use reactor::sources::{LineReader, SignalFd};
use reactor::Reactor;

fn main() -> io::Result<()> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: fifo_reader PATH"));
    };
    // Declared before the reactor, so dropped after it: on return, on error, on panic.
    let _created = create_fifo(&path)?;

    // Read *and write*. Opened read-only, the FIFO reaches end of file when its
    // last writer closes (and epoll reports EPOLLHUP every round after that): the
    // reader would remove itself and we would have to reopen the FIFO, and in
    // between a new writer finds no reader and dies of SIGPIPE. Holding a write
    // end ourselves, the FIFO never lacks a writer, so it never reaches end of
    // file and writers come and go freely. (Linux allows O_RDWR on a FIFO; POSIX
    // leaves it undefined.) The price: a last line without `\n` from one writer
    // is joined to the next writer's first line.
    let fifo = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(&path)?;
    let mut reactor = Reactor::new()?;
    reactor.register(SignalFd::new(&[libc::SIGINT, libc::SIGTERM], |_, ctx| ctx.stop())?)?;
    // A line callback can neither fail nor stop the loop; it keeps the error of a
    // broken stdout, and a hook (which has a `Context`) stops the loop for it.
    let failed: Rc<RefCell<Option<io::Error>>> = Rc::default();
    let failure = failed.clone();
    reactor.register(LineReader::new(fifo.into(), 64 * 1024, move |line| {
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(line).and_then(|()| stdout.write_all(b"\n")) {
            failure.borrow_mut().get_or_insert(e);
        }
    }))?;
    let failure = failed.clone();
    reactor.before_wait(move |ctx| {
        if failure.borrow().is_some() {
            ctx.stop();
        }
    });
    writeln!(io::stdout(), "reading {}", path.display())?;
    io::stdout().flush()?;
    reactor.run()?;
    failed.take().map_or(Ok(()), Err)
}

/// Removes the FIFO that this program created.
struct Created(PathBuf);

impl Drop for Created {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Makes a FIFO at `path`, or accepts the FIFO already there.
fn create_fifo(path: &Path) -> io::Result<Option<Created>> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == 0 {
        return Ok(Some(Created(path.to_path_buf())));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::AlreadyExists && fs::symlink_metadata(path)?.file_type().is_fifo() {
        return Ok(None); // not ours: use it, and leave it there
    }
    Err(io::Error::new(e.kind(), format!("mkfifo {}: {e}", path.display())))
}
