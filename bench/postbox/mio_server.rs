//! The postbox server on mio: the comparison for our reactor.
//!
//! It runs the server's own code, from the `server` library, wherever the
//! event loop is not involved: the command line (`server::args`), the
//! queue's creation, adoption, locking, drain and shutdown
//! (`server::queue::ServerQueue`: `open`, `drain`, `on_shutdown`), the output
//! with its escaping, counters and journal (`server::output`, `server::escape`), and
//! the statistics published once per round (`server::stats`). What differs
//! is the loop and what mio asks of its users:
//!
//! - mio is edge-triggered only, so a source must be read until `WouldBlock`
//!   or it is never reported again. Connections are read that way. The queue
//!   keeps the server's bounds per turn (`TURN_MESSAGES`, `TURN_BYTES`);
//!   when a turn ends before `EAGAIN`, the next poll does not wait and the
//!   queue gets another turn, which is what level-triggering gives our
//!   reactor for free.
//! - The listener is bound with std and then given the `SOMAXCONN` backlog
//!   (mio's `TcpListener::bind` asks for 128, which drops SYNs when a
//!   thousand clients connect at once).
//! - Signals come from a signalfd registered as a `SourceFd`, as in ours.
//! - stdin is not read (the benchmark gives both servers `/dev/null`), only
//!   TCP is offered for `--listen`, and only epoll for `--notify`.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;
use std::{mem, ptr};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use reactor::sources::split_lines;
use reactor::{Handler, StopFlag};
use slab::Slab;

use server::args::{self, Command, Config, Listen};
use server::lifecycle::Lifecycle;
use server::output::{Output, SharedOutput};
use server::queue::{Notify, QueueSpec, ServerQueue, TURN_MESSAGES};
use server::stats::{Source, StatsShm};
use server::STOP_SIGNALS;

const SIGNALS: Token = Token(usize::MAX);
const QUEUE: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// Events per poll: the same as ours. (A queue turn is bounded by the
/// server's own `drain`, [`TURN_MESSAGES`] and its byte bound.)
const EVENTS: usize = 256;

/// One read buffer for every connection, as in ours: a pipe's capacity.
const CHUNK: usize = 64 * 1024;

/// `--role mio-server ARGS`: the server's own command line.
pub fn main(args: &[String]) -> ExitCode {
    let config = match args::parse(args.iter().cloned(), None) {
        Ok(Command::Run(config)) => config,
        _ => {
            eprintln!("mio-server: bad arguments {args:?}");
            return ExitCode::from(2);
        }
    };
    match MioServer::start(&config).and_then(MioServer::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            ExitCode::FAILURE
        }
    }
}

struct MioServer {
    poll: Poll,
    output: SharedOutput,
    stats: StatsShm,
    signals: OwnedFd,
    queue: ServerQueue,
    /// The last turn ended at its bound, not at `EAGAIN`: more is waiting,
    /// and no new edge will say so.
    queue_pending: bool,
    listener: Option<TcpListener>,
    connections: Slab<Connection>,
    scratch: Vec<u8>,
    max_line: usize,
    stopping: bool,
}

/// A client connection: its stream, its output prefix `tcp[PEER]: ` and a partial line.
struct Connection {
    stream: TcpStream,
    prefix: String,
    partial: Vec<u8>,
}

impl MioServer {
    fn start(config: &Config) -> io::Result<MioServer> {
        let poll = Poll::new()?;
        let signals = signal_fd(&STOP_SIGNALS)?;
        poll.registry().register(&mut SourceFd(&signals.as_raw_fd()), SIGNALS, Interest::READABLE)?;
        let listener = match &config.listen {
            Listen::Tcp(addr) => Some(listen(*addr)?),
            Listen::None => None,
            Listen::Unix(_) => return Err(io::Error::other("the mio server only listens on TCP")),
        };
        if let Some(listener) = &listener {
            eprintln!("[INFO] listening on {}", listener.local_addr()?);
        }
        // No reactor here, so no stop flag that a stop raises: the output
        // waits for a full stdout as long as a server that is not stopping.
        let output =
            Output::stdout(Lifecycle::new(StopFlag::never()), &STOP_SIGNALS, config.message_size as usize);
        let spec = QueueSpec {
            name: config.queue.clone(),
            max_messages: config.max_messages,
            message_size: config.message_size,
            mode: config.mode,
        };
        if config.notify != Notify::Epoll {
            return Err(io::Error::other("the mio server only watches the queue with epoll"));
        }
        let (queue, _) =
            ServerQueue::open(&spec, Notify::Epoll, output.clone(), Lifecycle::new(StopFlag::never()))?;
        // The journal as ours keeps it, so that ours / mio measures the loop alone.
        output.borrow_mut().open_journal(&config.queue, config.message_size as usize)?;
        let queue_fd = queue.queue().as_raw_fd();
        poll.registry().register(&mut SourceFd(&queue_fd), QUEUE, Interest::READABLE)?;
        let stats = StatsShm::create(
            &config.queue,
            config.mode,
            queue.max_messages(),
            Lifecycle::new(StopFlag::never()),
        )?;
        let mut server = MioServer {
            poll,
            output,
            stats,
            signals,
            queue,
            // An adopted queue may hold messages and will raise no edge.
            queue_pending: true,
            listener,
            connections: Slab::new(),
            scratch: vec![0; CHUNK],
            max_line: config.message_size as usize,
            stopping: false,
        };
        if let Some(listener) = &mut server.listener {
            server.poll.registry().register(listener, LISTENER, Interest::READABLE)?;
        }
        eprintln!("[INFO] ready: queue {} (mio)", config.queue);
        Ok(server)
    }

