//! The epoch-based schedules: each is PyTorch's recursive `get_lr` (what `step` runs), its
//! value at construction (`_initial_step`) and its closed form (what `restart` runs).

use std::f64::consts::PI;

use super::{invalid, next_epoch, Epochs, LrScheduler, SchedulerState};
use crate::common::check_finite_non_negative;
use crate::error::Result;
use crate::optimizer::Optimizer;

/// Implements [`LrScheduler`] for a struct with an `epochs: Epochs` field and the inherent
/// methods `recursive(e, lr, base)`, `initial(lr, base)` and `closed(e, base)`.
macro_rules! epoch_scheduler {
    ($ty:ident) => {
        impl $ty {
            fn apply(
                &mut self,
                opt: &mut dyn Optimizer,
                epoch: u64,
                f: impl Fn(&Self, f64, f64) -> f64,
            ) -> Result<()> {
                let mut epochs = self.epochs.clone();
                epochs.apply(opt, epoch, |_, lr, base| f(self, lr, base))?;
                self.epochs = epochs;
                Ok(())
            }
        }

        impl LrScheduler for $ty {
            fn name(&self) -> &'static str {
                stringify!($ty)
            }

            fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
                let e = next_epoch(self.epochs.last_epoch)?;
                self.apply(opt, e, |s, lr, base| s.recursive(e, lr, base))
            }

            fn last_epoch(&self) -> u64 {
                self.epochs.last_epoch
            }

            fn last_lr(&self) -> &[f64] {
                &self.epochs.last_lr
            }

            fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
                self.apply(opt, 0, |s, _, base| s.closed(0, base))
            }

            fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
                self.apply(opt, 0, |s, lr, base| s.initial(lr, base))
            }

            fn state(&self) -> SchedulerState {
                let mut s = SchedulerState::new(stringify!($ty));
                self.epochs.save(&mut s);
                s
            }

            fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
                state.expect_kind(stringify!($ty))?;
                self.epochs = self.epochs.load(state)?;
                Ok(())
            }
        }
    };
}

/// Builds `$ty { fields.., epochs }` over `opt` and applies epoch 0 as PyTorch's
/// constructor does.
macro_rules! construct {
    ($opt:expr, $ty:ident { $($field:ident),* }) => {{
        let mut s = $ty {
            $($field,)*
            epochs: Epochs::new($opt)?,
        };
        s.initial_step($opt)?;
        Ok(s)
    }};
}

fn check_gamma(gamma: f64) -> Result<()> {
    check_finite_non_negative("gamma", gamma)
}

/// Multiplies the rate by `gamma` every `step_size` epochs: `lr(e) = b · γ^⌊e/step_size⌋`.
/// Matches `torch.optim.lr_scheduler.StepLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    /// Epochs between decays.
    pub step_size: u64,
    /// Decay factor.
    pub gamma: f64,
    epochs: Epochs,
}

impl StepLr {
    /// Builds the schedule over `opt`'s rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for
    /// `step_size == 0` or a negative or non-finite `gamma`.
    pub fn new(opt: &mut dyn Optimizer, step_size: u64, gamma: f64) -> Result<Self> {
        if step_size == 0 {
            return Err(invalid("step_size", 0.0, "must be >= 1"));
        }
        check_gamma(gamma)?;
        construct!(opt, StepLr { step_size, gamma })
    }

    fn recursive(&self, e: u64, lr: f64, _: f64) -> f64 {
        if !e.is_multiple_of(self.step_size) {
            lr
        } else {
            lr * self.gamma
        }
    }

    fn initial(&self, lr: f64, _: f64) -> f64 {
        lr
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        base * self.gamma.powf((e / self.step_size) as f64)
    }
}
epoch_scheduler!(StepLr);

/// Multiplies the rate by `gamma` at each milestone epoch (a repeated milestone multiplies
/// again): `lr(e) = b · γ^(milestones ≤ e)`. Matches `torch.optim.lr_scheduler.MultiStepLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    /// Epochs at which to decay.
    pub milestones: Vec<u64>,
    /// Decay factor.
    pub gamma: f64,
    epochs: Epochs,
}

impl MultiStepLr {
    /// Builds the schedule over `opt`'s rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for a
    /// negative or non-finite `gamma`.
    pub fn new(opt: &mut dyn Optimizer, milestones: Vec<u64>, gamma: f64) -> Result<Self> {
        check_gamma(gamma)?;
        construct!(opt, MultiStepLr { milestones, gamma })
    }

