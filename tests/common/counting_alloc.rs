//! A global allocator for tests that count allocations: it delegates to [`System`] and, while
//! the current thread is counting, records the calls, the bytes and the largest single
//! allocation. Counts are per thread, so the test harness and tests running in parallel on
//! other threads cannot disturb a measurement.
//!
//! A test binary installs it with `#[global_allocator] static A: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator.
pub struct Counting;

thread_local! {
    // `const` initialisation and no destructors: reading or writing them never allocates, so
    // the allocator may touch them.
    static ON: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// What this thread allocated between [`start`] and [`stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Allocation calls (`alloc`, `alloc_zeroed`, `realloc`).
    pub calls: usize,
    /// Bytes asked for, in all.
    pub bytes: usize,
    /// The largest single request.
    pub largest: usize,
}

/// Starts counting this thread's allocations from zero.
pub fn start() {
    CALLS.with(|c| c.set(0));
    BYTES.with(|c| c.set(0));
    LARGEST.with(|c| c.set(0));
    ON.with(|c| c.set(true));
}

/// Stops counting and returns what this thread allocated since [`start`].
pub fn stop() -> Counts {
    ON.with(|c| c.set(false));
    Counts {
        calls: CALLS.with(Cell::get),
        bytes: BYTES.with(Cell::get),
        largest: LARGEST.with(Cell::get),
    }
}

fn record(size: usize) {
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + size));
        let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    }
}

// SAFETY: every method forwards to `System` with exactly the arguments it was given and returns
// what `System` returns, so the `GlobalAlloc` contract is upheld exactly as `System` upholds it.
// `record` only touches const-initialised thread-local `Cell`s, none of which allocates,
// unwinds or touches the memory being managed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller upholds `alloc_zeroed`'s contract, forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: `ptr` came from `System` with `layout` and `new_size` is valid, as the caller
        // guarantees; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
