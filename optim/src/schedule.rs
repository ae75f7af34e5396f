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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Optim, ParamGroup, Sgd};
    use autograd::{Param, Tensor};

    /// An optimiser with two groups, base rates 0.1 and 0.02.
    fn opt() -> Optim<Sgd> {
        let p = || Param::new(Tensor::<f64>::zeros([1]).unwrap());
        Optim::with_groups(
            vec![
                ParamGroup::new(vec![p()], 0.1),
                ParamGroup::new(vec![p()], 0.02),
            ],
            Sgd::default(),
        )
        .unwrap()
    }

    const BASES: [f64; 2] = [0.1, 0.02];

    /// Steps `s` for `epochs` epochs and checks every group's rate against `closed(e, base)`.
    fn check(
        opt: &mut Optim<Sgd>,
        s: &mut dyn LrScheduler,
        epochs: u64,
        tol: f64,
        closed: impl Fn(u64, f64) -> f64,
    ) {
        for e in 0..=epochs {
            if e > 0 {
                s.step(opt).unwrap();
            }
            assert_eq!(s.last_epoch(), e);
            for (g, base) in BASES.iter().enumerate() {
                let (got, want) = (opt.group_lrs()[g], closed(e, *base));
                assert!(
                    (got - want).abs() <= tol * base,
                    "epoch {e} group {g}: {got} vs closed form {want}"
                );
                assert_eq!(s.last_lr()[g], got);
            }
        }
    }

    #[test]
    fn step_lr_decays_every_step_size_epochs() {
        let mut o = opt();
        let mut s = StepLr::new(&mut o, 3, 0.3).unwrap();
        check(&mut o, &mut s, 20, 1e-15, |e, b| {
            b * 0.3f64.powi((e / 3) as i32)
        });
    }

    #[test]
    fn multistep_lr_decays_at_milestones_counting_repeats() {
        let mut o = opt();
        let mut s = MultiStepLr::new(&mut o, vec![2, 5, 5], 0.1).unwrap();
        let hits = |e: u64| [2u64, 5, 5].iter().filter(|&&m| m <= e).count() as i32;
        check(&mut o, &mut s, 8, 1e-15, |e, b| b * 0.1f64.powi(hits(e)));
    }

    #[test]
    fn exponential_lr_is_geometric() {
        let mut o = opt();
        let mut s = ExponentialLr::new(&mut o, 0.9).unwrap();
        check(&mut o, &mut s, 30, 1e-14, |e, b| b * 0.9f64.powi(e as i32));
    }

    #[test]
    fn cosine_recursion_follows_the_closed_form_through_two_periods() {
        let mut o = opt();
        let eta_min = 0.001;
        let mut s = CosineAnnealingLr::new(&mut o, 10, eta_min).unwrap();
        check(&mut o, &mut s, 40, 1e-13, |e, b| {
            eta_min + (b - eta_min) * (1.0 + (PI * e as f64 / 10.0).cos()) / 2.0
        });
    }

    #[test]
    fn cosine_reaches_eta_min_at_t_max() {
        let mut o = opt();
        let mut s = CosineAnnealingLr::new(&mut o, 4, 0.0).unwrap();
        for _ in 0..4 {
            s.step(&mut o).unwrap();
        }
        // (1 + cos π) is exactly 0, so the recursion lands exactly on eta_min
        assert_eq!(o.group_lrs(), vec![0.0, 0.0]);
    }

    #[test]
    fn linear_warmup_ramps_then_holds() {
        let mut o = opt();
        let mut s = LinearLr::new(&mut o, 0.25, 1.0, 4).unwrap();
        assert_eq!(o.group_lrs(), vec![0.025, 0.005]); // epoch 0 = base · start_factor
        check(&mut o, &mut s, 10, 1e-15, |e, b| {
            b * (0.25 + 0.75 * e.min(4) as f64 / 4.0)
        });
    }

    #[test]
    fn schedulers_drive_a_dyn_optimizer() {
        let mut o = opt();
        let dynamic: &mut dyn Optimizer = &mut o;
        let mut s = ExponentialLr::new(dynamic, 0.5).unwrap();
        s.step(dynamic).unwrap();
        assert_eq!(dynamic.group_lrs(), vec![0.05, 0.01]);
    }

    #[test]
    fn plateau_reduces_after_patience_and_respects_cooldown_and_min_lr() {
        let mut o = opt();
        let config = PlateauConfig {
            patience: 2,
            factor: 0.5,
            cooldown: 1,
            min_lr: 0.03,
            ..PlateauConfig::default()
        };
        let mut s = ReduceLrOnPlateau::new(&o, config).unwrap();
        let metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95];
        let mut lrs = Vec::new();
        for m in metrics {
            s.step_with(&mut o, m).unwrap();
            lrs.push(o.group_lrs()[0]);
        }
        // improve, improve, bad 1, bad 2, bad 3 > patience → 0.05; cooldown epoch (bad reset),
        // bad 1, bad 2, bad 3 → max(0.025, min_lr 0.03) = 0.03
        assert_eq!(lrs, [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.03]);
        assert_eq!(s.best(), 0.9);
        // group 1 (0.02) is already below min_lr: max(0.01, 0.03) would raise it, and PyTorch
        // only applies a reduction (old - new > eps), so it stays.
        assert_eq!(o.group_lrs()[1], 0.02);
    }

    #[test]
    fn plateau_max_mode_with_absolute_threshold() {
        let mut o = opt();
        let config = PlateauConfig {
            mode: PlateauMode::Max,
            threshold_mode: ThresholdMode::Abs,
            threshold: 0.1,
            patience: 0,
            ..PlateauConfig::default()
        };
        let mut s = ReduceLrOnPlateau::new(&o, config).unwrap();
        s.step_with(&mut o, 0.5).unwrap(); // first value improves on -inf
        assert_eq!(o.lr(), 0.1);
        s.step_with(&mut o, 0.55).unwrap(); // +0.05 is below the 0.1 threshold: bad → reduce
        assert_eq!(o.lr(), 0.1 * 0.1);
        s.step_with(&mut o, 0.7).unwrap(); // +0.2 improves
        assert_eq!(s.best(), 0.7);
        assert_eq!(s.num_bad_epochs(), 0);
    }

    #[test]
    fn plateau_without_metric_is_an_error() {
        let mut o = opt();
        let mut s = ReduceLrOnPlateau::new(&o, PlateauConfig::default()).unwrap();
        let e = s.step(&mut o).unwrap_err();
        assert!(matches!(e, Error::MissingMetric { .. }));
        assert_eq!(
            e.to_string(),
            "ReduceLrOnPlateau: step called without a metric; call observe(metric) first"
        );
    }

    #[test]
    fn bad_schedule_settings_are_rejected() {
        let mut o = opt();
        let msg = |e: Error| e.to_string();
        assert_eq!(
            msg(StepLr::new(&mut o, 0, 0.1).unwrap_err()),
            "invalid step_size 0: must be >= 1"
        );
        assert_eq!(
            msg(ExponentialLr::new(&mut o, -0.5).unwrap_err()),
            "invalid gamma -0.5: must be a finite number >= 0"
        );
        assert_eq!(
            msg(CosineAnnealingLr::new(&mut o, 0, 0.0).unwrap_err()),
            "invalid t_max 0: must be >= 1"
        );
        assert_eq!(
            msg(LinearLr::new(&mut o, 0.0, 1.0, 5).unwrap_err()),
            "invalid start_factor 0: must be in (0, 1]"
        );
        assert_eq!(
            msg(LinearLr::new(&mut o, 0.5, 1.5, 5).unwrap_err()),
            "invalid end_factor 1.5: must be in [0, 1]"
        );
        let bad = PlateauConfig {
            factor: 1.0,
            ..PlateauConfig::default()
        };
        assert_eq!(
            msg(ReduceLrOnPlateau::new(&o, bad).unwrap_err()),
            "invalid factor 1: must be in [0, 1)"
        );
        // a failed constructor leaves the rates alone
        assert_eq!(o.group_lrs(), vec![0.1, 0.02]);
    }
}
