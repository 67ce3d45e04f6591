//! The graphics pipeline ([MS-RDPEGFX]) on the demo server: IronRDP's server side
//! ([`GraphicsPipelineServer`]) on a dynamic channel, driven by a test, plus encoders for the
//! codecs the client decodes and hand-built PDUs for what no well-behaved server sends.
//!
//! The demo server serves no dynamic channel itself (see [the module above](super)), so a
//! [`Pipeline`] lives in the test: it makes the `drdynvc` messages that open the channel
//! ([`Pipeline::open`]), reads the client's answers on `drdynvc`
//! ([`Pipeline::receive`]: the Create Response, the Capabilities Advertise, the Frame
//! Acknowledges, which it counts), and turns what IronRDP's server queued, or any
//! [`GfxPdu`], into `drdynvc` messages ([`Pipeline::drain`], [`Pipeline::pdus`]). Each message
//! goes in a [`ChannelSend::message`](super::ChannelSend::message) on `drdynvc`.
//!
//! [MS-RDPEGFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpegfx/

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use async_rdp::{Error, ErrorKind};
use ironrdp_core::{decode, encode_vec, EncodeError};
use ironrdp_dvc::pdu::{CreationStatus, DrdynvcClientPdu, DrdynvcDataPdu};
use ironrdp_dvc::{DvcMessage, DvcProcessor};
use ironrdp_egfx::pdu::{CapabilitiesAdvertisePdu, CapabilitySet, GfxPdu};
use ironrdp_egfx::server::{GraphicsPipelineHandler, GraphicsPipelineServer};
use ironrdp_graphics::progressive::{encode_first_pass, rgba_to_ycbcr};
use ironrdp_graphics::rdp6::{BgrAChannels, BitmapStreamEncoder};
use ironrdp_graphics::zgfx::wrap_uncompressed;
use ironrdp_pdu::codecs::rfx::progressive::{
    encode_progressive_stream, ComponentCodecQuant, ProgressiveBlock, ProgressiveContextPdu, ProgressiveFrameBeginPdu,
    ProgressiveFrameEndPdu, ProgressiveRegion, ProgressiveSyncPdu, ProgressiveTile, TileSimple,
};
use ironrdp_pdu::codecs::rfx::RfxRectangle;

use super::dvc;
use crate::encode::Picture;
use crate::pattern_pixel;

/// The graphics pipeline's dynamic channel name.
pub const GRAPHICS: &str = ironrdp_egfx::CHANNEL_NAME;

/// The largest DVC payload one Data PDU carries (IronRDP's `DrdynvcDataPdu::MAX_DATA_SIZE`).
const DVC_CHUNK: usize = 1590;

/// What the handler saw, shared with the [`Pipeline`] (IronRDP boxes the handler away).
#[derive(Debug, Default)]
struct Seen {
    /// Frame Acknowledge PDUs received (whichever frame they acknowledge).
    acks: AtomicU32,
    /// The negotiated capability version (0: none yet).
    version: AtomicU32,
}

struct Handler {
    seen: Arc<Seen>,
}

impl GraphicsPipelineHandler for Handler {
    fn capabilities_advertise(&mut self, pdu: &CapabilitiesAdvertisePdu) {
        log::debug!(
            "Demo server: the client advertised {} graphics capability sets",
            pdu.0.len()
        );
    }

    fn on_ready(&mut self, negotiated: &CapabilitySet) {
        self.seen.version.store(negotiated.version().0, Relaxed);
    }

    // No back-pressure: a test decides how far ahead of the client's acknowledgements it runs.
    fn max_frames_in_flight(&self) -> u32 {
        u32::MAX
    }
}

/// The server side of a graphics pipeline channel: IronRDP's server, and the dynamic channel
/// id it runs on.
pub struct Pipeline {
    server: GraphicsPipelineServer,
    id: u32,
    seen: Arc<Seen>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("id", &self.id)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline to open on dynamic channel `id`.
    pub fn new(id: u32) -> Self {
        let seen = Arc::new(Seen::default());
        let handler = Handler {
            seen: Arc::clone(&seen),
        };
        Self {
            server: GraphicsPipelineServer::new(Box::new(handler)),
            id,
            seen,
        }
    }

