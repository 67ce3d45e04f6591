//! Encoders for whole-desktop updates, for callers that pre-encode what
//! [`Connection::replay`](crate::Connection::replay) sends (benchmarks, decoder tests).
//!
//! Each function takes a [`Picture`] (32 bpp BGRX, top-down rows: the layout of the demo
//! server's own framebuffer) and returns complete fast-path PDUs, ready to be written as they
//! are:
//!
//! - [`bitmap_updates`]: Bitmap Updates ([MS-RDPBCGR] 2.2.9.1.1.3.1.2), uncompressed 32 bpp
//!   or planar (RDP 6.0 bitmap streams, [MS-RDPEGDI] 2.2.2.5.1, with RLE per tile unless raw
//!   planes are smaller), in tiles of at most 64 x 40 (uncompressed) or 64 x 64 (planar), as
//!   many tiles of one row per PDU as fit in 0x7FFF bytes;
//! - [`remotefx_surface_bits`]: one Set Surface Bits command ([MS-RDPBCGR] 2.2.9.2.1) holding a
//!   RemoteFX message ([MS-RDPRFX] 2.2.2) for the whole picture, cut into fast-path fragments
//!   of 16 374 bytes (what IronRDP's own server does);
//! - [`frame_marker`]: a frame's begin or end marker, which draws nothing;
//! - [`split_pdus`] and [`refragment`]: whole PDUs one by one, and one update cut into
//!   fragments, for scripts that send a frame slowly ([`Connection::play`](crate::Connection::play)).
//!
//! [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
//! [MS-RDPEGDI]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpegdi/
//! [MS-RDPRFX]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdprfx/

use async_rdp::{Error, ErrorKind};
use ironrdp_core::{Encode, WriteCursor};
use ironrdp_graphics::color_conversion::to_64x64_ycbcr_tile;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_graphics::rdp6::{BgrAChannels, BitmapEncodeError, BitmapStreamEncoder};
use ironrdp_graphics::rfx_encode_component;
use ironrdp_pdu::codecs::rfx::{
    Block, ChannelsPdu, CodecChannel, CodecVersionsPdu, ContextPdu, FrameBeginPdu, FrameEndPdu, OperatingMode, Quant,
    RegionPdu, RfxChannel, RfxRectangle, SyncPdu, Tile, TileSetPdu,
};
use ironrdp_pdu::fast_path::{FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode};
use ironrdp_pdu::geometry::{ExclusiveRectangle, InclusiveRectangle};
use ironrdp_pdu::rdp::capability_sets::{CapabilitySet, CodecProperty, EntropyBits, RemoteFxContainer};
use ironrdp_pdu::surface_commands::{ExtendedBitmapDataPdu, FrameMarkerPdu, SurfaceBitsPdu, SurfaceCommand};

pub use ironrdp_pdu::codecs::rfx::EntropyAlgorithm;
pub use ironrdp_pdu::surface_commands::FrameAction;

use crate::pdu::{self, BitmapEncoder};

/// A picture to encode: `height` rows of `width` pixels, 4 bytes each (blue, green, red,
/// unused), top-down, with no padding between rows.
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
}

impl<'a> Picture<'a> {
    /// Checks that `data` holds exactly `width` x `height` BGRX pixels, both sides at least 1.
    pub fn new(data: &'a [u8], width: u16, height: u16) -> Result<Self, Error> {
        let expected = usize::from(width) * usize::from(height) * 4;
        if width == 0 || height == 0 || data.len() != expected {
            return Err(Error::new(ErrorKind::InvalidState, "picture").with_detail(format!(
                "{} bytes for a {width}x{height} BGRX picture (expected {expected}, both sides at least 1)",
                data.len()
            )));
        }
        Ok(Self { data, width, height })
    }

    /// No pixels at all (what a zero-sized framebuffer shows); encoders skip it.
    pub(crate) fn empty() -> Picture<'static> {
        Picture {
            data: &[],
            width: 0,
            height: 0,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// The pixels.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Pixel row `y`, columns `left..=right`, as BGRX bytes.
    pub(crate) fn row(&self, y: u16, left: u16, right: u16) -> &'a [u8] {
        let start = (usize::from(y) * usize::from(self.width) + usize::from(left)) * 4;
        let end = start + (usize::from(right) - usize::from(left) + 1) * 4;
        &self.data[start..end]
    }

