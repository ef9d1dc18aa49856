//! Before any workload: every server prints exactly the same bytes as ours
//! for the same tricky input, or the comparison would be meaningless.
//!
//! - Through the queue: every byte value alone and all of them in one
//!   message, every continuation byte after the lead bytes of the
//!   characters that disguise lines (C2, E2 80, E2 81), overlong, surrogate
//!   and truncated sequences, trailing newlines, pseudo-random messages up
//!   to the largest size, with priorities from 0 to 32 640. One message at a
//!   time (each line awaited before the next send), so that the order is the
//!   same whatever the priorities; then a few more, and SIGTERM, which the
//!   servers print before they exit (the drain at shutdown).
//! - Over TCP, `--message-size 16`: lines around every byte value, lines
//!   of 15, 16, 17, 32 and 33 bytes, characters cut by a piece's end, a
//!   long pseudo-random stretch, written in uneven chunks, and a last line
//!   without `\n` printed when the connection ends. The line count expected
//!   comes from the reactor's own `split_lines`; the client's port, which
//!   differs from server to server, is taken out of the tags.
//!
//! A difference panics, naming the first line that differs.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use reactor::sources::split_lines;

use crate::children::{Server, ServerSpec, Side};
use crate::cleanup::QueueName;
use crate::queue::Queue;
use crate::sink;

/// The queue's message size in the check: the benchmark's largest.
const MQ_SIZE: usize = 8192;
/// The TCP check's `--message-size`: short, so that lines come in pieces.
const TCP_PIECE: usize = 16;
/// Messages sent just before SIGTERM.
const AT_STOP: usize = 5;

/// Runs the check for every server of this run; panics on a difference.
pub fn outputs_agree() {
    let sides = Side::servers();
    let messages = queue_messages();
    let stream = tcp_stream();
    let queue: Vec<Vec<u8>> = sides.iter().map(|&side| queue_output(side, &messages)).collect();
    let tcp: Vec<Vec<u8>> = sides.iter().map(|&side| tcp_output(side, &stream)).collect();
    for (i, &side) in sides.iter().enumerate().skip(1) {
        compare("queue", side, &queue[0], &queue[i]);
        compare("tcp", side, &tcp[0], &tcp[i]);
    }
    eprintln!(
        "check: {sides:?} print the same bytes for {} queue messages ({} B out) and {} TCP lines ({} B out)",
        messages.len() + AT_STOP,
        queue[0].len(),
        count_lines(&tcp[0]),
        tcp[0].len()
    );
}

fn compare(what: &str, side: Side, ours: &[u8], theirs: &[u8]) {
    if ours == theirs {
        return;
    }
    let (a, b): (Vec<&[u8]>, Vec<&[u8]>) =
        (ours.split(|&b| b == b'\n').collect(), theirs.split(|&b| b == b'\n').collect());
    let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let show = |lines: &[&[u8]]| {
        lines.get(at).map_or("(none)".to_string(), |l| String::from_utf8_lossy(l).into_owned())
    };
    panic!(
        "bench check: {what} output of {side:?} differs from ours at line {} of {} / {}:\n  ours: {}\n  {side:?}: {}",
        at + 1,
        a.len(),
        b.len(),
        show(&a),
        show(&b)
    );
}

/// What `side` prints for `messages`, then for [`AT_STOP`] more at SIGTERM.
fn queue_output(side: Side, messages: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let queue = QueueName::new();
    let server = Server::start(
        side,
        &ServerSpec { queue: &queue, message_size: MQ_SIZE, tcp: false, extra: &[], program: None },
    );
    let sender = Queue::open_to_send(queue.as_str()).expect("bench check: opening the queue to send");
    let mut out = Vec::new();
    for (priority, message) in messages {
        sender.send_with_priority(message, *priority).expect("bench check: sending");
        sink::read_lines_into(server.output(), 1, &mut out).expect("bench check: the server's line");
    }
    for i in 0..AT_STOP {
        sender.send_with_priority(format!("at stop {i}\n").as_bytes(), 1).expect("bench check: sending");
    }
    out.extend(server.stop_and_read_rest());
    assert_eq!(count_lines(&out), messages.len() + AT_STOP, "bench check: {side:?} lost queue messages");
    out
}

/// What `side` prints for `stream` over one connection, the tag's port
/// replaced by `PORT`.
fn tcp_output(side: Side, stream: &[u8]) -> Vec<u8> {
    let queue = QueueName::new();
    let spec = ServerSpec { queue: &queue, message_size: TCP_PIECE, tcp: true, extra: &[], program: None };
    let server = Server::start(side, &spec);
    let addr = server.addr.expect("a TCP server says where it listens");
    let mut client = TcpStream::connect(addr).expect("bench check: connecting");
    let tag = format!("tcp[{}]: ", client.local_addr().expect("bench check: local address"));
    // Uneven chunks, a few of them after a pause, so that reads end anywhere.
    let mut rest = stream;
    for (i, size) in [1, 7, 64, 300, 4096, 2, 33].into_iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        client.write_all(chunk).expect("bench check: writing");
        if i % 5 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        rest = after;
    }
    client.shutdown(Shutdown::Write).expect("bench check: ending the stream");
    let mut out = Vec::new();
    let lines = expected_lines(stream, TCP_PIECE);
    sink::read_lines_into(server.output(), lines, &mut out).expect("bench check: the server's lines");
    drop(server);
    let mut normalised = Vec::with_capacity(out.len());
    for line in out.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_prefix(tag.as_bytes()).unwrap_or_else(|| {
            panic!(
                "bench check: {side:?} printed {:?} without the tag {tag:?}",
                line.escape_ascii().to_string()
            )
        });
        normalised.extend_from_slice(b"tcp[127.0.0.1:PORT]: ");
        normalised.extend_from_slice(text);
    }
    normalised
}

