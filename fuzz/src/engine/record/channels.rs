//! Seeds of virtual channel traffic for `session_frames`: clipboard and dynamic channel (with
//! display control) PDUs in Channel PDU Headers and MCS Send Data Indications, on the channel
//! ids the harness gives its sessions' channels; well-formed, chunked, oversized, malformed,
//! and on a channel nobody joined. Made with the demo server's encoders rather than recorded:
//! the demo server serves no channel of its own.

use async_rdp_demo_server::channel::{self, cliprdr, dvc, FLAG_FIRST, FLAG_LAST};
use async_rdp_demo_server::ChannelData;

use crate::engine::BoxError;
use crate::harness::session::{CLIPRDR_CHANNEL, DRDYNVC_CHANNEL};

/// The MCS id of the server's user channel (IronRDP's acceptor uses this one).
const USER_CHANNEL: u16 = 1002;

/// An MCS channel id nobody joined.
const UNJOINED: u16 = 1100;

/// The dynamic channel id display control is opened on.
const DISPLAY: u32 = 1;

/// The seeds, by file name.
pub fn channel_seeds() -> Result<Vec<(&'static str, Vec<u8>)>, BoxError> {
    let clipboard_ready = [
        cliprdr_message(cliprdr::capabilities()?)?,
        cliprdr_message(cliprdr::monitor_ready()?)?,
        cliprdr_message(cliprdr::format_list_response(true)?)?,
    ]
    .concat();
    let display_ready = [
        dvc_message(dvc::capabilities_request()?)?,
        dvc_message(dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?)?,
        dvc_message(dvc::data(DISPLAY, &dvc::display_control_caps(16, 8192, 8192)?)?)?,
    ]
    .concat();
    let text = cliprdr::format_list(&[(cliprdr::CF_UNICODETEXT, None), (0xC000, Some("PNG"))])?;
    Ok(vec![
        ("channel-cliprdr-ready", clipboard_ready.clone()),
        ("channel-cliprdr-format-list", cliprdr_message(text)?),
        (
            "channel-cliprdr-text-response",
            cliprdr_message(cliprdr::unicode_text_response("fuzz: é 漢字")?)?,
        ),
        // Three chunks of one message (4000 bytes of data).
        (
            "channel-cliprdr-chunked-response",
            cliprdr_message(cliprdr::format_data_response(&[0x41; 4000])?)?,
        ),
        ("channel-cliprdr-oversized", oversized_clipboard()?),
        ("channel-cliprdr-malformed", malformed_clipboard()?),
        ("channel-drdynvc-display-control", display_ready.clone()),
        ("channel-drdynvc-oversized", oversized_dvc()?),
        (
            "channel-unjoined",
            channel::encode(USER_CHANNEL, UNJOINED, &ChannelData::Message(vec![0x5a; 64]))?,
        ),
        ("stream-channels", [clipboard_ready, display_ready].concat()),
    ])
}

fn cliprdr_message(message: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    Ok(channel::encode(
        USER_CHANNEL,
        CLIPRDR_CHANNEL,
        &ChannelData::Message(message),
    )?)
}

fn dvc_message(message: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    Ok(channel::encode(
        USER_CHANNEL,
        DRDYNVC_CHANNEL,
        &ChannelData::Message(message),
    )?)
}

fn cliprdr_chunk(length: u32, flags: u32, data: Vec<u8>) -> Result<Vec<u8>, BoxError> {
    let chunk = ChannelData::Chunk { length, flags, data };
    Ok(channel::encode(USER_CHANNEL, CLIPRDR_CHANNEL, &chunk)?)
}

/// A Format Data Response declaring 100 MB: its first chunk, two more, and a last one.
fn oversized_clipboard() -> Result<Vec<u8>, BoxError> {
    let declared = (100 << 20) + 8;
    let mut first = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
    first.extend_from_slice(&(100u32 << 20).to_le_bytes());
    first.resize(1600, 0x41);
    Ok([
        cliprdr_chunk(declared, FLAG_FIRST, first)?,
        cliprdr_chunk(declared, 0, vec![0x42; 1600])?,
        cliprdr_chunk(declared, 0, vec![0x42; 1600])?,
        cliprdr_chunk(declared, FLAG_LAST, vec![0x42; 16])?,
    ]
    .concat())
}

/// A truncated clipboard header, an unknown msgType, a dataLen past the data, a PDU shorter
/// than its channel header, a message longer than its first chunk declared.
fn malformed_clipboard() -> Result<Vec<u8>, BoxError> {
    let mut long_data = [5u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
    long_data.extend_from_slice(&1000u32.to_le_bytes());
    long_data.extend_from_slice(b"ten bytes.");
    Ok([
        cliprdr_message(vec![0x02, 0x00, 0x00])?,
        cliprdr_message(vec![0x77, 0x77, 0, 0, 0, 0, 0, 0])?,
        cliprdr_message(long_data)?,
        channel::encode(USER_CHANNEL, CLIPRDR_CHANNEL, &ChannelData::Raw(vec![1, 2, 3]))?,
        cliprdr_chunk(16, FLAG_FIRST, vec![0x02, 0, 0, 0, 8, 0, 0, 0])?,
        cliprdr_chunk(16, 0, vec![0; 64])?,
        cliprdr_chunk(16, FLAG_LAST, vec![0; 8])?,
    ]
    .concat())
}

/// Display control opened, then a Data First declaring 100 MB and some of its Data PDUs.
fn oversized_dvc() -> Result<Vec<u8>, BoxError> {
    let mut stream = vec![
        dvc_message(dvc::capabilities_request()?)?,
        dvc_message(dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?)?,
        dvc_message(dvc::data_first(DISPLAY, 100 << 20, &[0; 1500])?)?,
    ];
    for _ in 0..3 {
        stream.push(dvc_message(dvc::data(DISPLAY, &[0x43; 1590])?)?);
    }
    stream.push(dvc_message(dvc::create_request(DISPLAY, dvc::DISPLAY_CONTROL)?)?);
    stream.push(dvc_message(dvc::close(DISPLAY)?)?);
    Ok(stream.concat())
}
