//! Optimisers that re-evaluate the loss: [`ClosureRule`] (the algorithm, written against a
//! [`ClosureCx`]) and [`ClosureOptim`] (the driver that owns groups, state and step counts).
//!
//! A closure rule sees all parameters as one flat vector (groups are contiguous ranges of
//! it, [`GroupView`]), can evaluate the loss and gradient as often as it needs
//! ([`ClosureCx::evaluate`]) and moves the parameters with [`ClosureCx::add_to_params`]
//! and friends. Its state is one [`RuleState`] for the whole optimiser (PyTorch keeps
//! LBFGS's under the first parameter), saved and loaded with the groups like any other
//! optimiser's, and the groups' learning rates are the ones schedules drive. [`Lbfgs`] is
//! written this way; so is a sharpness-aware rule in `optim/tests/closure_rules.rs`.
//!
//! [`Lbfgs`]: crate::Lbfgs

use std::fmt;
use std::ops::Range;
use std::panic::Location;

use autograd::{Float, Param, Shape, Tensor};

use crate::common::{check_momentum, check_state_all_finite};
use crate::error::{Error, Result};
use crate::optimizer::{group_methods, ClosureResult, Groups, Meta, Optimizer, ParamGroup};
use crate::rule::RuleState;
use crate::state::{self, StateDict};

/// A loss-re-evaluating optimisation algorithm over the flattened parameters: LBFGS,
/// line searches, sharpness-aware minimisation. [`ClosureOptim`] does the rest (groups,
/// state, save/load, schedules).
pub trait ClosureRule<T: Float>: Clone + fmt::Debug {
    /// The rule's state for the whole optimiser; `()` for a stateless rule.
    type State: RuleState<T>;

    /// Stable name used in state files (`"lbfgs"`).
    const NAME: &'static str;

    /// Checks the hyper-parameters; called once, when the optimiser is built.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// The most parameter groups the rule supports (`None`: any number).
    fn max_groups(&self) -> Option<usize> {
        None
    }

    /// The default weight decay for groups; `None` for a rule without one.
    fn weight_decay(&self) -> Option<f64> {
        None
    }

    /// The rule's momentum, which groups may override and schedules cycle; `None` for a
    /// rule without one.
    fn momentum(&self) -> Option<f64> {
        None
    }

