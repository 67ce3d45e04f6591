//! The desktop the demo server shows: a static test pattern with a small clock box, and the
//! server's framebuffer (32 bpp, BGRX, top-down rows) built from it.
//!
//! The pattern is made so that a wrong decoder shows: every band has a different structure
//! (colour bars, per-channel ramps, an x/y/xor texture where neighbouring pixels all differ, a
//! 1-px checkerboard, diagonal stripes) and each side of the 1-px border has its own colour, so
//! an off-by-one, a swapped channel or a flipped row or column changes some pixel.

use std::time::{SystemTime, UNIX_EPOCH};

use ironrdp_pdu::geometry::InclusiveRectangle;

use crate::encode::Picture;

/// Clock box size.
const CLOCK_W: u16 = 112;
const CLOCK_H: u16 = 36;
/// Distance of the clock box from the top and right edges, when the desktop is big enough.
const CLOCK_MARGIN: u16 = 8;

const TOP: [u8; 3] = [255, 0, 128];
const BOTTOM: [u8; 3] = [0, 160, 255];
const LEFT: [u8; 3] = [255, 200, 0];
const RIGHT: [u8; 3] = [0, 255, 100];

/// Colour bars: white, yellow, cyan, green, magenta, red, blue, black.
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

/// RGBA of the static test pattern at `(x, y)` on a `width` x `height` desktop (alpha 255).
///
/// Bands from top to bottom (each an eighth of the height): colour bars; the same bars reversed
/// at 75 %; red, green and blue ramps along x on alternating rows; a ramp mixed with y; two
/// bands of an `(x, y, x ^ y)` texture; a 1-px black and white checkerboard (left half) next
/// to an 8-px two-colour one; 4-px diagonal stripes. A 1-px border has a different colour on
/// each side (top and bottom rows own the corners). [`animated_region`] shows a clock box,
/// here at its initial state (`00:00:00`, empty progress bar); the server draws exactly this
/// until it animates.
///
/// A point outside the desktop is black.
pub fn pattern_pixel(x: u16, y: u16, width: u16, height: u16) -> [u8; 4] {
    if x >= width || y >= height {
        return [0, 0, 0, 255];
    }
    let clock = ClockBox::new(width, height);
    let [r, g, b] = match clock.local(x, y) {
        Some((cx, cy)) => ClockFace::INITIAL.pixel(cx, cy),
        None => Row::new(y, width, height).pixel(x),
    };
    [r, g, b, 255]
}

/// The only region animation changes: the clock box, near the top-right corner (clipped to the
/// desktop on a very small one).
pub fn animated_region(width: u16, height: u16) -> InclusiveRectangle {
    ClockBox::new(width, height).rect()
}

/// Where the clock box is on a desktop.
#[derive(Debug, Clone, Copy)]
struct ClockBox {
    left: u16,
    top: u16,
    right: u16,
    bottom: u16,
}

impl ClockBox {
    fn new(width: u16, height: u16) -> Self {
        let left = if width >= CLOCK_W + 2 * CLOCK_MARGIN {
            width - CLOCK_W - CLOCK_MARGIN
        } else {
            0
        };
        let top = if height >= CLOCK_H + 2 * CLOCK_MARGIN {
            CLOCK_MARGIN
        } else {
            0
        };
        Self {
            left,
            top,
            right: (left + CLOCK_W - 1).min(width.saturating_sub(1)),
            bottom: (top + CLOCK_H - 1).min(height.saturating_sub(1)),
        }
    }

    fn rect(self) -> InclusiveRectangle {
        InclusiveRectangle {
            left: self.left,
            top: self.top,
            right: self.right,
            bottom: self.bottom,
        }
    }

    /// Coordinates inside the box, if `(x, y)` is in it.
    fn local(self, x: u16, y: u16) -> Option<(u16, u16)> {
        ((self.left..=self.right).contains(&x) && (self.top..=self.bottom).contains(&y))
            .then(|| (x - self.left, y - self.top))
    }
}

/// One row of the pattern, classified once so that filling a row costs little per pixel.
struct Row {
    y: u16,
    width: u16,
    kind: RowKind,
}

