//! Matrix products through the `gemm` crate.
//!
//! `gemm` was measured against `matrixmultiply` on this project's machine (f32, 1 thread:
//! 105-112 vs 97-103 GFLOP/s; 2 threads at batch 128: 186-206 vs 130) and kept. Its
//! `x86-v4` feature compiles AVX-512 kernels in but picks them at run time
//! (`is_x86_feature_detected!`), falling back to FMA/AVX2 or scalar code, so one binary runs
//! on any x86-64.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Products this small are cheaper as a plain loop than through the packing GEMM.
const SMALL: usize = 16 * 16 * 16;
/// Below this many multiply-adds a second thread costs more than it saves.
const PARALLEL_MIN: usize = 96 * 96 * 96;

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads matrix products may use (default 1). Elementwise ops are always
/// single-threaded: on small graphs the synchronisation would cost more than the work.
pub fn set_num_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The thread count set by [`set_num_threads`].
pub fn num_threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// `c (m×n, contiguous) = a (m×k) · b (k×n)`, operands read through (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: crate::Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    rsa: isize,
    csa: isize,
    b: &[T],
    rsb: isize,
    csb: isize,
    c: &mut [T],
) {
    assert!(c.len() >= m * n, "internal: gemm output too small");
    if m == 0 || n == 0 {
        return;
    }
    let at = |i: usize, p: usize| a[(i as isize * rsa + p as isize * csa) as usize];
    let bt = |p: usize, j: usize| b[(p as isize * rsb + j as isize * csb) as usize];
    if m * n * k <= SMALL {
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::zero();
                for p in 0..k {
                    acc += at(i, p) * bt(p, j);
                }
                c[i * n + j] = acc;
            }
        }
        return;
    }
    // The strides must keep every read inside the slices: the furthest element is (m-1, k-1).
    assert!(
        ((m - 1) as isize * rsa + (k - 1) as isize * csa) < a.len() as isize
            && ((k - 1) as isize * rsb + (n - 1) as isize * csb) < b.len() as isize,
        "internal: gemm strides exceed the operands"
    );
    let threads = num_threads();
    let par = if threads > 1 && m * n * k >= PARALLEL_MIN {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above bounds every operand read, `c` holds m·n elements written
    // with row stride n and column stride 1, and `read_dst = false` means `c` is only
    // written. T is f32 or f64, both supported by `gemm`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}
