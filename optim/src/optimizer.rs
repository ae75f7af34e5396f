//! The object-safe [`Optimizer`] interface that training loops and schedules use, the
//! parameter groups both drivers share ([`ParamGroup`]), and the group bookkeeping behind
//! them.

use std::collections::HashSet;
use std::path::Path;

use autograd::{Float, Param, ParamId};

use crate::common::{check_finite_non_negative, check_lr};
use crate::error::{ClosureError, Error, Result};
use crate::schedule::LrScheduler;
use crate::state::StateDict;

/// What a closure passed to [`Optimizer::step_with`] returns: the loss it computed.
pub type ClosureResult = std::result::Result<f64, ClosureError>;

/// What an optimiser needs from any training loop: PyTorch's `torch.optim.Optimizer`.
///
/// Object safe, so schedules and loops can hold `&mut dyn Optimizer` whatever the rule
/// and the element type. [`Optim`](crate::Optim) implements it for every
/// [`UpdateRule`](crate::UpdateRule), [`ClosureOptim`](crate::ClosureOptim) for every
/// [`ClosureRule`](crate::ClosureRule).
pub trait Optimizer {
    /// The rule's stable name, as written in state files (`"adam"`).
    fn name(&self) -> &'static str;

    /// Updates every parameter that has a gradient; parameters without one are skipped and
    /// their step count does not advance (as in PyTorch).
    ///
    /// # Errors
    /// [`Error::ClosureRequired`] for a rule that must re-evaluate the loss (LBFGS);
    /// [`Error::GradShape`] when a parameter's shape was changed after its gradient was
    /// computed; whatever the update rule returns.
    fn step(&mut self) -> Result<()>;

    /// One step that may evaluate the loss as often as the rule needs (PyTorch's
    /// `step(closure)`), returning the loss of the first evaluation.
    ///
    /// `closure` records a fresh tape, runs `backward` and returns the loss. The optimiser
    /// clears the gradients of its parameters before each call, so the closure does not
    /// (unlike PyTorch's, which calls `zero_grad` itself). Rules that need one gradient
    /// ([`Optim`](crate::Optim)) call it once and then step.
    ///
    /// ```
    /// use autograd::{Param, Tape, Tensor};
    /// use optim::{Lbfgs, ClosureOptim, Optimizer};
    ///
    /// let w = Param::new(Tensor::from_vec(vec![3.0f64, -1.0], [2])?);
    /// let mut opt = ClosureOptim::new(vec![w.clone()], 1.0, Lbfgs::default())?;
    /// let first = opt.step_with(&mut || {
    ///     let tape = Tape::new();
    ///     let loss = (tape.param(&w) - 1.0).square().sum(); // |w - 1|²
    ///     let value = loss.item()?;
    ///     loss.backward()?;
    ///     Ok(value)
    /// })?;
    /// assert_eq!(first, 8.0);
    /// assert!(w.value().as_slice().iter().all(|x| (x - 1.0).abs() < 1e-9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Closure`] with the closure's own error; as [`Optimizer::step`].
    fn step_with(&mut self, closure: &mut dyn FnMut() -> ClosureResult) -> Result<f64>;

    /// Clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&mut self);

    /// How many times [`step`](Optimizer::step) has run.
    fn step_count(&self) -> u64;

    /// The learning rate of the first parameter group.
    fn lr(&self) -> f64 {
        self.group_lrs()[0]
    }

    /// Sets the learning rate of every parameter group.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a negative or non-finite rate; nothing changes.
    fn set_lr(&mut self, lr: f64) -> Result<()>;

    /// The number of parameter groups.
    fn num_groups(&self) -> usize;

    /// The learning rate of each parameter group, in order.
    fn group_lrs(&self) -> Vec<f64>;

    /// Sets one group's learning rate.
    ///
    /// # Errors
    /// [`Error::NoSuchGroup`] when `group` is out of range; [`Error::InvalidHyperparameter`]
    /// for a negative or non-finite rate.
    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()>;

