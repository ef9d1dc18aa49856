//! The line-based sources: stdin and the clients of the listening socket.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use reactor::sources::{LineReader, LineSink, Listener, Peer};
use reactor::{Handler, Reactor};

use crate::args::Listen;
use crate::output::SharedOutput;
use crate::stats::Source;

/// Registers a reader for stdin. A descriptor that epoll refuses (a regular
/// file, `/dev/null`) never blocks: it is read to its end at the start of the
/// first round, after the queue has printed what it held, and the server
/// goes on. A closed stdin is skipped.
pub fn register_stdin(reactor: &mut Reactor, output: &SharedOutput, max_line: usize) -> io::Result<()> {
    // A duplicate, so that the reader may close it at end of file while fd 0
    // stays open (and is never switched to non-blocking: the terminal's open
    // file is shared with the shell).
    let fd = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            log::debug!("stdin is closed; not reading it");
            return Ok(());
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("stdin: {e}"))),
    };
    let reader = line_reader(fd, Source::Stdin, "stdin".to_string(), output, max_line);
    match reactor.register(reader) {
        Ok(_) => Ok(()),
        Err(e) if e.is_unpollable() => {
            log::debug!("stdin cannot be polled (a file or /dev/null); reading it directly");
            let mut reader = Some(e.handler);
            reactor.before_wait(move |_| {
                if let Some(mut reader) = reader.take() {
                    if let Err(e) = reader.read_to_end() {
                        log::error!("stdin: {e}");
                    }
                }
            });
            Ok(())
        }
        Err(e) => Err(io::Error::new(e.error.kind(), format!("stdin: {}", e.error))),
    }
}

/// Binds the listening socket, whose clients each get a line reader
/// tagged `tcp[IP:PORT]` or `unix[N]`.
pub fn listen(listen: &Listen, output: &SharedOutput, max_line: usize) -> io::Result<Option<Listener>> {
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
    let (listener, target) = match listen {
        Listen::None => return Ok(None),
        Listen::Tcp(addr) => (Listener::tcp(*addr, connection), addr.to_string()),
        Listen::Unix(path) => (Listener::unix(path, connection), format!("unix:{}", path.display())),
    };
    listener.map(Some).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {target}: {e}")))
}

/// Where a stream's lines go: printed as `TAG: LINE`, and counted. One
/// object per connection, the tag allocated once.
struct Printer {
    output: SharedOutput,
    source: Source,
    tag: Box<str>,
}

impl LineSink for Printer {
    fn line(&mut self, line: &[u8]) {
        self.output.borrow_mut().line(self.source, &self.tag, line);
    }

    fn closed(&mut self) {
        self.output.borrow_mut().counters.source(self.source).connections_open -= 1;
    }

    fn error(&mut self, _: &io::Error) {
        self.output.borrow_mut().counters.source(self.source).errors += 1;
    }

    fn name(&self) -> &str {
        &self.tag
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
    {
        let mut out = output.borrow_mut();
        let counts = out.counters.source(source);
        counts.connections_open += 1;
        counts.connections_total += 1;
    }
    let printer = Printer { output: output.clone(), source, tag: tag.into_boxed_str() };
    LineReader::with_sink(fd, max_line, printer)
}
