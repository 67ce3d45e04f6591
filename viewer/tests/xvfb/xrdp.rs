//! The viewer against xrdp 0.9 (TLS, an Xorg session run by rdpuser).

use super::*;

const XRDP_PORT: u16 = 33890;
const XRDP_ADDR: &str = "127.0.0.1:33890";
const XRDP_USER: &str = "rdpuser";
const XRDP_PASS: &str = "Rdp-Passw0rd";
const XRDP_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
/// The session's desktop background (the peers' notes): #2e5e8e.
const XRDP_BLUE: [u8; 3] = [0x2e, 0x5e, 0x8e];
/// How far a shown pixel may be off the remote one (RemoteFX is lossy).
const TOLERANCE: u8 = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// xrdp started (or reused) as `.ci/run` starts it; the pin of its certificate.
fn start_xrdp() -> TestResult<String> {
    start_peer(
        "start-xrdp.sh",
        &[
            ("XRDP_PORT", "33890"),
            ("XRDP_SECURITY", "negotiate"),
            ("XRDP_REQUIRE_CREDENTIALS", "false"),
        ],
        "xrdp",
    )?;
    pin_of(XRDP_CERT)
}

const XRDP_LOG: &str = "/tmp/rdp-peers/xrdp/xrdp.log";

/// Runs an xrdp test under the lock; a failure also lists the connections xrdp accepted meanwhile. Each new
/// logon of rdpuser takes the session over and disconnects the one before: a client other than
/// the test's (a developer's, another test run) shows up here.
fn xrdp_test(body: impl FnOnce() -> TestResult) -> TestResult {
    let _serial = serial();
    let mark = std::fs::metadata(XRDP_LOG).map_or(0, |m| m.len());
    with_evidence(body).map_err(|failure| {
        let log = std::fs::read(XRDP_LOG).unwrap_or_default();
        let new = String::from_utf8_lossy(log.get(mark as usize..).unwrap_or_default()).into_owned();
        let connections: Vec<&str> = new
            .lines()
            .filter(|l| l.contains("connection received from"))
            .filter_map(|l| l.get(1..18))
            .collect();
        Failure(format!(
            "{:?}\n  xrdp accepted {} connection(s) during the test, at {connections:?} (another client's logon \
             takes the session over and disconnects ours)",
            failure,
            connections.len()
        ))
    })
}

/// `rdp://rdpuser@127.0.0.1:PORT` (the password goes through `RDP_PASSWORD`).
fn target(port: u16) -> String {
    format!("rdp://{XRDP_USER}@127.0.0.1:{port}")
}

/// Starts the viewer at 1024x768 with the pin and `extra` arguments, waits for `connected`
/// and for its window.
fn connect(x: &Xvfb, pin: &str, extra: &[&str]) -> TestResult<(Viewer, Window)> {
    connect_to(x, &target(XRDP_PORT), pin, extra)
}

fn connect_to(x: &Xvfb, target: &str, pin: &str, extra: &[&str]) -> TestResult<(Viewer, Window)> {
    let mut args = vec![target, "--pin", pin, "--size", "1024x768"];
    args.extend_from_slice(extra);
    let mut viewer = Viewer::spawn(x, &args, Some(XRDP_PASS))?;
    let size = viewer.wait_connected(CONNECT_TIMEOUT)?;
    if size != (1024, 768) {
        return Err(viewer.failure(format!("expected `connected 1024x768`, got {size:?}")));
    }
    let window = viewer.window(x, Duration::from_secs(15))?;
    wait_session(&mut viewer)?;
    Ok((viewer, window))
}

/// Waits until the session's X server answers and its desktop is up (the xterm is mapped): xrdp
/// starts (or hands over) the session after the client is in, so `connected` may come first.
fn wait_session(viewer: &mut Viewer) -> TestResult {
    let mut last = String::new();
    let up = poll(Duration::from_secs(30), || {
        let output = output_within(
            Duration::from_secs(10),
            &mut in_x("xdotool search --onlyvisible --class XTerm"),
        )?;
        last = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Ok(output.status.success().then_some(()))
    })?;
    match up {
        Some(()) => {
            // Let the clock and the eyes draw too.
            std::thread::sleep(Duration::from_millis(700));
            Ok(())
        }
        None => Err(viewer.failure(format!(
            "the xrdp session's desktop (its xterm) did not come up within 30 s: {last}"
        ))),
    }
}

