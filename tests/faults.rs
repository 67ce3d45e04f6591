//! Fault injection: the real client ([`async_rdp::connect`] and the low-level drivers) against
//! servers that misbehave on purpose, over loopback TCP (127.0.0.1 only).
//!
//! - Connection phases (`tcp`, `negotiation`, `tls`, `nla`, `activation`): a *script server*
//!   on a plain std thread follows a list of [`Step`]s on the one connection it accepts (read
//!   this much, send these bytes, close, reset, stall, upgrade to TLS, ...). The server is not
//!   the code under test; the client still runs on the test's one thread.
//! - Session phase: the demo server behind a byte-relaying [`Proxy`] (std threads) that, on
//!   command, cuts the connection in the middle of a TLS record, black-holes it, or injects
//!   garbage between two records.
//!
//! Every test checks the error's kind and its context (the phase), that it came within the
//! phase's timeout (plus 2 s of slack), and, where a server can make the client read without
//! end, that the client stops near its frame bound.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use async_rdp::connector::{connect_begin, mark_as_upgraded, perform_credssp, NoNetworkClient};
use async_rdp::framing::{LocalFramed, MAX_FRAME_SIZE, READ_CHUNK};
use async_rdp::ironrdp_connector::ClientConnector;
use async_rdp::{
    connect, connect_with_timings, tls, ClientConfig, ClientSession, DisconnectReason, Error, ErrorKind, Event, Phase,
    Timeouts,
};
use async_rdp_demo_server::testing::{first_graphics, pinned, run, Server, TestResult};
use async_rdp_demo_server::{Command, Config, Security};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The timeout of the phase a test attacks: short, so that stalls end quickly.
const SHORT: Duration = Duration::from_secs(1);
/// The timeout of every other phase: long enough for a debug build on a busy machine.
const LONG: Duration = Duration::from_secs(5);
/// How late past its timeout a failure may come.
const SLACK: Duration = Duration::from_secs(2);
/// How long a script or proxy socket waits for its peer before giving up on its own, so that
/// no helper thread outlives its test by much.
const SAFETY: Duration = Duration::from_secs(20);

/// `SecurityProtocol` bits of an RDP Negotiation Response ([MS-RDPBCGR] 2.2.1.2.1).
const PROTOCOL_SSL: u32 = 0x1;
const PROTOCOL_HYBRID: u32 = 0x2;

/// A fatal TLS alert record, handshake_failure (40), in place of a ServerHello.
const TLS_ALERT_HANDSHAKE_FAILURE: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// An X.224 Connection Confirm carrying an RDP Negotiation Response that selects `protocol`:
/// TPKT (4) + X.224 CC (LI 0x0e, code 0xd0, dst-ref, src-ref, class) + RDP_NEG_RSP (8) = 19
/// bytes, as ironrdp-pdu 0.11's `nego::ConnectionConfirm` decodes it.
fn connection_confirm(protocol: u32) -> Vec<u8> {
    let mut pdu = vec![
        0x03, 0x00, 0x00, 0x13, // TPKT, 19 bytes
        0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00, // X.224 Connection Confirm
        0x02, 0x00, 0x08, 0x00, // RDP_NEG_RSP, no flags, length 8
    ];
    pdu.extend_from_slice(&protocol.to_le_bytes());
    assert_eq!(pdu.len(), 19);
    pdu
}

/// The certificate every TLS-speaking script server presents, and the client pins.
struct Identity {
    certificate: CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

static IDENTITY: LazyLock<Identity> = LazyLock::new(|| {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    let certificate = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .expect("server certificate");
    Identity {
        certificate,
        server: Arc::new(server),
    }
});

// ---------------------------------------------------------------------------------------------
// The script server
// ---------------------------------------------------------------------------------------------

/// One thing the script server does, in order.
#[derive(Debug, Clone)]
enum Step {
    /// Read one TPKT frame (the client's X.224 Connection Request, or an MCS PDU over TLS).
    ExpectTpkt,
    /// Read one TLS record from the raw socket (the ClientHello) and leave it unanswered.
    ExpectTlsRecord,
    /// Read one DER SEQUENCE over TLS (a CredSSP TsRequest).
    ExpectTsRequest,
    /// Write these bytes (over TLS once upgraded).
    Send(Vec<u8>),
    /// Write `byte` over and over, 1 KiB a millisecond, until the client goes away (at most
    /// 4 MiB); [`Report::endless`] counts what was accepted.
    SendEndless(u8),
    /// Shut the TCP connection down, both ways, with no TLS close_notify.
    Close,
    /// Send a TLS close_notify, then shut the TCP connection down.
    CloseNotify,
    /// Wait until the client's next bytes have arrived, then drop the socket without reading
    /// them: Linux answers a close with unread data by a RST (RFC 2525), so this is a
    /// connection reset without SO_LINGER (std's `set_linger` is unstable, and no crate that
    /// sets it is a dependency of this package).
    Reset,
    /// Send nothing; read and discard until the client closes.
    Stall,
    /// Send nothing and expect the client to close without sending another byte (a failure
    /// names what it sent).
    ExpectSilentClose,
    /// Run the server side of the TLS handshake to its end.
    TlsAccept,
    /// Read the ClientHello and answer with only the first `n` bytes of the server's first
    /// flight (ServerHello, ...).
    TlsPartialFlight(usize),
}

/// What the script server did.
#[derive(Debug, Default)]
struct Report {
    /// Steps completed.
    steps: usize,
    /// Bytes a [`Step::SendEndless`] got accepted before the client went away.
    endless: usize,
    /// The step that failed and why (the client going away mid-script is normal).
    failed: Option<String>,
}

type TlsConn = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
    Gone,
}

