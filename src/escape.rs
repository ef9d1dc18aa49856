//! The escaping rule, written down independently of the server's code.

/// What the server prints for `message`: `\n`, tab and backslash as `\n`,
/// `\t`, `\\`; other control bytes (below 0x20, and 0x7f) and every byte
/// that is not part of valid UTF-8 as `\xNN` in lowercase hex; valid UTF-8
/// as it is.
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
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
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
