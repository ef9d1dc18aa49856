//! The line-based sources: stdin and the clients of the listening socket.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use reactor::sources::{LineReader, LineSink, Listener, Peer};
use reactor::{Context, Handler, Reactor};

use crate::args::Listen;
use crate::context;
use crate::output::SharedOutput;
use crate::stats::Source;

/// Registers a reader for stdin. A descriptor that epoll refuses (a regular
/// file, `/dev/null`, `/dev/zero`) never blocks, but may never end: it is
/// read one chunk per round ([`LineReader::for_any_fd`]), after the queue
/// has printed what it held, so the server stays responsive whatever it is.
/// (A closed stdin is `/dev/null` by then: Rust's runtime reopens closed
/// standard descriptors on it before `main`.)
pub fn register_stdin(reactor: &mut Reactor, output: &SharedOutput, max_line: usize) -> io::Result<()> {
    // A duplicate, so that the reader may close it at end of file while fd 0
    // stays open (and is never switched to non-blocking: the terminal's open
    // file is shared with the shell).
    let stdin = |e| context("stdin", e);
    let fd = io::stdin().as_fd().try_clone_to_owned().map_err(stdin)?;
    let reader = line_reader(fd, Source::Stdin, "stdin".to_string(), output, max_line).for_any_fd()?;
    reactor.register(reader).map(drop).map_err(io::Error::from)
}

/// Binds the listening socket, whose clients each get a line reader
/// tagged `tcp[IP:PORT]` or `unix[N]`.
/// A Unix socket's file gets the write bits of `mode` (connecting needs
/// write permission), and the owner's read and write.
pub fn listen(
    listen: &Listen,
    mode: libc::mode_t,
    output: &SharedOutput,
    max_line: usize,
) -> io::Result<Option<Listener>> {
    let output = output.clone();
    let unix_clients = Rc::new(Cell::new(0u64));
    let connection = move |fd, peer| -> Box<dyn Handler> {
        let (source, tag) = match peer {
            Peer::Tcp(addr) => (Source::Tcp, format!("tcp[{addr}]")),
            Peer::Unix => {
                unix_clients.set(unix_clients.get() + 1);
                (Source::Unix, format!("unix[{}]", unix_clients.get()))
            }
        };
        Box::new(line_reader(fd, source, tag, &output, max_line))
    };
    // The listener's errors name the address, and what to do if it is in use.
    match listen {
        Listen::None => Ok(None),
        Listen::Tcp(addr) => Listener::tcp(*addr, connection).map(Some),
        Listen::Unix(path) => bind_unix(path, mode & 0o022 | 0o600, connection).map(Some),
    }
}

/// Binds a Unix socket whose file has exactly `mode`. The server is one
/// thread, so the umask may be narrowed around `bind`: the file never
/// exists with wider permissions, even for an instant.
fn bind_unix(
    path: &std::path::Path,
    mode: libc::mode_t,
    connection: impl FnMut(OwnedFd, Peer) -> Box<dyn Handler> + 'static,
) -> io::Result<Listener> {
    // SAFETY: plain call; the previous mask is restored below.
    let previous = unsafe { libc::umask(0o177) };
    let listener = Listener::unix(path, connection);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let listener = listener?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| context(format_args!("cannot listen on unix:{}: chmod", path.display()), e))?;
    Ok(listener)
}

/// Where a stream's lines go: printed as `TAG: LINE`, and counted. One
/// object per connection, its prefix `TAG: ` allocated once.
struct Printer {
    output: SharedOutput,
    source: Source,
    prefix: Box<str>,
}

impl LineSink for Printer {
    fn line(&mut self, line: &[u8], _: &mut Context) {
        self.output.borrow_mut().line(self.source, &self.prefix, line);
    }

    fn closed(&mut self, _: &mut Context) {
        self.output.borrow_mut().connection_closed(self.source);
    }

    /// A client still connected at shutdown: what it sent is printed.
    fn unfinished(&mut self, partial: &[u8], ctx: &mut Context) {
        self.line(partial, ctx);
    }

    fn error(&mut self, _: &io::Error, _: &mut Context) {
        self.output.borrow_mut().source_failed(self.source);
    }

    /// The tag: the prefix without its `: `.
    fn name(&self) -> &str {
        &self.prefix[..self.prefix.len() - 2]
    }
}

/// A reader that prints each line tagged `TAG: ` and keeps the source's
/// connection and error counts.
fn line_reader(
    fd: OwnedFd,
    source: Source,
    tag: String,
    output: &SharedOutput,
    max_line: usize,
) -> LineReader<Printer> {
    output.borrow_mut().connection_opened(source);
    let printer = Printer { output: output.clone(), source, prefix: format!("{tag}: ").into_boxed_str() };
    LineReader::with_sink(fd, max_line, printer)
}
