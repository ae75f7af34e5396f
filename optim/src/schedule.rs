//! Learning-rate schedules that drive [`Optimizer::set_group_lr`], as `torch.optim.lr_scheduler`.
//!
//! Each scheduler is built from the optimiser (recording every group's learning rate as its
//! base rate and setting the epoch-0 rate, as PyTorch's constructors do) and then stepped
//! once per epoch, after [`Optimizer::step`]. The epoch-based ones use PyTorch's recursive
//! (chainable) forms: each step rescales the group's *current* rate, so rounding follows
//! PyTorch and two schedulers can be chained. Each doc gives the closed form it agrees with.
//!
//! | scheduler | closed form of `lr(e)` |
//! | --- | --- |
//! | [`StepLr`] | `base · γ^⌊e / step_size⌋` |
//! | [`MultiStepLr`] | `base · γ^(milestones ≤ e)` |
//! | [`ExponentialLr`] | `base · γ^e` |
//! | [`CosineAnnealingLr`] | `η_min + (base − η_min)·(1 + cos(π e / T_max))/2` |
//! | [`LinearLr`] (warm-up) | `base · (s + (f − s)·min(e, n)/n)` |
//! | [`ReduceLrOnPlateau`] | `lr · factor` after `patience` epochs without improvement |

use std::f64::consts::PI;

use crate::common::check_finite_non_negative;
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// A learning-rate schedule, stepped once per epoch.
pub trait LrScheduler {
    /// Advances one epoch and writes the new learning rates into `opt`.
    ///
    /// # Errors
    /// [`Error::NoSuchGroup`] when `opt` has fewer groups than at construction;
    /// [`Error::MissingMetric`] for [`ReduceLrOnPlateau`] without an observed metric.
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()>;

    /// Epochs stepped so far (PyTorch's `last_epoch`; 0 right after construction).
    fn last_epoch(&self) -> u64;

    /// The learning rates the last step set, one per group (PyTorch's `get_last_lr()`).
    fn last_lr(&self) -> &[f64];
}

fn invalid(name: &'static str, value: f64, reason: &'static str) -> Error {
    Error::InvalidHyperparameter {
        name,
        value,
        reason,
    }
}

/// Epoch counter and rates shared by the epoch-based schedulers.
#[derive(Clone, Debug, PartialEq)]
struct Epochs {
    base_lrs: Vec<f64>,
    last_epoch: u64,
    last_lr: Vec<f64>,
}

impl Epochs {
    /// Records the base rates and applies the epoch-0 rate `f(0, lr, base)`.
    fn start(opt: &mut dyn Optimizer, f: impl Fn(u64, f64, f64) -> f64) -> Result<Self> {
        let base_lrs = opt.group_lrs();
        let mut e = Epochs {
            last_lr: base_lrs.clone(),
            base_lrs,
            last_epoch: 0,
        };
        e.apply(opt, f)?;
        Ok(e)
    }

    /// Sets every group's rate to `f(last_epoch, current lr, base lr)`.
    fn apply(&mut self, opt: &mut dyn Optimizer, f: impl Fn(u64, f64, f64) -> f64) -> Result<()> {
        let current = opt.group_lrs();
        let mut lrs = Vec::with_capacity(self.base_lrs.len());
        for (g, &base) in self.base_lrs.iter().enumerate() {
            let lr = *current.get(g).ok_or(Error::NoSuchGroup {
                index: g,
                groups: current.len(),
            })?;
            lrs.push(f(self.last_epoch, lr, base));
        }
        for (g, &lr) in lrs.iter().enumerate() {
            opt.set_group_lr(g, lr)?;
        }
        self.last_lr = lrs;
        Ok(())
    }

    fn advance(&mut self, opt: &mut dyn Optimizer, f: impl Fn(u64, f64, f64) -> f64) -> Result<()> {
        self.last_epoch += 1;
        self.apply(opt, f)
    }
}

macro_rules! epoch_accessors {
    () => {
        fn last_epoch(&self) -> u64 {
            self.epochs.last_epoch
        }
        fn last_lr(&self) -> &[f64] {
            &self.epochs.last_lr
        }
    };
}

