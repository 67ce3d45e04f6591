//! async-rdp runs an RDP client connection on one executor thread, over any
//! [`futures::io`] stream.
//!
//! The protocol itself (PDUs, the connection sequence, codecs, the active stage) comes from
//! IronRDP's sans-IO crates; this crate carries their bytes. It provides:
//!
//! - [`Framed`]: whole-frame reads into one reusable buffer, with leftover handoff across a
//!   transport change, a frame bound, and cancel-safe reads;
//! - stream wrappers ([`LocalStream`], [`SendStream`], [`SyncStream`]) and `split`/`unsplit`;
//! - the connection drivers [`connect_begin`], [`mark_as_upgraded`], [`connect_finalize`] and
//!   [`perform_credssp`], whose phase order is enforced by token types;
//! - the TLS upgrade ([`tls::upgrade`]) that replays bytes read ahead into the TLS layer and
//!   hands back the server key CredSSP binds to;
//! - with the `kerberos` feature, a KDC network client (TCP, UDP, HTTP(S) KDC proxy).
//!
//! Nothing here spawns a task or a thread, and nothing requires `Send`: the futures are `Send`
//! exactly when the stream is. Only the `net` helpers name async-std.
//!
//! Under any executor, async-std's sockets and timers run on async-io's reactor, which starts
//! one extra OS thread (`async-io`). [`runtime::block_on`] is a small executor and reactor of
//! this crate's own: inside it, the [`net`] helpers (TCP connect, timeouts, the session's idle
//! timer) use it instead, and a whole session runs on the calling thread and no other.
//!
//! ```no_run
//! # async_std::task::block_on(async {
//! use async_rdp::{connect_begin, connect_finalize, mark_as_upgraded, tls, LocalFramed, NoNetworkClient};
//! use ironrdp_connector::ClientConnector;
//! # fn config() -> ironrdp_connector::Config { unimplemented!() }
//! # let verifier: std::sync::Arc<dyn rustls::client::danger::ServerCertVerifier> = unimplemented!();
//!
//! let tcp = async_std::net::TcpStream::connect("127.0.0.1:3389").await?;
//! let mut connector = ClientConnector::new(config(), tcp.local_addr()?);
//! let mut framed = LocalFramed::new(tcp);
//!
//! let should_upgrade = connect_begin(&mut framed, &mut connector).await?;
//! let upgraded = tls::upgrade(framed, "127.0.0.1", verifier).await?;
//! let token = mark_as_upgraded(should_upgrade, &mut connector)?;
//! let mut framed = LocalFramed::new(upgraded.stream);
//! let outcome = connect_finalize(
//!     &mut framed, connector, token, &mut NoNetworkClient,
//!     "127.0.0.1".into(), upgraded.server_public_key, None,
//! ).await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
// Denied everywhere; allowed once, in `runtime`, around `polling::Poller::add` (with its proof).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod connect;
mod drawn;
mod error;
mod frame_progress;
mod framed;
#[cfg(feature = "kerberos")]
pub mod kdc;
pub mod net;
mod reconnect;
mod redact;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod runtime;
mod session;
mod stream;
pub mod tls;
mod trust;

pub use crate::client::{connect, connect_with_timings, ClientSession, ClientStream, ConnectTimings, Timeouts};
pub use crate::config::{ClientConfig, ColorDepth, Secret};
pub use crate::connect::{
    connect_begin, connect_finalize, drive_step, mark_as_upgraded, perform_credssp, skip_connect_begin, NetworkClient,
    NoNetworkClient, ShouldUpgrade, Upgraded,
};
pub use crate::drawn::Drawn;
pub use crate::error::{report, Error, ErrorKind, Result};
pub use crate::framed::{Framed, LocalFramed, SendFramed, SyncFramed, MAX_FRAME_SIZE, READ_CHUNK};
pub use crate::reconnect::{connect_with_retry, is_transient, reconnect, Backoff};
pub use crate::session::{DisconnectReason, Event, Framebuffer, MouseButton, PointerEvent, Rect, Session};
pub use crate::stream::{FramedRead, FramedWrite, LocalStream, Prefixed, SendStream, StreamWrapper, SyncStream};
pub use crate::trust::{read_known_hosts, AskFn, FirstContact, KnownHost, OnFirstUse, Trust};

pub use ironrdp_connector;
pub use ironrdp_core;
pub use ironrdp_pdu;

#[cfg(test)]
mod test_util;

/// Compiles README's examples as doctests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
