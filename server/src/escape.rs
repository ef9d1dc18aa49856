//! One message, one line: the escaping rule for everything the server prints.
//!
//! - `\n` becomes `\n`, tab `\t`, backslash `\\`;
//! - other ASCII control bytes (below 0x20, and 0x7f) and bytes that are not
//!   valid UTF-8 become `\xNN`;
//! - valid UTF-8 is kept as it is.
//!
//! This runs on every byte the server receives, so the common case (plain
//! text, nothing to escape) is found in bulk and copied in one go.

/// Appends `message` to `out`, escaped.
pub fn escape_into(out: &mut Vec<u8>, message: &[u8]) {
    let (special, non_ascii) = classify(message);
    if !special && (!non_ascii || std::str::from_utf8(message).is_ok()) {
        out.extend_from_slice(message);
        return;
    }
    for chunk in message.utf8_chunks() {
        escape_text(out, chunk.valid().as_bytes());
        for &byte in chunk.invalid() {
            push_hex(out, byte);
        }
    }
}

/// Whether any byte needs an escape, and whether any is outside ASCII,
/// eight bytes at a time (a short message has no room for vector code).
fn classify(bytes: &[u8]) -> (bool, bool) {
    let (mut special, mut high) = (0, 0);
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        special |= special_bytes(word);
        high |= word & HIGH_BITS;
    }
    // The tail, padded with spaces, which need nothing.
    let mut tail = [b' '; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    let word = u64::from_le_bytes(tail);
    special |= special_bytes(word);
    high |= word & HIGH_BITS;
    (special != 0, high != 0)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Non-zero if some byte of `word` is below 0x20, a backslash or 0x7f (the
/// classic "has a byte less than n" and "has a zero byte" word tricks: exact
/// about whether there is one, not about where).
fn special_bytes(word: u64) -> u64 {
    let below = |n: u8, w: u64| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH_BITS;
    below(0x20, word) | below(1, word ^ (ONES * u64::from(b'\\'))) | below(1, word ^ (ONES * 0x7f))
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'\\' || b == 0x7f
}

/// Escapes valid UTF-8, copying the runs between special bytes whole.
fn escape_text(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if needs_escape(b) {
            out.extend_from_slice(&text[start..i]);
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\\' => out.extend_from_slice(b"\\\\"),
                _ => push_hex(out, b),
            }
            start = i + 1;
        }
    }
    out.extend_from_slice(&text[start..]);
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
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
    fn word_classification_agrees_with_byte_by_byte() {
        let naive =
            |bytes: &[u8]| (bytes.iter().any(|&b| super::needs_escape(b)), bytes.iter().any(|&b| b >= 0x80));
        for background in [b'a', b' ', 0x21, 0x5b, 0x5d, 0x7e, 0x80, 0xc3, 0xff] {
            for byte in 0..=255u8 {
                for at in 0..9 {
                    let mut bytes = vec![background; 9];
                    bytes[at] = byte;
                    assert_eq!(super::classify(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..40 {
            for _ in 0..2000 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly printable ASCII, sometimes anything.
                        if seed & 7 == 0 {
                            (seed >> 8) as u8
                        } else {
                            0x20 + (seed >> 8) as u8 % 0x5f
                        }
                    })
                    .collect();
                assert_eq!(super::classify(&bytes), naive(&bytes), "{bytes:?}");
            }
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
