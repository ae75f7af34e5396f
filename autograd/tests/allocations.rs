//! Recording allocates nothing per node beyond the output tensor, and a one-element output
//! tensor is stored inline: a chain of scalar ops and its backward pass allocate a number
//! of times that does not grow with the chain's length.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use autograd::{Param, Tape, Tensor};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged (the count is a relaxed
// atomic with no effect on the memory handed out), so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`, which is
        // `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this `layout`, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by a forward chain of `n` scalar ops and its backward pass.
fn allocations_for_chain(n: usize) -> (usize, usize) {
    let x = Param::new(Tensor::<f64>::scalar(0.5));
    let tape = Tape::new();
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut h = tape.param(&x);
    for i in 0..n {
        h = match i % 3 {
            0 => h.mul_scalar(1.0001),
            1 => h.add_scalar(0.001),
            _ => h.tanh(),
        };
    }
    let forward = ALLOCS.load(Ordering::Relaxed) - before;
    let before = ALLOCS.load(Ordering::Relaxed);
    h.backward().unwrap();
    let backward = ALLOCS.load(Ordering::Relaxed) - before;
    (forward, backward)
}

#[test]
fn scalar_chains_allocate_per_chunk_not_per_node() {
    let (f1, b1) = allocations_for_chain(1_000);
    let (f10, b10) = allocations_for_chain(10_000);
    // Nodes live in chunks of 1,024: ten times the nodes means about ten times the chunk
    // allocations, never one per node (which would be 10,000 more).
    assert!(
        f10 <= 2 * 10 + 5,
        "forward of 10,000 ops allocated {f10} times"
    );
    assert!(f10 < 10 * f1.max(1) + 5, "forward: {f1} then {f10}");
    // Backward allocates its gradient table (and the param's first gradient) once.
    assert!(
        b1 <= 4 && b10 <= 4,
        "backward allocated {b1} and {b10} times"
    );
}