/// How many lines the server prints for `stream`, by the reactor's own rule.
fn expected_lines(stream: &[u8], max_line: usize) -> u64 {
    let (mut lines, mut partial) = (0, Vec::new());
    split_lines(stream, &mut partial, max_line, &mut |_: &[u8]| lines += 1);
    lines + u64::from(!partial.is_empty())
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Sequences around the escaping rule's edges: overlong, surrogate, out of
/// range, truncated, and valid ones beside them.
const UTF8_EDGES: &[&[u8]] = &[
    b"\xc0\x80",
    b"\xc1\xbf",
    b"\xe0\x80\x80",
    b"\xe0\x9f\xbf",
    b"\xe0\xa0\x80",
    b"\xed\xa0\x80",
    b"\xed\x9f\xbf",
    b"\xf0\x80\x80\x80",
    b"\xf0\x8f\xbf\xbf",
    b"\xf0\x90\x80\x80",
    b"\xf4\x8f\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xff\xfe",
    b"\xe2\x82",
    b"\xe2\x82 \xe2\x82\xac",
    b"\xf0\x9f\xa6",
    b"\xf0\x9f\xa6\x80",
    "grüße, 世界 🦀 \u{a0}\u{2027}\u{202f}\u{2065}\u{206a}".as_bytes(),
    "\u{85}\u{202e}evil\u{2069}\u{2028}\u{2029}".as_bytes(),
    b"hi\n",
    b"hi\n\n",
    b"\n",
    b"",
    b"a\tb\\n\r\x1b[31m\x7f",
];

/// The queue check's messages, with their priorities.
fn queue_messages() -> Vec<(u32, Vec<u8>)> {
    let mut messages: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let all: Vec<u8> = (0..=255u8).collect();
    messages.push(all.clone());
    messages.push(all.iter().rev().copied().collect());
    for lead in [&b"\xc2"[..], b"\xe2\x80", b"\xe2\x81"] {
        for continuation in 0x80..=0xbfu8 {
            messages.push([b"<", lead, &[continuation], b">"].concat());
        }
    }
    messages.extend(UTF8_EDGES.iter().map(|edge| edge.to_vec()));
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for i in 0..200 {
        let len = if i < 2 { MQ_SIZE } else { random.next() as usize % 600 };
        messages.push(random.bytes(len));
    }
    messages.push(vec![1; MQ_SIZE]);
    messages.into_iter().enumerate().map(|(i, m)| ((i as u32 % 256) * 128, m)).collect()
}

/// The TCP check's stream.
fn tcp_stream() -> Vec<u8> {
    let mut stream = Vec::new();
    for b in 0..=255u8 {
        stream.extend_from_slice(&[b'a', b, b'z', b'\n']);
    }
    stream.extend((0..=255u8).chain(0..=255));
    stream.push(b'\n');
    for len in [0, 1, 15, 16, 17, 31, 32, 33, 48] {
        stream.extend(crate::queue::message(len));
        stream.push(b'\n');
    }
    // A character cut by the end of a piece, at every offset.
    for cut in ["é", "€", "🦀", "\u{85}", "\u{202e}", "\u{2069}"] {
        for offset in 0..cut.len() {
            stream.extend(crate::queue::message(TCP_PIECE - 1 - offset));
            stream.extend_from_slice(cut.as_bytes());
            stream.push(b'\n');
        }
    }
    for edge in UTF8_EDGES {
        stream.extend_from_slice(edge);
        stream.push(b'\n');
    }
    stream.extend(Random(0x2545_f491_4f6c_dd1d).bytes(8192));
    stream.push(b'\n');
    stream.extend_from_slice(b"the last line, without a newline");
    stream
}

/// xorshift64: the same bytes on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Mostly printable ASCII, with UTF-8 characters, newlines and any byte.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 4);
        while out.len() < len {
            let r = self.next();
            match r % 16 {
                0 => out.push((r >> 8) as u8),
                1 => out.extend_from_slice(
                    ["é", "€", "🦀", "\u{85}", "\u{202e}", "\u{2028}"][(r >> 8) as usize % 6].as_bytes(),
                ),
                2 => out.push(if r & 0x100 == 0 { b'\n' } else { b'\\' }),
                _ => out.push(0x20 + (r >> 8) as u8 % 0x5f),
            }
        }
        out.truncate(len);
        out
    }
}
