//! The server-to-client PDUs of the active session, encoded with IronRDP's PDU types.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};

use async_rdp::{Error, ErrorKind};
use ironrdp_core::{Encode, EncodeError};
use ironrdp_pdu::bitmap::{BitmapData, BitmapUpdateData, Compression};
use ironrdp_pdu::fast_path::{EncryptionFlags, FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode};
use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};
use ironrdp_pdu::mcs::{DisconnectProviderUltimatum, DisconnectReason, McsMessage, SendDataIndication};
use ironrdp_pdu::pointer::{ColorPointerAttribute, Point16, PointerAttribute};
use ironrdp_pdu::rdp::client_info::CompressionType;
use ironrdp_pdu::rdp::headers::{
    CompressionFlags, ServerDeactivateAll, ShareControlHeader, ShareControlPdu, ShareDataHeader, ShareDataPdu,
    StreamPriority,
};
use ironrdp_pdu::rdp::server_error_info::{ErrorInfo, ProtocolIndependentCode, ServerSetErrorInfoPdu};
use ironrdp_pdu::rdp::session_info::{
    InfoData, InfoType, LogonExFlags, LogonInfo, LogonInfoExtended, LogonInfoVersion2, SaveSessionInfoPdu,
    ServerAutoReconnect,
};
use ironrdp_pdu::x224::X224;

use crate::encode::{planar_tile, BitmapCodec, Picture};

/// The largest fast-path PDU: its length field has 15 bits ([MS-RDPBCGR] 2.2.9.1.2).
pub(crate) const MAX_FASTPATH_PDU: usize = 0x7FFF;

/// Uncompressed bitmap tiles are at most this size: 64 x 40 x 4 bytes = 10 KiB, so three fit
/// in one PDU.
pub(crate) const TILE_W: u16 = 64;
pub(crate) const TILE_H: u16 = 40;
/// Planar tiles are at most this size (what Windows servers use).
pub(crate) const PLANAR_TILE: u16 = 64;

/// Fast-path header (at most 3 bytes), update header (1) and size (2), and the
/// TS_UPDATE_BITMAP_DATA header (update type and rectangle count, 2 + 2).
const BITMAP_PDU_OVERHEAD: usize = 3 + 1 + 2 + 4;
/// TS_BITMAP_DATA without its pixels.
const BITMAP_RECT_OVERHEAD: usize = 18;

/// Writes go out once this much is queued, so a frame is not one system call per PDU.
const WRITE_BATCH: usize = 128 * 1024;

/// The MCS ids the session's slow-path PDUs travel with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channels {
    pub(crate) user: u16,
    pub(crate) io: u16,
}

pub(crate) fn encode_error(context: &'static str, e: EncodeError) -> Error {
    Error::new(ErrorKind::InvalidState, context)
        .with_detail(e.to_string())
        .with_source(e)
}

/// Appends the encoding of `pdu` to `out`.
fn append<T: Encode>(out: &mut Vec<u8>, pdu: &T) -> Result<(), EncodeError> {
    let start = out.len();
    out.resize(start + pdu.size(), 0);
    let written = ironrdp_core::encode(pdu, &mut out[start..])?;
    out.truncate(start + written);
    Ok(())
}

/// A Share Control PDU on the I/O channel, in an MCS Send Data Indication.
fn append_share_control(out: &mut Vec<u8>, ch: Channels, pdu: ShareControlPdu) -> Result<(), EncodeError> {
    let header = ShareControlHeader {
        share_control_pdu: pdu,
        pdu_source: ch.io,
        share_id: 0,
    };
    let indication = SendDataIndication {
        initiator_id: ch.user,
        channel_id: ch.io,
        user_data: Cow::Owned(ironrdp_core::encode_vec(&header)?),
    };
    append(out, &X224(indication))
}

/// A Share Data PDU on the I/O channel.
pub(crate) fn append_share_data(out: &mut Vec<u8>, ch: Channels, pdu: ShareDataPdu) -> Result<(), EncodeError> {
    append_share_control(
        out,
        ch,
        ShareControlPdu::Data(ShareDataHeader {
            share_data_pdu: pdu,
            stream_priority: StreamPriority::Undefined,
            compression_flags: CompressionFlags::empty(),
            compression_type: CompressionType::K8,
        }),
    )
}

