//! Framing throughput: how fast whole RDP frames can be read off a stream, side by side in one
//! run, against IronRDP's own async framing and against a plain read loop.
//!
//! Contenders, each reading until end of stream:
//!
//! - **ours**: [`async_rdp::framing::LocalFramed`], `read_pdu()` in a loop (each frame handed over as a
//!   `BytesMut`, like the alternatives do);
//! - **ours, lent**: the same, `read_pdu_ref()` (the frame borrows the buffer until the next
//!   read; what the session loop uses);
//! - **ironrdp-futures**: `ironrdp_futures::LocalFuturesFramed` 0.10, `read_pdu()` in a loop;
//! - **ironrdp-tokio**: `ironrdp_tokio::TokioFramed` 0.12, `read_pdu()` in a loop on a tokio
//!   current-thread runtime;
//! - **ceiling**: a plain `futures::io::AsyncRead` loop over the same stream type into one
//!   preallocated buffer of [`CEILING_BUF`] bytes, no parsing: what the transport delivers.
//!
//! Frames are fast-path frames of 64 B, 1 KiB, 16 KiB and 32767 B (the largest fast-path length,
//! 15 bits), and X.224 (TPKT) frames of 65535 B for the "64 KiB" row (the largest RDP frame). Each
//! carries a valid header, arbitrary payload, and its index in its last four bytes. Every framed
//! contender checks every frame (action, length, index) and the totals against what was sent,
//! then end of stream; the ceiling checks the byte total. Any mismatch panics.
//!
//! Transports:
//!
//! - **in-memory**: a reader over a pre-built stream of frames (replayed several times), giving
//!   at most [`MAX_READ`] bytes per read call, with both `futures` and `tokio` `AsyncRead`
//!   implementations that copy identically;
//! - **loopback TCP**: a writer `std::thread` sends the pre-built stream (replayed) over a
//!   blocking `std::net::TcpStream`; the client reads with `async_std::net::TcpStream` (ours,
//!   ironrdp-futures, ceiling) or `tokio::net::TcpStream` (ironrdp-tokio). The clock starts when
//!   the client asks the writer to begin.
//!
//! Each measurement is repeated, with the contenders' order rotated between repetitions so that
//! drift hits all of them; the tables give medians. MB is 10^6 bytes.
//!
//! ```sh
//! cargo bench --bench framing              # full run, a minute or two
//! cargo bench --bench framing -- --quick   # smoke run (small sizes, one repetition)
//! ```
//!
//! The tables are printed and written to `target/bench-results/framing.md`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use async_rdp::framing::LocalFramed;
use async_rdp::ironrdp_pdu::Action;
use async_rdp::ErrorKind;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The most bytes one read call of the in-memory transport returns, whoever reads: the same
/// limit for every contender, the ceiling included.
const MAX_READ: usize = 64 * 1024;

/// The ceiling's read buffer: as much as the in-memory transport gives per call, and the
/// largest RDP frame (rounded up); every read may fill all of it. (On loopback TCP, 256 KiB
/// reads were measured no faster than 64 KiB ones when this was written.)
const CEILING_BUF: usize = 64 * 1024;

const MIB: usize = 1024 * 1024;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Plan {
    quick: bool,
    repetitions: usize,
    /// Size of the pre-built stream of frames (rounded down to whole frames).
    source_bytes: usize,
    /// Times the in-memory reader replays the stream per measurement.
    memory_rounds: usize,
    /// Times the TCP writer sends the stream per measurement.
    tcp_rounds: usize,
}

impl Plan {
    fn full() -> Self {
        Self {
            quick: false,
            repetitions: 5,
            source_bytes: 32 * MIB,
            memory_rounds: 4,
            tcp_rounds: 8,
        }
    }

    fn quick() -> Self {
        Self {
            quick: true,
            repetitions: 1,
            source_bytes: MIB,
            memory_rounds: 2,
            tcp_rounds: 2,
        }
    }
}

/// A frame size measured.
#[derive(Debug, Clone, Copy)]
struct Case {
    label: &'static str,
    len: usize,
    action: Action,
}

