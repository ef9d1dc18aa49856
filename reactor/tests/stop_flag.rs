//! The reactor's stop flag (`StopFlag`): raised by a stop at once, and when
//! a shutdown begins however the run ends (a stop, nothing left to wait for,
//! an `epoll_wait` failure, a drop); raised through the shutdown, for the
//! handlers' last hooks, and after it; lowered only by a new run of the
//! same reactor.

mod util;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use reactor::{Context, Handler, Reactor, Readiness, StopFlag, Token};
use util::{doorbell, drain, pipe, ring, within_deadline, write, Journal};

type OnReady = Box<dyn FnMut(BorrowedFd<'_>, &mut Context)>;

/// A handler that writes down what the stop flag says as it leaves: in
/// `on_remove`, through its `Context`; in `on_shutdown`, which has none,
/// through the handle it was given.
struct Witness {
    name: &'static str,
    fd: OwnedFd,
    flag: StopFlag,
    journal: Journal,
    on_ready: OnReady,
}

impl Witness {
    fn new(name: &'static str, fd: OwnedFd, flag: StopFlag, journal: &Journal) -> Witness {
        Witness { name, fd, flag, journal: journal.clone(), on_ready: Box::new(|_, _| {}) }
    }

    fn on_ready(mut self, on_ready: impl FnMut(BorrowedFd<'_>, &mut Context) + 'static) -> Witness {
        self.on_ready = Box::new(on_ready);
        self
    }
}

impl Handler for Witness {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        self.name
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        self.journal.push(format!("{}: ready", self.name));
        (self.on_ready)(self.fd.as_fd(), ctx);
        Ok(())
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        self.journal.push(format!(
            "{}: removed, stopping {}, flag {}",
            self.name,
            ctx.is_stopping(),
            ctx.stop_flag().is_raised()
        ));
    }

    fn on_shutdown(&mut self) {
        self.journal.push(format!("{}: shutdown, flag {}", self.name, self.flag.is_raised()));
    }
}

/// A reactor, its stop flag, and a bystander `b` registered first, so shut
/// down last: its token, and the doorbell that keeps it open.
fn with_bystander(journal: &Journal) -> (Reactor, StopFlag, Token, OwnedFd) {
    let mut reactor = Reactor::new().unwrap();
    let flag = reactor.stop_flag();
    let (fd, bell) = doorbell();
    let b = reactor.register(Witness::new("b", fd, flag.clone(), journal)).unwrap();
    (reactor, flag, b, bell)
}

/// What `b` writes down when the shutdown reaches it: the flag raised.
const BYSTANDER_SHUT_DOWN: [&str; 2] = ["b: removed, stopping true, flag true", "b: shutdown, flag true"];

#[test]
fn stop_raises_the_flag_at_once_and_it_stays_raised_after_the_run() {
    within_deadline(|| {
        let journal = Journal::new();
        let (mut reactor, flag, _b, _b_bell) = with_bystander(&journal);
        let (a_fd, a_bell) = doorbell();
        let seen = journal.clone();
        let stopper = Witness::new("a", a_fd, flag.clone(), &journal).on_ready(move |_, ctx| {
            seen.push(format!("before stop: flag {}", ctx.stop_flag().is_raised()));
            ctx.stop();
            seen.push(format!("after stop: flag {}", ctx.stop_flag().is_raised()));
        });
        reactor.register(stopper).unwrap();
        assert!(!flag.is_raised(), "raised before anything asked to stop");

        ring(&a_bell);
        reactor.run().unwrap();
        assert_eq!(
            journal.entries(),
            [
                &[
                    "a: ready",
                    "before stop: flag false",
                    "after stop: flag true",
                    "a: removed, stopping true, flag true",
                    "a: shutdown, flag true",
                ][..],
                &BYSTANDER_SHUT_DOWN,
            ]
            .concat()
        );
        assert!(flag.is_raised(), "the run is over: the flag stays raised");
        assert!(reactor.is_stopping(), "is_stopping reads the same flag");
    });
}

#[test]
fn run_that_ends_with_nothing_to_wait_for_raises_the_flag_for_the_shutdown() {
    within_deadline(|| {
        let journal = Journal::new();
        let (mut reactor, flag, b, _b_bell) = with_bystander(&journal);
        // a pauses b and leaves: nothing can wake the loop, and nobody asked it to stop.
        let (a_fd, a_bell) = doorbell();
        let leaver = Witness::new("a", a_fd, flag.clone(), &journal).on_ready(move |_, ctx| {
            ctx.pause(b).unwrap();
            ctx.remove_self();
        });
        reactor.register(leaver).unwrap();

        ring(&a_bell);
        reactor.run().unwrap();
        assert_eq!(
            journal.entries(),
            [
                &["a: ready", "a: removed, stopping false, flag false", "a: shutdown, flag false"][..],
                &BYSTANDER_SHUT_DOWN,
            ]
            .concat()
        );
        assert!(flag.is_raised());
    });
}

/// The descriptor of the one epoll instance in this process that watches
/// `fd`, a pipe's end: its `fdinfo` lists `fd` with the pipe's inode, which
/// no other test's instance watches.
fn epoll_watching(fd: BorrowedFd<'_>) -> RawFd {
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let wanted =
        (fd.as_raw_fd().to_string(), format!("ino:{:x}", std::os::unix::fs::MetadataExt::ino(&inode)));
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let Some(number) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        if target.to_str() != Some("anon_inode:[eventpoll]") {
            continue;
        }
        // Another test's instance may be closed meanwhile: skipped.
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{number}")) else { continue };
        let watches = info.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.first() == Some(&"tfd:")
                && words.get(1) == Some(&wanted.0.as_str())
                && words.contains(&wanted.1.as_str())
        });
        if watches {
            found.push(number);
        }
    }
    assert_eq!(found.len(), 1, "epoll instances watching descriptor {}: {found:?}", wanted.0);
    found[0]
}

