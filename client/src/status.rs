//! `client --status`: the queue as the kernel sees it.

use std::fs;
use std::io;

use crate::{journal, queue, trust};

/// Describes the queue: `mq_getattr`, who owns it and whether this client
/// (trusting the owner `trusted`) would send into it, who may read what is
/// sent into it, whether a server
/// holds it, and its file in the mqueue filesystem where that is mounted;
/// then the server's journal.
pub fn describe(name: &str, trusted: u32) -> io::Result<String> {
    let open = ipc::MessageQueue::open_to_inspect(name)
        .inspect_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                // A server killed while it drained at shutdown leaves a journal and no queue.
                print!("{}", journal::orphan(name));
            }
        })
        .map_err(queue::not_running)?;
    let attr = open.attributes()?;
    let info = open.info()?;
    let whose = if info.uid == server::sys::geteuid() { "this user" } else { "another user" };
    let belongs = match trust::refusal(&info, trusted) {
        Some(why) => format!("{whose}: {why}; client refuses to send into it"),
        None => format!("{whose}: {}", info.owner_and_mode()),
    };
    let owner = if queue::held_by_server(&open)? {
        "a running server (it holds the queue's lock)"
    } else {
        "none: no server holds the queue's lock (left by a server that is gone?)"
    };
    let flags = if attr.nonblocking { "O_NONBLOCK" } else { "0" };
    let mut out = format!(
        "queue {name}\n\
         messages waiting  {}\n\
         capacity          {} messages\n\
         message size      {} bytes\n\
         flags             {flags} (of this client's descriptor)\n\
         belongs to        {belongs}\n\
         read by           {}\n\
         owner             {owner}\n",
        attr.current_messages,
        attr.max_messages,
        attr.message_size,
        trust::readers(&info)
    );
    out += &journal::describe(name, info.uid);
    out += &match ipc::mqueue_mount() {
        Some(dir) => {
            let file = dir.join(name.trim_start_matches('/'));
            match fs::read_to_string(&file) {
                Ok(text) => format!("{}: {}\n", file.display(), text.trim_end()),
                Err(e) => format!("{}: {e}\n", file.display()),
            }
        }
        None => "the mqueue filesystem is not mounted, so QSIZE and the notification fields \
                 are not shown; mount it (as root) with:\n  \
                 mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue\n"
            .to_string(),
    };
    Ok(out)
}
