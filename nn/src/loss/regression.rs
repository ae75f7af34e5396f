//! Regression losses of `d = input - target`: MSE, L1, smooth L1 and Huber. Both input and
//! target are differentiable (`d/dtarget = -d/dinput`), as in PyTorch.

use autograd::{Float, Tensor, Var};

use super::{check_operands, fail, reduce, Reduction};
use crate::error::Result;

/// Mean squared error, `(x - y)²` (`torch.nn.MSELoss`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MseLoss {
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl MseLoss {
    /// The loss of `input` against `target` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ (PyTorch broadcasts, with a warning) or
    /// the operands are on different tapes.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        check_operands("mse_loss", input, &[("target", target)], true)?;
        Ok(reduce(input.sub(target)?.square(), self.reduction))
    }
}

/// `mean((x - y)²)` (`torch.nn.functional.mse_loss`).
///
/// # Errors
/// As [`MseLoss::forward`].
#[track_caller]
pub fn mse_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    MseLoss::default().forward(input, target)
}

/// Mean absolute error, `|x - y|` (`torch.nn.L1Loss`); subgradient 0 at `x = y`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct L1Loss {
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl L1Loss {
    /// The loss of `input` against `target` (same shape).
    ///
    /// # Errors
    /// As [`MseLoss::forward`].
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        check_operands("l1_loss", input, &[("target", target)], true)?;
        Ok(reduce(input.sub(target)?.abs(), self.reduction))
    }
}

/// `mean(|x - y|)` (`torch.nn.functional.l1_loss`).
///
/// # Errors
/// As [`MseLoss::forward`].
#[track_caller]
pub fn l1_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    L1Loss::default().forward(input, target)
}

/// Smooth L1 (`torch.nn.SmoothL1Loss`): `½d²/β` where `|d| < β`, else `|d| - ½β`; with
/// `β = 0` it is the L1 loss. The gradient is `d/β` clipped to `[-1, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothL1Loss {
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
    /// The threshold β ≥ 0 (PyTorch's default 1).
    pub beta: f64,
}

impl Default for SmoothL1Loss {
    fn default() -> Self {
        SmoothL1Loss {
            reduction: Reduction::Mean,
            beta: 1.0,
        }
    }
}

impl SmoothL1Loss {
    /// The loss of `input` against `target` (same shape).
    ///
    /// # Errors
    /// As [`MseLoss::forward`]; [`crate::Error::Loss`] for a negative or non-finite β.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        check_operands("smooth_l1_loss", input, &[("target", target)], true)?;
        let beta = self.beta;
        if !(beta >= 0.0 && beta.is_finite()) {
            return Err(fail(
                "smooth_l1_loss",
                format!("beta must be finite and non-negative, got {beta}"),
                input.shape(),
            ));
        }
        let d = input.sub(target)?;
        if beta == 0.0 {
            return Ok(reduce(d.abs(), self.reduction));
        }
        let small = below(&d.value(), beta);
        let quad = d.square().mul_scalar(T::of(0.5)).div_scalar(T::of(beta));
        let lin = d.abs().sub_scalar(T::of(0.5 * beta));
        Ok(reduce(quad.where_cond(&small, lin)?, self.reduction))
    }
}

/// Smooth L1 with β = 1, averaged (`torch.nn.functional.smooth_l1_loss`).
///
/// # Errors
/// As [`SmoothL1Loss::forward`].
#[track_caller]
pub fn smooth_l1_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    SmoothL1Loss::default().forward(input, target)
}

/// Huber loss (`torch.nn.HuberLoss`): `½d²` where `|d| < δ`, else `δ(|d| - ½δ)`; the
/// gradient is `d` clipped to `[-δ, δ]` (Huber = δ · smooth L1 with β = δ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HuberLoss {
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
    /// The threshold δ > 0 (PyTorch's default 1).
    pub delta: f64,
}

impl Default for HuberLoss {
    fn default() -> Self {
        HuberLoss {
            reduction: Reduction::Mean,
            delta: 1.0,
        }
    }
}

impl HuberLoss {
    /// The loss of `input` against `target` (same shape).
    ///
    /// # Errors
    /// As [`MseLoss::forward`]; [`crate::Error::Loss`] for `δ <= 0` or a non-finite δ.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        check_operands("huber_loss", input, &[("target", target)], true)?;
        let delta = self.delta;
        super::check_option("huber_loss", "delta", delta, true, input.shape())?;
        let d = input.sub(target)?;
        let small = below(&d.value(), delta);
        let quad = d.square().mul_scalar(T::of(0.5));
        let lin = d
            .abs()
            .sub_scalar(T::of(0.5 * delta))
            .mul_scalar(T::of(delta));
        Ok(reduce(quad.where_cond(&small, lin)?, self.reduction))
    }
}

/// Huber loss with δ = 1, averaged (`torch.nn.functional.huber_loss`).
///
/// # Errors
/// As [`HuberLoss::forward`].
#[track_caller]
pub fn huber_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    HuberLoss::default().forward(input, target)
}

/// 1 where `|d| < threshold`, else 0 (NaN lands in the linear branch, and stays NaN).
fn below<T: Float>(d: &Tensor<T>, threshold: f64) -> Tensor<T> {
    d.map(|v| {
        if v.abs().as_f64() < threshold {
            T::one()
        } else {
            T::zero()
        }
    })
}
