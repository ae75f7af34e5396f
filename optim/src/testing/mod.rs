//! A test kit for new optimisers (feature `testing`): one call runs on a rule the checks
//! the built-in rules pass, and returns a [`Report`] naming what failed.
//!
//! | check | what it establishes |
//! | --- | --- |
//! | [`Check::Descends`] | the loss of a convex quadratic goes down |
//! | [`Check::Deterministic`] | two runs are bit-identical |
//! | [`Check::StateRoundTrip`] | save after k steps, load into a fresh optimiser (with another learning rate, which loading restores): the next steps are bit-identical to an uninterrupted run |
//! | [`Check::F32MatchesF64`] | the `f32` path agrees with the `f64` path to the precision of `f32` |
//! | [`Check::Maximize`] | the maximising variant on `L` is exactly the rule on `−L`, and `L` goes up |
//! | [`Check::Groups`] | two parameter groups with their own `lr` (and weight decay) behave as two separate optimisers |
//! | [`Check::NoGradNoState`] | a parameter that never gets a gradient is untouched and gets no state |
//! | [`Check::Trajectory`] | a reference trajectory (JSON in the schema of `optim_trajectories.json`, e.g. from PyTorch) is reproduced at its tolerance |
//!
//! ```
//! use optim::testing::Kit;
//! use optim::Adam;
//!
//! let report = Kit::new(Adam::default())
//!     .maximizing(Adam { maximize: true, ..Adam::default() })
//!     .run();
//! assert!(report.is_ok(), "{report}");
//! ```
//!
//! A rule that must re-evaluate the loss goes through [`Kit::closure`]; checks that do not
//! apply to a rule are skipped with a reason ([`Kit::skip`]).

use std::fmt;

use autograd::Float;

use crate::closure::{ClosureOptim, ClosureRule};
use crate::driver::Optim;
use crate::error::Result;
use crate::optimizer::{Optimizer, ParamGroup};
use crate::rule::UpdateRule;

mod checks;
mod problems;
pub mod pytorch;

pub use problems::Problem;

/// What the kit needs from a rule: building optimisers of it in `f32` and `f64`.
pub trait Subject: Clone {
    /// The rule's name.
    fn name(&self) -> &'static str;
    /// An optimiser of the rule over `groups`.
    ///
    /// # Errors
    /// The rule's construction errors.
    fn build<T: Float>(&self, groups: Vec<ParamGroup<T>>) -> Result<Box<dyn Optimizer>>;
    /// The most groups the rule supports.
    fn max_groups(&self) -> Option<usize>;
    /// Whether groups may set a weight decay.
    fn has_weight_decay(&self) -> bool;
    /// Whether state is kept per parameter (`"{i}.name"` in state files).
    fn per_parameter_state(&self) -> bool;
}

/// A per-parameter [`UpdateRule`] under test.
#[derive(Clone, Debug)]
pub struct PerParameter<R>(pub R);

impl<R> Subject for PerParameter<R>
where
    R: UpdateRule<f32> + UpdateRule<f64> + 'static,
{
    fn name(&self) -> &'static str {
        <R as UpdateRule<f64>>::NAME
    }
    fn build<T: Float>(&self, groups: Vec<ParamGroup<T>>) -> Result<Box<dyn Optimizer>> {
        build_update(self.0.clone(), groups)
    }
    fn max_groups(&self) -> Option<usize> {
        None
    }
    fn has_weight_decay(&self) -> bool {
        UpdateRule::<f64>::weight_decay(&self.0).is_some()
    }
    fn per_parameter_state(&self) -> bool {
        true
    }
}

/// Builds `Optim<R, T>` for the `T` asked for: a generic `T` does not tell the compiler
/// that `R: UpdateRule<T>`, so the two element types are dispatched by hand.
fn build_update<R, T>(rule: R, groups: Vec<ParamGroup<T>>) -> Result<Box<dyn Optimizer>>
where
    R: UpdateRule<f32> + UpdateRule<f64> + 'static,
    T: Float,
{
    match T::DTYPE {
        autograd::DType::F32 => Ok(Box::new(Optim::<R, f32>::with_groups(
            recast(groups),
            rule,
        )?)),
        autograd::DType::F64 => Ok(Box::new(Optim::<R, f64>::with_groups(
            recast(groups),
            rule,
        )?)),
    }
}

