//! `tls::upgrade` against a real rustls server on loopback.
//!
//! Every server listens on 127.0.0.1 with an ephemeral port. Client and server run joined on the
//! test's one task, and everything that could wait forever is bounded by a timeout, so a broken
//! upgrade fails the test instead of hanging it.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_rdp::framing::{LocalFramed, Prefixed};
use async_rdp::tls;
use async_rdp::ErrorKind;
use async_rdp_demo_server::testing::{pinned, TestResult};
use async_std::net::{TcpListener, TcpStream};
use bytes::BytesMut;
use futures::future::join;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::{TlsAcceptor, TlsConnector};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, ServerConfig, SupportedProtocolVersion};

const LOOPBACK: &str = "127.0.0.1:0";
const SERVER_NAME: &str = "127.0.0.1";
const ALL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// How long anything that should finish promptly on loopback may take.
const PROMPT: Duration = Duration::from_secs(10);
/// How long to wait for something that is expected NOT to happen.
const SHORT: Duration = Duration::from_secs(2);

/// An X.224 Connection Request in its TPKT frame, asking for TLS (PROTOCOL_SSL).
const X224_CONNECTION_REQUEST: [u8; 19] = [
    0x03, 0x00, 0x00, 0x13, // TPKT: version 3, length 19
    0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, // X.224 CR TPDU
    0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, // RDP_NEG_REQ, requestedProtocols = SSL
];

/// A self-signed certificate for 127.0.0.1 and its ECDSA P-256 key.
struct Identity {
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    /// The uncompressed EC point: what the certificate's SubjectPublicKey BIT STRING holds.
    public_key_raw: Vec<u8>,
}

impl Identity {
    fn generate() -> Result<Self, rcgen::Error> {
        let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let certificate = CertificateParams::new(vec![SERVER_NAME.to_owned()])?.self_signed(&key_pair)?;
        Ok(Self {
            certificate: certificate.der().clone(),
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
            public_key_raw: key_pair.public_key_raw().to_vec(),
        })
    }

    /// Trusts this certificate and no other.
    fn verifier(&self) -> Arc<dyn ServerCertVerifier> {
        pinned(&self.certificate)
            .verifier(&async_rdp::Target::new("127.0.0.1", 3389))
            .expect("a pinned verifier")
    }
}

fn server_config(identity: &Identity, versions: &[&'static SupportedProtocolVersion]) -> TestResult<ServerConfig> {
    let config = ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(
            vec![identity.certificate.clone()],
            PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        )?;
    Ok(config)
}

fn acceptor(identity: &Identity, versions: &[&'static SupportedProtocolVersion]) -> TestResult<TlsAcceptor> {
    Ok(TlsAcceptor::from(Arc::new(server_config(identity, versions)?)))
}

async fn listen() -> io::Result<(TcpListener, std::net::SocketAddr)> {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Runs `future` for at most `limit`, turning a timeout into an error that says what hung.
async fn bounded<F: Future>(limit: Duration, what: &str, future: F) -> io::Result<F::Output> {
    async_std::future::timeout(limit, future).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} did not finish within {limit:?}"),
        )
    })
}

/// A deterministic payload, different for each `seed`.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Client side of an application exchange: send `request`, then read `reply_len` bytes.
async fn client_exchange<S>(stream: &mut S, request: &[u8], reply_len: usize) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut reply = vec![0; reply_len];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

/// Server side of an application exchange: read `request_len` bytes, then send `reply`.
async fn server_exchange<S>(stream: &mut S, request_len: usize, reply: &[u8]) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = vec![0; request_len];
    stream.read_exact(&mut request).await?;
    stream.write_all(reply).await?;
    stream.flush().await?;
    Ok(request)
}

#[async_std::test]
async fn upgrade_returns_certificate_and_public_key() -> TestResult {
    let identity = Identity::generate()?;
    let acceptor = acceptor(&identity, ALL_VERSIONS)?;
    let (listener, addr) = listen().await?;
    // Larger than one TLS record each way.
    let request = payload(40_000, 1);
    let reply = payload(70_000, 2);

    let server = async {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        server_exchange(&mut tls, request.len(), &reply).await
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let framed = LocalFramed::new(tcp);
        let mut upgraded = tls::upgrade(framed, SERVER_NAME, identity.verifier()).await?;
        let got = client_exchange(&mut upgraded.stream, &request, reply.len()).await?;
        TestResult::Ok((upgraded.server_certificate, upgraded.server_public_key, got))
    };
    let (server, client) = bounded(PROMPT, "upgrade and exchange", join(server, client)).await?;
    let (certificate, public_key, got_reply) = client?;
    let got_request = server?;

    assert_eq!(
        certificate, identity.certificate,
        "server_certificate is the DER served"
    );
    assert_eq!(identity.public_key_raw.len(), 65, "an uncompressed P-256 point");
    assert_eq!(identity.public_key_raw[0], 0x04, "an uncompressed P-256 point");
    assert_eq!(
        public_key, identity.public_key_raw,
        "server_public_key is the SubjectPublicKey"
    );
    assert_eq!(
        tls::subject_public_key(&certificate)?,
        identity.public_key_raw,
        "subject_public_key agrees"
    );
    assert!(got_request == request, "server received the client's bytes intact");
    assert!(got_reply == reply, "client received the server's bytes intact");
    Ok(())
}