/// The size of xrdp's X screen (`xdpyinfo` in the session: `dimensions:    WxH pixels`).
fn remote_dimensions() -> TestResult<(u32, u32)> {
    let out = run(Duration::from_secs(20), &mut in_x("xdpyinfo"))?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("dimensions:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(parse_size)
        .ok_or_else(|| Failure(format!("no `dimensions:` in the session's xdpyinfo: {out}")))
}

/// xrdp's X screen now (`xwd -root` in the session).
fn remote_screen() -> TestResult<Image> {
    let output = output_within(Duration::from_secs(30), &mut in_x("xwd -root -silent"))?;
    if !output.status.success() {
        return fail(format!(
            "xwd -root in the xrdp session failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Image::from_xwd(&output.stdout)
}

/// Points of xrdp's X screen that show the plain background now (a 40-pixel grid inside
/// `size`, read from `xwd -root` in the session): the xterm, clock and eyes are left out
/// wherever the session put them.
fn remote_background(size: (u32, u32)) -> TestResult<Vec<(u32, u32)>> {
    let root = remote_screen()?;
    let mut points = Vec::new();
    for y in (20..root.height.min(size.1)).step_by(40) {
        for x in (20..root.width.min(size.0)).step_by(40) {
            if root.pixel(x, y) == Some(XRDP_BLUE) {
                points.push((x, y));
            }
        }
    }
    if points.len() < 40 {
        return fail(format!(
            "the xrdp session ({}x{}) shows only {} grid points of background {}",
            root.width,
            root.height,
            points.len(),
            hex(XRDP_BLUE)
        ));
    }
    Ok(points)
}

/// Waits until the viewer's window shows the remote background at every point of `points`;
/// a failure listing the points that differ.
fn assert_shows_desktop(viewer: &mut Viewer, x: &Xvfb, window: &Window, points: &[(u32, u32)]) -> TestResult {
    let mut last = String::new();
    let shown = poll(Duration::from_secs(20), || {
        let image = window.capture(x)?;
        let wrong: Vec<String> = points
            .iter()
            .filter_map(|&(px, py)| match image.pixel(px, py) {
                Some(got) if close_to(got, XRDP_BLUE, TOLERANCE) => None,
                got => Some(format!("({px},{py}): {}", got.map_or("outside".into(), hex))),
            })
            .collect();
        if wrong.is_empty() {
            return Ok(Some(()));
        }
        last = format!(
            "{} of {} background points differ in the {}x{} window capture, e.g. {}",
            wrong.len(),
            points.len(),
            image.width,
            image.height,
            wrong[..wrong.len().min(8)].join(", ")
        );
        Ok(None)
    })?;
    match shown {
        Some(()) => Ok(()),
        None => Err(viewer.failure(format!(
            "expected the window to show the desktop background {} ± {TOLERANCE} where the session does; {last}",
            hex(XRDP_BLUE)
        ))),
    }
}

/// A process that is killed (by its id) on drop.
struct KillOnDrop {
    child: Option<Child>,
    /// Another pid to kill first (a process the child started).
    pid: Option<String>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Only a real process id: `kill 0` or `kill -1` would reach far more.
        if let Some(pid) = self
            .pid
            .as_deref()
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|&p| p > 1)
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The xrdp session's last lines about the keyboard layout (evidence for the typing test).
fn xorgxrdp_layout_log() -> String {
    let log = std::fs::read_to_string("/home/rdpuser/.xorgxrdp.10.log").unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("layout") || l.contains("Layout"))
        .collect();
    lines[lines.len().saturating_sub(4)..].join("\n    ")
}

// ---------------------------------------------------------------------------------------------

/// The desktop is shown 1:1: window and remote screen 1024x768, titled with the host, and the
/// window's pixels are the session's background wherever the session shows background.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_desktop_is_shown() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        // The password in the URL this time (the other tests use RDP_PASSWORD).
        let url = format!("rdp://{XRDP_USER}:{XRDP_PASS}@{XRDP_ADDR}");
        let mut viewer = Viewer::spawn(&x, &[&url, "--pin", &pin, "--size", "1024x768"], None)?;
        let size = viewer.wait_connected(CONNECT_TIMEOUT)?;
        if size != (1024, 768) {
            return Err(viewer.failure(format!("expected `connected 1024x768`, got {size:?}")));
        }
        let window = viewer.window(&x, Duration::from_secs(15))?;
        if !window.name.contains(XRDP_ADDR) {
            return Err(viewer.failure(format!("the window title {:?} does not name {XRDP_ADDR}", window.name)));
        }
        wait_session(&mut viewer)?;
        let geometry = window.geometry(&x)?;
        if (geometry.width, geometry.height) != (1024, 768) {
            return Err(viewer.failure(format!("expected a 1024x768 window, it is {geometry:?}")));
        }
        let remote = remote_dimensions()?;
        if remote != (1024, 768) {
            return Err(viewer.failure(format!(
                "expected the session's screen at 1024x768, xdpyinfo says {remote:?}"
            )));
        }
        let points = remote_background((1024, 768))?;
        assert_shows_desktop(&mut viewer, &x, &window, &points)?;
        // Not only the background: the window shows what the session's screen shows, 1:1 (the
        // xterm's text, the clock, the eyes), on a 16-pixel grid. RemoteFX is lossy and the
        // clock's hands move, hence a tolerance and a share rather than every point.
        let mut share = 0.0;
        let mut detail = String::new();
        let same = poll(Duration::from_secs(10), || {
            let remote = remote_screen()?;
            let local = window.capture(&x)?;
            let (mut total, mut matching, mut foreground) = (0, 0, 0);
            let mut wrong = Vec::new();
            for y in (8..768).step_by(16) {
                for px in (8..1024).step_by(16) {
                    let (Some(want), Some(got)) = (remote.pixel(px, y), local.pixel(px, y)) else {
                        continue;
                    };
                    total += 1;
                    if want != XRDP_BLUE {
                        foreground += 1;
                    }
                    if close_to(got, want, 40) {
                        matching += 1;
                    } else if wrong.len() < 8 {
                        wrong.push(format!("({px},{y}): {} vs {}", hex(got), hex(want)));
                    }
                }
            }
            share = f64::from(matching) / f64::from(total.max(1));
            detail = format!(
                "{matching} of {total} grid points ({foreground} not background) within 40 levels; e.g. {}",
                wrong.join(", ")
            );
            Ok((share >= 0.97 && foreground >= 50).then_some(()))
        })?;
        if same.is_none() {
            return Err(viewer.failure(format!(
                "expected the window to show the session's screen 1:1 (97 % of grid points within 40 levels, with \
                 the xterm, clock and eyes); {detail}"
            )));
        }
        println!(
            "xrdp desktop: window {:?} {}x{}, {} background points match; 1:1 with the session: {:.1} % ({detail})",
            window.name,
            geometry.width,
            geometry.height,
            points.len(),
            share * 100.0
        );
        Ok(())
    })
}

