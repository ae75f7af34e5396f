//! Cosine annealing with warm restarts (SGDR).

use std::f64::consts::PI;

use super::{invalid, next_epoch, Epochs, LrScheduler, SchedulerState};
use crate::common::check_finite_non_negative;
use crate::error::Result;
use crate::optimizer::Optimizer;

/// Cosine annealing that restarts at the base rate after `T_0`, `T_0·T_mult`,
/// `T_0·T_mult²`, … epochs: `lr = η_min + (b − η_min)·(1 + cos(π T_cur / T_i))/2`, with
/// `T_cur` the epochs since the last restart and `T_i` the current cycle's length.
///
/// [Loshchilov & Hutter 2017](https://arxiv.org/abs/1608.03983). Matches
/// `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` stepped without an epoch argument.
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingWarmRestarts {
    /// Length of the first cycle.
    pub t_0: u64,
    /// Growth factor of the cycle length.
    pub t_mult: u64,
    /// Minimum rate.
    pub eta_min: f64,
    t_i: u64,
    t_cur: u64,
    epochs: Epochs,
}

impl CosineAnnealingWarmRestarts {
    /// Builds the schedule over `opt`'s rates (epoch 0 is the base rate).
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) for
    /// `t_0 == 0`, `t_mult == 0` or a negative or non-finite `eta_min`.
    pub fn new(opt: &mut dyn Optimizer, t_0: u64, t_mult: u64, eta_min: f64) -> Result<Self> {
        if t_0 == 0 {
            return Err(invalid("T_0", 0.0, "must be >= 1"));
        }
        if t_mult == 0 {
            return Err(invalid("T_mult", 0.0, "must be >= 1"));
        }
        check_finite_non_negative("eta_min", eta_min)?;
        let mut s = CosineAnnealingWarmRestarts {
            t_0,
            t_mult,
            eta_min,
            t_i: t_0,
            t_cur: 0,
            epochs: Epochs::new(opt)?,
        };
        s.restart(opt)?;
        Ok(s)
    }

    /// Epochs since the last restart.
    pub fn t_cur(&self) -> u64 {
        self.t_cur
    }

    /// The current cycle's length.
    pub fn t_i(&self) -> u64 {
        self.t_i
    }

    fn apply(&mut self, opt: &mut dyn Optimizer, e: u64, t_cur: u64, t_i: u64) -> Result<()> {
        let eta_min = self.eta_min;
        let phase = PI * t_cur as f64 / t_i as f64;
        let mut epochs = self.epochs.clone();
        epochs.apply(opt, e, |_, _, base| {
            eta_min + (base - eta_min) * (1.0 + phase.cos()) / 2.0
        })?;
        (self.epochs, self.t_cur, self.t_i) = (epochs, t_cur, t_i);
        Ok(())
    }
}

impl LrScheduler for CosineAnnealingWarmRestarts {
    fn name(&self) -> &'static str {
        "CosineAnnealingWarmRestarts"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.epochs.last_epoch)?;
        let (mut t_cur, mut t_i) = (self.t_cur + 1, self.t_i);
        if t_cur >= t_i {
            t_cur -= t_i;
            // Saturates only past 2⁶⁴ epochs per cycle, where no restart can come anyway.
            t_i = t_i.saturating_mul(self.t_mult);
        }
        self.apply(opt, e, t_cur, t_i)
    }

    fn last_epoch(&self) -> u64 {
        self.epochs.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.epochs.last_lr
    }

    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.apply(opt, 0, 0, self.t_0)
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("CosineAnnealingWarmRestarts");
        self.epochs.save(&mut s);
        s.put_u64("T_i", self.t_i);
        s.put_u64("T_cur", self.t_cur);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("CosineAnnealingWarmRestarts")?;
        let epochs = self.epochs.load(state)?;
        let t_i = state.get_u64("T_i")?;
        let t_cur = state.get_u64("T_cur")?;
        if t_i < self.t_0 {
            return Err(state.invalid("T_i", t_i as f64, "must be at least T_0"));
        }
        if t_cur >= t_i {
            return Err(state.invalid("T_cur", t_cur as f64, "must be below T_i"));
        }
        (self.epochs, self.t_i, self.t_cur) = (epochs, t_i, t_cur);
        Ok(())
    }
}
