//! The schedules that cycle the learning rate and, inversely, the momentum: 1cycle and CLR.

use std::f64::consts::PI;

use super::{base_lrs, invalid, next_epoch, set_lrs, LrScheduler, SchedulerState};
use crate::common::{check_finite_non_negative, check_lr};
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// How [`OneCycleLr`] moves between two values within a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anneal {
    /// `end + (start − end)/2·(1 + cos(π·pct))`.
    Cos,
    /// `(end − start)·pct + start`.
    Linear,
}

impl Anneal {
    fn at(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// Sets every group's momentum, then its rate (momenta first: they were checked when the
/// schedule was built, so a rejected rate cannot leave half a step applied).
fn set_all(opt: &mut dyn Optimizer, lrs: &[f64], momenta: Option<&[f64]>) -> Result<()> {
    for &lr in lrs {
        check_lr(lr)?;
    }
    if let Some(ms) = momenta {
        for (g, &m) in ms.iter().enumerate() {
            opt.set_group_momentum(g, m)?;
        }
    }
    set_lrs(opt, lrs)
}

/// Checks that every group of `opt` has a momentum to cycle.
fn check_momentum_support(opt: &dyn Optimizer, scheduler: &'static str) -> Result<()> {
    if opt.group_momentums().iter().any(Option::is_none) {
        return Err(Error::Unsupported {
            optimizer: scheduler,
            what: "cycle_momentum needs an optimizer with momentum or beta1 (set cycle_momentum to false)",
        });
    }
    Ok(())
}

/// The settings of [`OneCycleLr`], with PyTorch's names and defaults
/// ([`OneCycleSettings::new`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleSettings {
    /// The peak rate (every group).
    pub max_lr: f64,
    /// Steps in the cycle.
    pub total_steps: u64,
    /// Fraction of the cycle spent increasing the rate (default 0.3).
    pub pct_start: f64,
    /// Cosine or linear annealing (default cosine).
    pub anneal_strategy: Anneal,
    /// Cycle the momentum inversely to the rate (default true).
    pub cycle_momentum: bool,
    /// Momentum at the peak rate (default 0.85).
    pub base_momentum: f64,
    /// Momentum at the start and end (default 0.95).
    pub max_momentum: f64,
    /// `initial_lr = max_lr / div_factor` (default 25).
    pub div_factor: f64,
    /// `min_lr = initial_lr / final_div_factor` (default 1e4).
    pub final_div_factor: f64,
    /// Three phases (up, down to `initial_lr`, down to `min_lr`) as in the paper, instead
    /// of fastai's two (default false).
    pub three_phase: bool,
}

impl OneCycleSettings {
    /// PyTorch's defaults for a cycle of `total_steps` steps peaking at `max_lr`.
    pub fn new(max_lr: f64, total_steps: u64) -> Self {
        OneCycleSettings {
            max_lr,
            total_steps,
            pct_start: 0.3,
            anneal_strategy: Anneal::Cos,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }
}

/// Which value a phase starts or ends at.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lr {
    Initial,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Momentum {
    Max,
    Base,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Phase {
    end_step: f64,
    lr: (Lr, Lr),
    momentum: (Momentum, Momentum),
}

/// The 1cycle policy: the rate rises from `max_lr/div_factor` to `max_lr` over the first
/// `pct_start` of the cycle, then anneals to `initial_lr/final_div_factor`; the momentum
/// moves the other way between `max_momentum` and `base_momentum`.
///
/// [Smith & Topin 2017](https://arxiv.org/abs/1708.07120). Matches
/// `torch.optim.lr_scheduler.OneCycleLR` (phase ends at `pct_start·total − 1` and
/// `total − 1`, three-phase also `2·pct_start·total − 2`), including that it replaces the
/// optimiser's rate and momentum (β₁ for the Adam family) and sets `initial_lr`. One
/// deliberate difference: stepped once more than `total_steps − 1` times (PyTorch allows
/// reaching `total_steps`), the rate stays at its final value where PyTorch extrapolates
/// the last phase (to a negative rate with linear annealing).
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleLr {
    settings: OneCycleSettings,
    phases: Vec<Phase>,
    last_epoch: u64,
    last_lr: Vec<f64>,
}

impl OneCycleLr {
    /// Builds the schedule and applies step 0.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a bad setting (including a `pct_start` that
    /// makes a phase zero steps long, where PyTorch divides by zero);
    /// [`Error::Unsupported`] when `cycle_momentum` is on and the optimiser has no momentum.
    pub fn new(opt: &mut dyn Optimizer, settings: OneCycleSettings) -> Result<Self> {
        let s = &settings;
        check_lr(s.max_lr)
            .map_err(|_| invalid("max_lr", s.max_lr, "must be a finite number >= 0"))?;
        if s.total_steps == 0 {
            return Err(invalid("total_steps", 0.0, "must be >= 1"));
        }
        if !(0.0..=1.0).contains(&s.pct_start) {
            return Err(invalid("pct_start", s.pct_start, "must be in [0, 1]"));
        }
        for (name, v) in [
            ("div_factor", s.div_factor),
            ("final_div_factor", s.final_div_factor),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(name, v, "must be a finite number > 0"));
            }
        }
        check_finite_non_negative("base_momentum", s.base_momentum)?;
        check_finite_non_negative("max_momentum", s.max_momentum)?;
        let total = s.total_steps as f64;
        let phases = if s.three_phase {
            vec![
                Phase {
                    end_step: s.pct_start * total - 1.0,
                    lr: (Lr::Initial, Lr::Max),
                    momentum: (Momentum::Max, Momentum::Base),
                },
                Phase {
                    end_step: 2.0 * s.pct_start * total - 2.0,
                    lr: (Lr::Max, Lr::Initial),
                    momentum: (Momentum::Base, Momentum::Max),
                },
                Phase {
                    end_step: total - 1.0,
                    lr: (Lr::Initial, Lr::Min),
                    momentum: (Momentum::Max, Momentum::Max),
                },
            ]
        } else {
            vec![
                Phase {
                    end_step: s.pct_start * total - 1.0,
                    lr: (Lr::Initial, Lr::Max),
                    momentum: (Momentum::Max, Momentum::Base),
                },
                Phase {
                    end_step: total - 1.0,
                    lr: (Lr::Max, Lr::Min),
                    momentum: (Momentum::Base, Momentum::Max),
                },
            ]
        };
        let mut start = 0.0;
        for p in &phases {
            if p.end_step == start {
                return Err(invalid(
                    "pct_start",
                    s.pct_start,
                    "makes a phase of the cycle zero steps long",
                ));
            }
            start = p.end_step;
        }
        if s.cycle_momentum {
            check_momentum_support(opt, "OneCycleLr")?;
        }
        let initial = s.max_lr / s.div_factor;
        for g in 0..opt.num_groups() {
            opt.set_group_initial_lr(g, initial)?;
            if s.cycle_momentum {
                opt.set_group_momentum(g, s.max_momentum)?;
            }
        }
        let mut sched = OneCycleLr {
            phases,
            last_epoch: 0,
            last_lr: opt.group_lrs(),
            settings,
        };
        sched.restart(opt)?;
        Ok(sched)
    }