/// Multiplies the rate by `gamma` every `step_size` epochs: `lr(e) = base · γ^⌊e/step_size⌋`.
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
    /// Builds the schedule over `opt`'s current rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for `step_size == 0` or a negative `gamma`.
    pub fn new(opt: &mut dyn Optimizer, step_size: u64, gamma: f64) -> Result<Self> {
        if step_size == 0 {
            return Err(invalid("step_size", 0.0, "must be >= 1"));
        }
        check_finite_non_negative("gamma", gamma)?;
        Ok(StepLr {
            step_size,
            gamma,
            epochs: Epochs::start(opt, |_, lr, _| lr)?,
        })
    }
}

impl LrScheduler for StepLr {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (n, gamma) = (self.step_size, self.gamma);
        self.epochs
            .advance(opt, |e, lr, _| if e % n == 0 { lr * gamma } else { lr })
    }
    epoch_accessors!();
}

/// Multiplies the rate by `gamma` at each milestone epoch (a repeated milestone multiplies
/// again). Matches `torch.optim.lr_scheduler.MultiStepLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    /// Epochs at which to decay.
    pub milestones: Vec<u64>,
    /// Decay factor.
    pub gamma: f64,
    epochs: Epochs,
}

impl MultiStepLr {
    /// Builds the schedule over `opt`'s current rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a negative `gamma`.
    pub fn new(opt: &mut dyn Optimizer, milestones: Vec<u64>, gamma: f64) -> Result<Self> {
        check_finite_non_negative("gamma", gamma)?;
        Ok(MultiStepLr {
            milestones,
            gamma,
            epochs: Epochs::start(opt, |_, lr, _| lr)?,
        })
    }
}

impl LrScheduler for MultiStepLr {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let gamma = self.gamma;
        let ms = &self.milestones;
        self.epochs.advance(opt, |e, lr, _| {
            let hits = ms.iter().filter(|&&m| m == e).count();
            // PyTorch: lr * gamma ** count (one pow, not repeated products).
            if hits == 0 {
                lr
            } else {
                lr * gamma.powf(hits as f64)
            }
        })
    }
    epoch_accessors!();
}

/// Multiplies the rate by `gamma` every epoch: `lr(e) = base · γ^e`.
/// Matches `torch.optim.lr_scheduler.ExponentialLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Decay factor per epoch.
    pub gamma: f64,
    epochs: Epochs,
}

impl ExponentialLr {
    /// Builds the schedule over `opt`'s current rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a negative `gamma`.
    pub fn new(opt: &mut dyn Optimizer, gamma: f64) -> Result<Self> {
        check_finite_non_negative("gamma", gamma)?;
        Ok(ExponentialLr {
            gamma,
            epochs: Epochs::start(opt, |_, lr, _| lr)?,
        })
    }
}

impl LrScheduler for ExponentialLr {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let gamma = self.gamma;
        self.epochs.advance(opt, |_, lr, _| lr * gamma)
    }
    epoch_accessors!();
}

/// Cosine annealing from the base rate to `eta_min` over `t_max` epochs (then back up,
/// periodically): `lr(e) = η_min + (base − η_min)·(1 + cos(π e / T_max))/2`.
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
    /// Builds the schedule over `opt`'s current rates.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for `t_max == 0` or a negative `eta_min`.
    pub fn new(opt: &mut dyn Optimizer, t_max: u64, eta_min: f64) -> Result<Self> {
        if t_max == 0 {
            return Err(invalid("t_max", 0.0, "must be >= 1"));
        }
        check_finite_non_negative("eta_min", eta_min)?;
        Ok(CosineAnnealingLr {
            t_max,
            eta_min,
            epochs: Epochs::start(opt, |_, lr, _| lr)?,
        })
    }
}

impl LrScheduler for CosineAnnealingLr {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (t, eta_min) = (self.t_max as i64, self.eta_min);
        self.epochs.advance(opt, |e, lr, base| {
            let e = e as i64;
            let tf = t as f64;
            if (e - 1 - t).rem_euclid(2 * t) == 0 {
                // The restart epoch, where the ratio below would divide by zero.
                lr + (base - eta_min) * (1.0 - (PI / tf).cos()) / 2.0
            } else {
                (1.0 + (PI * e as f64 / tf).cos()) / (1.0 + (PI * (e - 1) as f64 / tf).cos())
                    * (lr - eta_min)
                    + eta_min
            }
        })
    }
    epoch_accessors!();
}

