//! Pieces the update rules share: weight decay, the momentum/Nesterov step, PyTorch's
//! `lerp`, bias correction and hyper-parameter checks. Public so that rules written outside
//! the crate can reuse them.

use autograd::{Float, ParamMut, Tensor};

use crate::error::{Error, Result};
use crate::rule::{RuleState, StepCx};

/// How a rule applies the group's weight decay `λ` (`cx.weight_decay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDecay {
    /// L2 penalty folded into the gradient: `g ← g + λ·p` (Adam, SGD, ...).
    L2,
    /// Decoupled decay of the parameter: `p ← p·(1 − lr·λ)`, gradient untouched
    /// ([Loshchilov & Hutter 2019](https://arxiv.org/abs/1711.05101), AdamW).
    Decoupled,
}

impl WeightDecay {
    /// Applies the decay and returns the gradient the rest of the rule should use (a cheap
    /// shared copy of `grad` when unchanged). A zero `λ` changes nothing, as in PyTorch.
    ///
    /// # Panics
    /// Never for shapes checked by the driver (`grad` has `param`'s shape).
    pub fn apply<T: Float>(
        self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
    ) -> Tensor<T> {
        if cx.weight_decay == 0.0 {
            return grad.clone();
        }
        match self {
            WeightDecay::L2 => {
                let wd = T::of(cx.weight_decay);
                grad.zip_with(param, "weight_decay", |g, p| g + wd * p)
                    .expect("internal: driver checks grad and param shapes")
            }
            WeightDecay::Decoupled => {
                let keep = T::of(1.0 - cx.lr * cx.weight_decay);
                param.mapv_inplace(|p| p * keep);
                grad.clone()
            }
        }
    }
}

/// PyTorch's CPU `lerp(a, b, w)`: `a + w·(b − a)` for `|w| < 0.5`, else
/// `b − (b − a)·(1 − w)`. Exponential averages `m ← β·m + (1−β)·g` are written as
/// `lerp(m, g, 1 − β)` to round exactly as `exp_avg.lerp_(grad, 1 - beta1)` does.
#[inline]
pub fn lerp<T: Float>(a: T, b: T, w: T) -> T {
    if w.abs() < T::of(0.5) {
        a + w * (b - a)
    } else {
        b - (b - a) * (T::one() - w)
    }
}

/// Bias correction `1 − βᵗ`, with `βᵗ` from `powf` as Python's `beta ** step` computes it.
pub fn bias_correction(beta: f64, step: u64) -> f64 {
    1.0 - beta.powf(step as f64)
}

/// `v ← β·v + (1−β)·g²` in PyTorch's operation order
/// (`v.mul_(beta).addcmul_(g, g, value=1 - beta)`).
#[inline]
pub fn ema_square<T: Float>(v: T, g: T, beta: T, one_minus_beta: T) -> T {
    v * beta + one_minus_beta * g * g
}

/// The heavy-ball step shared by SGD-style rules: on the first step the buffer becomes the
/// gradient itself (no `1 − dampening` factor, as in PyTorch), afterwards
/// `buf ← μ·buf + (1 − dampening)·g`. Returns the direction: `g + μ·buf` for Nesterov,
/// else `buf`.
///
/// # Panics
/// Never for same-shaped `buf` and `grad` (the driver guarantees it).
pub fn momentum_step<T: Float>(
    buf: &mut Tensor<T>,
    grad: &Tensor<T>,
    step: u64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
) -> Tensor<T> {
    if step == 1 {
        *buf = grad.clone();
    } else {
        let (mu, keep) = (T::of(momentum), T::of(1.0 - dampening));
        buf.zip_mut_with(grad, |b, g| *b = *b * mu + keep * g)
            .expect("internal: momentum buffer has the parameter's shape");
    }
    if nesterov {
        let mu = T::of(momentum);
        grad.zip_with(buf, "nesterov", |g, b| g + mu * b)
            .expect("internal: momentum buffer has the parameter's shape")
    } else {
        buf.clone()
    }
}

fn invalid(name: &'static str, value: f64, reason: &'static str) -> Error {
    Error::InvalidHyperparameter {
        name,
        value,
        reason,
    }
}

/// Checks a learning rate: finite and `>= 0`.
///
/// # Errors
/// [`Error::InvalidHyperparameter`] named `"lr"`.
pub fn check_lr(lr: f64) -> Result<()> {
    check_finite_non_negative("lr", lr)
}

/// Checks that `value` is finite and `>= 0` (eps, weight decay, momentum, ...).
///
/// # Errors
/// [`Error::InvalidHyperparameter`] named `name`.
pub fn check_finite_non_negative(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(name, value, "must be a finite number >= 0"))
    }
}

/// Checks a decay rate for an exponential average: `0 <= beta < 1` (Adam's betas).
///
/// # Errors
/// [`Error::InvalidHyperparameter`] named `name`.
pub fn check_beta(name: &'static str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(name, value, "must be in [0, 1)"))
    }
}

/// Checks `0 <= value <= 1` (Adadelta's rho, SGD's dampening).
///
/// # Errors
/// [`Error::InvalidHyperparameter`] named `name`.
pub fn check_unit_interval(name: &'static str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(name, value, "must be in [0, 1]"))
    }
}

/// An error for a hyper-parameter combination PyTorch rejects, reported on `name`.
pub fn incompatible(name: &'static str, value: f64, reason: &'static str) -> Error {
    invalid(name, value, reason)
}

/// The largest step count a state may hold: rules convert counts to `f64` (`β^t`), which
/// is exact up to 2⁵³, and the driver adds one per step.
pub const MAX_STEP: u64 = 1 << 53;

