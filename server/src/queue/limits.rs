//! The system's limits on a queue's size (`/proc/sys/fs/mqueue`), checked
//! before the queue is made.

use std::fs;
use std::io;

use super::QueueSpec;

/// Checks the requested size against the system's limits, which only a
/// privileged process may exceed: we do not, so that root and users behave
/// the same.
pub(super) fn check_system_limits(spec: &QueueSpec) -> io::Result<()> {
    let limits = [
        ("--max-messages", spec.max_messages, "msg_max"),
        ("--message-size", spec.message_size, "msgsize_max"),
    ];
    for (flag, wanted, file) in limits {
        let path = format!("/proc/sys/fs/mqueue/{file}");
        let Some(limit) = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<i64>().ok()) else {
            continue;
        };
        if wanted > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{flag} {wanted} is above the system limit of {limit} ({path}); \
                     ask for at most {limit}, or raise the limit as root with `sysctl fs.mqueue.{file}={wanted}`{}",
                    hard_ceiling_note(file, wanted)
                ),
            ));
        }
    }
    Ok(())
}

/// The kernel's own ceilings for the two limits (`HARD_MSGMAX`,
/// `HARD_MSGSIZEMAX`): a value above them cannot be set at all.
fn hard_ceiling_note(file: &str, wanted: i64) -> String {
    let ceiling: i64 = if file == "msg_max" { 65_536 } else { 16 * 1024 * 1024 };
    if wanted > ceiling {
        format!(" (the kernel accepts at most {ceiling} there)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_for_a_size_beyond_the_kernel_says_so() {
        assert_eq!(hard_ceiling_note("msg_max", 100), "");
        assert!(hard_ceiling_note("msg_max", 100_000).contains("65536"));
        assert!(hard_ceiling_note("msgsize_max", 1 << 30).contains("16777216"));
    }
}
