//! What `fstat` says of an object: who owns it, its permission bits, and
//! which object it is.

use std::io;
use std::os::fd::RawFd;

/// The owner, mode and identity of an open object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The owner's user id.
    pub uid: u32,
    /// The owner's group id.
    pub gid: u32,
    /// The permission bits (`0o7777` of `st_mode`).
    pub mode: u32,
    /// The size in bytes (a queue reports the bytes its messages hold).
    pub size: u64,
    /// The device and inode: two descriptors with the same pair are the
    /// same object, even when its name now names another.
    pub identity: (u64, u64),
}

impl ObjectInfo {
    pub(crate) fn of(fd: RawFd) -> io::Result<ObjectInfo> {
        let st = crate::sys::fstat(fd)?;
        Ok(ObjectInfo::from_stat(&st))
    }

    pub(crate) fn from_stat(st: &libc::stat) -> ObjectInfo {
        ObjectInfo {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            size: st.st_size as u64,
            identity: (st.st_dev, st.st_ino),
        }
    }

    pub(crate) fn from_metadata(meta: &std::fs::Metadata) -> ObjectInfo {
        use std::os::unix::fs::MetadataExt;
        ObjectInfo {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            size: meta.size(),
            identity: (meta.dev(), meta.ino()),
        }
    }

    /// `owned by this user with mode 0600`, or `owned by user 1001 with
    /// mode 0666`: how an error names who owns the object and who may use it.
    pub fn owner_and_mode(&self) -> String {
        // SAFETY: plain call, cannot fail.
        let owner = if self.uid == unsafe { libc::geteuid() } {
            "this user".to_string()
        } else {
            format!("user {}", self.uid)
        };
        format!("owned by {owner} with mode {:04o}", self.mode)
    }

    /// Whether users other than the owner may read it (group or others).
    pub fn readable_by_others(&self) -> bool {
        self.mode & 0o044 != 0
    }

    /// Whether users other than the owner may write it (group or others).
    pub fn writable_by_others(&self) -> bool {
        self.mode & 0o022 != 0
    }
}
