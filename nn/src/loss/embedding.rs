//! Margin losses on pairs and triplets, for ranking and metric learning: margin ranking,
//! triplet margin, cosine embedding and hinge embedding. Labels are `±1` `Var`s (checked);
//! hinges are `clamp_min(.., 0)` as in PyTorch (gradient 1 at exactly 0).

use autograd::{Float, Shape, Tensor, Var};

use super::{check_operands, check_option, check_signs, fail, reduce, Reduction};
use crate::error::Result;

/// 1 where the label is 1, else 0.
fn positives<T: Float>(y: Var<'_, T>) -> Tensor<T> {
    y.value()
        .map(|v| if v == T::one() { T::one() } else { T::zero() })
}

/// `max(0, -y·(x1 - x2) + margin)` (`torch.nn.MarginRankingLoss`): `y = 1` asks for
/// `x1 > x2` by at least the margin, `y = -1` for the reverse.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MarginRankingLoss {
    /// The margin (PyTorch's default 0).
    pub margin: f64,
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl MarginRankingLoss {
    /// The loss of the pairs `(input1, input2)` under labels `target` (all one shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ or the margin is not finite.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input1: Var<'t, T>,
        input2: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "margin_ranking_loss";
        check_operands(
            loss,
            input1,
            &[("input2", input2), ("target", target)],
            true,
        )?;
        check_option(loss, "margin", self.margin, false, input1.shape())?;
        let per = target
            .neg()
            .mul(input1.sub(input2)?)?
            .add_scalar(T::of(self.margin))
            .clamp(T::zero(), T::infinity());
        Ok(reduce(per, self.reduction))
    }
}

/// Mean margin ranking loss with margin 0
/// (`torch.nn.functional.margin_ranking_loss(input1, input2, target)`).
///
/// # Errors
/// As [`MarginRankingLoss::forward`].
#[track_caller]
pub fn margin_ranking_loss<'t, T: Float>(
    input1: Var<'t, T>,
    input2: Var<'t, T>,
    target: Var<'t, T>,
) -> Result<Var<'t, T>> {
    MarginRankingLoss::default().forward(input1, input2, target)
}

/// The triplet loss (`torch.nn.TripletMarginLoss`, Schroff et al. 2015):
/// `max(d(a, p) - d(a, n) + margin, 0)` with `d(x, y) = ‖x - y + eps‖_p` over the last
/// axis (PyTorch's `pairwise_distance`, which adds `eps` to every component).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletMarginLoss {
    /// The margin (PyTorch's default 1).
    pub margin: f64,
    /// The norm's order p > 0 (default 2; `f64::INFINITY` allowed).
    pub p: f64,
    /// Added to each component of the differences (default 1e-6).
    pub eps: f64,
    /// Use `min(d(a, n), d(p, n))` as the negative distance (Balntas et al. 2016).
    pub swap: bool,
    /// How the per-triplet losses are combined.
    pub reduction: Reduction,
}

impl Default for TripletMarginLoss {
    fn default() -> Self {
        TripletMarginLoss {
            margin: 1.0,
            p: 2.0,
            eps: 1e-6,
            swap: false,
            reduction: Reduction::Mean,
        }
    }
}

impl TripletMarginLoss {
    /// The loss of `(anchor, positive, negative)` triplets, `(N, D)` or `(D)`, one shape.
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ or are not `(N, D)`/`(D)`, `p` is not
    /// positive, or the margin or eps is not finite.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        anchor: Var<'t, T>,
        positive: Var<'t, T>,
        negative: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "triplet_margin_loss";
        let ops = [("positive", positive), ("negative", negative)];
        check_operands(loss, anchor, &ops, true)?;
        let s = anchor.shape();
        if s.rank() == 0 || s.rank() > 2 {
            return Err(fail(loss, "inputs must be (N, D) or (D)", s));
        }
        check_option(loss, "margin", self.margin, false, s.clone())?;
        check_option(loss, "eps", self.eps, false, s.clone())?;
        if self.p.is_nan() || self.p <= 0.0 {
            return Err(fail(loss, format!("p must be positive, got {}", self.p), s));
        }
        let d_ap = self.distance(anchor, positive)?;
        let mut d_an = self.distance(anchor, negative)?;
        if self.swap {
            d_an = d_an.minimum(self.distance(positive, negative)?)?;
        }
        let per = d_ap
            .add_scalar(T::of(self.margin))
            .sub(d_an)?
            .clamp(T::zero(), T::infinity());
        Ok(reduce(per, self.reduction))
    }

    #[track_caller]
    fn distance<'t, T: Float>(&self, x: Var<'t, T>, y: Var<'t, T>) -> Result<Var<'t, T>> {
        let d = x.sub(y)?.add_scalar(T::of(self.eps));
        Ok(d.vector_norm(self.p, &[-1], false)?)
    }
}