impl Conn {
    fn io(&mut self) -> io::Result<&mut dyn ReadWrite> {
        match self {
            Conn::Plain(tcp) => Ok(tcp),
            Conn::Tls(tls) => Ok(&mut **tls),
            Conn::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "connection already closed")),
        }
    }

    fn plain(&mut self) -> io::Result<&mut TcpStream> {
        match self {
            Conn::Plain(tcp) => Ok(tcp),
            _ => Err(io::Error::other("this step needs the raw TCP connection")),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A script server listening on 127.0.0.1, serving one connection on its own thread.
struct ScriptServer {
    addr: String,
    thread: thread::JoinHandle<Report>,
}

impl ScriptServer {
    fn start(script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address").to_string();
        let thread = thread::spawn(move || {
            let tcp = match listener.accept() {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    return Report {
                        failed: Some(format!("accept: {e}")),
                        ..Report::default()
                    }
                }
            };
            run_script(tcp, script)
        });
        Self { addr, thread }
    }

    /// Waits for the script to end (the client's connection is gone by then, so every
    /// remaining step ends quickly) and returns what it did.
    fn finish(self) -> Report {
        self.thread.join().expect("the script server panicked")
    }
}

fn run_script(tcp: TcpStream, script: Vec<Step>) -> Report {
    let mut report = Report::default();
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(SAFETY));
    let _ = tcp.set_write_timeout(Some(SAFETY));
    let mut conn = Conn::Plain(tcp);
    for step in script {
        if let Err(e) = run_step(&mut conn, &step, &mut report) {
            report.failed = Some(format!("{step:?}: {e}"));
            break;
        }
        report.steps += 1;
    }
    report
}

