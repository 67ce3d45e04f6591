//! `--egfx MODE`: the test card through the graphics pipeline (MS-RDPEGFX) instead of
//! fast-path bitmaps, so that a client's EGFX decoders can be checked against it.
//!
//! ironrdp-server 0.13 (feature `egfx`) registers ironrdp-egfx 0.3's `GraphicsPipelineServer`
//! on its DRDYNVC channel through a [`GfxServerFactory`] and sends whatever the application
//! queues as [`ServerEvent::Egfx`]. The pipeline's handler runs inside the DVC processor (with
//! the pipeline's mutex held), so it only reports and signals; a task owns the sending: the
//! first frame of a card when the client confirmed its capabilities, each next one when the
//! previous was acknowledged ([`FRAMES_PER_CARD`] in all), so acknowledgements are what
//! drives the stream, as in a real server.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use ironrdp_core::{Encode, EncodeResult, WriteCursor};
use ironrdp_dvc::{DvcEncode, DvcMessage};
use ironrdp_egfx::pdu::{
    Avc420Region, CapabilitiesAdvertisePdu, CapabilitySet, Codec1Type, EndFramePdu, GfxPdu, PixelFormat, StartFramePdu,
    Timestamp, WireToSurface1Pdu,
};
use ironrdp_egfx::server::{GraphicsPipelineHandler, GraphicsPipelineServer};
use ironrdp_pdu::geometry::ExclusiveRectangle;
use ironrdp_server::{
    EgfxServerMessage, GfxDvcBridge, GfxServerFactory, GfxServerHandle, ServerEvent, ServerEventSender,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::emit;

/// Frames sent per card (per pipeline opening or resize): the same picture each time, the
/// next one only after the previous was acknowledged. With AVC420 the first is an IDR frame
/// and the others are P frames that refine it.
pub(crate) const FRAMES_PER_CARD: u32 = 3;

/// The H.264 quantiser range: fine enough that the card comes back within a few levels.
const QP_MIN: u8 = 10;
const QP_MAX: u8 = 18;

/// The codec the card is sent with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// H.264 4:2:0 (WireToSurface1, codec 0x0B) from OpenH264's encoder, hand-built (see
    /// [`avc420_stream`]).
    Avc420,
    /// RDP 6.0 planar, RLE (codec 0x0A), hand-built: ironrdp-egfx 0.3 has no planar sender.
    Planar,
    /// 32-bit XRGB (codec 0x00) through `send_uncompressed_frame`.
    Uncompressed,
}

impl Mode {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "avc420" => Self::Avc420,
            "planar" => Self::Planar,
            "uncompressed" => Self::Uncompressed,
            other => bail!("--egfx takes avc420, planar or uncompressed, not {other:?}"),
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Avc420 => "avc420",
            Self::Planar => "planar",
            Self::Uncompressed => "uncompressed",
        }
    }
}

/// What the pipeline's handler tells the sending task.
#[derive(Debug)]
enum Signal {
    /// Capabilities confirmed: the pipeline can take surfaces and frames.
    Ready { client_avc: bool },
    /// A frame was acknowledged.
    Ack,
    /// The session (re)activated at this size.
    Activated(u16, u16),
    /// The channel closed.
    Closed,
}

/// The sending task's state, shared with the factory (which makes a pipeline per connection).
struct State {
    mode: Mode,
    server: Option<GfxServerHandle>,
    events: Option<mpsc::UnboundedSender<ServerEvent>>,
    size: (u16, u16),
    /// The pipeline confirmed capabilities and is not closed.
    ready: bool,
    client_avc: bool,
    surface: Option<u16>,
    /// The card being sent, encoded once per card: one payload per frame.
    frames: Vec<Vec<u8>>,
    sent: u32,
    /// Frame ids for the hand-built planar and AVC420 frames (the pipeline's own tracker never
    /// sees them; the acknowledgements pace the sending here).
    next_frame_id: u32,
    started: Instant,
}

#[derive(Clone)]
struct StateHandle(Arc<Mutex<State>>);

