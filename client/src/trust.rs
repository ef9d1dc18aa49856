//! Whose queue the client sends into: one of its own user (or of the owner
//! `--owner` names), whatever its mode. A queue that another
//! user created first under the server's name is theirs: they would read
//! what is sent (the server refuses to adopt it, and the client must not
//! feed it either).

use std::ffi::CString;
use std::io;

use ipc::ObjectInfo;
use server::flags::UsageError;
use server::sys::geteuid;

/// The user `--owner` names: a number, or a name from the user database.
pub fn parse_owner(value: &str) -> Result<u32, UsageError> {
    if let Ok(uid) = value.parse::<u32>() {
        return Ok(uid);
    }
    let unknown = || UsageError(format!("--owner '{value}': no such user"));
    let name = CString::new(value).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd`, which the call fills in.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: every pointer is valid and `buf` is writable for `buf.len()` bytes.
        let err = unsafe {
            libc::getpwnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found)
        };
        match err {
            0 if found.is_null() => return Err(unknown()),
            0 => return Ok(entry.pw_uid),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            err => {
                let e = io::Error::from_raw_os_error(err);
                return Err(UsageError(format!("--owner '{value}': cannot look the user up: {e}")));
            }
        }
    }
}

/// Why the client does not send into a queue that `info` describes, when
/// it trusts the owner `trusted`; `None` if it does. The owner's mode is
/// the owner's choice (a queue shared with a course group is `--mode
/// 0660`): only who owns it is checked.
pub fn refusal(info: &ObjectInfo, trusted: u32) -> Option<String> {
    if info.uid == trusted {
        return None;
    }
    let expected = if trusted == geteuid() { "this user".to_string() } else { format!("user {trusted}") };
    Some(format!(
        "{}, not by {expected}: its owner can read what is sent into it \
         (if you trust that user, say so with --owner {})",
        info.owner_and_mode(),
        info.uid
    ))
}

/// Who may read (take) what is sent into a queue that `info` describes:
/// its owner, and those its mode lets in.
pub fn readers(info: &ObjectInfo) -> String {
    let owner = if info.uid == geteuid() { "this user".to_string() } else { format!("user {}", info.uid) };
    match (info.mode & 0o040 != 0, info.mode & 0o004 != 0) {
        (_, true) => format!("{owner} and every other user (mode {:04o})", info.mode),
        (true, false) => format!("{owner} and the members of group {} (mode {:04o})", info.gid, info.mode),
        (false, false) => format!("{owner} alone (mode {:04o})", info.mode),
    }
}
