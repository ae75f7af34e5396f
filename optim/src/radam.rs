//! RAdam: Adam with a rectified adaptive learning rate.

use autograd::{Float, ParamMut, Tensor};

use crate::adam::{init_adam, validate_adam, AdamState};
use crate::common::{
    bias_correction, check_beta, check_state_non_negative_tensors, ema_square, lerp, WeightDecay,
};
use crate::error::Result;
use crate::rule::{StepCx, UpdateRule};

/// RAdam: Adam whose adaptive step is switched on only once the variance of the adaptive
/// rate is tractable, and rectified by `r_t` then.
///
/// ```text
/// g ← ∇f(p)                                (−∇f if maximize)
/// g ← g + λ·p, or p ← p·(1 − lr·λ) if decoupled_weight_decay
/// m ← m + (1 − β₁)·(g − m);  v ← β₂·v + (1 − β₂)·g²;  m̂ ← m/(1 − β₁ᵗ)
/// ρ∞ ← 2/(1 − β₂) − 1;  ρₜ ← ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ)
/// if ρₜ > 5:  rₜ ← √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ))
///             p ← p − m̂·lr·√(1 − β₂ᵗ)/(√v + ε)·rₜ      (ε before the bias correction)
/// else:       p ← p − m̂·lr                               (a bias-corrected momentum step)
/// ```
///
/// [Liu et al. 2020](https://arxiv.org/abs/1908.03265). Matches `torch.optim.RAdam`
/// (default lr 1e-3) with `foreach=False`; `ρₜ` is about `t` early on, so the first five
/// steps are never rectified.
#[derive(Clone, Debug, PartialEq)]
pub struct RAdam {
    /// Decay rates (β₁, β₂) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to `√v` (default 1e-8).
    pub eps: f64,
    /// Weight decay λ (default 0); a group may override it.
    pub weight_decay: f64,
    /// Decay the parameter as AdamW does instead of adding λ·p to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for RAdam {
    fn default() -> Self {
        RAdam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl<T: Float> UpdateRule<T> for RAdam {
    type State = AdamState<T>;
    const NAME: &'static str = "radam";

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

    fn init(&self, param: &Tensor<T>) -> AdamState<T> {
        init_adam(param, false)
    }

    fn validate_state(&self, state: &AdamState<T>) -> Result<()> {
        check_state_non_negative_tensors(state, &["exp_avg_sq"])
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut AdamState<T>,
    ) -> Result<()> {
        let (beta1, beta2) = (cx.momentum, self.betas.1);
        let decay = match self.decoupled_weight_decay {
            true => WeightDecay::Decoupled,
            false => WeightDecay::L2,
        };
        let g = decay.apply(cx, param, grad);
        let t = cx.step as f64;
        let bc1 = T::of(bias_correction(beta1, cx.step));
        let bc2 = bias_correction(beta2, cx.step);
        // Scalars in f64, in PyTorch's order (they are Python floats there).
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / bc2;
        let rect = (rho_t > 5.0).then(|| {
            // `** 0.5` in PyTorch: pow, not sqrt (both correctly rounded in glibc, but pow
            // is what runs there).
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .powf(0.5)
        });
        let (w1, b2, w2, eps, lr) = (
            T::of(1.0 - beta1),
            T::of(beta2),
            T::of(1.0 - beta2),
            T::of(self.eps),
            T::of(cx.lr),
        );
        let bc2_sqrt = T::of(bc2.powf(0.5));
        let AdamState {
            exp_avg,
            exp_avg_sq,
            ..
        } = state;
        let g = g.as_slice();
        let slices = [
            param.as_mut_slice(),
            exp_avg.as_mut_slice(),
            exp_avg_sq.as_mut_slice(),
        ];
        autograd::for_each_piece_mut(slices, |s, [p, m, v]| {
            let moments = m.iter_mut().zip(v.iter_mut());
            let params = p.iter_mut().zip(&g[s..]);
            match rect {
                Some(rect) => {
                    let rect = T::of(rect);
                    for ((p, &g), (m, v)) in params.zip(moments) {
                        *m = lerp(*m, g, w1);
                        *v = ema_square(*v, g, b2, w2);
                        let adaptive = bc2_sqrt / (v.sqrt() + eps);
                        *p -= *m / bc1 * lr * adaptive * rect;
                    }
                }
                None => {
                    for ((p, &g), (m, v)) in params.zip(moments) {
                        *m = lerp(*m, g, w1);
                        *v = ema_square(*v, g, b2, w2);
                        *p -= *m / bc1 * lr;
                    }
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_resume_is_bit_identical, run_steps};

    #[test]
    fn the_first_five_steps_are_a_bias_corrected_momentum_step() {
        // On L = Σ p², g = 2p; step 1: m = 0.1 g, m̂ = g, so p ← p − lr·2p.
        let got = run_steps(RAdam::default(), 0.1, &[1.0, -2.0], 1);
        assert_eq!(got, vec![1.0 - 0.1 * 2.0, -2.0 + 0.1 * 4.0]);
    }

    #[test]
    fn rectification_starts_at_step_six() {
        // ρ_t for β₂ = 0.999: ≈ t − small, so ρ_5 < 5 < ρ_6.
        let rho = |t: f64| {
            let b2: f64 = 0.999;
            let rho_inf = 2.0 / (1.0 - b2) - 1.0;
            rho_inf - 2.0 * t * b2.powf(t) / (1.0 - b2.powf(t))
        };
        assert!(rho(5.0) <= 5.0 && rho(6.0) > 5.0);
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(RAdam::default(), 0.01);
        assert_resume_is_bit_identical(
            RAdam {
                weight_decay: 0.01,
                decoupled_weight_decay: true,
                ..RAdam::default()
            },
            0.01,
        );
    }
}
