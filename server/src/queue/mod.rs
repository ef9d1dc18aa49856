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
//! is gone: the next server adopts it and prints what is still in it, if
//! the queue is this user's and lets nobody else read it.
//!
//! This module is the handler, [`ServerQueue`]; what the server asks of
//! the queue is in `spec`, how it comes to own one in `adopt`, and the
//! system's limits on its size in `limits`.

mod adopt;
mod limits;
mod spec;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use ipc::MessageQueue;
use reactor::sources::SignalFd;
use reactor::{Context, Handler, Readiness};

pub use spec::{Notify, Origin, QueueSpec};

use crate::context;
use crate::lifecycle::SharedLifecycle;
use crate::output::SharedOutput;
use crate::stats::Source;
use crate::sys::retry;
use adopt::{abandon, create_or_adopt};
use limits::check_system_limits;

/// How many messages one turn at the queue may take: enough that a queue
/// refilled as fast as it is read rarely ends a round early (each round
/// ends with a write to stdout, which wakes its reader), few enough to keep
/// other sources served: about a millisecond of 16-byte messages.
pub const TURN_MESSAGES: usize = 1024;

/// How many bytes of messages one turn may take, so that a turn of large
/// messages is no longer than one of small ones.
pub const TURN_BYTES: usize = 1 << 20;

/// What one turn at the queue took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Messages printed.
    pub taken: usize,
    /// Whether the turn stopped at a bound, not at an empty queue: more
    /// may wait.
    pub more: bool,
}

/// At shutdown, after the name is gone, clients that opened the queue
/// before may still send: a queue that had messages this recently is
/// drained until it has been quiet this long...
const SHUTDOWN_QUIET: Duration = Duration::from_millis(20);

/// ...but for no longer than this in all.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(2);

/// What the reactor watches for the queue.
enum Wakeup {
    /// The queue descriptor itself.
    Epoll,
    /// A signalfd for the signal that `mq_notify` sends.
    Signal { signal: i32, fd: SignalFd },
}

/// The server's queue, as a reactor handler.
pub struct ServerQueue {
    queue: MessageQueue,
    label: String,
    capacity: usize,
    buf: Vec<u8>,
    output: SharedOutput,
    lifecycle: SharedLifecycle,
    wakeup: Wakeup,
    /// The loop ran: shutdown is news. Before, it is a failed startup
    /// undoing itself, which the error already explains.
    started: bool,
    /// Created by this server, or adopted.
    origin: Origin,
    /// When a drain last found a message: a queue quiet for longer than
    /// [`SHUTDOWN_QUIET`] when the stop comes is not waited for.
    last_message: Option<Instant>,
}

impl ServerQueue {
    /// Creates the queue, or adopts one that a dead server left behind.
    /// Fails if a live server owns it, or if it is not safe to adopt.
    pub fn open(
        spec: &QueueSpec,
        notify: Notify,
        output: SharedOutput,
        lifecycle: SharedLifecycle,
    ) -> io::Result<(ServerQueue, Origin)> {
        let label = format!("queue {}", spec.name);
        check_system_limits(spec).map_err(|e| context(&label, e))?;
        let (queue, origin) = create_or_adopt(spec)?;
        match ServerQueue::assemble(queue, label, notify, output, lifecycle) {
            Ok(mut server_queue) => {
                let origin = match origin {
                    Origin::Adopted { .. } => Origin::Adopted { waiting: server_queue.waiting() },
                    created => created,
                };
                server_queue.origin = origin;
                Ok((server_queue, origin))
            }
            Err(e) => {
                // Not ours to keep: a queue we created goes; an adopted one
                // stays, with its messages, for the next server.
                abandon(&spec.name, origin);
                Err(e)
            }
        }
    }

