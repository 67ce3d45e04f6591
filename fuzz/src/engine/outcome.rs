//! Running one input: the check under `catch_unwind`, with this thread marked as fuzzing so
//! that the panic hook records its panics and the allocator its largest allocation; and what
//! the input did, as [`Finding`]s.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

use crate::engine::alloc::LARGEST_ALLOCATION;
use crate::engine::panics::PANICS;

/// A single allocation larger than this is reported (libFuzzer's default limit is 2 GiB of RSS;
/// a legitimate 8192 x 8192 RGBA desktop is 256 MiB).
pub const LARGE_ALLOCATION: usize = 512 << 20;

thread_local! {
    /// Whether this thread is running an input.
    pub(crate) static FUZZING: Cell<bool> = const { Cell::new(false) };
}

/// What went wrong in one iteration.
#[derive(Debug, Clone)]
pub struct Finding {
    /// `crash`, `oom`, or `contained` (a panic the code under test caught).
    pub kind: &'static str,
    /// Where it panicked (file:line:column), or what was allocated.
    pub location: String,
    pub message: String,
    /// Stack frames in async-rdp and IronRDP crates, for the first occurrence.
    pub backtrace: String,
}

/// What one input did.
pub struct Outcome {
    /// A panic that reached the harness, an invariant broken, or a too-large allocation.
    pub escaped: Option<Finding>,
    /// Panics that the code under test caught itself.
    pub contained: Vec<Finding>,
}

/// Runs one input.
pub fn run_one(check: fn(&[u8]), input: &[u8]) -> Outcome {
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
