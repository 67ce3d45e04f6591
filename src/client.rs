//! `connect`: the whole client connection — TCP, X.224 negotiation, TLS, NLA, licensing and
//! capability exchange — with a deadline per phase, phase timings, and one server redirection
//! followed, ending in a running [`Session`].

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use futures_rustls::client::TlsStream;
use ironrdp_connector::{ClientConnector, ConnectionOutcome, ConnectionResult, Credentials};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::gcc::{ClientClusterData, RedirectionFlags, RedirectionVersion};
use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;

use crate::connect::{connect_begin, finalize_step, mark_as_upgraded, perform_credssp, phase_name, NoNetworkClient};
use crate::framed::LocalFramed;
use crate::net::{self, TcpStream};
use crate::session::Session;
use crate::stream::{LocalStream, Prefixed};
use crate::{tls, ClientConfig, Error, ErrorKind, Result};

/// The TLS stream a [`connect`]ed session runs on.
pub type ClientStream = TlsStream<Prefixed<TcpStream>>;

/// The session [`connect`] returns.
pub type ClientSession = Session<LocalStream<ClientStream>>;

/// How long each phase of the connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub tcp: Duration,
    /// X.224 negotiation.
    pub negotiation: Duration,
    /// TLS handshake.
    pub tls: Duration,
    /// CredSSP/NLA.
    pub nla: Duration,
    /// Licensing exchange.
    pub licensing: Duration,
    /// Everything else up to the first frame of the session (settings, channels,
    /// capabilities, finalization).
    pub activation: Duration,
    /// In the session: how long the server may send nothing before
    /// [`Session::next_event`] fails with [`ErrorKind::Timeout`] (a dead link or a half-open
    /// socket). `None` (the default) waits forever: an idle desktop may send nothing for
    /// minutes.
    pub session_idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp: Duration::from_secs(10),
            negotiation: Duration::from_secs(10),
            tls: Duration::from_secs(10),
            nla: Duration::from_secs(20),
            licensing: Duration::from_secs(20),
            activation: Duration::from_secs(20),
            session_idle: None,
        }
    }
}

/// How long each phase of the last connection took (`None`: the phase did not happen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectTimings {
    /// TCP connect.
    pub tcp: Duration,
    /// X.224 negotiation.
    pub negotiation: Duration,
    /// TLS handshake.
    pub tls: Duration,
    /// CredSSP/NLA, when negotiated.
    pub nla: Option<Duration>,
    /// Licensing, when the server ran it.
    pub licensing: Option<Duration>,
    /// The rest of the connection sequence.
    pub activation: Duration,
    /// Whether a server redirection was followed (the timings are the redirected connection's).
    pub redirected: bool,
}

/// Connects to the RDP server at `addr` (`host:port`) and runs the connection sequence to the
/// start of the session, on the calling task.
///
/// Every error names its phase as its [context](Error::context): `tcp`, `negotiation`,
/// `tls`, `nla`, `licensing` or `activation`; a refused password is
/// [`ErrorKind::Authentication`]; a phase that overruns its [`Timeouts`] entry is
/// [`ErrorKind::Timeout`]. A server redirection is followed once, to a target that must pass
/// the same certificate verification.
///
/// ```no_run
/// # async_std::task::block_on(async {
/// use async_rdp::{connect, ClientConfig};
///
/// let session = connect("192.0.2.10:3389", ClientConfig::new("alice", "s3cret")).await?;
/// let fb = session.framebuffer();
/// println!("{}x{} desktop; connected in {:?}", fb.width, fb.height, session_timings(&session));
/// # fn session_timings<T>(_: &T) {}
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Cancel safe in the sense that dropping the future drops the half-made connection.
pub async fn connect(addr: &str, config: ClientConfig) -> Result<ClientSession> {
    Ok(connect_with_timings(addr, config).await?.0)
}

/// [`connect`], also returning how long each phase took.
///
/// # Cancel safety
///
/// As [`connect`].
pub async fn connect_with_timings(addr: &str, config: ClientConfig) -> Result<(ClientSession, ConnectTimings)> {
    let mut timings = ConnectTimings::default();
    // Boxed: the connection sequence's state (connector, TLS, framing) is several KiB, too
    // much to keep on a small thread's stack inside the caller's future; one allocation per
    // connection.
    let first = Box::pin(attempt(addr, &config, None, &mut timings)).await?;
    let (framed, result) = match first {
        Attempt::Connected(framed, result) => (framed, result),
        Attempt::Redirected(redirection) => {
            let target = redirect_target(addr, &redirection)?;
            log::info!("Following the server's redirection to {target}");
            timings = ConnectTimings {
                redirected: true,
                ..ConnectTimings::default()
            };
            match Box::pin(attempt(&target, &config, Some(&redirection), &mut timings)).await? {
                Attempt::Connected(framed, result) => (framed, result),
                Attempt::Redirected(_) => {
                    return Err(Error::new(ErrorKind::Connector, "activation")
                        .with_detail("the redirected server redirected again; only one redirection is followed"))
                }
            }
        }
    };
    let mut session = Session::new(*framed, *result);
    session.set_idle_timeout(config.timeouts().session_idle);
    Ok((session, timings))
}

enum Attempt {
    Connected(Box<LocalFramed<ClientStream>>, Box<ConnectionResult>),
    Redirected(Box<ServerRedirectionPdu>),
}

