//! AdamW: Adam with decoupled weight decay.

use autograd::{Float, ParamMut, Tensor};

use crate::adam::{adam_update, init_adam, validate_adam, AdamState};
use crate::common::{check_beta, check_state_non_negative_tensors, WeightDecay};
use crate::error::Result;
use crate::rule::{StepCx, UpdateRule};

/// AdamW: Adam whose weight decay shrinks the parameter instead of entering the gradient.
///
/// ```text
/// p ← p·(1 − lr·λ)
/// then the Adam update of [`Adam`](crate::Adam) with the untouched gradient
/// ```
///
/// [Loshchilov & Hutter 2019](https://arxiv.org/abs/1711.05101). Matches `torch.optim.AdamW`
/// (default lr 1e-3, weight_decay 1e-2).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// Decay rates (β₁, β₂) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay λ (default 1e-2); a group may override it.
    pub weight_decay: f64,
    /// AMSGrad (default false).
    pub amsgrad: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

impl<T: Float> UpdateRule<T> for AdamW {
    type State = AdamState<T>;
    const NAME: &'static str = "adamw";

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

    fn validate_state(&self, state: &AdamState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["exp_avg_sq", "max_exp_avg_sq"])
    }

    fn init(&self, param: &Tensor<T>) -> AdamState<T> {
        init_adam(param, self.amsgrad)
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut AdamState<T>,
    ) -> Result<()> {
        adam_update(
            (cx.momentum, self.betas.1),
            self.eps,
            WeightDecay::Decoupled,
            cx,
            param,
            grad,
            state,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps};

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, adamw/rosenbrock):
    //   torch.optim.AdamW([p], lr=0.01, weight_decay=0.1) on Rosenbrock from (-1.5, 2.0)
    #[test]
    fn adamw_matches_pytorch_on_rosenbrock() {
        let adamw = AdamW {
            weight_decay: 0.1,
            ..AdamW::default()
        };
        assert_trajectory(
            &rosenbrock_steps(adamw, 0.01, 3),
            &[
                [-1.4885000000006452, 2.007999999998],
                [-1.4771028669987682, 2.015901353972304],
                [-1.4658970782393774, 2.023613261155373],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(AdamW::default(), 0.01);
    }
}
