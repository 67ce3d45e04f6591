//! Bounded fuzzing on the stable toolchain, for CI: the two fuzz targets of `fuzz/` (whose
//! bodies this file includes from `fuzz/src/harness/`, so both run the same checks), driven by
//! a deterministic mutator over the seed corpus in `fuzz/corpus/<target>/` and random bytes.
//!
//! Each target first replays every seed as it is, then runs a fixed number of mutated inputs
//! (bit flips, byte sets, inserts and deletes, range copies, interesting integers, splices of
//! two seeds, truncation, whole seed frames recombined with one of them mutated and its length
//! fields made to agree again, and for `framing` fresh split points and frame bounds). The
//! seed of the generator is fixed, so a run replays exactly (the summary line prints a digest
//! of the inputs); `ASYNC_RDP_FUZZ_ITERATIONS` and `ASYNC_RDP_FUZZ_SEED` change the count and
//! the seed for longer runs by hand.
//!
//! A panic that reaches the harness (from the code under test, or an invariant of the harness)
//! is caught; the input is written to `fuzz/artifacts/<target>/crash-<sha1>` with a minimized
//! copy `minimized-crash-<sha1>`, and the test fails with where it panicked and the minimized
//! input in hex. An iteration that runs for more than a minute is reported the same way
//! (`timeout-<sha1>`), and the process aborts. A single allocation above 512 MiB is reported
//! too (`oom-<sha1>`). Panics that the code under test catches itself (`Session` contains
//! IronRDP's decoder panics) are printed with their site and count, without failing.
//!
//! The seed corpus is recorded from real sessions: `cargo test --test fuzz -- --ignored
//! record_corpus`. The crashes found so far are replayed by the `regression_*` tests, from
//! `fuzz/regressions/`; `cargo test --test fuzz -- --ignored replay_artifacts` replays and
//! minimizes whatever is in `fuzz/artifacts/`.

#[path = "../fuzz/src/harness/mod.rs"]
mod harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use async_rdp::tls;
use harness::{framing, session};

/// Iterations per target: about 30-60 s each in a debug build on two cores.
const FRAMING_ITERATIONS: usize = 45_000;
const SESSION_ITERATIONS: usize = 60_000;
/// The longest input the mutator makes.
const MAX_LEN: usize = 96 * 1024;
/// An iteration running longer than this is a hang.
const HANG: Duration = Duration::from_secs(60);
/// A single allocation larger than this is reported (libFuzzer's default limit is 2 GiB of RSS;
/// a legitimate 8192 x 8192 RGBA desktop is 256 MiB).
const LARGE_ALLOCATION: usize = 512 << 20;

type BoxError = Box<dyn std::error::Error>;

// ---------------------------------------------------------------------------------------------
// The targets.

#[test]
fn framing_bounded() {
    run_target("framing", framing::check, FRAMING_ITERATIONS, true);
}

#[test]
fn session_frames_bounded() {
    session::init();
    run_target("session_frames", session::check, SESSION_ITERATIONS, false);
}

// ---------------------------------------------------------------------------------------------
// The runner.

/// What went wrong in one iteration.
#[derive(Debug, Clone)]
struct Finding {
    /// `crash`, `oom`, or `contained` (a panic the code under test caught).
    kind: &'static str,
    /// Where it panicked (file:line:column), or what was allocated.
    location: String,
    message: String,
    /// Stack frames in async-rdp and IronRDP crates, for the first occurrence.
    backtrace: String,
}

#[derive(Debug)]
struct Seen {
    finding: Finding,
    count: usize,
    input: Vec<u8>,
}

