//! Losses over class scores: cross-entropy (class-index and probability targets, class
//! weights, `ignore_index`, label smoothing), negative log-likelihood, and the multi-class
//! margin loss.
//!
//! Scores are `(N, C)`, `(C)` for a single sample, or `(N, C, d1, ..)` with one target per
//! position (`N·d1·..` targets, row-major, as PyTorch's `(N, d1, ..)` target tensor).

use autograd::{Float, Shape, Tensor, Var};

use super::{check_operands, fail, Reduction};
use crate::error::Result;

/// An integer type class targets can be given in: `usize`, or a signed type, which can also
/// hold PyTorch's default `ignore_index` of `-100`.
pub trait ClassIndex: Copy {
    /// The value as an `i64`, `None` when it does not fit.
    fn to_i64(self) -> Option<i64>;
}

macro_rules! class_index {
    ($($t:ty),*) => {$(
        impl ClassIndex for $t {
            fn to_i64(self) -> Option<i64> {
                i64::try_from(self).ok()
            }
        }
    )*};
}
class_index!(usize, u64, u32, u16, u8, isize, i64, i32, i16, i8);

/// The scores viewed as `(N, C, rest)`, their loss shape (the scores' without the class
/// axis), and the validated targets.
struct Classes {
    n: usize,
    c: usize,
    rest: usize,
    loss_shape: Shape,
    /// `Some(class)` per position, `None` where ignored.
    targets: Vec<Option<usize>>,
}

#[track_caller]
fn classes<T: Float, I: ClassIndex>(
    loss: &'static str,
    x: Var<'_, T>,
    targets: &[I],
    weight: Option<&Tensor<T>>,
    ignore_index: i64,
) -> Result<Classes> {
    let s = x.shape();
    if s.rank() == 0 {
        return Err(fail(loss, "scores need a class axis", s));
    }
    let (n, c, rest) = if s.rank() == 1 {
        (1, s[0], 1)
    } else {
        (s[0], s[1], s[2..].iter().product())
    };
    let loss_shape: Shape = if s.rank() == 1 {
        Shape::scalar()
    } else {
        s.iter()
            .enumerate()
            .filter(|&(i, _)| i != 1)
            .map(|(_, &d)| d)
            .collect()
    };
    if targets.len() != n * rest {
        return Err(fail(
            loss,
            format!(
                "{} targets for scores that need {} (one per position of shape {loss_shape})",
                targets.len(),
                n * rest
            ),
            s,
        ));
    }
    if let Some(w) = weight {
        if w.dims() != [c] {
            return Err(fail(
                loss,
                format!("the class weight has shape {}, not [{c}]", w.shape()),
                s,
            ));
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (i, &t) in targets.iter().enumerate() {
        let v = t.to_i64();
        if v == Some(ignore_index) {
            out.push(None);
            continue;
        }
        match v.and_then(|v| usize::try_from(v).ok()).filter(|&k| k < c) {
            Some(k) => out.push(Some(k)),
            None => {
                let shown = v.map_or_else(|| "out of i64 range".to_string(), |v| v.to_string());
                return Err(fail(
                    loss,
                    format!("target {i} is class {shown}, out of range for {c} classes"),
                    s,
                ));
            }
        }
    }
    Ok(Classes {
        n,
        c,
        rest,
        loss_shape,
        targets: out,
    })
}

/// `-w[t]·logp[t]` per position (0 where ignored), plus `ε/C`-weighted label smoothing,
/// reduced as PyTorch does: `mean` divides each term by the total weight of the counted
/// targets. When nothing is counted (every target ignored, or their weights sum to 0) the
/// `mean` is the sum itself (0 when all are ignored), where PyTorch returns NaN.
#[track_caller]
fn weighted_nll<'t, T: Float>(
    logp: Var<'t, T>,
    cl: &Classes,
    weight: Option<&Tensor<T>>,
    smoothing: f64,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    let (n, c, rest) = (cl.n, cl.c, cl.rest);
    let tape = logp.tape();
    let scores = logp.reshape([n, c, rest])?;
    let picks: Vec<usize> = cl.targets.iter().map(|t| t.unwrap_or(0)).collect();
    let picked = scores.gather(1, &picks, [n, 1, rest])?.reshape([n, rest])?;
    let w_of = |k: usize| weight.map_or(T::one(), |w| w.as_slice()[k]);
    let counted = Tensor::from_fn([n, rest], |p| {
        if cl.targets[p].is_some() {
            T::one()
        } else {
            T::zero()
        }
    })?;
    let wt = Tensor::from_fn([n, rest], |p| cl.targets[p].map_or(T::zero(), w_of))?;
    let zero = tape.constant(Tensor::scalar(T::zero()));
    // where, not a product with 0: an ignored row with non-finite scores stays out of it.
    let nll = picked
        .mul(tape.constant(wt.clone()))?
        .neg()
        .where_cond(&counted, zero)?;
    let total = wt.as_slice().iter().fold(T::zero(), |a, &b| a + b);
    let denom = if total == T::zero() { T::one() } else { total };
    let nll_red = reduce_classes(nll, reduction, denom, &cl.loss_shape)?;
    if smoothing == 0.0 {
        return Ok(nll_red);
    }
    // -Σ_c w[c]·logp[c] per position, as PyTorch's label smoothing term.
    let weighted = match weight {
        Some(w) => scores.mul(tape.constant(w.reshape([1, c, 1])?))?,
        None => scores,
    };
    let smooth = weighted
        .sum_axes(&[1], false)?
        .neg()
        .where_cond(&counted, zero)?;
    let smooth_red = reduce_classes(smooth, reduction, denom, &cl.loss_shape)?;
    Ok(nll_red
        .mul_scalar(T::of(1.0 - smoothing))
        .add(smooth_red.mul_scalar(T::of(smoothing / c as f64)))?)
}

/// `mean` as the sum over `denom`, `none` in the loss shape.
#[track_caller]
fn reduce_classes<'t, T: Float>(
    v: Var<'t, T>,
    reduction: Reduction,
    denom: T,
    shape: &Shape,
) -> Result<Var<'t, T>> {
    Ok(match reduction {
        Reduction::Mean => v.sum().div_scalar(denom),
        Reduction::Sum => v.sum(),
        Reduction::None => v.reshape(shape.clone())?,
    })
}

