//! Splitting elementwise work, reductions and gathers over the thread pool.
//!
//! Work is cut into pieces whose boundaries depend only on the tensor's size, never on
//! the thread count: [`CHUNK`] elements (or whole rows of about that many), claimed one at
//! a time by whichever thread is free. Each output element is computed by the same
//! instructions whichever thread runs its piece, and reductions keep one partial per
//! piece and add the partials in piece order, so results are bit-identical for any number
//! of threads, and identical whether a tensor is above or below the split threshold.

use std::mem::MaybeUninit;

use smallvec::SmallVec;

use super::threads::{self, num_threads};

/// Runtime dispatch of elementwise loops to AVX2 code.
///
/// The crate is compiled for baseline x86-64 (SSE2: 4 f32 lanes), so one binary runs on any
/// x86-64 machine; the elementwise loops (a piece of `map`, `zip`, `zip3`) are compiled a
/// second time with AVX2 enabled (8 lanes) and chosen at run time, as the `gemm` crates
/// choose their kernels. FMA is deliberately not enabled: Rust never contracts `a * b + c`
/// into a fused operation on its own, but enabling it would let explicit `mul_add` calls
/// differ between the two versions; without it both compute the same bits, so results do
/// not depend on the machine's instruction set either.
pub(crate) mod simd {
    /// Runs `body` compiled with AVX2 when the CPU has it, else as compiled.
    #[inline(always)]
    pub(crate) fn dispatch<R>(body: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above; the check is cached).
            return unsafe { avx2(body) };
        }
        body()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
        body()
    }
}

/// Elements per piece: 64 KiB of `f32`, small enough for a loaded helper to hold back
/// little work, large enough that claiming a piece (one atomic add) is noise.
pub(crate) const CHUNK: usize = 1 << 14;

/// Below this many elements an op runs on the calling thread.
///
/// Measured with `cargo run --release --example split_threshold` (medians of 200+ runs per
/// size of `1.5·x + 0.5` and `x * y` in f32, 1 vs 2 threads, on the 2-vCPU Zen 4 while
/// other builds kept its load average at 4–6): one thread takes 2.7 and 5.9 µs at 2¹⁵
/// elements, 1.4 and 2.0 µs at 2¹⁴. A hand-off to a spinning helper costs on the order of
/// a microsecond, so 2¹⁵ (two pieces) is the smallest size where a second thread can win
/// back its cost; on that loaded machine no size gained (the helper seldom had a core, and
/// taking its pieces back kept 2 threads within ~10 % of 1). Re-measure on a quiet machine
/// before lowering it. Results do not depend on it: below and above it the same pieces are
/// computed the same way.
pub(crate) const MIN_SPLIT: usize = 1 << 15;

/// Whether `n` elements of work are split (more than one thread and enough work).
#[inline]
pub(crate) fn worth_splitting(n: usize) -> bool {
    n >= MIN_SPLIT && num_threads() > 1
}

/// `f(start, piece)` for consecutive pieces of `piece` elements of `out`.
pub(crate) fn for_chunks_mut<U: Send>(
    out: &mut [U],
    piece: usize,
    work: usize,
    f: impl Fn(usize, &mut [U]) + Sync,
) {
    let piece = piece.max(1);
    if out.len() <= piece || !worth_splitting(work) {
        for (i, c) in out.chunks_mut(piece).enumerate() {
            f(i * piece, c);
        }
        return;
    }
    let mut parts: Vec<&mut [U]> = out.chunks_mut(piece).collect();
    threads::for_each_mut(&mut parts, |i, c| f(i * piece, c));
}

/// A vector of `n` elements built piece by piece: `fill(start, out)` writes elements
/// `start..start + out.len()`.
///
/// # Safety
/// `fill` must write every element of each `out` it is given (and not panic, or the
/// partially written vector is leaked, never read).
pub(crate) unsafe fn collect<U: Send + 'static>(
    n: usize,
    piece: usize,
    work: usize,
    out: &mut Vec<U>,
    fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync,
) {
    out.clear();
    if out.capacity() < n {
        // A large output reuses a cached buffer (see `tensor::pool`) rather than fresh
        // pages the kernel would have to zero.
        if let Some(v) = crate::tensor::pool::take(n) {
            *out = v;
        }
    }
    out.reserve(n);
    for_chunks_mut(&mut out.spare_capacity_mut()[..n], piece, work, fill);
    // SAFETY: the pieces cover `0..n` and the caller guarantees each was written whole.
    unsafe { out.set_len(n) };
}

