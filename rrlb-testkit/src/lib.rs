//! Test support shared by the workspace's crates, as a dev-dependency only (never published).
//!
//! [`CountingAllocator`] counts the heap allocations each thread makes, for tests and benches that prove a path
//! allocates nothing (or stays within a budget). A library cannot install a global allocator for the binary
//! that links it, so each test or bench binary that counts installs it itself, with one line; it then reads
//! [`allocations`] before and after the code it measures:
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: rrlb_testkit::CountingAllocator = rrlb_testkit::CountingAllocator;
//!
//! let before = rrlb_testkit::allocations();
//! let v = std::hint::black_box(vec![1u8; 64]);
//! assert_eq!(rrlb_testkit::allocations() - before, 1);
//! drop(v);
//! ```
//!
//! The count is per thread: the test harness runs other tests on other threads at the same time, and a
//! runtime's other threads (a log writer, a blocking pool) would blur the figure. Code measured this way runs
//! on the measuring thread (a current-thread runtime, `block_on`).
//!
//! This crate needs `unsafe` for the [`GlobalAlloc`] impl (the workspace denies it elsewhere): every method
//! only forwards to the system allocator, with the caller's arguments unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// A global allocator that forwards to [`System`] and counts, per thread, every allocation and reallocation
/// (not deallocations). Install it with `#[global_allocator]` in the binary that counts; read the count with
/// [`allocations`].
///
/// ```
/// #[global_allocator]
/// static ALLOCATOR: rrlb_testkit::CountingAllocator = rrlb_testkit::CountingAllocator;
///
/// let before = rrlb_testkit::allocations();
/// let mut v: Vec<u8> = Vec::with_capacity(1);
/// v.extend_from_slice(&[1, 2, 3]); // grows: a reallocation, counted too
/// assert_eq!(rrlb_testkit::allocations() - before, 2);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread since it started.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The allocations (and reallocations) this thread has made since it started, as counted by a
/// [`CountingAllocator`] installed as the global allocator; always `0` when none is.
///
/// ```
/// #[global_allocator]
/// static ALLOCATOR: rrlb_testkit::CountingAllocator = rrlb_testkit::CountingAllocator;
///
/// let before = rrlb_testkit::allocations();
/// let sum: u64 = (1..=10).sum(); // no heap
/// assert_eq!(rrlb_testkit::allocations(), before);
/// # assert_eq!(sum, 55);
/// ```
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn count_one() {
    // `try_with`: the allocator can be called while this thread's thread-locals are being torn down; such an
    // allocation is not counted.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting touches no
// allocator state and does not allocate (a `const` thread-local `Cell`).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}
