//! GNOME Remote Desktop 43 (headless, NLA only, EGFX with RemoteFX Progressive).

use super::*;
use crate::peer_desktops::{gnome_typed_lines, GNOME_STATE};

const GNOME_PORT: &str = "33896";
const GNOME_USER: &str = "rdpuser";
const GNOME_PASS: &str = "Rdp-Passw0rd";
/// The test desktop's background (the peers' notes): teal #2e8e8e, probed at (1000, 600).
const GNOME_BACKGROUND: [u8; 3] = [0x2e, 0x8e, 0x8e];
const GNOME_PROBE: (u16, u16) = (1000, 600);

struct Gnome {
    addr: String,
    fingerprint: Fingerprint,
}

impl Gnome {
    fn config(&self) -> ClientConfig {
        ClientConfig::new(GNOME_USER, GNOME_PASS).with_trust(async_rdp::Trust::pinned([self.fingerprint]))
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
        // GNOME says why in its log; count the lines before, so that an older refusal cannot pass.
        let log = "/tmp/rdp-peers/gnome-rd/grd.log";
        let reason = "require the Graphics Pipeline, closing connection";
        let refusals = || std::fs::read_to_string(log).map(|text| text.matches(reason).count());
        let before = refusals()?;
        let error = match screenshot(&gnome.addr, config, Duration::from_millis(300)).await {
            Ok(_) => return Err("GNOME accepted a client without the graphics pipeline in extend mode".into()),
            Err(e) => e,
        };
        println!("GNOME without EGFX: {error}");
        // Past TLS and NLA (the credentials were good): GNOME closed the connection during
        // activation, when it saw no graphics pipeline offered.
        let phase = error
            .downcast_ref::<async_rdp::Error>()
            .and_then(async_rdp::Error::phase);
        if phase != Some(async_rdp::Phase::Activation) {
            return Err(
                format!("expected the connection to end in activation, it ended with {error} ({phase:?})").into(),
            );
        }
        let after = refusals()?;
        if after <= before {
            return Err(
                format!("GNOME's log ({log}) does not say it closed the connection for want of the pipeline").into(),
            );
        }
        Ok(())
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
        while !gnome_typed_lines()?.contains(&text) {
            if Instant::now() > deadline {
                return Err(format!("the desktop app logged {:?}, not the pasted text", gnome_typed_lines()?).into());
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
