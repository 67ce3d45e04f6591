//! Footprint: what the client costs a small board in memory, disk, threads and dependencies.
//!
//! ```text
//! cargo bench --bench footprint            # or `cargo bench` for every benchmark
//! cargo bench --bench footprint -- --quick # crate counts and one small screenshot only
//! ```
//!
//! 1. Crates in the build: `cargo tree -e normal` of the library, by default and per optional
//!    feature.
//! 2. Binary size: the client-only `minimal` example and the `screenshot` example (which also
//!    embeds the demo server and a PNG encoder), built with the size-tuned `min-size` profile
//!    of Cargo.toml (opt-level "s", LTO, one codegen unit, panic=abort, stripped).
//! 3. Peak RSS and OS threads of the `screenshot` example (release build) taking a 1920x1080
//!    screenshot of a demo server that runs in *this* process, so that the client's process
//!    holds the client alone. Target: at most twice the framebuffer plus 10 MiB.
//!
//! The builds share the workspace's target directory (cargo releases its lock before running a
//! benchmark). Results go to stdout and `target/bench-results/footprint.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_rdp::trust::Fingerprint;
use async_rdp_demo_server::{Config, DemoServer};
use ironrdp_connector::DesktopSize;

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target");
    let mut report = String::from("## Footprint\n\n");

    crate_counts(&root, &mut report);

    let profiles: &[&str] = if quick { &[] } else { &["min-size", "release"] };
    for profile in profiles {
        cargo(
            &root,
            &target_dir,
            &[
                "build",
                "--profile",
                profile,
                "--example",
                "minimal",
                "--example",
                "screenshot",
            ],
        );
    }
    if !quick {
        sizes(&target_dir, &mut report);
    }

    let shot_profile = if quick { "debug" } else { "release" };
    if quick {
        cargo(&root, &target_dir, &["build", "--example", "screenshot"]);
    }
    let screenshot = target_dir.join(shot_profile).join("examples/screenshot");
    let sizes: &[(u16, u16)] = if quick {
        &[(640, 480)]
    } else {
        &[(1920, 1080), (1280, 720)]
    };
    let runs = if quick { 1 } else { 3 };
    memory(&screenshot, sizes, runs, &mut report);

    println!("\n{report}");
    let out = root.join("target/bench-results");
    std::fs::create_dir_all(&out).expect("create target/bench-results");
    std::fs::write(out.join("footprint.md"), &report).expect("write footprint.md");
}

/// Runs cargo with the bench's own target directory, failing the bench if cargo fails.
fn cargo(root: &Path, target_dir: &Path, args: &[&str]) {
    eprintln!("footprint: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo {} failed", args.join(" "));
}

fn crate_counts(root: &Path, report: &mut String) {
    let count = |features: &[&str]| -> usize {
        let output = Command::new(env!("CARGO"))
            .args(["tree", "-p", "async-rdp", "-e", "normal", "--prefix", "none"])
            .args(features)
            .current_dir(root)
            .output()
            .expect("run cargo tree");
        assert!(output.status.success(), "cargo tree {features:?} failed");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut crates: Vec<&str> = text
            .lines()
            .map(|l| l.trim_end_matches(" (*)").trim())
            .filter(|l| !l.is_empty())
            .collect();
        crates.sort_unstable();
        crates.dedup();
        crates.len()
    };
    let default = count(&[]);
    writeln!(
        report,
        "### Crates in the build (`cargo tree -p async-rdp -e normal`)\n"
    )
    .unwrap();
    writeln!(report, "| features | crates | added to the default build |").unwrap();
    writeln!(report, "|---|---:|---:|").unwrap();
    writeln!(report, "| default (`redact-dependency-logs`) | {default} | |").unwrap();
    for (name, args) in [
        ("none (`--no-default-features`)", &["--no-default-features"][..]),
        ("+ `qoi`", &["--features", "qoi"][..]),
        ("+ `qoiz` (zstd, a C library)", &["--features", "qoiz"][..]),
        ("+ `kerberos` (HTTPS KDC proxy: surf)", &["--features", "kerberos"][..]),
        ("all", &["--all-features"][..]),
    ] {
        let n = count(args);
        let delta = n as i64 - default as i64;
        writeln!(report, "| {name} | {n} | {delta:+} |").unwrap();
    }
    report.push('\n');
}

