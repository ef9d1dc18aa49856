//! A channel from any thread into the loop: items in a locked queue, and a
//! [`Bell`] that wakes the loop when the queue stops being empty.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::callback::{Callback, OnEvent};
use crate::sources::waker::Bell;
use crate::{Context, Handler, Readiness};

struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    bell: Bell,
    senders: AtomicUsize,
    receiver_alive: AtomicBool,
}

impl<T> Shared<T> {
    /// The queue, even if a thread panicked while holding the lock: a
    /// `VecDeque` is never left half-changed by `push_back` or `swap`.
    fn queue(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes a channel whose items reach a closure on the loop's thread, with
/// the `Context`.
///
/// [`Sender`] is `Send + Clone` (for `T: Send`); each item sent reaches the
/// closure exactly once, in the order it was sent by its sender (items of
/// different senders interleave as they were sent). When the last sender is
/// dropped, and after every item sent before, the receiver's `on_closed`
/// runs and the receiver removes itself. This is also the way to feed the
/// loop from a blocking call that has no descriptor (`sem_wait`, a
/// computation): a thread blocks and sends what it got.
///
/// The queue is unbounded; a producer that can outrun the loop needs its
/// own limit. Fails only if the `eventfd` cannot be created.
///
/// ```
/// use reactor::{sources::channel, Reactor};
///
/// # fn main() -> std::io::Result<()> {
/// let (sender, receiver) = channel::<u32>()?;
/// let mut reactor = Reactor::new()?;
/// let sum = std::rc::Rc::new(std::cell::Cell::new(0));
/// let total = sum.clone();
/// reactor.register(
///     receiver
///         .on_message(move |n, _ctx| total.set(total.get() + n))
///         .on_closed(|ctx| ctx.stop()),
/// )?;
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let sender = sender.clone();
///         std::thread::spawn(move || (1..=10).try_for_each(|n| sender.send(n)))
///     })
///     .collect();
/// drop(sender); // the threads hold the last ones
/// reactor.run()?; // until every sender is gone and every item delivered
/// for thread in threads {
///     thread.join().expect("no panic").expect("receiver alive");
/// }
/// assert_eq!(sum.get(), 4 * 55);
/// # Ok(())
/// # }
/// ```
pub fn channel<T>() -> io::Result<(Sender<T>, Receiver<T>)> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        bell: Bell::new()?,
        senders: AtomicUsize::new(1),
        receiver_alive: AtomicBool::new(true),
    });
    let receiver =
        Receiver { shared: shared.clone(), batch: VecDeque::new(), on_message: None, on_closed: None };
    Ok((Sender { shared }, receiver))
}

/// The sending side of a [`channel`]: clone it for each producer.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// An item that could not be sent: the receiver is gone. Holds the item.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the receiving loop is gone")
    }
}

impl<T: fmt::Debug> std::error::Error for SendError<T> {}

/// A send to a loop that is gone is a broken pipe, for `?` in functions
/// that return `io::Result` (the item is dropped).
impl<T> From<SendError<T>> for io::Error {
    fn from(_: SendError<T>) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "the receiving loop is gone")
    }
}

impl<T> Sender<T> {
    /// Queues `item` and wakes the loop. Never blocks (the lock is held
    /// for a push). Fails, handing the item back, once the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        if !self.shared.receiver_alive.load(Ordering::Acquire) {
            return Err(SendError(item));
        }
        self.shared.queue().push_back(item);
        if let Err(e) = self.shared.bell.ring() {
            log::error!("channel: cannot wake the loop: {e}");
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: tell the loop, after every item sent before.
            if let Err(e) = self.shared.bell.ring() {
                log::error!("channel: cannot wake the loop: {e}");
            }
        }
    }
}

/// The loop's side of a [`channel`]: a handler to register, after giving it
/// [`on_message`](Receiver::on_message).
///
/// Per wake it takes every item queued so far (one lock, the queue swapped
/// with an empty one) and delivers them in order; items sent meanwhile wait
/// for the next round.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The items taken from the queue and not yet delivered.
    batch: VecDeque<T>,
    on_message: Option<Callback<T>>,
    on_closed: Option<OnEvent>,
}

impl<T> Receiver<T> {
    /// What to do with each item. Without it, registration fails (the
    /// receiver's `on_start` returns `InvalidInput`).
    pub fn on_message(mut self, on_message: impl FnMut(T, &mut Context) + 'static) -> Receiver<T> {
        self.on_message = Some(Box::new(on_message));
        self
    }

    /// What to do once the last sender is gone and every item delivered;
    /// the receiver then removes itself.
    pub fn on_closed(mut self, on_closed: impl FnMut(&mut Context) + 'static) -> Receiver<T> {
        self.on_closed = Some(Box::new(on_closed));
        self
    }
}

impl<T: 'static> Handler for Receiver<T> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.shared.bell.fd()
    }

    fn name(&self) -> &str {
        "channel"
    }

    fn on_start(&mut self, _: &mut Context) -> io::Result<()> {
        match self.on_message {
            Some(_) => Ok(()),
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "a channel receiver needs on_message")),
        }
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let Some(mut on_message) = self.on_message.take() else { return Ok(()) };
        let closed = self.receive(ctx, |item, ctx| {
            on_message(item, ctx);
            Ok(())
        });
        self.on_message = Some(on_message);
        if closed? {
            if let Some(on_closed) = &mut self.on_closed {
                on_closed(ctx);
            }
            ctx.remove_self();
        }
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// Takes every item queued so far and hands each to `deliver`, in
    /// order, until one fails. Returns whether the last sender is gone (and
    /// so every item it sent has been handed over).
    pub(crate) fn receive(
        &mut self,
        ctx: &mut Context,
        mut deliver: impl FnMut(T, &mut Context) -> io::Result<()>,
    ) -> io::Result<bool> {
        self.shared.bell.take()?;
        // Read before the queue: every item sent before the last sender
        // went is in the queue by then.
        let closed = self.shared.senders.load(Ordering::Acquire) == 0;
        std::mem::swap(&mut *self.shared.queue(), &mut self.batch);
        while let Some(item) = self.batch.pop_front() {
            deliver(item, ctx)?;
        }
        Ok(closed)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_alive.store(false, Ordering::Release);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("senders", &self.shared.senders.load(Ordering::Relaxed)).finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("fd", &self.shared.bell.fd())
            .field("senders", &self.shared.senders.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
