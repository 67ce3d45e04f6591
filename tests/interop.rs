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
use async_rdp_demo_server::testing::{drain_until_quiet, BoxError, TestResult};
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
    format!("{what}; these tests need both peers (see the top of tests/interop.rs)").into()
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

// ---------------------------------------------------------------------------------------------
// GNOME Remote Desktop 43 (headless, NLA only, EGFX with RemoteFX Progressive)

const GNOME_PORT: &str = "33896";
const GNOME_USER: &str = "rdpuser";
const GNOME_PASS: &str = "Rdp-Passw0rd";
/// The test desktop's background (the peers' notes): teal #2e8e8e, probed at (1000, 600).
const GNOME_BACKGROUND: [u8; 3] = [0x2e, 0x8e, 0x8e];
const GNOME_PROBE: (u16, u16) = (1000, 600);
const GNOME_STATE: &str = "/tmp/rdp-peers/gnome-rd";

struct Gnome {
    addr: String,
    fingerprint: Fingerprint,
}

impl Gnome {
    fn config(&self) -> ClientConfig {
        ClientConfig::new(GNOME_USER, GNOME_PASS).with_trust(async_rdp::Trust::pinned([self.fingerprint]))
    }

    /// Lines the desktop app logged for typed text (`typed: …`).
    fn typed(&self) -> TestResult<Vec<String>> {
        let log = std::fs::read_to_string(format!("{GNOME_STATE}/desktop.log"))?;
        Ok(log
            .lines()
            .filter_map(|l| l.strip_prefix("typed: "))
            .map(str::to_owned)
            .collect())
    }
}

/// Starts (or reuses) GNOME Remote Desktop in `mode` (`extend` or `mirror-primary`); the
/// script restarts it when the mode differs.
fn start_gnome(mode: &str) -> TestResult<Gnome> {
    let script = peer_script("start-gnome-rd.sh")?;
    let output = Command::new(&script)
        .env("GRD_PORT", GNOME_PORT)
        .env("GRD_SCREEN_SHARE_MODE", mode)
        .output()?;
    if !output.status.success() {
        return Err(missing(&format!(
            "GNOME Remote Desktop did not start ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
        )));
    }
    let cert = CertificateDer::from_pem_file(format!("{GNOME_STATE}/tls.crt"))?;
    Ok(Gnome {
        addr: format!("127.0.0.1:{GNOME_PORT}"),
        fingerprint: Fingerprint::of(&cert),
    })
}

/// The desktop checks out: the background at the probe point, and a white clock (some
/// hundred near-white pixels in its top-left box).
fn assert_gnome_desktop(session: &ClientSession) -> TestResult {
    assert_pixel(session, GNOME_PROBE.0, GNOME_PROBE.1, GNOME_BACKGROUND, 6)?;
    assert_gnome_desktop_clock(session)
}

/// The report must say EGFX, with RemoteFX Progressive decoded.
fn assert_progressive(session: &ClientSession) -> TestResult {
    let report = session.graphics_report();
    let progressive = report
        .codecs
        .iter()
        .find(|(c, _)| *c == "progressive")
        .map_or(0, |(_, n)| *n);
    if !matches!(report.path, async_rdp::channels::GraphicsPath::Egfx { .. }) || progressive == 0 {
        return Err(format!("expected the graphics pipeline with progressive: {report}").into());
    }
    println!("GNOME: graphics: {report}");
    Ok(())
}

/// `extend` mode requires the graphics pipeline: the desktop at the client's size, drawn with
/// RemoteFX Progressive.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn gnome_extend_mode_desktop_through_the_graphics_pipeline() -> TestResult {
    gnome_desktop("extend", (1280, 720))
}

