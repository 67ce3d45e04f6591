//! IronRDP's server (`interop/ironrdp-peer`).

use super::*;

const PEER_USER: &str = "alice";
pub(super) const PEER_PASS: &str = "Peer-Passw0rd";

/// A running `ironrdp-peer` process and the JSON lines it prints.
pub(super) struct Peer {
    child: Child,
    stdin: ChildStdin,
    pub(super) lines: Receiver<String>,
    pub(super) addr: String,
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
    pub(super) fn config(&self, password: &str) -> ClientConfig {
        ClientConfig::new(PEER_USER, password).with_trust(async_rdp::Trust::pinned([self.fingerprint]))
    }

    /// The next line whose `event` is `name`, within 10 s.
    pub(super) fn wait_for(&self, name: &str) -> TestResult<String> {
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

    pub(super) fn command(&mut self, line: &str) -> TestResult {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

/// A JSON field's raw value in one of the peer's lines (its lines are flat objects).
pub(super) fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
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
pub(super) fn peer(args: &[&str]) -> TestResult<Peer> {
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
pub(super) fn peer_pattern(x: u16, y: u16, width: u16, height: u16) -> [u8; 3] {
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
pub(super) fn peer_mismatch(session: &ClientSession) -> Option<String> {
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
pub(super) fn peer_roughly(session: &ClientSession, tolerance: u8) -> TestResult {
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
        assert_eq!(wait_for_resize(&mut session).await?, (800, 600));
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
pub(super) async fn peer_session(peer: &Peer) -> TestResult<ClientSession> {
    let config = peer
        .config(PEER_PASS)
        .with_codecs(&[])
        .with_security(async_rdp::Security::Tls);
    screenshot(&peer.addr, config, Duration::from_millis(300)).await
}

/// Drives the session until the peer prints an `event` line named `name` (within 10 s): the
/// client has to answer the peer's requests meanwhile. The session's events are dropped,
/// except that a disconnect or a clipboard error is an error.
pub(super) async fn peer_event_while_driving(
    session: &mut ClientSession,
    peer: &Peer,
    name: &str,
) -> TestResult<String> {
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
