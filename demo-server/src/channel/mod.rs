//! Static virtual channels on the demo server: which ones it joins, how a test makes it send
//! bytes on them (well-formed or not), and what the client sent on them.
//!
//! The server joins every channel of [`JOINED`] the client asks for, and serves none of them:
//! a test speaks for it, with [`ChannelSend`]s ([`Command::Channel`](crate::Command::Channel),
//! [`Scripted::Channel`](crate::Scripted::Channel)), and reads what the client answered in
//! [`ServerEvent::ChannelData`](crate::ServerEvent::ChannelData). [`cliprdr`] and [`dvc`] make
//! and read the PDUs of the clipboard and of the dynamic channels (with display control);
//! [`egfx`] runs the server side of the graphics pipeline on a dynamic channel.
//!
//! A channel PDU travels in an MCS Send Data Indication, behind a Channel PDU Header
//! ([MS-RDPBCGR] 2.2.6.1.1: the message's total length, and FIRST / LAST flags on its first
//! and last chunk). [`ChannelData::Chunk`] sets that header to anything, so that a test can
//! declare a 100 MB message and send a few chunks of it, or flags no server would send.
//!
//! [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/

pub mod cliprdr;
pub mod dvc;
pub mod egfx;

use std::borrow::Cow;

use async_rdp::{Error, ErrorKind};
use ironrdp_core::impl_as_any;
use ironrdp_pdu::gcc::ChannelName;
use ironrdp_pdu::mcs::SendDataIndication;
use ironrdp_pdu::x224::X224;
use ironrdp_pdu::PduResult;
use ironrdp_svc::{StaticChannelSet, SvcMessage, SvcProcessor, SvcServerProcessor};

/// The static channels the server joins when the client asks for them: async-rdp's (the
/// clipboard and the dynamic channel transport) and the other common ones.
pub const JOINED: [&str; 4] = ["cliprdr", "drdynvc", "rdpsnd", "rdpdr"];

/// CHANNEL_FLAG_FIRST: the first chunk of a message.
pub const FLAG_FIRST: u32 = 0x01;
/// CHANNEL_FLAG_LAST: the last chunk of a message.
pub const FLAG_LAST: u32 = 0x02;
/// CHANNEL_PACKET_COMPRESSED: the chunk is compressed (no client of ours negotiates that).
pub const FLAG_COMPRESSED: u32 = 0x0020_0000;

/// How long the chunks of [`ChannelData::Message`] are, as servers send them (CHANNEL_CHUNK_LENGTH).
pub const CHUNK_LENGTH: usize = 1600;

/// Where a [`ChannelSend`] goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelTarget {
    /// A static channel the client joined, by name (`cliprdr`, `drdynvc`).
    Named(String),
    /// An MCS channel id, joined or not: to send where nobody listens.
    Id(u16),
}

/// What a [`ChannelSend`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelData {
    /// A whole message, cut into chunks of [`CHUNK_LENGTH`] bytes as a server does (FIRST on
    /// the first, LAST on the last, the message's length in each header).
    Message(Vec<u8>),
    /// One chunk, with its header as given: `length` (the total length of the message it
    /// belongs to), `flags` ([`FLAG_FIRST`], [`FLAG_LAST`], ...), then `data`.
    Chunk {
        /// The declared total length of the message.
        length: u32,
        /// CHANNEL_PDU_HEADER flags.
        flags: u32,
        /// The chunk's bytes.
        data: Vec<u8>,
    },
    /// MCS user data as it is, without a Channel PDU Header of ours (a truncated header, say).
    Raw(Vec<u8>),
}

/// Bytes for the server to send on a static virtual channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSend {
    /// Which channel.
    pub to: ChannelTarget,
    /// What goes on it.
    pub data: ChannelData,
}

impl ChannelSend {
    /// A whole `message` on the joined channel `channel`, chunked as a server does.
    pub fn message(channel: &str, message: Vec<u8>) -> Self {
        Self {
            to: ChannelTarget::Named(channel.to_owned()),
            data: ChannelData::Message(message),
        }
    }

    /// One chunk on the joined channel `channel`, its header declaring `length` and `flags`.
    pub fn chunk(channel: &str, length: u32, flags: u32, data: Vec<u8>) -> Self {
        Self {
            to: ChannelTarget::Named(channel.to_owned()),
            data: ChannelData::Chunk { length, flags, data },
        }
    }

    /// `data` on the MCS channel `id`, which the client may not have joined.
    pub fn to_id(id: u16, data: ChannelData) -> Self {
        Self {
            to: ChannelTarget::Id(id),
            data,
        }
    }
}

