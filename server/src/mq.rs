//! The exercise itself: a POSIX message queue that the server creates at
//! startup, reads whenever epoll says its descriptor is readable, and closes
//! and removes at shutdown.
//!
//! On Linux an `mqd_t` is a file descriptor on the mqueue filesystem, so the
//! reactor can watch it like any other; `mq_notify` is not needed. It is
//! shown all the same, behind `--notify signal`, for comparison.
//!
//! Ownership: the server holds an exclusive `flock` on the queue for as long
//! as it lives. The kernel drops the lock when the process dies, however it
//! dies, so a queue that exists but is not locked was left by a server that
//! is gone: the next server adopts it and prints what is still in it.

use std::ffi::CString;
use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use reactor::sources::SignalFd;
use reactor::{Context, Handler, Readiness};

use crate::cli::queue_name_problem;
use crate::output::SharedOutput;
use crate::stats::Source;

/// How many messages one readiness report may take: enough to empty a
/// default queue several times, few enough to keep other sources served.
const BATCH: usize = 256;

/// How a queue is to be created.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub max_messages: i64,
    pub message_size: i64,
    pub mode: libc::mode_t,
}

/// How the server came to own its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Created,
    /// Left behind by a server that is gone, with this many messages in it.
    Adopted {
        waiting: i64,
    },
}

/// How the server learns that messages arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// The queue's descriptor is watched by epoll (the default on Linux).
    Epoll,
    /// `mq_notify` sends a real-time signal, read from a signalfd.
    Signal,
}

/// What the reactor watches for the queue.
enum Wakeup {
    /// The queue descriptor itself.
    Epoll,
    /// A signalfd for the signal that `mq_notify` sends.
    Signal { signal: i32, fd: SignalFd },
}

/// The server's queue, as a reactor handler.
pub struct MessageQueue {
    fd: QueueFd,
    name: CString,
    label: String,
    attr: libc::mq_attr,
    buf: Vec<u8>,
    output: SharedOutput,
    wakeup: Wakeup,
    /// The loop ran: shutdown is news. Before, it is a failed startup
    /// undoing itself, which the error already explains.
    started: bool,
}

impl MessageQueue {
    /// Creates the queue, or adopts one that a dead server left behind.
    /// Fails if a live server owns it.
    pub fn open(
        spec: &QueueSpec,
        notify: Notify,
        output: SharedOutput,
    ) -> io::Result<(MessageQueue, Origin)> {
        let name = check_name(&spec.name)?;
        let label = format!("queue {}", spec.name);
        check_system_limits(spec).map_err(|e| context(&label, e))?;
        let (fd, origin) = create_or_adopt(&name, spec).map_err(|e| context(&label, e))?;
        match MessageQueue::assemble(fd, name.clone(), label, notify, output) {
            Ok(queue) => {
                let origin = match origin {
                    Origin::Adopted { .. } => Origin::Adopted { waiting: queue.attr.mq_curmsgs },
                    created => created,
                };
                Ok((queue, origin))
            }
            Err(e) => {
                // Not ours to keep: a queue we created goes; an adopted one
                // stays, with its messages, for the next server.
                abandon(&name, origin);
                Err(e)
            }
        }
    }

    /// The handler around an open, locked queue.
    fn assemble(
        fd: QueueFd,
        name: CString,
        label: String,
        notify: Notify,
        output: SharedOutput,
    ) -> io::Result<MessageQueue> {
        let attr = fd.attributes().map_err(|e| context(&label, e))?;
        let buf = vec![0; attr.mq_msgsize as usize];
        let wakeup = match notify {
            Notify::Epoll => Wakeup::Epoll,
            Notify::Signal => {
                let signal = libc::SIGRTMIN();
                // The signal is blocked and read by the loop: no handler runs.
                let signal_fd = SignalFd::new(&[signal], |_, _| {}).map_err(|e| context(&label, e))?;
                // Registered now, so that a queue another process watches
                // is a startup failure, not a handler removed later.
                fd.notify(signal).map_err(|e| context(&label, e))?;
                Wakeup::Signal { signal, fd: signal_fd }
            }
        };
        Ok(MessageQueue { fd, name, label, attr, buf, output, wakeup, started: false })
    }

    /// Capacity in messages.
    pub fn max_messages(&self) -> i64 {
        self.attr.mq_maxmsg
    }

    /// Size of the largest message.
    pub fn message_size(&self) -> i64 {
        self.attr.mq_msgsize
    }

