//! Running the client.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::{binary, run_to_end, Finished, TestQueue, DEADLINE};

/// A `client` command with `args`, and no `POSTBOX_QUEUE` from the
/// environment of the test run.
pub fn client_command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    client_command_at(&binary("client"), args)
}

/// [`client_command`], with the client at `program` (a
/// [`SharedBinaries`](crate::SharedBinaries) copy, say).
pub fn client_command_at<S: AsRef<OsStr>>(program: &Path, args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(program);
    command.args(args).env_remove("POSTBOX_QUEUE");
    command
}

/// Runs the client with `args` and empty stdin.
pub fn client<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Finished {
    run_to_end(client_command(args), b"", DEADLINE)
}

/// Runs the client with `args`, feeding it `input` on stdin.
pub fn client_with_input<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, input: &[u8]) -> Finished {
    run_to_end(client_command(args), input, DEADLINE)
}

/// Sends `message` to `queue` with the client, and asserts that it worked.
pub fn send(queue: &TestQueue, message: &str) {
    client(["--queue", queue.name(), "--", message]).assert_success();
}

/// Sends `message` with `priority` to `queue` with the client, and asserts
/// that it worked.
pub fn send_with_priority(queue: &TestQueue, priority: u32, message: &str) {
    client(["--queue", queue.name(), "--priority", &priority.to_string(), "--", message]).assert_success();
}
