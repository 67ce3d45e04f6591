//! The graphics pipeline ([MS-RDPEGFX]) rows of the session benchmark: the frames the demo
//! server's [`Pipeline`] makes (RemoteFX Progressive, and AVC420 with the `h264` feature),
//! addressed to the client's `drdynvc` channel, and IronRDP's own pipeline client for the loops
//! that drive `ActiveStage` directly.
//!
//! A replay writes everything without reading what the client answers, so the set-up (DVC
//! capabilities, the Create Request, a Capabilities Confirm, ResetGraphics, CreateSurface,
//! MapSurfaceToOutput) is made in advance for a client assumed to advertise [`confirmed`]:
//! both kinds of client here advertise it first, so a real server would pick it too.
//!
//! [MS-RDPEGFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpegfx/

use std::any::TypeId;

use async_rdp_demo_server::channel::egfx::{self, Pipeline};
use async_rdp_demo_server::channel::{self, ChannelData};
use async_rdp_demo_server::encode::Picture;
use ironrdp_dvc::DrdynvcClient;
use ironrdp_egfx::client::{GraphicsPipelineClient, GraphicsPipelineHandler};
use ironrdp_egfx::pdu::{CapabilitiesV107Flags, CapabilitySet};
use ironrdp_pdu::gcc::ChannelName;
use ironrdp_session::ActiveStageBuilder;

/// The dynamic channel id the server opens the pipeline on (the client takes any).
const GRAPHICS_DVC: u32 = 7;

/// The MCS id of `drdynvc` in the decode-only loop, which has no connection to assign one:
/// clear of the I/O and message channels a server assigns (checked in [`Ids::decode`]).
const DECODE_DRDYNVC: u16 = 1010;

/// Which codec a pipeline row sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Progressive,
    #[cfg(feature = "h264")]
    Avc420,
}

/// The MCS ids a stream is addressed with: the user channel (the initiator) and `drdynvc`.
/// They depend on the channels each client joined, so every connection gets its own wrapping
/// of the same `drdynvc` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ids {
    pub user: u16,
    pub drdynvc: u16,
}

impl Ids {
    /// The ids of the server side of a connection.
    pub fn of(connection: &async_rdp_demo_server::Connection) -> Self {
        let name = ChannelName::from_utf8("drdynvc").expect("a channel name");
        Self {
            user: connection.result.user_channel_id,
            drdynvc: connection
                .result
                .static_channels
                .get_channel_id_by_channel_name(&name)
                .expect("the client joined drdynvc"),
        }
    }

    /// The ids of the decode-only loop (see [`add_decode_channels`]), whose stage has these
    /// others: a channel id taken twice would route the pipeline elsewhere.
    pub fn decode(user: u16, others: &[Option<u16>]) -> Self {
        assert!(
            !others.contains(&Some(DECODE_DRDYNVC)) && user != DECODE_DRDYNVC,
            "the decode loop's drdynvc id is taken"
        );
        Self {
            user,
            drdynvc: DECODE_DRDYNVC,
        }
    }
}

/// The capability set the server confirms: 10.7 with a small cache, AVC off in a build that
/// cannot decode it (what both clients advertise first).
pub fn confirmed() -> CapabilitySet {
    let mut flags = CapabilitiesV107Flags::SMALL_CACHE;
    if cfg!(not(feature = "h264")) {
        flags |= CapabilitiesV107Flags::AVC_DISABLED;
    }
    CapabilitySet::V10_7 { flags }
}

/// A pipeline stream as `drdynvc` messages, before MCS addressing: the set-up, then each
/// picture's frame (StartFrame, the codec's command, EndFrame).
pub struct Stream {
    pub setup: Vec<Vec<u8>>,
    pub frames: Vec<Vec<Vec<u8>>>,
}

impl Stream {
    /// Encodes `pictures` (BGRX) at `width` x `height`: progressive as one full-screen stream
    /// of simple tiles each, AVC420 as a group of pictures (an IDR frame, then P frames) that
    /// starts over with each replay cycle.
    pub fn new(kind: Kind, pictures: &[Vec<u8>], width: u16, height: u16) -> Self {
        let mut pipeline = Pipeline::new(GRAPHICS_DVC);
        let mut setup = pipeline.open().expect("open the pipeline");
        setup.extend(
            pipeline
                .assume_advertised(&[confirmed()])
                .expect("confirm the capabilities"),
        );
        let gfx = pipeline.server();
        gfx.set_output_dimensions(width, height);
        let surface = gfx.create_surface(width, height).expect("create a surface");
        assert!(gfx.map_surface_to_output(surface, 0, 0), "map the surface");
        setup.extend(pipeline.drain().expect("the set-up"));
        let payloads = payloads(kind, pictures, width, height);
        let frames = payloads
            .into_iter()
            .enumerate()
            .map(|(k, payload)| {
                let timestamp = k as u32 * 16;
                let gfx = pipeline.server();
                let queued = match kind {
                    Kind::Progressive => gfx.send_remotefx_progressive_frame(surface, 0, payload, timestamp),
                    #[cfg(feature = "h264")]
                    Kind::Avc420 => {
                        let region = ironrdp_egfx::pdu::Avc420Region::full_frame(width, height, 22);
                        gfx.send_avc420_frame(surface, &payload, &[region], timestamp)
                    }
                };
                queued.expect("queue a frame");
                pipeline.drain().expect("a frame")
            })
            .collect();
        Self { setup, frames }
    }

