//! POSIX message queues: `mq_open`, `mq_send`, `mq_receive`, `mq_getattr`,
//! `mq_notify`, `mq_close`, `mq_unlink`.
//!
//! On Linux an `mqd_t` is a file descriptor on the `mqueue` file system, so
//! a [`MessageQueue`] is [`AsFd`]: epoll, `poll` and `fstat` work on it.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::name::c_name;
use crate::open::{self, drop_name, removable};
use crate::sys::{context, cvt, fchmod, realtime_deadline, retry};
use crate::ObjectInfo;

/// Which way a descriptor of the queue may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `O_WRONLY`: send only.
    Send,
    /// `O_RDONLY`: receive only.
    Receive,
    /// `O_RDWR`: both.
    Both,
}

impl Access {
    fn flags(self) -> libc::c_int {
        match self {
            Access::Send => libc::O_WRONLY,
            Access::Receive => libc::O_RDONLY,
            Access::Both => libc::O_RDWR,
        }
    }
}

/// How to create a queue: [`MessageQueue::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// How this descriptor may be used.
    pub access: Access,
    /// Capacity in messages (`mq_maxmsg`); above `/proc/sys/fs/mqueue/msg_max`
    /// only a privileged process may ask.
    pub max_messages: i64,
    /// The largest message in bytes (`mq_msgsize`); above
    /// `/proc/sys/fs/mqueue/msgsize_max` only a privileged process may ask.
    pub message_size: i64,
    /// The permission bits the queue gets, exactly: the umask does not
    /// take any away (as with `mkdir -m`).
    pub mode: libc::mode_t,
    /// `O_EXCL`: fail with `AlreadyExists` if the name exists, instead of
    /// opening that queue.
    pub exclusive: bool,
    /// `O_NONBLOCK`: a full or empty queue fails with `WouldBlock` instead
    /// of waiting.
    pub nonblocking: bool,
}

impl Default for QueueOptions {
    /// Read-write, the unprivileged defaults (10 messages of 8192 bytes),
    /// mode 0600, exclusive, blocking.
    fn default() -> QueueOptions {
        QueueOptions {
            access: Access::Both,
            max_messages: 10,
            message_size: 8192,
            mode: 0o600,
            exclusive: true,
            nonblocking: false,
        }
    }
}

/// What `mq_getattr` says of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAttributes {
    /// Capacity in messages.
    pub max_messages: i64,
    /// The largest message in bytes: a receive buffer must be this long.
    pub message_size: i64,
    /// Messages waiting now.
    pub current_messages: i64,
    /// Whether this descriptor is non-blocking.
    pub nonblocking: bool,
}

/// An open message queue descriptor, closed (`mq_close`) on drop, and its
/// name removed too if it was told to ([`remove_on_drop`](Self::remove_on_drop),
/// and [`create_or_open`](Self::create_or_open) for the queue it created).
///
/// ```
/// use ipc::{Access, MessageQueue, QueueOptions};
///
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/ipc-doc-{}", std::process::id());
/// let server = MessageQueue::create(&name, &QueueOptions { message_size: 64, ..Default::default() })?;
/// let client = MessageQueue::open(&name, Access::Send)?;
/// client.send(b"hello", 3)?;
/// drop(client); // mq_close
///
/// let mut buf = vec![0; server.attributes()?.message_size as usize];
/// let (len, priority) = server.receive(&mut buf)?;
/// assert_eq!((&buf[..len], priority), (&b"hello"[..], 3));
/// MessageQueue::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct MessageQueue {
    mqd: libc::mqd_t,
    name: String,
    remove_on_drop: bool,
}

