//! The verifiers behind each [`Trust`](super::Trust) policy: one certificate check each (pins,
//! known hosts, none), made into a rustls verifier that always checks the handshake
//! signature, so that every policy also proves the server holds the certificate's key.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use super::{CertificateRefused, Fingerprint, Refusal};

/// One check of the end-entity certificate; the handshake signature is always verified.
pub(super) trait CertCheck: fmt::Debug + Send + Sync {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error>;

    /// Runs once the server has proven it holds the key of the certificate `check` accepted.
    fn after_signature(&self) -> Result<(), rustls::Error> {
        Ok(())
    }
}

/// rustls's check of a handshake signature (TLS 1.2 or 1.3: the same shape).
type SignatureCheck = fn(
    &[u8],
    &CertificateDer<'_>,
    &DigitallySignedStruct,
    &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error>;

impl<C: CertCheck> Checked<C> {
    /// Checks the handshake signature, then tells the check that the server holds the key.
    fn signature(
        &self,
        verify: SignatureCheck,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = verify(message, cert, dss, &self.provider.signature_verification_algorithms)?;
        self.check.after_signature()?;
        Ok(valid)
    }
}

/// A [`CertCheck`] made into a rustls verifier that also checks the server holds the key.
#[derive(Debug)]
pub(super) struct Checked<C> {
    pub(super) check: C,
    pub(super) provider: Arc<CryptoProvider>,
}

impl<C: CertCheck> ServerCertVerifier for Checked<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(rustls::crypto::verify_tls12_signature, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(rustls::crypto::verify_tls13_signature, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A check that could not be made (an unreadable known-hosts file, say), in words a person can
/// act on.
pub(super) fn check_failed(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(CheckFailed(reason)))))
}

#[derive(Debug)]
struct CheckFailed(String);

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// Trusts the certificates with these fingerprints. Name and validity period are not checked:
/// the pin is the trust decision.
#[derive(Debug)]
pub(super) struct Pins {
    pub(super) host: String,
    pub(super) fingerprints: Vec<Fingerprint>,
}

impl CertCheck for Pins {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        if self.fingerprints.contains(&presented) {
            return Ok(());
        }
        log::warn!("Server certificate SHA-256 {presented} matches no pinned fingerprint");
        Err(CertificateRefused::new(&self.host, presented, Refusal::NotPinned)
            .expecting(self.fingerprints.iter().copied())
            .into_rustls())
    }
}

/// Accepts anything, loudly.
#[derive(Debug)]
pub(super) struct Dangerous(pub(super) String);

impl CertCheck for Dangerous {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        log::warn!(
            "Certificate verification is disabled: accepting {} from {} unchecked",
            Fingerprint::of(end_entity),
            self.0
        );
        Ok(())
    }
}