/// The server half of the pipelined case: waits until the X.224 Connection Request and the whole
/// first TLS record (the ClientHello) have both arrived, so that one read of the `Framed` takes
/// both. Returns the number of bytes of that record.
async fn wait_for_request_and_client_hello(tcp: &TcpStream) -> io::Result<usize> {
    let header = X224_CONNECTION_REQUEST.len();
    let mut buf = vec![0; 64 * 1024];
    for _ in 0..500 {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed"));
        }
        if n >= header + 5 {
            let record = &buf[header..n];
            if record[0] != 0x16 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "expected a TLS handshake record after the request, got {:02x?}",
                        &record[..5]
                    ),
                ));
            }
            let record_len = 5 + usize::from(u16::from_be_bytes([record[3], record[4]]));
            if record.len() >= record_len {
                return Ok(record_len);
            }
        }
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the request and the ClientHello did not both arrive",
    ))
}

/// What the server side of the pipelined scenario saw.
struct PipelinedServer {
    request: Vec<u8>,
    leftover: Vec<u8>,
    client_hello_len: usize,
    /// The handshake over the replaying stream and the exchange after it.
    tls: TestResult<Vec<u8>>,
}

/// A client pipelines an X.224 Connection Request with its ClientHello; the server reads the
/// request through a `Framed`, then accepts TLS over the stream, replaying what the `Framed`
/// read ahead if `replay` is set, or dropping it if not.
async fn pipelined_request_and_client_hello(replay: bool) -> TestResult<(PipelinedServer, TestResult<Vec<u8>>)> {
    let identity = Identity::generate()?;
    let acceptor = acceptor(&identity, ALL_VERSIONS)?;
    let connector = TlsConnector::from(Arc::new(tls::client_config(identity.verifier())?));
    let (listener, addr) = listen().await?;
    let request = payload(3000, 3);
    let reply = payload(5000, 4);
    let tls_limit = if replay { PROMPT } else { SHORT };

    let server = async {
        let (tcp, _) = listener.accept().await?;
        let client_hello_len = wait_for_request_and_client_hello(&tcp).await?;
        let mut framed = LocalFramed::new(tcp);
        let frame = framed.read_by_hint(&async_rdp::ironrdp_pdu::X224_HINT).await?;
        let leftover = framed.peek().to_vec();
        let (tcp, buffered) = framed.into_inner();
        let prefix = if replay { buffered } else { BytesMut::new() };
        let tls = bounded(tls_limit, "server TLS accept and exchange", async {
            let mut tls = acceptor.accept(Prefixed::new(tcp, prefix)).await?;
            assert_eq!(
                tls.get_ref().0.pending_prefix(),
                b"",
                "the handshake consumed the whole replayed prefix"
            );
            let got = server_exchange(&mut tls, request.len(), &reply).await?;
            TestResult::Ok(got)
        })
        .await;
        // Dropping the stream here (also after a timeout) ends the client's wait.
        TestResult::Ok(PipelinedServer {
            request: frame.to_vec(),
            leftover,
            client_hello_len,
            tls: tls.map_err(Into::into).and_then(|r| r),
        })
    };
    let client = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(&X224_CONNECTION_REQUEST).await?;
        tcp.flush().await?;
        let mut tls = connector.connect(ServerName::try_from(SERVER_NAME)?, tcp).await?;
        let got = client_exchange(&mut tls, &request, reply.len()).await?;
        TestResult::Ok(got)
    };
    let (server, client) = bounded(2 * PROMPT, "pipelined scenario", join(server, client)).await?;
    let server = server?;
    assert_eq!(
        server.request, X224_CONNECTION_REQUEST,
        "the Framed returned exactly the request"
    );
    assert!(!server.leftover.is_empty(), "the Framed read the ClientHello ahead");
    assert_eq!(
        server.leftover.len(),
        server.client_hello_len,
        "leftover is the whole ClientHello record"
    );
    assert_eq!(server.leftover[0], 0x16, "leftover is a TLS handshake record");
    if let Ok(got) = &server.tls {
        assert!(*got == request, "server received the client's bytes intact");
    }
    let client = client.map(|got| {
        assert!(got == reply, "client received the server's bytes intact");
        got
    });
    Ok((server, client))
}