fn run_target(target: &str, check: fn(&[u8]), default_iterations: usize, reframe: bool) {
    install_panic_hook();
    let iterations = std::env::var("ASYNC_RDP_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_iterations);
    let seed = std::env::var("ASYNC_RDP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f0f0_u64);
    let seeds = corpus(target);
    let seed_frames: Vec<Vec<Vec<u8>>> = seeds
        .iter()
        .map(|seed| frames_of(if reframe { framing::parse(seed).data } else { seed }))
        .filter(|frames| !frames.is_empty())
        .collect();
    let watchdog = Watchdog::start(target);
    let mut mutator = Mutator {
        rng: Rng::new(seed),
        seeds: &seeds,
        seed_frames: &seed_frames,
        reframe,
    };
    let mut found: BTreeMap<String, Seen> = BTreeMap::new();
    let mut contained: BTreeMap<String, Seen> = BTreeMap::new();
    let started = Instant::now();

    let total = seeds.len() + iterations;
    // A digest of every input run, to tell that two runs ran the same inputs.
    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    for i in 0..total {
        let input = match seeds.get(i) {
            Some(seed) => seed.clone(),
            None => mutator.input(),
        };
        digest = input.iter().fold(digest ^ input.len() as u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        watchdog.enter(&input);
        let outcome = run_one(check, &input);
        watchdog.leave();
        let record = |seen: &mut BTreeMap<String, Seen>, finding: Finding| {
            let key = format!("{} {}", finding.kind, finding.location);
            seen.entry(key).and_modify(|s| s.count += 1).or_insert(Seen {
                finding,
                count: 1,
                input: input.clone(),
            });
        };
        if let Some(finding) = outcome.escaped {
            record(&mut found, finding);
        }
        for finding in outcome.contained {
            record(&mut contained, finding);
        }
    }
    watchdog.stop();
    let elapsed = started.elapsed();
    println!(
        "{target}: {} seeds + {iterations} mutated inputs (digest {digest:016x}) in {:.1} s ({:.0} per second), {} crashes",
        seeds.len(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        found.len(),
    );
    // Panics that the code under test caught itself (`Session` contains IronRDP's decoder
    // panics and ends the session with an error): not failures, but worth knowing about.
    for seen in contained.values() {
        println!(
            "  contained panic, {} times: {} at {}",
            seen.count, seen.finding.message, seen.finding.location
        );
    }
    if found.is_empty() {
        return;
    }
    let mut report = String::new();
    for seen in found.values() {
        let minimized = minimize(check, &seen.input, &seen.finding, reframe);
        let original = write_artifact(target, seen.finding.kind, "", &seen.input);
        let small = write_artifact(target, seen.finding.kind, "minimized-", &minimized);
        let _ = write!(
            report,
            "\n{} at {} ({} times): {}\n  artifact {} ({} bytes), minimized {} ({} bytes)\n  minimized input: {}\n{}",
            seen.finding.kind,
            seen.finding.location,
            seen.count,
            seen.finding.message,
            original.display(),
            seen.input.len(),
            small.display(),
            minimized.len(),
            hex(&minimized),
            seen.finding.backtrace,
        );
    }
    panic!("{target}: {} distinct crashes{report}", found.len());
}

/// What one input did.
struct Outcome {
    /// A panic that reached the harness, an invariant broken, or a too-large allocation.
    escaped: Option<Finding>,
    /// Panics that the code under test caught itself.
    contained: Vec<Finding>,
}

/// Runs one input.
fn run_one(check: fn(&[u8]), input: &[u8]) -> Outcome {
    FUZZING.with(|f| f.set(true));
    PANICS.with(|p| p.borrow_mut().clear());
    LARGEST_ALLOCATION.with(|l| l.set(0));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    FUZZING.with(|f| f.set(false));
    let largest = LARGEST_ALLOCATION.with(Cell::get);
    let mut panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    let escaped = match outcome {
        // The last panic is the one that unwound to us.
        Err(_) => Some(panics.pop().unwrap_or_else(|| Finding {
            kind: "crash",
            location: "unknown".into(),
            message: "a panic the hook did not see".into(),
            backtrace: String::new(),
        })),
        Ok(()) if largest > LARGE_ALLOCATION => Some(Finding {
            kind: "oom",
            location: format!("an allocation of {largest} bytes"),
            message: format!("a single allocation of {} MiB", largest >> 20),
            backtrace: String::new(),
        }),
        Ok(()) => None,
    };
    for panic in &mut panics {
        panic.kind = "contained";
    }
    Outcome {
        escaped,
        contained: panics,
    }
}

/// Shrinks `input` while it still fails the same way, within a bounded number of tries:
/// drops whole frames, then ranges inside each frame (with its length fields made to agree
/// again), then ranges of the raw bytes.
fn minimize(check: fn(&[u8]), input: &[u8], finding: &Finding, reframe: bool) -> Vec<u8> {
    const TRIES: usize = 6000;
    let tries = Cell::new(0);
    let same = |candidate: &[u8]| {
        tries.set(tries.get() + 1);
        run_one(check, candidate)
            .escaped
            .is_some_and(|f| f.kind == finding.kind && f.location == finding.location)
    };
    // A framing input's header stays as it is; the stream behind it is cut into frames.
    let header = if reframe {
        input.len() - framing::parse(input).data.len()
    } else {
        0
    };
    let (head, stream) = input.split_at(header);
    let mut frames = frames_of(stream);
    let whole: usize = frames.iter().map(Vec::len).sum();
    let tail = stream[whole..].to_vec();
    let join = |frames: &[Vec<u8>]| [head, &frames.concat(), &tail].concat();

    let mut i = frames.len();
    while i > 0 {
        i -= 1;
        let mut fewer = frames.clone();
        fewer.remove(i);
        if same(&join(&fewer)) {
            frames = fewer;
        }
    }
    for i in 0..frames.len() {
        let mut chunk = frames[i].len().div_ceil(2).max(1);
        loop {
            let mut at = 4.min(frames[i].len());
            while at < frames[i].len() && tries.get() < TRIES {
                let end = (at + chunk).min(frames[i].len());
                let mut cut = frames.clone();
                cut[i].drain(at..end);
                fix_lengths(&mut cut[i]);
                if same(&join(&cut)) {
                    frames = cut;
                } else {
                    at += chunk;
                }
            }
            if chunk == 1 || tries.get() >= TRIES {
                break;
            }
            chunk /= 2;
        }
    }

    let mut best = join(&frames);
    let mut chunk = best.len().div_ceil(2).max(1);
    while tries.get() < TRIES {
        let mut at = header;
        while at < best.len() && tries.get() < TRIES {
            let end = (at + chunk).min(best.len());
            let candidate: Vec<u8> = best[..at].iter().chain(&best[end..]).copied().collect();
            if same(&candidate) {
                best = candidate;
            } else {
                at += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    best
}

fn artifact_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/artifacts")
        .join(target)
}

/// Writes `fuzz/artifacts/<target>/<prefix><kind>-<sha1>`, libFuzzer's naming.
fn write_artifact(target: &str, kind: &str, prefix: &str, input: &[u8]) -> PathBuf {
    let dir = artifact_dir(target);
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, input);
    let path = dir.join(format!("{prefix}{kind}-{}", hex(digest.as_ref())));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("could not write {}: {e}", path.display());
    }
    path
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digit"))
        .collect()
}

/// The seed corpus of a target, in name order (empty if there is none).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("{target}: no seed corpus at {}", dir.display());
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

// ---------------------------------------------------------------------------------------------
// Panics, hangs and allocations.

thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static PANICS: RefCell<Vec<Finding>> = const { RefCell::new(Vec::new()) };
    static BACKTRACED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

/// Records panics of fuzzing threads (quietly) and leaves every other panic to the default
/// hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(Cell::get) {
                return default(info);
            }
            let location = info.location().map_or_else(
                || "unknown".to_owned(),
                |l| format!("{}:{}:{}", crate_path(l.file()), l.line(), l.column()),
            );
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            // Symbolizing is slow: only for the first panic at each place.
            let first = BACKTRACED.with(|b| b.borrow_mut().insert(location.clone()));
            let backtrace = if first {
                relevant_frames(&Backtrace::force_capture())
            } else {
                String::new()
            };
            PANICS.with(|p| {
                p.borrow_mut().push(Finding {
                    kind: "crash",
                    location,
                    message,
                    backtrace,
                })
            });
        }));
    });
}