    fn recursive(&self, e: u64, lr: f64, _: f64) -> f64 {
        let hits = self.milestones.iter().filter(|&&m| m == e).count();
        // PyTorch: lr * gamma ** count (one pow, not repeated products).
        if hits == 0 {
            lr
        } else {
            lr * self.gamma.powf(hits as f64)
        }
    }

    fn initial(&self, lr: f64, base: f64) -> f64 {
        self.recursive(0, lr, base)
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= e).count();
        base * self.gamma.powf(passed as f64)
    }
}
epoch_scheduler!(MultiStepLr);

/// Multiplies the rate by `factor` until epoch `total_iters`: `lr(e) = b · factor` for
/// `e < total_iters`, then `b`. Matches `torch.optim.lr_scheduler.ConstantLR`
/// (defaults factor 1/3, 5 epochs).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantLr {
    /// The factor, in (0, 1].
    pub factor: f64,
    /// Epochs it applies for.
    pub total_iters: u64,
    epochs: Epochs,
}

impl ConstantLr {
    /// Builds the schedule and sets the epoch-0 rate `lr · factor`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for `factor`
    /// outside (0, 1] (PyTorch divides by it at `total_iters`) or `total_iters == 0`.
    pub fn new(opt: &mut dyn Optimizer, factor: f64, total_iters: u64) -> Result<Self> {
        if !(factor > 0.0 && factor <= 1.0) {
            return Err(invalid("factor", factor, "must be in (0, 1]"));
        }
        if total_iters == 0 {
            return Err(invalid("total_iters", 0.0, "must be >= 1"));
        }
        construct!(
            opt,
            ConstantLr {
                factor,
                total_iters
            }
        )
    }

    fn recursive(&self, e: u64, lr: f64, _: f64) -> f64 {
        if e != self.total_iters {
            lr
        } else {
            lr * (1.0 / self.factor)
        }
    }

    fn initial(&self, lr: f64, _: f64) -> f64 {
        lr * self.factor
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        let done = if e >= self.total_iters { 1.0 } else { 0.0 };
        base * (self.factor + done * (1.0 - self.factor))
    }
}
epoch_scheduler!(ConstantLr);

/// Linear warm-up: scales the base rate from `start_factor` to `end_factor` over
/// `total_iters` epochs, then holds: `lr(e) = b·(s + (f − s)·min(e, n)/n)`.
/// Matches `torch.optim.lr_scheduler.LinearLR` (defaults s = 1/3, f = 1, n = 5).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearLr {
    /// Factor at epoch 0, in (0, 1].
    pub start_factor: f64,
    /// Factor from epoch `total_iters` on, in [0, 1].
    pub end_factor: f64,
    /// Length of the ramp in epochs.
    pub total_iters: u64,
    epochs: Epochs,
}

impl LinearLr {
    /// Builds the schedule and sets the epoch-0 rate `lr · start_factor`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for a factor
    /// out of range or `total_iters == 0`.
    pub fn new(
        opt: &mut dyn Optimizer,
        start_factor: f64,
        end_factor: f64,
        total_iters: u64,
    ) -> Result<Self> {
        if !(start_factor > 0.0 && start_factor <= 1.0) {
            return Err(invalid("start_factor", start_factor, "must be in (0, 1]"));
        }
        if !(0.0..=1.0).contains(&end_factor) {
            return Err(invalid("end_factor", end_factor, "must be in [0, 1]"));
        }
        if total_iters == 0 {
            return Err(invalid("total_iters", 0.0, "must be >= 1"));
        }
        construct!(
            opt,
            LinearLr {
                start_factor,
                end_factor,
                total_iters
            }
        )
    }

    fn recursive(&self, e: u64, lr: f64, _: f64) -> f64 {
        let (s, f, n) = (self.start_factor, self.end_factor, self.total_iters);
        if e > n {
            lr
        } else {
            lr * (1.0 + (f - s) / (n as f64 * s + (e - 1) as f64 * (f - s)))
        }
    }

    fn initial(&self, lr: f64, _: f64) -> f64 {
        lr * self.start_factor
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        let (s, f, n) = (self.start_factor, self.end_factor, self.total_iters);
        base * (s + (f - s) * n.min(e) as f64 / n as f64)
    }
}
epoch_scheduler!(LinearLr);

/// Multiplies the rate by `gamma` every epoch: `lr(e) = b · γ^e`.
/// Matches `torch.optim.lr_scheduler.ExponentialLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Decay factor per epoch.
    pub gamma: f64,
    epochs: Epochs,
}