#[test]
fn run_that_ends_on_an_epoll_wait_failure_raises_the_flag_for_the_shutdown() {
    within_deadline(|| {
        let journal = Journal::new();
        let (mut reactor, flag, _b, _b_bell) = with_bystander(&journal);
        // a puts /dev/null where the reactor's epoll descriptor was: the
        // next `epoll_wait` fails (EINVAL), and `run` ends on that error.
        let (a_fd, a_writer) = pipe();
        write(&a_writer, b"x");
        let breaker = Witness::new("a", a_fd, flag.clone(), &journal).on_ready(|fd, _| {
            let epoll = epoll_watching(fd);
            let null = File::open("/dev/null").unwrap();
            // SAFETY: `epoll` is owned by this reactor, which alone uses the number and closes it (then /dev/null).
            let replaced = unsafe { libc::dup2(null.as_raw_fd(), epoll) };
            assert_eq!(replaced, epoll, "dup2: {}", io::Error::last_os_error());
        });
        reactor.register(breaker).unwrap();

        let error = reactor.run().expect_err("epoll_wait on /dev/null fails");
        assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error}");
        assert_eq!(
            journal.entries(),
            [
                &["a: ready", "a: removed, stopping true, flag true", "a: shutdown, flag true",][..],
                &BYSTANDER_SHUT_DOWN,
            ]
            .concat()
        );
        assert!(flag.is_raised());
    });
}

#[test]
fn dropping_a_reactor_raises_the_flag_for_its_handlers_and_it_stays_raised() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let flag = reactor.stop_flag();
    let (fd, _bell) = doorbell();
    reactor.register(Witness::new("a", fd, flag.clone(), &journal)).unwrap();
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert!(!flag.is_raised());

    drop(reactor);
    assert_eq!(journal.entries(), ["a: removed, stopping true, flag true", "a: shutdown, flag true"]);
    assert!(flag.is_raised(), "the reactor is gone: its flag stays raised");
}

#[test]
fn a_new_run_of_a_reactor_shut_down_lowers_the_flag_unless_a_stop_was_asked_since() {
    within_deadline(|| {
        let journal = Journal::new();
        let mut reactor = Reactor::new().unwrap();
        let flag = reactor.stop_flag();
        let (fd, bell) = doorbell();
        let once = Witness::new("first", fd, flag.clone(), &journal).on_ready(|fd, ctx| {
            drain(fd);
            ctx.stop();
        });
        reactor.register(once).unwrap();
        ring(&bell);
        reactor.run().unwrap();
        assert!(flag.is_raised() && reactor.is_stopping());

        // A handler registered after the shutdown: the flag still says the
        // last run is over, until the next one begins.
        let (fd, bell) = doorbell();
        let seen = journal.clone();
        let again = Witness::new("second", fd, flag.clone(), &journal).on_ready(move |fd, ctx| {
            drain(fd);
            seen.push(format!("second run: flag {}", ctx.stop_flag().is_raised()));
        });
        reactor.register(again).unwrap();
        assert!(flag.is_raised());
        ring(&bell);
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        assert!(!flag.is_raised(), "a new run lowers the flag");
        reactor.shutdown();
        assert!(flag.is_raised());

        // A stop asked between a shutdown and the next run is kept: that run
        // shuts down at once, and calls nobody.
        let (fd, bell) = doorbell();
        reactor.register(Witness::new("third", fd, flag.clone(), &journal)).unwrap();
        reactor.stop();
        ring(&bell);
        reactor.run().unwrap();
        assert!(flag.is_raised());
        assert_eq!(
            journal.entries(),
            [
                "first: ready",
                "first: removed, stopping true, flag true",
                "first: shutdown, flag true",
                "second: ready",
                "second run: flag false",
                "second: removed, stopping true, flag true",
                "second: shutdown, flag true",
                "third: removed, stopping true, flag true",
                "third: shutdown, flag true",
            ]
        );
    });
}

#[test]
fn a_flag_no_reactor_holds_is_never_raised() {
    let flag = StopFlag::never();
    let mut reactor = Reactor::new().unwrap();
    reactor.stop();
    reactor.run().unwrap();
    drop(reactor);
    assert!(!flag.is_raised());
}

#[test]
fn the_first_exit_of_a_run_decides_its_code() {
    within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        reactor.after(Duration::from_millis(1), |ctx| {
            ctx.exit(143); // a SIGTERM handler, say
            ctx.exit(0); // a clean-up that runs after it
        });
        reactor.run().unwrap();
        assert_eq!(reactor.exit_code(), Some(143));
        // A new run forgets it.
        reactor.after(Duration::from_millis(1), |ctx| ctx.stop());
        reactor.run().unwrap();
        assert_eq!(reactor.exit_code(), None);
    });
}
