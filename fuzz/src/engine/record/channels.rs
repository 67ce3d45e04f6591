//! Seeds of virtual channel traffic for `session_frames`: clipboard and dynamic channel (with
//! display control and the graphics pipeline) PDUs in Channel PDU Headers and MCS Send Data Indications, on the channel
//! ids the harness gives its sessions' channels; well-formed, chunked, oversized, malformed,
//! and on a channel nobody joined. Made with the demo server's encoders rather than recorded:
//! the demo server serves no channel of its own.

use async_rdp::ironrdp_pdu::geometry::ExclusiveRectangle;
use async_rdp_demo_server::channel::egfx::{self, Pipeline};
use async_rdp_demo_server::channel::{self, cliprdr, dvc, FLAG_FIRST, FLAG_LAST};
use async_rdp_demo_server::encode::Picture;
use async_rdp_demo_server::ChannelData;
use ironrdp_egfx::pdu::{
    CacheToSurfacePdu, CapabilitiesConfirmPdu, CapabilitiesV107Flags, CapabilitySet, Codec1Type, Codec2Type, Color,
    CreateSurfacePdu, EndFramePdu, GfxPdu, MapSurfaceToOutputPdu, PixelFormat, Point, ResetGraphicsPdu, SolidFillPdu,
    StartFramePdu, SurfaceToCachePdu, Timestamp, WireToSurface1Pdu, WireToSurface2Pdu,
};

use crate::engine::BoxError;
use crate::harness::session::{CLIPRDR_CHANNEL, DRDYNVC_CHANNEL};

/// The MCS id of the server's user channel (IronRDP's acceptor uses this one).
const USER_CHANNEL: u16 = 1002;

/// An MCS channel id nobody joined.
const UNJOINED: u16 = 1100;

/// The dynamic channel id display control is opened on.
const DISPLAY: u32 = 1;

/// The dynamic channel id the graphics pipeline is opened on.
const GRAPHICS: u32 = 2;

/// The graphics pipeline's surface (and output) size in the seeds: small, so that a frame of
/// each codec stays a few kilobytes.
const SURFACE: (u16, u16) = (64, 48);

/// The seeds, by file name.
pub fn channel_seeds() -> Result<Vec<(&'static str, Vec<u8>)>, BoxError> {
    let clipboard_ready = [
        cliprdr_message(cliprdr::capabilities()?)?,
        cliprdr_message(cliprdr::monitor_ready()?)?,
        cliprdr_message(cliprdr::format_list_response(true)?)?,
    ]
    .concat();
    let display_ready = [
        dvc_message(dvc::capabilities_request()?)?,
        dvc_message(dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?)?,
        dvc_message(dvc::data(DISPLAY, &dvc::display_control_caps(16, 8192, 8192)?)?)?,
    ]
    .concat();
    let text = cliprdr::format_list(&[(cliprdr::CF_UNICODETEXT, None), (0xC000, Some("PNG"))])?;
    Ok(vec![
        ("channel-cliprdr-ready", clipboard_ready.clone()),
        ("channel-cliprdr-format-list", cliprdr_message(text)?),
        (
            "channel-cliprdr-text-response",
            cliprdr_message(cliprdr::unicode_text_response("fuzz: é 漢字")?)?,
        ),
        // Three chunks of one message (4000 bytes of data).
        (
            "channel-cliprdr-chunked-response",
            cliprdr_message(cliprdr::format_data_response(&[0x41; 4000])?)?,
        ),
        ("channel-cliprdr-oversized", oversized_clipboard()?),
        ("channel-cliprdr-malformed", malformed_clipboard()?),
        ("channel-drdynvc-display-control", display_ready.clone()),
        ("channel-drdynvc-oversized", oversized_dvc()?),
        (
            "channel-unjoined",
            channel::encode(USER_CHANNEL, UNJOINED, &ChannelData::Message(vec![0x5a; 64]))?,
        ),
        ("stream-channels", [clipboard_ready, display_ready].concat()),
        ("channel-egfx-planar", egfx_stream(Frame::Planar)?),
        ("channel-egfx-uncompressed", egfx_stream(Frame::Uncompressed)?),
        ("channel-egfx-progressive", egfx_stream(Frame::Progressive)?),
        ("channel-egfx-fill-cache", egfx_stream(Frame::FillAndCache)?),
    ])
}