impl MessageQueue {
    /// Creates the queue `name` (`O_CREAT`, and `O_EXCL` if asked) with the
    /// size and the exact mode of `options`. Without `exclusive`, an
    /// existing queue is opened as it is: its size and mode are not changed.
    /// An exclusive creation makes the queue with mode 0, then gives it its
    /// mode (`fchmod`): until then other users cannot open it, and
    /// [`create_or_open`](Self::create_or_open) waits.
    ///
    /// Errors name the queue and say what to do: `AlreadyExists`, a size
    /// above the system's limits, the per-user byte limit
    /// (`RLIMIT_MSGQUEUE`, reported by the kernel as `EMFILE`), the
    /// system-wide number of queues.
    pub fn create(name: &str, options: &QueueOptions) -> io::Result<MessageQueue> {
        let c_name = c_name("queue", name)?;
        // SAFETY: `mq_attr` is a plain C struct; all-zero is a valid value.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        attr.mq_maxmsg = options.max_messages;
        attr.mq_msgsize = options.message_size;
        let mut flags = options.access.flags() | libc::O_CREAT | libc::O_CLOEXEC;
        if options.exclusive {
            flags |= libc::O_EXCL;
        }
        if options.nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        let mode = if options.exclusive { 0 } else { options.mode };
        // SAFETY: `c_name` is NUL-terminated; O_CREAT reads the mode and `attr`, which lives across the call.
        let mqd = cvt(unsafe { libc::mq_open(c_name.as_ptr(), flags, mode, &attr) })
            .map_err(|e| explain_create(name, e, options))?;
        let queue = MessageQueue { mqd, name: name.to_string(), remove_on_drop: false };
        if options.exclusive {
            // Ours alone: the exact mode, whatever the umask.
            if let Err(e) = fchmod(mqd, options.mode) {
                let _ = MessageQueue::unlink(name);
                return Err(context(format!("queue {name}: fchmod"), e));
            }
        }
        Ok(queue)
    }

