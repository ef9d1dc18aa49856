//! The command line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

pub use server::flags::UsageError;
use server::flags::{self, Arg, Flags};
use server::queue_name::{check_queue_name, queue_or_default};

use crate::trust;

pub const HELP: &str = "\
Usage: client [OPTIONS] [--] [MESSAGE...]
       client --stats [--json] [--timeout SECONDS] [--queue NAME]
       client --status [--queue NAME]

Sends a message to the postbox server's POSIX message queue: opens the
existing queue, sends, closes. It never creates a queue.

The arguments, joined by single spaces, are one message. Without arguments,
each line of stdin is one message (without its newline), sent in order.

Options:
  --queue NAME         queue name [default: $POSTBOX_QUEUE, else /postbox]
  --priority N         0 to 32767; higher is received first [default: 0]
  --timeout SECONDS    wait at most this long for room in a full queue,
                       for each message (fractions allowed)
  --nonblock           fail at once if the queue is full
                       [default: wait for room as long as the queue exists]
  --owner UID|NAME     send only into a queue of this user [default: the
                       user running the client], whatever its mode (who
                       else may read it is its owner's choice: --status
                       says who). A queue of another user is refused:
                       nothing is sent, exit 1, and the error names its
                       owner and mode
  --stats              print the server's live statistics (shared memory
                       NAME.stats, semaphore NAME.stats) instead of sending;
                       --timeout bounds the wait for the semaphore [default: 1]
  --json               with --stats: one JSON object instead of a table
  --status             print the queue's attributes (mq_getattr), its owner
                       and mode, who may read it, whether a server holds
                       it, its journal, and its file in the mqueue
                       filesystem if mounted
  -h, --help           this text
  -V, --version        the version

Environment:
  POSTBOX_QUEUE        queue name when --queue is not given

Exit status: 0 when every message was sent (or the figures were read); 1
when one could not be (no such queue, permission denied, a queue of
another user, message too long, queue full;
--stats: no server, stale or locked figures); 2 on bad arguments.

Examples:
  client hello world
  client --priority 9 --queue /demo 'urgent: tea is ready'
  seq 1000 | client --timeout 2
  client --stats --json
";

/// What to send, and how.
#[derive(Debug)]
pub struct Options {
    pub queue: String,
    pub priority: u32,
    pub timeout: Option<Duration>,
    pub nonblock: bool,
    /// The user whose queue may be sent into (`--owner`).
    pub trusted: u32,
    /// The arguments joined by spaces, as bytes; `None` means "read stdin".
    pub message: Option<Vec<u8>>,
}

/// What the command line asks for.
pub enum Command {
    Send(Options),
    Stats { queue: String, json: bool, timeout: Duration },
    Status { queue: String, trusted: u32 },
    Help,
    Version,
}

/// Parses the arguments after the program name (by the rules of
/// [`server::flags`]): options must be UTF-8; a message may be any bytes.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env_queue: Option<String>,
) -> Result<Command, UsageError> {
    let mut options = Options {
        queue: queue_or_default(env_queue),
        priority: 0,
        timeout: None,
        nonblock: false,
        trusted: server::sys::geteuid(),
        message: None,
    };
    let (mut stats, mut json, mut status) = (false, false, false);
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut args = Flags::new(args);
    while let Some(arg) = args.next_arg()? {
        let option = match arg {
            Arg::Option(option) => option,
            Arg::Operand(word) => {
                words.push(word.into_vec());
                continue;
            }
        };
        match option.as_str() {
            "-h" | "--help" => return args.no_value().map(|()| Command::Help),
            "-V" | "--version" => return args.no_value().map(|()| Command::Version),
            "--nonblock" => options.nonblock = true,
            "--stats" => stats = true,
            "--json" => json = true,
            "--status" => status = true,
            "--queue" => options.queue = args.value()?,
            "--owner" => options.trusted = trust::parse_owner(&args.value()?)?,
            "--priority" => options.priority = parse_priority(&args.value()?)?,
            "--timeout" => options.timeout = Some(parse_timeout(&args.value()?)?),
            _ => {
                let unknown = flags::unknown(&option);
                return Err(UsageError(format!("{unknown} (use -- before a message that starts with -)")));
            }
        }
    }
    if options.nonblock && options.timeout.is_some() {
        return Err(UsageError("--timeout and --nonblock exclude each other".to_string()));
    }
    check_queue_name(&options.queue)?;
    if stats || status || json {
        return inspect(options, words, stats, status, json);
    }
    if !words.is_empty() {
        options.message = Some(words.join(&b' '));
    }
    Ok(Command::Send(options))
}

