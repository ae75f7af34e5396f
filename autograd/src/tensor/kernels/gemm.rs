//! Matrix products through the `gemm` crates' f32 and f64 kernels.
//!
//! `gemm` was measured against `matrixmultiply` on this project's machine (f32, 1 thread:
//! 105-112 vs 97-103 GFLOP/s; 2 threads at batch 128: 186-206 vs 130) and kept. Its
//! `x86-v4` feature compiles AVX-512 kernels in but picks them at run time
//! (`is_x86_feature_detected!`), falling back to FMA/AVX2 or scalar code, so one binary runs
//! on any x86-64.

use std::any::TypeId;

use gemm_common::Parallelism;

use super::threads::{self, num_threads};

/// Products this small are cheaper as a plain loop than through the packing GEMM.
const SMALL: usize = 16 * 16 * 16;
/// Below this many multiply-adds a second thread costs more than it saves. Measured with 2
/// threads: 128³ products ran at 66 GFLOP/s threaded vs 108 serial, and the deep-MLP
/// workload's 64×256×256 products made its step slower (10.5 ms) than one thread (8.0);
/// 512³ and the 128×784×512 layer of W1 gain ~2× and ~1.3×.
const PARALLEL_MIN: usize = 200 * 200 * 200;
/// From this size, threads split the rows of the output and each runs a serial GEMM (with
/// two threads at every size, with more up to `PARALLEL_MIN`): a layer's 64×256×256
/// product gains from two threads that way where `gemm`'s own schedule on the rayon pool
/// loses to the pool's wake-up latency.
const SPLIT_MIN: usize = 48 * 48 * 48;

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
    assert!(
        m.checked_mul(n).is_some_and(|mn| c.len() >= mn),
        "internal: gemm output too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: the product is zero (and `k - 1` below would underflow).
        c[..m * n].fill(T::zero());
        return;
    }
    let at = |i: usize, p: usize| a[(i as isize * rsa + p as isize * csa) as usize];
    let bt = |p: usize, j: usize| b[(p as isize * rsb + j as isize * csb) as usize];
    // Saturating: each pairwise product fits (the operands exist), the triple need not.
    let work = m.saturating_mul(n).saturating_mul(k);
    if work <= SMALL {
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
    let ops = Operands {
        k,
        n,
        a,
        rsa,
        csa,
        b,
        rsb,
        csb,
    };
    let threads = num_threads();
    let split = if threads == 2 {
        work >= SPLIT_MIN
    } else {
        (SPLIT_MIN..PARALLEL_MIN).contains(&work)
    };
    if threads > 1 && split && m >= 2 * 16 {
        // Contiguous blocks of output rows; each block reads the matching rows of `a`.
        let rows = m.div_ceil(threads.min(m / 16));
        let mut blocks: smallvec::SmallVec<[&mut [T]; 8]> =
            c[..m * n].chunks_mut(rows * n).collect();
        threads::for_each_mut(&mut blocks, |b, c_rows| ops.rows(b * rows, c_rows, SERIAL));
        return;
    }
    let par = if threads > 1 && work >= PARALLEL_MIN {
        Parallelism::Rayon(threads)
    } else {
        SERIAL
    };
    ops.rows(0, &mut c[..m * n], par);
}

const SERIAL: Parallelism = Parallelism::None;

/// The operands of one product, so blocks of output rows can be computed separately.
struct Operands<'a, T> {
    k: usize,
    n: usize,
    a: &'a [T],
    rsa: isize,
    csa: isize,
    b: &'a [T],
    rsb: isize,
    csb: isize,
}

impl<T: crate::Float> Operands<'_, T> {
    /// Output rows `i0 .. i0 + c.len()/n` into `c`.
    fn rows(&self, i0: usize, c: &mut [T], par: Parallelism) {
        #[cfg(test)]
        tests::inject_panic(i0, self.k);
        let (k, n) = (self.k, self.n);
        let m = c.len() / n;
        let a = &self.a[(i0 as isize * self.rsa) as usize..];
        let (rsa, csa, rsb, csb) = (self.rsa, self.csa, self.rsb, self.csb);
        // Every read must stay inside the slices: the furthest elements are (m-1, k-1) of
        // `a` and (k-1, n-1) of `b`. `extent` is checked arithmetic, so no operand shape
        // can wrap its way past this test.
        assert!(
            m >= 1
                && extent(m, k, rsa, csa).is_some_and(|e| e <= a.len())
                && extent(k, n, rsb, csb).is_some_and(|e| e <= self.b.len()),
            "internal: gemm strides exceed the operands"
        );
        // The kernels prefer a column-major destination: compute Cᵀ (n×m, column stride n)
        // = Bᵀ·Aᵀ instead, as the `gemm` crate's own front end does for this layout (n = 1
        // is both layouts at once and stays as it is).
        let (mm, nn, dcs, drs) = if n > 1 {
            (n, m, n as isize, 1)
        } else {
            (m, n, 1, n as isize)
        };
        let (l, lcs, lrs, r, rcs, rrs) = if n > 1 {
            (self.b.as_ptr(), rsb, csb, a.as_ptr(), rsa, csa)
        } else {
            (a.as_ptr(), csa, rsa, self.b.as_ptr(), csb, rsb)
        };
        let dst = c.as_mut_ptr();
        // The same call for either precision's kernel (the operands are cast to it).
        macro_rules! kernel {
            ($kernel:path) => {
                $kernel()(
                    mm,
                    nn,
                    k,
                    dst.cast(),
                    dcs,
                    drs,
                    false,
                    l.cast(),
                    lcs,
                    lrs,
                    r.cast(),
                    rcs,
                    rrs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            };
        }
        // SAFETY: the assert above bounds every operand read (m, k, n ≥ 1: `gemm` returned
        // early otherwise; strides are non-negative, so offsets grow with the indices and
        // the largest is the last element's); swapping the operands and transposing every
        // stride reads the same elements. `c` holds m·n elements written with row stride n
        // and column stride 1, and `read_dst = false` means `c` is only written. The slices
        // are borrowed for the whole call, so nothing else writes them. The pointer casts
        // are identities: each branch runs only when `T` is that very type.
        unsafe {
            if TypeId::of::<T>() == TypeId::of::<f64>() {
                kernel!(gemm_f64::gemm::f64::get_gemm_fn);
            } else if TypeId::of::<T>() == TypeId::of::<f32>() {
                kernel!(gemm_f32::gemm::f32::get_gemm_fn);
            } else {
                unreachable!("internal: Float is implemented for f32 and f64 only");
            }
        }
    }
}