    /// Creates the queue `name` with `options` (always exclusive), or opens
    /// it with their `access` and `nonblocking` if it exists (its size and
    /// mode then stay as they are); `true` with it if this call created it.
    /// The queue created is told to [`remove_on_drop`](Self::remove_on_drop);
    /// the one opened is not. An opener waits, up to 2 seconds, for a
    /// creator that has not given the queue its mode yet; mode 0 is refused
    /// (`InvalidInput`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ipc::{MessageQueue, QueueOptions};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-mq-create-or-open-{}", std::process::id());
    /// let options = QueueOptions { max_messages: 4, message_size: 64, ..Default::default() };
    /// let (queue, created) = MessageQueue::create_or_open(&name, &options)?;
    /// assert!(created);
    /// // Another process (a thread here) asks the same, opens it and sends.
    /// let other = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || -> std::io::Result<bool> {
    ///         let (queue, created) = MessageQueue::create_or_open(&name, &options)?;
    ///         queue.send(b"hello", 0)?;
    ///         Ok(created) // its drop closes the queue and leaves the name
    ///     }
    /// });
    /// assert!(!other.join().expect("the other")?);
    /// let mut buf = [0; 64];
    /// let (len, _) = queue.receive_timeout(&mut buf, Duration::from_secs(5))?;
    /// assert_eq!(&buf[..len], b"hello");
    /// drop(queue); // the creator's drop removes the name
    /// assert!(MessageQueue::open(&name, ipc::Access::Send).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_or_open(name: &str, options: &QueueOptions) -> io::Result<(MessageQueue, bool)> {
        let file = mqueue_mount().map(|mount| mount.join(name.get(1..).unwrap_or_default()));
        let (mut queue, created) = open::create_or_open(
            &format!("queue {name}"),
            options.mode,
            file.as_deref(),
            || MessageQueue::create(name, &QueueOptions { exclusive: true, ..*options }),
            || MessageQueue::open_with(name, options.access, options.nonblocking),
            |queue| queue.info().map(|info| info.mode != 0),
        )?;
        queue.remove_on_drop = created;
        Ok((queue, created))
    }

    /// Opens the existing queue `name` (never creates it), blocking.
    pub fn open(name: &str, access: Access) -> io::Result<MessageQueue> {
        MessageQueue::open_with(name, access, false)
    }

    /// Opens the existing queue `name`, non-blocking if asked.
    pub fn open_with(name: &str, access: Access, nonblocking: bool) -> io::Result<MessageQueue> {
        let c_name = c_name("queue", name)?;
        let flags = access.flags() | libc::O_CLOEXEC | if nonblocking { libc::O_NONBLOCK } else { 0 };
        // SAFETY: `c_name` is NUL-terminated; without O_CREAT no more arguments are read.
        let mqd = cvt(unsafe { libc::mq_open(c_name.as_ptr(), flags) }).map_err(|e| explain_open(name, e))?;
        Ok(MessageQueue { mqd, name: name.to_string(), remove_on_drop: false })
    }

    /// Opens the existing queue `name`, non-blocking, to look at it
    /// (`info`, `attributes`, a lock) rather than to use it: for sending,
    /// or else for receiving, since a user may be allowed only one of them.
    /// When both are refused, the error is the one for sending.
    pub fn open_to_inspect(name: &str) -> io::Result<MessageQueue> {
        MessageQueue::open_with(name, Access::Send, true).or_else(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => {
                MessageQueue::open_with(name, Access::Receive, true).map_err(|_| e)
            }
            _ => Err(e),
        })
    }

    /// Removes the name; the queue itself lives on until its last
    /// descriptor is closed. `NotFound` if no queue has that name.
    pub fn unlink(name: &str) -> io::Result<()> {
        let c_name = c_name("queue", name)?;
        // SAFETY: `c_name` is NUL-terminated.
        cvt(unsafe { libc::mq_unlink(c_name.as_ptr()) }).map(drop).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => io::Error::new(e.kind(), format!("queue {name} does not exist")),
            Some(libc::EACCES) => io::Error::new(
                e.kind(),
                format!("queue {name}: permission denied: only its owner (or root) may remove it"),
            ),
            _ => context(format!("queue {name}"), e),
        })
    }

    /// The name it was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Owner, mode and identity of the queue `name` without opening it: its
    /// file in the mqueue file system, where that is mounted (`NotFound`
    /// otherwise). For a queue this user may not open.
    pub fn file_info(name: &str) -> io::Result<ObjectInfo> {
        c_name("queue", name)?;
        let mount = mqueue_mount().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the mqueue file system is not mounted")
        })?;
        let meta =
            std::fs::metadata(mount.join(&name[1..])).map_err(|e| context(format!("queue {name}"), e))?;
        Ok(ObjectInfo::from_metadata(&meta))
    }

    /// `mq_send`: sends `message` with `priority` (0 up to
    /// `sysconf(_SC_MQ_PRIO_MAX) - 1`, higher first). Waits while the queue
    /// is full, unless the descriptor is non-blocking (`WouldBlock`).
    pub fn send(&self, message: &[u8], priority: u32) -> io::Result<()> {
        retry(|| {
            // SAFETY: the message is readable for its length.
            cvt(unsafe { libc::mq_send(self.mqd, message.as_ptr().cast(), message.len(), priority) })
        })
        .map(drop)
        .map_err(|e| self.explain_send(message, e))
    }

    /// `mq_timedsend`: as [`send`](Self::send), waiting at most `timeout`
    /// for room (`TimedOut` after that).
    pub fn send_timeout(&self, message: &[u8], priority: u32, timeout: Duration) -> io::Result<()> {
        let deadline = realtime_deadline(timeout)?;
        retry(|| {
            // SAFETY: the message is readable for its length; `deadline` lives across the call.
            cvt(unsafe {
                libc::mq_timedsend(self.mqd, message.as_ptr().cast(), message.len(), priority, &deadline)
            })
        })
        .map(drop)
        .map_err(|e| self.explain_send(message, e))
    }

    /// `mq_receive`: takes the oldest message of the highest priority into
    /// `buf`, which must hold [`QueueAttributes::message_size`] bytes.
    /// Returns its length and priority. Waits while the queue is empty,
    /// unless the descriptor is non-blocking (`WouldBlock`).
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, u32)> {
        let mut priority = 0;
        let n = retry(|| {
            // SAFETY: `buf` is writable for its length, and `priority` for a u32.
            cvt(unsafe { libc::mq_receive(self.mqd, buf.as_mut_ptr().cast(), buf.len(), &mut priority) })
        })
        .map_err(|e| self.explain_receive(buf, e))?;
        Ok((n as usize, priority))
    }

    /// `mq_timedreceive`: as [`receive`](Self::receive), waiting at most
    /// `timeout` for a message (`TimedOut` after that).
    pub fn receive_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<(usize, u32)> {
        let deadline = realtime_deadline(timeout)?;
        let mut priority = 0;
        let n = retry(|| {
            // SAFETY: `buf` is writable for its length, `priority` for a u32; `deadline` lives across the call.
            cvt(unsafe {
                libc::mq_timedreceive(self.mqd, buf.as_mut_ptr().cast(), buf.len(), &mut priority, &deadline)
            })
        })
        .map_err(|e| self.explain_receive(buf, e))?;
        Ok((n as usize, priority))
    }

    /// `mq_getattr`.
    pub fn attributes(&self) -> io::Result<QueueAttributes> {
        // SAFETY: `mq_attr` is a plain C struct, filled in by `mq_getattr`.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        // SAFETY: the descriptor is open and `attr` is writable.
        cvt(unsafe { libc::mq_getattr(self.mqd, &mut attr) }).map_err(|e| self.context(e))?;
        Ok(QueueAttributes {
            max_messages: attr.mq_maxmsg,
            message_size: attr.mq_msgsize,
            current_messages: attr.mq_curmsgs,
            nonblocking: attr.mq_flags & libc::O_NONBLOCK as libc::c_long != 0,
        })
    }

    /// `mq_setattr` of `O_NONBLOCK`, the only flag it changes.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        // SAFETY: `mq_attr` is a plain C struct; only `mq_flags` is read.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        attr.mq_flags = if nonblocking { libc::O_NONBLOCK as libc::c_long } else { 0 };
        // SAFETY: the descriptor is open; `attr` is readable, the old attributes are not asked for.
        cvt(unsafe { libc::mq_setattr(self.mqd, &attr, std::ptr::null_mut()) })
            .map(drop)
            .map_err(|e| self.context(e))
    }

    /// `mq_notify` with `SIGEV_SIGNAL`: `signal` is sent once, the next
    /// time the queue goes from empty to not empty, and then the
    /// registration is gone. One process per queue may be registered:
    /// another one's registration gives `EBUSY`. This
    /// process's own earlier registration is replaced.
    ///
    /// With epoll on the descriptor (Linux), this is not needed; it is here
    /// because the course shows it.
    pub fn notify_signal(&self, signal: libc::c_int) -> io::Result<()> {
        self.notify_none()?;
        // SAFETY: `sigevent` is a plain C struct; all-zero is a valid start.
        let mut event: libc::sigevent = unsafe { mem::zeroed() };
        event.sigev_notify = libc::SIGEV_SIGNAL;
        event.sigev_signo = signal;
        // SAFETY: the descriptor is open and `event` lives across the call.
        cvt(unsafe { libc::mq_notify(self.mqd, &event) }).map(drop).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => io::Error::new(
                e.kind(),
                format!("queue {}: mq_notify: another process is registered", self.name),
            ),
            _ => self.context(e),
        })
    }

    /// Removes this process's `mq_notify` registration, if it has one.
    pub fn notify_none(&self) -> io::Result<()> {
        // SAFETY: a null notification removes our registration.
        match cvt(unsafe { libc::mq_notify(self.mqd, std::ptr::null()) }) {
            // EBADF aside, the only failure is "not registered" (EBUSY when another process is).
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => Err(self.context(e)),
            _ => Ok(()),
        }
    }

    /// `flock` without waiting: an exclusive or a shared lock on the queue,
    /// held until this descriptor is closed (the kernel drops it when the
    /// process dies, however it dies). `false` if a conflicting lock is
    /// held. Advisory: it binds only the programs that ask for it.
    pub fn try_lock(&self, exclusive: bool) -> io::Result<bool> {
        let how = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        // SAFETY: plain call on an open descriptor.
        match cvt(unsafe { libc::flock(self.mqd, how | libc::LOCK_NB) }) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(context(format!("queue {}: flock", self.name), e)),
        }
    }

    /// Owner, mode and identity of the queue (`fstat` on the descriptor).
    pub fn info(&self) -> io::Result<ObjectInfo> {
        ObjectInfo::of(self.mqd).map_err(|e| self.context(e))
    }

    /// Whether `name` still names the queue this descriptor has open: false
    /// when it was removed, or removed and created anew.
    pub fn is_still_named(&self) -> io::Result<bool> {
        match MessageQueue::open_to_inspect(&self.name) {
            Ok(again) => Ok(again.info()?.identity == self.info()?.identity),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn context(&self, e: io::Error) -> io::Error {
        context(format!("queue {}", self.name), e)
    }

    fn explain_send(&self, message: &[u8], e: io::Error) -> io::Error {
        let name = &self.name;
        match e.raw_os_error() {
            Some(libc::EAGAIN) => io::Error::new(e.kind(), format!("queue {name} is full")),
            Some(libc::ETIMEDOUT) => io::Error::new(e.kind(), format!("queue {name} stayed full")),
            Some(libc::EMSGSIZE) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message is {} bytes; queue {name} takes at most {} bytes",
                    message.len(),
                    self.attributes().map_or(-1, |a| a.message_size)
                ),
            ),
            Some(libc::EBADF) => io::Error::new(e.kind(), format!("queue {name}: not open for sending")),
            _ => self.context(e),
        }
    }

    fn explain_receive(&self, buf: &[u8], e: io::Error) -> io::Error {
        let name = &self.name;
        match e.raw_os_error() {
            // Kept bare: a non-blocking drain meets this on every round.
            Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) => e,
            Some(libc::EMSGSIZE) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "queue {name}: a receive buffer of {} bytes is too small: it must hold {} (mq_msgsize)",
                    buf.len(),
                    self.attributes().map_or(-1, |a| a.message_size)
                ),
            ),
            Some(libc::EBADF) => io::Error::new(e.kind(), format!("queue {name}: not open for receiving")),
            _ => self.context(e),
        }
    }
}

