//! The remote desktop on the window: one streaming texture the size of the remote desktop,
//! into which only damaged rectangles are uploaded, shown scaled to fit or 1:1 with panning.

use async_rdp::{Framebuffer, Rect};
use sdl2::pixels::PixelFormatEnum;
use sdl2::rect::Rect as SdlRect;
use sdl2::render::{Texture, TextureCreator, WindowCanvas};
use sdl2::video::WindowContext;

/// How the remote desktop fits the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// Scaled to the window, keeping its aspect ratio (letterboxed).
    Fit,
    /// One remote pixel per window pixel; when the desktop is larger than the window, the view
    /// follows the pointer.
    None,
}

/// More damaged rectangles than this in one frame are merged into their bounding box: each
/// upload is a call into the renderer, one large one is cheaper than hundreds of small ones.
const MAX_RECTS: usize = 32;

/// The texture and what of it is out of date.
pub struct Screen<'tc> {
    creator: &'tc TextureCreator<WindowContext>,
    texture: Texture<'tc>,
    width: u16,
    height: u16,
    damage: Vec<Rect>,
    scale: Scale,
    /// Top-left of the view in 1:1 mode.
    pan: (i32, i32),
    /// Pixels uploaded so far, and pictures shown: logged when the viewer closes, so that a
    /// run can tell how much of each picture was really sent to the screen.
    pub uploaded_pixels: u64,
    pub pictures: u64,
}

impl<'tc> Screen<'tc> {
    /// A black screen of `width` x `height`.
    pub fn new(
        creator: &'tc TextureCreator<WindowContext>,
        width: u16,
        height: u16,
        scale: Scale,
    ) -> Result<Self, String> {
        Ok(Self {
            creator,
            texture: texture(creator, width, height)?,
            width,
            height,
            damage: Vec::new(),
            scale,
            pan: (0, 0),
            uploaded_pixels: 0,
            pictures: 0,
        })
    }

    /// The remote desktop's size.
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// The remote desktop changed size: a new texture, all of it to be drawn.
    pub fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        if (width, height) != (self.width, self.height) {
            self.texture = texture(self.creator, width, height)?;
            self.width = width;
            self.height = height;
        }
        self.damage_all();
        Ok(())
    }

    /// Marks `rect` as changed in the framebuffer.
    pub fn damage(&mut self, rect: Rect) {
        if self.damage.len() >= MAX_RECTS {
            let all = self.damage.drain(..).fold(rect, Rect::union);
            self.damage.push(all);
        } else {
            self.damage.push(rect);
        }
    }

    /// Marks everything as changed.
    pub fn damage_all(&mut self) {
        self.damage.clear();
        self.damage.push(Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        });
    }

    /// Whether anything waits to be uploaded.
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty()
    }

    /// Uploads the damaged rectangles from `fb` and shows the texture on `canvas`.
    pub fn draw(&mut self, canvas: &mut WindowCanvas, fb: &Framebuffer<'_>) -> Result<(), String> {
        for rect in self.damage.drain(..) {
            let Some(rect) = rect.clipped(fb.width.min(self.width), fb.height.min(self.height)) else {
                continue;
            };
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
            self.uploaded_pixels += u64::from(rect.width) * u64::from(rect.height);
        }
        self.present(canvas)
    }

    /// Shows the texture as it is (the window was exposed or resized).
    pub fn present(&mut self, canvas: &mut WindowCanvas) -> Result<(), String> {
        canvas.clear();
        match self.scale {
            Scale::Fit => {
                canvas
                    .set_logical_size(u32::from(self.width), u32::from(self.height))
                    .map_err(|e| e.to_string())?;
                canvas.copy(&self.texture, None, None)?;
            }
            Scale::None => {
                let (w, h) = canvas.output_size()?;
                let view = SdlRect::new(self.pan.0, self.pan.1, w, h);
                canvas.copy(&self.texture, view, SdlRect::new(0, 0, w, h))?;
            }
        }
        canvas.present();
        self.pictures += 1;
        Ok(())
    }

    /// The remote position under the window position (`x`, `y`) of a mouse event. In fit mode
    /// SDL already gives mouse events in the texture's (logical) coordinates.
    pub fn to_remote(&self, x: i32, y: i32) -> (u16, u16) {
        let (x, y) = match self.scale {
            Scale::Fit => (x, y),
            Scale::None => (x + self.pan.0, y + self.pan.1),
        };
        let clamp = |v: i32, max: u16| u16::try_from(v.clamp(0, i32::from(max.saturating_sub(1)))).unwrap_or(0);
        (clamp(x, self.width), clamp(y, self.height))
    }

    /// In 1:1 mode, moves the view so that the pointer at window position (`x`, `y`) sees the
    /// same share of the desktop as of the window. Returns whether the view moved.
    pub fn follow_pointer(&mut self, x: i32, y: i32, window: (u32, u32)) -> bool {
        if self.scale != Scale::None {
            return false;
        }
        let pan_axis = |pos: i32, win: u32, remote: u16| {
            let spare = i64::from(remote) - i64::from(win);
            if spare <= 0 || win == 0 {
                return 0;
            }
            let pos = i64::from(pos.clamp(0, i32::try_from(win).unwrap_or(i32::MAX)));
            i32::try_from(spare * pos / i64::from(win)).unwrap_or(0)
        };
        let pan = (pan_axis(x, window.0, self.width), pan_axis(y, window.1, self.height));
        let moved = pan != self.pan;
        self.pan = pan;
        moved
    }
}

fn texture<'tc>(creator: &'tc TextureCreator<WindowContext>, width: u16, height: u16) -> Result<Texture<'tc>, String> {
    // RGBA32 is the byte order R, G, B, A on any endianness: the framebuffer's.
    creator
        .create_texture_streaming(PixelFormatEnum::RGBA32, u32::from(width), u32::from(height))
        .map_err(|e| format!("a {width}x{height} texture: {e}"))
}
