//! Trust policies end to end: `connect` against the demo server over real loopback TCP and
//! real TLS (NLA unless said otherwise, so a refused certificate also means the password never
//! left), client and server on one thread.
//!
//! Every test uses a known-hosts file of its own under the temporary directory, never the real
//! `$HOME`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_rdp::trust::{read_known_hosts, FirstContact};
use async_rdp::trust::{Fingerprint, Refusal};
use async_rdp::{connect, ClientConfig, ClientSession, Error, ErrorKind, OnFirstUse, Trust};
use async_rdp_demo_server::testing::{block_on, client_config, BoxError, Serving, TestResult};
use async_rdp_demo_server::{Command, Config, DemoServer, Identity, ServerEvent};
use futures::channel::mpsc::unbounded;
use futures::StreamExt as _;
use log::Level;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;

/// How long a test body may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A known-hosts path of the test's own, in a directory that does not exist yet (so the
/// client has to create it); the directory is removed when this is dropped.
struct KnownHostsFile {
    dir: PathBuf,
    path: PathBuf,
}

impl KnownHostsFile {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("async-rdp-trust-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("known_hosts");
        Self { dir, path }
    }

    fn text(&self) -> TestResult<String> {
        Ok(std::fs::read_to_string(&self.path)?)
    }

    /// The names in the directory: the file, and no leftover temporary file.
    fn dir_entries(&self) -> TestResult<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

impl Drop for KnownHostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client configuration for the demo server's user, with `trust`.
fn client(server: &DemoServer, trust: Trust) -> ClientConfig {
    client_config(server).with_trust(trust)
}

fn addr(server: &DemoServer) -> TestResult<String> {
    Ok(server.local_addr()?.to_string())
}

fn fingerprint(server: &DemoServer) -> Fingerprint {
    Fingerprint::of(server.certificate())
}

/// How one connection attempt ended on both sides.
struct Attempt {
    /// The client's `connect`; on success the server has also reported the session.
    client: async_rdp::Result<ClientSession>,
    /// How the server's side ended, if it did (`None`: it is still serving the session).
    server: Option<async_rdp::Result<()>>,
}

impl Attempt {
    /// The client's error; fails the test if the client connected.
    fn refused(self, what: &str) -> TestResult<(Error, Option<async_rdp::Result<()>>)> {
        match self.client {
            Ok(_) => Err(format!("{what}: connected, expected a refusal").into()),
            Err(e) => Ok((e, self.server)),
        }
    }

