//! Connection drivers: pump IronRDP's `ClientConnector` over a [`Framed`] stream, from the
//! X.224 negotiation to the end of the connection sequence, CredSSP/NLA included.
//!
//! The phases must run in order: negotiate ([`connect_begin`]), upgrade the transport to TLS,
//! record it ([`mark_as_upgraded`]), then finish ([`connect_finalize`]). Each phase hands out a
//! token ([`ShouldUpgrade`], [`Upgraded`]) that only the previous phase can make, so a call out of
//! order does not compile. Where the connector's own state could still disagree (a token applied
//! to another connector), the drivers return [`ErrorKind::InvalidState`] instead of letting the
//! connector's assertions panic.

use std::future::Future;

use ironrdp_connector::credssp::{CredsspSequence, KerberosConfig};
use ironrdp_connector::sspi::credssp::{ClientState, TsRequest};
use ironrdp_connector::sspi::generator::{GeneratorState, NetworkRequest};
use ironrdp_connector::{
    ClientConnector, ClientConnectorState, ConnectionOutcome, ConnectorError, ConnectorErrorKind, Sequence, ServerName,
};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;

use crate::framed::Framed;
use crate::stream::{FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Result};

/// Proof that negotiation ended and the transport must now be upgraded to TLS.
///
/// Only [`connect_begin`] and [`skip_connect_begin`] make one; [`mark_as_upgraded`] takes it.
#[derive(Debug)]
#[must_use = "the transport must be upgraded and the token passed to mark_as_upgraded"]
pub struct ShouldUpgrade {
    _private: (),
}

/// Proof that the transport was upgraded; [`connect_finalize`] takes it.
#[derive(Debug)]
#[must_use = "pass the token to connect_finalize"]
pub struct Upgraded {
    _private: (),
}

/// Carries the network requests CredSSP makes (to a Kerberos KDC or KDC proxy).
///
/// The future need not be `Send`: the driver awaits it on the calling task.
pub trait NetworkClient {
    /// Sends `request` and returns the reply, in the form sspi expects (see
    /// the `kdc` module for the framing of each protocol when the `kerberos` feature is on).
    fn send(&mut self, request: &NetworkRequest) -> impl Future<Output = Result<Vec<u8>>>;
}

/// A [`NetworkClient`] for NTLM-only connections: every request fails.
///
/// NTLM never asks for the network, so this is all the default build needs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNetworkClient;

impl NetworkClient for NoNetworkClient {
    async fn send(&mut self, request: &NetworkRequest) -> Result<Vec<u8>> {
        Err(
            Error::new(ErrorKind::Kdc, "credssp network request").with_detail(format!(
                "no network client to reach {} (build with the `kerberos` feature for Kerberos)",
                request.url
            )),
        )
    }
}

