//! Adam, with AMSGrad; shared with AdamW through [`adam_update`].

use autograd::{Float, ParamMut, Tensor};

use crate::common::{
    bias_correction, check_beta, check_finite_non_negative, check_state_non_negative_tensors,
    ema_square, lerp, WeightDecay,
};
use crate::error::Result;
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Adam: adaptive moment estimation.
///
/// ```text
/// g ← ∇f(p)                        (−∇f if maximize)
/// g ← g + λ·p                      if λ ≠ 0 (L2; AdamW decays p instead)
/// m ← m + (1 − β₁)·(g − m)         (lerp form)
/// v ← β₂·v + (1 − β₂)·g²
/// v̂max ← max(v̂max, v)              if amsgrad (raw v, not bias corrected)
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)     (√v̂max if amsgrad)
/// ```
///
/// [Kingma & Ba 2015](https://arxiv.org/abs/1412.6980); AMSGrad from
/// [Reddi et al. 2018](https://openreview.net/forum?id=ryQu7f-RZ). Matches `torch.optim.Adam`
/// (default lr 1e-3) with `foreach=False`: ε is added outside the root, after bias correction.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Decay rates (β₁, β₂) of the first and second moments (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ folded into the gradient (default 0); a group may override it.
    pub weight_decay: f64,
    /// Use the running maximum of `v` (AMSGrad; default false).
    pub amsgrad: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Per-parameter state of [`Adam`] and [`AdamW`](crate::AdamW).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState<T: Float> {
    /// First moment `m`.
    pub exp_avg: Tensor<T>,
    /// Second moment `v`.
    pub exp_avg_sq: Tensor<T>,
    /// Running maximum of `v`; `Some` only with `amsgrad`.
    pub max_exp_avg_sq: Option<Tensor<T>>,
}

impl<T: Float> RuleState<T> for AdamState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        let mut v = vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)];
        v.extend(self.max_exp_avg_sq.iter().map(|t| ("max_exp_avg_sq", t)));
        v
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        let mut v = vec![
            ("exp_avg", &mut self.exp_avg),
            ("exp_avg_sq", &mut self.exp_avg_sq),
        ];
        v.extend(
            self.max_exp_avg_sq
                .iter_mut()
                .map(|t| ("max_exp_avg_sq", t)),
        );
        v
    }
}

/// Checks Adam-family hyper-parameters.
pub(crate) fn validate_adam(betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<()> {
    check_finite_non_negative("eps", eps)?;
    check_beta("betas.0", betas.0)?;
    check_beta("betas.1", betas.1)?;
    check_finite_non_negative("weight_decay", weight_decay)
}

/// Fresh Adam-family state for `param`.
pub(crate) fn init_adam<T: Float>(param: &Tensor<T>, amsgrad: bool) -> AdamState<T> {
    AdamState {
        exp_avg: param.zeros_like(),
        exp_avg_sq: param.zeros_like(),
        max_exp_avg_sq: amsgrad.then(|| param.zeros_like()),
    }
}

/// One Adam step; `decay` is the only difference between Adam and AdamW.
pub(crate) fn adam_update<T: Float>(
    (beta1, beta2): (f64, f64),
    eps: f64,
    decay: WeightDecay,
    cx: &StepCx,
    param: &mut ParamMut<'_, T>,
    grad: &Tensor<T>,
    state: &mut AdamState<T>,
) {
    let g = decay.apply(cx, param, grad);
    let step_size = T::of(cx.lr / bias_correction(beta1, cx.step));
    let bc2_sqrt = T::of(bias_correction(beta2, cx.step).sqrt());
    let (w1, b2, w2, eps) = (
        T::of(1.0 - beta1),
        T::of(beta2),
        T::of(1.0 - beta2),
        T::of(eps),
    );
    let AdamState {
        exp_avg,
        exp_avg_sq,
        max_exp_avg_sq,
    } = state;
    let g = g.as_slice();
    // Two loops, so the common (non-AMSGrad) one has no per-element branch and vectorises:
    // the branchy single loop cost a quarter of an MLP training step (W1). Each element is
    // updated on its own, so splitting into pieces changes no bit.
    match max_exp_avg_sq {
        None => {
            let slices = [
                param.as_mut_slice(),
                exp_avg.as_mut_slice(),
                exp_avg_sq.as_mut_slice(),
            ];
            autograd::for_each_piece_mut(slices, |s, [p, m, v]| {
                let moments = m.iter_mut().zip(v.iter_mut());
                for ((p, &g), (m, v)) in p.iter_mut().zip(&g[s..]).zip(moments) {
                    *m = lerp(*m, g, w1);
                    *v = ema_square(*v, g, b2, w2);
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *p -= step_size * (*m / denom);
                }
            });
        }
        Some(vmax) => {
            let slices = [
                param.as_mut_slice(),
                exp_avg.as_mut_slice(),
                exp_avg_sq.as_mut_slice(),
                vmax.as_mut_slice(),
            ];
            autograd::for_each_piece_mut(slices, |s, [p, m, v, vmax]| {
                let moments = m.iter_mut().zip(v.iter_mut()).zip(vmax.iter_mut());
                for ((p, &g), ((m, v), vm)) in p.iter_mut().zip(&g[s..]).zip(moments) {
                    *m = lerp(*m, g, w1);
                    *v = ema_square(*v, g, b2, w2);
                    *vm = vm.max(*v);
                    let denom = vm.sqrt() / bc2_sqrt + eps;
                    *p -= step_size * (*m / denom);
                }
            });
        }
    }
}

impl<T: Float> UpdateRule<T> for Adam {
    type State = AdamState<T>;
    const NAME: &'static str = "adam";

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
            WeightDecay::L2,
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

    // PyTorch 2.15, float64, from tests/data/optim_trajectories.json (tools/torch_reference.py):
    //   p = torch.tensor([-1.5, 2.0], requires_grad=True); opt = torch.optim.Adam([p], lr=0.01)
    //   for _ in range(3): opt.zero_grad(); rosenbrock(p).backward(); opt.step(); print(p)
    #[test]
    fn adam_matches_pytorch_on_rosenbrock() {
        assert_trajectory(
            &rosenbrock_steps(Adam::default(), 0.01, 3),
            &[
                [-1.4900000000006453, 2.009999999998],
                [-1.4800827625793491, 2.0199175641793925],
                [-1.4703270820088348, 2.0296717846564474],
            ],
        );
    }

    // As above with torch.optim.Adam([p], lr=0.01, amsgrad=True, weight_decay=0.01).
    #[test]
    fn amsgrad_with_l2_matches_pytorch_on_rosenbrock() {
        let adam = Adam {
            amsgrad: true,
            weight_decay: 0.01,
            ..Adam::default()
        };
        assert_trajectory(
            &rosenbrock_steps(adam, 0.01, 3),
            &[
                [-1.490000000000645, 2.009999999997999],
                [-1.4800827505241083, 2.019917510764492],
                [-1.4703270309962069, 2.0296715570059285],
            ],
        );
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(
            Adam {
                amsgrad: true,
                ..Adam::default()
            },
            0.01,
        );
    }

    #[test]
    fn betas_outside_unit_interval_are_rejected() {
        let bad = Adam {
            betas: (0.9, 1.0),
            ..Adam::default()
        };
        let e = UpdateRule::<f64>::validate(&bad).unwrap_err();
        assert_eq!(e.to_string(), "invalid betas.1 1: must be in [0, 1)");
    }
}
