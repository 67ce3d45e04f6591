//! The password stays secret: it never appears in any log record of the client at any level,
//! nor in what the client's values print, and a man in the middle that the client was made to
//! trust still cannot get through NLA.
//!
//! Client, demo server and (for the man in the middle) a TLS-terminating proxy all run on one
//! thread, over real loopback TCP and real TLS. The logger is global, so the tests of this file
//! take turns ([`SERIAL`]).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_rdp::framing::{LocalFramed, Prefixed};
use async_rdp::tls;
use async_rdp::trust::Fingerprint;
use async_rdp::{connect, ClientConfig, ErrorKind, Event, MouseButton, Trust};
use async_rdp_demo_server::testing::{block_on, pinned, wait_for_event, Serving, TestResult};
use async_rdp_demo_server::{Command, Config, DemoServer, Security, ServerEvent};
use async_std::net::{TcpListener, TcpStream};
use futures::channel::mpsc::{unbounded, UnboundedReceiver};
use futures::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use futures_rustls::{TlsAcceptor, TlsConnector};
use ironrdp_connector::DesktopSize;
use log::Level;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// The password every test hands the client: distinctive, so that any copy of it is found.
const PASSWORD: &str = "Sekr1t-Passw0rd-xyzzy";

/// The tests of this file take turns: the logger and its records are global.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a test body may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

// --- Log capture, with each record attributed to the side of the connection that logged it ---

/// Which party's code was running when a record was logged. Everything runs on one thread,
/// so the party is whichever future is being polled: the demo server's and the proxy's are
/// wrapped in [`on_side`]; everything else (the client, the test itself) counts as the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
    Proxy,
}

thread_local! {
    static SIDE: Cell<Side> = const { Cell::new(Side::Client) };
}

/// Polls `future` with [`SIDE`] set to `side`, so that what it logs is attributed to it.
fn on_side<F: Future>(side: Side, future: F) -> impl Future<Output = F::Output> {
    let mut future = Box::pin(future);
    futures::future::poll_fn(move |cx| {
        let before = SIDE.with(|s| s.replace(side));
        let polled = future.as_mut().poll(cx);
        SIDE.with(|s| s.set(before));
        polled
    })
}

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    side: Side,
    message: String,
}

static RECORDS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let captured = Captured {
            level: record.level(),
            target: record.target().to_owned(),
            side: SIDE.with(Cell::get),
            // IronRDP and sspi log through `tracing`, whose `log` feature puts the event's
            // fields into the message.
            message: record.args().to_string(),
        };
        RECORDS.lock().unwrap_or_else(|p| p.into_inner()).push(captured);
    }

    fn flush(&self) {}
}

/// Captures every record of every target at every level, from now on (forgetting anything
/// captured before).
fn capture_everything() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("another logger is installed");
    });
    take_records();
    log::set_max_level(log::LevelFilter::Trace);
}

