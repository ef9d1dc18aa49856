//! Where the `server` and `client` binaries of this build are.
//!
//! Nothing here builds anything. `cargo test --workspace` builds the
//! binaries of a package whenever that package has an integration test
//! (the `server` and `client` packages each have some), into the profile
//! directory of the test run: next to the `deps/` directory that holds
//! this test executable. So the tests find the binaries of the very build
//! they belong to, whatever `CARGO_TARGET_DIR` or the profile.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::TempDir;

/// The workspace root: the repository, where the `Makefile` is, and the
/// parent of this crate's directory (`tests/`).
pub fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The path of the workspace binary `name` (`server` or `client`) built
/// with this test run: `<target>/<profile>/<name>`, beside the `deps/`
/// directory of the running test executable. Panics, saying how to run
/// the tests, if it is not there.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} does not exist: run the tests with `cargo test --workspace` (make test) so that Cargo \
         builds the server and client",
        path.display()
    );
    path
}

/// Copies of the `server` and `client` of this build that every user may
/// run, for the tests that run them as another user: the build's own may lie
/// under a directory only its owner can enter (a `CARGO_TARGET_DIR` made by
/// `mktemp -d` has mode 0700). The copies are in a fresh directory of mode
/// 0755, removed with them on drop.
#[derive(Debug)]
pub struct SharedBinaries {
    dir: TempDir,
}

impl SharedBinaries {
    /// Copies both binaries, with mode 0755.
    pub fn new() -> SharedBinaries {
        let dir = TempDir::new();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 0755 {}: {e}", dir.path().display()));
        for name in ["server", "client"] {
            // Copied by a child process: a descriptor open for writing in
            // this process would be inherited by a process another test
            // thread forks meanwhile, and running the copy would fail with
            // ETXTBSY until that process calls exec.
            let status = Command::new("install")
                .args(["-m", "0755"])
                .arg(binary(name))
                .arg(dir.join(name))
                .status()
                .unwrap_or_else(|e| panic!("cannot run install: {e}"));
            assert!(status.success(), "install {name} into {}: {status}", dir.path().display());
        }
        SharedBinaries { dir }
    }

    /// The copy of `name` (`server` or `client`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Default for SharedBinaries {
    fn default() -> Self {
        SharedBinaries::new()
    }
}

/// `<target>/<profile>`: the test executable is `<target>/<profile>/deps/<test>-<hash>`.
fn profile_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the path of the running test executable");
        profile_dir_of(&exe).unwrap_or_else(|| {
            panic!("{} is not in a deps/ directory of a Cargo build: cannot find the binaries", exe.display())
        })
    })
}

/// The profile directory of a test executable in `<profile>/deps/`.
fn profile_dir_of(test_exe: &Path) -> Option<PathBuf> {
    let deps = test_exe.parent()?;
    (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_in_the_profile_directory_above_deps() {
        let exe = Path::new("/elsewhere/debug/deps/queue-0123abcd");
        assert_eq!(profile_dir_of(exe), Some(PathBuf::from("/elsewhere/debug")));
        assert_eq!(profile_dir_of(Path::new("/usr/bin/queue")), None);
    }
}
