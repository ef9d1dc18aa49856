//! Outgoing connections (TCP and Unix, on loopback) that never block the
//! loop, and half-close both ways: a proxy built on the reactor whose
//! client ends its writing and still gets every reply.

mod util;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::sources::{Connection, ListenAddr, Listener, Output, StreamState};
use reactor::{Context, Reactor};
use util::{run_until, socketpair, within_deadline, TempDir};

/// What a connection's callbacks saw, in order.
type Seen = Rc<RefCell<Vec<String>>>;

fn journal(seen: &Seen, what: impl Into<String>) {
    seen.borrow_mut().push(what.into());
}

/// Records the connect, each line, the error and the close of `conn`.
fn recorded(conn: Connection, seen: &Seen) -> Connection {
    let (up, failed, closed) = (seen.clone(), seen.clone(), seen.clone());
    conn.on_connect(move |_, _| journal(&up, "connected"))
        .on_error(move |e, _, _| journal(&failed, format!("error {:?}: {e}", e.kind())))
        .on_close(move |_, _| journal(&closed, "closed"))
}

fn lines_to(seen: &Seen) -> impl FnMut(&[u8], &Output, &mut Context) + 'static {
    let seen = seen.clone();
    move |line, _, _| journal(&seen, String::from_utf8_lossy(line))
}

/// An upper-casing echo on a Unix listener, served by the same reactor.
fn upper_echo(reactor: &mut Reactor, path: &Path) {
    let listener = Listener::unix_accept(path, |fd, _, ctx| {
        Connection::new(fd)?
            .on_line(|line, out, ctx| drop(out.write_line(ctx, &line.to_ascii_uppercase())))
            .register(ctx)
            .map(drop)
    })
    .unwrap();
    reactor.register(listener).unwrap();
}

#[test]
fn a_tcp_connection_sends_what_was_written_before_it_was_up() {
    within_deadline(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || -> io::Result<String> {
            let (mut stream, _) = listener.accept()?;
            stream.write_all(b"welcome\n")?;
            let mut got = String::new();
            stream.read_to_string(&mut got)?; // until our shutdown_write
            Ok(got)
        });
        let mut reactor = Reactor::new().unwrap();
        let seen = Seen::default();
        let conn = Connection::tcp(addr).unwrap().on_line(lines_to(&seen));
        let out = recorded(conn, &seen).register(&mut reactor).unwrap();
        assert_eq!(out.state(), StreamState::Connecting);
        out.write_line(&mut reactor, b"written while connecting").unwrap();
        out.shutdown_write(&mut reactor); // sent once up, then our end of writing
        run_until(&mut reactor, "the welcome", |_| seen.borrow().len() == 2);
        assert_eq!(*seen.borrow(), ["connected", "welcome"]);
        assert_eq!(server.join().unwrap().unwrap(), "written while connecting\n");
        run_until(&mut reactor, "the close: both directions ended", |r| r.is_empty());
        assert_eq!(seen.borrow().last().map(String::as_str), Some("closed"));
    });
}

#[test]
fn a_unix_connection_to_an_echo_gets_its_answers() {
    within_deadline(|| {
        let dir = TempDir::new("connect-unix");
        let path = dir.path().join("echo.sock");
        let mut reactor = Reactor::new().unwrap();
        upper_echo(&mut reactor, &path);
        let seen = Seen::default();
        let conn = recorded(Connection::unix(&path).unwrap().on_line(lines_to(&seen)), &seen);
        let out = conn.register(&mut reactor).unwrap();
        out.write_line(&mut reactor, b"one").unwrap();
        out.write_line(&mut reactor, b"two").unwrap();
        run_until(&mut reactor, "both answers", |_| seen.borrow().len() == 3);
        assert_eq!(*seen.borrow(), ["connected", "ONE", "TWO"]);
    });
}

#[test]
fn a_refused_connect_goes_to_on_error_naming_the_address_then_on_close() {
    within_deadline(|| {
        // A port nobody listens on: bound, then freed.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let dir = TempDir::new("connect-refused");
        let nobody = dir.path().join("nobody.sock");
        let mut reactor = Reactor::new().unwrap();
        let (tcp, unix) = (Seen::default(), Seen::default());
        recorded(Connection::tcp(addr).unwrap().on_line(lines_to(&tcp)), &tcp)
            .register(&mut reactor)
            .unwrap();
        recorded(Connection::unix(&nobody).unwrap().on_line(lines_to(&unix)), &unix)
            .register(&mut reactor)
            .unwrap();
        run_until(&mut reactor, "both failures", |r| r.is_empty());
        let refused = format!("error ConnectionRefused: connect to {addr}: ");
        assert!(tcp.borrow()[0].starts_with(&refused), "{:?}", tcp.borrow());
        let missing = format!("error NotFound: connect to {}: ", nobody.display());
        assert!(unix.borrow()[0].starts_with(&missing), "{:?}", unix.borrow());
        for seen in [tcp, unix] {
            assert!(seen.borrow()[0].ends_with("; is the server running?"), "{:?}", seen.borrow());
            assert_eq!(seen.borrow().len(), 2, "{:?}", seen.borrow());
            assert_eq!(seen.borrow()[1], "closed");
        }
    });
}

