//! The client: [`connect`] runs the whole connection — TCP, X.224 negotiation, TLS, NLA,
//! licensing and capability exchange — as a sequence of [`Phase`]s, each bounded, timed and
//! named in its errors, follows one server redirection, and ends in a running [`Session`].
//!
//! - `config`: [`ClientConfig`] and the credentials;
//! - `target`: [`Target`], where to connect;
//! - `phase`: [`Phase`], [`Timeouts`], [`ConnectTimings`] and the runner of the phases;
//! - `redirection`: following a server redirection;
//! - `reconnect`: retries with backoff, and reconnection with the auto-reconnect cookie.

mod config;
mod phase;
mod reconnect;
mod redirection;
mod target;

use std::ops::{Deref, DerefMut};

use futures_rustls::client::TlsStream;
use ironrdp_connector::{ClientConnector, ConnectionOutcome, ConnectionResult, Credentials};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;

pub use self::config::{ClientConfig, Codec, ColorDepth, Secret, Security};
pub(crate) use self::phase::PhaseRunner;
pub use self::phase::{ConnectTimings, Phase, Timeouts};
pub use self::reconnect::{connect_with_retry, is_transient, reconnect, Backoff};
use self::redirection::{prepare_redirected, redirect_target};
pub use self::target::{IntoTarget, Target, DEFAULT_PORT};
use crate::connector::{connect_begin, finalize_step, mark_as_upgraded, perform_credssp, phase_of, NoNetworkClient};
use crate::framing::{LocalFramed, LocalStream, Prefixed};
use crate::net::{self, TcpStream};
use crate::session::Session;
use crate::{tls, Error, ErrorKind, Result};

/// The TLS stream a [`connect`]ed session runs on.
pub type ClientStream = TlsStream<Prefixed<TcpStream>>;

/// The session [`connect`] returns.
pub type ClientSession = Session<LocalStream<ClientStream>>;

/// Connects to the RDP server at `target` (a [`Target`], or text such as `host:port`) and runs
/// the connection sequence to the start of the session, on the calling task.
///
/// Every error names its [`Phase`] ([`Error::phase`]); a refused password is
/// [`ErrorKind::Authentication`]; a phase that overruns its [`Timeouts`] entry is
/// [`ErrorKind::Timeout`]; a certificate the [`Trust`](crate::Trust) policy refuses is
/// [`ErrorKind::Tls`] with the refusal as a value ([`Error::certificate_refused`]). A server
/// redirection is followed once, to a target that must pass the same certificate
/// verification.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// use async_rdp::{connect, ClientConfig};
///
/// let session = connect("192.0.2.10:3389", ClientConfig::new("alice", "s3cret")).await?;
/// let fb = session.framebuffer();
/// println!("{}x{} desktop", fb.width, fb.height);
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Cancel safe in the sense that dropping the future drops the half-made connection.
pub async fn connect(target: impl IntoTarget, config: ClientConfig) -> Result<ClientSession> {
    Ok(connect_with_timings(target, config).await?.0)
}

/// [`connect`], also returning how long each phase took.
///
/// # Cancel safety
///
/// As [`connect`].
pub async fn connect_with_timings(
    target: impl IntoTarget,
    config: ClientConfig,
) -> Result<(ClientSession, ConnectTimings)> {
    let target = target.into_target().map_err(|e| e.in_phase(Phase::Tcp))?;
    let mut runner = PhaseRunner::new(config.timeouts());
    // Boxed: the connection sequence's state (connector, TLS, framing) is several KiB, too
    // much to keep on a small thread's stack inside the caller's future; one allocation per
    // connection.
    let first = Box::pin(attempt(&target, &config, None, &mut runner)).await?;
    let (framed, result) = match first {
        Attempt::Connected(framed, result) => (framed, result),
        Attempt::Redirected(redirection) => {
            let target = redirect_target(&target, &redirection)?;
            log::info!("Following the server's redirection to {target}");
            runner.set_redirected();
            match Box::pin(attempt(&target, &config, Some(&redirection), &mut runner)).await? {
                Attempt::Connected(framed, result) => (framed, result),
                Attempt::Redirected(_) => {
                    return Err(Error::new(ErrorKind::Connector, "redirection")
                        .with_detail("the redirected server redirected again; only one redirection is followed")
                        .in_phase(Phase::Activation))
                }
            }
        }
    };
    let mut session = Session::new(*framed, *result);
    session.set_idle_timeout(config.timeouts()[Phase::Session]);
    Ok((session, runner.timings()))
}

