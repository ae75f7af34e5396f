//! Proptest strategies for shapes and f64 tensors.
//!
//! Every strategy shrinks toward small shapes and values near the low end of their
//! range, so a failing gradient check reduces to a minimal example.

use std::ops::RangeInclusive;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use crate::tensor::{Shape, Tensor};

/// Shapes with rank in `rank` and every dimension in `dim`.
///
/// ```
/// use autograd::testing::shapes;
/// use proptest::prelude::*;
/// proptest!(|(s in shapes(1..=3, 1..=4))| {
///     prop_assert!((1..=3).contains(&s.rank()));
///     prop_assert!(s.iter().all(|&d| (1..=4).contains(&d)));
/// });
/// ```
pub fn shapes(rank: RangeInclusive<usize>, dim: RangeInclusive<usize>) -> BoxedStrategy<Shape> {
    vec(dim, rank).prop_map(Shape::from).boxed()
}

/// Uniform f64 values in `range`.
///
/// ```
/// use autograd::testing::values;
/// use proptest::prelude::*;
/// proptest!(|(x in values(-1.0..=1.0))| prop_assert!(x.abs() <= 1.0));
/// ```
pub fn values(range: RangeInclusive<f64>) -> BoxedStrategy<f64> {
    range.boxed()
}

/// Values in `[-3, 3]` at least `margin` away from every point of `kinks` (relu and
/// abs at 0, clamp at its bounds...), where finite differences straddling the kink would
/// disagree with any one-sided derivative. Values that land too close are pushed out to
/// `kink ± margin`, on their own side; between two kinks closer than `2·margin` there is no
/// room, so the pair counts as one forbidden interval and values are pushed past its nearer
/// end.
///
/// ```
/// use autograd::testing::away_from;
/// use proptest::prelude::*;
/// proptest!(|(x in away_from(&[0.0, 1.0], 0.05))| {
///     prop_assert!(x.abs() >= 0.05 && (x - 1.0).abs() >= 0.05);
/// });
/// ```
pub fn away_from(kinks: &[f64], margin: f64) -> BoxedStrategy<f64> {
    let forbidden = forbidden_intervals(kinks, margin);
    (-3.0f64..=3.0)
        .prop_map(move |x| push_out(x, &forbidden))
        .boxed()
}

