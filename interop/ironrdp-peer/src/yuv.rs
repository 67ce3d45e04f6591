//! RGB to YUV 4:2:0 for the H.264 encoder (`--egfx avc420`).
//!
//! MS-RDPEGFX says AVC420 pictures are **full-range BT.709**, and IronRDP's client
//! (ironrdp-egfx 0.5) converts them back with exactly that matrix, whatever the bitstream's
//! VUI says. The `openh264` crate's own RGB conversion is BT.601 limited range, which would
//! shift the test card's colours by about 12 levels, so the conversion is done here.

/// A picture in planar YUV 4:2:0, its size padded to whole 16x16 macroblocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv420 {
    /// Padded width (a multiple of 16); the luma stride.
    pub width: usize,
    /// Padded height (a multiple of 16).
    pub height: usize,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb, `width / 2 * height / 2` bytes (stride `width / 2`).
    pub u: Vec<u8>,
    /// Cr, same layout as `u`.
    pub v: Vec<u8>,
}

/// Full-range BT.709 of one RGB pixel: `(Y, Cb, Cr)` before rounding, Cb/Cr centred on 128.
pub fn bt709_full(r: u8, g: u8, b: u8) -> (f32, f32, f32) {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    (y, (b - y) / 1.8556 + 128.0, (r - y) / 1.5748 + 128.0)
}

/// The inverse of [`bt709_full`], rounded and clamped (what a full-range BT.709 decoder does).
pub fn bt709_full_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let r = y + 1.5748 * cr;
    let b = y + 1.8556 * cb;
    let g = (y - 0.2126 * r - 0.0722 * b) / 0.7152;
    [to_u8(r), to_u8(g), to_u8(b)]
}

fn to_u8(value: f32) -> u8 {
    // Clamped first, so the cast cannot truncate.
    value.round().clamp(0.0, 255.0) as u8
}

/// Converts a BGRX picture (`width * 4` bytes a row, top row first) to [`Yuv420`]: padded to
/// a multiple of 16 in both directions by repeating the last column and row (the client crops
/// to the region it is told), chroma averaged over each 2x2 block.
///
/// # Panics
///
/// If `bgrx` is shorter than `width * height * 4` bytes or a dimension is 0.
pub fn yuv420_from_bgrx(bgrx: &[u8], width: u16, height: u16) -> Yuv420 {
    let (w, h) = (usize::from(width), usize::from(height));
    assert!(w > 0 && h > 0 && bgrx.len() >= w * h * 4, "bad BGRX picture");
    let (pw, ph) = (w.div_ceil(16) * 16, h.div_ceil(16) * 16);
    let pixel = |x: usize, y: usize| {
        let i = (y.min(h - 1) * w + x.min(w - 1)) * 4;
        bt709_full(bgrx[i + 2], bgrx[i + 1], bgrx[i])
    };
    let mut out = Yuv420 {
        width: pw,
        height: ph,
        y: Vec::with_capacity(pw * ph),
        u: Vec::with_capacity(pw * ph / 4),
        v: Vec::with_capacity(pw * ph / 4),
    };
    for y in 0..ph {
        out.y.extend((0..pw).map(|x| to_u8(pixel(x, y).0)));
    }
    for cy in 0..ph / 2 {
        for cx in 0..pw / 2 {
            let block = [(0, 0), (1, 0), (0, 1), (1, 1)].map(|(dx, dy)| pixel(cx * 2 + dx, cy * 2 + dy));
            out.u.push(to_u8(block.iter().map(|p| p.1).sum::<f32>() / 4.0));
            out.v.push(to_u8(block.iter().map(|p| p.2).sum::<f32>() / 4.0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_colours_round_trip_within_two_levels() {
        for rgb in [
            [255, 255, 255],
            [255, 255, 0],
            [0, 255, 255],
            [255, 0, 255],
            [0, 0, 255],
            [46, 142, 141],
        ] {
            let (y, cb, cr) = bt709_full(rgb[0], rgb[1], rgb[2]);
            let back = bt709_full_to_rgb(to_u8(y), to_u8(cb), to_u8(cr));
            for c in 0..3 {
                assert!(back[c].abs_diff(rgb[c]) <= 2, "{rgb:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn pads_to_macroblocks_and_keeps_the_card() {
        let (w, h) = (100u16, 50u16);
        let yuv = yuv420_from_bgrx(&crate::pattern_bgrx(w, h), w, h);
        assert_eq!((yuv.width, yuv.height), (112, 64));
        assert_eq!((yuv.y.len(), yuv.u.len(), yuv.v.len()), (112 * 64, 56 * 32, 56 * 32));
        // Inside the red bar (x 63..75 at width 100): 2x2 blocks of one colour come back exact-ish.
        let (x, y) = (66, 10);
        let c = (y / 2) * 56 + x / 2;
        let rgb = bt709_full_to_rgb(yuv.y[y * 112 + x], yuv.u[c], yuv.v[c]);
        assert!(rgb[0] >= 253 && rgb[1] <= 2 && rgb[2] <= 2, "{rgb:?}");
    }
}
