//! Losses for binary and multi-label targets: BCE on probabilities, BCE from logits (with
//! `pos_weight`), the soft margin and multi-label soft margin losses, and the binary hinge.
//!
//! Everything that takes logits is written with `softplus`/`logsigmoid`, which never
//! evaluate `exp` of a large positive number, so logits of magnitude 1e4 stay finite.

use autograd::{BackwardCx, Float, Op, Tensor, Var};

use super::{check_operands, check_signs, fail, reduce, Reduction};
use crate::error::Result;

/// Checks that an optional constant weight broadcasts to `x`'s shape.
#[track_caller]
fn check_weight<T: Float>(
    loss: &'static str,
    name: &str,
    w: Option<&Tensor<T>>,
    x: Var<'_, T>,
) -> Result<()> {
    let s = x.shape();
    if let Some(w) = w {
        if !matches!(w.shape().broadcast(&s, loss), Ok(b) if b == s) {
            return Err(fail(
                loss,
                format!(
                    "{name} of shape {} does not broadcast to the input",
                    w.shape()
                ),
                s,
            ));
        }
    }
    Ok(())
}

/// `v · w` for an optional constant weight.
#[track_caller]
fn weighted<'t, T: Float>(v: Var<'t, T>, w: Option<&Tensor<T>>) -> Result<Var<'t, T>> {
    Ok(match w {
        Some(w) => v.mul(v.tape().constant(w.clone()))?,
        None => v,
    })
}

/// Binary cross-entropy of probabilities (`torch.nn.BCELoss`):
/// `-w·[y ln p + (1-y) ln(1-p)]`, each log clamped at -100 as PyTorch does, so `p = 0` or
/// `1` gives a finite loss. The gradient in `p` is PyTorch's
/// `(p - y)/max(p(1-p), 1e-12)`, finite everywhere; the target is differentiable too
/// (`ln(1-p) - ln p`, clamped), to any order.
///
/// Prefer [`BceWithLogitsLoss`]: a sigmoid followed by this loss has already lost the
/// precision near 0 and 1 that the logits carried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BceLoss<T: Float> {
    /// A weight per element, broadcast to the input (none: all 1).
    pub weight: Option<Tensor<T>>,
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl<T: Float> BceLoss<T> {
    /// The loss of probabilities `input` against targets in `[0, 1]` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ, the weight does not broadcast, or a
    /// probability or target lies outside `[0, 1]`.
    #[track_caller]
    pub fn forward<'t>(&self, input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
        let loss = "binary_cross_entropy";
        check_operands(loss, input, &[("target", target)], true)?;
        check_weight(loss, "weight", self.weight.as_ref(), input)?;
        for (what, v) in [("input", input), ("target", target)] {
            if let Some(i) = v
                .value()
                .as_slice()
                .iter()
                .position(|&v| !(v >= T::zero() && v <= T::one()))
            {
                return Err(fail(
                    loss,
                    format!("{what} element {i} is not in [0, 1]"),
                    input.shape(),
                ));
            }
        }
        let per = input.tape().apply(BinaryCrossEntropy, &[input, target])?;
        Ok(reduce(weighted(per, self.weight.as_ref())?, self.reduction))
    }
}

/// Mean binary cross-entropy of probabilities
/// (`torch.nn.functional.binary_cross_entropy(input, target)`).
///
/// # Errors
/// As [`BceLoss::forward`].
#[track_caller]
pub fn binary_cross_entropy<'t, T: Float>(
    input: Var<'t, T>,
    target: Var<'t, T>,
) -> Result<Var<'t, T>> {
    BceLoss::default().forward(input, target)
}

/// Elementwise BCE on probabilities with PyTorch's clamped logs and clamped backward.
#[derive(Debug)]
struct BinaryCrossEntropy;

fn clamped_logs<T: Float>(p: T) -> (T, T) {
    let floor = T::of(-100.0);
    (p.ln().max(floor), (-p).ln_1p().max(floor))
}