const CASES: [Case; 5] = [
    Case {
        label: "64 B",
        len: 64,
        action: Action::FastPath,
    },
    Case {
        label: "1 KiB",
        len: 1024,
        action: Action::FastPath,
    },
    Case {
        label: "16 KiB",
        len: 16 * 1024,
        action: Action::FastPath,
    },
    Case {
        label: "32 KiB (32767 B, fast-path max)",
        len: 0x7fff,
        action: Action::FastPath,
    },
    Case {
        label: "64 KiB (65535 B, X.224)",
        len: 65535,
        action: Action::X224,
    },
];

/// Appends frame number `index` of `case`: a valid header, arbitrary payload, `index` in the
/// last four bytes.
fn push_frame(out: &mut Vec<u8>, case: Case, index: u32) {
    let start = out.len();
    let len16 = u16::try_from(case.len).expect("RDP frame lengths fit 16 bits");
    match case.action {
        Action::FastPath => {
            // fpOutputHeader: action 0 (fast-path), then a one- or two-byte length
            // ([MS-RDPBCGR] 2.2.9.1.2).
            out.push(0x00);
            match u8::try_from(len16) {
                Ok(short) if short < 0x80 => out.push(short),
                _ => {
                    assert!(len16 < 0x8000, "fast-path length has 15 bits");
                    out.extend_from_slice(&(len16 | 0x8000).to_be_bytes());
                }
            }
        }
        Action::X224 => {
            // TPKT header ([T.123] 8), then an X.224 data TPDU header.
            out.extend_from_slice(&[0x03, 0x00]);
            out.extend_from_slice(&len16.to_be_bytes());
            out.extend_from_slice(&[0x02, 0xf0, 0x80]);
        }
    }
    let payload = case.len - (out.len() - start) - 4;
    let seed = index.to_le_bytes()[0];
    out.extend((0..payload).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    out.extend_from_slice(&index.to_le_bytes());
    debug_assert_eq!(out.len() - start, case.len);
}

/// The pre-built stream: whole frames of `case`, about `bytes` in all.
struct Source {
    bytes: Arc<Vec<u8>>,
    frames: u32,
}

fn build_source(case: Case, bytes: usize) -> Source {
    let frames = u32::try_from((bytes / case.len).max(1)).expect("frame count fits u32");
    let mut out = Vec::with_capacity(frames as usize * case.len);
    for index in 0..frames {
        push_frame(&mut out, case, index);
    }
    Source {
        bytes: Arc::new(out),
        frames,
    }
}

/// Counts what a contender read and checks each frame against what was sent.
struct Tally {
    case: Case,
    frames_per_round: u32,
    /// The index the next frame must carry (frames are numbered afresh in each replay).
    next_index: u32,
    frames: u64,
    bytes: u64,
}

impl Tally {
    fn new(case: Case, source: &Source) -> Self {
        Self {
            case,
            frames_per_round: source.frames,
            next_index: 0,
            frames: 0,
            bytes: 0,
        }
    }

    /// Checks the next frame: action, length, and its index in its last four bytes.
    #[inline]
    fn frame(&mut self, action: Action, frame: &[u8]) {
        let index = self.next_index;
        let ok = action == self.case.action
            && frame.len() == self.case.len
            && frame[frame.len() - 4..] == index.to_le_bytes();
        if !ok {
            self.bad_frame(action, frame, index);
        }
        // A counter, not `frames % frames_per_round`: a division per frame would add to every
        // framed contender's per-frame cost what the ceiling never pays.
        self.next_index = if index + 1 == self.frames_per_round {
            0
        } else {
            index + 1
        };
        self.frames += 1;
        self.bytes += frame.len() as u64;
    }

    #[cold]
    #[inline(never)]
    fn bad_frame(&self, action: Action, frame: &[u8], index: u32) -> ! {
        panic!(
            "frame #{} ({}): got {action:?} of {} bytes ending {:02x?}, expected {:?} of {} bytes with index {index}",
            self.frames,
            self.case.label,
            frame.len(),
            &frame[frame.len().saturating_sub(4)..],
            self.case.action,
            self.case.len,
        );
    }

    /// Checks that everything sent was read.
    fn finish(&self, who: &str, rounds: usize, source: &Source) {
        let frames = u64::from(self.frames_per_round) * rounds as u64;
        let bytes = source.bytes.len() as u64 * rounds as u64;
        assert_eq!(
            (self.frames, self.bytes),
            (frames, bytes),
            "{who}, {}: read (frames, bytes) differ from what was sent",
            self.case.label
        );
    }
}

/// The in-memory transport: `data` replayed `rounds` times, at most [`MAX_READ`] bytes per
/// read, then end of stream. Both `AsyncRead` traits share [`MemReader::next_chunk`].
struct MemReader<'a> {
    data: &'a [u8],
    pos: usize,
    rounds: usize,
}