#[async_std::test]
async fn server_side_leftover_is_replayed_into_tls() -> TestResult {
    let (server, client) = pipelined_request_and_client_hello(true).await?;
    if let Err(e) = &server.tls {
        return Err(format!("server TLS over the replayed leftover failed: {e}").into());
    }
    if let Err(e) = &client {
        return Err(format!("client side failed: {e}").into());
    }

    // Control: the same bytes, with the leftover dropped instead of replayed, must not work.
    let (server, client) = pipelined_request_and_client_hello(false).await?;
    assert!(
        server.tls.is_err(),
        "TLS accepted without the ClientHello the Framed had read ahead"
    );
    assert!(
        client.is_err(),
        "client handshake succeeded although the server lost its ClientHello"
    );
    Ok(())
}

#[async_std::test]
async fn leftover_garbage_is_never_plaintext() -> TestResult {
    const GARBAGE: &[u8] = b"Hello, this is plaintext and not a TLS record at all\r\n";
    let identity = Identity::generate()?;
    let (listener, addr) = listen().await?;

    let server = async {
        let (mut tcp, _) = listener.accept().await?;
        tcp.write_all(GARBAGE).await?;
        tcp.flush().await?;
        // Keep the connection open: if the garbage were not replayed into TLS, the client would
        // wait here for a ServerHello that never comes (and the test would time out).
        let mut received = Vec::new();
        // A reset once the client gives up is fine; what it sent before matters.
        let _ = tcp.read_to_end(&mut received).await;
        io::Result::Ok(received)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut framed = LocalFramed::new(tcp);
        while framed.peek().len() < GARBAGE.len() {
            framed.fill_buf().await?;
        }
        assert_eq!(framed.peek(), GARBAGE, "the Framed buffered the server's bytes");
        let result = bounded(
            SHORT,
            "upgrade after garbage",
            tls::upgrade(framed, SERVER_NAME, identity.verifier()),
        )
        .await;
        TestResult::Ok(result)
    };
    let (server, client) = bounded(PROMPT, "garbage scenario", join(server, client)).await?;
    let received = server?;
    match client?? {
        Ok(_) => return Err("TLS upgrade succeeded over plaintext garbage".into()),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
            println!("upgrade over garbage failed as expected: {}", async_rdp::report(&e));
        }
    }
    assert_eq!(received.first(), Some(&0x16), "the client did start a TLS handshake");
    Ok(())
}

#[async_std::test]
async fn wrong_certificate_is_refused() -> TestResult {
    let trusted = Identity::generate()?;
    let presented = Identity::generate()?;
    let acceptor = acceptor(&presented, ALL_VERSIONS)?;
    let (listener, addr) = listen().await?;

    let server = async {
        let (tcp, _) = listener.accept().await?;
        acceptor.accept(tcp).await.map(drop)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let result = tls::upgrade(LocalFramed::new(tcp), SERVER_NAME, trusted.verifier()).await;
        io::Result::Ok(result)
    };
    let (server, client) = bounded(PROMPT, "wrong certificate scenario", join(server, client)).await?;
    match client? {
        Ok(_) => return Err("the upgrade accepted a certificate other than the trusted one".into()),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
            assert!(e.to_string().contains("certificate"), "{e}");
            println!("refused as expected: {e}");
        }
    }
    assert!(server.is_err(), "the server should see the handshake fail too");
    Ok(())
}

