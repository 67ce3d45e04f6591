//! Clipboard images (feature `clipboard-image`): [`ClipboardImage`], kept as PNG, and its
//! conversion from and to the Windows bitmap formats the protocol carries (`CF_DIB`,
//! `CF_DIBV5`), through IronRDP's `ironrdp-cliprdr-format`.

use std::io::Cursor;

use ironrdp_cliprdr::pdu::ClipboardFormatId;

use crate::{Error, ErrorKind, Phase, Result};

/// The largest picture, in RGBA bytes (64 MiB, a 4096x4096 image), that an image may decode
/// to: a small PNG can claim a huge size, and `to_rgba` must not allocate what it says.
const MAX_RGBA_BYTES: usize = 64 << 20;

/// An image on the clipboard. It is held as PNG (what desktops exchange images as, and
/// compact); [`to_rgba`](Self::to_rgba) gives the pixels. Its `Debug` shows the size, not
/// the picture.
///
/// ```
/// use async_rdp::ClipboardImage;
///
/// let red = [255, 0, 0, 255].repeat(4 * 2);
/// let image = ClipboardImage::from_rgba(4, 2, &red)?;
/// assert_eq!((image.width(), image.height()), (4, 2));
/// assert_eq!(image.to_rgba()?, red);
/// # Ok::<(), async_rdp::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClipboardImage {
    png: Vec<u8>,
    width: u32,
    height: u32,
}

impl ClipboardImage {
    /// An image from top-down rows of RGBA pixels (`width * height * 4` bytes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when `rgba` has another length or the image is empty.
    pub fn from_rgba(width: u32, height: u32, rgba: &[u8]) -> Result<Self> {
        let expected = rgba_len(width, height)?;
        if rgba.len() != expected {
            return Err(invalid(format!(
                "{width}x{height} RGBA needs {expected} bytes, not {}",
                rgba.len()
            )));
        }
        let mut png = Vec::new();
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        // The image is encoded once per copy and may cross a slow link: fast but compressed.
        encoder.set_compression(png::Compression::Fast);
        encoder
            .write_header()
            .and_then(|mut writer| writer.write_image_data(rgba))
            .map_err(|e| invalid(format!("cannot encode the image as PNG: {e}")))?;
        Ok(Self { png, width, height })
    }

    /// An image from a PNG file's bytes (the header is checked; the pixels are decoded when
    /// needed).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when `png` is not a PNG, or is larger than the 64 MiB of
    /// RGBA pixels the clipboard handles.
    pub fn from_png(png: Vec<u8>) -> Result<Self> {
        let decoder = png::Decoder::new(Cursor::new(&png[..]));
        let reader = decoder
            .read_info()
            .map_err(|e| invalid(format!("not a PNG image: {e}")))?;
        let (width, height) = (reader.info().width, reader.info().height);
        rgba_len(width, height)?;
        Ok(Self { png, width, height })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The image as a PNG file's bytes.
    pub fn png(&self) -> &[u8] {
        &self.png
    }

    /// The pixels: top-down rows of RGBA, `width * height * 4` bytes (grey and palette
    /// images expanded, 16-bit samples cut to 8, opaque where the image has no alpha).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the PNG data is damaged.
    pub fn to_rgba(&self) -> Result<Vec<u8>> {
        let mut decoder =
            png::Decoder::new_with_limits(Cursor::new(&self.png[..]), png::Limits { bytes: MAX_RGBA_BYTES });
        decoder.set_transformations(
            png::Transformations::EXPAND | png::Transformations::ALPHA | png::Transformations::STRIP_16,
        );
        let damaged = |e: png::DecodingError| invalid(format!("damaged PNG image: {e}"));
        let mut reader = decoder.read_info().map_err(damaged)?;
        let size = reader
            .output_buffer_size()
            .filter(|&size| size <= MAX_RGBA_BYTES)
            .ok_or_else(|| invalid("the PNG image is too large to decode".into()))?;
        let mut pixels = vec![0; size];
        let info = reader.next_frame(&mut pixels).map_err(damaged)?;
        pixels.truncate(info.buffer_size());
        Ok(match info.color_type {
            // EXPAND + ALPHA leave grey images as grey + alpha.
            png::ColorType::GrayscaleAlpha => pixels.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
            _ => pixels,
        })
    }

    /// The image as the clipboard format `format` (`CF_DIB` or `CF_DIBV5`).
    pub(super) fn to_dib(&self, format: ClipboardFormatId) -> Result<Vec<u8>> {
        let converted = if format == ClipboardFormatId::CF_DIBV5 {
            ironrdp_cliprdr_format::bitmap::png_to_cf_dibv5(&self.png)
        } else {
            ironrdp_cliprdr_format::bitmap::png_to_cf_dib(&self.png)
        };
        converted.map_err(|e| invalid(format!("cannot convert the image to a bitmap: {e}")))
    }

    /// An image from the server's clipboard data in `kind`.
    pub(super) fn from_clipboard(kind: ImageFormat, data: &[u8]) -> Result<Self> {
        let png = match kind {
            ImageFormat::Png => data.to_vec(),
            ImageFormat::DibV5 => ironrdp_cliprdr_format::bitmap::dibv5_to_png(data)
                .map_err(|e| invalid(format!("the server's CF_DIBV5 bitmap is invalid: {e}")))?,
            ImageFormat::Dib => ironrdp_cliprdr_format::bitmap::dib_to_png(data)
                .map_err(|e| invalid(format!("the server's CF_DIB bitmap is invalid: {e}")))?,
        };
        Self::from_png(png)
    }
}

impl std::fmt::Debug for ClipboardImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClipboardImage({}x{}, <{} bytes of PNG>)",
            self.width,
            self.height,
            self.png.len()
        )
    }
}

