//! The checks of the [`Kit`].

use autograd::testing::reference::{self, WorstRatio};
use autograd::testing::Tolerance;
use autograd::{Float, Param, Tensor};
use serde_json::Value;

use super::{Check, Kit, Outcome, Problem, Subject, TrajectorySpec};
use crate::error::{Error, Result};
use crate::optimizer::{ClosureResult, Optimizer, ParamGroup};
use crate::state::StateDict;

/// Three parameters; the first two each have a convex quadratic, the third never enters
/// the loss (so never gets a gradient).
struct Bowl<T: Float> {
    params: [Param<T>; 3],
    problems: [Problem; 2],
}

const INIT: [&[f64]; 3] = [&[1.5, -0.8, 2.2], &[-1.1, 0.6], &[0.3, -0.4]];

impl<T: Float> Bowl<T> {
    fn new() -> Self {
        let param = |v: &[f64]| {
            Param::new(
                Tensor::from_vec(v.iter().map(|&x| T::of(x)).collect(), [v.len()])
                    .expect("internal: sized from the data"),
            )
        };
        Bowl {
            params: [param(INIT[0]), param(INIT[1]), param(INIT[2])],
            problems: [
                Problem::Quadratic {
                    c: vec![1.0, 2.0, 0.5],
                    t: vec![0.2, 0.5, -0.3],
                },
                Problem::Quadratic {
                    c: vec![1.5, 0.8],
                    t: vec![0.7, -0.9],
                },
            ],
        }
    }

    /// A bowl whose parameters hold `other`'s current values (new parameters: new ids).
    fn copy_of(other: &Bowl<T>) -> Self {
        let b = Bowl::new();
        for (p, q) in b.params.iter().zip(&other.params) {
            p.set_value(q.value()).expect("internal: same shapes");
        }
        b
    }

    /// The loss over the parameters in `which` (`sign` −1 minimises −L), with gradients.
    fn evaluate(&self, which: &[usize], sign: f64) -> autograd::Result<f64> {
        let mut total = 0.0;
        for &i in which {
            if let Some(problem) = self.problems.get(i) {
                let scaled = match problem {
                    Problem::Quadratic { c, t } => Problem::Quadratic {
                        c: c.iter().map(|c| c * sign).collect(),
                        t: t.clone(),
                    },
                    other => other.clone(),
                };
                total += scaled.loss_and_backward(&self.params[i])?;
            }
        }
        Ok(total)
    }

    fn loss(&self) -> f64 {
        let l = self.evaluate(&[0, 1], 1.0).unwrap_or(f64::NAN);
        self.params.iter().for_each(Param::zero_grad);
        l
    }

    fn values(&self) -> Vec<f64> {
        self.params
            .iter()
            .flat_map(|p| p.value().to_vec())
            .map(Float::as_f64)
            .collect()
    }
}

/// `steps` steps of `opt` on the parameters `which` of `bowl`.
fn train<T: Float>(
    opt: &mut dyn Optimizer,
    bowl: &Bowl<T>,
    which: &[usize],
    sign: f64,
    steps: usize,
) -> Result<()> {
    for _ in 0..steps {
        let mut closure = || -> ClosureResult { Ok(bowl.evaluate(which, sign)?) };
        opt.step_with(&mut closure)?;
    }
    Ok(())
}

fn one_group<T: Float>(bowl: &Bowl<T>, lr: f64) -> Vec<ParamGroup<T>> {
    vec![ParamGroup::new(bowl.params.to_vec(), lr)]
}

/// The first element where `a` and `b` differ in bits, as a message.
fn first_difference(a: &[f64], b: &[f64]) -> Option<String> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x.to_bits() != y.to_bits())
        .map(|(i, (x, y))| format!("element {i}: {x:e} vs {y:e}"))
}

pub(super) fn run<S: Subject>(kit: &Kit<S>, check: Check) -> Outcome {
    let result = match check {
        Check::Descends => descends(kit),
        Check::Deterministic => deterministic(kit),
        Check::StateRoundTrip => round_trip(kit),
        Check::F32MatchesF64 => f32_matches_f64(kit),
        Check::Maximize => maximize(kit),
        Check::Groups => groups(kit),
        Check::NoGradNoState => no_grad_no_state(kit),
        Check::Trajectory => unreachable!("internal: trajectories run per spec"),
    };
    result.unwrap_or_else(|e| Outcome::Failed(format!("error: {e}")))
}