/// `f(x)` for each `x` of `a`, appended to the empty `out`.
pub(crate) fn map_into<T: Copy + Sync, U: Send + 'static>(
    a: &[T],
    f: impl Fn(T) -> U + Sync,
    out: &mut Vec<U>,
) {
    // SAFETY: the zip writes every slot of `o` (`a` is at least as long as the output).
    unsafe {
        collect(a.len(), CHUNK, a.len(), out, |s, o| {
            let a = &a[s..];
            simd::dispatch(
                #[inline(always)]
                || {
                    // Forced inline, so a large `f` (erf, GELU) is inlined into the loop,
                    // which then vectorises, instead of being called per element.
                    let n = o.len().min(a.len());
                    let (o, a) = (&mut o[..n], &a[..n]);
                    for i in 0..n {
                        o[i].write(f(a[i]));
                    }
                },
            )
        })
    }
}

/// `f(x, y)` over two slices of equal length, appended to the empty `out`.
pub(crate) fn zip_into<T: Copy + Sync, U: Send + 'static>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> U + Sync,
    out: &mut Vec<U>,
) {
    let n = a.len().min(b.len());
    // SAFETY: both inputs have at least `n` elements, so the zip writes every slot.
    unsafe {
        collect(n, CHUNK, n, out, |s, o| {
            let (a, b) = (&a[s..], &b[s..]);
            simd::dispatch(
                #[inline(always)]
                || {
                    let n = o.len().min(a.len()).min(b.len());
                    let (o, a, b) = (&mut o[..n], &a[..n], &b[..n]);
                    for i in 0..n {
                        o[i].write(f(a[i], b[i]));
                    }
                },
            )
        })
    }
}

/// `f(x, y, z)` over three slices of equal length.
pub(crate) fn zip3<T: Copy + Sync, U: Send + 'static>(
    a: &[T],
    b: &[T],
    c: &[T],
    f: impl Fn(T, T, T) -> U + Sync,
) -> Vec<U> {
    let n = a.len().min(b.len()).min(c.len());
    let mut out = Vec::new();
    // SAFETY: all inputs have at least `n` elements, so the zip writes every slot.
    unsafe {
        collect(n, CHUNK, n, &mut out, |s, o| {
            let (a, b, c) = (&a[s..], &b[s..], &c[s..]);
            simd::dispatch(
                #[inline(always)]
                || {
                    let n = o.len().min(a.len()).min(b.len()).min(c.len());
                    let (o, a, b, c) = (&mut o[..n], &a[..n], &b[..n], &c[..n]);
                    for i in 0..n {
                        o[i].write(f(a[i], b[i], c[i]));
                    }
                },
            )
        })
    };
    out
}

/// Rows of `inner` elements per piece: about [`CHUNK`] elements, at least one row.
#[inline]
pub(crate) fn rows_per_piece(inner: usize) -> usize {
    (CHUNK / inner.max(1)).max(1)
}

/// `f(i, &mut a[i], b[i])` in place over equal-length slices.
pub(crate) fn zip_mut<T: Send + Sync + Copy>(a: &mut [T], b: &[T], f: impl Fn(&mut T, T) + Sync) {
    let n = a.len();
    for_chunks_mut(a, CHUNK, n, |s, c| {
        for (x, &y) in c.iter_mut().zip(&b[s..]) {
            f(x, y);
        }
    });
}

/// Runs `f(start, pieces)` over `M` mutable slices cut into the same size-fixed pieces
/// (`pieces[k]` is elements `start..start + len` of `slices[k]`, the same `len` for all),
/// spread over the kernel threads when the slices are large enough for it to pay.
///
/// This is how the optimisers split their per-element update loops: read-only inputs
/// (the gradient) are indexed from `start`. The pieces depend only on the length (the
/// shortest slice's), never on the thread count, so an update that treats each element
/// on its own gives the same bits for any [`set_num_threads`](crate::set_num_threads).
///
/// ```
/// let mut p = vec![1.0f32; 100_000];
/// let mut m = vec![0.0f32; 100_000];
/// let g = vec![0.5f32; 100_000];
/// autograd::for_each_piece_mut([&mut p[..], &mut m[..]], |s, [p, m]| {
///     for ((p, m), &g) in p.iter_mut().zip(m.iter_mut()).zip(&g[s..]) {
///         *m = 0.9 * *m + g;
///         *p -= 0.1 * *m;
///     }
/// });
/// assert!(p.iter().all(|&v| v == 0.95));
/// ```
pub fn for_each_piece_mut<T: Send, const M: usize>(
    slices: [&mut [T]; M],
    f: impl Fn(usize, [&mut [T]; M]) + Sync,
) {
    let n = slices.iter().map(|s| s.len()).min().unwrap_or(0);
    let pieces = n.div_ceil(CHUNK);
    let mut iters = slices.map(|s| s[..n].chunks_mut(CHUNK));
    let mut parts: SmallVec<[[&mut [T]; M]; 8]> = SmallVec::with_capacity(pieces);
    for _ in 0..pieces {
        // Every iterator yields exactly `pieces` chunks of the same lengths.
        let next = iters.each_mut().map(|it| it.next().unwrap_or_default());
        parts.push(next);
    }
    if pieces <= 1 || !worth_splitting(n * M) {
        for (i, p) in parts.into_iter().enumerate() {
            f(i * CHUNK, p);
        }
        return;
    }
    threads::for_each_mut(&mut parts, |i, p| {
        f(i * CHUNK, p.each_mut().map(|s| &mut **s));
    });
}

