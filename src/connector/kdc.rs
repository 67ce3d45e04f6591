//! The Kerberos network client: carries the requests CredSSP's Kerberos package makes to a KDC
//! (TCP or UDP, [RFC 4120] 7.2) or to a KDC proxy (HTTP or HTTPS, [MS-KKDCP]), and frames the
//! replies the way sspi expects them.
//!
//! The framing of each protocol, as sspi hands requests over and wants replies back:
//!
//! | protocol | request `data` | reply returned |
//! | --- | --- | --- |
//! | `tcp://host[:port]` (port 88 by default) | with its 4-byte big-endian length prefix, sent as is | the KDC's bytes as read: length prefix and message |
//! | `udp://host[:port]` (port 88 by default) | without a prefix, sent as one datagram | the reply datagram with a 4-byte big-endian length prefix added |
//! | `http://...`, `https://...` | a `KDC-PROXY-MESSAGE`, POSTed as `application/kerberos` | the response body |
//!
//! Every exchange runs under a deadline and every reply under a size bound, both set on
//! [`KdcClient`]. Requests and replies carry tickets: their bytes are never logged, and their
//! sizes only at trace level.
//!
//! [RFC 4120]: https://www.rfc-editor.org/rfc/rfc4120#section-7.2
//! [MS-KKDCP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-kkdcp/

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::TlsConnector;
use http_client::HttpClient;
use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::sspi::network_client::NetworkProtocol;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use surf::http::headers::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use surf::http::Method;
use url::{Host, Url};

use super::NetworkClient;
use crate::net::{self, ToSocketAddrs, UdpSocket};
use crate::{Error, ErrorKind, Result};

/// How long [`KdcClient`] waits for a TCP connection by default (Windows waits 5 s per KDC).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`KdcClient`] gives a whole exchange (connect, send, reply) by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest reply [`KdcClient`] accepts by default, length prefix excluded: 1 MiB.
///
/// Kerberos replies are a few kilobytes (tens with a large PAC); anything near this bound is
/// not a KDC talking.
pub const DEFAULT_MAX_REPLY_SIZE: usize = 1024 * 1024;

/// The Kerberos port, for `tcp://` and `udp://` URLs that name none.
const KERBEROS_PORT: u16 = 88;

/// Receive buffer for UDP replies: larger than any UDP payload, so a datagram is never cut.
const UDP_BUFFER_SIZE: usize = 64 * 1024;

/// The media type of KDC proxy requests and replies ([MS-KKDCP] 2.2.1).
const KERBEROS_CONTENT_TYPE: &str = "application/kerberos";

/// A [`NetworkClient`] that reaches Kerberos KDCs over TCP and UDP and KDC proxies over HTTP
/// and HTTPS.
///
/// Pass it to [`connect_finalize`](super::connect_finalize) or
/// [`perform_credssp`](super::perform_credssp) for a Kerberos logon; sspi decides which KDC URL
/// each request goes to. Each call opens its own connection (or UDP socket) and closes it when
/// the reply is in; nothing is spawned and nothing needs to be `Send`.
///
/// For `https://` KDC proxies the server certificate is checked against the trust roots of
/// [`with_tls_config`](KdcClient::with_tls_config), or, when none was given, against the
/// Mozilla root program (as shipped by the `webpki-roots` crate).
///
/// ```no_run
/// # async_std::task::block_on(async {
/// # let as_req: Vec<u8> = unimplemented!();
/// use std::time::Duration;
/// use async_rdp::connector::kdc::KdcClient;
/// use async_rdp::connector::NetworkClient;
/// use async_rdp::ironrdp_connector::sspi::generator::NetworkRequest;
/// use async_rdp::ironrdp_connector::sspi::network_client::NetworkProtocol;
///
/// let mut kdc = KdcClient::new()
///     .with_connect_timeout(Duration::from_secs(3))
///     .with_timeout(Duration::from_secs(8));
///
/// // What sspi yields during CredSSP; connect_finalize forwards it to `kdc.send`.
/// let request = NetworkRequest {
///     protocol: NetworkProtocol::Tcp,
///     url: "tcp://dc01.example.com:88".parse()?,
///     data: as_req, // length prefix included, as sspi makes it
/// };
/// let reply = kdc.send(&request).await?;
/// assert!(reply.len() >= 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct KdcClient {
    connect_timeout: Duration,
    timeout: Duration,
    max_reply_size: usize,
    tls_config: Option<Arc<ClientConfig>>,
}

