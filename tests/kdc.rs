//! `KdcClient` against loopback stand-ins for a KDC (TCP, UDP) and a KDC proxy (HTTP, HTTPS).
//!
//! Every stand-in listens on 127.0.0.1 only and checks the bytes it receives; a wrong byte
//! fails the test. Client and stand-in run joined on the test's one task.
#![cfg(feature = "kerberos")]

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_rdp::connector::kdc::KdcClient;
use async_rdp::connector::NetworkClient;
use async_rdp::ironrdp_connector::sspi::generator::NetworkRequest;
use async_rdp::ironrdp_connector::sspi::network_client::NetworkProtocol;
use async_rdp::ErrorKind;
use async_rdp_demo_server::testing::TestResult;
use async_std::net::{TcpListener, TcpStream, UdpSocket};
use futures::future::join;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::TlsAcceptor;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

const LOOPBACK: &str = "127.0.0.1:0";

/// A request the way sspi makes it.
fn request(protocol: NetworkProtocol, url: &str, data: &[u8]) -> TestResult<NetworkRequest> {
    Ok(NetworkRequest {
        protocol,
        url: url.parse()?,
        data: data.to_vec(),
    })
}

/// `message` with its 4-byte big-endian length prefix.
fn prefixed(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

/// Fails the test instead of hanging it if a stand-in or the client never finishes.
async fn bounded<T>(future: impl Future<Output = T>) -> io::Result<T> {
    async_std::future::timeout(Duration::from_secs(30), future)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "test did not finish within 30 s"))
}

/// Asserts that `result` is an error of `kind` and hands it back.
fn expect_error(result: async_rdp::Result<Vec<u8>>, kind: ErrorKind) -> async_rdp::Error {
    match result {
        Ok(reply) => panic!("expected a {kind:?} error, got a {}-byte reply", reply.len()),
        Err(error) => {
            assert_eq!(error.kind(), kind, "unexpected error: {}", async_rdp::report(&error));
            error
        }
    }
}

