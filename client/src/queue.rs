//! The sending end of the server's queue: `mq_open` without `O_CREAT`,
//! `mq_send` or `mq_timedsend`, `mq_close`.

use std::ffi::CString;
use std::io;
use std::mem;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An open, write-only queue descriptor, closed with `mq_close` on drop.
pub struct Queue {
    mqd: libc::mqd_t,
    name: String,
    message_size: usize,
}

impl Queue {
    /// Opens an existing queue for writing; never creates one.
    pub fn open(name: &str, nonblock: bool) -> io::Result<Queue> {
        let c_name =
            CString::new(name).map_err(|_| invalid(format!("queue name '{name}' contains a NUL byte")))?;
        let flags = libc::O_WRONLY | libc::O_CLOEXEC | if nonblock { libc::O_NONBLOCK } else { 0 };
        // SAFETY: `c_name` is NUL-terminated; without O_CREAT no more arguments are read.
        let mqd = unsafe { libc::mq_open(c_name.as_ptr(), flags) };
        if mqd == -1 {
            return Err(explain_open(name, io::Error::last_os_error()));
        }
        let mut queue = Queue { mqd, name: name.to_string(), message_size: 0 };
        queue.message_size = queue.attributes()?.mq_msgsize as usize;
        Ok(queue)
    }

    /// The queue's attributes, with this descriptor's flags.
    pub fn attributes(&self) -> io::Result<libc::mq_attr> {
        // SAFETY: `mq_attr` is a plain C struct, filled in by `mq_getattr`.
        let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
        // SAFETY: the descriptor is open and `attr` is writable.
        if unsafe { libc::mq_getattr(self.mqd, &mut attr) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(attr)
    }

    /// Sends one message. With a timeout, waits at most that long for room;
    /// on a non-blocking queue, fails at once when it is full.
    pub fn send(&self, message: &[u8], priority: u32, timeout: Option<Duration>) -> io::Result<()> {
        if message.len() > self.message_size {
            return Err(invalid(format!(
                "message is {} bytes; queue {} takes at most {} bytes",
                message.len(),
                self.name,
                self.message_size
            )));
        }
        // Without a timeout, wait in slices of a second, and between them
        // make sure the queue is still there: a server that stops removes
        // it, and a wait on a removed queue would never end.
        let patient = timeout.is_none();
        let slice = timeout.unwrap_or(WAIT_SLICE);
        let mut deadline = realtime_deadline(slice)?;
        loop {
            // SAFETY: the message is readable for its length; `deadline` lives across the call.
            let res = unsafe {
                libc::mq_timedsend(self.mqd, message.as_ptr().cast(), message.len(), priority, &deadline)
            };
            if res == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Err(full(&self.name, "it is full (--nonblock)")),
                Some(libc::ETIMEDOUT) if patient => {
                    self.check_still_there()?;
                    deadline = realtime_deadline(slice)?;
                }
                Some(libc::ETIMEDOUT) => {
                    let waited = slice.as_secs_f64();
                    return Err(full(&self.name, &format!("it stayed full for {waited} s (--timeout)")));
                }
                _ => return Err(io::Error::new(e.kind(), format!("queue {}: {e}", self.name))),
            }
        }
    }

    /// Fails if the queue's name no longer names the queue this client has
    /// open: the server stopped and removed it, and a full queue that nobody
    /// reads will never have room again.
    fn check_still_there(&self) -> io::Result<()> {
        let again = match Queue::open(&self.name, true) {
            Ok(again) => identity(again.mqd)? == identity(self.mqd)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if again {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("queue {} was removed while waiting for room in it (the server stopped)", self.name),
        ))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the descriptor is open and ours alone; nothing uses it after.
        unsafe { libc::mq_close(self.mqd) };
    }
}

/// How long one wait for room lasts before the client checks that the
/// queue is still there.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// The (device, inode) pair that names a queue object.
fn identity(mqd: libc::mqd_t) -> io::Result<(u64, u64)> {
    // SAFETY: `stat` is a plain C struct, filled in by `fstat`.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: the descriptor is open and `st` is writable.
    if unsafe { libc::fstat(mqd, &mut st) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// Whether a live server owns the queue. A server holds an exclusive
/// `flock` on its queue for its whole life, and the kernel drops it when the
/// server dies; so if a shared lock can be had, no server is there.
pub fn server_running(name: &str) -> io::Result<bool> {
    let queue = match Queue::open(name, true) {
        Ok(queue) => queue,
        // `explain_open` keeps the kind, not the errno.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // SAFETY: plain call on an open descriptor; closing it drops the lock.
    if unsafe { libc::flock(queue.mqd, libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Ok(false);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(true),
        _ => Err(e),
    }
}

/// `mq_timedsend` and `sem_timedwait` take an absolute time on the realtime clock.
pub fn realtime_deadline(timeout: Duration) -> io::Result<libc::timespec> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(io::Error::other)?;
    let at = now.checked_add(timeout).ok_or_else(|| invalid("--timeout is too large".to_string()))?;
    Ok(libc::timespec { tv_sec: at.as_secs() as libc::time_t, tv_nsec: at.subsec_nanos() as libc::c_long })
}

fn explain_open(name: &str, e: io::Error) -> io::Error {
    let message = match e.raw_os_error() {
        Some(libc::ENOENT) => format!("queue {name} does not exist: is the server running?"),
        Some(libc::EACCES) => format!("queue {name}: permission denied"),
        Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => {
            format!("queue name '{name}' is not valid: one component with a leading slash, as in /postbox")
        }
        _ => format!("queue {name}: {e}"),
    };
    io::Error::new(e.kind(), message)
}

fn full(name: &str, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, format!("queue {name} is full: {why}"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