/// Typing: with the local X server in German and `--keyboard-layout de`, `xdotool type` of a
/// command with umlauts and ß into an xterm of the session writes exactly that text to a file.
///
/// The xterm is one the test starts in the session (`LC_ALL=C.UTF-8`, at a known place): the
/// peer's own xterm runs in the C locale (sesman sets no LANG), where xterm sends ü and ß as
/// Latin-1 bytes and bash's readline takes them for Meta keys, whatever the client does (the same
/// keys typed there gave a file holding `Gr/home/rdpuser/vt.txte vom Viewer`).
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_typing_with_the_german_layout() -> TestResult {
    xrdp_test(|| {
        const FILE: &str = "/home/rdpuser/viewer-typed.txt";
        const TEXT: &str = "Grüße vom Viewer";
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        x.set_layout("de")?;
        match std::fs::remove_file(FILE) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return fail(format!("cannot remove {FILE}: {e}")),
            _ => {}
        }
        let (mut viewer, window) = connect(&x, &pin, &["--keyboard-layout", "de"])?;

        // A UTF-8 xterm of our own in the session, at a known place.
        let title = format!("viewer-typing-{}", std::process::id());
        let mut spawn = in_x(&format!(
            "echo $$; exec env LC_ALL=C.UTF-8 LANG=C.UTF-8 xterm -geometry 60x6+40+450 -T {title} \
             -e bash --norc --noprofile >/dev/null 2>&1"
        ));
        let mut child = spawn
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()?;
        let mut pid = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut pid)?;
        let _xterm = KillOnDrop {
            child: Some(child),
            pid: Some(pid.trim().to_owned()),
        };
        let geometry = Geometry::parse(&run(
            Duration::from_secs(20),
            &mut in_x(&format!(
                "xdotool search --sync --onlyvisible --name {title} | head -1 | xargs xdotool getwindowgeometry --shell"
            )),
        )?)?;
        let (cx, cy) = (
            geometry.x + geometry.width as i32 / 2,
            geometry.y + geometry.height as i32 / 2,
        );
        // Let the new xterm reach the viewer's window.
        std::thread::sleep(Duration::from_secs(1));

        window.focus(&x)?;
        x.xdotool(&["mousemove", "--window", &window.id, &cx.to_string(), &cy.to_string()])?;
        std::thread::sleep(Duration::from_millis(300));
        x.xdotool(&["click", "1"])?;
        std::thread::sleep(Duration::from_millis(300));
        let command = format!("echo {TEXT} > {FILE}");
        // xdotool decodes its argument with the locale: UTF-8.
        run(
            Duration::from_secs(60),
            x.command("xdotool")
                .env("LC_ALL", "C.UTF-8")
                .args(["type", "--delay", "30", &command]),
        )?;
        x.xdotool(&["key", "Return"])?;

        let expected = format!("{TEXT}\n");
        let arrived = poll(Duration::from_secs(15), || {
            Ok(std::fs::read(FILE).ok().filter(|bytes| !bytes.is_empty()))
        })?;
        match arrived {
            Some(bytes) if bytes == expected.as_bytes() => {
                println!("xrdp typing: {FILE} holds {:?}", String::from_utf8_lossy(&bytes));
                Ok(())
            }
            Some(bytes) => Err(viewer.failure(format!(
                "typed `{command}` + Return (local layout de, --keyboard-layout de) at ({cx},{cy}) into the session's \
                 xterm; expected {FILE} to hold {expected:?}, it holds {:?} (bytes {bytes:02x?}); xorgxrdp's log:\n    {}",
                String::from_utf8_lossy(&bytes),
                xorgxrdp_layout_log()
            ))),
            None => Err(viewer.failure(format!(
                "typed `{command}` + Return (local layout de, --keyboard-layout de) at ({cx},{cy}) into the session's \
                 xterm; {FILE} did not appear within 15 s; xorgxrdp's log:\n    {}",
                xorgxrdp_layout_log()
            ))),
        }
    })
}

