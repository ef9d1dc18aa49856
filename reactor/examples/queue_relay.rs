//! Relays each message of one POSIX message queue to another, with its
//! priority. While the second queue is full, up to 16 messages wait in the
//! relay, sent highest priority first as room appears; then the relay's
//! reader is held (reads nothing) until they are gone. Prints how many it relayed, every second.
//! Stops on Ctrl-C or SIGTERM.
//!
//! `cargo run -p reactor --example queue_relay -- /from /to` (both queues must exist).

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use ipc::{Access, MessageQueue};
use reactor::sources::{QueueReader, QueueWriter, Signal, SignalFd};
use reactor::Reactor;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to] =
        <[String; 2]>::try_from(args).map_err(|_| io::Error::other("usage: queue_relay FROM TO"))?;
    let mut reactor = Reactor::new()?;
    reactor.register(SignalFd::new(&[Signal::Int, Signal::Term], |_, ctx| ctx.stop())?)?;
    let out = QueueWriter::new(MessageQueue::open(&to, Access::Send)?, 16)?.register(&mut reactor)?;
    let (relayed, count) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let (counted, name) = (count.clone(), to.clone());
    let input = MessageQueue::open(&from, Access::Receive)?;
    reactor.register(QueueReader::new(input, move |message, priority, ctx| {
        match out.send_or_pause(ctx, message, priority, ctx.current()) {
            Ok(()) => counted.set(counted.get() + 1),
            Err(e) => eprintln!("{name}: {e}"),
        }
    })?)?;
    reactor.every(Duration::from_secs(1), move |_| {
        if relayed.replace(count.get()) != count.get() {
            println!("relayed {}", count.get()); // only when it changed
        }
    });
    println!("relaying {from} to {to}");
    reactor.run()
}
