//! Maps and broadcasting zips over row-major buffers.
//!
//! Broadcasting walks the output in row-major order with an odometer over the outer
//! dimensions; the innermost dimension is a plain loop with stride 0 or 1, which the
//! compiler vectorises in the common same-shape and row-broadcast cases.

use crate::tensor::Shape;

/// Calls `f(offset_a, offset_b)` for every element of `shape` in row-major order, where the
/// offsets advance by `sa` / `sb` per dimension (0 for a broadcast dimension).
#[inline]
pub(crate) fn walk2(shape: &Shape, sa: &[usize], sb: &[usize], mut f: impl FnMut(usize, usize)) {
    let r = shape.rank();
    if r == 0 {
        f(0, 0);
        return;
    }
    let inner = shape[r - 1];
    if inner == 0 || shape.numel() == 0 {
        return;
    }
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    let outer = shape.numel() / inner;
    let mut idx = [0usize; 16];
    let mut idx_vec;
    let idx: &mut [usize] = if r <= 16 {
        &mut idx[..r]
    } else {
        idx_vec = vec![0usize; r];
        &mut idx_vec
    };
    let (mut oa, mut ob) = (0usize, 0usize);
    for _ in 0..outer {
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

/// Appends `src` read through `strides` as a tensor of `shape` (a broadcast or a
/// permutation) to `out`, which the caller has reserved.
pub(crate) fn strided_copy<T: Copy>(src: &[T], strides: &[usize], shape: &Shape, out: &mut Vec<T>) {
    let zeros = [0usize; 16];
    if shape.rank() <= 16 {
        walk2(shape, strides, &zeros[..shape.rank()], |a, _| {
            out.push(src[a])
        });
    } else {
        let z = vec![0; shape.rank()];
        walk2(shape, strides, &z, |a, _| out.push(src[a]));
    }
}

/// `f(a, b)` elementwise with NumPy broadcasting into `out_shape`, appended to `out`
/// (reserved by the caller: the output can be far larger than either operand).
pub(crate) fn zip_broadcast<T: Copy, U>(
    a: &[T],
    sa: &Shape,
    b: &[T],
    sb: &Shape,
    out_shape: &Shape,
    f: impl Fn(T, T) -> U,
    out: &mut Vec<U>,
) {
    if sa == sb {
        return out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
    }
    if b.len() == 1 && sa == out_shape {
        let y = b[0];
        return out.extend(a.iter().map(|&x| f(x, y)));
    }
    if a.len() == 1 && sb == out_shape {
        let x = a[0];
        return out.extend(b.iter().map(|&y| f(x, y)));
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
    walk2(out_shape, &ta, &tb, |i, j| out.push(f(a[i], b[j])));
}

/// `f(full[i], row[i mod row.len()])` over `full`, one row at a time.
fn by_rows<T: Copy, U>(full: &[T], row: &[T], f: impl Fn(T, T) -> U, out: &mut Vec<U>) {
    if row.is_empty() {
        return;
    }
    for chunk in full.chunks_exact(row.len()) {
        out.extend(chunk.iter().zip(row).map(|(&x, &y)| f(x, y)));
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