/// An [`Error::InvalidState`] for a loaded value named `key`.
pub fn invalid_state(key: impl Into<String>, value: f64, reason: &'static str) -> Error {
    Error::InvalidState {
        key: key.into(),
        value,
        reason,
    }
}

/// Checks that every element of a loaded state tensor is finite.
///
/// # Errors
/// [`Error::InvalidState`] naming `name` and the first bad value.
pub fn check_state_finite<T: Float>(name: &str, t: &Tensor<T>) -> Result<()> {
    match t.as_slice().iter().find(|x| !x.is_finite()) {
        Some(x) => Err(invalid_state(name, x.as_f64(), "must be finite")),
        None => Ok(()),
    }
}

/// Checks that every element of a loaded state tensor is finite and `>= 0` (running
/// averages of squares, accumulators).
///
/// # Errors
/// [`Error::InvalidState`] naming `name` and the first bad value.
pub fn check_state_non_negative<T: Float>(name: &str, t: &Tensor<T>) -> Result<()> {
    match t
        .as_slice()
        .iter()
        .find(|x| !(x.is_finite() && **x >= T::zero()))
    {
        Some(x) => Err(invalid_state(name, x.as_f64(), "must be finite and >= 0")),
        None => Ok(()),
    }
}

/// Checks a loaded scalar against a predicate.
///
/// # Errors
/// [`Error::InvalidState`] naming `name` with `reason`.
pub fn check_state_scalar(
    name: &str,
    value: f64,
    ok: impl FnOnce(f64) -> bool,
    reason: &'static str,
) -> Result<()> {
    if ok(value) {
        Ok(())
    } else {
        Err(invalid_state(name, value, reason))
    }
}

/// The default check of a loaded state: every tensor element and every scalar finite.
///
/// # Errors
/// [`Error::InvalidState`] naming the first bad tensor or scalar.
pub fn check_state_all_finite<T: Float, S: RuleState<T>>(state: &S) -> Result<()> {
    for (name, t) in state.tensors() {
        check_state_finite(name, t)?;
    }
    for (name, x) in state.scalars() {
        check_state_scalar(name, x, f64::is_finite, "must be finite")?;
    }
    Ok(())
}

/// [`check_state_all_finite`] plus `>= 0` for the tensors named in `non_negative`
/// (accumulated squares).
///
/// # Errors
/// [`Error::InvalidState`] naming the first bad tensor or scalar.
pub fn check_state_non_negative_tensors<T: Float, S: RuleState<T>>(
    state: &S,
    non_negative: &[&str],
) -> Result<()> {
    check_state_all_finite(state)?;
    for (name, t) in state.tensors() {
        if non_negative.contains(&name) {
            check_state_non_negative(name, t)?;
        }
    }
    Ok(())
}

/// Checks a momentum-like group setting: finite and `>= 0` (SGD, RMSprop).
///
/// # Errors
/// [`Error::InvalidHyperparameter`] named `"momentum"`.
pub fn check_momentum(value: f64) -> Result<()> {
    check_finite_non_negative("momentum", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lerp_uses_torch_branches() {
        // small weight: a + w(b - a); large weight: b - (b - a)(1 - w)
        assert_eq!(lerp(1.0f64, 3.0, 0.25), 1.0 + 0.25 * 2.0);
        assert_eq!(lerp(1.0f64, 3.0, 0.75), 3.0 - 2.0 * 0.25);
        assert_eq!(lerp(0.1f64, 0.7, 0.5), 0.7 - (0.7 - 0.1) * 0.5);
    }

    #[test]
    fn l2_decay_adds_to_gradient_and_decoupled_scales_param() {
        let cx = StepCx::new(0.1, 1, 0.5);
        let mut p = Tensor::from_vec(vec![2.0f64, -4.0], [2]).unwrap();
        let g = Tensor::from_vec(vec![1.0f64, 1.0], [2]).unwrap();
        let g2 = WeightDecay::L2.apply(&cx, &mut ParamMut::new(&mut p), &g);
        assert_eq!(g2.to_vec(), vec![2.0, -1.0]); // g + 0.5 p
        assert_eq!(p.to_vec(), vec![2.0, -4.0]);
        let g3 = WeightDecay::Decoupled.apply(&cx, &mut ParamMut::new(&mut p), &g);
        assert_eq!(g3.to_vec(), vec![1.0, 1.0]);
        assert_eq!(p.to_vec(), vec![2.0 * 0.95, -4.0 * 0.95]); // p (1 - lr λ)
    }

    #[test]
    fn momentum_first_step_copies_gradient_without_dampening() {
        let g = Tensor::from_vec(vec![1.0f64, -2.0], [2]).unwrap();
        let mut buf = g.zeros_like();
        let d = momentum_step(&mut buf, &g, 1, 0.9, 0.5, false);
        assert_eq!(d.to_vec(), vec![1.0, -2.0]);
        let d = momentum_step(&mut buf, &g, 2, 0.9, 0.5, false);
        assert_eq!(d.to_vec(), vec![0.9 + 0.5, -1.8 - 1.0]);
        let d = momentum_step(&mut buf, &g, 3, 0.9, 0.5, true);
        let b = buf.to_vec();
        assert_eq!(d.to_vec(), vec![1.0 + 0.9 * b[0], -2.0 + 0.9 * b[1]]);
    }

    #[test]
    fn checks_reject_out_of_range_values() {
        assert!(check_lr(0.0).is_ok());
        assert!(check_lr(-1e-3).is_err());
        assert!(check_lr(f64::NAN).is_err());
        assert!(check_beta("betas.0", 0.0).is_ok());
        assert!(check_beta("betas.0", 1.0).is_err());
        assert!(check_unit_interval("rho", 1.0).is_ok());
        assert!(check_unit_interval("rho", 1.5).is_err());
    }
}