/// Cross-entropy from raw scores (logits), `torch.nn.CrossEntropyLoss`:
/// `-w[t]·log softmax(x)[t]` per sample, with optional class weights, an ignored class
/// value, and label smoothing; or, with [`CrossEntropyLoss::forward_probs`], against a
/// target distribution. The softmax is taken in log space around the (detached) maximum, so
/// logits of any magnitude give finite values and gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyLoss<T: Float> {
    /// A weight per class, shape `[C]` (none: all 1).
    pub weight: Option<Tensor<T>>,
    /// Targets equal to this are skipped (no loss, no gradient, not counted by `mean`);
    /// PyTorch's default `-100` can only be met by signed targets.
    pub ignore_index: i64,
    /// ε in `[0, 1]`: the target becomes `(1 - ε)·onehot + ε/C`.
    pub label_smoothing: f64,
    /// How the per-sample losses are combined; `mean` divides by the summed weights of the
    /// counted targets (their number without weights).
    pub reduction: Reduction,
}

impl<T: Float> Default for CrossEntropyLoss<T> {
    fn default() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

impl<T: Float> CrossEntropyLoss<T> {
    /// The loss of scores `input` against class indices: per position
    /// `(1 - ε)·w[t]·(-logp[t]) + (ε/C)·Σ_c w[c]·(-logp[c])`.
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when `input` has no class axis, the number of targets does
    /// not match, a target is out of range (and not `ignore_index`), the weight is not
    /// `[C]`, or the smoothing is outside `[0, 1]`.
    #[track_caller]
    pub fn forward<'t, I: ClassIndex>(
        &self,
        input: Var<'t, T>,
        target: &[I],
    ) -> Result<Var<'t, T>> {
        self.check_smoothing(input)?;
        let cl = classes(
            "cross_entropy",
            input,
            target,
            self.weight.as_ref(),
            self.ignore_index,
        )?;
        let axis = if input.rank() == 1 { 0 } else { 1 };
        let logp = input.log_softmax(axis)?;
        weighted_nll(
            logp,
            &cl,
            self.weight.as_ref(),
            self.label_smoothing,
            self.reduction,
        )
    }

    /// The loss of scores `input` against probability targets of the same shape (soft
    /// labels): per sample `-Σ_c w[c]·t[c]·logp[c]`, with `t` first smoothed to
    /// `(1 - ε)·t + ε/C`; `mean` divides by the number of samples (weights never enter the
    /// denominator). The target is differentiable (`-logp` times the incoming gradient).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ, `input` has no class axis, the weight
    /// is not `[C]`, the smoothing is outside `[0, 1]`, or `ignore_index` is set (to
    /// anything but a negative value, as in PyTorch).
    #[track_caller]
    pub fn forward_probs<'t>(&self, input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
        let loss = "cross_entropy";
        self.check_smoothing(input)?;
        check_operands(loss, input, &[("target", target)], true)?;
        let s = input.shape();
        if s.rank() == 0 {
            return Err(fail(loss, "scores need a class axis", s));
        }
        if self.ignore_index >= 0 {
            return Err(fail(
                loss,
                "ignore_index cannot apply to probability targets",
                s,
            ));
        }
        let axis = if s.rank() == 1 { 0 } else { 1 };
        let c = s[axis];
        let logp = input.log_softmax(axis as isize)?;
        let eps = self.label_smoothing;
        let t = if eps > 0.0 {
            target
                .mul_scalar(T::of(1.0 - eps))
                .add_scalar(T::of(eps / c as f64))
        } else {
            target
        };
        let mut prod = logp.mul(t)?;
        if let Some(w) = &self.weight {
            if w.dims() != [c] {
                return Err(fail(
                    loss,
                    format!("the class weight has shape {}, not [{c}]", w.shape()),
                    s,
                ));
            }
            let mut wd = vec![1; s.rank()];
            wd[axis] = c;
            prod = prod.mul(input.tape().constant(w.reshape(wd)?))?;
        }
        Ok(match self.reduction {
            Reduction::Mean => {
                let count = s.numel() / c.max(1);
                prod.sum().neg().div_scalar(T::of(count as f64))
            }
            Reduction::Sum => prod.sum().neg(),
            Reduction::None => prod.sum_axes(&[axis as isize], false)?.neg(),
        })
    }

    #[track_caller]
    fn check_smoothing(&self, input: Var<'_, T>) -> Result<()> {
        let e = self.label_smoothing;
        if !(0.0..=1.0).contains(&e) {
            return Err(fail(
                "cross_entropy",
                format!("label_smoothing must be in [0, 1], got {e}"),
                input.shape(),
            ));
        }
        Ok(())
    }
}