/// Connects in `mode` asking for 1280x720; the desktop must come at `size`, drawn through the
/// pipeline with RemoteFX Progressive.
fn gnome_desktop(mode: &str, size: (u16, u16)) -> TestResult {
    let _serial = serial();
    let gnome = start_gnome(mode)?;
    block_on(async {
        let config = gnome.config().with_desktop_size(1280, 720);
        let mut session = screenshot(&gnome.addr, config, Duration::from_millis(800)).await?;
        assert_eq!((session.framebuffer().width, session.framebuffer().height), size);
        assert_gnome_desktop(&session)?;
        assert_progressive(&session)?;
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Without the graphics pipeline, `extend` mode refuses the client, and the error says the
/// server ended the connection (the off switch works: the legacy path is what is offered).
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn gnome_extend_mode_refuses_a_client_without_the_graphics_pipeline() -> TestResult {
    let _serial = serial();
    let gnome = start_gnome("extend")?;
    block_on(async {
        let config = gnome
            .config()
            .with_channels(&[async_rdp::Channel::DisplayControl, async_rdp::Channel::Clipboard]);
        match screenshot(&gnome.addr, config, Duration::from_millis(300)).await {
            Ok(_) => Err("GNOME accepted a client without the graphics pipeline in extend mode".into()),
            Err(e) => {
                println!("GNOME without EGFX: {e}");
                Ok(())
            }
        }
    })
}

/// The default mode with the pipeline on: GNOME resets the graphics to its monitor's size
/// (1280x800), and the picture follows.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn gnome_mirror_primary_mode_resets_to_its_monitor() -> TestResult {
    gnome_desktop("mirror-primary", (1280, 800))
}

/// Display control in `extend` mode: GNOME answers with a graphics reset at the new size.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn gnome_resizes_through_display_control() -> TestResult {
    let _serial = serial();
    let gnome = start_gnome("extend")?;
    block_on(async {
        let config = gnome.config().with_desktop_size(1280, 720);
        let mut session = screenshot(&gnome.addr, config, Duration::from_millis(500)).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !session.display().is_ready() {
            if Instant::now() > deadline {
                return Err("display control never became ready".into());
            }
            let _ = async_std::future::timeout(Duration::from_millis(100), session.next_event()).await;
        }
        session.display().resize(1024, 768)?;
        assert_eq!(wait_for_resize(&mut session).await?, (1024, 768));
        session
            .wait_until_drawn(Duration::from_millis(500), Duration::from_secs(10))
            .await?;
        assert_eq!((session.framebuffer().width, session.framebuffer().height), (1024, 768));
        // The desktop app follows its monitor: the background fills the new size.
        assert_pixel(&session, 900, 700, GNOME_BACKGROUND, 6)?;
        assert_gnome_desktop_clock(&session)?;
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

fn assert_gnome_desktop_clock(session: &ClientSession) -> TestResult {
    let fb = session.framebuffer();
    let white = (30..60)
        .flat_map(|y| (30..185).map(move |x| (x, y)))
        .filter(|&(x, y)| fb.pixel(x, y).is_some_and(|p| p[..3].iter().all(|&c| c > 200)))
        .count();
    match white {
        0..100 => Err(format!("the clock is missing: {white} white pixels where it should be").into()),
        _ => Ok(()),
    }
}

/// The clipboard both ways with GNOME's own clipboard, through its desktop app's text entry:
/// the client's text is pasted there (Ctrl+V) and logged by the app (Enter); copied back from
/// the entry (Ctrl+A, Ctrl+C), it reaches the client.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn gnome_clipboard_text_both_ways() -> TestResult {
    let _serial = serial();
    let gnome = start_gnome("extend")?;
    block_on(async {
        let config = gnome.config().with_desktop_size(1280, 720);
        let mut session = screenshot(&gnome.addr, config, Duration::from_millis(500)).await?;
        let text = format!("from async-rdp é 漢字 {}", std::process::id());
        session.clipboard().set_text(text.clone())?;
        // The first key of a session is swallowed (the peers' notes): a harmless Shift first.
        let keys: &[&[u8]] = &[&[0x2a], &[0x1d, 0x2f], &[0x1d, 0x1e], &[0x1d, 0x2e]];
        for chord in keys {
            press(&mut session, chord).await?;
        }
        let copied = loop {
            match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await {
                Err(_) => return Err("GNOME announced no clipboard after Ctrl+C".into()),
                Ok(event) => match event? {
                    Event::ClipboardChanged { formats } if formats.iter().any(|f| f.is_text()) => {
                        session.clipboard().request_text()?;
                    }
                    Event::ClipboardText(t) => break t.into_string(),
                    Event::ClipboardError(e) => return Err(e.into()),
                    _ => {}
                },
            }
        };
        assert_eq!(copied, text, "copied back from GNOME");
        press(&mut session, &[0x1c]).await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gnome.typed()?.contains(&text) {
            if Instant::now() > deadline {
                return Err(format!("the desktop app logged {:?}, not the pasted text", gnome.typed()?).into());
            }
            let _ = async_std::future::timeout(Duration::from_millis(100), session.next_event()).await;
        }
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Presses the keys of `chord` in order, releases them in reverse, and lets the server see it.
async fn press(session: &mut ClientSession, chord: &[u8]) -> TestResult {
    use async_rdp::{KeyState, Scancode};
    for &code in chord {
        session.key(Scancode::new(code), KeyState::Down)?;
    }
    for &code in chord.iter().rev() {
        session.key(Scancode::new(code), KeyState::Up)?;
    }
    session.flush().await?;
    // Let the server's answers (and its clipboard traffic) flow between chords.
    let _ = async_std::future::timeout(Duration::from_millis(300), session.next_event()).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// xrdp

const XRDP_PORT: &str = "33890";
const XRDP_USER: &str = "rdpuser";
const XRDP_PASS: &str = "Rdp-Passw0rd";
/// The session's desktop background, as the peer's notes say: #2e5e8e.
const XRDP_BACKGROUND: [u8; 3] = [0x2e, 0x5e, 0x8e];
/// Points that show the background in xrdp's test session (the xterm, clock and eyes sit in
/// the top corners).
const XRDP_BACKGROUND_POINTS: [(u16, u16); 4] = [(640, 600), (100, 500), (700, 100), (1200, 680)];

struct Xrdp {
    addr: String,
    fingerprint: async_rdp::trust::Fingerprint,
}

impl Xrdp {
    fn config(&self, password: &str) -> ClientConfig {
        ClientConfig::new(XRDP_USER, password)
            .with_trust(async_rdp::Trust::pinned([self.fingerprint]))
            .with_security(async_rdp::Security::Tls)
    }
}

/// Starts (or reuses) xrdp with these settings; an error when it cannot run here.
fn start_xrdp(require_credentials: bool) -> TestResult<Xrdp> {
    let script = peer_script("start-xrdp.sh")?;
    let output = Command::new(&script)
        .env("XRDP_PORT", XRDP_PORT)
        .env("XRDP_SECURITY", "negotiate")
        .env(
            "XRDP_REQUIRE_CREDENTIALS",
            if require_credentials { "true" } else { "false" },
        )
        .output()?;
    if !output.status.success() {
        return Err(missing(&format!(
            "xrdp did not start ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
        )));
    }
    // xrdp presents Debian's snakeoil certificate; pin exactly that.
    let cert = CertificateDer::from_pem_file("/etc/ssl/certs/ssl-cert-snakeoil.pem")?;
    Ok(Xrdp {
        addr: format!("127.0.0.1:{XRDP_PORT}"),
        fingerprint: Fingerprint::of(&cert),
    })
}

fn xrdp_desktop(config: impl FnOnce(ClientConfig) -> ClientConfig, codec_evidence: &str, tolerance: u8) -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let mut session = screenshot(&xrdp.addr, config(xrdp.config(XRDP_PASS)), Duration::from_millis(800)).await?;
        for (x, y) in XRDP_BACKGROUND_POINTS {
            assert_pixel(&session, x, y, XRDP_BACKGROUND, tolerance)?;
        }
        assert!(
            decoded(codec_evidence) > 0,
            "no `{codec_evidence}` in the decoder log: {}",
            decoder_summary()
        );
        println!(
            "xrdp: {codec_evidence}: {} decoder lines; {}",
            decoded(codec_evidence),
            decoder_summary()
        );
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_remotefx_desktop() -> TestResult {
    // RemoteFX is lossy: the flat background comes back within a few levels.
    xrdp_desktop(|c| c.with_codecs(&[Codec::RemoteFx]), "RemoteFx", 6)
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_planar_32bpp_desktop() -> TestResult {
    xrdp_desktop(|c| c.with_codecs(&[]), "32 bpp compressed RDP6_BITMAP_STREAM", 0)
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_interleaved_rle_24bpp_desktop() -> TestResult {
    xrdp_desktop(
        |c| c.with_codecs(&[]).with_color_depth(ColorDepth::Bpp24),
        "Non-32 bpp compressed RLE_BITMAP_STREAM bpp=24",
        0,
    )
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_interleaved_rle_16bpp_desktop() -> TestResult {
    // RGB 565 keeps 5-6-5 bits of each channel: at most 7 levels off after expansion.
    xrdp_desktop(
        |c| c.with_codecs(&[]).with_color_depth(ColorDepth::Bpp16),
        "Non-32 bpp compressed RLE_BITMAP_STREAM bpp=16",
        7,
    )
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_wrong_password_with_require_credentials_is_a_disconnect() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(true)?;
    let outcome = block_on(async {
        let mut session = match async_rdp::connect(&xrdp.addr, xrdp.config("not-the-password")).await {
            Ok(session) => session,
            Err(e) => {
                return Ok::<_, BoxError>(format!("connect failed in {}: {}", e.context(), async_rdp::report(&e)))
            }
        };
        loop {
            match async_std::future::timeout(Duration::from_secs(15), session.next_event()).await?? {
                Event::Disconnected(reason) => return Ok(format!("disconnected: {reason:?}")),
                Event::Graphics(_) => {}
                _ => {}
            }
        }
    });
    // Restore the default settings for the other tests.
    start_xrdp(false)?;
    let outcome = outcome?;
    println!("xrdp, wrong password, require_credentials=true: {outcome}");
    assert!(
        outcome.contains("disconnected") || outcome.contains("closed"),
        "expected a disconnect, got: {outcome}"
    );
    Ok(())
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_nla_only_client_gets_an_error_naming_the_protocol() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    let config = xrdp.config(XRDP_PASS).with_security(async_rdp::Security::Nla);
    let err = block_on(async_rdp::connect(&xrdp.addr, config))
        .err()
        .ok_or("xrdp accepted an NLA-only client")?;
    let text = async_rdp::report(&err);
    println!("xrdp, NLA-only client: {text}");
    assert_eq!(err.phase(), Some(async_rdp::Phase::Negotiation), "{text}");
    assert!(
        text.contains("NLA") || text.contains("CredSSP"),
        "the error does not name the protocol: {text}"
    );
    Ok(())
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_disconnect_and_reconnect() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let mut first = screenshot(&xrdp.addr, xrdp.config(XRDP_PASS), Duration::from_millis(500)).await?;
        first.shutdown(Duration::from_secs(5)).await?;
        // xrdp keeps the X session for 60 s and hands it to the next logon of the same user.
        let mut second = screenshot(&xrdp.addr, xrdp.config(XRDP_PASS), Duration::from_millis(500)).await?;
        for (x, y) in XRDP_BACKGROUND_POINTS {
            assert_pixel(&second, x, y, XRDP_BACKGROUND, 6)?;
        }
        second.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Display control: xrdp opens the DisplayControl channel; a resize request makes it
/// reactivate the session at the new size, and the desktop is drawn again at that size.
/// Requests made while one is unanswered coalesce: of three, the first and the last are sent.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_resizes_through_display_control() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let mut session = screenshot(&xrdp.addr, xrdp.config(XRDP_PASS), Duration::from_millis(500)).await?;
        assert!(session.display().is_ready(), "xrdp opened display control");
        session.display().resize(800, 600)?;
        session.display().resize(900, 700)?;
        // Odd widths are rounded down to even ones, as MS-RDPEDISP requires.
        assert_eq!(session.display().resize(1025, 768)?, (1024, 768));
        let mut sizes = Vec::new();
        while sizes.last() != Some(&(1024, 768)) {
            match async_std::future::timeout(Duration::from_secs(20), session.next_event()).await {
                Err(_) => return Err(format!("no Resized to 1024x768 within 20 s; saw {sizes:?}").into()),
                Ok(event) => {
                    if let Event::Resized { width, height } = event? {
                        sizes.push((width, height));
                    }
                }
            }
        }
        assert_eq!(sizes, [(800, 600), (1024, 768)], "900x700 was coalesced away");
        assert_eq!(session.display().requests_sent(), 2);
        // The desktop comes back at the new size.
        drain_until_quiet(&mut session, Duration::from_millis(800)).await?;
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height), (1024, 768));
        for (x, y) in [(512, 700), (100, 500), (1000, 740)] {
            assert_pixel(&session, x, y, XRDP_BACKGROUND, 6)?;
        }
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Two monitors through display control: xrdp lays the desktop out over both.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_takes_a_monitor_layout_through_display_control() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let mut session = screenshot(&xrdp.addr, xrdp.config(XRDP_PASS), Duration::from_millis(500)).await?;
        let layout = [Monitor::primary(800, 600), Monitor::at(800, 0, 640, 480)];
        assert_eq!(session.display().set_monitor_layout(&layout)?, (1440, 600));
        let resized = wait_for_resize(&mut session).await?;
        assert_eq!(resized, (1440, 600));
        drain_until_quiet(&mut session, Duration::from_millis(800)).await?;
        for (x, y) in [(400, 580), (1400, 300)] {
            assert_pixel(&session, x, y, XRDP_BACKGROUND, 6)?;
        }
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Two monitors from the start (GCC monitor data): the session begins at the layout's size.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_starts_with_the_configured_monitors() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let layout = [Monitor::primary(1024, 768), Monitor::at(1024, 0, 800, 600)];
        let config = xrdp.config(XRDP_PASS).with_monitors(&layout)?;
        let session = screenshot(&xrdp.addr, config, Duration::from_millis(500)).await?;
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height), (1824, 768));
        for (x, y) in [(100, 700), (1800, 500)] {
            assert_pixel(&session, x, y, XRDP_BACKGROUND, 6)?;
        }
        Ok(())
    })
}

/// The clipboard both ways with xrdp, whose xrdp-chansrv bridges the cliprdr channel to the X
/// session's CLIPBOARD selection: set there with `xclip -i` and read by the client, set by the
/// client and read there with `xclip -o`, non-ASCII text included. (xrdp 0.9.21's chansrv
/// mangles characters outside the Basic Multilingual Plane in both directions — an emoji
/// arrives as U+F600, or empties the text — so the text here stays inside it.)
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_clipboard_text_both_ways() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let mut session = screenshot(&xrdp.addr, xrdp.config(XRDP_PASS), Duration::from_millis(500)).await?;

        let from_server = "héllo 漢字, from the X session";
        in_xrdp_session(&format!(
            "printf '%s' '{from_server}' | xclip -selection clipboard -i >/dev/null 2>&1"
        ))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let text = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match async_std::future::timeout(left, session.next_event()).await {
                Err(_) => return Err("no clipboard text from the server within 20 s".into()),
                Ok(event) => match event? {
                    Event::ClipboardChanged { formats } if formats.iter().any(|f| f.is_text()) => {
                        session.clipboard().request_text()?;
                    }
                    Event::ClipboardText(text) => break text.into_string(),
                    Event::ClipboardError(e) => return Err(e.into()),
                    _ => {}
                },
            }
        };
        assert_eq!(text, from_server);

        let from_client = "from the client: é, 漢字";
        session.clipboard().set_text(from_client)?;
        session.flush().await?;
        // xclip waits for the data, which the session sends when the server asks: keep
        // driving the session while it runs.
        let reader = std::thread::spawn(|| {
            in_xrdp_session("sleep 0.5; timeout 10 xclip -selection clipboard -o").map_err(|e| e.to_string())
        });
        while !reader.is_finished() {
            let _ = async_std::future::timeout(Duration::from_millis(100), session.next_event()).await;
        }
        let pasted = reader.join().map_err(|_| "the xclip thread panicked")??;
        assert_eq!(pasted, from_client);
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// xrdp's chansrv bridges CF_DIB and the X clipboard's `image/bmp` (a BMP file: a 14-byte file
/// header before the DIB).
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn xrdp_clipboard_image_both_ways() -> TestResult {
    let _serial = serial();
    let xrdp = start_xrdp(false)?;
    block_on(async {
        let mut session = screenshot(&xrdp.addr, xrdp.config(XRDP_PASS), Duration::from_millis(500)).await?;

        let (width, height) = (37, 21);
        let sent = clip_pattern(width, height, 0);
        let bmp = std::env::temp_dir().join("async-rdp-clipboard-in.bmp");
        std::fs::write(&bmp, bmp_file(width, height, &sent))?;
        in_xrdp_session(&format!(
            "xclip -selection clipboard -t image/bmp -i {} >/dev/null 2>&1",
            bmp.display()
        ))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let image = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match async_std::future::timeout(left, session.next_event()).await {
                Err(_) => return Err("no clipboard image from the server within 20 s".into()),
                Ok(event) => match event? {
                    Event::ClipboardChanged { formats } if formats.iter().any(|f| f.is_image()) => {
                        session.clipboard().request_image()?;
                    }
                    Event::ClipboardImage(image) => break image,
                    Event::ClipboardError(e) => return Err(e.into()),
                    _ => {}
                },
            }
        };
        assert_eq!((image.width(), image.height()), (width, height));
        assert!(image.to_rgba()? == sent, "the image from the X session differs");

        let (width, height) = (50, 30);
        let copied = clip_pattern(width, height, 3);
        session
            .clipboard()
            .set_image(async_rdp::ClipboardImage::from_rgba(width, height, &copied)?)?;
        session.flush().await?;
        let out = std::env::temp_dir().join("async-rdp-clipboard-out.bmp");
        let _ = std::fs::remove_file(&out);
        let command = format!(
            "sleep 0.5; timeout 10 xclip -selection clipboard -t image/bmp -o > {}",
            out.display()
        );
        let reader = std::thread::spawn(move || in_xrdp_session(&command).map_err(|e| e.to_string()));
        while !reader.is_finished() {
            let _ = async_std::future::timeout(Duration::from_millis(100), session.next_event()).await;
        }
        reader.join().map_err(|_| "the xclip thread panicked")??;
        let pasted = std::fs::read(&out)?;
        let want = bmp_file(width, height, &copied);
        // The header's geometry (width, height, planes, bits per pixel) must match.
        assert_eq!(pasted.get(18..30), want.get(18..30), "the BMP header differs");
        // xrdp 0.9.21's chansrv writes the BMP 14 bytes (the file header's length) short: the
        // end of the top row is cut off. Every pixel it does write must be exact.
        assert!(
            pasted.len() + 14 >= want.len(),
            "{} of {} BMP bytes",
            pasted.len(),
            want.len()
        );
        assert!(
            pasted[54..] == want[54..pasted.len()],
            "the image pasted in the X session differs"
        );
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// An opaque test picture (top-down RGBA) whose neighbouring pixels differ.
fn clip_pattern(width: u32, height: u32, seed: u32) -> Vec<u8> {
    (0..height)
        .flat_map(|y| (0..width).flat_map(move |x| [(x * 7 + seed) as u8, (y * 5) as u8, (x ^ y ^ seed) as u8, 255]))
        .collect()
}

/// A 32-bit bottom-up BMP file of `rgba`.
fn bmp_file(width: u32, height: u32, rgba: &[u8]) -> Vec<u8> {
    let pixels: Vec<u8> = rgba
        .chunks_exact(width as usize * 4)
        .rev()
        .flat_map(|row| row.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0], p[3]]))
        .collect();
    let mut bmp = b"BM".to_vec();
    for field in [54 + pixels.len() as u32, 0, 54, 40, width, height] {
        bmp.extend_from_slice(&field.to_le_bytes());
    }
    bmp.extend_from_slice(&1u16.to_le_bytes()); // planes
    bmp.extend_from_slice(&32u16.to_le_bytes()); // bits per pixel
    bmp.extend_from_slice(&[0; 24]); // BI_RGB, image size, resolution, palette: defaults
    bmp.extend_from_slice(&pixels);
    bmp
}

/// Runs `command` with `sh -c` as the xrdp session's user, on its X display; returns stdout.
fn in_xrdp_session(command: &str) -> TestResult<String> {
    let out = Command::new("runuser")
        .args(["-u", XRDP_USER, "--", "env", "DISPLAY=:10"])
        .arg(format!("XAUTHORITY=/home/{XRDP_USER}/.Xauthority"))
        .args(["sh", "-c", command])
        .output()
        .map_err(|e| {
            missing(&format!(
                "cannot run `{command}` in the xrdp session ({e}); xclip and runuser are needed"
            ))
        })?;
    if !out.status.success() {
        return Err(format!(
            "`{command}` in the xrdp session failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The size of the next `Event::Resized`, within 20 s.
async fn wait_for_resize(session: &mut ClientSession) -> TestResult<(u16, u16)> {
    loop {
        match async_std::future::timeout(Duration::from_secs(20), session.next_event()).await {
            Err(_) => return Err("no Resized within 20 s".into()),
            Ok(event) => {
                if let Event::Resized { width, height } = event? {
                    return Ok((width, height));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IronRDP's server (interop/ironrdp-peer)

const PEER_USER: &str = "alice";
const PEER_PASS: &str = "Peer-Passw0rd";

/// A running `ironrdp-peer` process and the JSON lines it prints.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    addr: String,
    fingerprint: async_rdp::trust::Fingerprint,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn config(&self, password: &str) -> ClientConfig {
        ClientConfig::new(PEER_USER, password).with_trust(async_rdp::Trust::pinned([self.fingerprint]))
    }

    /// The next line whose `event` is `name`, within 10 s.
    fn wait_for(&self, name: &str) -> TestResult<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let tag = format!("\"event\":\"{name}\"");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(&tag) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err(format!("ironrdp-peer printed no {name} event").into()),
                Err(RecvTimeoutError::Disconnected) => return Err("ironrdp-peer exited".into()),
            }
        }
    }

    fn command(&mut self, line: &str) -> TestResult {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

/// A JSON field's raw value in one of the peer's lines (its lines are flat objects).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":");
    let start = line.find(&key)? + key.len();
    let rest = &line[start..];
    let end = if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Starts `ironrdp-peer` with these arguments; an error when the binary is not built.
fn peer(args: &[&str]) -> TestResult<Peer> {
    let bin = std::env::var_os("IRONRDP_PEER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ironrdp-peer/release/ironrdp-peer"));
    if !bin.exists() {
        return Err(missing(&format!(
            "ironrdp-peer is not built at {} (see interop/ironrdp-peer/README.md)",
            bin.display()
        )));
    }
    let mut child = Command::new(&bin)
        .args([
            "--port",
            "0",
            "--exit-on-eof",
            "--user",
            PEER_USER,
            "--password",
            PEER_PASS,
        ])
        .args(args)
        // The peer's own warnings (slow encodes and the like) are noise here.
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, lines) = std::sync::mpsc::channel();
    // The peer is a separate process; reading its pipe on a helper thread is the test's
    // business, not the client's (which stays on the test's thread).
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut peer = Peer {
        child,
        stdin,
        lines,
        addr: String::new(),
        fingerprint: async_rdp::trust::Fingerprint::from([0; 32]),
    };
    let listening = peer.wait_for("listening")?;
    let port = field(&listening, "port").ok_or("no port in the listening line")?;
    peer.addr = format!("127.0.0.1:{port}");
    let fingerprint = field(&listening, "fingerprint").ok_or("no fingerprint in the listening line")?;
    peer.fingerprint = fingerprint.parse()?;
    Ok(peer)
}

/// The peer's test card (interop/ironrdp-peer/README.md, "The pattern"), recomputed here.
fn peer_pattern(x: u16, y: u16, width: u16, height: u16) -> [u8; 3] {
    const BARS: [[u8; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];
    let (x32, w32) = (u32::from(x), u32::from(width));
    if x == 0 || y == 0 || x == width - 1 || y == height - 1 {
        [255, 255, 255]
    } else if y < height / 2 {
        BARS[usize::try_from(x32 * 8 / w32).unwrap_or(7)]
    } else {
        let v = u8::try_from(x32 * 256 / w32).unwrap_or(255);
        [v, v, v]
    }
}

/// Every pixel against the peer's pattern (exact for lossless codecs); the first miss.
fn peer_mismatch(session: &ClientSession) -> Option<String> {
    let fb = session.framebuffer();
    for y in 0..fb.height {
        for x in 0..fb.width {
            let want = peer_pattern(x, y, fb.width, fb.height);
            let got = fb.pixel(x, y)?;
            if got[..3] != want {
                return Some(format!("pixel ({x},{y}) is {got:?}, the server drew {want:?}"));
            }
        }
    }
    None
}

/// Lossy check for RemoteFX: sample the middle of each bar and of the ramp.
fn peer_roughly(session: &ClientSession, tolerance: u8) -> TestResult {
    let fb = session.framebuffer();
    for bar in 0..8u16 {
        let x = bar * fb.width / 8 + fb.width / 16;
        for y in [fb.height / 8, fb.height / 4, fb.height * 3 / 8] {
            assert_pixel(session, x, y, peer_pattern(x, y, fb.width, fb.height), tolerance)?;
        }
    }
    for x in [fb.width / 5, fb.width / 2, fb.width * 4 / 5] {
        let y = fb.height * 3 / 4;
        assert_pixel(session, x, y, peer_pattern(x, y, fb.width, fb.height), tolerance)?;
    }
    Ok(())
}

fn peer_desktop(peer_args: &[&str], codecs: &[Codec], nla: bool, evidence: &str, exact: bool) -> TestResult {
    let _serial = serial();
    let peer = peer(peer_args)?;
    block_on(async {
        let security = if nla {
            async_rdp::Security::Nla
        } else {
            async_rdp::Security::Tls
        };
        let config = peer.config(PEER_PASS).with_codecs(codecs).with_security(security);
        let mut session = screenshot(&peer.addr, config, Duration::from_millis(400)).await?;
        peer.wait_for("activated")?;
        if exact {
            if let Some(miss) = peer_mismatch(&session) {
                return Err(format!("{miss}; decoder: {}", decoder_summary()).into());
            }
        } else {
            peer_roughly(&session, 24)?;
        }
        assert!(
            decoded(evidence) > 0,
            "no `{evidence}` in the decoder log: {}",
            decoder_summary()
        );
        println!(
            "ironrdp-peer {peer_args:?}: {evidence}: {} decoder lines",
            decoded(evidence)
        );
        session.shutdown(Duration::from_secs(5)).await?;
        peer.wait_for("disconnected")?;
        Ok(())
    })
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_tls_planar_is_exact() -> TestResult {
    peer_desktop(
        &["--security", "tls", "--codecs", ""],
        &[],
        false,
        "32 bpp compressed RDP6_BITMAP_STREAM",
        true,
    )
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_nla_planar_is_exact() -> TestResult {
    peer_desktop(
        &["--security", "hybrid", "--codecs", ""],
        &[],
        true,
        "32 bpp compressed RDP6_BITMAP_STREAM",
        true,
    )
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_uncompressed_surface_bits_are_exact() -> TestResult {
    // The client offers RemoteFX, the server offers nothing: surface bits with codec id 0.
    peer_desktop(
        &["--security", "tls", "--codecs", ""],
        &[Codec::RemoteFx],
        false,
        "codec_id=CodecId(None)",
        true,
    )
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_remotefx() -> TestResult {
    peer_desktop(
        &["--security", "hybrid", "--codecs", "remotefx"],
        &[Codec::RemoteFx],
        true,
        "RemoteFx",
        false,
    )
}

#[cfg(feature = "qoi")]
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_qoi_is_exact() -> TestResult {
    peer_desktop(
        &["--security", "hybrid", "--codecs", "qoi"],
        &[Codec::Qoi],
        true,
        "codec_id=CodecId(QOI)",
        true,
    )
}

#[cfg(feature = "qoiz")]
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_qoiz_is_exact() -> TestResult {
    peer_desktop(
        &["--security", "hybrid", "--codecs", "qoiz"],
        &[Codec::Qoiz],
        true,
        "codec_id=CodecId(QOIZ)",
        true,
    )
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_wrong_password_is_an_authentication_error() -> TestResult {
    let _serial = serial();
    let peer = peer(&["--security", "hybrid"])?;
    let err = block_on(async_rdp::connect(&peer.addr, peer.config("wrong-password")))
        .err()
        .ok_or("connected with a wrong password")?;
    assert_eq!(err.kind(), ErrorKind::Authentication, "{}", async_rdp::report(&err));
    assert_eq!(err.phase(), Some(async_rdp::Phase::Nla));
    Ok(())
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_receives_input() -> TestResult {
    let _serial = serial();
    let peer = peer(&["--security", "hybrid", "--codecs", ""])?;
    block_on(async {
        let mut session = screenshot(
            &peer.addr,
            peer.config(PEER_PASS).with_codecs(&[]),
            Duration::from_millis(300),
        )
        .await?;
        session.key(async_rdp::Scancode::new(0x1E), async_rdp::KeyState::Down)?;
        session.key(async_rdp::Scancode::new(0x1E), async_rdp::KeyState::Up)?;
        session.key_unicode('z', async_rdp::KeyState::Down)?;
        session.mouse_move(321, 123)?;
        session.mouse_button(MouseButton::Left, async_rdp::ButtonState::Down)?;
        session.mouse_button(MouseButton::Left, async_rdp::ButtonState::Up)?;
        session.mouse_wheel(-120)?;
        session.flush().await?;

        let key = peer.wait_for("key")?;
        assert_eq!(
            (field(&key, "code"), field(&key, "pressed")),
            (Some("30"), Some("true")),
            "{key}"
        );
        let key = peer.wait_for("key")?;
        assert_eq!(
            (field(&key, "code"), field(&key, "pressed")),
            (Some("30"), Some("false")),
            "{key}"
        );
        let uni = peer.wait_for("unicode")?;
        assert_eq!(field(&uni, "code"), Some("122"), "{uni}");
        let mv = peer.wait_for("mouse_move")?;
        assert_eq!((field(&mv, "x"), field(&mv, "y")), (Some("321"), Some("123")), "{mv}");
        let down = peer.wait_for("mouse_button")?;
        assert_eq!(
            (field(&down, "button"), field(&down, "pressed")),
            (Some("left"), Some("true")),
            "{down}"
        );
        let up = peer.wait_for("mouse_button")?;
        assert_eq!(field(&up, "pressed"), Some("false"), "{up}");
        let wheel = peer.wait_for("wheel")?;
        assert_eq!(field(&wheel, "delta"), Some("-120"), "{wheel}");
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_resize_reactivates_at_the_new_size() -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--codecs", ""])?;
    block_on(async {
        let config = peer
            .config(PEER_PASS)
            .with_codecs(&[])
            .with_security(async_rdp::Security::Tls);
        let mut session = screenshot(&peer.addr, config, Duration::from_millis(300)).await?;
        peer.wait_for("activated")?;
        peer.command("resize 800 600")?;
        loop {
            match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
                Event::Resized { width, height } => {
                    assert_eq!((width, height), (800, 600));
                    break;
                }
                Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                _ => {}
            }
        }
        peer.wait_for("resized")?;
        // Let the full frame at the new size arrive, then compare every pixel.
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(miss) = peer_mismatch(&session) {
            if Instant::now() > deadline {
                return Err(miss.into());
            }
            match async_std::future::timeout(Duration::from_millis(300), session.next_event()).await {
                Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
                Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
                _ => {}
            }
        }
        assert_eq!(session.framebuffer().width, 800);
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_disconnect_and_reconnect() -> TestResult {
    let _serial = serial();
    let peer = peer(&["--security", "hybrid", "--codecs", ""])?;
    block_on(async {
        for round in 0..2 {
            let mut session = screenshot(
                &peer.addr,
                peer.config(PEER_PASS).with_codecs(&[]),
                Duration::from_millis(300),
            )
            .await?;
            if let Some(miss) = peer_mismatch(&session) {
                return Err(format!("round {round}: {miss}").into());
            }
            session.shutdown(Duration::from_secs(5)).await?;
            assert!(session.is_closed());
            peer.wait_for("disconnected")?;
        }
        Ok(())
    })
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_going_away_is_a_disconnect_event() -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--codecs", ""])?;
    block_on(async {
        let config = peer
            .config(PEER_PASS)
            .with_codecs(&[])
            .with_security(async_rdp::Security::Tls);
        let mut session = screenshot(&peer.addr, config, Duration::from_millis(300)).await?;
        peer.command("quit")?;
        loop {
            match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
                Event::Disconnected(DisconnectReason::ConnectionLost(_) | DisconnectReason::Server(_)) => return Ok(()),
                Event::Disconnected(other) => return Err(format!("unexpected reason {other:?}").into()),
                _ => {}
            }
        }
    })
}

/// The peer's clipboard test image (interop/ironrdp-peer/README.md, `clipboard-image W H`),
/// recomputed here: RGBA of pixel (x, y), whatever the image's size.
fn peer_clipboard_pixel(x: u32, y: u32) -> [u8; 4] {
    [(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x ^ y) % 256) as u8, 255]
}

/// FNV-1a 64, as the peer's `clipboard_image` event reports it (16 lower-case hex digits).
fn fnv1a64_hex(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Connects to the peer without codecs (planar bitmaps: exact) and over TLS, with the default
/// channels (display control and the clipboard); processes the first frame.
async fn peer_session(peer: &Peer) -> TestResult<ClientSession> {
    let config = peer
        .config(PEER_PASS)
        .with_codecs(&[])
        .with_security(async_rdp::Security::Tls);
    screenshot(&peer.addr, config, Duration::from_millis(300)).await
}

/// Drives the session until the peer prints an `event` line named `name` (within 10 s): the
/// client has to answer the peer's requests meanwhile. The session's events are dropped,
/// except that a disconnect or a clipboard error is an error.
async fn peer_event_while_driving(session: &mut ClientSession, peer: &Peer, name: &str) -> TestResult<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let tag = format!("\"event\":\"{name}\"");
    loop {
        while let Ok(line) = peer.lines.try_recv() {
            if line.contains(&tag) {
                return Ok(line);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("ironrdp-peer printed no {name} event within 10 s").into());
        }
        match async_std::future::timeout(Duration::from_millis(50), session.next_event()).await {
            Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
            Ok(Ok(Event::ClipboardError(e))) => return Err(format!("clipboard error: {e}").into()),
            Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
            _ => {}
        }
    }
}

/// The clipboard both ways with IronRDP's server: text the peer copies (non-ASCII, outside the
/// Basic Multilingual Plane too) is announced, asked for and read exactly; text the client
/// copies is asked for by the peer and arrives exactly.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_clipboard_text_both_ways() -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--codecs", ""])?;
    block_on(async {
        let mut session = peer_session(&peer).await?;
        // The client's first Format List makes the channel ready on the server's side.
        peer_event_while_driving(&mut session, &peer, "clipboard_ready").await?;

        let from_server = "é 漢字 😀";
        peer.command(&format!("clipboard-text {from_server}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let text = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match async_std::future::timeout(left, session.next_event()).await {
                Err(_) => return Err("no clipboard text from the server within 10 s".into()),
                Ok(event) => match event? {
                    Event::ClipboardChanged { formats } if formats.iter().any(|f| f.is_text()) => {
                        assert!(formats.iter().any(|f| f.id == 13), "no CF_UNICODETEXT in {formats:?}");
                        session.clipboard().request_text()?;
                    }
                    Event::ClipboardText(text) => break text.into_string(),
                    Event::ClipboardError(e) => return Err(e.into()),
                    Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                    _ => {}
                },
            }
        };
        assert_eq!(text, from_server);
        let request = peer.wait_for("clipboard_request")?;
        assert_eq!(
            (field(&request, "format"), field(&request, "answered")),
            (Some("13"), Some("true")),
            "{request}"
        );

        let from_client = "from the client: é 漢字 😀";
        session.clipboard().set_text(from_client)?;
        session.flush().await?;
        let line = peer_event_while_driving(&mut session, &peer, "clipboard_text").await?;
        // The peer writes non-ASCII as is (JSON escapes only quotes, backslashes and controls).
        assert_eq!(field(&line, "text"), Some(from_client), "{line}");
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Images both ways with IronRDP's server: the peer's CF_DIB test image arrives pixel for
/// pixel; an image the client copies is read by the peer (as CF_DIB) to the same RGBA bytes.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_clipboard_image_both_ways() -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--codecs", ""])?;
    block_on(async {
        let mut session = peer_session(&peer).await?;
        peer_event_while_driving(&mut session, &peer, "clipboard_ready").await?;

        peer.command("clipboard-image 64 48")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let image = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match async_std::future::timeout(left, session.next_event()).await {
                Err(_) => return Err("no clipboard image from the server within 10 s".into()),
                Ok(event) => match event? {
                    Event::ClipboardChanged { formats } if formats.iter().any(|f| f.is_image()) => {
                        session.clipboard().request_image()?;
                    }
                    Event::ClipboardImage(image) => break image,
                    Event::ClipboardError(e) => return Err(e.into()),
                    Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                    _ => {}
                },
            }
        };
        assert_eq!((image.width(), image.height()), (64, 48));
        let rgba = image.to_rgba()?;
        assert_eq!(rgba.len(), 64 * 48 * 4);
        for (i, got) in rgba.chunks_exact(4).enumerate() {
            let (x, y) = (i as u32 % 64, i as u32 / 64);
            let want = peer_clipboard_pixel(x, y);
            assert_eq!(got, want, "pixel ({x},{y}) of the server's clipboard image");
        }

        let (width, height) = (50u32, 30u32);
        let copied: Vec<u8> = (0..height)
            .flat_map(|y| {
                (0..width).flat_map(move |x| [(x * 5 + y) as u8, (200 - y * 3) as u8, (x * y % 256) as u8, 255])
            })
            .collect();
        session
            .clipboard()
            .set_image(async_rdp::ClipboardImage::from_rgba(width, height, &copied)?)?;
        session.flush().await?;
        let line = peer_event_while_driving(&mut session, &peer, "clipboard_image").await?;
        println!("ironrdp-peer read the client's image: {line}");
        assert_eq!(
            (field(&line, "width"), field(&line, "height")),
            (Some("50"), Some("30")),
            "{line}"
        );
        assert_eq!(
            field(&line, "rgba_fnv1a64"),
            Some(fnv1a64_hex(&copied).as_str()),
            "{line}"
        );
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// Display control with IronRDP's server: the client's resize request reaches the server as a
/// monitor layout, the server reactivates the session at that size, and the desktop is drawn
/// again at it, pixel for pixel.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_resizes_through_display_control() -> TestResult {
    let _serial = serial();
    let peer = peer(&["--security", "tls", "--codecs", ""])?;
    block_on(async {
        let config = peer
            .config(PEER_PASS)
            .with_codecs(&[])
            .with_security(async_rdp::Security::Tls)
            .with_channels(&[async_rdp::Channel::DisplayControl]);
        let mut session = screenshot(&peer.addr, config, Duration::from_millis(300)).await?;
        peer.wait_for("activated")?;
        // The server opens the channel and announces its capabilities; until then requests wait.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !session.display().is_ready() {
            if Instant::now() > deadline {
                return Err("display control not ready within 10 s".into());
            }
            match async_std::future::timeout(Duration::from_millis(100), session.next_event()).await {
                Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
                Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
                _ => {}
            }
        }
        assert_eq!(session.display().resize(800, 600)?, (800, 600));
        assert_eq!(wait_for_resize(&mut session).await?, (800, 600));
        let layout = peer.wait_for("layout_request")?;
        assert_eq!(
            (
                field(&layout, "width"),
                field(&layout, "height"),
                field(&layout, "monitors")
            ),
            (Some("800"), Some("600"), Some("1")),
            "{layout}"
        );
        let resized = peer.wait_for("resized")?;
        assert_eq!(
            (
                field(&resized, "width"),
                field(&resized, "height"),
                field(&resized, "active")
            ),
            (Some("800"), Some("600"), Some("true")),
            "{resized}"
        );
        assert_eq!(session.display().requests_sent(), 1);
        // Let the full frame at the new size arrive, then compare every pixel.
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(miss) = peer_mismatch(&session) {
            if Instant::now() > deadline {
                return Err(miss.into());
            }
            match async_std::future::timeout(Duration::from_millis(300), session.next_event()).await {
                Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
                Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
                _ => {}
            }
        }
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height), (800, 600));
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Audio output with IronRDP's server (`--sound`, `tone`)

/// What the client decoded while the peer played a tone, and what the peer reported.
#[cfg(feature = "audio")]
struct Heard {
    format: Option<async_rdp::channels::PcmFormat>,
    samples: Vec<i16>,
    /// The peer's `tone_sent` line.
    sent: String,
    /// The peer's `wave_confirm` lines.
    confirms: Vec<String>,
}

/// Has the peer play a `hz` tone for `ms` milliseconds, and drives the session (taking every
/// decoded wave) until the peer has sent it all and the last confirmations are in.
#[cfg(feature = "audio")]
async fn hear_tone(session: &mut ClientSession, peer: &mut Peer, hz: u32, ms: u64) -> TestResult<Heard> {
    peer_event_while_driving(session, peer, "sound_ready").await?;
    peer.command(&format!("tone {hz} {ms}"))?;
    let mut heard = Heard {
        format: None,
        samples: Vec::new(),
        sent: String::new(),
        confirms: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_millis(ms) + Duration::from_secs(10);
    let mut sent_at = None;
    while sent_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_millis(500)) {
        if Instant::now() > deadline {
            return Err("the tone did not end in time".into());
        }
        while let Ok(line) = peer.lines.try_recv() {
            if line.contains("\"event\":\"wave_confirm\"") {
                heard.confirms.push(line);
            } else if line.contains("\"event\":\"tone_sent\"") {
                heard.sent = line;
                sent_at = Some(Instant::now());
            }
        }
        match async_std::future::timeout(Duration::from_millis(20), session.next_event()).await {
            Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
            Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
            _ => {}
        }
        while let Some(chunk) = session.audio().pop() {
            heard.format.get_or_insert(chunk.format());
            heard.samples.extend_from_slice(chunk.samples());
        }
    }
    Ok(heard)
}

/// The tone as the audio example stores it (a WAV file written with hound), read back: its
/// format and its left channel.
#[cfg(feature = "audio")]
fn through_wav(format: async_rdp::channels::PcmFormat, samples: &[i16]) -> TestResult<(hound::WavSpec, Vec<i16>)> {
    let path = std::env::temp_dir().join(format!("async-rdp-tone-{}.wav", std::process::id()));
    let spec = hound::WavSpec {
        channels: format.channels,
        sample_rate: format.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec)?;
    for &sample in samples {
        writer.write_sample(sample)?;
    }
    writer.finalize()?;
    let mut reader = hound::WavReader::open(&path)?;
    let spec = reader.spec();
    let all: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let _ = std::fs::remove_file(&path);
    Ok((spec, all.into_iter().step_by(usize::from(spec.channels)).collect()))
}

/// The frequency of a sine in `samples` at `rate`, from its upward zero crossings between its
/// first and its last (with a hysteresis of an eighth of full scale, so that the noise of a
/// lossy codec near zero does not count).
#[cfg(feature = "audio")]
fn measured_frequency(samples: &[i16], rate: u32) -> f64 {
    let (mut below, mut crossings) = (false, Vec::new());
    for (i, &s) in samples.iter().enumerate() {
        if s < -4096 {
            below = true;
        } else if below && s > 0 {
            below = false;
            crossings.push(i);
        }
    }
    match (crossings.first(), crossings.last()) {
        (Some(first), Some(last)) if last > first => {
            (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
        }
        _ => 0.0,
    }
}

/// The peer plays a 440 Hz tone for 2 s in `format`: the client's decoded audio, stored as
/// a WAV file and read back, has that frequency (within 1 %) and length (within 10 %), and
/// the peer received a wave confirmation for every wave it sent.
#[cfg(feature = "audio")]
fn ironrdp_server_tone(format: &str, rate: u32) -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--codecs", "", "--sound", format])?;
    block_on(async {
        let mut session = peer_session(&peer).await?;
        let heard = hear_tone(&mut session, &mut peer, 440, 2000).await?;
        let pcm = heard.format.ok_or("the client decoded no audio")?;
        let (spec, left) = through_wav(pcm, &heard.samples)?;
        assert_eq!((spec.sample_rate, spec.channels), (rate, 2), "{format}");
        let seconds = left.len() as f64 / f64::from(spec.sample_rate);
        let hz = measured_frequency(&left, spec.sample_rate);
        eprintln!(
            "{format}: {seconds:.3} s at {hz:.2} Hz, {} confirms; peer: {}",
            heard.confirms.len(),
            heard.sent
        );
        assert!((1.8..=2.2).contains(&seconds), "{format}: {seconds} s, not 2 s");
        assert!((435.6..=444.4).contains(&hz), "{format}: {hz} Hz, not 440 Hz");
        let waves: usize = field(&heard.sent, "waves").ok_or("no waves in tone_sent")?.parse()?;
        assert_eq!(
            heard.confirms.len(),
            waves,
            "{format}: a wave confirmation for every wave"
        );
        let blocks: Vec<&str> = heard.confirms.iter().filter_map(|c| field(c, "block_no")).collect();
        let expected: Vec<String> = (0..waves).map(|n| (n % 256).to_string()).collect();
        assert_eq!(blocks, expected, "{format}: confirmations in block order");
        assert_eq!(session.audio().dropped_frames(), 0);
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

#[test]
#[cfg(feature = "audio")]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_tone_in_pcm() -> TestResult {
    ironrdp_server_tone("pcm", 44_100)
}

#[test]
#[cfg(feature = "audio")]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_tone_in_ima_adpcm() -> TestResult {
    ironrdp_server_tone("adpcm", 22_050)
}

// ---------------------------------------------------------------------------------------------
// IronRDP's server through the graphics pipeline (`ironrdp-peer --egfx MODE`)

/// Connects to an `ironrdp-peer --egfx` (which sends no fast-path bitmaps then, so every pixel
/// compared came through the pipeline) and drives the session until the peer has seen all
/// [`EGFX_CARD_FRAMES`] frames of its card acknowledged: the peer sends each next frame only
/// after the previous acknowledgement, and the client composes a frame before it acknowledges
/// it, so the framebuffer then holds the last frame. Returns the session and the peer's lines.
async fn egfx_card(peer: &Peer) -> TestResult<(ClientSession, Vec<String>)> {
    let config = peer.config(PEER_PASS).with_security(async_rdp::Security::Tls);
    let mut session = async_rdp::connect(&peer.addr, config).await?;
    let lines = drive_until_acks(&mut session, peer, EGFX_CARD_FRAMES).await?;
    Ok((session, lines))
}

/// Drives the session until the peer printed an `egfx_frame_ack` with `acks` acknowledgements
/// on its pipeline (within 20 s); the peer's lines meanwhile, or its `egfx_error` as an error.
async fn drive_until_acks(session: &mut ClientSession, peer: &Peer, acks: u32) -> TestResult<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    let done = format!("\"acks\":{acks}");
    while !lines
        .iter()
        .any(|l: &String| l.contains("\"event\":\"egfx_frame_ack\"") && l.contains(&done))
    {
        while let Ok(line) = peer.lines.try_recv() {
            if line.contains("\"event\":\"egfx_error\"") {
                return Err(format!("ironrdp-peer: {line}").into());
            }
            lines.push(line);
        }
        if Instant::now() > deadline {
            return Err(format!("no acknowledgement number {acks} within 20 s; peer: {lines:?}").into());
        }
        match async_std::future::timeout(Duration::from_millis(50), session.next_event()).await {
            Err(_) | Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
        }
    }
    Ok(lines)
}

/// Frames per card that `ironrdp-peer --egfx` sends (its `egfx::FRAMES_PER_CARD`).
const EGFX_CARD_FRAMES: u32 = 3;

/// The report says the pipeline decoded `codec` `EGFX_CARD_FRAMES` times (one full-card update
/// a frame), nothing was dropped, and the peer saw a capability confirmation.
fn assert_egfx_codec(session: &ClientSession, lines: &[String], codec: &str) -> TestResult {
    let report = session.graphics_report();
    println!("ironrdp-peer --egfx {codec}: graphics: {report}");
    let caps = lines
        .iter()
        .find(|l| l.contains("\"event\":\"egfx_caps\""))
        .ok_or("the peer printed no egfx_caps")?;
    println!("ironrdp-peer: {caps}");
    assert!(
        matches!(&report.path, async_rdp::channels::GraphicsPath::Egfx { version } if field(caps, "version") == Some(version)),
        "{report} vs {caps}"
    );
    let count = report
        .codecs
        .iter()
        .find(|(name, _)| *name == codec)
        .map_or(0, |(_, n)| *n);
    assert!(count >= EGFX_CARD_FRAMES, "{codec} decoded {count} times: {report}");
    assert!(report.frames >= EGFX_CARD_FRAMES, "{report}");
    assert_eq!(report.dropped, 0, "{report}");
    let sent = lines
        .iter()
        .filter(|l| l.contains("\"event\":\"egfx_frame_sent\""))
        .count();
    assert_eq!(sent, EGFX_CARD_FRAMES as usize, "frames sent: {lines:?}");
    Ok(())
}

fn ironrdp_server_egfx_exact(mode: &str) -> TestResult {
    let _serial = serial();
    let peer = peer(&["--security", "tls", "--egfx", mode])?;
    block_on(async {
        let (mut session, lines) = egfx_card(&peer).await?;
        assert_egfx_codec(&session, &lines, mode)?;
        if let Some(miss) = peer_mismatch(&session) {
            return Err(format!("{mode}: {miss}").into());
        }
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_egfx_planar_is_exact() -> TestResult {
    ironrdp_server_egfx_exact("planar")
}

#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_egfx_uncompressed_is_exact() -> TestResult {
    ironrdp_server_egfx_exact("uncompressed")
}

/// Which area of the peer's card a pixel is in: the border, one of the 8 bars, or the ramp.
fn card_area(x: u16, y: u16, width: u16, height: u16) -> u32 {
    if x == 0 || y == 0 || x == width - 1 || y == height - 1 {
        100
    } else if y < height / 2 {
        u32::from(x) * 8 / u32::from(width)
    } else {
        200
    }
}

/// The largest per-channel difference from the card: over all pixels, and over those at least
/// `margin` pixels away from a boundary between the card's areas (where 4:2:0 chroma and the
/// codec's transform blocks smear sharp edges).
fn card_difference(session: &ClientSession, margin: u16) -> (u8, u8, String) {
    let fb = session.framebuffer();
    let (w, h) = (fb.width, fb.height);
    let (mut all, mut inside, mut worst) = (0u8, 0u8, String::new());
    for y in 0..h {
        for x in 0..w {
            let Some(got) = fb.pixel(x, y) else { continue };
            let want = peer_pattern(x, y, w, h);
            let diff = (0..3).map(|i| got[i].abs_diff(want[i])).max().unwrap_or(0);
            if diff > all {
                worst = format!("({x},{y}) is {got:?}, the card has {want:?}");
            }
            all = all.max(diff);
            let area = card_area(x, y, w, h);
            let interior = x >= margin
                && y >= margin
                && x + margin < w
                && y + margin < h
                && [(x - margin, y), (x + margin, y), (x, y - margin), (x, y + margin)]
                    .iter()
                    .all(|&(nx, ny)| card_area(nx, ny, w, h) == area);
            if interior {
                inside = inside.max(diff);
            }
        }
    }
    (all, inside, worst)
}

/// How far from the card the AVC420 picture may be, away from edges: H.264 at the peer's
/// quantiser (10..18) on flat colours and a gentle ramp, converted with the same full-range
/// BT.709 both ways.
#[cfg(feature = "h264")]
const AVC420_TOLERANCE: u8 = 8;

#[cfg(feature = "h264")]
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_egfx_avc420_matches_the_test_card() -> TestResult {
    let _serial = serial();
    let peer = peer(&["--security", "tls", "--egfx", "avc420"])?;
    block_on(async {
        let (mut session, lines) = egfx_card(&peer).await?;
        assert_egfx_codec(&session, &lines, "avc420")?;
        let acks = lines
            .iter()
            .filter(|l| l.contains("\"event\":\"egfx_frame_ack\""))
            .count();
        let (all, inside, worst) = card_difference(&session, 4);
        println!(
            "avc420: {acks} acknowledgements; max channel difference {inside} 4 px from edges, {all} over all pixels (worst: {worst})"
        );
        assert!(acks >= EGFX_CARD_FRAMES as usize, "{lines:?}");
        assert!(
            inside <= AVC420_TOLERANCE,
            "avc420 differs by {inside} away from edges (all: {all})"
        );
        // Every pixel drawn, the last column and row included (a region one pixel short leaves
        // them transparent black).
        let fb = session.framebuffer();
        let edges = (0..fb.width)
            .map(|x| (x, fb.height - 1))
            .chain((0..fb.height).map(|y| (fb.width - 1, y)));
        for (x, y) in edges {
            assert_eq!(
                fb.pixel(x, y).map(|p| p[3]),
                Some(255),
                "pixel ({x},{y}) was never drawn"
            );
        }
        peer_roughly(&session, AVC420_TOLERANCE)?;
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}

/// A resize (deactivation-reactivation at the new size) while the pipeline is open: the peer
/// resets the pipeline to the new size and sends the card again, which the client composes
/// exactly into its resized framebuffer.
#[test]
#[ignore = "needs the interop peers: cargo test --features full --test interop -- --ignored"]
fn ironrdp_server_egfx_planar_follows_a_resize() -> TestResult {
    let _serial = serial();
    let mut peer = peer(&["--security", "tls", "--egfx", "planar"])?;
    block_on(async {
        let (mut session, _) = egfx_card(&peer).await?;
        peer.command("resize 800 600")?;
        let lines = drive_until_acks(&mut session, &peer, 2 * EGFX_CARD_FRAMES).await?;
        let fb = session.framebuffer();
        assert_eq!((fb.width, fb.height), (800, 600), "peer: {lines:?}");
        if let Some(miss) = peer_mismatch(&session) {
            return Err(format!("after the resize: {miss}").into());
        }
        println!("after the resize: graphics: {}", session.graphics_report());
        session.shutdown(Duration::from_secs(5)).await?;
        Ok(())
    })
}