#[test]
fn a_refused_connect_without_on_error_reaches_the_reactors_error_hook() {
    within_deadline(|| {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut reactor = Reactor::new().unwrap();
        let reported = Seen::default();
        let seen = reported.clone();
        reactor.on_error(move |name, e, _| journal(&seen, format!("{name}: {e}")));
        Connection::tcp(addr).unwrap().register(&mut reactor).unwrap();
        run_until(&mut reactor, "the failure", |r| r.is_empty());
        let reported = reported.borrow();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(reported[0].contains(&format!("connect to {addr}: ")), "{reported:?}");
    });
}

/// A Unix listener with a backlog of 0 that never accepts: one connection
/// waits in it, and the next non-blocking connect is refused with `EAGAIN`
/// at once, for as long as nobody accepts. The connection tries again
/// until its timeout, and the loop goes on meanwhile.
#[test]
fn a_unix_connect_to_a_full_backlog_times_out_without_blocking_the_loop() {
    within_deadline(|| {
        let dir = TempDir::new("connect-backlog");
        let path = dir.path().join("full.sock");
        let (listener, waiting) = unix_listener_with_a_full_backlog(&path);
        let mut reactor = Reactor::new().unwrap();
        let seen = Seen::default();
        let conn =
            Connection::unix(&path).unwrap().on_line(lines_to(&seen)).timeout(Duration::from_millis(200));
        recorded(conn, &seen).register(&mut reactor).unwrap();
        let ticks = Rc::new(RefCell::new(0));
        let count = ticks.clone();
        reactor.every(Duration::from_millis(10), move |_| *count.borrow_mut() += 1);
        let start = Instant::now();
        run_until(&mut reactor, "the timeout", |_| seen.borrow().len() == 2);
        let waited = start.elapsed();
        let expected = format!("error TimedOut: connect to {}: no answer within 200ms", path.display());
        assert_eq!(*seen.borrow(), [expected, "closed".to_string()]);
        assert!(waited >= Duration::from_millis(200), "timed out after {waited:?}");
        assert!(*ticks.borrow() >= 10, "the loop was blocked: {} ticks", ticks.borrow());
        drop((waiting, listener));
    });
}

/// A TCP listener with a backlog of 0 that never accepts, and one
/// connection in it: Linux drops the next SYN (the accept queue is full),
/// so a connect gets no answer, as a probe with a deadline shows first.
#[test]
fn a_tcp_connect_that_gets_no_answer_times_out_naming_the_address() {
    within_deadline(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: a live listening socket; listen again only changes its backlog.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0, "{}", io::Error::last_os_error());
        let addr = listener.local_addr().unwrap();
        let _waiting = TcpStream::connect(addr).unwrap(); // fills the accept queue
        let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
        assert_eq!(probe.map(drop).map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut), "SYN answered");
        let mut reactor = Reactor::new().unwrap();
        let seen = Seen::default();
        let conn = Connection::tcp(addr).unwrap().timeout(Duration::from_millis(200));
        recorded(conn, &seen).register(&mut reactor).unwrap();
        run_until(&mut reactor, "the timeout", |_| seen.borrow().len() == 2);
        let expected = format!("error TimedOut: connect to {addr}: no answer within 200ms");
        assert_eq!(*seen.borrow(), [expected, "closed".to_string()]);
    });
}

/// `listen(fd, 0)` on a Unix socket at `path`, never accepted from, and
/// the connection that fills its backlog: a further non-blocking connect is
/// refused with `EAGAIN`, as checked here.
fn unix_listener_with_a_full_backlog(path: &Path) -> (OwnedFd, UnixStream) {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    // SAFETY: a live listening socket; listen again only changes its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0, "{}", io::Error::last_os_error());
    let fd = OwnedFd::from(listener);
    let waiting = UnixStream::connect(path).unwrap(); // the one connection that fits
                                                      // SAFETY: a socket we own; a non-blocking connect returns at once.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    // SAFETY: `socket` just returned this descriptor; nobody else owns it.
    let second = unsafe { OwnedFd::from_raw_fd(raw) };
    let full = connect_unix(&second, path);
    assert_eq!(full.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock), "the backlog is not full");
    (fd, waiting)
}