/// `[k - m, k + m]` around each kink, with `m` a hair past the margin (so rounding cannot
/// leave a pushed value just inside), sorted and merged where they overlap.
fn forbidden_intervals(kinks: &[f64], margin: f64) -> Vec<(f64, f64)> {
    let m = margin * 1.001;
    let mut iv: Vec<(f64, f64)> = kinks.iter().map(|&k| (k - m, k + m)).collect();
    iv.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(iv.len());
    for (lo, hi) in iv {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// `x`, or the nearer end of the forbidden interval it lies strictly inside. Merged
/// intervals are disjoint, so that end is clear of every kink.
fn push_out(x: f64, forbidden: &[(f64, f64)]) -> f64 {
    match forbidden.iter().find(|&&(lo, hi)| x > lo && x < hi) {
        Some(&(lo, hi)) if x - lo <= hi - x => lo,
        Some(&(_, hi)) => hi,
        None => x,
    }
}

/// Strictly positive values in `[lo, hi]` (for `ln`, `sqrt`, `rsqrt`, a `pow` base).
///
/// # Panics
/// When `lo <= 0` or `lo > hi`.
///
/// ```
/// use autograd::testing::positive;
/// use proptest::prelude::*;
/// proptest!(|(x in positive(0.2, 3.0))| prop_assert!(x >= 0.2));
/// ```
pub fn positive(lo: f64, hi: f64) -> BoxedStrategy<f64> {
    assert!(
        lo > 0.0 && lo <= hi,
        "positive({lo}, {hi}): need 0 < lo <= hi"
    );
    (lo..=hi).boxed()
}

/// Tensors with shapes from `shape` and elements from `elems`.
///
/// ```
/// use autograd::testing::{positive, shapes, tensor_with};
/// use proptest::prelude::*;
/// proptest!(|(t in tensor_with(shapes(2..=2, 1..=3), positive(0.5, 2.0)))| {
///     prop_assert_eq!(t.rank(), 2);
///     prop_assert!(t.as_slice().iter().all(|&x| x >= 0.5));
/// });
/// ```
pub fn tensor_with(
    shape: impl Strategy<Value = Shape> + 'static,
    elems: BoxedStrategy<f64>,
) -> BoxedStrategy<Tensor<f64>> {
    shape
        .prop_flat_map(move |s| {
            let n = s.numel();
            vec(elems.clone(), n).prop_map(move |d| Tensor::from_parts(d, s.clone()))
        })
        .boxed()
}

/// Tensors with shapes from `shape` and elements uniform in `[-2, 2]`.
///
/// ```
/// use autograd::testing::{shapes, tensor};
/// use proptest::prelude::*;
/// proptest!(|(t in tensor(shapes(0..=3, 1..=3)))| {
///     prop_assert!(t.as_slice().iter().all(|x| x.abs() <= 2.0));
/// });
/// ```
pub fn tensor(shape: impl Strategy<Value = Shape> + 'static) -> BoxedStrategy<Tensor<f64>> {
    tensor_with(shape, values(-2.0..=2.0))
}

/// Tensors of exactly `shape` with elements from `elems`.
///
/// ```
/// use autograd::testing::{tensor_of, values};
/// use proptest::prelude::*;
/// proptest!(|(t in tensor_of([2, 3], values(0.0..=1.0)))| prop_assert_eq!(t.dims(), &[2, 3]));
/// ```
pub fn tensor_of(shape: impl Into<Shape>, elems: BoxedStrategy<f64>) -> BoxedStrategy<Tensor<f64>> {
    tensor_with(Just(shape.into()), elems)
}

/// Tensors whose elements are pairwise at least `gap` apart (no ties), for `max`, `min`,
/// `maximum`, max-pooling and sorting, whose gradient jumps where two elements are equal.
/// Use a `gap` well above twice the finite-difference step. Values lie in about
/// `[-2, 2 + n·gap]`.
///
/// ```
/// use autograd::testing::{distinct, shapes};
/// use proptest::prelude::*;
/// proptest!(|(t in distinct(shapes(1..=2, 1..=4), 1e-3))| {
///     let mut v = t.to_vec();
///     v.sort_by(f64::total_cmp);
///     prop_assert!(v.windows(2).all(|w| w[1] - w[0] >= 1e-3 * 0.999));
/// });
/// ```
pub fn distinct(
    shape: impl Strategy<Value = Shape> + 'static,
    gap: f64,
) -> BoxedStrategy<Tensor<f64>> {
    tensor(shape)
        .prop_map(move |t| {
            let x = t.as_slice();
            let mut order: Vec<usize> = (0..x.len()).collect();
            order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
            // Keep the order, then spread the sorted values by i·gap: adjacent values
            // end up at least `gap` apart.
            let mut out = vec![0.0; x.len()];
            for (rank, &i) in order.iter().enumerate() {
                out[i] = x[i] + rank as f64 * gap;
            }
            Tensor::from_parts(out, t.shape().clone())
        })
        .boxed()
}

/// A pair of shapes that broadcast against each other, NumPy style: each operand drops
/// some leading dimensions of a common shape and sets some others to 1.
///
/// ```
/// use autograd::testing::broadcast_pair;
/// use proptest::prelude::*;
/// proptest!(|((a, b) in broadcast_pair(3, 3))| {
///     prop_assert!(a.broadcast(&b, "t").is_ok());
/// });
/// ```
pub fn broadcast_pair(max_rank: usize, max_dim: usize) -> BoxedStrategy<(Shape, Shape)> {
    shapes(0..=max_rank, 1..=max_dim)
        .prop_flat_map(|full| {
            let r = full.rank();
            (
                Just(full),
                0..=r,
                0..=r,
                vec(any::<bool>(), r),
                vec(any::<bool>(), r),
            )
        })
        .prop_map(|(full, drop_a, drop_b, ones_a, ones_b)| {
            let make = |drop: usize, ones: &[bool]| -> Shape {
                (drop..full.rank())
                    .map(|i| if ones[i] { 1 } else { full[i] })
                    .collect()
            };
            (make(drop_a, &ones_a), make(drop_b, &ones_b))
        })
        .boxed()
}

/// Operands of a (possibly batched, possibly transposed) matrix product.
#[derive(Clone, Debug)]
pub struct MatmulPair {
    /// Left operand, stored transposed when `ta`.
    pub a: Tensor<f64>,
    /// Right operand, stored transposed when `tb`.
    pub b: Tensor<f64>,
    /// Whether the product reads `a` transposed (last two axes).
    pub ta: bool,
    /// Whether the product reads `b` transposed.
    pub tb: bool,
}

/// Random operands for `op(a)·op(b)`: matrix sizes in `1..=max_dim`, up to
/// `max_batch_rank` leading batch dimensions that broadcast against each other (either
/// side may lack some or have size 1), and random transpose flags when `transposed`.
///
/// ```
/// use autograd::testing::matmul_pair;
/// use proptest::prelude::*;
/// proptest!(|(p in matmul_pair(2, 3, true))| {
///     prop_assert!(p.a.matmul_t(&p.b, p.ta, p.tb).is_ok());
/// });
/// ```
pub fn matmul_pair(
    max_batch_rank: usize,
    max_dim: usize,
    transposed: bool,
) -> BoxedStrategy<MatmulPair> {
    (
        broadcast_pair(max_batch_rank, 3),
        1..=max_dim,
        1..=max_dim,
        1..=max_dim,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(move |((ba, bb), m, k, n, ta, tb)| {
            let (ta, tb) = (ta && transposed, tb && transposed);
            let mut da = ba.to_vec();
            da.extend(if ta { [k, m] } else { [m, k] });
            let mut db = bb.to_vec();
            db.extend(if tb { [n, k] } else { [k, n] });
            (
                tensor(Just(Shape::from(da))),
                tensor(Just(Shape::from(db))),
                Just(ta),
                Just(tb),
            )
        })
        .prop_map(|(a, b, ta, tb)| MatmulPair { a, b, ta, tb })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::{forbidden_intervals, push_out};

    #[test]
    fn values_never_land_within_the_margin_of_any_kink() {
        // 0.05 was pushed away from 0 to 0.1001, inside the margin of the kink at 0.15
        for (kinks, margin) in [
            (&[0.0, 0.15][..], 0.1),
            (&[0.0, 1.0], 0.05),
            (&[-1.0, -0.9, -0.85, 2.0], 0.1),
            (&[0.3, 0.3], 0.2),
        ] {
            let f = forbidden_intervals(kinks, margin);
            for i in 0..=6000 {
                let x = -3.0 + i as f64 * 1e-3;
                let y = push_out(x, &f);
                for &k in kinks {
                    assert!(
                        (y - k).abs() >= margin,
                        "{x} -> {y}, kink {k}, margin {margin}"
                    );
                }
                // values already clear of every kink are left alone
                if kinks.iter().all(|&k| (x - k).abs() >= margin * 1.001) {
                    assert_eq!(y, x);
                }
            }
        }
    }
}
