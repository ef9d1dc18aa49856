//! Every descriptor the reactor and its sources create is close-on-exec, so
//! nothing leaks into child processes, and non-blocking where it is read,
//! so that a spurious wake-up never blocks the loop. (The signalfd is
//! checked in `tests/signals.rs`, which may block signals.)

mod util;

use std::cell::RefCell;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use reactor::sources::{DirWatch, LineReader, ListenAddr, Listener, Peer, Timer};
use reactor::{Handler, Reactor};
use util::{eventfd, is_cloexec, is_nonblocking, run_until, Journal, Probe, TempDir};

#[test]
fn epoll_descriptor_is_close_on_exec() {
    let _reactor = Reactor::new().unwrap();
    // The reactor does not show its epoll descriptor: look at every one in
    // the process. Other tests' reactors may come and go meanwhile; they were
    // made the same way, so any of them will do.
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let Some(number) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        if target.to_str() != Some("anon_inode:[eventpoll]") {
            continue;
        }
        // SAFETY: only the flags are read; if the descriptor was closed
        // meanwhile, `fcntl` fails with EBADF and it is skipped.
        let flags = unsafe { libc::fcntl(number, libc::F_GETFD) };
        if flags >= 0 {
            assert!(flags & libc::FD_CLOEXEC != 0, "epoll descriptor {number} lacks FD_CLOEXEC");
            seen += 1;
        }
    }
    assert!(seen >= 1, "found the reactor's epoll descriptor");
}

#[test]
fn timer_descriptor_is_close_on_exec_and_non_blocking() {
    for timer in
        [Timer::once(Duration::from_secs(60), |_, _| {}), Timer::every(Duration::from_secs(60), |_, _| {})]
    {
        let timer = timer.unwrap();
        assert_flags(timer.fd(), "timerfd");
    }
}

#[test]
fn tcp_listener_and_its_connections_are_close_on_exec_and_non_blocking() {
    let (listener, checked) = checking_listener(|factory| Listener::tcp(([127, 0, 0, 1], 0).into(), factory));
    assert_flags(listener.fd(), "TCP listener");
    let ListenAddr::Tcp(addr) = listener.local_addr().clone() else { panic!("a TCP listener") };
    let mut reactor = Reactor::new().unwrap();
    reactor.register(listener).unwrap();

    let _client = TcpStream::connect(addr).unwrap();
    run_until(&mut reactor, "the connection", |_| !checked.borrow().is_empty());
    assert_eq!(*checked.borrow(), [(true, true)], "(CLOEXEC, O_NONBLOCK) of the accepted connection");
}

#[test]
fn unix_listener_and_its_connections_are_close_on_exec_and_non_blocking() {
    let dir = TempDir::new("descriptors");
    let path = dir.path().join("socket");
    let (listener, checked) = checking_listener(|factory| Listener::unix(&path, factory));
    assert_flags(listener.fd(), "Unix listener");
    let mut reactor = Reactor::new().unwrap();
    reactor.register(listener).unwrap();

    let _client = UnixStream::connect(&path).unwrap();
    run_until(&mut reactor, "the connection", |_| !checked.borrow().is_empty());
    assert_eq!(*checked.borrow(), [(true, true)], "(CLOEXEC, O_NONBLOCK) of the accepted connection");
}

type Checked = Rc<RefCell<Vec<(bool, bool)>>>;
type Factory = Box<dyn FnMut(OwnedFd, Peer) -> Box<dyn Handler>>;

/// A listener whose factory writes down the flags of each connection it gets.
fn checking_listener(make: impl FnOnce(Factory) -> io::Result<Listener>) -> (Listener, Checked) {
    let checked = Checked::default();
    let sink = checked.clone();
    let listener = make(Box::new(move |fd, _| {
        sink.borrow_mut().push((is_cloexec(fd.as_fd()), is_nonblocking(fd.as_fd())));
        Box::new(Probe::new("conn", fd, &Journal::new()))
    }))
    .unwrap();
    (listener, checked)
}

/// What epoll watches for the readers of input: the always-ready eventfd
/// of a file read `for_any_fd`, a FIFO, the inotify descriptors of a
/// followed file and of a directory watch.
#[test]
fn the_descriptors_of_input_readers_are_close_on_exec_and_non_blocking() {
    let dir = TempDir::new("input-flags");
    let log = dir.path().join("log");
    std::fs::write(&log, b"").unwrap();
    let file = std::fs::File::open(&log).unwrap();
    let readers = [
        ("for_any_fd's eventfd", LineReader::new(file.into(), 64, |_, _| {}).for_any_fd().unwrap()),
        ("a FIFO", LineReader::fifo(dir.path().join("fifo"), 0o600, 64, |_, _| {}).unwrap()),
        ("a follower's inotify", LineReader::follow(&log, io::SeekFrom::Start(0), 64, |_, _| {}).unwrap()),
    ];
    for (what, reader) in &readers {
        assert_flags(reader.fd(), what);
    }
    let watch = DirWatch::new(dir.path(), |_, _| {}).unwrap();
    assert_flags(watch.fd(), "a directory watch's inotify");
}

fn assert_flags(fd: BorrowedFd<'_>, what: &str) {
    assert!(is_cloexec(fd), "{what} (fd {}) lacks FD_CLOEXEC", fd.as_raw_fd());
    assert!(is_nonblocking(fd), "{what} (fd {}) lacks O_NONBLOCK", fd.as_raw_fd());
}

#[test]
fn test_helpers_make_close_on_exec_non_blocking_descriptors_too() {
    // The checks above would pass vacuously if `is_cloexec` always said yes.
    let fd = eventfd();
    assert_flags(fd.as_fd(), "eventfd");
    let plain = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: clears the flags of a descriptor this test owns.
    unsafe { libc::fcntl(plain.as_raw_fd(), libc::F_SETFD, 0) };
    assert!(!is_cloexec(plain.as_fd()));
    assert!(!is_nonblocking(plain.as_fd()));
}
