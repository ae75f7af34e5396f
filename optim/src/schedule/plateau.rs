//! Reducing the rate when a metric stops improving.

use super::{invalid, next_epoch, set_lrs, LrScheduler, SchedulerState};
use crate::common::check_finite_non_negative;
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

impl PlateauMode {
    /// The starting "best" value, worse than any metric.
    fn worst(self) -> f64 {
        match self {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }
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
        let best = config.mode.worst();
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
    fn name(&self) -> &'static str {
        "ReduceLrOnPlateau"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let metric = self.pending.ok_or(Error::MissingMetric {
            scheduler: "ReduceLrOnPlateau",
        })?;
        let last_epoch = next_epoch(self.last_epoch)?;
        let (mut best, mut bad, mut cooldown) =
            (self.best, self.num_bad_epochs, self.cooldown_counter);
        if self.is_better(metric) {
            best = metric;
            bad = 0;
        } else {
            bad += 1;
        }
        if cooldown > 0 {
            cooldown -= 1;
            bad = 0;
        }
        if bad > self.config.patience {
            let lrs: Vec<f64> = opt
                .group_lrs()
                .into_iter()
                .map(|old| {
                    let new = (old * self.config.factor).max(self.config.min_lr);
                    // Only reductions bigger than eps apply (and never a raise to min_lr).
                    if old - new > self.config.eps {
                        new
                    } else {
                        old
                    }
                })
                .collect();
            set_lrs(opt, &lrs)?;
            cooldown = self.config.cooldown;
            bad = 0;
        }
        self.pending = None;
        (self.best, self.num_bad_epochs, self.cooldown_counter) = (best, bad, cooldown);
        self.last_epoch = last_epoch;
        self.last_lr = opt.group_lrs();
        Ok(())
    }

    fn needs_metric(&self) -> bool {
        true
    }

    /// Forgets the best metric and the counters (PyTorch's `_reset`), keeping the rates.
    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.best = self.config.mode.worst();
        self.num_bad_epochs = 0;
        self.cooldown_counter = 0;
        self.last_epoch = 0;
        self.pending = None;
        self.last_lr = opt.group_lrs();
        Ok(())
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("ReduceLrOnPlateau");
        s.put_u64("last_epoch", self.last_epoch);
        s.put_f64("best", self.best);
        s.put_u64("num_bad_epochs", self.num_bad_epochs);
        s.put_u64("cooldown_counter", self.cooldown_counter);
        s.put_f64s("last_lr", &self.last_lr);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("ReduceLrOnPlateau")?;
        let last_epoch = state.get_u64("last_epoch")?;
        let worst = self.config.mode.worst();
        // best is the mode's worst value (±inf) until the first metric, then finite.
        let best = state.get_f64_with(
            "best",
            |b| b.is_finite() || b == worst,
            "must be finite (or the mode's worst value before any metric)",
        )?;
        let num_bad_epochs = state.get_u64("num_bad_epochs")?;
        let cooldown_counter = state.get_u64("cooldown_counter")?;
        if cooldown_counter > self.config.cooldown {
            return Err(state.invalid(
                "cooldown_counter",
                cooldown_counter as f64,
                "must be at most the cooldown",
            ));
        }
        let last_lr = state.get_lrs("last_lr", self.last_lr.len())?;
        self.last_epoch = last_epoch;
        self.best = best;
        self.num_bad_epochs = num_bad_epochs;
        self.cooldown_counter = cooldown_counter;
        self.last_lr = last_lr;
        self.pending = None;
        Ok(())
    }

    fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }
}