fn connect_unix(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    // SAFETY: `sockaddr_un` is a plain C struct; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The peer ends its writing; with `on_end` the connection goes on
/// writing, then ends its own writing, and closes once both have ended.
#[test]
fn after_the_peers_end_of_input_writing_goes_on_until_our_shutdown_write() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut theirs = UnixStream::from(theirs);
        let mut reactor = Reactor::new().unwrap();
        let states = Seen::default();
        let (at_end, at_close) = (states.clone(), states.clone());
        let out = Connection::new(ours)
            .unwrap()
            .on_line(|line, out, ctx| out.write_line(ctx, &line.to_ascii_uppercase()).unwrap())
            .on_end(move |out, ctx| {
                journal(&at_end, format!("{:?}", out.state()));
                out.write_line(ctx, b"bye").unwrap();
                out.shutdown_write(ctx);
                journal(&at_end, format!("{:?}", out.state()));
            })
            .on_close(move |out, _| journal(&at_close, format!("{:?}", out.state())))
            .register(&mut reactor)
            .unwrap();
        theirs.write_all(b"a\nb").unwrap();
        theirs.shutdown(Shutdown::Write).unwrap();
        theirs.set_nonblocking(false).unwrap();
        theirs.set_read_timeout(Some(util::DEADLINE)).unwrap();
        let reader = thread::spawn(move || {
            let mut got = String::new();
            theirs.read_to_string(&mut got).map(|_| got)
        });
        run_until(&mut reactor, "the close", |r| r.is_empty());
        assert_eq!(reader.join().unwrap().unwrap(), "A\nB\nbye\n");
        assert_eq!(*states.borrow(), ["InputEnded", "OutputShut", "Closed"]);
        assert_eq!(out.write_line(&mut reactor, b"late").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    });
}

/// Defect C of issue 24: client -> proxy -> upper-casing echo, the proxy
/// and the echo on one reactor. The client sends five lines and shuts down
/// its writing; the proxy passes each end on (`on_end` -> `shutdown_write`)
/// and still carries every reply back. Before half-close, the proxy's
/// writes to the client failed with `BrokenPipe` once the client's input
/// ended: 0 of 5 replies came back.
#[test]
fn a_proxy_passes_the_clients_end_on_and_still_carries_every_reply_back() {
    within_deadline(|| {
        let dir = TempDir::new("proxy");
        let upstream = dir.path().join("upstream.sock");
        let mut reactor = Reactor::new().unwrap();
        upper_echo(&mut reactor, &upstream);
        let proxy = Listener::tcp_accept(([127, 0, 0, 1], 0).into(), move |fd, _, ctx| {
            let (client, up) = (Connection::new(fd)?, Connection::unix(&upstream)?);
            let (to_client, to_up) = (client.output(), up.output());
            let (end_client, end_up) = (to_client.clone(), to_up.clone());
            up.on_line(move |line, _, ctx| drop(to_client.write_line_or_pause(ctx, line, ctx.current())))
                .on_end(move |_, ctx| end_client.shutdown_write(ctx))
                .register(ctx)?;
            client
                .on_line(move |line, _, ctx| drop(to_up.write_line_or_pause(ctx, line, ctx.current())))
                .on_end(move |_, ctx| end_up.shutdown_write(ctx))
                .register(ctx)
                .map(drop)
        })
        .unwrap();
        let ListenAddr::Tcp(addr) = proxy.local_addr().clone() else { panic!("a TCP listener") };
        reactor.register(proxy).unwrap();
        let client = thread::spawn(move || -> io::Result<String> {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(util::DEADLINE))?;
            stream.write_all(b"one\ntwo\nthree\nfour\nfive\n")?;
            stream.shutdown(Shutdown::Write)?;
            let mut got = String::new();
            stream.read_to_string(&mut got)?;
            Ok(got)
        });
        run_until(&mut reactor, "the client's replies", |_| client.is_finished());
        assert_eq!(client.join().unwrap().unwrap(), "ONE\nTWO\nTHREE\nFOUR\nFIVE\n");
        // Every connection closed once both its directions had ended.
        run_until(&mut reactor, "the proxy's connections to close", |r| r.len() == 2);
    });
}

/// Issue 28's case for a connection: our end of writing first, then the
/// peer's. Nothing failed: no `on_error`; the connection reads on after its
/// shutdown, delivers the peer's last line, and closes once both ended.
#[test]
fn a_connection_that_ends_its_writing_first_reads_on_and_closes_without_error() {
    within_deadline(|| {
        let (ours, theirs) = socketpair();
        let mut theirs = UnixStream::from(theirs);
        theirs.set_nonblocking(false).unwrap();
        let mut reactor = Reactor::new().unwrap();
        let seen = Seen::default();
        let conn = recorded(Connection::new(ours).unwrap().on_line(lines_to(&seen)), &seen);
        let ended = seen.clone();
        let out = conn
            .on_end(move |out, _| journal(&ended, format!("end, {:?}", out.state())))
            .register(&mut reactor)
            .unwrap();
        out.write_line(&mut reactor, b"request").unwrap();
        out.shutdown_write(&mut reactor);
        let peer = thread::spawn(move || -> io::Result<String> {
            let mut got = String::new();
            theirs.read_to_string(&mut got)?; // to our end of writing
            theirs.write_all(b"reply\n")?;
            theirs.shutdown(Shutdown::Write)?; // then the peer's
            Ok(got)
        });
        run_until(&mut reactor, "the close", |r| r.is_empty());
        assert_eq!(peer.join().unwrap().unwrap(), "request\n");
        assert_eq!(*seen.borrow(), ["reply", "end, OutputShut", "closed"]);
    });
}