async fn attempt(
    addr: &str,
    config: &ClientConfig,
    redirection: Option<&ServerRedirectionPdu>,
    timings: &mut ConnectTimings,
) -> Result<Attempt> {
    let t = config.timeouts();
    let host = host_of(addr);

    let start = Instant::now();
    let tcp = net::connect(addr, t.tcp).await.map_err(|e| e.in_context("tcp"))?;
    timings.tcp = start.elapsed();
    let local = tcp.local_addr().map_err(|e| Error::io("tcp", e))?;

    let mut connector = ClientConnector::new(config.connector_config(), local);
    if let Some(redirection) = redirection {
        connector = prepare_redirected(connector, redirection);
    }
    if let Some(cookie) = config.auto_reconnect_cookie() {
        connector = connector.with_auto_reconnect_cookie(cookie.clone());
    }
    let mut connector = WipePassword(connector);
    let mut framed = LocalFramed::new(tcp);

    let start = Instant::now();
    let should_upgrade = net::with_timeout(t.negotiation, "negotiation", connect_begin(&mut framed, &mut connector))
        .await
        .map_err(|e| e.in_context("negotiation"))?;
    timings.negotiation = start.elapsed();

    let start = Instant::now();
    let verifier = config
        .trust()
        .verifier_for(host, port_of(addr), redirection.is_some())
        .map_err(|e| e.in_context("tls"))?;
    let upgraded = net::with_timeout(t.tls, "tls", tls::upgrade(framed, host, verifier))
        .await
        .map_err(|e| e.in_context("tls"))?;
    timings.tls = start.elapsed();
    // The token proves the order of the phases; this function runs the finalization itself.
    let _upgraded = mark_as_upgraded(should_upgrade, &mut connector)?;
    let mut framed = LocalFramed::new(upgraded.stream);

    if connector.should_perform_credssp() {
        let start = Instant::now();
        let mut network = NoNetworkClient;
        let nla = perform_credssp(
            &mut framed,
            &mut connector,
            &mut network,
            host.into(),
            upgraded.server_public_key,
            None,
        );
        net::with_timeout(t.nla, "nla", nla)
            .await
            .map_err(|e| e.in_context("nla"))?;
        timings.nla = Some(start.elapsed());
    }

    // The rest of the sequence, with licensing timed and bounded on its own.
    let mut buf = WriteBuf::new();
    let mut phase = phase_name(&connector.state);
    let mut phase_start = Instant::now();
    let activation_start = phase_start;
    let mut licensing = Duration::ZERO;
    loop {
        let limit = if phase == "licensing" {
            t.licensing
        } else {
            t.activation
        };
        let left = limit.saturating_sub(phase_start.elapsed());
        let step = finalize_step(&mut framed, &mut connector, &mut buf, phase);
        let outcome = net::with_timeout(left, phase, step)
            .await
            .map_err(|e| e.in_context(phase))?;
        if let Some(outcome) = outcome {
            if phase == "licensing" {
                licensing += phase_start.elapsed();
            }
            timings.licensing = (licensing > Duration::ZERO).then_some(licensing);
            timings.activation = activation_start.elapsed().saturating_sub(licensing);
            return Ok(match outcome {
                ConnectionOutcome::Connected(result) => Attempt::Connected(Box::new(framed), Box::new(result)),
                ConnectionOutcome::Redirected(redirection) => Attempt::Redirected(redirection),
            });
        }
        let next = phase_name(&connector.state);
        if next != phase {
            if phase == "licensing" {
                licensing += phase_start.elapsed();
            }
            phase = next;
            phase_start = Instant::now();
        }
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => addr,
    }
}

/// Where a redirection sends us: its target address, on the port we used.
fn redirect_target(addr: &str, redirection: &ServerRedirectionPdu) -> Result<String> {
    let port = addr.rsplit_once(':').map_or("3389", |(_, p)| p);
    let host = redirection
        .target_net_address
        .clone()
        .or_else(|| {
            redirection
                .target_net_addresses
                .as_ref()
                .and_then(|a| a.first().cloned())
        })
        .or_else(|| redirection.target_fqdn.clone())
        .ok_or_else(|| {
            Error::new(ErrorKind::Connector, "activation")
                .with_detail("the server redirected to a target without an address")
        })?;
    let host = host.trim_end_matches('\0');
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Tells the redirected server which session we come for ([MS-RDPBCGR] 3.1.5.13.1).
fn prepare_redirected(mut connector: ClientConnector, redirection: &ServerRedirectionPdu) -> ClientConnector {
    if let Some(info) = &redirection.load_balance_info {
        connector = connector.with_load_balance_info(String::from_utf8_lossy(info).into_owned());
    }
    if let Some(cookie) = &redirection.password {
        connector = connector.with_redirection_password_cookie(cookie.clone());
    }
    connector.with_cluster_data(ClientClusterData {
        flags: RedirectionFlags::REDIRECTION_SUPPORTED | RedirectionFlags::REDIRECTED_SESSION_FIELD_VALID,
        redirection_version: RedirectionVersion::V4,
        redirected_session_id: redirection.session_id,
    })
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

/// The port of `host:port` (3389, RDP's, when there is none).
fn port_of(addr: &str) -> u16 {
    let after_host = addr.rsplit_once(']').map_or(addr, |(_, rest)| rest);
    match after_host.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || addr.starts_with('[') => port.parse().unwrap_or(3389),
        _ => 3389,
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_parts() {
        assert_eq!(host_of("example.com:3389"), "example.com");
        assert_eq!(host_of("10.0.0.1:3390"), "10.0.0.1");
        assert_eq!(host_of("[::1]:3389"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(super::port_of("example.com:3390"), 3390);
        assert_eq!(super::port_of("[::1]:3391"), 3391);
        assert_eq!(super::port_of("example.com"), 3389);
        assert_eq!(super::port_of("::1"), 3389);
    }
}