/// A source path with the registry's prefix dropped: `ironrdp-session-0.13.0/src/rfx.rs`.
fn crate_path(file: &str) -> &str {
    match file.find("/registry/src/") {
        Some(at) => {
            let rest = &file[at + "/registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_index, path)| path)
        }
        None => file,
    }
}

/// The frames of a backtrace that name async-rdp or IronRDP code, with their source lines.
fn relevant_frames(backtrace: &Backtrace) -> String {
    let text = backtrace.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let name = line.trim();
        if ["ironrdp", "async_rdp"].iter().any(|c| name.contains(c)) && !name.starts_with("at ") {
            let at = lines.get(i + 1).map_or("", |l| l.trim());
            let _ = writeln!(out, "    {name}\n      {at}");
        }
    }
    out
}

/// Aborts the process, with the input, when an iteration runs longer than [`HANG`].
struct Watchdog {
    state: Arc<WatchState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct WatchState {
    /// When the running iteration started, in milliseconds since `epoch`; 0 between iterations.
    started: AtomicU64,
    epoch: Instant,
    input: Mutex<Vec<u8>>,
    done: AtomicBool,
}

impl Watchdog {
    fn start(target: &str) -> Self {
        let state = Arc::new(WatchState {
            started: AtomicU64::new(0),
            epoch: Instant::now(),
            input: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
        });
        let watched = state.clone();
        let target = target.to_owned();
        let thread = std::thread::spawn(move || {
            while !watched.done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let started = watched.started.load(Ordering::Relaxed);
                let now = u64::try_from(watched.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                if started != 0 && now.saturating_sub(started) > HANG.as_millis() as u64 {
                    let input = watched.input.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    let path = write_artifact(&target, "timeout", "", &input);
                    eprintln!(
                        "{target}: an iteration has run for more than {HANG:?}: {} ({} bytes)\ninput: {}",
                        path.display(),
                        input.len(),
                        hex(&input)
                    );
                    std::process::abort();
                }
            }
        });
        Self {
            state,
            thread: Some(thread),
        }
    }

    fn enter(&self, input: &[u8]) {
        {
            let mut held = self.state.input.lock().unwrap_or_else(PoisonError::into_inner);
            held.clear();
            held.extend_from_slice(input);
        }
        let now = u64::try_from(self.state.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.state.started.store(now.max(1), Ordering::Relaxed);
    }

    fn leave(&self) {
        self.state.started.store(0, Ordering::Relaxed);
    }

    fn stop(mut self) {
        self.state.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The system allocator, noting the largest single allocation a fuzzing thread makes.
struct Tracking;

fn note(size: usize) {
    // Both thread-locals are const-initialised without destructors: no allocation here.
    if FUZZING.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGEST_ALLOCATION.try_with(|l| l.set(l.get().max(size)));
    }
}

// SAFETY: every method forwards to `System` with the arguments it was given and returns what
// `System` returns; `note` only reads and writes two const-initialised thread-local cells.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract, forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract, forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller's contract, forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

// ---------------------------------------------------------------------------------------------
// The mutator.

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that nearby seeds start far apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

struct Mutator<'a> {
    rng: Rng,
    seeds: &'a [Vec<u8>],
    /// The frames of each seed (of its stream, for framing inputs).
    seed_frames: &'a [Vec<Vec<u8>>],
    /// Framing inputs: a header with split points and a frame bound, then the stream.
    reframe: bool,
}

/// The whole frames at the start of a stream.
fn frames_of(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Ok(Some(info)) = async_rdp::ironrdp_pdu::find_size(bytes) {
        if info.length == 0 || info.length > bytes.len() {
            break;
        }
        let (frame, rest) = bytes.split_at(info.length);
        frames.push(frame.to_vec());
        bytes = rest;
    }
    frames
}

/// Makes a frame's length fields agree with its size again after a mutation: the TPKT or
/// fast-path length, and inside, the fast-path update size or the MCS user-data length and
/// the Share Control total length, where the frame has them in their usual place.
fn fix_lengths(frame: &mut Vec<u8>) {
    let Some(&first) = frame.first() else { return };
    if first == 3 && frame.len() >= 4 {
        let Ok(total) = u16::try_from(frame.len()) else { return };
        frame[2..4].copy_from_slice(&total.to_be_bytes());
        // MCS Send Data Indication (application tag 26), its PER length at 13 and the user data
        // after it, starting with a Share Control header whose first field is its total length.
        if frame.len() > 15 && frame[7] >> 2 == 26 {
            let (form, start) = if frame[13] & 0x80 == 0 { (1, 14) } else { (2, 15) };
            let user = frame.len() - start;
            match form {
                1 if user < 0x80 => frame[13] = u8::try_from(user).unwrap_or(0),
                2 if user < 0x4000 => {
                    let per = u16::try_from(user).unwrap_or(0) | 0x8000;
                    frame[13..15].copy_from_slice(&per.to_be_bytes());
                }
                _ => return,
            }
            if user >= 2 {
                let total = u16::try_from(user).unwrap_or(u16::MAX);
                frame[start..start + 2].copy_from_slice(&total.to_le_bytes());
            }
        }
    } else if first & 0b11 == 0 && frame.len() >= 2 {
        let header = if frame[1] & 0x80 != 0 { 3 } else { 2 };
        if frame.len() < header {
            return;
        }
        let mut body = frame[header..].to_vec();
        // One update without compression: updateHeader, then its size (little-endian).
        if body.len() >= 3 && body[0] >> 6 == 0 {
            let size = u16::try_from(body.len() - 3).unwrap_or(u16::MAX);
            body[1..3].copy_from_slice(&size.to_le_bytes());
        }
        let mut out = vec![first];
        if body.len() + 2 < 0x80 {
            out.push(u8::try_from(body.len() + 2).unwrap_or(0));
        } else {
            let Ok(total) = u16::try_from(body.len() + 3) else {
                return;
            };
            if total > 0x7fff {
                return;
            }
            out.extend_from_slice(&(total | 0x8000).to_be_bytes());
        }
        out.extend_from_slice(&body);
        *frame = out;
    }
}

impl Mutator<'_> {
    fn seed(&mut self) -> Option<&[u8]> {
        match self.seeds.len() {
            0 => None,
            n => Some(&self.seeds[self.rng.below(n)]),
        }
    }

