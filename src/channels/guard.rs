//! The guard in front of IronRDP's static virtual channels: every server PDU on a virtual
//! channel passes here before IronRDP's `ActiveStage` sees it, so that whatever a server sends
//! on a channel costs bounded memory, and a channel's bad message costs that message, not the
//! session.
//!
//! Why it is needed: IronRDP reassembles a chunked static channel message (ironrdp-svc's chunk
//! processor) up to the total length its first chunk declares, a `u32`, before the channel's
//! processor (and the clipboard's own cap) sees any of it; ironrdp-dvc does the same with the
//! length a dynamic channel's Data First PDU declares. And IronRDP ends the session on data for
//! a channel the client did not join, and on any message a channel's processor cannot decode.
//!
//! What it does with a server PDU on a static channel (an MCS Send Data Indication other than
//! the I/O and message channels'):
//!
//! - on a channel the client did not join: dropped with a warning (MCS delivers data only to
//!   the channels a user joined; nothing here could take it);
//! - too short for its Channel PDU Header, or compressed (the client announced no channel
//!   compression): dropped with a warning;
//! - the first chunk of a message longer than the channel's cap: that message, up to its last
//!   chunk, is dropped with one warning (and an `Event::ClipboardError` on the clipboard);
//! - on `drdynvc`, a Data First PDU declaring a dynamic channel message over the cap: dropped,
//!   and so are the Data PDUs that carry the rest of that message.
//!
//! After IronRDP, an error it met processing a channel's message is contained the same way
//! ([`Session::channel_failed`]): IronRDP's chunk processor and the channels' processors
//! reject a bad message before changing their state, so the channel carries on with the next.
//!
//! Dropping rather than ending the session, on every channel: a static channel keeps its
//! messages apart (FIRST and LAST chunk flags), so dropping a whole message leaves the ones
//! after it intact; the clipboard and display control are conveniences beside the desktop, and
//! no specification asks a client to disconnect over their data. What a dropped message leaves
//! behind is bounded: the clipboard request it answered stays pending in IronRDP's processor
//! (which caps pending requests), a dropped dynamic channel message is lost to its channel.
//! Nothing logged here holds channel contents: only names, ids and sizes.

use ironrdp_connector::ConnectionResult;
use ironrdp_pdu::mcs::decode_send_data_indication;
use ironrdp_pdu::rdp::vc::{ChannelControlFlags, ChannelPduHeader};
use ironrdp_pdu::Action;
use ironrdp_session::SessionError;

use crate::session::Session;

/// The largest message taken on a static channel other than the clipboard, and on a dynamic
/// channel (bytes of data, without headers): it has to fit in memory at once.
const DEFAULT_CAP: usize = 16 << 20;

/// The clipboard's own header ([MS-RDPECLIP] 2.2.1), on top of the data the clipboard caps.
#[cfg(feature = "clipboard")]
const CLIPRDR_HEADER: usize = 8;

/// The size of a Channel PDU Header ([MS-RDPBCGR] 2.2.6.1.1).
const CHANNEL_PDU_HEADER: usize = 8;

/// Warnings per channel before the rest go to debug level: a server that keeps sending bad
/// data must not flood the application's log.
const LOUD_WARNINGS: u32 = 16;

/// How many oversized dynamic channel messages can be being dropped at once. Past that the
/// oldest is forgotten: the rest of it then reaches IronRDP, which rejects it piece by piece,
/// and those errors are contained.
const MAX_DVC_DROPS: usize = 8;

/// What a channel is, for what its drops mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    #[cfg_attr(not(feature = "clipboard"), allow(dead_code))]
    Clipboard,
    Drdynvc,
    Other,
}

/// A joined static channel and what the guard tracks of its traffic.
#[derive(Debug)]
struct Guarded {
    id: u16,
    name: String,
    kind: Kind,
    /// The largest message accepted (after the Channel PDU Header).
    cap: usize,
    /// Between the first and the last chunk of a message being dropped.
    dropping: bool,
    /// The message handed on chunk by chunk (IronRDP reassembles it), between its first and
    /// last chunk.
    reassembling: Option<Sequence>,
    /// `drdynvc`: dynamic channel messages being dropped (channel id, bytes still to come).
    dvc_drops: Vec<(u32, u64)>,
    /// Problems reported on this channel so far.
    warnings: u32,
}

/// A chunked message on its way through IronRDP's reassembly.
#[derive(Debug, Clone, Copy)]
struct Sequence {
    /// The length its first chunk declared.
    declared: usize,
    /// The bytes of its chunks so far.
    received: usize,
}

