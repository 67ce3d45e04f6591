//! The graphics pipeline ([MS-RDPEGFX] over the dynamic channel
//! `Microsoft::Windows::RDS::Graphics`): IronRDP's `GraphicsPipelineClient` decodes and
//! composes surfaces; this module registers it, chooses the capabilities to advertise (only
//! what this build decodes), counts what it decoded, and composes its frames into the session's
//! framebuffer after each server frame ([`Session::compose_graphics`]).
//!
//! IronRDP's handler trait requires `Send` and is boxed away once given, so the counters it
//! updates are atomics behind an `Arc` that the session reads through the channel's processor.
//! Everything still runs on the session's one thread.
//!
//! [MS-RDPEGFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpegfx/

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrdp_core::impl_as_any;
use ironrdp_dvc::{DvcClientProcessor, DvcMessage, DvcProcessor};
use ironrdp_egfx::client::{BitmapUpdate, GraphicsPipelineClient, GraphicsPipelineHandler};
use ironrdp_egfx::pdu::{
    CacheToSurfacePdu, CapabilitiesV103Flags, CapabilitiesV104Flags, CapabilitiesV107Flags, CapabilitiesV10Flags,
    CapabilitiesV81Flags, CapabilitiesV8Flags, CapabilitySet, Codec1Type, GfxPdu, SolidFillPdu, SurfaceToSurfacePdu,
    WireToSurface2Pdu,
};
use ironrdp_pdu::PduResult;

use crate::session::{Event, Rect, Session};
use crate::Result;

/// How often a dropped tile may trigger a redraw request: a server whose every frame has a
/// tile we cannot decode must not be asked to redraw the whole desktop at its frame rate.
const REDRAW_INTERVAL: Duration = Duration::from_secs(1);

/// The codecs counted, in report order.
const CODECS: [&str; 8] = [
    "progressive",
    "remotefx",
    "planar",
    "clearcodec",
    "uncompressed",
    "alpha",
    "avc420",
    "avc444",
];

/// What the pipeline decoded, shared by the handler (which IronRDP owns) and the session.
#[derive(Debug, Default)]
struct Counters {
    /// The confirmed capability version (0 until the server confirmed one).
    version: AtomicU32,
    /// Per codec, in [`CODECS`] order: progressive counts its PDUs, the others their updates.
    codecs: [AtomicU32; CODECS.len()],
    /// End-of-frame markers decoded (and acknowledged).
    frames: AtomicU32,
    /// A drawing command arrived since the last end of frame.
    open_frame: AtomicBool,
    /// The last updates decoded were progressive tiles (IronRDP reports those as uncompressed).
    progressive_tiles: AtomicBool,
}

impl Counters {
    fn count(&self, codec: &str) {
        if let Some(i) = CODECS.iter().position(|c| *c == codec) {
            self.codecs[i].fetch_add(1, Relaxed);
        }
        self.open_frame.store(true, Relaxed);
    }

    /// A drawing command of no codec (a fill, a copy): the frame has begun all the same.
    fn drew(&self) {
        self.progressive_tiles.store(false, Relaxed);
        self.open_frame.store(true, Relaxed);
    }
}

/// The handler IronRDP's client calls: it advertises and counts.
struct Handler {
    counters: Arc<Counters>,
    h264: bool,
}

impl GraphicsPipelineHandler for Handler {
    fn capabilities(&self) -> Vec<CapabilitySet> {
        capabilities(self.h264)
    }

    fn on_capabilities_confirmed(&mut self, caps: &CapabilitySet) {
        log::info!(
            "Graphics pipeline: the server confirmed {}",
            version_name(caps.version().0)
        );
        self.counters.version.store(caps.version().0, Relaxed);
    }

    fn on_reset_graphics(&mut self, width: u32, height: u32) {
        log::debug!("Graphics pipeline: reset to {width}x{height}");
    }

    fn on_bitmap_updated(&mut self, update: &BitmapUpdate) {
        let codec = match update.codec_id {
            Codec1Type::Uncompressed if self.counters.progressive_tiles.load(Relaxed) => return,
            Codec1Type::Uncompressed => "uncompressed",
            Codec1Type::RemoteFx => "remotefx",
            Codec1Type::ClearCodec => "clearcodec",
            Codec1Type::Planar => "planar",
            Codec1Type::Avc420 => "avc420",
            Codec1Type::Alpha => "alpha",
            Codec1Type::Avc444 | Codec1Type::Avc444v2 => "avc444",
        };
        self.counters.progressive_tiles.store(false, Relaxed);
        self.counters.count(codec);
    }

    fn on_wire_to_surface2(&mut self, _pdu: &WireToSurface2Pdu) {
        self.counters.progressive_tiles.store(true, Relaxed);
        self.counters.count("progressive");
    }

