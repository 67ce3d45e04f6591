//! Drawing straight into the window's own surface (X11's shared-memory image): the damaged
//! rectangles are converted from the framebuffer once and only they are sent to the window
//! system — no texture (a third copy of the desktop) and no whole-window present.

use async_rdp::{Framebuffer, Rect};
use sdl2::pixels::PixelFormatEnum;
use sdl2::rect::Rect as SdlRect;
use sdl2::video::Window;
use sdl2::EventPump;

use super::view::View;

/// The byte order of a 32-bit window surface, as the framebuffer's RGBA must be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// B, G, R, X in memory (ARGB8888 / XRGB8888 on little-endian machines).
    Bgrx,
    /// R, G, B, X in memory (ABGR8888 / XBGR8888 on little-endian machines).
    Rgbx,
}

impl Order {
    /// The order for a window's pixel format, if this path can draw into it.
    pub fn of(format: PixelFormatEnum) -> Option<Order> {
        // SDL's packed formats name bits from the most significant down: in memory, on a
        // little-endian machine, the bytes come in the reverse order.
        if cfg!(target_endian = "big") {
            return None;
        }
        match format {
            PixelFormatEnum::ARGB8888 | PixelFormatEnum::RGB888 => Some(Order::Bgrx),
            PixelFormatEnum::ABGR8888 | PixelFormatEnum::BGR888 => Some(Order::Rgbx),
            _ => None,
        }
    }
}

/// Draws `damage` (remote rectangles) from `fb` through `view` into the window's surface and
/// sends those parts to the window system. With `clear`, paints the whole window first (the
/// bars around a letterboxed desktop). Returns the window pixels written.
pub fn draw(
    window: &Window,
    events: &EventPump,
    order: Order,
    view: View,
    fb: &Framebuffer<'_>,
    damage: &[Rect],
    clear: bool,
) -> Result<u64, String> {
    let mut surface = window.surface(events)?;
    let (ww, wh) = (surface.width(), surface.height());
    let pitch = surface.pitch() as usize;
    let remote = (fb.width, fb.height);
    let mut updated = Vec::with_capacity(damage.len() + 1);
    let mut written = 0;
    surface.with_lock_mut(|pixels| {
        if clear {
            pixels.fill(0);
            updated.push(SdlRect::new(0, 0, ww, wh));
        }
        for rect in damage {
            let (left, top, right, bottom) = view.to_window(*rect, remote);
            let (left, top) = (left.max(0), top.max(0));
            let (right, bottom) = (right.min(i64::from(ww)), bottom.min(i64::from(wh)));
            if left >= right || top >= bottom {
                continue;
            }
            let area = (
                left as usize,
                top as usize,
                (right - left) as usize,
                (bottom - top) as usize,
            );
            if view.is_one_to_one(remote) {
                copy(pixels, pitch, order, fb, area, (view.x, view.y));
            } else {
                scale(pixels, pitch, order, fb, area, view);
            }
            written += (area.2 * area.3) as u64;
            if !clear {
                updated.push(SdlRect::new(area.0 as i32, area.1 as i32, area.2 as u32, area.3 as u32));
            }
        }
    });
    if !updated.is_empty() {
        surface.update_window_rects(&updated)?;
    }
    Ok(written)
}

/// One remote pixel per window pixel: the window area `(x, y, w, h)` shows the framebuffer at
/// the same place minus the view's origin.
fn copy(
    pixels: &mut [u8],
    pitch: usize,
    order: Order,
    fb: &Framebuffer<'_>,
    area: (usize, usize, usize, usize),
    origin: (i32, i32),
) {
    let (x, y, w, h) = area;
    for row in 0..h {
        let sx = usize::try_from(x as i64 - i64::from(origin.0));
        let sy = usize::try_from((y + row) as i64 - i64::from(origin.1));
        let (Ok(sx), Ok(sy)) = (sx, sy) else { continue };
        let start = sy * fb.stride + sx * 4;
        let out = (y + row) * pitch + x * 4;
        let (Some(src), Some(dst)) = (fb.data.get(start..start + w * 4), pixels.get_mut(out..out + w * 4)) else {
            continue;
        };
        convert_row(dst, src, order);
    }
}

/// Nearest-neighbour scaling of the window area `(x, y, w, h)` from the framebuffer.
fn scale(
    pixels: &mut [u8],
    pitch: usize,
    order: Order,
    fb: &Framebuffer<'_>,
    area: (usize, usize, usize, usize),
    view: View,
) {
    let (x, y, w, h) = area;
    let source = |pos: usize, origin: i32, size: u32, max: u16| {
        let offset = (pos as i64 - i64::from(origin)).max(0);
        (offset * i64::from(max) / i64::from(size.max(1)))
            .min(i64::from(max) - 1)
            .max(0) as usize
    };
    let columns: Vec<usize> = (x..x + w).map(|px| source(px, view.x, view.width, fb.width)).collect();
    for py in y..y + h {
        let sy = source(py, view.y, view.height, fb.height);
        let Some(src_row) = fb.data.get(sy * fb.stride..) else {
            continue;
        };
        let Some(dst) = pixels.get_mut(py * pitch + x * 4..py * pitch + (x + w) * 4) else {
            continue;
        };
        for (out, &sx) in dst.chunks_exact_mut(4).zip(&columns) {
            if let Some(px) = src_row.get(sx * 4..sx * 4 + 4) {
                convert_row(out, px, order);
            }
        }
    }
}

/// RGBA pixels into the surface's byte order (alpha is not used by the window system).
fn convert_row(dst: &mut [u8], src: &[u8], order: Order) {
    match order {
        Order::Rgbx => dst.copy_from_slice(&src[..dst.len()]),
        Order::Bgrx => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                d[0] = s[2];
                d[1] = s[1];
                d[2] = s[0];
                d[3] = 0xFF;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_reordered_for_the_window() {
        let src = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut dst = [0; 8];
        convert_row(&mut dst, &src, Order::Bgrx);
        assert_eq!(dst, [3, 2, 1, 0xFF, 7, 6, 5, 0xFF]);
        convert_row(&mut dst, &src, Order::Rgbx);
        assert_eq!(dst, src);
    }

    #[test]
    fn scaling_samples_the_nearest_pixel() {
        // A 2x2 framebuffer (red, green / blue, white) shown 4x4.
        let data = [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 255, 255, 255];
        let fb = Framebuffer {
            data: &data,
            width: 2,
            height: 2,
            stride: 8,
        };
        let view = View {
            x: 0,
            y: 0,
            width: 4,
            height: 4,
        };
        let mut pixels = vec![0u8; 4 * 4 * 4];
        scale(&mut pixels, 16, Order::Rgbx, &fb, (0, 0, 4, 4), view);
        let at = |x: usize, y: usize| &pixels[y * 16 + x * 4..y * 16 + x * 4 + 3];
        assert_eq!(at(1, 1), [255, 0, 0]);
        assert_eq!(at(2, 1), [0, 255, 0]);
        assert_eq!(at(1, 2), [0, 0, 255]);
        assert_eq!(at(3, 3), [255, 255, 255]);
    }
}