/// The image formats the client reads, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ImageFormat {
    /// The registered format "PNG" (Windows applications offer it beside the bitmaps).
    Png,
    /// `CF_DIBV5`: a bitmap with alpha.
    DibV5,
    /// `CF_DIB`: a bitmap.
    Dib,
}

impl ImageFormat {
    /// Which image format a clipboard format is, if any.
    pub(super) fn of(id: ClipboardFormatId, name: Option<&str>) -> Option<Self> {
        match (id, name) {
            (ClipboardFormatId::CF_DIBV5, _) => Some(Self::DibV5),
            (ClipboardFormatId::CF_DIB, _) => Some(Self::Dib),
            (_, Some("PNG")) if id.is_registered() => Some(Self::Png),
            _ => None,
        }
    }
}

fn rgba_len(width: u32, height: u32) -> Result<usize> {
    let len = usize::try_from(u64::from(width) * u64::from(height) * 4).unwrap_or(usize::MAX);
    match len {
        0 => Err(invalid(format!("an image of {width}x{height} is empty"))),
        len if len > MAX_RGBA_BYTES => Err(invalid(format!(
            "an image of {width}x{height} is over the {MAX_RGBA_BYTES} bytes of RGBA the clipboard handles"
        ))),
        len => Ok(len),
    }
}

fn invalid(detail: String) -> Error {
    Error::new(ErrorKind::InvalidInput, "clipboard image")
        .with_detail(detail)
        .with_phase(Phase::Session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(width: u32, height: u32) -> Vec<u8> {
        (0..height)
            .flat_map(|y| (0..width).flat_map(move |x| [x as u8 * 7, y as u8 * 5, (x ^ y) as u8, 200]))
            .collect()
    }

    #[test]
    fn dib_and_dibv5_round_trip_every_pixel() -> Result<()> {
        let rgba = pattern(13, 7);
        let image = ClipboardImage::from_rgba(13, 7, &rgba)?;
        let dibv5 = image.to_dib(ClipboardFormatId::CF_DIBV5)?;
        assert_eq!(
            ClipboardImage::from_clipboard(ImageFormat::DibV5, &dibv5)?.to_rgba()?,
            rgba
        );
        // CF_DIB has no alpha: the colours survive, the picture comes back opaque.
        let dib = image.to_dib(ClipboardFormatId::CF_DIB)?;
        let opaque: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        assert_eq!(
            ClipboardImage::from_clipboard(ImageFormat::Dib, &dib)?.to_rgba()?,
            opaque
        );
        Ok(())
    }

    #[test]
    fn hostile_images_are_errors() {
        assert!(ClipboardImage::from_rgba(3, 3, &[0; 35]).is_err());
        assert!(ClipboardImage::from_rgba(0, 3, &[]).is_err());
        assert!(ClipboardImage::from_png(b"\x89PNG garbage".to_vec()).is_err());
        assert!(ClipboardImage::from_clipboard(ImageFormat::Dib, &[40, 0, 0, 0, 1]).is_err());
        // A header claiming 60000x60000 pixels with no pixel data.
        let mut header = vec![0u8; 40];
        header[0] = 40;
        header[4..8].copy_from_slice(&60000i32.to_le_bytes());
        header[8..12].copy_from_slice(&60000i32.to_le_bytes());
        header[12] = 1;
        header[14] = 32;
        assert!(ClipboardImage::from_clipboard(ImageFormat::Dib, &header).is_err());
    }

    #[test]
    fn debug_never_shows_the_picture() -> Result<()> {
        let image = ClipboardImage::from_rgba(1, 1, &[1, 2, 3, 4])?;
        assert!(format!("{image:?}").starts_with("ClipboardImage(1x1, <"));
        Ok(())
    }
}