/// `max(ln p, -100)` (`max(ln(1 - p), -100)` with `complement`) as a `Var` whose gradient
/// is `1/p` (`-1/(1 - p)`) where the log is above the clamp and exactly 0 where it is
/// clamped, with no infinity in between.
#[track_caller]
fn clamped_log<'t, T: Float>(p: Var<'t, T>, complement: bool) -> autograd::Result<Var<'t, T>> {
    let tape = p.tape();
    let floor = T::of(-100.0);
    let pv = p.value();
    let live = pv.map(|v| {
        let l = if complement { (-v).ln_1p() } else { v.ln() };
        if l > floor {
            T::one()
        } else {
            T::zero()
        }
    });
    // Where clamped, evaluate the log at a harmless point (ln 1 = ln(1 - 0) = 0) instead.
    let harmless = tape.constant(Tensor::scalar(if complement {
        T::zero()
    } else {
        T::one()
    }));
    let safe = p.where_cond(&live, harmless)?;
    let log = if complement {
        safe.neg().log1p()
    } else {
        safe.ln()
    };
    log.where_cond(&live, tape.constant(Tensor::scalar(floor)))
}

impl<T: Float> Op<T> for BinaryCrossEntropy {
    fn name(&self) -> &'static str {
        "binary_cross_entropy"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> autograd::Result<Tensor<T>> {
        x[0].zip_with(x[1], "binary_cross_entropy", |p, y| {
            let (lp, l1p) = clamped_logs(p);
            (y - T::one()) * l1p - y * lp
        })
    }
    fn backward<'t>(
        &self,
        cx: &BackwardCx<'t, '_, T>,
    ) -> autograd::Result<Vec<Option<Var<'t, T>>>> {
        let (p, y, g) = (cx.input(0), cx.input(1), cx.grad());
        // d/dp = (p - y)/(p(1 - p)); PyTorch floors the denominator at 1e-12 so the
        // gradient stays finite at p ∈ {0, 1}, where ln's own derivative is infinite.
        let denom = p
            .mul(p.rsub_scalar(T::one()))?
            .clamp(T::of(1e-12), T::infinity());
        let gp = g.mul(p.sub(y)?.div(denom)?)?;
        let dy = clamped_log(p, true)?.sub(clamped_log(p, false)?)?;
        let gy = g.mul(dy)?;
        Ok(vec![Some(gp), Some(gy)])
    }
}

/// Binary cross-entropy from logits (`torch.nn.BCEWithLogitsLoss`):
/// `(1 - y)·x + (1 + (pw - 1)·y)·softplus(-x)`, which is
/// `-w·[pw·y ln σ(x) + (1-y) ln(1-σ(x))]` written so that no `exp` overflows: finite for
/// logits of any size. The gradient in `x` is `σ(x)(1 + (pw-1)y) - pw·y`; the target is
/// differentiable (`-x + (pw - 1)·softplus(-x)`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BceWithLogitsLoss<T: Float> {
    /// A weight per element, broadcast to the input (none: all 1).
    pub weight: Option<Tensor<T>>,
    /// A weight on the positive term, broadcast to the input; one per class (the last
    /// axis) trades recall against precision (none: all 1).
    pub pos_weight: Option<Tensor<T>>,
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl<T: Float> BceWithLogitsLoss<T> {
    /// The loss of logits `input` against targets in `[0, 1]` (same shape; soft labels
    /// allowed).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ or a weight does not broadcast.
    #[track_caller]
    pub fn forward<'t>(&self, input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
        let loss = "binary_cross_entropy_with_logits";
        check_operands(loss, input, &[("target", target)], true)?;
        check_weight(loss, "weight", self.weight.as_ref(), input)?;
        check_weight(loss, "pos_weight", self.pos_weight.as_ref(), input)?;
        let tape = input.tape();
        // softplus with an infinite threshold is max(z, 0) + ln(1 + e^{-|z|}): no overflow.
        let sp = input.neg().softplus(T::one(), T::infinity());
        let scaled = match &self.pos_weight {
            Some(pw) => {
                let lw = target
                    .mul(tape.constant(pw.map(|w| w - T::one())))?
                    .add_scalar(T::one());
                lw.mul(sp)?
            }
            None => sp,
        };
        let per = target.rsub_scalar(T::one()).mul(input)?.add(scaled)?;
        Ok(reduce(weighted(per, self.weight.as_ref())?, self.reduction))
    }
}