impl ExponentialLr {
    /// Builds the schedule over `opt`'s rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for a
    /// negative or non-finite `gamma`.
    pub fn new(opt: &mut dyn Optimizer, gamma: f64) -> Result<Self> {
        check_gamma(gamma)?;
        construct!(opt, ExponentialLr { gamma })
    }

    fn recursive(&self, _: u64, lr: f64, _: f64) -> f64 {
        lr * self.gamma
    }

    fn initial(&self, lr: f64, _: f64) -> f64 {
        lr
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        base * self.gamma.powf(e as f64)
    }
}
epoch_scheduler!(ExponentialLr);

/// Polynomial decay to 0 over `total_iters` epochs: `lr(e) = b·(1 − min(e, n)/n)^power`.
/// Matches `torch.optim.lr_scheduler.PolynomialLR` (defaults 5 epochs, power 1).
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialLr {
    /// Epochs until the rate reaches 0.
    pub total_iters: u64,
    /// The power of the polynomial.
    pub power: f64,
    epochs: Epochs,
}

impl PolynomialLr {
    /// Builds the schedule over `opt`'s rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for
    /// `total_iters == 0` or a negative or non-finite `power`.
    pub fn new(opt: &mut dyn Optimizer, total_iters: u64, power: f64) -> Result<Self> {
        if total_iters == 0 {
            return Err(invalid("total_iters", 0.0, "must be >= 1"));
        }
        check_finite_non_negative("power", power)?;
        construct!(opt, PolynomialLr { total_iters, power })
    }

    fn recursive(&self, e: u64, lr: f64, _: f64) -> f64 {
        let n = self.total_iters as f64;
        if e > self.total_iters {
            lr
        } else {
            let ratio = (1.0 - e as f64 / n) / (1.0 - (e - 1) as f64 / n);
            lr * ratio.powf(self.power)
        }
    }

    fn initial(&self, lr: f64, _: f64) -> f64 {
        lr
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        let n = self.total_iters;
        base * (1.0 - n.min(e) as f64 / n as f64).powf(self.power)
    }
}
epoch_scheduler!(PolynomialLr);

/// Cosine annealing from the base rate to `eta_min` over `t_max` epochs (then back up,
/// periodically): `lr(e) = η_min + (b − η_min)·(1 + cos(π e / T_max))/2`.
///
/// [Loshchilov & Hutter 2017](https://arxiv.org/abs/1608.03983) without restarts. Matches
/// `torch.optim.lr_scheduler.CosineAnnealingLR`, whose step uses the recursive form.
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    /// Half-period in epochs.
    pub t_max: u64,
    /// Minimum rate.
    pub eta_min: f64,
    epochs: Epochs,
}

impl CosineAnnealingLr {
    /// Builds the schedule over `opt`'s rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for
    /// `t_max == 0` or a negative or non-finite `eta_min`.
    pub fn new(opt: &mut dyn Optimizer, t_max: u64, eta_min: f64) -> Result<Self> {
        if t_max == 0 {
            return Err(invalid("t_max", 0.0, "must be >= 1"));
        }
        check_finite_non_negative("eta_min", eta_min)?;
        construct!(opt, CosineAnnealingLr { t_max, eta_min })
    }

    fn recursive(&self, e: u64, lr: f64, base: f64) -> f64 {
        let eta_min = self.eta_min;
        let tf = self.t_max as f64;
        // In i128 so that any u64 t_max and epoch work: 2·t_max and e − 1 − t_max cannot
        // overflow or wrap negative there.
        let (ei, t) = (i128::from(e), i128::from(self.t_max));
        if (ei - 1 - t).rem_euclid(2 * t) == 0 {
            // The restart epoch, where the ratio below would divide by zero.
            lr + (base - eta_min) * (1.0 - (PI / tf).cos()) / 2.0
        } else {
            (1.0 + (PI * e as f64 / tf).cos()) / (1.0 + (PI * (e - 1) as f64 / tf).cos())
                * (lr - eta_min)
                + eta_min
        }
    }

    fn initial(&self, lr: f64, _: f64) -> f64 {
        lr
    }

    fn closed(&self, e: u64, base: f64) -> f64 {
        let eta_min = self.eta_min;
        eta_min + (base - eta_min) * (1.0 + (PI * e as f64 / self.t_max as f64).cos()) / 2.0
    }
}
epoch_scheduler!(CosineAnnealingLr);
