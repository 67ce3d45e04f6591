//! Drawing through an SDL renderer (`--renderer gpu`): the damaged rectangles are uploaded to
//! one streaming texture the size of the remote desktop, which the GPU then scales to the
//! window.

use async_rdp::{Framebuffer, Rect};
use sdl2::pixels::PixelFormatEnum;
use sdl2::rect::Rect as SdlRect;
use sdl2::render::{Texture, TextureCreator, WindowCanvas};
use sdl2::video::WindowContext;

use super::view::View;

pub struct TextureOutput<'tc> {
    pub canvas: WindowCanvas,
    creator: &'tc TextureCreator<WindowContext>,
    texture: Texture<'tc>,
    size: (u16, u16),
}

impl<'tc> TextureOutput<'tc> {
    pub fn new(
        canvas: WindowCanvas,
        creator: &'tc TextureCreator<WindowContext>,
        size: (u16, u16),
    ) -> Result<Self, String> {
        Ok(Self {
            canvas,
            creator,
            texture: texture(creator, size)?,
            size,
        })
    }

    /// A texture of the new remote size.
    pub fn resize(&mut self, size: (u16, u16)) -> Result<(), String> {
        if size != self.size {
            self.texture = texture(self.creator, size)?;
            self.size = size;
        }
        Ok(())
    }

    /// Uploads `damage` from `fb` and shows the texture through `view`. Returns the pixels
    /// uploaded.
    pub fn draw(&mut self, view: View, fb: &Framebuffer<'_>, damage: &[Rect]) -> Result<u64, String> {
        let mut uploaded = 0;
        for rect in damage {
            let start = usize::from(rect.y) * fb.stride + usize::from(rect.x) * 4;
            // SDL reads `height` rows `stride` apart from the slice's start and sdl2's `update`
            // does not check the slice's length: check it here, or SDL would read past it.
            let len = (usize::from(rect.height) - 1) * fb.stride + usize::from(rect.width) * 4;
            let Some(pixels) = fb.data.get(start..start + len) else {
                continue;
            };
            let target = SdlRect::new(
                i32::from(rect.x),
                i32::from(rect.y),
                u32::from(rect.width),
                u32::from(rect.height),
            );
            self.texture
                .update(target, pixels, fb.stride)
                .map_err(|e| format!("upload to the texture: {e}"))?;
            uploaded += u64::from(rect.width) * u64::from(rect.height);
        }
        self.canvas.clear();
        let dest = SdlRect::new(view.x, view.y, view.width, view.height);
        self.canvas.copy(&self.texture, None, dest)?;
        self.canvas.present();
        Ok(uploaded)
    }
}

fn texture<'tc>(
    creator: &'tc TextureCreator<WindowContext>,
    (width, height): (u16, u16),
) -> Result<Texture<'tc>, String> {
    // RGBA32 is the byte order R, G, B, A on any endianness: the framebuffer's.
    creator
        .create_texture_streaming(PixelFormatEnum::RGBA32, u32::from(width), u32::from(height))
        .map_err(|e| format!("a {width}x{height} texture: {e}"))
}
