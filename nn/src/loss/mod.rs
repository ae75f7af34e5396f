//! Losses, with PyTorch's definitions, options and reductions, numerically stable for
//! extreme inputs (logits of magnitude 1e4 give finite values and gradients).
//!
//! Every loss is a struct named after its `torch.nn` class, whose public fields are the
//! class's options with PyTorch's names and defaults (`impl Default`), and whose `forward`
//! computes it; a plain function named after its `torch.nn.functional` form runs it with
//! the defaults:
//!
//! ```
//! use autograd::{Tape, Tensor};
//! use nn::loss::{self, CrossEntropyLoss, Reduction};
//!
//! let tape = Tape::<f64>::new();
//! let logits = tape.var(Tensor::from_vec(vec![2.0, -1.0, 0.5, 0.1, 0.3, -0.2], [2, 3])?);
//! let mean = loss::cross_entropy(logits, &[0, 2])?;               // F.cross_entropy(x, y)
//! let smoothed = CrossEntropyLoss {                              // nn.CrossEntropyLoss(..)
//!     label_smoothing: 0.1,
//!     reduction: Reduction::Sum,
//!     ..Default::default()
//! }
//! .forward(logits, &[0, 2])?;
//! assert!(smoothed.item()? > mean.item()?);
//! # Ok::<(), nn::Error>(())
//! ```
//!
//! | struct / function | per element or sample | PyTorch |
//! | --- | --- | --- |
//! | [`MseLoss`] / [`mse_loss`] | `(x - y)²` | `nn.MSELoss` |
//! | [`L1Loss`] / [`l1_loss`] | `\|x - y\|` | `nn.L1Loss` |
//! | [`SmoothL1Loss`] / [`smooth_l1_loss`] | `½d²/β` if `\|d\| < β`, else `\|d\| - ½β` | `nn.SmoothL1Loss` |
//! | [`HuberLoss`] / [`huber_loss`] | `½d²` if `\|d\| < δ`, else `δ(\|d\| - ½δ)` | `nn.HuberLoss` |
//! | [`CrossEntropyLoss`] / [`cross_entropy`] | `-w[t]·log softmax(x)[t]`; weights, `ignore_index`, label smoothing, probability targets | `nn.CrossEntropyLoss` |
//! | [`NllLoss`] / [`nll_loss`] | `-w[t]·x[t]` on log-probabilities | `nn.NLLLoss` |
//! | [`MultiMarginLoss`] / [`multi_margin_loss`] | `Σ_{i≠t} w[t]·max(0, m - x[t] + x[i])ᵖ / C` | `nn.MultiMarginLoss` |
//! | [`BceLoss`] / [`binary_cross_entropy`] | `-[y ln p + (1-y) ln(1-p)]`, logs clamped at -100 | `nn.BCELoss` |
//! | [`BceWithLogitsLoss`] / [`binary_cross_entropy_with_logits`] | `(1-y)x + (1 + (pw-1)y)·softplus(-x)` | `nn.BCEWithLogitsLoss` |
//! | [`SoftMarginLoss`] / [`soft_margin_loss`] | `ln(1 + e^{-y·x})` | `nn.SoftMarginLoss` |
//! | [`MultiLabelSoftMarginLoss`] / [`multilabel_soft_margin_loss`] | `-mean_c[y ln σ(x) + (1-y) ln σ(-x)]` | `nn.MultiLabelSoftMarginLoss` |
//! | [`HingeLoss`] / [`hinge_loss`] | `max(0, 1 - y·s)`, `y = ±1` (the binary SVM loss) | none (gradlab's) |
//! | [`MarginRankingLoss`] / [`margin_ranking_loss`] | `max(0, -y(x1 - x2) + m)` | `nn.MarginRankingLoss` |
//! | [`TripletMarginLoss`] / [`triplet_margin_loss`] | `max(d(a, p) - d(a, n) + m, 0)` | `nn.TripletMarginLoss` |
//! | [`CosineEmbeddingLoss`] / [`cosine_embedding_loss`] | `1 - cos` (y = 1), `max(0, cos - m)` (y = -1) | `nn.CosineEmbeddingLoss` |
//! | [`HingeEmbeddingLoss`] / [`hinge_embedding_loss`] | `x` (y = 1), `max(0, m - x)` (y = -1) | `nn.HingeEmbeddingLoss` |
//! | [`KlDivLoss`] / [`kl_div`] | `t(ln t - x)`, or `eᵗ(t - x)` with log targets; `batchmean` | `nn.KLDivLoss` |
//! | [`PoissonNllLoss`] / [`poisson_nll_loss`] | `eˣ - t·x` (log input) or `x - t ln(x + ε)` | `nn.PoissonNLLLoss` |
//! | [`GaussianNllLoss`] / [`gaussian_nll_loss`] | `½(ln v + (x - t)²/v)` | `nn.GaussianNLLLoss` |
//! | [`CtcLoss`] / [`ctc_loss`] | `-ln Σ_alignments Π p` | `nn.CTCLoss` |
//!
//! Class targets are integer slices (`&[usize]`, or `&[i64]` to use PyTorch's `-100`
//! ignore marker); every other target is a `Var` (use `tape.constant(..)` for data), so the
//! targets PyTorch differentiates are differentiable here too. Where gradlab differs from
//! PyTorch (a typed error where PyTorch returns NaN or silently broadcasts, the gradient
//! convention of CTC) the item's doc says so, and `docs/ops.md` lists it.
//!
//! Every loss is `#[track_caller]`: its errors, and the tape nodes it records, point at the
//! line that called it.

