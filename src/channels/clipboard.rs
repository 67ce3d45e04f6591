//! The clipboard ([MS-RDPECLIP] over the `cliprdr` static channel): text both ways, with
//! delayed rendering as the protocol intends — a side announces the formats it has, and the
//! data crosses only when the other side asks for it.
//!
//! IronRDP's `Cliprdr` processor calls a backend; ours only records what happened, and the
//! session acts on those records after each frame (answering the server's data requests from
//! the text the application set, turning the rest into events). Clipboard contents are logged
//! at TRACE at most.
//!
//! [MS-RDPECLIP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpeclip/

use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat as CliprdrFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId, OwnedFormatDataResponse,
};
use ironrdp_cliprdr::{CliprdrClient, CliprdrSvcMessages};
use ironrdp_core::impl_as_any;

use crate::framing::{FramedRead, FramedWrite};
use crate::session::{Event, Session};
use crate::{Error, ErrorKind, Phase, Result};

/// The largest clipboard data the session accepts from the server by default (the data has
/// to fit in memory at once; a bigger transfer is refused with an error event).
pub const DEFAULT_MAX_CLIPBOARD_BYTES: usize = 16 << 20;

/// Clipboard text from the server. Its `Debug` shows the length, not the text, so that
/// logging an [`Event`] never puts clipboard contents in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ClipboardText(String);

impl ClipboardText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for ClipboardText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClipboardText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClipboardText(<{} characters>)", self.0.chars().count())
    }
}

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
            CF_UNICODETEXT,
            ClipboardFormatId::CF_TEXT,
            ClipboardFormatId::CF_OEMTEXT,
        ]
        .contains(&ClipboardFormatId(self.id))
    }
}

const CF_UNICODETEXT: ClipboardFormatId = ClipboardFormatId::CF_UNICODETEXT;

/// What IronRDP's processor told the backend, in order.
#[derive(Debug)]
enum Happened {
    /// The server wants the client's format list (the channel's first copy).
    FormatListRequested,
    /// The server's clipboard changed to these formats.
    RemoteCopy(Vec<ClipboardFormat>),
    /// The server asks for the client's data in this format.
    DataRequested(ClipboardFormatId),
    /// The data the client asked for; `None` when the server could not give it.
    Data(Option<Vec<u8>>),
    /// The data the client asked for was larger than the cap (size, cap).
    TooLarge(usize, usize),
}

/// Records what the processor reports; the session drains it after each frame.
#[derive(Debug)]
pub(crate) struct Backend {
    happened: Vec<Happened>,
    max_bytes: usize,
}

impl_as_any!(Backend);

impl Backend {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            happened: Vec::new(),
            max_bytes,
        }
    }
}

impl CliprdrBackend for Backend {
    fn temporary_directory(&self) -> &str {
        // No file transfer: nothing is ever stored.
        ""
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {
        log::debug!("Clipboard channel ready");
    }

    fn on_request_format_list(&mut self) {
        self.happened.push(Happened::FormatListRequested);
    }

    fn on_process_negotiated_capabilities(&mut self, _capabilities: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[CliprdrFormat]) {
        let formats = available_formats
            .iter()
            .map(|f| ClipboardFormat {
                id: f.id().value(),
                name: f.name().map(|n| n.value().to_owned()),
            })
            .collect();
        self.happened.push(Happened::RemoteCopy(formats));
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.happened.push(Happened::DataRequested(request.format));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let happened = match response.data().len() {
            _ if response.is_error() => Happened::Data(None),
            len if len > self.max_bytes => Happened::TooLarge(len, self.max_bytes),
            _ => Happened::Data(Some(response.data().to_vec())),
        };
        self.happened.push(happened);
    }

    fn on_file_contents_request(&mut self, _request: FileContentsRequest) {
        // Never asked for: the client offers no file formats.
    }

    fn on_file_contents_response(&mut self, _response: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _data_id: LockDataId) {}

    fn on_unlock(&mut self, _data_id: LockDataId) {}
}

/// The session's clipboard state.
#[derive(Debug, Default)]
pub(crate) struct ClipboardState {
    /// The text the application set, offered to the server.
    local_text: Option<String>,
    /// What the server's clipboard offers.
    remote: Vec<ClipboardFormat>,
}

/// The clipboard of a [`Session`]: text both ways.
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
        self.session.clipboard.local_text = Some(text.into());
        let formats = [CliprdrFormat::new(CF_UNICODETEXT)];
        self.session.cliprdr_call(|cliprdr| cliprdr.initiate_copy(&formats))
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
        let remote = &self.session.clipboard.remote;
        let format = [
            CF_UNICODETEXT,
            ClipboardFormatId::CF_TEXT,
            ClipboardFormatId::CF_OEMTEXT,
        ]
        .into_iter()
        .find(|id| remote.iter().any(|f| ClipboardFormatId(f.id) == *id))
        .ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, "clipboard")
                .with_detail("the server's clipboard offers no text")
                .with_phase(Phase::Session)
        })?;
        self.session.clipboard_requested = Some(format);
        self.session.cliprdr_call(|cliprdr| cliprdr.initiate_paste(format))
    }

    /// The formats the server's clipboard offers (empty until it announces them).
    pub fn remote_formats(&self) -> &[ClipboardFormat] {
        &self.session.clipboard.remote
    }
}

