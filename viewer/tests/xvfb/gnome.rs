//! The viewer against GNOME Remote Desktop 43 in its `extend` mode (NLA, the graphics pipeline).

use super::*;
use crate::peer_desktops::{gnome_typed_lines, GNOME_STATE};

const GNOME_TARGET: &str = "rdp://rdpuser@127.0.0.1:33896";
const GNOME_PASS: &str = "Rdp-Passw0rd";
/// The test desktop's background (the peers' notes): teal #2e8e8e, probed at (1000, 600).
const GNOME_TEAL: [u8; 3] = [0x2e, 0x8e, 0x8e];
const GNOME_PROBE: (u32, u32) = (1000, 600);

/// The desktop at 1280x720 shows teal at the probe point; text typed with the US layout
/// reaches the desktop app's entry (`typed: hello from the viewer` in its log).
#[test]
#[ignore = "needs Xvfb and GNOME Remote Desktop: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn gnome_extend_mode_desktop_and_typing() -> TestResult {
    with_evidence(gnome_desktop_and_typing)
}

fn gnome_desktop_and_typing() -> TestResult {
    const TEXT: &str = "hello from the viewer";
    let _serial = serial();
    start_peer(
        "start-gnome-rd.sh",
        &[("GRD_PORT", "33896"), ("GRD_SCREEN_SHARE_MODE", "extend")],
        "GNOME Remote Desktop",
    )?;
    let pin = pin_of(&format!("{GNOME_STATE}/tls.crt"))?;
    let x = Xvfb::start()?;
    x.set_layout("us")?;
    let mut viewer = Viewer::spawn(
        &x,
        &[
            GNOME_TARGET,
            "--pin",
            &pin,
            "--size",
            "1280x720",
            "--keyboard-layout",
            "us",
        ],
        Some(GNOME_PASS),
    )?;
    let size = viewer.wait_connected(Duration::from_secs(60))?;
    if size != (1280, 720) {
        return Err(viewer.failure(format!("expected `connected 1280x720`, got {size:?}")));
    }
    let window = viewer.window(&x, Duration::from_secs(15))?;
    let mut last = None;
    let shown = poll(Duration::from_secs(20), || {
        last = window.capture(&x)?.pixel(GNOME_PROBE.0, GNOME_PROBE.1);
        Ok(last.filter(|&got| close_to(got, GNOME_TEAL, 6)))
    })?;
    if shown.is_none() {
        return Err(viewer.failure(format!(
            "expected the window pixel {GNOME_PROBE:?} to be {} ± 6 within 20 s; it is {}",
            hex(GNOME_TEAL),
            last.map_or("outside the window".into(), hex)
        )));
    }

    let before = gnome_typed_lines()?.iter().filter(|t| *t == TEXT).count();
    window.focus(&x)?;
    x.xdotool(&[
        "mousemove",
        "--window",
        &window.id,
        &GNOME_PROBE.0.to_string(),
        &GNOME_PROBE.1.to_string(),
    ])?;
    std::thread::sleep(Duration::from_millis(300));
    x.xdotool(&["click", "1"])?;
    // The first key press of a session is swallowed (the peers' notes): a harmless Shift.
    x.xdotool(&["key", "shift"])?;
    std::thread::sleep(Duration::from_millis(500));
    x.xdotool(&["type", "--delay", "30", TEXT])?;
    x.xdotool(&["key", "Return"])?;
    let logged = poll(Duration::from_secs(15), || {
        Ok((gnome_typed_lines()?.iter().filter(|t| *t == TEXT).count() > before).then_some(()))
    })?;
    if logged.is_none() {
        let lines = gnome_typed_lines()?;
        return Err(viewer.failure(format!(
            "typed {TEXT:?} + Return; expected `typed: {TEXT}` in {GNOME_STATE}/desktop.log within 15 s; \
             its last typed lines: {:?}",
            &lines[lines.len().saturating_sub(3)..]
        )));
    }
    println!("GNOME: teal at {GNOME_PROBE:?}, typed text logged");
    Ok(())
}
