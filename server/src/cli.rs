//! What the server's and the client's command lines share (the client
//! includes this file with `#[path]`): the queue name rule and its default,
//! `POSTBOX_QUEUE`, and the usage error. Both refuse the same names with the
//! same words.

use std::fmt;

/// The queue name used when neither `--queue` nor `POSTBOX_QUEUE` gives one.
pub const DEFAULT_QUEUE: &str = "/postbox";

/// A bad command line, said in one line (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `POSTBOX_QUEUE`, if set; a value that is not UTF-8 is a usage error,
/// not a reason to fall back to the default queue.
pub fn queue_from_env() -> Result<Option<String>, UsageError> {
    match std::env::var("POSTBOX_QUEUE") {
        Ok(queue) => Ok(Some(queue)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(UsageError("POSTBOX_QUEUE is not valid UTF-8".to_string()))
        }
    }
}

/// The queue named by `--queue`, else by `POSTBOX_QUEUE` (if not empty),
/// else the default.
pub fn queue_or_default(env_queue: Option<String>) -> String {
    env_queue.filter(|q| !q.is_empty()).unwrap_or_else(|| DEFAULT_QUEUE.to_string())
}

/// Why `name` is not a valid queue name, or `None` if it is: one path
/// component after a leading slash (`/postbox`), at most 255 bytes, no NUL.
pub fn queue_name_problem(name: &str) -> Option<&'static str> {
    let Some(rest) = name.strip_prefix('/') else {
        return Some("must start with a slash, as in /postbox");
    };
    if rest.is_empty() || rest == "." || rest == ".." {
        Some("needs a name after the slash, as in /postbox")
    } else if rest.contains('/') {
        Some("may not contain another slash")
    } else if rest.len() > 255 {
        Some("is longer than 255 bytes")
    } else if rest.contains('\0') {
        Some("may not contain a NUL byte")
    } else {
        None
    }
}
