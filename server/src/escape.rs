//! One message, one line: the escaping rule for everything the server prints.
//!
//! - `\n` becomes `\n`, tab `\t`, backslash `\\`;
//! - other ASCII control bytes (below 0x20, and 0x7f) and bytes that are not
//!   valid UTF-8 become `\xNN`;
//! - characters that change how a terminal shows a line, and so could
//!   make a message disguise the lines around it, are written as the
//!   `\xNN` of each of their bytes: the C1 controls (U+0080 to U+009F),
//!   the rest of Unicode's `Bidi_Control` set (the Arabic letter mark
//!   U+061C, the marks U+200E and U+200F, the embeddings and overrides
//!   U+202A to U+202E, the isolates U+2066 to U+2069), the invisible zero
//!   width space U+200B and byte order mark U+FEFF, and the line and
//!   paragraph separators (U+2028, U+2029);
//! - other valid UTF-8 is kept as it is.
//!
//! Every escape stands for bytes (`\n`, `\t`, `\\`, `\xNN`), so the
//! output decodes back to exactly the bytes received.
//!
//! The rule is one table, `RULE`, and one function that applies it,
//! `rule_in`: the escaping and the journal's check before a replay
//! ([`is_printable`]) both go through them. This runs on every byte the
//! server receives, so the common case (plain ASCII, nothing to escape)
//! is found in bulk and copied in one go by a fast path that the tests
//! check against the table byte for byte.

/// Where escaped bytes go: a `Vec`, or the server's output journal (a
/// buffer in shared memory, `crate::journal`).
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// Lends `fill` room for `max` more bytes, and appends the first `n`
    /// of them, where `n` is what `fill` returns (at most `max`).
    fn put_with(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_with(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) {
        let len = self.len();
        self.resize(len + max, 0);
        let n = fill(&mut self[len..]);
        self.truncate(len + n.min(max));
    }
}

/// Appends `message` to `out`, escaped.
pub fn escape_into(out: &mut impl Sink, message: &[u8]) {
    escape_between(out, b"", message, b"");
}

/// Appends one line of output to `out`: `prefix` as it is, `message`
/// escaped, and a newline.
pub fn escape_line_into(out: &mut impl Sink, prefix: &[u8], message: &[u8]) {
    escape_between(out, prefix, message, b"\n");
}

/// Appends `prefix`, `message` escaped, then `end`.
fn escape_between(out: &mut impl Sink, prefix: &[u8], message: &[u8], end: &[u8]) {
    // The common case, plain ASCII, in one pass: checked as it is copied.
    let mut plain = false;
    let whole = prefix.len() + message.len() + end.len();
    out.put_with(whole, |room| {
        let (head, rest) = room.split_at_mut(prefix.len());
        plain = copy_if_plain(message, rest);
        if !plain {
            return 0;
        }
        copy_short(prefix, head);
        rest[message.len()..message.len() + end.len()].copy_from_slice(end);
        whole
    });
    if !plain {
        out.put(prefix);
        escape_other(out, message);
        out.put(end);
    }
}

/// Copies `from` to the start of `to` (as long, at least), inline when it
/// is 32 bytes or less, as a line's prefix is: in two pieces that overlap
/// as much as they need to. (A call to `memcpy` took longer than the copy.)
fn copy_short(from: &[u8], to: &mut [u8]) {
    fn piece<const N: usize>(from: &[u8], at: usize) -> [u8; N] {
        let mut bytes = [0; N];
        bytes.copy_from_slice(&from[at..at + N]);
        bytes
    }
    fn pieces<const N: usize>(from: &[u8], to: &mut [u8]) {
        let (first, last) = (piece::<N>(from, 0), piece::<N>(from, from.len() - N));
        let end = to.len() - N;
        to[..N].copy_from_slice(&first);
        to[end..].copy_from_slice(&last);
    }
    let to = &mut to[..from.len()];
    // Longest first: a TCP client's prefix is 16 to 32 bytes.
    match from.len() {
        33.. => to.copy_from_slice(from),
        16.. => pieces::<16>(from, to),
        8.. => pieces::<8>(from, to),
        4.. => pieces::<4>(from, to),
        2.. => pieces::<2>(from, to),
        1 => to[0] = from[0],
        0 => {}
    }
}