/// The guard of one session's static channels.
#[derive(Debug)]
pub(crate) struct ChannelGuard {
    io: u16,
    message: Option<u16>,
    channels: Vec<Guarded>,
    /// Problems reported on channels not joined, so far.
    unjoined_warnings: u32,
}

/// What the guard decided about a server frame.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Not static channel data: IronRDP's alone.
    Other,
    /// Data for the joined channel with this id, handed on to IronRDP.
    Channel(u16),
    /// Dropped. `Some` says why, for the first frame of what is dropped; `None` for the rest of
    /// a message already reported.
    Drop(Option<Refusal>),
}

/// Why a frame was dropped, as the session reports it.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The joined channel's id; `None` for a channel not joined.
    channel: Option<u16>,
    /// Whether it was the clipboard's (the application hears of it).
    clipboard: bool,
    /// What happened, in a sentence: names, ids and sizes, never contents.
    what: String,
}

impl ChannelGuard {
    /// The guard for the channels `result` joined.
    pub(crate) fn new(result: &ConnectionResult) -> Self {
        let channels = result
            .static_channels
            .values()
            .filter_map(|channel| {
                let name = channel.channel_name();
                let id = result.static_channels.get_channel_id_by_channel_name(&name)?;
                Some(Guarded::new(id, name.as_str().unwrap_or("?")))
            })
            .collect();
        Self {
            io: result.io_channel_id,
            message: result.message_channel_id,
            channels,
            unjoined_warnings: 0,
        }
    }

    /// Looks at a server frame before IronRDP does.
    pub(crate) fn inspect(&mut self, action: Action, frame: &[u8]) -> Verdict {
        if action != Action::X224 {
            return Verdict::Other;
        }
        // What does not decode as a Send Data Indication (an MCS Disconnect Provider
        // Ultimatum, or garbage) is IronRDP's to judge.
        let Ok(data) = decode_send_data_indication(frame) else {
            return Verdict::Other;
        };
        if data.channel_id == self.io || Some(data.channel_id) == self.message {
            return Verdict::Other;
        }
        match self.channels.iter_mut().find(|c| c.id == data.channel_id) {
            Some(channel) => channel.inspect(data.user_data),
            None => refuse(
                None,
                false,
                format!(
                    "the server sent {} bytes on MCS channel {}, which the client did not join; dropped",
                    data.user_data.len(),
                    data.channel_id
                ),
            ),
        }
    }

    fn channel(&self, id: u16) -> Option<&Guarded> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// Counts a problem reported on channel `id` (`None`: the channels not joined); how many
    /// there have been.
    fn count_warning(&mut self, id: Option<u16>) -> u32 {
        let count = match id.and_then(|id| self.channels.iter_mut().find(|c| c.id == id)) {
            Some(channel) => &mut channel.warnings,
            None => &mut self.unjoined_warnings,
        };
        *count = count.saturating_add(1);
        *count
    }
}

impl Verdict {
    /// The joined channel the frame was handed on for.
    pub(crate) fn channel(&self) -> Option<u16> {
        match self {
            Verdict::Channel(id) => Some(*id),
            _ => None,
        }
    }
}

fn refuse(channel: Option<u16>, clipboard: bool, what: String) -> Verdict {
    Verdict::Drop(Some(Refusal {
        channel,
        clipboard,
        what,
    }))
}

impl Guarded {
    fn new(id: u16, name: &str) -> Self {
        let (kind, cap) = match name {
            // The clipboard's cap is on its data; its header comes on top.
            #[cfg(feature = "clipboard")]
            "cliprdr" => (Kind::Clipboard, super::DEFAULT_MAX_CLIPBOARD_BYTES + CLIPRDR_HEADER),
            "drdynvc" => (Kind::Drdynvc, DEFAULT_CAP),
            #[cfg(feature = "audio")]
            "rdpsnd" => (Kind::Other, super::audio::MAX_MESSAGE),
            _ => (Kind::Other, DEFAULT_CAP),
        };
        Self {
            id,
            name: name.to_owned(),
            kind,
            cap,
            dropping: false,
            reassembling: None,
            dvc_drops: Vec::new(),
            warnings: 0,
        }
    }

