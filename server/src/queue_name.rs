//! The queue name, as both command lines take it: its default,
//! `POSTBOX_QUEUE`, and its rule. The server and the client refuse the same
//! names with the same words.

use crate::flags::UsageError;

/// The queue name used when neither `--queue` nor `POSTBOX_QUEUE` gives one.
pub const DEFAULT_QUEUE: &str = "/postbox";

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

/// A usage error unless `name` is a valid queue name (the rule of
/// [`ipc::name_problem`]).
pub fn check_queue_name(name: &str) -> Result<(), UsageError> {
    match ipc::name_problem(name) {
        Some(why) => Err(UsageError(format!("queue name '{name}' is not valid: it {why}"))),
        None => Ok(()),
    }
}
