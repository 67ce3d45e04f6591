//! The viewer against real RDP servers, on its own X server: each test starts an `Xvfb` on a
//! free display (`:90` and up), runs `target/…/viewer` on it, drives it like a user would
//! (`xdotool`: pointer, keys, window size, focus; `xclip`: the clipboard) and looks at what it
//! shows (`xwd` of its window, parsed here) and at what the server got (files, the remote X
//! session's clipboard and screen size, GNOME's desktop log).
//!
//! The peers are the ones of `tests/interop` (see the top of `tests/interop/main.rs`):
//!
//! - **xrdp** 0.9 on 127.0.0.1:33890 (TLS), started or reused through
//!   `../shared/peers/start-xrdp.sh` (override the directory with `RDP_PEERS_SCRIPTS`). Its
//!   session is an Xorg server run by `rdpuser` (on display `:10`, unless another user's session
//!   took it); the tests look into it as that user (`in_x`, like `.ci/run`).
//! - **GNOME Remote Desktop** 43 on 127.0.0.1:33896 (NLA), through
//!   `../shared/peers/start-gnome-rd.sh`, in its `extend` mode.
//!
//! Every test here is `#[ignore]`d: run them with
//! `cargo test --release -p async-rdp-viewer -- --ignored --test-threads=1` (as `.ci/run` does),
//! as root (the peers' scripts and `runuser` need it), with `Xvfb`, `xdotool`, `xwd`,
//! `xdpyinfo`, `xclip` and `setxkbmap` installed. Then a missing peer or tool is a failure that
//! says what is missing, never a skip. The tests also take a lock, so they run one at a time
//! even without `--test-threads=1` (one xrdp session, one GNOME desktop).
//!
//! Failures say what was expected, what arrived, and end with the viewer's stdout lines and
//! the tail of its stderr.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod gnome;
#[path = "../../../tests/common/peer_desktops.rs"]
mod peer_desktops;
mod xrdp;

// ---------------------------------------------------------------------------------------------
// Failures that print as written (a `Box<dyn Error>` returned from a test prints its Debug form,
// which escapes the newlines of a stderr tail).

pub struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub type TestResult<T = ()> = Result<T, Failure>;

/// Fails with `message`.
fn fail<T>(message: impl Into<String>) -> TestResult<T> {
    Err(Failure(message.into()))
}

/// Holds the lock for a test: one viewer and one peer configuration at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A missing peer or tool: always a failure. These tests are `#[ignore]`d, so they run only when
/// asked for (`-- --ignored`), and then a skip would read as a pass.
fn missing(what: &str) -> Failure {
    Failure(format!(
        "{what}; these tests need the peers and X tools (see the top of viewer/tests/xvfb/main.rs)"
    ))
}

// ---------------------------------------------------------------------------------------------
// Commands.

/// Runs `command` to completion within `timeout` (through coreutils' `timeout`); its output,
/// whatever the exit status.
fn output_within(timeout: Duration, command: &mut Command) -> TestResult<Output> {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("timeout");
    wrapped
        .arg("-k")
        .arg("2")
        .arg(format!("{}", timeout.as_secs_f64()))
        .arg(&program)
        .args(&args);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.stdin(Stdio::null());
    wrapped
        .output()
        .map_err(|e| Failure(format!("cannot run {program:?}: {e}")))
}