/// The same groups at element type `U`, which is `T` (checked by the caller's dispatch on
/// `T::DTYPE`): parameters are shared handles, so the cast keeps them the same parameters.
fn recast<T: Float, U: Float>(groups: Vec<ParamGroup<T>>) -> Vec<ParamGroup<U>> {
    assert_eq!(T::DTYPE, U::DTYPE, "internal: recast between element types");
    groups
        .into_iter()
        .map(|g| {
            let params = g
                .params
                .iter()
                .map(|p| {
                    let any: &dyn std::any::Any = p;
                    any.downcast_ref::<autograd::Param<U>>()
                        .expect("internal: same dtype, same type")
                        .clone()
                })
                .collect();
            ParamGroup {
                params,
                lr: g.lr,
                weight_decay: g.weight_decay,
                momentum: g.momentum,
                initial_lr: g.initial_lr,
            }
        })
        .collect()
}

/// A [`ClosureRule`] under test.
#[derive(Clone, Debug)]
pub struct WithClosure<R>(pub R);

impl<R> Subject for WithClosure<R>
where
    R: ClosureRule<f32> + ClosureRule<f64> + 'static,
{
    fn name(&self) -> &'static str {
        <R as ClosureRule<f64>>::NAME
    }
    fn build<T: Float>(&self, groups: Vec<ParamGroup<T>>) -> Result<Box<dyn Optimizer>> {
        match T::DTYPE {
            autograd::DType::F32 => Ok(Box::new(ClosureOptim::<R, f32>::with_groups(
                recast(groups),
                self.0.clone(),
            )?)),
            autograd::DType::F64 => Ok(Box::new(ClosureOptim::<R, f64>::with_groups(
                recast(groups),
                self.0.clone(),
            )?)),
        }
    }
    fn max_groups(&self) -> Option<usize> {
        ClosureRule::<f64>::max_groups(&self.0)
    }
    fn has_weight_decay(&self) -> bool {
        ClosureRule::<f64>::weight_decay(&self.0).is_some()
    }
    fn per_parameter_state(&self) -> bool {
        false
    }
}

/// One of the kit's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// The loss of a convex quadratic goes down.
    Descends,
    /// Two runs are bit-identical.
    Deterministic,
    /// Save, load into a fresh optimiser, continue: bit-identical to an uninterrupted run.
    StateRoundTrip,
    /// `f32` and `f64` agree to `f32` precision.
    F32MatchesF64,
    /// Maximising `L` is the rule on `−L`.
    Maximize,
    /// Groups behave as separate optimisers.
    Groups,
    /// A parameter without a gradient is untouched and has no state.
    NoGradNoState,
    /// A reference trajectory is reproduced.
    Trajectory,
}

impl Check {
    /// Every check, in the order the report lists them.
    pub const ALL: [Check; 8] = [
        Check::Descends,
        Check::Deterministic,
        Check::StateRoundTrip,
        Check::F32MatchesF64,
        Check::Maximize,
        Check::Groups,
        Check::NoGradNoState,
        Check::Trajectory,
    ];

    fn title(self) -> &'static str {
        match self {
            Check::Descends => "descends a convex quadratic",
            Check::Deterministic => "deterministic",
            Check::StateRoundTrip => "state round trip",
            Check::F32MatchesF64 => "f32 matches f64",
            Check::Maximize => "maximize is ascent on the same loss",
            Check::Groups => "groups behave as separate optimizers",
            Check::NoGradNoState => "no gradient: untouched, no state",
            Check::Trajectory => "reference trajectory",
        }
    }
}

/// How one check went, with the numbers behind it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It passed.
    Passed(String),
    /// It failed; what differed.
    Failed(String),
    /// It did not run; why.
    Skipped(String),
}

/// The kit's findings on one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The rule's name.
    pub rule: &'static str,
    /// Each check and its outcome, in [`Check::ALL`] order (a check with several
    /// trajectories appears once per trajectory).
    pub results: Vec<(Check, Outcome)>,
}

impl Report {
    /// Whether no check failed.
    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The failed checks with what differed.
    pub fn failures(&self) -> impl Iterator<Item = (Check, &str)> {
        self.results.iter().filter_map(|(c, o)| match o {
            Outcome::Failed(why) => Some((*c, why.as_str())),
            _ => None,
        })
    }

    /// The outcome of `check` (its first, with several trajectories).
    pub fn outcome(&self, check: Check) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|(c, _)| *c == check)
            .map(|(_, o)| o)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failures().count();
        writeln!(
            f,
            "optimizer {:?}: {} checks, {failed} failed",
            self.rule,
            self.results.len()
        )?;
        for (check, outcome) in &self.results {
            let (tag, detail) = match outcome {
                Outcome::Passed(d) => ("ok", d),
                Outcome::Failed(d) => ("FAILED", d),
                Outcome::Skipped(d) => ("skipped", d),
            };
            writeln!(f, "  {tag:<8} {}: {detail}", check.title())?;
        }
        Ok(())
    }
}

