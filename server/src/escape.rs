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

/// Whether any byte needs an escape, and whether any is outside ASCII.
/// A fold without early exit, so the compiler turns it into vector code.
fn classify(bytes: &[u8]) -> (bool, bool) {
    bytes.iter().fold((false, false), |(special, high), &b| (special | needs_escape(b), high | (b >= 0x80)))
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
    fn output_never_contains_a_raw_newline() {
        let all: Vec<u8> = (0..=255).collect();
        let out = escaped(&all);
        assert!(!out.contains('\n') && !out.contains('\r'));
        assert_eq!(out.matches("\\x").count(), 32 - 2 + 1 + 128);
    }
}
