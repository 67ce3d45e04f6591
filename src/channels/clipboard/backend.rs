//! The backend IronRDP's cliprdr processor calls: it records what happened, for the session
//! to act on after each frame.

use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat as CliprdrFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
};
use ironrdp_core::impl_as_any;

use super::ClipboardFormat;

/// What IronRDP's processor told the backend, in order.
#[derive(Debug)]
pub(super) enum Happened {
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
    pub(super) happened: Vec<Happened>,
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