/// A reference trajectory to reproduce.
#[derive(Clone, Debug)]
struct TrajectorySpec {
    json: String,
    case: String,
    tolerance: Option<(f64, f64)>,
}

/// The kit: a rule, the settings of the checks, and [`run`](Kit::run).
#[derive(Clone, Debug)]
pub struct Kit<S: Subject> {
    subject: S,
    maximizing: Option<S>,
    lr: f64,
    steps: usize,
    f32_tolerance: f64,
    trajectories: Vec<TrajectorySpec>,
    skipped: Vec<(Check, String)>,
}

impl<R> Kit<PerParameter<R>>
where
    R: UpdateRule<f32> + UpdateRule<f64> + 'static,
{
    /// The kit for a per-parameter rule, with learning rate 0.01 and 20 steps per check.
    pub fn new(rule: R) -> Self {
        Kit::with_subject(PerParameter(rule))
    }

    /// The rule's maximising variant (`maximize: true`), for [`Check::Maximize`].
    pub fn maximizing(mut self, rule: R) -> Self {
        self.maximizing = Some(PerParameter(rule));
        self
    }
}

impl<R> Kit<WithClosure<R>>
where
    R: ClosureRule<f32> + ClosureRule<f64> + 'static,
{
    /// The kit for a rule that re-evaluates the loss ([`ClosureRule`]).
    pub fn closure(rule: R) -> Self {
        Kit::with_subject(WithClosure(rule))
    }

    /// The rule's maximising variant, for [`Check::Maximize`].
    pub fn maximizing(mut self, rule: R) -> Self {
        self.maximizing = Some(WithClosure(rule));
        self
    }
}

impl<S: Subject> Kit<S> {
    fn with_subject(subject: S) -> Self {
        Kit {
            subject,
            maximizing: None,
            lr: 0.01,
            steps: 20,
            f32_tolerance: 1e-5,
            trajectories: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The learning rate of the checks on the quadratic (default 0.01).
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }

    /// Steps per check (default 20; at least 2, for the round trip's split).
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps.max(2);
        self
    }

    /// The tolerance of [`Check::F32MatchesF64`]: `|p₃₂ − p₆₄| ≤ tol·(1 + |p₆₄|)` after
    /// every step (default 1e-5, about 100 `f32` ulps).
    pub fn f32_tolerance(mut self, tolerance: f64) -> Self {
        self.f32_tolerance = tolerance;
        self
    }

    /// A reference trajectory to reproduce: the case named `case` of a JSON document in
    /// the schema of `optim_trajectories.json` (its problem, initial parameters, `lr` from
    /// `param_group`, and `params`/`losses`/`grads` compared over `check_steps` at the
    /// case's `rtol`/`atol`). The rule's other hyper-parameters are the caller's to match.
    pub fn trajectory(mut self, json: impl Into<String>, case: impl Into<String>) -> Self {
        self.trajectories.push(TrajectorySpec {
            json: json.into(),
            case: case.into(),
            tolerance: None,
        });
        self
    }

    /// As [`trajectory`](Self::trajectory), at `|ours − ref| ≤ atol + rtol·|ref|` instead of
    /// the case's tolerance.
    pub fn trajectory_with_tolerance(
        mut self,
        json: impl Into<String>,
        case: impl Into<String>,
        rtol: f64,
        atol: f64,
    ) -> Self {
        self.trajectories.push(TrajectorySpec {
            json: json.into(),
            case: case.into(),
            tolerance: Some((rtol, atol)),
        });
        self
    }

    /// Skips `check`, reporting `reason` (a sharpness-aware rule couples its groups through
    /// a global norm, so [`Check::Groups`] does not apply to it).
    pub fn skip(mut self, check: Check, reason: impl Into<String>) -> Self {
        self.skipped.push((check, reason.into()));
        self
    }

    /// Runs every check and reports.
    pub fn run(&self) -> Report {
        let mut results = Vec::new();
        for check in Check::ALL {
            if let Some((_, why)) = self.skipped.iter().find(|(c, _)| *c == check) {
                results.push((check, Outcome::Skipped(why.clone())));
                continue;
            }
            if check == Check::Trajectory {
                if self.trajectories.is_empty() {
                    results.push((
                        check,
                        Outcome::Skipped("no reference trajectory given (Kit::trajectory)".into()),
                    ));
                }
                for spec in &self.trajectories {
                    results.push((check, checks::trajectory(self, spec)));
                }
                continue;
            }
            results.push((check, checks::run(self, check)));
        }
        Report {
            rule: self.subject.name(),
            results,
        }
    }
}
