//! Resampling NCHW images: nearest-neighbour and bilinear upsampling (or downsampling),
//! with PyTorch's coordinate conventions. Both are separable: each axis is an
//! `index_select` of source rows (and, for bilinear, a weighted sum of two of them with
//! constant weights), so gradients scatter back through the selection.

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

#[track_caller]
fn check(
    op: &'static str,
    xs: &Shape,
    size: (usize, usize),
    scales: Option<(f64, f64)>,
) -> Result<()> {
    if xs.rank() != 4 {
        return Err(Error::invalid(op, "expected an NCHW tensor of rank 4", xs));
    }
    if xs.contains(&0) || size.0 == 0 || size.1 == 0 {
        return Err(Error::invalid(
            op,
            format!("zero-length input or output size {size:?}"),
            xs,
        ));
    }
    // The output's size is the user's, not any tensor's: check it before building the
    // per-row and per-column source lists.
    Shape::from([xs[0], xs[1], size.0, size.1]).check(op)?;
    if let Some((a, b)) = scales {
        if !(a.is_finite() && a > 0.0 && b.is_finite() && b > 0.0) {
            return Err(Error::invalid(
                op,
                format!("scale factors ({a}, {b}) must be positive and finite"),
                xs,
            ));
        }
    }
    Ok(())
}

/// PyTorch's `nearest_idx`: the source index of output `o` (single-precision scale, as
/// ATen computes it, so the picks agree for every size).
fn nearest_index(o: usize, n_in: usize, n_out: usize, scale: Option<f64>) -> usize {
    if n_out == n_in {
        o
    } else if n_in.checked_mul(2) == Some(n_out) {
        o >> 1
    } else {
        let s: f32 = match scale {
            Some(s) if s > 0.0 => (1.0 / s) as f32,
            _ => n_in as f32 / n_out as f32,
        };
        ((o as f32 * s).floor() as usize).min(n_in - 1)
    }
}

