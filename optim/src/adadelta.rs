//! Adadelta: an adaptive step from running averages of squared gradients and updates.

use autograd::{Float, ParamMut, Tensor};

use crate::common::{
    check_finite_non_negative, check_state_non_negative_tensors, check_unit_interval, ema_square,
    WeightDecay,
};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Adadelta.
///
/// ```text
/// g ← ∇f(p) + λ·p
/// v ← ρ·v + (1 − ρ)·g²
/// Δ ← √(u + ε) / √(v + ε) · g      (u from the previous step)
/// u ← ρ·u + (1 − ρ)·Δ²
/// p ← p − lr·Δ
/// ```
///
/// [Zeiler 2012](https://arxiv.org/abs/1212.5701). Matches `torch.optim.Adadelta`
/// (default lr 1.0, which scales Δ).
#[derive(Clone, Debug, PartialEq)]
pub struct Adadelta {
    /// Decay rate ρ of both running averages (default 0.9).
    pub rho: f64,
    /// Added inside both roots (default 1e-6).
    pub eps: f64,
    /// L2 penalty λ (default 0); a group may override it.
    pub weight_decay: f64,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Adadelta {
    fn default() -> Self {
        Adadelta {
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// [`Adadelta`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct AdadeltaState<T: Float> {
    /// Running average `v` of squared gradients.
    pub square_avg: Tensor<T>,
    /// Running average `u` of squared updates.
    pub acc_delta: Tensor<T>,
}

impl<T: Float> RuleState<T> for AdadeltaState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![
            ("square_avg", &self.square_avg),
            ("acc_delta", &self.acc_delta),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![
            ("square_avg", &mut self.square_avg),
            ("acc_delta", &mut self.acc_delta),
        ]
    }
}

impl<T: Float> UpdateRule<T> for Adadelta {
    type State = AdadeltaState<T>;
    const NAME: &'static str = "adadelta";

    fn validate(&self) -> Result<()> {
        check_unit_interval("rho", self.rho)?;
        check_finite_non_negative("eps", self.eps)?;
        check_finite_non_negative("weight_decay", self.weight_decay)
    }

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay)
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn validate_state(&self, state: &AdadeltaState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["square_avg", "acc_delta"])
    }

    fn init(&self, param: &Tensor<T>) -> AdadeltaState<T> {
        AdadeltaState {
            square_avg: param.zeros_like(),
            acc_delta: param.zeros_like(),
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut AdadeltaState<T>,
    ) -> Result<()> {
        let g = WeightDecay::L2.apply(cx, param, grad);
        let (rho, w, eps, lr) = (
            T::of(self.rho),
            T::of(1.0 - self.rho),
            T::of(self.eps),
            T::of(cx.lr),
        );
        let g = g.as_slice();
        let slices = [
            param.as_mut_slice(),
            state.square_avg.as_mut_slice(),
            state.acc_delta.as_mut_slice(),
        ];
        autograd::for_each_piece_mut(slices, |s, [p, v, u]| {
            let avgs = v.iter_mut().zip(u.iter_mut());
            for ((p, &g), (v, u)) in p.iter_mut().zip(&g[s..]).zip(avgs) {
                *v = ema_square(*v, g, rho, w);
                let delta = (*u + eps).sqrt() / (*v + eps).sqrt() * g;
                *u = ema_square(*u, delta, rho, w);
                *p -= lr * delta;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps};

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, adadelta/rosenbrock):
    //   torch.optim.Adadelta([p], lr=0.4) on Rosenbrock from (-1.5, 2.0)
    #[test]
    fn adadelta_matches_pytorch_on_rosenbrock() {
        assert_trajectory(
            &rosenbrock_steps(Adadelta::default(), 0.4, 3),
            &[
                [-1.498735088936196, 2.0012649110615377],
                [-1.4974500594444362, 2.00255004416691],
                [-1.4961602813177821, 2.0038400439550244],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(Adadelta::default(), 0.4);
    }

    #[test]
    fn rho_above_one_is_rejected() {
        let bad = Adadelta {
            rho: 1.5,
            ..Adadelta::default()
        };
        let e = UpdateRule::<f64>::validate(&bad).unwrap_err();
        assert_eq!(e.to_string(), "invalid rho 1.5: must be in [0, 1]");
    }
}