impl<'a> MemReader<'a> {
    fn new(data: &'a [u8], rounds: usize) -> Self {
        Self { data, pos: 0, rounds }
    }

    /// The next bytes to hand out for a read of up to `room` bytes (empty at end of stream).
    fn next_chunk(&mut self, room: usize) -> &'a [u8] {
        if self.pos == self.data.len() {
            if self.rounds <= 1 {
                return &[];
            }
            self.rounds -= 1;
            self.pos = 0;
        }
        let n = room.min(MAX_READ).min(self.data.len() - self.pos);
        let chunk = &self.data[self.pos..self.pos + n];
        self.pos += n;
        chunk
    }
}

impl AsyncRead for MemReader<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let chunk = self.next_chunk(buf.len());
        buf[..chunk.len()].copy_from_slice(chunk);
        Poll::Ready(Ok(chunk.len()))
    }
}

impl tokio::io::AsyncRead for MemReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let chunk = self.next_chunk(buf.remaining());
        buf.put_slice(chunk);
        Poll::Ready(Ok(()))
    }
}

/// The contenders, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Ceiling,
    Ours,
    OursLent,
    Futures,
    Tokio,
}

const N: usize = 5;

const CONTENDERS: [Contender; N] = [
    Contender::Ceiling,
    Contender::Ours,
    Contender::OursLent,
    Contender::Futures,
    Contender::Tokio,
];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Ceiling => "ceiling",
            Contender::Ours => "ours",
            Contender::OursLent => "ours, lent",
            Contender::Futures => "ironrdp-futures",
            Contender::Tokio => "ironrdp-tokio",
        }
    }
}

async fn read_ceiling<S: AsyncRead + Unpin>(mut stream: S, tally: &mut Tally) {
    let mut buf = vec![0u8; CEILING_BUF];
    loop {
        let n = stream.read(&mut buf).await.expect("ceiling: read");
        if n == 0 {
            break;
        }
        black_box(&buf[..n]);
        tally.bytes += n as u64;
    }
    // The ceiling does not parse: it is credited with the frames its bytes hold.
    tally.frames = tally.bytes / tally.case.len as u64;
}

async fn read_ours<S: AsyncRead + Unpin>(stream: S, tally: &mut Tally) {
    let mut framed = LocalFramed::new(stream);
    loop {
        match framed.read_pdu().await {
            Ok((action, frame)) => tally.frame(action, &frame),
            Err(e) if e.kind() == ErrorKind::Closed => break,
            Err(e) => panic!("ours: read_pdu after {} frames: {e}", tally.frames),
        }
    }
}

async fn read_ours_lent<S: AsyncRead + Unpin>(stream: S, tally: &mut Tally) {
    let mut framed = LocalFramed::new(stream);
    loop {
        match framed.read_pdu_ref().await {
            Ok((action, frame)) => tally.frame(action, frame),
            Err(e) if e.kind() == ErrorKind::Closed => break,
            Err(e) => panic!("ours, lent: read_pdu_ref after {} frames: {e}", tally.frames),
        }
    }
}