fn sizes(target_dir: &Path, report: &mut String) {
    let size = |profile: &str, example: &str| -> f64 {
        let path = target_dir.join(profile).join("examples").join(example);
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len() as f64
            / 1e6
    };
    writeln!(report, "### Binary size (MB, 10^6 bytes)\n").unwrap();
    writeln!(
        report,
        "| example | what it holds | `min-size` (stripped) | `release` (not stripped) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---:|---:|").unwrap();
    for (example, what) in [
        ("minimal", "the client alone: connect, first frame, disconnect"),
        ("screenshot", "client + in-process demo server + PNG encoder"),
    ] {
        writeln!(
            report,
            "| `{example}` | {what} | {:.2} | {:.2} |",
            size("min-size", example),
            size("release", example)
        )
        .unwrap();
    }
    report.push('\n');
}

/// What one screenshot run reported about itself.
struct Run {
    peak_mib: f64,
    threads: String,
}

fn memory(screenshot: &Path, sizes: &[(u16, u16)], runs: usize, report: &mut String) {
    writeln!(
        report,
        "### Peak RSS and threads of `screenshot` (client process only)\n"
    )
    .unwrap();
    writeln!(
        report,
        "| desktop | framebuffer | target (2 x fb + 10 MiB) | peak RSS (max of {runs}) | threads during the session |"
    )
    .unwrap();
    writeln!(report, "|---|---:|---:|---:|---|").unwrap();
    for &(width, height) in sizes {
        let results: Vec<Run> = (0..runs).map(|_| screenshot_run(screenshot, width, height)).collect();
        let peak = results.iter().map(|r| r.peak_mib).fold(0.0, f64::max);
        let fb = f64::from(width) * f64::from(height) * 4.0 / MIB;
        let target = 2.0 * fb + 10.0;
        writeln!(
            report,
            "| {width}x{height} | {fb:.1} MiB | {target:.1} MiB | {peak:.1} MiB ({}) | {} |",
            if peak <= target { "met" } else { "MISSED" },
            results[0].threads
        )
        .unwrap();
    }
    report.push('\n');
}

/// Serves one connection from a demo server on a thread of this process and runs the
/// screenshot example against it as a child process.
fn screenshot_run(screenshot: &Path, width: u16, height: u16) -> Run {
    let config = Config {
        desktop: DesktopSize { width, height },
        ..Config::default()
    };
    let server = async_std::task::block_on(DemoServer::bind(config.clone())).expect("bind the demo server");
    let addr = server.local_addr().expect("server address");
    let pin = Fingerprint::of(server.certificate()).to_string();
    let serving = std::thread::spawn(move || {
        let (events, _) = futures::channel::mpsc::unbounded();
        let (_commands, received) = futures::channel::mpsc::unbounded();
        async_std::task::block_on(server.serve_one(events, received))
    });
    let png = std::env::temp_dir().join(format!("async-rdp-footprint-{}.png", std::process::id()));
    let output = Command::new(screenshot)
        .arg(format!("rdp://{}:{}@{addr}", config.username, config.password))
        .args(["--pin", &pin, "--settle", "300", "--deadline", "30"])
        .args(["--size", &format!("{width}x{height}"), "-o"])
        .arg(&png)
        .output()
        .expect("run the screenshot example");
    let _ = std::fs::remove_file(&png);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "screenshot failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = serving.join();
    // "peak RSS 23.4 MiB, 1 OS threads during the session (screenshot)"
    let line = stdout
        .lines()
        .find(|l| l.starts_with("peak RSS "))
        .unwrap_or_else(|| panic!("no peak RSS line in:\n{stdout}"));
    let peak_mib = line
        .trim_start_matches("peak RSS ")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"));
    let threads = line
        .split_once(", ")
        .map_or("?", |(_, t)| t)
        .replace(" during the session", "");
    std::thread::sleep(Duration::from_millis(100));
    Run { peak_mib, threads }
}
