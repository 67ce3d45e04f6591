//! Which server certificates to trust: known hosts (the default, like ssh), pinned
//! fingerprints, a root store (chain and name checks), or — only when asked for by name — none.
//!
//! RDP servers nearly always present self-signed certificates, so the usual web PKI does not
//! help; accepting anything hands the password to whoever sits in the middle. Known hosts
//! remember `host:port → SHA-256` on first contact and refuse a changed certificate afterwards.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use crate::tls::{
    crypto_provider, fingerprint_sha256, format_fingerprint, handshake_signatures, parse_fingerprint, Pinned,
};
use crate::{Error, ErrorKind, Result};

/// A server seen for the first time, as shown to an [`OnFirstUse::Ask`] callback.
#[derive(Debug, Clone)]
pub struct FirstContact {
    /// `host:port` as the client was asked to reach it.
    pub host: String,
    /// SHA-256 of the certificate the server presented.
    pub fingerprint: [u8; 32],
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
/// # let fingerprint = [0u8; 32];
/// let pinned = ClientConfig::new("alice", "s3cret").with_trust(Trust::pinned([fingerprint]));
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
    Pinned(Vec<[u8; 32]>),
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

    /// Trusts only certificates with these SHA-256 fingerprints.
    pub fn pinned(fingerprints: impl IntoIterator<Item = [u8; 32]>) -> Self {
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

    /// The verifier for one connection to `host:port` (`redirected`: reached by following a
    /// redirection, which may not be given more trust than a fresh server).
    pub(crate) fn verifier_for(&self, host: &str, port: u16, redirected: bool) -> Result<Arc<dyn ServerCertVerifier>> {
        let provider = crypto_provider();
        let key = host_key(host, port);
        Ok(match &self.policy {
            Policy::KnownHosts { path, on_first_use } => {
                let path = match path {
                    Some(path) => path.clone(),
                    None => default_known_hosts_path()?,
                };
                Arc::new(Checked {
                    check: KnownHosts {
                        path,
                        key,
                        on_first_use: on_first_use.clone(),
                        redirected,
                        pending: std::sync::Mutex::new(None),
                    },
                    provider,
                })
            }
            Policy::Pinned(pins) => Arc::new(Pinned::new(pins.iter().copied())),
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

/// `host:port`, with brackets around an IPv6 address, as written in the known-hosts file.
fn host_key(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{}:{port}", host.to_ascii_lowercase())
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

/// One check of the end-entity certificate; the handshake signature is always verified.
trait CertCheck: fmt::Debug + Send + Sync {
    fn check(&self, end_entity: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error>;

    /// Runs once the server has proven it holds the key of the certificate `check` accepted.
    fn after_signature(&self) -> std::result::Result<(), rustls::Error> {
        Ok(())
    }
}

/// A [`CertCheck`] made into a rustls verifier that also checks the server holds the key.
#[derive(Debug)]
struct Checked<C> {
    check: C,
    provider: Arc<CryptoProvider>,
}

impl<C: CertCheck> ServerCertVerifier for Checked<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.check.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(then: |this: &Self| this.check.after_signature());
}

/// Why a certificate was refused, in words a person can act on.
fn refuse(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refused(reason)))))
}

#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

#[derive(Debug)]
struct Dangerous(String);

impl CertCheck for Dangerous {
    fn check(&self, end_entity: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error> {
        log::warn!(
            "Certificate verification is disabled: accepting {} from {} unchecked",
            format_fingerprint(&fingerprint_sha256(end_entity)),
            self.0
        );
        Ok(())
    }
}

#[derive(Debug)]
struct KnownHosts {
    path: PathBuf,
    key: String,
    on_first_use: OnFirstUse,
    redirected: bool,
    /// A first-use certificate accepted, to be written once the handshake signature checks.
    pending: std::sync::Mutex<Option<[u8; 32]>>,
}

impl CertCheck for KnownHosts {
    fn check(&self, end_entity: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error> {
        let presented = fingerprint_sha256(end_entity);
        let entries = read_known_hosts(&self.path).map_err(|e| refuse(crate::report(&e)))?;
        let path = self.path.display();
        if let Some(entry) = entries.iter().find(|e| e.host.eq_ignore_ascii_case(&self.key)) {
            if entry.fingerprint == presented {
                return Ok(());
            }
            return Err(refuse(format!(
                "the certificate of {} CHANGED: {path} line {} has SHA-256 {}, the server presented {}. \
                 Someone may be intercepting the connection. If the change is expected, delete line {} \
                 of {path} and connect again",
                self.key,
                entry.line,
                format_fingerprint(&entry.fingerprint),
                format_fingerprint(&presented),
                entry.line,
            )));
        }

        let contact = FirstContact {
            host: self.key.clone(),
            fingerprint: presented,
            redirected: self.redirected,
        };
        let accept = match &self.on_first_use {
            OnFirstUse::Remember if !self.redirected => true,
            OnFirstUse::Remember => {
                return Err(refuse(format!(
                    "{} (SHA-256 {}) was reached through a redirection and is not in {path}; \
                     a redirection is only followed to a known server",
                    self.key,
                    format_fingerprint(&presented)
                )))
            }
            OnFirstUse::Ask(ask) => ask(&contact),
            OnFirstUse::Refuse => false,
        };
        if !accept {
            return Err(refuse(format!(
                "{} is not in {path} and new servers are refused (its SHA-256 is {}; add a line \
                 `{} {}` to trust it)",
                self.key,
                format_fingerprint(&presented),
                self.key,
                format_fingerprint(&presented)
            )));
        }
        // Remembered only once the server proves it holds the certificate's key: a peer that
        // replays someone else's certificate must not get it written down.
        *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(presented);
        Ok(())
    }

    fn after_signature(&self) -> std::result::Result<(), rustls::Error> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(presented) = pending else { return Ok(()) };
        add_known_host(&self.path, &self.key, &presented).map_err(|e| refuse(crate::report(&e)))?;
        log::info!(
            "Trusting {} on first use (SHA-256 {}), remembered in {}",
            self.key,
            format_fingerprint(&presented),
            self.path.display()
        );
        Ok(())
    }
}

/// One line of a known-hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    /// `host:port`.
    pub host: String,
    /// SHA-256 of the certificate.
    pub fingerprint: [u8; 32],
    /// 1-based line number in the file.
    pub line: usize,
}

/// Reads a known-hosts file (missing: empty). Each line is `host:port SHA256-FINGERPRINT`;
/// blank lines and `#` comments are ignored; anything else is an error naming the line, so a
/// damaged file never silently trusts or forgets a server.
pub fn read_known_hosts(path: &Path) -> Result<Vec<KnownHost>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("known hosts", e).with_detail(path.display().to_string())),
    };
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let parsed = match (words.next(), words.next(), words.next()) {
            (Some(host), Some(fp), None) if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) => {
                parse_fingerprint(fp.strip_prefix("sha256:").unwrap_or(fp)).map(|fingerprint| KnownHost {
                    host: host.to_owned(),
                    fingerprint,
                    line: index + 1,
                })
            }
            _ => None,
        };
        match parsed {
            Some(entry) => entries.push(entry),
            None => {
                return Err(Error::new(ErrorKind::Tls, "known hosts").with_detail(format!(
                    "{} line {}: expected `host:port SHA256-FINGERPRINT`, found {raw:?}",
                    path.display(),
                    index + 1
                )))
            }
        }
    }
    Ok(entries)
}