fn run_step(conn: &mut Conn, step: &Step, report: &mut Report) -> io::Result<()> {
    match step {
        Step::ExpectTpkt => {
            let io = conn.io()?;
            let mut header = [0u8; 4];
            io.read_exact(&mut header)?;
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            io.read_exact(&mut vec![0; len.saturating_sub(4)])
        }
        Step::ExpectTlsRecord => {
            let tcp = conn.plain()?;
            let mut header = [0u8; 5];
            tcp.read_exact(&mut header)?;
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            tcp.read_exact(&mut vec![0; len])
        }
        Step::ExpectTsRequest => {
            let io = conn.io()?;
            let mut head = [0u8; 2];
            io.read_exact(&mut head)?;
            let len = if head[1] & 0x80 == 0 {
                usize::from(head[1])
            } else {
                let mut bytes = vec![0u8; usize::from(head[1] & 0x7f)];
                io.read_exact(&mut bytes)?;
                bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
            };
            io.read_exact(&mut vec![0; len])
        }
        Step::Send(bytes) => {
            let io = conn.io()?;
            io.write_all(bytes)?;
            io.flush()
        }
        Step::SendEndless(byte) => {
            let io = conn.io()?;
            let chunk = [*byte; 1024];
            while report.endless < 4 << 20 {
                if io.write_all(&chunk).and_then(|()| io.flush()).is_err() {
                    // The client went away: that is the end this step waits for.
                    return Ok(());
                }
                report.endless += chunk.len();
                thread::sleep(Duration::from_millis(1));
            }
            Err(io::Error::other("the client read 4 MiB of garbage without giving up"))
        }
        Step::Close => {
            match std::mem::replace(conn, Conn::Gone) {
                Conn::Plain(tcp) => tcp.shutdown(Shutdown::Both)?,
                Conn::Tls(tls) => tls.sock.shutdown(Shutdown::Both)?,
                Conn::Gone => {}
            }
            Ok(())
        }
        Step::CloseNotify => {
            let Conn::Tls(mut tls) = std::mem::replace(conn, Conn::Gone) else {
                return Err(io::Error::other("close_notify needs TLS"));
            };
            tls.conn.send_close_notify();
            tls.flush()?;
            tls.sock.shutdown(Shutdown::Both)
        }
        Step::Reset => {
            let tcp = conn.plain()?;
            let mut byte = [0u8; 1];
            // Wait until the client's bytes are queued here, unread.
            if tcp.peek(&mut byte)? == 0 {
                return Err(io::Error::other("the client closed before the reset"));
            }
            *conn = Conn::Gone;
            Ok(())
        }
        Step::Stall => {
            let io = conn.io()?;
            let mut sink = [0u8; 4096];
            // Until the client closes (0 or an error), or SAFETY passes.
            while let Ok(n) = io.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            Ok(())
        }
        Step::ExpectSilentClose => {
            let mut byte = [0u8; 1];
            match conn.io()?.read(&mut byte)? {
                0 => Ok(()),
                _ => Err(io::Error::other(format!(
                    "the client sent more (first byte {:#04x}) instead of closing",
                    byte[0]
                ))),
            }
        }
        Step::TlsAccept => {
            let Conn::Plain(mut tcp) = std::mem::replace(conn, Conn::Gone) else {
                return Err(io::Error::other("already TLS"));
            };
            let mut tls = rustls::ServerConnection::new(Arc::clone(&IDENTITY.server)).map_err(io::Error::other)?;
            while tls.is_handshaking() {
                tls.complete_io(&mut tcp)?;
            }
            *conn = Conn::Tls(Box::new(rustls::StreamOwned::new(tls, tcp)));
            Ok(())
        }
        Step::TlsPartialFlight(n) => {
            let tcp = conn.plain()?;
            let mut tls = rustls::ServerConnection::new(Arc::clone(&IDENTITY.server)).map_err(io::Error::other)?;
            while !tls.wants_write() {
                if tls.read_tls(tcp)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                tls.process_new_packets().map_err(io::Error::other)?;
            }
            let mut flight = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut flight)?;
            }
            assert!(*n < flight.len(), "the server's flight is only {} bytes", flight.len());
            tcp.write_all(&flight[..*n])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------------------------

/// Every phase's timeout long.
fn long_timeouts() -> Timeouts {
    let mut t = Timeouts::default();
    for phase in Phase::ALL.into_iter().filter(|p| *p != Phase::Session) {
        t[phase] = Some(LONG);
    }
    t
}

/// Timeouts with `phase` short and every other phase long.
fn timeouts(phase: Phase) -> Timeouts {
    long_timeouts().with(phase, SHORT)
}

fn client_config(timeouts: Timeouts) -> ClientConfig {
    ClientConfig::new("user", "password")
        .with_trust(pinned(&IDENTITY.certificate))
        .with_timeouts(timeouts)
}

/// How a connection attempt against a script server failed.
struct Failure {
    error: Error,
    elapsed: Duration,
    report: Report,
}

/// Runs `connect_with_timings` (on this thread) against a script server whose phase `phase`
/// has the short timeout, and returns the error it must end with.
fn connect_to_script(name: &str, phase: Phase, script: Vec<Step>) -> Failure {
    let server = ScriptServer::start(script);
    let config = client_config(timeouts(phase));
    let started = Instant::now();
    let result = async_std::task::block_on(connect_with_timings(&server.addr, config));
    let elapsed = started.elapsed();
    let error = match result {
        Ok((session, timings)) => panic!("{name}: connected to a faulty server: {session:?} {timings:?}"),
        Err(error) => error,
    };
    // The client's socket was dropped with the failed attempt, so the script ends now.
    let report = server.finish();
    eprintln!(
        "[fault] {name}: {:?} in {:?} after {elapsed:.2?}: {} (server: {report:?})",
        error.kind(),
        error.phase(),
        async_rdp::report(&error)
    );
    Failure { error, elapsed, report }
}

impl Failure {
    /// The error is `kind` in `phase`, and came in time: before the phase's timeout for a
    /// fault the client can see, within the timeout plus slack for a stall.
    fn assert(&self, kind: ErrorKind, phase: Phase) {
        let e = &self.error;
        let text = async_rdp::report(e);
        assert_eq!(e.kind(), kind, "{text}");
        assert_eq!(e.phase(), Some(phase), "{text}");
        if kind == ErrorKind::Timeout {
            assert!(
                self.elapsed >= SHORT,
                "timed out early, after {:?}: {text}",
                self.elapsed
            );
            assert!(
                self.elapsed < SHORT + SLACK,
                "timed out late, after {:?}: {text}",
                self.elapsed
            );
        } else {
            assert!(
                self.elapsed < SHORT,
                "took {:?}, as long as the phase's timeout: {text}",
                self.elapsed
            );
        }
    }
}

/// Far more than the client should take from a server that never finishes a frame: the
/// frame bound, one read past it, and 16 KiB for the bytes in flight when it gives up (the
/// server writes 1 KiB a millisecond, and learns the client is gone a write or two late).
const ENDLESS_BOUND: usize = MAX_FRAME_SIZE + READ_CHUNK + 16 * 1024;

// ---------------------------------------------------------------------------------------------
// tcp
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_refused_is_an_io_error_in_tcp() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let started = Instant::now();
    let result = async_std::task::block_on(connect(
        &format!("127.0.0.1:{port}"),
        client_config(timeouts(Phase::Tcp)),
    ));
    let elapsed = started.elapsed();
    let err = result.expect_err("connected to nothing");
    eprintln!(
        "[fault] tcp refused: {:?} in {:?} after {elapsed:.2?}: {}",
        err.kind(),
        err.context(),
        async_rdp::report(&err)
    );
    assert_eq!(err.kind(), ErrorKind::Io, "{}", async_rdp::report(&err));
    assert_eq!(err.phase(), Some(async_rdp::Phase::Tcp));
    assert!(elapsed < SHORT, "took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// negotiation
// ---------------------------------------------------------------------------------------------

#[test]
fn negotiation_close_mid_frame_says_what_is_missing() {
    let cc = connection_confirm(PROTOCOL_HYBRID);
    let f = connect_to_script(
        "negotiation: close after 5 of 19 bytes",
        Phase::Negotiation,
        vec![Step::ExpectTpkt, Step::Send(cc[..5].to_vec()), Step::Close],
    );
    f.assert(ErrorKind::UnexpectedEof, Phase::Negotiation);
    let text = f.error.to_string();
    assert!(text.contains("14 bytes short of a 19-byte frame"), "{text}");
}

#[test]
fn negotiation_close_before_any_byte_is_closed() {
    let f = connect_to_script(
        "negotiation: close before answering",
        Phase::Negotiation,
        vec![Step::ExpectTpkt, Step::Close],
    );
    f.assert(ErrorKind::Closed, Phase::Negotiation);
}

#[test]
fn negotiation_stall_times_out() {
    let f = connect_to_script(
        "negotiation: stall",
        Phase::Negotiation,
        vec![Step::ExpectTpkt, Step::Stall],
    );
    f.assert(ErrorKind::Timeout, Phase::Negotiation);
}

#[test]
fn negotiation_stall_inside_a_confirm_times_out() {
    let cc = connection_confirm(PROTOCOL_HYBRID);
    let f = connect_to_script(
        "negotiation: 18 of 19 bytes, then stall",
        Phase::Negotiation,
        vec![Step::ExpectTpkt, Step::Send(cc[..18].to_vec()), Step::Stall],
    );
    f.assert(ErrorKind::Timeout, Phase::Negotiation);
}

#[test]
fn negotiation_max_length_header_then_nothing_times_out() {
    let f = connect_to_script(
        "negotiation: TPKT header of 65535 bytes, then stall",
        Phase::Negotiation,
        vec![Step::ExpectTpkt, Step::Send(vec![0x03, 0x00, 0xff, 0xff]), Step::Stall],
    );
    f.assert(ErrorKind::Timeout, Phase::Negotiation);
}

#[test]
fn negotiation_max_length_frame_of_garbage_is_bounded() {
    // A 65535-byte "Connection Confirm" of zeros, and more zeros after it: the client takes
    // the one frame, fails to decode it, and stops reading.
    let f = connect_to_script(
        "negotiation: TPKT header of 65535 bytes, then endless zeros",
        Phase::Negotiation,
        vec![
            Step::ExpectTpkt,
            Step::Send(vec![0x03, 0x00, 0xff, 0xff]),
            Step::SendEndless(0x00),
        ],
    );
    f.assert(ErrorKind::Connector, Phase::Negotiation);
    assert!(
        f.report.endless <= ENDLESS_BOUND,
        "the client took {} bytes of garbage (bound {ENDLESS_BOUND})",
        f.report.endless
    );
}

#[test]
fn negotiation_max_length_frame_never_grows_the_buffer_past_the_bound() {
    // The same fault against the low-level driver, whose buffer can be inspected afterwards.
    let server = ScriptServer::start(vec![
        Step::ExpectTpkt,
        Step::Send(vec![0x03, 0x00, 0xff, 0xff]),
        Step::SendEndless(0x00),
    ]);
    let config = client_config(timeouts(Phase::Negotiation));
    async_std::task::block_on(async {
        let tcp = async_rdp::net::connect(&server.addr, LONG).await.expect("tcp");
        let local = tcp.local_addr().expect("local address");
        let mut connector = ClientConnector::new(config.connector_config(), local);
        let mut framed = LocalFramed::new(tcp);
        let err = async_rdp::net::with_timeout(LONG, "negotiation", connect_begin(&mut framed, &mut connector))
            .await
            .expect_err("negotiated with garbage");
        assert_eq!(err.kind(), ErrorKind::Connector, "{}", async_rdp::report(&err));
        assert!(
            framed.buffer_capacity() <= MAX_FRAME_SIZE + READ_CHUNK,
            "buffer capacity {}",
            framed.buffer_capacity()
        );
        assert!(
            framed.peek().len() <= READ_CHUNK,
            "{} bytes buffered",
            framed.peek().len()
        );
    });
    let report = server.finish();
    assert!(report.endless <= ENDLESS_BOUND, "{report:?}");
}

#[test]
fn negotiation_tls_record_instead_of_tpkt_is_an_invalid_frame() {
    // A server that speaks TLS straight away (a ServerHello's record header): 0x16 is neither
    // a TPKT version nor a fast-path action.
    let f = connect_to_script(
        "negotiation: TLS record instead of TPKT",
        Phase::Negotiation,
        vec![
            Step::ExpectTpkt,
            Step::Send(vec![0x16, 0x03, 0x03, 0x00, 0x31, 0x02, 0x00, 0x00, 0x2d, 0x03, 0x03]),
            Step::Stall,
        ],
    );
    f.assert(ErrorKind::InvalidFrame, Phase::Negotiation);
}

/// An HTTP server's answer to a request it does not understand.
const HTTP_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn negotiation_http_answer_then_close_is_an_error() {
    let f = connect_to_script(
        "negotiation: HTTP 400, then close",
        Phase::Negotiation,
        vec![Step::ExpectTpkt, Step::Send(HTTP_400.to_vec()), Step::Close],
    );
    // 'H' (0x48) reads as a fast-path header of 0x54 ('T') = 84 bytes, so the client sees a
    // frame cut short rather than "not an RDP server"; still an error, at once.
    assert!(
        matches!(
            f.error.kind(),
            ErrorKind::UnexpectedEof | ErrorKind::InvalidFrame | ErrorKind::Connector
        ),
        "{}",
        async_rdp::report(&f.error)
    );
    assert_eq!(f.error.phase(), Some(async_rdp::Phase::Negotiation));
    assert!(f.elapsed < SHORT, "took {:?}", f.elapsed);
}

#[test]
fn negotiation_http_answer_then_stall_is_an_error_not_a_timeout() {
    let f = connect_to_script(
        "negotiation: HTTP 400 and more text, then stall",
        Phase::Negotiation,
        vec![
            Step::ExpectTpkt,
            // Long enough that the first 84-byte "fast-path frame" is complete.
            Step::Send([HTTP_400, &[b'x'; 100]].concat()),
            Step::Stall,
        ],
    );
    assert!(
        matches!(f.error.kind(), ErrorKind::InvalidFrame | ErrorKind::Connector),
        "{}",
        async_rdp::report(&f.error)
    );
    assert_eq!(f.error.phase(), Some(async_rdp::Phase::Negotiation));
    assert!(f.elapsed < SHORT, "took {:?}", f.elapsed);
}

/// Issue 10: a Negotiation Response selecting what the client never offered (a corrupted byte
/// gave 0xFD, taken as NLA; two protocols at once) is refused in negotiation, before the
/// ClientHello, so no credential can follow.
#[test]
fn issue_10_unoffered_selected_protocol_is_refused_before_tls() {
    for selected in [0xFD, PROTOCOL_SSL | PROTOCOL_HYBRID] {
        let f = connect_to_script(
            &format!("negotiation: selected protocol {selected:#x}"),
            Phase::Negotiation,
            vec![
                Step::ExpectTpkt,
                Step::Send(connection_confirm(selected)),
                Step::ExpectSilentClose,
            ],
        );
        f.assert(ErrorKind::Connector, Phase::Negotiation);
        let text = async_rdp::report(&f.error);
        assert!(
            text.contains(&format!("{selected:#x}")),
            "names the selected protocol: {text}"
        );
        assert!(
            text.contains("0xb"),
            "names the offered protocols (SSL|HYBRID|HYBRID_EX): {text}"
        );
        assert_eq!(f.report.failed, None, "the client sent more after the response");
    }
}

#[test]
fn negotiation_reset_is_an_io_error() {
    // The client pipelines nothing after its request, so wait for the request itself to be
    // queued, unread, and reset the connection instead of answering.
    let f = connect_to_script("negotiation: reset", Phase::Negotiation, vec![Step::Reset]);
    f.assert(ErrorKind::Io, Phase::Negotiation);
    let text = async_rdp::report(&f.error);
    assert!(text.to_lowercase().contains("reset"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// tls
// ---------------------------------------------------------------------------------------------

#[test]
fn tls_alert_instead_of_server_hello_names_the_alert() {
    let f = connect_to_script(
        "tls: handshake_failure alert instead of ServerHello",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::ExpectTlsRecord,
            Step::Send(TLS_ALERT_HANDSHAKE_FAILURE.to_vec()),
            Step::Stall,
        ],
    );
    f.assert(ErrorKind::Tls, Phase::Tls);
    let text = async_rdp::report(&f.error);
    assert!(text.contains("HandshakeFailure"), "{text}");
}

#[test]
fn tls_close_before_server_hello_is_an_error() {
    let f = connect_to_script(
        "tls: close after the ClientHello",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::ExpectTlsRecord,
            Step::Close,
        ],
    );
    f.assert(ErrorKind::UnexpectedEof, Phase::Tls);
}

#[test]
fn tls_close_mid_server_flight_is_an_error() {
    let f = connect_to_script(
        "tls: close 40 bytes into the server's flight",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::TlsPartialFlight(40),
            Step::Close,
        ],
    );
    f.assert(ErrorKind::UnexpectedEof, Phase::Tls);
}

#[test]
fn tls_stall_before_server_hello_times_out() {
    let f = connect_to_script(
        "tls: stall after the ClientHello",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::ExpectTlsRecord,
            Step::Stall,
        ],
    );
    f.assert(ErrorKind::Timeout, Phase::Tls);
}

#[test]
fn tls_stall_mid_server_flight_times_out() {
    let f = connect_to_script(
        "tls: stall 40 bytes into the server's flight",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::TlsPartialFlight(40),
            Step::Stall,
        ],
    );
    f.assert(ErrorKind::Timeout, Phase::Tls);
}