#[async_std::test]
async fn tls12_and_tls13_both_work() -> TestResult {
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let identity = Identity::generate()?;
        let acceptor = acceptor(&identity, &[version])?;
        let (listener, addr) = listen().await?;
        let request = payload(1000, 5);
        let reply = payload(2000, 6);

        let server = async {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let version = tls.get_ref().1.protocol_version();
            let got = server_exchange(&mut tls, request.len(), &reply).await?;
            io::Result::Ok((version, got))
        };
        let client = async {
            let tcp = TcpStream::connect(addr).await?;
            let mut upgraded = tls::upgrade(LocalFramed::new(tcp), SERVER_NAME, identity.verifier()).await?;
            let version = upgraded.stream.get_ref().1.protocol_version();
            let got = client_exchange(&mut upgraded.stream, &request, reply.len()).await?;
            TestResult::Ok((version, upgraded.server_public_key, got))
        };
        let (server, client) = bounded(PROMPT, "version scenario", join(server, client)).await?;
        let (server_version, got_request) = server?;
        let (client_version, public_key, got_reply) = client.map_err(|e| format!("{expected:?}: {e}"))?;
        assert_eq!(client_version, Some(expected));
        assert_eq!(server_version, Some(expected));
        assert_eq!(public_key, identity.public_key_raw, "{expected:?}");
        assert!(got_request == request && got_reply == reply, "{expected:?}: exchange");
    }
    Ok(())
}

/// Connects once with `config` and returns how the server and the client saw the handshake.
async fn handshake_kinds(
    listener: &TcpListener,
    acceptor: &TlsAcceptor,
    config: &Arc<ClientConfig>,
) -> TestResult<(Option<HandshakeKind>, Option<HandshakeKind>)> {
    let addr = listener.local_addr()?;
    let server = async {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let kind = tls.get_ref().1.handshake_kind();
        server_exchange(&mut tls, 100, b"reply").await?;
        // The client reads up to the close_notify, past any session tickets.
        tls.close().await?;
        io::Result::Ok(kind)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut upgraded = tls::upgrade_with_config(LocalFramed::new(tcp), SERVER_NAME, config.clone()).await?;
        let kind = upgraded.stream.get_ref().1.handshake_kind();
        // Reading the reply also processes the TLS 1.3 NewSessionTickets sent before it.
        client_exchange(&mut upgraded.stream, &[7; 100], 5).await?;
        let mut rest = Vec::new();
        upgraded.stream.read_to_end(&mut rest).await?;
        TestResult::Ok(kind)
    };
    let (server, client) = bounded(PROMPT, "handshake", join(server, client)).await?;
    Ok((server?, client?))
}

#[async_std::test]
async fn resumption_is_disabled() -> TestResult {
    let identity = Identity::generate()?;
    let rdp_config = Arc::new(tls::client_config(identity.verifier())?);
    // Control: the same configuration with resumption turned back on, to prove the server
    // below does resume sessions when the client lets it.
    let mut resuming = tls::client_config(identity.verifier())?;
    resuming.resumption = rustls::client::Resumption::default();
    let resuming = Arc::new(resuming);

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        for tickets in [false, true] {
            let mut config = server_config(&identity, &[version])?;
            config.session_storage = rustls::server::ServerSessionMemoryCache::new(64);
            if tickets {
                config.ticketer = rustls::crypto::ring::Ticketer::new()?;
            }
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let (listener, _) = listen().await?;
            let case = format!(
                "{:?}, {}",
                version.version,
                if tickets { "tickets" } else { "stateful cache" }
            );

            let first = handshake_kinds(&listener, &acceptor, &resuming).await?;
            assert_eq!(first, (Some(HandshakeKind::Full), Some(HandshakeKind::Full)), "{case}");
            let second = handshake_kinds(&listener, &acceptor, &resuming).await?;
            assert_eq!(
                second,
                (Some(HandshakeKind::Resumed), Some(HandshakeKind::Resumed)),
                "{case}: control, a client with resumption on should resume"
            );

            for attempt in 0..2 {
                let kinds = handshake_kinds(&listener, &acceptor, &rdp_config).await?;
                assert_eq!(
                    kinds,
                    (Some(HandshakeKind::Full), Some(HandshakeKind::Full)),
                    "{case}: connection {attempt} with client_config must be a full handshake"
                );
            }
        }
    }
    Ok(())
}

#[async_std::test]
async fn peer_closing_during_handshake_is_an_error() -> TestResult {
    let identity = Identity::generate()?;
    let (listener, addr) = listen().await?;

    let server = async {
        let (tcp, _) = listener.accept().await?;
        drop(tcp);
        io::Result::Ok(())
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let result = tls::upgrade(LocalFramed::new(tcp), SERVER_NAME, identity.verifier()).await;
        io::Result::Ok(result)
    };
    let (server, client) = bounded(PROMPT, "closing peer scenario", join(server, client)).await?;
    server?;
    match client? {
        Ok(_) => Err("the upgrade succeeded against a peer that closed".into()),
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::Tls),
                "unexpected kind {:?}: {e}",
                e.kind()
            );
            println!("failed as expected: {}", async_rdp::report(&e));
            Ok(())
        }
    }
}
