//! ASGD: averaged stochastic gradient descent.

use autograd::{Float, ParamMut, Tensor};

use crate::common::{
    check_finite_non_negative, check_state_finite, check_state_scalar, WeightDecay,
};
use crate::error::{Error, Result};
use crate::rule::{RuleState, StepCx, UpdateRule};

/// Averaged SGD: SGD with a decaying rate whose iterates are averaged (Polyak–Ruppert) once
/// `t0` steps have passed; the average `ax` is what one evaluates.
///
/// ```text
/// g ← g + λ_wd·p                       if weight_decay ≠ 0
/// p ← p·(1 − λ·η);  p ← p − η·g        (η as left by the previous step; lr at step 1)
/// ax ← p if μ = 1 else ax + (p − ax)·μ
/// η ← lr / (1 + λ·lr·t)^α;   μ ← 1 / max(1, t − t0)
/// ```
///
/// So `ax = p` up to step `t0 + 2`, and from then on the running mean of the parameters
/// after steps `t0 + 2, …, t`. [Polyak & Juditsky 1992](https://doi.org/10.1137/0330046).
/// Matches `torch.optim.ASGD` (default lr 0.01) with `foreach=False`.
///
/// The average is the state's `ax`:
///
/// ```
/// use autograd::{Param, Tensor};
/// use optim::{Asgd, Optim, Optimizer};
/// let p = Param::new(Tensor::from_vec(vec![1.0f64], [1])?);
/// let mut opt = Optim::new(vec![p.clone()], 0.01, Asgd { t0: 0.0, ..Asgd::default() })?;
/// for _ in 0..3 {
///     p.set_grad(Some(Tensor::from_vec(vec![1.0], [1])?))?;
///     opt.step()?;
/// }
/// let ax = &opt.state(&p).unwrap().ax;
/// assert!(ax.to_vec()[0] > p.value().to_vec()[0]); // the mean lags the iterate
/// # Ok::<(), optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Asgd {
    /// Decay term λ (default 1e-4).
    pub lambd: f64,
    /// Power α of the rate's decay (default 0.75).
    pub alpha: f64,
    /// The step from which averaging starts (default 1e6).
    pub t0: f64,
    /// L2 penalty (default 0); a group may override it.
    pub weight_decay: f64,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Asgd {
    fn default() -> Self {
        Asgd {
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// [`Asgd`]'s per-parameter state.
#[derive(Clone, Debug, PartialEq)]
pub struct AsgdState<T: Float> {
    /// The averaged parameters.
    pub ax: Tensor<T>,
    /// The rate the next step uses (`f64`, as PyTorch's default-dtype scalar).
    pub eta: f64,
    /// The averaging weight the next step uses.
    pub mu: f64,
}

impl<T: Float> RuleState<T> for AsgdState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![("ax", &self.ax)]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![("ax", &mut self.ax)]
    }
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("eta", self.eta), ("mu", self.mu)]
    }
    fn scalars_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        vec![("eta", &mut self.eta), ("mu", &mut self.mu)]
    }
}

impl<T: Float> UpdateRule<T> for Asgd {
    type State = AsgdState<T>;
    const NAME: &'static str = "asgd";

    fn validate(&self) -> Result<()> {
        check_finite_non_negative("lambd", self.lambd)?;
        check_finite_non_negative("alpha", self.alpha)?;
        if !self.t0.is_finite() {
            return Err(Error::InvalidHyperparameter {
                name: "t0",
                value: self.t0,
                reason: "must be finite",
            });
        }
        check_finite_non_negative("weight_decay", self.weight_decay)
    }

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay)
    }

    fn maximize(&self) -> bool {
        self.maximize
    }

    fn init(&self, param: &Tensor<T>) -> AsgdState<T> {
        // η is set to the group's lr on the first update (PyTorch creates it from
        // group["lr"] on that same step).
        AsgdState {
            ax: param.zeros_like(),
            eta: 0.0,
            mu: 1.0,
        }
    }

    fn validate_state(&self, state: &AsgdState<T>) -> Result<()> {
        check_state_finite("ax", &state.ax)?;
        check_state_scalar(
            "eta",
            state.eta,
            |e| e.is_finite() && e >= 0.0,
            "must be finite and >= 0",
        )?;
        check_state_scalar("mu", state.mu, |m| m > 0.0 && m <= 1.0, "must be in (0, 1]")
    }

    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut AsgdState<T>,
    ) -> Result<()> {
        if cx.step == 1 {
            state.eta = cx.lr;
        }
        let g = WeightDecay::L2.apply(cx, param, grad);
        let (keep, step) = (T::of(1.0 - self.lambd * state.eta), T::of(-state.eta));
        for (p, &g) in param.as_mut_slice().iter_mut().zip(g.as_slice()) {
            *p *= keep;
            *p += step * g;
        }
        if state.mu != 1.0 {
            let mu = T::of(state.mu);
            state.ax.zip_mut_with(param, |a, p| *a += (p - *a) * mu)?;
        } else {
            state.ax = param.clone();
        }
        let t = cx.step as f64;
        state.eta = cx.lr / (1.0 + self.lambd * cx.lr * t).powf(self.alpha);
        state.mu = 1.0 / (t - self.t0).max(1.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::assert_resume_is_bit_identical;
    use crate::{Optim, Optimizer};
    use autograd::Param;

    #[test]
    fn averaging_starts_after_t0_plus_one() {
        // Constant gradient 1, no decay: p_t = 1 − lr·t. t0 = 2: ax = p for t ≤ 4, then the
        // mean of p_4, p_5, ...
        let p = Param::new(Tensor::from_vec(vec![1.0f64], [1]).unwrap());
        let rule = Asgd {
            t0: 2.0,
            lambd: 0.0,
            ..Asgd::default()
        };
        let mut opt = Optim::new(vec![p.clone()], 0.1, rule).unwrap();
        let mut ps = Vec::new();
        for t in 1..=6 {
            p.set_grad(Some(Tensor::from_vec(vec![1.0], [1]).unwrap()))
                .unwrap();
            opt.step().unwrap();
            ps.push(p.value().to_vec()[0]);
            let ax = opt.state(&p).unwrap().ax.to_vec()[0];
            let want = if t <= 4 {
                ps[t - 1]
            } else {
                ps[3..t].iter().sum::<f64>() / (t - 3) as f64
            };
            assert!((ax - want).abs() < 1e-15, "t {t}: ax {ax} vs {want}");
        }
    }

    #[test]
    fn resume_is_bit_identical() {
        assert_resume_is_bit_identical(
            Asgd {
                t0: 2.0,
                ..Asgd::default()
            },
            0.001,
        );
    }
}