/// Resizing the window resizes the session (display control): `resized 1000x700`, and the
/// session's X screen is 1000x700.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_window_resize_resizes_the_session() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let (mut viewer, window) = connect(&x, &pin, &[])?;
        // One resize, well after the connection's own (xrdp ends a session on two quick ones).
        std::thread::sleep(Duration::from_secs(3));
        x.xdotool(&["windowsize", &window.id, "1000", "700"])?;
        viewer.wait_line("resized 1000x700", Duration::from_secs(30), |l| {
            l.trim() == "resized 1000x700"
        })?;
        let mut remote = (0, 0);
        let resized = poll(Duration::from_secs(10), || {
            remote = remote_dimensions()?;
            Ok((remote == (1000, 700)).then_some(()))
        })?;
        if resized.is_none() {
            return Err(viewer.failure(format!(
                "after `resized 1000x700`, expected the session's xdpyinfo `dimensions:    1000x700 pixels`; it says {}x{}",
                remote.0, remote.1
            )));
        }
        let geometry = window.geometry(&x)?;
        let points = remote_background((geometry.width, geometry.height))?;
        assert_shows_desktop(&mut viewer, &x, &window, &points)?;
        println!("xrdp resize: session 1000x700, window {geometry:?}");
        Ok(())
    })
}