fn descends<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    let bowl = Bowl::<f64>::new();
    let before = bowl.loss();
    let mut opt = kit.subject.build(one_group(&bowl, kit.lr))?;
    train(opt.as_mut(), &bowl, &[0, 1], 1.0, kit.steps)?;
    let after = bowl.loss();
    let detail = format!(
        "loss {before:.6e} -> {after:.6e} in {} steps at lr {}",
        kit.steps, kit.lr
    );
    Ok(match after.is_finite() && after < before {
        true => Outcome::Passed(detail),
        false => Outcome::Failed(detail),
    })
}

fn deterministic<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    let runs: Vec<Vec<f64>> = (0..2)
        .map(|_| -> Result<Vec<f64>> {
            let bowl = Bowl::<f64>::new();
            let mut opt = kit.subject.build(one_group(&bowl, kit.lr))?;
            train(opt.as_mut(), &bowl, &[0, 1], 1.0, kit.steps)?;
            Ok(bowl.values())
        })
        .collect::<Result<_>>()?;
    Ok(match first_difference(&runs[0], &runs[1]) {
        None => Outcome::Passed(format!("{} steps, bit-identical", kit.steps)),
        Some(d) => Outcome::Failed(format!("two runs differ at {d}")),
    })
}

fn round_trip<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    let (n, k) = (kit.steps, kit.steps / 2);
    let straight = Bowl::<f64>::new();
    let mut opt = kit.subject.build(one_group(&straight, kit.lr))?;
    train(opt.as_mut(), &straight, &[0, 1], 1.0, n)?;

    let first = Bowl::<f64>::new();
    let mut opt = kit.subject.build(one_group(&first, kit.lr))?;
    train(opt.as_mut(), &first, &[0, 1], 1.0, k)?;
    let saved = opt.state_dict()?;
    let bytes = saved.to_bytes()?;
    // "Another process": new parameters with the saved values, a new optimiser with
    // another learning rate (loading restores the saved one).
    let resumed = Bowl::copy_of(&first);
    let mut fresh = kit.subject.build(one_group(&resumed, kit.lr * 3.0 + 1.0))?;
    fresh.load_state_dict(&StateDict::from_bytes(&bytes)?)?;
    if fresh.lr().to_bits() != kit.lr.to_bits() {
        return Ok(Outcome::Failed(format!(
            "loading did not restore lr: {} instead of {}",
            fresh.lr(),
            kit.lr
        )));
    }
    let reloaded = fresh.state_dict()?;
    if reloaded != saved {
        let key = saved
            .tensors
            .iter()
            .find(|(k, t)| reloaded.tensors.get(*k) != Some(t))
            .map(|(k, _)| k.clone())
            .or_else(|| {
                saved
                    .metadata
                    .iter()
                    .find(|(k, v)| reloaded.metadata.get(*k) != Some(v))
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_else(|| "an entry only the reloaded state has".into());
        return Ok(Outcome::Failed(format!(
            "the state saved after loading differs from the file at {key:?}"
        )));
    }
    train(fresh.as_mut(), &resumed, &[0, 1], 1.0, n - k)?;
    Ok(match first_difference(&resumed.values(), &straight.values()) {
        None => Outcome::Passed(format!(
            "saved after {k} of {n} steps ({} tensors), resumed bit-identically",
            saved.tensors.len()
        )),
        Some(d) => Outcome::Failed(format!(
            "resumed run differs from the uninterrupted one at {d} (is every state tensor and scalar listed in RuleState?)"
        )),
    })
}

fn f32_matches_f64<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    let (b32, b64) = (Bowl::<f32>::new(), Bowl::<f64>::new());
    let mut o32 = kit.subject.build(one_group(&b32, kit.lr))?;
    let mut o64 = kit.subject.build(one_group(&b64, kit.lr))?;
    let tol = kit.f32_tolerance;
    let mut worst = 0.0f64;
    for step in 1..=kit.steps {
        train(o32.as_mut(), &b32, &[0, 1], 1.0, 1)?;
        train(o64.as_mut(), &b64, &[0, 1], 1.0, 1)?;
        for (i, (a, b)) in b32.values().iter().zip(b64.values()).enumerate() {
            let err = (a - b).abs() / (1.0 + b.abs());
            worst = worst.max(err);
            if err.is_nan() || err > tol {
                return Ok(Outcome::Failed(format!(
                    "step {step}, element {i}: f32 {a:e} vs f64 {b:e} (relative {err:.1e} > {tol:e})"
                )));
            }
        }
    }
    Ok(Outcome::Passed(format!(
        "largest relative difference {worst:.1e} over {} steps (tolerance {tol:e})",
        kit.steps
    )))
}