/// How the rule prints one byte, or one character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Byte {
    /// As it is.
    Plain,
    /// As a backslash and this letter: `\n`, `\t`, `\\`.
    Short(u8),
    /// As `\xNN`, byte by byte.
    Hex,
    /// Beyond ASCII: as it is inside valid UTF-8, but in a character that
    /// disguises a line ([`disguise_len`]); else as `\xNN`.
    Utf8,
}

/// The rule, for every byte value: the one place that says what is
/// escaped. [`rule_in`] applies it to text; the fast paths below only say
/// sooner that every byte of a message is [`Byte::Plain`], and the tests
/// check them against this table byte for byte.
const RULE: [Byte; 256] = {
    let mut rule = [Byte::Hex; 256];
    let mut b = 0;
    while b < 256 {
        rule[b] = match b as u8 {
            b'\n' => Byte::Short(b'n'),
            b'\t' => Byte::Short(b't'),
            b'\\' => Byte::Short(b'\\'),
            0x20..=0x7e => Byte::Plain,
            0x80.. => Byte::Utf8,
            _ => Byte::Hex,
        };
        b += 1;
    }
    rule
};

/// The rule applied at byte `i` of valid UTF-8 `text`: how that byte, or
/// the character it begins, is printed, and how many bytes that takes.
/// Never [`Byte::Utf8`]. (Bytes that are not valid UTF-8 are all
/// [`Byte::Hex`].)
fn rule_in(text: &[u8], i: usize) -> (Byte, usize) {
    match RULE[usize::from(text[i])] {
        Byte::Utf8 => match disguise_len(&text[i..]) {
            0 => (Byte::Plain, 1),
            len => (Byte::Hex, len),
        },
        byte => (byte, 1),
    }
}

/// Appends `message`, which is not plain ASCII, escaped: the runs that
/// the rule keeps are copied whole.
fn escape_other(out: &mut impl Sink, message: &[u8]) {
    for chunk in message.utf8_chunks() {
        let text = chunk.valid().as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < text.len() {
            let (byte, len) = rule_in(text, i);
            if byte != Byte::Plain {
                out.put(&text[start..i]);
                match byte {
                    Byte::Short(letter) => out.put(&[b'\\', letter]),
                    _ => text[i..i + len].iter().for_each(|&b| push_hex(out, b)),
                }
                start = i + len;
            }
            i += len;
        }
        out.put(&text[start..]);
        chunk.invalid().iter().for_each(|&b| push_hex(out, b));
    }
}

/// The length of the character that disguises a line at the start of
/// valid UTF-8 `text`, or 0 if it starts with another one.
fn disguise_len(text: &[u8]) -> usize {
    match *text {
        // U+0080..=U+009F: C2 80..=C2 9F.
        [0xc2, 0x80..=0x9f, ..] => 2,
        // U+061C: D8 9C.
        [0xd8, 0x9c, ..] => 2,
        // U+200B, U+200E, U+200F: E2 80 8B, 8E, 8F (U+200C and U+200D join emoji and scripts: kept).
        [0xe2, 0x80, 0x8b | 0x8e | 0x8f, ..] => 3,
        // U+2028, U+2029, U+202A..=U+202E: E2 80 A8..=AE.
        [0xe2, 0x80, 0xa8..=0xae, ..] => 3,
        // U+2066..=U+2069: E2 81 A6..=A9.
        [0xe2, 0x81, 0xa6..=0xa9, ..] => 3,
        // U+FEFF: EF BB BF.
        [0xef, 0xbb, 0xbf, ..] => 3,
        _ => 0,
    }
}