impl Default for KdcClient {
    fn default() -> Self {
        Self::new()
    }
}

impl KdcClient {
    /// A client with the default timeouts ([`DEFAULT_CONNECT_TIMEOUT`], [`DEFAULT_TIMEOUT`]),
    /// reply bound ([`DEFAULT_MAX_REPLY_SIZE`]) and HTTPS trust roots (`webpki-roots`).
    pub fn new() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_reply_size: DEFAULT_MAX_REPLY_SIZE,
            tls_config: None,
        }
    }

    /// Sets how long to wait for a TCP connection (to a KDC or a KDC proxy).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a whole exchange may take: connection, TLS handshake, request and reply.
    /// It bounds the connect timeout too. A request that runs out of time fails with
    /// [`ErrorKind::Timeout`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest reply accepted, in bytes, length prefix excluded. A longer reply fails
    /// with [`ErrorKind::FrameTooLarge`]; over TCP and HTTP, one that announces a longer length
    /// fails before anything is allocated for it.
    #[must_use]
    pub fn with_max_reply_size(mut self, max: usize) -> Self {
        self.max_reply_size = max;
        self
    }

    /// Sets the rustls configuration for `https://` KDC proxies: trust roots, protocol
    /// versions, client certificate. Its ALPN list is replaced by `http/1.1`, the only HTTP
    /// version spoken here.
    ///
    /// Use a configuration built on [`tls::crypto_provider`](crate::tls::crypto_provider) to
    /// stay on ring.
    #[must_use]
    pub fn with_tls_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls_config = Some(http11_only(Arc::unwrap_or_clone(config)));
        self
    }

    /// The TLS configuration for KDC proxies, made from the default roots on first use.
    fn tls_config(&mut self) -> Result<Arc<ClientConfig>> {
        match &self.tls_config {
            Some(config) => Ok(Arc::clone(config)),
            None => {
                let config = default_tls_config()?;
                self.tls_config = Some(Arc::clone(&config));
                Ok(config)
            }
        }
    }

    async fn send_tcp(&self, url: &Url, data: &[u8]) -> Result<Vec<u8>> {
        const CONTEXT: &str = "kdc tcp";
        let addr = host_port(url, Some(KERBEROS_PORT), CONTEXT)?;
        let mut stream = net::connect(&addr, self.connect_timeout).await?;
        stream.write_all(data).await.map_err(|e| Error::io(CONTEXT, e))?;
        stream.flush().await.map_err(|e| Error::io(CONTEXT, e))?;

        let mut prefix = [0u8; 4];
        stream
            .read_exact(&mut prefix)
            .await
            .map_err(|e| Error::io(CONTEXT, e).with_detail("reading the reply length"))?;
        let announced = u32::from_be_bytes(prefix);
        let len = usize::try_from(announced)
            .ok()
            .filter(|&len| len <= self.max_reply_size)
            .ok_or_else(|| too_large(CONTEXT, u64::from(announced), self.max_reply_size))?;
        let total = len
            .checked_add(prefix.len())
            .ok_or_else(|| too_large(CONTEXT, u64::from(announced), self.max_reply_size))?;

        let mut reply = Vec::with_capacity(total);
        reply.extend_from_slice(&prefix);
        reply.resize(total, 0);
        stream
            .read_exact(&mut reply[prefix.len()..])
            .await
            .map_err(|e| Error::io(CONTEXT, e).with_detail(format!("reading a {len}-byte reply")))?;
        Ok(reply)
    }

    async fn send_udp(&self, url: &Url, data: &[u8]) -> Result<Vec<u8>> {
        const CONTEXT: &str = "kdc udp";
        let addr = host_port(url, Some(KERBEROS_PORT), CONTEXT)?;
        let target = addr
            .as_str()
            .to_socket_addrs()
            .await
            .map_err(|e| Error::io(CONTEXT, e).with_detail(format!("cannot resolve {addr}")))?
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Kdc, CONTEXT).with_detail(format!("{addr} resolves to no address")))?;
        let local = match target {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| Error::io(CONTEXT, e))?;
        let sent = socket.send_to(data, target).await.map_err(|e| Error::io(CONTEXT, e))?;
        if sent != data.len() {
            return Err(Error::new(ErrorKind::Kdc, CONTEXT).with_detail(format!("sent {sent} of {} bytes", data.len())));
        }

        let mut buf = vec![0u8; UDP_BUFFER_SIZE];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.map_err(|e| Error::io(CONTEXT, e))?;
            if from.ip() != target.ip() || from.port() != target.port() {
                log::debug!("Ignoring a datagram from {from}: the KDC is {target}");
                continue;
            }
            let datagram = buf.get(..n).unwrap_or_default();
            if datagram.len() > self.max_reply_size {
                return Err(too_large(CONTEXT, datagram.len() as u64, self.max_reply_size));
            }
            let len = u32::try_from(datagram.len())
                .map_err(|_| too_large(CONTEXT, datagram.len() as u64, self.max_reply_size))?;
            let mut reply = Vec::with_capacity(4 + datagram.len());
            reply.extend_from_slice(&len.to_be_bytes());
            reply.extend_from_slice(datagram);
            return Ok(reply);
        }
    }

    async fn send_http(&mut self, url: &Url, data: &[u8]) -> Result<Vec<u8>> {
        const CONTEXT: &str = "kdc proxy";
        let tls = match url.scheme() {
            "https" => Some(self.tls_config()?),
            "http" => None,
            other => {
                return Err(
                    Error::new(ErrorKind::Kdc, CONTEXT).with_detail(format!("unsupported url scheme {other:?}"))
                );
            }
        };
        let client = surf::Client::with_http_client(ProxyConnector {
            tls,
            connect_timeout: self.connect_timeout,
        });

        let mut request = surf::Request::new(Method::Post, url.clone());
        request.set_body(surf::Body::from_bytes(data.to_vec()));
        request.insert_header(CONTENT_TYPE, KERBEROS_CONTENT_TYPE);
        // One request per connection: say so, so that the proxy does not wait for another.
        request.insert_header(CONNECTION, "close");

        let mut response = client.send(request).await.map_err(proxy_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(
                Error::new(ErrorKind::Kdc, CONTEXT).with_detail(format!("the proxy answered http status {status}"))
            );
        }
        // async-h1 reads a body only by its length or chunked; a body that runs to the end of
        // the connection would come back empty, so refuse it rather than return nothing.
        if response.header(CONTENT_LENGTH).is_none() && response.header(TRANSFER_ENCODING).is_none() {
            return Err(Error::new(ErrorKind::Kdc, CONTEXT)
                .with_detail("the reply has neither a content-length nor chunked encoding"));
        }
        let announced = response.len();
        if let Some(len) = announced.filter(|&len| len > self.max_reply_size) {
            return Err(too_large(CONTEXT, len as u64, self.max_reply_size));
        }

        let bound = u64::try_from(self.max_reply_size).unwrap_or(u64::MAX).saturating_add(1);
        let mut body = Vec::new();
        response
            .take_body()
            .take(bound)
            .read_to_end(&mut body)
            .await
            .map_err(|e| Error::io(CONTEXT, e).with_detail("reading the reply body"))?;
        if body.len() > self.max_reply_size {
            return Err(too_large(CONTEXT, body.len() as u64, self.max_reply_size));
        }
        if let Some(len) = announced.filter(|&len| len != body.len()) {
            return Err(Error::new(ErrorKind::UnexpectedEof, CONTEXT)
                .with_detail(format!("the reply body ended after {} of {len} bytes", body.len())));
        }
        Ok(body)
    }
}