    /// Each group's momentum (β₁ for the Adam family), `None` for a rule without one.
    fn group_momentums(&self) -> Vec<Option<f64>>;

    /// Sets one group's momentum (β₁ for the Adam family): what the cycling schedules
    /// ([`OneCycleLr`](crate::OneCycleLr), [`CyclicLr`](crate::CyclicLr)) drive.
    ///
    /// # Errors
    /// [`Error::NoSuchGroup`]; [`Error::Unsupported`] for a rule without momentum;
    /// [`Error::InvalidHyperparameter`] for a value the rule rejects.
    fn set_group_momentum(&mut self, group: usize, momentum: f64) -> Result<()>;

    /// Each group's initial learning rate (PyTorch's `group["initial_lr"]`), set by the
    /// first schedule built over the optimiser; schedules compute from it.
    fn group_initial_lrs(&self) -> Vec<Option<f64>>;

    /// Sets one group's initial learning rate.
    ///
    /// # Errors
    /// [`Error::NoSuchGroup`]; [`Error::InvalidHyperparameter`] for a negative or
    /// non-finite rate.
    fn set_group_initial_lr(&mut self, group: usize, lr: f64) -> Result<()>;

    /// A snapshot of the optimiser state: rule state, step counts and group settings (see
    /// [`crate::state`] for the format).
    ///
    /// # Errors
    /// None for the built-in rules; the signature leaves room for rules whose state cannot
    /// be exported.
    fn state_dict(&self) -> Result<StateDict>;

    /// Restores a snapshot taken by [`state_dict`](Optimizer::state_dict), all or nothing,
    /// after checking every value as a constructor would.
    ///
    /// # Errors
    /// [`Error::StateKind`], [`Error::StateLayout`], [`Error::StateFile`] (a missing,
    /// unexpected, misshapen or mistyped tensor, named) or [`Error::InvalidState`] when the
    /// snapshot does not fit this optimiser; nothing is changed then.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()>;

    /// Writes the state to a safetensors file, crash-safely ([`autograd::io::write_atomic`]).
    ///
    /// # Errors
    /// [`Error::StateFile`] when the file cannot be written.
    fn save(&self, path: &Path) -> Result<()> {
        Ok(self.state_dict()?.save(path)?)
    }

    /// Reads a file written by [`save`](Optimizer::save) and restores it.
    ///
    /// # Errors
    /// [`Error::StateFile`] when the file cannot be read or parsed, and the errors of
    /// [`load_state_dict`](Optimizer::load_state_dict).
    fn load(&mut self, path: &Path) -> Result<()> {
        self.load_state_dict(&StateDict::load(path)?)
    }

    /// Writes the optimiser's and the schedule's state to one file, so that a resumed run
    /// reproduces the uninterrupted one bit for bit.
    ///
    /// # Errors
    /// As [`save`](Optimizer::save).
    fn save_with_scheduler(&self, path: &Path, scheduler: &dyn LrScheduler) -> Result<()> {
        let mut sd = self.state_dict()?;
        crate::state::insert_scheduler(&mut sd, scheduler);
        Ok(sd.save(path)?)
    }

    /// Restores a file written by [`save_with_scheduler`](Optimizer::save_with_scheduler)
    /// into the optimiser and the schedule, all or nothing.
    ///
    /// # Errors
    /// As [`load`](Optimizer::load), and the schedule's
    /// [`load_state`](LrScheduler::load_state) errors; neither is changed then.
    fn load_with_scheduler(&mut self, path: &Path, scheduler: &mut dyn LrScheduler) -> Result<()> {
        let sd = StateDict::load(path)?;
        let sched = crate::state::scheduler_state(&sd)?;
        let before = self.state_dict()?;
        self.load_state_dict(&sd)?;
        if let Err(e) = scheduler.load_state(&sched) {
            self.load_state_dict(&before)?;
            return Err(e);
        }
        Ok(())
    }
}

