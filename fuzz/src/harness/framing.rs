//! The `framing` target: arbitrary bytes, cut into reads at points the input chooses, through
//! `Framed::read_pdu`, `Framed::read_pdu_ref` (alone, and alternating with `read_pdu`) and
//! `Framed::read_by_hint` with IronRDP's three frame hints.
//!
//! # Input layout
//!
//! | bytes | meaning |
//! | --- | --- |
//! | 1 | control: bits 0-3 = `n`, how many chunk-size bytes follow; bit 4 = stall (every read is answered `Pending` once first); bit 5 = keep every returned frame alive until the end (so the buffer cannot reclaim their space); bits 6-7 = frame bound: 0 or 1 the default [`MAX_FRAME_SIZE`], 2 one more byte `b` gives `4 + 64 * b`, 3 two more bytes give it big-endian |
//! | 0-2 | the frame bound, as bits 6-7 say |
//! | `n` | chunk sizes, used in turn: `b < 0xE0` reads at most `b + 1` bytes, larger `b` at most `(b - 0xDF) * 2048`; with `n = 0` every read fills what the buffer offers |
//! | rest | the stream |
//!
//! # Invariants
//!
//! - nothing panics;
//! - `Pending` is returned only when the stream itself was pending, and every returned frame is
//!   non-empty, so no call spins;
//! - the returned frames are exactly the frames the stream holds, each as long as its header
//!   announces (TPKT: version 3, 16-bit length of at least 7; fast-path: 7- or 15-bit length of
//!   at least its own header), in order; the X.224 and fast-path hints skip whole frames of the
//!   other kind and nothing else; the returned frames, the skipped ones and the final `peek()`
//!   make up exactly the bytes read from the stream;
//! - the reading ends with the error the rest of the stream calls for, and only with one of
//!   `Closed` (nothing left), `UnexpectedEof` (a partial frame left), `InvalidFrame` (a
//!   malformed header) or `FrameTooLarge` (a header past the bound);
//! - `buffer_capacity()` never exceeds the frame bound plus [`READ_CHUNK`], after any poll.

use std::task::{Context, Poll, Waker};

use async_rdp::framing::{LocalFramed, MAX_FRAME_SIZE, READ_CHUNK};
use async_rdp::ironrdp_pdu::{Action, PduHint, FAST_PATH_HINT, RDP_HINT, X224_HINT};
use async_rdp::ErrorKind;

use super::stream::ChunkedStream;

const CHUNKS_MASK: u8 = 0x0f;
/// Control bit: every read is answered `Pending` once first.
pub const STALL: u8 = 0x10;
/// Control bit: keep returned frames alive until the end.
pub const KEEP_FRAMES: u8 = 0x20;
const BOUND_BYTE: u8 = 0x80;
const BOUND_U16: u8 = 0xc0;

/// A framing input, decoded.
#[derive(Debug)]
pub struct Input<'a> {
    /// Read sizes, used in turn (empty: no limit).
    pub sizes: Vec<usize>,
    /// Answer every read `Pending` once first.
    pub stall: bool,
    /// Keep returned frames alive.
    pub keep_frames: bool,
    /// The frame bound to set.
    pub max_frame_size: usize,
    /// The stream.
    pub data: &'a [u8],
}

/// Decodes an input (any bytes are a valid input).
pub fn parse(input: &[u8]) -> Input<'_> {
    let Some((&control, mut rest)) = input.split_first() else {
        return Input {
            sizes: Vec::new(),
            stall: false,
            keep_frames: false,
            max_frame_size: MAX_FRAME_SIZE,
            data: &[],
        };
    };
    let max_frame_size = match control & BOUND_U16 {
        BOUND_BYTE if !rest.is_empty() => {
            let b = rest[0];
            rest = &rest[1..];
            4 + 64 * usize::from(b)
        }
        BOUND_U16 if rest.len() >= 2 => {
            let bound = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            rest = &rest[2..];
            bound
        }
        _ => MAX_FRAME_SIZE,
    };
    let n = usize::from(control & CHUNKS_MASK).min(rest.len());
    let sizes = rest[..n].iter().map(|&b| chunk_size(b)).collect();
    Input {
        sizes,
        stall: control & STALL != 0,
        keep_frames: control & KEEP_FRAMES != 0,
        max_frame_size,
        data: &rest[n..],
    }
}

/// The read size a chunk-size byte stands for.
pub fn chunk_size(b: u8) -> usize {
    if b < 0xe0 {
        usize::from(b) + 1
    } else {
        usize::from(b - 0xdf) * 2048
    }
}