    fn on_solid_fill(&mut self, _pdu: &SolidFillPdu) {
        self.counters.drew();
    }

    fn on_surface_to_surface(&mut self, _pdu: &SurfaceToSurfacePdu) {
        self.counters.drew();
    }

    fn on_cache_to_surface(&mut self, _pdu: &CacheToSurfacePdu) {
        self.counters.drew();
    }

    fn on_frame_complete(&mut self, _frame_id: u32) {
        self.counters.frames.fetch_add(1, Relaxed);
        self.counters.open_frame.store(false, Relaxed);
        self.counters.progressive_tiles.store(false, Relaxed);
    }

    fn on_unhandled_pdu(&mut self, pdu: &GfxPdu) {
        log::debug!("Graphics pipeline: unhandled {}", pdu_name(pdu));
    }
}

/// The capability sets to advertise, best first. Without an H.264 decoder every set says
/// AVC is off (IronRDP would otherwise drop every set that implies AVC and leave only 8.0);
/// 10.1, which cannot say so, is left out. A client that advertises AVC and cannot decode it
/// shows nothing.
fn capabilities(h264: bool) -> Vec<CapabilitySet> {
    let (v104, v107, v10, v103) = if h264 {
        (
            CapabilitiesV104Flags::SMALL_CACHE,
            CapabilitiesV107Flags::SMALL_CACHE,
            CapabilitiesV10Flags::SMALL_CACHE,
            CapabilitiesV103Flags::empty(),
        )
    } else {
        (
            CapabilitiesV104Flags::SMALL_CACHE | CapabilitiesV104Flags::AVC_DISABLED,
            CapabilitiesV107Flags::SMALL_CACHE | CapabilitiesV107Flags::AVC_DISABLED,
            CapabilitiesV10Flags::SMALL_CACHE | CapabilitiesV10Flags::AVC_DISABLED,
            CapabilitiesV103Flags::AVC_DISABLED,
        )
    };
    let mut sets = vec![
        CapabilitySet::V10_7 { flags: v107 },
        CapabilitySet::V10_6 { flags: v104 },
        CapabilitySet::V10_5 { flags: v104 },
        CapabilitySet::V10_4 { flags: v104 },
        CapabilitySet::V10_3 { flags: v103 },
        CapabilitySet::V10_2 { flags: v10 },
    ];
    if h264 {
        sets.push(CapabilitySet::V10_1);
    }
    let v81 = match h264 {
        true => CapabilitiesV81Flags::SMALL_CACHE | CapabilitiesV81Flags::AVC420_ENABLED,
        false => CapabilitiesV81Flags::SMALL_CACHE,
    };
    sets.extend([
        CapabilitySet::V10 { flags: v10 },
        CapabilitySet::V8_1 { flags: v81 },
        CapabilitySet::V8 {
            flags: CapabilitiesV8Flags::SMALL_CACHE,
        },
    ]);
    sets
}

/// The graphics pipeline's dynamic channel processor: IronRDP's client, with our counters
/// beside it so that the session can find them.
pub(crate) struct Graphics {
    inner: GraphicsPipelineClient,
    counters: Arc<Counters>,
    /// Updates IronRDP dropped (undecodable), as last seen, and when a redraw was last asked.
    dropped_seen: u64,
    /// Messages the pipeline refused (an unknown surface, bad ZGFX): dropped like updates.
    failed: u64,
    last_redraw: Option<Instant>,
}

impl_as_any!(Graphics);

impl fmt::Debug for Graphics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graphics")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Graphics {
    /// A fresh pipeline (one per opening of the channel) sharing `counters`.
    fn new(counters: Arc<Counters>) -> Self {
        let decoder = h264_decoder();
        let handler = Handler {
            counters: Arc::clone(&counters),
            h264: decoder.is_some(),
        };
        Self {
            inner: GraphicsPipelineClient::new(Box::new(handler), decoder),
            counters,
            dropped_seen: 0,
            failed: 0,
            last_redraw: None,
        }
    }
}

#[cfg(feature = "h264")]
fn h264_decoder() -> Option<Box<dyn ironrdp_egfx::decode::H264Decoder>> {
    match ironrdp_egfx::decode::OpenH264Decoder::new() {
        Ok(decoder) => Some(Box::new(decoder)),
        Err(e) => {
            log::warn!("Graphics pipeline: no H.264 decoder ({e}); AVC is not advertised");
            None
        }
    }
}

#[cfg(not(feature = "h264"))]
fn h264_decoder() -> Option<Box<dyn ironrdp_egfx::decode::H264Decoder>> {
    None
}