enum RowKind {
    Edge([u8; 3]),
    Band(u8),
}

impl Row {
    fn new(y: u16, width: u16, height: u16) -> Self {
        let kind = if y == 0 {
            RowKind::Edge(TOP)
        } else if y + 1 == height {
            RowKind::Edge(BOTTOM)
        } else {
            // 0..8; u32 so that 8 * y cannot overflow.
            RowKind::Band(((u32::from(y) * 8) / u32::from(height)).min(7) as u8)
        };
        Self { y, width, kind }
    }

    fn pixel(&self, x: u16) -> [u8; 3] {
        let band = match self.kind {
            RowKind::Edge(colour) => return colour,
            RowKind::Band(band) => band,
        };
        if x == 0 {
            return LEFT;
        }
        if x + 1 == self.width {
            return RIGHT;
        }
        let (x32, y32, w32) = (u32::from(x), u32::from(self.y), u32::from(self.width));
        let ramp = (x32 * 255 / w32.saturating_sub(1).max(1)).min(255) as u8;
        match band {
            0 => BARS[(x32 * 8 / w32).min(7) as usize],
            1 => {
                let [r, g, b] = BARS[7 - (x32 * 8 / w32).min(7) as usize];
                [r / 4 * 3, g / 4 * 3, b / 4 * 3]
            }
            2 => match self.y % 3 {
                0 => [ramp, 0, 0],
                1 => [0, ramp, 0],
                _ => [0, 0, ramp],
            },
            3 => [ramp, 255 - ramp, (y32 * 4 % 256) as u8],
            4 | 5 => [(x32 % 256) as u8, (y32 % 256) as u8, ((x32 ^ y32) % 256) as u8],
            6 => {
                if x32 < w32 / 2 {
                    if (x32 + y32) % 2 == 0 {
                        [255, 255, 255]
                    } else {
                        [0, 0, 0]
                    }
                } else if (x32 / 8 + y32 / 8) % 2 == 0 {
                    [255, 128, 0]
                } else {
                    [0, 96, 192]
                }
            }
            _ => {
                if (x32 + 2 * y32) / 4 % 2 == 0 {
                    [200, 0, 90]
                } else {
                    [20, 20, 20]
                }
            }
        }
    }
}

/// What the clock box shows: a time of day and a progress bar that moves on every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClockFace {
    /// `HHMMSS`, one decimal digit each.
    digits: [u8; 6],
    /// Filled pixels of the progress bar, `0..=PROGRESS_LEN`.
    progress: u16,
}

const DIGIT_W: u16 = 10;
const DIGIT_H: u16 = 18;
const COLON_W: u16 = 4;
const GAP: u16 = 2;
const DIGITS_TOP: u16 = 5;
const DIGITS_LEFT: u16 = 14;
const PROGRESS_TOP: u16 = 27;
const PROGRESS_H: u16 = 4;
const PROGRESS_LEFT: u16 = 8;
const PROGRESS_LEN: u16 = 96;

const FRAME: [u8; 3] = [230, 230, 230];
const BACKGROUND: [u8; 3] = [16, 24, 48];
const LIT: [u8; 3] = [0, 255, 160];
const UNLIT: [u8; 3] = [28, 40, 70];
const BAR_FILLED: [u8; 3] = [255, 160, 0];
const BAR_EMPTY: [u8; 3] = [48, 48, 48];

/// Seven-segment masks, bits `a b c d e f g` from bit 0.
const SEGMENTS: [u8; 10] = [
    0b011_1111, // 0: a b c d e f
    0b000_0110, // 1: b c
    0b101_1011, // 2: a b d e g
    0b100_1111, // 3: a b c d g
    0b110_0110, // 4: b c f g
    0b110_1101, // 5: a c d f g
    0b111_1101, // 6: a c d e f g
    0b000_0111, // 7: a b c
    0b111_1111, // 8
    0b110_1111, // 9: a b c d f g
];

impl ClockFace {
    /// `00:00:00` with an empty bar: what the static pattern shows.
    pub(crate) const INITIAL: Self = Self {
        digits: [0; 6],
        progress: 0,
    };

