//! RMSprop, plain or centered, with optional momentum.

use autograd::{Float, ParamMut, Tensor};

use crate::common::{
    check_finite_non_negative, check_state_non_negative_tensors, check_unit_interval, ema_square,
    lerp, WeightDecay,
};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// RMSprop.
///
/// ```text
/// g ← ∇f(p) + λ·p
/// v ← α·v + (1 − α)·g²
/// ḡ ← ḡ + (1 − α)·(g − ḡ),  d ← √(v − ḡ²) + ε     if centered
/// d ← √v + ε                                      otherwise
/// b ← μ·b + g/d,  p ← p − lr·b                    if μ > 0
/// p ← p − lr·g/d                                  otherwise
/// ```
///
/// [Hinton, lecture 6e](https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf);
/// centered from [Graves 2013](https://arxiv.org/abs/1308.0850). Matches `torch.optim.RMSprop`
/// (default lr 1e-2).
#[derive(Clone, Debug, PartialEq)]
pub struct RmsProp {
    /// Smoothing constant α (default 0.99).
    pub alpha: f64,
    /// Added after the square root (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ (default 0); a group may override it.
    pub weight_decay: f64,
    /// Momentum μ (default 0).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the second moment (default false).
    pub centered: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// [`RmsProp`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsPropState<T: Float> {
    /// Running average `v` of squared gradients.
    pub square_avg: Tensor<T>,
    /// Momentum buffer `b`; `Some` only when `momentum > 0`.
    pub momentum_buffer: Option<Tensor<T>>,
    /// Running average `ḡ` of gradients; `Some` only when centered.
    pub grad_avg: Option<Tensor<T>>,
}

impl<T: Float> RuleState<T> for RmsPropState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        let mut v = vec![("square_avg", &self.square_avg)];
        v.extend(self.momentum_buffer.iter().map(|t| ("momentum_buffer", t)));
        v.extend(self.grad_avg.iter().map(|t| ("grad_avg", t)));
        v
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        let mut v = vec![("square_avg", &mut self.square_avg)];
        v.extend(
            self.momentum_buffer
                .iter_mut()
                .map(|t| ("momentum_buffer", t)),
        );
        v.extend(self.grad_avg.iter_mut().map(|t| ("grad_avg", t)));
        v
    }
}

impl<T: Float> UpdateRule<T> for RmsProp {
    type State = RmsPropState<T>;
    const NAME: &'static str = "rmsprop";

    fn validate(&self) -> Result<()> {
        check_unit_interval("alpha", self.alpha)?;
        check_finite_non_negative("eps", self.eps)?;
        check_finite_non_negative("momentum", self.momentum)?;
        check_finite_non_negative("weight_decay", self.weight_decay)
    }

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay)
    }

    /// The momentum, when there is one (a buffer exists only for `momentum > 0`).
    fn momentum(&self) -> Option<f64> {
        (self.momentum > 0.0).then_some(self.momentum)
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn validate_state(&self, state: &RmsPropState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["square_avg"])
    }

    fn init(&self, param: &Tensor<T>) -> RmsPropState<T> {
        RmsPropState {
            square_avg: param.zeros_like(),
            momentum_buffer: (self.momentum > 0.0).then(|| param.zeros_like()),
            grad_avg: self.centered.then(|| param.zeros_like()),
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut RmsPropState<T>,
    ) -> Result<()> {
        let g = WeightDecay::L2.apply(cx, param, grad);
        let (alpha, w, eps) = (T::of(self.alpha), T::of(1.0 - self.alpha), T::of(self.eps));
        let (lr, mu) = (T::of(cx.lr), T::of(cx.momentum));
        let mut bufs = state
            .momentum_buffer
            .as_mut()
            .map(|t| t.as_mut_slice().iter_mut());
        let mut gavgs = state.grad_avg.as_mut().map(|t| t.as_mut_slice().iter_mut());
        let sq = state.square_avg.as_mut_slice();
        for ((p, &g), v) in param.as_mut_slice().iter_mut().zip(g.as_slice()).zip(sq) {
            *v = ema_square(*v, g, alpha, w);
            let avg = match gavgs.as_mut().and_then(Iterator::next) {
                // v − ḡ² can round to a tiny difference of close numbers; PyTorch has the
                // same sensitivity, which is why its centered Rosenbrock case is cut short.
                Some(ga) => {
                    *ga = lerp(*ga, g, w);
                    (*v - *ga * *ga).sqrt() + eps
                }
                None => v.sqrt() + eps,
            };
            match bufs.as_mut().and_then(Iterator::next) {
                Some(b) => {
                    *b = *b * mu + g / avg;
                    *p -= lr * *b;
                }
                None => *p -= lr * (g / avg),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, assert_trajectory, rosenbrock_steps};

    // PyTorch 2.15, float64 (tests/data/optim_trajectories.json, rmsprop_centered_momentum):
    //   torch.optim.RMSprop([p], lr=0.01, alpha=0.9, momentum=0.5, centered=True)
    //   on Rosenbrock from (-1.5, 2.0)
    #[test]
    fn centered_momentum_matches_pytorch_on_rosenbrock() {
        let rms = RmsProp {
            alpha: 0.9,
            momentum: 0.5,
            centered: true,
            ..RmsProp::default()
        };
        assert_trajectory(
            &rosenbrock_steps(rms, 0.01, 3),
            &[
                [-1.466666666673835, 2.033333333311111],
                [-1.4344082124562454, 2.0654156298758246],
                [-1.4182036671033262, 2.0803845997174273],
            ],
        );
    }

    // As above with torch.optim.RMSprop([p], lr=0.008).
    #[test]
    fn plain_rmsprop_matches_pytorch_on_rosenbrock() {
        assert_trajectory(
            &rosenbrock_steps(RmsProp::default(), 0.008, 3),
            &[
                [-1.4200000000516129, 2.07999999984],
                [-1.4359044060290178, 2.060182966855185],
                [-1.4329364317704836, 2.0606960650417543],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        let rms = RmsProp {
            momentum: 0.5,
            centered: true,
            ..RmsProp::default()
        };
        assert_resume_is_bit_identical(rms, 0.01);
    }
}
