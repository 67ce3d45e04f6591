//! The known-hosts file: `host:port SHA256-FINGERPRINT` lines, read on every connection and
//! appended to on first contact (under a lock, atomically), and the check that consults it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustls::pki_types::CertificateDer;

use super::private_files;
use super::verify::{check_failed, CertCheck};
use super::{CertificateRefused, Fingerprint, FirstContact, OnFirstUse, Refusal};
use crate::{Error, ErrorKind, Result};

/// Known hosts as a certificate check, for one connection to `key` (`host:port`).
#[derive(Debug)]
pub(super) struct KnownHosts {
    pub(super) path: PathBuf,
    pub(super) key: String,
    pub(super) on_first_use: OnFirstUse,
    pub(super) redirected: bool,
    /// A first-use certificate accepted, to be written once the handshake signature checks.
    pub(super) pending: Mutex<Option<Fingerprint>>,
}

impl CertCheck for KnownHosts {
    fn check(&self, end_entity: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        let entries = read_known_hosts(&self.path).map_err(|e| check_failed(crate::report(&e)))?;
        if let Some(entry) = entries.iter().find(|e| e.host.eq_ignore_ascii_case(&self.key)) {
            if entry.fingerprint == presented {
                return Ok(());
            }
            return Err(self
                .refused(presented, Refusal::Changed)
                .expecting([entry.fingerprint])
                .in_file(&self.path, Some(entry.line))
                .into_rustls());
        }
        if !self.first_use_accepted(presented)? {
            return Err(self
                .refused(presented, Refusal::Unknown)
                .in_file(&self.path, None)
                .into_rustls());
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
        add_known_host(&self.path, &self.key, presented).map_err(|e| check_failed(crate::report(&e)))?;
        log::info!(
            "Trusting {} on first use (SHA-256 {presented}), remembered in {}",
            self.key,
            self.path.display()
        );
        Ok(())
    }
}

impl KnownHosts {
    fn refused(&self, presented: Fingerprint, reason: Refusal) -> CertificateRefused {
        CertificateRefused::new(&self.key, presented, reason)
    }

    /// Whether a server not in the file is trusted on first use; a redirected one never is.
    fn first_use_accepted(&self, presented: Fingerprint) -> std::result::Result<bool, rustls::Error> {
        let contact = FirstContact {
            host: self.key.clone(),
            fingerprint: presented,
            redirected: self.redirected,
        };
        Ok(match &self.on_first_use {
            OnFirstUse::Remember if !self.redirected => true,
            OnFirstUse::Remember => {
                return Err(self
                    .refused(presented, Refusal::RedirectedToUnknown)
                    .in_file(&self.path, None)
                    .into_rustls())
            }
            OnFirstUse::Ask(ask) => ask(&contact),
            OnFirstUse::Refuse => false,
        })
    }
}

/// One line of a known-hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    /// `host:port`.
    pub host: String,
    /// SHA-256 of the certificate.
    pub fingerprint: Fingerprint,
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
            (Some(host), Some(fp), None) if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) => fp
                .strip_prefix("sha256:")
                .unwrap_or(fp)
                .parse()
                .ok()
                .map(|fingerprint| KnownHost {
                    host: host.to_owned(),
                    fingerprint,
                    line: index + 1,
                }),
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
fn add_known_host(path: &Path, host: &str, fingerprint: Fingerprint) -> Result<()> {
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
        if entry.fingerprint == fingerprint {
            return Ok(());
        }
        return Err(Error::new(ErrorKind::Tls, "known hosts").with_detail(format!(
            "while this client checked {host}, another one remembered a different certificate for it in {} \
             line {} (SHA-256 {}, this server presented {})",
            path.display(),
            entry.line,
            entry.fingerprint,
            fingerprint
        )));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{host} {fingerprint}\n"));
    private_files::replace(path, text.as_bytes()).map_err(io)
}
