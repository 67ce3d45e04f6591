//! Hostile H.264 for the decoder the `h264` feature brings in (ironrdp-egfx's
//! `OpenH264Decoder`, OpenH264 built from source).
//!
//! OpenH264 is C++: a memory-safety bug there kills the process, and no `catch_unwind` helps.
//! This test feeds it a few thousand garbage and mutated bitstreams through the same trait
//! calls the graphics pipeline makes (`decode_yuv420` then `to_rgba`, and `decode`), and
//! checks that each one either decodes or returns an error, that garbage is refused, and that
//! a good frame still decodes to the right picture afterwards.
//!
//! The good frame, `tests/data/card-64x48.h264`, is the IDR access unit (SPS, PPS, IDR slice,
//! Annex B) that `interop/ironrdp-peer --egfx avc420` sends for its 64x48 test card: OpenH264's
//! encoder, full-range BT.709. Regenerate it with the peer's ignored test
//! `write_h264_test_frame` (see interop/ironrdp-peer/README.md).
#![cfg(feature = "h264")]

use ironrdp_egfx::decode::{H264Decoder, OpenH264Decoder};

/// The 64x48 test card, one IDR access unit.
const CARD: &[u8] = include_bytes!("data/card-64x48.h264");
const CARD_SIZE: (u32, u32) = (64, 48);

/// Samples of the card away from its edges (x, y, RGB): five of the top half's bars (each 8 px
/// wide at this width) and the bottom half's grey ramp (`v = x * 4`).
const PROBES: [(u32, u32, [u8; 3]); 7] = [
    (12, 12, [255, 255, 0]),
    (20, 12, [0, 255, 255]),
    (36, 12, [255, 0, 255]),
    (44, 12, [255, 0, 0]),
    (52, 12, [0, 0, 255]),
    (16, 36, [64, 64, 64]),
    (40, 36, [160, 160, 160]),
];

/// H.264 loss on flat colours plus the round trip through 8-bit full-range BT.709.
const TOLERANCE: u8 = 10;

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }

    /// Random bytes, fewer than `max` of them.
    fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        self.bytes(len)
    }
}

/// Every kind of hostile stream, `per_kind` of each: random bytes, random bytes behind a
/// start code and an SPS/PPS/IDR NAL header, truncations of the card, 1-16 flipped bits,
/// a run of overwritten bytes, and the card with its slice data replaced.
fn hostile_streams(rng: &mut Rng, per_kind: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..per_kind {
        let random = rng.bytes_below(2048);
        out.push(("random", random));
        let nal = [0x67, 0x68, 0x65, 0x41, 0x06][rng.below(5)];
        let mut headed = vec![0, 0, 0, 1, nal];
        headed.extend(rng.bytes_below(512));
        out.push(("start code + random", headed));
        out.push(("truncated", CARD[..rng.below(CARD.len())].to_vec()));
        let mut flipped = CARD.to_vec();
        for _ in 0..=rng.below(16) {
            let bit = rng.below(flipped.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
        out.push(("bit flips", flipped));
        let mut smashed = CARD.to_vec();
        let start = rng.below(smashed.len());
        let end = (start + 1 + rng.below(32)).min(smashed.len());
        let junk = rng.bytes(end - start);
        smashed[start..end].copy_from_slice(&junk);
        out.push(("overwritten run", smashed));
        let idr = CARD.windows(5).position(|w| w == [0, 0, 0, 1, 0x65]).unwrap_or(0) + 5;
        let mut reslice = CARD[..idr].to_vec();
        reslice.extend(rng.bytes_below(1024));
        out.push(("garbage slice", reslice));
    }
    out
}

/// Decodes `data` the way the graphics pipeline does (YUV planes, then full-range BT.709 to
/// RGBA); `Some((width, height, rgba))` or `None` for an error.
fn decode(decoder: &mut OpenH264Decoder, data: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let frame = decoder.decode_yuv420(data).ok()?.to_rgba();
    Some((frame.width(), frame.height(), frame.into_data()))
}

fn assert_card(decoded: Option<(u32, u32, Vec<u8>)>, after: &str) {
    let (width, height, rgba) = decoded.unwrap_or_else(|| panic!("the good frame failed to decode after {after}"));
    assert_eq!((width, height), CARD_SIZE, "after {after}");
    for (x, y, want) in PROBES {
        let i = usize::try_from((y * width + x) * 4).unwrap_or(usize::MAX);
        let got = &rgba[i..i + 3];
        let close = got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= TOLERANCE);
        assert!(
            close,
            "pixel ({x},{y}) is {got:?}, the card has {want:?} (after {after})"
        );
    }
}

#[test]
fn the_good_frame_decodes_to_the_card() {
    let mut decoder = OpenH264Decoder::new().expect("OpenH264 decoder");
    assert_card(decode(&mut decoder, CARD), "nothing");
    // The RGBA path (the trait's `decode`) gives the same picture.
    let frame = decoder.decode(CARD).expect("decode");
    assert_card(
        Some((frame.width(), frame.height(), frame.into_data())),
        "nothing (RGBA path)",
    );
}

/// Thousands of hostile streams through one decoder: no panic (and no crash), every pure
/// garbage stream refused, and the good frame decodes correctly between batches and at the end.
#[test]
fn hostile_bitstreams_are_refused_and_the_decoder_recovers() {
    let mut decoder = OpenH264Decoder::new().expect("OpenH264 decoder");
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let streams = hostile_streams(&mut rng, 1000);
    let mut outcomes: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (n, (kind, data)) in streams.iter().enumerate() {
        // The RGBA path for every other stream, so both entry points see garbage.
        let ok = if n % 2 == 0 {
            decode(&mut decoder, data).is_some()
        } else {
            decoder.decode(data).is_ok()
        };
        let entry = outcomes.entry(kind).or_default();
        if ok {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if n % 500 == 499 {
            assert_card(decode(&mut decoder, CARD), &format!("{} hostile streams", n + 1));
        }
    }
    println!(
        "{} hostile streams (kind: decoded, refused): {outcomes:?}",
        streams.len()
    );
    let (decoded, _) = outcomes["random"];
    assert_eq!(decoded, 0, "random bytes decoded to a picture");
    let refused: usize = outcomes.values().map(|(_, refused)| refused).sum();
    assert!(
        refused > streams.len() / 2,
        "only {refused} of {} refused",
        streams.len()
    );
    assert_card(decode(&mut decoder, CARD), "all hostile streams");
}

/// A decoder that only ever saw garbage since its creation (no SPS/PPS) refuses a P slice and
/// still takes the first good IDR frame.
#[test]
fn garbage_first_then_the_card() {
    let mut decoder = OpenH264Decoder::new().expect("OpenH264 decoder");
    let mut rng = Rng(42);
    for _ in 0..200 {
        let mut stream = vec![0, 0, 0, 1, 0x41];
        stream.extend(rng.bytes_below(300));
        assert!(
            decode(&mut decoder, &stream).is_none(),
            "a P slice without SPS/PPS decoded"
        );
    }
    assert_card(decode(&mut decoder, CARD), "200 orphan P slices");
}
