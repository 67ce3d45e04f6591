//! The deterministic test card that `ironrdp-peer` shows, and small helpers shared with its
//! binary.
//!
//! The pattern is specified in README.md (section "The pattern") so that a crate which cannot
//! link this one can recompute it; [`pattern_pixel`] is the reference implementation and the two
//! must never disagree.

/// The eight colour bars of the top half, left to right, as RGB: white, yellow, cyan, green,
/// magenta, red, blue, black (100 % EBU bars).
pub const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// The colour (RGBA, alpha always 255) of pixel (`x`, `y`) of the test card at `width` x
/// `height`.
///
/// * a 1-pixel white border: `x == 0 || y == 0 || x == width - 1 || y == height - 1`;
/// * otherwise, the top half (`y < height / 2`) shows 8 vertical bars: bar `x * 8 / width`
///   of [`BARS`];
/// * otherwise (bottom half) a horizontal grey ramp: `r = g = b = x * 256 / width`.
///
/// All divisions are integer divisions on `u32`. Coordinates outside the card give black.
pub fn pattern_pixel(x: u16, y: u16, width: u16, height: u16) -> [u8; 4] {
    if x >= width || y >= height {
        return [0, 0, 0, 255];
    }
    let (x, y, w, h) = (u32::from(x), u32::from(y), u32::from(width), u32::from(height));
    if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
        return [255, 255, 255, 255];
    }
    if y < h / 2 {
        let [r, g, b] = BARS[(x * 8 / w) as usize];
        [r, g, b, 255]
    } else {
        let v = (x * 256 / w) as u8;
        [v, v, v, 255]
    }
}

/// The whole card as rows of 32-bit pixels in B, G, R, 0xFF byte order (IronRDP's
/// `PixelFormat::BgrX32`), top row first, stride `width * 4`.
pub fn pattern_bgrx(width: u16, height: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
    for y in 0..height {
        for x in 0..width {
            let [r, g, b, a] = pattern_pixel(x, y, width, height);
            out.extend_from_slice(&[b, g, r, a]);
        }
    }
    out
}

/// Formats bytes as colon-separated upper-case hex (`AB:CD:...`), the way `openssl x509
/// -fingerprint -sha256` shows a fingerprint.
pub fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's formula, written again independently, must agree with `pattern_pixel`.
    fn readme_formula(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
        const BARS: [[u8; 3]; 8] = [
            [255, 255, 255],
            [255, 255, 0],
            [0, 255, 255],
            [0, 255, 0],
            [255, 0, 255],
            [255, 0, 0],
            [0, 0, 255],
            [0, 0, 0],
        ];
        if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
            [255; 3]
        } else if y < h / 2 {
            BARS[(x * 8 / w) as usize]
        } else {
            let v = (x * 256 / w) as u8;
            [v, v, v]
        }
    }

    #[test]
    fn matches_readme_formula() {
        for &(w, h) in &[(1024u16, 768u16), (800, 600), (1, 1), (2, 3), (1366, 771)] {
            for y in 0..h {
                for x in 0..w {
                    let p = pattern_pixel(x, y, w, h);
                    let q = readme_formula(x.into(), y.into(), w.into(), h.into());
                    assert_eq!(p, [q[0], q[1], q[2], 255], "({x},{y}) at {w}x{h}");
                }
            }
        }
    }

    #[test]
    fn known_pixels_1024x768() {
        assert_eq!(pattern_pixel(0, 0, 1024, 768), [255, 255, 255, 255]); // border
        assert_eq!(pattern_pixel(1023, 767, 1024, 768), [255, 255, 255, 255]); // border
        assert_eq!(pattern_pixel(64, 100, 1024, 768), [255, 255, 255, 255]); // bar 0 white
        assert_eq!(pattern_pixel(192, 100, 1024, 768), [255, 255, 0, 255]); // bar 1 yellow
        assert_eq!(pattern_pixel(960, 100, 1024, 768), [0, 0, 0, 255]); // bar 7 black
        assert_eq!(pattern_pixel(640, 383, 1024, 768), [255, 0, 0, 255]); // last top row, bar 5 red
        assert_eq!(pattern_pixel(512, 384, 1024, 768), [128, 128, 128, 255]); // first ramp row
        assert_eq!(pattern_pixel(1022, 600, 1024, 768), [255, 255, 255, 255]); // 1022*256/1024 = 255
        assert_eq!(pattern_pixel(1, 600, 1024, 768), [0, 0, 0, 255]);
    }

    #[test]
    fn bgrx_layout() {
        let data = pattern_bgrx(1024, 768);
        assert_eq!(data.len(), 1024 * 768 * 4);
        let at = |x: usize, y: usize| &data[(y * 1024 + x) * 4..][..4];
        assert_eq!(at(192, 100), &[0, 255, 255, 255]); // yellow as B, G, R, X
        assert_eq!(at(640, 100), &[0, 0, 255, 255]); // red
    }

    #[test]
    fn colon_hex_format() {
        assert_eq!(colon_hex(&[0xab, 0x01, 0xff]), "AB:01:FF");
        assert_eq!(colon_hex(&[]), "");
    }
}
