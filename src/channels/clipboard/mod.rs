//! The clipboard ([MS-RDPECLIP] over the `cliprdr` static channel): text and images both ways, with
//! delayed rendering as the protocol intends — a side announces the formats it has, and the
//! data crosses only when the other side asks for it.
//!
//! IronRDP's `Cliprdr` processor calls a backend; ours only records what happened, and the
//! session acts on those records after each frame (answering the server's data requests from
//! what the application set, turning the rest into events). Clipboard contents are logged
//! at TRACE at most.
//!
//! [MS-RDPECLIP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpeclip/

mod backend;
#[cfg(feature = "clipboard-image")]
mod image;
mod text;

use ironrdp_cliprdr::pdu::{ClipboardFormat as CliprdrFormat, ClipboardFormatId, OwnedFormatDataResponse};
use ironrdp_cliprdr::{CliprdrClient, CliprdrSvcMessages};

pub(crate) use self::backend::Backend;
use self::backend::Happened;
#[cfg(feature = "clipboard-image")]
pub use self::image::ClipboardImage;
#[cfg(feature = "clipboard-image")]
use self::image::ImageFormat;
pub use self::text::ClipboardText;
use crate::framing::{FramedRead, FramedWrite};
use crate::session::{Event, Session};
use crate::{Error, ErrorKind, Phase, Result};

/// The largest clipboard data the session accepts from the server by default (the data has
/// to fit in memory at once; a bigger transfer is refused with an error event).
pub const DEFAULT_MAX_CLIPBOARD_BYTES: usize = 16 << 20;

/// A format the server's clipboard offers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClipboardFormat {
    /// The format id (`CF_UNICODETEXT` is 13, `CF_TEXT` 1, `CF_DIB` 8, ...; registered formats
    /// have ids of 0xC000 and up and a name).
    pub id: u32,
    /// The name of a registered format.
    pub name: Option<String>,
}

impl ClipboardFormat {
    /// Whether this is one of the standard text formats.
    pub fn is_text(&self) -> bool {
        [
            ClipboardFormatId::CF_UNICODETEXT,
            ClipboardFormatId::CF_TEXT,
            ClipboardFormatId::CF_OEMTEXT,
        ]
        .contains(&ClipboardFormatId(self.id))
    }

    /// Whether this is an image format the client reads (`CF_DIB`, `CF_DIBV5`, or the
    /// registered format "PNG"; feature `clipboard-image`).
    pub fn is_image(&self) -> bool {
        #[cfg(feature = "clipboard-image")]
        return ImageFormat::of(ClipboardFormatId(self.id), self.name.as_deref()).is_some();
        #[cfg(not(feature = "clipboard-image"))]
        return false;
    }
}

/// What the application put on the clipboard, offered to the server.
#[derive(Debug)]
enum Local {
    Text(String),
    #[cfg(feature = "clipboard-image")]
    Image(ClipboardImage),
}

impl Local {
    /// The formats this content is offered in, best first.
    fn formats(&self) -> Vec<CliprdrFormat> {
        let ids: &[ClipboardFormatId] = match self {
            Local::Text(_) => &[ClipboardFormatId::CF_UNICODETEXT],
            // Both bitmaps: xrdp and older servers read CF_DIB, Windows prefers CF_DIBV5.
            #[cfg(feature = "clipboard-image")]
            Local::Image(_) => &[ClipboardFormatId::CF_DIBV5, ClipboardFormatId::CF_DIB],
        };
        ids.iter().map(|&id| CliprdrFormat::new(id)).collect()
    }

    /// The content in `format`, or an error response when it has no such form.
    fn render(&self, format: ClipboardFormatId) -> OwnedFormatDataResponse {
        match (self, format) {
            (Local::Text(text), ClipboardFormatId::CF_UNICODETEXT) => OwnedFormatDataResponse::new_unicode_string(text),
            (Local::Text(text), ClipboardFormatId::CF_TEXT) => OwnedFormatDataResponse::new_string(text),
            #[cfg(feature = "clipboard-image")]
            (Local::Image(image), ClipboardFormatId::CF_DIB | ClipboardFormatId::CF_DIBV5) => {
                match image.to_dib(format) {
                    Ok(dib) => OwnedFormatDataResponse::new_data(dib),
                    Err(e) => {
                        log::warn!("Clipboard: {}", crate::report(&e));
                        OwnedFormatDataResponse::new_error()
                    }
                }
            }
            _ => OwnedFormatDataResponse::new_error(),
        }
    }
}

/// What the client asked the server for.
#[derive(Debug, Clone, Copy)]
enum Wanted {
    Text(ClipboardFormatId),
    #[cfg(feature = "clipboard-image")]
    Image(ImageFormat),
}

/// The session's clipboard state.
#[derive(Debug, Default)]
pub(crate) struct ClipboardState {
    /// What the application set, offered to the server.
    local: Option<Local>,
    /// What the server's clipboard offers.
    remote: Vec<ClipboardFormat>,
    /// The data asked for and not yet received.
    requested: Option<Wanted>,
}