/// Appends `host fingerprint` to the file.
///
/// Safe against other writers, in this process or another: the read-modify-replace runs under
/// an advisory lock (`flock` on `<file>.lock` next to the file; the file itself cannot carry
/// the lock, since the rename replaces it), and the file is re-read under that lock, so a line
/// another client added meanwhile is kept. The new contents go to a temporary file in the same
/// directory that then replaces the old one, so readers (who take no lock) and a crash see the
/// old file or the new one, never half of one. The file is created 0600 and a missing
/// directory 0700, whatever the umask, as ssh does for its own.
///
/// The lock is held for one read, one small write and a rename; waiting for it blocks the
/// thread, which is why it is taken only after the handshake proved the server's key.
fn add_known_host(path: &Path, host: &str, fingerprint: &[u8; 32]) -> Result<()> {
    let io = |e: std::io::Error| Error::io("known hosts", e).with_detail(path.display().to_string());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_files::create_dir(dir).map_err(io)?;
    }
    let _lock = private_files::lock_beside(path).map_err(io)?;
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# async-rdp known hosts: one `host:port SHA256-FINGERPRINT` per line\n".to_owned()
        }
        Err(e) => return Err(io(e)),
    };
    // Another client may have remembered this server while the lock was not ours.
    let entries = read_known_hosts(path)?;
    if let Some(entry) = entries.iter().find(|e| e.host.eq_ignore_ascii_case(host)) {
        if entry.fingerprint == *fingerprint {
            return Ok(());
        }
        return Err(Error::new(ErrorKind::Tls, "known hosts").with_detail(format!(
            "while this client checked {host}, another one remembered a different certificate for it in {} \
             line {} (SHA-256 {}, this server presented {})",
            path.display(),
            entry.line,
            format_fingerprint(&entry.fingerprint),
            format_fingerprint(fingerprint)
        )));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{host} {}\n", format_fingerprint(fingerprint)));
    private_files::replace(path, text.as_bytes()).map_err(io)
}

/// Files only their owner may read: created 0600 (directories 0700) whatever the umask, locked
/// across processes, replaced atomically.
mod private_files {
    use std::fs::{self, File, OpenOptions};
    use std::io::{self, Write as _};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

    /// Creates `dir` (and missing parents) if it does not exist; the directories made here are
    /// 0700. An existing directory is left as its owner set it.
    pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir)?;
        // The umask may have taken bits from the mode above; set it exactly.
        #[cfg(unix)]
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// Opens (creating it 0600) `<path>.lock` and holds an exclusive advisory lock on it until
    /// the returned file is dropped. Two opens of the lock file conflict even inside one
    /// process, so this also orders threads.
    pub(super) fn lock_beside(path: &Path) -> io::Result<File> {
        let lock = open_private(&sibling(path, "lock"), false)?;
        lock.lock()?;
        Ok(lock)
    }

    /// Replaces `path` with `contents`: written to a temporary file beside it (0600), synced,
    /// then renamed over it. The temporary file is removed if anything fails.
    pub(super) fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
        // Unique within the process as well as across processes.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = sibling(
            path,
            &format!("tmp.{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)),
        );
        let written = open_private(&tmp, true).and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| fs::rename(&tmp, path));
        if renamed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        renamed
    }

    /// `path` with `.suffix` added to its file name (`known_hosts` → `known_hosts.lock`).
    fn sibling(path: &Path, suffix: &str) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".");
        name.push(suffix);
        path.with_file_name(name)
    }

    fn open_private(path: &Path, new: bool) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if new {
            options.create_new(true);
        } else {
            options.create(true);
        }
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(path)?;
        #[cfg(unix)]
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
}
