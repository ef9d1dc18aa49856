//! POSIX message queues as a source (received in bounded batches, with each
//! message's priority) and as a sink (sent with back-pressure).
//!
//! On Linux a message queue descriptor (`mqd_t`) is a file descriptor that
//! epoll watches: readable while a message waits, writable while there is
//! room. So these work on anything `AsFd` that is a queue, such as
//! `ipc::MessageQueue`, without the reactor depending on a queue library.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

use super::paused::PausedProducers;
use crate::callback::OnEvent;
use crate::sys::syscall;
use crate::{Context, Handler, Interest, Readiness, Token};

/// How many messages one readiness report may take or send by default.
const BATCH: usize = 16;

type OnMessage = Box<dyn FnMut(&[u8], u32, &mut Context)>;

/// Receives from a message queue in bounded batches and hands each message,
/// with its priority, to a closure.
///
/// At most `batch` messages (16 unless [`batch`](QueueReader::batch) says
/// otherwise) per readiness: a queue that fills as fast as it empties
/// cannot starve the loop. A batch stops early when the closure pauses the
/// reader (directly, or by sending into a full [`QueueWriter`]). The queue
/// is made non-blocking (`mq_setattr`), which every descriptor of that
/// open queue shares.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use ipc::{MessageQueue, QueueOptions};
/// use reactor::{sources::QueueReader, Reactor};
///
/// let name = format!("/reactor-doc-reader-{}", std::process::id());
/// let options = QueueOptions { max_messages: 4, message_size: 64, ..QueueOptions::default() };
/// let queue = MessageQueue::create(&name, &options)?;
/// MessageQueue::unlink(&name)?; // the name is not needed any more
/// queue.send(b"low", 1)?;
/// queue.send(b"high", 7)?;
/// let mut reactor = Reactor::new()?;
/// let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let seen = got.clone();
/// reactor.register(QueueReader::new(queue, move |message, priority, ctx| {
///     seen.borrow_mut().push((String::from_utf8_lossy(message).into_owned(), priority));
///     if seen.borrow().len() == 2 {
///         ctx.stop();
///     }
/// })?)?;
/// reactor.run()?;
/// assert_eq!(*got.borrow(), [("high".to_string(), 7), ("low".to_string(), 1)]);
/// # Ok(())
/// # }
/// ```
pub struct QueueReader<Q> {
    queue: Q,
    buf: Vec<u8>,
    batch: usize,
    on_message: OnMessage,
}

impl<Q: AsFd + 'static> QueueReader<Q> {
    /// A reader of `queue` that passes each message and its priority to
    /// `on_message`. Makes the queue non-blocking; fails if `queue` is not
    /// a message queue.
    pub fn new(
        queue: Q,
        on_message: impl FnMut(&[u8], u32, &mut Context) + 'static,
    ) -> io::Result<QueueReader<Q>> {
        let attr = nonblocking(queue.as_fd().as_raw_fd())?;
        let buf = vec![0; usize::try_from(attr.mq_msgsize).unwrap_or(0)];
        Ok(QueueReader { queue, buf, batch: BATCH, on_message: Box::new(on_message) })
    }

    /// At most `batch` messages per readiness (at least 1).
    pub fn batch(mut self, batch: usize) -> QueueReader<Q> {
        self.batch = batch.max(1);
        self
    }
}

impl<Q: AsFd> Handler for QueueReader<Q> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }

    fn name(&self) -> &str {
        "queue reader"
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let me = ctx.current();
        let fd = self.queue.as_fd().as_raw_fd();
        for _ in 0..self.batch {
            let mut priority = 0;
            // SAFETY: `buf` is writable for its length, `priority` for a u32.
            match syscall!(mq_receive(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), &mut priority)) {
                Ok(n) => (self.on_message)(&self.buf[..n as usize], priority, ctx),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if me.is_some_and(|me| ctx.is_paused(me) || !ctx.contains(me)) {
                break; // paused or removed by the closure: not one message more
            }
        }
        Ok(())
    }
}

/// A message held by a [`QueueWriter`]: highest priority first, then
/// oldest first, as the queue itself would order them.
struct Held {
    priority: u32,
    seq: Reverse<u64>,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Held) -> Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

struct Outgoing {
    fd: RawFd,
    open: Cell<bool>,
    token: Cell<Option<Token>>,
    limit: usize,
    message_size: usize,
    held: RefCell<BinaryHeap<Held>>,
    seq: Cell<u64>,
    /// Sources paused because they sent while `limit` messages were held.
    paused: PausedProducers,
    on_drain: Cell<Option<OnEvent>>,
}

