//! `LineReader::fifo`: it does not spin without writers, serves one writer after
//! another, and is removed at shutdown unless found there; a partial line
//! at shutdown goes to `on_unfinished`; it pauses by its token. What
//! `LineReader::fifo` accepts at its path: its own new FIFO, or a FIFO of this
//! user that grants others nothing beyond the mode asked; never a symbolic
//! link (not even one swapped in between `mkfifo` and the rest), another
//! user's FIFO, or one others may read more than asked.
//!
//! Tests that need a second user run only as root (they switch a child
//! process to uid 65534); elsewhere they say why they skip.

mod util;

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::sources::LineReader;
use reactor::Reactor;
use util::{run_for, run_until, within_deadline, CpuClock, TempDir, IDLE_TICKS};

/// The other user, in the tests that need one.
const OTHER_UID: u32 = 65534;

/// Whether the test can act as another user; prints why not.
fn can_switch_users(test: &str) -> bool {
    // SAFETY: plain call.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped: needs root, to act as uid {OTHER_UID}");
    }
    root
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode()
        & 0o7777
}

fn create(path: &Path, mode: u32) -> io::Result<LineReader> {
    LineReader::fifo(path, mode, 64, |_, _| {})
}

/// A FIFO made with exactly `mode` (`mkfifo` applies the umask: set again).
fn mkfifo(path: &Path, mode: u32) {
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is NUL-terminated and outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo: {}", io::Error::last_os_error());
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_new_fifo_gets_exactly_the_mode_asked() {
    let dir = TempDir::new("fifo-mode");
    let path = dir.path().join("fifo");
    let fifo = create(&path, 0o620).unwrap();
    assert_eq!(mode_of(&path), 0o620);
    drop(fifo);
    assert!(!path.exists(), "ours: removed");
}

#[test]
fn a_symbolic_link_at_the_path_is_refused_not_followed() {
    let dir = TempDir::new("fifo-symlink");
    let (path, target) = (dir.path().join("fifo"), dir.path().join("target"));
    fs::write(&target, b"secret").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&target, &path).unwrap();

    let e = create(&path, 0o666).expect_err("a symbolic link is not a FIFO");

    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(mode_of(&target), 0o600, "the link's target is untouched");
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "not ours to remove");
}

#[test]
fn a_fifo_of_this_user_that_grants_others_more_than_asked_is_refused_with_its_mode() {
    let dir = TempDir::new("fifo-wide");
    let path = dir.path().join("fifo");
    mkfifo(&path, 0o666);

    let e = create(&path, 0o600).expect_err("others may read it");

    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("owned by this user with mode 0666"), "{e}");
    assert!(path.exists(), "not ours to remove");
    // Granting others less than asked is fine.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    create(&path, 0o640).expect("a FIFO narrower than asked");
    assert_eq!(mode_of(&path), 0o600, "a FIFO that was there keeps its mode");
}

#[test]
fn a_fifo_of_another_user_is_refused_with_its_owner() {
    if !can_switch_users("a_fifo_of_another_user_is_refused_with_its_owner") {
        return;
    }
    let dir = TempDir::new("fifo-other");
    let path = dir.path().join("fifo");
    mkfifo(&path, 0o600);
    std::os::unix::fs::chown(&path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();

    let e = create(&path, 0o600).expect_err("another user's FIFO");

    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains(&format!("owned by user {OTHER_UID} with mode 0600")), "{e}");
    assert!(path.exists(), "not ours to remove");
}

/// Another user who may write the directory swaps a symbolic link to a
/// file of ours in at the path, as fast as it can, while we create FIFOs
/// there: the file's mode must never change. (Following the link, a
/// `chmod` after `mkfifo` made such a file 0666 within a few hundred tries.)
#[test]
fn a_symbolic_link_swapped_in_after_mkfifo_is_never_followed() {
    if !can_switch_users("a_symbolic_link_swapped_in_after_mkfifo_is_never_followed") {
        return;
    }
    let dir = TempDir::new("fifo-race");
    // Anyone may add and remove names here (no sticky bit).
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let (path, target) = (dir.path().join("fifo"), dir.path().join("target"));
    fs::write(&target, b"secret").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let swapper = Swapper::start(&path, &target);

    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut tries, mut made) = (0u32, 0u32);
    while Instant::now() < deadline || made == 0 {
        tries += 1;
        if let Ok(fifo) = create(&path, 0o666) {
            made += 1;
            drop(fifo);
        }
        assert_eq!(mode_of(&target), 0o600, "the target's mode changed after {tries} tries");
        assert!(tries < 1_000_000, "no FIFO made in {tries} tries");
    }
    drop(swapper);
    assert_eq!(fs::read(&target).unwrap(), b"secret");
}