/// Whether `text` could be lines that [`escape_line_into`] wrote: by the
/// rule, every character is printed as it is, but the newlines that end
/// the lines and the backslashes that begin escapes. (Bytes read back
/// from the output journal are checked so before they are printed again.)
pub fn is_printable(text: &[u8]) -> bool {
    text.utf8_chunks().all(|chunk| {
        let text = chunk.valid().as_bytes();
        let mut i = 0;
        while i < text.len() {
            match rule_in(text, i) {
                (Byte::Plain, len) => i += len,
                (Byte::Short(b'n' | b'\\'), _) => i += 1,
                _ => return false,
            }
        }
        chunk.invalid().is_empty()
    })
}

/// Copies `text` to the start of `room` (as long as `text`, at least) and
/// says whether every byte is [`Byte::Plain`] ASCII, which needs no
/// escape. (What it copies of a message that is not is left unfinished,
/// for the caller to drop.)
///
/// On x86-64 a message of sixteen bytes or more is copied and checked
/// sixteen bytes at a time with SSE2 (part of every x86-64 CPU), and the
/// copy stops at the first sixteen that hold a byte to escape; one of 8 to
/// 15 bytes is checked as two overlapping words in one vector. Shorter
/// messages, and other CPUs, go byte by byte through [`RULE`]. What it
/// saves against the byte loop (callgrind, the release server, stdin lines,
/// 2026-12-08, `docs/performance.md`): 71 instructions a 10-byte line, 87 a
/// 16-byte one, 5 453 a 1 KiB one.
#[cfg(target_arch = "x86_64")]
fn copy_if_plain(text: &[u8], room: &mut [u8]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_set_epi64x, _mm_storeu_si128,
    };
    /// Which of sixteen bytes are not `Plain`: those below 0x20 or from
    /// 0x80 on (all below 0x20 as signed bytes), backslashes, 0x7f.
    fn not_plain(v: __m128i) -> i32 {
        // SAFETY: SSE2 is part of x86-64; the intrinsics touch registers only.
        unsafe {
            let control_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let delete = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
            _mm_movemask_epi8(_mm_or_si128(control_or_high, _mm_or_si128(backslash, delete)))
        }
    }
    let len = text.len();
    if len < 8 {
        return copy_if_plain_bytes(text, room);
    }
    let room = &mut room[..len];
    if len < 16 {
        // Two words that overlap as much as they need to, checked as one vector.
        let (first, last) = (word_at(text), word_at(&text[len - 8..]));
        room[..8].copy_from_slice(&first.to_le_bytes());
        room[len - 8..].copy_from_slice(&last.to_le_bytes());
        // SAFETY: SSE2 is part of x86-64; the intrinsic builds a register from two integers.
        return not_plain(unsafe { _mm_set_epi64x(last as i64, first as i64) }) == 0;
    }
    // Copies sixteen bytes and says which are not `Plain`.
    let step = |from: &[u8], to: &mut [u8]| {
        assert!(from.len() == 16 && to.len() == 16);
        // SAFETY: SSE2 is part of x86-64; both slices are sixteen bytes
        // (asserted), and `loadu`/`storeu` need no alignment.
        let v = unsafe { _mm_loadu_si128(from.as_ptr().cast()) };
        // SAFETY: as for the load.
        unsafe { _mm_storeu_si128(to.as_mut_ptr().cast(), v) };
        not_plain(v)
    };
    // A loop that stops at the first byte to escape is also one that LLVM
    // does not turn into a call to `memcpy` and a second pass to check.
    // Thirty-two bytes a turn, then sixteen, then the last sixteen again,
    // overlapping the steps before.
    let mut done = 0;
    for (to, from) in room.chunks_exact_mut(32).zip(text.chunks_exact(32)) {
        let (low, high) = to.split_at_mut(16);
        if step(&from[..16], low) | step(&from[16..], high) != 0 {
            return false;
        }
        done += 32;
    }
    if len - done >= 16 && step(&text[done..done + 16], &mut room[done..done + 16]) != 0 {
        return false;
    }
    step(&text[len - 16..], &mut room[len - 16..]) == 0
}

