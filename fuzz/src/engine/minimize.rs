//! Minimization: shrinking a failing input while it still fails the same way (same kind, same
//! location), within a bounded number of tries.

use crate::engine::frames::{fix_lengths, frames_of};
use crate::engine::outcome::{run_one, Finding};
use crate::engine::Target;
use crate::harness::framing;

/// How many candidates a minimization runs, at most (frame drops aside).
const TRIES: usize = 6000;

/// Shrinks `input` while it still fails the same way, within a bounded number of tries:
/// drops whole frames, then ranges inside each frame (with its length fields made to agree
/// again), then ranges of the raw bytes.
pub fn minimize(target: &Target, input: &[u8], finding: &Finding) -> Vec<u8> {
    let mut shrinker = Shrinker {
        check: target.check,
        finding,
        tries: 0,
    };
    // A framing input's header stays as it is; the stream behind it is cut into frames.
    let header = if target.reframe {
        input.len() - framing::parse(input).data.len()
    } else {
        0
    };
    let (head, stream) = input.split_at(header);
    let mut frames = frames_of(stream);
    let whole: usize = frames.iter().map(Vec::len).sum();
    let around = Around {
        head,
        tail: &stream[whole..],
    };
    shrinker.drop_frames(&mut frames, &around);
    shrinker.cut_inside_frames(&mut frames, &around);
    shrinker.cut_bytes(around.join(&frames), header)
}

/// What stays around the whole frames of an input: the framing header, the bytes after them.
struct Around<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl Around<'_> {
    fn join(&self, frames: &[Vec<u8>]) -> Vec<u8> {
        [self.head, &frames.concat(), self.tail].concat()
    }
}

struct Shrinker<'a> {
    check: fn(&[u8]),
    finding: &'a Finding,
    /// Candidates run so far.
    tries: usize,
}

impl Shrinker<'_> {
    /// Whether `candidate` fails as the input did.
    fn same(&mut self, candidate: &[u8]) -> bool {
        self.tries += 1;
        run_one(self.check, candidate)
            .escaped
            .is_some_and(|f| f.kind == self.finding.kind && f.location == self.finding.location)
    }

    /// Drops whole frames, from the last to the first.
    fn drop_frames(&mut self, frames: &mut Vec<Vec<u8>>, around: &Around<'_>) {
        let mut i = frames.len();
        while i > 0 {
            i -= 1;
            let mut fewer = frames.clone();
            fewer.remove(i);
            if self.same(&around.join(&fewer)) {
                *frames = fewer;
            }
        }
    }

    /// Cuts ranges inside each frame (past its first 4 bytes), halving the range each pass.
    fn cut_inside_frames(&mut self, frames: &mut Vec<Vec<u8>>, around: &Around<'_>) {
        for i in 0..frames.len() {
            let mut chunk = frames[i].len().div_ceil(2).max(1);
            loop {
                self.cut_inside_frame(frames, i, chunk, around);
                if chunk == 1 || self.tries >= TRIES {
                    break;
                }
                chunk /= 2;
            }
        }
    }

    /// One pass over frame `i`, cutting `chunk` bytes at a time and fixing its lengths.
    fn cut_inside_frame(&mut self, frames: &mut Vec<Vec<u8>>, i: usize, chunk: usize, around: &Around<'_>) {
        let mut at = 4.min(frames[i].len());
        while at < frames[i].len() && self.tries < TRIES {
            let end = (at + chunk).min(frames[i].len());
            let mut cut = frames.clone();
            cut[i].drain(at..end);
            fix_lengths(&mut cut[i]);
            if self.same(&around.join(&cut)) {
                *frames = cut;
            } else {
                at += chunk;
            }
        }
    }

    /// Cuts ranges of the raw bytes after the first `header`, halving the range each pass.
    fn cut_bytes(&mut self, mut best: Vec<u8>, header: usize) -> Vec<u8> {
        let mut chunk = best.len().div_ceil(2).max(1);
        while self.tries < TRIES {
            let mut at = header;
            while at < best.len() && self.tries < TRIES {
                let end = (at + chunk).min(best.len());
                let candidate: Vec<u8> = best[..at].iter().chain(&best[end..]).copied().collect();
                if self.same(&candidate) {
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
}