    /// Fails the test with the client's whole error if it did not connect.
    fn connected(self, what: &str) -> TestResult<ClientSession> {
        self.client
            .map_err(|e| format!("{what}: expected to connect, got: {}", async_rdp::report(&e)).into())
    }
}

/// One connection attempt of `config` to `server`, both on this thread. On success, waits
/// until the server reports the session; on failure, runs the server's side to its end.
async fn attempt(server: &DemoServer, config: ClientConfig) -> TestResult<Attempt> {
    let addr = addr(server)?;
    let (events, mut reported) = unbounded::<ServerEvent>();
    let (_commands, received) = unbounded::<Command>();
    let mut serving = Serving::new(server.serve_one(events, received));
    let client = async {
        let session = connect(&addr, config).await?;
        while let Some(event) = reported.next().await {
            if matches!(event, ServerEvent::Connected { .. }) {
                return Ok(session);
            }
        }
        Err(Error::new(ErrorKind::Closed, "demo server").with_detail("it stopped before reporting the session"))
    };
    let client_end = serving.alongside(client).await;
    let server_end = if client_end.is_err() {
        Some(async_std::future::timeout(Duration::from_secs(10), serving.finish()).await?)
    } else {
        serving.ended()
    };
    Ok(Attempt {
        client: client_end,
        server: server_end,
    })
}

/// Checks that a refusal happened in the TLS phase and that the server's side died in its TLS
/// handshake, before NLA: the password never left the client.
fn assert_refused_in_tls(err: &Error, server: Option<async_rdp::Result<()>>) {
    let report = async_rdp::report(err);
    assert_eq!(err.kind(), ErrorKind::Tls, "{report}");
    assert_eq!(err.phase(), Some(async_rdp::Phase::Tls), "{report}");
    match server {
        Some(Err(e)) => assert_eq!(e.context(), "server tls handshake", "{}", async_rdp::report(&e)),
        Some(Ok(())) => panic!("the server served a session to a refused client"),
        None => panic!("the server is still serving a refused client"),
    }
}

/// Binds a demo server to `addr` (the address of one just dropped), retrying briefly in case
/// the port is not free again yet.
async fn rebind(addr: SocketAddr, config: Config) -> TestResult<DemoServer> {
    let mut tries = 0;
    loop {
        match DemoServer::bind_to(addr, config.clone()).await {
            Ok(server) => return Ok(server),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
                async_std::task::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A test certificate authority made with rcgen.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> TestResult<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn store(&self) -> TestResult<RootCertStore> {
        let mut store = RootCertStore::empty();
        store.add(self.der())?;
        Ok(store)
    }

    /// A server identity signed by this CA, for these names (DNS names or IP addresses).
    fn leaf(&self, names: &[&str]) -> TestResult<Identity> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "async-rdp test server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Identity::new(
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }
}

fn server_with(identity: Identity) -> Config {
    Config {
        identity: Some(identity),
        ..Config::default()
    }
}

#[test]
fn first_use_is_stored() -> TestResult {
    let file = KnownHostsFile::new("first-use");
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let attempt = attempt(&server, client(&server, Trust::known_hosts_at(&file.path))).await?;
        drop(attempt.connected("first contact")?);

        let key = addr(&server)?;
        let entries = read_known_hosts(&file.path)?;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].host, key);
        assert_eq!(entries[0].fingerprint, fingerprint(&server));

        // Human-readable: a comment saying what the file is, then `host:port AB:CD:...`.
        let text = file.text()?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with('#'), "no comment header: {text}");
        assert_eq!(lines[1], format!("{key} {}", fingerprint(&server)));
        assert_eq!(entries[0].line, 2);
        assert!(text.ends_with('\n'));
        // Written atomically: no temporary file left behind, only the lock file that orders
        // writers.
        assert_eq!(file.dir_entries()?, ["known_hosts", "known_hosts.lock"]);
        // Private, whatever the umask (as ssh keeps its own).
        assert_eq!(mode(&file.path)?, 0o600);
        assert_eq!(mode(&file.dir)?, 0o700);
        Ok(())
    })
}

#[test]
fn same_certificate_is_accepted_again() -> TestResult {
    let file = KnownHostsFile::new("same-cert");
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let trust = Trust::known_hosts_at(&file.path);
        drop(
            attempt(&server, client(&server, trust.clone()))
                .await?
                .connected("first")?,
        );
        let stored = file.text()?;

        // The file is known now: even a policy that refuses newcomers accepts the server.
        drop(attempt(&server, client(&server, trust)).await?.connected("second")?);
        let strict = Trust::known_hosts_at(&file.path).on_first_use(OnFirstUse::Refuse);
        drop(
            attempt(&server, client(&server, strict))
                .await?
                .connected("third, strict")?,
        );

        assert_eq!(file.text()?, stored, "the file changed");
        assert_eq!(file.dir_entries()?, ["known_hosts", "known_hosts.lock"]);
        Ok(())
    })
}