mod binary;
mod class;
mod ctc;
mod embedding;
mod likelihood;
mod regression;

use std::panic::Location;

use autograd::{Float, Shape, Var};

use crate::error::{Error, Result};

pub use binary::{
    binary_cross_entropy, binary_cross_entropy_with_logits, hinge_loss,
    multilabel_soft_margin_loss, soft_margin_loss, BceLoss, BceWithLogitsLoss, HingeLoss,
    MultiLabelSoftMarginLoss, SoftMarginLoss,
};
pub use class::{
    cross_entropy, multi_margin_loss, nll_loss, ClassIndex, CrossEntropyLoss, MultiMarginLoss,
    NllLoss,
};
pub use ctc::{ctc_loss, CtcLoss};
pub use embedding::{
    cosine_embedding_loss, hinge_embedding_loss, margin_ranking_loss, triplet_margin_loss,
    CosineEmbeddingLoss, HingeEmbeddingLoss, MarginRankingLoss, TripletMarginLoss,
};
pub use likelihood::{
    gaussian_nll_loss, kl_div, poisson_nll_loss, GaussianNllLoss, KlDivLoss, KlDivReduction,
    PoissonNllLoss,
};
pub use regression::{
    huber_loss, l1_loss, mse_loss, smooth_l1_loss, HuberLoss, L1Loss, MseLoss, SmoothL1Loss,
};

/// How per-element losses are combined (PyTorch's `reduction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (PyTorch's default); losses that weight their terms divide by the total
    /// weight, and [`CtcLoss`] by the target lengths, as PyTorch does.
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one loss per element (or per sample for class losses).
    None,
}

/// Applies a plain reduction (mean over all elements, sum, or none).
#[track_caller]
pub(crate) fn reduce<T: Float>(v: Var<'_, T>, r: Reduction) -> Var<'_, T> {
    match r {
        Reduction::Mean => v.mean(),
        Reduction::Sum => v.sum(),
        Reduction::None => v,
    }
}

/// A loss error at the caller's line.
#[track_caller]
pub(crate) fn fail(loss: &'static str, reason: impl Into<String>, shape: Shape) -> Error {
    Error::Loss {
        loss,
        reason: reason.into(),
        shape,
        location: Location::caller(),
    }
}

/// Checks that every operand is on `x`'s tape and, when `same_shape`, has `x`'s shape.
/// `names` names the operands after `x`, for the message.
#[track_caller]
pub(crate) fn check_operands<T: Float>(
    loss: &'static str,
    x: Var<'_, T>,
    others: &[(&str, Var<'_, T>)],
    same_shape: bool,
) -> Result<()> {
    let s = x.shape();
    for (name, v) in others {
        if !std::ptr::eq(v.tape(), x.tape()) {
            return Err(fail(loss, format!("{name} belongs to another tape"), s));
        }
        if same_shape && v.shape() != s {
            return Err(fail(
                loss,
                format!("{name} has shape {}, not the input's", v.shape()),
                s,
            ));
        }
    }
    Ok(())
}

/// Checks that an option is finite (and, with `positive`, above 0).
#[track_caller]
pub(crate) fn check_option(
    loss: &'static str,
    name: &str,
    value: f64,
    positive: bool,
    shape: Shape,
) -> Result<()> {
    if !value.is_finite() || (positive && value <= 0.0) {
        let need = if positive { "positive" } else { "finite" };
        return Err(fail(
            loss,
            format!("{name} must be {need}, got {value}"),
            shape,
        ));
    }
    Ok(())
}

/// Checks that every element of a label tensor is `-1` or `1`.
#[track_caller]
pub(crate) fn check_signs<T: Float>(loss: &'static str, y: Var<'_, T>, shape: Shape) -> Result<()> {
    if let Some(i) = y
        .value()
        .as_slice()
        .iter()
        .position(|&v| v != T::one() && v != -T::one())
    {
        return Err(fail(
            loss,
            format!("target element {i} is not -1 or 1"),
            shape,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
