//! A refused certificate as a value: who presented what, what was expected instead, and where
//! that expectation is written down.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Fingerprint;

/// Why a trust policy refused a server's certificate. Reached from a connection error with
/// [`Error::certificate_refused`](crate::Error::certificate_refused), so that an application
/// can ask its user "trust this server?" (and with which fingerprint) without parsing text.
///
/// ```no_run
/// # async fn first(config: async_rdp::ClientConfig) -> async_rdp::Result<()> {
/// use async_rdp::trust::Refusal;
///
/// match async_rdp::connect("192.0.2.10:3389", config).await {
///     Err(e) => match e.certificate_refused() {
///         Some(refused) if refused.reason() == Refusal::Changed => {
///             eprintln!("{} changed its certificate: was {:?}, now {}",
///                 refused.host(), refused.expected(), refused.presented());
///         }
///         _ => eprintln!("{}", async_rdp::report(&e)),
///     },
///     Ok(_session) => {}
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CertificateRefused {
    host: String,
    presented: Fingerprint,
    expected: Vec<Fingerprint>,
    known_hosts: Option<(PathBuf, Option<usize>)>,
    reason: Refusal,
}

/// The kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Known hosts list another certificate for this server: it changed, or someone is in the
    /// middle.
    Changed,
    /// The server is not in the known-hosts file, and first-use trust was refused or declined.
    Unknown,
    /// The server was reached through a redirection and is not in the known-hosts file (a
    /// redirection never earns first-use trust).
    RedirectedToUnknown,
    /// The certificate matches none of the pinned fingerprints.
    NotPinned,
}

impl CertificateRefused {
    pub(crate) fn new(host: &str, presented: Fingerprint, reason: Refusal) -> Self {
        Self {
            host: host.to_owned(),
            presented,
            expected: Vec::new(),
            known_hosts: None,
            reason,
        }
    }

    pub(crate) fn expecting(mut self, expected: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.expected = expected.into_iter().collect();
        self
    }

    pub(crate) fn in_file(mut self, path: &Path, line: Option<usize>) -> Self {
        self.known_hosts = Some((path.to_owned(), line));
        self
    }

    /// `host:port` as the client was asked to reach it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The fingerprint of the certificate the server presented.
    pub fn presented(&self) -> Fingerprint {
        self.presented
    }

    /// What was expected instead: the known-hosts entry of a changed server, or the pins.
    pub fn expected(&self) -> &[Fingerprint] {
        &self.expected
    }

    /// The known-hosts file consulted, if any.
    pub fn known_hosts_file(&self) -> Option<&Path> {
        self.known_hosts.as_ref().map(|(path, _)| path.as_path())
    }

    /// The line (1-based) of that file holding the expected fingerprint, for a changed server.
    pub fn known_hosts_line(&self) -> Option<usize> {
        self.known_hosts.as_ref().and_then(|(_, line)| *line)
    }

    /// The kind of refusal.
    pub fn reason(&self) -> Refusal {
        self.reason
    }

    /// As rustls carries a verifier's own reason.
    pub(crate) fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(self))))
    }

    /// The refusal inside `error`, whichever of the forms it travels in (as itself, in the
    /// `Arc` rustls keeps it in, or inside a rustls error).
    pub(crate) fn find_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Self> {
        if let Some(refused) = error.downcast_ref::<Self>() {
            return Some(refused);
        }
        if let Some(shared) = error.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
            return shared.downcast_ref::<Self>();
        }
        match error.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.0.downcast_ref::<Self>(),
            _ => None,
        }
    }
}

impl fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (host, presented) = (&self.host, &self.presented);
        let file = self
            .known_hosts_file()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match self.reason {
            Refusal::Changed => {
                let line = self.known_hosts_line().unwrap_or_default();
                let expected = self.expected.first().map(ToString::to_string).unwrap_or_default();
                write!(
                    f,
                    "the certificate of {host} CHANGED: {file} line {line} has SHA-256 {expected}, the server \
                     presented {presented}. Someone may be intercepting the connection. If the change is \
                     expected, delete line {line} of {file} and connect again"
                )
            }
            Refusal::Unknown => write!(
                f,
                "{host} is not in {file} and new servers are refused (its SHA-256 is {presented}; add a line \
                 `{host} {presented}` to trust it)"
            ),
            Refusal::RedirectedToUnknown => write!(
                f,
                "{host} (SHA-256 {presented}) was reached through a redirection and is not in {file}; a \
                 redirection is only followed to a known server"
            ),
            Refusal::NotPinned => write!(
                f,
                "its SHA-256 fingerprint {presented} is not trusted (check it out of band, then pin it)"
            ),
        }
    }
}

impl StdError for CertificateRefused {}