#[test]
fn tls_reset_during_handshake_fails_fast_in_tls() {
    let f = connect_to_script(
        "tls: reset instead of a ServerHello",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::Reset,
        ],
    );
    // See tls_reset_during_handshake_is_an_io_error for the kind.
    assert!(
        matches!(f.error.kind(), ErrorKind::Io | ErrorKind::Tls),
        "{}",
        async_rdp::report(&f.error)
    );
    assert_eq!(f.error.phase(), Some(async_rdp::Phase::Tls));
    assert!(f.elapsed < SHORT, "took {:?}", f.elapsed);
}

#[test]
fn tls_reset_during_handshake_is_an_io_error() {
    let f = connect_to_script(
        "tls: reset instead of a ServerHello (kind)",
        Phase::Tls,
        vec![
            Step::ExpectTpkt,
            Step::Send(connection_confirm(PROTOCOL_SSL)),
            Step::Reset,
        ],
    );
    f.assert(ErrorKind::Io, Phase::Tls);
}

// ---------------------------------------------------------------------------------------------
// nla
// ---------------------------------------------------------------------------------------------

/// Negotiates CredSSP, completes TLS, and reads the client's first TsRequest (NTLM
/// NEGOTIATE), then goes on with `then`.
fn nla_script(then: impl IntoIterator<Item = Step>) -> Vec<Step> {
    let mut script = vec![
        Step::ExpectTpkt,
        Step::Send(connection_confirm(PROTOCOL_HYBRID)),
        Step::TlsAccept,
        Step::ExpectTsRequest,
    ];
    script.extend(then);
    script
}

