//! `ironrdp-peer`: a loopback-only RDP server on `ironrdp-server` 0.13, for interop tests.
//!
//! Events go to stdout as one JSON object per line (flushed after each line); commands come
//! from stdin, one per line. Logs (`RUST_LOG`) go to stderr. See README.md for the protocol.

mod egfx;
mod sound;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context as _, Result};
use ironrdp_cliprdr::backend::{ClipboardMessage, CliprdrBackend, CliprdrBackendFactory};
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest, FileContentsResponse,
    FormatDataRequest, FormatDataResponse, LockDataId, OwnedFormatDataResponse,
};
use ironrdp_displaycontrol::pdu::DisplayControlMonitorLayout;
use ironrdp_pdu::rdp::capability_sets::{server_codecs_capabilities, BitmapCodecs, CodecProperty};
use ironrdp_server::tokio_rustls::{rustls, TlsAcceptor};
use ironrdp_server::{
    BitmapUpdate, CliprdrServerFactory, CredentialDecision, CredentialValidationError, CredentialValidator,
    Credentials, DesktopSize, DisplayUpdate, KeyboardEvent, MouseEvent, PixelFormat, RdpServer, RdpServerDisplay,
    RdpServerDisplayUpdates, RdpServerInputHandler, ServerEvent, ServerEventSender,
};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

/// The largest width or height accepted for the desktop.
const MAX_DIMENSION: u16 = 8192;

/// The largest width or height of the clipboard test image (`clipboard-image`).
const MAX_CLIPBOARD_IMAGE_DIMENSION: u16 = 2048;

const USAGE: &str = "\
usage: ironrdp-peer [options]
  --port N               TCP port on the bind address; 0 = ephemeral (default 0)
  --bind IP              loopback address to listen on (default 127.0.0.1; others refused)
  --security tls|hybrid  TLS only, or NLA (CredSSP/NTLM over TLS) (default tls)
  --user U --password P  the account; required for hybrid, optional for tls
  --check-credentials    tls only: refuse a logon whose user/password differ from --user/--password
  --width W --height H   initial desktop size (default 1024x768)
  --codecs LIST          comma-separated codecs the server offers, e.g. remotefx,qoi,qoiz or ''
                         (none); 'default' = ironrdp-server's default (all); entries may be
                         name:on / name:off (default: default)
  --key ecdsa|rsa        certificate key type (default ecdsa, P-256; rsa = 2048-bit)
  --sound pcm|adpcm      the audio format streamed, of the two offered: 16-bit PCM 44.1 kHz
                         stereo, or IMA ADPCM 22.05 kHz stereo (default pcm)
  --egfx MODE            send the test card through the graphics pipeline (MS-RDPEGFX) when
                         the client opens it, as avc420 (OpenH264), planar or uncompressed;
                         no fast-path bitmaps are sent then
  --exit-on-eof          exit when stdin reaches end of file (for test harnesses)
  -h, --help             this text
stdin commands: 'resize W H', 'clipboard-text TEXT', 'clipboard-image W H', 'tone HZ MS', 'quit'";