/// Reads until the peer closes, asserting it sends nothing more. A reset counts as closed: a
/// client that drops a reply it refused, unread, resets the connection.
async fn expect_eof(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<()> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte).await {
        Ok(n) => assert_eq!(n, 0, "the client sent bytes after its request"),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A TCP KDC stand-in's first step: accept one connection and check the prefixed request.
async fn accept_tcp_request(listener: &TcpListener, expected: &[u8]) -> io::Result<TcpStream> {
    let (mut stream, _) = listener.accept().await?;
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    assert_eq!(len + 4, expected.len(), "the length prefix does not match the request");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let mut received = prefix.to_vec();
    received.extend_from_slice(&body);
    assert_eq!(received, expected, "the KDC received other bytes than the request");
    Ok(stream)
}

#[async_std::test]
async fn tcp_round_trip_returns_prefix_and_reply() -> TestResult {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let as_req = prefixed(b"\x6a\x81\x10as-req body");
    let as_rep = prefixed(b"\x6b\x82\x01\x00as-rep body, somewhat longer than the request");

    let kdc = async {
        let mut stream = accept_tcp_request(&listener, &as_req).await?;
        stream.write_all(&as_rep).await?;
        expect_eof(&mut stream).await
    };
    let mut client = KdcClient::new();
    let req = request(NetworkProtocol::Tcp, &format!("tcp://127.0.0.1:{port}"), &as_req)?;
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    assert_eq!(reply?, as_rep);
    Ok(())
}

#[async_std::test]
async fn tcp_empty_reply_is_just_the_prefix() -> TestResult {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let as_req = prefixed(b"as-req");

    let kdc = async {
        let mut stream = accept_tcp_request(&listener, &as_req).await?;
        stream.write_all(&[0, 0, 0, 0]).await?;
        expect_eof(&mut stream).await
    };
    let mut client = KdcClient::new();
    let req = request(NetworkProtocol::Tcp, &format!("tcp://127.0.0.1:{port}"), &as_req)?;
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    assert_eq!(reply?, vec![0, 0, 0, 0]);
    Ok(())
}

#[async_std::test]
async fn tcp_huge_announced_length_is_refused_before_reading() -> TestResult {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let as_req = prefixed(b"as-req");

    let kdc = async {
        let mut stream = accept_tcp_request(&listener, &as_req).await?;
        // Announce 2 GiB and send none of it: a client that allocated and read would sit
        // here until its timeout instead of refusing at once.
        stream.write_all(&0x7fff_ffffu32.to_be_bytes()).await?;
        expect_eof(&mut stream).await
    };
    let mut client = KdcClient::new().with_timeout(Duration::from_secs(10));
    let req = request(NetworkProtocol::Tcp, &format!("tcp://127.0.0.1:{port}"), &as_req)?;
    let started = Instant::now();
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    let error = expect_error(reply, ErrorKind::FrameTooLarge);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusing took {:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("2147483647"), "{error}");
    Ok(())
}

#[async_std::test]
async fn tcp_reply_over_the_configured_bound_is_refused() -> TestResult {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let as_req = prefixed(b"as-req");

    let kdc = async {
        let mut stream = accept_tcp_request(&listener, &as_req).await?;
        stream.write_all(&prefixed(&[7u8; 65])).await?;
        expect_eof(&mut stream).await
    };
    let mut client = KdcClient::new().with_max_reply_size(64);
    let req = request(NetworkProtocol::Tcp, &format!("tcp://127.0.0.1:{port}"), &as_req)?;
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    expect_error(reply, ErrorKind::FrameTooLarge);
    Ok(())
}

#[async_std::test]
async fn tcp_silent_kdc_times_out() -> TestResult {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let as_req = prefixed(b"as-req");
    let timeout = Duration::from_millis(300);

    let kdc = async {
        let mut stream = accept_tcp_request(&listener, &as_req).await?;
        // Never answer; the client gives up and closes.
        expect_eof(&mut stream).await
    };
    let mut client = KdcClient::new().with_timeout(timeout);
    let req = request(NetworkProtocol::Tcp, &format!("tcp://127.0.0.1:{port}"), &as_req)?;
    let started = Instant::now();
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    let elapsed = started.elapsed();
    expect_error(reply, ErrorKind::Timeout);
    assert!(
        elapsed >= timeout,
        "gave up after {elapsed:?}, before the {timeout:?} timeout"
    );
    assert!(elapsed < Duration::from_secs(5), "gave up only after {elapsed:?}");
    Ok(())
}

#[async_std::test]
async fn tcp_close_in_the_middle_of_the_reply_is_an_error() -> TestResult {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let as_req = prefixed(b"as-req");

    let kdc = async {
        let mut stream = accept_tcp_request(&listener, &as_req).await?;
        stream.write_all(&100u32.to_be_bytes()).await?;
        stream.write_all(&[1u8; 10]).await?;
        stream.close().await?;
        drop(stream);
        Ok::<(), io::Error>(())
    };
    let mut client = KdcClient::new();
    let req = request(NetworkProtocol::Tcp, &format!("tcp://127.0.0.1:{port}"), &as_req)?;
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    expect_error(reply, ErrorKind::UnexpectedEof);
    Ok(())
}

#[async_std::test]
async fn udp_round_trip_adds_the_prefix_and_ignores_strangers() -> TestResult {
    let kdc_socket = UdpSocket::bind(LOOPBACK).await?;
    let port = kdc_socket.local_addr()?.port();
    let stranger = UdpSocket::bind(LOOPBACK).await?;
    let as_req = b"\x6a\x81\x10as-req over udp".to_vec();
    let as_rep = b"\x6b\x82\x01\x00as-rep over udp".to_vec();

    let kdc = async {
        let mut buf = vec![0u8; 2048];
        let (n, client_addr) = kdc_socket.recv_from(&mut buf).await?;
        assert_eq!(
            &buf[..n],
            &as_req[..],
            "the KDC received other bytes than the request (no prefix over udp)"
        );
        // A datagram from another port first: the client must wait for the KDC's own.
        stranger.send_to(b"not the kdc", client_addr).await?;
        kdc_socket.send_to(&as_rep, client_addr).await?;
        Ok::<(), io::Error>(())
    };
    let mut client = KdcClient::new();
    let req = request(NetworkProtocol::Udp, &format!("udp://127.0.0.1:{port}"), &as_req)?;
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    assert_eq!(reply?, prefixed(&as_rep));
    Ok(())
}

#[async_std::test]
async fn udp_silent_kdc_times_out() -> TestResult {
    let kdc_socket = UdpSocket::bind(LOOPBACK).await?;
    let port = kdc_socket.local_addr()?.port();
    let as_req = b"as-req over udp".to_vec();
    let timeout = Duration::from_millis(300);

    let kdc = async {
        let mut buf = vec![0u8; 2048];
        let (n, _) = kdc_socket.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], &as_req[..]);
        Ok::<(), io::Error>(())
    };
    let mut client = KdcClient::new().with_timeout(timeout);
    let req = request(NetworkProtocol::Udp, &format!("udp://127.0.0.1:{port}"), &as_req)?;
    let started = Instant::now();
    let (served, reply) = bounded(join(kdc, client.send(&req))).await?;
    served?;
    expect_error(reply, ErrorKind::Timeout);
    assert!(started.elapsed() >= timeout);
    Ok(())
}

