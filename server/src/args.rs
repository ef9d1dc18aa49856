//! The command line.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use log::LevelFilter;

pub use crate::flags::UsageError;
use crate::flags::{self, Arg, Flags};
use crate::queue::Notify;
use crate::queue_name::{check_queue_name, queue_from_env, queue_or_default};

/// What `server --help` prints.
pub const HELP: &str = "\
Usage: server [OPTIONS]

Creates a POSIX message queue and prints every message that arrives on it,
on stdin, and on a listening socket, one line per message, until SIGINT,
SIGTERM or SIGHUP; then prints what is left in the queue and removes it.

Options:
  --queue NAME           queue name, one component with a leading slash
                         [default: $POSTBOX_QUEUE, else /postbox]
  --listen ADDR          HOST:PORT (port 0 picks a free one), unix:PATH,
                         or none [default: 127.0.0.1:7777]
  --max-messages N       queue capacity, at most /proc/sys/fs/mqueue/msg_max
                         [default: 10]
  --message-size BYTES   largest message, at most
                         /proc/sys/fs/mqueue/msgsize_max; also the longest
                         line read from a stream before it is cut [default: 8192]
  --mode OCTAL           permissions of the queue, exactly (the umask takes
                         nothing away): write lets a user send, read lets
                         a user take messages, so 0620 lets the group send
                         only; the statistics are readable, and a Unix
                         socket writable, by the same users [default: 0600]
  --notify HOW           how the queue tells the loop that messages arrived:
                         epoll (its descriptor is watched) or signal
                         (mq_notify with a real-time signal) [default: epoll]
  --no-stats             do not publish statistics in shared memory
  -v, --verbose          debug logs on stderr
  -q, --quiet            only errors on stderr
  -h, --help             this text
  -V, --version          the version

Environment:
  POSTBOX_QUEUE          queue name when --queue is not given

Statistics: live counters in shared memory NAME.stats, guarded by the
semaphore NAME.stats; read them with `client --stats`.

Journal: the output is buffered in shared memory NAME.journal (mode 0600);
lines a killed server did not write are printed first by the next server
on the queue; `client --status` shows them.

Output (stdout): `mq[PRIO]: TEXT`, `stdin: TEXT`, `tcp[IP:PORT]: TEXT`,
`unix[N]: TEXT`; newline, tab and backslash are escaped as \\n \\t \\\\,
other control bytes, invalid UTF-8, and the characters that change how a
terminal shows a line (C1 controls, bidirectional overrides and isolates,
U+2028, U+2029) as \\xNN per byte. Logs go to stderr.

Exit status: 0 after a clean shutdown, 1 on a startup or run-time failure,
2 on bad arguments.

Example:
  server --queue /demo --listen 127.0.0.1:0
  client --queue /demo 'hello there'      (in another terminal)
";

/// Where to listen for stream clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (port 0: any free port).
    Tcp(SocketAddr),
    /// A Unix socket's path.
    Unix(PathBuf),
    /// No listening socket.
    None,
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The queue's name.
    pub queue: String,
    /// Where stream clients connect.
    pub listen: Listen,
    /// The queue's capacity in messages.
    pub max_messages: i64,
    /// The largest message, and the longest line read before it is cut.
    pub message_size: i64,
    /// Permission bits of the queue, exactly (the statistics and a Unix
    /// socket follow from them).
    pub mode: libc::mode_t,
    /// How the queue tells the loop that messages arrived.
    pub notify: Notify,
    /// Publish live statistics in shared memory.
    pub stats: bool,
    /// How much is logged on stderr.
    pub log_level: LevelFilter,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Serve with these settings.
    Run(Config),
    /// Print the help.
    Help,
    /// Print the version.
    Version,
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses this process's arguments and `POSTBOX_QUEUE`; either that is not
/// UTF-8 is a usage error (never a panic, never a silent default).
pub fn from_environment() -> Result<Command, UsageError> {
    parse(std::env::args_os().skip(1), queue_from_env()?)
}

