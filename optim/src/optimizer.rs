//! The extension API: [`UpdateRule`] (one parameter's maths), [`Optim`] (the generic driver
//! that owns state, step counts and parameter groups) and [`Optimizer`] (the object-safe
//! interface training loops and schedules use).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use autograd::{Float, Param, ParamId, ParamMut, Tensor};

use crate::common::{check_finite_non_negative, check_lr};
use crate::error::{Error, Result};
use crate::state::{self, StateDict};

/// What an optimiser needs from any training loop: PyTorch's `torch.optim.Optimizer`.
///
/// Object safe, so schedules and loops can hold `&mut dyn Optimizer` whatever the rule
/// and the element type. [`Optim`] implements it for every [`UpdateRule`].
pub trait Optimizer {
    /// The rule's stable name ([`UpdateRule::NAME`]), as written in state files.
    fn name(&self) -> &'static str;

    /// Updates every parameter that has a gradient; parameters without one are skipped and
    /// their step count does not advance (as in PyTorch).
    ///
    /// # Errors
    /// Whatever the update rule returns (the built-in rules do not fail).
    fn step(&mut self) -> Result<()>;

    /// Clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&mut self);

    /// How many times [`step`](Optimizer::step) has run.
    fn step_count(&self) -> u64;

    /// The learning rate of the first parameter group.
    fn lr(&self) -> f64;

    /// Sets the learning rate of every parameter group.
    fn set_lr(&mut self, lr: f64);

    /// The number of parameter groups.
    fn num_groups(&self) -> usize;

    /// The learning rate of each parameter group, in order.
    fn group_lrs(&self) -> Vec<f64>;

    /// Sets one group's learning rate.
    ///
    /// # Errors
    /// [`Error::NoSuchGroup`] when `group` is out of range.
    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()>;

    /// A snapshot of the optimiser state: per-parameter tensors, step counts and group
    /// settings, keyed by parameter position (see [`crate::state`] for the format).
    ///
    /// # Errors
    /// None for the built-in rules; the signature leaves room for rules whose state cannot
    /// be exported.
    fn state_dict(&self) -> Result<StateDict>;

    /// Restores a snapshot taken by [`state_dict`](Optimizer::state_dict), all or nothing.
    ///
    /// # Errors
    /// [`Error::StateOptimizer`], [`Error::StateLayout`], [`Error::StateKey`],
    /// [`Error::StateShape`], [`Error::StateDType`] or [`Error::StateFormat`] when the
    /// snapshot does not fit this optimiser; nothing is changed then.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()>;

    /// Writes the state to a safetensors file (atomically: a temporary file, then a rename).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    fn save(&self, path: &Path) -> Result<()> {
        self.state_dict()?.save(path)
    }

    /// Reads a safetensors file written by [`save`](Optimizer::save) and restores it.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::StateFormat`] when it is not a
    /// state file, and the errors of [`load_state_dict`](Optimizer::load_state_dict).
    fn load(&mut self, path: &Path) -> Result<()> {
        self.load_state_dict(&StateDict::load(path)?)
    }
}

/// Per-parameter optimiser state that can be saved and restored by name.
///
/// Both methods list the same tensors in the same order; the driver saves them as
/// `"{param_index}.{name}"`. A stateless rule uses `()`.
pub trait RuleState<T: Float>: Clone + fmt::Debug {
    /// The state tensors, by name (each has the parameter's shape).
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)>;

    /// The same tensors, mutably, for loading.
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)>;

    /// Scalar state kept in `f64` (NAdam's `mu_product`); none by default.
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// The same scalars, mutably, for loading.
    fn scalars_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        Vec::new()
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

/// What the driver tells a rule about the current update of one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepCx {
    /// The parameter group's learning rate.
    pub lr: f64,
    /// How many updates this parameter has had, counting this one (from 1): PyTorch's
    /// `state["step"]`.
    pub step: u64,
    /// The group's weight decay (the group's override, else [`UpdateRule::weight_decay`]).
    pub weight_decay: f64,
    /// Index of the parameter group.
    pub group: usize,
}

impl StepCx {
    /// A context for `step` (from 1) with learning rate `lr` and weight decay
    /// `weight_decay`, in group 0; for driving a rule by hand in tests.
    pub fn new(lr: f64, step: u64, weight_decay: f64) -> Self {
        StepCx {
            lr,
            step,
            weight_decay,
            group: 0,
        }
    }
}

/// One parameter's update: hyper-parameters (the implementing struct), a state type and
/// the maths. [`Optim`] does the rest (state map, step counts, groups, save/load).
///
/// See `examples/custom_optimizer.rs` for Lion written outside the crate.
pub trait UpdateRule<T: Float>: Clone + fmt::Debug {
    /// Per-parameter state; `()` for stateless rules.
    type State: RuleState<T>;

