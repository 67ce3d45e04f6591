//! Dynamic virtual channel PDUs ([MS-RDPEDYC]) as the server sends them on the `drdynvc`
//! static channel, with display control ([MS-RDPEDISP]) inside, made with IronRDP's types; and
//! a look at what the client answered. Each function returns the message to put in
//! [`ChannelSend::message`](super::ChannelSend::message) on the `drdynvc` channel.
//!
//! Opening display control takes [`capabilities_request`], [`create_request`] with
//! [`DISPLAY_CONTROL`], then [`data`] carrying [`display_control_caps`]; the client then sends
//! its monitor layouts as DVC data, which [`monitor_layout`] reads.
//!
//! [MS-RDPEDYC]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedyc/
//! [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/

use ironrdp_core::{decode, encode_vec, EncodeError};
use ironrdp_displaycontrol::pdu::{DisplayControlCapabilities, DisplayControlPdu};
use ironrdp_dvc::pdu::{
    CapabilitiesRequestPdu, CapsVersion, ClosePdu, CreateRequestPdu, CreationStatus, DataFirstPdu, DataPdu,
    DrdynvcClientPdu, DrdynvcDataPdu, DrdynvcServerPdu,
};

/// The name of the display control channel.
pub const DISPLAY_CONTROL: &str = ironrdp_displaycontrol::CHANNEL_NAME;

/// The DVC Capabilities Request (version 1).
pub fn capabilities_request() -> Result<Vec<u8>, EncodeError> {
    let request = CapabilitiesRequestPdu::new(CapsVersion::V1, None);
    encode_vec(&DrdynvcServerPdu::Capabilities(request))
}

/// A Create Request opening channel `id` named `name`.
pub fn create_request(id: u32, name: &str) -> Result<Vec<u8>, EncodeError> {
    encode_vec(&DrdynvcServerPdu::Create(CreateRequestPdu::new(id, name.to_owned())))
}

/// A Close Request for channel `id`.
pub fn close(id: u32) -> Result<Vec<u8>, EncodeError> {
    encode_vec(&DrdynvcServerPdu::Close(ClosePdu::new(id)))
}

/// A Data PDU: `payload` for channel `id`, whole.
pub fn data(id: u32, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let pdu = DrdynvcDataPdu::Data(DataPdu::new(id, payload.to_vec()));
    encode_vec(&DrdynvcServerPdu::Data(pdu))
}

/// A Data First PDU: the first `payload` of a message of `total` bytes for channel `id`.
pub fn data_first(id: u32, total: u32, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let pdu = DrdynvcDataPdu::DataFirst(DataFirstPdu::new(id, total, payload.to_vec()));
    encode_vec(&DrdynvcServerPdu::Data(pdu))
}

/// The display control Capabilities PDU: at most `monitors` monitors of `width` x `height`.
pub fn display_control_caps(monitors: u32, width: u32, height: u32) -> Result<Vec<u8>, EncodeError> {
    let caps = DisplayControlCapabilities::new(monitors, width, height)
        .map_err(|_| ironrdp_core::invalid_field_err("DisplayControlCapabilities", "caps", "out of range", None))?;
    encode_vec(&DisplayControlPdu::Caps(caps))
}

/// What the client answered to a Create Request in `message`: the channel id and whether it
/// opened the channel.
pub fn create_response(message: &[u8]) -> Option<(u32, bool)> {
    match decode::<DrdynvcClientPdu>(message).ok()? {
        DrdynvcClientPdu::Create(response) => {
            Some((response.channel_id(), response.creation_status() == CreationStatus::OK))
        }
        _ => None,
    }
}

/// Whether `message` is the client's DVC Capabilities Response.
pub fn is_capabilities_response(message: &[u8]) -> bool {
    matches!(
        decode::<DrdynvcClientPdu>(message),
        Ok(DrdynvcClientPdu::Capabilities(_))
    )
}

/// The desktop size of the display control monitor layout in `message`, if it is one (sent
/// whole, on any channel id).
pub fn monitor_layout(message: &[u8]) -> Option<(u32, u32)> {
    let DrdynvcClientPdu::Data(DrdynvcDataPdu::Data(data)) = decode::<DrdynvcClientPdu>(message).ok()? else {
        return None;
    };
    match decode::<DisplayControlPdu>(data.data()).ok()? {
        DisplayControlPdu::MonitorLayout(layout) => Some(layout.desktop_size()),
        DisplayControlPdu::Caps(_) => None,
    }
}