/// The clipboard of a [`Session`]: text and images both ways.
///
/// ```no_run
/// # async fn paste(session: &mut async_rdp::ClientSession) -> async_rdp::Result<()> {
/// use async_rdp::Event;
///
/// session.clipboard().set_text("copied on the board")?;
/// loop {
///     match session.next_event().await? {
///         Event::ClipboardChanged { formats } if formats.iter().any(|f| f.is_text()) => {
///             session.clipboard().request_text()?;
///         }
///         Event::ClipboardText(text) => break println!("the server copied {} characters", text.chars().count()),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Clipboard<'a, S> {
    session: &'a mut Session<S>,
}

impl<'a, S> Clipboard<'a, S> {
    pub(crate) fn new(session: &'a mut Session<S>) -> Self {
        Self { session }
    }
}

impl<S: FramedRead + FramedWrite> Clipboard<'_, S> {
    /// Puts `text` on the clipboard for the server: the server is told that text is available
    /// (`CF_UNICODETEXT`), and gets it when a remote application pastes. Queued, like input.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] when the connection has no clipboard channel.
    pub fn set_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.session.offer(Local::Text(text.into()))
    }

    /// Puts `image` on the clipboard for the server, offered as `CF_DIBV5` and `CF_DIB`
    /// (converted when the server asks). Queued, like input.
    ///
    /// ```no_run
    /// # fn copy(session: &mut async_rdp::ClientSession) -> Result<(), Box<dyn std::error::Error>> {
    /// let image = async_rdp::ClipboardImage::from_png(std::fs::read("logo.png")?)?;
    /// session.clipboard().set_image(image)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] when the connection has no clipboard channel.
    #[cfg(feature = "clipboard-image")]
    pub fn set_image(&mut self, image: ClipboardImage) -> Result<()> {
        self.session.offer(Local::Image(image))
    }

    /// Asks the server for its clipboard's text; it arrives as [`Event::ClipboardText`] (or
    /// [`Event::ClipboardError`]). Asks for `CF_UNICODETEXT` when the server offers it, else
    /// the server's other text format.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] without a clipboard channel; [`ErrorKind::InvalidState`] when
    /// the server's clipboard offers no text (see [`Event::ClipboardChanged`]).
    pub fn request_text(&mut self) -> Result<()> {
        let found = [
            ClipboardFormatId::CF_UNICODETEXT,
            ClipboardFormatId::CF_TEXT,
            ClipboardFormatId::CF_OEMTEXT,
        ]
        .into_iter()
        .find(|&id| self.remote_formats().iter().any(|f| ClipboardFormatId(f.id) == id));
        let id = found.ok_or_else(|| nothing_offered("text"))?;
        self.session.paste(id, Wanted::Text(id))
    }

    /// Asks the server for its clipboard's image; it arrives as [`Event::ClipboardImage`] (or
    /// [`Event::ClipboardError`]). Asks for the registered format "PNG" when the server
    /// offers it, else `CF_DIBV5`, else `CF_DIB`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] without a clipboard channel; [`ErrorKind::InvalidState`] when
    /// the server's clipboard offers no image.
    #[cfg(feature = "clipboard-image")]
    pub fn request_image(&mut self) -> Result<()> {
        let (kind, id) = self
            .session
            .image_format_after(None)
            .ok_or_else(|| nothing_offered("image"))?;
        self.session.paste(id, Wanted::Image(kind))
    }

    /// The formats the server's clipboard offers (empty until it announces them).
    pub fn remote_formats(&self) -> &[ClipboardFormat] {
        &self.session.clipboard.remote
    }
}

fn nothing_offered(what: &str) -> Error {
    Error::new(ErrorKind::InvalidState, "clipboard")
        .with_detail(format!("the server's clipboard offers no {what}"))
        .with_phase(Phase::Session)
}

impl<S> Session<S> {
    /// Makes `local` the client's clipboard and tells the server its formats.
    fn offer(&mut self, local: Local) -> Result<()> {
        let formats = local.formats();
        self.clipboard.local = Some(local);
        self.cliprdr_call(|cliprdr| cliprdr.initiate_copy(&formats))
    }

    /// The best image format the server offers that is worse than `after`.
    #[cfg(feature = "clipboard-image")]
    fn image_format_after(&self, after: Option<ImageFormat>) -> Option<(ImageFormat, ClipboardFormatId)> {
        self.clipboard
            .remote
            .iter()
            .filter_map(|f| {
                Some((
                    ImageFormat::of(ClipboardFormatId(f.id), f.name.as_deref())?,
                    ClipboardFormatId(f.id),
                ))
            })
            .filter(|&(kind, _)| after.is_none_or(|after| kind > after))
            .min_by_key(|&(kind, _)| kind)
    }

