//! Test and demo support, not part of the demo server proper: the one harness that async-rdp's
//! integration tests (and this crate's own) share, as quinn-proto's `tests/util.rs` (`Pair`)
//! is for quinn-proto, so that a test states its case in a few lines instead of rebuilding the
//! client/server loop.
//!
//! - What a test returns: [`TestResult`] (and [`BoxError`]).
//! - A client for a demo server: [`client_config`] (the server's user, trusting exactly its
//!   certificate), [`client_config_for`] and [`pinned`] when only the configuration or the
//!   certificate is at hand, and [`connect_with_drivers`] for the low-level drivers instead of
//!   [`async_rdp::connect`].
//! - A client and a demo server on the caller's one thread: [`run`] starts a server with a
//!   [`Config`] and runs a client closure against it, handing it a [`Server`] to wait for the
//!   server's [`ServerEvent`]s and send it [`Command`]s. For a server future of the test's
//!   own (a script, several connections, a wrapper), [`alongside`] polls it while a client
//!   runs, and [`Serving`] also keeps how it ended; [`reporting_failure`] says on stderr how
//!   a server failed.
//! - Running a test body: [`block_on`], on this thread, boxed and bounded.
//! - Looking at the client's session: [`first_graphics`], [`drain_until_quiet`],
//!   [`wait_for_pattern`], [`first_mismatch`] and [`pattern_mismatches`] (the framebuffer
//!   against [`pattern_pixel`] outside [`animated_region`]).
//!
//! ```no_run
//! use async_rdp_demo_server::testing::{self, TestResult};
//! use async_rdp_demo_server::{Config, ServerEvent};
//!
//! fn nla_session_draws_the_pattern() -> TestResult {
//!     testing::run(Config::default(), |mut server| async move {
//!         let mut session = async_rdp::connect(server.addr(), server.client_config()).await?;
//!         server
//!             .wait_for(|e| matches!(e, ServerEvent::FrameSent { .. }).then_some(()))
//!             .await?;
//!         testing::wait_for_pattern(&mut session).await
//!     })
//! }
//! ```
//!
//! Futures are boxed where they meet ([`block_on`], [`Serving`]): a debug build copies a
//! future through every layer that polls it, and the client's and the server's futures
//! together would overflow a test thread's stack.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_rdp::connector::{connect_begin, connect_finalize, mark_as_upgraded, NoNetworkClient};
use async_rdp::framing::{LocalFramed, Prefixed};
use async_rdp::ironrdp_connector::{ClientConnector, ConnectionOutcome};
use async_rdp::trust::Fingerprint;
use async_rdp::{tls, ClientConfig, ClientSession, Event, Target, Trust};
use async_std::net::TcpStream;
use futures::channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures::StreamExt as _;
use rustls::pki_types::CertificateDer;

use crate::{animated_region, pattern_pixel, Command, Config, DemoServer, ServerEvent};

/// Any error, as a test reports it.
pub type BoxError = Box<dyn std::error::Error>;

/// What a test (or a test's helper, with `T`) returns.
pub type TestResult<T = ()> = Result<T, BoxError>;

