//! Each line to every member of a group (connections, writers) but its
//! sender, with one policy for a member that does not read.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::sources::Output;
use crate::{Context, Token};

/// What a [`Fanout`] does when a member's buffer is full because its peer
/// does not read fast enough (or at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowReader {
    /// The line is dropped for that member alone and counted
    /// ([`Output::dropped`]); the others get it. Memory per member: its
    /// limit.
    Drop,
    /// That member is closed at once (its buffer dropped); the others go on.
    Disconnect,
    /// The line is kept for that member past its limit and the sender, the
    /// source named in [`Fanout::send`] (a member, a `LineReader` of a FIFO:
    /// any token), is held until the member's buffer drains
    /// ([`Output::write_line_or_pause`]): nothing is lost, and the sender
    /// slows down to the speed of the slowest reader. A member that writes
    /// nothing for this long while senders wait is closed, so that a reader
    /// that never reads stalls everybody for that long at most. Memory per
    /// member: its limit plus what each sender hands over before its hold
    /// takes effect (one line for a `Connection`). A line sent from no
    /// source (`None`: a timer's announcement) has nobody to hold: a full
    /// member misses it, counted, as with [`SlowReader::Drop`].
    Pause(Duration),
}

/// A group of streams where each line sent goes to every member but the
/// one it came from (a chat room, a fan-out of a feed), with a
/// [`SlowReader`] policy for members that do not keep up, chosen once.
///
/// Members are [`Output`]s: connections and writers. A clone is another
/// handle to the same group. Members are added with
/// [`join`](Fanout::join) and leave by closing: a closed member is skipped
/// and forgotten.
///
/// ```no_run
/// use std::time::Duration;
/// use reactor::sources::{Connection, Fanout, Listener, SlowReader};
/// use reactor::Reactor;
///
/// # fn main() -> std::io::Result<()> {
/// let mut reactor = Reactor::new()?;
/// let room = Fanout::new(SlowReader::Pause(Duration::from_secs(1)));
/// reactor.register(Listener::unix_accept("/tmp/chat.sock", move |fd, _peer, ctx| {
///     let to_room = room.clone();
///     let conn = Connection::new(fd)?
///         .on_line(move |line, me, ctx| to_room.send(ctx, me.token(), line))
///         .limit(64 * 1024)
///         .register(ctx)?;
///     room.join(&conn);
///     Ok(())
/// })?)?;
/// reactor.run()
/// # }
/// ```
#[derive(Clone)]
pub struct Fanout {
    group: Rc<Group>,
}

struct Group {
    policy: SlowReader,
    members: RefCell<Vec<Output>>,
}

impl Fanout {
    /// An empty group with `policy` for its slow members.
    pub fn new(policy: SlowReader) -> Fanout {
        Fanout { group: Rc::new(Group { policy, members: RefCell::new(Vec::new()) }) }
    }

    /// Adds a stream to the group.
    pub fn join(&self, member: &Output) {
        self.group.members.borrow_mut().push(member.clone());
    }

    /// Takes a stream out of the group (closing it does too).
    pub fn leave(&self, member: &Output) {
        self.group.members.borrow_mut().retain(|m| !m.same(member));
    }

    /// The members that take writes.
    pub fn len(&self) -> usize {
        self.group.members.borrow().iter().filter(|m| m.takes_writes()).count()
    }

    /// Whether no member takes writes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The policy given to [`new`](Fanout::new).
    pub fn policy(&self) -> SlowReader {
        self.group.policy
    }

    /// Sends `line` (a `\n` is added) to every member but the one whose
    /// token is `from`, applying the policy to members that are full.
    /// `from` is the source the line came from, to hold under
    /// [`SlowReader::Pause`]: a member's [`Output::token`], or any
    /// registered source's ([`Context::current`] in its callback); `None`
    /// for a line from no source (see [`SlowReader::Pause`]).
    pub fn send(&self, ctx: &mut Context, from: Option<Token>, line: &[u8]) {
        let mut evicted = Vec::new();
        let mut gone = false;
        for member in self.group.members.borrow().iter() {
            if !member.takes_writes() {
                gone = true;
                continue;
            }
            if from.is_some() && member.token() == from {
                continue;
            }
            let result = match self.group.policy {
                SlowReader::Pause(stall) => {
                    let result = member.write_line_or_pause(ctx, line, from);
                    watch_stall(member, ctx, stall);
                    result
                }
                _ => member.write_line(ctx, line),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.group.policy {
                    SlowReader::Disconnect => evicted.push(member.clone()),
                    _ => member.inner().dropped += 1,
                },
                Err(e) => log::debug!("fanout: {member:?}: {e}"),
                Ok(()) => {}
            }
        }
        // Closed after the loop: closing runs callbacks that may use the group.
        for member in &evicted {
            member.close(ctx);
        }
        if gone || !evicted.is_empty() {
            self.group.members.borrow_mut().retain(Output::takes_writes);
        }
    }
}

/// Closes `member` if producers wait on it and it has written nothing for
/// `stall`; checked every `stall` while they wait.
fn watch_stall(member: &Output, ctx: &mut Context, stall: Duration) {
    let inner = member.inner();
    if inner.held.is_empty() || inner.stall.is_some_and(|key| ctx.is_armed(key)) {
        return;
    }
    drop(inner);
    let (watched, mut seen) = (member.clone(), member.written());
    let key = ctx.after(stall, move |ctx| {
        let waited_on = !watched.inner().held.is_empty();
        if !waited_on || !watched.takes_writes() {
            return; // drained or gone: the timer goes
        }
        if watched.written() == seen {
            log::debug!("fanout: {watched:?}: no progress for {stall:?}: closed");
            watched.close(ctx);
        } else {
            seen = watched.written();
            let key = watched.inner().stall;
            if let Some(key) = key {
                ctx.rearm(key, stall);
            }
        }
    });
    member.inner().stall = Some(key);
}

impl fmt::Debug for Fanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fanout")
            .field("policy", &self.group.policy)
            .field("members", &self.group.members.borrow().len())
            .finish()
    }
}