impl StateHandle {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data; a panic elsewhere leaves nothing half-updated worth refusing.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The display side's handle: tells the sending task about (re)activations.
#[derive(Clone)]
pub(crate) struct EgfxHandle {
    signals: mpsc::UnboundedSender<Signal>,
}

impl EgfxHandle {
    /// The session became active at `width` x `height` (first activation or after a resize).
    pub(crate) fn activated(&self, width: u16, height: u16) {
        let _ = self.signals.send(Signal::Activated(width, height));
    }
}

/// Makes the factory for `RdpServer::builder().with_gfx_factory` and the display's handle,
/// and starts the sending task (on the current tokio runtime).
pub(crate) fn start(mode: Mode, size: (u16, u16)) -> (Box<dyn GfxServerFactory>, EgfxHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = StateHandle(Arc::new(Mutex::new(State {
        mode,
        server: None,
        events: None,
        size,
        ready: false,
        client_avc: false,
        surface: None,
        frames: Vec::new(),
        sent: 0,
        next_frame_id: 1,
        started: Instant::now(),
    })));
    tokio::spawn(run(rx, state.clone()));
    let factory = Factory {
        state,
        signals: tx.clone(),
    };
    (Box::new(factory), EgfxHandle { signals: tx })
}

struct Factory {
    state: StateHandle,
    signals: mpsc::UnboundedSender<Signal>,
}

impl ServerEventSender for Factory {
    fn set_sender(&mut self, sender: mpsc::UnboundedSender<ServerEvent>) {
        self.state.lock().events = Some(sender);
    }
}

impl GfxServerFactory for Factory {
    fn build_gfx_handler(&self) -> Box<dyn GraphicsPipelineHandler> {
        Box::new(Handler {
            signals: self.signals.clone(),
            client_versions: Vec::new(),
            client_avc: false,
            acks: 0,
        })
    }

    /// A pipeline per connection, kept so that the task can queue frames on it.
    fn build_server_with_handle(&self) -> Option<(GfxDvcBridge, GfxServerHandle)> {
        let server = GraphicsPipelineServer::new(self.build_gfx_handler());
        let handle: GfxServerHandle = Arc::new(Mutex::new(server));
        let mut state = self.state.lock();
        state.server = Some(Arc::clone(&handle));
        state.ready = false;
        state.surface = None;
        Some((GfxDvcBridge::new(Arc::clone(&handle)), handle))
    }
}

/// The pipeline's callbacks: JSON events, and signals for the sending task.
struct Handler {
    signals: mpsc::UnboundedSender<Signal>,
    client_versions: Vec<String>,
    client_avc: bool,
    acks: u32,
}

impl GraphicsPipelineHandler for Handler {
    fn capabilities_advertise(&mut self, pdu: &CapabilitiesAdvertisePdu) {
        let sets: Vec<CapabilitySet> = pdu.0.iter().filter_map(|raw| raw.parsed().ok().flatten()).collect();
        self.client_versions = sets.iter().map(|set| version_name(set.version().0)).collect();
        self.client_avc = sets.iter().any(avc_enabled);
    }

    fn on_ready(&mut self, negotiated: &CapabilitySet) {
        emit(json!({
            "event": "egfx_caps",
            "version": version_name(negotiated.version().0),
            "client_versions": self.client_versions,
            "client_avc": self.client_avc,
        }));
        let _ = self.signals.send(Signal::Ready {
            client_avc: self.client_avc,
        });
    }

    fn on_frame_ack(&mut self, frame_id: u32, queue_depth: u32, total_frames_decoded: u32) {
        self.acks += 1;
        emit(json!({
            "event": "egfx_frame_ack",
            "frame_id": frame_id,
            "total_frames_decoded": total_frames_decoded,
            "queue_depth": queue_depth,
            "acks": self.acks,
        }));
        let _ = self.signals.send(Signal::Ack);
    }

