//! Learning-rate (and momentum) schedules that drive an [`Optimizer`]'s groups, as
//! `torch.optim.lr_scheduler`, with PyTorch's step order and formulas.
//!
//! Each scheduler is built from the optimiser and then stepped after
//! [`Optimizer::step`], once per epoch (or per batch for the cycling ones). Building one
//! does what PyTorch's constructor does: it records each group's `initial_lr` (the first
//! scheduler sets it, later ones reuse it: PyTorch's `setdefault`), takes its base rates
//! from it, and applies the epoch-0 rate, which several schedules change ([`LinearLr`],
//! [`ConstantLr`], [`OneCycleLr`], [`CyclicLr`]). Stepping uses PyTorch's recursive
//! (chainable) forms, so rounding follows PyTorch and schedules compose
//! ([`ChainedScheduler`]); each doc gives the closed form it agrees with, which
//! [`LrScheduler::restart`] uses.
//!
//! | scheduler | `lr(e)` (closed form; `b` = base rate) |
//! | --- | --- |
//! | [`StepLr`] | `b · γ^⌊e / step_size⌋` |
//! | [`MultiStepLr`] | `b · γ^(milestones ≤ e)` |
//! | [`ConstantLr`] | `b · factor` for `e < total_iters`, then `b` |
//! | [`LinearLr`] (warm-up) | `b · (s + (f − s)·min(e, n)/n)` |
//! | [`ExponentialLr`] | `b · γ^e` |
//! | [`PolynomialLr`] | `b · (1 − min(e, n)/n)^power` |
//! | [`CosineAnnealingLr`] | `η_min + (b − η_min)·(1 + cos(π e / T_max))/2` |
//! | [`CosineAnnealingWarmRestarts`] | the same in `T_cur / T_i`, restarting after `T_0, T_0·T_mult, …` |
//! | [`OneCycleLr`] | up from `max_lr/div_factor` to `max_lr`, down to `initial/final_div_factor`; momentum the other way |
//! | [`CyclicLr`] | triangle between `base_lr` and `max_lr` (halving, or `γ^e`); momentum the other way |
//! | [`LambdaLr`] | `b · λ(e)` for a Rust closure `λ` |
//! | [`MultiplicativeLr`] | `lr(e−1) · λ(e)` |
//! | [`SequentialLr`] | child `i` on `[milestones[i−1], milestones[i])`, each restarted at its epoch 0 |
//! | [`ChainedScheduler`] | every child each step, on the rate the previous left |
//! | [`ReduceLrOnPlateau`] | `lr · factor` after `patience` epochs without improvement of a metric |
//!
//! A scheduler's state ([`LrScheduler::state`]: epochs, base rates, counters) saves with
//! the optimiser's in one file ([`Optimizer::save_with_scheduler`]); its hyper-parameters,
//! like a rule's, are part of the code that builds it.

use std::collections::BTreeMap;

use crate::common::{check_lr, MAX_STEP};
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

mod combine;
mod cyclic;
mod epoch;
mod lambda;
mod plateau;
mod restarts;
#[cfg(test)]
mod tests;

pub use combine::{ChainedScheduler, SequentialLr};
pub use cyclic::{Anneal, CyclicLr, CyclicMode, CyclicSettings, OneCycleLr, OneCycleSettings};
pub use epoch::{
    ConstantLr, CosineAnnealingLr, ExponentialLr, LinearLr, MultiStepLr, PolynomialLr, StepLr,
};
pub use lambda::{LambdaLr, MultiplicativeLr};
pub use plateau::{PlateauConfig, PlateauMode, ReduceLrOnPlateau, ThresholdMode};
pub use restarts::CosineAnnealingWarmRestarts;

/// A learning-rate schedule.
pub trait LrScheduler {
    /// The scheduler's PyTorch-style name (`"StepLr"`), written into its state.
    fn name(&self) -> &'static str;

    /// Advances one epoch and writes the new learning rates (and momenta) into `opt`.
    ///
    /// # Errors
    /// [`Error::NoSuchGroup`] when `opt` has fewer groups than at construction;
    /// [`Error::InvalidHyperparameter`] when the schedule produces an invalid rate (a
    /// closure returning NaN); [`Error::MissingMetric`] for [`ReduceLrOnPlateau`] without
    /// an observed metric; [`Error::Unsupported`] for [`OneCycleLr`] past its total steps.
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()>;

    /// Epochs stepped so far (PyTorch's `last_epoch`; 0 right after construction).
    fn last_epoch(&self) -> u64;

    /// The learning rates the last step set, one per group (PyTorch's `get_last_lr()`).
    fn last_lr(&self) -> &[f64];

    /// Jumps back to epoch 0 and applies that epoch's rate from the closed form (PyTorch's
    /// `_update_lr(0)`): what [`SequentialLr`] does to a child at its milestone.
    ///
    /// # Errors
    /// As [`step`](LrScheduler::step).
    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()>;

