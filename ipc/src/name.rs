//! The naming rule shared by every POSIX IPC object on Linux.

use std::ffi::CString;
use std::io;
use std::path::PathBuf;

/// The longest name after the slash: one file name on the `mqueue` or
/// `/dev/shm` file system. (A semaphore's file is `sem.NAME`, so its names
/// are four bytes shorter; [`NamedSemaphore`](crate::NamedSemaphore) says so.)
pub const NAME_MAX: usize = 255;

/// Why `name` is not a valid object name, or `None` if it is: one path
/// component after a leading slash (`/postbox`), at most [`NAME_MAX`] bytes,
/// no NUL.
///
/// ```
/// assert_eq!(ipc::name_problem("/postbox"), None);
/// assert!(ipc::name_problem("postbox").is_some());
/// assert!(ipc::name_problem("/a/b").is_some());
/// ```
pub fn name_problem(name: &str) -> Option<&'static str> {
    let Some(rest) = name.strip_prefix('/') else {
        return Some("must start with a slash, as in /postbox");
    };
    if rest.is_empty() || rest == "." || rest == ".." {
        Some("needs a name after the slash, as in /postbox")
    } else if rest.contains('/') {
        Some("may not contain another slash")
    } else if rest.len() > NAME_MAX {
        Some("is longer than 255 bytes")
    } else if rest.contains('\0') {
        Some("may not contain a NUL byte")
    } else {
        None
    }
}

/// `name` as the C string the calls take, or an `InvalidInput` error that
/// names the object (`queue name 'x': must start with a slash, ...`).
pub(crate) fn c_name(kind: &str, name: &str) -> io::Result<CString> {
    match name_problem(name) {
        Some(why) => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{kind} name '{name}': {why}"))),
        // `name_problem` refused NUL bytes already.
        None => CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
    }
}

/// The file `file` of `/dev/shm`, where glibc keeps shared memory objects
/// (`/dev/shm/NAME`) and named semaphores (`/dev/shm/sem.NAME`).
pub(crate) fn dev_shm(file: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component_with_a_leading_slash() {
        assert!(c_name("queue", "/postbox").is_ok());
        for bad in ["postbox", "/", "/a/b", "/.", "/..", "/a\0b", ""] {
            assert!(c_name("queue", bad).is_err(), "{bad:?} should be refused");
        }
        assert!(c_name("queue", &format!("/{}", "x".repeat(255))).is_ok());
        assert!(c_name("queue", &format!("/{}", "x".repeat(256))).is_err());
    }

    #[test]
    fn errors_name_the_object() {
        let e = c_name("queue", "nope").unwrap_err();
        assert_eq!(e.to_string(), "queue name 'nope': must start with a slash, as in /postbox");
    }
}
