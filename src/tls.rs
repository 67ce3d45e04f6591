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
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use x509_cert::der::Decode;

use crate::framing::Framed;
use crate::framing::{Prefixed, StreamWrapper};
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
/// # let framed: async_rdp::framing::LocalFramed<async_std::net::TcpStream> = unimplemented!();
/// # let certificate: rustls::pki_types::CertificateDer<'static> = unimplemented!();
/// use async_rdp::{tls, trust::Fingerprint, Target, Trust};
///
/// let target = Target::new("127.0.0.1", 3389);
/// let verifier = Trust::pinned([Fingerprint::of(&certificate)]).verifier(&target)?;
/// let upgraded = tls::upgrade(framed, target.host(), verifier).await?;
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
                .with_source(reason)
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