/// `--stats` and `--status` send nothing.
fn inspect(
    options: Options,
    words: Vec<Vec<u8>>,
    stats: bool,
    status: bool,
    json: bool,
) -> Result<Command, UsageError> {
    let refuse = |why: &str| Err(UsageError(why.to_string()));
    match () {
        _ if stats && status => refuse("--stats and --status exclude each other"),
        _ if json && !stats => refuse("--json goes with --stats"),
        _ if !words.is_empty() => refuse("--stats and --status send nothing: drop the message"),
        _ if options.nonblock || options.priority != 0 => refuse("--stats and --status send nothing"),
        _ if status => Ok(Command::Status { queue: options.queue, trusted: options.trusted }),
        _ => {
            let timeout = options.timeout.unwrap_or(Duration::from_secs(1));
            Ok(Command::Stats { queue: options.queue, json, timeout })
        }
    }
}

fn parse_priority(value: &str) -> Result<u32, UsageError> {
    let max = max_priority();
    match value.parse::<u32>() {
        Ok(p) if p <= max => Ok(p),
        _ => Err(UsageError(format!("--priority '{value}': expected a whole number from 0 to {max}"))),
    }
}

/// The highest priority the system accepts (32767 on Linux).
fn max_priority() -> u32 {
    // SAFETY: plain query without pointers.
    let n = unsafe { libc::sysconf(libc::_SC_MQ_PRIO_MAX) };
    if n > 0 {
        (n - 1) as u32
    } else {
        32767
    }
}

/// The longest `--timeout`: a year. (The kernel takes an absolute time, so
/// "now plus the timeout" must fit its clock; without `--timeout` the
/// client waits as long as the queue exists.)
const MAX_TIMEOUT_SECS: f64 = 365.0 * 24.0 * 3600.0;

fn parse_timeout(value: &str) -> Result<Duration, UsageError> {
    let bad = || {
        UsageError(format!(
            "--timeout '{value}': expected a number of seconds from 0 to {MAX_TIMEOUT_SECS} (a year), such as 2 or 0.5"
        ))
    };
    let seconds: f64 = value.parse().map_err(|_| bad())?;
    if !(0.0..=MAX_TIMEOUT_SECS).contains(&seconds) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Result<Options, UsageError> {
        match parse(args.iter().map(OsString::from), None)? {
            Command::Send(options) => Ok(options),
            _ => panic!("expected a send"),
        }
    }

    #[test]
    fn words_are_joined_by_single_spaces() {
        let o = options(&["hello", "big", "world"]).unwrap();
        assert_eq!(o.message.as_deref(), Some(&b"hello big world"[..]));
        assert!(options(&[]).unwrap().message.is_none());
        assert_eq!(options(&["--", "-n", "--queue"]).unwrap().message.as_deref(), Some(&b"-n --queue"[..]));
    }

    #[test]
    fn priority_is_bounded_by_the_system() {
        assert_eq!(options(&["--priority", "32767", "x"]).unwrap().priority, 32767);
        for bad in ["32768", "-1", "x", ""] {
            assert!(options(&["--priority", bad, "x"]).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeout_and_nonblock_exclude_each_other() {
        assert_eq!(options(&["--timeout=0.5", "x"]).unwrap().timeout, Some(Duration::from_millis(500)));
        assert!(options(&["--timeout", "1", "--nonblock", "x"]).is_err());
        assert!(options(&["--timeout", "-1", "x"]).is_err());
    }

    #[test]
    fn stats_and_status_send_nothing() {
        let parsed = |args: &[&str]| parse(args.iter().map(OsString::from), None);
        assert!(matches!(parsed(&["--stats", "--json"]), Ok(Command::Stats { json: true, .. })));
        assert!(matches!(parsed(&["--status"]), Ok(Command::Status { .. })));
        for bad in [
            &["--stats", "hi"][..],
            &["--json"],
            &["--stats", "--status"],
            &["--status", "--nonblock"],
            &["--stats", "--json=no"],
            &["--help=x"],
        ] {
            assert!(parsed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_queue_names_are_refused() {
        for bad in ["postbox", "/", "/a/b", ""] {
            assert!(options(&["--queue", bad, "x"]).is_err(), "{bad}");
        }
    }
}
