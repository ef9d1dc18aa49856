//! `client --status`: the queue as the kernel sees it.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::queue::{self, Queue};

/// Describes the queue: `mq_getattr`, who owns it, and its file in the
/// mqueue filesystem where that is mounted.
pub fn describe(name: &str) -> io::Result<String> {
    let attr = Queue::open(name, true)?.attributes()?;
    let owner = if queue::server_running(name)? {
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
    out += &match mqueue_mount() {
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

/// Where the mqueue filesystem is mounted, if it is.
fn mqueue_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "mqueue").then(|| PathBuf::from(dir))
    })
}
