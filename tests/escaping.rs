//! One message, one line, whatever its bytes: `\n`, tab and backslash as
//! `\n`, `\t`, `\\`; other control bytes, invalid UTF-8 and the characters
//! that could disguise the lines around them (C1 controls, bidirectional
//! controls, invisible characters, line separators) as `\xNN` in lowercase hex,
//! byte by byte; other valid UTF-8 kept; one trailing newline of a queue
//! message dropped.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use support::*;

/// Every byte value once, in order.
fn all_bytes() -> Vec<u8> {
    (0..=255).collect()
}

/// Every byte value but the newline, which ends a line on a stream.
fn all_bytes_but_newline() -> Vec<u8> {
    all_bytes().into_iter().filter(|&b| b != b'\n').collect()
}

#[test]
fn the_escaping_rule_written_out() {
    // The reference used below, pinned to literal text.
    assert_eq!(escaped(b"a\nb\tc\\d"), r"a\nb\tc\\d");
    assert_eq!(escaped(b"\x00\x01\r\x1b[0m\x7f"), r"\x00\x01\x0d\x1b[0m\x7f");
    assert_eq!(escaped(b"\xff\xfe ok \xc3"), r"\xff\xfe ok \xc3");
    assert_eq!(escaped("grüße 世界 🦀".as_bytes()), "grüße 世界 🦀");
    assert_eq!(escaped(b"\xe2\x82 \xe2\x82\xac"), r"\xe2\x82 €");
    assert_eq!(escaped(b"\xab\xcd\xef"), r"\xab\xcd\xef", "lowercase hex");
    // Characters that could disguise the lines around them, as their bytes.
    assert_eq!(escaped("a\u{80}b\u{9f}c".as_bytes()), r"a\xc2\x80b\xc2\x9fc", "C1 controls");
    assert_eq!(escaped("\u{202a}\u{202e}".as_bytes()), r"\xe2\x80\xaa\xe2\x80\xae", "embeddings, overrides");
    assert_eq!(escaped("\u{2066}\u{2069}".as_bytes()), r"\xe2\x81\xa6\xe2\x81\xa9", "isolates");
    assert_eq!(escaped("\u{2028}\u{2029}".as_bytes()), r"\xe2\x80\xa8\xe2\x80\xa9", "separators");
    assert_eq!(escaped(REORDERING.as_bytes()), REORDERING_ESCAPED, "marks, zero width space, BOM");
    // Their neighbours are plain text.
    let neighbours = "\u{a0}\u{2027}\u{202f}\u{2065}\u{206a}";
    assert_eq!(escaped(neighbours.as_bytes()), neighbours);
}

/// The bidirectional controls outside the override and isolate blocks,
/// and the invisible zero width space and byte order mark (CVE-2021-42574).
const REORDERING: &str = "a\u{61c}b\u{200e}c\u{200f}d\u{200b}e\u{feff}f";
const REORDERING_ESCAPED: &str = r"a\xd8\x9cb\xe2\x80\x8ec\xe2\x80\x8fd\xe2\x80\x8be\xef\xbb\xbff";

#[test]
fn marks_that_reorder_text_and_invisible_characters_are_hex_through_the_queue_and_tcp() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut stream = TcpStream::connect(server.tcp_addr()).unwrap();
    let tag = format!("tcp[{}]", stream.local_addr().unwrap());
    // The joiners beside them join emoji and scripts: kept.
    let joined = "\u{1f469}\u{200d}\u{1f52c} \u{200c}";

    send(&queue, &format!("{REORDERING} {joined}"));
    stream.write_all(format!("{REORDERING} {joined}\n").as_bytes()).unwrap();

    server.stdout.wait_exact(&format!("mq[0]: {REORDERING_ESCAPED} {joined}"));
    server.stdout.wait_exact(&format!("{tag}: {REORDERING_ESCAPED} {joined}"));
}

#[test]
fn all_256_byte_values_through_the_queue_are_escaped() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // --message-size 256: exactly fits
    let raw = RawQueue::open(queue.name(), Access::Send).unwrap();

    raw.send(&all_bytes(), 4);

    let line = server.stdout.wait_containing("mq[4]: ");
    assert_eq!(line, format!("mq[4]: {}", escaped(&all_bytes())));
    let high: String = (0x80..=0xffu8).map(|b| format!("\\x{b:02x}")).collect();
    let expected = [
        r"\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\x0d\x0e\x0f",
        r"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
        r##" !"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"##,
        r"\x7f",
        &high,
    ]
    .concat();
    assert_eq!(line, format!("mq[4]: {expected}"));
}

#[test]
fn all_byte_values_but_newline_through_tcp_are_escaped() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut stream = TcpStream::connect(server.tcp_addr()).unwrap();
    let tag = format!("tcp[{}]", stream.local_addr().unwrap());

    stream.write_all(&all_bytes_but_newline()).unwrap();
    stream.write_all(b"\n").unwrap();

    server.stdout.wait_exact(&format!("{tag}: {}", escaped(&all_bytes_but_newline())));
}

#[test]
fn hostile_bytes_through_the_client_stdin_are_escaped() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    client_with_input(["--queue", queue.name()], &[all_bytes_but_newline(), b"\n".to_vec()].concat())
        .assert_success();

    server.stdout.wait_exact(&format!("mq[0]: {}", escaped(&all_bytes_but_newline())));
}

#[test]
fn valid_utf8_is_kept_and_invalid_bytes_and_c1_controls_beside_it_are_hex() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut stream = TcpStream::connect(server.tcp_addr()).unwrap();
    let tag = format!("tcp[{}]", stream.local_addr().unwrap());

    stream.write_all("grüße 世界 🦀 \u{85}\n".as_bytes()).unwrap();
    stream.write_all(b"half \xe2\x82 then \xe2\x82\xac \xf0\x9f\n").unwrap();
    stream.write_all(b"surrogate \xed\xa0\x80 overlong \xc0\xaf\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();

    server.stdout.wait_exact(&format!("{tag}: grüße 世界 🦀 \\xc2\\x85"));
    server.stdout.wait_exact(&format!("{tag}: half \\xe2\\x82 then € \\xf0\\x9f"));
    server.stdout.wait_exact(&format!("{tag}: surrogate \\xed\\xa0\\x80 overlong \\xc0\\xaf"));
}

#[test]
fn newline_tab_and_backslash_in_a_queue_message_have_short_escapes() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    send(&queue, "two\nlines\tand a \\ backslash");

    server.stdout.wait_exact(r"mq[0]: two\nlines\tand a \\ backslash");
}

#[test]
fn exactly_one_trailing_newline_of_a_queue_message_is_dropped() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let raw = RawQueue::open(queue.name(), Access::Send).unwrap();

    raw.send(b"one newline\n", 0);
    raw.send(b"two newlines\n\n", 0);
    raw.send(b"\n", 0);
    raw.send(b"none", 0);
    raw.send(b"\ninside and at the end\n", 0);

    assert_eq!(
        server.stdout.wait_count(5),
        [
            "mq[0]: one newline",
            r"mq[0]: two newlines\n",
            "mq[0]: ",
            "mq[0]: none",
            r"mq[0]: \ninside and at the end"
        ]
    );
}

#[test]
fn carriage_return_before_a_stream_newline_is_kept_as_hex() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let mut stream = TcpStream::connect(server.tcp_addr()).unwrap();
    let tag = format!("tcp[{}]", stream.local_addr().unwrap());

    stream.write_all(b"crlf line\r\n").unwrap();

    server.stdout.wait_exact(&format!(r"{tag}: crlf line\x0d"));
}
