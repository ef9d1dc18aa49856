//! Owning the queue: created exclusively, or adopted from a server that is
//! gone when it is this user's and safe to, and locked (an exclusive
//! `flock`) for the server's whole life.

use std::io;
use std::time::Duration;

use ipc::{Access, MessageQueue, QueueOptions};

use super::{Origin, QueueSpec};
use crate::sys::geteuid;

/// Creates the queue exclusively; if it exists, adopts it when no live
/// server holds its lock and it is safe to (see [`check_adoptable`]).
/// Retries when the name changes under our feet (another server removing or
/// re-creating it at the same moment).
pub(super) fn create_or_adopt(spec: &QueueSpec) -> io::Result<(MessageQueue, Origin)> {
    let options = QueueOptions {
        access: Access::Receive,
        max_messages: spec.max_messages,
        message_size: spec.message_size,
        mode: spec.mode,
        exclusive: true,
        nonblocking: true,
    };
    for _ in 0..8 {
        let (queue, origin) = match MessageQueue::create(&spec.name, &options) {
            Ok(queue) => (queue, Origin::Created),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match MessageQueue::open_with(&spec.name, Access::Receive, true) {
                    Ok(queue) => (queue, Origin::Adopted { waiting: 0 }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        return Err(match MessageQueue::file_info(&spec.name) {
                            Ok(info) => not_adoptable(&spec.name, &info, spec.mode),
                            Err(_) => e,
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        if !lock(&queue)? {
            // Someone else holds it, even if we created it a moment ago.
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "queue {}: in use by another running server; stop it first, or choose another name with --queue",
                    spec.name
                ),
            ));
        }
        match queue.is_still_named() {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                abandon(&spec.name, origin);
                return Err(e);
            }
        }
        if origin != Origin::Created {
            check_adoptable(&queue, spec.mode)?;
        }
        return Ok((queue, origin));
    }
    Err(io::Error::other(format!("queue {}: keeps being created and removed by someone else", spec.name)))
}

/// A queue left under our name is adopted only if it is this user's and
/// lets no one read it whom `--mode` would not: otherwise another user
/// made it to receive (steal) what clients send to the server.
fn check_adoptable(queue: &MessageQueue, mode: libc::mode_t) -> io::Result<()> {
    let info = queue.info()?;
    if info.uid != geteuid() || info.mode & !mode & 0o077 != 0 {
        return Err(not_adoptable(queue.name(), &info, mode));
    }
    Ok(())
}

/// Why the queue `name`, as `info` describes it, is refused.
fn not_adoptable(name: &str, info: &ipc::ObjectInfo, mode: libc::mode_t) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "queue {name}: exists, {}, and is not safe to adopt: \
             another user could receive the messages meant for this server (--mode is {mode:04o}). \
             Remove it (its owner or root: rm /dev/mqueue/{}) or choose another name with --queue",
            info.owner_and_mode(),
            name.trim_start_matches('/'),
        ),
    )
}

/// Claims the queue for this process; `false` if a server holds it.
/// A client asking whether a server runs (`client --status`) holds a
/// shared lock for a few microseconds: a refusal is asked again a few
/// times over about 50 ms before it is believed.
fn lock(queue: &MessageQueue) -> io::Result<bool> {
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        if queue.try_lock(true)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the name of a queue we created and will not serve after all.
pub(super) fn abandon(name: &str, origin: Origin) {
    if origin == Origin::Created {
        let _ = MessageQueue::unlink(name);
    }
}
