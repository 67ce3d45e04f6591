//! Whether the server is in the middle of drawing a frame: a fast-path fragment sequence not yet
//! ended, or a surface frame begun (frame marker) and not yet ended.
//!
//! A program that decides "the screen is drawn" from a quiet period (a screenshot tool, a
//! kiosk watchdog) must not decide it between two fragments of one update on a slow link, or
//! between a frame's begin marker and its surface bits. IronRDP reassembles fragments and
//! answers frame markers, but does not say whether one is open, so the session reads the
//! headers of each fast-path frame itself: a few bytes per update, no allocation.

use ironrdp_core::{decode_cursor, ReadCursor};
use ironrdp_pdu::fast_path::{FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode};
use ironrdp_pdu::surface_commands::{FrameAction, SurfaceCommand};
use ironrdp_pdu::Action;

/// The open/closed state of fragment sequences and surface frames, fed every server frame.
#[derive(Debug, Default)]
pub(crate) struct FrameProgress {
    fragments_open: bool,
    surface_frame_open: bool,
}

/// What one server frame carried, as far as drawing goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The frame's only updates were surface commands without any surface bits (frame markers
    /// alone): whatever IronRDP reports for it changed no pixel.
    pub(crate) draws_nothing: bool,
}

impl FrameProgress {
    /// Reads the update headers of one server frame. Frames it cannot read (slow path,
    /// compressed surface commands, a malformed header) change nothing here; the decoder
    /// reports what is wrong with them.
    pub(crate) fn observe(&mut self, action: Action, frame: &[u8]) -> Observed {
        if action != Action::FastPath {
            return Observed::default();
        }
        let mut cursor = ReadCursor::new(frame);
        if decode_cursor::<FastPathHeader>(&mut cursor).is_err() {
            return Observed::default();
        }
        let mut markers_only = None;
        while !cursor.is_empty() {
            let Ok(update) = decode_cursor::<FastPathUpdatePdu<'_>>(&mut cursor) else {
                break;
            };
            self.fragments_open = matches!(update.fragmentation, Fragmentation::First | Fragmentation::Next);
            let readable = update.fragmentation == Fragmentation::Single
                && update.compression_flags.is_none_or(|flags| flags.is_empty());
            let markers = if update.update_code == UpdateCode::SurfaceCommands && readable {
                self.surface_commands(update.data)
            } else {
                false
            };
            markers_only = Some(markers_only.unwrap_or(true) && markers);
        }
        Observed {
            draws_nothing: markers_only.unwrap_or(false),
        }
    }

    /// Follows the frame markers among `data`'s surface commands; `true` when there were only
    /// frame markers (no surface bits).
    fn surface_commands(&mut self, data: &[u8]) -> bool {
        let mut cursor = ReadCursor::new(data);
        let mut markers_only = true;
        while !cursor.is_empty() {
            match decode_cursor::<SurfaceCommand<'_>>(&mut cursor) {
                Ok(SurfaceCommand::FrameMarker(marker)) => {
                    self.surface_frame_open = marker.frame_action == FrameAction::Begin;
                }
                Ok(_) => markers_only = false,
                Err(_) => return false,
            }
        }
        markers_only
    }

    /// Whether a fragment sequence or a surface frame is open.
    pub(crate) fn in_progress(&self) -> bool {
        self.fragments_open || self.surface_frame_open
    }

    /// Forgets open sequences: after a reactivation the server starts over.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fast-path frame (action 0, no flags, 2-byte length) of one update.
    fn fast_path(update_header: u8, data: &[u8]) -> Vec<u8> {
        let body_len = 1 + 2 + data.len();
        let total = 3 + body_len;
        let mut frame = vec![0x00, 0x80 | u8::try_from(total >> 8).unwrap(), (total & 0xff) as u8];
        frame.push(update_header);
        frame.extend_from_slice(&u16::try_from(data.len()).unwrap().to_le_bytes());
        frame.extend_from_slice(data);
        frame
    }

    /// A surface-commands update header: code 4, fragmentation in bits 4-5.
    fn surface_header(fragmentation: u8) -> u8 {
        0x04 | (fragmentation << 4)
    }

    fn marker(action: u16, id: u32) -> Vec<u8> {
        let mut m = vec![0x04, 0x00];
        m.extend_from_slice(&action.to_le_bytes());
        m.extend_from_slice(&id.to_le_bytes());
        m
    }

    /// A SetSurfaceBits command with a 1x1 uncompressed 32 bpp bitmap.
    fn surface_bits() -> Vec<u8> {
        let mut c = vec![0x01, 0x00];
        for v in [0u16, 0, 1, 1] {
            c.extend_from_slice(&v.to_le_bytes());
        }
        c.extend_from_slice(&[32, 0, 0, 0]); // bpp, flags, reserved, codec id
        c.extend_from_slice(&1u16.to_le_bytes());
        c.extend_from_slice(&1u16.to_le_bytes());
        c.extend_from_slice(&4u32.to_le_bytes());
        c.extend_from_slice(&[1, 2, 3, 4]);
        c
    }

    #[test]
    fn a_begun_surface_frame_is_in_progress_until_it_ends() {
        let mut p = FrameProgress::default();
        let seen = p.observe(Action::FastPath, &fast_path(surface_header(0), &marker(0, 7)));
        assert!(seen.draws_nothing);
        assert!(p.in_progress());
        let seen = p.observe(Action::FastPath, &fast_path(surface_header(0), &surface_bits()));
        assert!(!seen.draws_nothing);
        assert!(p.in_progress());
        let seen = p.observe(Action::FastPath, &fast_path(surface_header(0), &marker(1, 7)));
        assert!(seen.draws_nothing);
        assert!(!p.in_progress());
    }

    #[test]
    fn a_marker_with_surface_bits_draws() {
        let mut p = FrameProgress::default();
        let data = [marker(0, 1), surface_bits(), marker(1, 1)].concat();
        let seen = p.observe(Action::FastPath, &fast_path(surface_header(0), &data));
        assert!(!seen.draws_nothing);
        assert!(!p.in_progress());
    }

    #[test]
    fn fragments_are_in_progress_until_the_last() {
        let mut p = FrameProgress::default();
        // Bitmap updates (code 1): first, next, last.
        p.observe(Action::FastPath, &fast_path(0x01 | (2 << 4), &[0; 8]));
        assert!(p.in_progress());
        p.observe(Action::FastPath, &fast_path(0x01 | (3 << 4), &[0; 8]));
        assert!(p.in_progress());
        let seen = p.observe(Action::FastPath, &fast_path(0x01 | (1 << 4), &[0; 8]));
        assert!(!p.in_progress());
        assert!(!seen.draws_nothing);
    }

    #[test]
    fn unreadable_frames_change_nothing() {
        let mut p = FrameProgress::default();
        p.observe(Action::FastPath, &fast_path(surface_header(0), &marker(0, 1)));
        for garbage in [&[][..], &[0x00], &[0x00, 0x05, 0xff, 0xff, 0xff]] {
            assert_eq!(p.observe(Action::FastPath, garbage), Observed::default());
        }
        assert_eq!(p.observe(Action::X224, &[3, 0, 0, 4]), Observed::default());
        assert!(p.in_progress(), "the open frame survives unreadable input");
        p.reset();
        assert!(!p.in_progress());
    }
}