    /// How many messages the queue holds when full.
    fn capacity(&self) -> usize {
        usize::try_from(self.attr.mq_maxmsg).unwrap_or(1)
    }

    /// Prints up to `limit` messages; returns how many there were. Notes
    /// the queue's depth as last seen, for the statistics.
    fn drain(&mut self, limit: usize) -> io::Result<usize> {
        let mut output = self.output.borrow_mut();
        for received in 0..limit {
            let mut priority = 0;
            match self.fd.receive(&mut self.buf, &mut priority) {
                Ok(len) => output.queue_line(priority, strip_one_newline(&self.buf[..len])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    output.counters.queue_depth = 0;
                    return Ok(received);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    output.counters.source(Source::Queue).errors += 1;
                    return Err(e);
                }
            }
        }
        // Stopped at the limit: something may be left. One look, not one per message.
        output.counters.queue_depth = self.fd.attributes()?.mq_curmsgs;
        Ok(limit)
    }

    /// A server without its queue has no reason to run: an error stops it,
    /// and the exit status says so.
    fn fail_on_error(&mut self, result: io::Result<()>, ctx: &mut Context<'_>) -> io::Result<()> {
        if result.is_err() {
            let mut output = self.output.borrow_mut();
            output.failed = true;
            output.stopping = true;
            ctx.stop();
        }
        result
    }

    /// `--notify signal`: takes what the signalfd holds, re-arms `mq_notify`
    /// and only then drains. The notification fires only when the queue goes
    /// from empty to non-empty, and only once per registration: re-arming
    /// after draining would miss a message that arrives in between, and the
    /// queue, never empty again, would never notify again.
    fn on_signal(&mut self) -> io::Result<()> {
        let Wakeup::Signal { signal, fd } = &mut self.wakeup else {
            return Ok(());
        };
        let signal = *signal;
        while fd.read_signal()?.is_some() {}
        self.fd.notify(signal)?;
        if self.drain(BATCH)? == BATCH {
            // More may wait, and the queue will not notify while it is not
            // empty: come back next round, as level-triggered epoll would.
            // SAFETY: plain call; the signal is blocked, so it only becomes pending.
            unsafe { libc::raise(signal) };
        }
        Ok(())
    }
}

impl Handler for MessageQueue {
    fn fd(&self) -> BorrowedFd<'_> {
        match &self.wakeup {
            Wakeup::Epoll => self.fd.as_fd(),
            Wakeup::Signal { fd, .. } => fd.fd(),
        }
    }

    fn name(&self) -> &str {
        &self.label
    }

    /// An adopted queue may hold messages: print them before anything else.
    fn on_start(&mut self, ctx: &mut Context<'_>) -> io::Result<()> {
        self.started = true;
        let result = match self.wakeup {
            Wakeup::Epoll => self.drain(self.capacity()).map(drop),
            Wakeup::Signal { .. } => self.on_signal(),
        };
        self.fail_on_error(result, ctx)
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context<'_>) -> io::Result<()> {
        let result = match self.wakeup {
            Wakeup::Epoll => self.drain(BATCH).map(drop),
            Wakeup::Signal { .. } => self.on_signal(),
        };
        self.fail_on_error(result, ctx)
    }

    /// Removes the name first, so that a late client is told "no such queue"
    /// instead of sending into a queue about to vanish; then prints what is
    /// left. The descriptor is closed (`mq_close`) when the handler drops.
    fn on_shutdown(&mut self) {
        // SAFETY: `name` is a valid NUL-terminated string.
        if unsafe { libc::mq_unlink(self.name.as_ptr()) } == -1 {
            log::warn!("{}: mq_unlink: {}", self.label, io::Error::last_os_error());
        }
        // At most one queueful: a client that still has the queue open and
        // sends without pause must not keep the server from exiting.
        let lost = self.output.borrow().is_closed();
        match self.drain(self.capacity()) {
            Ok(0) => {}
            Ok(n) if lost => {
                log::warn!("{}: {n} message(s) left at shutdown lost: stdout is closed", self.label)
            }
            Ok(n) => log::info!("{}: printed {n} message(s) left at shutdown", self.label),
            Err(e) => log::error!("{}: {e}", self.label),
        }
        if self.started {
            log::info!("{}: removed", self.label);
        }
    }
}

/// An open queue descriptor, closed with `mq_close` on drop.
struct QueueFd(RawFd);