    /// Stable name used in state files (`"adam"`).
    const NAME: &'static str;

    /// Checks the hyper-parameters; [`Optim`] calls it once, when built.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// The default weight decay, used by groups that do not set their own.
    fn weight_decay(&self) -> f64 {
        0.0
    }

    /// Whether to ascend instead of descend: the driver negates the gradient first, which is
    /// exactly what PyTorch's `maximize=True` does.
    fn maximize(&self) -> bool {
        false
    }

    /// Fresh state for a parameter with value `param` (run lazily, on its first update).
    fn init(&self, param: &Tensor<T>) -> Self::State;

    /// Updates `param` in place from `grad` (same shape), advancing `state`.
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

/// A set of parameters sharing a learning rate and weight decay (PyTorch's param group).
#[derive(Clone, Debug)]
pub struct ParamGroup<T: Float> {
    /// The parameters (handles; values are shared with the model).
    pub params: Vec<Param<T>>,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay for this group; `None` uses the rule's default.
    pub weight_decay: Option<f64>,
}

impl<T: Float> ParamGroup<T> {
    /// A group with learning rate `lr` and the rule's default weight decay.
    pub fn new(params: Vec<Param<T>>, lr: f64) -> Self {
        ParamGroup {
            params,
            lr,
            weight_decay: None,
        }
    }

    /// The same group with its own weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

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
    rule: R,
    groups: Vec<ParamGroup<T>>,
    pub(crate) state: HashMap<ParamId, Entry<R::State>>,
    pub(crate) step_count: u64,
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

    /// Several groups, each with its own learning rate and weight decay.
    ///
    /// # Errors
    /// As [`Optim::new`], checking every group.
    pub fn with_groups(groups: Vec<ParamGroup<T>>, rule: R) -> Result<Self> {
        rule.validate()?;
        let mut opt = Optim {
            rule,
            groups: Vec::new(),
            state: HashMap::new(),
            step_count: 0,
        };
        for g in groups {
            opt.check_group(&g)?;
            opt.groups.push(g);
        }
        if opt.params().next().is_none() {
            return Err(Error::EmptyParamList);
        }
        Ok(opt)
    }

    /// Adds a group (PyTorch's `add_param_group`), e.g. to unfreeze layers mid-training.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] or [`Error::DuplicateParam`], leaving `self` as it was.
    pub fn add_param_group(&mut self, group: ParamGroup<T>) -> Result<()> {
        self.check_group(&group)?;
        self.groups.push(group);
        Ok(())
    }

    fn check_group(&self, group: &ParamGroup<T>) -> Result<()> {
        check_lr(group.lr)?;
        if let Some(wd) = group.weight_decay {
            check_finite_non_negative("weight_decay", wd)?;
        }
        let mut seen: HashSet<ParamId> = self.params().map(Param::id).collect();
        let before = seen.len();
        for (i, p) in group.params.iter().enumerate() {
            if !seen.insert(p.id()) {
                return Err(Error::DuplicateParam { index: before + i });
            }
        }
        Ok(())
    }

    /// The update rule (its hyper-parameters).
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup<T>] {
        &self.groups
    }

    /// Every parameter, group by group; a parameter's position here is its key in state
    /// files.
    pub fn params(&self) -> impl Iterator<Item = &Param<T>> {
        self.groups.iter().flat_map(|g| g.params.iter())
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
        let Optim {
            rule,
            groups,
            state,
            ..
        } = self;
        for (gi, group) in groups.iter().enumerate() {
            let weight_decay = group.weight_decay.unwrap_or_else(|| rule.weight_decay());
            for p in &group.params {
                p.update(|value, grad| {
                    let Some(grad) = grad else {
                        return Ok(());
                    };
                    assert_eq!(
                        value.shape(),
                        grad.shape(),
                        "internal: Param holds a gradient of the wrong shape"
                    );
                    let entry = state.entry(p.id()).or_insert_with(|| Entry {
                        step: 0,
                        state: rule.init(value),
                    });
                    entry.step += 1;
                    let cx = StepCx {
                        lr: group.lr,
                        step: entry.step,
                        weight_decay,
                        group: gi,
                    };
                    if rule.maximize() {
                        rule.update(&cx, value, &grad.map(|g| -g), &mut entry.state)
                    } else {
                        rule.update(&cx, value, grad, &mut entry.state)
                    }
                })?;
            }
        }
        self.step_count += 1;
        Ok(())
    }

