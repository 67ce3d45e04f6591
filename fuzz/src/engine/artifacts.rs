//! Artifacts: the files under `fuzz/artifacts/<target>/` named as libFuzzer names them
//! (`crash-<sha1>`, `minimized-crash-<sha1>`, `oom-`, `timeout-`), inputs in hex, and the
//! replay of whatever artifacts are there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::minimize::minimize;
use crate::engine::outcome::run_one;
use crate::engine::panics::install_panic_hook;
use crate::engine::Target;

/// `fuzz/artifacts/<target>/`.
pub fn artifact_dir(target: &Target) -> PathBuf {
    Path::new(target.root).join("fuzz/artifacts").join(target.name)
}

/// Writes `fuzz/artifacts/<target>/<prefix><kind>-<sha1>`, libFuzzer's naming.
pub fn write_artifact(target: &Target, kind: &str, prefix: &str, input: &[u8]) -> PathBuf {
    let dir = artifact_dir(target);
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, input);
    let path = dir.join(format!("{prefix}{kind}-{}", hex(digest.as_ref())));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("could not write {}: {e}", path.display());
    }
    path
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digit"))
        .collect()
}

/// Replays every `crash-*`, `oom-*` and `timeout-*` file in `fuzz/artifacts/<target>/` of each
/// target (from bounded runs or from libFuzzer's), and prints what each does now, minimized.
pub fn replay_artifacts(targets: &[Target]) {
    install_panic_hook();
    for target in targets {
        let Ok(entries) = std::fs::read_dir(artifact_dir(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !["crash-", "oom-", "timeout-"].iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let Ok(input) = std::fs::read(&path) else { continue };
            replay_artifact(target, &name, &input);
        }
    }
}

/// Runs one artifact and prints what it does now: its contained panics, and whether it still
/// fails (then minimized, as `minimized-<kind>-<sha1>`).
fn replay_artifact(target: &Target, name: &str, input: &[u8]) {
    let outcome = run_one(target.check, input);
    let target_name = target.name;
    for panic in &outcome.contained {
        println!(
            "{target_name}/{name}: contained panic at {}: {}",
            panic.location, panic.message
        );
    }
    match outcome.escaped {
        None => println!("{target_name}/{name}: no longer fails"),
        Some(finding) => {
            let minimized = minimize(target, input, &finding);
            let small = write_artifact(target, finding.kind, "minimized-", &minimized);
            println!(
                "{target_name}/{name} ({} bytes): {} at {}: {}\n  minimized: {} ({} bytes)\n{}",
                input.len(),
                finding.kind,
                finding.location,
                finding.message,
                small.display(),
                minimized.len(),
                finding.backtrace
            );
        }
    }
}