async fn read_ironrdp_futures<S: AsyncRead + Unpin>(stream: S, tally: &mut Tally) {
    let mut framed = ironrdp_futures::LocalFuturesFramed::new(stream);
    loop {
        match framed.read_pdu().await {
            Ok((action, frame)) => tally.frame(action, &frame),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && framed.peek().is_empty() => break,
            Err(e) => panic!("ironrdp-futures: read_pdu after {} frames: {e}", tally.frames),
        }
    }
}

async fn read_ironrdp_tokio<S>(stream: S, tally: &mut Tally)
where
    S: tokio::io::AsyncRead + Send + Sync + Unpin,
{
    let mut framed = ironrdp_tokio::TokioFramed::new(stream);
    loop {
        match framed.read_pdu().await {
            Ok((action, frame)) => tally.frame(action, &frame),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && framed.peek().is_empty() => break,
            Err(e) => panic!("ironrdp-tokio: read_pdu after {} frames: {e}", tally.frames),
        }
    }
}

/// One measurement's outcome.
#[derive(Debug, Clone, Copy)]
struct Sample {
    bytes: u64,
    frames: u64,
    elapsed: Duration,
}

impl Sample {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
    fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64()
    }
}

fn sample(tally: &Tally, elapsed: Duration) -> Sample {
    Sample {
        bytes: tally.bytes,
        frames: tally.frames,
        elapsed,
    }
}

fn measure_memory(who: Contender, case: Case, source: &Source, rounds: usize, rt: &tokio::runtime::Runtime) -> Sample {
    let mut tally = Tally::new(case, source);
    let reader = MemReader::new(&source.bytes, rounds);
    let elapsed = match who {
        Contender::Tokio => rt.block_on(async {
            let start = Instant::now();
            read_ironrdp_tokio(reader, &mut tally).await;
            start.elapsed()
        }),
        _ => async_std::task::block_on(async {
            let start = Instant::now();
            match who {
                Contender::Ceiling => read_ceiling(reader, &mut tally).await,
                Contender::Ours => read_ours(reader, &mut tally).await,
                Contender::OursLent => read_ours_lent(reader, &mut tally).await,
                Contender::Futures => read_ironrdp_futures(reader, &mut tally).await,
                Contender::Tokio => unreachable!("handled above"),
            }
            start.elapsed()
        }),
    };
    tally.finish(who.name(), rounds, source);
    sample(&tally, elapsed)
}

/// Starts the writer thread: it accepts one connection, waits for the client's go byte, sends
/// the stream `rounds` times, and shuts its side down.
fn spawn_writer(source: &Source, rounds: usize) -> (SocketAddr, thread::JoinHandle<io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("listener address");
    let bytes = Arc::clone(&source.bytes);
    let writer = thread::Builder::new()
        .name("framing-writer".into())
        .spawn(move || {
            let (mut socket, _) = listener.accept()?;
            let mut go = [0u8; 1];
            socket.read_exact(&mut go)?;
            for _ in 0..rounds {
                socket.write_all(&bytes)?;
            }
            socket.shutdown(Shutdown::Write)
        })
        .expect("spawn the writer thread");
    (addr, writer)
}

fn measure_tcp(who: Contender, case: Case, source: &Source, rounds: usize, rt: &tokio::runtime::Runtime) -> Sample {
    let mut tally = Tally::new(case, source);
    let (addr, writer) = spawn_writer(source, rounds);
    let elapsed = match who {
        Contender::Tokio => rt.block_on(async {
            use tokio::io::AsyncWriteExt as _;
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tokio: connect");
            let start = Instant::now();
            tcp.write_all(&[1]).await.expect("tokio: send the go byte");
            read_ironrdp_tokio(tcp, &mut tally).await;
            start.elapsed()
        }),
        _ => async_std::task::block_on(async {
            let mut tcp = async_std::net::TcpStream::connect(addr)
                .await
                .expect("async-std: connect");
            let start = Instant::now();
            tcp.write_all(&[1]).await.expect("async-std: send the go byte");
            match who {
                Contender::Ceiling => read_ceiling(tcp, &mut tally).await,
                Contender::Ours => read_ours(tcp, &mut tally).await,
                Contender::OursLent => read_ours_lent(tcp, &mut tally).await,
                Contender::Futures => read_ironrdp_futures(tcp, &mut tally).await,
                Contender::Tokio => unreachable!("handled above"),
            }
            start.elapsed()
        }),
    };
    writer
        .join()
        .expect("the writer thread panicked")
        .expect("the writer thread's socket I/O");
    tally.finish(who.name(), rounds, source);
    sample(&tally, elapsed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Memory,
    Tcp,
}

impl Transport {
    fn title(self) -> &'static str {
        match self {
            Transport::Memory => "in-memory",
            Transport::Tcp => "loopback TCP",
        }
    }
}