/// Mean cross-entropy of logits against class indices
/// (`torch.nn.functional.cross_entropy(input, target)`).
///
/// # Errors
/// As [`CrossEntropyLoss::forward`].
#[track_caller]
pub fn cross_entropy<'t, T: Float, I: ClassIndex>(
    input: Var<'t, T>,
    target: &[I],
) -> Result<Var<'t, T>> {
    CrossEntropyLoss::default().forward(input, target)
}

/// Negative log-likelihood of log-probabilities (`torch.nn.NLLLoss`): `-w[t]·x[t]` per
/// sample, with the class weights and `ignore_index` of [`CrossEntropyLoss`].
#[derive(Clone, Debug, PartialEq)]
pub struct NllLoss<T: Float> {
    /// A weight per class, shape `[C]` (none: all 1).
    pub weight: Option<Tensor<T>>,
    /// Targets equal to this are skipped (PyTorch's default `-100`).
    pub ignore_index: i64,
    /// How the per-sample losses are combined; `mean` divides by the summed weights of the
    /// counted targets.
    pub reduction: Reduction,
}

impl<T: Float> Default for NllLoss<T> {
    fn default() -> Self {
        NllLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }
}

impl<T: Float> NllLoss<T> {
    /// The loss of log-probabilities `input` (`(N, C)`, `(C)` or `(N, C, d1, ..)`) at class
    /// indices `target`.
    ///
    /// # Errors
    /// As [`CrossEntropyLoss::forward`].
    #[track_caller]
    pub fn forward<'t, I: ClassIndex>(
        &self,
        input: Var<'t, T>,
        target: &[I],
    ) -> Result<Var<'t, T>> {
        let cl = classes(
            "nll_loss",
            input,
            target,
            self.weight.as_ref(),
            self.ignore_index,
        )?;
        weighted_nll(input, &cl, self.weight.as_ref(), 0.0, self.reduction)
    }
}