/// A child process, as [`OTHER_UID`], that replaces `path` with a symbolic
/// link to `target` in a loop; killed on drop.
struct Swapper(libc::pid_t);

impl Swapper {
    fn start(path: &Path, target: &Path) -> Swapper {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let c_target = CString::new(target.as_os_str().as_bytes()).unwrap();
        // SAFETY: the child makes only async-signal-safe calls, then `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: async-signal-safe calls on strings made before the fork.
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(OTHER_UID) != 0
                    || libc::setuid(OTHER_UID) != 0
                {
                    libc::_exit(120);
                }
                loop {
                    libc::unlink(c_path.as_ptr());
                    libc::symlink(c_target.as_ptr(), c_path.as_ptr());
                }
            }
        }
        Swapper(pid)
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        // SAFETY: our own child, not yet reaped.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

#[test]
fn a_fifo_without_writers_does_not_spin_and_serves_successive_writers() {
    within_deadline(|| {
        let dir = TempDir::new("fifo");
        let path = dir.path().join("fifo");
        let mut reactor = Reactor::new().unwrap();
        let lines = Rc::new(RefCell::new(Vec::new()));
        let seen = lines.clone();
        reactor
            .register(
                LineReader::fifo(&path, 0o640, 1024, move |line, _| seen.borrow_mut().push(line.to_vec()))
                    .unwrap(),
            )
            .unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640, "the mode asked for, whatever the umask");
        for writer in ["first", "second"] {
            let mut pipe = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&path).unwrap();
            writeln!(pipe, "{writer}").unwrap();
            drop(pipe); // the last writer leaves
            run_until(&mut reactor, writer, |_| {
                lines.borrow().last().map(|l| l.as_slice()) == Some(writer.as_bytes())
            });
            // No writer now: a second of the loop must cost (almost) no CPU.
            let cpu = CpuClock::for_this_thread();
            let before = cpu.ticks();
            run_for(&mut reactor, Duration::from_secs(1) / 2);
            let used = cpu.ticks() - before;
            assert!(used <= IDLE_TICKS / 2 + 1, "{used} ticks in half a second: the reader spins");
        }
        reactor.shutdown();
        assert!(!path.exists(), "removed at shutdown");
    });
}

#[test]
fn a_fifo_that_was_there_is_used_and_left_in_place() {
    let dir = TempDir::new("fifo-keep");
    let path = dir.path().join("fifo");
    mkfifo(&path, 0o600);
    let mut reactor = Reactor::new().unwrap();
    reactor.register(create(&path, 0o600).unwrap()).unwrap();
    reactor.shutdown();
    assert!(path.exists(), "not ours to remove");
    let regular = dir.path().join("file");
    fs::write(&regular, b"").unwrap();
    assert!(create(&regular, 0o600).is_err(), "not a FIFO");
    assert!(regular.exists(), "not ours to remove");
}

/// A FIFO never ends by itself (its reader holds a write end): a last line
/// without `\n` is a part, handed to `on_unfinished` at shutdown, before
/// the close; and the reader pauses by its token like any reader.
#[test]
fn a_partial_line_at_shutdown_goes_to_on_unfinished_and_the_reader_pauses() {
    let dir = TempDir::new("fifo-partial");
    let path = dir.path().join("fifo");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (lines, part, close) = (seen.clone(), seen.clone(), seen.clone());
    let reader = LineReader::fifo(&path, 0o600, 64, move |line, _| lines.borrow_mut().push(line.to_vec()))
        .unwrap()
        .on_unfinished(move |rest, _| part.borrow_mut().push([b"unfinished ", rest].concat()))
        .on_close(move |_| close.borrow_mut().push(b"closed".to_vec()));
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.register(reader).unwrap();
    reactor.pause(token).unwrap();
    fs::write(&path, b"whole\nhalf a li").unwrap(); // the reader is there: no blocking
    for _ in 0..3 {
        reactor.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    assert!(seen.borrow().is_empty(), "paused: nothing read");
    reactor.resume(token).unwrap();
    run_until(&mut reactor, "the whole line", |_| !seen.borrow().is_empty());
    drop(reactor);
    assert_eq!(*seen.borrow(), [&b"whole"[..], b"unfinished half a li", b"closed"]);
    assert!(!path.exists(), "removed at shutdown");
}