/// Linear warm-up: scales the base rate from `start_factor` to `end_factor` over
/// `total_iters` epochs, then holds: `lr(e) = base·(s + (f − s)·min(e, n)/n)`.
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
    /// Builds the schedule and sets the epoch-0 rate `base · start_factor`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a factor out of range or `total_iters == 0`.
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
        Ok(LinearLr {
            start_factor,
            end_factor,
            total_iters,
            epochs: Epochs::start(opt, |_, lr, _| lr * start_factor)?,
        })
    }
}

impl LrScheduler for LinearLr {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let (s, f, n) = (self.start_factor, self.end_factor, self.total_iters);
        self.epochs.advance(opt, |e, lr, _| {
            if e > n {
                lr
            } else {
                lr * (1.0 + (f - s) / (n as f64 * s + (e - 1) as f64 * (f - s)))
            }
        })
    }
    epoch_accessors!();
}

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`PlateauConfig::threshold`] is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Improvement means beating `best · (1 ∓ threshold)`.
    Rel,
    /// Improvement means beating `best ∓ threshold`.
    Abs,
}

/// Settings of [`ReduceLrOnPlateau`], with PyTorch's names and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Minimise or maximise the metric (default `Min`).
    pub mode: PlateauMode,
    /// Multiplier applied on a plateau, in [0, 1) (default 0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated before reducing (default 10).
    pub patience: u64,
    /// Minimum change that counts as improvement (default 1e-4).
    pub threshold: f64,
    /// Relative or absolute threshold (default `Rel`).
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting again (default 0).
    pub cooldown: u64,
    /// Lower bound on the rate (default 0).
    pub min_lr: f64,
    /// Reductions smaller than this are skipped (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// Reduces the rate by `factor` when a metric stops improving for `patience` epochs.
/// Matches `torch.optim.lr_scheduler.ReduceLROnPlateau`.
///
/// Give it the epoch's metric with [`observe`](ReduceLrOnPlateau::observe) then call
/// [`LrScheduler::step`], or do both with [`step_with`](ReduceLrOnPlateau::step_with).
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    last_epoch: u64,
    last_lr: Vec<f64>,
    pending: Option<f64>,
}

impl ReduceLrOnPlateau {
    /// Builds the scheduler; it does not change `opt`'s rates until a plateau.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for `factor` outside [0, 1) or a negative or
    /// non-finite `threshold`, `min_lr` or `eps`.
    pub fn new(opt: &dyn Optimizer, config: PlateauConfig) -> Result<Self> {
        if !(0.0..1.0).contains(&config.factor) {
            return Err(invalid("factor", config.factor, "must be in [0, 1)"));
        }
        check_finite_non_negative("threshold", config.threshold)?;
        check_finite_non_negative("min_lr", config.min_lr)?;
        check_finite_non_negative("eps", config.eps)?;
        let best = match config.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        Ok(ReduceLrOnPlateau {
            config,
            best,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
            last_lr: opt.group_lrs(),
            pending: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The best metric seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Epochs since the last improvement (reset by a reduction or cooldown).
    pub fn num_bad_epochs(&self) -> u64 {
        self.num_bad_epochs
    }

    /// Records this epoch's metric for the next [`LrScheduler::step`].
    pub fn observe(&mut self, metric: f64) {
        self.pending = Some(metric);
    }

    /// [`observe`](Self::observe) then [`step`](LrScheduler::step).
    ///
    /// # Errors
    /// As [`LrScheduler::step`].
    pub fn step_with(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        self.observe(metric);
        self.step(opt)
    }

    fn is_better(&self, a: f64) -> bool {
        let (t, best) = (self.config.threshold, self.best);
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }
}

impl LrScheduler for ReduceLrOnPlateau {
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let metric = self.pending.take().ok_or(Error::MissingMetric {
            scheduler: "ReduceLrOnPlateau",
        })?;
        self.last_epoch += 1;
        if self.is_better(metric) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.config.patience {
            for (g, old) in opt.group_lrs().into_iter().enumerate() {
                let new = (old * self.config.factor).max(self.config.min_lr);
                if old - new > self.config.eps {
                    opt.set_group_lr(g, new)?;
                }
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
        }
        self.last_lr = opt.group_lrs();
        Ok(())
    }

    fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }
}