/// The clipboard both ways, with non-ASCII text: the local CLIPBOARD (xclip on the test's X
/// server) reaches the session when the viewer gains focus; the session's reaches the local
/// display.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_clipboard_both_ways() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let (mut viewer, window) = connect(&x, &pin, &[])?;

        // Local -> remote.
        let local_text = format!("from the viewer's display: é 漢字 {}", std::process::id());
        let mut xclip = x
            .command("xclip")
            .args(["-quiet", "-selection", "clipboard", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        xclip.stdin.take().expect("piped").write_all(local_text.as_bytes())?;
        let _local_owner = KillOnDrop {
            child: Some(xclip),
            pid: None,
        };
        std::thread::sleep(Duration::from_millis(300));
        // Focus out (to the root window) and back in: the viewer reads the clipboard on focus.
        let root = run(Duration::from_secs(10), x.command("xwininfo").arg("-root"))?;
        let root_id = root
            .split_whitespace()
            .find(|w| w.starts_with("0x"))
            .ok_or_else(|| Failure(format!("no root window id in xwininfo: {root}")))?
            .to_owned();
        x.xdotool(&["windowfocus", &root_id])?;
        std::thread::sleep(Duration::from_millis(500));
        window.focus(&x)?;
        let mut remote = Vec::new();
        let arrived = poll(Duration::from_secs(15), || {
            let output = output_within(
                Duration::from_secs(10),
                &mut in_x("timeout 5 xclip -selection clipboard -o"),
            )?;
            remote = output.stdout;
            Ok((remote == local_text.as_bytes()).then_some(()))
        })?;
        if arrived.is_none() {
            return Err(viewer.failure(format!(
                "set the local CLIPBOARD to {local_text:?} and focused the viewer; expected the session's \
                 `xclip -selection clipboard -o` to print it within 15 s; it printed {:?}",
                String::from_utf8_lossy(&remote)
            )));
        }
        viewer.wait_line("clipboard local->remote N bytes", Duration::from_secs(5), |l| {
            l.starts_with("clipboard local->remote ")
        })?;

        // Remote -> local.
        let remote_text = format!("from the session: ü 漢字 {}", std::process::id());
        let pid = run(
            Duration::from_secs(20),
            &mut in_x(&format!(
                "printf '%s' '{remote_text}' | xclip -quiet -selection clipboard -i >/dev/null 2>&1 & echo $!"
            )),
        )?;
        let _remote_owner = KillOnDrop {
            child: None,
            pid: Some(pid.trim().to_owned()),
        };
        let mut local = None;
        let arrived = poll(Duration::from_secs(15), || {
            local = x.clipboard()?;
            Ok((local.as_deref() == Some(remote_text.as_bytes())).then_some(()))
        })?;
        if arrived.is_none() {
            return Err(viewer.failure(format!(
                "set the session's CLIPBOARD to {remote_text:?}; expected the local `xclip -selection clipboard -o` \
                 to print it within 15 s; it printed {:?}",
                local.map(|l| String::from_utf8_lossy(&l).into_owned())
            )));
        }
        viewer.wait_line("clipboard remote->local N bytes", Duration::from_secs(5), |l| {
            l.starts_with("clipboard remote->local ")
        })?;
        println!("xrdp clipboard: both ways; viewer said {:?}", viewer.seen);
        Ok(())
    })
}

/// The viewer runs the session and the window on one thread: while connected, its process has
/// one thread (any other is listed by name).
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_viewer_runs_on_one_thread() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let (mut viewer, window) = connect(&x, &pin, &[])?;
        // Exercise it a little first: drawing, the pointer.
        let points = remote_background((1024, 768))?;
        assert_shows_desktop(&mut viewer, &x, &window, &points)?;
        x.xdotool(&["mousemove", "--window", &window.id, "500", "600"])?;
        std::thread::sleep(Duration::from_secs(2));
        let pid = viewer.pid();
        let mut threads = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let task = task?;
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            threads.push(format!("{} {}", task.file_name().to_string_lossy(), comm.trim()));
        }
        threads.sort();
        println!("viewer threads (tid name): {threads:?}");
        if threads.len() != 1 {
            return Err(viewer.failure(format!(
                "expected the viewer (pid {pid}) to have exactly 1 thread while connected; it has {}: {threads:?}",
                threads.len()
            )));
        }
        Ok(())
    })
}