fn take_records() -> Vec<Captured> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The ways `secret` could show up in text: as itself, and its UTF-16LE encoding (what RDP
/// sends) or UTF-8 bytes in the usual renderings of a byte dump.
fn renderings(secret: &str) -> Vec<(&'static str, String)> {
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf8 = secret.as_bytes().to_vec();
    let join = |bytes: &[u8], f: fn(&u8) -> String, sep: &str| bytes.iter().map(f).collect::<Vec<_>>().join(sep);
    let mut out = vec![("plain text", secret.to_owned())];
    for (name, bytes) in [("UTF-16LE", &utf16), ("UTF-8", &utf8)] {
        // `{:02x?}` / `{:02X?}` of a byte slice, without the brackets so that a longer dump
        // that contains it matches too.
        out.push((name, join(bytes, |b| format!("{b:02x}"), ", ")));
        out.push((name, join(bytes, |b| format!("{b:02X}"), ", ")));
        // `{:?}` of a byte slice (decimal).
        out.push((name, join(bytes, |b| format!("{b}"), ", ")));
        // Hex without separators, and hexdump-style with spaces.
        out.push((name, join(bytes, |b| format!("{b:02x}"), "")));
        out.push((name, join(bytes, |b| format!("{b:02X}"), "")));
        out.push((name, join(bytes, |b| format!("{b:02x}"), " ")));
        out.push((name, join(bytes, |b| format!("{b:02X}"), " ")));
    }
    out
}

/// Where `text` contains one of the `renderings` of a secret: which one, and an excerpt
/// around it.
fn find_in(text: &str, renderings: &[(&'static str, String)]) -> Option<(&'static str, String)> {
    renderings.iter().find_map(|(name, rendering)| {
        let at = text.find(rendering.as_str())?;
        let start = text.floor_char_boundary(at.saturating_sub(80));
        let end = text.ceil_char_boundary((at + rendering.len() + 40).min(text.len()));
        Some((*name, format!("…{}…", &text[start..end])))
    })
}

/// One line per record that shows `secret`.
fn leaks(records: &[Captured], secret: &str) -> Vec<String> {
    let renderings = renderings(secret);
    records
        .iter()
        .filter_map(|r| {
            let (how, excerpt) = find_in(&r.message, &renderings)?;
            Some(format!(
                "{:?} side, {} [{}], {how}: {excerpt}",
                r.side, r.level, r.target
            ))
        })
        .collect()
}

// --- Running the demo server next to the test ---

/// How the server's side ended (`None`: still serving after the client was done).
type ServerEnd = Option<async_rdp::Result<()>>;

/// Runs `client` (given the server's event reports) against `server` on this thread; then
/// gives the server 10 s to finish.
async fn against<F, Fut, T>(server: &DemoServer, client: F) -> TestResult<(T, ServerEnd)>
where
    F: FnOnce(UnboundedReceiver<ServerEvent>) -> Fut,
    Fut: Future<Output = T>,
{
    let (events, reported) = unbounded();
    let (_commands, received) = unbounded::<Command>();
    let mut serving = Serving::new(on_side(Side::Server, server.serve_one(events, received)));
    let client_end = serving.alongside(client(reported)).await;
    let server_end = async_std::future::timeout(Duration::from_secs(10), serving.finish())
        .await
        .ok();
    Ok((client_end, server_end))
}

fn server_config(security: Security, password: &str) -> Config {
    Config {
        security,
        password: password.to_owned(),
        desktop: DesktopSize {
            width: 640,
            height: 400,
        },
        ..Config::default()
    }
}

fn client_config(server: &DemoServer) -> ClientConfig {
    ClientConfig::new(&server.config().username, PASSWORD)
        .with_desktop_size(640, 400)
        .with_trust(pinned(server.certificate()))
}

/// A whole session: connect, a few graphics updates, some input (seen by the server), a
/// graceful shutdown. Returns the session's `Debug` text.
async fn full_session(
    addr: &str,
    config: ClientConfig,
    mut events: UnboundedReceiver<ServerEvent>,
) -> TestResult<String> {
    let mut session = connect(addr, config).await?;
    let mut graphics = 0;
    while graphics < 3 {
        match async_std::future::timeout(Duration::from_secs(10), session.next_event()).await?? {
            Event::Graphics(_) => graphics += 1,
            Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
            _ => {}
        }
    }
    session.key(async_rdp::Scancode::new(0x1E), async_rdp::KeyState::Down)?;
    session.key(async_rdp::Scancode::new(0x1E), async_rdp::KeyState::Up)?;
    session.key_unicode('x', async_rdp::KeyState::Down)?;
    session.key_unicode('x', async_rdp::KeyState::Up)?;
    session.mouse_move(10, 20)?;
    session.mouse_button(MouseButton::Left, async_rdp::ButtonState::Down)?;
    session.mouse_button(MouseButton::Left, async_rdp::ButtonState::Up)?;
    session.flush().await?;
    wait_for_event(&mut events, |e| {
        matches!(e, ServerEvent::MouseButton { pressed: false, .. }).then_some(())
    })
    .await?;
    let debug = format!("{session:?}");
    session.shutdown(Duration::from_secs(5)).await?;
    wait_for_event(&mut events, |e| matches!(e, ServerEvent::Disconnected).then_some(())).await?;
    Ok(debug)
}

/// What the client printed and logged over three connections, all with [`PASSWORD`]: a whole
/// NLA session (where the password is used for NTLM and sent encrypted in TSCredentials), a
/// whole TLS-only session (where it travels in the Client Info PDU), and an NLA attempt the
/// server refuses (it expects another password).
struct Observed {
    /// `(what, text)`: the `Debug`/`Display` output of the client's values.
    printed: Vec<(&'static str, String)>,
    /// Every log record of every party, at every level.
    records: Vec<Captured>,
}

fn observe_sessions() -> TestResult<Observed> {
    capture_everything();
    let mut printed = Vec::new();
    let outcome = block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(server_config(Security::Nla, PASSWORD)).await?;
        let addr = server.local_addr()?.to_string();
        let config = client_config(&server);
        printed.push(("ClientConfig {:?}", format!("{config:?}")));
        printed.push(("Trust {:?}", format!("{:?}", config.trust())));
        let (session, _) = against(&server, |events| full_session(&addr, config, events)).await?;
        printed.push(("NLA Session {:?}", session?));

        let server = DemoServer::bind(server_config(Security::Tls, PASSWORD)).await?;
        let addr = server.local_addr()?.to_string();
        let config = client_config(&server).with_security(async_rdp::Security::Tls);
        printed.push(("TLS-only ClientConfig {:?}", format!("{config:?}")));
        let (session, _) = against(&server, |events| full_session(&addr, config, events)).await?;
        printed.push(("TLS Session {:?}", session?));

        let server = DemoServer::bind(server_config(Security::Nla, "Another-Passw0rd")).await?;
        let addr = server.local_addr()?.to_string();
        let config = client_config(&server);
        let (result, _) = against(&server, |_| connect(&addr, config)).await?;
        let err = result.err().ok_or("connected with a wrong password")?;
        assert_eq!(err.kind(), ErrorKind::Authentication, "{}", async_rdp::report(&err));
        printed.push(("wrong password: Display", err.to_string()));
        printed.push(("wrong password: Debug", format!("{err:?}")));
        printed.push(("wrong password: report", async_rdp::report(&err)));
        Ok(())
    });
    log::set_max_level(log::LevelFilter::Off);
    let records = take_records();
    outcome?;
    assert!(
        records
            .iter()
            .any(|r| r.side == Side::Client && r.level == Level::Trace),
        "no trace record captured from the client: the test would prove nothing"
    );
    assert!(
        records.iter().any(|r| r.side == Side::Server),
        "no record attributed to the server: the attribution is broken"
    );
    Ok(Observed { printed, records })
}

/// Whether a record is one of sspi's known leaks of the client's TSCredentials (sspi 0.23.0,
/// client side, DEBUG and TRACE): `#[instrument(ret)]` on `write_ts_credentials` and
/// `write_password_credentials` (credssp/ts_request/mod.rs:293 and :320) logs the DER
/// TSCredentials they return, password in UTF-16LE included; `#[instrument]` on
/// `encrypt_message` (credssp/mod.rs:981, ntlm/mod.rs:510) logs the buffer it is about to
/// encrypt, which is that same DER, as hex. See
/// [`the_password_never_appears_in_any_log_record`].
fn known_sspi_leak(record: &Captured) -> bool {
    record.side == Side::Client
        && ["sspi::credssp::ts_request", "sspi::credssp", "sspi::ntlm"].contains(&record.target.as_str())
        && record.level >= Level::Debug
}

/// The password never shows in what the client prints, nor in any log record except sspi's
/// known DEBUG/TRACE leaks (filtered out here, checked by the ignored test below): not from
/// async-rdp, IronRDP (connector, session, PDUs), sspi at INFO and above, rustls, nor from the
/// demo server's side (it was checked too and is clean, so nothing of it is filtered).
#[test]
fn the_password_never_appears_in_logs_or_debug_output() -> TestResult {
    let _turn = serial();
    let observed = observe_sessions()?;
    let renderings = renderings(PASSWORD);
    for (what, text) in &observed.printed {
        if let Some((how, excerpt)) = find_in(text, &renderings) {
            panic!("{what} shows the password ({how}): {excerpt}");
        }
    }
    let records: Vec<Captured> = observed.records.into_iter().filter(|r| !known_sspi_leak(r)).collect();
    let found = leaks(&records, PASSWORD);
    assert!(found.is_empty(), "password in the logs:\n{}", found.join("\n"));
    Ok(())
}

/// The whole promise: no log record of the client at any level shows the password.
// sspi 0.23.0 logs the client's plaintext TSCredentials (the password in UTF-16LE) at
// DEBUG/TRACE under sspi::credssp::ts_request, sspi::credssp and sspi::ntlm; async-rdp's default
// feature `redact-dependency-logs` caps tracing at INFO so those records never exist. This test
// has no filter at all, so it fails if that cap is ever lost.
#[cfg(feature = "redact-dependency-logs")]
#[test]
fn the_password_never_appears_in_any_log_record() -> TestResult {
    let _turn = serial();
    let observed = observe_sessions()?;
    let found = leaks(&observed.records, PASSWORD);
    assert!(found.is_empty(), "password in the logs:\n{}", found.join("\n"));
    Ok(())
}

// --- A man in the middle that the client trusts ---

/// A self-signed certificate and key for the proxy, made with rcgen.
fn proxy_identity() -> TestResult<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?.self_signed(&key)?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

/// The plaintext the proxy relayed from the client to the server.
type Seen = Rc<RefCell<Vec<u8>>>;

/// Copies `from` to `to`, keeping a copy of every byte in `seen`, then closes `to`.
async fn relay_and_record(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, seen: &Seen) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.borrow_mut().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}

/// A TLS-terminating man in the middle for one connection: relays the X.224 Connection
/// Request and Confirm in plaintext (one TPKT frame each way), accepts TLS from the client
/// with its own certificate, opens TLS to the server (trusting the server's certificate by
/// pin), then copies the plaintext both ways.
async fn man_in_the_middle(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    server_addr: std::net::SocketAddr,
    server_certificate: CertificateDer<'static>,
    seen: Seen,
) -> TestResult {
    let (client_tcp, _) = listener.accept().await?;
    let server_tcp = TcpStream::connect(server_addr).await?;
    let mut from_client = LocalFramed::new(client_tcp);
    let mut to_server = LocalFramed::new(server_tcp);
    let (_, request) = from_client.read_pdu().await?;
    to_server.write_all(&request).await?;
    let (_, confirm) = to_server.read_pdu().await?;
    from_client.write_all(&confirm).await?;

    let (client_tcp, leftover) = from_client.into_inner();
    let client_tls = acceptor.accept(Prefixed::new(client_tcp, leftover)).await?;
    let (server_tcp, leftover) = to_server.into_inner();
    let verifier = pinned(&server_certificate).verifier(&"127.0.0.1".parse()?)?;
    let connector = TlsConnector::from(Arc::new(tls::client_config(verifier)?));
    let server_tls = connector
        .connect(ServerName::try_from("127.0.0.1")?, Prefixed::new(server_tcp, leftover))
        .await?;

    let (client_read, mut client_write) = client_tls.split();
    let (server_read, server_write) = server_tls.split();
    let upstream = relay_and_record(client_read, server_write, &seen);
    let downstream = async {
        let _ = futures::io::copy(server_read, &mut client_write).await;
        let _ = client_write.close().await;
    };
    futures::join!(upstream, downstream);
    Ok(())
}

/// How a connection through the man in the middle went.
struct ThroughProxy {
    /// The client's `connect` (on success, the session was then shut down gracefully).
    client: async_rdp::Result<()>,
    /// How the server's side ended.
    server: ServerEnd,
    /// Whether the server reported a connected session.
    server_connected: bool,
    /// The plaintext the proxy relayed from the client to the server.
    seen: Vec<u8>,
}

/// Connects to `server` through a man in the middle, with the configuration `config` makes
/// from the proxy's certificate fingerprint.
async fn through_proxy(
    server: &DemoServer,
    config: impl FnOnce(Fingerprint) -> ClientConfig,
) -> TestResult<ThroughProxy> {
    let (certificate, key) = proxy_identity()?;
    let config = config(Fingerprint::of(&certificate));
    let tls_config = rustls::ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?.to_string();
    let seen = Seen::default();
    let proxy = on_side(
        Side::Proxy,
        man_in_the_middle(
            listener,
            TlsAcceptor::from(Arc::new(tls_config)),
            server.local_addr()?,
            server.certificate().clone(),
            Rc::clone(&seen),
        ),
    );

    let ((client, proxy_end, reported), server_end) = against(server, |mut events| async move {
        let client = async {
            let mut session = connect(&proxy_addr, config).await?;
            session.shutdown(Duration::from_secs(5)).await
        };
        let (proxy_end, client) = futures::join!(async_std::future::timeout(Duration::from_secs(20), proxy), client);
        let mut reported = Vec::new();
        while let Ok(event) = events.try_recv() {
            reported.push(event);
        }
        (client, proxy_end, reported)
    })
    .await?;
    match proxy_end {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("the proxy failed: {e}").into()),
        Err(_) => return Err("the proxy never finished".into()),
    }
    let seen = seen.borrow().clone();
    Ok(ThroughProxy {
        client,
        server: server_end,
        server_connected: reported.iter().any(|e| matches!(e, ServerEvent::Connected { .. })),
        seen,
    })
}

