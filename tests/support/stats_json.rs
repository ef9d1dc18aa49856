//! The live statistics: `client --stats --json`, parsed with `serde_json`
//! (keeping the order of the fields, which the format documents).

use serde_json::Value;

use crate::{client, Finished, TestQueue};

/// A JSON value, as `client --stats --json` prints it: objects keep their
/// fields in order, 64-bit counters and nanosecond times stay exact.
pub type Json = Value;

/// What the tests ask of a [`Json`] value: a number, a flag, a text or the
/// field names, and a panic that shows the value if it is something else.
/// (`json["key"]` gives `null` for a missing key: asking it for a number
/// then fails, showing the `null`.)
pub trait JsonExt {
    /// A whole number that fits a `u64`.
    fn u64(&self) -> u64;
    /// A whole number that fits an `i64`.
    fn i64(&self) -> i64;
    /// `true` or `false`.
    fn bool(&self) -> bool;
    /// A string.
    fn str(&self) -> &str;
    /// The keys of an object, in order; empty for anything else.
    fn keys(&self) -> Vec<&str>;
}

impl JsonExt for Value {
    fn u64(&self) -> u64 {
        self.as_u64().unwrap_or_else(|| panic!("expected a u64, found {self}"))
    }

    fn i64(&self) -> i64 {
        self.as_i64().unwrap_or_else(|| panic!("expected an i64, found {self}"))
    }

    fn bool(&self) -> bool {
        self.as_bool().unwrap_or_else(|| panic!("expected true or false, found {self}"))
    }

    fn str(&self) -> &str {
        self.as_str().unwrap_or_else(|| panic!("expected a string, found {self}"))
    }

    fn keys(&self) -> Vec<&str> {
        self.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
    }
}

/// The source names of the statistics, in the order the server counts them
/// (the server library's, so the two cannot disagree).
pub const SOURCES: [&str; 4] = server::stats_page::SOURCE_NAMES;

/// What the statistics say about one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceFigures {
    /// Messages (lines) received.
    pub messages: u64,
    /// Their bytes, without the newline that ends a line.
    pub bytes: u64,
    /// Connections open now (stdin counts as one until its end).
    pub connections_open: u64,
    /// Connections accepted since the start.
    pub connections_total: u64,
    /// Connections that ended in an error.
    pub errors: u64,
}

impl SourceFigures {
    /// The figures of `source` (`mq`, `stdin`, `tcp`, `unix`) in the object
    /// that `client --stats --json` prints.
    pub fn of(stats: &Json, source: &str) -> SourceFigures {
        let figures = &stats["sources"][source];
        assert!(figures.is_object(), "no figures for {source:?} in {stats}");
        SourceFigures {
            messages: figures["messages"].u64(),
            bytes: figures["bytes"].u64(),
            connections_open: figures["connections_open"].u64(),
            connections_total: figures["connections_total"].u64(),
            errors: figures["errors"].u64(),
        }
    }
}

/// Runs `client --stats --json --queue NAME` with `extra` arguments, and
/// returns how it ended with the object it printed (`None` if stdout is
/// empty; a panic if stdout is not exactly one JSON object on one line).
pub fn client_stats(queue: &TestQueue, extra: &[&str]) -> (Finished, Option<Json>) {
    let mut args = vec!["--stats", "--json", "--queue", queue.name()];
    args.extend_from_slice(extra);
    let run = client(&args);
    if run.stdout.is_empty() {
        return (run, None);
    }
    assert!(
        run.stdout.ends_with('\n') && run.stdout.lines().count() == 1,
        "--stats --json should print one line: {:?}",
        run.stdout
    );
    let json: Json =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON: {e}\nstdout: {}", run.stdout));
    assert!(json.is_object(), "not an object: {}", run.stdout);
    (run, Some(json))
}

/// `client --stats --json` that must succeed (exit 0, nothing on stderr):
/// the object it printed.
pub fn stats_of(queue: &TestQueue) -> Json {
    let (run, json) = client_stats(queue, &[]);
    assert_eq!(run.code(), 0, "client --stats failed; stderr: {}", run.stderr);
    assert_eq!(run.stderr, "", "client --stats warned");
    json.expect("client --stats printed nothing")
}

/// The name of the statistics object and semaphore of `queue`: `/Q.stats`.
pub fn stats_name(queue: &TestQueue) -> String {
    server::stats_page::stats_name(queue.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_the_order_of_fields_and_64_bit_numbers_exact() {
        let text = r#"{"queue":"/q\"\\\u0041","pid":12,"ns":18446744073709551615,"ok":true,
                       "depth":-3,"nested":{"b":1,"a":2},"empty":{}}"#;
        let json: Json = serde_json::from_str(text).unwrap();
        assert_eq!(json.keys(), ["queue", "pid", "ns", "ok", "depth", "nested", "empty"]);
        assert_eq!(json["nested"].keys(), ["b", "a"], "not sorted: in the order written");
        assert_eq!(json["queue"].str(), "/q\"\\A");
        assert_eq!(json["ns"].u64(), u64::MAX);
        assert_eq!(json["depth"].i64(), -3);
        assert!(json["ok"].bool());
        assert!(json["empty"].keys().is_empty());
    }

    #[test]
    #[should_panic(expected = "expected a u64, found null")]
    fn a_missing_field_is_not_a_number() {
        let json: Json = serde_json::from_str(r#"{"pid":1}"#).unwrap();
        json["rounds"].u64();
    }
}
