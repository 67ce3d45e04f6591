//! The low-level kit: drivers that pump IronRDP's `ClientConnector` over a
//! [`Framed`](crate::framing::Framed) stream, from the X.224 negotiation to the end of the
//! connection sequence, CredSSP/NLA included, and the network client CredSSP's Kerberos uses.
//! [`connect`](crate::connect) runs them for you; use them to drive a connection by hand.
//!
//! The phases must run in order: negotiate ([`connect_begin`]), upgrade the transport to TLS,
//! record it ([`mark_as_upgraded`]), then finish ([`connect_finalize`]). Each phase hands out a
//! token ([`ShouldUpgrade`], [`Upgraded`]) that only the previous phase can make, so a call out of
//! order does not compile. Where the connector's own state could still disagree (a token applied
//! to another connector), the drivers return [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) instead of letting the
//! connector's assertions panic.

//!
//! - `negotiation`: [`connect_begin`], [`mark_as_upgraded`] and the phase tokens;
//! - `credssp`: [`perform_credssp`] and the [`NetworkClient`] it carries Kerberos requests with;
//! - `finalize`: [`connect_finalize`], and [`drive_step`] for any IronRDP sequence;
//! - `kdc` (feature `kerberos`): a KDC client over TCP, UDP and HTTPS KDC proxies.

mod credssp;
mod error;
mod finalize;
#[cfg(feature = "kerberos")]
pub mod kdc;
mod negotiation;

use ironrdp_connector::ClientConnectorState;

pub use self::credssp::{perform_credssp, NetworkClient, NoNetworkClient};
pub(crate) use self::error::connector_error;
pub(crate) use self::finalize::finalize_step;
pub use self::finalize::{connect_finalize, drive_step};
pub use self::negotiation::{connect_begin, mark_as_upgraded, skip_connect_begin, ShouldUpgrade, Upgraded};
use crate::Phase;

/// The phase of the connection sequence a connector state belongs to.
pub(crate) fn phase_of(state: &ClientConnectorState) -> Phase {
    match state {
        ClientConnectorState::ConnectionInitiationSendRequest
        | ClientConnectorState::ConnectionInitiationWaitConfirm { .. } => Phase::Negotiation,
        ClientConnectorState::Credssp { .. } => Phase::Nla,
        ClientConnectorState::LicensingExchange { .. } => Phase::Licensing,
        _ => Phase::Activation,
    }
}
