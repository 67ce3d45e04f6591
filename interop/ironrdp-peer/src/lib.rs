//! The deterministic test card that `ironrdp-peer` shows, and small helpers shared with its
//! binary.
//!
//! The pattern is specified in README.md (section "The pattern") so that a crate which cannot
//! link this one can recompute it; [`pattern_pixel`] is the reference implementation and the two
//! must never disagree.

pub mod yuv;

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

// ---------------------------------------------------------------------------------------------
// Clipboard helpers: the test image, DIBs, UTF-16 text, the hash the events report.

/// The colour (RGBA) of pixel (`x`, `y`) of the clipboard test image (`clipboard-image W H`),
/// whatever its size: `r = x * 7`, `g = y * 5`, `b = x XOR y`, each modulo 256, opaque.
pub fn clipboard_image_pixel(x: u32, y: u32) -> [u8; 4] {
    // `as u8` keeps the low 8 bits: modulo 256, as documented.
    [x.wrapping_mul(7) as u8, y.wrapping_mul(5) as u8, (x ^ y) as u8, 255]
}

/// The clipboard test image at `width` x `height` as RGBA bytes, top row first.
pub fn clipboard_image_rgba(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            out.extend_from_slice(&clipboard_image_pixel(x, y));
        }
    }
    out
}

/// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `BI_RGB`: uncompressed pixels.
const BI_RGB: u32 = 0;
/// `BI_BITFIELDS`: uncompressed pixels whose channels are given by masks.
const BI_BITFIELDS: u32 = 3;
/// `BI_ALPHABITFIELDS`: as `BI_BITFIELDS`, with an alpha mask too.
const BI_ALPHABITFIELDS: u32 = 6;
/// The size of a `BITMAPINFOHEADER`.
const INFO_HEADER_LEN: usize = 40;
/// The largest image decoded from a client's DIB, in pixels (256 MiB of RGBA).
const MAX_DIB_PIXELS: u64 = 1 << 26;

/// A CF_DIB: a 40-byte `BITMAPINFOHEADER` (32 bpp, `BI_RGB`, positive height: bottom-up
/// rows), then the rows as B, G, R, A bytes. `rgba` is top-down, `width * height * 4` bytes.
pub fn dib_from_rgba(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, String> {
    let row = width as usize * 4;
    if rgba.len() != row * height as usize {
        return Err(format!("{} RGBA bytes for {width}x{height}", rgba.len()));
    }
    let w = i32::try_from(width).map_err(|_| "width too large".to_owned())?;
    let h = i32::try_from(height).map_err(|_| "height too large".to_owned())?;
    let image_len = u32::try_from(rgba.len()).map_err(|_| "image too large".to_owned())?;
    let mut out = Vec::with_capacity(INFO_HEADER_LEN + rgba.len());
    out.extend_from_slice(&(INFO_HEADER_LEN as u32).to_le_bytes()); // biSize
    out.extend_from_slice(&w.to_le_bytes()); // biWidth
    out.extend_from_slice(&h.to_le_bytes()); // biHeight > 0: bottom-up
    out.extend_from_slice(&1u16.to_le_bytes()); // biPlanes
    out.extend_from_slice(&32u16.to_le_bytes()); // biBitCount
    out.extend_from_slice(&BI_RGB.to_le_bytes()); // biCompression
    out.extend_from_slice(&image_len.to_le_bytes()); // biSizeImage
    out.extend_from_slice(&[0; 16]); // biXPelsPerMeter, biYPelsPerMeter, biClrUsed, biClrImportant
    if row > 0 {
        for line in rgba.chunks_exact(row).rev() {
            for px in line.chunks_exact(4) {
                out.extend_from_slice(&[px[2], px[1], px[0], px[3]]);
            }
        }
    }
    Ok(out)
}

/// An image decoded from a DIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DibImage {
    pub width: u32,
    pub height: u32,
    /// Bits per pixel of the DIB (24 or 32).
    pub bpp: u16,
    /// Whether the DIB's rows were top-down (negative height).
    pub top_down: bool,
    /// RGBA, top row first.
    pub rgba: Vec<u8>,
}

