//! Adamax: Adam under the infinity norm.

use autograd::{Float, ParamMut, Tensor};

use crate::adam::validate_adam;
use crate::common::{
    bias_correction, check_beta, check_state_non_negative_tensors, lerp, WeightDecay,
};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm.
///
/// ```text
/// g ← ∇f(p) + λ·p
/// m ← m + (1 − β₁)·(g − m)
/// u ← max(β₂·u, |g| + ε)           (ε inside the max)
/// p ← p − lr/(1 − β₁ᵗ) · m/u
/// ```
///
/// [Kingma & Ba 2015, §7.1](https://arxiv.org/abs/1412.6980). Matches `torch.optim.Adamax`
/// (default lr 2e-3).
#[derive(Clone, Debug, PartialEq)]
pub struct Adamax {
    /// Decay rates (β₁, β₂) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to `|g|` inside the max (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ (default 0); a group may override it.
    pub weight_decay: f64,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// [`Adamax`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamaxState<T: Float> {
    /// First moment `m`.
    pub exp_avg: Tensor<T>,
    /// Exponentially weighted infinity norm `u`.
    pub exp_inf: Tensor<T>,
}

impl<T: Float> RuleState<T> for AdamaxState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![("exp_avg", &self.exp_avg), ("exp_inf", &self.exp_inf)]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![
            ("exp_avg", &mut self.exp_avg),
            ("exp_inf", &mut self.exp_inf),
        ]
    }
}

impl<T: Float> UpdateRule<T> for Adamax {
    type State = AdamaxState<T>;
    const NAME: &'static str = "adamax";

    fn validate(&self) -> Result<()> {
        validate_adam(self.betas, self.eps, self.weight_decay)
    }

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay)
    }

    fn momentum(&self) -> Option<f64> {
        Some(self.betas.0)
    }

    fn check_momentum(&self, momentum: f64) -> Result<()> {
        check_beta("betas.0", momentum)
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn validate_state(&self, state: &AdamaxState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["exp_inf"])
    }

    fn init(&self, param: &Tensor<T>) -> AdamaxState<T> {
        AdamaxState {
            exp_avg: param.zeros_like(),
            exp_inf: param.zeros_like(),
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut AdamaxState<T>,
    ) -> Result<()> {
        let (beta1, beta2) = (cx.momentum, self.betas.1);
        let g = WeightDecay::L2.apply(cx, param, grad);
        let clr = T::of(cx.lr / bias_correction(beta1, cx.step));
        let (w1, b2, eps) = (T::of(1.0 - beta1), T::of(beta2), T::of(self.eps));
        let g = g.as_slice();
        let slices = [
            param.as_mut_slice(),
            state.exp_avg.as_mut_slice(),
            state.exp_inf.as_mut_slice(),
        ];
        autograd::for_each_piece_mut(slices, |s, [p, m, u]| {
            let moments = m.iter_mut().zip(u.iter_mut());
            for ((p, &g), (m, u)) in p.iter_mut().zip(&g[s..]).zip(moments) {
                *m = lerp(*m, g, w1);
                *u = (*u * b2).max(g.abs() + eps);
                *p -= clr * (*m / *u);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps};

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, adamax/rosenbrock):
    //   torch.optim.Adamax([p], lr=0.01) on Rosenbrock from (-1.5, 2.0)
    #[test]
    fn adamax_matches_pytorch_on_rosenbrock() {
        assert_trajectory(
            &rosenbrock_steps(Adamax::default(), 0.01, 3),
            &[
                [-1.4900000000006453, 2.009999999998],
                [-1.4808329517984535, 2.019169169165418],
                [-1.4724701367075066, 2.027529602141153],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(Adamax::default(), 0.01);
    }
}
