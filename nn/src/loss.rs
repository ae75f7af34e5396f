//! Losses, numerically stable for extreme inputs, with PyTorch's definitions and
//! reductions.
//!
//! | function | per element / sample | PyTorch |
//! | --- | --- | --- |
//! | [`mse`] | `(x - y)²` | `F.mse_loss` |
//! | [`l1`] | `|x - y|` | `F.l1_loss` |
//! | [`huber`] | `½d²` if `|d| < δ`, else `δ(|d| - ½δ)` | `F.huber_loss` |
//! | [`cross_entropy`] | `-log softmax(x)[t]`, with label smoothing | `F.cross_entropy` |
//! | [`nll`] | `-x[t]` | `F.nll_loss` |
//! | [`bce`] | `-[y ln p + (1-y) ln(1-p)]`, logs clamped at -100 | `F.binary_cross_entropy` |
//! | [`bce_with_logits`] | `softplus(x) - x·y` | `F.binary_cross_entropy_with_logits` |
//! | [`hinge`] | `max(0, 1 - y·s)`, `y ∈ {-1, 1}` | `F.hinge_embedding_loss`'s SVM cousin |
//! | [`multi_margin`] | `Σ_{i≠t} max(0, m - x[t] + x[i]) / C` | `F.multi_margin_loss` |
//!
//! Stability: softmax-based losses subtract the (detached) row maximum, BCE-with-logits is
//! written with softplus, and [`bce`] uses PyTorch's clamped backward, so values and
//! gradients stay finite for logits of magnitude 1e4 in f32 and f64.

use autograd::{BackwardCx, Float, Op, Tensor, Var};

use crate::error::{Error, Result};

/// How per-element losses are combined (PyTorch's `reduction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (PyTorch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one loss per element (or per sample for class losses).
    None,
}

fn reduce<T: Float>(v: Var<'_, T>, r: Reduction) -> Var<'_, T> {
    match r {
        Reduction::Mean => v.mean(),
        Reduction::Sum => v.sum(),
        Reduction::None => v,
    }
}

fn same_shape<T: Float>(loss: &'static str, x: Var<'_, T>, y: Var<'_, T>) -> Result<()> {
    if x.shape() != y.shape() {
        return Err(Error::input(
            loss,
            format!("the target's shape {}", y.shape()),
            x.shape(),
        ));
    }
    Ok(())
}

/// Checks `[N, C]` scores against `N` class indices below `C`; returns `(N, C)`.
fn class_targets<T: Float>(
    loss: &'static str,
    x: Var<'_, T>,
    t: &[usize],
) -> Result<(usize, usize)> {
    let s = x.shape();
    if s.rank() != 2 {
        return Err(Error::input(loss, "[N, C] scores", s));
    }
    let (n, c) = (s[0], s[1]);
    if t.len() != n {
        return Err(Error::target(
            loss,
            format!("{} targets for a batch of {n}", t.len()),
        ));
    }
    if let Some((i, &bad)) = t.iter().enumerate().find(|(_, &v)| v >= c) {
        return Err(Error::target(
            loss,
            format!("target {i} is class {bad}, out of range for {c} classes"),
        ));
    }
    Ok((n, c))
}

/// Mean squared error: `(x - y)²`, reduced.
///
/// # Errors
/// [`Error::InputShape`] when the shapes differ.
pub fn mse<'t, T: Float>(x: Var<'t, T>, y: Var<'t, T>, reduction: Reduction) -> Result<Var<'t, T>> {
    same_shape("mse", x, y)?;
    Ok(reduce(x.sub(y)?.square(), reduction))
}

/// Mean absolute error: `|x - y|`, reduced (subgradient 0 at `x = y`).
///
/// # Errors
/// [`Error::InputShape`] when the shapes differ.
pub fn l1<'t, T: Float>(x: Var<'t, T>, y: Var<'t, T>, reduction: Reduction) -> Result<Var<'t, T>> {
    same_shape("l1", x, y)?;
    Ok(reduce(x.sub(y)?.abs(), reduction))
}

/// Huber loss with threshold `delta`: `½d²` where `|d| < δ`, else `δ(|d| - ½δ)`, for
/// `d = x - y`; the gradient is `d` clipped to `[-δ, δ]`.
///
/// # Errors
/// [`Error::InputShape`] when the shapes differ; [`Error::InvalidConfig`] for `δ <= 0`.
pub fn huber<'t, T: Float>(
    x: Var<'t, T>,
    y: Var<'t, T>,
    delta: f64,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    same_shape("huber", x, y)?;
    if !(delta > 0.0 && delta.is_finite()) {
        return Err(Error::config(
            "huber",
            format!("delta must be positive, got {delta}"),
        ));
    }
    let d = x.sub(y)?;
    let small = d.value().map(|v| {
        if v.abs().as_f64() < delta {
            T::one()
        } else {
            T::zero()
        }
    });
    let quad = d.square().mul_scalar(T::of(0.5));
    let lin = d
        .abs()
        .sub_scalar(T::of(0.5 * delta))
        .mul_scalar(T::of(delta));
    Ok(reduce(quad.where_cond(&small, lin)?, reduction))
}

