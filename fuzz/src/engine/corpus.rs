//! The seed corpus: reading `fuzz/corpus/<target>/`.

use std::path::{Path, PathBuf};

use crate::engine::Target;

/// The seed corpus of a target, in name order (empty if there is none).
pub fn corpus(target: &Target) -> Vec<Vec<u8>> {
    let dir = Path::new(target.root).join("fuzz/corpus").join(target.name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("{}: no seed corpus at {}", target.name, dir.display());
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}
