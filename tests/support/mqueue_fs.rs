//! The mqueue file system: where it is mounted, and the fields of a
//! queue's file (`QSIZE`, `NOTIFY`, `SIGNO`, `NOTIFY_PID`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::TestQueue;

/// Where the mqueue filesystem is mounted, mounting it on `/dev/mqueue`
/// first if it is not (once per test binary). An error, with the reason,
/// if that is not possible (not root, no mqueue support).
pub fn mqueue_mount() -> Result<PathBuf, String> {
    static MOUNTED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    MOUNTED
        .get_or_init(|| {
            if let Some(dir) = find_mqueue_mount() {
                return Ok(dir);
            }
            let dir = Path::new("/dev/mqueue");
            fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            let c = |s: &str| CString::new(s).expect("no NUL");
            let (source, target, kind) = (c("none"), c("/dev/mqueue"), c("mqueue"));
            // SAFETY: NUL-terminated strings that live across the call; no mount data.
            let res =
                unsafe { libc::mount(source.as_ptr(), target.as_ptr(), kind.as_ptr(), 0, std::ptr::null()) };
            if res != 0 {
                return Err(format!("mount -t mqueue none /dev/mqueue: {}", io::Error::last_os_error()));
            }
            find_mqueue_mount().ok_or_else(|| "mounted, but not in /proc/self/mounts".to_string())
        })
        .clone()
}

/// [`mqueue_mount`], or `None` after printing why the test is skipped.
pub fn mqueue_mount_or_skip() -> Option<PathBuf> {
    mqueue_mount().map_err(|why| println!("skipped: {why}")).ok()
}

fn find_mqueue_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&"mqueue")).then(|| PathBuf::from(fields[1]))
    })
}

/// The fields of a queue's file in the mqueue filesystem (`QSIZE`,
/// `NOTIFY`, `SIGNO`, `NOTIFY_PID`), as numbers by name.
pub fn mqueue_fields(text: &str) -> Vec<(String, i64)> {
    text.split_whitespace()
        .filter_map(|field| {
            let (key, value) = field.split_once(':')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Reads the queue's file in the mounted mqueue filesystem and returns
/// its fields. Never call it from a process registered with `mq_notify`
/// on that queue: closing any descriptor of the queue removes the
/// caller's registration.
pub fn mqueue_file_fields(mount: &Path, queue: &TestQueue) -> Vec<(String, i64)> {
    let file = mount.join(queue.name().trim_start_matches('/'));
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    mqueue_fields(&text)
}

/// A limit of the system's message queues: `msg_max`, `msgsize_max`,
/// `queues_max`, read from `/proc/sys/fs/mqueue/`.
pub fn mqueue_limit(name: &str) -> i64 {
    let path = format!("/proc/sys/fs/mqueue/{name}");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim().parse().unwrap_or_else(|e| panic!("{path}: {text:?}: {e}"))
}

/// One field of [`mqueue_fields`]; panics if missing.
pub fn field(fields: &[(String, i64)], key: &str) -> i64 {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqueue_fields_are_read_by_name() {
        let fields = mqueue_fields("QSIZE:28         NOTIFY:0     SIGNO:34    NOTIFY_PID:4242 \n");
        assert_eq!(field(&fields, "QSIZE"), 28);
        assert_eq!(field(&fields, "SIGNO"), 34);
        assert_eq!(field(&fields, "NOTIFY_PID"), 4242);
    }
}