/// An HTTP request as the proxy stand-in parsed it.
struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request with a content-length body, by hand.
async fn read_http_request(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<HttpRequest> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 16 * 1024, "request head too long");
        stream.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    assert_eq!(parts.next(), Some("HTTP/1.1"), "request line {request_line:?}");
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {headers:?}"));
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// The checks every KDC proxy stand-in makes on what it received.
fn check_proxy_request(request: &HttpRequest, expected_body: &[u8]) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/KdcProxy");
    assert_eq!(request.header("content-type"), Some("application/kerberos"));
    assert_eq!(
        request.body, expected_body,
        "the proxy received another body than the request"
    );
}

/// Serves one request on `stream`: checks it, then writes `response` whole.
async fn serve_proxy(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    expected_body: &[u8],
    response: &[u8],
) -> io::Result<()> {
    let request = read_http_request(&mut stream).await?;
    check_proxy_request(&request, expected_body);
    stream.write_all(response).await?;
    stream.flush().await?;
    stream.close().await
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/kerberos\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Runs the client against a plain-HTTP proxy stand-in answering `response`.
async fn http_exchange(
    client: &mut KdcClient,
    kdc_proxy_message: &[u8],
    response: &[u8],
) -> TestResult<async_rdp::Result<Vec<u8>>> {
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let proxy = async {
        let (stream, _) = listener.accept().await?;
        serve_proxy(stream, kdc_proxy_message, response).await
    };
    let req = request(
        NetworkProtocol::Http,
        &format!("http://127.0.0.1:{port}/KdcProxy"),
        kdc_proxy_message,
    )?;
    let (served, reply) = bounded(join(proxy, client.send(&req))).await?;
    served?;
    Ok(reply)
}

#[async_std::test]
async fn http_proxy_round_trip_returns_the_body() -> TestResult {
    let message = b"\x30\x20kdc-proxy-message with an as-req".to_vec();
    let reply = b"\x30\x22kdc-proxy-message with an as-rep".to_vec();
    let got = http_exchange(&mut KdcClient::new(), &message, &ok_response(&reply)).await?;
    assert_eq!(got?, reply);
    Ok(())
}

#[async_std::test]
async fn http_proxy_chunked_reply_is_read_whole() -> TestResult {
    let message = b"kdc-proxy-message".to_vec();
    let response = b"HTTP/1.1 200 OK\r\nContent-Type: application/kerberos\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let got = http_exchange(&mut KdcClient::new(), &message, response).await?;
    assert_eq!(got?, b"hello world");
    Ok(())
}

#[async_std::test]
async fn http_proxy_error_status_is_an_error_naming_it() -> TestResult {
    let message = b"kdc-proxy-message".to_vec();
    let response = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    let got = http_exchange(&mut KdcClient::new(), &message, response).await?;
    let error = expect_error(got, ErrorKind::Kdc);
    assert!(error.to_string().contains("503"), "{error}");
    Ok(())
}

#[async_std::test]
async fn http_proxy_oversized_body_is_refused_by_its_length() -> TestResult {
    let message = b"kdc-proxy-message".to_vec();
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
    let got = http_exchange(&mut KdcClient::new().with_max_reply_size(1024), &message, response).await?;
    expect_error(got, ErrorKind::FrameTooLarge);
    Ok(())
}

#[async_std::test]
async fn http_proxy_short_body_is_an_error() -> TestResult {
    let message = b"kdc-proxy-message".to_vec();
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
    let got = http_exchange(&mut KdcClient::new(), &message, response).await?;
    expect_error(got, ErrorKind::UnexpectedEof);
    Ok(())
}

#[async_std::test]
async fn http_proxy_refused_connection_keeps_its_io_kind() -> TestResult {
    // A port that was just free: nothing listens there any more.
    let port = TcpListener::bind(LOOPBACK).await?.local_addr()?.port();
    let req = request(
        NetworkProtocol::Http,
        &format!("http://127.0.0.1:{port}/KdcProxy"),
        b"kdc-proxy-message",
    )?;
    let got = bounded(KdcClient::new().send(&req)).await?;
    // The error crossed surf and came back as this crate's own, with its kind and context.
    let error = expect_error(got, ErrorKind::Io);
    assert_eq!(error.context(), "tcp connect", "{error}");
    Ok(())
}

/// A test CA and a server certificate it signed, for 127.0.0.1 and localhost.
struct TestPki {
    ca: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn test_pki(ca_name: &str) -> TestResult<TestPki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    server_params.distinguished_name.push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

    Ok(TestPki {
        ca: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    })
}

fn client_config_trusting(ca: CertificateDer<'static>) -> TestResult<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let config = ClientConfig::builder_with_provider(async_rdp::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn acceptor(pki: TestPki) -> TestResult<TlsAcceptor> {
    let mut config = ServerConfig::builder_with_provider(async_rdp::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(pki.server_chain, pki.server_key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[async_std::test]
async fn https_proxy_round_trip_with_a_trusted_ca() -> TestResult {
    let pki = test_pki("async-rdp test ca")?;
    let mut client = KdcClient::new().with_tls_config(client_config_trusting(pki.ca.clone())?);
    let acceptor = acceptor(pki)?;
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let message = b"\x30\x20kdc-proxy-message over tls".to_vec();
    let reply = b"\x30\x22kdc-proxy-reply over tls".to_vec();
    let response = ok_response(&reply);

    let proxy = async {
        let (tcp, _) = listener.accept().await?;
        let tls = acceptor.accept(tcp).await?;
        // The stand-in would take h2 too: the client must offer http/1.1 alone.
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        serve_proxy(tls, &message, &response).await
    };
    let req = request(
        NetworkProtocol::Https,
        &format!("https://127.0.0.1:{port}/KdcProxy"),
        &message,
    )?;
    let (served, got) = bounded(join(proxy, client.send(&req))).await?;
    served?;
    assert_eq!(got?, reply);
    Ok(())
}

#[async_std::test]
async fn https_proxy_with_an_untrusted_certificate_is_a_tls_error() -> TestResult {
    // The client trusts one CA, the proxy's certificate comes from another.
    let trusted = test_pki("async-rdp trusted ca")?;
    let untrusted = test_pki("async-rdp untrusted ca")?;
    let mut client = KdcClient::new().with_tls_config(client_config_trusting(trusted.ca)?);
    let acceptor = acceptor(untrusted)?;
    let listener = TcpListener::bind(LOOPBACK).await?;
    let port = listener.local_addr()?.port();
    let message = b"kdc-proxy-message".to_vec();

    let proxy = async {
        let (tcp, _) = listener.accept().await?;
        // The client aborts the handshake: nothing may get through to the HTTP layer.
        match acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let mut buf = [0u8; 1];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                assert_eq!(n, 0, "the client sent data over a connection it should have refused");
            }
            Err(e) => log::debug!("handshake refused as expected: {e}"),
        }
        Ok::<(), io::Error>(())
    };
    let req = request(
        NetworkProtocol::Https,
        &format!("https://127.0.0.1:{port}/KdcProxy"),
        &message,
    )?;
    let (served, got) = bounded(join(proxy, client.send(&req))).await?;
    served?;
    let error = expect_error(got, ErrorKind::Tls);
    assert!(error.to_string().contains("certificate"), "{error}");
    Ok(())
}