/// The two source indices and weights of output `o` for linear interpolation
/// (`area_pixel_compute_source_index` and the CPU kernel's clamping).
fn linear_taps(
    o: usize,
    n_in: usize,
    n_out: usize,
    align_corners: bool,
    scale: Option<f64>,
) -> (usize, usize, f64, f64) {
    let ratio = if align_corners {
        if n_out > 1 {
            (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
        } else {
            0.0
        }
    } else {
        match scale {
            Some(s) if s > 0.0 => 1.0 / s,
            _ => n_in as f64 / n_out as f64,
        }
    };
    let src = if align_corners {
        ratio * o as f64
    } else {
        (ratio * (o as f64 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src.floor() as usize).min(n_in - 1);
    let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
    let l1 = (src - i0 as f64).clamp(0.0, 1.0);
    (i0, i1, 1.0 - l1, l1)
}

/// A constant of `weights` along `axis` of a rank-4 tensor (ones elsewhere).
/// `f(0), .., f(n - 1)` in a fallibly reserved list: `n` is an output size the user chose,
/// which a tensor may hold (checked) while a list of wider entries cannot.
#[track_caller]
pub(crate) fn per_index<U: 'static>(
    op: &'static str,
    n: usize,
    f: impl Fn(usize) -> U,
) -> Result<Vec<U>> {
    let mut v = crate::tensor::buffer(op, &Shape::from([n]))?;
    v.extend((0..n).map(f));
    Ok(v)
}

#[track_caller]
fn along<T: Float>(weights: &[f64], axis: usize) -> Result<Tensor<T>> {
    let mut dims = [1usize; 4];
    dims[axis] = weights.len();
    Tensor::from_fn(dims, |i| T::of(weights[i]))
}

impl<'t, T: Float> Var<'t, T> {
    /// Nearest-neighbour resampling to `size = (H', W')`, as
    /// `F.interpolate(x, size, mode='nearest')` (`nn.Upsample(mode='nearest')`): output
    /// `(h, w)` copies input `(⌊h·s_h⌋, ⌊w·s_w⌋)`, with `s = 1/scale` when `scales` (the
    /// `scale_factor` the size came from) is given, else `in/out`. The gradient of an
    /// input pixel sums those of its copies.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-NCHW input, a zero-length input or output
    /// size, or a scale that is not positive and finite; [`Error::TooLarge`] for an
    /// output size too large to represent.
    #[track_caller]
    pub fn upsample_nearest2d(
        self,
        size: (usize, usize),
        scales: Option<(f64, f64)>,
    ) -> Result<Self> {
        let xs = self.shape();
        check("upsample_nearest2d", &xs, size, scales)?;
        let op = "upsample_nearest2d";
        let rows = per_index(op, size.0, |o| {
            nearest_index(o, xs[2], size.0, scales.map(|s| s.0))
        })?;
        let cols = per_index(op, size.1, |o| {
            nearest_index(o, xs[3], size.1, scales.map(|s| s.1))
        })?;
        self.index_select(2, &rows)?.index_select(3, &cols)
    }

    /// Bilinear resampling to `size = (H', W')`, as
    /// `F.interpolate(x, size, mode='bilinear', align_corners)`. Output index `d` maps to
    /// the source coordinate `s = max((d + ½)·r - ½, 0)` with `r = 1/scale` (or `in/out`),
    /// or `s = d·(in - 1)/(out - 1)` with `align_corners`; the output is
    /// `(1 - λ)·x[⌊s⌋] + λ·x[min(⌊s⌋ + 1, in - 1)]`, `λ = s - ⌊s⌋`, along W and then H.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![0.0, 4.0], [1, 1, 1, 2])?);
    /// // s = max((d + ½)/2 - ½, 0) = 0, 0.25, 0.75, 1.25 → clamped to the last column
    /// let y = x.upsample_bilinear2d((1, 4), false, Some((1.0, 2.0)))?;
    /// assert_eq!(y.value().to_vec(), [0.0, 1.0, 3.0, 4.0]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`upsample_nearest2d`](Var::upsample_nearest2d).
    #[track_caller]
    pub fn upsample_bilinear2d(
        self,
        size: (usize, usize),
        align_corners: bool,
        scales: Option<(f64, f64)>,
    ) -> Result<Self> {
        let xs = self.shape();
        check("upsample_bilinear2d", &xs, size, scales)?;
        // Along W first, then H: ATen's order of the same products and sums.
        let mut y = self;
        for (axis, n_out, scale) in [
            (3, size.1, scales.map(|s| s.1)),
            (2, size.0, scales.map(|s| s.0)),
        ] {
            let n_in = xs[axis];
            let taps = per_index("upsample_bilinear2d", n_out, |o| {
                linear_taps(o, n_in, n_out, align_corners, scale)
            })?;
            let i0: Vec<usize> = taps.iter().map(|t| t.0).collect();
            let i1: Vec<usize> = taps.iter().map(|t| t.1).collect();
            let w0: Vec<f64> = taps.iter().map(|t| t.2).collect();
            let w1: Vec<f64> = taps.iter().map(|t| t.3).collect();
            let tape = y.tape();
            let a = y
                .index_select(axis as isize, &i0)?
                .mul(tape.constant(along::<T>(&w0, axis)?))?;
            let b = y
                .index_select(axis as isize, &i1)?
                .mul(tape.constant(along::<T>(&w1, axis)?))?;
            y = a.add(b)?;
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_indices_follow_aten() {
        // scale 2: the shift fast path
        assert_eq!(nearest_index(5, 3, 6, Some(2.0)), 2);
        // 3 → 7 with scale 7/3 given: ⌊o·3/7⌋
        let picks: Vec<usize> = (0..7).map(|o| nearest_index(o, 3, 7, None)).collect();
        assert_eq!(picks, [0, 0, 0, 1, 1, 2, 2]);
        // align_corners maps the ends onto the ends
        let (i0, i1, w0, w1) = linear_taps(3, 4, 7, true, None);
        assert_eq!((i0, i1, w0, w1), (1, 2, 0.5, 0.5));
        let (i0, i1, _, w1) = linear_taps(6, 4, 7, true, None);
        assert_eq!((i0, i1, w1), (3, 3, 0.0));
        // the first output of an upsampling clamps to the first input
        assert_eq!(linear_taps(0, 3, 6, false, Some(2.0)), (0, 1, 1.0, 0.0));
    }
}
