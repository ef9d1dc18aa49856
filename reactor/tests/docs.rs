//! The crate's doc is the one list of the sources (issue 24, defect E: it
//! once named 4 of 16). A source is a public type that is a handler, or
//! that registers itself (`pub fn register`); each must be linked from the
//! list, so that a new source cannot be added without it.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The public names `sources/mod.rs` exports, by the module they come from.
fn exported() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sources");
    let module = fs::read_to_string(dir.join("mod.rs")).expect("sources/mod.rs");
    let mut names = Vec::new();
    for line in module.lines().filter_map(|l| l.strip_prefix("pub use ")) {
        let (file, list) = line.trim_end_matches(';').split_once("::").expect("pub use MODULE::NAMES");
        for name in list.trim_matches(|c| c == '{' || c == '}').split(',') {
            names.push((file.to_string(), name.trim().to_string()));
        }
    }
    names
}

/// Whether `name`, defined in `source`, is a source: a handler, or a type
/// whose own `impl` block has `pub fn register(`.
fn is_source(source: &str, name: &str) -> bool {
    if source.contains(&format!("Handler for {name}")) {
        return true;
    }
    source.split("\nimpl").any(|block| {
        let head = block.lines().next().unwrap_or("");
        let own = head.split_whitespace().any(|word| word == name || word.starts_with(&format!("{name}<")));
        own && !head.contains(" for ") && block.contains("pub fn register(")
    })
}

#[test]
fn the_crate_doc_links_every_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crate_doc: String = fs::read_to_string(root.join("src/lib.rs"))
        .expect("src/lib.rs")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut sources = BTreeSet::new();
    for (file, name) in exported() {
        let source = fs::read_to_string(root.join(format!("src/sources/{file}.rs"))).expect("a source file");
        if is_source(&source, &name) {
            sources.insert(name);
        }
    }
    assert!(sources.len() >= 15, "too few sources found: {sources:?}");
    let missing: Vec<_> =
        sources.iter().filter(|name| !crate_doc.contains(&format!("(sources::{name})"))).collect();
    assert!(missing.is_empty(), "sources not linked from the crate doc's list: {missing:?}");
}
