//! Session throughput: a stream of full-screen updates (1920 x 1080), decoded into the
//! framebuffer, through TLS on loopback, for three legacy codecs — uncompressed 32 bpp bitmaps,
//! planar (RDP 6.0 bitmap streams, the realistic lossless codec) and RemoteFX surface bits —
//! and the graphics pipeline (`egfx-progressive`: RemoteFX Progressive; `egfx-avc420`: H.264,
//! with the `h264` feature; see `session/egfx.rs`), and six client loops (three compared, three
//! diagnostic) over the same pre-encoded frames in the same run:
//!
//! 1. **ours**: `async_rdp::connect`, then `Session::next_event` until `Event::Disconnected`,
//!    under `async_rdp::runtime::block_on` on the measuring thread (one OS thread, as the
//!    examples run);
//! 2. **tokio**: what a user following IronRDP's examples writes: `ironrdp-tokio`'s
//!    `TokioFramed` over a tokio `TcpStream`, `connect_begin` / tokio-rustls /
//!    `mark_as_upgraded` / `connect_finalize`, then `ActiveStage::process` per `read_pdu`,
//!    every response frame written back, on a current-thread runtime;
//! 3. **decode**: the ceiling: the same fast-path PDUs fed to `ActiveStage::process` from
//!    memory, no I/O (the stage is built from a real connection's `ConnectionResult`);
//! 4. **transport** (diagnostic): async-rdp's `Framed` reading the same stream over TLS
//!    without decoding: what TLS decryption and socket reads cost every network client;
//! 5. **session-mem** (diagnostic): our `Session` fed the same bytes from an in-memory stream;
//! 6. **framed-mem** (diagnostic): the minimal `Framed::read_pdu` + `ActiveStage::process`
//!    loop on that stream. 5 − 6 is what the session machinery itself costs, free of TLS,
//!    sockets and a server competing for the CPU and caches.
//!
//! The server is the loopback demo server in a child process (this binary, re-run with
//! `--serve`), so that its async-io reactor is not the client's: async-std's reactor is global
//! to a process, and a server thread sharing it would hand the client's I/O events across
//! threads. It pre-encodes four different pictures (the demo test pattern, shifted) once per
//! codec before any timing, then `Connection::replay`s them in turn and says goodbye. Each
//! RemoteFX frame uses the codec id and entropy coder the client offered.
//!
//! Measured, per codec and loop, repeated and interleaved (median reported): frames per
//! second, CPU time per frame of the client thread (`/proc/thread-self/schedstat`, user and
//! system time), wall time per frame, and the CPU other threads of this process used meanwhile
//! (there should be none). After every run the client's framebuffer is compared with the last
//! frame sent: exactly for the lossless codecs; for RemoteFX, exactly with a reference decode
//! and, within a tolerance, with the source picture. A last section measures the session
//! machinery per PDU on a stream of tiny single-PDU frames (loops 3, 5 and 6), where decoding
//! costs next to nothing.
//!
//! The graphics pipeline rows run loops 1–4 (the in-memory diagnostics' stage joined no
//! `drdynvc`). The tokio and decode loops register IronRDP's own `GraphicsPipelineClient` on a
//! `DrdynvcClient`, and `ActiveStage` composes its frames; the connector config asks for the
//! pipeline (`support_dyn_vc_gfx_protocol`) as ours does. The pipeline's set-up is written once
//! before each run's frames; a lossy pipeline frame must also be nearer the last picture sent
//! than any other.
//!
//! ```sh
//! cargo bench --bench session                 # 1920x1080, 5 runs (a few minutes)
//! cargo bench --bench session -- --quick      # CI smoke run: small, few frames, 1 run
//! cargo bench --bench session -- --runs 3 --frames 100 --codecs planar --loops ours,decode
//! cargo bench --bench session --features h264 -- --codecs egfx-progressive,egfx-avc420 \
//!     --loops ours,tokio,decode,transport         # the graphics pipeline rows
//! cargo bench --bench session -- --server-thread   # server on a thread of this process
//! ```
//!
//! (`--serve W H` is internal: the server side.) `--quick` checks every loop's picture as a
//! full run does and takes well under a second once built.
//!
//! Results are printed as markdown tables and written to `target/bench-results/session.md`
//! (`session-quick.md` for `--quick`).
//! The figures depend on the machine and on what else runs on it; compare loops within one
//! run, not across machines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command as Process, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[path = "session/egfx.rs"]
mod egfx;

use async_rdp::connector::NoNetworkClient;
use async_rdp::framing::LocalFramed;
use async_rdp::ironrdp_connector::sspi::generator::NetworkRequest;
use async_rdp::ironrdp_connector::{ClientConnector, ConnectionOutcome, ConnectionResult, ConnectorResult};
use async_rdp::trust::Fingerprint;
use async_rdp::Trust;
use async_rdp::{tls, ClientConfig, DisconnectReason, ErrorKind, Event};
use async_rdp_demo_server::encode::{
    bitmap_updates, remotefx_surface_bits, BitmapCodec, EntropyAlgorithm, Picture, RemoteFxOffer,
};
use async_rdp_demo_server::{pattern_pixel, Config as ServerConfig, DemoServer, Security};
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::rdp::client_info::CompressionType;
use ironrdp_pdu::Action;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::FramedWrite as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

const USER: &str = "bench";
const PASSWORD: &str = "bench-Passw0rd";
/// Different pictures sent in turn, so that no decoder can get away with caching.
const PICTURES: usize = 4;
/// Full runs aim at about this much client time per measurement.
const TARGET_RUN: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Uncompressed,
    Planar,
    RemoteFx,
    /// Through the graphics pipeline.
    Egfx(egfx::Kind),
}

impl Codec {
    const ALL: &[Codec] = &[
        Codec::Uncompressed,
        Codec::Planar,
        Codec::RemoteFx,
        Codec::Egfx(egfx::Kind::Progressive),
        #[cfg(feature = "h264")]
        Codec::Egfx(egfx::Kind::Avc420),
    ];

    fn key(self) -> &'static str {
        match self {
            Codec::Uncompressed => "uncompressed",
            Codec::Planar => "planar",
            Codec::RemoteFx => "remotefx",
            Codec::Egfx(egfx::Kind::Progressive) => "egfx-progressive",
            #[cfg(feature = "h264")]
            Codec::Egfx(egfx::Kind::Avc420) => "egfx-avc420",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Codec::Uncompressed => "uncompressed 32 bpp bitmaps",
            Codec::Planar => "planar (RDP6 bitmap streams)",
            Codec::RemoteFx => "RemoteFX surface bits",
            Codec::Egfx(egfx::Kind::Progressive) => "graphics pipeline: RemoteFX Progressive, full-screen",
            #[cfg(feature = "h264")]
            Codec::Egfx(egfx::Kind::Avc420) => "graphics pipeline: AVC420 (H.264), full-screen",
        }
    }

    fn lossless(self) -> bool {
        matches!(self, Codec::Uncompressed | Codec::Planar)
    }

    /// Whether `lp` runs this codec. The in-memory diagnostics feed a stage that joined no
    /// `drdynvc`, so the pipeline rows have the three compared loops and the transport.
    fn runs_in(self, lp: Loop) -> bool {
        !matches!(self, Codec::Egfx(_)) || !matches!(lp, Loop::SessionMem | Loop::FramedMem)
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.key() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loop {
    Ours,
    Tokio,
    Decode,
    Transport,
    SessionMem,
    FramedMem,
}

impl Loop {
    const ALL: [Loop; 6] = [
        Loop::Ours,
        Loop::Tokio,
        Loop::Decode,
        Loop::Transport,
        Loop::SessionMem,
        Loop::FramedMem,
    ];

    fn key(self) -> &'static str {
        match self {
            Loop::Ours => "ours",
            Loop::Tokio => "tokio",
            Loop::Decode => "decode",
            Loop::Transport => "transport",
            Loop::SessionMem => "session-mem",
            Loop::FramedMem => "framed-mem",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Loop::Ours => "ours: async-rdp `Session`",
            Loop::Tokio => "ironrdp-tokio loop",
            Loop::Decode => "decode only (no I/O)",
            Loop::Transport => "transport only (TLS + framing, no decode)",
            Loop::SessionMem => "`Session` over memory (no TLS, no socket)",
            Loop::FramedMem => "`Framed` + `process` over memory",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.key() == s)
    }
}

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    runs: usize,
    frames: Option<usize>,
    width: u16,
    height: u16,
    codecs: Vec<Codec>,
    loops: Vec<Loop>,
    server_thread: bool,
}