fn cliprdr_message(message: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    Ok(channel::encode(
        USER_CHANNEL,
        CLIPRDR_CHANNEL,
        &ChannelData::Message(message),
    )?)
}

fn dvc_message(message: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    Ok(channel::encode(
        USER_CHANNEL,
        DRDYNVC_CHANNEL,
        &ChannelData::Message(message),
    )?)
}

fn cliprdr_chunk(length: u32, flags: u32, data: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    let chunk = ChannelData::Chunk { length, flags, data };
    Ok(channel::encode(USER_CHANNEL, CLIPRDR_CHANNEL, &chunk)?)
}

/// A Format Data Response declaring 100 MB: its first chunk, two more, and a last one.
fn oversized_clipboard() -> Result<Vec<u8>, BoxError> {
    let declared = (100 << 20) + 8;
    let mut first = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
    first.extend_from_slice(&(100u32 << 20).to_le_bytes());
    first.resize(1600, 0x41);
    Ok([
        cliprdr_chunk(declared, FLAG_FIRST, first)?,
        cliprdr_chunk(declared, 0, vec![0x42; 1600])?,
        cliprdr_chunk(declared, 0, vec![0x42; 1600])?,
        cliprdr_chunk(declared, FLAG_LAST, vec![0x42; 16])?,
    ]
    .concat())
}

/// A truncated clipboard header, an unknown msgType, a dataLen past the data, a PDU shorter
/// than its channel header, a message longer than its first chunk declared.
fn malformed_clipboard() -> Result<Vec<u8>, BoxError> {
    let mut long_data = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
    long_data.extend_from_slice(&1000u32.to_le_bytes());
    long_data.extend_from_slice(b"ten bytes.");
    Ok([
        cliprdr_message(vec![0x02, 0x00, 0x00])?,
        cliprdr_message(vec![0x77, 0x77, 0, 0, 0, 0, 0, 0])?,
        cliprdr_message(long_data)?,
        channel::encode(USER_CHANNEL, CLIPRDR_CHANNEL, &ChannelData::Raw(vec![1, 2, 3]))?,
        cliprdr_chunk(16, FLAG_FIRST, vec![0x02, 0, 0, 0, 8, 0, 0, 0])?,
        cliprdr_chunk(16, 0, vec![0; 64])?,
        cliprdr_chunk(16, FLAG_LAST, vec![0; 8])?,
    ]
    .concat())
}

/// Display control opened, then a Data First declaring 100 MB and some of its Data PDUs.
fn oversized_dvc() -> Result<Vec<u8>, BoxError> {
    let mut stream = vec![
        dvc_message(dvc::capabilities_request()?)?,
        dvc_message(dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?)?,
        dvc_message(dvc::data_first(DISPLAY, 100 << 20, &[0; 1500])?)?,
    ];
    for _ in 0..3 {
        stream.push(dvc_message(dvc::data(DISPLAY, &[0x43; 1590])?)?);
    }
    stream.push(dvc_message(dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?)?);
    stream.push(dvc_message(dvc::close(DISPLAY)?)?);
    Ok(stream.concat())
}

// ---------------------------------------------------------------------------------------------
// The graphics pipeline

/// What an `egfx_stream` draws after the set-up.
#[derive(Debug, Clone, Copy)]
enum Frame {
    Planar,
    Uncompressed,
    Progressive,
    /// A solid fill, a surface-to-cache and a cache-to-surface.
    FillAndCache,
}