#[test]
fn changed_certificate_is_refused() -> TestResult {
    let file = KnownHostsFile::new("changed-cert");
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let old = fingerprint(&server);
        let addr = server.local_addr()?;
        drop(
            attempt(&server, client(&server, Trust::known_hosts_at(&file.path)))
                .await?
                .connected("first")?,
        );
        let stored = file.text()?;
        drop(server);

        // "The same host": same address and port, another certificate.
        let server = rebind(addr, Config::default()).await?;
        let new = fingerprint(&server);
        assert_ne!(old, new);
        let (err, server_end) = attempt(&server, client(&server, Trust::known_hosts_at(&file.path)))
            .await?
            .refused("changed certificate")?;
        assert_refused_in_tls(&err, server_end);

        let report = async_rdp::report(&err);
        assert!(
            report.contains(&old.to_string()),
            "stored fingerprint missing: {report}"
        );
        assert!(
            report.contains(&new.to_string()),
            "presented fingerprint missing: {report}"
        );
        assert!(report.contains("CHANGED"), "{report}");
        // How to accept the new one: which line of which file to delete.
        assert!(
            report.contains(&file.path.display().to_string()),
            "file missing: {report}"
        );
        assert!(report.contains("delete line 2"), "line missing: {report}");

        // The same as a value, for an application that asks its user (issue 11).
        let refused = err
            .certificate_refused()
            .ok_or("no CertificateRefused behind the error")?;
        assert_eq!(refused.reason(), Refusal::Changed);
        assert_eq!(refused.host(), addr.to_string());
        assert_eq!(refused.presented(), new);
        assert_eq!(refused.expected(), [old]);
        assert_eq!(refused.known_hosts_file(), Some(file.path.as_path()));
        assert_eq!(refused.known_hosts_line(), Some(2));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Tls));

        assert_eq!(file.text()?, stored, "a refused certificate changed the file");
        Ok(())
    })
}

#[test]
fn corrupt_file_is_refused() -> TestResult {
    let file = KnownHostsFile::new("corrupt");
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let good = format!("{} {}", addr(&server)?, fingerprint(&server));
        let text = format!("# known hosts\n{good}\nthis line is garbage\n");
        std::fs::create_dir_all(&file.dir)?;
        std::fs::write(&file.path, &text)?;

        let err = read_known_hosts(&file.path).err().ok_or("read a corrupt file")?;
        let report = async_rdp::report(&err);
        assert!(report.contains("line 3"), "{report}");

        // Even though line 2 names this very server, a damaged file trusts nothing.
        let (err, server_end) = attempt(&server, client(&server, Trust::known_hosts_at(&file.path)))
            .await?
            .refused("corrupt file")?;
        assert_refused_in_tls(&err, server_end);
        let report = async_rdp::report(&err);
        assert!(report.contains("line 3"), "{report}");
        assert!(report.contains(&file.path.display().to_string()), "{report}");
        assert!(report.contains("garbage"), "{report}");

        assert_eq!(file.text()?, text, "the corrupt file was rewritten");
        Ok(())
    })
}