    fn on_close(&mut self) {
        emit(json!({"event": "egfx_closed", "acks": self.acks}));
        let _ = self.signals.send(Signal::Closed);
    }
}

/// Whether a client's capability set lets the server send AVC420 (MS-RDPEGFX 2.2.3).
fn avc_enabled(set: &CapabilitySet) -> bool {
    use ironrdp_egfx::pdu::{
        CapabilitiesV103Flags as F103, CapabilitiesV104Flags as F104, CapabilitiesV107Flags as F107,
        CapabilitiesV10Flags as F10, CapabilitiesV81Flags as F81,
    };
    match set {
        CapabilitySet::V8_1 { flags } => flags.contains(F81::AVC420_ENABLED),
        CapabilitySet::V10 { flags } | CapabilitySet::V10_2 { flags } => !flags.contains(F10::AVC_DISABLED),
        CapabilitySet::V10_1 => true,
        CapabilitySet::V10_3 { flags } => !flags.contains(F103::AVC_DISABLED),
        CapabilitySet::V10_4 { flags } | CapabilitySet::V10_5 { flags } | CapabilitySet::V10_6 { flags } => {
            !flags.contains(F104::AVC_DISABLED)
        }
        CapabilitySet::V10_7 { flags } => !flags.contains(F107::AVC_DISABLED),
        _ => false,
    }
}

/// "10.7", "8.1", ... as people write them.
fn version_name(version: u32) -> String {
    match version {
        0x8_0004 => "8.0".into(),
        0x8_0105 => "8.1".into(),
        0xa_0002 => "10.0".into(),
        0xa_0600 | 0xa_0601 => "10.6".into(),
        v if v >> 16 == 0xa => format!("10.{}", (v >> 8) & 0xff),
        v => format!("0x{v:x}"),
    }
}

/// The sending task: reacts to the handler's and the display's signals until the server ends.
async fn run(mut signals: mpsc::UnboundedReceiver<Signal>, state: StateHandle) {
    while let Some(signal) = signals.recv().await {
        let result = {
            let mut s = state.lock();
            on_signal(&mut s, signal)
        };
        if let Err(e) = result {
            emit(json!({"event": "egfx_error", "message": format!("{e:#}")}));
        }
    }
}

fn on_signal(s: &mut State, signal: Signal) -> Result<()> {
    match signal {
        Signal::Ready { client_avc } => {
            s.ready = true;
            s.client_avc = client_avc;
            start_card(s)
        }
        Signal::Ack if s.ready && s.sent < FRAMES_PER_CARD && !s.frames.is_empty() => send_next(s),
        Signal::Ack => Ok(()),
        Signal::Activated(width, height) => {
            let resized = s.size != (width, height);
            s.size = (width, height);
            if s.ready && resized {
                start_card(s)
            } else {
                Ok(())
            }
        }
        Signal::Closed => {
            s.ready = false;
            s.surface = None;
            Ok(())
        }
    }
}

/// A fresh surface the size of the desktop (a ResetGraphics first), then the card's first frame.
fn start_card(s: &mut State) -> Result<()> {
    if s.mode == Mode::Avc420 && !s.client_avc {
        bail!("the client did not advertise AVC420; nothing sent");
    }
    let (width, height) = s.size;
    s.frames = encode_card(s.mode, width, height)?;
    s.sent = 0;
    let handle = s.server.clone().context("no pipeline")?;
    let mut server = handle.lock().unwrap_or_else(|e| e.into_inner());
    if s.surface.is_some() {
        // Deletes the surfaces and sends a ResetGraphics at the new size.
        server.resize(width, height);
    } else {
        server.set_output_dimensions(width, height);
    }
    let surface = server
        .create_surface(width, height)
        .context("the pipeline refused a surface")?;
    server.map_surface_to_output(surface, 0, 0);
    s.surface = Some(surface);
    drop(server);
    send_next(s)
}

/// The card encoded for `mode`, one payload per frame.
fn encode_card(mode: Mode, width: u16, height: u16) -> Result<Vec<Vec<u8>>> {
    let bgrx = ironrdp_peer::pattern_bgrx(width, height);
    let repeat = |payload: Vec<u8>| vec![payload; FRAMES_PER_CARD as usize];
    Ok(match mode {
        Mode::Uncompressed => repeat(bgrx),
        Mode::Planar => repeat(planar(&bgrx, width, height)?),
        Mode::Avc420 => h264(&bgrx, width, height)?,
    })
}

/// RDP 6.0 planar with RLE, no alpha plane.
fn planar(bgrx: &[u8], width: u16, height: u16) -> Result<Vec<u8>> {
    use ironrdp_graphics::rdp6::{BgrAChannels, BitmapStreamEncoder};
    let (w, h) = (usize::from(width), usize::from(height));
    // RLE never needs more than the raw planes plus a few bytes a row.
    let mut out = vec![0; w * h * 3 + h * 16 + 64];
    let len = BitmapStreamEncoder::new(w, h)
        .encode_bitmap::<BgrAChannels>(bgrx, &mut out, true)
        .map_err(|e| anyhow::anyhow!("planar encode: {e}"))?;
    out.truncate(len);
    Ok(out)
}

/// The card as [`FRAMES_PER_CARD`] H.264 access units (an IDR frame, then P frames) from
/// OpenH264, converted to YUV with full-range BT.709 ([`ironrdp_peer::yuv`]).
fn h264(bgrx: &[u8], width: u16, height: u16) -> Result<Vec<Vec<u8>>> {
    use openh264::encoder::{Encoder, EncoderConfig, QpRange, RateControlMode};
    use openh264::formats::YUVSlices;
    use openh264::OpenH264API;
    let yuv = ironrdp_peer::yuv::yuv420_from_bgrx(bgrx, width, height);
    let config = EncoderConfig::new()
        .rate_control_mode(RateControlMode::Off)
        .qp(QpRange::new(QP_MIN, QP_MAX));
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).context("H.264 encoder")?;
    let (cw, ch) = (yuv.width / 2, yuv.height / 2);
    debug_assert_eq!(yuv.u.len(), cw * ch);
    let source = YUVSlices::new((&yuv.y, &yuv.u, &yuv.v), (yuv.width, yuv.height), (yuv.width, cw, cw));
    let mut frames = Vec::new();
    for _ in 0..FRAMES_PER_CARD {
        let stream = encoder.encode(&source).context("H.264 encode")?;
        frames.push(stream.to_vec());
    }
    Ok(frames)
}

