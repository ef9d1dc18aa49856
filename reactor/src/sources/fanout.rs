//! Each line to every other connection of a group, with one policy for a
//! member that does not read.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::sources::ConnectionHandle;
use crate::Context;

/// What a [`Fanout`] does when a member's buffer is full because its peer
/// does not read fast enough (or at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowReader {
    /// The line is dropped for that member alone and counted
    /// ([`ConnectionHandle::dropped`]); the others get it. Memory per
    /// member: its limit.
    Drop,
    /// That member is closed at once (its buffer dropped); the others go on.
    Disconnect,
    /// The line is kept for that member past its limit and the sender stops
    /// being read until the member's buffer drains: nothing is lost, and
    /// the sender slows down to the speed of the slowest reader. A member
    /// that writes nothing for this long while senders wait is closed, so
    /// that a reader that never reads stalls everybody for that long at
    /// most. Memory per member: its limit plus one line per sender.
    Pause(Duration),
}

/// A group of connections where each line sent by one goes to all the
/// others (a chat room), with a [`SlowReader`] policy for members that do
/// not keep up, chosen once.
///
/// A clone is another handle to the same group. Members are added with
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
///     let conn = Connection::new(fd, move |line, me, ctx| to_room.send(ctx, me, line))?
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
    members: RefCell<Vec<ConnectionHandle>>,
}

impl Fanout {
    /// An empty group with `policy` for its slow members.
    pub fn new(policy: SlowReader) -> Fanout {
        Fanout { group: Rc::new(Group { policy, members: RefCell::new(Vec::new()) }) }
    }

    /// Adds a connection to the group.
    pub fn join(&self, conn: &ConnectionHandle) {
        self.group.members.borrow_mut().push(conn.clone());
    }

    /// Takes a connection out of the group (closing it does too).
    pub fn leave(&self, conn: &ConnectionHandle) {
        self.group.members.borrow_mut().retain(|m| !m.same(conn));
    }

    /// The open members.
    pub fn len(&self) -> usize {
        self.group.members.borrow().iter().filter(|m| m.is_open()).count()
    }

    /// Whether no member is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The policy given to [`new`](Fanout::new).
    pub fn policy(&self) -> SlowReader {
        self.group.policy
    }

    /// Sends `line` (a `\n` is added) to every open member but `from`,
    /// applying the policy to members whose buffer is full.
    pub fn send(&self, ctx: &mut Context, from: &ConnectionHandle, line: &[u8]) {
        self.deliver(ctx, Some(from), line);
    }

    /// Sends `line` (a `\n` is added) to every open member, from no member
    /// (a timer's announcement, say). With [`SlowReader::Pause`] there is no
    /// sender to pause: a full member misses the line, as with
    /// [`SlowReader::Drop`].
    pub fn broadcast(&self, ctx: &mut Context, line: &[u8]) {
        self.deliver(ctx, None, line);
    }

    fn deliver(&self, ctx: &mut Context, from: Option<&ConnectionHandle>, line: &[u8]) {
        let mut evicted = None;
        let mut gone = false;
        for member in self.group.members.borrow().iter() {
            if from.is_some_and(|from| member.same(from)) {
                continue;
            }
            if !member.is_open() {
                gone = true;
                continue;
            }
            let result = match (self.group.policy, from) {
                (SlowReader::Pause(stall), Some(from)) => {
                    let result = member.write_line_or_pause(ctx, line, from);
                    if member.has_waiters() {
                        member.watch_stall(ctx, stall);
                    }
                    result
                }
                _ => member.write_line(ctx, line),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.group.policy {
                    SlowReader::Disconnect => evicted.get_or_insert_with(Vec::new).push(member.clone()),
                    _ => member.count_dropped(),
                },
                Err(e) => log::debug!("fanout: {member:?}: {e}"),
                Ok(()) => {}
            }
        }
        // Closed after the loop: closing runs callbacks that may use the group.
        for member in evicted.into_iter().flatten() {
            member.close(ctx);
            gone = true;
        }
        if gone {
            self.group.members.borrow_mut().retain(ConnectionHandle::is_open);
        }
    }
}

impl fmt::Debug for Fanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fanout")
            .field("policy", &self.group.policy)
            .field("members", &self.group.members.borrow().len())
            .finish()
    }
}
