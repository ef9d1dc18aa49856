//! The third column: a small C server (`bench/c_server/server.c`)
//! with the same command line subset and the same output bytes as ours,
//! built by the conductor at run time when a C compiler is present.
//!
//! It is built once per run, before any workload, with `$CC` (default `cc`)
//! `-std=c11 -O2`, into the directory of the release binaries (the parent of
//! the bench binary's `deps/`, wherever the target directory is). If there
//! is no compiler, or the build fails, a note says so and every C cell of
//! the table says `n/a`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The source, in this crate.
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/c_server/server.c");

static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Builds the C server (once); call before any workload.
pub fn build() {
    BINARY.get_or_init(|| match compile() {
        Ok(path) => {
            eprintln!("C server: built {}", path.display());
            Some(path)
        }
        Err(why) => {
            eprintln!("C server: {why}; its column says n/a");
            None
        }
    });
}

/// The C server's binary, if it was built.
pub fn binary() -> Option<&'static Path> {
    BINARY.get().and_then(Option::as_deref)
}

fn compile() -> Result<PathBuf, String> {
    // Beside the release binaries, not among cargo's own files.
    let dir = crate::children::release_dir()?;
    let target = dir.join("c-server");
    // Built under a name of its own, then renamed: a run beside this one
    // never starts a half-written binary.
    let partial = dir.join(format!("c-server.{}", std::process::id()));
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(&compiler)
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&partial)
        .arg(SOURCE)
        .arg("-lrt")
        .output()
        .map_err(|e| format!("no C compiler ({compiler}: {e})"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`{compiler}` failed ({}):\n{}", output.status, stderr.trim_end()));
    }
    std::fs::rename(&partial, &target).map_err(|e| format!("cannot move the C server into place: {e}"))?;
    Ok(target)
}
