//! What a session tells its application: [`Event`]s, the rectangles they name, and the
//! framebuffer view.

use std::sync::Arc;

use ironrdp_graphics::pointer::DecodedPointer;
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;

/// A rectangle of the framebuffer, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width (at least 1).
    pub width: u16,
    /// Height (at least 1).
    pub height: u16,
}

impl Rect {
    /// This rectangle cut to a `width` x `height` area at the origin; `None` when nothing is
    /// left.
    ///
    /// ```
    /// use async_rdp::Rect;
    ///
    /// let r = Rect { x: 90, y: 90, width: 20, height: 20 };
    /// assert_eq!(r.clipped(100, 95), Some(Rect { x: 90, y: 90, width: 10, height: 5 }));
    /// assert_eq!(r.clipped(90, 100), None);
    /// ```
    pub fn clipped(self, width: u16, height: u16) -> Option<Rect> {
        let right = self.x.saturating_add(self.width).min(width);
        let bottom = self.y.saturating_add(self.height).min(height);
        (self.x < right && self.y < bottom).then(|| Rect {
            x: self.x,
            y: self.y,
            width: right - self.x,
            height: bottom - self.y,
        })
    }

    /// The smallest rectangle that covers both.
    ///
    /// ```
    /// use async_rdp::Rect;
    ///
    /// let a = Rect { x: 10, y: 10, width: 5, height: 5 };
    /// let b = Rect { x: 0, y: 12, width: 3, height: 10 };
    /// assert_eq!(a.union(b), Rect { x: 0, y: 10, width: 15, height: 12 });
    /// ```
    pub fn union(self, other: Rect) -> Rect {
        let right = (u32::from(self.x) + u32::from(self.width)).max(u32::from(other.x) + u32::from(other.width));
        let bottom = (u32::from(self.y) + u32::from(self.height)).max(u32::from(other.y) + u32::from(other.height));
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        Rect {
            x,
            y,
            width: u16::try_from(right - u32::from(x)).unwrap_or(u16::MAX),
            height: u16::try_from(bottom - u32::from(y)).unwrap_or(u16::MAX),
        }
    }
}

impl From<&InclusiveRectangle> for Rect {
    fn from(r: &InclusiveRectangle) -> Self {
        Self {
            x: r.left,
            y: r.top,
            width: r.right.saturating_sub(r.left).saturating_add(1),
            height: r.bottom.saturating_sub(r.top).saturating_add(1),
        }
    }
}

/// What the server did to the pointer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PointerEvent {
    /// Show the system's default pointer.
    Default,
    /// Hide the pointer.
    Hidden,
    /// The server moved the pointer.
    Position {
        /// Horizontal position.
        x: u16,
        /// Vertical position.
        y: u16,
    },
    /// A new pointer shape (RGBA, with its hot spot).
    Bitmap(Arc<DecodedPointer>),
}

/// Why a session ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client asked to end the session ([`Session::shutdown`](super::Session::shutdown)).
    Client,
    /// The server ended the session; the text is the server's reason.
    Server(String),
    /// The server sent the client to another server ([MS-RDPBCGR] 2.2.13).
    ///
    /// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
    Redirected(Box<ServerRedirectionPdu>),
    /// The connection closed or broke without a goodbye; the text says how.
    ConnectionLost(String),
}

/// Something that happened in the session.
///
/// ```no_run
/// # async fn handle(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
/// use async_rdp::{DisconnectReason, Event, PointerEvent};
///
/// match session.next_event().await? {
///     Event::Graphics(rect) => {
///         let fb = session.framebuffer();
///         // Copy only the damaged rows of `rect` out of `fb.data` (RGBA, `fb.stride` apart).
///         let first_row = usize::from(rect.y) * fb.stride;
///         let _damaged = &fb.data[first_row..first_row + usize::from(rect.height) * fb.stride];
///     }
///     Event::Pointer(PointerEvent::Position { x, y }) => println!("pointer at {x},{y}"),
///     Event::Resized { width, height } => println!("desktop is now {width}x{height}"),
///     Event::LogonComplete => println!("logged on"),
///     Event::Disconnected(DisconnectReason::Server(why)) => println!("server said: {why}"),
///     Event::Disconnected(other) => println!("ended: {other:?}"),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// This part of the framebuffer changed.
    Graphics(Rect),
    /// The pointer changed.
    Pointer(PointerEvent),
    /// The server deactivated and reactivated the session; the framebuffer was rebuilt at this
    /// size and is blank until the server redraws it.
    Resized {
        /// New width.
        width: u16,
        /// New height.
        height: u16,
    },
    /// The server reports the user's logon as complete.
    LogonComplete,
    /// The session ended. Later calls to [`Session::next_event`](super::Session::next_event) return
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    Disconnected(DisconnectReason),
    /// The server's clipboard changed; it offers these formats (the data crosses only when
    /// asked for: [`Clipboard::request_text`](crate::channels::Clipboard::request_text)).
    #[cfg(feature = "clipboard")]
    ClipboardChanged {
        /// The formats on offer.
        formats: Vec<crate::channels::ClipboardFormat>,
    },
    /// The text of the server's clipboard, as asked for.
    #[cfg(feature = "clipboard")]
    ClipboardText(crate::channels::ClipboardText),
    /// The image of the server's clipboard, as asked for
    /// ([`Clipboard::request_image`](crate::channels::Clipboard::request_image)).
    #[cfg(feature = "clipboard-image")]
    ClipboardImage(crate::channels::ClipboardImage),
    /// A clipboard request failed: the server could not provide the data, or it was larger
    /// than the session accepts.
    #[cfg(feature = "clipboard")]
    ClipboardError(String),
    /// The server's audio: decoded audio was queued (take it with
    /// [`Session::audio`](super::Session::audio)), the volume changed, or the stream closed.
    #[cfg(feature = "audio")]
    Audio(crate::channels::AudioEvent),
}

/// A read-only view of the framebuffer: RGBA, 4 bytes a pixel, rows `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Framebuffer<'a> {
    /// The pixels, `height` rows of `stride` bytes.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes from the start of one row to the next.
    pub stride: usize,
}

impl Framebuffer<'_> {
    /// The RGBA value at (`x`, `y`), or `None` outside the framebuffer.
    pub fn pixel(&self, x: u16, y: u16) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = usize::from(y) * self.stride + usize::from(x) * 4;
        let px = self.data.get(at..at + 4)?;
        Some([px[0], px[1], px[2], px[3]])
    }
}