/// Mean binary cross-entropy from logits
/// (`torch.nn.functional.binary_cross_entropy_with_logits(input, target)`).
///
/// # Errors
/// As [`BceWithLogitsLoss::forward`].
#[track_caller]
pub fn binary_cross_entropy_with_logits<'t, T: Float>(
    input: Var<'t, T>,
    target: Var<'t, T>,
) -> Result<Var<'t, T>> {
    BceWithLogitsLoss::default().forward(input, target)
}

/// The two-class logistic loss `ln(1 + e^{-y·x})` for labels `y = ±1`
/// (`torch.nn.SoftMarginLoss`), computed as `softplus(-y·x)` so it never overflows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SoftMarginLoss {
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl SoftMarginLoss {
    /// The loss of scores `input` against labels `target` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        check_operands("soft_margin_loss", input, &[("target", target)], true)?;
        let per = input.mul(target)?.neg().softplus(T::one(), T::infinity());
        Ok(reduce(per, self.reduction))
    }
}

/// Mean soft margin loss (`torch.nn.functional.soft_margin_loss(input, target)`).
///
/// # Errors
/// As [`SoftMarginLoss::forward`].
#[track_caller]
pub fn soft_margin_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    SoftMarginLoss::default().forward(input, target)
}

/// Multi-label one-versus-all logistic loss (`torch.nn.MultiLabelSoftMarginLoss`): per
/// sample `-(1/C)·Σ_c w[c]·[y ln σ(x) + (1-y) ln σ(-x)]` over the last axis, for scores
/// `(N, C)` or `(C)` and 0/1 targets of the same shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MultiLabelSoftMarginLoss<T: Float> {
    /// A weight per class, broadcast to the input (none: all 1).
    pub weight: Option<Tensor<T>>,
    /// How the per-sample losses are combined.
    pub reduction: Reduction,
}

impl<T: Float> MultiLabelSoftMarginLoss<T> {
    /// The loss of scores `input` against 0/1 `target`s.
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ, the input is not `(N, C)` or `(C)`,
    /// or the weight does not broadcast.
    #[track_caller]
    pub fn forward<'t>(&self, input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
        let loss = "multilabel_soft_margin_loss";
        check_operands(loss, input, &[("target", target)], true)?;
        let s = input.shape();
        if s.rank() == 0 || s.rank() > 2 {
            return Err(fail(loss, "scores must be (N, C) or (C)", s));
        }
        check_weight(loss, "weight", self.weight.as_ref(), input)?;
        let c = s[s.rank() - 1];
        let pos = target.mul(input.logsigmoid())?;
        let neg = target.rsub_scalar(T::one()).mul(input.neg().logsigmoid())?;
        let per = weighted(pos.add(neg)?.neg(), self.weight.as_ref())?;
        let per = per.sum_axes(&[-1], false)?.div_scalar(T::of(c as f64));
        Ok(reduce(per, self.reduction))
    }
}

/// Mean multi-label soft margin loss
/// (`torch.nn.functional.multilabel_soft_margin_loss(input, target)`).
///
/// # Errors
/// As [`MultiLabelSoftMarginLoss::forward`].
#[track_caller]
pub fn multilabel_soft_margin_loss<'t, T: Float>(
    input: Var<'t, T>,
    target: Var<'t, T>,
) -> Result<Var<'t, T>> {
    MultiLabelSoftMarginLoss::default().forward(input, target)
}

/// The binary hinge (SVM) loss `max(0, 1 - y·s)` for scores `s` and labels `y = ±1`;
/// subgradient 0 at the hinge. PyTorch has no class for it (its `HingeEmbeddingLoss` is a
/// different loss, of distances).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HingeLoss {
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl HingeLoss {
    /// The loss of scores against ±1 labels (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ or a label is not ±1.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        scores: Var<'t, T>,
        labels: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        check_operands("hinge_loss", scores, &[("labels", labels)], true)?;
        check_signs("hinge_loss", labels, scores.shape())?;
        Ok(reduce(
            scores.mul(labels)?.rsub_scalar(T::one()).relu(),
            self.reduction,
        ))
    }
}

/// Mean binary hinge loss.
///
/// # Errors
/// As [`HingeLoss::forward`].
#[track_caller]
pub fn hinge_loss<'t, T: Float>(scores: Var<'t, T>, labels: Var<'t, T>) -> Result<Var<'t, T>> {
    HingeLoss::default().forward(scores, labels)
}