/// Server Deactivate All ([MS-RDPBCGR] 2.2.3.1).
pub(crate) fn append_deactivate_all(out: &mut Vec<u8>, ch: Channels) -> Result<(), EncodeError> {
    append_share_control(out, ch, ShareControlPdu::ServerDeactivateAll(ServerDeactivateAll))
}

/// The logon notifications ([MS-RDPBCGR] 2.2.10.1): a Logon Info Version 2 (the logon is
/// complete, with the session id), then a Logon Info Extended carrying a server auto-reconnect
/// cookie (ARC_SC_PRIVATE_PACKET). IronRDP's client reports the first as a completed logon and
/// only the second as a cookie, so both are needed.
pub(crate) fn append_logon(
    out: &mut Vec<u8>,
    ch: Channels,
    session_id: u32,
    user_name: &str,
    random_bits: [u8; 16],
) -> Result<(), EncodeError> {
    // IronRDP sizes the name fields by bytes, not UTF-16 units: keep them ASCII, and within
    // the 512-byte (256 character, with the terminator) limit of the field.
    let user_name: String = user_name
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' })
        .take(255)
        .collect();
    append_share_data(
        out,
        ch,
        ShareDataPdu::SaveSessionInfo(SaveSessionInfoPdu {
            info_type: InfoType::LogonLong,
            info_data: InfoData::LogonInfoV2(LogonInfoVersion2 {
                logon_info: LogonInfo {
                    session_id,
                    user_name,
                    domain_name: String::new(),
                },
            }),
        }),
    )?;
    append_share_data(
        out,
        ch,
        ShareDataPdu::SaveSessionInfo(SaveSessionInfoPdu {
            info_type: InfoType::LogonExtended,
            info_data: InfoData::LogonExtended(LogonInfoExtended {
                present_fields_flags: LogonExFlags::AUTO_RECONNECT_COOKIE,
                auto_reconnect: Some(ServerAutoReconnect {
                    logon_id: session_id,
                    random_bits,
                }),
                errors_info: None,
            }),
        }),
    )
}

/// The graceful server-side goodbye: Set Error Info (if the client takes it) and an MCS
/// Disconnect Provider Ultimatum ([MS-RDPBCGR] 1.3.1.4.2).
pub(crate) fn append_goodbye(out: &mut Vec<u8>, ch: Channels, error_info: bool) -> Result<(), EncodeError> {
    if error_info {
        append_share_data(
            out,
            ch,
            ShareDataPdu::ServerSetErrorInfo(ServerSetErrorInfoPdu(ErrorInfo::ProtocolIndependentCode(
                ProtocolIndependentCode::RpcInitiatedDisconnect,
            ))),
        )?;
    }
    append(
        out,
        &X224(McsMessage::DisconnectProviderUltimatum(
            DisconnectProviderUltimatum::from_reason(DisconnectReason::ProviderInitiated),
        )),
    )
}

/// One fast-path PDU with one unfragmented update.
fn append_fastpath(out: &mut Vec<u8>, code: UpdateCode, data: &[u8]) -> Result<(), EncodeError> {
    append_fastpath_fragment(out, code, Fragmentation::Single, data)
}

/// One fast-path PDU with one update, or one fragment of one.
pub(crate) fn append_fastpath_fragment(
    out: &mut Vec<u8>,
    code: UpdateCode,
    fragmentation: Fragmentation,
    data: &[u8],
) -> Result<(), EncodeError> {
    let update = FastPathUpdatePdu {
        fragmentation,
        update_code: code,
        compression_flags: None,
        compression_type: None,
        data,
    };
    let header = FastPathHeader::new(EncryptionFlags::empty(), update.size());
    append(out, &header)?;
    append(out, &update)
}

