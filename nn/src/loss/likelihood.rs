//! Divergences and likelihoods of distributions: KL divergence, Poisson and Gaussian
//! negative log-likelihoods. Targets are differentiable, as in PyTorch.

use autograd::{Float, Tensor, Var};

use super::{check_operands, check_option, fail, reduce, Reduction};
use crate::error::Result;

/// How [`KlDivLoss`] combines its pointwise terms: PyTorch's reductions plus `batchmean`,
/// the sum divided by the batch size, which is the actual KL divergence per sample (`mean`
/// divides by every element, so it is smaller by the number of classes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KlDivReduction {
    /// The mean over all elements (PyTorch's default).
    #[default]
    Mean,
    /// The sum over all elements divided by the size of the first axis.
    BatchMean,
    /// The sum.
    Sum,
    /// No reduction.
    None,
}

/// The Kullback-Leibler divergence `KL(target ‖ input)` with `input` log-probabilities
/// (`torch.nn.KLDivLoss`): pointwise `t·(ln t - x)` (0 where `t = 0`), or, with
/// `log_target`, `eᵗ·(t - x)` for log-probability targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KlDivLoss {
    /// How the pointwise terms are combined.
    pub reduction: KlDivReduction,
    /// Whether the target holds log-probabilities.
    pub log_target: bool,
}

impl KlDivLoss {
    /// The divergence of log-probabilities `input` from `target` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ, or a probability target is negative
    /// (PyTorch returns NaN there).
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "kl_div";
        check_operands(loss, input, &[("target", target)], true)?;
        let tape = input.tape();
        let per = if self.log_target {
            target.exp().mul(target.sub(input)?)?
        } else {
            let tv = target.value();
            if let Some(i) = tv
                .as_slice()
                .iter()
                .position(|&v| v.is_nan() || v < T::zero())
            {
                return Err(fail(
                    loss,
                    format!("target element {i} is not a probability (negative or NaN)"),
                    input.shape(),
                ));
            }
            // xlogy(t, t): 0 at t = 0, with ln evaluated at 1 there so no 0·inf appears in
            // the value or the gradient.
            let pos = tv.map(|v| if v > T::zero() { T::one() } else { T::zero() });
            let safe = target.where_cond(&pos, tape.constant(Tensor::scalar(T::one())))?;
            target.mul(safe.ln())?.sub(target.mul(input)?)?
        };
        Ok(match self.reduction {
            KlDivReduction::Mean => per.mean(),
            KlDivReduction::Sum => per.sum(),
            KlDivReduction::None => per,
            KlDivReduction::BatchMean => {
                let batch = input.shape().first().copied().unwrap_or(1);
                per.sum().div_scalar(T::of(batch.max(1) as f64))
            }
        })
    }
}

/// The KL divergence of log-probabilities from probabilities, averaged over elements
/// (`torch.nn.functional.kl_div(input, target)`; prefer
/// `KlDivLoss { reduction: KlDivReduction::BatchMean, .. }`, the true divergence).
///
/// # Errors
/// As [`KlDivLoss::forward`].
#[track_caller]
pub fn kl_div<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    KlDivLoss::default().forward(input, target)
}

/// Negative log-likelihood of a Poisson target (`torch.nn.PoissonNLLLoss`): `eˣ - t·x` for
/// a log-rate input (`log_input`), else `x - t·ln(x + eps)`; with `full`, Stirling's
/// approximation of `ln t!`, `t ln t - t + ½ln(2πt)`, is added where `t > 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoissonNllLoss {
    /// Whether the input is the log of the rate (PyTorch's default `true`).
    pub log_input: bool,
    /// Add the Stirling term (default `false`).
    pub full: bool,
    /// Keeps `ln(x + eps)` finite at a zero rate when `log_input` is false (default 1e-8).
    pub eps: f64,
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl Default for PoissonNllLoss {
    fn default() -> Self {
        PoissonNllLoss {
            log_input: true,
            full: false,
            eps: 1e-8,
            reduction: Reduction::Mean,
        }
    }
}