#[test]
fn nla_length_that_never_fits_then_silence_times_out() {
    // A BER length of the length 4: sspi's TsRequest hint can never size it and keeps asking
    // for more; with nothing more coming, the phase's timeout ends it.
    let f = connect_to_script(
        "nla: 30 84 ff ff ff ff, then stall",
        Phase::Nla,
        nla_script([Step::Send(vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), Step::Stall]),
    );
    f.assert(ErrorKind::Timeout, Phase::Nla);
}

#[test]
fn nla_endless_malformed_ts_request_is_bounded() {
    // A length too big for sspi (30 82 ff ff) and garbage forever: the hint says "need more"
    // for ever, so only the frame bound stops the client.
    let f = connect_to_script(
        "nla: 30 82 ff ff, then endless garbage",
        Phase::Nla,
        nla_script([Step::Send(vec![0x30, 0x82, 0xff, 0xff]), Step::SendEndless(0x41)]),
    );
    f.assert(ErrorKind::FrameTooLarge, Phase::Nla);
    assert!(
        f.report.endless <= ENDLESS_BOUND,
        "the client took {} bytes of garbage (bound {ENDLESS_BOUND})",
        f.report.endless
    );
}

#[test]
fn nla_endless_malformed_ts_request_never_grows_the_buffer_past_the_bound() {
    // The same fault against the low-level drivers, whose buffer can be inspected afterwards.
    let server = ScriptServer::start(nla_script([
        Step::Send(vec![0x30, 0x82, 0xff, 0xff]),
        Step::SendEndless(0x41),
    ]));
    let config = client_config(timeouts(Phase::Nla));
    async_std::task::block_on(async {
        let tcp = async_rdp::net::connect(&server.addr, LONG).await.expect("tcp");
        let local = tcp.local_addr().expect("local address");
        let mut connector = ClientConnector::new(config.connector_config(), local);
        let mut framed = LocalFramed::new(tcp);
        let should_upgrade = connect_begin(&mut framed, &mut connector).await.expect("negotiation");
        let verifier = pinned(&IDENTITY.certificate)
            .verifier(&async_rdp::Target::new("127.0.0.1", 3389))
            .expect("verifier");
        let upgraded = tls::upgrade(framed, "127.0.0.1", verifier).await.expect("tls");
        let _upgraded = mark_as_upgraded(should_upgrade, &mut connector).expect("upgrade token");
        let mut framed = LocalFramed::new(upgraded.stream);
        let mut network = NoNetworkClient;
        let nla = perform_credssp(
            &mut framed,
            &mut connector,
            &mut network,
            "127.0.0.1".into(),
            upgraded.server_public_key,
            None,
        );
        let err = async_rdp::net::with_timeout(LONG, "nla", nla)
            .await
            .expect_err("CredSSP accepted garbage");
        assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{}", async_rdp::report(&err));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Nla));
        assert!(
            framed.buffer_capacity() <= MAX_FRAME_SIZE + READ_CHUNK,
            "buffer capacity {}",
            framed.buffer_capacity()
        );
        assert!(
            framed.peek().len() <= MAX_FRAME_SIZE + READ_CHUNK,
            "{} bytes buffered",
            framed.peek().len()
        );
    });
    let report = server.finish();
    assert!(report.endless <= ENDLESS_BOUND, "{report:?}");
}