/// How long [`run`] gives a client and its server, all told.
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Server::wait_for`] and [`wait_for_event`] wait for a matching event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Client configurations

/// A client configuration for `server`'s user that trusts exactly `server`'s certificate.
pub fn client_config(server: &DemoServer) -> ClientConfig {
    client_config_for(server.config(), server.certificate())
}

/// A client configuration for the user of a server configured with `config`, trusting exactly
/// `certificate` (for a server on another thread or in another process).
pub fn client_config_for(config: &Config, certificate: &CertificateDer<'_>) -> ClientConfig {
    ClientConfig::new(&config.username, config.password.as_str()).with_trust(pinned(certificate))
}

/// Trusts `certificate` and no other.
pub fn pinned(certificate: &CertificateDer<'_>) -> Trust {
    Trust::pinned([Fingerprint::of(certificate)])
}

/// The TLS stream of [`connect_with_drivers`].
pub type DriverStream = futures_rustls::client::TlsStream<Prefixed<TcpStream>>;

/// Runs the client side of the whole connection sequence against `server` with async-rdp's
/// driver functions (negotiation, a TLS upgrade pinned to the server's certificate, NLA if
/// negotiated, the rest of the sequence), not [`async_rdp::connect`]. Returns the framed TLS
/// stream, positioned at the start of the active session, and the outcome.
pub async fn connect_with_drivers(
    server: &DemoServer,
    config: ClientConfig,
) -> async_rdp::Result<(LocalFramed<DriverStream>, ConnectionOutcome)> {
    let addr = server.local_addr().map_err(|e| async_rdp::Error::io("test", e))?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| async_rdp::Error::io("tcp connect", e))?;
    let local = tcp.local_addr().map_err(|e| async_rdp::Error::io("tcp connect", e))?;
    let mut connector = ClientConnector::new(config.connector_config(), local);
    let mut framed = LocalFramed::new(tcp);

    let should_upgrade = connect_begin(&mut framed, &mut connector).await?;
    let verifier = pinned(server.certificate()).verifier(&Target::new("127.0.0.1", addr.port()))?;
    let upgraded = tls::upgrade(framed, "127.0.0.1", verifier).await?;
    let token = mark_as_upgraded(should_upgrade, &mut connector)?;
    let mut framed = LocalFramed::new(upgraded.stream);
    let outcome = connect_finalize(
        &mut framed,
        connector,
        token,
        &mut NoNetworkClient,
        "127.0.0.1".into(),
        upgraded.server_public_key,
        None,
    )
    .await?;
    Ok((framed, outcome))
}

// ---------------------------------------------------------------------------------------------
// Running a test on this thread

/// Runs `test` on this thread (under async-std's `block_on`), failing it after `within`.
pub fn block_on<T>(within: Duration, test: impl Future<Output = TestResult<T>>) -> TestResult<T> {
    // On the heap: see the module docs.
    let test = Box::pin(test);
    async_std::task::block_on(async { async_std::future::timeout(within, test).await? })
}

/// Runs `client` to its end, polling `serving` meanwhile on the same thread (until the
/// server's own end); a server still running is dropped when the client is done. For the
/// server's end, use [`Serving`].
pub async fn alongside<S: Future, C: Future>(serving: S, client: C) -> C::Output {
    Serving::new(serving).alongside(client).await
}

/// A server future polled alongside a client on the same thread; it keeps the server's end
/// if that comes first.
///
/// Bind it to a variable of its own (`let mut serving = Serving::new(...)`) when it borrows a
/// local: as a temporary at the end of a block it would outlive that local.
pub struct Serving<S: Future> {
    future: Pin<Box<S>>,
    end: Option<S::Output>,
}

impl<S: Future> Serving<S> {
    /// Starts nothing yet: `serving` is polled by [`alongside`](Self::alongside) and
    /// [`finish`](Self::finish).
    pub fn new(serving: S) -> Self {
        Self {
            future: Box::pin(serving),
            end: None,
        }
    }

    /// Runs `client` to its end, polling the server meanwhile (until the server's own end,
    /// which is kept). Callable again with another client while the server still runs.
    pub async fn alongside<C: Future>(&mut self, client: C) -> C::Output {
        let mut client = Box::pin(client);
        futures::future::poll_fn(|cx| {
            if self.end.is_none() {
                if let Poll::Ready(end) = self.future.as_mut().poll(cx) {
                    self.end = Some(end);
                }
            }
            client.as_mut().poll(cx)
        })
        .await
    }

    /// The server's end if it came; a server still running is dropped.
    pub fn ended(self) -> Option<S::Output> {
        self.end
    }

    /// The server's end: the one kept, or else the server runs on until it ends (without a
    /// bound: wrap this in a timeout).
    pub async fn finish(self) -> S::Output {
        match self.end {
            Some(end) => end,
            None => self.future.await,
        }
    }
}

/// `serving`, which says on stderr how it failed as soon as it does (the test's reader wants to
/// know; what the test checks is the client's view).
pub async fn reporting_failure<E: Into<BoxError>>(serving: impl Future<Output = Result<(), E>>) {
    if let Err(e) = serving.await {
        let e: BoxError = e.into();
        eprintln!("demo server ended with: {}", async_rdp::report(&*e));
    }
}

// ---------------------------------------------------------------------------------------------
// A client and a demo server

/// The test's side of a demo server started by [`run`]: where it listens, what it reports, and
/// a way to command it.
pub struct Server {
    addr: String,
    local_addr: SocketAddr,
    config: Config,
    certificate: CertificateDer<'static>,
    events: UnboundedReceiver<ServerEvent>,
    commands: UnboundedSender<Command>,
}

impl Server {
    /// The address to connect to, as [`async_rdp::connect`] takes it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The server's certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// A client configuration for the server's user that trusts exactly its certificate.
    pub fn client_config(&self) -> ClientConfig {
        client_config_for(&self.config, &self.certificate)
    }

    /// The next server event that `pick` accepts, skipping others, within [`EVENT_TIMEOUT`].
    pub async fn wait_for<T>(&mut self, pick: impl FnMut(&ServerEvent) -> Option<T>) -> TestResult<T> {
        wait_for_event(&mut self.events, pick).await
    }

    /// Sends the server a command.
    pub fn command(&self, command: Command) -> TestResult {
        self.commands.unbounded_send(command)?;
        Ok(())
    }
}

/// Runs `client` against a fresh demo server configured with `config`, both on this thread;
/// the server serves one connection ([`DemoServer::serve_one`]) and is dropped when the client
/// is done (how it ended, if it failed, goes to stderr). The whole test is bounded by
/// [`PAIR_TIMEOUT`].
pub fn run<F, Fut>(config: Config, client: F) -> TestResult
where
    F: FnOnce(Server) -> Fut,
    Fut: Future<Output = TestResult>,
{
    block_on(PAIR_TIMEOUT, async move {
        let demo = DemoServer::bind(config).await?;
        let (event_tx, events) = mpsc::unbounded();
        let (commands, command_rx) = mpsc::unbounded();
        let local_addr = demo.local_addr()?;
        let server = Server {
            addr: local_addr.to_string(),
            local_addr,
            config: demo.config().clone(),
            certificate: demo.certificate().clone(),
            events,
            commands,
        };
        alongside(reporting_failure(demo.serve_one(event_tx, command_rx)), client(server)).await
    })
}

/// The next event of `events` that `pick` accepts, skipping others, within [`EVENT_TIMEOUT`].
pub async fn wait_for_event<T>(
    events: &mut UnboundedReceiver<ServerEvent>,
    mut pick: impl FnMut(&ServerEvent) -> Option<T>,
) -> TestResult<T> {
    let wait = async {
        while let Some(event) = events.next().await {
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
        }
        Err::<T, BoxError>("demo server stopped reporting".into())
    };
    async_std::future::timeout(EVENT_TIMEOUT, wait).await?
}

// ---------------------------------------------------------------------------------------------
// The client's session

/// Processes events until the first graphics update, waiting at most `each` for every event
/// (`None`: as long as it takes, for a runtime without async-std's timers).
pub async fn first_graphics(session: &mut ClientSession, each: Option<Duration>) -> TestResult {
    loop {
        let event = match each {
            Some(each) => async_std::future::timeout(each, session.next_event()).await?,
            None => session.next_event().await,
        };
        match event? {
            Event::Graphics(_) => return Ok(()),
            Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
            _ => {}
        }
    }
}

/// The size of the next [`Event::Resized`], within 20 s (a real server's resize can take
/// seconds); a disconnection first is an error.
pub async fn wait_for_resize(session: &mut ClientSession) -> TestResult<(u16, u16)> {
    loop {
        match async_std::future::timeout(Duration::from_secs(20), session.next_event()).await {
            Err(_) => return Err("no Resized within 20 s".into()),
            Ok(event) => match event? {
                Event::Resized { width, height } => return Ok((width, height)),
                Event::Disconnected(reason) => return Err(format!("disconnected: {reason:?}").into()),
                _ => {}
            },
        }
    }
}

/// Processes events until none has come for `quiet`.
pub async fn drain_until_quiet(session: &mut ClientSession, quiet: Duration) -> TestResult {
    loop {
        match async_std::future::timeout(quiet, session.next_event()).await {
            Err(_) => return Ok(()),
            Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
        }
    }
}

/// Reads events until the session has been quiet for a moment, then checks that the
/// framebuffer shows the demo pattern everywhere outside the animated region; retries until it
/// does, or fails after 10 s with the first differing pixel.
pub async fn wait_for_pattern(session: &mut ClientSession) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        drain_until_quiet(session, Duration::from_millis(200)).await?;
        let Some(mismatch) = first_mismatch(session) else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(mismatch.to_string().into());
        }
    }
}

/// A pixel that differs from the demo pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
    /// What the client shows there (`None`: outside its framebuffer).
    pub got: Option<[u8; 4]>,
    /// What the server drew, [`pattern_pixel`].
    pub want: [u8; 4],
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { x, y, got, want } = self;
        write!(f, "pixel ({x},{y}) is {got:?}, the server drew {want:?}")
    }
}

/// The first pixel of `session`'s framebuffer, outside [`animated_region`], that is not the
/// demo pattern's.
pub fn first_mismatch(session: &ClientSession) -> Option<Mismatch> {
    let fb = session.framebuffer();
    let mut mismatches = pattern_mismatches(fb.width, fb.height, |x, y| fb.pixel(x, y));
    mismatches.next()
}

/// The pixels of a `width` x `height` picture, outside [`animated_region`], that differ from
/// [`pattern_pixel`], row by row; `pixel` reads the picture (RGBA).
pub fn pattern_mismatches(
    width: u16,
    height: u16,
    pixel: impl Fn(u16, u16) -> Option<[u8; 4]>,
) -> impl Iterator<Item = Mismatch> {
    let skip = animated_region(width, height);
    (0..height)
        .flat_map(move |y| (0..width).map(move |x| (x, y)))
        .filter(move |(x, y)| !((skip.left..=skip.right).contains(x) && (skip.top..=skip.bottom).contains(y)))
        .filter_map(move |(x, y)| {
            let want = pattern_pixel(x, y, width, height);
            let got = pixel(x, y);
            (got != Some(want)).then_some(Mismatch { x, y, got, want })
        })
}

/// Keeps async-rdp's warnings (from [`capture_warnings`] on), for tests that check what the
/// client warned about.
struct Warnings;

static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn && metadata.target().starts_with("async_rdp::")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut warnings = WARNINGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            warnings.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Installs the warning capture as the process's logger (once; a no-op when another logger
/// was installed first).
pub fn capture_warnings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&Warnings).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
    });
}

/// The warnings captured so far that contain every one of `needles` (tests run in parallel:
/// each looks for its own).
pub fn warnings_with(needles: &[&str]) -> Vec<String> {
    let warnings = WARNINGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    warnings
        .iter()
        .filter(|w| needles.iter().all(|n| w.contains(n)))
        .cloned()
        .collect()
}

/// Runs `server_side` to its end while the client's session is driven; `on_event` sees each of
/// the client's events (and fails the test by returning an error).
pub async fn driving<T>(
    session: &mut ClientSession,
    mut on_event: impl FnMut(Event) -> TestResult,
    server_side: impl Future<Output = TestResult<T>>,
) -> TestResult<T> {
    let mut server_side = std::pin::pin!(server_side);
    loop {
        let event = {
            let next = std::pin::pin!(session.next_event());
            match futures::future::select(server_side.as_mut(), next).await {
                futures::future::Either::Left((done, _)) => return done,
                futures::future::Either::Right((event, _)) => event?,
            }
        };
        if let Event::Disconnected(reason) = &event {
            return Err(format!("the session ended: {reason:?}").into());
        }
        on_event(event)?;
    }
}
