//! The server's pointer as the local cursor: its shape, or the system arrow, or none.

use async_rdp::PointerEvent;
use sdl2::mouse::{Cursor, SystemCursor};
use sdl2::pixels::PixelFormatEnum;
use sdl2::surface::Surface;

/// Shapes larger than this are refused (the protocol allows 384x384; a hostile server could
/// claim more, and SDL would allocate whatever it is given).
const MAX_SIDE: u16 = 512;

/// The cursor in use; SDL needs it alive for as long as it is shown.
pub struct Pointer {
    current: Option<Cursor>,
    mouse: sdl2::mouse::MouseUtil,
    /// Failures are logged once: a driver without colour cursors fails on every shape.
    warned: bool,
}

impl Pointer {
    pub fn new(mouse: sdl2::mouse::MouseUtil) -> Self {
        Self {
            current: None,
            mouse,
            warned: false,
        }
    }

    /// Applies what the server did to the pointer.
    pub fn apply(&mut self, event: &PointerEvent) {
        match event {
            PointerEvent::Hidden => self.mouse.show_cursor(false),
            PointerEvent::Default => self.show(Cursor::from_system(SystemCursor::Arrow)),
            PointerEvent::Bitmap(p) => {
                self.show(shape((p.width, p.height), (p.hotspot_x, p.hotspot_y), &p.bitmap_data))
            }
            // The server moved its pointer (a remote application warped it): the local one
            // stays where the user's hand put it.
            _ => {}
        }
    }

    fn show(&mut self, cursor: Result<Cursor, String>) {
        match cursor {
            Ok(cursor) => {
                cursor.set();
                self.mouse.show_cursor(true);
                self.current = Some(cursor);
            }
            Err(e) if !self.warned => {
                self.warned = true;
                log::warn!("Pointer shape not shown: {e} (further failures are not logged)");
            }
            Err(e) => log::debug!("Pointer shape not shown: {e}"),
        }
    }
}

/// A cursor from a shape of `size` with its hot spot, RGBA pixels.
fn shape((width, height): (u16, u16), (hot_x, hot_y): (u16, u16), rgba: &[u8]) -> Result<Cursor, String> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!("{width}x{height} is not a pointer size"));
    }
    let pitch = u32::from(width) * 4;
    let Some(rgba) = rgba.get(..pitch as usize * usize::from(height)) else {
        return Err(format!("{} bytes for a {width}x{height} shape", rgba.len()));
    };
    // Non-premultiplied RGBA (IronRDP's "accelerated" target), SDL's RGBA32.
    let mut pixels = rgba.to_vec();
    let surface = Surface::from_data(
        &mut pixels,
        u32::from(width),
        u32::from(height),
        pitch,
        PixelFormatEnum::RGBA32,
    )?;
    Cursor::from_surface(
        surface,
        i32::from(hot_x.min(width - 1)),
        i32::from(hot_y.min(height - 1)),
    )
}
