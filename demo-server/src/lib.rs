//! A loopback RDP server for async-rdp's tests and demos. **Not for production use.**
//!
//! It runs IronRDP's sans-IO acceptor (`ironrdp-acceptor`) on async-rdp's own framing:
//! X.224 negotiation, TLS with a self-signed certificate made at start-up (or the caller's
//! [`Identity`]), NLA (CredSSP with NTLM) against one configured user, and the rest of the
//! connection sequence. It listens on 127.0.0.1 only and serves one connection at a time, on
//! the caller's task: nothing here spawns a thread or a task.
//!
//! # The session
//!
//! After the connection sequence, [`Connection::run`] (or [`DemoServer::serve_one`]) serves
//! the active session, as a future the caller polls:
//!
//! 1. two Save Session Info PDUs ([MS-RDPBCGR] 2.2.10.1): a Logon Info Version 2 (the logon
//!    is complete, with a session id), then a Logon Info Extended with a server
//!    auto-reconnect cookie (ARC_SC_PRIVATE_PACKET: that session id and 16 random bytes);
//! 2. the pointer, fast-path: a Pointer Position update (centre of the desktop), then a
//!    32 x 32, 32 bpp New Pointer update (an arrow with alpha);
//! 3. [`ServerEvent::Connected`], then the whole desktop as fast-path Bitmap Updates
//!    (uncompressed 32 bpp, bottom-up BGRX rows, tiles of at most 64 x 40, as many tiles of one
//!    row per PDU as fit in the fast-path limit of 0x7FFF bytes), then
//!    [`ServerEvent::FrameSent`];
//! 4. then, until the session ends, whichever comes first of: a client PDU (input is reported
//!    as events; Refresh Rect and Suppress Output redraw; Shutdown Request is answered with
//!    Shutdown Denied; an MCS Disconnect Provider Ultimatum or end of stream ends the
//!    session), a [`Command`] from the owner (resize by deactivation-reactivation, graceful
//!    disconnect, abrupt drop, redraw, bytes on a virtual channel), or the animation timer
//!    ([`Config::animate`]), which redraws only [`animated_region`].
//!
//! # Virtual channels
//!
//! The server joins the static channels of [`channel::JOINED`] (the clipboard, the dynamic
//! channel transport, ...) that the client asks for, and serves none of them itself: a test
//! speaks for it with [`Command::Channel`] (or [`Scripted::Channel`]), well-formed PDUs made
//! with [`channel::cliprdr`] and [`channel::dvc`] or any bytes at all, and reads the client's
//! messages in [`ServerEvent::ChannelData`].
//!
//! # Replaying pre-encoded updates
//!
//! For benchmarks and decoder tests, [`Connection::replay`] replaces the session above: once
//! the connection sequence is over ([`DemoServer::accept`]), it writes byte strings the owner
//! prepared (whole server-to-client PDUs, typically made with the [`encode`] module: planar or
//! uncompressed Bitmap Updates, RemoteFX surface bits) a given number of times, in turn, then
//! ends the session as [`Command::Disconnect`] does. Nothing else is sent, and the
//! server spends no time encoding while it replays. [`Connection::remotefx_offer`] tells what
//! the client offered for RemoteFX, so that surface commands carry the codec id it chose.
//!
//! The desktop is a static test pattern, [`pattern_pixel`], built so that a decoding error
//! (an off-by-one, swapped channels, a flipped row) changes some pixel; a client that decodes
//! correctly shows exactly `pattern_pixel` everywhere outside [`animated_region`] (and
//! everywhere, when nothing animates).
//!
//! ```no_run
//! # async_std::task::block_on(async {
//! use async_rdp_demo_server::{Command, Config, DemoServer, ServerEvent};
//! use futures::channel::mpsc;
//!
//! let server = DemoServer::bind(Config::default()).await?;
//! let (events, mut reported) = mpsc::unbounded::<ServerEvent>();
//! let (commands, received) = mpsc::unbounded::<Command>();
//! // Poll this together with a client on the same thread (futures::join!, select!, ...).
//! server.serve_one(events, received).await?;
//! # drop((commands, reported));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! [MS-RDPBCGR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpbcgr/
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod encode;
mod pattern;
mod pdu;
mod session;
pub mod testing;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_rdp::connector::drive_step;
use async_rdp::framing::{LocalFramed, Prefixed};
use async_rdp::{Error, ErrorKind};
use async_std::net::{TcpListener, TcpStream};
use futures::channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use ironrdp_acceptor::credssp::CredsspSequence;
use ironrdp_acceptor::{Acceptor, AcceptorResult};
use ironrdp_connector::sspi::credssp::{EarlyUserAuthResult, ServerError, ServerState};
use ironrdp_connector::sspi::generator::GeneratorState;
use ironrdp_connector::sspi::{AuthIdentity, Username};
use ironrdp_connector::{DesktopSize, ServerName};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::capability_sets::{self as caps, CapabilitySet};
use ironrdp_pdu::rdp::client_info::Credentials;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub use crate::channel::{ChannelData, ChannelSend, ChannelTarget};
pub use crate::pattern::{animated_region, pattern_pixel};
use crate::session::SessionSettings;
pub use crate::session::{Command, MouseButton, Scripted, ServerEvent, PLAY_LINGER};

