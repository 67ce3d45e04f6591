//! async-rdp: an RDP client that runs a whole remote-desktop connection — TCP, X.224
//! negotiation, TLS, CredSSP/NLA, capability exchange and the graphics decode loop — on one
//! executor thread, over `futures::io`, for small Linux boards and single-threaded
//! applications.
//!
//! [`connect`] returns a running [`Session`]; drive it by awaiting
//! [`next_event`](Session::next_event) and read the desktop from its
//! [`framebuffer`](Session::framebuffer). Which server certificates to trust is a [`Trust`]
//! policy (known hosts, like ssh, by default); every error names the [`Phase`] it happened in.
//!
//! ```no_run
//! # async_std::task::block_on(async {
//! use async_rdp::{connect, ClientConfig, Event, Trust};
//!
//! let config = ClientConfig::new("alice", "s3cret").with_trust(Trust::known_hosts());
//! let mut session = connect("192.0.2.10:3389", config).await?;
//! loop {
//!     match session.next_event().await? {
//!         Event::Graphics(rect) => println!("{rect:?} changed"),
//!         Event::Disconnected(reason) => break println!("ended: {reason:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), async_rdp::Error>(())
//! # });
//! ```
//!
//! The protocol itself (PDUs, the connection sequence, codecs, the active stage) comes from
//! IronRDP's sans-IO crates; this crate carries their bytes. Nothing here spawns a task or a
//! thread, and nothing requires `Send`. [`runtime::block_on`] runs a session on the calling
//! thread and no other (async-std's reactor would start one more).
//!
//! The low-level kit, for driving a connection by hand, lives in modules:
//!
//! - [`framing`]: whole-frame reads into one reusable buffer, stream wrappers;
//! - [`connector`]: the connection drivers, phase by phase, and the Kerberos network client;
//! - [`tls`]: the TLS upgrade with leftover handoff;
//! - [`trust`]: fingerprints, the known-hosts file, certificate refusals as values;
//! - [`net`] and [`runtime`]: sockets, timers, and the one-thread executor.
//!
//! What it leaves out: RDP's own (non-TLS) security, UDP transport, and a windowing stack.

// Denied everywhere; allowed once, in `runtime`, around `polling::Poller::add` (with its proof).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod channels;
mod client;
pub mod connector;
mod error;
pub mod framing;
pub mod net;
mod redact;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod runtime;
mod session;
pub mod tls;
pub mod trust;

pub use crate::channels::Channel;
#[cfg(feature = "clipboard-image")]
pub use crate::channels::ClipboardImage;
pub use crate::client::{
    connect, connect_with_retry, connect_with_timings, is_transient, reconnect, Backoff, ClientConfig, ClientSession,
    ClientStream, Codec, ColorDepth, ConnectTimings, IntoTarget, Phase, Secret, Security, Target, Timeouts,
    DEFAULT_PORT,
};
pub use crate::error::{report, Error, ErrorKind, Result};
pub use crate::session::{
    ButtonState, DisconnectReason, Drawn, Event, Framebuffer, KeyState, MouseButton, PointerEvent, Rect, Scancode,
    Session,
};
pub use crate::trust::{OnFirstUse, Trust};

pub use ironrdp_connector;
pub use ironrdp_core;
pub use ironrdp_pdu;

#[cfg(test)]
mod test_util;

/// Compiles README's examples as doctests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