/// A set of parameters sharing a learning rate and other settings (PyTorch's param group).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ParamGroup<T: Float> {
    /// The parameters (handles; values are shared with the model).
    pub params: Vec<Param<T>>,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay for this group; `None` uses the rule's default.
    pub weight_decay: Option<f64>,
    /// Momentum (β₁ for the Adam family) for this group; `None` uses the rule's.
    pub momentum: Option<f64>,
    /// The learning rate schedules start from (PyTorch's `initial_lr`); `None` until a
    /// schedule is built.
    pub initial_lr: Option<f64>,
}

impl<T: Float> ParamGroup<T> {
    /// A group with learning rate `lr` and the rule's other defaults.
    pub fn new(params: Vec<Param<T>>, lr: f64) -> Self {
        ParamGroup {
            params,
            lr,
            weight_decay: None,
            momentum: None,
            initial_lr: None,
        }
    }

    /// The same group with its own weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// The same group with its own momentum (β₁ for the Adam family).
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = Some(momentum);
        self
    }
}

/// What the group bookkeeping needs to know about a rule.
pub(crate) struct Meta<'a> {
    pub(crate) name: &'static str,
    /// The rule's default weight decay; `None` when it has none (Rprop, LBFGS).
    pub(crate) weight_decay: Option<f64>,
    /// The rule's momentum (β₁); `None` when it has none.
    pub(crate) momentum: Option<f64>,
    pub(crate) check_momentum: Box<dyn Fn(f64) -> Result<()> + 'a>,
    /// At most this many groups (LBFGS: 1).
    pub(crate) max_groups: Option<usize>,
}

/// The groups and step count both drivers keep.
#[derive(Clone, Debug)]
pub(crate) struct Groups<T: Float> {
    pub(crate) groups: Vec<ParamGroup<T>>,
    pub(crate) step_count: u64,
}

impl<T: Float> Groups<T> {
    pub(crate) fn new(groups: Vec<ParamGroup<T>>, meta: &Meta) -> Result<Self> {
        let mut core = Groups {
            groups: Vec::new(),
            step_count: 0,
        };
        for g in groups {
            core.add(g, meta)?;
        }
        if core.params().next().is_none() {
            return Err(Error::EmptyParamList);
        }
        Ok(core)
    }

    pub(crate) fn add(&mut self, group: ParamGroup<T>, meta: &Meta) -> Result<()> {
        if meta.max_groups.is_some_and(|m| self.groups.len() >= m) {
            return Err(Error::Unsupported {
                optimizer: meta.name,
                what:
                    "more than one parameter group (PyTorch: doesn't support per-parameter options)",
            });
        }
        check_settings(&group, meta)?;
        let mut seen: HashSet<ParamId> = self.params().map(Param::id).collect();
        let before = seen.len();
        for (i, p) in group.params.iter().enumerate() {
            if !seen.insert(p.id()) {
                return Err(Error::DuplicateParam { index: before + i });
            }
        }
        self.groups.push(group);
        Ok(())
    }

    pub(crate) fn params(&self) -> impl Iterator<Item = &Param<T>> {
        self.groups.iter().flat_map(|g| g.params.iter())
    }

    pub(crate) fn group_mut(&mut self, index: usize) -> Result<&mut ParamGroup<T>> {
        let groups = self.groups.len();
        self.groups
            .get_mut(index)
            .ok_or(Error::NoSuchGroup { index, groups })
    }

