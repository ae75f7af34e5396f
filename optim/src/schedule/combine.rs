//! Schedules made of other schedules.

use std::fmt;

use super::{next_epoch, set_lrs, LrScheduler, SchedulerState};
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

fn check_children(children: &[Box<dyn LrScheduler>], name: &'static str) -> Result<()> {
    if children.is_empty() {
        return Err(Error::Unsupported {
            optimizer: name,
            what: "needs at least one scheduler",
        });
    }
    if children.iter().any(|c| c.needs_metric()) {
        return Err(Error::Unsupported {
            optimizer: name,
            what: "cannot combine ReduceLrOnPlateau, whose step needs a metric",
        });
    }
    Ok(())
}

fn save_children(s: &mut SchedulerState, children: &[Box<dyn LrScheduler>]) {
    for (i, c) in children.iter().enumerate() {
        s.put_child(&i.to_string(), c.state());
    }
}

/// Restores every child, all or nothing (each child's own load is; a failure after the
/// first restores the earlier ones).
fn load_children(state: &SchedulerState, children: &mut [Box<dyn LrScheduler>]) -> Result<()> {
    let before: Vec<SchedulerState> = children.iter().map(|c| c.state()).collect();
    for (i, c) in children.iter_mut().enumerate() {
        if let Err(e) = c.load_state(&state.child(&i.to_string())) {
            for (c, b) in children.iter_mut().zip(&before).take(i) {
                c.load_state(b)?;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Runs child schedules one after another: child `i` governs epochs
/// `[milestones[i−1], milestones[i])` and is restarted at its own epoch 0 (from the
/// original base rate, [`LrScheduler::restart`]) when its milestone arrives.
/// Matches `torch.optim.lr_scheduler.SequentialLR`.
///
/// ```
/// use autograd::{Param, Tensor};
/// use optim::{CosineAnnealingLr, LinearLr, LrScheduler, Optim, Optimizer, SequentialLr, Sgd};
/// let p = Param::new(Tensor::from_vec(vec![1.0f64], [1])?);
/// let mut opt = Optim::new(vec![p], 0.1, Sgd::default())?;
/// // 3 epochs of warm-up from 0.01, then cosine from 0.1
/// let warmup = LinearLr::new(&mut opt, 0.1, 1.0, 3)?;
/// let cosine = CosineAnnealingLr::new(&mut opt, 10, 0.0)?;
/// let mut s = SequentialLr::new(&mut opt, vec![Box::new(warmup), Box::new(cosine)], vec![3])?;
/// for _ in 0..3 {
///     s.step(&mut opt)?;
/// }
/// assert_eq!(opt.lr(), 0.1); // the cosine's epoch 0
/// # Ok::<(), optim::Error>(())
/// ```
pub struct SequentialLr {
    children: Vec<Box<dyn LrScheduler>>,
    milestones: Vec<u64>,
    last_epoch: u64,
    last_lr: Vec<f64>,
}

impl fmt::Debug for SequentialLr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.children.iter().map(|c| c.name()).collect();
        f.debug_struct("SequentialLr")
            .field("children", &names)
            .field("milestones", &self.milestones)
            .field("last_epoch", &self.last_epoch)
            .finish()
    }
}

impl SequentialLr {
    /// Resets every group's rate to its `initial_lr` and applies the first child's epoch 0,
    /// as PyTorch's constructor does (the children were built over `opt` first).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for no children or a [`ReduceLrOnPlateau`](crate::ReduceLrOnPlateau);
    /// [`Error::InvalidHyperparameter`] when `milestones` is not one shorter than
    /// `children` or not non-decreasing.
    pub fn new(
        opt: &mut dyn Optimizer,
        mut children: Vec<Box<dyn LrScheduler>>,
        milestones: Vec<u64>,
    ) -> Result<Self> {
        check_children(&children, "SequentialLr")?;
        if milestones.len() + 1 != children.len() {
            return Err(Error::InvalidHyperparameter {
                name: "milestones",
                value: milestones.len() as f64,
                reason: "must have one entry fewer than the schedulers",
            });
        }
        if let Some(w) = milestones.windows(2).find(|w| w[1] < w[0]) {
            return Err(Error::InvalidHyperparameter {
                name: "milestones",
                value: w[1] as f64,
                reason: "must be non-decreasing",
            });
        }
        let initial: Vec<f64> = opt
            .group_initial_lrs()
            .into_iter()
            .zip(opt.group_lrs())
            .map(|(i, lr)| i.unwrap_or(lr))
            .collect();
        set_lrs(opt, &initial)?;
        children[0].initial_step(opt)?;
        Ok(SequentialLr {
            last_lr: children[0].last_lr().to_vec(),
            children,
            milestones,
            last_epoch: 0,
        })
    }

    /// The children.
    pub fn children(&self) -> &[Box<dyn LrScheduler>] {
        &self.children
    }
}

impl LrScheduler for SequentialLr {
    fn name(&self) -> &'static str {
        "SequentialLr"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.last_epoch)?;
        let idx = self.milestones.partition_point(|&m| m <= e);
        let child = &mut self.children[idx];
        if idx > 0 && self.milestones[idx - 1] == e {
            child.restart(opt)?;
        } else {
            child.step(opt)?;
        }
        self.last_lr = child.last_lr().to_vec();
        self.last_epoch = e;
        Ok(())
    }

    fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        self.children[0].restart(opt)?;
        self.last_lr = self.children[0].last_lr().to_vec();
        self.last_epoch = 0;
        Ok(())
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("SequentialLr");
        s.put_u64("last_epoch", self.last_epoch);
        s.put_f64s("last_lr", &self.last_lr);
        save_children(&mut s, &self.children);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("SequentialLr")?;
        let last_epoch = state.get_u64("last_epoch")?;
        let last_lr = state.get_lrs("last_lr", self.last_lr.len())?;
        load_children(state, &mut self.children)?;
        (self.last_epoch, self.last_lr) = (last_epoch, last_lr);
        Ok(())
    }
}