#[test]
fn on_first_use_refuse_and_ask() -> TestResult {
    let file = KnownHostsFile::new("first-use-policies");
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let key = addr(&server)?;
        let presented = fingerprint(&server);

        // Refuse: the server is unknown, so it is refused, and the file is not even created.
        let refuse = Trust::known_hosts_at(&file.path).on_first_use(OnFirstUse::Refuse);
        let (err, server_end) = attempt(&server, client(&server, refuse)).await?.refused("Refuse")?;
        assert_refused_in_tls(&err, server_end);
        let report = async_rdp::report(&err);
        assert!(report.contains(&presented.to_string()), "{report}");
        assert!(!file.path.exists(), "Refuse created the file");
        let refused = err
            .certificate_refused()
            .ok_or("no CertificateRefused behind the error")?;
        assert_eq!(
            (refused.reason(), refused.host(), refused.presented()),
            (Refusal::Unknown, key.as_str(), presented)
        );
        assert_eq!(refused.known_hosts_line(), None);

        // Ask, answered no: refused, nothing written.
        let asked = Arc::new(Mutex::new(Vec::<FirstContact>::new()));
        let ask = |answer: bool| {
            let asked = Arc::clone(&asked);
            OnFirstUse::Ask(Arc::new(move |contact: &FirstContact| {
                asked.lock().unwrap().push(contact.clone());
                answer
            }))
        };
        let no = Trust::known_hosts_at(&file.path).on_first_use(ask(false));
        let (err, server_end) = attempt(&server, client(&server, no)).await?.refused("Ask -> false")?;
        assert_refused_in_tls(&err, server_end);
        assert!(!file.path.exists(), "a refused newcomer was written down");

        // Ask, answered yes: accepted and remembered.
        let yes = Trust::known_hosts_at(&file.path).on_first_use(ask(true));
        drop(attempt(&server, client(&server, yes)).await?.connected("Ask -> true")?);
        let entries = read_known_hosts(&file.path)?;
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(
            (entries[0].host.as_str(), entries[0].fingerprint),
            (key.as_str(), presented)
        );

        // The callback was asked twice, about this server and its certificate, not redirected.
        let asked = asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 2, "{asked:?}");
        for contact in &asked {
            assert_eq!(contact.host, key);
            assert_eq!(contact.fingerprint, presented);
            assert!(!contact.redirected);
        }

        // Now known: accepted without asking.
        let never = Trust::known_hosts_at(&file.path).on_first_use(OnFirstUse::Ask(Arc::new(|_: &FirstContact| {
            panic!("asked about a known server")
        })));
        drop(attempt(&server, client(&server, never)).await?.connected("known")?);
        Ok(())
    })
}

#[test]
fn pinned_fingerprints() -> TestResult {
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let presented = fingerprint(&server);

        let pinned = Trust::pinned([Fingerprint::from([0x5A; 32]), presented]);
        drop(attempt(&server, client(&server, pinned)).await?.connected("pinned")?);

        let (err, server_end) = attempt(&server, client(&server, Trust::pinned([Fingerprint::from([0x5A; 32])])))
            .await?
            .refused("another pin")?;
        assert_refused_in_tls(&err, server_end);
        let refused = err
            .certificate_refused()
            .ok_or("no CertificateRefused behind the error")?;
        assert_eq!(refused.reason(), Refusal::NotPinned);
        assert_eq!(refused.presented(), presented);
        assert_eq!(refused.expected(), [Fingerprint::from([0x5A; 32])]);
        let report = async_rdp::report(&err);
        assert!(report.contains(&presented.to_string()), "{report}");

        // No pin at all trusts nothing.
        let (err, server_end) = attempt(&server, client(&server, Trust::pinned([])))
            .await?
            .refused("no pin")?;
        assert_refused_in_tls(&err, server_end);
        Ok(())
    })
}

#[test]
fn root_store() -> TestResult {
    block_on(TEST_TIMEOUT, async {
        let ca = Ca::new("async-rdp test CA")?;
        let other = Ca::new("some other CA")?;
        let identity = ca.leaf(&["localhost", "127.0.0.1"])?;
        let server = DemoServer::bind(server_with(identity.clone())).await?;
        assert_eq!(
            server.certificate(),
            &identity.chain[0],
            "the server ignored its identity"
        );

        // Not signed by any root in the store.
        let (err, server_end) = attempt(&server, client(&server, Trust::roots(other.store()?)))
            .await?
            .refused("other CA")?;
        assert_refused_in_tls(&err, server_end);
        let (err, server_end) = attempt(&server, client(&server, Trust::roots(RootCertStore::empty())))
            .await?
            .refused("empty store")?;
        assert_refused_in_tls(&err, server_end);

        // Signed by a trusted root, and the SAN names 127.0.0.1, which is what the client
        // verifies since it connects to "127.0.0.1:port".
        let mut both = other.store()?;
        both.add(ca.der())?;
        drop(
            attempt(&server, client(&server, Trust::roots(both)))
                .await?
                .connected("test CA")?,
        );

        // The system store plus the test CA as an extra root.
        match Trust::system_roots([ca.der()]) {
            Ok(trust) => drop(
                attempt(&server, client(&server, trust))
                    .await?
                    .connected("system roots")?,
            ),
            Err(e) => {
                // Only acceptable on a machine without any system trust store.
                let native = rustls_native_certs::load_native_certs();
                assert!(
                    native.certs.is_empty(),
                    "system_roots failed with {} system roots: {}",
                    native.certs.len(),
                    async_rdp::report(&e)
                );
            }
        }
        Ok(())
    })
}

