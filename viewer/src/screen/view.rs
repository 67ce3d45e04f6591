//! Where the remote desktop lands in the window: scaled to fit (letterboxed) or 1:1 with a
//! pan offset, and the way back from a window position to a remote one.

use async_rdp::Rect;

/// How the remote desktop fits the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// Scaled to the window, keeping its aspect ratio (letterboxed).
    Fit,
    /// One remote pixel per window pixel; when the desktop is larger than the window, the view
    /// follows the pointer.
    None,
}

/// The remote desktop's rectangle in window coordinates (it may stick out of the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl View {
    /// The view of a `remote`-sized desktop in a `window`-sized window.
    pub fn new(scale: Scale, remote: (u16, u16), window: (u32, u32), pan: (i32, i32)) -> Self {
        let (rw, rh) = (u32::from(remote.0).max(1), u32::from(remote.1).max(1));
        let (ww, wh) = (window.0.max(1), window.1.max(1));
        if scale == Scale::None || (rw, rh) == (ww, wh) {
            return View {
                x: -pan.0,
                y: -pan.1,
                width: rw,
                height: rh,
            };
        }
        // The larger side that fits: integer arithmetic, no rounding drift between axes.
        let (width, height) = if u64::from(ww) * u64::from(rh) <= u64::from(wh) * u64::from(rw) {
            (ww, (u64::from(rh) * u64::from(ww) / u64::from(rw)) as u32)
        } else {
            ((u64::from(rw) * u64::from(wh) / u64::from(rh)) as u32, wh)
        };
        let (width, height) = (width.max(1), height.max(1));
        View {
            x: ((ww - width.min(ww)) / 2) as i32,
            y: ((wh - height.min(wh)) / 2) as i32,
            width,
            height,
        }
    }

    /// Whether one remote pixel is one window pixel.
    pub fn is_one_to_one(self, remote: (u16, u16)) -> bool {
        (self.width, self.height) == (u32::from(remote.0), u32::from(remote.1))
    }

    /// The remote pixel under window position (`x`, `y`), clamped to the desktop.
    pub fn to_remote(self, x: i32, y: i32, remote: (u16, u16)) -> (u16, u16) {
        let axis = |pos: i32, origin: i32, size: u32, max: u16| {
            let offset = i64::from(pos) - i64::from(origin);
            let scaled = offset * i64::from(max) / i64::from(size.max(1));
            u16::try_from(scaled.clamp(0, i64::from(max.saturating_sub(1)))).unwrap_or(0)
        };
        (
            axis(x, self.x, self.width, remote.0),
            axis(y, self.y, self.height, remote.1),
        )
    }

    /// The window pixels that show remote rectangle `rect` (before clipping to the window):
    /// left, top, right, bottom (exclusive).
    pub fn to_window(self, rect: Rect, remote: (u16, u16)) -> (i64, i64, i64, i64) {
        let (rw, rh) = (i64::from(remote.0.max(1)), i64::from(remote.1.max(1)));
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        let left = i64::from(self.x) + i64::from(rect.x) * w / rw;
        let top = i64::from(self.y) + i64::from(rect.y) * h / rh;
        let right = i64::from(self.x) + (i64::from(rect.x) + i64::from(rect.width)) * w / rw;
        let bottom = i64::from(self.y) + (i64::from(rect.y) + i64::from(rect.height)) * h / rh;
        // A shrunk rectangle still covers at least one window pixel.
        (left, top, right.max(left + 1), bottom.max(top + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_letterboxes_and_maps_back() {
        // A 1000x500 desktop in an 800x600 window: 800x400, 100 pixels above and below.
        let view = View::new(Scale::Fit, (1000, 500), (800, 600), (0, 0));
        assert_eq!(
            view,
            View {
                x: 0,
                y: 100,
                width: 800,
                height: 400
            }
        );
        assert_eq!(view.to_remote(400, 300, (1000, 500)), (500, 250));
        assert_eq!(
            view.to_remote(0, 0, (1000, 500)),
            (0, 0),
            "the bar above clamps to the top row"
        );
        assert_eq!(view.to_remote(799, 599, (1000, 500)), (998, 499));
        let rect = Rect {
            x: 500,
            y: 250,
            width: 10,
            height: 10,
        };
        assert_eq!(view.to_window(rect, (1000, 500)), (400, 300, 408, 308));
    }

    #[test]
    fn one_to_one_pans() {
        let view = View::new(Scale::None, (1920, 1080), (800, 600), (100, 50));
        assert_eq!(
            view,
            View {
                x: -100,
                y: -50,
                width: 1920,
                height: 1080
            }
        );
        assert!(view.is_one_to_one((1920, 1080)));
        assert_eq!(view.to_remote(10, 10, (1920, 1080)), (110, 60));
    }

    #[test]
    fn equal_sizes_are_one_to_one_in_fit_mode() {
        let view = View::new(Scale::Fit, (1024, 768), (1024, 768), (0, 0));
        assert!(view.is_one_to_one((1024, 768)));
        assert_eq!(view.to_remote(5, 7, (1024, 768)), (5, 7));
    }
}
