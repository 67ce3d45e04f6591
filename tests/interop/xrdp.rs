//! xrdp 0.9 (Debian 12, Xorg backend).

use super::*;

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
    let out = crate::peer_desktops::in_session(XRDP_USER, command)
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