    /// One Channel PDU (header and chunk) on this channel.
    fn inspect(&mut self, user_data: &[u8]) -> Verdict {
        let Ok(header) = ironrdp_core::decode::<ChannelPduHeader>(user_data) else {
            let what = format!("a {}-byte PDU is too short for its channel header", user_data.len());
            return self.refuse(what);
        };
        let chunk = user_data.get(CHANNEL_PDU_HEADER..).unwrap_or_default();
        let first = header.flags.contains(ChannelControlFlags::FLAG_FIRST);
        let last = header.flags.contains(ChannelControlFlags::FLAG_LAST);
        if self.dropping && !first {
            // The rest of a message already refused: quietly, up to its last chunk.
            self.dropping = !last;
            return Verdict::Drop(None);
        }
        self.dropping = false;
        if header.flags.contains(ChannelControlFlags::PACKET_COMPRESSED) {
            // IronRDP would hand the compressed bytes on as they are, and stops checking the
            // reassembled length against the declared one for them.
            return self.refuse(format!(
                "a compressed {}-byte chunk, though the client offered no channel compression",
                chunk.len()
            ));
        }
        if let Some(sequence) = self.reassembling.take() {
            return self.continues(sequence, first, last, chunk.len());
        }
        // A chunk with neither flag is a whole message, as no other is being reassembled; one
        // with LAST alone belongs to none, and IronRDP rejects it.
        if !first && last {
            return Verdict::Channel(self.id);
        }
        let declared = usize::try_from(header.length).unwrap_or(usize::MAX);
        if declared > self.cap {
            self.dropping = first && !last;
            return self.too_large(declared);
        }
        if self.kind == Kind::Drdynvc {
            if let Some(verdict) = self.dvc(chunk, declared) {
                return verdict;
            }
        }
        if first && !last {
            let received = chunk.len();
            self.reassembling = Some(Sequence { declared, received });
        }
        Verdict::Channel(self.id)
    }

    /// A chunk while a message is being reassembled. IronRDP rejects a chunk that takes the
    /// message past its declared length, and a first chunk before the last one, and forgets
    /// the message: the rest of what that chunk belongs to is then dropped here, so that its
    /// chunks do not reach IronRDP one rejection each.
    fn continues(&mut self, mut sequence: Sequence, first: bool, last: bool, len: usize) -> Verdict {
        sequence.received = sequence.received.saturating_add(len);
        if first || sequence.received > sequence.declared {
            self.dropping = !last;
        } else if !last {
            self.reassembling = Some(sequence);
        }
        Verdict::Channel(self.id)
    }

    fn too_large(&self, declared: usize) -> Verdict {
        match self.kind {
            #[cfg(feature = "clipboard")]
            Kind::Clipboard => self.refuse(format!(
                "a clipboard message of {declared} bytes, over the {} bytes of clipboard data the session accepts",
                super::DEFAULT_MAX_CLIPBOARD_BYTES
            )),
            _ => self.refuse(format!(
                "a message of {declared} bytes, over the {} bytes the session accepts",
                self.cap
            )),
        }
    }

    fn refuse(&self, what: String) -> Verdict {
        refuse(
            Some(self.id),
            self.kind == Kind::Clipboard,
            format!("On virtual channel {} ({}): {what}; dropped", self.name, self.id),
        )
    }

    /// The start of a `drdynvc` message, `declared` bytes long, whose first chunk is `chunk`:
    /// `Some` if the dynamic channel PDU in it is to be dropped.
    fn dvc(&mut self, chunk: &[u8], declared: usize) -> Option<Verdict> {
        let pdu = match DvcPdu::parse(chunk) {
            Parsed::Pdu(pdu) => pdu,
            Parsed::Other => return None,
            // IronRDP rejects a whole message too short for its header; one whose first chunk
            // is would hide its declared length.
            Parsed::Short if declared > chunk.len() => {
                return Some(self.refuse("a dynamic channel header split across chunks".to_owned()))
            }
            Parsed::Short => return None,
        };
        let data = u64::try_from(declared.saturating_sub(pdu.header_len)).unwrap_or(u64::MAX);
        match pdu.cmd {
            DvcCmd::DataFirst(total) => {
                self.dvc_drops.retain(|(id, _)| *id != pdu.channel);
                if total <= u64::try_from(DEFAULT_CAP).unwrap_or(u64::MAX) {
                    return None;
                }
                if self.dvc_drops.len() == MAX_DVC_DROPS {
                    self.dvc_drops.remove(0);
                }
                self.dvc_drops.push((pdu.channel, total.saturating_sub(data)));
                Some(self.refuse(format!(
                    "a message of {total} bytes on dynamic channel {}, over the {DEFAULT_CAP} bytes the session accepts",
                    pdu.channel
                )))
            }
            DvcCmd::Data => {
                let at = self.dvc_drops.iter().position(|(id, _)| *id == pdu.channel)?;
                // Compressed blocks count as their compressed size: such a drop may swallow a
                // little more, up to the channel's next Data First or Close.
                let rest = self.dvc_drops[at].1.saturating_sub(data);
                if rest == 0 {
                    self.dvc_drops.remove(at);
                } else {
                    self.dvc_drops[at].1 = rest;
                }
                Some(Verdict::Drop(None))
            }
            DvcCmd::Close => {
                self.dvc_drops.retain(|(id, _)| *id != pdu.channel);
                None
            }
        }
    }
}