/// The pointer: a Pointer Position update, then a 32 x 32, 32 bpp New Pointer (an amber arrow
/// with a black outline and real alpha; hot spot at its tip), both fast-path.
pub(crate) fn append_pointer(out: &mut Vec<u8>, x: u16, y: u16) -> Result<(), EncodeError> {
    append_fastpath(
        out,
        UpdateCode::PositionPointer,
        &ironrdp_core::encode_vec(&Point16 { x, y })?,
    )?;

    const SIZE: u16 = 32;
    let inside = |c: i32, r: i32| -> bool {
        let head = (0..20).contains(&r) && (0..=r * 11 / 20).contains(&c);
        let tail = (14..27).contains(&r) && ((r - 14) / 2 + 3..(r - 14) / 2 + 7).contains(&c);
        head || tail
    };
    let mut xor_mask = Vec::with_capacity(usize::from(SIZE) * usize::from(SIZE) * 4);
    // Colour pointers are stored bottom-up ([MS-RDPBCGR] 2.2.9.1.1.4.4).
    for r in (0..i32::from(SIZE)).rev() {
        for c in 0..i32::from(SIZE) {
            let bgra = if !inside(c, r) {
                [0, 0, 0, 0]
            } else if inside(c - 1, r) && inside(c + 1, r) && inside(c, r - 1) && inside(c, r + 1) {
                [0x00, 0xB0, 0xFF, 0xFF]
            } else {
                [0, 0, 0, 0xFF]
            };
            xor_mask.extend_from_slice(&bgra);
        }
    }
    // 1 bpp, rows padded to 2 bytes: all zero, the XOR mask's alpha decides.
    let and_mask = vec![0u8; usize::from(SIZE / 8) * usize::from(SIZE)];
    let pointer = PointerAttribute {
        xor_bpp: 32,
        color_pointer: ColorPointerAttribute {
            cache_index: 0,
            hot_spot: Point16 { x: 0, y: 0 },
            width: SIZE,
            height: SIZE,
            xor_mask: &xor_mask,
            and_mask: &and_mask,
        },
    };
    append_fastpath(out, UpdateCode::NewPointer, &ironrdp_core::encode_vec(&pointer)?)
}

/// Encodes rectangles of a picture as fast-path Bitmap Updates, in tiles (of at most
/// [`TILE_W`] x [`TILE_H`] uncompressed, [`PLANAR_TILE`] square planar), as many tiles of one
/// row per PDU as fit under [`MAX_FASTPATH_PDU`]. Uncompressed tiles are 32 bpp, bottom-up
/// rows, BGRX ([MS-RDPBCGR] 2.2.9.1.1.3.1.2.2); planar ones are RDP 6.0 bitmap streams.
///
/// The buffers are kept from one frame to the next.
pub(crate) struct BitmapEncoder {
    codec: BitmapCodec,
    /// The payloads of the pending tiles, back to back.
    payload: Vec<u8>,
    tiles: Vec<PendingTile>,
    /// One planar tile, before it is known whether it fits in the pending PDU.
    scratch: Vec<u8>,
    update: Vec<u8>,
    out: Vec<u8>,
    /// The area being encoded (already clipped) and the top-left corner of its next tile.
    area: Option<InclusiveRectangle>,
    next: Option<(u16, u16)>,
}

/// A tile waiting for its PDU, and where its payload is.
struct PendingTile {
    rect: InclusiveRectangle,
    start: usize,
    len: usize,
}

impl Default for BitmapEncoder {
    fn default() -> Self {
        Self::new(BitmapCodec::Uncompressed)
    }
}

impl BitmapEncoder {
    pub(crate) fn new(codec: BitmapCodec) -> Self {
        Self {
            codec,
            payload: Vec::new(),
            tiles: Vec::new(),
            scratch: Vec::new(),
            update: Vec::new(),
            out: Vec::new(),
            area: None,
            next: None,
        }
    }

    fn tile_size(&self) -> (u16, u16) {
        match self.codec {
            BitmapCodec::Uncompressed => (TILE_W, TILE_H),
            BitmapCodec::Planar => (PLANAR_TILE, PLANAR_TILE),
        }
    }

    /// Starts encoding `area` of `picture`, clipped to the picture.
    pub(crate) fn start(&mut self, picture: &Picture<'_>, area: &InclusiveRectangle) {
        let (w, h) = (picture.width(), picture.height());
        self.tiles.clear();
        self.payload.clear();
        if w == 0 || h == 0 || area.left >= w || area.top >= h || area.left > area.right || area.top > area.bottom {
            self.area = None;
            self.next = None;
            return;
        }
        self.area = Some(InclusiveRectangle {
            left: area.left,
            top: area.top,
            right: area.right.min(w - 1),
            bottom: area.bottom.min(h - 1),
        });
        self.next = Some((area.left, area.top));
    }