    /// The handler around an open, locked queue.
    fn assemble(
        queue: MessageQueue,
        label: String,
        notify: Notify,
        output: SharedOutput,
        lifecycle: SharedLifecycle,
    ) -> io::Result<ServerQueue> {
        let attr = queue.attributes()?;
        let wakeup = match notify {
            Notify::Epoll => Wakeup::Epoll,
            Notify::Signal => {
                let signal = libc::SIGRTMIN();
                // The signal is blocked and read by the loop: no handler runs.
                let signal_fd = SignalFd::new(&[signal], |_, _| {}).map_err(|e| context(&label, e))?;
                // Registered now, so that a queue another process watches
                // is a startup failure, not a handler removed later.
                queue.notify_signal(signal)?;
                Wakeup::Signal { signal, fd: signal_fd }
            }
        };
        Ok(ServerQueue {
            queue,
            label,
            capacity: usize::try_from(attr.max_messages).unwrap_or(1).max(1),
            buf: vec![0; attr.message_size as usize],
            output,
            lifecycle,
            wakeup,
            started: false,
            origin: Origin::Created,
            last_message: None,
        })
    }

    /// The queue itself.
    pub fn queue(&self) -> &MessageQueue {
        &self.queue
    }

    /// Capacity in messages.
    pub fn max_messages(&self) -> i64 {
        self.capacity as i64
    }

    /// Size of the largest message.
    pub fn message_size(&self) -> i64 {
        self.buf.len() as i64
    }

    fn waiting(&self) -> i64 {
        self.queue.attributes().map_or(0, |a| a.current_messages)
    }

    /// Prints up to `limit` messages, or [`TURN_BYTES`] of them, and says
    /// how many and whether more may wait. Notes the queue's depth as last
    /// seen, for the statistics.
    ///
    /// A message taken from the queue goes straight into the output
    /// journal, which outlives the server: a `SIGKILL` loses at most the
    /// one message between `mq_receive` and its line (`crate::journal`).
    pub fn drain(&mut self, limit: usize) -> io::Result<Turn> {
        self.drain_within(limit, TURN_BYTES)
    }

    /// [`drain`](ServerQueue::drain) with a bound in bytes of one's own.
    fn drain_within(&mut self, limit: usize, limit_bytes: usize) -> io::Result<Turn> {
        let mut output = self.output.borrow_mut();
        let mut bytes = 0;
        let mut taken = 0;
        while taken < limit && bytes < limit_bytes {
            if !output.takes_queue_message(self.buf.len()) {
                // stdout is gone and nothing would keep the line: the
                // message stays in the queue, for the next server.
                return Ok(Turn { taken, more: false });
            }
            match self.queue.receive(&mut self.buf) {
                Ok((len, priority)) => {
                    output.queue_line(priority, strip_one_newline(&self.buf[..len]));
                    taken += 1;
                    bytes += len;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    output.saw_queue_depth(0);
                    if taken > 0 {
                        self.last_message = Some(Instant::now());
                    }
                    return Ok(Turn { taken, more: false });
                }
                Err(e) => {
                    output.source_failed(Source::Queue);
                    return Err(e);
                }
            }
        }
        // Stopped at a bound: something may be left. One look, not one per message.
        self.last_message = Some(Instant::now());
        output.saw_queue_depth(self.queue.attributes()?.current_messages);
        Ok(Turn { taken, more: true })
    }