/// One past the furthest offset read from a `rows × cols` operand with strides `rs`, `cs`:
/// `(rows-1)·rs + (cols-1)·cs + 1`, or `None` when a stride is negative, a count is zero or
/// the arithmetic overflows.
fn extent(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<usize> {
    let rs = usize::try_from(rs).ok()?;
    let cs = usize::try_from(cs).ok()?;
    rows.checked_sub(1)?
        .checked_mul(rs)?
        .checked_add(cols.checked_sub(1)?.checked_mul(cs)?)?
        .checked_add(1)
}

#[cfg(test)]
mod tests {
    use crate::Tensor;
    use rand::{rngs::StdRng, SeedableRng};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Products with this inner size (used by no other test) panic in the row block that
    /// starts at `PANIC_AT_ROW`: a stand-in for a bug in one half of a split product.
    const PANIC_K: usize = 997;
    static PANIC_AT_ROW: AtomicUsize = AtomicUsize::new(usize::MAX);

    pub(super) fn inject_panic(i0: usize, k: usize) {
        if k == PANIC_K && PANIC_AT_ROW.load(Ordering::Relaxed) == i0 {
            panic!("injected gemm panic at row {i0}");
        }
    }

    /// A panic in either half of a 2-thread product reaches the caller (it was swallowed
    /// in the helper, leaving rows of the product zero), and products afterwards are
    /// still correct.
    #[test]
    fn a_panic_in_either_half_of_a_split_product_propagates() {
        let mut rng = StdRng::seed_from_u64(5);
        let (m, n) = (64, 64);
        let a = Tensor::<f64>::randn([m, PANIC_K], &mut rng).unwrap();
        let b = Tensor::<f64>::randn([PANIC_K, n], &mut rng).unwrap();
        let _threads = super::super::threads::thread_count_lock();
        super::super::threads::set_num_threads(2);
        // 64 rows in two blocks of 32: the first block starts at row 0, the second at 32.
        for row in [0, 32] {
            PANIC_AT_ROW.store(row, Ordering::Relaxed);
            let res = std::panic::catch_unwind(|| a.matmul(&b));
            let msg = res.expect_err("the panic must propagate");
            let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
            assert_eq!(msg, format!("injected gemm panic at row {row}"));
        }
        PANIC_AT_ROW.store(usize::MAX, Ordering::Relaxed);
        let threaded = a.matmul(&b).unwrap();
        super::super::threads::set_num_threads(1);
        assert_eq!(threaded, a.matmul(&b).unwrap());
    }

    /// Products in the row-split range and the `gemm`-parallel range give the serial
    /// result on every element, transposed operands included.
    #[test]
    fn threaded_products_equal_the_serial_ones() {
        let _threads = super::super::threads::thread_count_lock();
        let mut rng = StdRng::seed_from_u64(3);
        for (m, k, n) in [(64, 256, 256), (37, 100, 90), (256, 210, 200)] {
            let a = Tensor::<f64>::randn([m, k], &mut rng).unwrap();
            let b = Tensor::<f64>::randn([k, n], &mut rng).unwrap();
            let at = a.transpose(0, 1).unwrap();
            super::super::threads::set_num_threads(1);
            let serial = a.matmul(&b).unwrap();
            super::super::threads::set_num_threads(2);
            let threaded = a.matmul(&b).unwrap();
            let threaded_t = at.matmul_t(&b, true, false).unwrap();
            super::super::threads::set_num_threads(1);
            // Each output element is the same dot product in the same order either way.
            assert_eq!(serial, threaded, "{m}x{k}x{n}");
            let diff = serial
                .as_slice()
                .iter()
                .zip(threaded_t.as_slice())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-12, "{m}x{k}x{n} transposed: {diff}");
        }
    }
}