/// Medians for one frame size on one transport, in [`CONTENDERS`] order.
struct Row {
    case: Case,
    mb_per_s: [f64; N],
    frames_per_s: [f64; N],
    /// Slowest and fastest repetition of each contender, MB/s.
    spread: [(f64, f64); N],
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn measure_row(transport: Transport, case: Case, source: &Source, plan: &Plan, rt: &tokio::runtime::Runtime) -> Row {
    let mut samples: [Vec<Sample>; N] = Default::default();
    for rep in 0..plan.repetitions {
        // Rotate the order so that no contender always runs first (or right after another).
        for k in 0..CONTENDERS.len() {
            let slot = (rep + k) % CONTENDERS.len();
            let who = CONTENDERS[slot];
            let s = match transport {
                Transport::Memory => measure_memory(who, case, source, plan.memory_rounds, rt),
                Transport::Tcp => measure_tcp(who, case, source, plan.tcp_rounds, rt),
            };
            samples[slot].push(s);
        }
    }
    let mb = |i: usize| samples[i].iter().map(Sample::mb_per_s).collect::<Vec<_>>();
    let spread = |i: usize| {
        let v = mb(i);
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        )
    };
    Row {
        case,
        mb_per_s: std::array::from_fn(|i| median(mb(i))),
        frames_per_s: std::array::from_fn(|i| median(samples[i].iter().map(Sample::frames_per_s).collect())),
        spread: std::array::from_fn(spread),
    }
}

fn mega(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else {
        format!("{:.0} k", x / 1e3)
    }
}

fn table(out: &mut String, transport: Transport, rows: &[Row], plan: &Plan) {
    let (bytes, reads) = match transport {
        Transport::Memory => (
            plan.memory_rounds,
            format!("reads return at most {} KiB", MAX_READ / 1024),
        ),
        Transport::Tcp => (plan.tcp_rounds, "reads return what the socket has".to_string()),
    };
    let per_measurement = |source: usize| source * bytes / MIB;
    let _ = writeln!(
        out,
        "\n### {} ({} MiB per measurement; {reads}; ceiling reads into {} KiB)\n",
        transport.title(),
        per_measurement(plan.source_bytes),
        CEILING_BUF / 1024,
    );
    let _ = writeln!(
        out,
        "| frame | ceiling MB/s | ours MB/s | ours, lent MB/s | ironrdp-futures MB/s | ironrdp-tokio MB/s | ours/ceiling | ours/futures | ours/tokio | lent/ceiling | lent/tokio |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let [c, o, l, f, t] = row.mb_per_s;
        let _ = writeln!(
            out,
            "| {} | {c:.0} | {o:.0} | {l:.0} | {f:.0} | {t:.0} | {:.0} % | {:.2}× | {:.2}× | {:.0} % | {:.2}× |",
            row.case.label,
            100.0 * o / c,
            o / f,
            o / t,
            100.0 * l / c,
            l / t
        );
    }
    let _ = writeln!(
        out,
        "\nFrames/s (medians; the ceiling's is its bytes over the frame size) and the MB/s range over the repetitions:\n"
    );
    let _ = writeln!(
        out,
        "| frame | ceiling frames/s | ours frames/s | ours, lent frames/s | ironrdp-futures frames/s | ironrdp-tokio frames/s | MB/s range ceiling / ours / lent / futures / tokio |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for row in rows {
        let [c, o, l, f, t] = row.frames_per_s.map(mega);
        let range = row
            .spread
            .iter()
            .map(|(lo, hi)| format!("{lo:.0}–{hi:.0}"))
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(out, "| {} | {c} | {o} | {l} | {f} | {t} | {range} |", row.case.label);
    }
}