    /// Publish and flush, wait, dispatch; until a signal. Then the queue's
    /// own shutdown.
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        while !self.stopping {
            let mut output = self.output.borrow_mut();
            self.stats.publish(output.counters());
            if output.flush().is_err() {
                break;
            }
            drop(output);
            let timeout = self.queue_pending.then_some(Duration::ZERO);
            match self.poll.poll(&mut events, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => result?,
            }
            let mut queue_ready = mem::take(&mut self.queue_pending);
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.read_signals()?,
                    QUEUE => queue_ready = true,
                    LISTENER => self.accept(),
                    token => self.read_connection(token),
                }
            }
            if queue_ready {
                self.drain_queue()?;
            }
        }
        self.shut_down();
        Ok(())
    }

    /// One turn at the queue, with the server's own drain and bounds.
    fn drain_queue(&mut self) -> io::Result<()> {
        if self.queue.drain(TURN_MESSAGES)?.more {
            // Stopped at the bound: more may wait, and no new edge will say so.
            self.queue_pending = true;
        }
        Ok(())
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else { return };
        loop {
            match listener.accept() {
                Ok((stream, peer)) => match add_connection(&self.poll, &mut self.connections, stream, peer) {
                    Ok(()) => {
                        self.output.borrow_mut().connection_opened(Source::Tcp);
                    }
                    Err(e) => eprintln!("[ERROR] tcp[{peer}]: {e}"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("[WARN] accept: {e}");
                    if e.kind() != io::ErrorKind::ConnectionAborted && e.kind() != io::ErrorKind::Interrupted
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Reads until `WouldBlock`, printing each line; removes the connection
    /// at end of file or on an error.
    fn read_connection(&mut self, token: Token) {
        let Some(conn) = self.connections.get_mut(token.0) else { return };
        let mut output = self.output.borrow_mut();
        let mut on_line = |line: &[u8]| output.line(Source::Tcp, &conn.prefix, line);
        let mut on_error = false;
        let open = loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => break false,
                Ok(n) => split_lines(&self.scratch[..n], &mut conn.partial, self.max_line, &mut on_line),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != io::ErrorKind::ConnectionReset {
                        eprintln!("[ERROR] {}{e}", conn.prefix);
                    }
                    on_error = true;
                    break false;
                }
            }
        };
        if on_error {
            output.source_failed(Source::Tcp);
        }
        drop(output);
        if !open {
            self.close(token);
        }
    }

    fn close(&mut self, token: Token) {
        let mut conn = self.connections.remove(token.0);
        let mut output = self.output.borrow_mut();
        if !conn.partial.is_empty() {
            output.line(Source::Tcp, &conn.prefix, &conn.partial);
        }
        output.connection_closed(Source::Tcp);
        drop(output);
        if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
            eprintln!("[WARN] {}deregister: {e}", conn.prefix);
        }
    }

    fn read_signals(&mut self) -> io::Result<()> {
        // SAFETY: `signalfd_siginfo` is a plain C struct; all-zero is valid.
        let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is writable for `size` bytes.
            let n = unsafe { libc::read(self.signals.as_raw_fd(), ptr::addr_of_mut!(info).cast(), size) };
            if n == size as isize {
                self.stopping = true;
                continue;
            }
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(()),
                io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
    }

    /// As ours: connections end with their partial line, then the queue is
    /// unlinked and drained by the server's own shutdown hook.
    fn shut_down(mut self) {
        let tokens: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in tokens {
            self.close(Token(key));
        }
        self.queue.on_shutdown();
        let _ = self.output.borrow_mut().finish();
    }
}

fn add_connection(
    poll: &Poll,
    connections: &mut Slab<Connection>,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> io::Result<()> {
    let entry = connections.vacant_entry();
    poll.registry().register(&mut stream, Token(entry.key()), Interest::READABLE)?;
    entry.insert(Connection { stream, prefix: format!("tcp[{peer}]: "), partial: Vec::new() });
    Ok(())
}

/// A listener with the `SOMAXCONN` backlog.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: plain call on an open socket; a second listen() only changes the backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), libc::SOMAXCONN) } == -1 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener))
}

/// Blocks `signals` and returns a non-blocking signalfd that reads them.
fn signal_fd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: `sigset_t` is a plain C bit set; `sigemptyset` initialises it.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is writable and the signals are valid numbers; the old
    // mask is not wanted. No other thread exists yet.
    let fd = unsafe {
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `signalfd` just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