#[test]
fn nla_non_asn1_reply_is_bounded() {
    // Not even a SEQUENCE tag: sspi's hint turns every header error into "need more", so this
    // too ends at the frame bound.
    let f = connect_to_script(
        "nla: endless HTTP-ish text instead of a TsRequest",
        Phase::Nla,
        nla_script([Step::Send(HTTP_400.to_vec()), Step::SendEndless(b'x')]),
    );
    f.assert(ErrorKind::FrameTooLarge, Phase::Nla);
    assert!(f.report.endless <= ENDLESS_BOUND, "{:?}", f.report);
}

/// The first 10 bytes of a 260-byte TsRequest (SEQUENCE of 0x100 bytes, version 6, ...).
const TS_REQUEST_HEAD: [u8; 10] = [0x30, 0x82, 0x01, 0x00, 0xa0, 0x03, 0x02, 0x01, 0x06, 0xa1];

#[test]
fn nla_abrupt_close_mid_ts_request_is_unexpected_eof() {
    // TCP closed with no close_notify: rustls reports the truncation itself.
    let f = connect_to_script(
        "nla: 10 of 260 bytes, then TCP close",
        Phase::Nla,
        nla_script([Step::Send(TS_REQUEST_HEAD.to_vec()), Step::Close]),
    );
    f.assert(ErrorKind::UnexpectedEof, Phase::Nla);
}

#[test]
fn nla_close_notify_mid_ts_request_says_what_is_missing() {
    let f = connect_to_script(
        "nla: 10 of 260 bytes, then close_notify",
        Phase::Nla,
        nla_script([Step::Send(TS_REQUEST_HEAD.to_vec()), Step::CloseNotify]),
    );
    f.assert(ErrorKind::UnexpectedEof, Phase::Nla);
    let text = f.error.to_string();
    assert!(text.contains("250 bytes short of a 260-byte frame"), "{text}");
}

#[test]
fn nla_stall_times_out() {
    let f = connect_to_script("nla: stall", Phase::Nla, nla_script([Step::Stall]));
    f.assert(ErrorKind::Timeout, Phase::Nla);
}

// ---------------------------------------------------------------------------------------------
// activation (TLS without NLA: the MCS Connect Initial comes right after the handshake)
// ---------------------------------------------------------------------------------------------

fn activation_script(then: impl IntoIterator<Item = Step>) -> Vec<Step> {
    let mut script = vec![
        Step::ExpectTpkt,
        Step::Send(connection_confirm(PROTOCOL_SSL)),
        Step::TlsAccept,
        Step::ExpectTpkt, // MCS Connect Initial
    ];
    script.extend(then);
    script
}

#[test]
fn activation_stall_times_out() {
    let f = connect_to_script("activation: stall", Phase::Activation, activation_script([Step::Stall]));
    f.assert(ErrorKind::Timeout, Phase::Activation);
}

#[test]
fn activation_close_mid_frame_says_what_is_missing() {
    let f = connect_to_script(
        "activation: 6 of 256 bytes, then close_notify",
        Phase::Activation,
        activation_script([Step::Send(vec![0x03, 0x00, 0x01, 0x00, 0x02, 0xf0]), Step::CloseNotify]),
    );
    f.assert(ErrorKind::UnexpectedEof, Phase::Activation);
    let text = f.error.to_string();
    assert!(text.contains("250 bytes short of a 256-byte frame"), "{text}");
}