    fn all(&self) -> InclusiveRectangle {
        InclusiveRectangle {
            left: 0,
            top: 0,
            right: self.width - 1,
            bottom: self.height - 1,
        }
    }
}

/// How [`bitmap_updates`] encodes each tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitmapCodec {
    /// Uncompressed 32 bpp, bottom-up BGRX rows, tiles of at most 64 x 40 (what the demo
    /// server's own session sends).
    Uncompressed,
    /// Planar: RDP 6.0 bitmap streams of 32 bpp (ARGB planes, no alpha, RLE unless the raw planes
    /// are smaller), tiles of at most 64 x 64, without the TS_CD_HEADER (flag
    /// `NO_BITMAP_COMPRESSION_HDR`, as Windows servers send them to clients that announce it,
    /// which IronRDP's does).
    Planar,
}

/// The whole `picture` as fast-path Bitmap Updates in `codec`.
///
/// The result is a run of whole PDUs, none over 0x7FFF bytes; each holds tiles of one row of
/// tiles only, so that the bounding box of its rectangles is exactly what it updates.
pub fn bitmap_updates(picture: &Picture<'_>, codec: BitmapCodec) -> Result<Vec<u8>, Error> {
    let mut encoder = BitmapEncoder::new(codec);
    encoder.start(picture, &picture.all());
    let mut out = Vec::new();
    while let Some(batch) = encoder.next_batch(picture)? {
        out.extend_from_slice(batch);
    }
    Ok(out)
}

/// What a client offered for RemoteFX in its Bitmap Codecs capability set: the codec id
/// surface commands must carry, and the entropy coder it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFxOffer {
    /// The codec id the client gave RemoteFX.
    pub codec_id: u8,
    /// RLGR1 or RLGR3, as the client's first RemoteFX capability asks.
    pub entropy: EntropyAlgorithm,
}

impl RemoteFxOffer {
    /// The RemoteFX offer among a client's capability sets (the client's Confirm Active), if
    /// there is one.
    pub fn from_client_capabilities(capabilities: &[CapabilitySet]) -> Option<Self> {
        capabilities.iter().find_map(|set| {
            let CapabilitySet::BitmapCodecs(codecs) = set else {
                return None;
            };
            codecs.0.iter().find_map(|codec| match &codec.property {
                CodecProperty::RemoteFx(RemoteFxContainer::ClientContainer(container)) => {
                    let entropy = match container.caps_data.0 .0.first().map(|cap| &cap.entropy_bits) {
                        Some(EntropyBits::Rlgr3) => EntropyAlgorithm::Rlgr3,
                        _ => EntropyAlgorithm::Rlgr1,
                    };
                    Some(Self {
                        codec_id: codec.id,
                        entropy,
                    })
                }
                _ => None,
            })
        })
    }
}

/// Fast-path fragment payload size for surface commands: IronRDP's server uses this.
const SURFACE_FRAGMENT: usize = 16_374;

/// RemoteFX tiles are 64 x 64.
const RFX_TILE: u16 = 64;

/// Room for one encoded tile component: four bytes a coefficient, far more than RLGR of
/// quantised coefficients ever takes.
const RFX_COMPONENT_MAX: usize = 64 * 64 * 4;