impl QueueFd {
    fn open(name: &CString, flags: libc::c_int, spec: Option<&QueueSpec>) -> io::Result<QueueFd> {
        let raw = match spec {
            Some(spec) => {
                // SAFETY: `mq_attr` is a plain C struct; zero means "no flags".
                let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
                attr.mq_maxmsg = spec.max_messages;
                attr.mq_msgsize = spec.message_size;
                // SAFETY: `name` is NUL-terminated and `attr` lives across the call.
                unsafe { libc::mq_open(name.as_ptr(), flags | libc::O_CREAT, spec.mode, &attr) }
            }
            // SAFETY: `name` is NUL-terminated; without O_CREAT no more arguments are read.
            None => unsafe { libc::mq_open(name.as_ptr(), flags) },
        };
        if raw == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(QueueFd(raw))
    }

    fn raw(&self) -> RawFd {
        self.0
    }

    fn attributes(&self) -> io::Result<libc::mq_attr> {
        // SAFETY: `mq_attr` is a plain C struct, filled in by `mq_getattr`.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        // SAFETY: the descriptor is open and `attr` is writable.
        if unsafe { libc::mq_getattr(self.raw(), &mut attr) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(attr)
    }

    /// Takes the oldest message of the highest priority into `buf`, which
    /// must be `mq_msgsize` bytes long.
    fn receive(&self, buf: &mut [u8], priority: &mut u32) -> io::Result<usize> {
        // SAFETY: `buf` is writable for its length, and `priority` for a u32.
        let n = unsafe { libc::mq_receive(self.raw(), buf.as_mut_ptr().cast(), buf.len(), priority) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Registers for one `SIGEV_SIGNAL` notification. Only one process may
    /// be registered per queue, and registering again while registered
    /// fails with `EBUSY` even for the same process: drop ours first.
    fn notify(&self, signal: i32) -> io::Result<()> {
        // SAFETY: a null notification removes our registration, if any.
        unsafe { libc::mq_notify(self.raw(), std::ptr::null()) };
        // SAFETY: `sigevent` is a plain C struct; all-zero is a valid start.
        let mut event: libc::sigevent = unsafe { mem::zeroed() };
        event.sigev_notify = libc::SIGEV_SIGNAL;
        event.sigev_signo = signal;
        // SAFETY: the descriptor is open and `event` lives across the call.
        if unsafe { libc::mq_notify(self.raw(), &event) } == -1 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EBUSY) => io::Error::new(e.kind(), "mq_notify: another process is registered"),
                _ => e,
            });
        }
        Ok(())
    }

    /// Claims the queue for this process; `false` if a server holds it.
    /// A client asking whether a server runs (`client --status`) holds a
    /// shared lock for a few microseconds: a refusal is asked again a few
    /// times over about 50 ms before it is believed.
    fn lock(&self) -> io::Result<bool> {
        for attempt in 0..10 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // SAFETY: plain call on an open descriptor.
            if unsafe { libc::flock(self.raw(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(false)
    }

    /// The (device, inode) pair that names the queue object.
    fn identity(&self) -> io::Result<(u64, u64)> {
        // SAFETY: `stat` is a plain C struct, filled in by `fstat`.
        let mut st: libc::stat = unsafe { mem::zeroed() };
        // SAFETY: the descriptor is open and `st` is writable.
        if unsafe { libc::fstat(self.raw(), &mut st) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok((st.st_dev, st.st_ino))
    }
}

impl AsFd for QueueFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: on Linux an `mqd_t` is a descriptor, open until `drop`.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

impl Drop for QueueFd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is open and ours alone; nothing uses it after.
        unsafe { libc::mq_close(self.0) };
    }
}

const READ_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Creates the queue exclusively; if it exists, adopts it when no live
/// server holds its lock. Retries when the name changes under our feet
/// (another server removing or re-creating it at the same moment).
fn create_or_adopt(name: &CString, spec: &QueueSpec) -> io::Result<(QueueFd, Origin)> {
    for _ in 0..8 {
        let (fd, origin) = match QueueFd::open(name, READ_FLAGS | libc::O_EXCL, Some(spec)) {
            Ok(fd) => (fd, Origin::Created),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match QueueFd::open(name, READ_FLAGS, None) {
                Ok(fd) => (fd, Origin::Adopted { waiting: 0 }),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(explain_open(e, spec)),
            },
            Err(e) => return Err(explain_open(e, spec)),
        };
        let owned = match fd.lock() {
            Ok(true) => still_named(&fd, name),
            Ok(false) => {
                // Someone else holds it, even if we created it a moment ago.
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "in use by another running server; stop it first, or choose another name with --queue",
                ));
            }
            Err(e) => Err(e),
        };
        match owned {
            Ok(true) => return Ok((fd, origin)),
            Ok(false) => continue,
            Err(e) => {
                abandon(name, origin);
                return Err(e);
            }
        }
    }
    Err(io::Error::other("the queue keeps being created and removed by someone else"))
}

