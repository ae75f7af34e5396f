//! Flat gathers and scatters: the one mechanism behind slicing, index selection, arg-max
//! routing, pooling windows and im2col. A gather and a scatter-add with the same index list
//! are each other's transpose, which makes every op built on them differentiable to any order.

/// The index that stands for "outside the input" (padding): reads give the fill value,
/// scatters drop the element.
pub const PAD: usize = usize::MAX;

/// `out[k] = x[idx[k]]`, or `fill` where `idx[k] == PAD`.
pub(crate) fn gather<T: Copy + Send + Sync + 'static>(x: &[T], idx: &[usize], fill: T) -> Vec<T> {
    let mut out = Vec::new();
    super::par::map_into(idx, |i| if i == PAD { fill } else { x[i] }, &mut out);
    out
}

/// `out[idx[k]] += src[k]` (entries with `PAD` are dropped).
pub(crate) fn scatter_add_into<T: Copy + std::ops::AddAssign>(
    src: &[T],
    idx: &[usize],
    out: &mut [T],
) {
    for (&i, &v) in idx.iter().zip(src) {
        if i != PAD {
            out[i] += v;
        }
    }
}