    /// Applies epoch 0 as the constructor did, on the current rates (PyTorch's
    /// `_initial_step()`); what [`SequentialLr`] does to its first child. Defaults to
    /// [`restart`](LrScheduler::restart), which agrees for every schedule whose epoch-0 rate
    /// does not depend on the current one.
    ///
    /// # Errors
    /// As [`step`](LrScheduler::step).
    fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.restart(opt)
    }

    /// Whether [`step`](LrScheduler::step) needs a metric first (only
    /// [`ReduceLrOnPlateau`]); such schedulers cannot be combined.
    fn needs_metric(&self) -> bool {
        false
    }

    /// The scheduler's mutable state (epoch counters, base rates, last rates).
    fn state(&self) -> SchedulerState;

    /// Restores a state taken by [`state`](LrScheduler::state) from a scheduler of the same
    /// kind and settings, all or nothing, checking every value.
    ///
    /// # Errors
    /// [`Error::StateKind`] for another scheduler's state; [`Error::StateFile`] for a
    /// missing or unparsable entry; [`Error::InvalidState`] for an out-of-range value.
    fn load_state(&mut self, state: &SchedulerState) -> Result<()>;
}

/// A scheduler's state as string entries (stored as `scheduler.*` metadata next to the
/// optimiser's state), with typed, checked accessors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulerState {
    entries: BTreeMap<String, String>,
    /// Key prefix for error messages (`"0."` inside a combined scheduler's state).
    path: String,
}

impl SchedulerState {
    /// An empty state of the scheduler called `kind`.
    pub fn new(kind: &str) -> Self {
        let mut s = SchedulerState::default();
        s.entries.insert("kind".into(), kind.into());
        s
    }

    pub(crate) fn from_entries(entries: BTreeMap<String, String>) -> Self {
        SchedulerState {
            entries,
            path: String::new(),
        }
    }

    pub(crate) fn into_entries(self) -> BTreeMap<String, String> {
        self.entries
    }

    /// The raw entries.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    fn key(&self, key: &str) -> String {
        format!("scheduler.{}{key}", self.path)
    }

    /// Checks that the state is from a scheduler called `kind`.
    ///
    /// # Errors
    /// [`Error::StateKind`].
    pub fn expect_kind(&self, kind: &'static str) -> Result<()> {
        match self.entries.get("kind") {
            Some(k) if k == kind => Ok(()),
            found => Err(Error::StateKind {
                expected: kind,
                found: found.cloned().unwrap_or_else(|| "nothing".into()),
            }),
        }
    }

    /// Stores an integer.
    pub fn put_u64(&mut self, key: &str, value: u64) {
        self.entries.insert(key.into(), value.to_string());
    }

    /// Stores a float (shortest round-trip form, so it reloads bit for bit).
    pub fn put_f64(&mut self, key: &str, value: f64) {
        self.entries.insert(key.into(), format!("{value:?}"));
    }

    /// Stores a list of floats.
    pub fn put_f64s(&mut self, key: &str, values: &[f64]) {
        let s: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        self.entries.insert(key.into(), s.join(","));
    }

    /// Stores a child scheduler's state under `prefix.`.
    pub fn put_child(&mut self, prefix: &str, child: SchedulerState) {
        for (k, v) in child.entries {
            self.entries.insert(format!("{prefix}.{k}"), v);
        }
    }

    /// The child state stored under `prefix.`.
    pub fn child(&self, prefix: &str) -> SchedulerState {
        let p = format!("{prefix}.");
        SchedulerState {
            entries: self
                .entries
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_owned(), v.clone())))
                .collect(),
            path: format!("{}{p}", self.path),
        }
    }

    fn raw(&self, key: &str) -> Result<&str> {
        self.entries.get(key).map(String::as_str).ok_or_else(|| {
            autograd::io::Error::Metadata {
                key: self.key(key),
                problem: "is missing".into(),
            }
            .into()
        })
    }

    fn unparsable(&self, key: &str, value: &str) -> Error {
        autograd::io::Error::Metadata {
            key: self.key(key),
            problem: format!("= {value:?} does not parse"),
        }
        .into()
    }

    /// An epoch or step counter: at most 2⁵³.
    ///
    /// # Errors
    /// [`Error::StateFile`] when missing or unparsable; [`Error::InvalidState`] past 2⁵³.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let s = self.raw(key)?;
        let v: u64 = s.parse().map_err(|_| self.unparsable(key, s))?;
        if v > MAX_STEP {
            return Err(self.invalid(key, v as f64, "must be at most 2^53"));
        }
        Ok(v)
    }

    /// A float accepted by `ok` (e.g. `f64::is_finite`).
    ///
    /// # Errors
    /// [`Error::StateFile`] when missing or unparsable; [`Error::InvalidState`] with
    /// `reason` when `ok` rejects it.
    pub fn get_f64_with(
        &self,
        key: &str,
        ok: impl Fn(f64) -> bool,
        reason: &'static str,
    ) -> Result<f64> {
        let s = self.raw(key)?;
        let v: f64 = s.parse().map_err(|_| self.unparsable(key, s))?;
        if !ok(v) {
            return Err(self.invalid(key, v, reason));
        }
        Ok(v)
    }

    /// A list of learning rates: each finite and `>= 0`, `len` of them.
    ///
    /// # Errors
    /// As [`get_f64_with`](Self::get_f64_with); [`Error::StateLayout`] for another length.
    pub fn get_lrs(&self, key: &str, len: usize) -> Result<Vec<f64>> {
        let s = self.raw(key)?;
        let values: Vec<f64> = match s.is_empty() {
            true => Vec::new(),
            false => s
                .split(',')
                .map(|x| x.parse().map_err(|_| self.unparsable(key, s)))
                .collect::<Result<_>>()?,
        };
        if values.len() != len {
            return Err(Error::StateLayout {
                what: self.key(key),
                expected: len,
                found: values.len(),
            });
        }
        if let Some(&v) = values.iter().find(|&&v| check_lr(v).is_err()) {
            return Err(self.invalid(key, v, "must be a finite number >= 0"));
        }
        Ok(values)
    }

    /// An [`Error::InvalidState`] for `key` (with this state's path).
    pub fn invalid(&self, key: &str, value: f64, reason: &'static str) -> Error {
        Error::InvalidState {
            key: self.key(key),
            value,
            reason,
        }
    }
}