/// Whether `name` still names the queue open as `fd` (another server may
/// have removed or replaced it between our open and our lock).
fn still_named(fd: &QueueFd, name: &CString) -> io::Result<bool> {
    match QueueFd::open(name, READ_FLAGS, None) {
        Ok(again) => Ok(again.identity()? == fd.identity()?),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the name of a queue we created and will not serve after all.
fn abandon(name: &CString, origin: Origin) {
    if origin == Origin::Created {
        // SAFETY: `name` is a valid NUL-terminated string.
        unsafe { libc::mq_unlink(name.as_ptr()) };
    }
}

/// Turns `mq_open`'s terse errors into advice.
fn explain_open(e: io::Error, spec: &QueueSpec) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EACCES) => {
            "permission denied: it exists and belongs to another user, or --mode forbids it".to_string()
        }
        Some(libc::EMFILE) => format!(
            "{e}: either this process is out of descriptors, or this user's queues already use \
             the per-user limit of {} bytes (RLIMIT_MSGQUEUE, see `ulimit -q`); a queue of \
             {} x {} bytes needs about {} more. Remove stale queues (ls /dev/mqueue) or ask \
             for a smaller one",
            rlimit_msgqueue().map_or_else(|| "?".to_string(), |n| n.to_string()),
            spec.max_messages,
            spec.message_size,
            spec.max_messages * (spec.message_size + 48),
        ),
        Some(libc::ENOSPC) => {
            format!("{e}: the system-wide number of queues is used up ({})", "/proc/sys/fs/mqueue/queues_max")
        }
        Some(libc::ENOSYS) => format!("{e}: this kernel has no POSIX message queues"),
        _ => return e,
    };
    io::Error::new(e.kind(), hint)
}

/// Checks the requested size against the system's limits, which only a
/// privileged process may exceed: we do not, so that root and users behave
/// the same.
fn check_system_limits(spec: &QueueSpec) -> io::Result<()> {
    let limits = [
        ("--max-messages", spec.max_messages, "msg_max"),
        ("--message-size", spec.message_size, "msgsize_max"),
    ];
    for (flag, wanted, file) in limits {
        let path = format!("/proc/sys/fs/mqueue/{file}");
        let Some(limit) = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<i64>().ok()) else {
            continue;
        };
        if wanted > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{flag} {wanted} is above the system limit of {limit} ({path}); \
                     raise it as root with `sysctl fs.mqueue.{file}={wanted}`"
                ),
            ));
        }
    }
    Ok(())
}

fn rlimit_msgqueue() -> Option<u64> {
    // SAFETY: `rlimit` is a plain C struct, filled in by `getrlimit`.
    let mut limit: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: `limit` is writable.
    (unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut limit) } == 0).then_some(limit.rlim_cur)
}

/// A queue name is one path component with a leading slash: `/postbox`.
pub fn check_name(name: &str) -> io::Result<CString> {
    match queue_name_problem(name) {
        Some(why) => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("queue name '{name}': {why}"))),
        None => CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
    }
}

fn context(label: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{label}: {e}"))
}

/// Clients such as `echo` end a message with a newline; one is dropped.
fn strip_one_newline(message: &[u8]) -> &[u8] {
    message.strip_suffix(b"\n").unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component_with_a_leading_slash() {
        assert!(check_name("/postbox").is_ok());
        for bad in ["postbox", "/", "/a/b", "/.", "/..", "/a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check_name(&format!("/{}", "x".repeat(255))).is_ok());
        assert!(check_name(&format!("/{}", "x".repeat(256))).is_err());
    }

    #[test]
    fn exactly_one_trailing_newline_is_dropped() {
        assert_eq!(strip_one_newline(b"hi\n"), b"hi");
        assert_eq!(strip_one_newline(b"hi\n\n"), b"hi\n");
        assert_eq!(strip_one_newline(b"hi"), b"hi");
    }
}