    /// The next batch of whole PDUs (about [`WRITE_BATCH`] bytes, never more than that plus
    /// one PDU), or `None` once the area is done.
    pub(crate) fn next_batch(&mut self, picture: &Picture<'_>) -> Result<Option<&[u8]>, Error> {
        let Some(area) = self.area.clone() else {
            return Ok(None);
        };
        let (tile_w, tile_h) = self.tile_size();
        self.out.clear();
        let mut pdu_size = BITMAP_PDU_OVERHEAD + self.pending_size();
        while let Some((left, top)) = self.next {
            let tile = InclusiveRectangle {
                left,
                top,
                right: area.right.min(left.saturating_add(tile_w - 1)),
                bottom: area.bottom.min(top.saturating_add(tile_h - 1)),
            };
            // A PDU holds tiles of one row only, so that the bounding box of its rectangles
            // (what a client may report as the damaged region) is exactly what it updates.
            if self.tiles.last().is_some_and(|last| last.rect.top != tile.top) {
                self.finish_pdu()?;
                pdu_size = BITMAP_PDU_OVERHEAD;
                if self.out.len() >= WRITE_BATCH {
                    return Ok(Some(&self.out));
                }
            }
            let len = match self.codec {
                BitmapCodec::Uncompressed => tile_bytes(&tile),
                BitmapCodec::Planar => {
                    self.scratch.clear();
                    planar_tile(picture, &tile, &mut self.scratch)?;
                    self.scratch.len()
                }
            };
            let size = BITMAP_RECT_OVERHEAD + len;
            if pdu_size + size > MAX_FASTPATH_PDU {
                self.finish_pdu()?;
                pdu_size = BITMAP_PDU_OVERHEAD;
                if self.out.len() >= WRITE_BATCH {
                    // This tile is encoded again by the next call.
                    return Ok(Some(&self.out));
                }
            }
            pdu_size += size;
            let start = self.payload.len();
            match self.codec {
                BitmapCodec::Uncompressed => {
                    for y in (tile.top..=tile.bottom).rev() {
                        self.payload.extend_from_slice(picture.row(y, tile.left, tile.right));
                    }
                }
                BitmapCodec::Planar => self.payload.extend_from_slice(&self.scratch),
            }
            self.next = if tile.right < area.right {
                Some((tile.right + 1, top))
            } else if tile.bottom < area.bottom {
                Some((area.left, tile.bottom + 1))
            } else {
                None
            };
            self.tiles.push(PendingTile { rect: tile, start, len });
        }
        self.finish_pdu()?;
        self.area = None;
        Ok(Some(&self.out))
    }

    /// What the pending tiles take in a PDU.
    fn pending_size(&self) -> usize {
        self.tiles.iter().map(|t| BITMAP_RECT_OVERHEAD + t.len).sum()
    }

    /// Appends one PDU holding the pending tiles to the batch.
    fn finish_pdu(&mut self) -> Result<(), Error> {
        if self.tiles.is_empty() {
            return Ok(());
        }
        let compressed = self.codec == BitmapCodec::Planar;
        let mut rectangles = Vec::with_capacity(self.tiles.len());
        for tile in &self.tiles {
            let (width, height) = (tile.rect.width(), tile.rect.height());
            rectangles.push(BitmapData {
                rectangle: tile.rect.clone(),
                width,
                height,
                bits_per_pixel: 32,
                // Planar tiles go without the TS_CD_HEADER, as Windows servers send them to
                // clients that announce NO_BITMAP_COMPRESSION_HDR (IronRDP's does).
                compression_flags: if compressed {
                    Compression::BITMAP_COMPRESSION | Compression::NO_BITMAP_COMPRESSION_HDR
                } else {
                    Compression::empty()
                },
                compressed_data_header: None,
                bitmap_data: &self.payload[tile.start..tile.start + tile.len],
            });
        }
        let update = BitmapUpdateData { rectangles };
        self.update.clear();
        append(&mut self.update, &update).map_err(|e| encode_error("encode bitmap update", e))?;
        append_fastpath(&mut self.out, UpdateCode::Bitmap, &self.update)
            .map_err(|e| encode_error("encode bitmap update", e))?;
        self.tiles.clear();
        self.payload.clear();
        Ok(())
    }
}

