//! Clipboard PDUs ([MS-RDPECLIP]) as the server sends them, made with IronRDP's types, and a
//! look at what the client sent. Each function returns the message to put in
//! [`ChannelSend::message`](super::ChannelSend::message) on the `cliprdr` channel.
//!
//! A client becomes ready for clipboard traffic after [`capabilities`] and [`monitor_ready`]:
//! it answers with its own capabilities and format list, which [`format_list_response`]
//! acknowledges.
//!
//! [MS-RDPECLIP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpeclip/

use ironrdp_cliprdr::pdu::{
    Capabilities, ClipboardFormat, ClipboardFormatId, ClipboardFormatName, ClipboardGeneralCapabilityFlags,
    ClipboardPdu, ClipboardProtocolVersion, FormatDataResponse, FormatList, FormatListResponse,
};
use ironrdp_core::{decode, encode_vec, EncodeError};

/// CF_UNICODETEXT.
pub const CF_UNICODETEXT: u32 = 13;

/// The server's Clipboard Capabilities PDU (version 2, no optional features).
pub fn capabilities() -> Result<Vec<u8>, EncodeError> {
    let caps = Capabilities::new(ClipboardProtocolVersion::V2, ClipboardGeneralCapabilityFlags::empty());
    encode_vec(&ClipboardPdu::Capabilities(caps))
}

/// Monitor Ready: the client may now send its capabilities and format list.
pub fn monitor_ready() -> Result<Vec<u8>, EncodeError> {
    encode_vec(&ClipboardPdu::MonitorReady)
}

/// A Format List PDU of `formats` (id and, for registered formats, name), with short format
/// names (the client of async-rdp does not ask for long ones).
pub fn format_list(formats: &[(u32, Option<&str>)]) -> Result<Vec<u8>, EncodeError> {
    let formats: Vec<ClipboardFormat> = formats
        .iter()
        .map(|(id, name)| {
            let format = ClipboardFormat::new(ClipboardFormatId::new(*id));
            match name {
                Some(name) => format.with_name(ClipboardFormatName::new((*name).to_owned())),
                None => format,
            }
        })
        .collect();
    encode_vec(&ClipboardPdu::FormatList(FormatList::new_unicode(&formats, false)?))
}

/// A Format List Response: OK (`true`) or FAIL.
pub fn format_list_response(ok: bool) -> Result<Vec<u8>, EncodeError> {
    let response = if ok {
        FormatListResponse::Ok
    } else {
        FormatListResponse::Fail
    };
    encode_vec(&ClipboardPdu::FormatListResponse(response))
}

/// A Format Data Response carrying `data`.
pub fn format_data_response(data: &[u8]) -> Result<Vec<u8>, EncodeError> {
    encode_vec(&ClipboardPdu::FormatDataResponse(FormatDataResponse::new_data(data)))
}

/// A Format Data Response carrying `text` as CF_UNICODETEXT (UTF-16LE, NUL-terminated).
pub fn unicode_text_response(text: &str) -> Result<Vec<u8>, EncodeError> {
    encode_vec(&ClipboardPdu::FormatDataResponse(
        FormatDataResponse::new_unicode_string(text),
    ))
}

/// The name of the clipboard PDU in `message` (`CLIPRDR_FORMAT_DATA_REQUEST`, ...), or `None`
/// if it does not decode.
pub fn message_name(message: &[u8]) -> Option<&'static str> {
    decode::<ClipboardPdu<'_>>(message).ok().map(|pdu| pdu.message_name())
}
