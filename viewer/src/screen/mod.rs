//! The remote desktop on the window. Only damaged rectangles are sent on: with the software
//! renderer (the default) straight into the window's own surface (`surface.rs`), with the GPU
//! renderer into one streaming texture that is then drawn scaled (`texture.rs`). `view.rs`
//! places the desktop in the window: scaled to fit, or 1:1 following the pointer.

mod surface;
mod texture;
mod view;

use async_rdp::{Framebuffer, Rect};
use sdl2::pixels::Color;
use sdl2::rect::Rect as SdlRect;
use sdl2::render::{TextureCreator, WindowCanvas};
use sdl2::video::{Window, WindowContext};
use sdl2::EventPump;

pub use self::view::Scale;
use self::view::View;

/// More damaged rectangles than this in one frame are merged into their bounding box: each
/// one is a call into SDL and the window system, one large one is cheaper than hundreds.
const MAX_RECTS: usize = 32;

/// Where pictures go.
enum Output<'tc> {
    /// The window's own surface, in this byte order.
    Surface(Window, surface::Order),
    /// A renderer (GPU) and its texture.
    Texture(texture::TextureOutput<'tc>),
}

/// The window, the desktop's place in it, and what of it is out of date.
pub struct Screen<'tc> {
    output: Output<'tc>,
    width: u16,
    height: u16,
    damage: Vec<Rect>,
    /// The window needs painting whole (it was resized or exposed).
    clear: bool,
    scale: Scale,
    /// Top-left of the view in 1:1 mode.
    pan: (i32, i32),
    /// Window pixels written, and pictures shown: logged when the viewer closes, so that a run
    /// can tell how much of each picture was really sent to the screen.
    pub uploaded_pixels: u64,
    pub pictures: u64,
}

impl<'tc> Screen<'tc> {
    /// Draws into `window`'s own surface; `None` (window given back) when its pixel format is
    /// not one this path writes.
    pub fn on_surface(window: Window, size: (u16, u16), scale: Scale) -> Result<Self, Window> {
        match surface::Order::of(window.window_pixel_format()) {
            Some(order) => Ok(Self::with(Output::Surface(window, order), size, scale)),
            None => Err(window),
        }
    }

    /// Draws through `canvas`, a renderer.
    pub fn on_canvas(
        canvas: WindowCanvas,
        creator: &'tc TextureCreator<WindowContext>,
        size: (u16, u16),
        scale: Scale,
    ) -> Result<Self, String> {
        let output = texture::TextureOutput::new(canvas, creator, size)?;
        Ok(Self::with(Output::Texture(output), size, scale))
    }

    fn with(output: Output<'tc>, (width, height): (u16, u16), scale: Scale) -> Self {
        Self {
            output,
            width,
            height,
            damage: Vec::new(),
            clear: true,
            scale,
            pan: (0, 0),
            uploaded_pixels: 0,
            pictures: 0,
        }
    }

    pub fn window(&self) -> &Window {
        match &self.output {
            Output::Surface(window, _) => window,
            Output::Texture(output) => output.canvas.window(),
        }
    }

    pub fn window_mut(&mut self) -> &mut Window {
        match &mut self.output {
            Output::Surface(window, _) => window,
            Output::Texture(output) => output.canvas.window_mut(),
        }
    }

    /// The remote desktop's size.
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// The remote desktop changed size: all of it to be drawn again.
    pub fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        if let Output::Texture(output) = &mut self.output {
            output.resize((width, height))?;
        }
        self.width = width;
        self.height = height;
        self.redraw();
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

    /// The window needs painting whole (resized, exposed, panned).
    pub fn redraw(&mut self) {
        self.clear = true;
        self.damage.clear();
        self.damage.push(Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        });
    }

    /// Whether anything waits to be drawn.
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty()
    }

    /// Draws the damaged rectangles of `fb` (of the screen's size; anything else waits for
    /// the `Resized` event that follows).
    pub fn draw(&mut self, events: &EventPump, fb: &Framebuffer<'_>) -> Result<(), String> {
        if (fb.width, fb.height) != (self.width, self.height) {
            return Ok(());
        }
        let view = self.view();
        // Damage comes from the session, already inside the framebuffer; the sizes were
        // compared above.
        let clear = std::mem::take(&mut self.clear);
        let damage = &self.damage;
        self.uploaded_pixels += match &mut self.output {
            Output::Surface(window, order) => surface::draw(window, events, *order, view, fb, damage, clear)?,
            Output::Texture(output) => output.draw(view, fb, damage)?,
        };
        self.damage.clear();
        self.pictures += 1;
        Ok(())
    }

    /// Paints plain rectangles over the whole window, before any picture (the password
    /// prompt's field): `background` everywhere, then each of `rects` in its colour, through
    /// whatever draws the pictures (the window's surface or the renderer: a window cannot have
    /// both). The next picture repaints the window whole.
    pub fn paint(&mut self, events: &EventPump, background: Color, rects: &[(SdlRect, Color)]) -> Result<(), String> {
        match &mut self.output {
            Output::Surface(window, _) => {
                let mut surface = window.surface(events)?;
                surface.fill_rect(None, background)?;
                for (rect, colour) in rects {
                    surface.fill_rect(*rect, *colour)?;
                }
                surface.update_window()?;
            }
            Output::Texture(output) => {
                let canvas = &mut output.canvas;
                canvas.set_draw_color(background);
                canvas.clear();
                for (rect, colour) in rects {
                    canvas.set_draw_color(*colour);
                    canvas.fill_rect(*rect)?;
                }
                canvas.present();
            }
        }
        self.redraw();
        Ok(())
    }

    /// The window's size in pixels.
    pub fn window_pixels(&self) -> (u32, u32) {
        match &self.output {
            Output::Surface(window, _) => window.size(),
            Output::Texture(output) => output.canvas.output_size().unwrap_or((0, 0)),
        }
    }

    /// The remote position under the window position (`x`, `y`) of a mouse event.
    pub fn to_remote(&self, x: i32, y: i32) -> (u16, u16) {
        self.view().to_remote(x, y, (self.width, self.height))
    }

    /// In 1:1 mode, moves the view so that the pointer at window position (`x`, `y`) sees the
    /// same share of the desktop as of the window (and redraws when the view moved).
    pub fn follow_pointer(&mut self, x: i32, y: i32) {
        if self.scale != Scale::None {
            return;
        }
        let window = self.window().size();
        let pan_axis = |pos: i32, win: u32, remote: u16| {
            let spare = i64::from(remote) - i64::from(win);
            if spare <= 0 || win == 0 {
                return 0;
            }
            let pos = i64::from(pos.clamp(0, i32::try_from(win).unwrap_or(i32::MAX)));
            i32::try_from(spare * pos / i64::from(win)).unwrap_or(0)
        };
        let pan = (pan_axis(x, window.0, self.width), pan_axis(y, window.1, self.height));
        if pan != self.pan {
            self.pan = pan;
            self.redraw();
        }
    }

    fn view(&self) -> View {
        View::new(self.scale, (self.width, self.height), self.window_pixels(), self.pan)
    }
}
