//! The read path allocates nothing per frame: once the buffer has reached its working size,
//! reading and dropping frames with `Framed::read_pdu` makes no heap allocation, whatever the
//! frame size and however many frames are read, also through the replaying `Prefixed` stream.
//!
//! A counting global allocator measures this. Only allocations made on the measuring thread
//! while a measurement is running are counted, and the tests take turns measuring, so neither
//! the test harness nor tests running in parallel on other threads can disturb the counts.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use async_rdp::framing::{LocalFramed, Prefixed};
use async_rdp::ironrdp_pdu::Action;
use bytes::BytesMut;
use futures::executor::block_on;
use futures::io::AsyncRead;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Held by each test for its whole run, so that measurements never overlap (counts are per
/// thread; this keeps the tests from competing for the CPU while they measure).
static MEASURING: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts counting this thread's allocations from zero.
fn start_counting() {
    counting_alloc::start();
}

/// Stops counting and returns how many allocations this thread made since `start_counting`.
fn stop_counting() -> usize {
    counting_alloc::stop().calls
}

/// Counts the allocations `f` makes on this thread.
fn allocations_in<T>(f: impl FnOnce() -> T) -> (usize, T) {
    start_counting();
    let out = f();
    (stop_counting(), out)
}

/// One fast-path frame of `len` bytes in all: action byte 0, a one- or two-byte length
/// ([MS-RDPBCGR] 2.2.9.1.2), then filler.
fn fastpath_frame(len: usize, seed: u8) -> Vec<u8> {
    assert!((3..=0x7fff).contains(&len));
    let mut frame = vec![0x00];
    if len < 0x80 {
        frame.push(len as u8);
    } else {
        frame.extend_from_slice(&(len as u16 | 0x8000).to_be_bytes());
    }
    frame.extend((frame.len()..len).map(|i| (i as u8).wrapping_add(seed)));
    frame
}

/// A reader over `data` repeated `rounds` times, giving at most `max_read` bytes per read and
/// then end of stream. Repeating a short run of frames keeps memory small for large frames.
struct Repeating {
    data: Vec<u8>,
    pos: usize,
    rounds: usize,
    max_read: usize,
}

impl AsyncRead for Repeating {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pos == this.data.len() {
            if this.rounds <= 1 {
                return Poll::Ready(Ok(0));
            }
            this.rounds -= 1;
            this.pos = 0;
        }
        let n = buf.len().min(this.max_read).min(this.data.len() - this.pos);
        buf[..n].copy_from_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(n))
    }
}

/// How many frames one round of the repeated data holds.
const FRAMES_PER_ROUND: usize = 16;
const WARM_UP_FRAMES: usize = 200;

fn frames_round(frame_len: usize) -> Vec<u8> {
    (0..FRAMES_PER_ROUND)
        .flat_map(|i| fastpath_frame(frame_len, i as u8))
        .collect()
}

fn repeating(round: Vec<u8>, total_frames: usize, max_read: usize) -> Repeating {
    Repeating {
        data: round,
        pos: 0,
        rounds: total_frames.div_ceil(FRAMES_PER_ROUND),
        max_read,
    }
}

/// Reads `WARM_UP_FRAMES` frames, then counts the allocations made reading `frames` more.
fn measure<S>(framed: &mut LocalFramed<S>, frame_len: usize, frames: usize) -> usize
where
    S: AsyncRead + Unpin,
{
    measure_after(framed, frame_len, WARM_UP_FRAMES, frames)
}

/// Reads `warm_up` frames, then counts the allocations made reading `frames` more.
fn measure_after<S>(framed: &mut LocalFramed<S>, frame_len: usize, warm_up: usize, frames: usize) -> usize
where
    S: AsyncRead + Unpin,
{
    block_on(async {
        for _ in 0..warm_up {
            let (action, frame) = framed.read_pdu().await.expect("warm-up frame");
            assert_eq!((action, frame.len()), (Action::FastPath, frame_len));
        }
        // Only the reads are measured: `block_on`'s set-up happened before, and the reader
        // never returns `Pending`, so the executor does nothing in between.
        start_counting();
        let mut read = 0;
        for _ in 0..frames {
            match framed.read_pdu().await {
                Ok((Action::FastPath, frame)) if frame.len() == frame_len => read += 1,
                _ => break,
            }
        }
        let allocations = stop_counting();
        assert_eq!(read, frames, "every measured frame was read whole");
        allocations
    })
}

/// The most allocations a measured run may make, whatever its length: none are expected, a
/// few are tolerated (a one-off buffer growth), one per frame is what must not happen.
const TINY: usize = 4;

#[test]
fn read_pdu_does_not_allocate_per_frame() {
    let _turn = exclusive();
    for frame_len in [64, 1024, 16 * 1024] {
        for max_read in [1500, 64 * 1024] {
            let mut counts = Vec::new();
            for frames in [1_000, 10_000] {
                let total = WARM_UP_FRAMES + frames;
                let mut framed = LocalFramed::new(repeating(frames_round(frame_len), total, max_read));
                let allocations = measure(&mut framed, frame_len, frames);
                println!(
                    "read_pdu: {frames} frames of {frame_len} B, reads of up to {max_read} B: {allocations} allocations \
                     (buffer capacity {})",
                    framed.buffer_capacity()
                );
                counts.push(allocations);
            }
            assert!(
                counts.iter().all(|&n| n <= TINY),
                "frames of {frame_len} B, reads of {max_read} B: allocations {counts:?}"
            );
            assert_eq!(
                counts[0], counts[1],
                "frames of {frame_len} B, reads of {max_read} B: the count grows with the number of frames"
            );
        }
    }
}