/// Sends to a message queue with back-pressure: a message the full queue
/// cannot take is held, and sent as soon as there is room, highest
/// priority first; `WRITABLE` is watched only while messages are held.
///
/// Sending is through a [`QueueWriterHandle`]. When `limit` messages are
/// held, the message is still taken and the source that sent it (the one
/// whose callback is running, [`Context::current`]) is paused until every
/// held message has been sent: at most `limit` messages plus one per
/// producer are ever held, and no token needs to be kept by hand. The
/// producer is paused with [`Context::pause`] and resumed with
/// [`Context::resume`].
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use ipc::{Access, MessageQueue, QueueOptions};
/// use reactor::{sources::QueueWriter, Reactor};
///
/// let name = format!("/reactor-doc-writer-{}", std::process::id());
/// let options = QueueOptions { max_messages: 4, message_size: 64, ..QueueOptions::default() };
/// let queue = MessageQueue::create(&name, &options)?;
/// let reader = MessageQueue::open(&name, Access::Receive)?;
/// MessageQueue::unlink(&name)?;
/// let mut reactor = Reactor::new()?;
/// let out = QueueWriter::new(queue, 100)?.register(&mut reactor)?;
/// for i in 0..6u32 {
///     out.send(&mut reactor, format!("m{i}").as_bytes(), i)?; // 4 fit, 2 held
/// }
/// assert_eq!(out.held(), 2);
/// let mut buf = [0; 64];
/// let (n, priority) = reader.receive(&mut buf)?; // the highest first; room for one more
/// assert_eq!((&buf[..n], priority), (&b"m3"[..], 3));
/// reactor.run_once(Some(std::time::Duration::from_secs(1)))?;
/// assert_eq!(out.held(), 1);
/// assert_eq!(reader.receive(&mut buf)?, (2, 5));
/// # Ok(())
/// # }
/// ```
pub struct QueueWriter<Q> {
    queue: Q,
    out: Rc<Outgoing>,
    batch: usize,
}

/// What callbacks send through: a cheap clone (`Rc`) of a [`QueueWriter`]'s
/// shared side.
#[derive(Clone)]
pub struct QueueWriterHandle {
    out: Rc<Outgoing>,
}

impl<Q: AsFd + 'static> QueueWriter<Q> {
    /// A writer of `queue` that holds at most `limit` messages (plus one
    /// per paused producer) while the queue is full. Makes the queue
    /// non-blocking; fails if `queue` is not a message queue.
    pub fn new(queue: Q, limit: usize) -> io::Result<QueueWriter<Q>> {
        let fd = queue.as_fd().as_raw_fd();
        let attr = nonblocking(fd)?;
        let out = Outgoing {
            fd,
            open: Cell::new(true),
            token: Cell::new(None),
            limit: limit.max(1),
            message_size: usize::try_from(attr.mq_msgsize).unwrap_or(0),
            held: RefCell::new(BinaryHeap::new()),
            seq: Cell::new(0),
            paused: PausedProducers::default(),
            on_drain: Cell::new(None),
        };
        Ok(QueueWriter { queue, out: Rc::new(out), batch: BATCH })
    }

    /// Called when every held message has been sent (after the producers
    /// it paused were resumed).
    pub fn on_drain(self, on_drain: impl FnMut(&mut Context) + 'static) -> QueueWriter<Q> {
        self.out.on_drain.set(Some(Box::new(on_drain)));
        self
    }

    /// Registers the writer and returns its handle.
    pub fn register(self, ctx: &mut Context) -> io::Result<QueueWriterHandle> {
        let handle = QueueWriterHandle { out: self.out.clone() };
        let token = ctx.register(self)?;
        handle.out.token.set(Some(token));
        handle.arm(ctx)?;
        Ok(handle)
    }
}