/// The security protocol the server insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS only: credentials travel in the Client Info PDU.
    Tls,
    /// NLA: CredSSP (NTLM) over TLS before anything else.
    Nla,
}

/// What the demo server offers.
#[derive(Clone)]
pub struct Config {
    /// The one user allowed in.
    pub username: String,
    /// That user's password.
    pub password: String,
    /// TLS or NLA.
    pub security: Security,
    /// Initial desktop size.
    pub desktop: DesktopSize,
    /// `None` (the default): draw the desktop once, then only when asked (Refresh Rect,
    /// Suppress Output, [`Command::Redraw`], a resize). `Some(period)`: also redraw the clock
    /// in [`animated_region`] every `period`.
    pub animate: Option<Duration>,
    /// `false` (the default): after a resize, draw once the reactivation is complete. `true`:
    /// draw the new desktop as soon as the client has confirmed its capabilities, ahead of the
    /// server's finalization PDUs, and not again after them — as xrdp can. A client that drops
    /// what arrives before the sequence ends then shows nothing (and, with xrdp's RemoteFX,
    /// whose codec headers come only in the first frame, cannot decode anything after it).
    pub draw_during_reactivation: bool,
    /// `None` (the default): a fresh self-signed certificate for `localhost` and `127.0.0.1`,
    /// made at bind time. `Some`: this certificate and key instead (a test's own CA-signed
    /// leaf, say, or the same identity again after a restart).
    pub identity: Option<Identity>,
}

/// A certificate chain and its private key, for [`Config::identity`].
pub struct Identity {
    /// The end-entity certificate first, then any intermediates the client needs.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of the end-entity certificate.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A single certificate (no intermediates) and its key.
    pub fn new(certificate: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain: vec![certificate],
            key,
        }
    }
}

// `PrivateKeyDer` is deliberately not `Clone`; the demo server's configuration is.
impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fingerprints: Vec<String> = self
            .chain
            .iter()
            .map(|c| async_rdp::trust::Fingerprint::of(c).to_string())
            .collect();
        f.debug_struct("Identity")
            .field("chain", &fingerprints)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("security", &self.security)
            .field("desktop", &self.desktop)
            .field("animate", &self.animate)
            .field("draw_during_reactivation", &self.draw_during_reactivation)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            username: "demo".to_owned(),
            password: "demo-Passw0rd".to_owned(),
            security: Security::Nla,
            desktop: DesktopSize {
                width: 1280,
                height: 720,
            },
            animate: None,
            draw_during_reactivation: false,
            identity: None,
        }
    }
}

/// A bound demo server. Accept connections with [`DemoServer::accept`].
pub struct DemoServer {
    listener: TcpListener,
    tls: TlsAcceptor,
    certificate: CertificateDer<'static>,
    public_key: Vec<u8>,
    config: Config,
}

/// The TLS stream a connection runs on.
pub type ServerStream = TlsStream<Prefixed<TcpStream>>;

/// One accepted connection that completed the RDP connection sequence. Serve it with
/// [`Connection::run`].
pub struct Connection {
    /// The framed TLS stream, positioned at the start of the active session.
    pub framed: LocalFramed<ServerStream>,
    /// What the acceptor learned from the client (capabilities, channels, credentials).
    pub result: AcceptorResult,
    /// The finished acceptor, kept for deactivation-reactivation.
    acceptor: Acceptor,
    settings: SessionSettings,
}

impl DemoServer {
    /// Binds to `127.0.0.1` on an ephemeral port, with [`Config::identity`] or else a fresh
    /// self-signed certificate.
    pub async fn bind(config: Config) -> io::Result<Self> {
        Self::bind_to("127.0.0.1:0".parse().map_err(io::Error::other)?, config).await
    }

