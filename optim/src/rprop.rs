//! Rprop: resilient backpropagation, sign-based steps with per-element step sizes.

use autograd::{Float, ParamMut, Tensor};

use crate::common::{check_state_finite, invalid_state};
use crate::error::{Error, Result};
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Rprop: each element keeps its own step size, grown by `η₊` while the gradient keeps its
/// sign and shrunk by `η₋` when it flips; only the sign of the gradient is used.
///
/// ```text
/// s ← sign(g·g_prev)
/// Δ ← clamp(Δ·(η₊ if s > 0, η₋ if s < 0, 1 if s = 0), Δ_min, Δ_max)   (Δ starts at lr)
/// g ← 0 where s < 0           (that element waits a step; its next factor is 1)
/// p ← p − sign(g)·Δ;   g_prev ← g
/// ```
///
/// [Riedmiller & Braun 1993](https://doi.org/10.1109/ICNN.1993.298623). Matches
/// `torch.optim.Rprop` (default lr 0.01) with `foreach=False`. No weight decay.
#[derive(Clone, Debug, PartialEq)]
pub struct Rprop {
    /// (η₋, η₊): shrink and growth factors, `0 < η₋ < 1 < η₊` (default (0.5, 1.2)).
    pub etas: (f64, f64),
    /// (Δ_min, Δ_max): bounds on the step sizes (default (1e-6, 50)).
    pub step_sizes: (f64, f64),
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Rprop {
    fn default() -> Self {
        Rprop {
            etas: (0.5, 1.2),
            step_sizes: (1e-6, 50.0),
            maximize: false,
        }
    }
}

/// [`Rprop`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct RpropState<T: Float> {
    /// The gradient kept from the previous step (zeroed where the sign flipped).
    pub prev: Tensor<T>,
    /// The per-element step sizes Δ.
    pub step_size: Tensor<T>,
}

impl<T: Float> RuleState<T> for RpropState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![("prev", &self.prev), ("step_size", &self.step_size)]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![("prev", &mut self.prev), ("step_size", &mut self.step_size)]
    }
}

impl<T: Float> UpdateRule<T> for Rprop {
    type State = RpropState<T>;
    const NAME: &'static str = "rprop";

    fn validate(&self) -> Result<()> {
        let (minus, plus) = self.etas;
        if !(minus > 0.0 && minus < 1.0) {
            return Err(Error::InvalidHyperparameter {
                name: "etas.0",
                value: minus,
                reason: "must be in (0, 1)",
            });
        }
        if !(plus > 1.0 && plus.is_finite()) {
            return Err(Error::InvalidHyperparameter {
                name: "etas.1",
                value: plus,
                reason: "must be a finite number > 1",
            });
        }
        let (lo, hi) = self.step_sizes;
        crate::common::check_finite_non_negative("step_sizes.0", lo)?;
        if !(hi.is_finite() && hi >= lo) {
            return Err(Error::InvalidHyperparameter {
                name: "step_sizes.1",
                value: hi,
                reason: "must be finite and >= step_sizes.0",
            });
        }
        Ok(())
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn init(&self, param: &Tensor<T>) -> RpropState<T> {
        // Δ is set to the group's lr on the first update, which knows it (PyTorch fills it
        // with group["lr"] when it creates the state, on the same step).
        RpropState {
            prev: param.zeros_like(),
            step_size: param.zeros_like(),
        }
    }

    fn validate_state(&self, state: &RpropState<T>) -> Result<()> {
        check_state_finite("prev", &state.prev)?;
        let (lo, hi) = (T::of(self.step_sizes.0), T::of(self.step_sizes.1));
        match state
            .step_size
            .as_slice()
            .iter()
            .find(|s| !(s.is_finite() && **s >= lo && **s <= hi))
        {
            Some(s) => Err(invalid_state(
                "step_size",
                s.as_f64(),
                "must be within step_sizes",
            )),
            None => Ok(()),
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut RpropState<T>,
    ) -> Result<()> {
        if cx.step == 1 {
            let lr = T::of(cx.lr);
            state.step_size.mapv_inplace(|_| lr);
        }
        let (minus, plus) = (T::of(self.etas.0), T::of(self.etas.1));
        let (lo, hi) = (T::of(self.step_sizes.0), T::of(self.step_sizes.1));
        let sign = |x: T| if x == T::zero() { x } else { x.signum() }; // torch.sign(0) = 0
        let RpropState { prev, step_size } = state;
        let elems = prev.as_mut_slice().iter_mut().zip(step_size.as_mut_slice());
        for ((p, &g), (prev, size)) in param
            .as_mut_slice()
            .iter_mut()
            .zip(grad.as_slice())
            .zip(elems)
        {
            let s = sign(g * *prev);
            let factor = if s > T::zero() {
                plus
            } else if s < T::zero() {
                minus
            } else {
                T::one()
            };
            // torch's clamp: min(max(x, lo), hi)
            *size = (*size * factor).max(lo).min(hi);
            let g = if s < T::zero() { T::zero() } else { g };
            *p -= sign(g) * *size;
            *prev = g;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, run_steps};

    #[test]
    fn steps_use_only_the_sign_and_adapt_the_step_size() {
        // L = Σ p², g = 2p. p = 1: step 1 moves by lr (factor 1); step 2, same sign, by 1.2 lr.
        let got = run_steps(Rprop::default(), 0.1, &[1.0], 2);
        assert_eq!(got, vec![1.0 - 0.1 - 0.1 * 1.2]);
        // A large gradient moves exactly as far as a small one.
        assert_eq!(
            run_steps(Rprop::default(), 0.1, &[100.0], 1),
            vec![100.0 - 0.1]
        );
    }

    #[test]
    fn a_sign_flip_shrinks_the_step_and_waits() {
        // From 0.05 with lr 0.1 the first step overshoots to -0.05; the gradient flips, so
        // step 2 shrinks Δ to 0.05 and does not move; step 3 (factor 1) moves by 0.05.
        let got = run_steps(Rprop::default(), 0.1, &[0.05], 3);
        let p1 = 0.05 - 0.1;
        assert_eq!(got, vec![p1 + 0.05]);
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(Rprop::default(), 0.01);
    }

    #[test]
    fn bad_etas_are_rejected() {
        let e = UpdateRule::<f64>::validate(&Rprop {
            etas: (1.5, 1.2),
            ..Rprop::default()
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid etas.0 1.5: must be in (0, 1)");
    }
}
