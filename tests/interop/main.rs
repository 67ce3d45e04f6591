//! Interoperability with RDP servers no one here wrote, over real loopback sockets:
//!
//! - **xrdp** 0.9 (Debian 12, Xorg backend), started through `../shared/peers/start-xrdp.sh`
//!   (override with `RDP_PEERS_SCRIPTS`); it needs root and installs itself on first use.
//! - **GNOME Remote Desktop** 43 (Debian 12, headless, NLA only, the graphics pipeline with
//!   RemoteFX Progressive; required in its `extend` mode), through
//!   `../shared/peers/start-gnome-rd.sh`, which installs it on first use.
//! - **IronRDP's server crate** (`ironrdp-server` 0.13) as a separate process:
//!   `interop/ironrdp-peer`, built by `.ci/run` into `target/ironrdp-peer/release/ironrdp-peer`
//!   (override with `IRONRDP_PEER_BIN`).
//!
//! Every test here is `#[ignore]`d, so that a plain `cargo test` lists them as *ignored*
//! instead of counting tests that could not reach their peer as passed. Run them with
//! `cargo test --features full --test interop -- --ignored` (as `.ci/run` does, after building
//! the peer and starting xrdp); a missing peer is then a failure that says what is missing.
//!
//! Which codec each server really used is proven from IronRDP's decoder logs, captured by a
//! logger installed here. The tests run one at a time (one xrdp instance, one log capture).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use async_rdp::channels::Monitor;
use async_rdp::trust::Fingerprint;
use async_rdp::Codec;
use async_rdp::{ClientConfig, ClientSession, ColorDepth, DisconnectReason, ErrorKind, Event, MouseButton};
use async_rdp_demo_server::testing::{drain_until_quiet, wait_for_resize, BoxError, TestResult};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

// ---------------------------------------------------------------------------------------------
// Harness: serial execution, skipping, decoder-log capture.

/// Holds the interop lock for a test: one peer configuration and one log capture at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    decoder_log().lock().unwrap_or_else(|p| p.into_inner()).clear();
    guard
}

/// A missing peer: always a failure. These tests are `#[ignore]`d, so they run only when asked
/// for (`-- --ignored`), and then a skip would read as a pass.
fn missing(what: &str) -> BoxError {
    format!("{what}; these tests need the peers (see the top of tests/interop/main.rs)").into()
}

/// What IronRDP's fast-path decoder said about each bitmap or surface command.
fn decoder_log() -> &'static Mutex<Vec<String>> {
    static LOG: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LOG.get_or_init(|| {
        struct Capture;
        impl log::Log for Capture {
            fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
                metadata.target().starts_with("ironrdp_session::fast_path")
            }
            fn log(&self, record: &log::Record<'_>) {
                if !self.enabled(record.metadata()) {
                    return;
                }
                let text = record.args().to_string();
                if text.contains("BitmapData")
                    || text.contains("Surface bits")
                    || text.contains("BITMAP_STREAM")
                    || text.contains("Uncompressed")
                {
                    decoder_log().lock().unwrap_or_else(|p| p.into_inner()).push(text);
                }
            }
            fn flush(&self) {}
        }
        // Only this test binary's process: the library itself never installs a logger.
        if log::set_boxed_logger(Box::new(Capture)).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
        Mutex::new(Vec::new())
    })
}

/// How many captured decoder lines contain `needle`.
fn decoded(needle: &str) -> usize {
    decoder_log()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

fn decoder_summary() -> String {
    let log = decoder_log().lock().unwrap_or_else(|p| p.into_inner());
    let mut kinds: Vec<String> = log
        .iter()
        .map(|l| l.chars().take(90).collect::<String>())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(6)
        .collect();
    kinds.insert(0, format!("{} lines", log.len()));
    kinds.join(" | ")
}

/// A start script of the shared peers (`RDP_PEERS_SCRIPTS`, else `../shared/peers`).
fn peer_script(name: &str) -> TestResult<PathBuf> {
    let scripts = std::env::var_os("RDP_PEERS_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers"));
    let script = scripts.join(name);
    match script.exists() {
        true => Ok(script),
        false => Err(missing(&format!("no peer start script at {}", script.display()))),
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    async_std::task::block_on(future)
}

/// Connects, then processes events until the screen has been quiet for `settle` after the
/// first update (or 20 s pass). Returns the session for more checks.
async fn screenshot(addr: &str, config: ClientConfig, settle: Duration) -> TestResult<ClientSession> {
    let mut session = async_rdp::connect(addr, config).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen_graphics = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return if seen_graphics {
                Ok(session)
            } else {
                Err("no graphics within 20 s".into())
            };
        }
        let wait = if seen_graphics { settle.min(left) } else { left };
        match async_std::future::timeout(wait, session.next_event()).await {
            Err(_) if seen_graphics => return Ok(session),
            Err(_) => {}
            Ok(Ok(Event::Graphics(_))) => seen_graphics = true,
            Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
        }
    }
}

fn close_to(got: [u8; 4], want: [u8; 3], tolerance: u8) -> bool {
    (0..3).all(|i| got[i].abs_diff(want[i]) <= tolerance)
}

fn assert_pixel(session: &ClientSession, x: u16, y: u16, want: [u8; 3], tolerance: u8) -> TestResult {
    let got = session
        .framebuffer()
        .pixel(x, y)
        .ok_or("pixel outside the framebuffer")?;
    if close_to(got, want, tolerance) {
        Ok(())
    } else {
        Err(format!(
            "pixel ({x},{y}) is {got:?}, expected {want:?} ± {tolerance}; decoder: {}",
            decoder_summary()
        )
        .into())
    }
}

mod gnome;
mod ironrdp_server;
mod ironrdp_server_audio;
mod ironrdp_server_egfx;
#[path = "../common/peer_desktops.rs"]
mod peer_desktops;
mod xrdp;