/// Runs the X.224 negotiation until the connector asks for the TLS upgrade.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// # fn config() -> async_rdp::ironrdp_connector::Config { unimplemented!() }
/// use async_rdp::{connect_begin, LocalFramed};
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
    let mut buf = WriteBuf::new();
    let mut requested = None;
    log::debug!("Negotiating security protocol");
    while matches!(
        connector.state,
        ClientConnectorState::ConnectionInitiationSendRequest
            | ClientConnectorState::ConnectionInitiationWaitConfirm { .. }
    ) {
        if matches!(
            connector.state,
            ClientConnectorState::ConnectionInitiationWaitConfirm { .. }
        ) {
            // Only an X.224 Connection Confirm may come now, and it starts with a TPKT header
            // (version 3). The connector's hint would take anything else for a frame to skip
            // (an HTTP reply looks like a fast-path header), and wait for more.
            let first = framed.fill_buf().await.map_err(|e| e.in_context("negotiation"))?[0];
            if first != 0x03 {
                return Err(Error::new(ErrorKind::InvalidFrame, "negotiation").with_detail(format!(
                    "expected an X.224 Connection Confirm (TPKT), got {:02x?}: is this an RDP server?",
                    &framed.peek()[..framed.peek().len().min(8)]
                )));
            }
        }
        if let ClientConnectorState::ConnectionInitiationWaitConfirm { requested_protocol } = &connector.state {
            requested = Some(*requested_protocol);
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

/// Finishes the connection sequence on the upgraded stream: CredSSP/NLA if it was negotiated,
/// then basic settings, channels, licensing and capabilities, until the connector reports an
/// outcome: [`ConnectionOutcome::Connected`] or [`ConnectionOutcome::Redirected`], which is
/// handed to the caller to follow (or not).
///
/// Multitransport (UDP) requests are declined: this crate carries RDP over TCP only.
///
/// `server_name` is the target's name for Kerberos (`TERMSRV/<name>`); `server_public_key` is
/// the SubjectPublicKey of the certificate that passed verification
/// ([`tls::UpgradedStream::server_public_key`](crate::tls::UpgradedStream::server_public_key)).
///
/// # Cancel safety
///
/// Not cancel safe: wrap it in a timeout and drop the connection if it fires.
pub async fn connect_finalize<S, N>(
    framed: &mut Framed<S>,
    mut connector: ClientConnector,
    token: Upgraded,
    network_client: &mut N,
    server_name: ServerName,
    server_public_key: Vec<u8>,
    kerberos_config: Option<KerberosConfig>,
) -> Result<ConnectionOutcome>
where
    S: FramedRead + FramedWrite,
    N: NetworkClient,
{
    let Upgraded { .. } = token;
    if connector.should_perform_credssp() {
        perform_credssp(
            framed,
            &mut connector,
            network_client,
            server_name,
            server_public_key,
            kerberos_config,
        )
        .await?;
    }

    let mut buf = WriteBuf::new();
    log::debug!("Finishing the connection sequence");
    loop {
        let context = phase_name(&connector.state);
        if let Some(outcome) = finalize_step(framed, &mut connector, &mut buf, context).await? {
            return Ok(outcome);
        }
    }
}

/// One step of the connection sequence after the security upgrade: declines a pending
/// multitransport request, or drives the connector one step; returns the outcome once the
/// connector has one. Shared by [`connect_finalize`] and `connect`.
pub(crate) async fn finalize_step<S>(
    framed: &mut Framed<S>,
    connector: &mut ClientConnector,
    buf: &mut WriteBuf,
    context: &'static str,
) -> Result<Option<ConnectionOutcome>>
where
    S: FramedRead + FramedWrite,
{
    if connector.should_perform_multitransport() {
        buf.clear();
        let written =
            crate::redact::scoped(|| connector.skip_multitransport(buf)).map_err(|e| connector_error(context, e))?;
        if let Some(len) = written.size() {
            framed.write_all(&buf.filled()[..len]).await?;
        }
        return Ok(None);
    }
    drive_step(framed, connector, buf, context).await?;
    let outcome = connector.state.take_outcome();
    match &outcome {
        Some(ConnectionOutcome::Connected(result)) => log::info!(
            "Connected: desktop {}x{}",
            result.desktop_size.width,
            result.desktop_size.height
        ),
        Some(ConnectionOutcome::Redirected(redirection)) => {
            log::info!("Server redirected the connection (session {})", redirection.session_id);
        }
        None => {}
    }
    Ok(outcome)
}

/// Runs the CredSSP (NLA) exchange for a connector that negotiated it, then advances the
/// connector past it. [`connect_finalize`] calls this itself; it is public for callers that
/// drive the connector step by step.
///
/// A refusal of the credentials is [`ErrorKind::Authentication`].
///
/// # Cancel safety
///
/// Not cancel safe.
pub async fn perform_credssp<S, N>(
    framed: &mut Framed<S>,
    connector: &mut ClientConnector,
    network_client: &mut N,
    server_name: ServerName,
    server_public_key: Vec<u8>,
    kerberos_config: Option<KerberosConfig>,
) -> Result<()>
where
    S: FramedRead + FramedWrite,
    N: NetworkClient,
{
    let ClientConnectorState::Credssp { selected_protocol } = connector.state else {
        return Err(Error::new(ErrorKind::InvalidState, "nla").with_detail(format!(
            "connector is in state {}, not CredSSP",
            ironrdp_connector::State::name(&connector.state)
        )));
    };
    log::debug!("Starting CredSSP ({selected_protocol:?})");

    let (mut sequence, mut ts_request) = crate::redact::scoped(|| {
        CredsspSequence::init(
            connector.config.credentials.clone(),
            connector.config.domain.as_deref(),
            selected_protocol,
            server_name,
            server_public_key,
            kerberos_config,
        )
    })
    .map_err(|e| connector_error("nla", e))?;

    let mut buf = WriteBuf::new();
    loop {
        let client_state = resolve_generator(&mut sequence, ts_request, network_client).await?;
        buf.clear();
        let written = crate::redact::scoped(|| sequence.handle_process_result(client_state, &mut buf))
            .map_err(|e| connector_error("nla", e))?;
        if let Some(len) = written.size() {
            log::trace!("Sending CredSSP message ({len} bytes)");
            framed.write_all(&buf.filled()[..len]).await?;
        }

        let Some(hint) = sequence.next_pdu_hint() else { break };
        let pdu = framed.read_by_hint(hint).await.map_err(|e| e.in_context("nla"))?;
        log::trace!("Received CredSSP message ({} bytes)", pdu.len());
        match crate::redact::scoped(|| sequence.decode_server_message(&pdu)).map_err(|e| connector_error("nla", e))? {
            Some(next) => ts_request = next,
            None => break,
        }
    }

    crate::redact::scoped(|| connector.mark_credssp_as_done());
    log::debug!("CredSSP done");
    Ok(())
}

/// Runs sspi's generator for one TsRequest, carrying its network requests.
async fn resolve_generator<N: NetworkClient>(
    sequence: &mut CredsspSequence,
    ts_request: TsRequest,
    network_client: &mut N,
) -> Result<ClientState> {
    // sspi runs its credential encoding inside these calls; see `redact`.
    let mut generator = crate::redact::scoped(|| sequence.process_ts_request(ts_request));
    let mut state = crate::redact::scoped(|| generator.start());
    loop {
        match state {
            GeneratorState::Suspended(request) => {
                log::debug!("CredSSP network request: {:?} {}", request.protocol, request.url);
                // A failed request goes back into sspi as an error rather than ending the
                // exchange here: sspi decides whether it can carry on (another KDC, NTLM).
                let reply = network_client.send(&request).await.map_err(|e| {
                    log::debug!("CredSSP network request failed: {}", crate::report(&e));
                    ironrdp_connector::sspi::Error::new(
                        ironrdp_connector::sspi::ErrorKind::NoAuthenticatingAuthority,
                        crate::report(&e),
                    )
                });
                state = crate::redact::scoped(|| generator.resume(reply));
            }
            GeneratorState::Completed(result) => {
                return result.map_err(|e| {
                    connector_error("nla", ConnectorError::new("CredSSP", ConnectorErrorKind::Credssp(e)))
                });
            }
        }
    }
}

/// Drives one step of any IronRDP [`Sequence`] (a connector, an activation sequence, a
/// server-side acceptor): reads the frame it waits for, if any, steps it with that frame's
/// arrival time, and writes its reply, if any. `buf` is scratch space reused across calls.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// # let mut framed: async_rdp::LocalFramed<async_std::net::TcpStream> = unimplemented!();
/// # let mut sequence: async_rdp::ironrdp_connector::ClientConnector = unimplemented!();
/// let mut buf = ironrdp_core::WriteBuf::new();
/// while !sequence.should_perform_security_upgrade() {
///     async_rdp::drive_step(&mut framed, &mut sequence, &mut buf, "negotiation").await?;
/// }
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// Errors carry `context` (the phase name) as their context.
///
/// # Cancel safety
///
/// Not cancel safe: a reply may be half written.
pub async fn drive_step<S>(
    framed: &mut Framed<S>,
    sequence: &mut dyn Sequence,
    buf: &mut WriteBuf,
    context: &'static str,
) -> Result<()>
where
    S: FramedRead + FramedWrite,
{
    buf.clear();
    let written = match sequence.next_pdu_hint() {
        Some(hint) => {
            let pdu = framed.read_by_hint(hint).await.map_err(|e| e.in_context(context))?;
            log::trace!("{}: received {} bytes", sequence.state().name(), pdu.len());
            crate::redact::scoped(|| sequence.step(&pdu, framed.last_read_at(), buf))
        }
        None => crate::redact::scoped(|| sequence.step_no_input(buf)),
    }
    .map_err(|e| connector_error(context, e))?;
    if let Some(len) = written.size() {
        log::trace!("{}: sending {len} bytes", sequence.state().name());
        framed
            .write_all(&buf.filled()[..len])
            .await
            .map_err(|e| e.in_context(context))?;
    }
    Ok(())
}

/// The phase of the connection sequence a connector state belongs to, for error contexts.
pub(crate) fn phase_name(state: &ClientConnectorState) -> &'static str {
    match state {
        ClientConnectorState::ConnectionInitiationSendRequest
        | ClientConnectorState::ConnectionInitiationWaitConfirm { .. } => "negotiation",
        ClientConnectorState::Credssp { .. } => "nla",
        ClientConnectorState::LicensingExchange { .. } => "licensing",
        _ => "activation",
    }
}

/// Wraps a connector error, classing a refusal of the credentials as
/// [`ErrorKind::Authentication`].
pub(crate) fn connector_error(context: &'static str, error: ConnectorError) -> Error {
    let kind = match error.kind() {
        ConnectorErrorKind::AccessDenied => ErrorKind::Authentication,
        ConnectorErrorKind::Credssp(e) if is_auth_failure(e) => ErrorKind::Authentication,
        _ => ErrorKind::Connector,
    };
    let detail = error.to_string();
    Error::new(kind, context).with_detail(detail).with_source(error)
}

fn is_auth_failure(error: &ironrdp_connector::sspi::Error) -> bool {
    use ironrdp_connector::sspi::credssp::NStatusCode as S;
    use ironrdp_connector::sspi::ErrorKind as K;
    // A server refusing the credentials reports an NTSTATUS in its TsRequest ([MS-CSSP]
    // 2.2.1); sspi surfaces it as `nstatus` on an otherwise generic error.
    const REFUSALS: [S; 12] = [
        S::WRONG_PASSWORD,
        S::LOGON_FAILURE,
        S::NO_SUCH_USER,
        S::ACCOUNT_RESTRICTION,
        S::INVALID_LOGON_HOURS,
        S::INVALID_WORKSTATION,
        S::PASSWORD_EXPIRED,
        S::ACCOUNT_DISABLED,
        S::LOGON_NOT_GRANTED,
        S::LOGON_TYPE_NOT_GRANTED,
        S::PASSWORD_MUST_CHANGE,
        S::ACCOUNT_LOCKED_OUT,
    ];
    matches!(
        error.error_type,
        K::LogonDenied | K::NoCredentials | K::UnknownCredentials | K::WrongPrincipalName | K::TimeSkew
    ) || error.nstatus.is_some_and(|status| {
        // sspi's own CredSSP server (IronRDP's) reports SEC_E_LOGON_DENIED with the NTSTATUS
        // customer bit pattern 0xC007030C rather than STATUS_LOGON_FAILURE.
        REFUSALS.contains(&status) || status == S(0xC007_030C)
    })
}
