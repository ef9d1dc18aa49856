//! `client --status`: the queue as the kernel sees it.

use std::fs;
use std::io;

use crate::{journal, queue};

/// Describes the queue: `mq_getattr`, who owns it, and its file in the
/// mqueue filesystem where that is mounted.
pub fn describe(name: &str) -> io::Result<String> {
    let open = ipc::MessageQueue::open_to_inspect(name).inspect_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            // A server killed while it drained at shutdown leaves a journal and no queue.
            print!("{}", journal::orphan(name));
        }
    })?;
    let attr = open.attributes()?;
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
         owner             {owner}\n",
        attr.current_messages, attr.max_messages, attr.message_size
    );
    out += &journal::describe(name, open.info()?.uid);
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
