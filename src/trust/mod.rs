//! Which server certificates to trust: known hosts (the default, like ssh), pinned
//! fingerprints, a root store (chain and name checks), or — only when asked for by name — none.
//!
//! RDP servers nearly always present self-signed certificates, so the usual web PKI does not
//! help; accepting anything hands the password to whoever sits in the middle. Known hosts
//! remember `host:port → SHA-256` on first contact and refuse a changed certificate afterwards.
//!
//! - [`Trust`]: the policy, chosen in [`ClientConfig::with_trust`](crate::ClientConfig::with_trust);
//! - [`Fingerprint`]: how pins and known hosts name a certificate;
//! - [`CertificateRefused`]: a refusal as a value, reachable from the connection's error;
//! - the known-hosts file ([`read_known_hosts`], [`KnownHost`]), safe to share between
//!   processes.

mod fingerprint;
mod known_hosts;
mod private_files;
mod refused;
mod verify;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

pub use self::fingerprint::Fingerprint;
use self::known_hosts::KnownHosts;
pub use self::known_hosts::{read_known_hosts, KnownHost};
pub use self::refused::{CertificateRefused, Refusal};
use self::verify::{Checked, Dangerous, Pins};
use crate::tls::crypto_provider;
use crate::{Error, ErrorKind, Result, Target};

/// A server seen for the first time, as shown to an [`OnFirstUse::Ask`] callback.
#[derive(Debug, Clone)]
pub struct FirstContact {
    /// `host:port` as the client was asked to reach it.
    pub host: String,
    /// SHA-256 of the certificate the server presented.
    pub fingerprint: Fingerprint,
    /// Whether the server was reached by following another server's redirection.
    pub redirected: bool,
}

/// A decision callback for [`OnFirstUse::Ask`]: `true` trusts and remembers the server.
pub type AskFn = Arc<dyn Fn(&FirstContact) -> bool + Send + Sync>;

/// What known hosts do with a server they have never seen.
#[derive(Clone)]
pub enum OnFirstUse {
    /// Trust it and remember its certificate (ssh's "accept-new"). Not applied to a server
    /// reached through a redirection, which must already be known.
    Remember,
    /// Ask the callback; remember the certificate if it says yes.
    Ask(AskFn),
    /// Refuse it: only servers already in the file are trusted.
    Refuse,
}

impl fmt::Debug for OnFirstUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFirstUse::Remember => "Remember",
            OnFirstUse::Ask(_) => "Ask(..)",
            OnFirstUse::Refuse => "Refuse",
        })
    }
}

/// How the client decides whether to trust a server's certificate.
///
/// ```no_run
/// use async_rdp::{ClientConfig, Trust, OnFirstUse};
///
/// // The default: ~/.config/async-rdp/known_hosts, remembering new servers.
/// let config = ClientConfig::new("alice", "s3cret");
/// // A fleet of boards that must only talk to servers provisioned in advance:
/// let strict = ClientConfig::new("alice", "s3cret")
///     .with_trust(Trust::known_hosts_at("/etc/myapp/rdp_known_hosts").on_first_use(OnFirstUse::Refuse));
/// // One appliance whose certificate is known:
/// let fingerprint: async_rdp::trust::Fingerprint =
///     "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".parse()?;
/// let pinned = ClientConfig::new("alice", "s3cret").with_trust(Trust::pinned([fingerprint]));
/// # Ok::<(), async_rdp::Error>(())
/// ```
#[derive(Clone)]
pub struct Trust {
    policy: Policy,
}

#[derive(Clone)]
enum Policy {
    KnownHosts {
        path: Option<PathBuf>,
        on_first_use: OnFirstUse,
    },
    Pinned(Vec<Fingerprint>),
    Roots(Arc<RootCertStore>),
    Custom(Arc<dyn ServerCertVerifier>),
    DangerousNone,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.policy {
            Policy::KnownHosts { path, on_first_use } => f
                .debug_struct("KnownHosts")
                .field("path", path)
                .field("on_first_use", on_first_use)
                .finish(),
            Policy::Pinned(pins) => f.debug_tuple("Pinned").field(&pins.len()).finish(),
            Policy::Roots(roots) => f.debug_tuple("Roots").field(&roots.len()).finish(),
            Policy::Custom(v) => f.debug_tuple("Custom").field(v).finish(),
            Policy::DangerousNone => f.write_str("DangerousNoVerification"),
        }
    }
}

impl Default for Trust {
    fn default() -> Self {
        Self::known_hosts()
    }
}

impl Trust {
    /// Known hosts in the default file: `$XDG_CONFIG_HOME/async-rdp/known_hosts`, else
    /// `$HOME/.config/async-rdp/known_hosts`. New servers are remembered.
    pub fn known_hosts() -> Self {
        Self {
            policy: Policy::KnownHosts {
                path: None,
                on_first_use: OnFirstUse::Remember,
            },
        }
    }