/// The whole `picture` as one RemoteFX frame in a Set Surface Bits command whose destination is
/// the whole desktop, cut into fast-path Surface Commands fragments.
///
/// The RemoteFX message has one channel the size of the picture, one region rectangle
/// covering it, and every 64 x 64 tile, quantised with the RemoteFX default quantisation
/// values (those IronRDP's server uses) and entropy-coded as `offer` asks. With `headers`,
/// the message starts with the header messages (Sync, Context in image mode, Channels, Codec
/// Versions), which a server sends before its first frame and may repeat.
pub fn remotefx_surface_bits(
    picture: &Picture<'_>,
    offer: &RemoteFxOffer,
    frame_index: u32,
    headers: bool,
) -> Result<Vec<u8>, Error> {
    let encode_error = |e: ironrdp_core::EncodeError| pdu::encode_error("encode remotefx frame", e);
    let (width, height) = (picture.width, picture.height);
    let (tiles_x, tiles_y) = (width.div_ceil(RFX_TILE), height.div_ceil(RFX_TILE));
    let quant = Quant::default();

    let tile_count = usize::from(tiles_x) * usize::from(tiles_y);
    let mut encoded = vec![0u8; tile_count * 3 * RFX_COMPONENT_MAX];
    let mut tiles = Vec::with_capacity(tile_count);
    let (mut y, mut cb, mut cr) = ([0i16; 4096], [0i16; 4096], [0i16; 4096]);
    let positions = (0..tiles_y).flat_map(|ty| (0..tiles_x).map(move |tx| (tx, ty)));
    for ((tx, ty), room) in positions.zip(encoded.chunks_mut(3 * RFX_COMPONENT_MAX)) {
        let (left, top) = (tx * RFX_TILE, ty * RFX_TILE);
        let tile_w = (width - left).min(RFX_TILE);
        let tile_h = (height - top).min(RFX_TILE);
        let stride = usize::from(width) * 4;
        let input = &picture.data[usize::from(top) * stride + usize::from(left) * 4..];
        to_64x64_ycbcr_tile(
            input,
            u32::from(tile_w),
            u32::from(tile_h),
            u32::try_from(stride).map_err(|_| rfx_error("the picture is too wide"))?,
            PixelFormat::BgrX32,
            &mut y,
            &mut cb,
            &mut cr,
        )
        .map_err(|e| rfx_error(&format!("colour conversion: {e:?}")))?;
        let (y_room, rest) = room.split_at_mut(RFX_COMPONENT_MAX);
        let (cb_room, cr_room) = rest.split_at_mut(RFX_COMPONENT_MAX);
        let component = |input: &mut [i16; 4096], room: &'_ mut [u8]| -> Result<usize, Error> {
            rfx_encode_component(input, room, &quant, offer.entropy)
                .map_err(|e| rfx_error(&format!("tile ({tx}, {ty}): {e:?}")))
        };
        let y_len = component(&mut y, y_room)?;
        let cb_len = component(&mut cb, cb_room)?;
        let cr_len = component(&mut cr, cr_room)?;
        tiles.push(Tile {
            y_quant_index: 0,
            cb_quant_index: 0,
            cr_quant_index: 0,
            x: tx,
            y: ty,
            y_data: &y_room[..y_len],
            cb_data: &cb_room[..cb_len],
            cr_data: &cr_room[..cr_len],
        });
    }

    let mut blocks = Vec::with_capacity(8);
    if headers {
        let channel = RfxChannel {
            width: i16::try_from(width).map_err(|_| rfx_error("RemoteFX channels are at most 32767 wide"))?,
            height: i16::try_from(height).map_err(|_| rfx_error("RemoteFX channels are at most 32767 high"))?,
        };
        blocks.push(Block::Sync(SyncPdu));
        blocks.push(Block::CodecChannel(CodecChannel::Context(ContextPdu {
            flags: OperatingMode::IMAGE_MODE,
            entropy_algorithm: offer.entropy,
        })));
        blocks.push(Block::Channels(ChannelsPdu(vec![channel])));
        blocks.push(Block::CodecVersions(CodecVersionsPdu));
    }
    blocks.push(Block::CodecChannel(CodecChannel::FrameBegin(FrameBeginPdu {
        index: frame_index,
        number_of_regions: 1,
    })));
    blocks.push(Block::CodecChannel(CodecChannel::Region(RegionPdu {
        rectangles: vec![RfxRectangle {
            x: 0,
            y: 0,
            width,
            height,
        }],
    })));
    blocks.push(Block::CodecChannel(CodecChannel::TileSet(TileSetPdu {
        entropy_algorithm: offer.entropy,
        quants: vec![quant.clone()],
        tiles,
    })));
    blocks.push(Block::CodecChannel(CodecChannel::FrameEnd(FrameEndPdu)));

    let mut message = vec![0u8; blocks.iter().map(Encode::size).sum()];
    let mut cursor = WriteCursor::new(&mut message);
    for block in &blocks {
        block.encode(&mut cursor).map_err(encode_error)?;
    }
    debug_assert_eq!(cursor.pos(), message.len());

    let command = SurfaceCommand::SetSurfaceBits(SurfaceBitsPdu {
        destination: ExclusiveRectangle {
            left: 0,
            top: 0,
            right: width,
            bottom: height,
        },
        extended_bitmap_data: ExtendedBitmapDataPdu {
            bpp: 32,
            codec_id: offer.codec_id,
            width,
            height,
            header: None,
            data: &message,
        },
    });
    let command = ironrdp_core::encode_vec(&command).map_err(encode_error)?;
    fragment(UpdateCode::SurfaceCommands, &command, SURFACE_FRAGMENT)
}