impl DvcProcessor for Graphics {
    fn channel_name(&self) -> &str {
        ironrdp_egfx::CHANNEL_NAME
    }

    fn start(&mut self, channel_id: u32) -> PduResult<Vec<DvcMessage>> {
        self.inner.start(channel_id)
    }

    fn process(&mut self, channel_id: u32, payload: &[u8]) -> PduResult<Vec<DvcMessage>> {
        // The channel layer logs and drops a message that fails: name whose it was, and have
        // what it would have drawn redrawn ([`Graphics::redraw_due`]).
        self.inner.process(channel_id, payload).map_err(|e| {
            self.failed += 1;
            ironrdp_pdu::pdu_other_err!("graphics pipeline", source: e)
        })
    }

    fn close(&mut self, channel_id: u32) {
        self.inner.close(channel_id);
    }
}

impl DvcClientProcessor for Graphics {}

/// The processor factory for `DrdynvcClient`: a fresh pipeline each time the server opens the
/// channel (a closed pipeline refuses data), all counting into the same counters.
pub(crate) fn factory() -> impl FnMut() -> Graphics + Send + 'static {
    let counters = Arc::new(Counters::default());
    move || Graphics::new(Arc::clone(&counters))
}

/// Registers the graphics pipeline's processor on `result`'s `drdynvc` transport, as a
/// connection does. For harnesses that build a [`Session`] from a `ConnectionResult` of their
/// own (the fuzz target), so that their input reaches the same composing and counting as a
/// server's does. Not part of the supported API.
#[doc(hidden)]
pub fn attach_graphics(result: &mut ironrdp_connector::ConnectionResult) {
    let dynamic = result
        .static_channels
        .get_by_type_mut::<ironrdp_dvc::DrdynvcClient>()
        .and_then(|channel| channel.channel_processor_downcast_mut::<ironrdp_dvc::DrdynvcClient>());
    if let Some(dynamic) = dynamic {
        // Registering a factory takes the transport by value.
        *dynamic = std::mem::take(dynamic).with_dynamic_channel_factory(ironrdp_egfx::CHANNEL_NAME, factory());
    }
}

/// Which path the server's graphics take.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphicsPath {
    /// Fast-path bitmap updates and surface commands (no graphics pipeline: the server has
    /// none, did not open it, or [`Channel::Graphics`](super::Channel::Graphics) was not offered).
    Legacy,
    /// The graphics pipeline, at the capability version the server confirmed (such as "10.7").
    Egfx {
        /// The confirmed version.
        version: String,
    },
}

/// What the session's graphics path decoded so far ([`Session::graphics_report`]).
///
/// Its `Display` is one line, e.g. `egfx v10.7, progressive 40, planar 2 (12 frames)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphicsReport {
    /// The path.
    pub path: GraphicsPath,
    /// Per codec decoded through the pipeline, with its count (progressive counts PDUs, the
    /// others updates); codecs never seen are left out.
    pub codecs: Vec<(&'static str, u32)>,
    /// Pipeline frames decoded and acknowledged.
    pub frames: u32,
    /// Updates the pipeline could not decode (skipped, and a redraw asked for).
    pub dropped: u64,
}

impl fmt::Display for GraphicsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let GraphicsPath::Egfx { version } = &self.path else {
            return f.write_str("legacy (fast-path bitmaps and surface commands)");
        };
        write!(f, "egfx v{version}")?;
        for (codec, count) in &self.codecs {
            write!(f, ", {codec} {count}")?;
        }
        write!(f, " ({} frames", self.frames)?;
        if self.dropped > 0 {
            write!(f, ", {} updates dropped", self.dropped)?;
        }
        f.write_str(")")
    }
}

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

fn pdu_name(pdu: &GfxPdu) -> String {
    let debug = format!("{pdu:?}");
    debug.split(['(', ' ', '{']).next().unwrap_or_default().to_owned()
}