/// Queues the card's next frame on the pipeline and hands everything queued to the server.
fn send_next(s: &mut State) -> Result<()> {
    let handle = s.server.clone().context("no pipeline")?;
    let surface = s.surface.context("no surface")?;
    let payload = s.frames.get(s.sent as usize).context("no frame left")?.clone();
    let (width, height) = s.size;
    let timestamp = u32::try_from(s.started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let mut server = handle.lock().unwrap_or_else(|e| e.into_inner());
    let mut extra: Vec<DvcMessage> = Vec::new();
    let frame_id = match s.mode {
        Mode::Uncompressed => server.send_uncompressed_frame(surface, &payload, width, height, timestamp),
        Mode::Planar | Mode::Avc420 => {
            let id = s.next_frame_id;
            s.next_frame_id += 1;
            let (codec, data) = match s.mode {
                Mode::Avc420 => (Codec1Type::Avc420, avc420_stream(&payload, width, height)),
                _ => (Codec1Type::Planar, payload.clone()),
            };
            extra = wire_frame(surface, id, codec, data, (width, height), timestamp)?;
            Some(id)
        }
    };
    let frame_id = frame_id.context("the pipeline refused the frame (not ready, or backpressure)")?;
    let mut messages = server.drain_output();
    messages.append(&mut extra);
    let channel_id = server.channel_id().context("the pipeline has no channel")?;
    drop(server);
    let svc = ironrdp_dvc::encode_dvc_messages(channel_id, messages, ironrdp_svc::ChannelFlags::SHOW_PROTOCOL)
        .map_err(|e| anyhow::anyhow!("DVC encode: {e}"))?;
    s.events
        .as_ref()
        .context("no server event sender")?
        .send(ServerEvent::Egfx(EgfxServerMessage::SendMessages { messages: svc }))
        .map_err(|_| anyhow::anyhow!("the server is gone"))?;
    s.sent += 1;
    emit(json!({
        "event": "egfx_frame_sent",
        "codec": s.mode.name(),
        "frame_id": frame_id,
        "bytes": payload.len(),
        "width": width,
        "height": height,
    }));
    Ok(())
}

/// The RFX_AVC420_BITMAP_STREAM for a whole-card access unit: one region, the whole card.
///
/// Not ironrdp-egfx 0.3's `send_avc420_frame`: its `Avc420Region` is inclusive and goes on
/// the wire as is (right = width - 1), but MS-RDPEGFX's RDPGFX_RECT16 (and ironrdp-egfx 0.5's
/// client) has exclusive right/bottom edges, so the card's last column and row were never
/// drawn (seen: pixel (1023, 0) black). The region here carries the exclusive edges.
fn avc420_stream(h264: &[u8], width: u16, height: u16) -> Vec<u8> {
    let region = Avc420Region {
        left: 0,
        top: 0,
        right: width,
        bottom: height,
        quantization_parameter: QP_MAX,
        quality: 100,
    };
    ironrdp_egfx::pdu::encode_avc420_bitmap_stream(&[region], h264)
}

/// A whole-card frame as ZGFX-wrapped PDUs: StartFrame, WireToSurface1 (`codec`), EndFrame.
fn wire_frame(
    surface_id: u16,
    frame_id: u32,
    codec_id: Codec1Type,
    bitmap_data: Vec<u8>,
    (width, height): (u16, u16),
    timestamp_ms: u32,
) -> Result<Vec<DvcMessage>> {
    let timestamp = Timestamp {
        milliseconds: (timestamp_ms % 1000) as u16,
        seconds: (timestamp_ms / 1000 % 60) as u8,
        minutes: (timestamp_ms / 60_000 % 60) as u8,
        hours: (timestamp_ms / 3_600_000 % 24) as u16,
    };
    let pdus = [
        GfxPdu::StartFrame(StartFramePdu { timestamp, frame_id }),
        GfxPdu::WireToSurface1(WireToSurface1Pdu {
            surface_id,
            codec_id,
            pixel_format: PixelFormat::XRgb,
            destination_rectangle: ExclusiveRectangle {
                left: 0,
                top: 0,
                right: width,
                bottom: height,
            },
            bitmap_data,
        }),
        GfxPdu::EndFrame(EndFramePdu { frame_id }),
    ];
    pdus.iter()
        .map(|pdu| {
            let bytes = ironrdp_core::encode_vec(pdu).map_err(|e| anyhow::anyhow!("encode {}: {e}", pdu.name()))?;
            let message: DvcMessage = Box::new(Wrapped {
                bytes: ironrdp_graphics::zgfx::wrap_uncompressed(&bytes),
                name: pdu.name(),
            });
            Ok(message)
        })
        .collect()
}

/// An already encoded and ZGFX-wrapped PDU, for the DVC layer.
struct Wrapped {
    bytes: Vec<u8>,
    name: &'static str,
}

impl Encode for Wrapped {
    fn encode(&self, dst: &mut WriteCursor<'_>) -> EncodeResult<()> {
        ironrdp_core::ensure_size!(in: dst, size: self.bytes.len());
        dst.write_slice(&self.bytes);
        Ok(())
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn size(&self) -> usize {
        self.bytes.len()
    }
}

impl DvcEncode for Wrapped {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_encodes_in_every_mode() {
        for mode in [Mode::Avc420, Mode::Planar, Mode::Uncompressed] {
            let frames = encode_card(mode, 64, 48).unwrap();
            assert_eq!(frames.len(), FRAMES_PER_CARD as usize, "{mode:?}");
            assert!(!frames[0].is_empty(), "{mode:?}");
        }
    }

    /// Regenerates async-rdp's `tests/data/card-64x48.h264`, the good frame of its hostile-H.264
    /// test (`tests/h264.rs`): the 64x48 card's IDR access unit as this peer sends it.
    #[test]
    #[ignore = "writes into async-rdp's tests/data; run by hand with -- --ignored"]
    fn write_h264_test_frame() {
        let frames = encode_card(Mode::Avc420, 64, 48).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(format!("{dir}/card-64x48.h264"), &frames[0]).unwrap();
    }

    #[test]
    fn versions() {
        assert_eq!(version_name(0xa_0701), "10.7");
        assert_eq!(version_name(0x8_0105), "8.1");
        assert_eq!(version_name(0xa_0002), "10.0");
    }
}
