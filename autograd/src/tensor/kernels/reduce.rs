//! Reductions over chosen axes.

use super::elementwise::walk2;
use super::par;
use crate::tensor::{Float, Shape};

/// Output strides of a reduction: the reduced axes get stride 0, so every input element
/// along them lands on the same output element.
fn reduced_strides(shape: &Shape, axes: &[usize]) -> Vec<usize> {
    let kept = shape.reduced(axes, true);
    let mut s = kept.strides().to_vec();
    for &a in axes {
        s[a] = 0;
    }
    s
}

/// Sum of a slice in 16 interleaved lanes, added pairwise at the end: the lanes vectorise
/// (one running sum would be a chain of dependent adds) and keep f32 totals accurate.
fn sum_lanes<T: Float>(x: &[T]) -> T {
    const L: usize = 16;
    let mut acc = [T::zero(); L];
    let mut it = x.chunks_exact(L);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut w = L / 2;
    while w > 0 {
        for k in 0..w {
            let hi = acc[k + w];
            acc[k] += hi;
        }
        w /= 2;
    }
    it.remainder().iter().fold(acc[0], |s, &v| s + v)
}

/// Sum of every element: one [`sum_lanes`] partial per [`par::CHUNK`] elements (in
/// parallel when large), the partials added in order, so the result is the same for any
/// thread count.
pub(crate) fn sum_all<T: Float>(x: &[T]) -> T {
    let mut partials = Vec::new();
    // SAFETY: each piece of `partials` is written whole by the zip (one block per slot).
    unsafe {
        par::collect(
            x.len().div_ceil(par::CHUNK),
            1,
            x.len(),
            &mut partials,
            |s, o| {
                for (o, block) in o.iter_mut().zip(x[s * par::CHUNK..].chunks(par::CHUNK)) {
                    o.write(sum_lanes(block));
                }
            },
        );
    }
    partials.into_iter().fold(T::zero(), |s, p| s + p)
}

/// Sums over `axes` (sorted, resolved). The result has the keepdim shape's element count.
pub(crate) fn sum_axes<T: Float>(x: &[T], shape: &Shape, axes: &[usize]) -> Vec<T> {
    let out_n = shape.reduced(axes, true).numel();
    if axes.len() == shape.rank() {
        return vec![sum_all(x)];
    }
    if x.is_empty() {
        // Sums over an empty axis (the row loops below need rows to pair with outputs).
        return vec![T::zero(); out_n];
    }
    if let [a] = axes {
        if *a == shape.rank() - 1 {
            let inner = shape[*a].max(1);
            let mut out = Vec::new();
            // SAFETY: a piece of `k` outputs zips with `k` whole rows: every slot written.
            unsafe {
                par::collect(
                    out_n,
                    par::rows_per_piece(inner),
                    x.len(),
                    &mut out,
                    |s, o| {
                        for (o, row) in o.iter_mut().zip(x[s * inner..].chunks(inner)) {
                            o.write(row.iter().copied().sum());
                        }
                    },
                );
            }
            return out;
        }
    }
    let mut out = vec![T::zero(); out_n];
    // Reducing leading axes (a bias gradient: sum over the batch): add whole rows. Split
    // by columns, each summed over the rows in order whichever thread runs it.
    if axes.iter().enumerate().all(|(k, &a)| a == k) {
        let inner = out_n.max(1);
        let rows = x.len() / inner;
        let cols = (par::CHUNK / rows.max(1)).max(64);
        par::for_chunks_mut(&mut out, cols, x.len(), |c0, oc| {
            for row in x.chunks_exact(inner) {
                for (o, &v) in oc.iter_mut().zip(&row[c0..]) {
                    *o += v;
                }
            }
        });
        return out;
    }
    let own = shape.strides();
    let os = reduced_strides(shape, axes);
    walk2(shape, &own, &os, |i, o| out[o] += x[i]);
    out
}

/// For every output position, the flat input index of the largest (`max = true`) or
/// smallest element along `axes`; the first one wins ties, and NaN wins over numbers.
pub(crate) fn arg_extreme<T: Float>(
    x: &[T],
    shape: &Shape,
    axes: &[usize],
    max: bool,
) -> Vec<usize> {
    if let [a] = axes {
        if *a + 1 == shape.rank() && shape[*a] > 0 {
            return arg_extreme_rows(x, shape[*a], max);
        }
    }
    arg_extreme_walk(x, shape, axes, max)
}

/// [`arg_extreme`] over any axes, by the broadcasting odometer.
fn arg_extreme_walk<T: Float>(x: &[T], shape: &Shape, axes: &[usize], max: bool) -> Vec<usize> {
    let out_n = shape.reduced(axes, true).numel();
    let mut best: Vec<Option<usize>> = vec![None; out_n];
    let own = shape.strides();
    let os = reduced_strides(shape, axes);
    walk2(shape, &own, &os, |i, o| {
        best[o] = match best[o] {
            None => Some(i),
            Some(j) => Some(if better(x[i], x[j], max) { i } else { j }),
        };
    });
    best.into_iter()
        .map(|b| b.expect("internal: reduction over an empty axis"))
        .collect()
}

/// [`arg_extreme`] over the last axis, rows of `inner > 0` contiguous elements (softmax's
/// shift, pooling windows): a plain loop per row instead of the odometer, split by rows.
fn arg_extreme_rows<T: Float>(x: &[T], inner: usize, max: bool) -> Vec<usize> {
    let rows = x.len() / inner;
    let mut out = Vec::new();
    // SAFETY: a piece of `k` outputs zips with `k` whole rows: every slot written.
    unsafe {
        par::collect(
            rows,
            par::rows_per_piece(inner),
            x.len(),
            &mut out,
            |s, o| {
                for (r, o) in o.iter_mut().enumerate() {
                    let start = (s + r) * inner;
                    let row = &x[start..start + inner];
                    let (mut j, mut w) = (0, row[0]);
                    for (k, &v) in row.iter().enumerate().skip(1) {
                        if better(v, w, max) {
                            (j, w) = (k, v);
                        }
                    }
                    o.write(start + j);
                }
            },
        );
    }
    out
}

/// Whether `v` replaces the current extreme `w`: strictly larger (smaller), or NaN where
/// `w` is a number; a NaN already held stays (the first NaN wins).
#[inline]
fn better<T: Float>(v: T, w: T, max: bool) -> bool {
    if w.is_nan() {
        false
    } else if v.is_nan() {
        true
    } else if max {
        v > w
    } else {
        v < w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_axis_fast_path_picks_what_the_odometer_picks_ties_and_nans_included() {
        // values from a small set so rows have ties; NaN sprinkled in
        let vals = [0.5f32, -1.0, 2.0, 2.0, f32::NAN, -3.0, 0.5];
        for (rows, inner) in [(1, 1), (3, 4), (7, 5), (16, 4), (5, 9)] {
            let x: Vec<f32> = (0..rows * inner)
                .map(|i| vals[(i * 5 + i / 3) % vals.len()])
                .collect();
            let shape = Shape::from([rows, inner]);
            for max in [true, false] {
                assert_eq!(
                    arg_extreme(&x, &shape, &[1], max),
                    arg_extreme_walk(&x, &shape, &[1], max),
                    "{rows}x{inner} max={max}"
                );
            }
        }
    }
}