    /// Checks a momentum a group or schedule sets (default: finite and `>= 0`).
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`].
    fn check_momentum(&self, momentum: f64) -> Result<()> {
        check_momentum(momentum)
    }

    /// Fresh state for `numel` flattened parameter elements (run lazily, on the first step).
    ///
    /// # Errors
    /// An error building the state's tensors (the constructors are fallible:
    /// [`autograd::Error::TooLarge`]).
    fn init(&self, numel: usize) -> Result<Self::State>;

    /// Checks a loaded state as strictly as a constructed one (default: every tensor
    /// element and scalar finite).
    ///
    /// # Errors
    /// [`Error::InvalidState`] naming the value.
    fn validate_state(&self, state: &Self::State) -> Result<()> {
        check_state_all_finite(state)
    }

    /// One optimiser step; returns the loss of the first evaluation (PyTorch's
    /// `step(closure)` return value).
    ///
    /// # Errors
    /// [`Error::Closure`] from [`ClosureCx::evaluate`]; rule-specific errors.
    fn step(&self, cx: &mut ClosureCx<'_, T>, state: &mut Self::State) -> Result<f64>;
}

/// One parameter group as a closure rule sees it: its settings and its elements' range in
/// the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GroupView {
    /// The group's index.
    pub index: usize,
    /// Its learning rate.
    pub lr: f64,
    /// Its weight decay (the group's own, else the rule's; 0 without one).
    pub weight_decay: f64,
    /// Its momentum (the group's own, else the rule's; 0 without one).
    pub momentum: f64,
    /// Its elements in the flat vectors of [`ClosureCx`].
    pub range: Range<usize>,
}

/// What a [`ClosureRule`] works with during one step: the loss closure and the parameters
/// as one flat vector, in the optimiser's parameter order (PyTorch's `_gather_flat_grad`
/// and `_add_grad`).
pub struct ClosureCx<'a, T: Float> {
    /// Every parameter with its group's index.
    params: Vec<(usize, &'a Param<T>)>,
    groups: Vec<GroupView>,
    closure: &'a mut dyn FnMut() -> ClosureResult,
    evaluations: usize,
    step: u64,
    numel: usize,
}

impl<'a, T: Float> ClosureCx<'a, T> {
    fn new(
        groups: &'a [ParamGroup<T>],
        settings: impl Fn(&ParamGroup<T>) -> (f64, f64),
        closure: &'a mut dyn FnMut() -> ClosureResult,
        step: u64,
    ) -> Self {
        let mut offset = 0;
        let views = groups
            .iter()
            .enumerate()
            .map(|(index, g)| {
                let n: usize = g.params.iter().map(Param::numel).sum();
                let (weight_decay, momentum) = settings(g);
                let v = GroupView {
                    index,
                    lr: g.lr,
                    weight_decay,
                    momentum,
                    range: offset..offset + n,
                };
                offset += n;
                v
            })
            .collect();
        ClosureCx {
            params: groups
                .iter()
                .enumerate()
                .flat_map(|(gi, g)| g.params.iter().map(move |p| (gi, p)))
                .collect(),
            groups: views,
            closure,
            evaluations: 0,
            step,
            numel: offset,
        }
    }

    /// Clears every parameter's gradient, runs the closure (which records a tape, runs
    /// backward and returns the loss) and returns the loss; the gradient is then in
    /// [`flat_grad`](Self::flat_grad).
    ///
    /// # Errors
    /// [`Error::Closure`] with the closure's error.
    pub fn evaluate(&mut self) -> Result<f64> {
        self.params.iter().for_each(|(_, p)| p.zero_grad());
        self.evaluations += 1;
        (self.closure)().map_err(Error::Closure)
    }

    /// How many times [`evaluate`](Self::evaluate) has run in this step.
    pub fn evaluations(&self) -> usize {
        self.evaluations
    }

    /// This step's number, from 1.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The number of elements of the flat vectors.
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// The groups, in order.
    pub fn groups(&self) -> &[GroupView] {
        &self.groups
    }

    /// All parameter values as one flat vector.
    ///
    /// # Errors
    /// [`autograd::Error::TooLarge`] when the vector cannot be allocated.
    pub fn flat_params(&self) -> Result<Tensor<T>> {
        let mut v = Vec::with_capacity(self.numel);
        for (_, p) in &self.params {
            v.extend_from_slice(p.value().as_slice());
        }
        let n = v.len();
        Ok(Tensor::from_vec(v, [n])?)
    }

    /// All gradients as one flat vector; zeros for a parameter without one (PyTorch's
    /// `_gather_flat_grad`) and for a frozen one.
    ///
    /// # Errors
    /// [`autograd::Error::TooLarge`] when the vector cannot be allocated.
    pub fn flat_grad(&self) -> Result<Tensor<T>> {
        let mut v = Vec::with_capacity(self.numel);
        for (_, p) in &self.params {
            match p.grad().filter(|_| p.requires_grad()) {
                Some(g) => v.extend_from_slice(g.as_slice()),
                None => v.resize(v.len() + p.numel(), T::zero()),
            }
        }
        let n = v.len();
        Ok(Tensor::from_vec(v, [n])?)
    }

    /// Sets every trainable parameter from a flat vector (a frozen one keeps its value).
    ///
    /// # Errors
    /// [`Error::Autograd`] (shape mismatch) when `x` does not have [`numel`](Self::numel)
    /// elements.
    #[track_caller]
    pub fn set_flat_params(&mut self, x: &Tensor<T>) -> Result<()> {
        self.check_flat("set_flat_params", x)?;
        self.for_each_param(x, |_, p, x| p.copy_from_slice(x));
        Ok(())
    }

    /// `p ← p + α·d` over the flat vector (PyTorch's `_add_grad(α, d)`), as one fused
    /// multiply-add per element, which is what PyTorch's `add_(d, alpha=α)` computes on CPU.
    ///
    /// # Errors
    /// [`Error::Autograd`] (shape mismatch) when `dir` does not have
    /// [`numel`](Self::numel) elements.
    #[track_caller]
    pub fn add_to_params(&mut self, alpha: f64, dir: &Tensor<T>) -> Result<()> {
        self.add_to_params_by_group(dir, |_| alpha)
    }

    /// `p ← p + α_g·d` with a factor per group, e.g. `|g| -g.lr` for a gradient step in
    /// each group's learning rate.
    ///
    /// # Errors
    /// As [`add_to_params`](Self::add_to_params).
    #[track_caller]
    pub fn add_to_params_by_group(
        &mut self,
        dir: &Tensor<T>,
        alpha: impl Fn(&GroupView) -> f64,
    ) -> Result<()> {
        self.check_flat("add_to_params", dir)?;
        let alphas: Vec<T> = self.groups.iter().map(|g| T::of(alpha(g))).collect();
        self.for_each_param(dir, |g, p, d| {
            let a = alphas[g];
            for (p, &d) in p.iter_mut().zip(d) {
                *p = d.mul_add(a, *p);
            }
        });
        Ok(())
    }

    #[track_caller]
    fn check_flat(&self, op: &'static str, x: &Tensor<T>) -> Result<()> {
        if x.dims() == [self.numel] {
            return Ok(());
        }
        Err(Error::Autograd(autograd::Error::ShapeMismatch {
            op,
            expected: Shape::from([self.numel]),
            got: x.shape().clone(),
            location: Location::caller(),
        }))
    }

    /// Runs `f(group, param values, slice of flat)` for every parameter.
    fn for_each_param(&self, flat: &Tensor<T>, mut f: impl FnMut(usize, &mut [T], &[T])) {
        let flat = flat.as_slice();
        let mut offset = 0;
        for &(gi, p) in &self.params {
            // A frozen parameter keeps its value (and its slice of the flat vector).
            if !p.requires_grad() {
                offset += p.numel();
                continue;
            }
            p.update(|v, _| {
                let n = v.numel();
                // A parameter whose shape the closure changed no longer fits its slice;
                // it is left alone here and the next flat vector's length check reports it.
                if let Some(part) = flat.get(offset..offset + n) {
                    f(gi, v.as_mut_slice(), part);
                }
                offset += n;
            });
        }
    }
}

/// The driver for a [`ClosureRule`]: parameter groups, the rule's state, step counts,
/// save/load and schedules, like [`Optim`](crate::Optim) for an
/// [`UpdateRule`](crate::UpdateRule). Step it with [`Optimizer::step_with`].
#[derive(Clone, Debug)]
pub struct ClosureOptim<R, T = f64>
where
    R: ClosureRule<T>,
    T: Float,
{
    pub(crate) rule: R,
    pub(crate) core: Groups<T>,
    pub(crate) state: Option<R::State>,
}

pub(crate) fn meta_of<R: ClosureRule<T>, T: Float>(rule: &R) -> Meta<'_> {
    Meta {
        name: R::NAME,
        weight_decay: rule.weight_decay(),
        momentum: rule.momentum(),
        check_momentum: Box::new(move |m| rule.check_momentum(m)),
        max_groups: rule.max_groups(),
    }
}

impl<R: ClosureRule<T>, T: Float> ClosureOptim<R, T> {
    /// One group over `params` with learning rate `lr`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a negative or non-finite `lr` or a bad rule
    /// hyper-parameter; [`Error::EmptyParamList`]; [`Error::DuplicateParam`].
    pub fn new(params: Vec<Param<T>>, lr: f64, rule: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params, lr)], rule)
    }

    /// Several groups, each with its own settings.
    ///
    /// # Errors
    /// As [`ClosureOptim::new`]; [`Error::Unsupported`] for more groups than the rule
    /// supports or a setting it does not have.
    pub fn with_groups(groups: Vec<ParamGroup<T>>, rule: R) -> Result<Self> {
        rule.validate()?;
        let core = Groups::new(groups, &meta_of(&rule))?;
        Ok(ClosureOptim {
            rule,
            core,
            state: None,
        })
    }

    /// The rule (its hyper-parameters).
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup<T>] {
        &self.core.groups
    }

    /// Every parameter, group by group (the order of the flat vectors).
    pub fn params(&self) -> impl Iterator<Item = &Param<T>> {
        self.core.params()
    }

    /// The rule's state, once the first step has run.
    pub fn state(&self) -> Option<&R::State> {
        self.state.as_ref()
    }

    /// The number of elements of the flat parameter vector.
    pub fn numel(&self) -> usize {
        self.core.params().map(Param::numel).sum()
    }
}

impl<R: ClosureRule<T>, T: Float> Optimizer for ClosureOptim<R, T> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn step(&mut self) -> Result<()> {
        Err(Error::ClosureRequired { optimizer: R::NAME })
    }

    fn step_with(&mut self, closure: &mut dyn FnMut() -> ClosureResult) -> Result<f64> {
        let numel = self.numel();
        let ClosureOptim { rule, core, state } = self;
        let state = match state {
            Some(s) => s,
            None => state.insert(rule.init(numel)?),
        };
        let (rule_wd, rule_momentum) = (rule.weight_decay(), rule.momentum());
        let settings = |g: &ParamGroup<T>| {
            (
                g.weight_decay.or(rule_wd).unwrap_or(0.0),
                g.momentum.or(rule_momentum).unwrap_or(0.0),
            )
        };
        let step = crate::optimizer::next_step(core.step_count, "step_count")?;
        let mut cx = ClosureCx::new(&core.groups, settings, closure, step);
        let loss = rule.step(&mut cx, state)?;
        core.step_count = step;
        Ok(loss)
    }

    group_methods!();

    fn state_dict(&self) -> Result<StateDict> {
        Ok(state::export_closure(self))
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let (loaded, step_count, groups) = state::import_closure(self, sd)?;
        self.state = loaded;
        self.core.step_count = step_count;
        for (g, l) in self.core.groups.iter_mut().zip(groups) {
            g.lr = l.lr;
            g.weight_decay = l.weight_decay;
            g.momentum = l.momentum;
            g.initial_lr = l.initial_lr;
        }
        Ok(())
    }
}
