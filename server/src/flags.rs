//! The flag parser both programs use, so that `server` and `client` read a
//! command line by the same rules:
//!
//! - `--name value` and `--name=value` are the same; a value may start
//!   with `-` (`--queue --x` names the queue `--x`);
//! - `--name=value` on an option that takes no value is an error;
//! - short options stand alone (`-v`, not `-vq` nor `-v=1`);
//! - `--` ends the options: every later argument is an operand, and so is
//!   `-` and anything that does not start with `-`;
//! - an unknown option is an error that names it.
//!
//! Options and values must be UTF-8; an operand may be any bytes.
//!
//! ```
//! use server::flags::{Arg, Flags};
//!
//! let mut flags = Flags::new(["--queue=/a", "-v", "--", "-n"]);
//! let mut seen = Vec::new();
//! while let Some(arg) = flags.next_arg().unwrap() {
//!     match arg {
//!         Arg::Option(name) if name == "--queue" => seen.push(flags.value().unwrap()),
//!         Arg::Option(name) => seen.push(name),
//!         Arg::Operand(word) => seen.push(word.into_string().unwrap()),
//!     }
//! }
//! assert_eq!(seen, ["/a", "-v", "-n"]);
//! ```

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

/// A bad command line, said in one line (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl UsageError {
    /// Says the error as `program` and points to its help, on stderr; the
    /// exit status of a bad command line (2).
    pub fn report(&self, program: &str) -> ExitCode {
        eprintln!("{program}: {self}\nTry '{program} --help' for more information.");
        ExitCode::from(2)
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One argument, as [`Flags::next_arg`] sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Arg {
    /// An option, by name (`--queue`, `-v`), without any `=value`.
    Option(String),
    /// Anything else: a word that does not start with `-`, `-` itself, or
    /// any argument after `--`.
    Operand(OsString),
}

/// The arguments after the program name, read one at a time.
#[derive(Debug)]
pub struct Flags {
    args: std::vec::IntoIter<OsString>,
    /// The option last returned, and its `=value` if it had one and nobody
    /// took it yet.
    option: String,
    inline: Option<String>,
    /// After `--`, everything is an operand.
    operands_only: bool,
}

impl Flags {
    /// A parser over `args` (without the program name).
    pub fn new<A: Into<OsString>>(args: impl IntoIterator<Item = A>) -> Flags {
        let args = args.into_iter().map(Into::into).collect::<Vec<_>>().into_iter();
        Flags { args, option: String::new(), inline: None, operands_only: false }
    }

    /// The next argument; `None` at the end. An `=value` the caller did not
    /// take with [`value`](Self::value) is refused here ("takes no value").
    pub fn next_arg(&mut self) -> Result<Option<Arg>, UsageError> {
        self.no_value()?;
        let Some(arg) = self.args.next() else { return Ok(None) };
        let bytes = arg.as_bytes();
        if self.operands_only || !bytes.starts_with(b"-") || bytes == b"-" {
            return Ok(Some(Arg::Operand(arg)));
        }
        if bytes == b"--" {
            self.operands_only = true;
            return self.next_arg();
        }
        let arg = utf8(arg)?;
        let (option, inline) = match arg.split_once('=') {
            Some((option, value)) if option.starts_with("--") => {
                (option.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
        };
        self.option = option.clone();
        self.inline = inline;
        Ok(Some(Arg::Option(option)))
    }

    /// Refuses an `=value` on the option last returned, for an option that
    /// ends the parse (`--help`); [`next_arg`](Self::next_arg) refuses it otherwise.
    pub fn no_value(&mut self) -> Result<(), UsageError> {
        match self.inline.take() {
            Some(_) => Err(UsageError(format!("{} takes no value", self.option))),
            None => Ok(()),
        }
    }

    /// The value of the option last returned: its `=value`, else the next
    /// argument, whatever it starts with.
    pub fn value(&mut self) -> Result<String, UsageError> {
        if let Some(value) = self.inline.take() {
            return Ok(value);
        }
        match self.args.next() {
            Some(value) => utf8(value),
            None => Err(UsageError(format!("{} needs a value", self.option))),
        }
    }
}

/// The error for an option the program does not know.
pub fn unknown(option: &str) -> UsageError {
    UsageError(format!("unknown option '{option}'"))
}

fn utf8(arg: OsString) -> Result<String, UsageError> {
    arg.into_string().map_err(|arg| UsageError(format!("'{}' is not valid UTF-8", arg.to_string_lossy())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument, options with their values taken when named in
    /// `with_value`, as strings; or the first error.
    fn read(args: &[&str], with_value: &[&str]) -> Result<Vec<String>, String> {
        let mut flags = Flags::new(args.iter().copied());
        let mut seen = Vec::new();
        while let Some(arg) = flags.next_arg().map_err(|e| e.0)? {
            match arg {
                Arg::Option(name) if with_value.contains(&name.as_str()) => {
                    let value = flags.value().map_err(|e| e.0)?;
                    seen.push(format!("{name}={value}"));
                }
                Arg::Option(name) => seen.push(name),
                Arg::Operand(word) => seen.push(format!("operand {}", word.to_string_lossy())),
            }
        }
        Ok(seen)
    }

    #[test]
    fn inline_and_separate_values_are_the_same() {
        assert_eq!(
            read(&["--q=/a", "--q", "/b", "--q", "--x"], &["--q"]).unwrap(),
            ["--q=/a", "--q=/b", "--q=--x"]
        );
        assert_eq!(read(&["--q="], &["--q"]).unwrap(), ["--q="]);
    }

    #[test]
    fn double_dash_ends_the_options() {
        assert_eq!(
            read(&["a", "-", "--", "-v", "--", "--q=1"], &["--q"]).unwrap(),
            ["operand a", "operand -", "operand -v", "operand --", "operand --q=1"]
        );
    }

    #[test]
    fn misuse_is_said_in_one_line() {
        assert_eq!(read(&["--q"], &["--q"]).unwrap_err(), "--q needs a value");
        assert_eq!(read(&["--help=x"], &[]).unwrap_err(), "--help takes no value");
        assert_eq!(
            read(&["-v=1"], &[]).unwrap(),
            ["-v=1"],
            "short options take no =value: the caller finds no such option"
        );
    }

    #[test]
    fn options_must_be_utf8_operands_need_not() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(b"\xff".to_vec());
        let mut flags = Flags::new([OsString::from("--"), bad()]);
        assert_eq!(flags.next_arg().unwrap(), Some(Arg::Operand(bad())));
        let mut option = bad().into_vec();
        option.insert(0, b'-');
        assert!(Flags::new([OsString::from_vec(option)]).next_arg().is_err());
    }
}
