//! The TLS upgrade of an RDP connection, with futures-rustls (rustls 0.23, ring).
//!
//! [`upgrade`] takes the [`Framed`] that ran the X.224 negotiation, replays any bytes it had
//! read ahead into the TLS layer (they are TLS records, never plaintext), performs the
//! handshake with the given certificate verifier, and returns the TLS stream together with the
//! server's certificate and the SubjectPublicKey that CredSSP binds to ([MS-CSSP] 3.1.5).
//! Which certificates to trust is the verifier's business.
//!
//! [MS-CSSP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-cssp/

use std::sync::Arc;

use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use x509_cert::der::Decode;

use crate::framed::Framed;
use crate::stream::{Prefixed, StreamWrapper};
use crate::{Error, ErrorKind, Result};

/// The result of a TLS upgrade.
#[derive(Debug)]
pub struct UpgradedStream<S> {
    /// The TLS stream; bytes read ahead before the upgrade are replayed through [`Prefixed`].
    pub stream: TlsStream<Prefixed<S>>,
    /// The server's end-entity certificate, DER-encoded, as it passed verification.
    pub server_certificate: CertificateDer<'static>,
    /// The contents of the certificate's SubjectPublicKey BIT STRING: the key CredSSP binds to.
    pub server_public_key: Vec<u8>,
}

/// The rustls crypto provider this crate uses: ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration fit for RDP: ring, TLS 1.2 and 1.3, no client certificate, and
/// session resumption off (CredSSP binds to the server key of a full handshake, and Windows
/// servers fail NLA over a resumed session).
pub fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::new(ErrorKind::Tls, "tls config").with_source(e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Upgrades a negotiated connection to TLS, verifying the server with `verifier`.
///
/// `server_name` is the host name or IP address the user asked for; it is what the verifier
/// sees (and what SNI carries, for names).
///
/// ```no_run
/// # async_std::task::block_on(async {
/// # let framed: async_rdp::LocalFramed<async_std::net::TcpStream> = unimplemented!();
/// # let certificate: rustls::pki_types::CertificateDer<'static> = unimplemented!();
/// use std::sync::Arc;
/// use async_rdp::tls;
///
/// let verifier = Arc::new(tls::Pinned::certificate(&certificate));
/// let upgraded = tls::upgrade(framed, "127.0.0.1", verifier).await?;
/// println!("server key: {} bytes", upgraded.server_public_key.len());
/// # Ok::<(), async_rdp::Error>(())
/// # });
/// ```
///
/// # Cancel safety
///
/// Not cancel safe: the connection is consumed; drop it if the future is dropped.
pub async fn upgrade<W>(
    framed: Framed<W>,
    server_name: &str,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<UpgradedStream<W::Inner>>
where
    W: StreamWrapper,
    W::Inner: AsyncRead + AsyncWrite + Unpin,
{
    upgrade_with_config(framed, server_name, Arc::new(client_config(verifier)?)).await
}

/// [`upgrade`] with a rustls configuration of the caller's own (keep resumption disabled).
///
/// # Cancel safety
///
/// Not cancel safe, like [`upgrade`].
pub async fn upgrade_with_config<W>(
    framed: Framed<W>,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<UpgradedStream<W::Inner>>
where
    W: StreamWrapper,
    W::Inner: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
        Error::new(ErrorKind::Tls, "tls")
            .with_detail(format!("invalid server name {server_name:?}"))
            .with_source(e)
    })?;
    let (stream, leftover) = framed.into_inner();
    if !leftover.is_empty() {
        log::debug!(
            "Replaying {} bytes read before the TLS upgrade into TLS",
            leftover.len()
        );
    }
    let stream = TlsConnector::from(config)
        .connect(name, Prefixed::new(stream, leftover))
        .await
        .map_err(|e| tls_error("tls handshake", e))?;

    let server_certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned())
        .ok_or_else(|| Error::new(ErrorKind::Tls, "tls handshake").with_detail("server sent no certificate"))?;
    let server_public_key = subject_public_key(&server_certificate)?;
    log::info!("TLS established");
    Ok(UpgradedStream {
        stream,
        server_certificate,
        server_public_key,
    })
}