    /// The current UTC time of day, with the bar at `tick` (it wraps).
    pub(crate) fn now(tick: u64) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            % 86_400;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let digit = |v: u64| (v % 10) as u8;
        Self {
            digits: [
                digit(h / 10),
                digit(h),
                digit(m / 10),
                digit(m),
                digit(s / 10),
                digit(s),
            ],
            progress: (tick % (u64::from(PROGRESS_LEN) + 1)) as u16,
        }
    }

    /// The colour at `(x, y)` inside the clock box.
    fn pixel(&self, x: u16, y: u16) -> [u8; 3] {
        if x == 0 || y == 0 || x == CLOCK_W - 1 || y == CLOCK_H - 1 {
            return FRAME;
        }
        if (PROGRESS_TOP..PROGRESS_TOP + PROGRESS_H).contains(&y)
            && (PROGRESS_LEFT..PROGRESS_LEFT + PROGRESS_LEN).contains(&x)
        {
            return if x - PROGRESS_LEFT < self.progress {
                BAR_FILLED
            } else {
                BAR_EMPTY
            };
        }
        if (DIGITS_TOP..DIGITS_TOP + DIGIT_H).contains(&y) && x >= DIGITS_LEFT {
            let dy = y - DIGITS_TOP;
            let mut left = DIGITS_LEFT;
            for (i, digit) in self.digits.iter().enumerate() {
                if i == 2 || i == 4 {
                    if (left..left + COLON_W).contains(&x) {
                        let dx = x - left;
                        let dot = (1..3).contains(&dx) && ((5..7).contains(&dy) || (11..13).contains(&dy));
                        return if dot { LIT } else { BACKGROUND };
                    }
                    left += COLON_W + GAP;
                }
                if (left..left + DIGIT_W).contains(&x) {
                    return seven_segment(*digit, x - left, dy);
                }
                left += DIGIT_W + GAP;
            }
        }
        BACKGROUND
    }
}

/// The colour at `(x, y)` of a `DIGIT_W` x `DIGIT_H` seven-segment digit.
fn seven_segment(digit: u8, x: u16, y: u16) -> [u8; 3] {
    let horizontal = (2..8).contains(&x);
    let segment = match (x, y) {
        (_, 0..2) if horizontal => Some(0),   // a
        (8..10, 2..8) => Some(1),             // b
        (8..10, 10..16) => Some(2),           // c
        (_, 16..18) if horizontal => Some(3), // d
        (0..2, 10..16) => Some(4),            // e
        (0..2, 2..8) => Some(5),              // f
        (_, 8..10) if horizontal => Some(6),  // g
        _ => None,
    };
    match segment {
        Some(bit) if SEGMENTS[usize::from(digit % 10)] & (1 << bit) != 0 => LIT,
        Some(_) => UNLIT,
        None => BACKGROUND,
    }
}

/// The server's copy of the desktop: 32 bpp, BGRX, top-down rows, exactly what Bitmap Updates
/// carry (flipped to bottom-up per rectangle when encoded).
pub(crate) struct Framebuffer {
    width: u16,
    height: u16,
    data: Vec<u8>,
    clock: ClockFace,
}

impl Framebuffer {
    /// The static pattern at `width` x `height`.
    pub(crate) fn new(width: u16, height: u16) -> Self {
        let (w, h) = (usize::from(width), usize::from(height));
        let mut data = vec![0; w * h * 4];
        for (y, line) in data.chunks_exact_mut(w * 4).enumerate() {
            // y < height, so it fits in u16.
            let row = Row::new(y as u16, width, height);
            for (x, px) in line.chunks_exact_mut(4).enumerate() {
                let [r, g, b] = row.pixel(x as u16);
                px.copy_from_slice(&[b, g, r, 0xFF]);
            }
        }
        let mut fb = Self {
            width,
            height,
            data,
            clock: ClockFace::INITIAL,
        };
        fb.paint_clock(ClockFace::INITIAL);
        fb
    }

    pub(crate) fn width(&self) -> u16 {
        self.width
    }

    pub(crate) fn height(&self) -> u16 {
        self.height
    }

