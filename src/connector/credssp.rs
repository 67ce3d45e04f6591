//! CredSSP (NLA): the exchange of TsRequests, and the network requests sspi makes on the way
//! (to a Kerberos KDC), carried by a [`NetworkClient`].

use std::future::Future;

use ironrdp_connector::credssp::{CredsspSequence, KerberosConfig};
use ironrdp_connector::sspi::credssp::{ClientState, TsRequest};
use ironrdp_connector::sspi::generator::{GeneratorState, NetworkRequest};
use ironrdp_connector::{ClientConnector, ClientConnectorState, ConnectorError, ConnectorErrorKind, ServerName};
use ironrdp_core::WriteBuf;

use super::connector_error;
use crate::framing::{Framed, FramedRead, FramedWrite};
use crate::{Error, ErrorKind, Phase, Result};

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

/// Runs the CredSSP (NLA) exchange for a connector that negotiated it, then advances the
/// connector past it. [`connect_finalize`](super::connect_finalize) calls this itself; it is
/// public for callers that drive the connector step by step.
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
    let in_nla = |e: Error| e.in_phase(Phase::Nla);
    let (sequence, ts_request) =
        crate::redact::scoped(|| start(connector, server_name, server_public_key, kerberos_config)).map_err(in_nla)?;
    crate::redact::future(exchange(framed, sequence, ts_request, network_client))
        .await
        .map_err(in_nla)?;
    crate::redact::scoped(|| connector.mark_credssp_as_done());
    log::debug!("CredSSP done");
    Ok(())
}

/// The CredSSP sequence for a connector that negotiated it, and the first TsRequest to answer.
fn start(
    connector: &ClientConnector,
    server_name: ServerName,
    server_public_key: Vec<u8>,
    kerberos_config: Option<KerberosConfig>,
) -> Result<(CredsspSequence, TsRequest)> {
    let ClientConnectorState::Credssp { selected_protocol } = connector.state else {
        return Err(Error::new(ErrorKind::InvalidState, "nla").with_detail(format!(
            "connector is in state {}, not CredSSP",
            ironrdp_connector::State::name(&connector.state)
        )));
    };
    log::debug!("Starting CredSSP ({selected_protocol:?})");
    CredsspSequence::init(
        connector.config.credentials.clone(),
        connector.config.domain.as_deref(),
        selected_protocol,
        server_name,
        server_public_key,
        kerberos_config,
    )
    .map_err(|e| connector_error("nla", e))
}

/// The exchange of TsRequests, until the server has the credentials (or refuses them).
async fn exchange<S, N>(
    framed: &mut Framed<S>,
    mut sequence: CredsspSequence,
    mut ts_request: TsRequest,
    network_client: &mut N,
) -> Result<()>
where
    S: FramedRead + FramedWrite,
    N: NetworkClient,
{
    let mut buf = WriteBuf::new();
    loop {
        let client_state = resolve_generator(&mut sequence, ts_request, network_client).await?;
        buf.clear();
        let written = sequence
            .handle_process_result(client_state, &mut buf)
            .map_err(|e| connector_error("nla", e))?;
        if let Some(len) = written.size() {
            log::trace!("Sending CredSSP message ({len} bytes)");
            framed.write_all(&buf.filled()[..len]).await?;
        }

        let Some(hint) = sequence.next_pdu_hint() else {
            return Ok(());
        };
        let pdu = framed.read_by_hint(hint).await.map_err(|e| e.in_context("nla"))?;
        log::trace!("Received CredSSP message ({} bytes)", pdu.len());
        match sequence
            .decode_server_message(&pdu)
            .map_err(|e| connector_error("nla", e))?
        {
            Some(next) => ts_request = next,
            None => return Ok(()),
        }
    }
}

/// Runs sspi's generator for one TsRequest, carrying its network requests.
async fn resolve_generator<N: NetworkClient>(
    sequence: &mut CredsspSequence,
    ts_request: TsRequest,
    network_client: &mut N,
) -> Result<ClientState> {
    // sspi encodes the credentials in here: this runs under `perform_credssp`'s redaction.
    let mut generator = sequence.process_ts_request(ts_request);
    let mut state = generator.start();
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
                state = generator.resume(reply);
            }
            GeneratorState::Completed(result) => {
                return result.map_err(|e| {
                    connector_error("nla", ConnectorError::new("CredSSP", ConnectorErrorKind::Credssp(e)))
                });
            }
        }
    }
}