fn le_u16(data: &[u8], at: usize) -> Result<u16, String> {
    data.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| format!("DIB too short: {} bytes, needs {}", data.len(), at + 2))
}

fn le_u32(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| format!("DIB too short: {} bytes, needs {}", data.len(), at + 4))
}

/// One channel out of a masked pixel value, scaled to 0..=255; `None` for an empty mask.
fn masked(value: u32, mask: u32) -> Option<u8> {
    if mask == 0 {
        return None;
    }
    let shift = mask.trailing_zeros();
    let max = u64::from(mask >> shift);
    let v = u64::from((value & mask) >> shift);
    // `v <= max`, so the result is at most 255.
    Some((v * 255 / max) as u8)
}

/// Decodes a CF_DIB or CF_DIBV5 (a `BITMAPINFOHEADER`, `BITMAPV4HEADER` or `BITMAPV5HEADER`,
/// then an optional colour table, then the pixels) of 24 or 32 bits per pixel, `BI_RGB` or
/// `BI_BITFIELDS` / `BI_ALPHABITFIELDS`, rows bottom-up or top-down, into top-down RGBA.
///
/// Alpha: 24 bpp, or bit fields without an alpha mask, are opaque (255). 32 bpp `BI_RGB`
/// takes the fourth byte as alpha, unless it is 0 in every pixel (the byte is "reserved" and
/// many writers leave it 0): then the image is opaque.
pub fn rgba_from_dib(dib: &[u8]) -> Result<DibImage, String> {
    let header_len = le_u32(dib, 0)? as usize;
    if header_len < INFO_HEADER_LEN {
        return Err(format!("biSize {header_len} is smaller than a BITMAPINFOHEADER"));
    }
    if dib.len() < header_len {
        return Err(format!(
            "DIB of {} bytes is shorter than its header ({header_len})",
            dib.len()
        ));
    }
    let width = le_u32(dib, 4)? as i32;
    let height = le_u32(dib, 8)? as i32;
    let bpp = le_u16(dib, 14)?;
    let compression = le_u32(dib, 16)?;
    let colors_used = le_u32(dib, 32)?;
    if width <= 0 || height == 0 {
        return Err(format!("bad DIB size {width}x{height}"));
    }
    let top_down = height < 0;
    let (w, h) = (width.unsigned_abs(), height.unsigned_abs());
    if u64::from(w) * u64::from(h) > MAX_DIB_PIXELS {
        return Err(format!("DIB of {w}x{h} is too large"));
    }
    if bpp != 24 && bpp != 32 {
        return Err(format!("DIB of {bpp} bits per pixel (only 24 and 32 are decoded)"));
    }
    let mut offset = header_len;
    let masks = match compression {
        BI_RGB => None,
        BI_BITFIELDS | BI_ALPHABITFIELDS if bpp == 32 => {
            let count = if compression == BI_BITFIELDS { 3 } else { 4 };
            if header_len >= INFO_HEADER_LEN + 4 * count {
                // V2+ headers carry the masks themselves (V3+ also the alpha mask).
                let alpha = if header_len >= INFO_HEADER_LEN + 16 {
                    le_u32(dib, 52)?
                } else {
                    0
                };
                Some([le_u32(dib, 40)?, le_u32(dib, 44)?, le_u32(dib, 48)?, alpha])
            } else {
                // A BITMAPINFOHEADER: the masks follow it.
                let alpha = if count == 4 { le_u32(dib, offset + 12)? } else { 0 };
                let masks = [
                    le_u32(dib, offset)?,
                    le_u32(dib, offset + 4)?,
                    le_u32(dib, offset + 8)?,
                    alpha,
                ];
                offset += 4 * count;
                Some(masks)
            }
        }
        other => return Err(format!("DIB compression {other} with {bpp} bpp is not decoded")),
    };
    // An optional colour table (unusual at these depths) comes before the pixels.
    offset = offset
        .checked_add(colors_used as usize * 4)
        .ok_or_else(|| format!("biClrUsed {colors_used} is absurd"))?;
    let stride = (u64::from(w) * u64::from(bpp)).div_ceil(32) * 4;
    let needed = stride * u64::from(h);
    let available = dib.len().saturating_sub(offset) as u64;
    if available < needed {
        return Err(format!(
            "DIB of {w}x{h} at {bpp} bpp needs {needed} bytes of pixels after offset {offset}, has {available}"
        ));
    }
    let (stride, bytes_per_pixel) = (stride as usize, usize::from(bpp / 8));
    let mut rgba = Vec::with_capacity(w as usize * h as usize * 4);
    for y in 0..h as usize {
        let source_row = if top_down { y } else { h as usize - 1 - y };
        let start = offset + source_row * stride;
        let row = &dib[start..start + w as usize * bytes_per_pixel];
        for px in row.chunks_exact(bytes_per_pixel) {
            match (masks, bpp) {
                (Some([r, g, b, a]), _) => {
                    let value = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
                    rgba.extend_from_slice(&[
                        masked(value, r).unwrap_or(0),
                        masked(value, g).unwrap_or(0),
                        masked(value, b).unwrap_or(0),
                        masked(value, a).unwrap_or(255),
                    ]);
                }
                (None, 32) => rgba.extend_from_slice(&[px[2], px[1], px[0], px[3]]),
                _ => rgba.extend_from_slice(&[px[2], px[1], px[0], 255]),
            }
        }
    }
    if masks.is_none() && bpp == 32 && rgba.chunks_exact(4).all(|px| px[3] == 0) {
        for px in rgba.chunks_exact_mut(4) {
            px[3] = 255;
        }
    }
    Ok(DibImage {
        width: w,
        height: h,
        bpp,
        top_down,
        rgba,
    })
}