enum Attempt {
    Connected(Box<LocalFramed<ClientStream>>, Box<ConnectionResult>),
    Redirected(Box<ServerRedirectionPdu>),
}

/// One connection attempt, phase by phase.
async fn attempt(
    target: &Target,
    config: &ClientConfig,
    redirection: Option<&ServerRedirectionPdu>,
    runner: &mut PhaseRunner,
) -> Result<Attempt> {
    let tcp = runner
        .run(Phase::Tcp, net::connect_unbounded(&target.to_string()))
        .await?;
    let local = tcp.local_addr().map_err(|e| Error::io("tcp", e).in_phase(Phase::Tcp))?;
    let mut connector = WipePassword(new_connector(config, local, redirection));
    let mut framed = LocalFramed::new(tcp);

    let should_upgrade = runner
        .run(Phase::Negotiation, connect_begin(&mut framed, &mut connector))
        .await?;
    let upgraded = runner
        .run(Phase::Tls, async {
            let verifier = config.trust().verifier_for(target, redirection.is_some())?;
            tls::upgrade(framed, target.host(), verifier).await
        })
        .await?;
    // The token proves the order of the phases; this function runs the finalization itself.
    let _upgraded = mark_as_upgraded(should_upgrade, &mut connector)?;
    let mut framed = LocalFramed::new(upgraded.stream);

    if connector.should_perform_credssp() {
        let mut network = NoNetworkClient;
        let nla = perform_credssp(
            &mut framed,
            &mut connector,
            &mut network,
            target.host().into(),
            upgraded.server_public_key,
            None,
        );
        runner.run(Phase::Nla, nla).await?;
    }
    finalize(&mut framed, &mut connector, runner)
        .await
        .map(|outcome| match outcome {
            ConnectionOutcome::Connected(result) => Attempt::Connected(Box::new(framed), Box::new(result)),
            ConnectionOutcome::Redirected(redirection) => Attempt::Redirected(redirection),
        })
}

/// The connector for one attempt: the configuration, and what a redirection or an earlier
/// session asks the server for.
fn new_connector(
    config: &ClientConfig,
    local: std::net::SocketAddr,
    redirection: Option<&ServerRedirectionPdu>,
) -> ClientConnector {
    let mut connector = ClientConnector::new(config.connector_config(), local);
    connector = crate::channels::register(connector, config.channels());
    if let Some(redirection) = redirection {
        connector = prepare_redirected(connector, redirection);
    }
    if let Some(cookie) = config.auto_reconnect_cookie() {
        connector = connector.with_auto_reconnect_cookie(cookie.clone());
    }
    connector
}

/// The rest of the sequence, step by step, each step in the phase the connector is in
/// (licensing or activation), until the connector has an outcome.
async fn finalize(
    framed: &mut LocalFramed<ClientStream>,
    connector: &mut ClientConnector,
    runner: &mut PhaseRunner,
) -> Result<ConnectionOutcome> {
    let mut buf = WriteBuf::new();
    loop {
        let phase = phase_of(&connector.state);
        if let Some(outcome) = runner
            .run(phase, finalize_step(framed, connector, &mut buf, phase))
            .await?
        {
            return Ok(outcome);
        }
    }
}

/// Overwrites the connector's copy of the password when the connection attempt ends, however
/// it ends (IronRDP's `Credentials` is a plain `String` that would otherwise linger).
struct WipePassword(ClientConnector);

impl Drop for WipePassword {
    fn drop(&mut self) {
        if let Credentials::UsernamePassword { password, .. } = &mut self.0.config.credentials {
            zeroize::Zeroize::zeroize(password);
        }
    }
}

impl Deref for WipePassword {
    type Target = ClientConnector;
    fn deref(&self) -> &ClientConnector {
        &self.0
    }
}

impl DerefMut for WipePassword {
    fn deref_mut(&mut self) -> &mut ClientConnector {
        &mut self.0
    }
}