impl NetworkClient for KdcClient {
    async fn send(&mut self, request: &NetworkRequest) -> Result<Vec<u8>> {
        log::debug!(
            "Sending a Kerberos request over {:?} to {}",
            request.protocol,
            request.url
        );
        log::trace!("Kerberos request: {} bytes", request.data.len());
        let timeout = self.timeout;
        let reply = match request.protocol {
            NetworkProtocol::Tcp => {
                net::with_timeout(timeout, "kdc tcp", self.send_tcp(&request.url, &request.data)).await
            }
            NetworkProtocol::Udp => {
                net::with_timeout(timeout, "kdc udp", self.send_udp(&request.url, &request.data)).await
            }
            NetworkProtocol::Http | NetworkProtocol::Https => {
                net::with_timeout(timeout, "kdc proxy", self.send_http(&request.url, &request.data)).await
            }
        }?;
        log::trace!("Kerberos reply: {} bytes", reply.len());
        Ok(reply)
    }
}

/// `host:port` of `url`, for name resolution; `default_port` for URL schemes without one.
fn host_port(url: &Url, default_port: Option<u16>, context: &'static str) -> Result<String> {
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::Kdc, context).with_detail(format!("{url} names no host")))?;
    let port = url
        .port_or_known_default()
        .or(default_port)
        .ok_or_else(|| Error::new(ErrorKind::Kdc, context).with_detail(format!("{url} names no port")))?;
    Ok(format!("{host}:{port}"))
}

