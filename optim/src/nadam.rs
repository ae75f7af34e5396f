//! NAdam: Adam with Nesterov momentum.

use autograd::{Float, ParamMut, Tensor};

use crate::adam::validate_adam;
use crate::common::{
    bias_correction, check_beta, check_finite_non_negative, check_state_non_negative_tensors,
    check_state_scalar, ema_square, lerp, WeightDecay,
};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// NAdam: Adam with Nesterov momentum and a momentum-decay schedule.
///
/// ```text
/// g ← ∇f(p) + λ·p                  (or p ← p·(1 − lr·λ) if decoupled_weight_decay)
/// μₜ ← β₁·(1 − ½·0.96^(t·ψ)),  μₜ₊₁ ← β₁·(1 − ½·0.96^((t+1)·ψ)),  Πₜ ← Πₜ₋₁·μₜ
/// m ← m + (1 − β₁)·(g − m)
/// v ← β₂·v + (1 − β₂)·g²
/// d ← √(v / (1 − β₂ᵗ)) + ε
/// p ← p − lr·(1 − μₜ)/(1 − Πₜ) · g/d
/// p ← p − lr·μₜ₊₁/(1 − Πₜ·μₜ₊₁) · m/d
/// ```
///
/// [Dozat 2016](https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ). Matches
/// `torch.optim.NAdam` (default lr 2e-3), including its two separate parameter updates.
#[derive(Clone, Debug, PartialEq)]
pub struct NAdam {
    /// Decay rates (β₁, β₂) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay λ (default 0); a group may override it.
    pub weight_decay: f64,
    /// Momentum decay ψ (default 4e-3).
    pub momentum_decay: f64,
    /// Decay the parameter as AdamW does instead of adding λ·p to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for NAdam {
    fn default() -> Self {
        NAdam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// [`NAdam`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct NAdamState<T: Float> {
    /// First moment `m`.
    pub exp_avg: Tensor<T>,
    /// Second moment `v`.
    pub exp_avg_sq: Tensor<T>,
    /// Running product Πₜ of the μ's (starts at 1); kept in `f64`.
    pub mu_product: f64,
}

impl<T: Float> RuleState<T> for NAdamState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![
            ("exp_avg", &mut self.exp_avg),
            ("exp_avg_sq", &mut self.exp_avg_sq),
        ]
    }
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("mu_product", self.mu_product)]
    }
    fn scalars_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        vec![("mu_product", &mut self.mu_product)]
    }
}

impl<T: Float> UpdateRule<T> for NAdam {
    type State = NAdamState<T>;
    const NAME: &'static str = "nadam";

    fn validate(&self) -> Result<()> {
        validate_adam(self.betas, self.eps, self.weight_decay)?;
        check_finite_non_negative("momentum_decay", self.momentum_decay)
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

    fn validate_state(&self, state: &NAdamState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["exp_avg_sq"])?;
        // Π of μ's in (0, β₁]: 1 − Π divides the update
        check_state_scalar(
            "mu_product",
            state.mu_product,
            |m| m > 0.0 && m <= 1.0,
            "must be in (0, 1]",
        )
    }

    fn init(&self, param: &Tensor<T>) -> NAdamState<T> {
        NAdamState {
            exp_avg: param.zeros_like(),
            exp_avg_sq: param.zeros_like(),
            mu_product: 1.0,
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut NAdamState<T>,
    ) -> Result<()> {
        let (beta1, beta2) = (cx.momentum, self.betas.1);
        let decay = match self.decoupled_weight_decay {
            true => WeightDecay::Decoupled,
            false => WeightDecay::L2,
        };
        let g = decay.apply(cx, param, grad);
        let t = cx.step as f64;
        let bc2 = T::of(bias_correction(beta2, cx.step));
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(t * self.momentum_decay));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * self.momentum_decay));
        state.mu_product *= mu;
        let c_grad = T::of(-cx.lr * (1.0 - mu) / (1.0 - state.mu_product));
        let c_avg = T::of((-cx.lr * mu_next) / (1.0 - state.mu_product * mu_next));
        let (w1, b2, w2, eps) = (
            T::of(1.0 - beta1),
            T::of(beta2),
            T::of(1.0 - beta2),
            T::of(self.eps),
        );
        let g = g.as_slice();
        let slices = [
            param.as_mut_slice(),
            state.exp_avg.as_mut_slice(),
            state.exp_avg_sq.as_mut_slice(),
        ];
        autograd::for_each_piece_mut(slices, |s, [p, m, v]| {
            let moments = m.iter_mut().zip(v.iter_mut());
            for ((p, &g), (m, v)) in p.iter_mut().zip(&g[s..]).zip(moments) {
                *m = lerp(*m, g, w1);
                *v = ema_square(*v, g, b2, w2);
                let denom = (*v / bc2).sqrt() + eps;
                // Two in-place updates in PyTorch's order, not one fused expression.
                *p += c_grad * (g / denom);
                *p += c_avg * (*m / denom);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps};

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, nadam/rosenbrock):
    //   torch.optim.NAdam([p], lr=0.01) on Rosenbrock from (-1.5, 2.0)
    #[test]
    fn nadam_matches_pytorch_on_rosenbrock() {
        assert_trajectory(
            &rosenbrock_steps(NAdam::default(), 0.01, 3),
            &[
                [-1.4894354822171278, 2.010564517781441],
                [-1.4822695731109894, 2.0177320734940625],
                [-1.4759561277792057, 2.024041093372762],
            ],
        );
    }

    #[test]
    fn resume_restores_mu_product_bit_identically() {
        assert_resume_is_bit_identical(NAdam::default(), 0.01);
    }

    #[test]
    fn negative_momentum_decay_is_rejected() {
        let bad = NAdam {
            momentum_decay: -1.0,
            ..NAdam::default()
        };
        let e = UpdateRule::<f64>::validate(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid momentum_decay -1: must be a finite number >= 0"
        );
    }
}
