//! The X.224 negotiation and the TLS upgrade's bookkeeping, with tokens that make the phases
//! run in order.

use ironrdp_connector::{ClientConnector, ClientConnectorState};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;

use super::drive_step;
use crate::framing::{Framed, FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Phase, Result};

/// Proof that negotiation ended and the transport must now be upgraded to TLS.
///
/// Only [`connect_begin`] and [`skip_connect_begin`] make one; [`mark_as_upgraded`] takes it.
#[derive(Debug)]
#[must_use = "the transport must be upgraded and the token passed to mark_as_upgraded"]
pub struct ShouldUpgrade {
    _private: (),
}

/// Proof that the transport was upgraded; [`connect_finalize`](super::connect_finalize) takes it.
#[derive(Debug)]
#[must_use = "pass the token to connect_finalize"]
pub struct Upgraded {
    _private: (),
}

/// Runs the X.224 negotiation until the connector asks for the TLS upgrade.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// # fn config() -> async_rdp::ironrdp_connector::Config { unimplemented!() }
/// use async_rdp::connector::connect_begin;
/// use async_rdp::framing::LocalFramed;
/// use async_rdp::ironrdp_connector::ClientConnector;
///
/// let tcp = async_std::net::TcpStream::connect("127.0.0.1:3389").await?;
/// let mut connector = ClientConnector::new(config(), tcp.local_addr()?);
/// let mut framed = LocalFramed::new(tcp);
/// let should_upgrade = connect_begin(&mut framed, &mut connector).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Not cancel safe: the connector may have sent a request whose reply is then never read.
/// Wrap it in a timeout and drop the connection if it fires.
pub async fn connect_begin<S>(framed: &mut Framed<S>, connector: &mut ClientConnector) -> Result<ShouldUpgrade>
where
    S: FramedRead + FramedWrite,
{
    crate::redact::future(negotiate(framed, connector))
        .await
        .map_err(|e| e.in_phase(Phase::Negotiation))
}

async fn negotiate<S>(framed: &mut Framed<S>, connector: &mut ClientConnector) -> Result<ShouldUpgrade>
where
    S: FramedRead + FramedWrite,
{
    let mut buf = WriteBuf::new();
    let mut requested = None;
    log::debug!("Negotiating security protocol");
    while matches!(
        connector.state,
        ClientConnectorState::ConnectionInitiationSendRequest
            | ClientConnectorState::ConnectionInitiationWaitConfirm { .. }
    ) {
        if let ClientConnectorState::ConnectionInitiationWaitConfirm { requested_protocol } = &connector.state {
            requested = Some(*requested_protocol);
            expect_tpkt(framed).await?;
        }
        if let Err(e) = drive_step(framed, connector, &mut buf, "negotiation").await {
            return Err(explain_negotiation(e, &connector.config));
        }
    }
    if let (Some(requested), ClientConnectorState::EnhancedSecurityUpgrade { selected_protocol }) =
        (requested, &connector.state)
    {
        check_selected_protocol(requested, *selected_protocol)?;
    }
    skip_connect_begin(connector)
}

/// Only an X.224 Connection Confirm may come now, and it starts with a TPKT header (version
/// 3). The connector's hint would take anything else for a frame to skip (an HTTP reply looks
/// like a fast-path header), and wait for more.
async fn expect_tpkt<S: FramedRead + FramedWrite>(framed: &mut Framed<S>) -> Result<()> {
    let first = framed.fill_buf().await.map_err(|e| e.in_context("negotiation"))?[0];
    if first == 0x03 {
        return Ok(());
    }
    Err(Error::new(ErrorKind::InvalidFrame, "negotiation").with_detail(format!(
        "expected an X.224 Connection Confirm (TPKT), got {:02x?}: is this an RDP server?",
        &framed.peek()[..framed.peek().len().min(8)]
    )))
}

/// Refuses a Negotiation Response whose `selectedProtocol` is not exactly one of the protocols
/// the client offered ([MS-RDPBCGR] 2.2.1.2.1: the server picks one of them). IronRDP only
/// checks that the two overlap, so a corrupted 0xFD would pass as NLA and the client would
/// send its credentials to a server that never chose NLA; refusing here means no credential
/// leaves the client.
///
/// [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
fn check_selected_protocol(requested: SecurityProtocol, selected: SecurityProtocol) -> Result<()> {
    let one_offered = selected.bits().count_ones() == 1 && requested.contains(selected);
    let both_standard = selected.is_standard_rdp_security() && requested.is_standard_rdp_security();
    if one_offered || both_standard {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Connector, "negotiation").with_detail(format!(
        "the server selected security protocol {:#x} ({selected}), which is not one of those the client \
         offered ({:#x}: {requested}); refusing before any credential is sent",
        selected.bits(),
        requested.bits()
    )))
}

/// A refused negotiation, with which protocol was missing when the client offered only one:
/// IronRDP's message names the protocol flags, not what to do about them.
fn explain_negotiation(error: Error, config: &ironrdp_connector::Config) -> Error {
    if error.kind() != ErrorKind::Connector {
        return error;
    }
    let hint = match (config.enable_tls, config.enable_credssp) {
        (false, true) => {
            "the server does not accept NLA (CredSSP), the only security protocol offered; \
                          offer TLS too to reach servers without NLA"
        }
        (true, false) => {
            "the server does not accept TLS without NLA, the only security protocol offered; \
                          offer NLA (CredSSP) too"
        }
        _ => return error,
    };
    // The connector's own words stay in the source chain (`report` shows them after this).
    error.with_detail(hint)
}

/// For a connector whose negotiation was done elsewhere: checks that it now expects the TLS
/// upgrade and returns the token, or [`ErrorKind::InvalidState`].
pub fn skip_connect_begin(connector: &mut ClientConnector) -> Result<ShouldUpgrade> {
    expect_upgrade_state(connector)?;
    Ok(ShouldUpgrade { _private: () })
}

fn expect_upgrade_state(connector: &ClientConnector) -> Result<()> {
    if connector.should_perform_security_upgrade() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidState, "negotiation").with_detail(format!(
            "connector is in state {} instead of waiting for the TLS upgrade \
             (standard RDP security is not supported)",
            ironrdp_connector::State::name(&connector.state)
        )))
    }
}

/// Records that the transport is now TLS.
pub fn mark_as_upgraded(token: ShouldUpgrade, connector: &mut ClientConnector) -> Result<Upgraded> {
    let ShouldUpgrade { .. } = token;
    // The token says this was true when it was made; recheck, since the caller holds the
    // connector mutably in between and the connector asserts on it.
    expect_upgrade_state(connector)?;
    crate::redact::scoped(|| connector.mark_security_upgrade_as_done());
    log::debug!("Transport upgraded");
    Ok(Upgraded { _private: () })
}