#[test]
fn activation_garbage_frame_is_a_connector_error() {
    // A whole TPKT frame whose X.224 header is nonsense.
    let mut frame = vec![0x03, 0x00, 0x00, 0x20];
    frame.extend_from_slice(&[0xee; 0x1c]);
    let f = connect_to_script(
        "activation: a TPKT frame of garbage",
        Phase::Activation,
        activation_script([Step::Send(frame), Step::Stall]),
    );
    f.assert(ErrorKind::Connector, Phase::Activation);
}

// ---------------------------------------------------------------------------------------------
// session: the demo server behind a byte-relaying proxy
// ---------------------------------------------------------------------------------------------

/// What the proxy does to the server-to-client stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Relay both ways.
    Relay,
    /// Forward into the next TLS record's body, then close both connections.
    CloseMidRecord,
    /// Relay nothing more, either way (read and discard), keeping both connections open.
    Stall,
    /// At the next record boundary, inject 32 bytes that are no TLS record, then relay
    /// nothing more.
    Garbage,
}

struct ProxyState {
    fault: Fault,
    /// What the proxy did when it carried the fault out.
    done: Option<String>,
}

/// A TCP proxy on 127.0.0.1 in front of one upstream address, for one connection.
struct Proxy {
    addr: String,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let state = Arc::new(Mutex::new(ProxyState {
            fault: Fault::Relay,
            done: None,
        }));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else { return };
            let Ok(server) = TcpStream::connect(upstream) else {
                return;
            };
            for s in [&client, &server] {
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(SAFETY));
                let _ = s.set_write_timeout(Some(SAFETY));
            }
            let (Ok(client_w), Ok(server_r)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up_state = Arc::clone(&shared);
            let up = thread::spawn(move || relay_up(client, server, &up_state));
            relay_down(server_r, client_w, &shared);
            let _ = up.join();
        });
        Ok(Self { addr, state })
    }

    fn set(&self, fault: Fault) {
        self.state.lock().expect("proxy state").fault = fault;
    }

    fn done(&self) -> Option<String> {
        self.state.lock().expect("proxy state").done.clone()
    }
}

fn fault_of(state: &Mutex<ProxyState>) -> Fault {
    state.lock().map_or(Fault::Relay, |s| s.fault)
}

/// Client to server: relay until either side ends, or discard while the fault says so.
fn relay_up(mut client: TcpStream, mut server: TcpStream, state: &Mutex<ProxyState>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if fault_of(state) == Fault::Relay && server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// Server to client, tracking record boundaries to carry the fault out where it hurts.
fn relay_down(mut server: TcpStream, mut client: TcpStream, state: &Mutex<ProxyState>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut records = Records::default();
    let mut black_hole = false;
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        if black_hole {
            continue;
        }
        let done = |what: String| {
            if let Ok(mut s) = state.lock() {
                s.done = Some(what);
            }
        };
        match fault_of(state) {
            Fault::Relay => {
                records.feed_until(data, |_| false);
                if client.write_all(data).is_err() {
                    break;
                }
            }
            Fault::Stall => black_hole = true,
            Fault::CloseMidRecord => {
                let k = records.feed_until(data, Records::inside_body);
                if client.write_all(&data[..k]).is_err() {
                    break;
                }
                if records.inside_body() {
                    done(format!(
                        "closed {} bytes into a {}-byte record body",
                        records.body_read,
                        records.body_read + records.body_left
                    ));
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                    return;
                }
            }
            Fault::Garbage => {
                let k = records.feed_until(data, Records::at_boundary);
                if client.write_all(&data[..k]).is_err() {
                    break;
                }
                if records.at_boundary() {
                    let _ = client.write_all(&[0xAA; 32]);
                    done("injected 32 bytes of 0xAA at a record boundary".to_owned());
                    black_hole = true;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// Where the server-to-client stream is: first one TPKT frame (the X.224 Connection
/// Confirm), then TLS records.
#[derive(Debug, Default)]
struct Records {
    tls: bool,
    header: Vec<u8>,
    body_read: usize,
    body_left: usize,
}

impl Records {
    fn header_len(&self) -> usize {
        if self.tls {
            5
        } else {
            4
        }
    }

    fn inside_body(&self) -> bool {
        self.header.len() == self.header_len() && self.body_read > 0 && self.body_left > 0
    }

    fn at_boundary(&self) -> bool {
        self.tls && self.header.is_empty()
    }

    /// Consumes `data` until `stop` says so; returns how many bytes were consumed.
    fn feed_until(&mut self, data: &[u8], stop: impl Fn(&Self) -> bool) -> usize {
        let mut at = 0;
        while at < data.len() && !stop(self) {
            if self.header.len() < self.header_len() {
                self.header.push(data[at]);
                at += 1;
                if self.header.len() == self.header_len() {
                    let h = &self.header;
                    self.body_left = if self.tls {
                        usize::from(u16::from_be_bytes([h[3], h[4]]))
                    } else {
                        usize::from(u16::from_be_bytes([h[2], h[3]])).saturating_sub(4)
                    };
                    self.body_read = 0;
                }
            } else {
                // One byte first, so that `inside_body` can stop right after it; then the rest.
                let want = if self.body_read == 0 { 1 } else { self.body_left };
                let n = want.min(self.body_left).min(data.len() - at);
                self.body_read += n;
                self.body_left -= n;
                at += n;
            }
            if self.header.len() == self.header_len() && self.body_left == 0 {
                self.header.clear();
                self.body_read = 0;
                self.tls = true;
            }
        }
        at
    }
}

/// Connects to a demo server (TLS, 320 x 200) through a fresh proxy, waits for the first
/// picture, then runs `body` with the session, the proxy and the server; all on this thread,
/// bounded by 30 s.
fn through_proxy<F, Fut>(idle: Option<Duration>, body: F) -> TestResult
where
    F: FnOnce(ClientSession, Proxy, Server) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let config = Config {
        security: Security::Tls,
        desktop: async_rdp::ironrdp_connector::DesktopSize {
            width: 320,
            height: 200,
        },
        ..Config::default()
    };
    run(config, |server| async move {
        let proxy = Proxy::start(server.local_addr())?;
        let config = server
            .client_config()
            .with_security(async_rdp::Security::Tls)
            .with_desktop_size(320, 200)
            .with_timeouts({
                let mut t = long_timeouts();
                t[Phase::Session] = idle;
                t
            });
        let mut session = connect(&proxy.addr, config).await?;
        first_graphics(&mut session, Some(LONG)).await?;
        body(session, proxy, server).await
    })
}

/// Reads events until the session ends, with an error or a `Disconnected` event, within
/// `within`; returns how it ended.
async fn until_the_end(session: &mut ClientSession, within: Duration) -> TestResult<Result<Event, Error>> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match async_std::future::timeout(left, session.next_event()).await {
            Err(_) => return Err(format!("the session did not end within {within:?}").into()),
            Ok(Ok(event @ Event::Disconnected(_))) => return Ok(Ok(event)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Ok(Err(e)),
        }
    }
}

#[test]
fn session_close_mid_tls_record_is_connection_lost() -> TestResult {
    through_proxy(None, |mut session, proxy, server| async move {
        proxy.set(Fault::CloseMidRecord);
        server.command(Command::Redraw)?;
        let started = Instant::now();
        let end = until_the_end(&mut session, LONG).await?;
        let elapsed = started.elapsed();
        eprintln!(
            "[fault] session: proxy {}: {end:?} after {elapsed:.2?}",
            proxy.done().unwrap_or_default()
        );
        assert!(proxy.done().is_some(), "the proxy never cut a record");
        match end {
            Ok(Event::Disconnected(DisconnectReason::ConnectionLost(why))) => {
                assert!(!why.is_empty());
            }
            Ok(other) => return Err(format!("unexpected end {other:?}").into()),
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::Io | ErrorKind::Closed),
                    "{}",
                    async_rdp::report(&e)
                );
                assert_eq!(e.phase(), Some(async_rdp::Phase::Session));
            }
        }
        assert!(elapsed < SLACK, "took {elapsed:?}");
        let after = session.next_event().await.err().ok_or("events after the end")?;
        assert_eq!(after.kind(), ErrorKind::Closed);
        Ok(())
    })
}

