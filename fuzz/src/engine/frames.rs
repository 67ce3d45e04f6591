//! RDP frames in a byte stream: cutting a stream into its whole frames, and making a mutated
//! frame's length fields agree with its size again.

use crate::engine::BoxError;

/// The whole frames at the start of a stream.
pub fn frames_of(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Ok(Some(info)) = async_rdp::ironrdp_pdu::find_size(bytes) {
        if info.length == 0 || info.length > bytes.len() {
            break;
        }
        let (frame, rest) = bytes.split_at(info.length);
        frames.push(frame.to_vec());
        bytes = rest;
    }
    frames
}

/// Cuts a recorded stream into its frames.
pub fn split_frames(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, BoxError> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let info = async_rdp::ironrdp_pdu::find_size(bytes)?.ok_or("a recorded frame is cut short")?;
        let (frame, rest) = bytes.split_at(info.length);
        frames.push(frame.to_vec());
        bytes = rest;
    }
    Ok(frames)
}

/// Makes a frame's length fields agree with its size again after a mutation: the TPKT or
/// fast-path length, and inside, the fast-path update size or the MCS user-data length and
/// the Share Control total length, where the frame has them in their usual place.
pub fn fix_lengths(frame: &mut Vec<u8>) {
    let Some(&first) = frame.first() else { return };
    if first == 3 && frame.len() >= 4 {
        fix_tpkt_lengths(frame);
    } else if first & 0b11 == 0 && frame.len() >= 2 {
        fix_fast_path_lengths(frame, first);
    }
}

/// A TPKT frame (version 3, at least 4 bytes): its length, and those of an MCS Send Data
/// Indication inside.
fn fix_tpkt_lengths(frame: &mut [u8]) {
    let Ok(total) = u16::try_from(frame.len()) else { return };
    frame[2..4].copy_from_slice(&total.to_be_bytes());
    // MCS Send Data Indication (application tag 26), its PER length at 13 and the user data
    // after it, starting with a Share Control header whose first field is its total length.
    if frame.len() > 15 && frame[7] >> 2 == 26 {
        let (form, start) = if frame[13] & 0x80 == 0 { (1, 14) } else { (2, 15) };
        let user = frame.len() - start;
        match form {
            1 if user < 0x80 => frame[13] = u8::try_from(user).unwrap_or(0),
            2 if user < 0x4000 => {
                let per = u16::try_from(user).unwrap_or(0) | 0x8000;
                frame[13..15].copy_from_slice(&per.to_be_bytes());
            }
            _ => return,
        }
        if user >= 2 {
            let total = u16::try_from(user).unwrap_or(u16::MAX);
            frame[start..start + 2].copy_from_slice(&total.to_le_bytes());
        }
    }
}

/// A fast-path frame (action 0, at least 2 bytes) starting with `first`: its length, and the
/// size of a first update without compression.
fn fix_fast_path_lengths(frame: &mut Vec<u8>, first: u8) {
    let header = if frame[1] & 0x80 != 0 { 3 } else { 2 };
    if frame.len() < header {
        return;
    }
    let mut body = frame[header..].to_vec();
    // One update without compression: updateHeader, then its size (little-endian).
    if body.len() >= 3 && body[0] >> 6 == 0 {
        let size = u16::try_from(body.len() - 3).unwrap_or(u16::MAX);
        body[1..3].copy_from_slice(&size.to_le_bytes());
    }
    let mut out = vec![first];
    if body.len() + 2 < 0x80 {
        out.push(u8::try_from(body.len() + 2).unwrap_or(0));
    } else {
        let Ok(total) = u16::try_from(body.len() + 3) else {
            return;
        };
        if total > 0x7fff {
            return;
        }
        out.extend_from_slice(&(total | 0x8000).to_be_bytes());
    }
    out.extend_from_slice(&body);
    *frame = out;
}