/// Appends `send` to `out` as MCS Send Data Indications from `initiator` (the user channel).
pub(crate) fn append(
    out: &mut Vec<u8>,
    channels: &StaticChannelSet,
    initiator: u16,
    send: &ChannelSend,
) -> Result<(), Error> {
    let channel_id = resolve(channels, &send.to)?;
    out.extend(encode(initiator, channel_id, &send.data)?);
    Ok(())
}

/// `data` as the MCS Send Data Indications that carry it on MCS channel `channel_id` from
/// `initiator` (the server's user channel): whole server frames, for a script or a fuzzing
/// seed that writes them itself.
pub fn encode(initiator: u16, channel_id: u16, data: &ChannelData) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut indicate = |user_data: Vec<u8>| {
        let indication = SendDataIndication {
            initiator_id: initiator,
            channel_id,
            user_data: Cow::Owned(user_data),
        };
        let frame = ironrdp_core::encode_vec(&X224(indication))
            .map_err(|e| crate::pdu::encode_error("encode channel data", e))?;
        out.extend(frame);
        Ok::<_, Error>(())
    };
    match data {
        ChannelData::Raw(bytes) => indicate(bytes.clone())?,
        ChannelData::Chunk { length, flags, data } => indicate(chunk(*length, *flags, data))?,
        ChannelData::Message(message) => {
            let length = u32::try_from(message.len()).map_err(|_| too_long(message.len()))?;
            // An empty message is one empty chunk.
            let pieces: Vec<&[u8]> = match message.is_empty() {
                true => vec![&[]],
                false => message.chunks(CHUNK_LENGTH).collect(),
            };
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let first = if i == 0 { FLAG_FIRST } else { 0 };
                let last = if i + 1 == count { FLAG_LAST } else { 0 };
                indicate(chunk(length, first | last, piece))?;
            }
        }
    }
    Ok(out)
}

/// A Channel PDU Header and the bytes it precedes.
fn chunk(length: u32, flags: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + data.len());
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn too_long(len: usize) -> Error {
    Error::new(ErrorKind::InvalidState, "server channel").with_detail(format!("a {len}-byte message is too long"))
}

/// The MCS id of `target`.
fn resolve(channels: &StaticChannelSet, target: &ChannelTarget) -> Result<u16, Error> {
    match target {
        ChannelTarget::Id(id) => Ok(*id),
        ChannelTarget::Named(name) => ChannelName::from_utf8(name)
            .and_then(|name| channels.get_channel_id_by_channel_name(&name))
            .ok_or_else(|| {
                Error::new(ErrorKind::InvalidState, "server channel")
                    .with_detail(format!("the client did not join a channel named {name:?}"))
            }),
    }
}

/// The processor the server attaches for each channel of [`JOINED`]: it serves nothing, and
/// keeps the client's messages (reassembled from their chunks by IronRDP) for the session to
/// report.
#[derive(Debug)]
pub(crate) struct Joined {
    name: ChannelName,
    received: Vec<Vec<u8>>,
}

impl_as_any!(Joined);

impl Joined {
    pub(crate) fn new(name: &str) -> Option<Self> {
        ChannelName::from_utf8(name).map(|name| Self {
            name,
            received: Vec::new(),
        })
    }

    /// The channel's name.
    pub(crate) fn name(&self) -> String {
        self.name.as_str().unwrap_or_default().to_owned()
    }

    /// The client's messages since the last call.
    pub(crate) fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.received)
    }
}

impl SvcProcessor for Joined {
    fn channel_name(&self) -> ChannelName {
        self.name.clone()
    }

    fn process(&mut self, payload: &[u8]) -> PduResult<Vec<SvcMessage>> {
        self.received.push(payload.to_vec());
        Ok(Vec::new())
    }
}

impl SvcServerProcessor for Joined {}

/// Attaches a [`Joined`] processor for each channel of [`JOINED`] to `acceptor`.
pub(crate) fn join_all(acceptor: &mut ironrdp_acceptor::Acceptor) {
    for joined in JOINED.iter().filter_map(|name| Joined::new(name)) {
        // Several processors of one type: each is a "dynamic" entry of its own name.
        acceptor.attach_dynamic_static_channel(joined);
    }
}

/// Hands a client PDU on `channel_id` to its [`Joined`] processor: the name and the whole
/// messages it completed, or `None` for a channel the server did not join.
pub(crate) fn receive(
    channels: &mut StaticChannelSet,
    channel_id: u16,
    user_data: &[u8],
) -> Option<(String, PduResult<Vec<Vec<u8>>>)> {
    let channel = channels.get_by_channel_id_mut(channel_id)?;
    let processed = channel.process(user_data);
    let joined = channel.channel_processor_downcast_mut::<Joined>()?;
    Some((joined.name(), processed.map(|_| joined.take())))
}