#[test]
fn session_garbage_between_tls_records_ends_the_session() -> TestResult {
    through_proxy(None, |mut session, proxy, server| async move {
        proxy.set(Fault::Garbage);
        server.command(Command::Redraw)?;
        let started = Instant::now();
        let end = until_the_end(&mut session, LONG).await?;
        let elapsed = started.elapsed();
        eprintln!(
            "[fault] session: proxy {}: {end:?} after {elapsed:.2?}",
            proxy.done().unwrap_or_default()
        );
        assert!(proxy.done().is_some(), "the proxy never injected anything");
        // Either a lost connection or an error; what matters is that it ends, at once.
        if let Ok(ref event) = end {
            assert!(
                matches!(event, Event::Disconnected(DisconnectReason::ConnectionLost(_))),
                "{event:?}"
            );
        }
        assert!(elapsed < SLACK, "took {elapsed:?}");
        Ok(())
    })
}

#[test]
fn session_stall_without_idle_timeout_needs_the_apps_own_timeout() -> TestResult {
    through_proxy(None, |mut session, proxy, server| async move {
        proxy.set(Fault::Stall);
        server.command(Command::Redraw)?;
        // Whatever was relayed before the stall may still come; then nothing, for ever: only
        // the application's own timer ends the wait.
        let started = Instant::now();
        loop {
            match async_std::future::timeout(SHORT, session.next_event()).await {
                Err(_) => break,
                Ok(Ok(Event::Disconnected(reason))) => return Err(format!("disconnected: {reason:?}").into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(async_rdp::report(&e).into()),
            }
            if started.elapsed() > LONG {
                return Err("events kept coming through a stalled proxy".into());
            }
        }
        let elapsed = started.elapsed();
        eprintln!("[fault] session: proxy stalls, no idle timeout: the app's timer fired after {elapsed:.2?}");
        assert!(!session.is_closed(), "the session believes it is still up");
        assert!(elapsed < SHORT + SLACK, "took {elapsed:?}");
        Ok(())
    })
}

#[test]
fn session_stall_trips_the_idle_timeout() -> TestResult {
    through_proxy(Some(SHORT), |mut session, proxy, server| async move {
        proxy.set(Fault::Stall);
        server.command(Command::Redraw)?;
        let started = Instant::now();
        let end = until_the_end(&mut session, LONG).await?;
        let elapsed = started.elapsed();
        eprintln!("[fault] session: proxy stalls, idle timeout {SHORT:?}: {end:?} after {elapsed:.2?}");
        let err = end
            .err()
            .ok_or("the session ended with an event, not the idle timeout")?;
        assert_eq!(err.kind(), ErrorKind::Timeout, "{}", async_rdp::report(&err));
        assert_eq!(err.phase(), Some(async_rdp::Phase::Session));
        assert!(elapsed >= SHORT, "timed out early, after {elapsed:?}");
        assert!(elapsed < SHORT + SLACK, "timed out late, after {elapsed:?}");
        Ok(())
    })
}