#[cfg(test)]
mod tests {
    use super::super::threads::{set_num_threads, thread_count_lock};
    use super::*;
    use crate::tensor::Tensor;
    use crate::Float as _;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// The same loop through `simd::dispatch` (AVX2 code where the CPU has it) and as the
    /// crate is compiled (baseline SSE2), over bit patterns of every kind (NaN, infinities,
    /// subnormals): every result has the same bits, NaN for NaN.
    /// `f` is a closure, not a function pointer, so each path inlines (and compiles) it
    /// for its own instruction set.
    fn same_bits_both_ways<T: crate::Float>(
        xs: &[T],
        bits: impl Fn(T) -> u64,
        f: impl Fn(T) -> T + Sync + Copy,
    ) {
        let mut fast = Vec::new();
        map_into(xs, f, &mut fast);
        let plain: Vec<T> = xs.iter().map(|&x| f(x)).collect();
        for ((&x, &a), &b) in xs.iter().zip(&fast).zip(&plain) {
            assert!(
                (a.is_nan() && b.is_nan()) || bits(a) == bits(b),
                "x = {x:?}: dispatched {a:?}, baseline {b:?}"
            );
        }
    }

    #[test]
    fn dispatched_pieces_compute_the_bits_of_the_baseline_code() {
        let xs: Vec<f32> = (0..200_000u32)
            .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
            .collect();
        let b32 = |x: f32| u64::from(x.to_bits());
        same_bits_both_ways(&xs, b32, |x| x.exp_v());
        same_bits_both_ways(&xs, b32, |x| x.tanh_v());
        same_bits_both_ways(&xs, b32, <f32 as crate::Float>::erf);
        same_bits_both_ways(&xs, b32, |x| x.exp_m1_v());
        same_bits_both_ways(&xs, b32, |x| x.ln_1p_v());
        same_bits_both_ways(&xs, b32, |x| x.gelu_v());
        same_bits_both_ways(&xs, b32, |x| x.gelu_grad_v());
        same_bits_both_ways(&xs, b32, |x| 1.0 / (1.0 + (-x).exp_v()));
        let xs: Vec<f64> = (0..200_000u64)
            .map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect();
        same_bits_both_ways(&xs, f64::to_bits, |x| x.exp_v());
        same_bits_both_ways(&xs, f64::to_bits, |x| x.tanh_v());
        same_bits_both_ways(&xs, f64::to_bits, |x| x.gelu_v());
    }