    /// Asks the server for its clipboard data in `id`.
    fn paste(&mut self, id: ClipboardFormatId, wanted: Wanted) -> Result<()> {
        self.clipboard.requested = Some(wanted);
        self.cliprdr_call(|cliprdr| cliprdr.initiate_paste(id))
    }

    /// Runs `call` on the clipboard processor and queues the messages it makes.
    pub(crate) fn cliprdr_call(
        &mut self,
        call: impl FnOnce(&mut CliprdrClient) -> ironrdp_pdu::PduResult<CliprdrSvcMessages<ironrdp_cliprdr::Client>>,
    ) -> Result<()> {
        let failed = |detail: String| {
            Error::new(ErrorKind::Session, "clipboard")
                .with_detail(detail)
                .with_phase(Phase::Session)
        };
        let messages = crate::redact::scoped(|| {
            let cliprdr = self
                .stage
                .get_svc_processor_mut::<CliprdrClient>()
                .ok_or_else(|| {
                    Error::new(ErrorKind::Unsupported, "clipboard")
                        .with_detail("the connection has no clipboard channel (ClientConfig did not offer Channel::Clipboard, or the server did not join it)")
                        .with_phase(Phase::Session)
                })?;
            call(cliprdr).map_err(|e| failed(e.to_string()))
        })?;
        let frame = crate::redact::scoped(|| self.stage.process_svc_processor_messages(messages))
            .map_err(|e| failed(e.to_string()))?;
        log::trace!("Clipboard: queued {} bytes", frame.len());
        self.queue_frame(&frame);
        Ok(())
    }

    /// Acts on what the clipboard processor reported while the last frame was processed.
    pub(crate) fn drive_clipboard(&mut self) -> Result<()> {
        let happened = match self
            .stage
            .get_svc_processor_mut::<CliprdrClient>()
            .and_then(|c| c.downcast_backend_mut::<Backend>())
        {
            Some(backend) if !backend.happened.is_empty() => std::mem::take(&mut backend.happened),
            _ => return Ok(()),
        };
        for happened in happened {
            self.on_clipboard(happened)?;
        }
        Ok(())
    }

    fn on_clipboard(&mut self, happened: Happened) -> Result<()> {
        match happened {
            Happened::FormatListRequested => {
                let formats = self.clipboard.local.as_ref().map(Local::formats).unwrap_or_default();
                self.cliprdr_call(|cliprdr| cliprdr.initiate_copy(&formats))?;
            }
            Happened::RemoteCopy(formats) => {
                log::debug!("The server's clipboard changed ({} formats)", formats.len());
                self.clipboard.remote.clone_from(&formats);
                self.events.push_back(Event::ClipboardChanged { formats });
            }
            Happened::DataRequested(format) => {
                log::debug!("The server asked for clipboard format {}", format.value());
                let response = match &self.clipboard.local {
                    Some(local) => local.render(format),
                    None => OwnedFormatDataResponse::new_error(),
                };
                self.cliprdr_call(|cliprdr| cliprdr.submit_format_data(response))?;
            }
            Happened::Data(data) => self.clipboard_data(data),
            Happened::TooLarge(len, max) => {
                self.clipboard.requested = None;
                self.events.push_back(Event::ClipboardError(format!(
                    "the server's clipboard data is {len} bytes, over the {max} bytes the session accepts"
                )));
            }
        }
        Ok(())
    }

    fn clipboard_data(&mut self, data: Option<Vec<u8>>) {
        let wanted = self.clipboard.requested.take();
        let event = match (wanted, data) {
            // Servers offer formats they then fail to render (xrdp lists CF_DIBV5 and answers
            // only CF_DIB): try the next image format before giving up.
            #[cfg(feature = "clipboard-image")]
            (Some(Wanted::Image(kind)), None) if self.image_format_after(Some(kind)).is_some() => {
                if let Some((next, id)) = self.image_format_after(Some(kind)) {
                    log::debug!("Clipboard: no {kind:?} image from the server; asking for {next:?}");
                    if let Err(e) = self.paste(id, Wanted::Image(next)) {
                        self.events.push_back(Event::ClipboardError(crate::report(&e)));
                    }
                }
                return;
            }
            (_, None) => Event::ClipboardError("the server could not provide its clipboard data".into()),
            (None, Some(_)) => {
                log::warn!("Clipboard: the server sent data the client did not ask for; dropped");
                return;
            }
            (Some(Wanted::Text(id)), Some(data)) => {
                let text = text::decode_text(Some(id), &data);
                log::trace!("Clipboard text received ({} characters)", text.chars().count());
                Event::ClipboardText(ClipboardText(text))
            }
            #[cfg(feature = "clipboard-image")]
            (Some(Wanted::Image(kind)), Some(data)) => match ClipboardImage::from_clipboard(kind, &data) {
                Ok(image) => Event::ClipboardImage(image),
                Err(e) => Event::ClipboardError(crate::report(&e)),
            },
        };
        self.events.push_back(event);
    }
}