impl AsFd for MessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: on Linux an `mqd_t` is a descriptor, open until `drop`.
        unsafe { BorrowedFd::borrow_raw(self.mqd) }
    }
}

impl AsRawFd for MessageQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.mqd
    }
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.name)
            .field("mqd", &self.mqd)
            .field("remove_on_drop", &self.remove_on_drop)
            .finish()
    }
}

removable!(
    MessageQueue,
    "mq_unlink",
    create: "create(&name, &Default::default())",
    open: "open(&name, ipc::Access::Send)"
);

impl Drop for MessageQueue {
    fn drop(&mut self) {
        drop_name(self);
        // SAFETY: the descriptor is open and ours alone; nothing uses it after.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// Where the mqueue file system is mounted (`/dev/mqueue` by custom), if
/// it is: there each queue is a file, whose content shows `QSIZE` and the
/// notification fields.
pub fn mqueue_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "mqueue").then(|| PathBuf::from(dir))
    })
}

/// `mq_open` without `O_CREAT`: what each errno means for the user.
fn explain_open(name: &str, e: io::Error) -> io::Error {
    let message = match e.raw_os_error() {
        Some(libc::ENOENT) => format!("queue {name} does not exist (not created yet, or removed since)"),
        Some(libc::EACCES) => {
            format!("queue {name}: permission denied: its mode does not let this user open it")
        }
        Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => {
            format!("queue name '{name}' is not valid: one component with a leading slash, as in /postbox")
        }
        Some(libc::EMFILE) | Some(libc::ENFILE) => format!("queue {name}: {e}: out of descriptors"),
        Some(libc::ENOSYS) => format!("queue {name}: {e}: this kernel has no POSIX message queues"),
        _ => format!("queue {name}: {e}"),
    };
    io::Error::new(e.kind(), message)
}