fn maximize<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    let Some(up) = &kit.maximizing else {
        return Ok(Outcome::Skipped(
            "no maximizing variant given (Kit::maximizing)".into(),
        ));
    };
    let ascent = Bowl::<f64>::new();
    let before = ascent.loss();
    let mut opt = up.build(one_group(&ascent, kit.lr))?;
    train(opt.as_mut(), &ascent, &[0, 1], 1.0, kit.steps)?;
    let after = ascent.loss();
    let descent_of_negative = Bowl::<f64>::new();
    let mut opt = kit.subject.build(one_group(&descent_of_negative, kit.lr))?;
    train(opt.as_mut(), &descent_of_negative, &[0, 1], -1.0, kit.steps)?;
    if let Some(d) = first_difference(&ascent.values(), &descent_of_negative.values()) {
        return Ok(Outcome::Failed(format!(
            "maximizing L differs from minimizing -L at {d}"
        )));
    }
    Ok(match after > before {
        true => Outcome::Passed(format!(
            "equals the rule on -L bit for bit; L {before:.6e} -> {after:.6e}"
        )),
        false => Outcome::Failed(format!("L did not increase: {before:e} -> {after:e}")),
    })
}

fn groups<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    if kit.subject.max_groups().is_some_and(|m| m < 2) {
        return Ok(Outcome::Skipped(
            "the rule supports one parameter group".into(),
        ));
    }
    let (lr_a, lr_b) = (kit.lr, kit.lr * 0.5);
    let group = |params: Vec<Param<f64>>, lr: f64, wd: f64| {
        let g = ParamGroup::new(params, lr);
        match kit.subject.has_weight_decay() {
            true => g.with_weight_decay(wd),
            false => g,
        }
    };
    let together = Bowl::<f64>::new();
    let [p0, p1, p2] = together.params.clone();
    let mut opt = kit.subject.build(vec![
        group(vec![p0], lr_a, 0.01),
        group(vec![p1, p2], lr_b, 0.05),
    ])?;
    train(opt.as_mut(), &together, &[0, 1], 1.0, kit.steps)?;

    let apart = Bowl::<f64>::new();
    let [q0, q1, q2] = apart.params.clone();
    let mut first = kit.subject.build(vec![group(vec![q0], lr_a, 0.01)])?;
    let mut second = kit.subject.build(vec![group(vec![q1, q2], lr_b, 0.05)])?;
    for _ in 0..kit.steps {
        train(first.as_mut(), &apart, &[0], 1.0, 1)?;
        train(second.as_mut(), &apart, &[1], 1.0, 1)?;
    }
    let wd = match kit.subject.has_weight_decay() {
        true => " and weight decays 0.01, 0.05",
        false => "",
    };
    Ok(match first_difference(&together.values(), &apart.values()) {
        None => Outcome::Passed(format!(
            "groups with lr {lr_a}, {lr_b}{wd} equal two optimizers bit for bit"
        )),
        Some(d) => Outcome::Failed(format!(
            "two groups differ from two separate optimizers at {d} (does the rule read lr and weight decay from StepCx?)"
        )),
    })
}

fn no_grad_no_state<S: Subject>(kit: &Kit<S>) -> Result<Outcome> {
    let bowl = Bowl::<f64>::new();
    let untouched = bowl.params[2].value().to_vec();
    let mut opt = kit.subject.build(one_group(&bowl, kit.lr))?;
    train(opt.as_mut(), &bowl, &[0, 1], 1.0, kit.steps)?;
    let now = bowl.params[2].value().to_vec();
    if let Some(d) = first_difference(&now, &untouched) {
        return Ok(Outcome::Failed(format!(
            "the parameter without a gradient moved: {d}"
        )));
    }
    if kit.subject.per_parameter_state() {
        let sd = opt.state_dict()?;
        let stray = sd
            .tensors
            .keys()
            .chain(sd.metadata.keys())
            .find(|k| k.starts_with("2."));
        if let Some(k) = stray {
            return Ok(Outcome::Failed(format!(
                "the parameter without a gradient has state {k:?}"
            )));
        }
        return Ok(Outcome::Passed("untouched, no state".into()));
    }
    Ok(Outcome::Passed(
        "untouched (the rule's state is global)".into(),
    ))
}

