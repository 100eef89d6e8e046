//! Repository rules that keep the codemap honest: every source file says what it owns in a
//! leading `//!` comment, and ARCHITECTURE.md names every source file.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for krate in std::fs::read_dir(workspace_root().join("crates")).expect("crates").flatten() {
        let src = krate.path().join("src");
        if src.is_dir() {
            rust_sources(&src, &mut found);
        }
    }
    found.sort();
    found
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let missing: Vec<_> = sources()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap_or_default().trim_start().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "files without a leading `//!` doc comment: {missing:#?}");
}

#[test]
fn architecture_md_names_every_source_file() {
    let root = workspace_root();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let unnamed: Vec<_> = sources()
        .into_iter()
        .filter(|path| {
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let parent = path.parent().and_then(|p| p.file_name()).and_then(|f| f.to_str()).unwrap_or_default();
            let named = format!("`{file}`");
            let nested = format!("`{parent}/{file}`");
            !(architecture.contains(&named) || architecture.contains(&nested) || file == "mod.rs")
        })
        .collect();
    assert!(unnamed.is_empty(), "ARCHITECTURE.md does not name: {unnamed:#?}");
}