/// With a video driver that has no connection descriptor to wait on (SDL's offscreen driver,
/// standing in for KMS/DRM, which has none either), the viewer falls back to looking every
/// 10 ms: it still connects, stays on one thread, and closes on SIGTERM.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_without_a_window_system_descriptor() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let args = [
            target(XRDP_PORT),
            "--pin".into(),
            pin.clone(),
            "--size".into(),
            "1024x768".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = [("SDL_VIDEODRIVER", "offscreen"), ("RUST_LOG", "viewer=info")];
        let mut viewer = Viewer::spawn_with_env(&x, &args, Some(XRDP_PASS), &env)?;
        viewer.wait_connected(CONNECT_TIMEOUT)?;
        std::thread::sleep(Duration::from_secs(2));
        if !viewer.stderr().contains("looking every 10ms") {
            return Err(viewer.failure("expected the viewer to say it falls back to looking every 10ms"));
        }
        let threads = std::fs::read_dir(format!("/proc/{}/task", viewer.pid()))?.count();
        if threads != 1 {
            return Err(viewer.failure(format!("expected 1 thread on the fallback path, found {threads}")));
        }
        viewer.terminate()?;
        viewer.wait_line("closed", Duration::from_secs(5), |l| l.trim() == "closed")?;
        match viewer.wait_exit(Duration::from_secs(5))? {
            Some(status) if status.success() => Ok(()),
            other => Err(viewer.failure(format!("after SIGTERM expected exit status 0, got {other:?}"))),
        }
    })
}

/// What every refusal must show: exit status 1, "refused" and the presented fingerprint on
/// stderr, and no `connected`. Returns stderr and the problems found.
fn refusal_problems(viewer: &Viewer, status: std::process::ExitStatus, pin: &str) -> (String, Vec<String>) {
    let stderr = viewer.stderr();
    let mut problems = Vec::new();
    if status.code() != Some(1) {
        problems.push(format!("exit status {status}, expected 1"));
    }
    if !stderr.to_lowercase().contains("refused") {
        problems.push("stderr does not say \"refused\"".to_owned());
    }
    if !stderr.contains(pin) {
        problems.push(format!("stderr lacks the presented fingerprint {pin}"));
    }
    if viewer.seen.iter().any(|l| l.starts_with("connected")) {
        problems.push("it printed `connected`".to_owned());
    }
    (stderr, problems)
}

/// A known-hosts file with another fingerprint for the server: the viewer refuses (exit 1) and
/// names both fingerprints; it never asks.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_changed_certificate_is_refused() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let dir = TempDir::new("changed")?;
        let known = dir.path.join("known_hosts");
        let wrong = (0..32)
            .map(|i| format!("{:02X}", i * 7 + 1))
            .collect::<Vec<_>>()
            .join(":");
        std::fs::write(&known, format!("# written by the test\n{XRDP_ADDR} {wrong}\n"))?;
        let known_arg = known.to_string_lossy().into_owned();
        let mut viewer = Viewer::spawn(&x, &[&target(XRDP_PORT), "--known-hosts", &known_arg], Some(XRDP_PASS))?;
        let (status, dialogs) = wait_exit_dismissing_dialogs(&mut viewer, &x, Duration::from_secs(30))?;
        let Some(status) = status else {
            let prompt = x.find_window(|name| name.contains("Unknown server"))?.is_some();
            return Err(viewer.failure(format!(
                "expected the viewer to exit (status 1) on a changed certificate within 30 s; it still runs{}; \
                 dialogs dismissed: {dialogs:?}",
                if prompt { " and shows the first-use prompt" } else { "" }
            )));
        };
        let (stderr, mut problems) = refusal_problems(&viewer, status, &pin);
        if !stderr.contains(&wrong) {
            problems.push(format!("stderr lacks the remembered fingerprint {wrong}"));
        }
        if !problems.is_empty() {
            return Err(viewer.failure(format!("changed certificate: {}", problems.join("; "))));
        }
        println!("changed certificate: exit 1; dialogs dismissed: {dialogs:?}; stderr:\n{stderr}");
        Ok(())
    })
}

/// An unknown server with `--on-first-use ask`: the prompt appears; Escape refuses (exit 1,
/// the fingerprint on stderr, nothing remembered).
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_first_use_prompt_escape_refuses() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let dir = TempDir::new("escape")?;
        let known = dir.path.join("known_hosts");
        std::fs::write(&known, "")?;
        let mut viewer = first_use_prompt(&x, &known, "Escape")?;
        let (status, dialogs) = wait_exit_dismissing_dialogs(&mut viewer, &x, Duration::from_secs(15))?;
        let Some(status) = status else {
            return Err(viewer.failure(format!(
                "pressed Escape in the first-use prompt; expected the viewer to exit within 15 s; dialogs dismissed: \
                 {dialogs:?}"
            )));
        };
        let (stderr, mut problems) = refusal_problems(&viewer, status, &pin);
        let remembered = std::fs::read_to_string(&known)?;
        if remembered.contains(XRDP_ADDR) {
            problems.push(format!("the known-hosts file now holds the server: {remembered:?}"));
        }
        if !problems.is_empty() {
            return Err(viewer.failure(format!("first-use prompt, Escape: {}", problems.join("; "))));
        }
        println!("first use, Escape: exit 1; dialogs dismissed: {dialogs:?}; stderr:\n{stderr}");
        Ok(())
    })
}