    /// The settings.
    pub fn settings(&self) -> &OneCycleSettings {
        &self.settings
    }

    /// The rate and momentum at step `step`.
    fn at(&self, step: u64) -> (f64, f64) {
        let s = &self.settings;
        let initial = s.max_lr / s.div_factor;
        let lr_of = |w: Lr| match w {
            Lr::Initial => initial,
            Lr::Max => s.max_lr,
            Lr::Min => initial / s.final_div_factor,
        };
        let m_of = |w: Momentum| match w {
            Momentum::Max => s.max_momentum,
            Momentum::Base => s.base_momentum,
        };
        let step = step as f64;
        let mut start = 0.0;
        let last = self.phases.len() - 1;
        for (i, p) in self.phases.iter().enumerate() {
            if step <= p.end_step || i == last {
                // PyTorch lets the schedule be stepped once past its last step (to
                // total_steps, where the loop's final scheduler step lands) and
                // extrapolates there, which linear annealing takes below zero. Here that
                // step holds the end values instead; the steps a run takes are unchanged.
                let pct = ((step - start) / (p.end_step - start)).min(1.0);
                let a = s.anneal_strategy;
                return (
                    a.at(lr_of(p.lr.0), lr_of(p.lr.1), pct),
                    a.at(m_of(p.momentum.0), m_of(p.momentum.1), pct),
                );
            }
            start = p.end_step;
        }
        unreachable!("internal: the last phase always matches")
    }

