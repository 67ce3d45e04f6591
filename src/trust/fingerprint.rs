//! The SHA-256 fingerprint of a certificate: how known hosts and pins name a server's key.

use std::fmt;
use std::str::FromStr;

use rustls::pki_types::CertificateDer;

use crate::{Error, ErrorKind};

/// The SHA-256 fingerprint of a DER certificate, as browsers and `openssl x509 -fingerprint
/// -sha256` show it (over the whole DER encoding). Displayed and parsed as colon-separated
/// upper-case hex (`AB:CD:…`); parsing also takes plain hex, either case.
///
/// ```
/// use async_rdp::trust::Fingerprint;
///
/// let text = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
/// let fingerprint: Fingerprint = text.parse()?;
/// assert_eq!(fingerprint.to_string(), text);
/// assert_eq!(fingerprint, text.replace(':', "").to_lowercase().parse()?);
/// # Ok::<(), async_rdp::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `certificate`.
    pub fn of(certificate: &CertificateDer<'_>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Fingerprint {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::new(ErrorKind::InvalidInput, "parse fingerprint")
                .with_detail(format!("expected 32 bytes of hex (AB:CD:...), found {text:?}"))
        };
        let hex: Vec<u8> = text.trim().bytes().filter(|b| *b != b':').collect();
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}