/// `data` as fast-path updates of `code`, `fragment` bytes of payload at most each.
fn fragment(code: UpdateCode, data: &[u8], fragment: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(data.len() + data.len() / fragment * 8 + 8);
    let pieces = data.chunks(fragment).count();
    for (i, piece) in data.chunks(fragment).enumerate() {
        let fragmentation = match (i, pieces) {
            (_, 1) => Fragmentation::Single,
            (0, _) => Fragmentation::First,
            (i, n) if i + 1 == n => Fragmentation::Last,
            _ => Fragmentation::Next,
        };
        pdu::append_fastpath_fragment(&mut out, code, fragmentation, piece)
            .map_err(|e| pdu::encode_error("encode fast-path fragment", e))?;
    }
    Ok(out)
}

/// A fast-path Surface Commands update holding one Frame Marker ([MS-RDPBCGR] 2.2.9.2.3):
/// the begin or end of frame `frame_id`. It draws nothing; a client answers the end with a
/// Frame Acknowledge when it announced that capability.
pub fn frame_marker(action: FrameAction, frame_id: u32) -> Result<Vec<u8>, Error> {
    let command = SurfaceCommand::FrameMarker(FrameMarkerPdu {
        frame_action: action,
        frame_id: Some(frame_id),
    });
    let command = ironrdp_core::encode_vec(&command).map_err(|e| pdu::encode_error("encode frame marker", e))?;
    fragment(UpdateCode::SurfaceCommands, &command, command.len())
}

/// The whole fast-path PDUs in `bytes` (what [`bitmap_updates`] returns), one slice each, so
/// that a caller can send them one at a time.
pub fn split_pdus(bytes: &[u8]) -> Result<Vec<&[u8]>, Error> {
    let mut pdus = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = match rest {
            [_, high, low, ..] if high & 0x80 != 0 => usize::from(high & 0x7f) << 8 | usize::from(*low),
            [_, len, ..] => usize::from(*len),
            _ => 0,
        };
        if len < 2 || len > rest.len() {
            return Err(Error::new(ErrorKind::InvalidFrame, "split fast-path PDUs")
                .with_detail(format!("a PDU of {len} bytes where {} remain", rest.len())));
        }
        let (pdu, tail) = rest.split_at(len);
        pdus.push(pdu);
        rest = tail;
    }
    Ok(pdus)
}

/// One unfragmented fast-path PDU with one update, sent again as `pieces` fragments (First,
/// Next, ..., Last: [MS-RDPBCGR] 2.2.9.1.2.1), each a whole PDU; concatenated, as
/// [`split_pdus`] takes them apart.
pub fn refragment(pdu: &[u8], pieces: usize) -> Result<Vec<u8>, Error> {
    let invalid = |detail: String| Error::new(ErrorKind::InvalidFrame, "refragment fast-path PDU").with_detail(detail);
    let mut cursor = ironrdp_core::ReadCursor::new(pdu);
    ironrdp_core::decode_cursor::<FastPathHeader>(&mut cursor).map_err(|e| invalid(e.to_string()))?;
    let update =
        ironrdp_core::decode_cursor::<FastPathUpdatePdu<'_>>(&mut cursor).map_err(|e| invalid(e.to_string()))?;
    if !cursor.is_empty() || update.fragmentation != Fragmentation::Single || update.compression_flags.is_some() {
        return Err(invalid("not one whole uncompressed update".to_owned()));
    }
    let size = update.data.len().div_ceil(pieces.max(1)).max(1);
    fragment(update.update_code, update.data, size)
}