/// Encodes an input: `flags` is [`STALL`] and/or [`KEEP_FRAMES`], `bound` an explicit frame
/// bound, `sizes` at most 15 chunk-size bytes (see [`chunk_size`]).
pub fn encode(flags: u8, bound: Option<u16>, sizes: &[u8], data: &[u8]) -> Vec<u8> {
    assert!(sizes.len() <= usize::from(CHUNKS_MASK), "at most 15 chunk sizes");
    let n = u8::try_from(sizes.len()).expect("at most 15");
    let mut out = Vec::with_capacity(3 + sizes.len() + data.len());
    match bound {
        Some(bound) => {
            out.push((flags & (STALL | KEEP_FRAMES)) | BOUND_U16 | n);
            out.extend_from_slice(&bound.to_be_bytes());
        }
        None => out.push((flags & (STALL | KEEP_FRAMES)) | n),
    }
    out.extend_from_slice(sizes);
    out.extend_from_slice(data);
    out
}

/// The fuzz target: every reader over the same input.
pub fn check(input: &[u8]) {
    let input = parse(input);
    for reader in [
        Reader::Pdu,
        Reader::Lent,
        Reader::Mixed,
        Reader::Rdp,
        Reader::X224,
        Reader::FastPath,
    ] {
        run(reader, &input);
    }
}

/// Which read the stream goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// `read_pdu`.
    Pdu,
    /// `read_pdu_ref`: frames lent from the buffer.
    Lent,
    /// `read_pdu_ref` and `read_pdu` in turn, so that lent and split-off frames share one
    /// buffer.
    Mixed,
    /// `read_by_hint(&RDP_HINT)`.
    Rdp,
    /// `read_by_hint(&X224_HINT)`: fast-path frames are skipped.
    X224,
    /// `read_by_hint(&FAST_PATH_HINT)`: X.224 frames are skipped.
    FastPath,
}

impl Reader {
    fn returns(self, x224: bool) -> bool {
        match self {
            Reader::Pdu | Reader::Lent | Reader::Mixed | Reader::Rdp => true,
            Reader::X224 => x224,
            Reader::FastPath => !x224,
        }
    }

    fn hint(self) -> Option<&'static dyn PduHint> {
        match self {
            Reader::Pdu | Reader::Lent | Reader::Mixed => None,
            Reader::Rdp => Some(&RDP_HINT),
            Reader::X224 => Some(&X224_HINT),
            Reader::FastPath => Some(&FAST_PATH_HINT),
        }
    }
}

/// What a header at the start of some bytes says, by the specifications ([T.123] 8 for TPKT,
/// [MS-RDPBCGR] 2.2.9.1.2 for fast-path), independently of the code under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Not enough bytes to tell.
    Short,
    /// Not a valid header.
    Invalid,
    /// A frame of `len` bytes in all.
    Frame { x224: bool, len: usize },
}

fn head(bytes: &[u8]) -> Head {
    let Some(&first) = bytes.first() else {
        return Head::Short;
    };
    match first & 0b11 {
        0b11 => {
            if bytes.len() < 4 {
                Head::Short
            } else if first != 3 {
                Head::Invalid
            } else {
                // The length covers the TPKT header (4) and at least an X.224 data header (3).
                match usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) {
                    len if len < 7 => Head::Invalid,
                    len => Head::Frame { x224: true, len },
                }
            }
        }
        0b00 => {
            let (len, header) = match bytes.get(1) {
                None => return Head::Short,
                Some(&a) if a & 0x80 == 0 => (usize::from(a), 2),
                Some(&a) => match bytes.get(2) {
                    None => return Head::Short,
                    Some(&b) => ((usize::from(a & 0x7f) << 8) | usize::from(b), 3),
                },
            };
            if len < header {
                Head::Invalid
            } else {
                Head::Frame { x224: false, len }
            }
        }
        _ => Head::Invalid,
    }
}

