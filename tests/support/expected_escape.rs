//! The escaping rule, written down independently of the server's code.

/// What the server prints for `message`:
///
/// - `\n`, tab and backslash as `\n`, `\t`, `\\`;
/// - other ASCII control bytes (below 0x20, and 0x7f) and every byte that
///   is not part of valid UTF-8 as `\xNN` in lowercase hex;
/// - characters that could make a message disguise the lines around it as
///   the `\xNN` of each of their bytes: the C1 controls (U+0080 to U+009F),
///   Unicode's `Bidi_Control` set (U+061C, U+200E, U+200F, U+202A to
///   U+202E, U+2066 to U+2069), the invisible U+200B and U+FEFF, the line
///   and paragraph separators (U+2028, U+2029);
/// - other valid UTF-8 as it is.
pub fn escaped(message: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = message;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(text) => (text, 0),
            Err(e) => {
                let text = std::str::from_utf8(&rest[..e.valid_up_to()]).expect("valid up to here");
                // `None`: an incomplete sequence at the end, all of it invalid.
                (text, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for c in valid.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if disguises_lines(c) => {
                    for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        let bad = &rest[valid.len()..valid.len() + invalid];
        for byte in bad {
            out.push_str(&format!("\\x{byte:02x}"));
        }
        rest = &rest[valid.len() + invalid..];
    }
    out
}

/// Control characters (C0, DEL, C1), the bidirectional controls, the zero
/// width space and the byte order mark, and the line and paragraph separators.
fn disguises_lines(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}