    fn apply(&mut self, opt: &mut dyn Optimizer, step: u64) -> Result<()> {
        if step > self.settings.total_steps {
            return Err(Error::Unsupported {
                optimizer: "OneCycleLr",
                what: "stepped more than total_steps times",
            });
        }
        let (lr, m) = self.at(step);
        let n = self.last_lr.len();
        let lrs = vec![lr; n];
        let ms = vec![m; n];
        set_all(opt, &lrs, self.settings.cycle_momentum.then_some(&ms[..]))?;
        self.last_epoch = step;
        self.last_lr = lrs;
        Ok(())
    }
}

impl LrScheduler for OneCycleLr {
    fn name(&self) -> &'static str {
        "OneCycleLr"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.last_epoch)?;
        self.apply(opt, e)
    }

    fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.apply(opt, 0)
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("OneCycleLr");
        s.put_u64("last_epoch", self.last_epoch);
        s.put_f64s("last_lr", &self.last_lr);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("OneCycleLr")?;
        let last_epoch = state.get_u64("last_epoch")?;
        if last_epoch > self.settings.total_steps {
            return Err(state.invalid(
                "last_epoch",
                last_epoch as f64,
                "must be at most total_steps",
            ));
        }
        let last_lr = state.get_lrs("last_lr", self.last_lr.len())?;
        (self.last_epoch, self.last_lr) = (last_epoch, last_lr);
        Ok(())
    }
}

/// How [`CyclicLr`] scales the amplitude from cycle to cycle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CyclicMode {
    /// Constant amplitude.
    Triangular,
    /// Amplitude halved every cycle: factor `1/2^(cycle − 1)`.
    Triangular2,
    /// Amplitude times `γ^e` at step `e`.
    ExpRange {
        /// The decay per step.
        gamma: f64,
    },
}

/// The settings of [`CyclicLr`], with PyTorch's names and defaults
/// ([`CyclicSettings::new`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CyclicSettings {
    /// Lower rate of the cycle (every group).
    pub base_lr: f64,
    /// Upper rate of the cycle.
    pub max_lr: f64,
    /// Steps in the rising half (default 2000).
    pub step_size_up: u64,
    /// Steps in the falling half; `None` = `step_size_up` (default).
    pub step_size_down: Option<u64>,
    /// Amplitude scaling (default triangular).
    pub mode: CyclicMode,
    /// Cycle the momentum inversely to the rate (default true).
    pub cycle_momentum: bool,
    /// Momentum at the peak rate (default 0.8).
    pub base_momentum: f64,
    /// Momentum at the base rate (default 0.9).
    pub max_momentum: f64,
}

impl CyclicSettings {
    /// PyTorch's defaults between `base_lr` and `max_lr`.
    pub fn new(base_lr: f64, max_lr: f64) -> Self {
        CyclicSettings {
            base_lr,
            max_lr,
            step_size_up: 2000,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            cycle_momentum: true,
            base_momentum: 0.8,
            max_momentum: 0.9,
        }
    }
}

/// Cyclical learning rates: a triangle wave between `base_lr` and `max_lr` (rising for
/// `step_size_up` steps, falling for `step_size_down`), its amplitude scaled per
/// [`CyclicMode`]; the momentum moves the other way.
///
/// [Smith 2017](https://arxiv.org/abs/1506.01186). Matches
/// `torch.optim.lr_scheduler.CyclicLR`, including that it replaces the optimiser's rate by
/// `base_lr` and its momentum (β₁ for the Adam family) by `max_momentum`.
#[derive(Clone, Debug, PartialEq)]
pub struct CyclicLr {
    settings: CyclicSettings,
    total_size: f64,
    step_ratio: f64,
    last_epoch: u64,
    last_lr: Vec<f64>,
}