fn run(reader: Reader, input: &Input<'_>) {
    let data = input.data;
    let stream = ChunkedStream::new(data, input.sizes.clone(), input.stall);
    let mut framed = LocalFramed::new(stream).with_max_frame_size(input.max_frame_size);
    let max = framed.max_frame_size();
    let capacity_bound = max + READ_CHUNK;
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames: Vec<(Option<Action>, Vec<u8>)> = Vec::new();
    let mut kept = Vec::new();

    let error = loop {
        let pendings = framed.get_inner().0.pendings;
        let lend = reader == Reader::Lent || (reader == Reader::Mixed && frames.len().is_multiple_of(2));
        let polled = match reader.hint() {
            None if lend => framed
                .poll_read_pdu_ref(&mut cx)
                .map(|r| r.map(|(action, frame)| (Some(action), bytes::Bytes::copy_from_slice(frame)))),
            None => framed
                .poll_read_pdu(&mut cx)
                .map(|r| r.map(|(action, frame)| (Some(action), frame.freeze()))),
            Some(hint) => framed
                .poll_read_by_hint(&mut cx, hint)
                .map(|r| r.map(|frame| (None, frame))),
        };
        let capacity = framed.buffer_capacity();
        assert!(
            capacity <= capacity_bound,
            "invariant ({reader:?}): buffer capacity {capacity} exceeds the bound {max} + READ_CHUNK"
        );
        let (stream, peek) = framed.get_inner();
        // Comparing all of peek() on every poll would make byte-by-byte reads quadratic: its
        // length always, its contents at each frame (and in full at the end).
        assert!(
            peek.len() <= stream.delivered(),
            "invariant ({reader:?}): peek() holds more than was read"
        );
        if polled.is_ready() {
            assert!(
                data[..stream.delivered()].ends_with(peek),
                "invariant ({reader:?}): peek() is not the tail of the bytes read"
            );
        }
        match polled {
            Poll::Pending => assert_eq!(
                stream.pendings,
                pendings + 1,
                "invariant ({reader:?}): Pending although the stream was not pending"
            ),
            Poll::Ready(Ok((action, frame))) => {
                assert!(!frame.is_empty(), "invariant ({reader:?}): an empty frame");
                frames.push((action, frame.to_vec()));
                if input.keep_frames {
                    kept.push(frame);
                }
            }
            Poll::Ready(Err(e)) => break e,
        }
    };
    drop(kept);

    let (stream, peek) = framed.get_inner();
    let delivered = stream.delivered();
    let consumed = delivered - peek.len();
    assert_eq!(peek, &data[consumed..delivered], "invariant ({reader:?}): peek()");

    // Walk the stream's frames by their headers: each must be returned or (by the X.224 and
    // fast-path hints) skipped, in order, up to where the reader stopped.
    let mut pos = 0;
    let complete_frame = |pos: usize| match head(&data[pos..]) {
        Head::Frame { x224, len } if len <= max && pos + len <= data.len() => Some((x224, len)),
        _ => None,
    };
    for (i, (action, frame)) in frames.iter().enumerate() {
        loop {
            let Some((x224, len)) = complete_frame(pos) else {
                panic!(
                    "invariant ({reader:?}): frame {i} ({} bytes) was returned where the stream holds {:?} at offset {pos}",
                    frame.len(),
                    head(&data[pos..])
                );
            };
            if !reader.returns(x224) {
                pos += len;
                continue;
            }
            assert_eq!(
                frame.as_slice(),
                &data[pos..pos + len],
                "invariant ({reader:?}): frame {i} is not the {len}-byte frame at offset {pos}"
            );
            if let Some(action) = action {
                let expected = if x224 { Action::X224 } else { Action::FastPath };
                assert_eq!(*action, expected, "invariant ({reader:?}): frame {i}'s action");
            }
            pos += len;
            break;
        }
    }
    while pos < consumed {
        match complete_frame(pos) {
            Some((x224, len)) if !reader.returns(x224) => pos += len,
            _ => panic!(
                "invariant ({reader:?}): bytes {pos}..{consumed} were consumed but not returned as frames ({:?})",
                head(&data[pos..])
            ),
        }
    }
    assert_eq!(
        pos, consumed,
        "invariant ({reader:?}): the frames end at {pos}, but {consumed} bytes were consumed"
    );

    let rest = &data[consumed..];
    let expected = match head(rest) {
        Head::Invalid => ErrorKind::InvalidFrame,
        Head::Short if rest.is_empty() => ErrorKind::Closed,
        Head::Short => ErrorKind::UnexpectedEof,
        Head::Frame { len, .. } if len > max => ErrorKind::FrameTooLarge,
        Head::Frame { len, .. } if rest.len() < len => ErrorKind::UnexpectedEof,
        Head::Frame { len, .. } => panic!(
            "invariant ({reader:?}): a complete {len}-byte frame at offset {consumed} was neither returned nor skipped (error: {error})"
        ),
    };
    assert_eq!(
        error.kind(),
        expected,
        "invariant ({reader:?}): wrong error at offset {consumed}: {error}"
    );
    if matches!(expected, ErrorKind::Closed | ErrorKind::UnexpectedEof) {
        assert_eq!(
            delivered,
            data.len(),
            "invariant ({reader:?}): end of stream before the end"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let bytes = encode(STALL | KEEP_FRAMES, Some(1000), &[0, 0xe0], b"abc");
        let input = parse(&bytes);
        assert_eq!(input.sizes, vec![1, 2048]);
        assert!(input.stall && input.keep_frames);
        assert_eq!(input.max_frame_size, 1000);
        assert_eq!(input.data, b"abc");
    }
}