fn too_large(context: &'static str, len: u64, max: usize) -> Error {
    Error::new(ErrorKind::FrameTooLarge, context)
        .with_detail(format!("the reply is {len} bytes long, more than the {max} allowed"))
}

/// Brings a surf error back to this crate's error: ours and I/O errors pass through with their
/// kind (a timeout stays a timeout, a refused certificate a TLS error).
fn proxy_error(error: surf::Error) -> Error {
    let error = match error.downcast::<Error>() {
        Ok(error) => return error,
        Err(error) => error,
    };
    match error.downcast::<io::Error>() {
        Ok(error) => Error::io("kdc proxy", error),
        Err(error) => Error::new(ErrorKind::Kdc, "kdc proxy")
            .with_detail(error.to_string())
            .with_source(error.into_inner()),
    }
}

/// The default trust roots for `https://` KDC proxies: the Mozilla root program, compiled in by
/// the `webpki-roots` crate.
///
/// Why this source: a KDC proxy is what a client outside the domain network reaches, usually
/// published on the internet next to an RD Gateway with a publicly trusted certificate, which
/// these roots cover. The crate is data only (no OS store, no FFI, no build script), so the
/// outcome is the same on every platform. Proxies with an enterprise CA need
/// [`KdcClient::with_tls_config`].
fn default_tls_config() -> Result<Arc<ClientConfig>> {
    let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Tls, "kdc proxy tls config").with_source(e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(http11_only(config))
}

fn http11_only(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The HTTP/1.1 transport under surf: a TCP connection per request (async-std, through
/// [`net`]), TLS for `https` (futures-rustls), and async-h1 on top.
///
/// `http_client::HttpClient` requires `Send + Sync`; this adapter is, [`KdcClient`] need not be.
#[derive(Debug)]
struct ProxyConnector {
    tls: Option<Arc<ClientConfig>>,
    connect_timeout: Duration,
}

#[http_client::async_trait]
impl HttpClient for ProxyConnector {
    async fn send(
        &self,
        request: http_client::Request,
    ) -> std::result::Result<http_client::Response, http_client::Error> {
        const CONTEXT: &str = "kdc proxy";
        let url = request.url().clone();
        let addr = host_port(&url, None, CONTEXT)?;
        let tcp = net::connect(&addr, self.connect_timeout).await?;
        match (url.scheme(), &self.tls) {
            ("http", _) => async_h1::connect(tcp, request).await,
            ("https", Some(config)) => {
                let name = server_name(&url)?;
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| crate::tls::tls_error("kdc proxy tls handshake", e))?;
                async_h1::connect(tls, request).await
            }
            (scheme, _) => Err(Error::new(ErrorKind::Kdc, CONTEXT)
                .with_detail(format!("no transport for url scheme {scheme:?}"))
                .into()),
        }
    }
}

/// The name the proxy's certificate must carry: the URL's host, a DNS name or an IP address.
fn server_name(url: &Url) -> Result<ServerName<'static>> {
    let invalid = || Error::new(ErrorKind::Tls, "kdc proxy tls").with_detail(format!("{url} has no valid server name"));
    match url.host() {
        Some(Host::Domain(name)) => ServerName::try_from(name.to_owned()).map_err(|e| invalid().with_source(e)),
        Some(Host::Ipv4(ip)) => Ok(ServerName::from(IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => Ok(ServerName::from(IpAddr::V6(ip))),
        None => Err(invalid()),
    }
}