/// CF_UNICODETEXT data: UTF-16LE up to the first NUL, or to the end without one (then the
/// length must be even; after a NUL, anything goes).
pub fn text_from_utf16le(data: &[u8]) -> Result<String, String> {
    let mut units = Vec::with_capacity(data.len() / 2);
    for pair in data.chunks(2) {
        let [lo, hi] = pair else {
            return Err(format!("CF_UNICODETEXT of odd length {} without a NUL", data.len()));
        };
        let unit = u16::from_le_bytes([*lo, *hi]);
        if unit == 0 {
            break;
        }
        units.push(unit);
    }
    String::from_utf16(&units).map_err(|e| format!("CF_UNICODETEXT is not valid UTF-16: {e}"))
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

    #[test]
    fn clipboard_image_rule() {
        assert_eq!(clipboard_image_pixel(0, 0), [0, 0, 0, 255]);
        assert_eq!(clipboard_image_pixel(3, 2), [21, 10, 1, 255]);
        assert_eq!(clipboard_image_pixel(40, 60), [24, 44, 20, 255]); // 280 mod 256, 300 mod 256
        let rgba = clipboard_image_rgba(4, 3);
        assert_eq!(&rgba[(2 * 4 + 3) * 4..][..4], &clipboard_image_pixel(3, 2));
    }

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn dib_round_trip_and_layout() {
        let rgba = clipboard_image_rgba(5, 3);
        let dib = dib_from_rgba(5, 3, &rgba).unwrap();
        assert_eq!(dib.len(), 40 + 5 * 3 * 4);
        assert_eq!(&dib[..4], &40u32.to_le_bytes());
        // Positive height: bottom-up.
        assert_eq!(&dib[8..12], &3i32.to_le_bytes());
        // The first stored row is the image's last (y = 2); pixel (1, 2) as B, G, R, A.
        let [r, g, b, a] = clipboard_image_pixel(1, 2);
        assert_eq!(&dib[40 + 4..40 + 8], &[b, g, r, a]);
        let back = rgba_from_dib(&dib).unwrap();
        assert_eq!((back.width, back.height, back.bpp, back.top_down), (5, 3, 32, false));
        assert_eq!(back.rgba, rgba);
    }

    /// A hand-made DIB header, for the decoder's other cases.
    fn header(size: u32, w: i32, h: i32, bpp: u16, compression: u32) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&size.to_le_bytes());
        d.extend_from_slice(&w.to_le_bytes());
        d.extend_from_slice(&h.to_le_bytes());
        d.extend_from_slice(&1u16.to_le_bytes());
        d.extend_from_slice(&bpp.to_le_bytes());
        d.extend_from_slice(&compression.to_le_bytes());
        d.extend_from_slice(&[0; 20]);
        d
    }

    #[test]
    fn dib_24bpp_top_down_with_padding() {
        // 2x2, rows padded to 8 bytes, top-down.
        let mut d = header(40, 2, -2, 24, 0);
        d.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]); // (0,0) = rgb(3,2,1), (1,0) = rgb(6,5,4)
        d.extend_from_slice(&[7, 8, 9, 10, 11, 12, 0, 0]);
        let img = rgba_from_dib(&d).unwrap();
        assert!(img.top_down);
        assert_eq!(img.rgba, [3, 2, 1, 255, 6, 5, 4, 255, 9, 8, 7, 255, 12, 11, 10, 255]);
    }

    #[test]
    fn dib_bitfields_and_zero_alpha() {
        // 40-byte header, BI_BITFIELDS masks after it (R in the high byte), 1x1.
        let mut d = header(40, 1, 1, 32, 3);
        for mask in [0xff00_0000u32, 0x00ff_0000, 0x0000_ff00] {
            d.extend_from_slice(&mask.to_le_bytes());
        }
        d.extend_from_slice(&0x1122_3344u32.to_le_bytes());
        assert_eq!(rgba_from_dib(&d).unwrap().rgba, [0x11, 0x22, 0x33, 255]);
        // 32 bpp BI_RGB, alpha all 0: opaque.
        let mut d = header(40, 1, 1, 32, 0);
        d.extend_from_slice(&[1, 2, 3, 0]);
        assert_eq!(rgba_from_dib(&d).unwrap().rgba, [3, 2, 1, 255]);
        // V5 header (124 bytes) with masks and an alpha mask inside it.
        let mut d = header(124, 1, 1, 32, 3);
        for mask in [0x00ff_0000u32, 0x0000_ff00, 0x0000_00ff, 0xff00_0000] {
            d.extend_from_slice(&mask.to_le_bytes());
        }
        d.resize(124, 0);
        d.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(rgba_from_dib(&d).unwrap().rgba, [3, 2, 1, 4]);
    }

    #[test]
    fn dib_malformed_is_an_error() {
        assert!(rgba_from_dib(&[]).is_err());
        assert!(rgba_from_dib(&[40, 0, 0]).is_err());
        assert!(rgba_from_dib(&header(40, 0, 1, 32, 0)).is_err());
        assert!(rgba_from_dib(&header(40, 4, 4, 32, 0)).is_err()); // no pixels
        assert!(rgba_from_dib(&header(40, 1, 1, 8, 0)).is_err());
        assert!(rgba_from_dib(&header(40, 1, 1, 32, 1)).is_err()); // RLE8
        assert!(rgba_from_dib(&header(40, i32::MAX, i32::MIN, 32, 0)).is_err());
        let mut huge = header(40, 1, 1, 32, 0);
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes()); // biClrUsed
        assert!(rgba_from_dib(&huge).is_err());
    }

    #[test]
    fn utf16_text() {
        let s = "é 漢字 😀";
        let mut data: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(text_from_utf16le(&data).unwrap(), s); // no NUL
        data.extend_from_slice(&[0, 0, 0x41, 0]);
        assert_eq!(text_from_utf16le(&data).unwrap(), s); // stops at the NUL
        assert!(text_from_utf16le(&[0x41, 0, 0x42]).is_err()); // odd, no NUL
        assert!(text_from_utf16le(&[0x00, 0xd8, 0x41, 0]).is_err()); // lone surrogate
        assert_eq!(text_from_utf16le(&[]).unwrap(), "");
    }
}