/// Negative log-likelihood of log-probabilities `x: [N, C]` at class indices `targets`.
///
/// # Errors
/// [`Error::InputShape`] unless `x` is `[N, C]`; [`Error::InvalidTarget`] for a wrong
/// target count or a class out of range.
pub fn nll<'t, T: Float>(
    x: Var<'t, T>,
    targets: &[usize],
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    let (n, _) = class_targets("nll", x, targets)?;
    let picked = x.gather(1, targets, [n, 1])?.reshape([n])?;
    Ok(reduce(picked.neg(), reduction))
}

/// Cross-entropy of raw logits `x: [N, C]` against class indices, with optional label
/// smoothing `ε` (PyTorch's definition: the target distribution is `(1 - ε)·onehot + ε/C`),
/// so per sample `(1 - ε)·(-log p_t) + ε·mean_c(-log p_c)`. Stable for logits of any
/// magnitude (log-softmax through a detached-max logsumexp).
///
/// # Errors
/// As [`nll`]; [`Error::InvalidConfig`] for `ε` outside `[0, 1]`.
pub fn cross_entropy<'t, T: Float>(
    x: Var<'t, T>,
    targets: &[usize],
    label_smoothing: f64,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    let (n, _) = class_targets("cross_entropy", x, targets)?;
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::config(
            "cross_entropy",
            format!("label smoothing must be in [0, 1], got {label_smoothing}"),
        ));
    }
    let logp = x.log_softmax(1)?;
    let nll = logp.gather(1, targets, [n, 1])?.reshape([n])?.neg();
    let per = if label_smoothing > 0.0 {
        let uniform = logp.mean_axes(&[1], false)?.neg();
        nll.mul_scalar(T::of(1.0 - label_smoothing))
            .add(uniform.mul_scalar(T::of(label_smoothing)))?
    } else {
        nll
    };
    Ok(reduce(per, reduction))
}

/// Binary cross-entropy of probabilities `p` against targets `y` in `[0, 1]`:
/// `-[y ln p + (1-y) ln(1-p)]`, each log clamped at -100 as PyTorch does, so `p = 0` or `1`
/// gives a finite loss. The gradient is PyTorch's `(p - y)/max(p(1-p), 1e-12)`, finite
/// everywhere. The target's gradient `ln(1-p) - ln p` (clamped logs) is first order only:
/// it is recorded as a constant in `p`.
///
/// Prefer [`bce_with_logits`]: a sigmoid followed by `bce` has already lost the precision
/// near 0 and 1 that the logits carried.
///
/// # Errors
/// [`Error::InputShape`] when the shapes differ; [`Error::InvalidTarget`] when a
/// probability or target lies outside `[0, 1]`.
pub fn bce<'t, T: Float>(p: Var<'t, T>, y: Var<'t, T>, reduction: Reduction) -> Result<Var<'t, T>> {
    same_shape("bce", p, y)?;
    let outside = |t: &Tensor<T>| {
        t.as_slice()
            .iter()
            .position(|&v| !(v >= T::zero() && v <= T::one()))
    };
    if let Some(i) = outside(&p.value()) {
        return Err(Error::target(
            "bce",
            format!("input element {i} is not a probability in [0, 1]"),
        ));
    }
    if let Some(i) = outside(&y.value()) {
        return Err(Error::target(
            "bce",
            format!("target element {i} is not in [0, 1]"),
        ));
    }
    let per = p.tape().apply(BinaryCrossEntropy, &[p, y])?;
    Ok(reduce(per, reduction))
}