    /// The dynamic channel id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The `drdynvc` messages that open the channel: the DVC Capabilities Request (a client
    /// takes it again), then the Create Request.
    pub fn open(&self) -> Result<Vec<Vec<u8>>, EncodeError> {
        Ok(vec![
            dvc::capabilities_request()?,
            dvc::create_request(self.id, GRAPHICS)?,
        ])
    }

    /// Reads a message the client sent on `drdynvc`: starts the pipeline on its Create
    /// Response, hands the pipeline's data (the Capabilities Advertise, Frame Acknowledges) to
    /// IronRDP's server. Returns the `drdynvc` messages to send back (the Capabilities
    /// Confirm); other channels' messages are left alone.
    pub fn receive(&mut self, message: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let replies = match decode::<DrdynvcClientPdu>(message) {
            Ok(DrdynvcClientPdu::Create(created)) if created.channel_id() == self.id => {
                if created.creation_status() != CreationStatus::OK {
                    return Err(egfx_error("the client refused the graphics pipeline channel"));
                }
                self.server.start(self.id)
            }
            Ok(DrdynvcClientPdu::Data(pdu @ DrdynvcDataPdu::Data(_))) if pdu.channel_id() == self.id => {
                let DrdynvcDataPdu::Data(data) = pdu else {
                    return Ok(Vec::new());
                };
                // Counted here, not in the handler: IronRDP's server ignores acknowledgements
                // of frames it did not send itself (a test's hand-built ones).
                if matches!(decode::<GfxPdu>(data.data()), Ok(GfxPdu::FrameAcknowledge(_))) {
                    self.seen.acks.fetch_add(1, Relaxed);
                }
                self.server.process(self.id, data.data())
            }
            _ => return Ok(Vec::new()),
        };
        let replies = replies.map_err(|e| egfx_error(&format!("the client's graphics PDU: {e}")))?;
        self.messages(replies).map_err(encode_failed)
    }

    /// Starts the pipeline as if the client had opened the channel and advertised `caps`,
    /// without waiting for it: for a replay (the session benchmark) that writes the whole
    /// set-up and its frames before reading anything the client sends. Returns the `drdynvc`
    /// messages to send after [`open`](Self::open)'s (the Capabilities Confirm).
    pub fn assume_advertised(&mut self, caps: &[CapabilitySet]) -> Result<Vec<Vec<u8>>, Error> {
        let advertise = GfxPdu::CapabilitiesAdvertise(CapabilitiesAdvertisePdu::from_typed(caps));
        let advertise = encode_vec(&advertise).map_err(encode_failed)?;
        let mut replies = self
            .server
            .start(self.id)
            .map_err(|e| egfx_error(&format!("start: {e}")))?;
        let confirm = self
            .server
            .process(self.id, &advertise)
            .map_err(|e| egfx_error(&format!("the assumed advertisement: {e}")))?;
        replies.extend(confirm);
        self.messages(replies).map_err(encode_failed)
    }

    /// Whether the capabilities were exchanged: frames can be sent.
    pub fn is_ready(&self) -> bool {
        self.server.is_ready()
    }

    /// The capability version negotiated (0 before).
    pub fn version(&self) -> u32 {
        self.seen.version.load(Relaxed)
    }

    /// Frame Acknowledge PDUs the client sent so far.
    pub fn acknowledged(&self) -> u32 {
        self.seen.acks.load(Relaxed)
    }

    /// IronRDP's server, to create and map surfaces and queue frames; [`drain`](Self::drain)
    /// then makes the messages.
    pub fn server(&mut self) -> &mut GraphicsPipelineServer {
        &mut self.server
    }

    /// What IronRDP's server queued, ZGFX-wrapped, as `drdynvc` messages.
    pub fn drain(&mut self) -> Result<Vec<Vec<u8>>, EncodeError> {
        let queued = self.server.drain_output();
        self.messages(queued)
    }

