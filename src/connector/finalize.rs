//! The connection sequence after the security upgrade (basic settings, channels, licensing,
//! capabilities), and the one-step driver of any IronRDP sequence.

use ironrdp_connector::credssp::KerberosConfig;
use ironrdp_connector::{ClientConnector, ConnectionOutcome, Sequence, ServerName};
use ironrdp_core::WriteBuf;

use super::{connector_error, perform_credssp, phase_of, NetworkClient, Upgraded};
use crate::framing::{Framed, FramedRead, FramedWrite};
use crate::{Phase, Result};

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
    crate::redact::future(async move {
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
            let phase = phase_of(&connector.state);
            if let Some(outcome) = finalize_step(framed, &mut connector, &mut buf, phase).await? {
                return Ok(outcome);
            }
        }
    })
    .await
}

/// One step of the connection sequence after the security upgrade: declines a pending
/// multitransport request, or drives the connector one step; returns the outcome once the
/// connector has one. Shared by [`connect_finalize`] and `connect`.
pub(crate) async fn finalize_step<S>(
    framed: &mut Framed<S>,
    connector: &mut ClientConnector,
    buf: &mut WriteBuf,
    phase: Phase,
) -> Result<Option<ConnectionOutcome>>
where
    S: FramedRead + FramedWrite,
{
    if connector.should_perform_multitransport() {
        buf.clear();
        let written = connector
            .skip_multitransport(buf)
            .map_err(|e| connector_error(phase.name(), e).in_phase(phase))?;
        if let Some(len) = written.size() {
            framed
                .write_all(&buf.filled()[..len])
                .await
                .map_err(|e| e.in_phase(phase))?;
        }
        return Ok(None);
    }
    drive_step(framed, connector, buf, phase.name())
        .await
        .map_err(|e| e.in_phase(phase))?;
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

/// Drives one step of any IronRDP [`Sequence`] (a connector, an activation sequence, a
/// server-side acceptor): reads the frame it waits for, if any, steps it with that frame's
/// arrival time, and writes its reply, if any. `buf` is scratch space reused across calls.
/// Fast-path frames that arrive ahead of the awaited one stay buffered for whatever reads next
/// ([`Framed::read_by_hint_keeping_output`]): the session's first frames on a client; on a
/// server (an acceptor), the client's first input. Before the TLS upgrade a server has no
/// output to send; bytes a broken one sends there reach the TLS handshake, which fails on them.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// # let mut framed: async_rdp::framing::LocalFramed<async_std::net::TcpStream> = unimplemented!();
/// # let mut sequence: async_rdp::ironrdp_connector::ClientConnector = unimplemented!();
/// let mut buf = ironrdp_core::WriteBuf::new();
/// while !sequence.should_perform_security_upgrade() {
///     async_rdp::connector::drive_step(&mut framed, &mut sequence, &mut buf, "negotiation").await?;
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
    crate::redact::future(async move {
        buf.clear();
        let written = match sequence.next_pdu_hint() {
            Some(hint) => {
                // Graphics a server sends before the sequence ends are the session's first frames.
                let pdu = framed
                    .read_by_hint_keeping_output(hint)
                    .await
                    .map_err(|e| e.in_context(context))?;
                log::trace!("{}: received {} bytes", sequence.state().name(), pdu.len());
                sequence.step(&pdu, framed.last_read_at(), buf)
            }
            None => sequence.step_no_input(buf),
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
    })
    .await
}
