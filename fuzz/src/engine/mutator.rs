//! The deterministic mutator: from the seed corpus and an [`Rng`], the inputs of a bounded
//! run (byte-level mutations, splices of seeds, whole seed frames recombined with one of them
//! mutated and its length fields made to agree again, and for `framing` fresh split points and
//! frame bounds).

use crate::engine::frames::fix_lengths;
use crate::engine::rng::Rng;
use crate::harness::framing;

/// The longest input the mutator makes.
pub const MAX_LEN: usize = 96 * 1024;

pub struct Mutator<'a> {
    rng: Rng,
    seeds: &'a [Vec<u8>],
    /// The frames of each seed (of its stream, for framing inputs).
    seed_frames: &'a [Vec<Vec<u8>>],
    /// Framing inputs: a header with split points and a frame bound, then the stream.
    reframe: bool,
}

impl<'a> Mutator<'a> {
    pub fn new(rng: Rng, seeds: &'a [Vec<u8>], seed_frames: &'a [Vec<Vec<u8>>], reframe: bool) -> Self {
        Self {
            rng,
            seeds,
            seed_frames,
            reframe,
        }
    }
}

impl Mutator<'_> {
    fn seed(&mut self) -> Option<&[u8]> {
        match self.seeds.len() {
            0 => None,
            n => Some(&self.seeds[self.rng.below(n)]),
        }
    }

    /// The next input.
    pub fn input(&mut self) -> Vec<u8> {
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
        let mut frames = self.pick_frames();
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

    /// Whole seed frames: a run of up to 16 of one seed's, or up to 8 picked from all seeds.
    fn pick_frames(&mut self) -> Vec<Vec<u8>> {
        if self.rng.below(2) == 0 {
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

    /// Mutation `op` (0 to 11); one that needs bytes, on an empty input, appends a random byte.
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
            2 => self.insert_random(d),
            3 if len > 0 => self.delete_range(d),
            4 if len > 0 => self.copy_range(d),
            5 | 6 if len > 0 => self.write_integer(d),
            7 => self.splice_seed(d),
            8 => self.insert_seed_piece(d),
            // Truncate.
            9 if len > 0 => d.truncate(self.rng.below(len)),
            10 => self.append_seed(d),
            11 => self.reframe_in_place(d),
            _ => {
                let byte = self.rng.byte();
                d.push(byte);
            }
        }
    }

    /// Inserts 1 to 8 random bytes.
    fn insert_random(&mut self, d: &mut Vec<u8>) {
        let at = self.rng.below(d.len() + 1);
        let n = 1 + self.rng.below(8);
        let bytes = self.rng.bytes(n);
        d.splice(at..at, bytes);
    }

    /// Deletes a range (of up to 16 bytes, sometimes up to 4096); `d` is not empty.
    fn delete_range(&mut self, d: &mut Vec<u8>) {
        let len = d.len();
        let at = self.rng.below(len);
        let longest = if self.rng.below(4) == 0 { 4096 } else { 16 };
        let n = 1 + self.rng.below((len - at).min(longest));
        d.drain(at..at + n);
    }

    /// Copies a range of itself elsewhere; `d` is not empty.
    fn copy_range(&mut self, d: &mut Vec<u8>) {
        let len = d.len();
        let from = self.rng.below(len);
        let n = 1 + self.rng.below((len - from).min(256));
        let to = self.rng.below(len + 1);
        let bytes = d[from..from + n].to_vec();
        d.splice(to..to, bytes);
    }

    /// Writes an interesting integer (header lengths live here); `d` is not empty.
    fn write_integer(&mut self, d: &mut Vec<u8>) {
        let len = d.len();
        let at = self.rng.below(len);
        let rest = u16::try_from(len - at).unwrap_or(u16::MAX);
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
            rest,
            rest.wrapping_add(1),
            rest.wrapping_sub(1),
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

    /// Splice: our head, another seed's tail.
    fn splice_seed(&mut self, d: &mut Vec<u8>) {
        if let Some(other) = self.seed().map(<[u8]>::to_vec) {
            let at = self.rng.below(d.len() + 1);
            let from = self.rng.below(other.len() + 1);
            d.truncate(at);
            d.extend_from_slice(&other[from..]);
        }
    }

    /// Inserts a piece of another seed.
    fn insert_seed_piece(&mut self, d: &mut Vec<u8>) {
        if let Some(other) = self.seed().map(<[u8]>::to_vec) {
            let from = self.rng.below(other.len() + 1);
            let n = self.rng.below((other.len() - from).min(4096) + 1);
            let at = self.rng.below(d.len() + 1);
            d.splice(at..at, other[from..from + n].iter().copied());
        }
    }

    /// Appends a copy of a seed (more frames after these).
    fn append_seed(&mut self, d: &mut Vec<u8>) {
        if let Some(other) = self.seed().map(<[u8]>::to_vec) {
            d.extend_from_slice(&other);
        }
    }

    /// Framing: fresh split points, stall and keep flags, and frame bound.
    fn reframe_in_place(&mut self, d: &mut Vec<u8>) {
        let data = framing::parse(d).data.to_vec();
        *d = self.reframe(&data);
    }
}