fn tile_bytes(tile: &InclusiveRectangle) -> usize {
    usize::from(tile.width()) * usize::from(tile.height()) * 4
}

/// Random-enough bytes for the auto-reconnect cookie, from the standard library's per-process
/// random hash keys (the demo server needs no cryptographic quality).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let state = RandomState::new();
    let mut out = [0u8; N];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        let word = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use ironrdp_core::{decode, ReadCursor};
    use ironrdp_pdu::fast_path::FastPathUpdate;

    use super::*;
    use crate::pattern::Framebuffer;

    /// Splits a byte string of fast-path PDUs, checking each header.
    fn pdus(bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let info = ironrdp_pdu::find_size(rest).expect("header").expect("whole header");
            assert_eq!(info.action, ironrdp_pdu::Action::FastPath);
            assert!(info.length <= MAX_FASTPATH_PDU, "{}", info.length);
            out.push(&rest[..info.length]);
            rest = &rest[info.length..];
        }
        out
    }

    #[test]
    fn tiles_cover_the_area_exactly_once_in_bounded_pdus() {
        for (w, h) in [(1280, 720), (301, 257), (64, 40), (1, 1), (65, 41)] {
            let fb = Framebuffer::new(w, h);
            let fb = fb.picture();
            let mut bytes = Vec::new();
            let mut batches = 0;
            let mut encoder = BitmapEncoder::default();
            encoder.start(
                &fb,
                &InclusiveRectangle {
                    left: 0,
                    top: 0,
                    right: w - 1,
                    bottom: h - 1,
                },
            );
            while let Some(batch) = encoder.next_batch(&fb).expect("encode") {
                batches += 1;
                assert!(batch.len() <= WRITE_BATCH + MAX_FASTPATH_PDU);
                bytes.extend_from_slice(batch);
            }
            assert!(batches >= 1);
            let mut seen = vec![0u8; usize::from(w) * usize::from(h)];
            for pdu in pdus(&bytes) {
                let mut cursor = ReadCursor::new(pdu);
                let _header: FastPathHeader = ironrdp_core::decode_cursor(&mut cursor).expect("fast-path header");
                let update: FastPathUpdatePdu<'_> = ironrdp_core::decode_cursor(&mut cursor).expect("update");
                assert!(cursor.is_empty());
                let FastPathUpdate::Bitmap(bitmap) =
                    FastPathUpdate::decode_with_code(update.data, update.update_code).expect("bitmap")
                else {
                    panic!("not a bitmap update");
                };
                let rows: std::collections::HashSet<u16> = bitmap.rectangles.iter().map(|r| r.rectangle.top).collect();
                assert_eq!(rows.len(), 1, "one tile row per PDU");
                for rect in bitmap.rectangles {
                    let r = &rect.rectangle;
                    assert_eq!((rect.width, rect.height), (r.width(), r.height()));
                    assert_eq!(rect.bitmap_data.len(), tile_bytes(r));
                    // Bottom-up: the first row in the data is the rectangle's last.
                    assert_eq!(
                        &rect.bitmap_data[..usize::from(r.width()) * 4],
                        fb.row(r.bottom, r.left, r.right)
                    );
                    for y in r.top..=r.bottom {
                        for x in r.left..=r.right {
                            seen[usize::from(y) * usize::from(w) + usize::from(x)] += 1;
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{w}x{h}: every pixel exactly once");
        }
    }

    #[test]
    fn slow_path_pdus_decode() {
        let ch = Channels { user: 1002, io: 1003 };
        let mut out = Vec::new();
        append_logon(&mut out, ch, 7, "d\u{e9}mo", random_bytes()).expect("logon");
        append_deactivate_all(&mut out, ch).expect("deactivate");
        append_goodbye(&mut out, ch, true).expect("goodbye");
        let mut rest = &out[..];
        let mut count = 0;
        while !rest.is_empty() {
            let info = ironrdp_pdu::find_size(rest).expect("header").expect("whole");
            let _: X224<McsMessage<'_>> = decode(&rest[..info.length]).expect("mcs");
            rest = &rest[info.length..];
            count += 1;
        }
        assert_eq!(count, 5);
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }
}