/// Elementwise BCE on probabilities with PyTorch's clamped logs and clamped backward.
#[derive(Debug)]
struct BinaryCrossEntropy;

fn clamped_logs<T: Float>(p: T) -> (T, T) {
    let floor = T::of(-100.0);
    (p.ln().max(floor), (-p).ln_1p().max(floor))
}

impl<T: Float> Op<T> for BinaryCrossEntropy {
    fn name(&self) -> &'static str {
        "binary_cross_entropy"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> autograd::Result<Tensor<T>> {
        x[0].zip_with(x[1], "binary_cross_entropy", |p, y| {
            let (lp, l1p) = clamped_logs(p);
            -(y * lp + (T::one() - y) * l1p)
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
        let dy = p.value().map(|p| {
            let (lp, l1p) = clamped_logs(p);
            l1p - lp
        });
        let gy = g.mul(cx.tape().constant(dy))?;
        Ok(vec![Some(gp), Some(gy)])
    }
}

/// Binary cross-entropy from logits: `softplus(x) - x·y`, which equals
/// `-[y ln σ(x) + (1-y) ln(1-σ(x))]` and stays finite for logits of any size; the
/// gradient is `σ(x) - y`.
///
/// # Errors
/// [`Error::InputShape`] when the shapes differ.
pub fn bce_with_logits<'t, T: Float>(
    x: Var<'t, T>,
    y: Var<'t, T>,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    same_shape("bce_with_logits", x, y)?;
    // softplus with an infinite threshold is max(x, 0) + ln(1 + e^{-|x|}): no overflow.
    let sp = x.softplus(T::one(), T::infinity());
    Ok(reduce(sp.sub(x.mul(y)?)?, reduction))
}

/// Binary hinge loss `max(0, 1 - y·s)` for scores `s` and labels `y ∈ {-1, 1}` (the SVM
/// loss); subgradient 0 at the hinge.
///
/// # Errors
/// [`Error::InputShape`] when the shapes differ; [`Error::InvalidTarget`] for a label
/// other than ±1.
pub fn hinge<'t, T: Float>(
    s: Var<'t, T>,
    y: Var<'t, T>,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    same_shape("hinge", s, y)?;
    if let Some(i) = y
        .value()
        .as_slice()
        .iter()
        .position(|&v| v != T::one() && v != -T::one())
    {
        return Err(Error::target("hinge", format!("label {i} is not -1 or 1")));
    }
    Ok(reduce(s.mul(y)?.rsub_scalar(T::one()).relu(), reduction))
}

/// Multi-class hinge loss (`F.multi_margin_loss` with `p = 1`): per sample
/// `Σ_{i ≠ t} max(0, margin - x[t] + x[i]) / C` for scores `x: [N, C]`.
///
/// # Errors
/// As [`nll`]; [`Error::InvalidConfig`] for a non-finite margin.
pub fn multi_margin<'t, T: Float>(
    x: Var<'t, T>,
    targets: &[usize],
    margin: f64,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    let (n, c) = class_targets("multi_margin", x, targets)?;
    if !margin.is_finite() {
        return Err(Error::config(
            "multi_margin",
            format!("margin must be finite, got {margin}"),
        ));
    }
    let xt = x.gather(1, targets, [n, 1])?;
    let m = x.sub(xt)?.add_scalar(T::of(margin)).relu();
    // Drop the i = t term (it is max(0, margin), not a violation).
    let keep = Tensor::from_fn([n, c], |k| {
        if targets[k / c] == k % c {
            T::zero()
        } else {
            T::one()
        }
    })?;
    let per = m
        .mul(x.tape().constant(keep))?
        .sum_axes(&[1], false)?
        .div_scalar(T::of(c as f64));
    Ok(reduce(per, reduction))
}