#[test]
fn root_store_checks_the_name() -> TestResult {
    block_on(TEST_TIMEOUT, async {
        let ca = Ca::new("async-rdp test CA")?;
        // A valid chain, but for another name than the one the client asked for.
        let server = DemoServer::bind(server_with(ca.leaf(&["rdp.example.test"])?)).await?;
        let (err, server_end) = attempt(&server, client(&server, Trust::roots(ca.store()?)))
            .await?
            .refused("wrong name")?;
        assert_refused_in_tls(&err, server_end);
        Ok(())
    })
}

/// Log records this test binary captured (warnings and above).
static RECORDS: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let message = record.args().to_string();
            RECORDS.lock().unwrap().push((record.level(), message));
        }
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("another logger is installed");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The one use of `Trust::dangerous_accept_any_certificate` in the tests and examples.
#[test]
fn dangerous_mode_connects_and_warns() -> TestResult {
    capture_logs();
    block_on(TEST_TIMEOUT, async {
        let server = DemoServer::bind(Config::default()).await?;
        let presented = fingerprint(&server).to_string();
        let trust = Trust::dangerous_accept_any_certificate();
        assert!(format!("{trust:?}").contains("Dangerous"), "{trust:?}");
        drop(attempt(&server, client(&server, trust)).await?.connected("dangerous")?);

        let records = RECORDS.lock().unwrap().clone();
        let warned = records.iter().any(|(level, message)| {
            *level == Level::Warn && message.contains("verification is disabled") && message.contains(&presented)
        });
        assert!(warned, "no warning about disabled verification in {records:#?}");
        Ok(())
    })
}

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> TestResult<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

/// How many clients make first contact at once in the concurrency tests.
const CONCURRENT_CLIENTS: usize = 16;