/// Runs `command` and returns its stdout; an error with its stderr when it fails.
fn run(timeout: Duration, command: &mut Command) -> TestResult<String> {
    let shown = format!("{command:?}");
    let output = output_within(timeout, command)?;
    if !output.status.success() {
        return fail(format!(
            "`{shown}` failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            if output.status.code() == Some(124) {
                " (timed out)"
            } else {
                ""
            }
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Fails (as missing) when a program is not installed.
fn require_tool(program: &str) -> TestResult {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(missing(&format!("`{program}` is not installed")))
    }
}

/// A shell command in xrdp's X session, as its user — what `.ci/run`'s `in_x` does.
fn in_x(script: &str) -> Command {
    peer_desktops::in_session("rdpuser", script)
}

/// The SHA-256 fingerprint of a PEM certificate, `AB:CD:…`, as `openssl` prints it (and as
/// `.ci/run` pins it).
fn pin_of(pem: &str) -> TestResult<String> {
    let out = run(
        Duration::from_secs(10),
        Command::new("openssl").args(["x509", "-in", pem, "-noout", "-fingerprint", "-sha256"]),
    )
    .map_err(|e| missing(&format!("cannot read the certificate {pem}: {e:?}")))?;
    let pin = out
        .trim()
        .split_once('=')
        .map(|(_, fp)| fp.to_owned())
        .unwrap_or_default();
    if pin.len() != 95 {
        return fail(format!("unexpected openssl output for {pem}: {out:?}"));
    }
    Ok(pin)
}

/// A start script of the shared peers (`RDP_PEERS_SCRIPTS`, else `../shared/peers`).
fn peer_script(name: &str) -> TestResult<PathBuf> {
    let scripts = std::env::var_os("RDP_PEERS_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers"));
    let script = scripts.join(name);
    match script.exists() {
        true => Ok(script),
        false => Err(missing(&format!("no peer start script at {}", script.display()))),
    }
}

/// Runs a peer start script with `env`; a missing-peer failure when it fails.
fn start_peer(script: &str, env: &[(&str, &str)], what: &str) -> TestResult {
    let script = peer_script(script)?;
    let mut command = Command::new(&script);
    command.envs(env.iter().copied());
    let output = output_within(Duration::from_secs(600), &mut command)?;
    if !output.status.success() {
        return Err(missing(&format!(
            "{what} did not start ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )));
    }
    Ok(())
}

/// Polls `check` every 200 ms until it returns `Some` or `timeout` passes.
fn poll<T>(timeout: Duration, mut check: impl FnMut() -> TestResult<Option<T>>) -> TestResult<Option<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// The X server of a test.

/// An `Xvfb` of the test's own, killed on drop.
pub struct Xvfb {
    child: Child,
    display: u32,
}

impl Xvfb {
    /// Starts an `Xvfb` 1600x1000x24 on the first free display from `:90`.
    pub fn start() -> TestResult<Xvfb> {
        for tool in ["Xvfb", "xdotool", "xwd", "xdpyinfo", "xclip", "setxkbmap"] {
            require_tool(tool)?;
        }
        let mut last_error = String::new();
        for display in 90..190 {
            // Taken when its lock file names a live process; Xvfb replaces a stale lock and socket.
            let taken = std::fs::read_to_string(format!("/tmp/.X{display}-lock"))
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if taken {
                continue;
            }
            // -noreset: a server reset (when its last client leaves) would forget the keyboard
            // layout set with setxkbmap before the viewer connects.
            let mut child = Command::new("Xvfb")
                .arg(format!(":{display}"))
                .args(["-screen", "0", "1600x1000x24", "-nolisten", "tcp", "-noreset"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| missing(&format!("cannot start Xvfb: {e}")))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait()? {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    last_error = format!("Xvfb :{display} exited ({status}): {}", err.trim());
                    break;
                }
                let ready = Command::new("xdpyinfo")
                    .args(["-display", &format!(":{display}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    // Nothing reads its stderr from here on.
                    drop(child.stderr.take());
                    return Ok(Xvfb { child, display });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("Xvfb :{display} did not answer within 10 s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        fail(format!("no Xvfb could start on :90 to :189; last: {last_error}"))
    }

    /// `:N`.
    pub fn name(&self) -> String {
        format!(":{}", self.display)
    }

    /// `program` with `DISPLAY` set to this server, in a UTF-8 locale (xdotool decodes the text
    /// it types with it, xwininfo prints window names with it).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("DISPLAY", self.name()).env("LC_ALL", "C.UTF-8");
        command
    }

    /// The top-level windows with a name: `(id, name)`, from `xwininfo -root -children` (xdotool's
    /// `search --name` does not see the windows of SDL's message boxes, whose WM_NAME is a
    /// UTF8_STRING).
    pub fn windows(&self) -> TestResult<Vec<(String, String)>> {
        let out = run(
            Duration::from_secs(10),
            self.command("xwininfo").args(["-root", "-children"]),
        )?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let (id, rest) = line.split_once(' ')?;
                let name = rest.strip_prefix('"')?;
                let end = name.rfind("\": ")?;
                id.starts_with("0x").then(|| (id.to_owned(), name[..end].to_owned()))
            })
            .collect())
    }

    /// The first mapped top-level window whose name `matches`.
    pub fn find_window(&self, matches: impl Fn(&str) -> bool) -> TestResult<Option<Window>> {
        for (id, name) in self.windows()? {
            if !matches(&name) {
                continue;
            }
            let info = run(Duration::from_secs(10), self.command("xwininfo").args(["-id", &id]))?;
            if info.contains("Map State: IsViewable") {
                return Ok(Some(Window { id, name }));
            }
        }
        Ok(None)
    }

    /// Runs xdotool on this display; its stdout.
    pub fn xdotool(&self, args: &[&str]) -> TestResult<String> {
        run(Duration::from_secs(20), self.command("xdotool").args(args))
    }

    /// Sets the keyboard layout of this server (`us`, `de`, …).
    pub fn set_layout(&self, layout: &str) -> TestResult {
        run(
            Duration::from_secs(20),
            Command::new("setxkbmap").args(["-display", &self.name(), layout]),
        )?;
        Ok(())
    }

    /// The text in this server's CLIPBOARD selection (None when there is none).
    pub fn clipboard(&self) -> TestResult<Option<Vec<u8>>> {
        let output = output_within(
            Duration::from_secs(5),
            self.command("xclip").args(["-selection", "clipboard", "-o"]),
        )?;
        Ok(output.status.success().then_some(output.stdout))
    }
}

impl Drop for Xvfb {
    /// SIGTERM first, so that Xvfb removes its lock file and socket; SIGKILL after 3 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The viewer.

/// The viewer binary of this package.
fn viewer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_viewer"))
}

/// A running viewer: its stdout lines as they come, its stderr collected; killed on drop.
pub struct Viewer {
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    /// Every stdout line so far, as the reader thread got them.
    all: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

/// The output of the viewer started last, for failures raised away from it (see `with_evidence`).
type Outputs = (Arc<Mutex<Vec<String>>>, Arc<Mutex<String>>);
static LAST_VIEWER: Mutex<Option<Outputs>> = Mutex::new(None);

/// What a viewer said: its stdout lines and the last lines of its stderr.
fn describe(status: &str, stdout: &[String], stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n    ");
    format!(
        "\n  viewer ({status}) stdout: {stdout:?}\n  viewer stderr (last {} of {} lines):\n    {tail}",
        lines.len().min(25),
        lines.len()
    )
}

/// Runs a test body; a failure that does not show the viewer's output yet gets that of the
/// viewer started last.
fn with_evidence(body: impl FnOnce() -> TestResult) -> TestResult {
    *LAST_VIEWER.lock().unwrap_or_else(|p| p.into_inner()) = None;
    body().map_err(|failure| {
        let last = LAST_VIEWER.lock().unwrap_or_else(|p| p.into_inner()).take();
        match last {
            Some((stdout, stderr)) if !failure.0.contains("viewer stderr") => {
                let stdout = stdout.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let stderr = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Failure(format!(
                    "{}{}",
                    failure.0,
                    describe("the last one started", &stdout, &stderr)
                ))
            }
            _ => failure,
        }
    })
}

impl Viewer {
    /// Starts the viewer on `x` with `args`; the password goes through `RDP_PASSWORD` when given.
    pub fn spawn(x: &Xvfb, args: &[&str], password: Option<&str>) -> TestResult<Viewer> {
        Self::spawn_with_env(x, args, password, &[])
    }

    /// As [`Viewer::spawn`], with environment variables set (or overridden) last.
    pub fn spawn_with_env(x: &Xvfb, args: &[&str], password: Option<&str>, env: &[(&str, &str)]) -> TestResult<Viewer> {
        let bin = viewer_bin();
        if !bin.is_file() {
            return Err(missing(&format!("no viewer binary at {}", bin.display())));
        }
        let mut command = Command::new(&bin);
        command
            .args(args)
            .env("DISPLAY", x.name())
            .env("SDL_VIDEODRIVER", "x11")
            .env("SDL_AUDIODRIVER", "dummy")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("RDP_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = password {
            command.env("RDP_PASSWORD", password);
        }
        command.envs(env.iter().copied());
        let mut child = command
            .spawn()
            .map_err(|e| Failure(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (sender, lines) = std::sync::mpsc::channel();
        let all: Arc<Mutex<Vec<String>>> = Arc::default();
        let every = Arc::clone(&all);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                every.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
                let _ = sender.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => collected
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(&String::from_utf8_lossy(&buf)),
                }
            }
        });
        *LAST_VIEWER.lock().unwrap_or_else(|p| p.into_inner()) = Some((Arc::clone(&all), Arc::clone(&stderr)));
        Ok(Viewer {
            child,
            lines,
            seen: Vec::new(),
            all,
            stderr,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the viewer wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What the viewer said so far: its stdout lines and the last lines of its stderr.
    pub fn context(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let status = match self.status.or_else(|| self.child.try_wait().ok().flatten()) {
            Some(status) => format!("exited: {status}"),
            None => "still running".to_owned(),
        };
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner()).clone();
        describe(&status, &all, &self.stderr())
    }

    /// A failure: `message`, then what the viewer said.
    pub fn failure(&mut self, message: impl fmt::Display) -> Failure {
        Failure(format!("{message}{}", self.context()))
    }

    /// Waits for a stdout line that `matches` (lines before it are kept in `seen`); a failure
    /// naming `what` when the viewer exits or `timeout` passes first.
    pub fn wait_line(&mut self, what: &str, timeout: Duration, matches: impl Fn(&str) -> bool) -> TestResult<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(format!(
                        "expected `{what}` on stdout within {timeout:?}; it did not come"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Give the process a moment to be reaped, for its status.
                    let _ = self.wait_exit(Duration::from_secs(2));
                    return Err(self.failure(format!(
                        "expected `{what}` on stdout; the viewer closed its stdout first"
                    )));
                }
            }
        }
    }

    /// Waits for `connected WxH`; the size.
    pub fn wait_connected(&mut self, timeout: Duration) -> TestResult<(u32, u32)> {
        let line = self.wait_line("connected WxH", timeout, |l| l.starts_with("connected "))?;
        parse_size(line.trim_start_matches("connected ").trim())
            .ok_or_else(|| self.failure(format!("malformed line {line:?}")))
    }

    /// Waits up to `timeout` for the process to exit; its status, or None if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> TestResult<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> TestResult {
        run(
            Duration::from_secs(5),
            Command::new("kill").args(["-TERM", &self.pid().to_string()]),
        )?;
        Ok(())
    }

    /// The viewer's main window on `x` (its title names the host, `127.0.0.1:PORT — async-rdp`,
    /// unlike its message boxes), once it is mapped; waits up to `timeout`.
    pub fn window(&mut self, x: &Xvfb, timeout: Duration) -> TestResult<Window> {
        let found = poll(timeout, || {
            x.find_window(|name| name.contains("async-rdp") && name.contains("127.0.0.1:"))
        })?;
        found.ok_or_else(|| {
            self.failure(format!(
                "no mapped window titled `127.0.0.1:… async-rdp` on {} within {timeout:?}; windows: {:?}",
                x.name(),
                x.windows().unwrap_or_default()
            ))
        })
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `WxH`.
fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// A top-level window on the test's display.
#[derive(Debug, Clone)]
pub struct Window {
    pub id: String,
    pub name: String,
}

impl Window {
    /// Position and size (`xdotool getwindowgeometry --shell`).
    pub fn geometry(&self, x: &Xvfb) -> TestResult<Geometry> {
        Geometry::parse(&x.xdotool(&["getwindowgeometry", "--shell", &self.id])?)
    }

    /// What the window shows (`xwd -id`).
    pub fn capture(&self, x: &Xvfb) -> TestResult<Image> {
        let output = output_within(
            Duration::from_secs(20),
            x.command("xwd").args(["-silent", "-id", &self.id]),
        )?;
        if !output.status.success() {
            return fail(format!(
                "xwd -id {} failed ({}): {}",
                self.id,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Image::from_xwd(&output.stdout)
    }

    /// Gives the window the keyboard focus (no window manager: XSetInputFocus).
    pub fn focus(&self, x: &Xvfb) -> TestResult {
        x.xdotool(&["windowfocus", "--sync", &self.id])?;
        Ok(())
    }
}

/// `X=… Y=… WIDTH=… HEIGHT=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Geometry {
    /// Parses `xdotool getwindowgeometry --shell` output.
    pub fn parse(text: &str) -> TestResult<Geometry> {
        let field = |key: &str| -> Option<i64> {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        };
        match (field("X"), field("Y"), field("WIDTH"), field("HEIGHT")) {
            (Some(x), Some(y), Some(w), Some(h)) => Ok(Geometry {
                x: x as i32,
                y: y as i32,
                width: w as u32,
                height: h as u32,
            }),
            _ => fail(format!("unexpected xdotool geometry output: {text:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XWD images (what `xwd` writes: X11/XWDFile.h).

/// An RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<[u8; 3]>,
}

impl Image {
    /// Parses an XWD file: a header of 25 big-endian 32-bit fields (then the window name up to
    /// `header_size`), `ncolors` 12-byte colour entries, then the pixels as the X server gave
    /// them (`ZPixmap`, `byte_order`, `bits_per_pixel`, `bytes_per_line`), decoded with the
    /// TrueColor masks.
    pub fn from_xwd(data: &[u8]) -> TestResult<Image> {
        const FIELDS: usize = 25;
        if data.len() < FIELDS * 4 {
            return fail(format!("XWD: {} bytes, shorter than its header", data.len()));
        }
        let field = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
        let header_size = field(0) as usize;
        let (version, format, width, height) = (field(1), field(2), field(4), field(5));
        let (byte_order, bits_per_pixel, bytes_per_line, visual_class) =
            (field(7), field(11), field(12) as usize, field(13));
        let masks = [field(14), field(15), field(16)];
        let ncolors = field(19) as usize;
        if version != 7 {
            return fail(format!("XWD: file version {version}, expected 7"));
        }
        if format != 2 {
            return fail(format!("XWD: pixmap format {format}, expected 2 (ZPixmap)"));
        }
        // TrueColor (4) or DirectColor (5): pixels carry the colours themselves.
        if visual_class != 4 && visual_class != 5 {
            return fail(format!("XWD: visual class {visual_class}, expected TrueColor"));
        }
        if !matches!(bits_per_pixel, 16 | 24 | 32) {
            return fail(format!("XWD: {bits_per_pixel} bits per pixel not supported"));
        }
        let bytes_per_pixel = (bits_per_pixel / 8) as usize;
        if bytes_per_line < width as usize * bytes_per_pixel {
            return fail(format!("XWD: {bytes_per_line} bytes per line for {width} pixels"));
        }
        let start = header_size + ncolors * 12;
        let end = start + bytes_per_line * height as usize;
        if header_size < FIELDS * 4 || data.len() < end {
            return fail(format!(
                "XWD: {} bytes, expected {end} (header {header_size}, {ncolors} colours, {height} lines of {bytes_per_line})",
                data.len()
            ));
        }
        let channel = |value: u32, mask: u32| -> u8 {
            if mask == 0 {
                return 0;
            }
            let bits = mask.count_ones();
            let v = (value & mask) >> mask.trailing_zeros();
            if bits >= 8 {
                (v >> (bits - 8)) as u8
            } else {
                let max = (1u32 << bits) - 1;
                ((v * 255 + max / 2) / max) as u8
            }
        };
        let mut pixels = Vec::with_capacity(width as usize * height as usize);
        for row in data[start..end].chunks_exact(bytes_per_line) {
            for raw in row[..width as usize * bytes_per_pixel].chunks_exact(bytes_per_pixel) {
                let value = if byte_order == 0 {
                    raw.iter().rev().fold(0u32, |v, b| v << 8 | u32::from(*b))
                } else {
                    raw.iter().fold(0u32, |v, b| v << 8 | u32::from(*b))
                };
                pixels.push([
                    channel(value, masks[0]),
                    channel(value, masks[1]),
                    channel(value, masks[2]),
                ]);
            }
        }
        Ok(Image { width, height, pixels })
    }

    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        (x < self.width && y < self.height).then(|| self.pixels[(y * self.width + x) as usize])
    }
}

/// `#rrggbb`.
fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

fn close_to(got: [u8; 3], want: [u8; 3], tolerance: u8) -> bool {
    (0..3).all(|i| got[i].abs_diff(want[i]) <= tolerance)
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy the test can cut.

/// Forwards 127.0.0.1:`port` to an upstream address, one pair of threads per connection;
/// `sever` shuts every connection down (both sockets, both ways) and keeps accepting new ones.
pub struct Proxy {
    pub port: u16,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str) -> TestResult<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, list, count, stopping) = (upstream.to_owned(), sockets.clone(), accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                list.lock().unwrap_or_else(|p| p.into_inner()).extend([c3, s3]);
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Ok(Proxy {
            port,
            sockets,
            accepted,
            stop,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every connection open now; how many sockets were shut down.
    pub fn sever(&self) -> usize {
        let sockets = std::mem::take(&mut *self.sockets.lock().unwrap_or_else(|p| p.into_inner()));
        for socket in &sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
        sockets.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.sever();
    }
}

/// Copies `from` to `to` until either ends, then closes both ways.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// Checks of the harness itself.

/// Builds an XWD file as `xwd` writes one.
#[cfg(test)]
fn synthetic_xwd(width: u32, height: u32, bpp: u32, byte_order: u32, masks: [u32; 3], pixels: &[u32]) -> Vec<u8> {
    let name = b"test window\0";
    let header_size = 100 + name.len() as u32;
    let bytes_per_line = (width * bpp / 8).div_ceil(4) * 4;
    let fields = [
        header_size,
        7,
        2,
        24,
        width,
        height,
        0,
        byte_order,
        32,
        byte_order,
        32,
        bpp,
        bytes_per_line,
        4,
        masks[0],
        masks[1],
        masks[2],
        8,
        256,
        2, // ncolors: two colour entries to skip
        width,
        height,
        0,
        0,
        0,
    ];
    let mut data: Vec<u8> = fields.iter().flat_map(|f| f.to_be_bytes()).collect();
    data.extend_from_slice(name);
    data.extend([0xEE; 24]);
    for y in 0..height {
        let mut line = Vec::new();
        for x in 0..width {
            let v = pixels[(y * width + x) as usize];
            let bytes = v.to_le_bytes();
            let bytes = &bytes[..(bpp / 8) as usize];
            if byte_order == 0 {
                line.extend_from_slice(bytes);
            } else {
                line.extend(bytes.iter().rev());
            }
        }
        line.resize(bytes_per_line as usize, 0x55);
        data.extend(line);
    }
    data
}

#[test]
fn xwd_32bpp_lsb_first() {
    let masks = [0xff0000, 0x00ff00, 0x0000ff];
    let data = synthetic_xwd(
        3,
        2,
        32,
        0,
        masks,
        &[0x2e5e8e, 0x000000, 0xffffff, 0x123456, 0x2e8e8e, 0xabcdef],
    );
    let image = Image::from_xwd(&data).unwrap();
    assert_eq!((image.width, image.height), (3, 2));
    assert_eq!(image.pixel(0, 0), Some([0x2e, 0x5e, 0x8e]));
    assert_eq!(image.pixel(2, 0), Some([0xff, 0xff, 0xff]));
    assert_eq!(image.pixel(0, 1), Some([0x12, 0x34, 0x56]));
    assert_eq!(image.pixel(2, 1), Some([0xab, 0xcd, 0xef]));
    assert_eq!(image.pixel(3, 0), None);
}

#[test]
fn xwd_32bpp_msb_first_and_24bpp() {
    let masks = [0xff0000, 0x00ff00, 0x0000ff];
    let image = Image::from_xwd(&synthetic_xwd(2, 1, 32, 1, masks, &[0x2e5e8e, 0x010203])).unwrap();
    assert_eq!(image.pixels, vec![[0x2e, 0x5e, 0x8e], [1, 2, 3]]);
    // 24 bpp, lines padded to 4 bytes.
    let image = Image::from_xwd(&synthetic_xwd(3, 2, 24, 0, masks, &[1, 2, 3, 0x2e5e8e, 5, 0xff0000])).unwrap();
    assert_eq!(image.pixel(0, 1), Some([0x2e, 0x5e, 0x8e]));
    assert_eq!(image.pixel(2, 1), Some([0xff, 0, 0]));
}

#[test]
fn xwd_16bpp_rgb565_and_bgr_masks() {
    // RGB 565: full red, full green, full blue, #2e5e8e rounded.
    let rgb565 = |r: u32, g: u32, b: u32| (r >> 3) << 11 | (g >> 2) << 5 | b >> 3;
    let image = Image::from_xwd(&synthetic_xwd(
        4,
        1,
        16,
        0,
        [0xf800, 0x07e0, 0x001f],
        &[
            rgb565(255, 0, 0),
            rgb565(0, 255, 0),
            rgb565(0, 0, 255),
            rgb565(0x2e, 0x5e, 0x8e),
        ],
    ))
    .unwrap();
    assert_eq!(&image.pixels[..3], &[[255, 0, 0], [0, 255, 0], [0, 0, 255]]);
    assert!(
        close_to(image.pixels[3], [0x2e, 0x5e, 0x8e], 6),
        "{:?}",
        image.pixels[3]
    );
    // BGR masks.
    let image = Image::from_xwd(&synthetic_xwd(1, 1, 32, 0, [0xff, 0xff00, 0xff0000], &[0x8e5e2e])).unwrap();
    assert_eq!(image.pixels, vec![[0x2e, 0x5e, 0x8e]]);
}

#[test]
fn xwd_rejects_truncated_and_foreign_files() {
    let masks = [0xff0000, 0x00ff00, 0x0000ff];
    let data = synthetic_xwd(3, 2, 32, 0, masks, &[0; 6]);
    assert!(Image::from_xwd(&data[..data.len() - 1]).is_err());
    assert!(Image::from_xwd(&data[..50]).is_err());
    let mut other = data.clone();
    other[7] = 6; // file version
    assert!(Image::from_xwd(&other).is_err());
}

#[test]
fn geometry_and_size_parsing() {
    let g = Geometry::parse("WINDOW=2097154\nX=10\nY=-3\nWIDTH=1024\nHEIGHT=768\nSCREEN=0\n").unwrap();
    assert_eq!(
        g,
        Geometry {
            x: 10,
            y: -3,
            width: 1024,
            height: 768
        }
    );
    assert!(Geometry::parse("nothing").is_err());
    assert_eq!(parse_size("1000x700"), Some((1000, 700)));
    assert_eq!(parse_size("1000x"), None);
}

/// The proxy forwards both ways, and `sever` ends the connections it carries.
#[test]
fn proxy_forwards_and_severs() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = upstream.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in upstream.incoming() {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(&addr).unwrap();
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.sever(), 2);
    let mut rest = Vec::new();
    // EOF (or a reset) once severed.
    let _ = client.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // Still accepting.
    let mut again = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    again.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    again.write_all(b"pong").unwrap();
    again.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

/// The XWD parser on a real capture: an Xvfb root set to the xrdp blue with `xsetroot`.
#[test]
#[ignore = "needs Xvfb, xwd and xsetroot: cargo test --release -p async-rdp-viewer -- --ignored"]
fn xwd_of_a_real_xvfb_root() -> TestResult {
    let _serial = serial();
    require_tool("xsetroot")?;
    let x = Xvfb::start()?;
    run(
        Duration::from_secs(10),
        x.command("xsetroot").args(["-solid", "#2e5e8e"]),
    )?;
    let output = output_within(Duration::from_secs(20), x.command("xwd").args(["-silent", "-root"]))?;
    let image = Image::from_xwd(&output.stdout)?;
    assert_eq!((image.width, image.height), (1600, 1000));
    for (px, py) in [(0, 0), (799, 499), (1599, 999)] {
        assert_eq!(image.pixel(px, py), Some([0x2e, 0x5e, 0x8e]), "root pixel ({px},{py})");
    }
    Ok(())
}
