//! The bounded-fuzzing engine: it drives a target's check over its seed corpus and a
//! deterministic mutator's inputs on the stable toolchain, catches what goes wrong, writes and
//! minimizes artifacts, replays regressions and artifacts, and records the seed corpus.
//!
//! `tests/fuzz.rs` in the root crate includes this module by path (next to
//! [`harness`](crate::harness)), declares the [`alloc::Tracking`] global allocator and holds
//! the CI entry points: the `#[test]` functions and their iteration counts. Compiled in this
//! crate's library too, the engine refers to the harness as `crate::harness`, so whoever
//! includes it must have the harness at `crate::harness` as well.
//!
//! | module | owns |
//! | --- | --- |
//! | [`runner`] | a bounded run of one target: seeds, mutated inputs, digest, summary, report |
//! | [`outcome`] | running one input and telling what it did |
//! | [`panics`] | the panic hook that records fuzzing threads' panics |
//! | [`alloc`] | the allocator that notes the largest allocation |
//! | [`watchdog`] | aborting on a hang |
//! | [`rng`], [`mutator`], [`frames`] | making inputs |
//! | [`minimize`] | shrinking a failing input |
//! | [`artifacts`] | artifact files, hex, the replay of `fuzz/artifacts/` |
//! | [`corpus`] | reading the seed corpus |
//! | [`regressions`] | replaying `fuzz/regressions/` |
//! | [`record`] | recording the seed corpus from real sessions |

pub mod alloc;
pub mod artifacts;
pub mod corpus;
pub mod frames;
pub mod minimize;
pub mod mutator;
pub mod outcome;
pub mod panics;
pub mod record;
pub mod regressions;
pub mod rng;
pub mod runner;
pub mod watchdog;

/// The error of the corpus recording.
pub type BoxError = Box<dyn std::error::Error>;

/// A fuzz target, as the engine runs it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the directory under `fuzz/corpus/`, `fuzz/artifacts/` and `fuzz/regressions/`.
    pub name: &'static str,
    /// Its body: panics, or breaks an invariant (and panics), on a failing input.
    pub check: fn(&[u8]),
    /// Whether its inputs are `framing` inputs: a control header, then the stream.
    pub reframe: bool,
    /// The repository's root, which holds `fuzz/`.
    pub root: &'static str,
}