fn rfx_error(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidState, "encode remotefx frame").with_detail(detail.to_owned())
}

/// Appends one planar tile (an RDP 6.0 bitmap stream, bottom-up) of `picture` to `out`: RLE
/// planes, or raw planes when they are smaller.
pub(crate) fn planar_tile(picture: &Picture<'_>, tile: &InclusiveRectangle, out: &mut Vec<u8>) -> Result<(), Error> {
    let (w, h) = (
        usize::from(tile.right - tile.left + 1),
        usize::from(tile.bottom - tile.top + 1),
    );
    let pixels = (tile.top..=tile.bottom)
        .rev()
        .flat_map(|y| picture.row(y, tile.left, tile.right).chunks_exact(4));
    // One format byte, three raw planes, one pad byte ([MS-RDPEGDI] 2.2.2.5.1).
    let raw = 1 + w * h * 3 + 1;
    let start = out.len();
    // RLE output can be larger than the raw planes; give it room, then keep the smaller.
    out.resize(start + raw * 2, 0);
    let rle =
        BitmapStreamEncoder::new(w, h).encode_pixels_stream::<_, BgrAChannels>(pixels.clone(), &mut out[start..], true);
    let len = match rle {
        Ok(len) if len <= raw => len,
        Ok(_) | Err(BitmapEncodeError::Rle(_)) => BitmapStreamEncoder::new(w, h)
            .encode_pixels_stream::<_, BgrAChannels>(pixels, &mut out[start..], false)
            .map_err(planar_error)?,
        Err(e) => return Err(planar_error(e)),
    };
    out.truncate(start + len);
    Ok(())
}

fn planar_error(e: BitmapEncodeError) -> Error {
    Error::new(ErrorKind::InvalidState, "encode planar tile")
        .with_detail(e.to_string())
        .with_source(e)
}

