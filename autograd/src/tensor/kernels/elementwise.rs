//! Maps and broadcasting zips over row-major buffers.
//!
//! Broadcasting walks the output in row-major order with an odometer over the outer
//! dimensions; the innermost dimension is a plain loop with stride 0 or 1, which the
//! compiler vectorises in the common same-shape and row-broadcast cases.

use std::ops::Range;

use super::par;
use crate::tensor::Shape;

/// Calls `f(offset_a, offset_b)` for every element of `shape` in row-major order, where the
/// offsets advance by `sa` / `sb` per dimension (0 for a broadcast dimension).
#[inline]
pub(crate) fn walk2(shape: &Shape, sa: &[usize], sb: &[usize], f: impl FnMut(usize, usize)) {
    let r = shape.rank();
    let rows = if r == 0 || shape[r - 1] == 0 {
        usize::from(r == 0)
    } else {
        shape.numel() / shape[r - 1]
    };
    walk2_rows(shape, sa, sb, 0..rows, f);
}

/// [`walk2`] over the rows (runs of the innermost dimension) `rows` only: the elements
/// `rows.start · inner .. rows.end · inner` of the row-major order.
#[inline]
pub(crate) fn walk2_rows(
    shape: &Shape,
    sa: &[usize],
    sb: &[usize],
    rows: Range<usize>,
    mut f: impl FnMut(usize, usize),
) {
    let r = shape.rank();
    if r == 0 {
        if rows.contains(&0) {
            f(0, 0);
        }
        return;
    }
    let inner = shape[r - 1];
    if inner == 0 || shape.numel() == 0 || rows.is_empty() {
        return;
    }
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    let mut idx = [0usize; 16];
    let mut idx_vec;
    let idx: &mut [usize] = if r <= 16 {
        &mut idx[..r]
    } else {
        idx_vec = vec![0usize; r];
        &mut idx_vec
    };
    // The odometer at the first row: its outer indices, and the offsets they give.
    let (mut oa, mut ob) = (0usize, 0usize);
    let mut rest = rows.start;
    for d in (0..r - 1).rev() {
        idx[d] = rest % shape[d];
        rest /= shape[d];
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
    }
    for _ in rows {
        for j in 0..inner {
            f(oa + j * ia, ob + j * ib);
        }
        for d in (0..r - 1).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            oa -= sa[d] * shape[d];
            ob -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// The number of rows (runs of the innermost dimension) of a non-empty `shape` of rank
/// at least 1, and the row length.
fn rows_of(shape: &Shape) -> (usize, usize) {
    let inner = shape[shape.rank() - 1];
    (shape.numel() / inner.max(1), inner)
}

/// `f(offset_a, offset_b)` for every element of `out_shape`, in row-major order, written
/// to the empty `out` and split over the pool by whole rows.
fn collect_walk<U: Send + 'static>(
    out_shape: &Shape,
    sa: &[usize],
    sb: &[usize],
    f: impl Fn(usize, usize) -> U + Sync,
    out: &mut Vec<U>,
) {
    let n = out_shape.numel();
    if out_shape.rank() == 0 || n == 0 {
        walk2(out_shape, sa, sb, |i, j| out.push(f(i, j)));
        return;
    }
    let (_, inner) = rows_of(out_shape);
    let per = par::rows_per_piece(inner);
    // SAFETY: a piece of `k` whole rows starts at a row boundary and the walk over those
    // rows calls the closure exactly `k · inner` = `o.len()` times, once per slot.
    unsafe {
        par::collect(n, per * inner, n, out, |s, o| {
            let row0 = s / inner;
            let mut k = 0;
            walk2_rows(out_shape, sa, sb, row0..row0 + o.len() / inner, |i, j| {
                o[k].write(f(i, j));
                k += 1;
            });
        });
    }
}

/// Appends `src` read through `strides` as a tensor of `shape` (a broadcast or a
/// permutation) to the empty `out`, which the caller has reserved.
pub(crate) fn strided_copy<T: Copy + Send + Sync + 'static>(
    src: &[T],
    strides: &[usize],
    shape: &Shape,
    out: &mut Vec<T>,
) {
    let zeros = [0usize; 16];
    if shape.rank() <= 16 {
        collect_walk(shape, strides, &zeros[..shape.rank()], |a, _| src[a], out);
    } else {
        let z = vec![0; shape.rank()];
        collect_walk(shape, strides, &z, |a, _| src[a], out);
    }
}

/// `f(a, b)` elementwise with NumPy broadcasting into `out_shape`, written to the empty
/// `out` (reserved by the caller: the output can be far larger than either operand).
pub(crate) fn zip_broadcast<T: Copy + Send + Sync, U: Send + 'static>(
    a: &[T],
    sa: &Shape,
    b: &[T],
    sb: &Shape,
    out_shape: &Shape,
    f: impl Fn(T, T) -> U + Sync,
    out: &mut Vec<U>,
) {
    if sa == sb {
        return par::zip_into(a, b, f, out);
    }
    if b.len() == 1 && sa == out_shape {
        let y = b[0];
        return par::map_into(a, |x| f(x, y), out);
    }
    if a.len() == 1 && sb == out_shape {
        let x = a[0];
        return par::map_into(b, |y| f(x, y), out);
    }
    // A bias row added to every row of a matrix (one shape a suffix of the other): whole
    // rows at a time, which vectorise, instead of the odometer.
    if sa == out_shape && is_suffix(sb, out_shape) {
        return by_rows(a, b, &f, out);
    }
    if sb == out_shape && is_suffix(sa, out_shape) {
        return by_rows(b, a, |y, x| f(x, y), out);
    }
    let (ta, tb) = (
        sa.broadcast_strides(out_shape),
        sb.broadcast_strides(out_shape),
    );
    collect_walk(out_shape, &ta, &tb, |i, j| f(a[i], b[j]), out);
}

/// `f(full[i], row[i mod row.len()])` over `full`, whole rows at a time.
fn by_rows<T: Copy + Sync, U: Send + 'static>(
    full: &[T],
    row: &[T],
    f: impl Fn(T, T) -> U + Sync,
    out: &mut Vec<U>,
) {
    let w = row.len();
    if w == 0 {
        return;
    }
    let n = full.len() - full.len() % w;
    // SAFETY: pieces are whole rows (a multiple of `w` long, starting at a multiple of
    // `w`), and each row of `o` is written by one zip of `w` elements.
    unsafe {
        par::collect(n, par::rows_per_piece(w) * w, n, out, |s, o| {
            for (oc, fc) in o.chunks_exact_mut(w).zip(full[s..].chunks_exact(w)) {
                for ((o, &x), &y) in oc.iter_mut().zip(fc).zip(row) {
                    o.write(f(x, y));
                }
            }
        });
    }
}

/// Whether `s` equals the trailing dimensions of `of` (leading 1s in `s` ignored), so a
/// tensor of shape `s` repeats whole along `of`'s leading dimensions.
fn is_suffix(s: &Shape, of: &Shape) -> bool {
    let dims: &[usize] = s;
    let first = dims.iter().position(|&d| d != 1).unwrap_or(dims.len());
    let tail = &dims[first..];
    tail.len() <= of.rank() && of[of.rank() - tail.len()..] == *tail
}