impl CyclicLr {
    /// Builds the schedule and applies step 0.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a bad setting; [`Error::Unsupported`] when
    /// `cycle_momentum` is on and the optimiser has no momentum.
    pub fn new(opt: &mut dyn Optimizer, settings: CyclicSettings) -> Result<Self> {
        let s = &settings;
        check_lr(s.base_lr)
            .map_err(|_| invalid("base_lr", s.base_lr, "must be a finite number >= 0"))?;
        check_lr(s.max_lr)
            .map_err(|_| invalid("max_lr", s.max_lr, "must be a finite number >= 0"))?;
        if s.step_size_up == 0 {
            return Err(invalid("step_size_up", 0.0, "must be >= 1"));
        }
        if let CyclicMode::ExpRange { gamma } = s.mode {
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(invalid("gamma", gamma, "must be a finite number > 0"));
            }
        }
        check_finite_non_negative("base_momentum", s.base_momentum)?;
        check_finite_non_negative("max_momentum", s.max_momentum)?;
        if s.cycle_momentum {
            check_momentum_support(opt, "CyclicLr")?;
        }
        let up = s.step_size_up as f64;
        let down = s.step_size_down.map_or(up, |d| d as f64);
        let total_size = up + down;
        for g in 0..opt.num_groups() {
            opt.set_group_lr(g, s.base_lr)?;
            if s.cycle_momentum {
                opt.set_group_momentum(g, s.max_momentum)?;
            }
        }
        // PyTorch's constructor runs its first step with the groups' initial_lr as base
        // rates and only then sets base_lr; they differ when an earlier schedule set
        // initial_lr.
        let initial_bases = base_lrs(opt)?;
        let mut sched = CyclicLr {
            total_size,
            step_ratio: up / total_size,
            last_epoch: 0,
            last_lr: opt.group_lrs(),
            settings,
        };
        sched.apply(opt, 0, &initial_bases)?;
        Ok(sched)
    }

    /// The settings.
    pub fn settings(&self) -> &CyclicSettings {
        &self.settings
    }

    fn apply(&mut self, opt: &mut dyn Optimizer, e: u64, bases: &[f64]) -> Result<()> {
        let s = &self.settings;
        let ef = e as f64;
        let cycle = (1.0 + ef / self.total_size).floor();
        let x = 1.0 + ef / self.total_size - cycle;
        let scale = if x <= self.step_ratio {
            x / self.step_ratio
        } else {
            (x - 1.0) / (self.step_ratio - 1.0)
        };
        let factor = match s.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange { gamma } => gamma.powf(ef),
        };
        let lrs: Vec<f64> = bases
            .iter()
            .map(|&b| b + (s.max_lr - b) * scale * factor)
            .collect();
        let m = s.max_momentum - (s.max_momentum - s.base_momentum) * scale * factor;
        let ms = vec![m; lrs.len()];
        set_all(opt, &lrs, s.cycle_momentum.then_some(&ms[..]))?;
        self.last_epoch = e;
        self.last_lr = lrs;
        Ok(())
    }

    fn bases(&self) -> Vec<f64> {
        vec![self.settings.base_lr; self.last_lr.len()]
    }
}

impl LrScheduler for CyclicLr {
    fn name(&self) -> &'static str {
        "CyclicLr"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.last_epoch)?;
        self.apply(opt, e, &self.bases())
    }

    fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.apply(opt, 0, &self.bases())
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("CyclicLr");
        s.put_u64("last_epoch", self.last_epoch);
        s.put_f64s("last_lr", &self.last_lr);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("CyclicLr")?;
        let last_epoch = state.get_u64("last_epoch")?;
        let last_lr = state.get_lrs("last_lr", self.last_lr.len())?;
        (self.last_epoch, self.last_lr) = (last_epoch, last_lr);
        Ok(())
    }
}
