//! [`Optim`]: the generic driver that applies an [`UpdateRule`] to parameter groups and
//! owns its state, step counts and groups.

use std::collections::HashMap;

use autograd::{Float, Param, ParamId, Tensor};

use crate::error::{Error, Result};
use crate::optimizer::{
    group_methods, next_step, ClosureResult, Groups, Meta, Optimizer, ParamGroup,
};
use crate::rule::{StepCx, UpdateRule};
use crate::state::{self, StateDict};

/// One parameter's state plus how many updates it has had.
#[derive(Clone, Debug)]
pub(crate) struct Entry<S> {
    pub(crate) step: u64,
    pub(crate) state: S,
}

/// The generic optimiser: an [`UpdateRule`] applied to parameter groups.
///
/// Per-parameter state lives in a `HashMap<ParamId, _>`, created on a parameter's first
/// update (PyTorch's lazy `self.state[p]`).
///
/// ```
/// use autograd::{Param, Tape, Tensor};
/// use optim::{Adam, Optim, Optimizer};
///
/// let w = Param::new(Tensor::from_vec(vec![1.0f64, -2.0], [2])?);
/// let mut opt = Optim::new(vec![w.clone()], 0.1, Adam::default())?;
/// for _ in 0..100 {
///     opt.zero_grad();
///     let tape = Tape::new();
///     tape.param(&w).square().sum().backward()?; // minimise |w|²
///     opt.step()?;
/// }
/// assert!(w.value().as_slice().iter().all(|x| x.abs() < 0.1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Optim<R, T = f64>
where
    R: UpdateRule<T>,
    T: Float,
{
    pub(crate) rule: R,
    pub(crate) core: Groups<T>,
    pub(crate) state: HashMap<ParamId, Entry<R::State>>,
}

pub(crate) fn meta_of<R: UpdateRule<T>, T: Float>(rule: &R) -> Meta<'_> {
    Meta {
        name: R::NAME,
        weight_decay: rule.weight_decay(),
        momentum: rule.momentum(),
        check_momentum: Box::new(move |m| rule.check_momentum(m)),
        max_groups: None,
    }
}

impl<R: UpdateRule<T>, T: Float> Optim<R, T> {
    /// One group over `params` with learning rate `lr`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a negative or non-finite `lr` or a bad rule
    /// hyper-parameter; [`Error::EmptyParamList`]; [`Error::DuplicateParam`].
    pub fn new(params: Vec<Param<T>>, lr: f64, rule: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params, lr)], rule)
    }

    /// Several groups, each with its own learning rate, weight decay and momentum.
    ///
    /// # Errors
    /// As [`Optim::new`], checking every group; [`Error::Unsupported`] for a group setting
    /// the rule does not have (a weight decay for Rprop).
    pub fn with_groups(groups: Vec<ParamGroup<T>>, rule: R) -> Result<Self> {
        rule.validate()?;
        let core = Groups::new(groups, &meta_of(&rule))?;
        Ok(Optim {
            rule,
            core,
            state: HashMap::new(),
        })
    }

    /// Adds a group (PyTorch's `add_param_group`), e.g. to unfreeze layers mid-training.
    ///
    /// # Errors
    /// As [`Optim::with_groups`], leaving `self` as it was.
    pub fn add_param_group(&mut self, group: ParamGroup<T>) -> Result<()> {
        let Optim { rule, core, .. } = self;
        core.add(group, &meta_of(rule))
    }

    /// The update rule (its hyper-parameters).
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup<T>] {
        &self.core.groups
    }

    /// Every parameter, group by group; a parameter's position here is its key in state
    /// files.
    pub fn params(&self) -> impl Iterator<Item = &Param<T>> {
        self.core.params()
    }

    /// The state of `param`, if it has been updated at least once.
    pub fn state(&self, param: &Param<T>) -> Option<&R::State> {
        self.state.get(&param.id()).map(|e| &e.state)
    }

    /// How many updates `param` has had (0 before its first).
    pub fn param_step(&self, param: &Param<T>) -> u64 {
        self.state.get(&param.id()).map_or(0, |e| e.step)
    }
}

impl<R: UpdateRule<T>, T: Float> Optimizer for Optim<R, T> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn step(&mut self) -> Result<()> {
        let Optim { rule, core, state } = self;
        let (rule_wd, rule_momentum) = (rule.weight_decay(), rule.momentum());
        // Check every gradient before updating any parameter, so a bad one (a value whose
        // shape was changed after backward) leaves no half-applied step behind.
        for (index, p) in core.params().enumerate() {
            if !p.requires_grad() {
                continue;
            }
            if let Some(g) = p.grad() {
                if g.shape() != &p.shape() {
                    return Err(Error::GradShape {
                        index,
                        param: p.shape().dims().to_vec(),
                        grad: g.dims().to_vec(),
                    });
                }
            }
        }
        let mut index = 0;
        for (gi, group) in core.groups.iter().enumerate() {
            let weight_decay = group.weight_decay.or(rule_wd).unwrap_or(0.0);
            let momentum = group.momentum.or(rule_momentum).unwrap_or(0.0);
            for p in &group.params {
                // A frozen parameter is skipped whatever its gradient (one left from
                // before it was frozen included): no decay, no momentum, no step count.
                if !p.requires_grad() {
                    index += 1;
                    continue;
                }
                p.update(|value, grad| -> Result<()> {
                    let Some(grad) = grad else {
                        return Ok(());
                    };
                    if value.shape() != grad.shape() {
                        return Err(Error::GradShape {
                            index,
                            param: value.dims().to_vec(),
                            grad: grad.dims().to_vec(),
                        });
                    }
                    let entry = state.entry(p.id()).or_insert_with(|| Entry {
                        step: 0,
                        state: rule.init(value),
                    });
                    entry.step = next_step(entry.step, "step")?;
                    let cx = StepCx {
                        lr: group.lr,
                        step: entry.step,
                        weight_decay,
                        momentum,
                        group: gi,
                    };
                    if rule.maximize() {
                        let ascent: Tensor<T> = grad.map(|g| -g);
                        rule.update(&cx, value, &ascent, &mut entry.state)
                    } else {
                        rule.update(&cx, value, grad, &mut entry.state)
                    }
                })?;
                index += 1;
            }
        }
        core.count_step()
    }

    fn step_with(&mut self, closure: &mut dyn FnMut() -> ClosureResult) -> Result<f64> {
        self.core.zero_grad();
        let loss = closure().map_err(Error::Closure)?;
        self.step()?;
        Ok(loss)
    }

    group_methods!();

    fn state_dict(&self) -> Result<StateDict> {
        Ok(state::export(self))
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let (entries, step_count, groups) = state::import(self, sd)?;
        self.state = entries;
        self.core.step_count = step_count;
        for (g, loaded) in self.core.groups.iter_mut().zip(groups) {
            g.lr = loaded.lr;
            g.weight_decay = loaded.weight_decay;
            g.momentum = loaded.momentum;
            g.initial_lr = loaded.initial_lr;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
