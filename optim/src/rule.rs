//! The extension API for per-parameter optimisers: [`UpdateRule`] (one parameter's maths),
//! its state ([`RuleState`]) and what the driver tells it about a step ([`StepCx`]).

use std::fmt;

use autograd::{Float, ParamMut, Tensor};

use crate::common::{check_momentum, check_state_all_finite};
use crate::error::Result;

/// Optimiser state that can be saved and restored by name.
///
/// Both listing methods give the same tensors in the same order; the driver saves them as
/// `"{param_index}.{name}"` (per-parameter rules) or `"optimizer.{name}"` (closure rules).
/// A stateless rule uses `()`.
pub trait RuleState<T: Float>: Clone + fmt::Debug {
    /// The state tensors, by name.
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)>;

    /// The same tensors, mutably, for loading.
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)>;

    /// Scalar state kept in `f64` (NAdam's `mu_product`, ASGD's `eta`); none by default.
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// The same scalars, mutably, for loading.
    fn scalars_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        Vec::new()
    }

    /// Whether a loaded tensor of shape `loaded` may replace the one named `name`, whose
    /// shape in a fresh state is `fresh`. By default the shapes must be equal; state whose
    /// size grows (LBFGS's history) accepts more, and checks the rest in
    /// [`UpdateRule::validate_state`]/[`ClosureRule::validate_state`](crate::ClosureRule::validate_state).
    fn accepts_shape(&self, name: &str, fresh: &[usize], loaded: &[usize]) -> bool {
        let _ = name;
        fresh == loaded
    }
}

impl<T: Float> RuleState<T> for () {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        Vec::new()
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        Vec::new()
    }
}

/// What the driver tells a rule about the current update of one parameter: the group's
/// settings, resolved (PyTorch's `param_groups[i]`), and the parameter's step.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepCx {
    /// The parameter group's learning rate.
    pub lr: f64,
    /// How many updates this parameter has had, counting this one (from 1): PyTorch's
    /// `state["step"]`.
    pub step: u64,
    /// The group's weight decay (the group's own, else [`UpdateRule::weight_decay`]).
    pub weight_decay: f64,
    /// The group's momentum, β₁ for the Adam family (the group's own, else
    /// [`UpdateRule::momentum`]; 0 for a rule without one). Schedules that cycle momentum
    /// change it between steps, so rules read it here rather than from their fields.
    pub momentum: f64,
    /// Index of the parameter group.
    pub group: usize,
}

impl StepCx {
    /// A context for `step` (from 1) with learning rate `lr` and weight decay
    /// `weight_decay`, no momentum, in group 0; for driving a rule by hand in tests.
    pub fn new(lr: f64, step: u64, weight_decay: f64) -> Self {
        StepCx {
            lr,
            step,
            weight_decay,
            momentum: 0.0,
            group: 0,
        }
    }

    /// The same context with momentum (β₁) `momentum`.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
}

/// One parameter's update: hyper-parameters (the implementing struct), a state type and
/// the maths. [`Optim`](crate::Optim) does the rest (state map, step counts, groups,
/// `maximize`, save/load, schedules).
///
/// See `examples/custom_optimizer.rs` for Lion written outside the crate, and
/// [`testing`](crate::testing) (feature `testing`) for the checks to run on a new rule.
pub trait UpdateRule<T: Float>: Clone + fmt::Debug {
    /// Per-parameter state; `()` for stateless rules.
    type State: RuleState<T>;

    /// Stable name used in state files (`"adam"`).
    const NAME: &'static str;

    /// Checks the hyper-parameters; [`Optim`](crate::Optim) calls it once, when built.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter) naming the
    /// first bad value.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// The default weight decay for groups that do not set their own; `None` (the
    /// default) for a rule without weight decay, whose groups may then not set one.
    fn weight_decay(&self) -> Option<f64> {
        None
    }

    /// The rule's momentum (β₁ for the Adam family), which groups may override and
    /// schedules may cycle; `None` (the default) for a rule without one.
    fn momentum(&self) -> Option<f64> {
        None
    }

    /// Checks a momentum a group or schedule sets (default: finite and `>= 0`).
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`](crate::Error::InvalidHyperparameter).
    fn check_momentum(&self, momentum: f64) -> Result<()> {
        check_momentum(momentum)
    }

    /// Whether to ascend instead of descend: the driver negates the gradient first, which is
    /// exactly what PyTorch's `maximize=True` does.
    fn maximize(&self) -> bool {
        false
    }

    /// Fresh state for a parameter with value `param` (run lazily, on its first update).
    fn init(&self, param: &Tensor<T>) -> Self::State;

    /// Checks a loaded state as strictly as a constructed one would be (default: every
    /// tensor element and scalar finite).
    ///
    /// # Errors
    /// [`Error::InvalidState`](crate::Error::InvalidState) naming the value.
    fn validate_state(&self, state: &Self::State) -> Result<()> {
        check_state_all_finite(state)
    }

    /// Updates `param` in place from `grad` (same shape), advancing `state`. `param` lends
    /// the elements, not the tensor: a rule cannot change a parameter's shape.
    ///
    /// # Errors
    /// Rule-specific; the built-in rules do not fail.
    fn update(
        &self,
        cx: &StepCx,
        param: &mut ParamMut<'_, T>,
        grad: &Tensor<T>,
        state: &mut Self::State,
    ) -> Result<()>;
}