/// Parses the arguments after the program name (by the rules of
/// [`flags`]); the server takes no operands.
pub fn parse(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env_queue: Option<String>,
) -> Result<Command, UsageError> {
    let mut config = Config {
        queue: queue_or_default(env_queue),
        listen: Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 7777))),
        max_messages: 10,
        message_size: 8192,
        mode: 0o600,
        notify: Notify::Epoll,
        stats: true,
        log_level: LevelFilter::Info,
    };
    let mut args = Flags::new(args);
    while let Some(arg) = args.next_arg()? {
        let option = match arg {
            Arg::Option(option) => option,
            Arg::Operand(word) => {
                return Err(usage(format!("unexpected argument '{}'", word.to_string_lossy())))
            }
        };
        match option.as_str() {
            "-h" | "--help" => return args.no_value().map(|()| Command::Help),
            "-V" | "--version" => return args.no_value().map(|()| Command::Version),
            "-v" | "--verbose" => config.log_level = LevelFilter::Debug,
            "-q" | "--quiet" => config.log_level = LevelFilter::Error,
            "--no-stats" => config.stats = false,
            "--queue" => config.queue = args.value()?,
            "--listen" => config.listen = parse_listen(&args.value()?)?,
            "--max-messages" => config.max_messages = parse_count("--max-messages", &args.value()?)?,
            "--message-size" => config.message_size = parse_count("--message-size", &args.value()?)?,
            "--mode" => config.mode = parse_mode(&args.value()?)?,
            "--notify" => config.notify = parse_notify(&args.value()?)?,
            _ => return Err(flags::unknown(&option)),
        }
    }
    check_queue_name(&config.queue)?;
    Ok(Command::Run(config))
}

fn parse_notify(value: &str) -> Result<Notify, UsageError> {
    match value {
        "epoll" => Ok(Notify::Epoll),
        "signal" => Ok(Notify::Signal),
        _ => Err(usage(format!("--notify '{value}': expected epoll or signal"))),
    }
}

fn parse_listen(value: &str) -> Result<Listen, UsageError> {
    if value == "none" {
        return Ok(Listen::None);
    }
    if let Some(path) = value.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(usage("--listen unix:PATH needs a path"));
        }
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| usage(format!("--listen '{value}': expected HOST:PORT, unix:PATH or none ({e})")))?;
    addrs.next().map(Listen::Tcp).ok_or_else(|| usage(format!("--listen '{value}': no address")))
}

fn parse_count(flag: &str, value: &str) -> Result<i64, UsageError> {
    match value.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(usage(format!("{flag} '{value}': expected a whole number of at least 1"))),
    }
}

fn parse_mode(value: &str) -> Result<libc::mode_t, UsageError> {
    let digits = value.strip_prefix("0o").unwrap_or(value);
    match libc::mode_t::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(usage(format!("--mode '{value}': expected octal permissions such as 0600"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, UsageError> {
        match parse(args.iter().map(|s| s.to_string()), None)? {
            Command::Run(config) => Ok(config),
            _ => panic!("expected a run"),
        }
    }

    #[test]
    fn defaults_follow_the_environment() {
        let Ok(Command::Run(c)) = parse(Vec::<String>::new(), Some("/from-env".into())) else { panic!() };
        assert_eq!(c.queue, "/from-env");
        let c = run(&[]).unwrap();
        assert_eq!((c.queue.as_str(), c.max_messages, c.message_size, c.mode), ("/postbox", 10, 8192, 0o600));
    }

    #[test]
    fn options_take_separate_or_inline_values() {
        let c = run(&["--queue=/a", "--max-messages", "5", "--message-size=256", "--mode", "0640"]).unwrap();
        assert_eq!((c.queue.as_str(), c.max_messages, c.message_size, c.mode), ("/a", 5, 256, 0o640));
        assert_eq!(run(&["--listen", "unix:/tmp/s"]).unwrap().listen, Listen::Unix("/tmp/s".into()));
        assert_eq!(run(&["--listen=none", "--"]).unwrap().listen, Listen::None);
        assert_eq!(
            run(&["--listen", "127.0.0.1:0"]).unwrap().listen,
            Listen::Tcp("127.0.0.1:0".parse().unwrap())
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--max-messages", "0"][..],
            &["--message-size", "-3"],
            &["--mode", "999"],
            &["--listen", "nonsense"],
            &["--queue"],
            &["--frobnicate"],
            &["-v=1"],
            &["--notify", "poll"],
            &["--help=x"],
            &["--queue", "no-slash"],
            &["--no-stats=yes"],
            &["stray"],
            &["--", "--quiet"],
        ] {
            assert!(run(args).is_err(), "{args:?} should be refused");
        }
    }
}