/// An unknown server with `--on-first-use ask`: Return in the prompt trusts it; the viewer
/// connects and the known-hosts file holds the server and its fingerprint.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_first_use_prompt_return_trusts() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let dir = TempDir::new("return")?;
        let known = dir.path.join("known_hosts");
        std::fs::write(&known, "")?;
        let mut viewer = first_use_prompt(&x, &known, "Return")?;
        viewer.wait_connected(CONNECT_TIMEOUT)?;
        let remembered = std::fs::read_to_string(&known)?;
        let holds = remembered.lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some(XRDP_ADDR)
                && words
                    .next()
                    .is_some_and(|fp| fp.trim_start_matches("sha256:").eq_ignore_ascii_case(&pin))
        });
        if !holds {
            return Err(viewer.failure(format!(
                "trusted on first use; expected the known-hosts file to hold `{XRDP_ADDR} {pin}`, it holds {remembered:?}"
            )));
        }
        println!("first use, Return: connected; known hosts:\n{remembered}");
        Ok(())
    })
}

/// Waits up to `timeout` for the viewer to exit, pressing Return in any message box it shows
/// meanwhile (an error box such as `Connection failed — async-rdp`: not the main window, not the
/// first-use prompt). The exit status, and for each box its title and whether stderr had said
/// anything before it was dismissed.
fn wait_exit_dismissing_dialogs(
    viewer: &mut Viewer,
    x: &Xvfb,
    timeout: Duration,
) -> TestResult<(Option<ExitStatus>, Vec<String>)> {
    let mut dialogs = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = viewer.wait_exit(Duration::from_millis(300))? {
            return Ok((Some(status), dialogs));
        }
        let dialog = x.find_window(|name| {
            name.contains("async-rdp") && !name.contains("127.0.0.1:") && !name.contains("Unknown server")
        })?;
        if let Some(dialog) = dialog {
            let stderr_before = viewer.stderr().lines().count();
            dialogs.push(format!(
                "{:?} (stderr had {stderr_before} lines before it was dismissed)",
                dialog.name
            ));
            std::thread::sleep(Duration::from_millis(300));
            x.xdotool(&["windowfocus", "--sync", &dialog.id])?;
            x.xdotool(&["key", "Return"])?;
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok((None, dialogs))
}

/// Starts the viewer with an empty known-hosts file and `--on-first-use ask`, waits for the
/// prompt, focuses it and presses `key`.
fn first_use_prompt(x: &Xvfb, known: &Path, key: &str) -> TestResult<Viewer> {
    let known_arg = known.to_string_lossy().into_owned();
    let mut viewer = Viewer::spawn(
        x,
        &[&target(XRDP_PORT), "--known-hosts", &known_arg, "--on-first-use", "ask"],
        Some(XRDP_PASS),
    )?;
    let prompt = focused_window(x, &mut viewer, "a window `Unknown server — async-rdp`", |name| {
        name.contains("Unknown server")
    })?;
    if !prompt.name.contains("async-rdp") {
        return Err(viewer.failure(format!(
            "the prompt's title is {:?}, expected `Unknown server — async-rdp`",
            prompt.name
        )));
    }
    x.xdotool(&["key", key])?;
    Ok(viewer)
}

/// Waits up to 30 s, while the viewer runs, for a window whose title `matches` (`what` names
/// it in a failure); lets it draw and settle, then gives it the keyboard (no window manager
/// here).
fn focused_window(x: &Xvfb, viewer: &mut Viewer, what: &str, matches: impl Fn(&str) -> bool) -> TestResult<Window> {
    let found = poll(Duration::from_secs(30), || {
        if viewer.wait_exit(Duration::ZERO)?.is_some() {
            return Ok(Some(None));
        }
        Ok(x.find_window(&matches)?.map(Some))
    })?;
    let window = match found {
        Some(Some(window)) => window,
        Some(None) => return Err(viewer.failure(format!("expected {what}; the viewer exited first"))),
        None => {
            return Err(viewer.failure(format!(
                "expected {what} within 30 s; windows: {:?}",
                x.windows().unwrap_or_default()
            )))
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    x.xdotool(&["windowfocus", "--sync", &window.id])?;
    Ok(window)
}

/// Started with no terminal and no password (as from a desktop menu), the viewer asks in its
/// window, whose title names the user and server: Escape gives up with a message that says so;
/// the password typed there, then Enter, connects; the password shows nowhere in its output.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_password_asked_in_the_window() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let target = target(XRDP_PORT);
        let args = [target.as_str(), "--pin", &pin, "--size", "1024x768"];
        let title = format!("Password for {XRDP_USER}@127.0.0.1");
        let prompt = format!("a window titled `{title} …`");
        let asking = |name: &str| name.starts_with(&title);

        let mut refused = Viewer::spawn(&x, &args, None)?;
        focused_window(&x, &mut refused, &prompt, asking)?;
        x.xdotool(&["key", "Escape"])?;
        let failed = refused
            .wait_exit(Duration::from_secs(10))?
            .is_some_and(|s| !s.success());
        if !failed || !refused.stderr().contains("password prompt was closed") {
            return Err(refused.failure("after Escape at the password prompt, expected a failure that says so"));
        }
        drop(refused);

        let mut viewer = Viewer::spawn(&x, &args, None)?;
        focused_window(&x, &mut viewer, &prompt, asking)?;
        x.xdotool(&["type", "--delay", "40", XRDP_PASS])?;
        x.xdotool(&["key", "Return"])?;
        let size = viewer.wait_connected(CONNECT_TIMEOUT)?;
        if size != (1024, 768) {
            return Err(viewer.failure(format!("expected `connected 1024x768`, got {size:?}")));
        }
        if viewer.context().contains(XRDP_PASS) {
            return Err(viewer.failure("the viewer printed the password"));
        }
        Ok(())
    })
}