/// Issue 10: sixteen client *processes* making first contact with sixteen servers (distinct
/// certificates) at the same moment, sharing one known-hosts file, keep all sixteen lines.
/// Without a lock around the read-modify-rename, concurrent renames dropped each other's
/// lines (2–8 of 16 were kept). The children are this test binary again, running
/// [`first_contact_child`].
#[test]
fn issue_10_concurrent_first_contacts_keep_every_line() -> TestResult {
    let file = KnownHostsFile::new("concurrent");
    let background = serve_in_background(CONCURRENT_CLIENTS)?;
    let exe = std::env::current_exe()?;
    let children: Vec<_> = background
        .servers
        .iter()
        .map(|(addr, _)| {
            // Through the shell for its `umask`: a permissive one must not make the file or its
            // directory readable by others.
            std::process::Command::new("sh")
                .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
                .arg(&exe)
                .args(["--exact", "first_contact_child", "--ignored", "--nocapture"])
                .env(CHILD_TARGET, addr)
                .env(CHILD_KNOWN_HOSTS, &file.path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.contains("1 passed"),
            "a child failed: {said}"
        );
    }
    assert_every_line_kept(&file, &background.servers)?;
    assert_eq!(mode(&file.path)?, 0o600);
    assert_eq!(mode(&file.dir)?, 0o700);
    Ok(())
}

/// The same from threads of one process: the lock also orders writers inside a process.
#[test]
fn issue_10_concurrent_first_contacts_from_threads_keep_every_line() -> TestResult {
    let file = KnownHostsFile::new("concurrent-threads");
    let background = serve_in_background(CONCURRENT_CLIENTS)?;
    let start = Arc::new(std::sync::Barrier::new(CONCURRENT_CLIENTS));
    let threads: Vec<_> = background
        .servers
        .iter()
        .map(|(addr, _)| {
            let (addr, path, start) = (addr.clone(), file.path.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                first_contact(&addr, &path).map_err(|e| e.to_string())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a client thread panicked")??;
    }
    assert_every_line_kept(&file, &background.servers)
}

/// The file holds exactly one line per server, with its fingerprint, and no temporary file
/// is left beside it.
fn assert_every_line_kept(file: &KnownHostsFile, servers: &[(String, Fingerprint)]) -> TestResult {
    let mut kept: Vec<_> = read_known_hosts(&file.path)?
        .into_iter()
        .map(|e| (e.host, e.fingerprint))
        .collect();
    kept.sort();
    let mut expected = servers.to_vec();
    expected.sort();
    let text = file.text()?;
    assert_eq!(kept.len(), expected.len(), "lines lost: {text}");
    assert_eq!(kept, expected, "{text}");
    assert_eq!(
        file.dir_entries()?,
        ["known_hosts", "known_hosts.lock"],
        "a temporary file was left"
    );
    Ok(())
}

const CHILD_TARGET: &str = "ASYNC_RDP_TEST_CHILD_TARGET";
const CHILD_KNOWN_HOSTS: &str = "ASYNC_RDP_TEST_CHILD_KNOWN_HOSTS";

/// The child process of [`issue_10_concurrent_first_contacts_keep_every_line`]; ignored on its
/// own (it needs the parent's server and file).
#[test]
#[ignore = "a child process of issue_10_concurrent_first_contacts_keep_every_line"]
fn first_contact_child() -> TestResult {
    let addr = std::env::var(CHILD_TARGET).map_err(|_| format!("{CHILD_TARGET} is not set: run by its parent"))?;
    let path = PathBuf::from(std::env::var(CHILD_KNOWN_HOSTS)?);
    first_contact(&addr, &path)
}

/// One first contact with the demo server at `addr` (default user), remembered in `path`; the
/// session is dropped as soon as it is up.
fn first_contact(addr: &str, path: &std::path::Path) -> TestResult {
    let defaults = Config::default();
    let config = ClientConfig::new(&defaults.username, defaults.password.as_str())
        .with_trust(Trust::known_hosts_at(path).on_first_use(OnFirstUse::Remember));
    block_on(TEST_TIMEOUT, async move {
        drop(connect(addr, config).await?);
        Ok(())
    })
}

/// `count` demo servers (each with its own fresh self-signed certificate), each serving one
/// connection on a background thread until this is dropped.
struct Background {
    /// Their addresses and certificate fingerprints.
    servers: Vec<(String, Fingerprint)>,
    stop: Option<futures::channel::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

fn serve_in_background(count: usize) -> TestResult<Background> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        async_std::task::block_on(async move {
            let mut servers = Vec::new();
            for _ in 0..count {
                servers.push(DemoServer::bind(Config::default()).await?);
            }
            let found: Vec<_> = servers
                .iter()
                .map(|s| Ok::<_, std::io::Error>((s.local_addr()?.to_string(), fingerprint(s))))
                .collect::<Result<_, _>>()?;
            let _ = ready_tx.send(found);
            // The channels' other ends stay open while the servers run.
            let mut channels = Vec::new();
            let serving = futures::future::join_all(servers.iter().map(|server| {
                let (events, reported) = unbounded::<ServerEvent>();
                let (commands, received) = unbounded::<Command>();
                channels.push((reported, commands));
                server.serve_one(events, received)
            }));
            // Until the test is done: the servers' results do not matter (each client drops
            // its session as soon as it is up).
            futures::future::select(Box::pin(serving), stop_rx).await;
            Ok::<(), BoxError>(())
        })
        .map_err(|e| e.to_string())
    });
    let servers = ready_rx.recv().map_err(|_| "the servers did not start")?;
    Ok(Background {
        servers,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