// gradcheck closures must return autograd::Result, whose error is over clippy's limit.
#[allow(clippy::result_large_err)]
#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{gradcheck, GradcheckOptions, Tape};

    fn opts() -> GradcheckOptions {
        GradcheckOptions::default()
    }

    fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(v.to_vec(), s.to_vec()).unwrap()
    }

    const X: [f64; 6] = [0.3, -1.2, 2.0, 0.7, -0.4, 1.1];
    const Y: [f64; 6] = [0.1, -0.2, 0.5, 2.0, -0.1, 0.3];

    #[test]
    fn regression_losses_match_their_formulas_and_gradcheck() {
        let tape = Tape::<f64>::new();
        let (x, y) = (tape.constant(t(&X, &[2, 3])), tape.constant(t(&Y, &[2, 3])));
        let d: Vec<f64> = X.iter().zip(Y).map(|(a, b)| a - b).collect();
        let want_mse = d.iter().map(|d| d * d).sum::<f64>() / 6.0;
        assert!((mse(x, y, Reduction::Mean).unwrap().item().unwrap() - want_mse).abs() < 1e-12);
        let want_l1 = d.iter().map(|d| d.abs()).sum::<f64>();
        assert!((l1(x, y, Reduction::Sum).unwrap().item().unwrap() - want_l1).abs() < 1e-12);
        // δ = 1: d = 0.2 → 0.02, d = 1.5 → 1.0, d = -1.3 → 0.8 ...
        let want_h: Vec<f64> = d
            .iter()
            .map(|d| {
                if d.abs() < 1.0 {
                    0.5 * d * d
                } else {
                    d.abs() - 0.5
                }
            })
            .collect();
        let h = huber(x, y, 1.0, Reduction::None).unwrap().value().to_vec();
        for (a, b) in h.iter().zip(&want_h) {
            assert!((a - b).abs() < 1e-12);
        }
        for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            gradcheck(
                |v| Ok(mse(v[0], v[1], r).map_err(unwrap_ag)?.sum()),
                &[t(&X, &[6]), t(&Y, &[6])],
                &opts(),
            )
            .unwrap();
            gradcheck(
                |v| Ok(l1(v[0], v[1], r).map_err(unwrap_ag)?.sum()),
                &[t(&X, &[6]), t(&Y, &[6])],
                &opts(),
            )
            .unwrap();
            gradcheck(
                |v| Ok(huber(v[0], v[1], 0.8, r).map_err(unwrap_ag)?.sum()),
                &[t(&X, &[6]), t(&Y, &[6])],
                &opts(),
            )
            .unwrap();
        }
        assert!(matches!(
            mse(
                x,
                tape.constant(Tensor::zeros([3, 2]).unwrap()),
                Reduction::Mean
            ),
            Err(Error::InputShape { .. })
        ));
    }

    fn unwrap_ag(e: Error) -> autograd::Error {
        e.into_autograd()
    }

    #[test]
    fn cross_entropy_matches_torch_with_and_without_smoothing() {
        // torch 2.15 (float64): F.cross_entropy(torch.tensor([[0.3,-1.2,2.0],[0.7,-0.4,1.1]]),
        //   torch.tensor([2,0])) = 0.6200359578654773; with label_smoothing=0.1: 0.7133692911988107
        let tape = Tape::<f64>::new();
        let x = tape.constant(t(&X, &[2, 3]));
        let ce = cross_entropy(x, &[2, 0], 0.0, Reduction::Mean)
            .unwrap()
            .item()
            .unwrap();
        let by_hand = |row: &[f64], k: usize| {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            lse - row[k]
        };
        let want = (by_hand(&X[..3], 2) + by_hand(&X[3..], 0)) / 2.0;
        assert!((ce - want).abs() < 1e-12);
        assert!((ce - 0.6200359578654773).abs() < 1e-12);
        let ls = cross_entropy(x, &[2, 0], 0.1, Reduction::Mean)
            .unwrap()
            .item()
            .unwrap();
        let smooth = |row: &[f64], k: usize| {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            0.9 * (lse - row[k]) + 0.1 * row.iter().map(|v| lse - v).sum::<f64>() / 3.0
        };
        assert!((ls - (smooth(&X[..3], 2) + smooth(&X[3..], 0)) / 2.0).abs() < 1e-12);
        assert!((ls - 0.7133692911988107).abs() < 1e-12);
        let none = cross_entropy(x, &[2, 0], 0.0, Reduction::None).unwrap();
        assert_eq!(none.dims(), [2]);
        for ls in [0.0, 0.2] {
            gradcheck(
                |v| cross_entropy(v[0], &[2, 0], ls, Reduction::Sum).map_err(unwrap_ag),
                &[t(&X, &[2, 3])],
                &opts(),
            )
            .unwrap();
        }
        gradcheck(
            |v| nll(v[0].log_softmax(1)?, &[1, 2], Reduction::Mean).map_err(unwrap_ag),
            &[t(&X, &[2, 3])],
            &opts(),
        )
        .unwrap();
    }

    #[test]
    fn class_losses_reject_bad_targets_by_name() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(t(&X, &[2, 3]));
        let e = cross_entropy(x, &[0, 3], 0.0, Reduction::Mean).unwrap_err();
        assert!(
            e.to_string()
                .contains("class 3, out of range for 3 classes"),
            "{e}"
        );
        assert!(matches!(
            nll(x, &[0], Reduction::Mean),
            Err(Error::InvalidTarget { .. })
        ));
        assert!(matches!(
            cross_entropy(x, &[0, 1], 1.5, Reduction::Mean),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            hinge(
                x,
                tape.constant(Tensor::zeros([2, 3]).unwrap()),
                Reduction::Mean
            ),
            Err(Error::InvalidTarget { .. })
        ));
    }

    #[test]
    fn binary_losses_match_formulas_and_gradcheck() {
        let logits = [0.3, -1.2, 2.0, 0.7];
        let y = [1.0, 0.0, 0.3, 1.0];
        let p: Vec<f64> = logits
            .iter()
            .map(|x: &f64| 1.0 / (1.0 + (-x).exp()))
            .collect();
        let want: f64 = p
            .iter()
            .zip(y)
            .map(|(p, y)| -(y * p.ln() + (1.0 - y) * (1.0 - p).ln()))
            .sum::<f64>()
            / 4.0;
        let tape = Tape::<f64>::new();
        let (lv, pv, yv) = (
            tape.constant(t(&logits, &[4])),
            tape.constant(t(&p, &[4])),
            tape.constant(t(&y, &[4])),
        );
        assert!((bce(pv, yv, Reduction::Mean).unwrap().item().unwrap() - want).abs() < 1e-12);
        assert!(
            (bce_with_logits(lv, yv, Reduction::Mean)
                .unwrap()
                .item()
                .unwrap()
                - want)
                .abs()
                < 1e-12
        );
        // gradients in both the prediction and the target (targets inside (0, 1), so the
        // finite-difference steps stay valid targets)
        let y_in = [0.9, 0.1, 0.3, 0.6];
        gradcheck(
            |v| bce(v[0], v[1], Reduction::Sum).map_err(unwrap_ag),
            &[t(&p, &[4]), t(&y_in, &[4])],
            &opts(),
        )
        .unwrap();
        gradcheck(
            |v| bce_with_logits(v[0], v[1], Reduction::Mean).map_err(unwrap_ag),
            &[t(&logits, &[4]), t(&y, &[4])],
            &opts(),
        )
        .unwrap();
        // hinge away from the kink: y·s ≠ 1
        let s = [0.3, -1.2, 2.0, 0.7];
        let lab = [1.0, -1.0, -1.0, 1.0];
        let h = hinge(
            tape.constant(t(&s, &[4])),
            tape.constant(t(&lab, &[4])),
            Reduction::Sum,
        )
        .unwrap();
        // max(0, 0.7) + max(0, -0.2) + max(0, 3) + max(0, 0.3) = 4
        assert!((h.item().unwrap() - 4.0).abs() < 1e-12);
        gradcheck(
            |v| {
                let lab = v[0].tape().constant(t(&lab, &[4]));
                hinge(v[0], lab, Reduction::Mean).map_err(unwrap_ag)
            },
            &[t(&s, &[4])],
            &opts(),
        )
        .unwrap();
    }

    #[test]
    fn multi_margin_matches_torch_definition() {
        // row 0, t = 2: (max(0, 1 - 2 + 0.3) + max(0, 1 - 2 - 1.2)) / 3 = 0
        // row 1, t = 0: (max(0, 1 - 0.7 - 0.4) + max(0, 1 - 0.7 + 1.1)) / 3 = 1.4/3
        // (torch 2.15: F.multi_margin_loss(x, [2, 0], reduction="none") = [0.0000, 0.4667])
        let tape = Tape::<f64>::new();
        let x = tape.constant(t(&X, &[2, 3]));
        let l = multi_margin(x, &[2, 0], 1.0, Reduction::None)
            .unwrap()
            .value()
            .to_vec();
        assert!(
            l[0].abs() < 1e-12 && (l[1] - 1.4 / 3.0).abs() < 1e-12,
            "{l:?}"
        );
        gradcheck(
            |v| multi_margin(v[0], &[2, 0], 1.0, Reduction::Mean).map_err(unwrap_ag),
            &[t(&X, &[2, 3])],
            &opts(),
        )
        .unwrap();
    }

    /// Logits of magnitude 1e4: exp overflows in both f32 (past ~88) and f64 (past ~709),
    /// so any unshifted formula would give inf or NaN.
    fn extreme_logits_stay_finite<T: Float>() {
        let big = [1e4, -1e4, 0.0, -1e4, 1e4, 5e3];
        let tape = Tape::<T>::new();
        let x =
            tape.var(Tensor::from_vec(big.iter().map(|&v| T::of(v)).collect(), [2, 3]).unwrap());
        let finite = |v: Var<'_, T>| v.value().first_non_finite().is_none();
        let ce = cross_entropy(x, &[1, 0], 0.1, Reduction::Mean).unwrap();
        // log p = x - max: row 0 is [0, -2e4, -1e4], target 1: 0.9·2e4 + 0.1·(3e4/3) = 19000;
        // row 1 is [-2e4, 0, -5e3], target 0: 0.9·2e4 + 0.1·(2.5e4/3) = 18833.3
        assert!(finite(ce));
        assert!((ce.item().unwrap().as_f64() - (19000.0 + 18833.333) / 2.0).abs() < 1.0);
        let g = tape.grad(ce, &[x]).unwrap()[0];
        assert!(finite(g));
        let y = tape.constant(
            Tensor::from_vec(
                [1.0, 0.0, 1.0, 1.0, 0.0, 0.5]
                    .iter()
                    .map(|&v| T::of(v))
                    .collect(),
                [2, 3],
            )
            .unwrap(),
        );
        for l in [
            bce_with_logits(x, y, Reduction::Mean).unwrap(),
            bce(x.sigmoid(), y, Reduction::Mean).unwrap(),
            nll(x.log_softmax(1).unwrap(), &[1, 2], Reduction::Sum).unwrap(),
            multi_margin(x, &[1, 2], 1.0, Reduction::Mean).unwrap(),
            hinge(
                x,
                tape.constant(
                    Tensor::from_vec(
                        [1.0, -1.0, 1.0, -1.0, 1.0, 1.0]
                            .iter()
                            .map(|&v| T::of(v))
                            .collect(),
                        [2, 3],
                    )
                    .unwrap(),
                ),
                Reduction::Mean,
            )
            .unwrap(),
            huber(x, y, 1.0, Reduction::Mean).unwrap(),
        ] {
            assert!(finite(l), "{l:?}");
            let g = tape.grad(l, &[x]).unwrap()[0];
            assert!(finite(g), "{g:?}");
        }
        // bce_with_logits of a 1e4 logit with target 1 is e^{-1e4} ≈ 0, of -1e4 is 1e4
        let one = |v: f64, y: f64| {
            let tv = tape.constant(Tensor::scalar(T::of(v)));
            bce_with_logits(tv, tape.constant(Tensor::scalar(T::of(y))), Reduction::Sum)
                .unwrap()
                .item()
                .unwrap()
                .as_f64()
        };
        assert_eq!(one(1e4, 1.0), 0.0);
        assert_eq!(one(-1e4, 1.0), 1e4);
        // bce of a saturated probability is the clamp, 100, with a finite gradient
        let p = tape.var(Tensor::scalar(T::one()));
        let l = bce(p, tape.constant(Tensor::scalar(T::zero())), Reduction::Sum).unwrap();
        assert_eq!(l.item().unwrap().as_f64(), 100.0);
        assert!(finite(tape.grad(l, &[p]).unwrap()[0]));
    }

    #[test]
    fn losses_are_finite_for_logits_of_magnitude_1e4_in_f32_and_f64() {
        extreme_logits_stay_finite::<f32>();
        extreme_logits_stay_finite::<f64>();
    }
}