/// The graphics pipeline opened (DVC capabilities, Create Request), then from the server its
/// Capabilities Confirm (10.7), ResetGraphics, CreateSurface, MapSurfaceToOutput, and one
/// frame of `frame`, each PDU ZGFX-wrapped in a Data PDU of its own.
fn egfx_stream(frame: Frame) -> Result<Vec<u8>, BoxError> {
    let pipeline = Pipeline::new(GRAPHICS);
    let (width, height) = SURFACE;
    let caps = CapabilitySet::V10_7 {
        flags: CapabilitiesV107Flags::SMALL_CACHE | CapabilitiesV107Flags::AVC_DISABLED,
    };
    let mut pdus = vec![
        GfxPdu::CapabilitiesConfirm(CapabilitiesConfirmPdu::from_typed(&caps)),
        GfxPdu::ResetGraphics(ResetGraphicsPdu {
            width: u32::from(width),
            height: u32::from(height),
            monitors: Vec::new(),
        }),
        GfxPdu::CreateSurface(CreateSurfacePdu {
            surface_id: 0,
            width,
            height,
            pixel_format: PixelFormat::XRgb,
        }),
        GfxPdu::MapSurfaceToOutput(MapSurfaceToOutputPdu {
            surface_id: 0,
            output_origin_x: 0,
            output_origin_y: 0,
        }),
        GfxPdu::StartFrame(StartFramePdu {
            timestamp: Timestamp {
                milliseconds: 0,
                seconds: 0,
                minutes: 0,
                hours: 0,
            },
            frame_id: 1,
        }),
    ];
    pdus.extend(frame_pdus(frame)?);
    pdus.push(GfxPdu::EndFrame(EndFramePdu { frame_id: 1 }));
    let mut messages = pipeline.open()?;
    messages.extend(pipeline.pdus(&pdus)?);
    let mut stream = Vec::new();
    for message in messages {
        stream.extend(dvc_message(message)?);
    }
    Ok(stream)
}

/// The drawing commands of one `frame` on surface 0.
fn frame_pdus(frame: Frame) -> Result<Vec<GfxPdu>, BoxError> {
    let (width, height) = SURFACE;
    let data = egfx::pattern_bgrx(width, height);
    let picture = Picture::new(&data, width, height)?;
    let whole = ExclusiveRectangle {
        left: 0,
        top: 0,
        right: width,
        bottom: height,
    };
    let wire = |codec_id, bitmap_data| {
        GfxPdu::WireToSurface1(WireToSurface1Pdu {
            surface_id: 0,
            codec_id,
            pixel_format: PixelFormat::XRgb,
            destination_rectangle: whole.clone(),
            bitmap_data,
        })
    };
    Ok(match frame {
        Frame::Planar => vec![wire(Codec1Type::Planar, egfx::planar(&picture)?)],
        Frame::Uncompressed => vec![wire(Codec1Type::Uncompressed, data.clone())],
        Frame::Progressive => vec![GfxPdu::WireToSurface2(WireToSurface2Pdu {
            surface_id: 0,
            codec_id: Codec2Type::RemoteFxProgressive,
            codec_context_id: 0,
            pixel_format: PixelFormat::XRgb,
            bitmap_data: egfx::progressive(&picture, 0)?,
        })],
        Frame::FillAndCache => fill_and_cache(&whole),
    })
}

fn fill_and_cache(whole: &ExclusiveRectangle) -> Vec<GfxPdu> {
    vec![
        GfxPdu::SolidFill(SolidFillPdu {
            surface_id: 0,
            fill_pixel: Color {
                b: 0x20,
                g: 0x80,
                r: 0xe0,
                xa: 0xff,
            },
            rectangles: vec![whole.clone()],
        }),
        GfxPdu::SurfaceToCache(SurfaceToCachePdu {
            surface_id: 0,
            cache_key: 0x1234,
            cache_slot: 1,
            source_rectangle: ExclusiveRectangle {
                left: 0,
                top: 0,
                right: 16,
                bottom: 16,
            },
        }),
        GfxPdu::CacheToSurface(CacheToSurfacePdu {
            cache_slot: 1,
            surface_id: 0,
            destination_points: vec![Point { x: 32, y: 16 }],
        }),
    ]
}
