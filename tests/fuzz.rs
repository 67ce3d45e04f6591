//! Bounded fuzzing on the stable toolchain, for CI: the two fuzz targets of `fuzz/` (whose
//! bodies this file includes from `fuzz/src/harness/`, so both run the same checks), driven by
//! a deterministic mutator over the seed corpus in `fuzz/corpus/<target>/` and random bytes.
//! The engine that does so lives in the fuzz crate's library, `fuzz/src/engine/` (one file per
//! concern: runner, mutator, minimizer, artifacts, panic hook, allocator guard, watchdog,
//! regressions, corpus recording), and is included by path like the harness; this file holds
//! the CI entry points, their iteration counts, and the global allocator.
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

#[path = "../fuzz/src/engine/mod.rs"]
mod engine;

use std::path::Path;

use engine::alloc::Tracking;
use engine::artifacts::{hex, unhex};
use engine::corpus::corpus;
use engine::regressions::replay;
use engine::runner::run_target;
use engine::{BoxError, Target};
use harness::{framing, session};

/// Iterations per target: about 30-60 s each in a debug build on two cores.
const FRAMING_ITERATIONS: usize = 45_000;
const SESSION_ITERATIONS: usize = 60_000;

const FRAMING: Target = Target {
    name: "framing",
    check: framing::check,
    reframe: true,
    root: env!("CARGO_MANIFEST_DIR"),
};

const SESSION_FRAMES: Target = Target {
    name: "session_frames",
    check: session::check,
    reframe: false,
    root: env!("CARGO_MANIFEST_DIR"),
};

/// Notes the largest allocation of each input, for the `oom` findings.
#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

// ---------------------------------------------------------------------------------------------
// The targets.

#[test]
fn framing_bounded() {
    run_target(&FRAMING, FRAMING_ITERATIONS);
}

#[test]
fn session_frames_bounded() {
    session::init();
    run_target(&SESSION_FRAMES, SESSION_ITERATIONS);
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
    engine::record::record_corpus(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// Replays every `crash-*`, `oom-*` and `timeout-*` file in `fuzz/artifacts/<target>/` (from
/// these runs or from libFuzzer's), and prints what each does now, minimized.
#[test]
#[ignore = "replays fuzz/artifacts/: cargo test --test fuzz -- --ignored replay_artifacts --nocapture"]
fn replay_artifacts() {
    session::init();
    engine::artifacts::replay_artifacts(&[FRAMING, SESSION_FRAMES]);
}

// ---------------------------------------------------------------------------------------------
// Regressions: the crashes found so far, replayed from `fuzz/regressions/<target>/`. Each must
// now end without a panic reaching the caller and with the target's invariants holding. The
// arithmetic-overflow panics are in IronRDP's crates (and in `yuv`, under ironrdp-graphics),
// in builds with overflow checks (debug, cargo-fuzz's default); `Session` contains them since
// it runs the decoder under `catch_unwind`, and the run prints each contained panic, so it
// shows when an IronRDP upgrade fixes one.

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

/// A hinted read that skips a frame (fast-path, for the X.224 hint) and then meets a header
/// past the frame bound: the skipped frame must be gone from the buffer when the error comes,
/// as before the activation read learnt to remove skipped frames in one move (found by this
/// target in CI, 2026-12-01).
#[test]
fn regression_skipped_frame_then_oversized_header() {
    replay(
        framing::check,
        &[(
            "skipped-frame-then-oversized-header",
            &include_bytes!("../fuzz/regressions/framing/skipped-frame-then-oversized-header")[..],
        )],
    );
}

// ---------------------------------------------------------------------------------------------
// The engine's own checks.

#[test]
fn hex_round_trips() {
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(unhex(&hex(&bytes)), bytes);
}

#[test]
fn the_corpus_is_small_and_present() {
    for target in [FRAMING, SESSION_FRAMES] {
        let seeds = corpus(&target);
        let target = target.name;
        assert!(seeds.len() >= 10, "{target}: {} seeds", seeds.len());
        let total: usize = seeds.iter().map(Vec::len).sum();
        assert!(total < 1 << 20, "{target}: {total} bytes of corpus");
    }
}