    /// `pdus`, hand-built, each ZGFX-wrapped (uncompressed) as a server sends them, as
    /// `drdynvc` messages.
    pub fn pdus(&self, pdus: &[GfxPdu]) -> Result<Vec<Vec<u8>>, EncodeError> {
        let mut out = Vec::new();
        for pdu in pdus {
            out.extend(self.payload(&wrap_uncompressed(&encode_vec(pdu)?))?);
        }
        Ok(out)
    }

    /// `payload` as it is (no ZGFX wrapping of ours: garbage, say) on the channel, as
    /// `drdynvc` messages: one Data PDU, or a Data First and Data PDUs for a long one.
    pub fn payload(&self, payload: &[u8]) -> Result<Vec<Vec<u8>>, EncodeError> {
        if payload.len() <= DVC_CHUNK {
            return Ok(vec![dvc::data(self.id, payload)?]);
        }
        let total = u32::try_from(payload.len())
            .map_err(|_| ironrdp_core::invalid_field_err("DataFirst", "length", "over 4 GiB", None))?;
        let mut chunks = payload.chunks(DVC_CHUNK);
        let first = chunks.next().unwrap_or_default();
        let mut out = vec![dvc::data_first(self.id, total, first)?];
        for chunk in chunks {
            out.push(dvc::data(self.id, chunk)?);
        }
        Ok(out)
    }

    fn messages(&self, messages: Vec<DvcMessage>) -> Result<Vec<Vec<u8>>, EncodeError> {
        let mut out = Vec::new();
        for message in messages {
            out.extend(self.payload(&encode_vec(message.as_ref())?)?);
        }
        Ok(out)
    }
}

fn egfx_error(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidState, "server graphics pipeline").with_detail(detail.to_owned())
}

fn encode_failed(e: EncodeError) -> Error {
    Error::new(ErrorKind::InvalidState, "server graphics pipeline")
        .with_detail(e.to_string())
        .with_source(e)
}

// ---------------------------------------------------------------------------------------------
// Codecs

/// The demo pattern ([`pattern_pixel`]) at `width` x `height`, as BGRX (a [`Picture`]'s data).
pub fn pattern_bgrx(width: u16, height: u16) -> Vec<u8> {
    let mut data = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
    for y in 0..height {
        for x in 0..width {
            let [r, g, b, _] = pattern_pixel(x, y, width, height);
            data.extend_from_slice(&[b, g, r, 0xff]);
        }
    }
    data
}

/// `picture` as one RDP 6.0 planar bitmap stream, top-down as the graphics pipeline wants it
/// (the fast-path one is bottom-up): raw planes, no alpha.
pub fn planar(picture: &Picture<'_>) -> Result<Vec<u8>, Error> {
    let (w, h) = (usize::from(picture.width()), usize::from(picture.height()));
    // One format byte, three planes, one pad byte ([MS-RDPEGDI] 2.2.2.5.1).
    let mut out = vec![0; 1 + w * h * 3 + 1];
    let pixels = picture.data().chunks_exact(4);
    let len = BitmapStreamEncoder::new(w, h)
        .encode_pixels_stream::<_, BgrAChannels>(pixels, &mut out, false)
        .map_err(|e| {
            Error::new(ErrorKind::InvalidState, "encode planar")
                .with_detail(e.to_string())
                .with_source(e)
        })?;
    out.truncate(len);
    Ok(out)
}

/// The progressive codec's tile side.
const TILE: usize = 64;

/// Base quantisation 6 in every band: coefficients are not scaled ([MS-RDPEGFX] 3.3.8.2.1).
const QUANT: ComponentCodecQuant = ComponentCodecQuant {
    ll3: 6,
    hl3: 6,
    lh3: 6,
    hh3: 6,
    hl2: 6,
    lh2: 6,
    hh2: 6,
    hl1: 6,
    lh1: 6,
    hh1: 6,
};

