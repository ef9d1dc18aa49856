//! The rule for queue names, shared by the server and the client (which
//! includes this file with `#[path]`), so that both refuse the same names
//! with the same words.

/// Why `name` is not a valid queue name, or `None` if it is: one path
/// component after a leading slash (`/postbox`), at most 255 bytes, no NUL.
pub fn queue_name_problem(name: &str) -> Option<&'static str> {
    let Some(rest) = name.strip_prefix('/') else {
        return Some("must start with a slash, as in /postbox");
    };
    if rest.is_empty() || rest == "." || rest == ".." {
        Some("needs a name after the slash, as in /postbox")
    } else if rest.contains('/') {
        Some("may not contain another slash")
    } else if rest.len() > 255 {
        Some("is longer than 255 bytes")
    } else if rest.contains('\0') {
        Some("may not contain a NUL byte")
    } else {
        None
    }
}