    /// Known hosts in `path`. New servers are remembered.
    pub fn known_hosts_at(path: impl Into<PathBuf>) -> Self {
        Self {
            policy: Policy::KnownHosts {
                path: Some(path.into()),
                on_first_use: OnFirstUse::Remember,
            },
        }
    }

    /// For known hosts: what to do with a server seen for the first time (no effect on the
    /// other policies).
    #[must_use]
    pub fn on_first_use(mut self, choice: OnFirstUse) -> Self {
        if let Policy::KnownHosts { on_first_use, .. } = &mut self.policy {
            *on_first_use = choice;
        }
        self
    }

    /// Trusts only certificates with these SHA-256 fingerprints (name and validity are not
    /// checked: the pin is the trust decision; the server must still prove it holds the key).
    /// The one way to pin: a certificate at hand pins as `Trust::pinned([Fingerprint::of(&cert)])`.
    pub fn pinned(fingerprints: impl IntoIterator<Item = Fingerprint>) -> Self {
        Self {
            policy: Policy::Pinned(fingerprints.into_iter().collect()),
        }
    }

    /// The usual web PKI checks (chain to one of `roots`, name, validity) against these roots.
    pub fn roots(roots: RootCertStore) -> Self {
        Self {
            policy: Policy::Roots(Arc::new(roots)),
        }
    }

    /// [`roots`](Self::roots) with the operating system's trust store (on Linux, the
    /// `/etc/ssl/certs` bundle), plus `extra` roots (a company CA, say).
    pub fn system_roots(extra: impl IntoIterator<Item = CertificateDer<'static>>) -> Result<Self> {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            log::warn!("Reading the system trust store: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs.into_iter().chain(extra));
        log::debug!("System trust store: {added} roots ({ignored} unusable)");
        if roots.is_empty() {
            return Err(Error::new(ErrorKind::Tls, "trust").with_detail("the system trust store has no usable root"));
        }
        Ok(Self::roots(roots))
    }

    /// Any rustls verifier of the caller's own.
    pub fn custom(verifier: Arc<dyn ServerCertVerifier>) -> Self {
        Self {
            policy: Policy::Custom(verifier),
        }
    }

    /// **Dangerous**: accepts any certificate, so anyone in the middle gets the connection (and,
    /// without NLA, the password). Logs a warning on every connection, and refuses to follow a
    /// server redirection. Only for lab setups.
    pub fn dangerous_accept_any_certificate() -> Self {
        Self {
            policy: Policy::DangerousNone,
        }
    }

    /// The rustls verifier this policy uses for a connection to `target`, for callers that
    /// run the TLS upgrade themselves ([`tls::upgrade`](crate::tls::upgrade)).
    ///
    /// ```
    /// use async_rdp::{trust::Fingerprint, Target, Trust};
    ///
    /// let pin: Fingerprint = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".parse()?;
    /// let verifier = Trust::pinned([pin]).verifier(&Target::new("192.0.2.10", 3389))?;
    /// # Ok::<(), async_rdp::Error>(())
    /// ```
    pub fn verifier(&self, target: &Target) -> Result<Arc<dyn ServerCertVerifier>> {
        self.verifier_for(target, false)
    }

    /// The verifier for one connection to `target` (`redirected`: reached by following a
    /// redirection, which may not be given more trust than a fresh server).
    pub(crate) fn verifier_for(&self, target: &Target, redirected: bool) -> Result<Arc<dyn ServerCertVerifier>> {
        let provider = crypto_provider();
        let key = target.known_hosts_key();
        Ok(match &self.policy {
            Policy::KnownHosts { path, on_first_use } => {
                let path = match path {
                    Some(path) => path.clone(),
                    None => default_known_hosts_path()?,
                };
                let check = KnownHosts {
                    path,
                    key,
                    on_first_use: on_first_use.clone(),
                    redirected,
                    pending: Mutex::new(None),
                };
                Arc::new(Checked { check, provider })
            }
            Policy::Pinned(fingerprints) => {
                let check = Pins {
                    host: key,
                    fingerprints: fingerprints.clone(),
                };
                Arc::new(Checked { check, provider })
            }
            Policy::Roots(roots) => WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider)
                .build()
                .map_err(|e| Error::new(ErrorKind::Tls, "trust").with_source(e))?,
            Policy::Custom(verifier) => Arc::clone(verifier),
            Policy::DangerousNone if redirected => {
                return Err(Error::new(ErrorKind::Tls, "trust").with_detail(format!(
                    "refusing to follow a redirection to {key} without certificate verification"
                )))
            }
            Policy::DangerousNone => Arc::new(Checked {
                check: Dangerous(key),
                provider,
            }),
        })
    }
}

fn default_known_hosts_path() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .ok_or_else(|| {
            Error::new(ErrorKind::Tls, "trust").with_detail(
                "no HOME or XDG_CONFIG_HOME for the default known-hosts file; set a path with Trust::known_hosts_at",
            )
        })?;
    Ok(base.join("async-rdp").join("known_hosts"))
}
