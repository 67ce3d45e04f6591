//! Regressions: replaying the minimized inputs of the crashes found so far (which
//! `tests/fuzz.rs` embeds from `fuzz/regressions/<target>/`), each of which must now end
//! without a panic reaching the caller and with the target's invariants holding.

use crate::engine::outcome::run_one;
use crate::engine::panics::install_panic_hook;

/// Runs each input through `check`; fails with where and how each one that failed did.
pub fn replay(check: fn(&[u8]), inputs: &[(&str, &[u8])]) {
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
