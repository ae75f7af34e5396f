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
