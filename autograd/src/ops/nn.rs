//! Numerically stable compositions used by networks: `softmax`, `log_softmax`, the losses
//! `cross_entropy`, `nll`, `mse`, `bce_with_logits`, and `layer_norm`.
//!
//! Each is a composition of primitive ops (so its gradient and its gradient's gradient come
//! from theirs); stability comes from subtracting a detached maximum, never from a fused
//! backward.

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape};
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

    /// Mean negative log-likelihood: `-mean_n self[n, target[n]]` for log-probabilities
    /// `self: [N, C]` and class indices `targets: [N]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `self` is not 2-d, the target count differs from `N`,
    /// or a class index is out of range.
    #[track_caller]
    pub fn nll(self, targets: &[usize]) -> Result<Self> {
        let s = self.shape();
        if s.rank() != 2 || targets.len() != s[0] {
            return Err(Error::invalid(
                "nll",
                format!(
                    "expected [N, C] scores and N targets, got {} targets",
                    targets.len()
                ),
                &s,
            ));
        }
        let c = s[1];
        if let Some(&bad) = targets.iter().find(|&&t| t >= c) {
            return Err(Error::invalid(
                "nll",
                format!("class index {bad} out of range for {c} classes"),
                &s,
            ));
        }
        let idx = targets
            .iter()
            .enumerate()
            .map(|(n, &t)| n * c + t)
            .collect();
        let picked = self.gather_named("pick_target", idx, Shape::from([targets.len()]), T::zero());
        Ok(picked.mean().neg())
    }

    /// Cross-entropy from raw logits `self: [N, C]` and class indices (mean over `N`), as
    /// `torch.nn.functional.cross_entropy`; stable for logits of any magnitude.
    ///
    /// # Errors
    /// As [`Var::nll`].
    #[track_caller]
    pub fn cross_entropy(self, targets: &[usize]) -> Result<Self> {
        if self.rank() != 2 {
            return Err(Error::invalid(
                "cross_entropy",
                "expected [N, C] logits",
                &self.shape(),
            ));
        }
        self.log_softmax(-1)?.nll(targets)
    }

    /// Mean squared error `mean((self - target)²)`; both sides are differentiable.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ.
    #[track_caller]
    pub fn mse(self, target: Self) -> Result<Self> {
        same_shape("mse", self, target)?;
        Ok(self.sub(target)?.square().mean())
    }

    /// Binary cross-entropy from logits, mean over elements:
    /// `mean(softplus(x) - x·y)`, which equals `-[y ln σ(x) + (1-y) ln(1-σ(x))]` and stays
    /// finite for logits of any size. `target` holds probabilities in `[0, 1]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ.
    #[track_caller]
    pub fn bce_with_logits(self, target: Self) -> Result<Self> {
        same_shape("bce_with_logits", self, target)?;
        let sp = self.softplus(T::one(), T::infinity());
        Ok(sp.sub(self.mul(target)?)?.mean())
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
}

#[track_caller]
fn same_shape<T: Float>(op: &'static str, a: Var<'_, T>, b: Var<'_, T>) -> Result<()> {
    let (sa, sb) = (a.shape(), b.shape());
    if sa != sb {
        return Err(Error::ShapeMismatch {
            op,
            expected: sa,
            got: sb,
            location: std::panic::Location::caller(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn softmax_and_cross_entropy_on_literals() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![0.0, 2f64.ln(), 1000.0, 1000.0], [2, 2]).unwrap());
        // softmax([0, ln 2]) = [1/3, 2/3]; huge equal logits stay finite: [1/2, 1/2]
        let s = x.softmax(-1).unwrap().value().to_vec();
        assert!((s[0] - 1.0 / 3.0).abs() < 1e-15 && (s[1] - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!((s[2], s[3]), (0.5, 0.5));
        // cross-entropy with targets [1, 0]: mean(-ln(2/3), -ln(1/2))
        let ce = x.cross_entropy(&[1, 0]).unwrap().value().item().unwrap();
        assert!((ce - 0.5 * (1.5f64.ln() + 2f64.ln())).abs() < 1e-15, "{ce}");
        // its gradient: (softmax - onehot)/N
        let g = tape.grad(x.cross_entropy(&[1, 0]).unwrap(), &[x]).unwrap()[0]
            .value()
            .to_vec();
        assert!((g[0] - 1.0 / 6.0).abs() < 1e-15 && (g[1] + 1.0 / 6.0).abs() < 1e-15);
        assert!((g[2] + 0.25).abs() < 1e-15 && (g[3] - 0.25).abs() < 1e-15);
    }

    #[test]
    fn layer_norm_and_losses_on_literals() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::from_vec(vec![1.0, 3.0], [1, 2]).unwrap());
        // mean 2, biased variance 1: (x - 2)/√(1 + eps)
        let y = x.layer_norm(1, None, None, 0.0).unwrap().value().to_vec();
        assert_eq!(y, vec![-1.0, 1.0]);
        let t = tape.constant(Tensor::from_vec(vec![0.0, 1.0], [1, 2]).unwrap());
        assert_eq!(x.mse(t).unwrap().value().item().unwrap(), 2.5);
        // bce_with_logits(0, y) = ln 2 for any y
        let z = tape.constant(Tensor::zeros([1, 2]).unwrap());
        assert!((z.bce_with_logits(t).unwrap().value().item().unwrap() - 2f64.ln()).abs() < 1e-15);
    }
}