    /// The pixels, for the encoders.
    pub(crate) fn picture(&self) -> Picture<'_> {
        // The constructor sized `data` for `width` x `height`; a zero side (which `new` allows)
        // is an empty picture that the encoders skip.
        Picture::new(&self.data, self.width, self.height).unwrap_or_else(|_| Picture::empty())
    }

    /// Pixel row `y`, columns `left..=right`, as BGRX bytes.
    #[cfg(test)]
    pub(crate) fn row(&self, y: u16, left: u16, right: u16) -> &[u8] {
        let start = (usize::from(y) * usize::from(self.width) + usize::from(left)) * 4;
        let end = start + (usize::from(right) - usize::from(left) + 1) * 4;
        &self.data[start..end]
    }

    /// Draws `face` into the clock box. Returns whether any pixel changed.
    pub(crate) fn set_clock(&mut self, face: ClockFace) -> bool {
        if face == self.clock {
            return false;
        }
        self.paint_clock(face);
        true
    }

    fn paint_clock(&mut self, face: ClockFace) {
        self.clock = face;
        let rect = ClockBox::new(self.width, self.height).rect();
        let w = usize::from(self.width);
        for y in rect.top..=rect.bottom {
            for x in rect.left..=rect.right {
                let [r, g, b] = face.pixel(x - rect.left, y - rect.top);
                let i = (usize::from(y) * w + usize::from(x)) * 4;
                self.data[i..i + 4].copy_from_slice(&[b, g, r, 0xFF]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framebuffer_matches_pattern_pixel() {
        for (w, h) in [(200, 200), (1280, 720), (301, 257), (1, 1), (2, 3), (64, 40)] {
            let fb = Framebuffer::new(w, h);
            for y in 0..h {
                for x in 0..w {
                    let [b, g, r, _] = fb.row(y, x, x).try_into().expect("4 bytes");
                    assert_eq!([r, g, b, 255], pattern_pixel(x, y, w, h), "({x},{y}) of {w}x{h}");
                }
            }
        }
    }

    #[test]
    fn border_sides_differ_and_survive_swaps() {
        let (w, h) = (640, 480);
        let top = pattern_pixel(10, 0, w, h);
        let bottom = pattern_pixel(10, h - 1, w, h);
        let left = pattern_pixel(0, 10, w, h);
        let right = pattern_pixel(w - 1, 10, w, h);
        let sides = [top, bottom, left, right];
        for (i, a) in sides.iter().enumerate() {
            assert_eq!(a[3], 255);
            assert_ne!([a[2], a[1], a[0]], [a[0], a[1], a[2]], "R/B swap must show");
            for b in &sides[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The (x, y, x ^ y) band: horizontal and vertical neighbours all differ.
        let y = h * 9 / 16;
        assert_ne!(pattern_pixel(100, y, w, h), pattern_pixel(101, y, w, h));
        assert_ne!(pattern_pixel(100, y, w, h), pattern_pixel(100, y + 1, w, h));
    }

    #[test]
    fn clock_region_fits_and_animation_stays_inside() {
        for (w, h) in [(1, 1), (50, 20), (200, 200), (1920, 1080), (8192, 8192)] {
            let r = animated_region(w, h);
            assert!(
                r.left <= r.right && r.right < w && r.top <= r.bottom && r.bottom < h,
                "{w}x{h}: {r:?}"
            );
        }
        let (w, h) = (320, 200);
        let mut fb = Framebuffer::new(w, h);
        let before = fb.data.clone();
        assert!(fb.set_clock(ClockFace {
            digits: [1, 2, 3, 4, 5, 6],
            progress: 40
        }));
        let r = animated_region(w, h);
        let mut changed = 0;
        for y in 0..h {
            for x in 0..w {
                let i = (usize::from(y) * usize::from(w) + usize::from(x)) * 4;
                if before[i..i + 4] != fb.data[i..i + 4] {
                    assert!((r.left..=r.right).contains(&x) && (r.top..=r.bottom).contains(&y));
                    changed += 1;
                }
            }
        }
        assert!(changed > 100, "the clock visibly changed ({changed} pixels)");
    }
}
