//! Create-or-open, and names removed by the object that created them.
//!
//! Every `create` of this crate makes its object in three steps that look
//! atomic to the openers of [`create_or_open`]: `O_CREAT|O_EXCL` with mode
//! 0, then what completes it (`ftruncate` for shared memory), then the
//! final mode (`fchmod`, or `chmod` of a semaphore's file). An object whose
//! mode is 0 is one still being made: an opener that meets one waits for
//! it, up to [`CREATION_WAIT`], and never returns it half made.

use std::io;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::ObjectInfo;

/// How long [`create_or_open`] waits for another process to finish making
/// the object it found (mode 0, or shared memory not sized yet).
pub(crate) const CREATION_WAIT: Duration = Duration::from_secs(2);

/// The longest pause between two looks at an object being made.
const MAX_PAUSE: Duration = Duration::from_millis(16);

/// What an object with a name offers to the removal at drop.
pub(crate) trait Named {
    /// The name it was opened by.
    fn name(&self) -> &str;
    /// Whether dropping it removes the name.
    fn removes_on_drop(&self) -> bool;
    /// Whether its name still names this object.
    fn is_still_named(&self) -> io::Result<bool>;
    /// Removes the name `name`.
    fn unlink(name: &str) -> io::Result<()>;
}

/// What an object's `Drop` does first: removes its name if it was told to
/// and the name still names it (a name that was removed, or given to
/// another object since, is left alone).
pub(crate) fn drop_name<T: Named>(object: &T) {
    if object.removes_on_drop() && object.is_still_named().unwrap_or(false) {
        let _ = T::unlink(object.name());
    }
}

/// For `$object` (with the fields `name` and `remove_on_drop`, and the
/// methods `is_still_named` and `unlink`): `remove_on_drop`,
/// `set_remove_on_drop` and `removes_on_drop`, and its [`Named`].
/// `create` and `open` are the calls of the example, after `$object::`.
macro_rules! removable {
    ($object:ident, $unlink:literal, create: $create:literal, open: $open:literal) => {
        impl $object {
            #[doc = concat!(
                "From now on, dropping it removes the name (`", $unlink, "`), if the name still ",
                "names this object: on a normal end, an error return or a panic that unwinds; ",
                "not after `SIGKILL`, `std::process::exit` or `abort`.\n\n",
                "```\n",
                "# fn main() -> std::io::Result<()> {\n",
                "use ipc::", stringify!($object), ";\n",
                "let name = format!(\"/ipc-doc-remove-on-drop-{}\", std::process::id());\n",
                "let owner = ", stringify!($object), "::", $create, "?.remove_on_drop();\n",
                "// Another process (a thread here) opens it and ends: its drop only closes.\n",
                "let opener = std::thread::spawn({\n",
                "    let name = name.clone();\n",
                "    move || ", stringify!($object), "::", $open, ".map(drop)\n",
                "});\n",
                "opener.join().expect(\"the opener\")?;\n",
                "assert!(", stringify!($object), "::", $open, ".is_ok(), \"still named\");\n",
                "drop(owner);\n",
                "assert!(", stringify!($object), "::", $open, ".is_err(), \"its owner removed it\");\n",
                "# Ok(())\n",
                "# }\n",
                "```"
            )]
            pub fn remove_on_drop(mut self) -> $object {
                self.remove_on_drop = true;
                self
            }

            /// Whether dropping it removes the name; `false` leaves the name to others.
            pub fn set_remove_on_drop(&mut self, remove: bool) {
                self.remove_on_drop = remove;
            }

            /// Whether dropping it removes the name.
            pub fn removes_on_drop(&self) -> bool {
                self.remove_on_drop
            }
        }

        impl $crate::open::Named for $object {
            fn name(&self) -> &str {
                &self.name
            }

            fn removes_on_drop(&self) -> bool {
                self.remove_on_drop
            }

            fn is_still_named(&self) -> io::Result<bool> {
                $object::is_still_named(self)
            }

            fn unlink(name: &str) -> io::Result<()> {
                $object::unlink(name)
            }
        }
    };
}

pub(crate) use removable;

/// Whether the file `path` is the object of `identity` (device, inode):
/// false when it is gone or is another object now.
pub(crate) fn file_is(path: &Path, identity: (u64, u64)) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(ObjectInfo::from_metadata(&meta).identity == identity),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// One creation or opening of the object `what` (`semaphore /x`), whose
/// file is `file` (if it has one this process can find), and whether this
/// call created it.
///
/// `create` must fail with `AlreadyExists` when the name exists; `open`
/// opens the existing object, and `made` says whether an opened one is
/// complete. An opener that is refused (`PermissionDenied`) while the file's
/// mode is 0, or that opens an incomplete object, waits for its creator up
/// to [`CREATION_WAIT`]; a name removed meanwhile is created again.
pub(crate) fn create_or_open<T>(
    what: &str,
    mode: libc::mode_t,
    file: Option<&Path>,
    mut create: impl FnMut() -> io::Result<T>,
    mut open: impl FnMut() -> io::Result<T>,
    made: impl Fn(&T) -> io::Result<bool>,
) -> io::Result<(T, bool)> {
    if mode & 0o777 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}: mode 0 is refused: it marks an object still being made"),
        ));
    }
    let deadline = Instant::now() + CREATION_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match create() {
            Ok(object) => return Ok((object, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match open() {
            Ok(object) if made(&object)? => return Ok((object, false)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && file.is_some_and(mode_is_0) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            let remove = file.map_or(String::new(), |f| format!(" (rm {})", f.display()));
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{what} exists but was not made within {CREATION_WAIT:?}: its mode is still 0 or it \
                     is still empty, so its creator may have died while making it; if no process is \
                     making it, remove it{remove}"
                ),
            ));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Whether the file at `path` has mode 0 (an object being made).
fn mode_is_0(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| ObjectInfo::from_metadata(&meta).mode == 0)
}