/// Whether `bytes` contain `secret` as UTF-16LE (as RDP sends it) or UTF-8.
fn contains_secret(bytes: &[u8], secret: &str) -> bool {
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
    [utf16.as_slice(), secret.as_bytes()]
        .iter()
        .any(|needle| bytes.windows(needle.len()).any(|w| w == *needle))
}

#[test]
fn a_trusted_man_in_the_middle_cannot_pass_nla() -> TestResult {
    let _turn = serial();
    block_on(TEST_TIMEOUT, async {
        // NLA. The client is made to trust the proxy's certificate (a pin, as a careless user
        // would accept it); TLS to the proxy succeeds. But CredSSP binds the authentication to
        // the public key of the certificate the client verified, the proxy's: the server
        // compares it with its own key and refuses, before the client sends its credentials.
        let server = DemoServer::bind(server_config(Security::Nla, PASSWORD)).await?;
        let nla = through_proxy(&server, |proxy| {
            ClientConfig::new(&server.config().username, PASSWORD).with_trust(Trust::pinned([proxy]))
        })
        .await?;
        let err = nla
            .client
            .err()
            .ok_or("connected through a man in the middle with NLA")?;
        assert_eq!(err.phase(), Some(async_rdp::Phase::Nla), "{}", async_rdp::report(&err));
        match nla.server {
            Some(Err(e)) => assert_eq!(e.context(), "server nla", "{}", async_rdp::report(&e)),
            Some(Ok(())) => panic!("the server served a session through the man in the middle"),
            None => panic!("the server still serves the man in the middle"),
        }
        assert!(!nla.server_connected, "the server reported a session");
        // The proxy saw the NTLM exchange (which it could attack offline), but never the
        // password itself: TSCredentials are only sent after the server's key check.
        assert!(
            !nla.seen.is_empty(),
            "the proxy relayed nothing: the test proves nothing"
        );
        assert!(
            !contains_secret(&nla.seen, PASSWORD),
            "the proxy read the password with NLA"
        );

        // TLS only, same proxy: nothing binds the credentials to the server's key, so the
        // session goes through and the proxy reads the password in the Client Info PDU. This
        // is exactly why NLA matters when a certificate cannot be checked properly.
        let server = DemoServer::bind(server_config(Security::Tls, PASSWORD)).await?;
        let tls_only = through_proxy(&server, |proxy| {
            ClientConfig::new(&server.config().username, PASSWORD)
                .with_security(async_rdp::Security::Tls)
                .with_trust(Trust::pinned([proxy]))
        })
        .await?;
        if let Err(e) = &tls_only.client {
            panic!("TLS-only through the proxy failed: {}", async_rdp::report(e));
        }
        assert!(tls_only.server_connected, "the server reported no session");
        assert!(
            contains_secret(&tls_only.seen, PASSWORD),
            "the proxy did not see the password"
        );
        Ok(())
    })
}