/// Mean negative log-likelihood (`torch.nn.functional.nll_loss(input, target)`).
///
/// # Errors
/// As [`NllLoss::forward`].
#[track_caller]
pub fn nll_loss<'t, T: Float, I: ClassIndex>(
    input: Var<'t, T>,
    target: &[I],
) -> Result<Var<'t, T>> {
    NllLoss::default().forward(input, target)
}

/// The multi-class margin loss (`torch.nn.MultiMarginLoss`): per sample
/// `Σ_{i≠t} w[t]·max(0, margin - x[t] + x[i])ᵖ / C` for scores `(N, C)` or `(C)`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiMarginLoss<T: Float> {
    /// The power p: 1 or 2.
    pub p: u32,
    /// The margin (PyTorch's default 1).
    pub margin: f64,
    /// A weight per class, applied by the target's class (none: all 1).
    pub weight: Option<Tensor<T>>,
    /// How the per-sample losses are combined.
    pub reduction: Reduction,
}

impl<T: Float> Default for MultiMarginLoss<T> {
    fn default() -> Self {
        MultiMarginLoss {
            p: 1,
            margin: 1.0,
            weight: None,
            reduction: Reduction::Mean,
        }
    }
}

impl<T: Float> MultiMarginLoss<T> {
    /// The loss of scores `input` at class indices `target`.
    ///
    /// # Errors
    /// [`crate::Error::Loss`] for scores that are not `(N, C)` or `(C)`, a wrong target
    /// count or class, a weight that is not `[C]`, `p` other than 1 or 2, or a
    /// non-finite margin.
    #[track_caller]
    pub fn forward<'t, I: ClassIndex>(
        &self,
        input: Var<'t, T>,
        target: &[I],
    ) -> Result<Var<'t, T>> {
        let loss = "multi_margin_loss";
        let s = input.shape();
        if s.rank() > 2 {
            return Err(fail(loss, "scores must be (N, C) or (C)", s));
        }
        if self.p != 1 && self.p != 2 {
            return Err(fail(loss, format!("p must be 1 or 2, got {}", self.p), s));
        }
        super::check_option(loss, "margin", self.margin, false, s.clone())?;
        // No class value is ignored here: i64::MIN cannot be a target that fits a usize.
        let cl = classes(loss, input, target, self.weight.as_ref(), i64::MIN)?;
        let (n, c) = (cl.n, cl.c);
        let x = input.reshape([n, c])?;
        let t: Vec<usize> = cl.targets.iter().map(|t| t.unwrap_or(0)).collect();
        let xt = x.gather(1, &t, [n, 1])?;
        let mut m = x.sub(xt)?.add_scalar(T::of(self.margin)).relu();
        if self.p == 2 {
            m = m.square();
        }
        // Drop the i = t term (it is max(0, margin), not a violation), and weight by class.
        let w_of = |k: usize| self.weight.as_ref().map_or(T::one(), |w| w.as_slice()[k]);
        let keep = Tensor::from_fn([n, c], |k| {
            if t[k / c] == k % c {
                T::zero()
            } else {
                w_of(t[k / c])
            }
        })?;
        let per = m
            .mul(input.tape().constant(keep))?
            .sum_axes(&[1], false)?
            .div_scalar(T::of(c as f64));
        Ok(match self.reduction {
            Reduction::None => per.reshape(cl.loss_shape)?,
            r => super::reduce(per, r),
        })
    }
}

/// The multi-class margin loss with p = 1, margin 1, averaged
/// (`torch.nn.functional.multi_margin_loss(input, target)`).
///
/// # Errors
/// As [`MultiMarginLoss::forward`].
#[track_caller]
pub fn multi_margin_loss<'t, T: Float, I: ClassIndex>(
    input: Var<'t, T>,
    target: &[I],
) -> Result<Var<'t, T>> {
    MultiMarginLoss::default().forward(input, target)
}