impl<S> Session<S> {
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
                let formats: Vec<CliprdrFormat> = match self.clipboard.local_text {
                    Some(_) => vec![CliprdrFormat::new(CF_UNICODETEXT)],
                    None => Vec::new(),
                };
                self.cliprdr_call(|cliprdr| cliprdr.initiate_copy(&formats))?;
            }
            Happened::RemoteCopy(formats) => {
                log::debug!("The server's clipboard changed ({} formats)", formats.len());
                self.clipboard.remote.clone_from(&formats);
                self.events.push_back(Event::ClipboardChanged { formats });
            }
            Happened::DataRequested(format) => {
                let response = match (&self.clipboard.local_text, format) {
                    (Some(text), CF_UNICODETEXT) => OwnedFormatDataResponse::new_unicode_string(text),
                    (Some(text), ClipboardFormatId::CF_TEXT) => OwnedFormatDataResponse::new_string(text),
                    _ => OwnedFormatDataResponse::new_error(),
                };
                log::debug!("The server asked for clipboard format {}", format.value());
                self.cliprdr_call(|cliprdr| cliprdr.submit_format_data(response))?;
            }
            Happened::Data(data) => self.clipboard_data(data),
            Happened::TooLarge(len, max) => {
                self.clipboard_requested = None;
                self.events.push_back(Event::ClipboardError(format!(
                    "the server's clipboard data is {len} bytes, over the {max} bytes the session accepts"
                )));
            }
        }
        Ok(())
    }

    fn clipboard_data(&mut self, data: Option<Vec<u8>>) {
        let format = self.clipboard_requested.take();
        let Some(data) = data else {
            self.events.push_back(Event::ClipboardError(
                "the server could not provide its clipboard data".into(),
            ));
            return;
        };
        let text = decode_text(format, &data);
        log::trace!("Clipboard text received ({} characters)", text.chars().count());
        self.events.push_back(Event::ClipboardText(ClipboardText(text)));
    }
}

/// Clipboard data as text: UTF-16LE for `CF_UNICODETEXT` (surrogate pairs joined, unpaired
/// ones replaced), bytes as UTF-8 (replacing what is not) otherwise; the terminating NULs
/// go.
fn decode_text(format: Option<ClipboardFormatId>, data: &[u8]) -> String {
    let text = match format {
        Some(CF_UNICODETEXT) => {
            let units: Vec<u16> = data.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    text.trim_end_matches('\0').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_text_keeps_every_plane() {
        let text = "é 漢字 😀";
        let mut data: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        data.extend_from_slice(&[0, 0]);
        assert_eq!(decode_text(Some(CF_UNICODETEXT), &data), text);
        // An odd trailing byte and an unpaired surrogate do not panic.
        assert_eq!(decode_text(Some(CF_UNICODETEXT), &[0x3d, 0xd8, 0x41]), "\u{fffd}");
        assert_eq!(decode_text(Some(ClipboardFormatId::CF_TEXT), b"plain\0"), "plain");
    }

    #[test]
    fn debug_never_shows_the_text() {
        let text = ClipboardText("secret".into());
        assert_eq!(format!("{text:?}"), "ClipboardText(<6 characters>)");
    }
}