    fn zero_grad(&mut self) {
        self.params().for_each(Param::zero_grad);
    }

    fn step_count(&self) -> u64 {
        self.step_count
    }

    fn lr(&self) -> f64 {
        self.groups[0].lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.groups.iter_mut().for_each(|g| g.lr = lr);
    }

    fn num_groups(&self) -> usize {
        self.groups.len()
    }

    fn group_lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.lr).collect()
    }

    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let groups = self.groups.len();
        let g = self.groups.get_mut(group).ok_or(Error::NoSuchGroup {
            index: group,
            groups,
        })?;
        g.lr = lr;
        Ok(())
    }

    fn state_dict(&self) -> Result<StateDict> {
        Ok(state::export(self))
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let (entries, step_count, settings) = state::import(self, sd)?;
        self.state = entries;
        self.step_count = step_count;
        for (g, (lr, wd)) in self.groups.iter_mut().zip(settings) {
            g.lr = lr;
            g.weight_decay = wd;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Adam, Sgd};

    fn param(v: &[f64]) -> Param<f64> {
        Param::new(Tensor::from_vec(v.to_vec(), [v.len()]).unwrap())
    }

    fn set_grad(p: &Param<f64>, g: &[f64]) {
        p.set_grad(Some(Tensor::from_vec(g.to_vec(), [g.len()]).unwrap()))
            .unwrap();
    }

    #[test]
    fn params_without_grad_are_skipped_and_keep_no_state() {
        let (a, b) = (param(&[1.0, 2.0]), param(&[3.0]));
        let mut opt = Optim::new(vec![a.clone(), b.clone()], 0.5, Adam::default()).unwrap();
        set_grad(&a, &[1.0, -1.0]);
        opt.step().unwrap();
        assert_eq!(b.value().to_vec(), vec![3.0]);
        assert!(opt.state(&b).is_none());
        assert_eq!((opt.param_step(&a), opt.param_step(&b)), (1, 0));
        // Adam's first step moves each coordinate by lr·sign(g) (up to eps)
        let v = a.value().to_vec();
        assert!((v[0] - 0.5).abs() < 1e-7 && (v[1] - 2.5).abs() < 1e-7);
        // b's count starts when it first has a gradient, as PyTorch's state["step"]
        set_grad(&b, &[1.0]);
        opt.step().unwrap();
        assert_eq!(
            (opt.param_step(&a), opt.param_step(&b), opt.step_count()),
            (2, 1, 2)
        );
    }

    #[test]
    fn groups_have_their_own_lr_and_weight_decay() {
        let (a, b) = (param(&[1.0]), param(&[1.0]));
        let sgd = Sgd {
            weight_decay: 0.5,
            ..Sgd::default()
        };
        let mut opt = Optim::with_groups(
            vec![
                ParamGroup::new(vec![a.clone()], 0.1),
                ParamGroup::new(vec![b.clone()], 0.01).with_weight_decay(0.0),
            ],
            sgd,
        )
        .unwrap();
        set_grad(&a, &[2.0]);
        set_grad(&b, &[2.0]);
        opt.step().unwrap();
        assert_eq!(a.value().to_vec(), vec![1.0 - 0.1 * (2.0 + 0.5)]); // rule's default decay
        assert_eq!(b.value().to_vec(), vec![1.0 - 0.01 * 2.0]); // group's override
        assert_eq!(opt.group_lrs(), vec![0.1, 0.01]);
        opt.set_lr(0.2);
        assert_eq!(opt.group_lrs(), vec![0.2, 0.2]);
        opt.set_group_lr(1, 0.3).unwrap();
        assert_eq!((opt.lr(), opt.group_lrs()[1]), (0.2, 0.3));
    }

    #[test]
    fn zero_grad_clears_every_gradient_and_add_param_group_extends() {
        let (a, b) = (param(&[1.0]), param(&[2.0]));
        let mut opt = Optim::new(vec![a.clone()], 0.1, Sgd::default()).unwrap();
        opt.add_param_group(ParamGroup::new(vec![b.clone()], 0.2))
            .unwrap();
        set_grad(&a, &[1.0]);
        set_grad(&b, &[1.0]);
        opt.zero_grad();
        assert!(a.grad().is_none() && b.grad().is_none());
        assert_eq!(opt.params().count(), 2);
        assert_eq!(opt.num_groups(), 2);
    }

    #[test]
    fn optimizers_are_object_safe_and_generic_over_dtype() {
        let p32 = Param::new(Tensor::from_vec(vec![1.0f32, -1.0], [2]).unwrap());
        let p64 = param(&[1.0]);
        let mut opts: Vec<Box<dyn Optimizer>> = vec![
            Box::new(Optim::new(vec![p32.clone()], 0.1, Adam::default()).unwrap()),
            Box::new(Optim::new(vec![p64.clone()], 0.1, Sgd::default()).unwrap()),
        ];
        p32.set_grad(Some(Tensor::from_vec(vec![1.0f32, -1.0], [2]).unwrap()))
            .unwrap();
        set_grad(&p64, &[1.0]);
        for o in &mut opts {
            o.step().unwrap();
        }
        assert_eq!(opts[0].name(), "adam");
        assert!((p32.value().to_vec()[0] - 0.9).abs() < 1e-6);
        assert_eq!(p64.value().to_vec(), vec![0.9]);
    }

    #[test]
    fn construction_errors_name_the_problem() {
        let p = param(&[1.0]);
        let e = Optim::new(vec![p.clone()], -0.1, Sgd::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid lr -0.1: must be a finite number >= 0"
        );
        assert!(matches!(
            e,
            Error::InvalidHyperparameter { name: "lr", value, .. } if value == -0.1
        ));

        let e = Optim::<Sgd>::new(vec![], 0.1, Sgd::default()).unwrap_err();
        assert!(matches!(e, Error::EmptyParamList));
        assert_eq!(e.to_string(), "optimizer got an empty parameter list");

        let e = Optim::with_groups(
            vec![
                ParamGroup::new(vec![p.clone(), param(&[2.0])], 0.1),
                ParamGroup::new(vec![p.clone()], 0.1),
            ],
            Sgd::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::DuplicateParam { index: 2 }));
        assert_eq!(
            e.to_string(),
            "parameter at position 2 appears more than once in the optimizer"
        );

        let e = Optim::with_groups(
            vec![ParamGroup::new(vec![p.clone()], 0.1).with_weight_decay(-1.0)],
            Sgd::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid weight_decay -1: must be a finite number >= 0"
        );

        let mut opt = Optim::new(vec![p], 0.1, Sgd::default()).unwrap();
        let e = opt.set_group_lr(3, 0.1).unwrap_err();
        assert!(matches!(
            e,
            Error::NoSuchGroup {
                index: 3,
                groups: 1
            }
        ));
        assert_eq!(e.to_string(), "no parameter group 3: the optimizer has 1");
    }

    #[test]
    fn every_rule_rejects_its_bad_hyperparameters() {
        use crate::{Adadelta, Adagrad, AdamW, Adamax, NAdam, RmsProp};
        let p = || vec![param(&[1.0])];
        let msg = |e: Error| e.to_string();
        let bad_beta = Adam {
            betas: (-0.1, 0.999),
            ..Adam::default()
        };
        assert_eq!(
            msg(Optim::new(p(), 0.1, bad_beta).unwrap_err()),
            "invalid betas.0 -0.1: must be in [0, 1)"
        );
        let bad_eps = AdamW {
            eps: -1e-8,
            ..AdamW::default()
        };
        assert_eq!(
            msg(Optim::new(p(), 0.1, bad_eps).unwrap_err()),
            "invalid eps -0.00000001: must be a finite number >= 0"
        );
        let bad = [
            Optim::new(
                p(),
                0.1,
                Sgd {
                    momentum: -0.9,
                    ..Sgd::default()
                },
            )
            .err(),
            Optim::new(
                p(),
                0.1,
                Sgd {
                    dampening: 2.0,
                    ..Sgd::default()
                },
            )
            .err(),
            Optim::new(
                p(),
                0.1,
                Adagrad {
                    lr_decay: -1.0,
                    ..Adagrad::default()
                },
            )
            .err(),
            Optim::new(
                p(),
                0.1,
                RmsProp {
                    alpha: -0.5,
                    ..RmsProp::default()
                },
            )
            .err(),
            Optim::new(
                p(),
                0.1,
                NAdam {
                    betas: (0.9, 1.5),
                    ..NAdam::default()
                },
            )
            .err(),
            Optim::new(
                p(),
                0.1,
                Adamax {
                    weight_decay: f64::NAN,
                    ..Adamax::default()
                },
            )
            .err(),
            Optim::new(
                p(),
                0.1,
                Adadelta {
                    eps: f64::INFINITY,
                    ..Adadelta::default()
                },
            )
            .err(),
        ];
        let names: Vec<&str> = bad
            .iter()
            .map(|e| match e {
                Some(Error::InvalidHyperparameter { name, .. }) => *name,
                other => panic!("expected InvalidHyperparameter, got {other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "momentum",
                "dampening",
                "lr_decay",
                "alpha",
                "betas.1",
                "weight_decay",
                "eps"
            ]
        );
    }
}