    /// Binds to `addr`, which must be a loopback address (port 0: an ephemeral one). Binding
    /// again to the address of a server that was dropped restarts "the same host" (with
    /// another certificate, unless [`Config::identity`] repeats it).
    pub async fn bind_to(addr: SocketAddr, config: Config) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the demo server listens on loopback only",
            ));
        }
        let Identity { chain, key } = match &config.identity {
            Some(identity) => identity.clone(),
            None => self_signed()?,
        };
        let certificate = chain
            .first()
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the identity has no certificate"))?;
        // CredSSP binds to the key of the certificate the server presents.
        let public_key = async_rdp::tls::subject_public_key(&certificate).map_err(io::Error::other)?;
        let server_config = rustls::ServerConfig::builder_with_provider(async_rdp::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            tls: TlsAcceptor::from(Arc::new(server_config)),
            certificate,
            public_key,
            config,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's certificate (DER), for clients that pin it.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Accepts one TCP connection and runs the whole connection sequence on it.
    pub async fn accept(&self) -> Result<Connection, Error> {
        let tcp = self.accept_tcp().await?;
        self.handshake(tcp).await
    }

    /// Accepts one connection and runs its session to the end ([`accept`](Self::accept)
    /// then [`Connection::run`]).
    pub async fn serve_one(
        &self,
        events: UnboundedSender<ServerEvent>,
        commands: UnboundedReceiver<Command>,
    ) -> Result<(), Error> {
        self.accept().await?.run(events, commands).await
    }

    /// Serves connections one after another, forever (for demos and screenshots), animating
    /// the clock if [`Config::animate`] says so.
    ///
    /// A connection that fails (handshake, authentication, a misbehaving client) is logged
    /// and the next one accepted; only a failure of the listening socket ends the loop.
    pub async fn serve_forever(&self) -> Result<(), Error> {
        loop {
            let tcp = self.accept_tcp().await?;
            let peer = tcp.peer_addr().ok();
            let connection = match self.handshake(tcp).await {
                Ok(connection) => connection,
                Err(e) => {
                    log::warn!(
                        "Demo server: connection from {peer:?} failed: {}",
                        async_rdp::report(&e)
                    );
                    continue;
                }
            };
            // Nobody listens to the events, and no command ever comes.
            let (events, _) = mpsc::unbounded();
            let (_, commands) = mpsc::unbounded();
            if let Err(e) = connection.run(events, commands).await {
                log::warn!("Demo server: session with {peer:?} failed: {}", async_rdp::report(&e));
            }
        }
    }

    async fn accept_tcp(&self) -> Result<TcpStream, Error> {
        let (tcp, _) = self.listener.accept().await.map_err(|e| Error::io("accept", e))?;
        tcp.set_nodelay(true).map_err(|e| Error::io("accept", e))?;
        Ok(tcp)
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Connection, Error> {
        let security = match self.config.security {
            Security::Tls => SecurityProtocol::SSL,
            Security::Nla => SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX,
        };
        let credentials = Credentials {
            username: self.config.username.clone(),
            password: self.config.password.clone(),
            domain: None,
        };
        let mut acceptor = Acceptor::new(
            security,
            self.config.desktop,
            capabilities(self.config.desktop),
            Some(credentials),
        );
        channel::join_all(&mut acceptor);

        let mut framed = LocalFramed::new(tcp);
        let mut buf = WriteBuf::new();
        while acceptor.reached_security_upgrade().is_none() {
            drive_step(&mut framed, &mut acceptor, &mut buf, "server negotiation").await?;
        }

        // Bytes the client pipelined after its Connection Request are TLS records.
        let (tcp, leftover) = framed.into_inner();
        let tls = self
            .tls
            .accept(Prefixed::new(tcp, leftover))
            .await
            .map_err(|e| Error::io("server tls handshake", e))?;
        acceptor.mark_security_upgrade_as_done();
        let mut framed = LocalFramed::new(tls);

        if acceptor.should_perform_credssp() {
            self.credssp(&mut framed, &mut acceptor).await?;
        }

        loop {
            if let Some(result) = acceptor.get_result() {
                log::info!("Demo server: client connected");
                let settings = SessionSettings {
                    desktop: self.config.desktop,
                    animate: self.config.animate,
                    draw_during_reactivation: self.config.draw_during_reactivation,
                    user_name: self.config.username.clone(),
                };
                return Ok(Connection {
                    framed,
                    result,
                    acceptor,
                    settings,
                });
            }
            drive_step(&mut framed, &mut acceptor, &mut buf, "server activation").await?;
        }
    }

    /// The server side of CredSSP, with NTLM against the configured user.
    async fn credssp(&self, framed: &mut LocalFramed<ServerStream>, acceptor: &mut Acceptor) -> Result<(), Error> {
        let nla_error = |e: ironrdp_connector::ConnectorError| {
            Error::new(ErrorKind::Connector, "server nla")
                .with_detail(e.to_string())
                .with_source(e)
        };
        let username = Username::new(&self.config.username, None)
            .map_err(|e| Error::new(ErrorKind::Connector, "server nla").with_source(e))?;
        let identity = AuthIdentity {
            username,
            password: self.config.password.clone().into(),
        };
        let mut sequence = CredsspSequence::init(
            &identity,
            ServerName::new("async-rdp-demo"),
            self.public_key.clone(),
            None,
        )
        .map_err(nla_error)?;

        let mut buf = WriteBuf::new();
        let outcome = loop {
            let hint = match sequence.next_pdu_hint() {
                Ok(Some(hint)) => hint,
                Ok(None) => break Ok(()),
                Err(e) => break Err(nla_error(e)),
            };
            let pdu = framed
                .read_by_hint(hint)
                .await
                .map_err(|e| e.in_context("server nla"))?;
            let Some(request) = sequence.decode_client_message(&pdu).map_err(nla_error)? else {
                break Ok(());
            };
            let result = {
                let mut generator = sequence.process_ts_request(request);
                let mut state = generator.start();
                loop {
                    match state {
                        // NTLM never asks for the network; refuse if something else does.
                        GeneratorState::Suspended(_) => {
                            state = generator.resume(Err(ironrdp_connector::sspi::Error::new(
                                ironrdp_connector::sspi::ErrorKind::NoAuthenticatingAuthority,
                                "the demo server has no network client",
                            )))
                        }
                        GeneratorState::Completed(result) => break result,
                    }
                }
            };
            let result: Result<ServerState, ServerError> = result;
            buf.clear();
            let (written, _identity) = sequence.handle_process_result(result, &mut buf).map_err(nla_error)?;
            if let Some(len) = written.size() {
                framed.write_all(&buf.filled()[..len]).await?;
            }
        };

        // HYBRID_EX: tell the client how authentication went ([MS-CSSP] 2.2.3.2).
        let state = ironrdp_connector::Sequence::state(acceptor);
        if let Some(ironrdp_acceptor::AcceptorState::Credssp { protocol, .. }) =
            ironrdp_connector::state_downcast::<ironrdp_acceptor::AcceptorState>(state)
        {
            if protocol.contains(SecurityProtocol::HYBRID_EX) {
                let reply = if outcome.is_ok() {
                    EarlyUserAuthResult::Success
                } else {
                    EarlyUserAuthResult::AccessDenied
                };
                let mut out = Vec::new();
                reply.to_buffer(&mut out).map_err(|e| Error::io("server nla", e))?;
                framed.write_all(&out).await?;
            }
        }
        outcome?;
        acceptor.mark_credssp_as_done();
        Ok(())
    }
}

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`.
fn self_signed() -> io::Result<Identity> {
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(io::Error::other)?;
    let cert = params.self_signed(&key).map_err(io::Error::other)?;
    Ok(Identity::new(
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

/// The capability sets the demo server announces: fast-path output, 32 bpp, the desktop
/// size (resizable), fast-path and Unicode input.
fn capabilities(desktop: DesktopSize) -> Vec<CapabilitySet> {
    vec![
        CapabilitySet::General(caps::General {
            extra_flags: caps::GeneralExtraFlags::FASTPATH_OUTPUT_SUPPORTED,
            refresh_rect_support: true,
            suppress_output_support: true,
            ..Default::default()
        }),
        CapabilitySet::Bitmap(caps::Bitmap {
            pref_bits_per_pix: 32,
            desktop_width: desktop.width,
            desktop_height: desktop.height,
            desktop_resize_flag: true,
            drawing_flags: caps::BitmapDrawingFlags::empty(),
        }),
        CapabilitySet::Order(caps::Order::new(
            caps::OrderFlags::empty(),
            caps::OrderSupportExFlags::empty(),
            2048,
            224,
        )),
        CapabilitySet::Pointer(caps::Pointer {
            color_pointer_cache_size: 32,
            pointer_cache_size: 32,
        }),
        CapabilitySet::Input(caps::Input {
            input_flags: caps::InputFlags::SCANCODES
                | caps::InputFlags::MOUSEX
                | caps::InputFlags::UNICODE
                | caps::InputFlags::FASTPATH_INPUT
                | caps::InputFlags::FASTPATH_INPUT_2,
            keyboard_layout: 0,
            keyboard_type: None,
            keyboard_subtype: 0,
            keyboard_function_key: 12,
            keyboard_ime_filename: String::new(),
        }),
        CapabilitySet::VirtualChannel(caps::VirtualChannel {
            flags: caps::VirtualChannelFlags::NO_COMPRESSION,
            chunk_size: None,
        }),
        CapabilitySet::MultiFragmentUpdate(caps::MultifragmentUpdate {
            max_request_size: 8 * 1024 * 1024,
        }),
    ]
}