    /// Every message, set-up first, for the checksum.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.setup.iter().chain(self.frames.iter().flatten()).map(Vec::as_slice)
    }

    /// The set-up and the frames as whole server frames (MCS Send Data Indications on
    /// `drdynvc`, in static channel chunks).
    pub fn wire(&self, ids: Ids) -> (Vec<u8>, Vec<Vec<u8>>) {
        let frames = self.frames.iter().map(|f| wire(f, ids)).collect();
        (wire(&self.setup, ids), frames)
    }
}

fn wire(messages: &[Vec<u8>], ids: Ids) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        let data = ChannelData::Message(message.clone());
        out.extend(channel::encode(ids.user, ids.drdynvc, &data).expect("a channel message"));
    }
    out
}

/// The codec payload of each picture.
fn payloads(kind: Kind, pictures: &[Vec<u8>], width: u16, height: u16) -> Vec<Vec<u8>> {
    match kind {
        Kind::Progressive => pictures
            .iter()
            .enumerate()
            .map(|(k, data)| {
                let picture = Picture::new(data, width, height).expect("a picture");
                egfx::progressive(&picture, k as u32).expect("a progressive stream")
            })
            .collect(),
        #[cfg(feature = "h264")]
        Kind::Avc420 => avc420(pictures, width, height),
    }
}

/// H.264 with IronRDP's OpenH264 encoder (in the build with `h264`), at its default settings.
#[cfg(feature = "h264")]
fn avc420(pictures: &[Vec<u8>], width: u16, height: u16) -> Vec<Vec<u8>> {
    use ironrdp_egfx::encode::{EncodeFrame, OpenH264Encoder};
    let mut encoder = OpenH264Encoder::new().expect("an H.264 encoder");
    pictures
        .iter()
        .map(|bgrx| {
            let rgba: Vec<u8> = bgrx.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0], 0xFF]).collect();
            let frame = EncodeFrame {
                data: &rgba,
                width: u32::from(width),
                height: u32::from(height),
            };
            encode_unskipped(&mut encoder, frame)
        })
        .collect()
}

/// OpenH264's rate control skips pictures (no output) while over its default budget, and a
/// skipped picture leaves the references alone: encode it again until it comes out.
#[cfg(feature = "h264")]
fn encode_unskipped(
    encoder: &mut ironrdp_egfx::encode::OpenH264Encoder,
    frame: ironrdp_egfx::encode::EncodeFrame<'_>,
) -> Vec<u8> {
    use ironrdp_egfx::encode::H264Encoder as _;
    for _ in 0..1000 {
        let bitstream = encoder.encode(frame).expect("encode a picture");
        if !bitstream.is_empty() {
            return bitstream;
        }
    }
    panic!("the encoder skipped a picture 1000 times");
}

/// IronRDP's pipeline client with a handler that only advertises: what a user of IronRDP
/// writes, registered on a `drdynvc` client.
pub fn ironrdp_channel() -> DrdynvcClient {
    DrdynvcClient::new().with_dynamic_channel(GraphicsPipelineClient::new(Box::new(Advertise), decoder()))
}

/// Gives the decode-only loop's stage `drdynvc` with the pipeline, at a fixed id (the
/// connection that would assign one is not there).
pub fn add_decode_channels(builder: &mut ActiveStageBuilder) {
    builder.static_channels.insert(ironrdp_channel());
    builder
        .static_channels
        .attach_channel_id(TypeId::of::<DrdynvcClient>(), DECODE_DRDYNVC);
}

struct Advertise;

impl GraphicsPipelineHandler for Advertise {
    fn capabilities(&self) -> Vec<CapabilitySet> {
        vec![confirmed()]
    }
}

#[cfg(feature = "h264")]
fn decoder() -> Option<Box<dyn ironrdp_egfx::decode::H264Decoder>> {
    let decoder = ironrdp_egfx::decode::OpenH264Decoder::new().expect("an H.264 decoder");
    Some(Box::new(decoder))
}

#[cfg(not(feature = "h264"))]
fn decoder() -> Option<Box<dyn ironrdp_egfx::decode::H264Decoder>> {
    None
}