    /// A server without its queue has no reason to run: an error stops it,
    /// and the exit status says so.
    fn fail_on_error(&mut self, result: io::Result<()>, ctx: &mut Context) -> io::Result<()> {
        if result.is_err() {
            self.lifecycle.fail(ctx);
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
        // The reactor names the queue in its log line: the error does not again.
        let label = format!("{}: ", self.label);
        self.queue.notify_signal(signal).map_err(|e| {
            let text = e.to_string();
            let why = text.strip_prefix(&label).unwrap_or(&text);
            io::Error::new(
                e.kind(),
                format!(
                    "{why} (with --notify signal, any process that may open the queue can take its \
                     notification; the default --notify epoll cannot be disturbed so)"
                ),
            )
        })?;
        if self.drain(TURN_MESSAGES)?.more {
            // More may wait, and the queue will not notify while it is not
            // empty: come back next round, as level-triggered epoll would.
            // SAFETY: plain call; the signal is blocked, so it only becomes pending.
            unsafe { libc::raise(signal) };
        }
        Ok(())
    }

    /// Lines the output has dropped, and lines it keeps in the journal for
    /// the next server, so far.
    fn unprinted(&self) -> (u64, u64) {
        let output = self.output.borrow();
        (output.counters().lines_dropped, output.kept_lines())
    }

    /// After the name is gone: drains until the queue has been quiet for
    /// [`SHUTDOWN_QUIET`] (clients that opened it before may still send),
    /// for at most [`SHUTDOWN_LIMIT`]; a queue that was quiet that long
    /// already, and is empty, is not waited for (an idle server stops at
    /// once). Returns the messages taken, and how many of them arrived
    /// after the stop began.
    fn drain_until_quiet(&mut self) -> io::Result<(usize, usize)> {
        let waiting_at_stop = usize::try_from(self.waiting()).unwrap_or(0);
        let deadline = Instant::now() + SHUTDOWN_LIMIT;
        let mut total = 0;
        loop {
            let turn = self.drain(self.capacity)?;
            total += turn.taken;
            let now = Instant::now();
            if now >= deadline || self.output.borrow().is_closed() {
                break;
            }
            if turn.more {
                continue;
            }
            let recent = self.last_message.is_some_and(|at| at.elapsed() < SHUTDOWN_QUIET);
            if turn.taken == 0 && !recent {
                break;
            }
            // Written before a wait, as a round's output is. An error is
            // kept by the output, and ends the drain above.
            let _ = self.output.borrow_mut().flush();
            let quiet = SHUTDOWN_QUIET.min(deadline - now).as_millis() as libc::c_int;
            let mut pollfd = libc::pollfd { fd: self.queue.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pollfd` is a valid array of one element for the call's duration.
            if retry(|| unsafe { libc::poll(&mut pollfd, 1, quiet) })? == 0 {
                break;
            }
        }
        Ok((total, total.saturating_sub(waiting_at_stop)))
    }

    /// A read of the queue failed during the shutdown: logged, and the exit
    /// status is 1. Returns the messages it took: none.
    fn failed_at_shutdown(&self, e: &io::Error) -> usize {
        log::error!("{}: {e}", self.label);
        self.lifecycle.mark_failed();
        0
    }

    /// Logs what the shutdown took: `taken` messages, `late` of them after
    /// the stop began, when the output had dropped and kept `before` lines.
    fn report_shutdown(&self, taken: usize, late: usize, before: (u64, u64)) {
        // The output keeps or drops its tail: the lines kept or dropped
        // since are the last ones taken.
        let (dropped_now, kept_now) = self.unprinted();
        let since = |now: u64, before: u64| usize::try_from(now.saturating_sub(before)).unwrap_or(usize::MAX);
        let dropped = since(dropped_now, before.0).min(taken);
        let kept = since(kept_now, before.1).min(taken - dropped);
        if taken > dropped + kept {
            log::info!("{}: printed {} message(s) left at shutdown", self.label, taken - dropped - kept);
        }
        if kept > 0 {
            log::warn!(
                "{}: kept {kept} message(s) left at shutdown in the journal (stdout closed or full): \
                 the next server on this queue prints them",
                self.label
            );
        }
        if dropped > 0 {
            log::warn!(
                "{}: dropped {dropped} message(s) left at shutdown (stdout closed or full)",
                self.label
            );
        }
        if late > 0 {
            log::warn!("{}: {late} message(s) arrived after the shutdown began", self.label);
        }
    }
}

impl std::fmt::Debug for ServerQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let notify = match self.wakeup {
            Wakeup::Epoll => Notify::Epoll,
            Wakeup::Signal { .. } => Notify::Signal,
        };
        f.debug_struct("ServerQueue")
            .field("queue", &self.queue)
            .field("notify", &notify)
            .finish_non_exhaustive()
    }
}

impl Handler for ServerQueue {
    fn fd(&self) -> BorrowedFd<'_> {
        match &self.wakeup {
            Wakeup::Epoll => self.queue.as_fd(),
            Wakeup::Signal { fd, .. } => fd.fd(),
        }
    }

    fn name(&self) -> &str {
        &self.label
    }

    /// An adopted queue may hold messages: print them before anything else.
    fn on_start(&mut self, ctx: &mut Context) -> io::Result<()> {
        self.started = true;
        let result = match self.wakeup {
            Wakeup::Epoll => self.drain(self.capacity).map(drop),
            Wakeup::Signal { .. } => self.on_signal(),
        };
        self.fail_on_error(result, ctx)
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        let result = match self.wakeup {
            Wakeup::Epoll => self.drain(TURN_MESSAGES).map(drop),
            Wakeup::Signal { .. } => self.on_signal(),
        };
        self.fail_on_error(result, ctx)
    }

    /// Removes the name first, so that a late client is told "no such queue"
    /// instead of sending into a queue about to vanish; then prints what is
    /// left, and what clients that opened it before still send. With stdout
    /// gone, the journal takes what it can keep first, and a queue still
    /// holding messages keeps its name, for the next server, which adopts
    /// it. The descriptor is closed (`mq_close`) when the handler drops.
    fn on_shutdown(&mut self) {
        if !self.started && self.origin != Origin::Created {
            // A startup that failed after adopting: the queue stays, with
            // its messages, for the next server.
            return;
        }
        let before = self.unprinted();
        let mut taken = 0;
        if self.output.borrow().is_closed() {
            // What the journal can keep is taken; the rest stays.
            taken = self.drain(self.capacity).map_or_else(|e| self.failed_at_shutdown(&e), |turn| turn.taken);
            let left = self.waiting();
            if left > 0 {
                self.report_shutdown(taken, 0, before);
                log::warn!(
                    "{}: stdout is gone: {left} message(s) left in the queue for the next server, \
                     which adopts it (the queue is not removed)",
                    self.label
                );
                return;
            }
        }
        let unlinked = MessageQueue::unlink(self.queue.name());
        if let Err(e) = &unlinked {
            log::error!("{e}");
            self.lifecycle.mark_failed();
        }
        let late = match self.drain_until_quiet() {
            Ok((more, late)) => {
                taken += more;
                late
            }
            Err(e) => self.failed_at_shutdown(&e),
        };
        self.report_shutdown(taken, late, before);
        if unlinked.is_ok() && self.started {
            log::info!("{}: removed", self.label);
        }
    }
}

/// Clients such as `echo` end a message with a newline; one is dropped.
fn strip_one_newline(message: &[u8]) -> &[u8] {
    message.strip_suffix(b"\n").unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_trailing_newline_is_dropped() {
        assert_eq!(strip_one_newline(b"hi\n"), b"hi");
        assert_eq!(strip_one_newline(b"hi\n\n"), b"hi\n");
        assert_eq!(strip_one_newline(b"hi"), b"hi");
    }

    #[test]
    fn a_turn_stops_at_its_bounds_and_says_whether_more_may_wait() {
        use crate::lifecycle::Lifecycle;
        use crate::output::Output;
        use ipc::Access;

        /// Removes the queue even when the test fails.
        struct Unlink(String);
        impl Drop for Unlink {
            fn drop(&mut self) {
                let _ = MessageQueue::unlink(&self.0);
            }
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("/pbtest-turn-{}-{n}", std::process::id());
        let _unlink = Unlink(name.clone());
        let spec = QueueSpec { name: name.clone(), max_messages: 10, message_size: 100, mode: 0o600 };
        let lifecycle = Lifecycle::new(reactor::StopFlag::never());
        // Ten lines of 100 bytes stay in the output's buffer: nothing is written to stdout.
        let output = Output::stdout(lifecycle.clone(), &[], 100);
        let (mut queue, _) =
            ServerQueue::open(&spec, Notify::Epoll, output, lifecycle).expect("create the queue");
        let sender = MessageQueue::open_with(&name, Access::Send, true).expect("open it to send");
        for _ in 0..10 {
            sender.send(&[b'm'; 100], 0).expect("send");
        }
        assert_eq!(queue.drain_within(3, usize::MAX).unwrap(), Turn { taken: 3, more: true });
        // 300 bytes reach a bound of 250: a third message, then a stop.
        assert_eq!(queue.drain_within(10, 250).unwrap(), Turn { taken: 3, more: true });
        assert_eq!(queue.drain_within(10, usize::MAX).unwrap(), Turn { taken: 4, more: false });
        assert_eq!(queue.drain_within(10, usize::MAX).unwrap(), Turn { taken: 0, more: false });
    }
}