    fn input(&mut self) -> Vec<u8> {
        if !self.seed_frames.is_empty() && self.rng.below(3) == 0 {
            return self.frame_input();
        }
        let mut data = match (self.rng.below(16), self.seed().map(<[u8]>::to_vec)) {
            (0, _) | (_, None) => {
                let n = self.rng.below(600);
                self.rng.bytes(n)
            }
            (_, Some(seed)) => seed,
        };
        let rounds = 1 + self.rng.below(6);
        for _ in 0..rounds {
            self.mutate(&mut data);
        }
        data.truncate(MAX_LEN);
        data
    }

    /// A stream of whole seed frames (a run of one seed's, or picked from all), one of them
    /// mutated and, mostly, with its length fields made to agree again, so that the mutation
    /// reaches the decoders behind the framing.
    fn frame_input(&mut self) -> Vec<u8> {
        let mut frames: Vec<Vec<u8>> = if self.rng.below(2) == 0 {
            let seed = &self.seed_frames[self.rng.below(self.seed_frames.len())];
            let start = self.rng.below(seed.len());
            let n = 1 + self.rng.below(16);
            seed[start..(start + n).min(seed.len())].to_vec()
        } else {
            let all: usize = self.seed_frames.iter().map(Vec::len).sum();
            (0..1 + self.rng.below(8))
                .map(|_| {
                    let mut at = self.rng.below(all);
                    let mut pick = &self.seed_frames[0][0];
                    for frames in self.seed_frames {
                        if at < frames.len() {
                            pick = &frames[at];
                            break;
                        }
                        at -= frames.len();
                    }
                    pick.clone()
                })
                .collect()
        };
        let victim = self.rng.below(frames.len());
        for _ in 0..1 + self.rng.below(4) {
            self.mutate_bytes(&mut frames[victim]);
        }
        if self.rng.below(4) != 0 {
            fix_lengths(&mut frames[victim]);
        }
        let mut data = frames.concat();
        data.truncate(MAX_LEN);
        if self.reframe {
            self.reframe(&data)
        } else {
            data
        }
    }

    /// A framing input around `data`: fresh split points, stall and keep flags, frame bound.
    fn reframe(&mut self, data: &[u8]) -> Vec<u8> {
        let flags = self.rng.byte() & (framing::STALL | framing::KEEP_FRAMES);
        let bound = match self.rng.below(4) {
            0 => Some(u16::try_from(4 + self.rng.below(0x8000)).unwrap_or(u16::MAX)),
            _ => None,
        };
        let n = self.rng.below(16);
        let sizes = self.rng.bytes(n);
        framing::encode(flags, bound, &sizes, data)
    }

    /// A byte-level mutation only (none that brings in other seeds' bytes).
    fn mutate_bytes(&mut self, d: &mut Vec<u8>) {
        const BYTE_LEVEL: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 9];
        let op = BYTE_LEVEL[self.rng.below(BYTE_LEVEL.len())];
        self.apply(op, d);
    }

    fn mutate(&mut self, d: &mut Vec<u8>) {
        let op = self.rng.below(if self.reframe { 12 } else { 11 });
        self.apply(op, d);
    }