impl<S> Session<S> {
    /// What the graphics path decoded so far: the path, the codecs and their counts.
    ///
    /// ```no_run
    /// # async fn report(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
    /// session.wait_until_drawn(std::time::Duration::from_millis(500), std::time::Duration::from_secs(20)).await?;
    /// println!("graphics: {}", session.graphics_report());
    /// # Ok(())
    /// # }
    /// ```
    pub fn graphics_report(&self) -> GraphicsReport {
        let Some(counters) = self.graphics_counters() else {
            return GraphicsReport {
                path: GraphicsPath::Legacy,
                codecs: Vec::new(),
                frames: 0,
                dropped: 0,
            };
        };
        let version = counters.version.load(Relaxed);
        let codecs = CODECS
            .iter()
            .zip(&counters.codecs)
            .map(|(name, count)| (*name, count.load(Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect();
        let dropped = self
            .stage
            .get_dvc::<Graphics>()
            .map_or(0, |g| g.processor().inner.dropped_updates());
        GraphicsReport {
            path: match version {
                0 => GraphicsPath::Legacy,
                v => GraphicsPath::Egfx {
                    version: version_name(v),
                },
            },
            codecs,
            frames: counters.frames.load(Relaxed),
            dropped,
        }
    }

    fn graphics_counters(&self) -> Option<Arc<Counters>> {
        self.stage
            .get_dvc::<Graphics>()
            .map(|g| Arc::clone(&g.processor().counters))
    }

    /// Whether a pipeline frame has begun (a drawing command) and not ended.
    pub(crate) fn graphics_frame_open(&self) -> bool {
        self.graphics_counters().is_some_and(|c| c.open_frame.load(Relaxed))
    }
}

impl<S: crate::framing::FramedRead + crate::framing::FramedWrite> Session<S> {
    /// Composes what the pipeline decoded since the last call into the framebuffer: a reset
    /// (new size: [`Event::Resized`]) and the damaged areas ([`Event::Graphics`]); asks for a
    /// redraw when the pipeline dropped updates it could not decode.
    pub(crate) fn compose_graphics(&mut self) -> Result<()> {
        let Some(mut channel) = self.stage.get_dvc_mut::<Graphics>() else {
            return Ok(());
        };
        let before = (self.image.width(), self.image.height());
        let graphics = channel.processor_mut();
        let composed = ironrdp_session::composite_graphics_pipeline(&mut graphics.inner, &mut self.image)
            .map_err(|e| crate::session::session_error("graphics pipeline", e))?;
        let redraw = graphics.redraw_due();
        let (width, height) = (self.image.width(), self.image.height());
        if composed.reset {
            if (width, height) != before {
                log::info!("Graphics pipeline: the desktop is now {width}x{height}");
                // A pipeline reset answers display control as a reactivation would.
                self.display.answered();
                self.events.push_back(Event::Resized { width, height });
            }
            // The image was cleared: all of it changed.
            self.events.push_back(Event::Graphics(Rect {
                x: 0,
                y: 0,
                width,
                height,
            }));
        } else if let Some(region) = composed.region {
            if let Some(rect) = Rect::from(&region).clipped(width, height) {
                self.events.push_back(Event::Graphics(rect));
            }
        }
        if redraw {
            log::debug!("Graphics pipeline dropped an update it could not decode; asking for a redraw");
            self.queue_full_redraw()?;
        }
        Ok(())
    }
}

impl Graphics {
    /// Whether updates were dropped since the last look and a redraw may be asked for now.
    fn redraw_due(&mut self) -> bool {
        let dropped = self.inner.dropped_updates().saturating_add(self.failed);
        if dropped == self.dropped_seen {
            return false;
        }
        let now = Instant::now();
        if self.last_redraw.is_some_and(|last| now - last < REDRAW_INTERVAL) {
            return false;
        }
        self.dropped_seen = dropped;
        self.last_redraw = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_h264_every_set_disables_avc() {
        let sets = capabilities(false);
        assert_eq!(
            sets.first().map(CapabilitySet::version),
            Some(ironrdp_egfx::pdu::CapabilityVersion::V10_7)
        );
        assert!(!sets.contains(&CapabilitySet::V10_1));
        for set in &sets {
            let avc_off = match set {
                CapabilitySet::V10_7 { flags } => flags.contains(CapabilitiesV107Flags::AVC_DISABLED),
                CapabilitySet::V10_6 { flags } | CapabilitySet::V10_5 { flags } | CapabilitySet::V10_4 { flags } => {
                    flags.contains(CapabilitiesV104Flags::AVC_DISABLED)
                }
                CapabilitySet::V10_3 { flags } => flags.contains(CapabilitiesV103Flags::AVC_DISABLED),
                CapabilitySet::V10_2 { flags } | CapabilitySet::V10 { flags } => {
                    flags.contains(CapabilitiesV10Flags::AVC_DISABLED)
                }
                CapabilitySet::V8_1 { flags } => !flags.contains(CapabilitiesV81Flags::AVC420_ENABLED),
                CapabilitySet::V8 { .. } => true,
                _ => false,
            };
            assert!(avc_off, "{set:?} leaves AVC on");
        }
    }

    #[test]
    fn versions_read_as_people_write_them() {
        assert_eq!(version_name(0xa_0701), "10.7");
        assert_eq!(version_name(0xa_0301), "10.3");
        assert_eq!(version_name(0xa_0002), "10.0");
        assert_eq!(version_name(0x8_0105), "8.1");
        assert_eq!(version_name(0xa_0601), "10.6");
    }
}