/// The header of a dynamic channel PDU that matters to the guard ([MS-RDPEDYC] 2.2).
#[derive(Debug, PartialEq, Eq)]
struct DvcPdu {
    cmd: DvcCmd,
    channel: u32,
    /// The header's length: the PDU's data starts after it.
    header_len: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum DvcCmd {
    /// DYNVC_DATA_FIRST (compressed or not), with the message's declared total length.
    DataFirst(u64),
    /// DYNVC_DATA (compressed or not).
    Data,
    /// DYNVC_CLOSE.
    Close,
}

/// What the start of a `drdynvc` message holds.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A PDU the guard follows.
    Pdu(DvcPdu),
    /// Another PDU, or a header IronRDP rejects whole (a size code of 3): IronRDP's to judge.
    Other,
    /// Too few bytes for the header.
    Short,
}

impl DvcPdu {
    /// The PDU at the start of `bytes`.
    fn parse(bytes: &[u8]) -> Parsed {
        // cbChId in bits 0-1, Sp in bits 2-3, Cmd in bits 4-7.
        let Some((&head, rest)) = bytes.split_first() else {
            return Parsed::Short;
        };
        let data_first = match head >> 4 {
            0x02 | 0x06 => true,
            0x03 | 0x04 | 0x07 => false,
            _ => return Parsed::Other,
        };
        // Sp gives the length field's size, which only Data First has.
        let sizes = match data_first {
            true => field_len(head & 0b11).zip(field_len((head >> 2) & 0b11)),
            false => field_len(head & 0b11).map(|id| (id, 0)),
        };
        let Some((id_len, len_len)) = sizes else {
            return Parsed::Other;
        };
        let Some(fields) = rest.get(..id_len + len_len) else {
            return Parsed::Short;
        };
        let (id, length) = fields.split_at(id_len);
        let cmd = match head >> 4 {
            0x02 | 0x06 => DvcCmd::DataFirst(u64::from(read_le(length))),
            0x04 => DvcCmd::Close,
            _ => DvcCmd::Data,
        };
        Parsed::Pdu(Self {
            cmd,
            channel: read_le(id),
            header_len: 1 + id_len + len_len,
        })
    }
}

/// The size of a field of the 2-bit size code `code` (1, 2 or 4 bytes; 3 is not valid).
fn field_len(code: u8) -> Option<usize> {
    match code {
        0 => Some(1),
        1 => Some(2),
        2 => Some(4),
        _ => None,
    }
}

/// A little-endian field of at most 4 bytes.
fn read_le(bytes: &[u8]) -> u32 {
    bytes.iter().rev().fold(0, |value, &b| (value << 8) | u32::from(b))
}

impl<S> Session<S> {
    /// Reports a frame the guard dropped: a warning, and for the clipboard an error event (the
    /// application may be waiting for data that will not come).
    pub(crate) fn channel_refused(&mut self, refusal: Option<Refusal>) {
        let Some(Refusal {
            channel,
            clipboard,
            what,
        }) = refusal
        else {
            return;
        };
        self.channel_problem(channel, clipboard, what);
    }

    /// Contains an error IronRDP met processing a message on the joined channel `id`: the
    /// message is dropped with a warning and the session goes on (see the module docs).
    pub(crate) fn channel_failed(&mut self, id: u16, error: &SessionError) {
        let (name, clipboard) = match self.guard.channel(id) {
            Some(channel) => (channel.name.as_str(), channel.kind == Kind::Clipboard),
            None => ("?", false),
        };
        let what = format!(
            "On virtual channel {name} ({id}): a message IronRDP could not process ({}); dropped",
            error.report()
        );
        self.channel_problem(Some(id), clipboard, what);
    }