/// Each group's base rate: its `initial_lr`, set to the current rate for groups that have
/// none (PyTorch's `group.setdefault("initial_lr", group["lr"])`).
pub(crate) fn base_lrs(opt: &mut dyn Optimizer) -> Result<Vec<f64>> {
    let lrs = opt.group_lrs();
    let initial = opt.group_initial_lrs();
    let mut base = Vec::with_capacity(lrs.len());
    for (g, (lr, init)) in lrs.into_iter().zip(initial).enumerate() {
        match init {
            Some(i) => base.push(i),
            None => {
                opt.set_group_initial_lr(g, lr)?;
                base.push(lr);
            }
        }
    }
    Ok(base)
}

/// Sets the first `lrs.len()` groups' rates, all or nothing.
pub(crate) fn set_lrs(opt: &mut dyn Optimizer, lrs: &[f64]) -> Result<()> {
    let groups = opt.num_groups();
    if lrs.len() > groups {
        return Err(Error::NoSuchGroup {
            index: groups,
            groups,
        });
    }
    for &lr in lrs {
        check_lr(lr)?;
    }
    for (g, &lr) in lrs.iter().enumerate() {
        opt.set_group_lr(g, lr)?;
    }
    Ok(())
}

/// `epoch + 1`, an error past 2⁵³.
pub(crate) fn next_epoch(epoch: u64) -> Result<u64> {
    crate::optimizer::next_step(epoch, "scheduler.last_epoch")
}

/// Epoch counter and rates shared by the epoch-based schedulers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Epochs {
    pub(crate) base_lrs: Vec<f64>,
    pub(crate) last_epoch: u64,
    pub(crate) last_lr: Vec<f64>,
}

impl Epochs {
    /// Records the base rates (the groups' `initial_lr`); the caller applies epoch 0.
    pub(crate) fn new(opt: &mut dyn Optimizer) -> Result<Self> {
        let base_lrs = base_lrs(opt)?;
        Ok(Epochs {
            last_lr: opt.group_lrs(),
            base_lrs,
            last_epoch: 0,
        })
    }

    /// Sets every group's rate to `f(group, current lr, base lr)` at `epoch`, all or
    /// nothing.
    pub(crate) fn apply(
        &mut self,
        opt: &mut dyn Optimizer,
        epoch: u64,
        f: impl Fn(usize, f64, f64) -> f64,
    ) -> Result<()> {
        let current = opt.group_lrs();
        let mut lrs = Vec::with_capacity(self.base_lrs.len());
        for (g, &base) in self.base_lrs.iter().enumerate() {
            let lr = *current.get(g).ok_or(Error::NoSuchGroup {
                index: g,
                groups: current.len(),
            })?;
            lrs.push(f(g, lr, base));
        }
        set_lrs(opt, &lrs)?;
        self.last_epoch = epoch;
        self.last_lr = lrs;
        Ok(())
    }

    pub(crate) fn save(&self, s: &mut SchedulerState) {
        s.put_u64("last_epoch", self.last_epoch);
        s.put_f64s("base_lrs", &self.base_lrs);
        s.put_f64s("last_lr", &self.last_lr);
    }

    /// The loaded counterpart of `self` (same number of groups), not yet installed.
    pub(crate) fn load(&self, s: &SchedulerState) -> Result<Self> {
        let n = self.base_lrs.len();
        Ok(Epochs {
            last_epoch: s.get_u64("last_epoch")?,
            base_lrs: s.get_lrs("base_lrs", n)?,
            last_lr: s.get_lrs("last_lr", n)?,
        })
    }
}

fn invalid(name: &'static str, value: f64, reason: &'static str) -> Error {
    Error::InvalidHyperparameter {
        name,
        value,
        reason,
    }
}
