//! The bounded run of one target: every seed as it is, then a fixed number of mutated inputs,
//! each under the watchdog; the summary line (with a digest of every input run) and the
//! contained panics; and, if any panic escaped, the artifacts, minimized, and a failing report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::engine::artifacts::{hex, write_artifact};
use crate::engine::corpus::corpus;
use crate::engine::frames::frames_of;
use crate::engine::minimize::minimize;
use crate::engine::mutator::Mutator;
use crate::engine::outcome::{run_one, Finding, Outcome};
use crate::engine::panics::install_panic_hook;
use crate::engine::rng::Rng;
use crate::engine::watchdog::Watchdog;
use crate::engine::Target;
use crate::harness::framing;

/// The generator's seed unless `ASYNC_RDP_FUZZ_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5eed_f0f0;

/// Runs `target` over its seeds and `default_iterations` mutated inputs (or
/// `ASYNC_RDP_FUZZ_ITERATIONS`, from `ASYNC_RDP_FUZZ_SEED`), prints the summary, and panics
/// with a report if any input failed.
pub fn run_target(target: &Target, default_iterations: usize) {
    install_panic_hook();
    let iterations = env_or("ASYNC_RDP_FUZZ_ITERATIONS", default_iterations);
    let seed = env_or("ASYNC_RDP_FUZZ_SEED", DEFAULT_SEED);
    let seeds = corpus(target);
    let seed_frames = seed_frames(target, &seeds);
    let mut mutator = Mutator::new(Rng::new(seed), &seeds, &seed_frames, target.reframe);
    let started = Instant::now();
    let run = run_inputs(target, &seeds, iterations, &mut mutator);
    let elapsed = started.elapsed();
    print_summary(target, seeds.len(), iterations, &run, elapsed);
    if run.found.is_empty() {
        return;
    }
    let report = report(target, &run.found);
    panic!("{}: {} distinct crashes{report}", target.name, run.found.len());
}

/// The value of the environment variable `name`, if set and valid, else `default`.
fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The frames of each seed (of its stream, for framing inputs), leaving out seeds without any.
fn seed_frames(target: &Target, seeds: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
    seeds
        .iter()
        .map(|seed| {
            let stream = if target.reframe {
                framing::parse(seed).data
            } else {
                seed
            };
            frames_of(stream)
        })
        .filter(|frames| !frames.is_empty())
        .collect()
}

/// A finding, how many inputs it came from, and the first of them.
#[derive(Debug)]
struct Seen {
    finding: Finding,
    count: usize,
    input: Vec<u8>,
}

/// What a run found, each by kind and location, and a digest of every input it ran (to tell
/// that two runs ran the same inputs).
struct Run {
    found: BTreeMap<String, Seen>,
    contained: BTreeMap<String, Seen>,
    digest: u64,
}

/// Runs every seed, then `iterations` inputs of the mutator, under the watchdog.
fn run_inputs(target: &Target, seeds: &[Vec<u8>], iterations: usize, mutator: &mut Mutator<'_>) -> Run {
    let watchdog = Watchdog::start(target);
    let mut run = Run {
        found: BTreeMap::new(),
        contained: BTreeMap::new(),
        digest: 0xcbf2_9ce4_8422_2325,
    };
    for i in 0..seeds.len() + iterations {
        let input = match seeds.get(i) {
            Some(seed) => seed.clone(),
            None => mutator.input(),
        };
        run.digest = input.iter().fold(run.digest ^ input.len() as u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        watchdog.enter(&input);
        let outcome = run_one(target.check, &input);
        watchdog.leave();
        run.record(outcome, &input);
    }
    watchdog.stop();
    run
}

impl Run {
    /// Counts what `input` did.
    fn record(&mut self, outcome: Outcome, input: &[u8]) {
        if let Some(finding) = outcome.escaped {
            count(&mut self.found, finding, input);
        }
        for finding in outcome.contained {
            count(&mut self.contained, finding, input);
        }
    }
}

/// Counts `finding` under its kind and location, keeping the first input.
fn count(seen: &mut BTreeMap<String, Seen>, finding: Finding, input: &[u8]) {
    let key = format!("{} {}", finding.kind, finding.location);
    seen.entry(key).and_modify(|s| s.count += 1).or_insert(Seen {
        finding,
        count: 1,
        input: input.to_vec(),
    });
}

/// Prints the summary line, then the contained panics.
fn print_summary(target: &Target, seeds: usize, iterations: usize, run: &Run, elapsed: Duration) {
    let total = seeds + iterations;
    println!(
        "{}: {seeds} seeds + {iterations} mutated inputs (digest {:016x}) in {:.1} s ({:.0} per second), {} crashes",
        target.name,
        run.digest,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        run.found.len(),
    );
    // Panics that the code under test caught itself (`Session` contains IronRDP's decoder
    // panics and ends the session with an error): not failures, but worth knowing about.
    for seen in run.contained.values() {
        println!(
            "  contained panic, {} times: {} at {}",
            seen.count, seen.finding.message, seen.finding.location
        );
    }
}

/// Minimizes each crash, writes its artifacts, and describes them all.
fn report(target: &Target, found: &BTreeMap<String, Seen>) -> String {
    let mut report = String::new();
    for seen in found.values() {
        let minimized = minimize(target, &seen.input, &seen.finding);
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
    report
}
