//! The allocator guard: [`Tracking`], the system allocator noting the largest single
//! allocation a thread makes while it runs an input, which [`run_one`] reports as `oom` above
//! [`LARGE_ALLOCATION`].
//!
//! A global allocator has to be declared in the binary that uses it: `tests/fuzz.rs` does so
//! (`#[global_allocator] static ALLOCATOR: Tracking = Tracking;`).
//!
//! [`run_one`]: crate::engine::outcome::run_one
//! [`LARGE_ALLOCATION`]: crate::engine::outcome::LARGE_ALLOCATION

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::engine::outcome::FUZZING;

thread_local! {
    /// The largest single allocation of the running input, in bytes.
    pub(crate) static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest single allocation a fuzzing thread makes.
pub struct Tracking;

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