impl Options {
    fn parse(args: &[String]) -> Self {
        let mut options = Options {
            quick: false,
            runs: 5,
            frames: None,
            width: 1920,
            height: 1080,
            codecs: Codec::ALL.to_vec(),
            loops: Loop::ALL.to_vec(),
            server_thread: false,
        };
        let mut args = args.iter();
        let number = |value: Option<&String>, what: &str| -> usize {
            value
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                // cargo bench passes --bench; libtest-style filters are ignored.
                "--bench" => {}
                "--quick" => {
                    options.quick = true;
                    options.runs = 1;
                    options.frames = Some(6);
                    (options.width, options.height) = (256, 160);
                }
                "--runs" => options.runs = number(args.next(), "--runs").max(1),
                "--frames" => options.frames = Some(number(args.next(), "--frames").max(1)),
                "--size" => {
                    let size = args.next().expect("--size WxH");
                    let (w, h) = size.split_once('x').expect("--size WxH");
                    options.width = w.parse().expect("--size WxH");
                    options.height = h.parse().expect("--size WxH");
                }
                "--codecs" => {
                    options.codecs = list(
                        args.next(),
                        Codec::parse,
                        "--codecs uncompressed,planar,remotefx,egfx-progressive,egfx-avc420",
                    );
                }
                "--loops" => options.loops = list(args.next(), Loop::parse, "--loops ours,tokio,decode,transport"),
                "--server-thread" => options.server_thread = true,
                other if other.starts_with("--") => panic!("unknown option {other}"),
                _ => {}
            }
        }
        options
    }
}