#[test]
fn read_pdu_ref_allocates_nothing_at_all() {
    // Lent frames never leave the buffer: once it has its working size, reading allocates
    // nothing, not even the occasional growth that returned frames can cause.
    let _turn = exclusive();
    for frame_len in [64, 1024, 16 * 1024, 0x7fff] {
        for max_read in [1500, 64 * 1024] {
            let frames = 5_000;
            let mut framed = LocalFramed::new(repeating(frames_round(frame_len), WARM_UP_FRAMES + frames, max_read));
            let allocations = block_on(async {
                for _ in 0..WARM_UP_FRAMES {
                    let (_, frame) = framed.read_pdu_ref().await.expect("warm-up frame");
                    assert_eq!(frame.len(), frame_len);
                }
                start_counting();
                let mut read = 0;
                for _ in 0..frames {
                    match framed.read_pdu_ref().await {
                        Ok((Action::FastPath, frame)) if frame.len() == frame_len => read += 1,
                        _ => break,
                    }
                }
                let allocations = stop_counting();
                assert_eq!(read, frames, "every measured frame was read whole");
                allocations
            });
            println!(
                "read_pdu_ref: {frames} frames of {frame_len} B, reads of up to {max_read} B: {allocations} allocations \
                 (buffer capacity {})",
                framed.buffer_capacity()
            );
            assert_eq!(allocations, 0, "frames of {frame_len} B, reads of {max_read} B");
        }
    }
}

/// A `Framed` over `Prefixed`, whose prefix holds `prefix_frames` frames and whose inner stream
/// holds `inner_frames` more, read `max_read` bytes at a time.
fn prefixed(
    frame_len: usize,
    prefix_frames: usize,
    inner_frames: usize,
    max_read: usize,
) -> LocalFramed<Prefixed<Repeating>> {
    let prefix: BytesMut = (0..prefix_frames)
        .flat_map(|i| fastpath_frame(frame_len, i as u8))
        .collect();
    LocalFramed::new(Prefixed::new(
        repeating(frames_round(frame_len), inner_frames, max_read),
        prefix,
    ))
}

#[test]
fn reading_through_prefixed_adds_no_allocation() {
    let _turn = exclusive();
    const FRAMES: usize = 1_000;
    for frame_len in [64, 1024, 16 * 1024] {
        // Warm-up and measurement both inside the prefix. `Prefixed` fills the whole read
        // buffer from its prefix, so the plain comparison reads without a size limit too.
        let plain = {
            let mut framed = LocalFramed::new(repeating(frames_round(frame_len), WARM_UP_FRAMES + FRAMES, usize::MAX));
            measure(&mut framed, frame_len, FRAMES)
        };
        let (in_prefix, pending) = {
            let mut framed = prefixed(frame_len, WARM_UP_FRAMES + FRAMES, 0, usize::MAX);
            let allocations = measure(&mut framed, frame_len, FRAMES);
            (allocations, framed.get_inner().0.pending_prefix().len())
        };
        println!("{FRAMES} frames of {frame_len} B: {plain} allocations plain, {in_prefix} replayed by Prefixed");
        assert_eq!(pending, 0, "the whole prefix was replayed");
        assert!(in_prefix <= plain, "Prefixed added allocations: {in_prefix} vs {plain}");
        assert!(in_prefix <= TINY, "{in_prefix} allocations through Prefixed");
    }
}

#[test]
fn switching_from_prefix_to_stream_does_not_allocate_per_frame() {
    let _turn = exclusive();
    // Warm up inside the prefix, then measure across the switch to the inner stream, whose
    // reads (4 KiB) are smaller than the prefix's (the whole buffer). The buffer may have to
    // grow once at the switch, when frames stop arriving in one read; that cost must not
    // depend on how many frames follow.
    const PREFIX_FRAMES: usize = 2 * WARM_UP_FRAMES;
    for frame_len in [64, 1024, 16 * 1024] {
        let mut counts = Vec::new();
        for frames in [1_000, 10_000] {
            let mut framed = prefixed(frame_len, PREFIX_FRAMES, WARM_UP_FRAMES + frames - PREFIX_FRAMES, 4096);
            let allocations = measure(&mut framed, frame_len, frames);
            assert!(framed.get_inner().0.pending_prefix().is_empty());
            println!(
                "{frames} frames of {frame_len} B across the prefix/stream switch: {allocations} allocations \
                 (buffer capacity {})",
                framed.buffer_capacity()
            );
            counts.push(allocations);
        }
        assert!(counts.iter().all(|&n| n <= TINY), "frames of {frame_len} B: {counts:?}");
        assert_eq!(
            counts[0], counts[1],
            "frames of {frame_len} B: the count grows with the frames"
        );
    }
}

#[test]
fn the_counter_counts() {
    let _turn = exclusive();
    // The measurement itself must be able to see an allocation, or the tests above prove nothing.
    let (allocations, v) = allocations_in(|| std::hint::black_box(vec![0u8; 100]));
    drop(v);
    assert!(allocations >= 1, "counted {allocations}");
    // And a read path that allocates per frame would be caught.
    let (allocations, _) = allocations_in(|| {
        for _ in 0..100 {
            drop(std::hint::black_box(BytesMut::from(&[1u8, 2, 3][..])));
        }
    });
    assert!(allocations >= 100, "counted {allocations}");
}