    /// Runs `f` with 1, 2, 3 and 5 threads and checks every result has the 1-thread bits.
    fn same_bits_for_any_thread_count(what: &str, f: impl Fn() -> Vec<f64>) {
        let _lock = thread_count_lock();
        set_num_threads(1);
        let want = f();
        for threads in [2, 3, 5] {
            set_num_threads(threads);
            let got = f();
            set_num_threads(1);
            assert_eq!(got.len(), want.len(), "{what}, {threads} threads");
            let differ = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differ, 0, "{what}, {threads} threads");
        }
    }

    fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::randn(shape, &mut StdRng::seed_from_u64(seed)).unwrap()
    }

    /// Sizes just below, at and above the split threshold and the piece length, odd rows.
    const SHAPES: &[&[usize]] = &[
        &[MIN_SPLIT - 1],
        &[MIN_SPLIT],
        &[3 * CHUNK + 17],
        &[257, 131],
        &[7, 64, 97],
        &[2, 3, 6000],
        &[40_000, 2],
    ];

    #[test]
    fn maps_zips_and_broadcasts_do_not_depend_on_the_thread_count() {
        for (k, &s) in SHAPES.iter().enumerate() {
            let x = randn(s, k as u64);
            let y = randn(s, 100 + k as u64);
            let r = s.len();
            let row = randn(&[s[r - 1]], 200 + k as u64);
            let mut col_dims = s.to_vec();
            col_dims[r - 1] = 1;
            let col = randn(&col_dims, 300 + k as u64);
            same_bits_for_any_thread_count(&format!("{s:?}"), || {
                let mut out = x.map(|v| v.exp() - 1.0).to_vec();
                out.extend(x.mul(&y).unwrap().as_slice());
                out.extend(x.add(&row).unwrap().as_slice());
                out.extend(col.sub(&x).unwrap().as_slice());
                out.extend(x.zip3_map(&y, &x, |a, b, c| a * b + c).as_slice());
                let mut z = x.clone();
                z.mapv_inplace(|v| v * 3.0);
                z.zip_mut_with(&col, |a, b| *a -= b).unwrap();
                out.extend(z.as_slice());
                out.extend(col.broadcast_to(s).unwrap().as_slice());
                let perm: Vec<usize> = (0..r).rev().collect();
                out.extend(x.permute(&perm).unwrap().as_slice());
                let idx: Vec<usize> = (0..x.numel()).map(|i| (i * 7919) % x.numel()).collect();
                out.extend(x.gather_flat(&idx, s, 0.0).unwrap().as_slice());
                out
            });
        }
    }

    #[test]
    fn broadcasting_by_rows_of_pieces_matches_elementwise_indexing() {
        let _lock = thread_count_lock();
        set_num_threads(3);
        // [a, 1, c] - [b, 1]: the odometer path, cut into pieces of whole rows.
        let (a, b, c) = (9, 40, 300);
        let x = randn(&[a, 1, c], 1);
        let y = randn(&[b, 1], 2);
        let got = x.sub(&y).unwrap();
        set_num_threads(1);
        assert_eq!(got.dims(), &[a, b, c]);
        let (xs, ys, gs) = (x.as_slice(), y.as_slice(), got.as_slice());
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    assert_eq!(gs[(i * b + j) * c + k], xs[i * c + k] - ys[j]);
                }
            }
        }
    }

    #[test]
    fn reductions_do_not_depend_on_the_thread_count_and_stay_accurate() {
        for (k, &s) in SHAPES.iter().enumerate() {
            let x = randn(s, 400 + k as u64);
            let r = s.len() as isize;
            same_bits_for_any_thread_count(&format!("{s:?}"), || {
                let mut out = vec![x.sum_all()];
                for axis in 0..r {
                    out.extend(x.sum_axes(&[axis], false).unwrap().as_slice());
                    out.extend(x.extreme_axes(&[axis], false, true).unwrap().0.as_slice());
                    out.extend(x.extreme_axes(&[axis], false, false).unwrap().0.as_slice());
                }
                if r > 1 {
                    out.extend(x.sum_axes(&[0, 1], false).unwrap().as_slice());
                }
                out
            });
            // Against a plain f64 loop in another order: equal to rounding.
            let naive: f64 = x.as_slice().iter().rev().sum();
            let tol = 1e-12 * x.as_slice().iter().map(|v| v.abs()).sum::<f64>();
            assert!((x.sum_all() - naive).abs() <= tol, "{s:?}");
        }
    }

    #[test]
    fn row_extremes_take_the_first_tie_and_the_first_nan() {
        let x = Tensor::from_vec(
            vec![1.0, 3.0, 3.0, 0.0, f64::NAN, 5.0, f64::NAN, 2.0],
            [2, 4],
        )
        .unwrap();
        assert_eq!(x.extreme_axes(&[1], false, true).unwrap().1, vec![1, 4]);
        assert_eq!(x.extreme_axes(&[1], false, false).unwrap().1, vec![3, 4]);
    }

    #[test]
    fn pieces_of_several_slices_line_up() {
        let _lock = thread_count_lock();
        set_num_threads(3);
        let n = 5 * CHUNK + 3;
        let mut a: Vec<u64> = vec![0; n];
        let mut b: Vec<u64> = vec![0; n + 10];
        for_each_piece_mut([&mut a[..], &mut b[..]], |s, [a, b]| {
            assert_eq!(a.len(), b.len());
            for (k, (a, b)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                *a = (s + k) as u64;
                *b = 2 * (s + k) as u64;
            }
        });
        set_num_threads(1);
        assert!(a.iter().enumerate().all(|(i, &v)| v == i as u64));
        assert!(b[..n].iter().enumerate().all(|(i, &v)| v == 2 * i as u64));
        assert!(b[n..].iter().all(|&v| v == 0));
    }
}