#[cfg(test)]
mod tests {
    use ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities;
    use ironrdp_pdu::Action;
    use ironrdp_session::image::DecodedImage;
    use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};

    use super::*;
    use crate::pattern_pixel;

    /// The test pattern, shifted so that neighbouring frames differ everywhere.
    fn picture_data(width: u16, height: u16, shift: u16) -> Vec<u8> {
        let mut data = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
        for y in 0..height {
            for x in 0..width {
                let [r, g, b, _] = pattern_pixel((x + shift) % width, y, width, height);
                data.extend_from_slice(&[b, g, r, 0xFF]);
            }
        }
        data
    }

    fn stage() -> ActiveStage {
        ActiveStageBuilder {
            static_channels: Default::default(),
            user_channel_id: 1002,
            io_channel_id: 1003,
            message_channel_id: None,
            share_id: 0x1_03EA,
            compression_type: None,
            enable_server_pointer: true,
            pointer_software_rendering: false,
        }
        .build()
    }

    /// Feeds `bytes` (whole fast-path PDUs) to a client decoder.
    fn decode(stage: &mut ActiveStage, image: &mut DecodedImage, bytes: &[u8]) -> usize {
        let mut rest = bytes;
        let mut pdus = 0;
        while !rest.is_empty() {
            let info = ironrdp_pdu::find_size(rest).expect("header").expect("whole header");
            assert_eq!(info.action, Action::FastPath);
            assert!(info.length <= pdu::MAX_FASTPATH_PDU);
            for output in stage
                .process(image, Action::FastPath, &rest[..info.length], None)
                .expect("decode")
            {
                assert!(
                    matches!(
                        output,
                        ActiveStageOutput::GraphicsUpdate(_) | ActiveStageOutput::ResponseFrame(_)
                    ),
                    "{output:?}"
                );
            }
            rest = &rest[info.length..];
            pdus += 1;
        }
        pdus
    }

    /// The largest difference of one channel between the decoded image and the picture.
    fn max_error(image: &DecodedImage, data: &[u8]) -> u8 {
        let mut worst = 0;
        for (rgba, bgrx) in image.data().chunks_exact(4).zip(data.chunks_exact(4)) {
            assert_eq!(rgba[3], 0xFF);
            for (a, b) in [(rgba[0], bgrx[2]), (rgba[1], bgrx[1]), (rgba[2], bgrx[0])] {
                worst = worst.max(a.abs_diff(b));
            }
        }
        worst
    }

    #[test]
    fn lossless_bitmaps_decode_exactly() {
        for codec in [BitmapCodec::Uncompressed, BitmapCodec::Planar] {
            for (w, h) in [(320, 200), (301, 77), (64, 64), (1, 1)] {
                let mut stage = stage();
                let mut image = DecodedImage::new(PixelFormat::RgbA32, w, h);
                for shift in [0, 7] {
                    let data = picture_data(w, h, shift);
                    let picture = Picture::new(&data, w, h).expect("picture");
                    let bytes = bitmap_updates(&picture, codec).expect("encode");
                    decode(&mut stage, &mut image, &bytes);
                    assert_eq!(max_error(&image, &data), 0, "{codec:?} {w}x{h} shift {shift}");
                }
                assert!(!stage.take_bitmap_recovery_request(), "{codec:?}: no tile was rejected");
            }
        }
    }

    #[test]
    fn planar_compresses_flat_areas_and_falls_back_to_raw_planes() {
        let (w, h) = (64, 64);
        let flat = vec![0x40; usize::from(w) * usize::from(h) * 4];
        let picture = Picture::new(&flat, w, h).expect("picture");
        let mut out = Vec::new();
        planar_tile(&picture, &picture.all(), &mut out).expect("encode");
        assert!(out.len() < 1000, "flat tile takes {} bytes", out.len());

        // Noise: RLE cannot win, so the raw planes (format byte, planes, pad byte) are used.
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..flat.len())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let picture = Picture::new(&noise, w, h).expect("picture");
        out.clear();
        planar_tile(&picture, &picture.all(), &mut out).expect("encode");
        assert_eq!(out.len(), 1 + 64 * 64 * 3 + 1);
    }

    #[test]
    fn remotefx_decodes_close_to_the_picture() {
        let codecs = client_codecs_capabilities(&["remotefx:on"]).expect("codecs");
        let offer = RemoteFxOffer::from_client_capabilities(&[CapabilitySet::BitmapCodecs(codecs)]).expect("offer");
        assert_eq!(offer.entropy, EntropyAlgorithm::Rlgr3);
        for (w, h) in [(320, 200), (130, 70)] {
            let mut stage = stage();
            let mut image = DecodedImage::new(PixelFormat::RgbA32, w, h);
            for (index, shift) in [(0, 0), (1, 5)] {
                let data = picture_data(w, h, shift);
                let picture = Picture::new(&data, w, h).expect("picture");
                let bytes = remotefx_surface_bits(&picture, &offer, index, index == 0).expect("encode");
                let pdus = decode(&mut stage, &mut image, &bytes);
                assert_eq!(pdus, bytes.len().div_ceil(SURFACE_FRAGMENT + 6), "{w}x{h}: fragments");
                // Lossy, and the pattern's 1-px checkerboard is the worst case for a wavelet
                // codec; a misplaced or garbled tile would be off by far more on average.
                let mean = image
                    .data()
                    .chunks_exact(4)
                    .zip(data.chunks_exact(4))
                    .map(|(a, b)| u32::from(a[0].abs_diff(b[2])) + u32::from(a[2].abs_diff(b[0])))
                    .sum::<u32>() as f64
                    / (f64::from(w) * f64::from(h) * 2.0);
                assert!(mean < 8.0, "{w}x{h}: mean error {mean}");
            }
        }
    }

    #[test]
    fn remotefx_offer_is_absent_without_remotefx() {
        let codecs = client_codecs_capabilities(&["remotefx:off"]).expect("codecs");
        assert_eq!(
            RemoteFxOffer::from_client_capabilities(&[CapabilitySet::BitmapCodecs(codecs)]),
            None
        );
    }

    #[test]
    fn pictures_must_match_their_size() {
        assert!(Picture::new(&[0; 16], 2, 2).is_ok());
        assert!(Picture::new(&[0; 15], 2, 2).is_err());
        assert!(Picture::new(&[], 0, 0).is_err());
    }
}