/// `mq_open` with `O_CREAT`: what each errno means for the user.
fn explain_create(name: &str, e: io::Error, options: &QueueOptions) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EEXIST) => "exists already".to_string(),
        Some(libc::EACCES) => {
            "permission denied: it exists and its mode does not let this user open it".to_string()
        }
        Some(libc::EINVAL) => format!(
            "{e}: {} messages of {} bytes is not a size this process may ask for; the limits \
             are /proc/sys/fs/mqueue/msg_max and msgsize_max (only a privileged process may go \
             above them), and both must be at least 1",
            options.max_messages, options.message_size
        ),
        Some(libc::EMFILE) => format!(
            "{e}: either this process is out of descriptors, or this user's queues already use \
             the per-user limit of {} bytes (RLIMIT_MSGQUEUE, see `ulimit -q`); a queue of \
             {} x {} bytes needs about {} more. Remove stale queues (ls /dev/mqueue) or ask \
             for a smaller one",
            rlimit_msgqueue().map_or_else(|| "?".to_string(), |n| n.to_string()),
            options.max_messages,
            options.message_size,
            queue_bytes(options.max_messages, options.message_size),
        ),
        Some(libc::ENOSPC) => {
            format!("{e}: the system-wide number of queues is used up (/proc/sys/fs/mqueue/queues_max)")
        }
        Some(libc::ENOSYS) => format!("{e}: this kernel has no POSIX message queues"),
        _ => e.to_string(),
    };
    io::Error::new(e.kind(), format!("queue {name}: {hint}"))
}

/// About what a queue costs against `RLIMIT_MSGQUEUE`: its messages and the
/// kernel's bookkeeping for each.
fn queue_bytes(max_messages: i64, message_size: i64) -> i64 {
    let pointer = mem::size_of::<usize>() as i64;
    max_messages.saturating_mul(message_size.saturating_add(pointer * 6))
}

fn rlimit_msgqueue() -> Option<u64> {
    // SAFETY: `rlimit` is a plain C struct, filled in by `getrlimit`.
    let mut limit: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: `limit` is writable.
    (unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut limit) } == 0).then_some(limit.rlim_cur)
}