impl PoissonNllLoss {
    /// The loss of rates (or log-rates) `input` against counts `target` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ or eps is not finite.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "poisson_nll_loss";
        check_operands(loss, input, &[("target", target)], true)?;
        check_option(loss, "eps", self.eps, false, input.shape())?;
        let mut per = if self.log_input {
            input.exp().sub(target.mul(input)?)?
        } else {
            input.sub(target.mul(input.add_scalar(T::of(self.eps)).ln())?)?
        };
        if self.full {
            let tape = input.tape();
            let big = target
                .value()
                .map(|v| if v > T::one() { T::one() } else { T::zero() });
            // Evaluated at 2 where t <= 1, so ln never sees 0 or a negative count.
            let t = target.where_cond(&big, tape.constant(Tensor::scalar(T::of(2.0))))?;
            let two_pi = T::of(2.0 * std::f64::consts::PI);
            let stirling = t
                .mul(t.ln())?
                .sub(t)?
                .add(t.mul_scalar(two_pi).ln().mul_scalar(T::of(0.5)))?;
            let zero = tape.constant(Tensor::scalar(T::zero()));
            per = per.add(stirling.where_cond(&big, zero)?)?;
        }
        Ok(reduce(per, self.reduction))
    }
}

/// Mean Poisson negative log-likelihood of log-rates
/// (`torch.nn.functional.poisson_nll_loss(input, target)`).
///
/// # Errors
/// As [`PoissonNllLoss::forward`].
#[track_caller]
pub fn poisson_nll_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    PoissonNllLoss::default().forward(input, target)
}

/// Negative log-likelihood of a Gaussian target with predicted mean and variance
/// (`torch.nn.GaussianNLLLoss`): `½(ln v + (x - t)²/v)`, plus `½ln(2π)` with `full`. The
/// variance is clamped at `eps` for the value but not for the gradient (PyTorch clamps it
/// in place under `no_grad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianNllLoss {
    /// Add the constant `½ln(2π)` (default `false`).
    pub full: bool,
    /// Lower clamp of the variance (default 1e-6).
    pub eps: f64,
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl Default for GaussianNllLoss {
    fn default() -> Self {
        GaussianNllLoss {
            full: false,
            eps: 1e-6,
            reduction: Reduction::Mean,
        }
    }
}

impl GaussianNllLoss {
    /// The loss of means `input` against `target` (same shape) with variances `var`: of
    /// the input's shape (heteroscedastic), or with the last axis 1 or missing (one
    /// variance per sample, broadcast).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes do not fit, a variance is negative or NaN,
    /// or eps is not positive.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
        var: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "gaussian_nll_loss";
        check_operands(loss, input, &[("target", target)], true)?;
        check_operands(loss, input, &[("var", var)], false)?;
        let s = input.shape();
        check_option(loss, "eps", self.eps, true, s.clone())?;
        let vs = var.shape();
        let var = if vs == s {
            var
        } else if s.rank() >= 1 && vs.dims() == &s[..s.rank() - 1] {
            var.unsqueeze(-1)?
        } else if s.rank() >= 1
            && vs.rank() == s.rank()
            && vs[..vs.rank() - 1] == s[..s.rank() - 1]
            && vs[vs.rank() - 1] == 1
        {
            var
        } else {
            return Err(fail(loss, format!("var has an incorrect shape {vs}"), s));
        };
        let vv = var.value();
        if let Some(i) = vv
            .as_slice()
            .iter()
            .position(|&v| v.is_nan() || v < T::zero())
        {
            return Err(fail(loss, format!("var element {i} is negative or NaN"), s));
        }
        // The clamped value with the identity's gradient: var + (clamp(var) - var), the
        // difference a constant.
        let eps = T::of(self.eps);
        let lift = vv.map(|v| v.max(eps) - v);
        let var = var.add(input.tape().constant(lift))?;
        let d2 = input.sub(target)?.square();
        let mut per = var.ln().add(d2.div(var)?)?.mul_scalar(T::of(0.5));
        if self.full {
            per = per.add_scalar(T::of(0.5 * (2.0 * std::f64::consts::PI).ln()));
        }
        Ok(reduce(per, self.reduction))
    }
}

/// Mean Gaussian negative log-likelihood
/// (`torch.nn.functional.gaussian_nll_loss(input, target, var)`).
///
/// # Errors
/// As [`GaussianNllLoss::forward`].
#[track_caller]
pub fn gaussian_nll_loss<'t, T: Float>(
    input: Var<'t, T>,
    target: Var<'t, T>,
    var: Var<'t, T>,
) -> Result<Var<'t, T>> {
    GaussianNllLoss::default().forward(input, target, var)
}