    fn apply(&mut self, op: usize, d: &mut Vec<u8>) {
        let len = d.len();
        match op {
            // Flip a bit.
            0 if len > 0 => {
                let at = self.rng.below(len);
                d[at] ^= 1 << self.rng.below(8);
            }
            // Set a byte.
            1 if len > 0 => {
                let at = self.rng.below(len);
                d[at] = self.rng.byte();
            }
            // Insert random bytes.
            2 => {
                let at = self.rng.below(len + 1);
                let n = 1 + self.rng.below(8);
                let bytes = self.rng.bytes(n);
                d.splice(at..at, bytes);
            }
            // Delete a range.
            3 if len > 0 => {
                let at = self.rng.below(len);
                let longest = if self.rng.below(4) == 0 { 4096 } else { 16 };
                let n = 1 + self.rng.below((len - at).min(longest));
                d.drain(at..at + n);
            }
            // Copy a range of itself elsewhere.
            4 if len > 0 => {
                let from = self.rng.below(len);
                let n = 1 + self.rng.below((len - from).min(256));
                let to = self.rng.below(len + 1);
                let bytes = d[from..from + n].to_vec();
                d.splice(to..to, bytes);
            }
            // Write an interesting integer (header lengths live here).
            5 | 6 if len > 0 => {
                let at = self.rng.below(len);
                let rest = len - at;
                let values = [
                    0,
                    1,
                    2,
                    3,
                    4,
                    7,
                    0x7f,
                    0x80,
                    0xff,
                    0x100,
                    0x7fff,
                    0x8000,
                    0xffff,
                    u16::try_from(rest).unwrap_or(u16::MAX),
                    u16::try_from(rest).unwrap_or(u16::MAX).wrapping_add(1),
                    u16::try_from(rest).unwrap_or(u16::MAX).wrapping_sub(1),
                ];
                let value = values[self.rng.below(values.len())];
                let bytes = match self.rng.below(3) {
                    0 => vec![value.to_be_bytes()[1]],
                    1 => value.to_be_bytes().to_vec(),
                    _ => value.to_le_bytes().to_vec(),
                };
                let end = (at + bytes.len()).min(len);
                d.splice(at..end, bytes);
            }
            // Splice: our head, another seed's tail.
            7 => {
                if let Some(other) = self.seed().map(<[u8]>::to_vec) {
                    let at = self.rng.below(len + 1);
                    let from = self.rng.below(other.len() + 1);
                    d.truncate(at);
                    d.extend_from_slice(&other[from..]);
                }
            }
            // Insert a piece of another seed.
            8 => {
                if let Some(other) = self.seed().map(<[u8]>::to_vec) {
                    let from = self.rng.below(other.len() + 1);
                    let n = self.rng.below((other.len() - from).min(4096) + 1);
                    let at = self.rng.below(len + 1);
                    d.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            // Truncate.
            9 if len > 0 => d.truncate(self.rng.below(len)),
            // Append a copy of a seed (more frames after these).
            10 => {
                if let Some(other) = self.seed().map(<[u8]>::to_vec) {
                    d.extend_from_slice(&other);
                }
            }
            // Framing: fresh split points, stall and keep flags, and frame bound.
            11 => {
                let data = framing::parse(d).data.to_vec();
                *d = self.reframe(&data);
            }
            _ => {
                let byte = self.rng.byte();
                d.push(byte);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The seed corpus, recorded from a real session with the demo server.

/// Records a session with the demo server (connection, logon notifications, pointer, desktop,
/// input, a redraw, a resize, a server disconnect) and writes the server's frames, as the
/// client's `Framed` received them in clear, to `fuzz/corpus/framing/` and
/// `fuzz/corpus/session_frames/`.
#[test]
#[ignore = "records the seed corpus into fuzz/corpus/: cargo test --test fuzz -- --ignored record_corpus"]
fn record_corpus() -> Result<(), BoxError> {
    let recorded = record_session()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let framing_dir = root.join("framing");
    let session_dir = root.join("session_frames");
    for dir in [&framing_dir, &session_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }

    let negotiation = split_frames(&recorded.negotiation)?;
    let connection = split_frames(&recorded.connection)?;
    let session = split_frames(&recorded.session)?;
    println!(
        "recorded {} negotiation, {} connection and {} session frames ({} session bytes)",
        negotiation.len(),
        connection.len(),
        session.len(),
        recorded.session.len()
    );

    // framing: each distinct kind of frame alone, read whole; then streams of frames cut at
    // various points, stalled, with the frames kept alive, and under a tight frame bound.
    let mut written = 0;
    let mut save = |dir: &Path, name: String, bytes: Vec<u8>| -> Result<(), BoxError> {
        written += bytes.len();
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    };
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut distinct: HashSet<Vec<u8>> = HashSet::new();
    for (phase, frames) in [
        ("negotiation", &negotiation),
        ("connection", &connection),
        ("session", &session),
    ] {
        for frame in frames {
            let name = frame_name(frame);
            let seen = kinds.entry(format!("{phase}-{name}")).or_insert(0);
            *seen += 1;
            // At most two of a kind (the desktop comes as many bitmap updates), no duplicates.
            if *seen <= 2 && distinct.insert(frame.clone()) {
                save(
                    &framing_dir,
                    format!("{phase}-{name}-{seen}"),
                    framing::encode(0, None, &[], frame),
                )?;
                save(&session_dir, format!("{phase}-{name}-{seen}"), frame.clone())?;
            }
        }
    }
    let connection_stream: Vec<u8> = recorded.connection.clone();
    save(
        &framing_dir,
        "stream-connection-small-reads".into(),
        framing::encode(0, None, &[0, 6, 99, 2], &connection_stream),
    )?;
    let first_bitmap = session
        .iter()
        .position(|f| frame_name(f) == "fastpath-bitmap")
        .unwrap_or(0);
    let head: Vec<u8> = session[..first_bitmap + 1].concat();
    save(
        &framing_dir,
        "stream-session-start-byte-by-byte-stalled-kept".into(),
        framing::encode(framing::STALL | framing::KEEP_FRAMES, None, &[0], &head),
    )?;
    save(
        &framing_dir,
        "stream-session-start-bound-1000".into(),
        framing::encode(0, Some(1000), &[0xe0, 0x10], &head),
    )?;
    let mixed: Vec<u8> = negotiation
        .iter()
        .chain(&connection)
        .chain(&session[..first_bitmap + 1])
        .flatten()
        .copied()
        .collect();
    save(
        &framing_dir,
        "stream-mixed-x224-fastpath".into(),
        framing::encode(0, None, &[200, 3, 0xe1], &mixed),
    )?;

    // session_frames: the session's stream whole, its start (logon notifications, pointer,
    // the first bitmap update), the reactivation from Deactivate All to the end, the goodbye.
    save(&session_dir, "stream-session-whole".into(), recorded.session.clone())?;
    save(&session_dir, "stream-session-start".into(), head)?;
    if let Some(at) = session.iter().position(|f| frame_name(f).contains("DeactivateAll")) {
        let reactivation: Vec<u8> = session[at..]
            .iter()
            .enumerate()
            .filter(|(i, f)| *i < 24 || frame_name(f) != "fastpath-bitmap")
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        save(&session_dir, "stream-reactivation".into(), reactivation)?;
    }
    let x224: Vec<&Vec<u8>> = session.iter().filter(|f| frame_name(f).starts_with("x224-")).collect();
    let goodbye: Vec<u8> = x224[x224.len().saturating_sub(2)..]
        .iter()
        .flat_map(|f| f.iter().copied())
        .collect();
    save(&session_dir, "stream-goodbye".into(), goodbye)?;
    // IronRDP's own server, when built: RemoteFX, uncompressed surface bits, planar bitmaps.
    match peer_binary() {
        None => println!("ironrdp-peer is not built (interop/ironrdp-peer/README.md): no seeds from it"),
        Some(bin) => {
            for (label, peer_codecs, client_codecs) in [
                ("remotefx", "remotefx", None),
                ("surface-bits", "", None),
                ("planar", "", Some(&[][..])),
            ] {
                let stream = record_peer(&bin, peer_codecs, client_codecs)?;
                let frames = split_frames(&stream)?;
                let mut kept = 0;
                let mut head = Vec::new();
                for frame in &frames {
                    let name = frame_name(frame);
                    let seen = kinds.entry(format!("peer-{label}-{name}")).or_insert(0);
                    *seen += 1;
                    if *seen <= 2 && frame.len() <= 64 * 1024 && distinct.insert(frame.clone()) {
                        save(&session_dir, format!("peer-{label}-{name}-{seen}"), frame.clone())?;
                        save(
                            &framing_dir,
                            format!("peer-{label}-{name}-{seen}"),
                            framing::encode(0, None, &[], frame),
                        )?;
                    }
                    // The session's start, up to 128 KiB of whole frames.
                    if kept + frame.len() <= 128 * 1024 {
                        kept += frame.len();
                        head.extend_from_slice(frame);
                    }
                }
                save(&session_dir, format!("stream-peer-{label}"), head)?;
            }
        }
    }
    println!("wrote {written} bytes of seed corpus under {}", root.display());
    for (kind, count) in &kinds {
        println!("  {count:4} x {kind}");
    }
    Ok(())
}

/// What the client read, in clear.
struct Recorded {
    /// The X.224 negotiation before TLS.
    negotiation: Vec<u8>,
    /// The rest of the connection sequence, inside TLS.
    connection: Vec<u8>,
    /// Everything the server sent in the session.
    session: Vec<u8>,
}

fn record_session() -> Result<Recorded, BoxError> {
    use async_rdp::ironrdp_connector::DesktopSize;
    use async_rdp::{Event, Session};
    use async_rdp_demo_server::{Command, Config, DemoServer, ServerEvent};
    use futures::channel::mpsc::unbounded;
    use futures::StreamExt;

    async_std::task::block_on(async {
        let server = DemoServer::bind(Config {
            desktop: DesktopSize { width: 160, height: 96 },
            ..session::demo_config()
        })
        .await?;
        let (event_tx, mut events) = unbounded();
        let (commands, command_rx) = unbounded();
        // Boxed: these futures are large in a debug build, too large for a test thread's stack.
        let serving = Box::pin(server.serve_one(event_tx, command_rx));
        let client = Box::pin(async {
            let addr = server.local_addr()?;
            let verifier = tls::Pinned::certificate(server.certificate());
            let (framed, result, recording) = session::connect(addr, verifier, session::client_config(&server)).await?;
            let session_start = recording.tls.borrow().len() - framed.peek().len();
            let mut session = Session::new(framed, result);

            let mut wait_server = async |want: fn(&ServerEvent) -> bool| -> Result<(), BoxError> {
                while let Some(event) = events.next().await {
                    if want(&event) {
                        return Ok(());
                    }
                }
                Err("the demo server stopped".into())
            };

            let mut all = drain(&mut session, Duration::from_millis(300)).await?;
            session.key(0x1e, false, true)?;
            session.key(0x1e, false, false)?;
            session.mouse_move(10, 10)?;
            session.request_full_redraw()?;
            all.extend(drain(&mut session, Duration::from_millis(300)).await?);
            commands.unbounded_send(Command::Resize { width: 120, height: 80 })?;
            all.extend(drain(&mut session, Duration::from_millis(300)).await?);
            wait_server(|e| matches!(e, ServerEvent::Resized { .. })).await?;
            all.extend(drain(&mut session, Duration::from_millis(300)).await?);
            commands.unbounded_send(Command::Disconnect)?;
            loop {
                let event = session.next_event().await?;
                let end = matches!(event, Event::Disconnected(_));
                all.push(event);
                if end {
                    break;
                }
            }
            let resized = all.iter().any(|e| matches!(e, Event::Resized { .. }));
            let graphics = all.iter().filter(|e| matches!(e, Event::Graphics(_))).count();
            println!(
                "client saw {} events: {graphics} graphics updates, resized: {resized}",
                all.len()
            );
            if !resized || graphics == 0 {
                return Err::<_, BoxError>(format!("the recording missed events: {all:?}").into());
            }
            drop(session);
            let tcp = recording.tcp.borrow();
            let tls = recording.tls.borrow();
            Ok(Recorded {
                negotiation: tcp[..recording.tcp_before_tls].to_vec(),
                connection: tls[..session_start].to_vec(),
                session: tls[session_start..].to_vec(),
            })
        });
        let (client, served) =
            async_std::future::timeout(Duration::from_secs(60), async { futures::join!(client, serving) }).await?;
        served?;
        client
    })
}

/// Reads events until none has come for `quiet`.
async fn drain<S>(session: &mut async_rdp::Session<S>, quiet: Duration) -> Result<Vec<async_rdp::Event>, BoxError>
where
    S: async_rdp::FramedRead + async_rdp::FramedWrite,
{
    let mut seen = Vec::new();
    while let Ok(event) = async_std::future::timeout(quiet, session.next_event()).await {
        seen.push(event?);
    }
    Ok(seen)
}

/// `ironrdp-peer` (IronRDP's own server, `interop/ironrdp-peer`), if it is built.
fn peer_binary() -> Option<PathBuf> {
    let bin = std::env::var_os("IRONRDP_PEER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ironrdp-peer/release/ironrdp-peer"));
    bin.exists().then_some(bin)
}

/// Records what `ironrdp-peer` sends in a session: the desktop (in the codec that
/// `peer_codecs` and `client_codecs` lead it to), a resize, the end of a client shutdown.
fn record_peer(bin: &Path, peer_codecs: &str, client_codecs: Option<&[&str]>) -> Result<Vec<u8>, BoxError> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let mut child = Command::new(bin)
        .args([
            "--port",
            "0",
            "--exit-on-eof",
            "--security",
            "tls",
            "--width",
            "128",
            "--height",
            "96",
        ])
        .args(["--codecs", peer_codecs])
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let recorded = (|| {
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let listening = lines.next().ok_or("ironrdp-peer said nothing")??;
        // Keep its event lines flowing (a full pipe would block it).
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        let field = |name: &str| -> Result<String, BoxError> {
            let at = listening.find(&format!("\"{name}\":")).ok_or("no such field")? + name.len() + 3;
            let rest = listening[at..].trim_start_matches('"');
            Ok(rest[..rest.find(['"', ',', '}']).unwrap_or(rest.len())].to_owned())
        };
        let addr = format!("127.0.0.1:{}", field("port")?).parse()?;
        let fingerprint = tls::parse_fingerprint(&field("fingerprint")?).ok_or("bad fingerprint")?;
        let mut config = async_rdp::ClientConfig::new("fuzz", "fuzz").with_security(true, false);
        if let Some(codecs) = client_codecs {
            config = config.with_codecs(codecs);
        }
        async_std::task::block_on(async_std::future::timeout(Duration::from_secs(60), async {
            let (framed, result, recording) =
                Box::pin(session::connect(addr, tls::Pinned::new([fingerprint]), config)).await?;
            let start = recording.tls.borrow().len() - framed.peek().len();
            let mut session = async_rdp::Session::new(framed, result);
            let mut events = drain(&mut session, Duration::from_millis(1500)).await?;
            writeln!(stdin, "resize 96 64")?;
            events.extend(drain(&mut session, Duration::from_millis(1500)).await?);
            let _ = session.shutdown(Duration::from_secs(3)).await;
            println!(
                "ironrdp-peer --codecs {peer_codecs:?}: client saw {} events",
                events.len()
            );
            drop(session);
            let tls = recording.tls.borrow();
            Ok::<_, BoxError>(tls[start..].to_vec())
        }))?
    })();
    // Our own child, by its handle: closing stdin (--exit-on-eof) is its cue; kill if not.
    let _ = child.kill();
    let _ = child.wait();
    recorded
}

/// Cuts a recorded stream into its frames.
fn split_frames(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, BoxError> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let info = async_rdp::ironrdp_pdu::find_size(bytes)?.ok_or("a recorded frame is cut short")?;
        let (frame, rest) = bytes.split_at(info.length);
        frames.push(frame.to_vec());
        bytes = rest;
    }
    Ok(frames)
}

/// A file name for a frame: its kind, as far as a quick decode tells.
fn frame_name(frame: &[u8]) -> String {
    use async_rdp::ironrdp_core::decode;
    use async_rdp::ironrdp_pdu::mcs::McsMessage;
    use async_rdp::ironrdp_pdu::rdp::headers::{ShareControlHeader, ShareControlPdu};
    use async_rdp::ironrdp_pdu::x224::X224;

    if frame.first().is_some_and(|b| b & 0b11 == 0) {
        let header = if frame.get(1).is_some_and(|b| b & 0x80 != 0) {
            3
        } else {
            2
        };
        let code = frame.get(header).map_or(0xff, |b| b & 0x0f);
        let name = match code {
            0x0 => "orders",
            0x1 => "bitmap",
            0x2 => "palette",
            0x3 => "synchronize",
            0x4 => "surface-commands",
            0x5 => "pointer-hidden",
            0x6 => "pointer-default",
            0x8 => "pointer-position",
            0x9 => "pointer-color",
            0xa => "pointer-cached",
            0xb => "pointer-new",
            0xc => "pointer-large",
            _ => "other",
        };
        return format!("fastpath-{name}");
    }
    let name = match decode::<X224<McsMessage<'_>>>(frame) {
        Ok(X224(McsMessage::SendDataIndication(data))) => match decode::<ShareControlHeader>(data.user_data.as_ref()) {
            Ok(ShareControlHeader {
                share_control_pdu: ShareControlPdu::Data(header),
                ..
            }) => format!("{:?}", header.share_data_pdu.share_header_type()),
            Ok(control) => format!("{:?}", control.share_control_pdu),
            Err(_) => format!("channel-{}", data.channel_id),
        },
        Ok(X224(other)) => format!("{other:?}"),
        Err(_) if frame.get(5) == Some(&0xd0) => "connection-confirm".to_owned(),
        Err(_) => "mcs-connect-response".to_owned(),
    };
    let name: String = name
        .chars()
        .take_while(|c| *c != '(' && *c != '{' && *c != ' ')
        .collect();
    format!("x224-{name}")
}

/// Replays every `crash-*`, `oom-*` and `timeout-*` file in `fuzz/artifacts/<target>/` (from
/// these runs or from libFuzzer's), and prints what each does now, minimized.
#[test]
#[ignore = "replays fuzz/artifacts/: cargo test --test fuzz -- --ignored replay_artifacts --nocapture"]
fn replay_artifacts() {
    install_panic_hook();
    session::init();
    /// A target's name, its check, and whether its inputs are re-framed.
    type Target = (&'static str, fn(&[u8]), bool);
    let targets: [Target; 2] = [
        ("framing", framing::check, true),
        ("session_frames", session::check, false),
    ];
    for (target, check, reframe) in targets {
        let Ok(entries) = std::fs::read_dir(artifact_dir(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !["crash-", "oom-", "timeout-"].iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let Ok(input) = std::fs::read(&path) else { continue };
            let outcome = run_one(check, &input);
            for panic in &outcome.contained {
                println!(
                    "{target}/{name}: contained panic at {}: {}",
                    panic.location, panic.message
                );
            }
            match outcome.escaped {
                None => println!("{target}/{name}: no longer fails"),
                Some(finding) => {
                    let minimized = minimize(check, &input, &finding, reframe);
                    let small = write_artifact(target, finding.kind, "minimized-", &minimized);
                    println!(
                        "{target}/{name} ({} bytes): {} at {}: {}\n  minimized: {} ({} bytes)\n{}",
                        input.len(),
                        finding.kind,
                        finding.location,
                        finding.message,
                        small.display(),
                        minimized.len(),
                        finding.backtrace
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: the crashes found so far, replayed from `fuzz/regressions/<target>/`. Each must
// now end without a panic reaching the caller and with the target's invariants holding. The
// arithmetic-overflow panics are in IronRDP's crates (and in `yuv`, under ironrdp-graphics),
// in builds with overflow checks (debug, cargo-fuzz's default); `Session` contains them since
// it runs the decoder under `catch_unwind`, and the run prints each contained panic, so it
// shows when an IronRDP upgrade fixes one.

/// Runs each input through `check`; fails with where and how each one that failed did.
fn replay(check: fn(&[u8]), inputs: &[(&str, &[u8])]) {
    install_panic_hook();
    let mut failures = Vec::new();
    for (name, input) in inputs {
        let outcome = run_one(check, input);
        for panic in &outcome.contained {
            println!("{name}: contained panic at {}: {}", panic.location, panic.message);
        }
        if let Some(f) = outcome.escaped {
            failures.push(format!(
                "{name}: {} at {}: {}\n{}",
                f.kind, f.location, f.message, f.backtrace
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! session_regression {
    ($($file:literal),+) => {
        replay(
            session::check,
            &[$(($file, &include_bytes!(concat!("../fuzz/regressions/session_frames/", $file))[..])),+],
        )
    };
}

/// A RemoteFX frame (in Set Surface Bits) whose destination makes
/// `destination.left + width - 1` underflow: ironrdp-session 0.13.0 src/rfx.rs:185:47
/// (`clipping_rectangles`).
#[test]
fn regression_rfx_clipping_left_subtract_overflow() {
    session_regression!("rfx-clipping-left-subtract-overflow");
}

/// A RemoteFX rectangle of width 0 at the left edge: `destination.left + r.x + r.width - 1`
/// underflows, ironrdp-session 0.13.0 src/rfx.rs:187:24 (`clipping_rectangles`).
#[test]
fn regression_rfx_clipping_right_subtract_overflow() {
    session_regression!("rfx-clipping-right-subtract-overflow");
}

/// RemoteFX tiles whose index times the 64-pixel tile size overflows u16: ironrdp-session
/// 0.13.0 src/rfx.rs:200:34 (`t.x * TILE_SIZE`) and 201:32 (`t.y * TILE_SIZE`),
/// `tiles_to_rectangles`.
#[test]
fn regression_rfx_tile_position_multiply_overflow() {
    session_regression!("rfx-tile-left-multiply-overflow", "rfx-tile-top-multiply-overflow");
}

/// A Set Surface Bits command whose destination bottom is 0: `destination.bottom - 1`
/// underflows, ironrdp-session 0.13.0 src/fast_path.rs:753:33 (`process_surface_commands`).
#[test]
fn regression_surface_bits_empty_destination_subtract_overflow() {
    session_regression!("surface-bits-empty-destination-subtract-overflow");
}

/// A fragmented Set Surface Bits command with right < left: `InclusiveRectangle::width`
/// (`right - left + 1`) underflows, ironrdp-pdu 0.11.0 src/geometry.rs:156:9, called from
/// ironrdp-session 0.13.0 src/fast_path.rs:758.
#[test]
fn regression_surface_bits_inverted_destination_width_overflow() {
    session_regression!("surface-bits-inverted-destination-width-overflow");
}

/// RemoteFX tiles whose dequantized coefficients overflow the YCbCr to RGB conversion in
/// yuv 0.8.20 src/rdp.rs:425-430 (one input per overflowing operation), called by
/// ironrdp-graphics 0.11.0 `color_conversion::ycbcr_to_rgba` from `rfx::TileDecoder::decode`.
#[test]
fn regression_rfx_ycbcr_to_rgb_overflow() {
    session_regression!(
        "rfx-ycbcr-to-rgb-overflow-425-23",
        "rfx-ycbcr-to-rgb-overflow-426-38",
        "rfx-ycbcr-to-rgb-overflow-426-43",
        "rfx-ycbcr-to-rgb-overflow-428-17",
        "rfx-ycbcr-to-rgb-overflow-430-38",
        "rfx-ycbcr-to-rgb-overflow-430-43"
    );
}

/// After a reactivation at 96 x 64, a RemoteFX frame for 128 x 96: IronRDP reports the
/// frame's whole destination as the update rectangle; `Event::Graphics` must still lie inside
/// the framebuffer (an application slicing the framebuffer by it, as `Event`'s example does,
/// would panic). Release builds too.
#[test]
fn regression_graphics_rect_outside_framebuffer() {
    session_regression!("graphics-rect-outside-framebuffer");
}

// ---------------------------------------------------------------------------------------------
// The harness's own checks.

#[test]
fn hex_round_trips() {
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(unhex(&hex(&bytes)), bytes);
}

#[test]
fn the_corpus_is_small_and_present() {
    for target in ["framing", "session_frames"] {
        let seeds = corpus(target);
        assert!(seeds.len() >= 10, "{target}: {} seeds", seeds.len());
        let total: usize = seeds.iter().map(Vec::len).sum();
        assert!(total < 1 << 20, "{target}: {total} bytes of corpus");
    }
}
