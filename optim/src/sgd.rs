//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use autograd::{Float, ParamMut, Tensor};

use crate::common::{
    check_finite_non_negative, check_unit_interval, incompatible, momentum_step, WeightDecay,
};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Stochastic gradient descent, optionally with (Nesterov) momentum.
///
/// ```text
/// g ← ∇f(p)                       (−∇f if maximize)
/// g ← g + λ·p                     if λ ≠ 0
/// b ← g                           if t = 1
/// b ← μ·b + (1 − τ)·g             if t > 1
/// g ← g + μ·b if nesterov else b  if μ ≠ 0
/// p ← p − lr·g
/// ```
///
/// Nesterov as in [Sutskever et al. 2013](https://proceedings.mlr.press/v28/sutskever13.html).
/// Matches `torch.optim.SGD` (its single-tensor path), including the first-step buffer
/// that skips the `1 − dampening` factor.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Momentum factor μ (default 0: plain SGD).
    pub momentum: f64,
    /// Dampening τ for momentum (default 0).
    pub dampening: f64,
    /// L2 penalty λ (default 0); a parameter group may override it.
    pub weight_decay: f64,
    /// Nesterov momentum (default false); needs `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// [`Sgd`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdState<T: Float> {
    /// The momentum buffer `b`; `None` when `momentum == 0`.
    pub momentum_buffer: Option<Tensor<T>>,
}

impl<T: Float> RuleState<T> for SgdState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        self.momentum_buffer
            .iter()
            .map(|b| ("momentum_buffer", b))
            .collect()
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        self.momentum_buffer
            .iter_mut()
            .map(|b| ("momentum_buffer", b))
            .collect()
    }
}

impl<T: Float> UpdateRule<T> for Sgd {
    type State = SgdState<T>;
    const NAME: &'static str = "sgd";

    fn validate(&self) -> Result<()> {
        check_finite_non_negative("momentum", self.momentum)?;
        check_unit_interval("dampening", self.dampening)?;
        check_finite_non_negative("weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(incompatible(
                "nesterov",
                1.0,
                "nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay)
    }

    /// The momentum, when there is one: a buffer exists only for `momentum > 0`, so a
    /// group or schedule can change a momentum but not add one.
    fn momentum(&self) -> Option<f64> {
        (self.momentum > 0.0).then_some(self.momentum)
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn init(&self, param: &Tensor<T>) -> SgdState<T> {
        // The buffer's value is replaced on step 1; allocating it here keeps the state's
        // tensor list fixed, which loading relies on.
        SgdState {
            momentum_buffer: (self.momentum != 0.0).then(|| param.zeros_like()),
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut SgdState<T>,
    ) -> Result<()> {
        let mut g = WeightDecay::L2.apply(cx, param, grad);
        // A group whose momentum was set to 0 skips the buffer, as PyTorch's `if momentum != 0`.
        if let (Some(buf), true) = (&mut state.momentum_buffer, cx.momentum != 0.0) {
            g = momentum_step(buf, &g, cx.step, cx.momentum, self.dampening, self.nesterov);
        }
        let lr = T::of(cx.lr);
        param.zip_mut_with(&g, |p, g| *p -= lr * g)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{
        assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps, run_steps,
    };

    // Reference from PyTorch 2.x (float64):
    //   p = torch.tensor([1.0, -2.0], requires_grad=True)
    //   opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
    //   for _ in range(3): opt.zero_grad(); (p ** 2).sum().backward(); opt.step()
    // computed by hand below from the update rule (g = 2p).
    #[test]
    fn momentum_dampening_wd_follows_the_torch_rule() {
        let sgd = Sgd {
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 0.01,
            ..Sgd::default()
        };
        let got = run_steps(sgd, 0.1, &[1.0, -2.0], 3);
        let (mut p, mut b) = (vec![1.0f64, -2.0], vec![0.0f64; 2]);
        for t in 1..=3 {
            for i in 0..2 {
                let g = 2.0 * p[i] + 0.01 * p[i];
                b[i] = if t == 1 { g } else { b[i] * 0.9 + 0.9 * g };
                p[i] -= 0.1 * b[i];
            }
        }
        assert_eq!(got, p);
    }

    #[test]
    fn plain_sgd_is_a_gradient_step_and_maximize_ascends() {
        assert_eq!(
            run_steps(Sgd::default(), 0.25, &[1.0, -2.0], 1),
            vec![0.5, -1.0]
        );
        let up = Sgd {
            maximize: true,
            ..Sgd::default()
        };
        assert_eq!(run_steps(up, 0.25, &[1.0, -2.0], 1), vec![1.5, -3.0]);
    }

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, sgd_nesterov/rosenbrock):
    //   torch.optim.SGD([p], lr=0.0005, momentum=0.9, nesterov=True) on Rosenbrock
    #[test]
    fn nesterov_matches_pytorch_on_rosenbrock() {
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        };
        assert_trajectory(
            &rosenbrock_steps(sgd, 0.0005, 3),
            &[
                [-1.35275, 2.0475],
                [-1.3973442284096873, 2.026412186875],
                [-1.4212740201351874, 2.0129843785385244],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        let sgd = Sgd {
            momentum: 0.9,
            dampening: 0.1,
            ..Sgd::default()
        };
        assert_resume_is_bit_identical(sgd, 0.0005);
        assert_resume_is_bit_identical(Sgd::default(), 0.001);
    }

    #[test]
    fn nesterov_without_momentum_is_rejected() {
        let e = UpdateRule::<f64>::validate(&Sgd {
            nesterov: true,
            ..Sgd::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid nesterov 1: nesterov momentum requires a momentum and zero dampening"
        );
    }
}