impl QueueWriterHandle {
    /// Sends `message` with `priority` now if the queue has room, else
    /// holds it (see [`QueueWriter`]). `InvalidInput` for a message larger
    /// than the queue's message size (nothing is held), `BrokenPipe` once
    /// the writer is gone; any other error of `mq_send` as it is.
    pub fn send(&self, ctx: &mut Context, message: &[u8], priority: u32) -> io::Result<()> {
        let out = &*self.out;
        if !out.open.get() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the queue writer is gone"));
        }
        if message.len() > out.message_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a message of {} bytes: the queue takes {} at most", message.len(), out.message_size),
            ));
        }
        if out.held.borrow().is_empty() {
            match send(out.fd, message, priority) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
        }
        let seq = out.seq.get() + 1;
        out.seq.set(seq);
        let held = {
            let mut held = out.held.borrow_mut();
            held.push(Held { priority, seq: Reverse(seq), bytes: message.to_vec() });
            held.len()
        };
        if held >= out.limit {
            if let Some(producer) = ctx.current().filter(|&p| Some(p) != out.token.get()) {
                out.paused.pause(ctx, producer)?;
            }
        }
        self.arm(ctx)
    }

    /// Messages held, waiting for room in the queue.
    pub fn held(&self) -> usize {
        self.out.held.borrow().len()
    }

    /// Whether `limit` messages or more are held.
    pub fn is_full(&self) -> bool {
        self.held() >= self.out.limit
    }

    /// The writer's token, once registered.
    pub fn token(&self) -> Option<Token> {
        self.out.token.get()
    }

    /// Watches for room while messages are held, and only then.
    fn arm(&self, ctx: &mut Context) -> io::Result<()> {
        let Some(token) = self.out.token.get().filter(|_| self.out.open.get()) else { return Ok(()) };
        let interest = if self.held() > 0 { Interest::WRITABLE } else { Interest::NONE };
        if ctx.interest(token).is_some_and(|now| now != interest) {
            ctx.set_interest(token, interest)?;
        }
        Ok(())
    }
}

impl<Q: AsFd> Handler for QueueWriter<Q> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }

    fn interest(&self) -> Interest {
        Interest::NONE
    }

    fn name(&self) -> &str {
        "queue writer"
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let out = &*self.out;
        for _ in 0..self.batch {
            let mut held = out.held.borrow_mut();
            let Some(next) = held.peek() else { break };
            match send(out.fd, &next.bytes, next.priority) {
                Ok(()) => drop(held.pop()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let handle = QueueWriterHandle { out: self.out.clone() };
        if handle.held() == 0 {
            out.paused.resume_all(ctx)?;
            if let Some(mut on_drain) = out.on_drain.take() {
                on_drain(ctx);
                out.on_drain.set(Some(on_drain));
            }
        }
        handle.arm(ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        // Removed with messages held: the producers it paused must not stay paused.
        if let Err(e) = self.out.paused.resume_all(ctx) {
            log::warn!("queue writer: resuming a paused producer: {e}");
        }
    }

    fn on_shutdown(&mut self) {
        self.out.open.set(false);
        let left = self.out.held.borrow().len();
        if left > 0 {
            log::debug!("queue writer: {left} held messages dropped at shutdown");
        }
    }
}

impl<Q> Drop for QueueWriter<Q> {
    fn drop(&mut self) {
        self.out.open.set(false);
    }
}

fn send(fd: RawFd, message: &[u8], priority: u32) -> io::Result<()> {
    // SAFETY: the message is readable for its length.
    syscall!(mq_send(fd, message.as_ptr().cast(), message.len(), priority)).map(drop)
}

/// Makes the queue non-blocking and returns its attributes; fails with
/// `InvalidInput` for a descriptor that is not a message queue.
fn nonblocking(fd: RawFd) -> io::Result<libc::mq_attr> {
    // SAFETY: `mq_attr` is a plain C struct; all-zero is valid.
    let mut attr: libc::mq_attr = unsafe { mem::zeroed() };
    // SAFETY: `attr` is writable; a descriptor that is no queue gives EBADF.
    syscall!(mq_getattr(fd, &mut attr)).map_err(|e| match e.raw_os_error() {
        Some(libc::EBADF) => io::Error::new(io::ErrorKind::InvalidInput, "not a message queue"),
        _ => e,
    })?;
    if attr.mq_flags & libc::c_long::from(libc::O_NONBLOCK) == 0 {
        attr.mq_flags |= libc::c_long::from(libc::O_NONBLOCK);
        // SAFETY: `attr` is readable; the old attributes are not asked for.
        syscall!(mq_setattr(fd, &attr, std::ptr::null_mut()))?;
    }
    Ok(attr)
}

impl<Q> fmt::Debug for QueueReader<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueReader").field("batch", &self.batch).finish_non_exhaustive()
    }
}

impl<Q> fmt::Debug for QueueWriter<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWriter").field("handle", &QueueWriterHandle { out: self.out.clone() }).finish()
    }
}

impl fmt::Debug for QueueWriterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWriterHandle")
            .field("token", &self.out.token.get())
            .field("held", &self.held())
            .field("limit", &self.out.limit)
            .field("open", &self.out.open.get())
            .finish()
    }
}
