//! File names for recorded frames: each frame's kind, as far as a quick decode tells
//! (`fastpath-bitmap`, `x224-ServerDemandActive`, ...).

use async_rdp::ironrdp_core::decode;
use async_rdp::ironrdp_pdu::mcs::McsMessage;
use async_rdp::ironrdp_pdu::rdp::headers::{ShareControlHeader, ShareControlPdu};
use async_rdp::ironrdp_pdu::x224::X224;

/// A file name for a frame: its kind, as far as a quick decode tells.
pub(super) fn frame_name(frame: &[u8]) -> String {
    if frame.first().is_some_and(|b| b & 0b11 == 0) {
        return format!("fastpath-{}", fast_path_name(frame));
    }
    let name = match decode::<X224<McsMessage<'_>>>(frame) {
        Ok(X224(McsMessage::SendDataIndication(data))) => match decode::<ShareControlHeader>(data.user_data.as_ref()) {
            Ok(ShareControlHeader {
                share_control_pdu: ShareControlPdu::Data(header),
                ..
            }) => format!("{:?}", header.share_data_pdu.share_header_type()),
            Ok(control) => format!("{:?}", control.share_control_pdu),
            Err(_) => format!("channel-{}", data.channel_id),
        },
        Ok(X224(other)) => format!("{other:?}"),
        Err(_) if frame.get(5) == Some(&0xd0) => "connection-confirm".to_owned(),
        Err(_) => "mcs-connect-response".to_owned(),
    };
    let name: String = name
        .chars()
        .take_while(|c| *c != '(' && *c != '{' && *c != ' ')
        .collect();
    format!("x224-{name}")
}

/// The kind of a fast-path frame's first update.
fn fast_path_name(frame: &[u8]) -> &'static str {
    let header = if frame.get(1).is_some_and(|b| b & 0x80 != 0) {
        3
    } else {
        2
    };
    let code = frame.get(header).map_or(0xff, |b| b & 0x0f);
    match code {
        0x0 => "orders",
        0x1 => "bitmap",
        0x2 => "palette",
        0x3 => "synchronize",
        0x4 => "surface-commands",
        0x5 => "pointer-hidden",
        0x6 => "pointer-default",
        0x8 => "pointer-position",
        0x9 => "pointer-color",
        0xa => "pointer-cached",
        0xb => "pointer-new",
        0xc => "pointer-large",
        _ => "other",
    }
}