/// The issue's targets, checked against the medians (reported, not enforced: the machine may be
/// shared).
fn targets(out: &mut String, results: &[(Transport, Vec<Row>)]) {
    let _ = writeln!(out, "\n### Targets (medians)\n");
    for (transport, rows) in results {
        for row in rows {
            let [c, o, l, f, t] = row.mb_per_s;
            let mut checks = vec![
                (o >= t, format!("ours ≥ ironrdp-tokio ({:.2}×)", o / t)),
                (l >= t, format!("lent ≥ ironrdp-tokio ({:.2}×)", l / t)),
                (o >= 0.8 * c, format!("ours ≥ 80 % of ceiling ({:.0} %)", 100.0 * o / c)),
                (l >= 0.8 * c, format!("lent ≥ 80 % of ceiling ({:.0} %)", 100.0 * l / c)),
            ];
            if row.case.len >= 16 * 1024 {
                checks.push((o >= 2.0 * f, format!("ours ≥ 2× ironrdp-futures ({:.2}×)", o / f)));
            }
            let line = checks
                .iter()
                .map(|(ok, what)| format!("{} {what}", if *ok { "met:" } else { "MISSED:" }))
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(out, "- {}, {}: {line}", transport.title(), row.case.label);
        }
    }
}

fn results_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-results").join("framing.md")
}

fn main() {
    let mut plan = Plan::full();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => plan = Plan::quick(),
            // Cargo passes `--bench` to every `harness = false` bench it runs.
            "--bench" => {}
            other => eprintln!("framing: ignoring unknown argument {other:?}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("build the tokio current-thread runtime");

    let started = Instant::now();
    let mut results: Vec<(Transport, Vec<Row>)> = vec![(Transport::Memory, Vec::new()), (Transport::Tcp, Vec::new())];
    for case in CASES {
        let source = build_source(case, plan.source_bytes);
        for (transport, rows) in &mut results {
            eprintln!("framing: {} frames of {} ...", transport.title(), case.label);
            rows.push(measure_row(*transport, case, &source, &plan, &rt));
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Framing throughput{}\n\n\
         `cargo bench --bench framing{}`: {} repetition(s) per cell, medians; {} CPU(s) available; \
         MB = 10^6 B. Rows are fast-path frames except the 64 KiB row, which is X.224 (TPKT) frames \
         of 65535 B, the largest RDP frame (a fast-path length has 15 bits). Every frame read was \
         checked (action, length, index) and the totals equal what was sent.",
        if plan.quick {
            " (quick smoke run: sizes too small to mean much)"
        } else {
            ""
        },
        if plan.quick { " -- --quick" } else { "" },
        plan.repetitions,
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    for (transport, rows) in &results {
        table(&mut out, *transport, rows, &plan);
    }
    if plan.quick {
        let _ = writeln!(
            out,
            "\n(targets are not evaluated in a quick run: its measurements are too small)"
        );
    } else {
        targets(&mut out, &results);
    }
    let _ = writeln!(
        out,
        "\nReading the tables: the ceiling does no per-frame work, so where frames are small the framed \
         contenders are bound by their cost per frame (see frames/s), not by bytes. On loopback TCP the \
         ceiling is what a plain read loop achieves, not a strict bound: throughput there depends on how \
         the reader and the writer thread share the cores, and a framed reader can come out above it. \
         On a shared machine, compare contenders within one run only."
    );
    let _ = writeln!(out, "\n(run took {:.1} s)", started.elapsed().as_secs_f64());

    println!("{out}");
    let path = results_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create target/bench-results");
    }
    std::fs::write(&path, &out).expect("write target/bench-results/framing.md");
    eprintln!("framing: wrote {}", path.display());
}