/// Writes one JSON event line to stdout and flushes it. Never prints a password: no caller
/// passes one.
fn emit(event: Value) {
    let line = event.to_string();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // If stdout is gone there is nobody to tell; keep serving.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Security {
    Tls,
    Hybrid,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyType {
    Ecdsa,
    Rsa,
}

struct Options {
    bind: IpAddr,
    port: u16,
    security: Security,
    user: Option<String>,
    password: Option<String>,
    check_credentials: bool,
    width: u16,
    height: u16,
    /// `None`: ironrdp-server's default configuration.
    codecs: Option<String>,
    key: KeyType,
    sound: sound::SoundFormat,
    /// `--egfx`: the card goes through the graphics pipeline in this codec.
    egfx: Option<egfx::Mode>,
    exit_on_eof: bool,
}

fn parse_dimension(name: &str, text: &str) -> Result<u16> {
    let value: u16 = text
        .parse()
        .with_context(|| format!("{name}: not a number: {text:?}"))?;
    if value == 0 || value > MAX_DIMENSION {
        bail!("{name} must be in 1..={MAX_DIMENSION}, not {value}");
    }
    Ok(value)
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        security: Security::Tls,
        user: None,
        password: None,
        check_credentials: false,
        width: 1024,
        height: 768,
        codecs: None,
        key: KeyType::Ecdsa,
        sound: sound::SoundFormat::Pcm,
        egfx: None,
        exit_on_eof: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => o.port = value()?.parse().context("--port: not a port number")?,
            "--bind" => {
                let text = value()?;
                o.bind = text
                    .parse()
                    .with_context(|| format!("--bind: not an IP address: {text:?}"))?;
            }
            "--security" => {
                o.security = match value()?.as_str() {
                    "tls" => Security::Tls,
                    "hybrid" | "nla" => Security::Hybrid,
                    other => bail!("--security takes tls or hybrid, not {other:?}"),
                }
            }
            "--user" => o.user = Some(value()?),
            "--password" => o.password = Some(value()?),
            "--check-credentials" => o.check_credentials = true,
            "--width" => o.width = parse_dimension("--width", &value()?)?,
            "--height" => o.height = parse_dimension("--height", &value()?)?,
            "--codecs" => o.codecs = Some(value()?),
            "--key" => {
                o.key = match value()?.as_str() {
                    "ecdsa" => KeyType::Ecdsa,
                    "rsa" => KeyType::Rsa,
                    other => bail!("--key takes ecdsa or rsa, not {other:?}"),
                }
            }
            "--sound" => {
                let text = value()?;
                o.sound = sound::SoundFormat::parse(&text)
                    .with_context(|| format!("--sound takes pcm or adpcm, not {text:?}"))?;
            }
            "--egfx" => o.egfx = Some(egfx::Mode::parse(&value()?)?),
            "--exit-on-eof" => o.exit_on_eof = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if !o.bind.is_loopback() {
        bail!("refusing to listen on {}: only loopback addresses are allowed", o.bind);
    }
    if o.security == Security::Hybrid && (o.user.is_none() || o.password.is_none()) {
        bail!("--security hybrid needs --user and --password");
    }
    if o.check_credentials && (o.security != Security::Tls || o.user.is_none() || o.password.is_none()) {
        bail!("--check-credentials needs --security tls, --user and --password");
    }
    Ok(o)
}

/// The codec names ironrdp-pdu 0.9's `server_codecs_capabilities` knows (with ironrdp-server's
/// default features `qoi` and `qoiz`).
const KNOWN_CODECS: [&str; 3] = ["remotefx", "qoi", "qoiz"];

/// Turns `--codecs` into the configuration strings for `server_codecs_capabilities`.
///
/// That function turns every codec ON unless told `name:off`, so a plain list is made exact
/// here: listed names become `name:on`, every other known codec `name:off`. Entries that
/// already say `:on` / `:off` pass through. `None` or `"default"` gives `[]` (all on).
fn codec_config(list: Option<&str>) -> Vec<String> {
    let list = match list {
        None => return Vec::new(),
        Some(list) if list.trim() == "default" => return Vec::new(),
        Some(list) => list,
    };
    let entries: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut config: Vec<String> = Vec::new();
    for known in KNOWN_CODECS {
        let mentioned = entries
            .iter()
            .any(|e| *e == known || e.split_once(':').is_some_and(|(name, _)| name == known));
        if !mentioned {
            config.push(format!("{known}:off"));
        }
    }
    for entry in entries {
        if entry.contains(':') {
            config.push(entry.to_owned());
        } else {
            config.push(format!("{entry}:on"));
        }
    }
    config
}

/// The codecs in the server's Bitmap Codecs capability, by name, for the `listening` event.
fn codec_list(codecs: &BitmapCodecs) -> Vec<&'static str> {
    codecs
        .0
        .iter()
        .map(|codec| match codec.property {
            CodecProperty::RemoteFx(_) => "remotefx",
            CodecProperty::ImageRemoteFx(_) => "image-remotefx",
            CodecProperty::Qoi => "qoi",
            CodecProperty::QoiZ => "qoiz",
            CodecProperty::NsCodec(_) => "nscodec",
            _ => "other",
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Display: the test card, resizes.

/// State shared by the display handler, the stdin commands and the accept loop.
struct Shared {
    /// The size sessions are negotiated at and frames are drawn at (what `size()` returns).
    current: (u16, u16),
    /// The size asked for last; differs from `current` only while a resize waits for a
    /// connecting client to become active, or for a reactivation in progress to finish.
    wanted: (u16, u16),
    /// The sender of the active session's display-update stream.
    session: Option<mpsc::UnboundedSender<DisplayUpdate>>,
    /// A client is connected (from accept until `run_connection` returns).
    connected: bool,
    /// A resize was asked for; report it when the reactivated session has its frame.
    resize_pending: bool,
    /// A `DisplayUpdate::Resize` was sent to the session and it has not reactivated yet. The
    /// reactivation is negotiated at that resize's size (`current`), so later resizes wait
    /// for `updates()` rather than change `current` under it.
    in_flight: bool,
}

#[derive(Clone)]
struct SharedHandle(Arc<Mutex<Shared>>);

impl SharedHandle {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding this lock leaves plain data behind; carry on with it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a new desktop size: applied at once to an active session (deactivation-
    /// reactivation), at the next activation of a connecting client, or immediately when no
    /// client is connected.
    fn resize(&self, width: u16, height: u16) {
        let mut s = self.lock();
        s.wanted = (width, height);
        if s.in_flight {
            // Applied by `updates()` when the reactivation in progress is done.
            s.resize_pending = true;
            return;
        }
        let size = DesktopSize { width, height };
        if let Some(tx) = &s.session {
            if tx.send(DisplayUpdate::Resize(size)).is_ok() {
                s.current = (width, height);
                s.in_flight = true;
                s.resize_pending = true;
                return;
            }
        }
        if s.connected {
            // Mid connection sequence (or between deactivation and reactivation): `updates()`
            // will send the resize as soon as the session is active.
            s.resize_pending = true;
            return;
        }
        s.current = (width, height);
        drop(s);
        emit(json!({"event": "resized", "width": width, "height": height, "active": false}));
    }

    fn connection_started(&self) {
        self.lock().connected = true;
    }

    fn connection_ended(&self) {
        let mut s = self.lock();
        s.connected = false;
        s.session = None;
        s.in_flight = false;
        let pending = std::mem::take(&mut s.resize_pending) || s.wanted != s.current;
        s.current = s.wanted;
        let (width, height) = s.current;
        drop(s);
        if pending {
            emit(json!({"event": "resized", "width": width, "height": height, "active": false}));
        }
    }
}

fn full_frame(width: u16, height: u16) -> Result<BitmapUpdate> {
    let w = NonZeroU16::new(width).context("zero width")?;
    let h = NonZeroU16::new(height).context("zero height")?;
    let stride = NonZeroUsize::new(usize::from(width) * 4).context("zero stride")?;
    Ok(BitmapUpdate {
        x: 0,
        y: 0,
        width: w,
        height: h,
        // B, G, R, X in memory: what IronRDP's uncompressed surface path (codec id 0) assumes
        // on the client side, and accepted by every ironrdp-server encoder.
        format: PixelFormat::BgrX32,
        data: ironrdp_peer::pattern_bgrx(width, height).into(),
        stride,
    })
}

struct PatternDisplay {
    shared: SharedHandle,
    /// With `--egfx`: the card goes through the graphics pipeline, not as a fast-path bitmap.
    egfx: Option<egfx::EgfxHandle>,
}

struct PatternUpdates {
    rx: mpsc::UnboundedReceiver<DisplayUpdate>,
}

#[async_trait::async_trait]
impl RdpServerDisplayUpdates for PatternUpdates {
    async fn next_update(&mut self) -> Result<Option<DisplayUpdate>> {
        // `recv` is cancel-safe, as ironrdp-server requires.
        Ok(self.rx.recv().await)
    }
}

#[async_trait::async_trait]
impl RdpServerDisplay for PatternDisplay {
    async fn size(&mut self) -> DesktopSize {
        let (width, height) = self.shared.lock().current;
        DesktopSize { width, height }
    }

    /// Called by ironrdp-server each time a session becomes active (first activation and
    /// every reactivation after a resize).
    async fn updates(&mut self) -> Result<Box<dyn RdpServerDisplayUpdates>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = self.shared.lock();
        s.in_flight = false;
        if s.wanted != s.current {
            // A resize arrived while this client was connecting: the session was negotiated at
            // `current`, so resize it now; the reactivation comes back here with the frame.
            let (width, height) = s.wanted;
            s.current = s.wanted;
            s.in_flight = true;
            s.resize_pending = true;
            let _ = tx.send(DisplayUpdate::Resize(DesktopSize { width, height }));
            s.session = Some(tx);
            return Ok(Box::new(PatternUpdates { rx }));
        }
        let (width, height) = s.current;
        match &self.egfx {
            // The pipeline sends the card once the client has opened it (or now, on a resize).
            Some(egfx) => egfx.activated(width, height),
            None => {
                let _ = tx.send(DisplayUpdate::Bitmap(full_frame(width, height)?));
            }
        }
        s.session = Some(tx);
        let report_resize = std::mem::take(&mut s.resize_pending);
        drop(s);
        emit(json!({"event": "activated", "width": width, "height": height}));
        if report_resize {
            emit(json!({"event": "resized", "width": width, "height": height, "active": true}));
        }
        Ok(Box::new(PatternUpdates { rx }))
    }

    /// A Display Control (MS-RDPEDISP) monitor layout from the client: reported, and the primary
    /// monitor's size applied like a `resize` command.
    fn request_layout(&mut self, layout: DisplayControlMonitorLayout) {
        let monitors = layout.monitors();
        let Some(primary) = monitors.iter().find(|m| m.is_primary()).or_else(|| monitors.first()) else {
            return;
        };
        let (width, height) = primary.dimensions();
        emit(json!({
            "event": "layout_request",
            "width": width,
            "height": height,
            "monitors": monitors.len(),
        }));
        match (u16::try_from(width), u16::try_from(height)) {
            (Ok(w @ 1..=MAX_DIMENSION), Ok(h @ 1..=MAX_DIMENSION)) => self.shared.resize(w, h),
            _ => emit(json!({"event": "error", "message": format!("layout {width}x{height} ignored")})),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input.

struct JsonInput;

impl RdpServerInputHandler for JsonInput {
    fn keyboard(&mut self, event: KeyboardEvent) {
        let line = match event {
            KeyboardEvent::Pressed { code, extended } => {
                json!({"event": "key", "code": code, "extended": extended, "pressed": true})
            }
            KeyboardEvent::Released { code, extended } => {
                json!({"event": "key", "code": code, "extended": extended, "pressed": false})
            }
            KeyboardEvent::UnicodePressed(code) => unicode_event(code, true),
            KeyboardEvent::UnicodeReleased(code) => unicode_event(code, false),
            KeyboardEvent::Synchronize(flags) => {
                // TS_SYNC_EVENT toggle flags: 1 scroll lock, 2 num lock, 4 caps lock, 8 kana lock.
                let bits = flags.bits();
                json!({
                    "event": "sync",
                    "flags": bits,
                    "scroll_lock": bits & 0x01 != 0,
                    "num_lock": bits & 0x02 != 0,
                    "caps_lock": bits & 0x04 != 0,
                    "kana_lock": bits & 0x08 != 0,
                })
            }
        };
        emit(line);
    }

    fn mouse(&mut self, event: MouseEvent) {
        let button = |name: &str, pressed: bool| json!({"event": "mouse_button", "button": name, "pressed": pressed});
        let line = match event {
            MouseEvent::Move { x, y } => json!({"event": "mouse_move", "x": x, "y": y}),
            MouseEvent::LeftPressed => button("left", true),
            MouseEvent::LeftReleased => button("left", false),
            MouseEvent::RightPressed => button("right", true),
            MouseEvent::RightReleased => button("right", false),
            MouseEvent::MiddlePressed => button("middle", true),
            MouseEvent::MiddleReleased => button("middle", false),
            MouseEvent::Button4Pressed => button("x1", true),
            MouseEvent::Button4Released => button("x1", false),
            MouseEvent::Button5Pressed => button("x2", true),
            MouseEvent::Button5Released => button("x2", false),
            MouseEvent::VerticalScroll { value } => json!({"event": "wheel", "vertical": true, "delta": value}),
            MouseEvent::Scroll { x, y } => json!({"event": "scroll", "x": x, "y": y}),
            MouseEvent::RelMove { x, y } => json!({"event": "mouse_rel", "dx": x, "dy": y}),
        };
        emit(line);
    }
}

fn unicode_event(code: u16, pressed: bool) -> Value {
    let mut v = json!({"event": "unicode", "code": code, "pressed": pressed});
    // A lone UTF-16 unit; surrogate halves have no char of their own.
    if let Some(c) = char::from_u32(u32::from(code)) {
        v["char"] = Value::String(c.to_string());
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Clipboard (CLIPRDR): the server's own clipboard, set by stdin commands, and the client's,
// fetched and reported as soon as the client announces it.

/// `CF_DIB`, `CF_DIBV5` and `CF_UNICODETEXT` as plain numbers, for matching.
const CF_DIB: u32 = 8;
const CF_DIBV5: u32 = 17;
const CF_UNICODETEXT: u32 = 13;

/// What the server's clipboard holds: one format and its data, as sent to the client.
#[derive(Debug, Clone)]
struct ServerClipboard {
    format: ClipboardFormatId,
    data: Vec<u8>,
}

/// Clipboard state shared by the backend of the current connection, the stdin commands and the
/// accept loop.
#[derive(Debug, Default)]
struct ClipState {
    /// Into ironrdp-server's event loop (set once, when the server is built).
    sender: Option<mpsc::UnboundedSender<ServerEvent>>,
    /// The server's clipboard, kept across connections.
    content: Option<ServerClipboard>,
    /// The current connection's channel is ready: the client sent its first Format List.
    /// Only then are format lists sent (ironrdp-server dispatches events only while a
    /// connection runs, so anything sent earlier would reach the next client too early).
    ready: bool,
}

#[derive(Clone, Debug, Default)]
struct ClipHandle(Arc<Mutex<ClipState>>);

impl ClipHandle {
    fn lock(&self) -> MutexGuard<'_, ClipState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, message: ClipboardMessage) {
        if let Some(sender) = &self.lock().sender {
            // Gone only when the server is: nobody to tell.
            let _ = sender.send(ServerEvent::Clipboard(message));
        }
    }

    /// Sends the Format List of the server's clipboard, if the channel is ready.
    fn offer_if_ready(&self) {
        let s = self.lock();
        let (true, Some(content)) = (s.ready, &s.content) else {
            return;
        };
        let format = content.format;
        if let Some(sender) = &s.sender {
            let _ = sender.send(ServerEvent::Clipboard(ClipboardMessage::SendInitiateCopy(vec![
                ClipboardFormat::new(format),
            ])));
        }
        drop(s);
        emit(json!({"event": "clipboard_offered", "formats": [format.value()]}));
    }

    /// Replaces the server's clipboard (a copy on the server) and offers it.
    fn set(&self, content: ServerClipboard) {
        self.lock().content = Some(content);
        self.offer_if_ready();
    }

    fn connection_ended(&self) {
        self.lock().ready = false;
    }
}

/// Builds one backend per connection; ironrdp-server hands it its event sender once.
struct ClipFactory {
    clip: ClipHandle,
}

impl CliprdrBackendFactory for ClipFactory {
    fn build_cliprdr_backend(&self) -> Box<dyn CliprdrBackend> {
        self.clip.lock().ready = false;
        Box::new(ClipBackend {
            clip: self.clip.clone(),
            requested: None,
        })
    }
}

impl ServerEventSender for ClipFactory {
    fn set_sender(&mut self, sender: mpsc::UnboundedSender<ServerEvent>) {
        self.clip.lock().sender = Some(sender);
    }
}

impl CliprdrServerFactory for ClipFactory {}

/// The CLIPRDR backend of one connection. Its callbacks run inside ironrdp-server's channel
/// processing; what it sends goes through the server's event queue.
#[derive(Debug)]
struct ClipBackend {
    clip: ClipHandle,
    /// The format asked of the client and not yet answered.
    requested: Option<ClipboardFormatId>,
}

ironrdp_core::impl_as_any!(ClipBackend);

fn clipboard_error(message: impl Into<String>, format: Option<ClipboardFormatId>) {
    emit(json!({
        "event": "clipboard_error",
        "message": message.into(),
        "format": format.map(|f| f.value()),
    }));
}

impl ClipBackend {
    fn report_data(&self, format: ClipboardFormatId, data: &[u8]) {
        match format.value() {
            CF_UNICODETEXT => match ironrdp_peer::text_from_utf16le(data) {
                Ok(text) => emit(json!({"event": "clipboard_text", "text": text})),
                Err(e) => clipboard_error(e, Some(format)),
            },
            CF_DIB | CF_DIBV5 => match ironrdp_peer::rgba_from_dib(data) {
                Ok(image) => emit(json!({
                    "event": "clipboard_image",
                    "width": image.width,
                    "height": image.height,
                    "rgba_fnv1a64": format!("{:016x}", ironrdp_peer::fnv1a64(&image.rgba)),
                    "format": format.value(),
                    "bpp": image.bpp,
                    "top_down": image.top_down,
                    "bytes": data.len(),
                })),
                Err(e) => clipboard_error(e, Some(format)),
            },
            other => clipboard_error(format!("data of format {other} is not decoded"), Some(format)),
        }
    }
}

impl CliprdrBackend for ClipBackend {
    fn temporary_directory(&self) -> &str {
        // Only a client sends its temporary directory.
        ""
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        // Long format names are always added by ironrdp-cliprdr; no files, no locking.
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {
        self.clip.lock().ready = true;
        emit(json!({"event": "clipboard_ready"}));
        self.clip.offer_if_ready();
    }

    fn on_request_format_list(&mut self) {
        // Only a client is asked for its format list (on Monitor Ready).
    }

    fn on_format_list_response(&mut self, ok: bool) {
        emit(json!({"event": "clipboard_offer_response", "ok": ok}));
    }

    fn on_process_negotiated_capabilities(&mut self, capabilities: ClipboardGeneralCapabilityFlags) {
        log::debug!("clipboard capabilities: {capabilities:?}");
    }

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        let ids: Vec<u32> = available_formats.iter().map(|f| f.id().value()).collect();
        let names: Vec<Option<&str>> = available_formats.iter().map(|f| f.name().map(|n| n.value())).collect();
        emit(json!({"event": "clipboard_formats", "formats": ids, "names": names}));
        // Text first; of the images the plain DIB (the simplest, and what every writer offers).
        let wanted = [CF_UNICODETEXT, CF_DIB, CF_DIBV5]
            .into_iter()
            .find(|id| ids.contains(id))
            .map(ClipboardFormatId::new);
        self.requested = wanted;
        if let Some(format) = wanted {
            self.clip.send(ClipboardMessage::SendInitiatePaste(format));
        }
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        let data = self
            .clip
            .lock()
            .content
            .as_ref()
            .filter(|c| c.format == request.format)
            .map(|c| c.data.clone());
        emit(json!({
            "event": "clipboard_request",
            "format": request.format.value(),
            "answered": data.is_some(),
        }));
        let response = match data {
            Some(data) => OwnedFormatDataResponse::new_data(data),
            None => OwnedFormatDataResponse::new_error(),
        };
        self.clip.send(ClipboardMessage::SendFormatData(response));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let Some(format) = self.requested.take() else {
            clipboard_error("format data that was not asked for", None);
            return;
        };
        if response.is_error() {
            clipboard_error("the client could not provide the data", Some(format));
            return;
        }
        self.report_data(format, response.data());
    }

    fn on_file_contents_request(&mut self, request: FileContentsRequest) {
        // No file lists are offered, so there is nothing to read from.
        self.clip.send(ClipboardMessage::SendFileContentsResponse(
            FileContentsResponse::new_error(request.stream_id),
        ));
    }

    fn on_file_contents_response(&mut self, _response: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _data_id: LockDataId) {}

    fn on_unlock(&mut self, _data_id: LockDataId) {}
}

fn clipboard_text_command(text: &str, clip: &ClipHandle) {
    let mut data: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    data.extend_from_slice(&[0, 0]);
    emit(json!({"event": "clipboard_set", "format": CF_UNICODETEXT, "text": text}));
    clip.set(ServerClipboard {
        format: ClipboardFormatId::CF_UNICODETEXT,
        data,
    });
}

fn clipboard_image_command(width: &str, height: &str, clip: &ClipHandle) -> Result<()> {
    let parse = |name: &str, text: &str| -> Result<u32> {
        let value: u16 = text
            .parse()
            .with_context(|| format!("{name}: not a number: {text:?}"))?;
        if value == 0 || value > MAX_CLIPBOARD_IMAGE_DIMENSION {
            bail!("{name} must be in 1..={MAX_CLIPBOARD_IMAGE_DIMENSION}, not {value}");
        }
        Ok(u32::from(value))
    };
    let (w, h) = (parse("width", width)?, parse("height", height)?);
    let rgba = ironrdp_peer::clipboard_image_rgba(w, h);
    let data = ironrdp_peer::dib_from_rgba(w, h, &rgba).map_err(anyhow::Error::msg)?;
    emit(json!({
        "event": "clipboard_set",
        "format": CF_DIB,
        "width": w,
        "height": h,
        "rule": "r = x*7 mod 256, g = y*5 mod 256, b = (x XOR y) mod 256, a = 255",
        "rgba_fnv1a64": format!("{:016x}", ironrdp_peer::fnv1a64(&rgba)),
    }));
    clip.set(ServerClipboard {
        format: ClipboardFormatId::CF_DIB,
        data,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Credentials (TLS security only: with hybrid, CredSSP checks them against --user/--password).

struct ReportCredentials {
    /// With `--check-credentials`: the only accepted user and password.
    expected: Option<(String, String)>,
}

#[async_trait::async_trait]
impl CredentialValidator for ReportCredentials {
    async fn validate(&self, credentials: &Credentials) -> Result<CredentialDecision, CredentialValidationError> {
        let accepted = match &self.expected {
            None => true,
            Some((user, password)) => credentials.username == *user && credentials.password == *password,
        };
        // The password is never printed.
        emit(json!({
            "event": "credentials",
            "username": credentials.username,
            "domain": credentials.domain,
            "accepted": accepted,
        }));
        Ok(if accepted {
            CredentialDecision::Accept
        } else {
            CredentialDecision::Reject
        })
    }
}

// ---------------------------------------------------------------------------------------------
// TLS identity.

struct Identity {
    acceptor: TlsAcceptor,
    /// SHA-256 over the certificate's DER, `AB:CD:...`.
    fingerprint: String,
    /// The subjectPublicKey BIT STRING's bytes, which CredSSP binds to.
    public_key: Vec<u8>,
}

fn make_identity(key: KeyType) -> Result<Identity> {
    let key_pair = match key {
        KeyType::Ecdsa => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::Rsa => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256),
    }
    .context("generate key pair")?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .context("certificate parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ironrdp-peer");
    let cert = params.self_signed(&key_pair).context("self-sign certificate")?;
    let cert_der = cert.der().clone();
    let fingerprint =
        ironrdp_peer::colon_hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert_der).as_ref());
    // For ECDSA the uncompressed point, for RSA the PKCS#1 RSAPublicKey: in both cases the
    // content of the certificate's subjectPublicKey BIT STRING.
    let public_key = key_pair.public_key_raw().to_vec();
    let private_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], private_key)
        .context("TLS certificate")?;
    Ok(Identity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        public_key,
    })
}

// ---------------------------------------------------------------------------------------------

fn handle_command(line: &str, shared: &SharedHandle, clip: &ClipHandle, sound: &sound::SoundHandle) {
    // The text is the rest of the line after one space, verbatim (spaces included).
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("clipboard-text") {
        if rest.is_empty() || rest.starts_with(' ') {
            clipboard_text_command(rest.strip_prefix(' ').unwrap_or(rest), clip);
            return;
        }
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => {}
        ["clipboard-image", w, h] => {
            if let Err(e) = clipboard_image_command(w, h, clip) {
                emit(json!({"event": "error", "message": format!("{e:#}")}));
            }
        }
        ["tone", hz, ms] => match (hz.parse::<f64>(), ms.parse::<u64>()) {
            (Ok(hz), Ok(ms)) if hz > 0.0 && ms <= 60_000 => sound.tone(hz, ms),
            _ => emit(json!({"event": "error", "message": format!("tone takes HZ (> 0) and MS (<= 60000): {line:?}")})),
        },
        ["quit"] | ["exit"] => {
            emit(json!({"event": "quit"}));
            std::process::exit(0);
        }
        ["resize", w, h] => match (parse_dimension("width", w), parse_dimension("height", h)) {
            (Ok(w), Ok(h)) => shared.resize(w, h),
            (Err(e), _) | (_, Err(e)) => emit(json!({"event": "error", "message": format!("{e:#}")})),
        },
        _ => emit(json!({"event": "error", "message": format!("unknown command {line:?}")})),
    }
}

async fn read_commands(shared: SharedHandle, clip: ClipHandle, sound: sound::SoundHandle, exit_on_eof: bool) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => handle_command(&line, &shared, &clip, &sound),
            Ok(None) | Err(_) => {
                if exit_on_eof {
                    emit(json!({"event": "quit"}));
                    std::process::exit(0);
                }
                // Without --exit-on-eof a closed stdin (e.g. `< /dev/null`) just ends commands.
                return;
            }
        }
    }
}

async fn run(o: Options) -> Result<()> {
    let codec_config = codec_config(o.codecs.as_deref());
    let codec_refs: Vec<&str> = codec_config.iter().map(String::as_str).collect();
    let codecs = server_codecs(&codec_refs)?;

    let identity = make_identity(o.key)?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(o.bind, o.port))
        .await
        .with_context(|| format!("bind {}:{}", o.bind, o.port))?;
    let local = listener.local_addr().context("local address")?;

    let shared = SharedHandle(Arc::new(Mutex::new(Shared {
        current: (o.width, o.height),
        wanted: (o.width, o.height),
        session: None,
        connected: false,
        resize_pending: false,
        in_flight: false,
    })));

    let builder = RdpServer::builder().with_addr(local);
    let builder = match o.security {
        Security::Tls => builder.with_tls(identity.acceptor.clone()),
        Security::Hybrid => builder.with_hybrid(identity.acceptor.clone(), identity.public_key.clone()),
    };
    let validator: Option<Arc<dyn CredentialValidator>> = match o.security {
        Security::Tls => Some(Arc::new(ReportCredentials {
            expected: if o.check_credentials {
                o.user.clone().zip(o.password.clone())
            } else {
                None
            },
        })),
        Security::Hybrid => None,
    };
    let clip = ClipHandle::default();
    let sound = sound::SoundHandle::new(o.sound);
    let (gfx_factory, egfx_handle) = match o.egfx {
        Some(mode) => {
            let (factory, handle) = egfx::start(mode, (o.width, o.height));
            (Some(factory), Some(handle))
        }
        None => (None, None),
    };
    let mut server = builder
        .with_input_handler(JsonInput)
        .with_display_handler(PatternDisplay {
            shared: shared.clone(),
            egfx: egfx_handle,
        })
        .with_bitmap_codecs(codecs.clone())
        .with_credential_validator(validator)
        .with_cliprdr_factory(Some(Box::new(ClipFactory { clip: clip.clone() })))
        .with_sound_factory(Some(Box::new(sound::SoundFactory(sound.clone()))))
        .with_gfx_factory(gfx_factory)
        .build();
    if o.security == Security::Hybrid {
        server.set_credentials(Some(Credentials {
            username: o.user.clone().unwrap_or_default(),
            password: o.password.clone().unwrap_or_default(),
            domain: None,
        }));
    }

    emit(json!({
        "event": "listening",
        "port": local.port(),
        "fingerprint": identity.fingerprint,
        "address": local.ip().to_string(),
        "security": match o.security { Security::Tls => "tls", Security::Hybrid => "hybrid" },
        "width": o.width,
        "height": o.height,
        "codecs": codec_list(&codecs),
        "egfx": o.egfx.map(egfx::Mode::name),
        "user": o.user,
    }));

    tokio::spawn(read_commands(
        shared.clone(),
        clip.clone(),
        sound.clone(),
        o.exit_on_eof,
    ));

    // One client at a time, like `RdpServer::run`; others wait in the listen backlog. Own loop
    // rather than `run()` so that connects and disconnects can be reported.
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log::warn!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.connection_started();
        emit(json!({"event": "connected", "peer": peer.to_string()}));
        let result = server.run_connection(stream).await;
        match result {
            Ok(()) => emit(json!({"event": "disconnected", "peer": peer.to_string()})),
            Err(e) => {
                log::warn!("connection from {peer} ended: {e:#}");
                emit(json!({"event": "disconnected", "peer": peer.to_string(), "error": format!("{e:#}")}));
            }
        }
        // After `disconnected`, so that a resize left pending is reported after it.
        shared.connection_ended();
        clip.connection_ended();
    }
}

fn server_codecs(config: &[&str]) -> Result<BitmapCodecs> {
    server_codecs_capabilities(config).map_err(|e| anyhow::anyhow!("--codecs {config:?}: {}", e.trim()))
}

fn main() {
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .build();
    // The wave confirmations come as ironrdp-rdpsnd's debug records (see `sound`).
    log::set_max_level(logger.filter().max(log::LevelFilter::Debug));
    let _ = log::set_boxed_logger(Box::new(sound::ConfirmLogger(logger)));
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ironrdp-peer: {e:#}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironrdp-peer: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(options)) {
        emit(json!({"event": "error", "message": format!("{e:#}")}));
        eprintln!("ironrdp-peer: {e:#}");
        std::process::exit(1);
    }
}
