//! Reductions over chosen axes.

use super::elementwise::walk2;
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

/// Sums over `axes` (sorted, resolved). The result has the keepdim shape's element count.
pub(crate) fn sum_axes<T: Float>(x: &[T], shape: &Shape, axes: &[usize]) -> Vec<T> {
    let out_n = shape.reduced(axes, true).numel();
    if axes.len() == shape.rank() {
        // Pairwise-ish summation in chunks keeps f32 totals of large tensors accurate.
        return vec![x.chunks(256).map(|c| c.iter().copied().sum::<T>()).sum()];
    }
    let mut out = vec![T::zero(); out_n];
    if let [a] = axes {
        if *a == shape.rank() - 1 {
            let inner = shape[*a];
            for (o, row) in out.iter_mut().zip(x.chunks(inner.max(1))) {
                *o = row.iter().copied().sum();
            }
            return out;
        }
    }
    // Reducing leading axes (a bias gradient: sum over the batch): add whole rows.
    if axes.iter().enumerate().all(|(k, &a)| a == k) {
        let inner = out_n;
        for row in x.chunks_exact(inner.max(1)) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
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
        let v = x[i];
        best[o] = match best[o] {
            None => Some(i),
            Some(j) => {
                let w = x[j];
                let better = if w.is_nan() {
                    false
                } else if v.is_nan() {
                    true
                } else if max {
                    v > w
                } else {
                    v < w
                };
                Some(if better { i } else { j })
            }
        };
    });
    best.into_iter()
        .map(|b| b.expect("internal: reduction over an empty axis"))
        .collect()
}

/// [`arg_extreme`] over the last axis, rows of `inner > 0` contiguous elements (pooling
/// windows): the same comparisons, in a plain loop per row instead of the odometer.
fn arg_extreme_rows<T: Float>(x: &[T], inner: usize, max: bool) -> Vec<usize> {
    x.chunks_exact(inner)
        .enumerate()
        .map(|(r, row)| {
            let mut j = 0;
            let mut w = row[0];
            for (k, &v) in row.iter().enumerate().skip(1) {
                let better = if w.is_nan() {
                    false
                } else if v.is_nan() {
                    true
                } else if max {
                    v > w
                } else {
                    v < w
                };
                if better {
                    (j, w) = (k, v);
                }
            }
            r * inner + j
        })
        .collect()
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