/// A link loss: the test's proxy cuts the connection once; the viewer says `reconnecting N`,
/// then `reconnected WxH` (the desktop it got back), and shows the desktop again.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_reconnects_after_a_link_loss() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let proxy = Proxy::start(XRDP_ADDR)?;
        let (mut viewer, window) = connect_to(&x, &target(proxy.port), &pin, &["--reconnect-attempts", "5"])?;
        let points = remote_background((1024, 768))?;
        assert_shows_desktop(&mut viewer, &x, &window, &points)?;
        let cut = proxy.sever();
        if cut == 0 {
            return Err(viewer.failure("the proxy carried no connection to cut"));
        }
        let line = viewer.wait_line("reconnecting N", Duration::from_secs(30), |l| {
            l.starts_with("reconnecting ")
        })?;
        viewer.wait_line("reconnected 1024x768", Duration::from_secs(60), |l| {
            l.trim() == "reconnected 1024x768"
        })?;
        let window = viewer.window(&x, Duration::from_secs(10))?;
        let points = remote_background((1024, 768))?;
        assert_shows_desktop(&mut viewer, &x, &window, &points)?;
        println!(
            "reconnect: cut {cut} sockets; viewer said {line:?} then `reconnected`; {} connections through the proxy",
            proxy.accepted()
        );
        Ok(())
    })
}

/// SIGTERM closes the session gracefully: `closed`, exit status 0 within 5 s.
#[test]
#[ignore = "needs Xvfb and xrdp: cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1"]
fn xrdp_sigterm_closes_gracefully() -> TestResult {
    xrdp_test(|| {
        let pin = start_xrdp()?;
        let x = Xvfb::start()?;
        let (mut viewer, _window) = connect(&x, &pin, &[])?;
        std::thread::sleep(Duration::from_secs(1));
        viewer.terminate()?;
        viewer.wait_line("closed", Duration::from_secs(5), |l| l.trim() == "closed")?;
        match viewer.wait_exit(Duration::from_secs(5))? {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(viewer.failure(format!(
                "after SIGTERM and `closed`, expected exit status 0, got {status}"
            ))),
            None => Err(viewer.failure("after SIGTERM and `closed`, the viewer did not exit within 5 s")),
        }
    })
}

/// A directory of the test's own under the temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TestResult<TempDir> {
        let path = std::env::temp_dir().join(format!("viewer-xvfb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