/// Extracts the contents of a certificate's SubjectPublicKey BIT STRING.
pub fn subject_public_key(certificate: &CertificateDer<'_>) -> Result<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(certificate)
        .map_err(|e| Error::new(ErrorKind::Tls, "parse server certificate").with_source(e))?;
    let key = &cert.tbs_certificate().subject_public_key_info().subject_public_key;
    key.as_bytes().map(<[u8]>::to_vec).ok_or_else(|| {
        Error::new(ErrorKind::Tls, "parse server certificate").with_detail("public key is not a whole number of bytes")
    })
}

/// Turns a handshake I/O error into an [`ErrorKind::Tls`] error, keeping the rustls cause.
pub(crate) fn tls_error(context: &'static str, error: std::io::Error) -> Error {
    // A broken transport stays a transport error; only what TLS itself refused is `Tls`.
    let kind = match error.kind() {
        std::io::ErrorKind::UnexpectedEof => ErrorKind::UnexpectedEof,
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::NotConnected => ErrorKind::Io,
        _ => ErrorKind::Tls,
    };
    let refused = Error::new(kind, context);
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        // A verifier's own reason (such as `Pinned`'s) is the whole story; keep it as the source
        // rather than rustls' Debug rendering of it.
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            let reason = Arc::clone(&other.0);
            refused
                .with_detail(format!("server certificate refused: {reason}"))
                .with_source(Box::new(reason))
        }
        // rustls' own message follows in the source chain.
        Some(rustls::Error::InvalidCertificate(_)) => {
            refused.with_detail("server certificate refused").with_source(error)
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            let detail = format!("peer sent alert {alert:?}");
            refused.with_detail(detail).with_source(error)
        }
        Some(other) => {
            let detail = other.to_string();
            refused.with_detail(detail).with_source(error)
        }
        None => {
            let detail = error.to_string();
            refused.with_detail(detail).with_source(error)
        }
    }
}

/// The SHA-256 fingerprint of a DER certificate, the way browsers and `openssl x509
/// -fingerprint -sha256` show it (over the whole DER encoding).
pub fn fingerprint_sha256(certificate: &CertificateDer<'_>) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Formats a fingerprint as colon-separated upper-case hex (`AB:CD:...`).
pub fn format_fingerprint(fingerprint: &[u8]) -> String {
    let mut out = String::with_capacity(fingerprint.len() * 3);
    for (i, byte) in fingerprint.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// Parses a fingerprint written as hex, with or without `:` separators.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The three [`ServerCertVerifier`] methods that check the handshake signature with the
/// verifier's `provider` field: every verifier here proves the server holds the key.
macro_rules! handshake_signatures {
    () => {
        handshake_signatures!(then: |_this: &Self| Ok::<(), rustls::Error>(()));
    };
    // `then` runs once the server has proven it holds the certificate's key.
    (then: $then:expr) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            let valid = rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )?;
            ($then)(self)?;
            Ok(valid)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            let valid = rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )?;
            ($then)(self)?;
            Ok(valid)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

/// A verifier that trusts the certificates whose SHA-256 fingerprints it was given, and checks
/// that the server holds the certificate's key. Name and validity period are not checked: the
/// pin is the trust decision. Fit for a server whose certificate is known out of band (a test
/// server, an appliance).
#[derive(Debug)]
pub struct Pinned {
    fingerprints: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    /// Trusts certificates with one of these SHA-256 fingerprints.
    pub fn new(fingerprints: impl IntoIterator<Item = [u8; 32]>) -> Self {
        Self {
            fingerprints: fingerprints.into_iter().collect(),
            provider: crypto_provider(),
        }
    }

    /// Trusts exactly this certificate.
    pub fn certificate(certificate: &CertificateDer<'_>) -> Self {
        Self::new([fingerprint_sha256(certificate)])
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint_sha256(end_entity);
        if self.fingerprints.contains(&presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            log::warn!(
                "Server certificate SHA-256 {} matches no pinned fingerprint",
                format_fingerprint(&presented)
            );
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                rustls::OtherError(Arc::new(NotPinned(presented))),
            )))
        }
    }

    handshake_signatures!();
}

/// Why [`Pinned`] refused a certificate: it names the fingerprint, so that a user can check it
/// out of band and pin it.
#[derive(Debug)]
struct NotPinned([u8; 32]);

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its SHA-256 fingerprint {} is not trusted (check it out of band, then pin it)",
            format_fingerprint(&self.0)
        )
    }
}

impl std::error::Error for NotPinned {}