/// `what`'s numbers, through the workspace's one reference reader.
fn floats(v: &Value, what: &str) -> std::result::Result<Vec<f64>, String> {
    reference::floats(v).map_err(|e| format!("{what}: {e}"))
}

/// Reproduces one reference case.
pub(super) fn trajectory<S: Subject>(kit: &Kit<S>, spec: &TrajectorySpec) -> Outcome {
    match trajectory_inner(kit, spec) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(format!("case {:?}: {e}", spec.case)),
    }
}

fn trajectory_inner<S: Subject>(
    kit: &Kit<S>,
    spec: &TrajectorySpec,
) -> std::result::Result<Outcome, String> {
    let data: Value = serde_json::from_str(&spec.json).map_err(|e| format!("not JSON: {e}"))?;
    let case = data["cases"]
        .as_array()
        .ok_or("no \"cases\" array")?
        .iter()
        .find(|c| c["name"] == spec.case.as_str())
        .ok_or("no case of that name")?;
    let problem_name = case["problem"].as_str().ok_or("no \"problem\"")?;
    let problem = Problem::from_json(problem_name, &data["problems"][problem_name])?;
    let lr = case["param_group"]["lr"]
        .as_f64()
        .ok_or("no param_group.lr")?;
    let init = floats(&case["initial_params"], "initial_params")?;
    let count = |key: &str| {
        case[key]
            .as_u64()
            .ok_or_else(|| format!("no {key:?}"))
            .map(|n| n as usize)
    };
    let check_steps = count("check_steps").or_else(|_| count("steps"))?;
    let (rtol, atol) = match spec.tolerance {
        Some(t) => t,
        None => (
            case["rtol"].as_f64().ok_or("no rtol")?,
            case["atol"].as_f64().ok_or("no atol")?,
        ),
    };
    let p = Param::new(Tensor::from_vec(init.clone(), [init.len()]).map_err(|e| e.to_string())?);
    let mut opt = kit
        .subject
        .build(vec![ParamGroup::new(vec![p.clone()], lr)])
        .map_err(|e| e.to_string())?;
    let mut worst = WorstRatio::default();
    let tol = Tolerance { atol, rtol };
    let mut check = |ours: f64, reference: f64, at: &dyn Fn() -> String| -> bool {
        worst.check(ours, reference, tol, at)
    };
    for k in 0..check_steps {
        let mut first: Option<(f64, Vec<f64>)> = None;
        let mut closure = || -> ClosureResult {
            let loss = problem.loss_and_backward(&p)?;
            if first.is_none() {
                first = Some((loss, p.grad().map(|g| g.to_vec()).unwrap_or_default()));
            }
            Ok(loss)
        };
        opt.step_with(&mut closure)
            .map_err(|e: Error| e.to_string())?;
        let (loss, grad) = first.ok_or("the optimizer never evaluated the loss")?;
        let step = k + 1;
        let mut ok = check(
            loss,
            case["losses"][k].as_f64().ok_or("losses too short")?,
            &|| format!("loss before step {step}"),
        );
        let ref_grad = floats(&case["grads"][k], "grads")?;
        let ref_params = floats(&case["params"][k], "params")?;
        for (i, (g, r)) in grad.iter().zip(&ref_grad).enumerate() {
            ok &= check(*g, *r, &|| format!("grad[{i}] before step {step}"));
        }
        for (i, (v, r)) in p.value().to_vec().iter().zip(&ref_params).enumerate() {
            ok &= check(*v, *r, &|| format!("param[{i}] after step {step}"));
        }
        if !ok {
            return Ok(Outcome::Failed(format!(
                "case {:?}: {} off by {:.3e} x tolerance (rtol {rtol:e}, atol {atol:e})",
                spec.case, worst.at, worst.ratio
            )));
        }
    }
    Ok(Outcome::Passed(format!(
        "case {:?}: {check_steps} steps, worst {:.2e} of tolerance at {}",
        spec.case, worst.ratio, worst.at
    )))
}