/// `picture` as one RemoteFX Progressive stream ([MS-RDPEGFX] 2.2.4.2) that draws it whole:
/// Sync, Context, Frame Begin, one Region of simple (single-pass, full-quality) tiles with
/// quantisation 6 in every band (no scaling), Frame End. Lossy only through the colour
/// conversion and the wavelet's rounding. `frame` numbers the stream.
pub fn progressive(picture: &Picture<'_>, frame: u32) -> Result<Vec<u8>, Error> {
    let tiles = progressive_tiles(picture)?;
    let region = ProgressiveRegion {
        tile_size: 64,
        rects: vec![RfxRectangle {
            x: 0,
            y: 0,
            width: picture.width(),
            height: picture.height(),
        }],
        quant_vals: vec![QUANT],
        quant_prog_vals: Vec::new(),
        flags: 0,
        tiles: tiles.iter().map(EncodedTile::block).collect(),
    };
    let blocks = [
        ProgressiveBlock::Sync(ProgressiveSyncPdu),
        ProgressiveBlock::Context(ProgressiveContextPdu {
            context_id: 0,
            tile_size: 64,
            flags: 0,
        }),
        ProgressiveBlock::FrameBegin(ProgressiveFrameBeginPdu {
            frame_index: frame,
            region_count: 1,
        }),
        ProgressiveBlock::Region(region),
        ProgressiveBlock::FrameEnd(ProgressiveFrameEndPdu),
    ];
    encode_progressive_stream(&blocks).map_err(encode_failed)
}

/// One tile's three encoded components.
struct EncodedTile {
    x: u16,
    y: u16,
    components: [Vec<u8>; 3],
}

impl EncodedTile {
    fn block(&self) -> ProgressiveTile<'_> {
        let [y_data, cb_data, cr_data] = &self.components;
        ProgressiveTile::Simple(TileSimple {
            quant_idx_y: 0,
            quant_idx_cb: 0,
            quant_idx_cr: 0,
            x_idx: self.x,
            y_idx: self.y,
            flags: 0,
            y_data,
            cb_data,
            cr_data,
            tail_data: &[],
        })
    }
}

fn progressive_tiles(picture: &Picture<'_>) -> Result<Vec<EncodedTile>, Error> {
    let (w, h) = (usize::from(picture.width()), usize::from(picture.height()));
    let mut tiles = Vec::new();
    for ty in 0..h.div_ceil(TILE) {
        for tx in 0..w.div_ceil(TILE) {
            let rgba = tile_rgba(picture, tx * TILE, ty * TILE);
            let mut planes = [
                vec![0i16; TILE * TILE],
                vec![0i16; TILE * TILE],
                vec![0i16; TILE * TILE],
            ];
            let [y, cb, cr] = &mut planes;
            rgba_to_ycbcr(&rgba, y, cb, cr);
            let mut components: [Vec<u8>; 3] = Default::default();
            for (plane, out) in planes.iter_mut().zip(&mut components) {
                *out = encode_component(plane)?;
            }
            let index = |i: usize| u16::try_from(i).map_err(|_| egfx_error("too many tiles"));
            tiles.push(EncodedTile {
                x: index(tx)?,
                y: index(ty)?,
                components,
            });
        }
    }
    Ok(tiles)
}

/// The 64 x 64 tile at (`left`, `top`) as RGBA, edge pixels repeated past the picture (what
/// the wavelet codes best; the client clips them off).
fn tile_rgba(picture: &Picture<'_>, left: usize, top: usize) -> Vec<u8> {
    let (w, h) = (usize::from(picture.width()), usize::from(picture.height()));
    let data = picture.data();
    let mut rgba = Vec::with_capacity(TILE * TILE * 4);
    for dy in 0..TILE {
        let y = (top + dy).min(h - 1);
        for dx in 0..TILE {
            let x = (left + dx).min(w - 1);
            let at = (y * w + x) * 4;
            rgba.extend_from_slice(&[data[at + 2], data[at + 1], data[at], 0xff]);
        }
    }
    rgba
}

fn encode_component(plane: &mut [i16]) -> Result<Vec<u8>, Error> {
    // RLGR1 of 4096 coefficients: worst case a little over 2 bytes each.
    let mut out = vec![0; TILE * TILE * 3];
    let len = encode_first_pass(plane, &mut out, &QUANT, &ComponentCodecQuant::LOSSLESS, false)
        .map_err(|e| egfx_error(&format!("progressive tile: {e:?}")))?;
    out.truncate(len);
    Ok(out)
}