/// Mean triplet loss with PyTorch's defaults
/// (`torch.nn.functional.triplet_margin_loss(anchor, positive, negative)`).
///
/// # Errors
/// As [`TripletMarginLoss::forward`].
#[track_caller]
pub fn triplet_margin_loss<'t, T: Float>(
    anchor: Var<'t, T>,
    positive: Var<'t, T>,
    negative: Var<'t, T>,
) -> Result<Var<'t, T>> {
    TripletMarginLoss::default().forward(anchor, positive, negative)
}

/// `1 - cos(x1, x2)` for label 1, `max(0, cos(x1, x2) - margin)` for label -1
/// (`torch.nn.CosineEmbeddingLoss`), with PyTorch's cosine
/// `Σ x1·x2 / √((Σ x1² + 1e-12)(Σ x2² + 1e-12))` over the last axis.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CosineEmbeddingLoss {
    /// The margin, in `[-1, 1]` (PyTorch's default 0).
    pub margin: f64,
    /// How the per-pair losses are combined.
    pub reduction: Reduction,
}

impl CosineEmbeddingLoss {
    /// The loss of pairs `(input1, input2)`, `(N, D)` or `(D)`, under ±1 labels `target`,
    /// `(N)` or `()`.
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes do not fit, a label is not ±1, or the margin
    /// is not finite.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input1: Var<'t, T>,
        input2: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "cosine_embedding_loss";
        check_operands(loss, input1, &[("input2", input2)], true)?;
        check_operands(loss, input1, &[("target", target)], false)?;
        let s = input1.shape();
        if s.rank() == 0 || s.rank() > 2 {
            return Err(fail(loss, "inputs must be (N, D) or (D)", s));
        }
        let want = Shape::from(&s[..s.rank() - 1]);
        if target.shape() != want {
            return Err(fail(
                loss,
                format!("target has shape {}, not {want}", target.shape()),
                s,
            ));
        }
        check_option(loss, "margin", self.margin, false, s.clone())?;
        check_signs(loss, target, s)?;
        // PyTorch's EPSILON: keeps the cosine finite for zero vectors.
        let eps = T::of(1e-12);
        let prod = input1.mul(input2)?.sum_axes(&[-1], false)?;
        let m1 = input1.square().sum_axes(&[-1], false)?.add_scalar(eps);
        let m2 = input2.square().sum_axes(&[-1], false)?.add_scalar(eps);
        let cos = prod.div(m1.mul(m2)?.sqrt())?;
        let pos = cos.rsub_scalar(T::one());
        let neg = cos
            .sub_scalar(T::of(self.margin))
            .clamp(T::zero(), T::infinity());
        Ok(reduce(
            pos.where_cond(&positives(target), neg)?,
            self.reduction,
        ))
    }
}

/// Mean cosine embedding loss with margin 0
/// (`torch.nn.functional.cosine_embedding_loss(input1, input2, target)`).
///
/// # Errors
/// As [`CosineEmbeddingLoss::forward`].
#[track_caller]
pub fn cosine_embedding_loss<'t, T: Float>(
    input1: Var<'t, T>,
    input2: Var<'t, T>,
    target: Var<'t, T>,
) -> Result<Var<'t, T>> {
    CosineEmbeddingLoss::default().forward(input1, input2, target)
}

/// `x` for label 1 and `max(0, margin - x)` for label -1 (`torch.nn.HingeEmbeddingLoss`),
/// for `x` a distance between a pair: similar pairs pull the distance down, dissimilar ones
/// push it past the margin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HingeEmbeddingLoss {
    /// The margin (PyTorch's default 1).
    pub margin: f64,
    /// How the elementwise losses are combined.
    pub reduction: Reduction,
}

impl Default for HingeEmbeddingLoss {
    fn default() -> Self {
        HingeEmbeddingLoss {
            margin: 1.0,
            reduction: Reduction::Mean,
        }
    }
}

impl HingeEmbeddingLoss {
    /// The loss of distances `input` under ±1 labels `target` (same shape).
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when the shapes differ, a label is not ±1, or the margin is
    /// not finite.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        input: Var<'t, T>,
        target: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let loss = "hinge_embedding_loss";
        check_operands(loss, input, &[("target", target)], true)?;
        check_option(loss, "margin", self.margin, false, input.shape())?;
        check_signs(loss, target, input.shape())?;
        let hinge = input
            .rsub_scalar(T::of(self.margin))
            .clamp(T::zero(), T::infinity());
        Ok(reduce(
            input.where_cond(&positives(target), hinge)?,
            self.reduction,
        ))
    }
}

/// Mean hinge embedding loss with margin 1
/// (`torch.nn.functional.hinge_embedding_loss(input, target)`).
///
/// # Errors
/// As [`HingeEmbeddingLoss::forward`].
#[track_caller]
pub fn hinge_embedding_loss<'t, T: Float>(
    input: Var<'t, T>,
    target: Var<'t, T>,
) -> Result<Var<'t, T>> {
    HingeEmbeddingLoss::default().forward(input, target)
}
