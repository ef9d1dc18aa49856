//! Prints the lines written into a named pipe (FIFO) by any number of writers,
//! one after another: `echo hello > PATH`. Creates the FIFO if it is missing
//! (and then removes it on exit); Ctrl-C or SIGTERM stops it.
//!
//! `cargo run -p reactor --example fifo_reader -- [PATH]`
//!
//! Without PATH, the FIFO is `fifo_reader.fifo` in `$XDG_RUNTIME_DIR` (a
//! directory only this user may write), or else in a new directory of mode
//! 0700 under `/tmp` (removed on exit; it fails if the name exists): a path no
//! other user can have taken first. A PATH in a directory that others may
//! write (`/tmp/fifo`) can be: `LineReader::fifo` then refuses another user's
//! FIFO, and one of this user that others may read, naming its owner and mode.

use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use reactor::sources::{LineReader, Signal, SignalFd};
use reactor::Reactor;

fn main() -> io::Result<()> {
    let (path, private_dir) = match std::env::args_os().nth(1) {
        Some(path) => (PathBuf::from(path), None),
        None => default_path()?,
    };
    let result = read(&path);
    // The FIFO is gone with the reactor: its directory can go too.
    if let Some(dir) = private_dir {
        std::fs::remove_dir(&dir)?;
    }
    result
}

fn read(path: &Path) -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |_, ctx| ctx.stop())?)?;
    // Writers come and go: the reader holds a write end itself, so it never sees end
    // of file, and it removes the FIFO at shutdown if it made it.
    reactor.register(LineReader::fifo(path, 0o600, 64 * 1024, |line, ctx| {
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(line).and_then(|()| stdout.write_all(b"\n")) {
            eprintln!("stdout: {e}");
            ctx.stop();
        }
    })?)?;
    println!("reading {}", path.display());
    reactor.run()
}

/// `$XDG_RUNTIME_DIR/fifo_reader.fifo`, or `fifo_reader.fifo` in a new
/// directory `/tmp/fifo_reader.PID` (mode 0700), returned to be removed.
fn default_path() -> io::Result<(PathBuf, Option<PathBuf>)> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        return Ok((PathBuf::from(dir).join("fifo_reader.fifo"), None));
    }
    // `create` fails on a name that exists: a directory another user made first is never used.
    let dir = std::env::temp_dir().join(format!("fifo_reader.{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok((dir.join("fifo_reader.fifo"), Some(dir)))
}