/// The eight bytes `bytes` begins with, as one little-endian word.
#[cfg(target_arch = "x86_64")]
fn word_at(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// [`copy_if_plain`] without vector code.
#[cfg(not(target_arch = "x86_64"))]
fn copy_if_plain(text: &[u8], room: &mut [u8]) -> bool {
    copy_if_plain_bytes(text, room)
}

/// [`copy_if_plain`] byte by byte, through [`RULE`].
fn copy_if_plain_bytes(text: &[u8], room: &mut [u8]) -> bool {
    room[..text.len()].copy_from_slice(text);
    text.iter().all(|&b| RULE[usize::from(b)] == Byte::Plain)
}

fn push_hex(out: &mut impl Sink, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
}

#[cfg(test)]
mod tests {
    use super::escape_into;

    fn escaped(message: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, message);
        String::from_utf8(out).expect("escaped output is always UTF-8")
    }

    #[test]
    fn plain_text_and_utf8_are_kept() {
        assert_eq!(escaped(b"hello, world"), "hello, world");
        assert_eq!(escaped("grüße, 世界 🦀".as_bytes()), "grüße, 世界 🦀");
        assert_eq!(escaped(b""), "");
    }

    #[test]
    fn newline_tab_and_backslash_have_short_escapes() {
        assert_eq!(escaped(b"a\nb\tc\\d"), "a\\nb\\tc\\\\d");
    }

    #[test]
    fn other_controls_and_delete_are_hex() {
        assert_eq!(escaped(b"\0\r\x1b[31m\x7f"), "\\x00\\x0d\\x1b[31m\\x7f");
    }

    #[test]
    fn invalid_utf8_is_hex_and_valid_neighbours_survive() {
        assert_eq!(escaped(b"\xff\xfeok\xc3"), "\\xff\\xfeok\\xc3");
        assert_eq!(escaped("é\n".as_bytes()), "é\\n");
        assert_eq!(escaped(b"\xe2\x82 \xe2\x82\xac"), "\\xe2\\x82 €");
    }

    #[test]
    fn the_plain_ascii_path_agrees_with_the_general_one() {
        let general = |bytes: &[u8]| {
            let mut out = Vec::new();
            super::escape_other(&mut out, bytes);
            out
        };
        // Up to three sixteen-byte steps, and every tail.
        each_with_one_byte_of_every_value(48, |bytes| {
            let mut out = b"before".to_vec();
            escape_into(&mut out, bytes);
            assert_eq!(out[6..], general(bytes), "{bytes:?}");
            let mut line = b"before".to_vec();
            super::escape_line_into(&mut line, b"tag: ", bytes);
            assert_eq!(line[6..], [b"tag: ".to_vec(), general(bytes), b"\n".to_vec()].concat(), "{bytes:?}");
        });
    }

    /// Calls `check` with every message of `a`s up to `max_len` bytes
    /// long in which one byte, at every place in turn, takes every value.
    fn each_with_one_byte_of_every_value(max_len: usize, mut check: impl FnMut(&[u8])) {
        for len in 0..=max_len {
            for byte in 0..=255u8 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    check(&bytes);
                }
            }
        }
    }

    #[test]
    fn short_copies_copy_every_byte_and_no_more() {
        let from: Vec<u8> = (1..=40).collect();
        for len in 0..=40 {
            let mut to = vec![0; len + 3];
            super::copy_short(&from[..len], &mut to);
            assert_eq!(to[..len], from[..len], "{len} bytes");
            assert_eq!(to[len..], [0; 3], "{len} bytes: none past them");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_rule_on_every_byte_at_every_place() {
        let plain = |bytes: &[u8]| bytes.iter().all(|&b| super::RULE[usize::from(b)] == super::Byte::Plain);
        // Two thirty-two-byte turns, a sixteen-byte step, and every tail.
        each_with_one_byte_of_every_value(80, |bytes| {
            let len = bytes.len();
            let mut copy = vec![0; len + 3];
            assert_eq!(super::copy_if_plain(bytes, &mut copy), plain(bytes), "{bytes:?}");
            if plain(bytes) {
                assert_eq!(copy[..len], bytes[..]);
            }
            assert_eq!(copy[len..], [0; 3], "no byte past the message is written");
        });
    }

    #[test]
    fn characters_that_disguise_lines_are_hex_and_their_neighbours_survive() {
        assert_eq!(escaped("a\u{85}b".as_bytes()), "a\\xc2\\x85b");
        assert_eq!(escaped("\u{202e}evil\u{2069}".as_bytes()), "\\xe2\\x80\\xaeevil\\xe2\\x81\\xa9");
        assert_eq!(escaped("x\u{2028}y\u{2029}".as_bytes()), "x\\xe2\\x80\\xa8y\\xe2\\x80\\xa9");
        // Their neighbours in the tables are kept: U+00A0, U+061B, U+061D, U+200A, U+200C, U+200D,
        // U+2010, U+2027, U+202F, U+2065, U+206A, U+20AC, U+FEFE, U+FF00.
        let kept = [
            "\u{a0}", "\u{61b}", "\u{61d}", "\u{200a}", "\u{200c}", "\u{200d}", "\u{2010}", "\u{2027}",
            "\u{202f}", "\u{2065}", "\u{206a}", "€", "é", "\u{fefe}", "\u{ff00}",
        ];
        for kept in kept {
            assert_eq!(escaped(kept.as_bytes()), kept);
        }
        let others = [0x61c, 0x200b, 0x200e, 0x200f, 0x2028, 0x2029, 0xfeff];
        for c in (0x80..=0x9f).chain(0x202a..=0x202e).chain(0x2066..=0x2069).chain(others) {
            let text = char::from_u32(c).unwrap().to_string();
            let hex: String = text.bytes().map(|b| format!("\\x{b:02x}")).collect();
            assert_eq!(escaped(text.as_bytes()), hex, "U+{c:04X}");
        }
    }

    #[test]
    fn escaped_lines_are_printable_and_raw_controls_are_not() {
        let all: Vec<u8> = (0..=255).collect();
        let mut lines = escaped(&all).into_bytes();
        lines.push(b'\n');
        assert!(super::is_printable(&lines));
        for raw in [&b"\x1b[2J\n"[..], b"a\rb\n", b"\x7f\n", "\u{202e}\n".as_bytes(), b"\0"] {
            assert!(!super::is_printable(raw), "{raw:?}");
        }
        // Bytes the server prints as \xNN: a lone 0xff, a lone 0x85 (Latin-1 NEL), an 8-bit CSI.
        for raw in [&b"a\xffb\n"[..], b"\x85\n", b"\x9b2J\n"] {
            assert!(!super::is_printable(raw), "{raw:?}");
        }
    }

    #[test]
    fn the_journals_check_is_the_rule_for_every_byte_and_every_character() {
        // Printable raw: what the rule prints as it is, and the newline and backslash the output holds.
        let printable_raw = |text: &[u8]| escaped(text).as_bytes() == text || text == b"\n" || text == b"\\";
        each_with_one_byte_of_every_value(20, |bytes| {
            let one = bytes.iter().find(|&&b| b != b'a').map_or(&b"a"[..], std::slice::from_ref);
            let line = [bytes, b"\n"].concat();
            assert_eq!(super::is_printable(&line), printable_raw(one), "{bytes:?}");
        });
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = c.to_string();
            let line = format!("{text}\n");
            assert_eq!(
                super::is_printable(line.as_bytes()),
                printable_raw(text.as_bytes()),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn output_never_contains_a_raw_newline() {
        let all: Vec<u8> = (0..=255).collect();
        let out = escaped(&all);
        assert!(!out.contains('\n') && !out.contains('\r'));
        assert_eq!(out.matches("\\x").count(), 32 - 2 + 1 + 128);
    }
}
