//! Numerically stable compositions used by networks: `softmax`, `log_softmax`, `glu`, and
//! the normalisations `layer_norm`, `group_norm` and `rms_norm`. (The losses built on them live in `nn::loss`.)
//!
//! Each is a composition of primitive ops (so its gradient and its gradient's gradient come
//! from theirs); stability comes from subtracting a detached maximum, never from a fused
//! backward.

use crate::error::{Error, Result};
use crate::tensor::Float;
use crate::var::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `softmax(x)_i = e^{x_i - m} / Σ_j e^{x_j - m}` along `axis` (`m` the detached max, so
    /// logits of any size are safe).
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn softmax(self, axis: isize) -> Result<Self> {
        // Checked here so a bad axis is reported as softmax's, not the inner max's.
        self.shape().axis("softmax", axis)?;
        let e = self.sub(self.stable_shift(&[axis])?)?.exp();
        e.div(e.sum_axes(&[axis], true)?)
    }

    /// `log_softmax(x) = x - logsumexp(x)` along `axis`, computed as
    /// `(x - m) - ln Σ e^{x - m}` with `m` the detached max.
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn log_softmax(self, axis: isize) -> Result<Self> {
        self.shape().axis("log_softmax", axis)?;
        // Not x - (m + ln Σ e^{x-m}): adding m back and subtracting it again rounds at the
        // scale of m, so logits near 1000 lost ~1e-13 absolute (PyTorch keeps x - m).
        let shifted = self.sub(self.stable_shift(&[axis])?)?;
        shifted.sub(shifted.exp().sum_axes(&[axis], true)?.ln())
    }

    /// The gated linear unit along `axis` (`torch.nn.functional.glu`, Dauphin et al.
    /// 2017): `x` split into halves `a` (first) and `b`, then `a · σ(b)`.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] when the axis has odd size.
    #[track_caller]
    pub fn glu(self, axis: isize) -> Result<Self> {
        let s = self.shape();
        let ax = s.axis("glu", axis)?;
        let n = s[ax];
        if !n.is_multiple_of(2) {
            return Err(Error::invalid(
                "glu",
                format!("axis {ax} has odd size {n}, so it cannot be halved"),
                &s,
            ));
        }
        let a = self.narrow_named("glu", &s, ax, 0, n / 2)?;
        let b = self.narrow_named("glu", &s, ax, n / 2, n / 2)?;
        Ok(a.mul_same(b.sigmoid()))
    }

    /// Layer normalisation over the last `dims` axes, as
    /// `torch.nn.functional.layer_norm`: `(x - mean)/√(var + eps) · weight + bias`, with
    /// the biased variance.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `dims` exceeds the rank; [`Error::Broadcast`] when the
    /// affine parameters do not match the normalised shape.
    #[track_caller]
    pub fn layer_norm(
        self,
        dims: usize,
        weight: Option<Self>,
        bias: Option<Self>,
        eps: f64,
    ) -> Result<Self> {
        let r = self.rank();
        if dims == 0 || dims > r {
            return Err(Error::invalid(
                "layer_norm",
                format!("cannot normalise over the last {dims} axes"),
                &self.shape(),
            ));
        }
        let axes: Vec<isize> = (r - dims..r).map(|a| a as isize).collect();
        let centred = self.sub(self.mean_axes(&axes, true)?)?;
        let var = centred.square().mean_axes(&axes, true)?;
        let mut y = centred.mul(var.add_scalar(T::of(eps)).rsqrt())?;
        // A mismatched weight or bias fails in the product or sum: report it as layer_norm's.
        if let Some(w) = weight {
            y = y.mul(w).map_err(|e| e.in_op("layer_norm"))?;
        }
        if let Some(b) = bias {
            y = y.add(b).map_err(|e| e.in_op("layer_norm"))?;
        }
        Ok(y)
    }

    /// Group normalisation (Wu & He 2018), as `torch.nn.functional.group_norm`: `self` is
    /// `[N, C, *]`; the channels split into `groups` contiguous groups, each normalised
    /// per sample over its channels and every position, `(x - mean)/√(var + eps)` with
    /// the biased variance, then scaled and shifted per channel by `weight` and `bias`
    /// (`[C]`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a rank below 2, a zero-length dimension, or `C` not
    /// divisible by `groups`; [`Error::ShapeMismatch`] when `weight` or `bias` is not `[C]`.
    #[track_caller]
    pub fn group_norm(
        self,
        groups: usize,
        weight: Option<Self>,
        bias: Option<Self>,
        eps: f64,
    ) -> Result<Self> {
        let s = self.shape();
        if s.rank() < 2 || s.contains(&0) {
            return Err(Error::invalid(
                "group_norm",
                "expected [N, C, *] with no zero-length dimension",
                &s,
            ));
        }
        let c = s[1];
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(Error::invalid(
                "group_norm",
                format!("{c} channels do not split into {groups} groups"),
                &s,
            ));
        }
        for p in [weight, bias].into_iter().flatten() {
            if p.shape().dims() != [c] {
                return Err(Error::ShapeMismatch {
                    op: "group_norm",
                    expected: crate::Shape::from([c]),
                    got: p.shape(),
                    location: std::panic::Location::caller(),
                });
            }
        }
        let per_group = s.numel() / (s[0] * groups);
        let g = self.reshape([s[0], groups, per_group])?;
        let centred = g.sub(g.mean_axes(&[-1], true)?)?;
        let var = centred.square().mean_axes(&[-1], true)?;
        let mut y = centred
            .mul(var.add_scalar(T::of(eps)).rsqrt())?
            .reshape(s.clone())?;
        let mut per_channel = vec![1; s.rank()];
        per_channel[1] = c;
        if let Some(w) = weight {
            y = y.mul(w.reshape(per_channel.clone())?)?;
        }
        if let Some(b) = bias {
            y = y.add(b.reshape(per_channel)?)?;
        }
        Ok(y)
    }

    /// Root-mean-square normalisation (Zhang & Sennrich 2019) over the last `dims` axes,
    /// as `torch.nn.functional.rms_norm`: `x / √(mean(x²) + eps) · weight`, no mean
    /// subtracted and no bias; `weight` has the normalised shape (or broadcasts to it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `dims` is 0 or exceeds the rank; [`Error::Broadcast`]
    /// when the weight does not fit.
    #[track_caller]
    pub fn rms_norm(self, dims: usize, weight: Option<Self>, eps: f64) -> Result<Self> {
        let r = self.rank();
        if dims == 0 || dims > r {
            return Err(Error::invalid(
                "rms_norm",
                format!("cannot normalise over the last {dims} axes"),
                &self.shape(),
            ));
        }
        let axes: Vec<isize> = (r - dims..r).map(|a| a as isize).collect();
        let ms = self.square().mean_axes(&axes, true)?;
        let y = self.mul(ms.add_scalar(T::of(eps)).rsqrt())?;
        match weight {
            Some(w) => y.mul(w),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn softmax_on_literals_is_finite_for_huge_logits() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![0.0, 2f64.ln(), 1000.0, 1000.0], [2, 2]).unwrap());
        // softmax([0, ln 2]) = [1/3, 2/3]; huge equal logits stay finite: [1/2, 1/2]
        let s = x.softmax(-1).unwrap().value().to_vec();
        assert!((s[0] - 1.0 / 3.0).abs() < 1e-15 && (s[1] - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!((s[2], s[3]), (0.5, 0.5));
        let ls = x.log_softmax(-1).unwrap().value().to_vec();
        assert!((ls[1] - (2.0f64 / 3.0).ln()).abs() < 1e-15);
        assert_eq!(ls[2], -(2f64.ln()));
    }

    #[test]
    fn layer_norm_and_glu_on_literals() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::from_vec(vec![1.0, 3.0], [1, 2]).unwrap());
        // mean 2, biased variance 1: (x - 2)/√(1 + eps)
        let y = x.layer_norm(1, None, None, 0.0).unwrap().value().to_vec();
        assert_eq!(y, vec![-1.0, 1.0]);
        // glu([1, 3]) = 1 · σ(3)
        let g = x.glu(1).unwrap().value().item().unwrap();
        assert_eq!(g, 1.0 / (1.0 + (-3.0f64).exp()));
        assert!(tape
            .constant(Tensor::<f64>::zeros([3]).unwrap())
            .glu(0)
            .is_err());
    }
}
