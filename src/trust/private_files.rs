//! Files only their owner may read: created 0600 (directories 0700) whatever the umask, locked
//! across processes, replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

/// Creates `dir` (and missing parents) if it does not exist; the directories made here are
/// 0700. An existing directory is left as its owner set it.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
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
pub(crate) fn lock_beside(path: &Path) -> io::Result<File> {
    let lock = open_private(&sibling(path, "lock"), false)?;
    lock.lock()?;
    Ok(lock)
}

/// Replaces `path` with `contents`: written to a temporary file beside it (0600), synced,
/// then renamed over it. The temporary file is removed if anything fails.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
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