/// Steps every child on every step, each on the rate the previous one left: the rates
/// multiply. Matches `torch.optim.lr_scheduler.ChainedScheduler`.
pub struct ChainedScheduler {
    children: Vec<Box<dyn LrScheduler>>,
    last_epoch: u64,
    last_lr: Vec<f64>,
}

impl fmt::Debug for ChainedScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.children.iter().map(|c| c.name()).collect();
        f.debug_struct("ChainedScheduler")
            .field("children", &names)
            .field("last_epoch", &self.last_epoch)
            .finish()
    }
}

impl ChainedScheduler {
    /// Chains the children (built over `opt` first, in order); the rates are left as the
    /// children's constructors left them.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for no children or a [`ReduceLrOnPlateau`](crate::ReduceLrOnPlateau).
    pub fn new(opt: &dyn Optimizer, children: Vec<Box<dyn LrScheduler>>) -> Result<Self> {
        check_children(&children, "ChainedScheduler")?;
        Ok(ChainedScheduler {
            children,
            last_epoch: 0,
            last_lr: opt.group_lrs(),
        })
    }

    /// The children.
    pub fn children(&self) -> &[Box<dyn LrScheduler>] {
        &self.children
    }
}

impl LrScheduler for ChainedScheduler {
    fn name(&self) -> &'static str {
        "ChainedScheduler"
    }

    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        let e = next_epoch(self.last_epoch)?;
        for c in &mut self.children {
            c.step(opt)?;
        }
        self.last_lr = opt.group_lrs();
        self.last_epoch = e;
        Ok(())
    }

    fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    fn last_lr(&self) -> &[f64] {
        &self.last_lr
    }

    fn restart(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        for c in &mut self.children {
            c.restart(opt)?;
        }
        self.last_lr = opt.group_lrs();
        self.last_epoch = 0;
        Ok(())
    }

    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new("ChainedScheduler");
        s.put_u64("last_epoch", self.last_epoch);
        s.put_f64s("last_lr", &self.last_lr);
        save_children(&mut s, &self.children);
        s
    }

    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        state.expect_kind("ChainedScheduler")?;
        let last_epoch = state.get_u64("last_epoch")?;
        let last_lr = state.get_lrs("last_lr", self.last_lr.len())?;
        load_children(state, &mut self.children)?;
        (self.last_epoch, self.last_lr) = (last_epoch, last_lr);
        Ok(())
    }
}
