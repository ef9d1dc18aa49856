//! POSIX message queues as a source (received in bounded batches, with each
//! message's priority) and as a sink (sent with back-pressure).
//!
//! On Linux a message queue descriptor (`mqd_t`) is a file descriptor that
//! epoll watches: readable while a message waits, writable while there is
//! room. So these work on anything `AsFd` that is a queue, such as
//! `ipc::MessageQueue`, without the reactor depending on a queue library.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

use super::outbox::release;
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
/// reader (directly, or by a full sink that holds it). The queue
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

/// A message held by a [`QueueWriter`]: its priority, its number (the
/// oldest first among equals, as the queue itself orders them) and its
/// bytes, in the order a `BinaryHeap` pops them.
type Held = (u32, Reverse<u64>, Vec<u8>);

struct Outgoing {
    fd: RawFd,
    open: Cell<bool>,
    token: Cell<Option<Token>>,
    limit: usize,
    message_size: usize,
    held: RefCell<BinaryHeap<Held>>,
    seq: Cell<u64>,
    /// Producers held until every held message is sent, each once.
    producers: RefCell<Vec<Token>>,
}

/// Sends to a message queue with back-pressure: a message the full queue
/// cannot take is held, and sent as soon as there is room, highest
/// priority first; `WRITABLE` is watched only while messages are held.
///
/// Sending is through a [`QueueWriterHandle`], with the rule for full of
/// every sink ([`Output`](crate::sources::Output)), counted in messages: a
/// message fits while fewer than `limit` are held.
/// [`send`](QueueWriterHandle::send) refuses one that does not fit with
/// `WouldBlock`, so at most `limit` messages are ever held, whoever sends;
/// [`send_or_pause`](QueueWriterHandle::send_or_pause) takes it anyway and
/// holds its producer (any registered source, by its [`Token`]) until every
/// held message is sent: at most `limit` plus one message for each producer
/// held (a [`QueueReader`] stops its batch at once, after that one), and
/// refuses the rest with `WouldBlock`.
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
/// let out = QueueWriter::new(queue, 2)?.register(&mut reactor)?;
/// for i in 0..6u32 {
///     out.send(&mut reactor, format!("m{i}").as_bytes(), i)?; // 4 fit the queue, 2 held
/// }
/// assert_eq!(out.held(), 2);
/// let refused = out.send(&mut reactor, b"m6", 6).unwrap_err(); // the limit: nothing taken
/// assert_eq!(refused.kind(), std::io::ErrorKind::WouldBlock);
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
    on_drain: Option<OnEvent>,
}

/// What callbacks send through: a cheap clone (`Rc`) of a [`QueueWriter`]'s
/// shared side.
#[derive(Clone)]
pub struct QueueWriterHandle {
    out: Rc<Outgoing>,
}

impl<Q: AsFd + 'static> QueueWriter<Q> {
    /// A writer of `queue` that holds at most `limit` messages while the
    /// queue is full (see [`QueueWriter`] for the rule). Makes the queue
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
            producers: RefCell::new(Vec::new()),
        };
        Ok(QueueWriter { queue, out: Rc::new(out), batch: BATCH, on_drain: None })
    }

    /// Called when every held message has been sent (after the producers
    /// it held were released).
    pub fn on_drain(mut self, on_drain: impl FnMut(&mut Context) + 'static) -> QueueWriter<Q> {
        self.on_drain = Some(Box::new(on_drain));
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
    /// holds it if it fits, else refuses it with `WouldBlock` (nothing is
    /// held; wait for `on_drain`). `InvalidInput` for a message larger than
    /// the queue's message size, `BrokenPipe` once the writer is gone; any
    /// other error of `mq_send` as it is.
    pub fn send(&self, ctx: &mut Context, message: &[u8], priority: u32) -> io::Result<()> {
        self.send_or_pause(ctx, message, priority, None)
    }

    /// As [`send`](Self::send), but a message that does not fit is held
    /// anyway, and `producer` (the source whose message this is:
    /// [`Context::current`] in its callback) is held until every held
    /// message is sent. With `None` (a timer, outside the loop), or a token
    /// no longer registered, it is `send`.
    pub fn send_or_pause(
        &self,
        ctx: &mut Context,
        message: &[u8],
        priority: u32,
        producer: Option<Token>,
    ) -> io::Result<()> {
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
        let producer = producer.filter(|&p| ctx.contains(p));
        let mut producers = out.producers.borrow_mut();
        let new = producer.filter(|p| !producers.contains(p));
        // Past the limit: one message more for each producer held (the one
        // it sends before its hold takes effect), this one included.
        let room =
            out.limit + if producer.is_some() { producers.len() + usize::from(new.is_some()) } else { 0 };
        if self.held() >= room {
            let full = format!("the queue writer holds its {} messages: wait for its on_drain", self.held());
            return Err(io::Error::new(io::ErrorKind::WouldBlock, full));
        }
        out.seq.set(out.seq.get() + 1);
        out.held.borrow_mut().push((priority, Reverse(out.seq.get()), message.to_vec()));
        if let Some(producer) = new.filter(|_| self.held() >= out.limit) {
            ctx.hold(producer)?;
            producers.push(producer);
        }
        drop(producers);
        self.arm(ctx)
    }

    /// Messages held, waiting for room in the queue.
    pub fn held(&self) -> usize {
        self.out.held.borrow().len()
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
            let Some((priority, _, bytes)) = held.peek() else { break };
            match send(out.fd, bytes, *priority) {
                Ok(()) => drop(held.pop()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let handle = QueueWriterHandle { out: self.out.clone() };
        if handle.held() == 0 {
            release(ctx, out.producers.take(), "queue writer");
            if let Some(on_drain) = &mut self.on_drain {
                on_drain(ctx);
            }
        }
        handle.arm(ctx)
    }

    fn on_remove(&mut self, ctx: &mut Context) {
        // Removed with messages held: the producers it held must not stay so.
        release(ctx, self.out.producers.take(), "queue writer");
    }

    fn on_shutdown(&mut self) {
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
