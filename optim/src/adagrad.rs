//! Adagrad: per-coordinate steps scaled by the accumulated squared gradients.

use autograd::{Float, ParamMut, Tensor};

use crate::common::{check_finite_non_negative, check_state_non_negative_tensors, WeightDecay};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Adagrad.
///
/// ```text
/// g ← ∇f(p) + λ·p
/// η ← lr / (1 + (t − 1)·lr_decay)
/// s ← s + g²                       (s starts at initial_accumulator_value)
/// p ← p − η · g / (√s + ε)         (ε after the root)
/// ```
///
/// [Duchi et al. 2011](https://jmlr.org/papers/v12/duchi11a.html). Matches
/// `torch.optim.Adagrad` (default lr 1e-2).
#[derive(Clone, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning-rate decay per step (default 0).
    pub lr_decay: f64,
    /// L2 penalty λ (default 0); a group may override it.
    pub weight_decay: f64,
    /// Starting value of the accumulator `s` (default 0).
    pub initial_accumulator_value: f64,
    /// Added after the square root (default 1e-10).
    pub eps: f64,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

/// [`Adagrad`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct AdagradState<T: Float> {
    /// Accumulated squared gradients `s`.
    pub sum: Tensor<T>,
}

impl<T: Float> RuleState<T> for AdagradState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![("sum", &self.sum)]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![("sum", &mut self.sum)]
    }
}

impl<T: Float> UpdateRule<T> for Adagrad {
    type State = AdagradState<T>;
    const NAME: &'static str = "adagrad";

    fn validate(&self) -> Result<()> {
        check_finite_non_negative("lr_decay", self.lr_decay)?;
        check_finite_non_negative("weight_decay", self.weight_decay)?;
        check_finite_non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        check_finite_non_negative("eps", self.eps)
    }

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay)
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn validate_state(&self, state: &AdagradState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["sum"])
    }

    fn init(&self, param: &Tensor<T>) -> AdagradState<T> {
        AdagradState {
            sum: param.full_like(T::of(self.initial_accumulator_value)),
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut AdagradState<T>,
    ) -> Result<()> {
        let g = WeightDecay::L2.apply(cx, param, grad);
        let clr = T::of(cx.lr / (1.0 + (cx.step - 1) as f64 * self.lr_decay));
        let eps = T::of(self.eps);
        let g = g.as_slice();
        let slices = [param.as_mut_slice(), state.sum.as_mut_slice()];
        autograd::for_each_piece_mut(slices, |start, [p, sums]| {
            for ((p, &g), s) in p.iter_mut().zip(&g[start..]).zip(sums.iter_mut()) {
                *s += g * g;
                *p -= clr * (g / (s.sqrt() + eps));
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps};

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, adagrad_lrdecay_initacc):
    //   torch.optim.Adagrad([p], lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)
    //   on Rosenbrock from (-1.5, 2.0)
    #[test]
    fn adagrad_with_lr_decay_matches_pytorch_on_rosenbrock() {
        let adagrad = Adagrad {
            lr_decay: 0.01,
            initial_accumulator_value: 0.1,
            ..Adagrad::default()
        };
        assert_trajectory(
            &rosenbrock_steps(adagrad, 0.1, 3),
            &[
                [-1.4000002081159602, 2.099998000059798],
                [-1.4424685626088505, 2.0516228447905966],
                [-1.4301839604684559, 2.0615261601956214],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(Adagrad::default(), 0.1);
    }

    #[test]
    fn negative_initial_accumulator_is_rejected() {
        let bad = Adagrad {
            initial_accumulator_value: -0.5,
            ..Adagrad::default()
        };
        let e = UpdateRule::<f64>::validate(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid initial_accumulator_value -0.5: must be a finite number >= 0"
        );
    }
}
