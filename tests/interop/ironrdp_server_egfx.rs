//! IronRDP's server through the graphics pipeline (`ironrdp-peer --egfx MODE`).

use super::ironrdp_server::*;
use super::*;

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