    /// Logs a problem on a channel (at debug level once the channel has had its share of
    /// warnings) and tells the application of the clipboard's.
    fn channel_problem(&mut self, channel: Option<u16>, clipboard: bool, what: String) {
        match self.guard.count_warning(channel) {
            n if n < LOUD_WARNINGS => log::warn!("{what}"),
            LOUD_WARNINGS => log::warn!("{what} (further problems on this channel are logged at debug level)"),
            _ => log::debug!("{what}"),
        }
        #[cfg(feature = "clipboard")]
        if clipboard {
            self.events.push_back(crate::Event::ClipboardError(what));
        }
        #[cfg(not(feature = "clipboard"))]
        let _ = (clipboard, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dvc_headers_parse_by_their_size_codes() {
        // Data First, 2-byte channel id 0x0102, 4-byte length 100 MB.
        let mut pdu = vec![0x29, 0x02, 0x01];
        pdu.extend_from_slice(&100_000_000_u32.to_le_bytes());
        let data_first = DvcPdu {
            cmd: DvcCmd::DataFirst(100_000_000),
            channel: 0x0102,
            header_len: 7,
        };
        assert_eq!(DvcPdu::parse(&pdu), Parsed::Pdu(data_first));
        // Data ignores Sp.
        let data = DvcPdu {
            cmd: DvcCmd::Data,
            channel: 7,
            header_len: 2,
        };
        assert_eq!(DvcPdu::parse(&[0x3c, 7]), Parsed::Pdu(data));
        assert_eq!(DvcPdu::parse(&pdu[..5]), Parsed::Short);
        assert_eq!(DvcPdu::parse(&[]), Parsed::Short);
        // A size code of 3, Capabilities, Create: IronRDP's business.
        assert_eq!(DvcPdu::parse(&[0x33, 1, 2, 3, 4]), Parsed::Other);
        assert_eq!(DvcPdu::parse(&[0x50, 0, 1, 0]), Parsed::Other);
        assert_eq!(DvcPdu::parse(&[0x10, 1, b'x', 0]), Parsed::Other);
    }

    fn guarded(name: &str) -> Guarded {
        Guarded::new(1004, name)
    }

    fn chunk(length: u32, flags: u32, data: &[u8]) -> Vec<u8> {
        let mut bytes = length.to_le_bytes().to_vec();
        bytes.extend_from_slice(&flags.to_le_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn an_oversized_message_is_dropped_whole_and_reported_once() {
        let mut channel = guarded("rdpsnd");
        let big = u32::MAX;
        assert!(matches!(
            channel.inspect(&chunk(big, 1, &[0; 16])),
            Verdict::Drop(Some(_))
        ));
        assert!(matches!(channel.inspect(&chunk(big, 0, &[0; 16])), Verdict::Drop(None)));
        assert!(matches!(channel.inspect(&chunk(big, 2, &[0; 16])), Verdict::Drop(None)));
        // The next message is handed on.
        assert!(matches!(channel.inspect(&chunk(4, 3, &[0; 4])), Verdict::Channel(1004)));
        assert!(matches!(channel.inspect(&[1, 2, 3]), Verdict::Drop(Some(_))));
    }

    #[test]
    fn a_message_longer_than_declared_reaches_ironrdp_once() {
        let mut channel = guarded("rdpsnd");
        assert!(matches!(channel.inspect(&chunk(10, 1, &[0; 8])), Verdict::Channel(_)));
        // Past the declared length: IronRDP rejects this chunk; the rest is dropped here.
        assert!(matches!(channel.inspect(&chunk(10, 0, &[0; 8])), Verdict::Channel(_)));
        assert!(matches!(channel.inspect(&chunk(10, 0, &[0; 8])), Verdict::Drop(None)));
        assert!(matches!(channel.inspect(&chunk(10, 2, &[0; 8])), Verdict::Drop(None)));
        assert!(matches!(channel.inspect(&chunk(10, 1, &[0; 8])), Verdict::Channel(_)));
        assert!(matches!(channel.inspect(&chunk(10, 2, &[0; 2])), Verdict::Channel(_)));
        assert!(channel.reassembling.is_none());
    }

    #[test]
    fn an_oversized_dynamic_channel_message_is_dropped_with_its_data() {
        let mut channel = guarded("drdynvc");
        let mut first = vec![0x28, 5];
        first.extend_from_slice(&(64_u32 << 20).to_le_bytes());
        first.extend_from_slice(&[0; 10]);
        let len = first.len() as u32;
        assert!(matches!(
            channel.inspect(&chunk(len, 3, &first)),
            Verdict::Drop(Some(_))
        ));
        let data = [&[0x30_u8, 5][..], &[0; 1000]].concat();
        assert!(matches!(channel.inspect(&chunk(1002, 3, &data)), Verdict::Drop(None)));
        // Another channel's data goes through, and a Close ends the drop.
        let other = [&[0x30_u8, 6][..], &[0; 10]].concat();
        assert!(matches!(channel.inspect(&chunk(12, 3, &other)), Verdict::Channel(_)));
        assert!(matches!(channel.inspect(&chunk(2, 3, &[0x40, 5])), Verdict::Channel(_)));
        assert!(matches!(channel.inspect(&chunk(1002, 3, &data)), Verdict::Channel(_)));
    }
}
