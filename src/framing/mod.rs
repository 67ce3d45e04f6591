//! Framing: whole RDP frames read from, and whole PDUs written to, any `futures::io` stream.
//!
//! [`Framed`] reads TPKT/X.224, fast-path, or whatever a connector's hint describes, straight
//! into one reusable buffer with a frame bound, cancel-safe reads and leftover handoff across a
//! transport change. The stream wrappers ([`LocalStream`], the `!Send` default; [`SendStream`];
//! [`SyncStream`]) give it one poll-based read/write trait pair, and [`Prefixed`] replays bytes
//! read ahead (across the TLS upgrade).
//!
//! ```
//! # futures::executor::block_on(async {
//! use async_rdp::framing::LocalFramed;
//!
//! // An X.224 Data TPKT of 7 bytes, then a fast-path frame of 3.
//! let bytes: &[u8] = &[0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80, 0x00, 0x03, 0x00];
//! let mut framed = LocalFramed::new(futures::io::Cursor::new(bytes.to_vec()));
//! let (action, frame) = framed.read_pdu().await?;
//! assert_eq!((action, frame.len()), (async_rdp::ironrdp_pdu::Action::X224, 7));
//! # Ok::<(), async_rdp::Error>(())
//! # });
//! ```

mod framed;
mod stream;

pub use self::framed::{Framed, LocalFramed, SendFramed, SyncFramed, MAX_FRAME_SIZE, MAX_HELD_OUTPUT, READ_CHUNK};
pub use self::stream::{FramedRead, FramedWrite, LocalStream, Prefixed, SendStream, StreamWrapper, SyncStream};