    pub(crate) fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.groups.iter_mut().for_each(|g| g.lr = lr);
        Ok(())
    }

    pub(crate) fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let g = self.group_mut(group)?;
        check_lr(lr)?;
        g.lr = lr;
        Ok(())
    }

    pub(crate) fn momentums(&self, meta: &Meta) -> Vec<Option<f64>> {
        self.groups
            .iter()
            .map(|g| meta.momentum.map(|m| g.momentum.unwrap_or(m)))
            .collect()
    }

    pub(crate) fn set_group_momentum(&mut self, group: usize, m: f64, meta: &Meta) -> Result<()> {
        let g = self.group_mut(group)?;
        if meta.momentum.is_none() {
            return Err(no_momentum(meta.name));
        }
        (meta.check_momentum)(m)?;
        g.momentum = Some(m);
        Ok(())
    }

    pub(crate) fn set_group_initial_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let g = self.group_mut(group)?;
        check_finite_non_negative("initial_lr", lr)?;
        g.initial_lr = Some(lr);
        Ok(())
    }

    pub(crate) fn zero_grad(&self) {
        self.params().for_each(Param::zero_grad);
    }

    /// Adds one to the step count.
    pub(crate) fn count_step(&mut self) -> Result<()> {
        self.step_count = next_step(self.step_count, "step_count")?;
        Ok(())
    }
}

/// `step + 1`, an error past [`MAX_STEP`](crate::common::MAX_STEP).
pub(crate) fn next_step(step: u64, key: &str) -> Result<u64> {
    if step >= crate::common::MAX_STEP {
        return Err(crate::common::invalid_state(
            key,
            step as f64,
            "step count past 2^53, where f64 step arithmetic stops being exact",
        ));
    }
    Ok(step + 1)
}

pub(crate) fn no_momentum(name: &'static str) -> Error {
    Error::Unsupported {
        optimizer: name,
        what: "this rule has no momentum to set",
    }
}

/// Checks a group's settings as a constructor does (also used on loaded state).
pub(crate) fn check_settings<T: Float>(g: &ParamGroup<T>, meta: &Meta) -> Result<()> {
    check_lr(g.lr)?;
    if let Some(wd) = g.weight_decay {
        if meta.weight_decay.is_none() {
            return Err(Error::Unsupported {
                optimizer: meta.name,
                what: "this rule has no weight decay to set",
            });
        }
        check_finite_non_negative("weight_decay", wd)?;
    }
    if let Some(m) = g.momentum {
        if meta.momentum.is_none() {
            return Err(no_momentum(meta.name));
        }
        (meta.check_momentum)(m)?;
    }
    if let Some(lr) = g.initial_lr {
        check_finite_non_negative("initial_lr", lr)?;
    }
    Ok(())
}

/// The [`Optimizer`] methods both drivers answer from their [`Groups`] (`self.core`) and
/// their rule's [`Meta`] (`self.meta()`).
macro_rules! group_methods {
    () => {
        fn zero_grad(&mut self) {
            self.core.zero_grad();
        }

        fn step_count(&self) -> u64 {
            self.core.step_count
        }

        fn set_lr(&mut self, lr: f64) -> Result<()> {
            self.core.set_lr(lr)
        }

        fn num_groups(&self) -> usize {
            self.core.groups.len()
        }

        fn group_lrs(&self) -> Vec<f64> {
            self.core.groups.iter().map(|g| g.lr).collect()
        }

        fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
            self.core.set_group_lr(group, lr)
        }

        fn group_momentums(&self) -> Vec<Option<f64>> {
            self.core.momentums(&meta_of(&self.rule))
        }

        fn set_group_momentum(&mut self, group: usize, momentum: f64) -> Result<()> {
            let Self { core, rule, .. } = self;
            core.set_group_momentum(group, momentum, &meta_of(rule))
        }

        fn group_initial_lrs(&self) -> Vec<Option<f64>> {
            self.core.groups.iter().map(|g| g.initial_lr).collect()
        }

        fn set_group_initial_lr(&mut self, group: usize, lr: f64) -> Result<()> {
            self.core.set_group_initial_lr(group, lr)
        }
    };
}
pub(crate) use group_methods;
