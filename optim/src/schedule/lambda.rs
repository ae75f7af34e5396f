//! Schedules given by a Rust closure of the epoch.

use std::fmt;

use super::{next_epoch, Epochs, LrScheduler, SchedulerState};
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

/// A factor as a function of the epoch.
pub type LrLambda = Box<dyn Fn(u64) -> f64>;

fn per_group(opt: &dyn Optimizer, lambdas: Vec<LrLambda>) -> Result<Vec<LrLambda>> {
    if lambdas.len() != opt.num_groups() {
        return Err(Error::StateLayout {
            what: "lr_lambdas".into(),
            expected: opt.num_groups(),
            found: lambdas.len(),
        });
    }
    Ok(lambdas)
}

/// The base rate times a closure of the epoch: `lr(e) = b · λ(e)`.
/// Matches `torch.optim.lr_scheduler.LambdaLR`.
///
/// ```
/// use autograd::{Param, Tensor};
/// use optim::{LambdaLr, LrScheduler, Optim, Optimizer, Sgd};
/// let p = Param::new(Tensor::from_vec(vec![1.0f64], [1])?);
/// let mut opt = Optim::new(vec![p], 0.1, Sgd::default())?;
/// // linear warm-up over 10 epochs
/// let mut s = LambdaLr::new(&mut opt, |e| ((e + 1) as f64 / 10.0).min(1.0))?;
/// assert!((opt.lr() - 0.01).abs() < 1e-15);
/// s.step(&mut opt)?;
/// assert!((opt.lr() - 0.02).abs() < 1e-15);
/// # Ok::<(), optim::Error>(())
/// ```
pub struct LambdaLr {
    lambdas: Vec<LrLambda>,
    epochs: Epochs,
}

impl fmt::Debug for LambdaLr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaLr")
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

impl LambdaLr {
    /// One closure for every group; sets the epoch-0 rate `b · λ(0)`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] when `λ(0)` makes an invalid rate.
    pub fn new(
        opt: &mut dyn Optimizer,
        lambda: impl Fn(u64) -> f64 + Clone + 'static,
    ) -> Result<Self> {
        let lambdas = (0..opt.num_groups())
            .map(|_| Box::new(lambda.clone()) as LrLambda)
            .collect();
        Self::per_group(opt, lambdas)
    }

    /// One closure per group.
    ///
    /// # Errors
    /// [`Error::StateLayout`] when the count differs from the groups';
    /// [`Error::InvalidHyperparameter`] when a `λ(0)` makes an invalid rate.
    pub fn per_group(opt: &mut dyn Optimizer, lambdas: Vec<LrLambda>) -> Result<Self> {
        let lambdas = per_group(opt, lambdas)?;
        let mut s = LambdaLr {
            lambdas,
            epochs: Epochs::new(opt)?,
        };
        s.initial_step(opt)?;
        Ok(s)
    }

    fn apply(&mut self, opt: &mut dyn Optimizer, e: u64) -> Result<()> {
        let lambdas = &self.lambdas;
        let mut epochs = self.epochs.clone();
        epochs.apply(opt, e, |g, _, base| base * lambdas[g](e))?;
        self.epochs = epochs;
        Ok(())
    }
}

impl LrScheduler for LambdaLr {
    fn name(&self) -> &'static str {
        "LambdaLr"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.epochs.last_epoch)?;
        self.apply(opt, e)
    }

    fn last_epoch(&self) -> u64 {
        self.epochs.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.epochs.last_lr
    }

    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.apply(opt, 0)
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("LambdaLr");
        self.epochs.save(&mut s);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("LambdaLr")?;
        self.epochs = self.epochs.load(state)?;
        Ok(())
    }
}

/// Multiplies the current rate by a closure of the epoch at every step:
/// `lr(e) = lr(e − 1) · λ(e)`. Matches `torch.optim.lr_scheduler.MultiplicativeLR`.
pub struct MultiplicativeLr {
    lambdas: Vec<LrLambda>,
    epochs: Epochs,
}

impl fmt::Debug for MultiplicativeLr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplicativeLr")
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

impl MultiplicativeLr {
    /// One closure for every group; leaves the rates as they are at epoch 0.
    ///
    /// # Errors
    /// None in practice; the signature matches the other schedules.
    pub fn new(
        opt: &mut dyn Optimizer,
        lambda: impl Fn(u64) -> f64 + Clone + 'static,
    ) -> Result<Self> {
        let lambdas = (0..opt.num_groups())
            .map(|_| Box::new(lambda.clone()) as LrLambda)
            .collect();
        Self::per_group(opt, lambdas)
    }

    /// One closure per group.
    ///
    /// # Errors
    /// [`Error::StateLayout`] when the count differs from the groups'.
    pub fn per_group(opt: &mut dyn Optimizer, lambdas: Vec<LrLambda>) -> Result<Self> {
        let lambdas = per_group(opt, lambdas)?;
        let mut s = MultiplicativeLr {
            lambdas,
            epochs: Epochs::new(opt)?,
        };
        s.initial_step(opt)?;
        Ok(s)
    }

    fn apply(&mut self, opt: &mut dyn Optimizer, e: u64, factor: bool) -> Result<()> {
        let lambdas = &self.lambdas;
        let mut epochs = self.epochs.clone();
        epochs.apply(opt, e, |g, lr, _| match factor {
            true => lr * lambdas[g](e),
            false => lr,
        })?;
        self.epochs = epochs;
        Ok(())
    }
}

impl LrScheduler for MultiplicativeLr {
    fn name(&self) -> &'static str {
        "MultiplicativeLr"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.epochs.last_epoch)?;
        self.apply(opt, e, true)
    }

    fn last_epoch(&self) -> u64 {
        self.epochs.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.epochs.last_lr
    }

    /// PyTorch's `_update_lr(0)` multiplies the current rate by `λ(0)`.
    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.apply(opt, 0, true)
    }

    /// At construction PyTorch leaves the rate alone.
    fn initial_step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.apply(opt, 0, false)
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("MultiplicativeLr");
        self.epochs.save(&mut s);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("MultiplicativeLr")?;
        self.epochs = self.epochs.load(state)?;
        Ok(())
    }
}