fn list<T>(value: Option<&String>, parse: fn(&str) -> Option<T>, usage: &str) -> Vec<T> {
    value
        .expect(usage)
        .split(',')
        .map(|s| parse(s).unwrap_or_else(|| panic!("{usage}: unknown {s:?}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Pictures and pre-encoded frames

/// The test pattern shifted by `k` steps, as BGRX (what the server encodes).
fn picture(width: u16, height: u16, k: usize) -> Vec<u8> {
    let (sx, sy) = ((k * 151) % usize::from(width), (k * 37) % usize::from(height));
    let mut data = Vec::with_capacity(usize::from(width) * usize::from(height) * 4);
    for y in 0..usize::from(height) {
        for x in 0..usize::from(width) {
            // In range: both are reduced modulo a u16 side.
            let (px, py) = (
                ((x + sx) % usize::from(width)) as u16,
                ((y + sy) % usize::from(height)) as u16,
            );
            let [r, g, b, _] = pattern_pixel(px, py, width, height);
            data.extend_from_slice(&[b, g, r, 0xFF]);
        }
    }
    data
}

fn pictures(width: u16, height: u16) -> Vec<Vec<u8>> {
    (0..PICTURES).map(|k| picture(width, height, k)).collect()
}

/// The frames of one codec: `PICTURES` byte strings of whole fast-path PDUs.
fn encode(codec: Codec, pictures: &[Vec<u8>], width: u16, height: u16, offer: &RemoteFxOffer) -> Vec<Vec<u8>> {
    pictures
        .iter()
        .enumerate()
        .map(|(k, data)| {
            let picture = Picture::new(data, width, height).expect("picture of the desktop's size");
            match codec {
                Codec::Uncompressed => bitmap_updates(&picture, BitmapCodec::Uncompressed),
                Codec::Planar => bitmap_updates(&picture, BitmapCodec::Planar),
                // Header messages first, as a server sends before its first frame.
                Codec::RemoteFx => remotefx_surface_bits(&picture, offer, k as u32, k == 0),
                Codec::Egfx(_) => unreachable!("the pipeline's frames come from egfx::Stream"),
            }
            .expect("encode a frame")
        })
        .collect()
}

/// FNV-1a of all frames: the server's frames and ours must be the same bytes.
fn checksum<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for frame in frames {
        for &byte in frame {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Where each PDU of a frame is, and how it is framed (fast-path; X.224 for channel data).
fn split_pdus(frame: &[u8]) -> Vec<(Action, Range<usize>)> {
    let mut pdus = Vec::new();
    let mut at = 0;
    while at < frame.len() {
        let info = ironrdp_pdu::find_size(&frame[at..])
            .expect("a PDU header")
            .expect("whole PDUs");
        pdus.push((info.action, at..at + info.length));
        at += info.length;
    }
    pdus
}

/// What a replay sends: a set-up written once (the graphics pipeline's; empty for the legacy
/// codecs), then the frames in turn.
struct Replay {
    setup: Vec<u8>,
    frames: Vec<Vec<u8>>,
    /// Of what the server and the client encode alike (for the pipeline, its messages before
    /// MCS addressing, which depends on the connection).
    checksum: u64,
}

impl Replay {
    fn legacy(frames: Vec<Vec<u8>>) -> Self {
        Self {
            checksum: checksum(frames.iter().map(Vec::as_slice)),
            setup: Vec::new(),
            frames,
        }
    }

    fn egfx(stream: &egfx::Stream, ids: egfx::Ids) -> Self {
        let (setup, frames) = stream.wire(ids);
        Self {
            setup,
            frames,
            checksum: checksum(stream.messages()),
        }
    }
}

struct Encoded {
    codec: Codec,
    /// Addressed for the decode-only loop (the network loops' servers address their own).
    replay: Replay,
    setup_pdus: Vec<(Action, Range<usize>)>,
    pdus: Vec<Vec<(Action, Range<usize>)>>,
    encode_time: Duration,
}

impl Encoded {
    fn new(codec: Codec, pictures: &[Vec<u8>], params: &StageParams, offer: &RemoteFxOffer) -> Self {
        let (width, height) = (params.width, params.height);
        let start = Instant::now();
        let replay = match codec {
            Codec::Egfx(kind) => Replay::egfx(
                &egfx::Stream::new(kind, pictures, width, height),
                egfx::Ids::decode(
                    params.user_channel_id,
                    &[Some(params.io_channel_id), params.message_channel_id],
                ),
            ),
            _ => Replay::legacy(encode(codec, pictures, width, height, offer)),
        };
        let encode_time = start.elapsed();
        Self {
            codec,
            setup_pdus: split_pdus(&replay.setup),
            pdus: replay.frames.iter().map(|f| split_pdus(f)).collect(),
            replay,
            encode_time,
        }
    }

    fn bytes_per_frame(&self) -> f64 {
        let frames = &self.replay.frames;
        frames.iter().map(Vec::len).sum::<usize>() as f64 / frames.len() as f64
    }

    fn pdus_per_frame(&self) -> f64 {
        self.pdus.iter().map(Vec::len).sum::<usize>() as f64 / self.pdus.len() as f64
    }
}

// ---------------------------------------------------------------------------------------------
// CPU time

/// Nanoseconds the calling thread has run (user and system), from the scheduler.
///
/// The kernel brings a running thread's total up to date only when it is scheduled, so the
/// thread yields first: that updates it, and the figure is then exact to some microseconds
/// instead of a scheduler tick (milliseconds).
fn thread_cpu_ns() -> u64 {
    std::thread::yield_now();
    schedstat("/proc/thread-self/schedstat").expect("/proc/thread-self/schedstat")
}

fn schedstat(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn thread_id() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("a thread id")
}

/// CPU time of every thread of this process but `except`, by thread id.
fn other_threads(except: &[u32]) -> HashMap<u32, u64> {
    let mut cpu = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if except.contains(&tid) {
            continue;
        }
        if let Some(ns) = schedstat(&format!("/proc/self/task/{tid}/schedstat")) {
            cpu.insert(tid, ns);
        }
    }
    cpu
}

/// CPU the other threads used between two [`other_threads`] snapshots (threads that appeared
/// meanwhile count from zero).
fn other_threads_delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Starts the clock on the client thread.
struct Stopwatch {
    wall: Instant,
    cpu: u64,
    others: HashMap<u32, u64>,
    except: Vec<u32>,
}

impl Stopwatch {
    fn start(except: Vec<u32>) -> Self {
        let others = other_threads(&except);
        Self {
            wall: Instant::now(),
            cpu: thread_cpu_ns(),
            others,
            except,
        }
    }

    fn stop(self, frames: usize) -> Sample {
        let cpu = thread_cpu_ns() - self.cpu;
        let wall = self.wall.elapsed();
        let others = other_threads_delta(&self.others, &other_threads(&self.except));
        Sample {
            frames,
            cpu_ns: cpu,
            wall_ns: wall.as_nanos() as u64,
            others_ns: others,
            server_ns: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    frames: usize,
    cpu_ns: u64,
    wall_ns: u64,
    others_ns: u64,
    server_ns: Option<u64>,
}

impl Sample {
    fn cpu_ms(&self) -> f64 {
        self.cpu_ns as f64 / 1e6 / self.frames as f64
    }
    fn wall_ms(&self) -> f64 {
        self.wall_ns as f64 / 1e6 / self.frames as f64
    }
    fn fps(&self) -> f64 {
        self.frames as f64 / (self.wall_ns as f64 / 1e9)
    }
    fn others_ms(&self) -> f64 {
        self.others_ns as f64 / 1e6 / self.frames as f64
    }
    fn server_ms(&self) -> Option<f64> {
        self.server_ns.map(|ns| ns as f64 / 1e6 / self.frames as f64)
    }
}

// ---------------------------------------------------------------------------------------------
// The server: a child process (or a thread), driven by lines of text

/// What the server is told, one line each:
/// - `serve CODEC COUNT`: accept one connection (`none` for no frames), encode CODEC's frames
///   if not done yet, answer `armed CHECKSUM`, then wait for the next line;
/// - `go`: replay COUNT frames and say goodbye, answer `done CPU_NS`;
/// - `quit`.
///
/// It answers `ready ADDR CERT_HEX TID` first, and `offer ID ENTROPY` after each accept.
fn serve(width: u16, height: u16, mut commands: impl FnMut() -> Option<String>, mut reply: impl FnMut(String)) {
    async_std::task::block_on(async {
        let config = ServerConfig {
            username: USER.to_owned(),
            password: PASSWORD.to_owned(),
            security: Security::Tls,
            desktop: async_rdp::ironrdp_connector::DesktopSize { width, height },
            ..ServerConfig::default()
        };
        let server = DemoServer::bind(config).await.expect("bind the demo server");
        let address = server.local_addr().expect("the server's address");
        reply(format!("ready {address} {} {}", hex(server.certificate()), thread_id()));
        let pictures = pictures(width, height);
        // Pipeline streams are encoded once, then addressed for each connection's channel ids.
        let mut streams: HashMap<&'static str, egfx::Stream> = HashMap::new();
        let mut encoded: HashMap<(&'static str, egfx::Ids), Replay> = HashMap::new();
        let mut first_offer = None;
        while let Some(command) = commands() {
            let words: Vec<&str> = command.split_whitespace().collect();
            match words.as_slice() {
                ["serve", codec, count] => {
                    let count: usize = count.parse().expect("frame count");
                    let mut connection = server.accept().await.expect("server side of the connection sequence");
                    let offer = connection.remotefx_offer().expect("the client offered RemoteFX");
                    // Every connection must offer the same, or pre-encoded frames would lie.
                    assert_eq!(
                        *first_offer.get_or_insert(offer),
                        offer,
                        "the client's RemoteFX offer changed"
                    );
                    reply(format!("offer {} {}", offer.codec_id, entropy_name(offer.entropy)));
                    let empty = Replay::legacy(Vec::new());
                    let replay = match Codec::parse(codec) {
                        Some(codec @ Codec::Egfx(kind)) => {
                            let ids = egfx::Ids::of(&connection);
                            let stream = streams
                                .entry(codec.key())
                                .or_insert_with(|| egfx::Stream::new(kind, &pictures, width, height));
                            encoded
                                .entry((codec.key(), ids))
                                .or_insert_with(|| Replay::egfx(stream, ids))
                        }
                        Some(codec) => encoded
                            .entry((codec.key(), egfx::Ids::default()))
                            .or_insert_with(|| Replay::legacy(encode(codec, &pictures, width, height, &offer))),
                        None => &empty,
                    };
                    reply(format!("armed {}", replay.checksum));
                    match commands().as_deref() {
                        Some("go") => {}
                        _ => return,
                    }
                    let cpu = thread_cpu_ns();
                    if !replay.setup.is_empty() {
                        connection
                            .framed
                            .write_all(&replay.setup)
                            .await
                            .expect("write the set-up");
                    }
                    connection
                        .replay(&replay.frames, count)
                        .await
                        .expect("replay the frames");
                    reply(format!("done {}", thread_cpu_ns() - cpu));
                }
                ["quit"] => return,
                _ => panic!("unknown server command {command:?}"),
            }
        }
    });
}

fn entropy_name(entropy: EntropyAlgorithm) -> &'static str {
    match entropy {
        EntropyAlgorithm::Rlgr1 => "rlgr1",
        EntropyAlgorithm::Rlgr3 => "rlgr3",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The client's end of the server's control lines.
enum Server {
    Process {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    },
    Thread {
        commands: mpsc::Sender<String>,
        replies: mpsc::Receiver<String>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

/// The server's address, certificate and thread.
struct Endpoint {
    address: String,
    certificate: CertificateDer<'static>,
    tid: u32,
}

impl Server {
    fn start(options: &Options) -> (Self, Endpoint) {
        let size = (options.width, options.height);
        let mut server = if options.server_thread {
            let (commands, command_rx) = mpsc::channel::<String>();
            let (reply_tx, replies) = mpsc::channel::<String>();
            let thread = std::thread::Builder::new()
                .name("demo-server".into())
                .spawn(move || {
                    serve(
                        size.0,
                        size.1,
                        || command_rx.recv().ok(),
                        |line| {
                            let _ = reply_tx.send(line);
                        },
                    )
                })
                .expect("spawn the server thread");
            Server::Thread {
                commands,
                replies,
                thread: Some(thread),
            }
        } else {
            let mut child = Process::new(std::env::current_exe().expect("this benchmark's path"))
                .args(["--serve", &size.0.to_string(), &size.1.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the server process");
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
            Server::Process { child, stdin, stdout }
        };
        let ready = server.expect("ready");
        let [address, certificate, tid] = ready.as_slice() else {
            panic!("bad ready line {ready:?}");
        };
        let endpoint = Endpoint {
            address: address.clone(),
            certificate: CertificateDer::from(unhex(certificate)),
            tid: tid.parse().expect("server thread id"),
        };
        (server, endpoint)
    }

    fn send(&mut self, line: &str) {
        match self {
            Server::Process { stdin, .. } => {
                writeln!(stdin, "{line}").expect("write to the server");
                stdin.flush().expect("write to the server");
            }
            Server::Thread { commands, .. } => commands.send(line.to_owned()).expect("the server thread is gone"),
        }
    }

    fn receive(&mut self) -> String {
        match self {
            Server::Process { stdout, .. } => {
                let mut line = String::new();
                let n = stdout.read_line(&mut line).expect("read from the server");
                assert!(n > 0, "the server process ended");
                line.trim_end().to_owned()
            }
            Server::Thread { replies, .. } => replies.recv().expect("the server thread is gone"),
        }
    }

    /// The next reply, which must start with `word`; its other words.
    fn expect(&mut self, word: &str) -> Vec<String> {
        let line = self.receive();
        let mut words = line.split_whitespace().map(str::to_owned);
        assert_eq!(words.next().as_deref(), Some(word), "server said {line:?}");
        words.collect()
    }

    /// `serve`: the server accepts a connection; call [`Server::armed`] once connected.
    fn serve(&mut self, codec: Option<Codec>, count: usize) {
        self.send(&format!("serve {} {count}", codec.map_or("none", Codec::key)));
    }

    /// Waits for the accept and the encoding; returns the client's offer and the checksum.
    fn armed(&mut self) -> (RemoteFxOffer, u64) {
        let offer = self.expect("offer");
        let entropy = match offer[1].as_str() {
            "rlgr1" => EntropyAlgorithm::Rlgr1,
            _ => EntropyAlgorithm::Rlgr3,
        };
        let offer = RemoteFxOffer {
            codec_id: offer[0].parse().expect("codec id"),
            entropy,
        };
        let checksum = self.expect("armed")[0].parse().expect("checksum");
        (offer, checksum)
    }

    fn go(&mut self) {
        self.send("go");
    }

    /// The server's CPU time for the replay.
    fn done(&mut self) -> u64 {
        self.expect("done")[0].parse().expect("cpu ns")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After a failure the server may be waiting for a connection that never comes.
        let failed = std::thread::panicking();
        match self {
            Server::Process { child, stdin, .. } => {
                if failed {
                    let _ = child.kill();
                } else {
                    let _ = writeln!(stdin, "quit").and_then(|()| stdin.flush());
                }
                let _ = child.wait();
            }
            Server::Thread { commands, thread, .. } => {
                let _ = commands.send("quit".to_owned());
                if let Some(thread) = thread.take().filter(|_| !failed) {
                    let _ = thread.join();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client loops

/// What the active stage is built from, kept from a real connection.
#[derive(Debug, Clone, Copy)]
struct StageParams {
    user_channel_id: u16,
    io_channel_id: u16,
    message_channel_id: Option<u16>,
    share_id: u32,
    compression_type: Option<CompressionType>,
    enable_server_pointer: bool,
    pointer_software_rendering: bool,
    width: u16,
    height: u16,
}

impl StageParams {
    fn new(result: &ConnectionResult) -> Self {
        Self {
            user_channel_id: result.user_channel_id,
            io_channel_id: result.io_channel_id,
            message_channel_id: result.message_channel_id,
            share_id: result.share_id,
            compression_type: result.compression_type,
            enable_server_pointer: result.enable_server_pointer,
            pointer_software_rendering: result.pointer_software_rendering,
            width: result.desktop_size.width,
            height: result.desktop_size.height,
        }
    }
}

/// The active stage and framebuffer, as IronRDP's examples build them.
fn active_stage(mut result: ConnectionResult) -> (ActiveStage, DecodedImage) {
    let image = DecodedImage::new(
        PixelFormat::RgbA32,
        result.desktop_size.width,
        result.desktop_size.height,
    );
    let stage = ActiveStageBuilder {
        static_channels: std::mem::take(&mut result.static_channels),
        user_channel_id: result.user_channel_id,
        io_channel_id: result.io_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        compression_type: result.compression_type,
        enable_server_pointer: result.enable_server_pointer,
        pointer_software_rendering: result.pointer_software_rendering,
    }
    .build();
    (stage, image)
}

fn client_config(options: &Options, endpoint: &Endpoint) -> ClientConfig {
    ClientConfig::new(USER, PASSWORD)
        .with_security(async_rdp::Security::Tls)
        .with_desktop_size(options.width, options.height)
        .with_codecs(&[async_rdp::Codec::RemoteFx])
        .with_trust(Trust::pinned([Fingerprint::of(&endpoint.certificate)]))
}

struct Outcome {
    sample: Sample,
    image: Vec<u8>,
    updates: usize,
}

/// What a network run needs.
struct Net<'a> {
    options: &'a Options,
    server: &'a mut Server,
    endpoint: &'a Endpoint,
    encoded: &'a Encoded,
    count: usize,
}

impl Net<'_> {
    /// Tells the server what to send, then, once connected, checks what it will send.
    fn arm(&mut self) {
        let (_, checksum) = self.server.armed();
        assert_eq!(
            checksum, self.encoded.replay.checksum,
            "the server encoded other frames"
        );
    }

    fn except(&self) -> Vec<u32> {
        let mut except = vec![thread_id()];
        if self.options.server_thread {
            except.push(self.endpoint.tid);
        }
        except
    }
}

/// Loop 1: async-rdp's `connect` and `Session::next_event`.
fn run_ours(net: &mut Net<'_>) -> Outcome {
    net.server.serve(Some(net.encoded.codec), net.count);
    let config = client_config(net.options, net.endpoint);
    async_rdp::runtime::block_on(async {
        let mut session = async_rdp::connect(&net.endpoint.address, config)
            .await
            .expect("async-rdp connect");
        net.arm();
        let watch = Stopwatch::start(net.except());
        net.server.go();
        let mut updates = 0;
        loop {
            match session.next_event().await.expect("session event") {
                Event::Graphics(_) => updates += 1,
                Event::Disconnected(DisconnectReason::Server(_)) => break,
                Event::Disconnected(other) => panic!("the session ended badly: {other:?}"),
                _ => {}
            }
        }
        let mut sample = watch.stop(net.count);
        let fb = session.framebuffer();
        assert_eq!(fb.stride, usize::from(fb.width) * 4);
        let image = fb.data.to_vec();
        drop(session);
        sample.server_ns = Some(net.server.done());
        Outcome { sample, image, updates }
    })
}

/// ironrdp-async's network client for CredSSP; TLS-only connections never call it.
struct NoNetwork;

impl ironrdp_tokio::NetworkClient for NoNetwork {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(async_rdp::ironrdp_connector::general_err!(
            "no network client in this benchmark"
        ))
    }
}

/// Accepts any certificate: a benchmark on loopback.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Loop 2: ironrdp-tokio, as IronRDP's examples drive a session.
fn run_tokio(net: &mut Net<'_>) -> Outcome {
    net.server.serve(Some(net.encoded.codec), net.count);
    let config = client_config(net.options, net.endpoint);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls_config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    tls_config.resumption = rustls::client::Resumption::disabled();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&net.endpoint.address)
            .await
            .expect("tcp connect");
        tcp.set_nodelay(true).expect("nodelay");
        let local = tcp.local_addr().expect("local address");
        // IronRDP's pipeline client, for the rows that use it (the others never open it);
        // the connector config asks for the pipeline, as ours does.
        let mut connector =
            ClientConnector::new(config.connector_config(), local).with_static_channel(egfx::ironrdp_channel());
        let mut framed = ironrdp_tokio::TokioFramed::new(tcp);
        let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector)
            .await
            .expect("connect_begin");
        let tcp = framed.into_inner_no_leftover();
        let server_name = ServerName::try_from("127.0.0.1").expect("server name").to_owned();
        let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
            .connect(server_name, tcp)
            .await
            .expect("TLS handshake");
        let certificate = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("server certificate")
            .clone();
        let server_public_key = tls::subject_public_key(&certificate).expect("server public key");
        let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
        let mut framed = ironrdp_tokio::TokioFramed::new(tls_stream);
        let outcome = ironrdp_tokio::connect_finalize(
            upgraded,
            connector,
            &mut framed,
            &mut NoNetwork,
            "127.0.0.1".into(),
            server_public_key,
            None,
        )
        .await
        .expect("connect_finalize");
        let ConnectionOutcome::Connected(result) = outcome else {
            panic!("redirected");
        };
        let (mut stage, mut image) = active_stage(result);
        net.arm();
        let watch = Stopwatch::start(net.except());
        net.server.go();
        let mut updates = 0;
        'session: loop {
            let (action, frame) = framed.read_pdu().await.expect("read a frame");
            let outputs = stage
                .process(&mut image, action, &frame, framed.last_read_at())
                .expect("process a frame");
            for output in outputs {
                match output {
                    ActiveStageOutput::ResponseFrame(frame) => {
                        framed.write_all(&frame).await.expect("write a response")
                    }
                    ActiveStageOutput::GraphicsUpdate(_) => updates += 1,
                    ActiveStageOutput::Terminate(_) => break 'session,
                    _ => {}
                }
            }
        }
        let mut sample = watch.stop(net.count);
        let image = image.data().to_vec();
        drop(framed);
        sample.server_ns = Some(net.server.done());
        Outcome { sample, image, updates }
    })
}

/// async-rdp's low-level drivers, to the end of the connection sequence.
/// With `egfx`, it joins `drdynvc` (with IronRDP's pipeline client), which a server sending
/// the pipeline needs.
async fn connect_low_level(
    options: &Options,
    endpoint: &Endpoint,
    egfx: bool,
) -> (LocalFramed<async_rdp::ClientStream>, ConnectionResult) {
    let config = client_config(options, endpoint);
    let tcp = async_rdp::net::connect(&endpoint.address, Duration::from_secs(10))
        .await
        .expect("tcp connect");
    let local = tcp.local_addr().expect("local address");
    let mut connector = ClientConnector::new(config.connector_config(), local);
    if egfx {
        connector = connector.with_static_channel(egfx::ironrdp_channel());
    }
    let mut framed = LocalFramed::new(tcp);
    let should_upgrade = async_rdp::connector::connect_begin(&mut framed, &mut connector)
        .await
        .expect("connect_begin");
    let verifier = async_rdp::Trust::pinned([async_rdp::trust::Fingerprint::of(&endpoint.certificate)])
        .verifier(&async_rdp::Target::new("127.0.0.1", 3389))
        .expect("verifier");
    let upgraded = tls::upgrade(framed, "127.0.0.1", verifier).await.expect("TLS upgrade");
    let token = async_rdp::connector::mark_as_upgraded(should_upgrade, &mut connector).expect("mark_as_upgraded");
    let mut framed = LocalFramed::new(upgraded.stream);
    let outcome = async_rdp::connector::connect_finalize(
        &mut framed,
        connector,
        token,
        &mut NoNetworkClient,
        "127.0.0.1".into(),
        upgraded.server_public_key,
        None,
    )
    .await
    .expect("connect_finalize");
    let ConnectionOutcome::Connected(result) = outcome else {
        panic!("redirected");
    };
    (framed, result)
}

/// Reads frames until the server closes; returns how many.
async fn read_to_end(framed: &mut LocalFramed<async_rdp::ClientStream>) -> usize {
    let mut pdus = 0;
    loop {
        match framed.read_pdu().await {
            Ok(_) => pdus += 1,
            Err(e) if e.kind() == ErrorKind::Closed => return pdus,
            Err(e) => panic!("reading the stream: {}", async_rdp::report(&e)),
        }
    }
}

/// Loop 4: the transport alone (TLS, framing), nothing decoded.
fn run_transport(net: &mut Net<'_>) -> Outcome {
    net.server.serve(Some(net.encoded.codec), net.count);
    async_rdp::runtime::block_on(async {
        let egfx = matches!(net.encoded.codec, Codec::Egfx(_));
        let (mut framed, _result) = connect_low_level(net.options, net.endpoint, egfx).await;
        net.arm();
        let watch = Stopwatch::start(net.except());
        net.server.go();
        let pdus = read_to_end(&mut framed).await;
        let mut sample = watch.stop(net.count);
        drop(framed);
        sample.server_ns = Some(net.server.done());
        Outcome {
            sample,
            image: Vec::new(),
            updates: pdus,
        }
    })
}

/// Loop 3: the decoder alone, from memory. A graphics pipeline's set-up is timed with the
/// frames, as the network loops time it.
fn run_decode(params: &StageParams, encoded: &Encoded, count: usize) -> Outcome {
    let mut image = DecodedImage::new(PixelFormat::RgbA32, params.width, params.height);
    let mut builder = ActiveStageBuilder {
        static_channels: Default::default(),
        user_channel_id: params.user_channel_id,
        io_channel_id: params.io_channel_id,
        message_channel_id: params.message_channel_id,
        share_id: params.share_id,
        compression_type: params.compression_type,
        enable_server_pointer: params.enable_server_pointer,
        pointer_software_rendering: params.pointer_software_rendering,
    };
    if let Codec::Egfx(_) = encoded.codec {
        egfx::add_decode_channels(&mut builder);
    }
    let mut stage = builder.build();
    let watch = Stopwatch::start(vec![thread_id()]);
    let mut updates = decode_pdus(&mut stage, &mut image, &encoded.replay.setup, &encoded.setup_pdus);
    for i in 0..count {
        let k = i % PICTURES;
        updates += decode_pdus(&mut stage, &mut image, &encoded.replay.frames[k], &encoded.pdus[k]);
    }
    let sample = watch.stop(count);
    Outcome {
        sample,
        image: image.data().to_vec(),
        updates,
    }
}

/// Feeds `pdus` of `frame` to the stage; returns the graphics updates it reported.
fn decode_pdus(
    stage: &mut ActiveStage,
    image: &mut DecodedImage,
    frame: &[u8],
    pdus: &[(Action, Range<usize>)],
) -> usize {
    let mut updates = 0;
    for (action, range) in pdus {
        let outputs = stage
            .process(image, *action, &frame[range.clone()], None)
            .expect("decode a frame");
        updates += outputs
            .iter()
            .filter(|o| matches!(o, ActiveStageOutput::GraphicsUpdate(_)))
            .count();
        std::hint::black_box(outputs);
    }
    updates
}

/// The frames of a run as an in-memory stream: `count` frames in turn, then end of stream.
/// Writes are accepted and dropped.
struct MemoryStream<'a> {
    frames: &'a [Vec<u8>],
    count: usize,
    index: usize,
    at: usize,
}

impl<'a> MemoryStream<'a> {
    fn new(frames: &'a [Vec<u8>], count: usize) -> Self {
        Self {
            frames,
            count,
            index: 0,
            at: 0,
        }
    }
}

impl futures::io::AsyncRead for MemoryStream<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        while self.index < self.count {
            let frame = &self.frames[self.index % self.frames.len()];
            if self.at < frame.len() {
                let n = buf.len().min(frame.len() - self.at);
                buf[..n].copy_from_slice(&frame[self.at..self.at + n]);
                self.at += n;
                return std::task::Poll::Ready(Ok(n));
            }
            self.index += 1;
            self.at = 0;
        }
        std::task::Poll::Ready(Ok(0))
    }
}

impl futures::io::AsyncWrite for MemoryStream<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A `ConnectionResult` of a real connection (made and ended before the clock starts), for a
/// session over memory.
fn fresh_result(options: &Options, server: &mut Server, endpoint: &Endpoint) -> ConnectionResult {
    server.serve(None, 0);
    async_std::task::block_on(async {
        let (mut framed, result) = connect_low_level(options, endpoint, false).await;
        server.armed();
        server.go();
        read_to_end(&mut framed).await;
        drop(framed);
        server.done();
        result
    })
}

/// Loop 5: our `Session`, fed from memory: what the session machinery costs without TLS and
/// sockets (compare with loop 6).
fn run_session_mem(result: ConnectionResult, encoded: &Encoded, count: usize) -> Outcome {
    let framed = LocalFramed::new(MemoryStream::new(&encoded.replay.frames, count));
    let mut session = async_rdp::Session::new(framed, result);
    futures::executor::block_on(async {
        let watch = Stopwatch::start(vec![thread_id()]);
        let mut updates = 0;
        loop {
            match session.next_event().await.expect("session event") {
                Event::Graphics(_) => updates += 1,
                Event::Disconnected(DisconnectReason::ConnectionLost(_)) => break,
                Event::Disconnected(other) => panic!("the session ended badly: {other:?}"),
                _ => {}
            }
        }
        let sample = watch.stop(count);
        Outcome {
            sample,
            image: session.framebuffer().data.to_vec(),
            updates,
        }
    })
}

/// Loop 6: the smallest loop on our `Framed` over the same memory stream: `read_pdu`, then
/// `ActiveStage::process`.
fn run_framed_mem(result: ConnectionResult, encoded: &Encoded, count: usize) -> Outcome {
    let mut framed = LocalFramed::new(MemoryStream::new(&encoded.replay.frames, count));
    let (mut stage, mut image) = active_stage(result);
    futures::executor::block_on(async {
        let watch = Stopwatch::start(vec![thread_id()]);
        let mut updates = 0;
        loop {
            let (action, frame) = match framed.read_pdu().await {
                Ok(read) => read,
                Err(e) if e.kind() == ErrorKind::Closed => break,
                Err(e) => panic!("reading memory: {}", async_rdp::report(&e)),
            };
            for output in stage
                .process(&mut image, action, &frame, framed.last_read_at())
                .expect("process a frame")
            {
                if let ActiveStageOutput::GraphicsUpdate(_) = output {
                    updates += 1;
                }
            }
        }
        let sample = watch.stop(count);
        Outcome {
            sample,
            image: image.data().to_vec(),
            updates,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Checking the picture

/// How far a decoded framebuffer is from the picture sent.
#[derive(Debug, Clone, Copy)]
struct Fidelity {
    max: u8,
    mean: f64,
    psnr: f64,
    /// The largest mean error of one 64 x 64 tile: a misplaced or garbled tile shows here.
    worst_tile: f64,
}

fn fidelity(image: &[u8], picture: &[u8], width: u16, height: u16) -> Fidelity {
    let (w, h) = (usize::from(width), usize::from(height));
    assert_eq!(image.len(), w * h * 4, "framebuffer size");
    let (tiles_x, tiles_y) = (w.div_ceil(64), h.div_ceil(64));
    let mut tile_sum = vec![0u64; tiles_x * tiles_y];
    let mut tile_n = vec![0u64; tiles_x * tiles_y];
    let (mut max, mut sum, mut squares) = (0u8, 0u64, 0u64);
    for (i, (rgba, bgrx)) in image.chunks_exact(4).zip(picture.chunks_exact(4)).enumerate() {
        let tile = (i / w / 64) * tiles_x + (i % w) / 64;
        for (a, b) in [(rgba[0], bgrx[2]), (rgba[1], bgrx[1]), (rgba[2], bgrx[0])] {
            let d = a.abs_diff(b);
            max = max.max(d);
            sum += u64::from(d);
            squares += u64::from(d) * u64::from(d);
            tile_sum[tile] += u64::from(d);
        }
        tile_n[tile] += 3;
        if rgba[3] != 0xFF {
            max = u8::MAX;
        }
    }
    let samples = (w * h * 3) as f64;
    let mse = squares as f64 / samples;
    Fidelity {
        max,
        mean: sum as f64 / samples,
        psnr: if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / mse).log10()
        },
        worst_tile: tile_sum
            .iter()
            .zip(&tile_n)
            .map(|(s, n)| *s as f64 / *n as f64)
            .fold(0.0, f64::max),
    }
}

/// RemoteFX at the default quantisation on the test pattern: the 1-px checkerboard is the
/// worst case for a wavelet codec. A decode gone wrong (a tile misplaced, garbled, or left
/// over from another frame) is far outside these.
const REMOTEFX_MIN_PSNR: f64 = 25.0;
const REMOTEFX_MAX_TILE_MEAN: f64 = 40.0;

/// The least PSNR and the largest mean error of a tile a lossy codec's decode may show.
fn tolerance(codec: Codec) -> (f64, f64) {
    match codec {
        // The demo server's progressive tiles are unscaled (quantisation 6): only the colour
        // conversion and the wavelet's rounding lose anything.
        Codec::Egfx(egfx::Kind::Progressive) => (PROGRESSIVE_MIN_PSNR, PROGRESSIVE_MAX_TILE_MEAN),
        // OpenH264 at its default rate (a 120 kbit/s target: coarse at 1080p) on
        // the checkerboard, converted with BT.601 and decoded as BT.709 (about 12 levels off
        // in green): some tiles are mush, so the tile bound is loose; a frame not drawn or
        // drawn from another picture fails `check_nearest` all the same.
        #[cfg(feature = "h264")]
        Codec::Egfx(egfx::Kind::Avc420) => (AVC420_MIN_PSNR, AVC420_MAX_TILE_MEAN),
        _ => (REMOTEFX_MIN_PSNR, REMOTEFX_MAX_TILE_MEAN),
    }
}

const PROGRESSIVE_MIN_PSNR: f64 = 25.0;
const PROGRESSIVE_MAX_TILE_MEAN: f64 = 20.0;
#[cfg(feature = "h264")]
const AVC420_MIN_PSNR: f64 = 14.0;
#[cfg(feature = "h264")]
const AVC420_MAX_TILE_MEAN: f64 = 120.0;

fn check_reference(codec: Codec, fidelity: &Fidelity) {
    if codec.lossless() {
        assert_eq!(
            fidelity.max,
            0,
            "{}: the decoded frame differs from the picture sent",
            codec.key()
        );
    } else {
        let (min_psnr, max_tile_mean) = tolerance(codec);
        assert!(
            fidelity.psnr >= min_psnr && fidelity.worst_tile <= max_tile_mean,
            "{}: the decoded frame is too far from the picture sent: {fidelity:?}",
            codec.key()
        );
    }
}

/// A lossy codec's tolerance is loose enough for a frame drawn from another picture to pass it
/// (the pictures are the same pattern, shifted): the decoded frame must be nearer the picture
/// sent last than any other.
fn check_nearest(codec: Codec, image: &[u8], pictures: &[Vec<u8>], last: usize, width: u16, height: u16) {
    let mean = |k: usize| fidelity(image, &pictures[k], width, height).mean;
    let own = mean(last);
    for k in (0..pictures.len()).filter(|&k| k != last) {
        assert!(
            own < mean(k),
            "{}: the decoded frame is nearer picture {k} (mean error {:.2}) than the last one sent ({own:.2})",
            codec.key(),
            mean(k)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Running and reporting

struct Measured {
    codec: Codec,
    lp: Loop,
    samples: Vec<Sample>,
    updates: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl Measured {
    fn med(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(self.samples.iter().map(f).collect())
    }
    fn range(&self, f: impl Fn(&Sample) -> f64) -> (f64, f64) {
        let values: Vec<f64> = self.samples.iter().map(f).collect();
        (
            values.iter().copied().fold(f64::INFINITY, f64::min),
            values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let size = |j: usize| -> u16 { args[i + j].parse().expect("--serve WIDTH HEIGHT") };
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        serve(
            size(1),
            size(2),
            || lines.next().and_then(Result::ok),
            |line| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            },
        );
        return;
    }
    let options = Options::parse(&args);
    let report = run(&options);
    print!("{report}");
    let dir = target_dir().join("bench-results");
    std::fs::create_dir_all(&dir).expect("create target/bench-results");
    // A smoke run must not overwrite the figures of a real one.
    let path = dir.join(if options.quick {
        "session-quick.md"
    } else {
        "session.md"
    });
    std::fs::write(&path, &report).expect("write the results");
    println!("\nWritten to {}", path.display());
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn run(options: &Options) -> String {
    let (w, h) = (options.width, options.height);
    eprintln!("session bench: {w}x{h}, {} run(s)", options.runs);
    let pictures = pictures(w, h);
    let (mut server, endpoint) = Server::start(options);

    // A real connection for the decode-only loop's active stage, and the client's RemoteFX
    // offer, which the frames must follow.
    server.serve(None, 0);
    let (params, offer) = async_std::task::block_on(async {
        let (mut framed, result) = connect_low_level(options, &endpoint, false).await;
        let (offer, _) = server.armed();
        server.go();
        read_to_end(&mut framed).await;
        drop(framed);
        server.done();
        (StageParams::new(&result), offer)
    });

    let mut encoded = Vec::new();
    let mut counts = HashMap::new();
    let mut references: HashMap<&'static str, (Vec<u8>, Fidelity)> = HashMap::new();
    for &codec in &options.codecs {
        let e = Encoded::new(codec, &pictures, &params, &offer);
        // Estimate the decoder's speed, then size the runs.
        let probe = run_decode(&params, &e, PICTURES * 2).sample;
        let count = options.frames.unwrap_or_else(|| {
            let per_frame = probe.cpu_ns.max(1) as f64 / probe.frames as f64;
            // The network loops cost more than decoding alone: aim below the target.
            ((TARGET_RUN.as_nanos() as f64 / 1.5 / per_frame) as usize).clamp(24, 2000)
        });
        // The reference: what the decoder makes of exactly the frames each run sends.
        let reference = run_decode(&params, &e, count).image;
        let last = &pictures[(count - 1) % PICTURES];
        let fid = fidelity(&reference, last, w, h);
        check_reference(codec, &fid);
        check_nearest(codec, &reference, &pictures, (count - 1) % PICTURES, w, h);
        eprintln!(
            "  {}: {:.0} KiB/frame in {:.0} PDUs, encoded in {:.0} ms; {count} frames a run; reference {fid:?}",
            codec.key(),
            e.bytes_per_frame() / 1024.0,
            e.pdus_per_frame(),
            e.encode_time.as_secs_f64() * 1e3,
        );
        counts.insert(codec.key(), count);
        references.insert(codec.key(), (reference, fid));
        encoded.push(e);
    }

    let mut results: Vec<Measured> = Vec::new();
    for &codec in &options.codecs {
        for lp in options.loops.iter().copied().filter(|&lp| codec.runs_in(lp)) {
            results.push(Measured {
                codec,
                lp,
                samples: Vec::new(),
                updates: 0,
            });
        }
    }
    for rep in 0..options.runs {
        for e in &encoded {
            let count = counts[e.codec.key()];
            // Interleaved, and each repetition starts with another loop.
            let loops: Vec<Loop> = options
                .loops
                .iter()
                .copied()
                .filter(|&lp| e.codec.runs_in(lp))
                .collect();
            let n = loops.len();
            for i in 0..n {
                let lp = loops[(i + rep) % n];
                let outcome = match lp {
                    Loop::Decode => run_decode(&params, e, count),
                    Loop::SessionMem => run_session_mem(fresh_result(options, &mut server, &endpoint), e, count),
                    Loop::FramedMem => run_framed_mem(fresh_result(options, &mut server, &endpoint), e, count),
                    Loop::Ours | Loop::Tokio | Loop::Transport => {
                        let mut net = Net {
                            options,
                            server: &mut server,
                            endpoint: &endpoint,
                            encoded: e,
                            count,
                        };
                        match lp {
                            Loop::Ours => run_ours(&mut net),
                            Loop::Tokio => run_tokio(&mut net),
                            _ => run_transport(&mut net),
                        }
                    }
                };
                if lp != Loop::Transport {
                    let (reference, _) = &references[e.codec.key()];
                    assert!(
                        outcome.image == *reference,
                        "{} / {}: the framebuffer differs from the reference decode of the last frame",
                        e.codec.key(),
                        lp.key()
                    );
                }
                assert!(outcome.updates > 0, "{} / {}: nothing updated", e.codec.key(), lp.key());
                eprintln!(
                    "  run {}: {:<12} {:<9} {:7.2} ms CPU/frame, {:7.2} ms wall/frame",
                    rep + 1,
                    e.codec.key(),
                    lp.key(),
                    outcome.sample.cpu_ms(),
                    outcome.sample.wall_ms()
                );
                let m = results
                    .iter_mut()
                    .find(|m| m.codec == e.codec && m.lp == lp)
                    .expect("a slot");
                m.samples.push(outcome.sample);
                m.updates = outcome.updates;
            }
        }
    }
    let per_pdu = per_pdu_costs(options, &mut server, &endpoint, &params);
    drop(server);
    let mut report = render(options, &encoded, &counts, &references, &offer, &results);
    report.push_str(&per_pdu);
    report
}

/// The session machinery's cost per PDU, where decoding costs next to nothing: a stream of
/// single-PDU frames, each a 4 x 4 uncompressed bitmap, through loops 3, 5 and 6.
fn per_pdu_costs(options: &Options, server: &mut Server, endpoint: &Endpoint, params: &StageParams) -> String {
    let (w, h) = (4, 4);
    let frames: Vec<Vec<u8>> = (0..PICTURES)
        .map(|k| {
            let data = picture(w, h, k);
            bitmap_updates(&Picture::new(&data, w, h).expect("picture"), BitmapCodec::Uncompressed).expect("encode")
        })
        .collect();
    let pdus: Vec<Vec<(Action, Range<usize>)>> = frames.iter().map(|f| split_pdus(f)).collect();
    assert!(pdus.iter().all(|p| p.len() == 1), "one PDU a frame");
    let tiny = Encoded {
        codec: Codec::Uncompressed,
        replay: Replay::legacy(frames),
        setup_pdus: Vec::new(),
        pdus,
        encode_time: Duration::ZERO,
    };
    let count = if options.quick { 2_000 } else { 200_000 };
    let loops: Vec<Loop> = [Loop::Decode, Loop::FramedMem, Loop::SessionMem]
        .into_iter()
        .filter(|lp| options.loops.contains(lp))
        .collect();
    if loops.is_empty() {
        return String::new();
    }
    let mut ns: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for rep in 0..options.runs {
        for i in 0..loops.len() {
            let lp = loops[(i + rep) % loops.len()];
            let outcome = match lp {
                Loop::Decode => run_decode(params, &tiny, count),
                Loop::FramedMem => run_framed_mem(fresh_result(options, server, endpoint), &tiny, count),
                _ => run_session_mem(fresh_result(options, server, endpoint), &tiny, count),
            };
            assert_eq!(outcome.updates, count, "{}: one update a PDU", lp.key());
            ns.entry(lp.key())
                .or_default()
                .push(outcome.sample.cpu_ns as f64 / count as f64);
        }
    }
    let med = |lp: Loop| ns.get(lp.key()).map_or(f64::NAN, |v| median(v.clone()));
    let mut out = String::new();
    let _ = writeln!(out, "\n## Per-PDU cost of the machinery\n");
    let _ = writeln!(
        out,
        "{count} single-PDU frames (a 4 x 4 uncompressed bitmap each, {} bytes), from memory, so \
         that decoding costs next to nothing; CPU ns per PDU, median of {} run(s).\n",
        tiny.replay.frames[0].len(),
        options.runs
    );
    let _ = writeln!(out, "| loop | ns/PDU |");
    let _ = writeln!(out, "| --- | ---: |");
    for &lp in &loops {
        let _ = writeln!(out, "| {} | {:.0} |", lp.title(), med(lp));
    }
    // Only when both ran (`--loops` may leave them out).
    if loops.contains(&Loop::SessionMem) && loops.contains(&Loop::FramedMem) {
        let _ = writeln!(
            out,
            "| session machinery (session-mem − framed-mem) | {:+.0} |",
            med(Loop::SessionMem) - med(Loop::FramedMem)
        );
    }
    out
}

fn render(
    options: &Options,
    encoded: &[Encoded],
    counts: &HashMap<&'static str, usize>,
    references: &HashMap<&'static str, (Vec<u8>, Fidelity)>,
    offer: &RemoteFxOffer,
    results: &[Measured],
) -> String {
    let mut out = String::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "# Session throughput\n");
    let _ = writeln!(
        out,
        "{}x{} full-screen updates over TLS on loopback, {} different pictures in turn; {} run(s) per \
         measurement, interleaved, median shown (min–max of CPU in brackets). Server: the demo \
         server ({}), frames pre-encoded. {cores} cores; load average at the end: {}.\n",
        options.width,
        options.height,
        PICTURES,
        options.runs,
        if options.server_thread {
            "a thread of this process"
        } else {
            "a child process"
        },
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    if options.quick {
        let _ = writeln!(out, "**Quick run** (`--quick`): a smoke test, not a measurement.\n");
    }
    let _ = writeln!(out, "## Frames\n");
    let _ = writeln!(
        out,
        "| codec | bytes/frame | PDUs/frame | frames/run | encode (once) | last frame vs picture |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | --- |");
    for e in encoded {
        let (_, fid) = &references[e.codec.key()];
        let fidelity = if e.codec.lossless() {
            "exact".to_owned()
        } else {
            format!(
                "PSNR {:.1} dB, mean error {:.2}, worst tile {:.1}, max {}",
                fid.psnr, fid.mean, fid.worst_tile, fid.max
            )
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} KiB | {:.0} | {} | {:.0} ms | {fidelity} |",
            e.codec.title(),
            e.bytes_per_frame() / 1024.0,
            e.pdus_per_frame(),
            counts[e.codec.key()],
            e.encode_time.as_secs_f64() * 1e3,
        );
    }
    let _ = writeln!(
        out,
        "\nRemoteFX: codec id {} and {} as the client offered; every run's framebuffer equals \
         the reference decode exactly.\n",
        offer.codec_id,
        entropy_name(offer.entropy)
    );
    if encoded.iter().any(|e| matches!(e.codec, Codec::Egfx(_))) {
        let _ = writeln!(
            out,
            "Graphics pipeline: each run starts with its set-up (DVC capabilities, the channel's \
             Create Request, a Capabilities Confirm of 10.7, ResetGraphics, CreateSurface, \
             MapSurfaceToOutput), timed with the frames in every loop; each frame is StartFrame, \
             one full-screen WireToSurface2 (progressive: simple tiles, unscaled) or WireToSurface1 \
             (AVC420: OpenH264 at its default settings, an IDR frame then P frames, starting \
             over every {PICTURES} frames), EndFrame, in `drdynvc` Data PDUs; the client \
             acknowledges each frame. The in-memory diagnostics do not run these rows. Every \
             run's framebuffer equals the reference decode exactly, which is nearer the last \
             picture sent than any other.\n"
        );
    }

    let find = |codec: Codec, lp: Loop| results.iter().find(|m| m.codec == codec && m.lp == lp);
    let _ = writeln!(out, "## Per loop\n");
    let _ = writeln!(
        out,
        "| codec | loop | frames/s | one core: frames/s (1000 / CPU ms) | CPU ms/frame | wall ms/frame | \
         other threads ms/frame | server CPU ms/frame | updates/frame |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for e in encoded {
        for &lp in &options.loops {
            let Some(m) = find(e.codec, lp) else { continue };
            let (lo, hi) = m.range(Sample::cpu_ms);
            let server = m.samples.iter().filter_map(Sample::server_ms).collect::<Vec<_>>();
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.2} ({:.2}–{:.2}) | {:.2} | {:.3} | {} | {:.1} |",
                e.codec.key(),
                lp.title(),
                m.med(Sample::fps),
                1000.0 / m.med(Sample::cpu_ms),
                m.med(Sample::cpu_ms),
                lo,
                hi,
                m.med(Sample::wall_ms),
                m.med(Sample::others_ms),
                if server.is_empty() {
                    "–".to_owned()
                } else {
                    format!("{:.2}", median(server))
                },
                m.updates as f64 / m.samples.last().map_or(1, |s| s.frames) as f64,
            );
        }
    }

    let _ = writeln!(out, "\n## Ratios (medians of CPU time per frame)\n");
    let _ = writeln!(
        out,
        "| codec | ours − decode, % of decode (target ≤ 5 %) | ours / tokio CPU (target ≤ 1) | tokio / ours wall | \
         transport, % of decode | session machinery: session-mem − framed-mem, % of decode | \
         framed-mem − decode, % of decode |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for e in encoded {
        let cpu = |lp| find(e.codec, lp).map(|m| m.med(Sample::cpu_ms));
        let wall = |lp| find(e.codec, lp).map(|m| m.med(Sample::wall_ms));
        let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:+.1} %"));
        let ratio = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3} ×"));
        let decode = cpu(Loop::Decode);
        let of_decode = |a: Option<f64>, b: Option<f64>| a.zip(b).zip(decode).map(|((a, b), d)| (a - b) / d * 100.0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            e.codec.key(),
            pct(of_decode(cpu(Loop::Ours), decode)),
            ratio(cpu(Loop::Ours).zip(cpu(Loop::Tokio)).map(|(o, t)| o / t)),
            ratio(wall(Loop::Tokio).zip(wall(Loop::Ours)).map(|(t, o)| t / o)),
            cpu(Loop::Transport)
                .zip(decode)
                .map_or("–".to_owned(), |(t, d)| format!("{:.1} %", t / d * 100.0)),
            pct(of_decode(cpu(Loop::SessionMem), cpu(Loop::FramedMem))),
            pct(of_decode(cpu(Loop::FramedMem), decode)),
        );
    }
    let _ = writeln!(
        out,
        "\nCPU is the client thread's (`/proc/thread-self/schedstat`: user and system). \"Decode\" \
         is `ActiveStage::process` on the same PDUs from memory; \"transport\" is async-rdp's \
         `Framed` reading the same stream over TLS without decoding (TLS decryption and socket \
         reads, which every network client pays); \"session-mem\" is our `Session` fed the same \
         bytes from an in-memory stream (no TLS, no socket, no server running meanwhile) and \
         \"framed-mem\" the minimal `read_pdu` + `process` loop on that stream, so their \
         difference is what the session machinery itself costs."
    );
    out
}
