//! Every case and every schedule of `optim_extra.json`, reproduced.
//!
//! - Cases (RAdam, Rprop, ASGD, NAdam with decoupled weight decay, `maximize` for SGD, Adam
//!   and Adagrad, LBFGS with and without strong Wolfe): parameters, losses and gradients step
//!   for step at the case's tolerance over `check_steps`; ASGD's averaged parameters (the
//!   state's `ax`) likewise and its `eta`/`mu` at rtol 1e-12; LBFGS's closure evaluations per
//!   step exactly.
//! - Schedules: the learning rate (and the momentum, for OneCycleLR and CyclicLR) before
//!   every optimiser step, at rtol 1e-12 / atol 1e-15, with PyTorch's step order; and every
//!   schedule saved and restored with its optimiser mid-run reproduces the uninterrupted
//!   run bit for bit.
//!
//! Reads `$GRADLAB_REFERENCE_DIR/optim_extra.json` when the variable is set, else
//! `tests/data/optim_extra.json`. Optimisers and schedules are built from the file's class
//! names and resolved arguments; an argument this test does not know fails it.

use autograd::testing::reference::{load_json, reference_file, WorstRatio};
use autograd::testing::Tolerance;
use autograd::{Param, Tensor};
use optim::testing::pytorch::{build, replay_case, Group};
use optim::{
    Anneal, ChainedScheduler, ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, CyclicLr,
    CyclicMode, CyclicSettings, ExponentialLr, LinearLr, LrScheduler, MultiStepLr, OneCycleLr,
    OneCycleSettings, Optimizer, PlateauConfig, PlateauMode, PolynomialLr, ReduceLrOnPlateau,
    SequentialLr, StepLr, ThresholdMode,
};
use serde_json::{Map, Value};

#[test]
fn every_extra_case_matches_pytorch() {
    let data = load("optim_extra.json");
    assert_eq!(data["format"], "optim_trajectories/v1");
    let cases = data["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut overall = WorstRatio::default();
    let mut compared = 0;
    for case in cases {
        let (worst, n) = replay_case(&data, case, &mut failures);
        overall.merge(&worst, case["name"].as_str().unwrap());
        compared += n;
    }
    println!(
        "{} cases, {compared} values compared; worst {:.3e} of tolerance at {}; max |diff| {:.3e}",
        cases.len(),
        overall.ratio,
        overall.at,
        overall.abs
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// A schedule as built from the file: ReduceLROnPlateau needs its metric at each step.
enum Schedule {
    Plain(Box<dyn LrScheduler>),
    Plateau(ReduceLrOnPlateau),
}

impl Schedule {
    fn step(&mut self, opt: &mut dyn Optimizer, metric: Option<f64>) -> optim::Result<()> {
        match self {
            Schedule::Plain(s) => s.step(opt),
            Schedule::Plateau(s) => {
                s.step_with(opt, metric.expect("ReduceLROnPlateau needs metrics"))
            }
        }
    }

    fn as_dyn(&self) -> &dyn LrScheduler {
        match self {
            Schedule::Plain(s) => s.as_ref(),
            Schedule::Plateau(s) => s,
        }
    }

    fn as_dyn_mut(&mut self) -> &mut dyn LrScheduler {
        match self {
            Schedule::Plain(s) => s.as_mut(),
            Schedule::Plateau(s) => s,
        }
    }
}

fn load(name: &str) -> Value {
    load_json(reference_file(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn str_of<'a>(g: &mut Group<'a>, key: &'static str) -> &'a str {
    g.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key}: expected a string"))
}

/// The children of a SequentialLR/ChainedScheduler, built in order over `opt`.
fn children(g: &mut Group, opt: &mut dyn Optimizer) -> Vec<Box<dyn LrScheduler>> {
    let list = g
        .get("schedulers")
        .and_then(Value::as_array)
        .expect("schedulers");
    list.iter()
        .map(|c| match scheduler(c, opt) {
            Schedule::Plain(s) => s,
            Schedule::Plateau(_) => panic!("ReduceLROnPlateau cannot be a child"),
        })
        .collect()
}

/// The scheduler of `spec` (`scheduler` + `resolved_kwargs`), built over `opt` as PyTorch
/// built it.
fn scheduler(spec: &Value, opt: &mut dyn Optimizer) -> Schedule {
    let class = spec["scheduler"].as_str().expect("scheduler");
    let kwargs: &Map<String, Value> = spec["resolved_kwargs"]
        .as_object()
        .expect("resolved_kwargs");
    let mut g = Group::new(kwargs);
    let ok = |r: optim::Result<Box<dyn LrScheduler>>| {
        Schedule::Plain(r.unwrap_or_else(|e| panic!("{class}: {e}")))
    };
    let s = match class {
        "StepLR" => {
            let (mut step_size, mut gamma) = (0, 0.1);
            g.u64("step_size", &mut step_size);
            g.f64("gamma", &mut gamma);
            ok(StepLr::new(opt, step_size, gamma).map(|s| Box::new(s) as _))
        }
        "MultiStepLR" => {
            let milestones: Vec<u64> = g
                .get("milestones")
                .and_then(Value::as_array)
                .expect("milestones")
                .iter()
                .map(|m| m.as_u64().expect("milestone"))
                .collect();
            let mut gamma = 0.1;
            g.f64("gamma", &mut gamma);
            ok(MultiStepLr::new(opt, milestones, gamma).map(|s| Box::new(s) as _))
        }
        "ExponentialLR" => {
            let mut gamma = f64::NAN;
            g.f64("gamma", &mut gamma);
            ok(ExponentialLr::new(opt, gamma).map(|s| Box::new(s) as _))
        }
        "CosineAnnealingLR" => {
            let (mut t_max, mut eta_min) = (0, 0.0);
            g.u64("T_max", &mut t_max);
            g.f64("eta_min", &mut eta_min);
            ok(CosineAnnealingLr::new(opt, t_max, eta_min).map(|s| Box::new(s) as _))
        }
        "LinearLR" => {
            let (mut start, mut end, mut total) = (1.0 / 3.0, 1.0, 5);
            g.f64("start_factor", &mut start);
            g.f64("end_factor", &mut end);
            g.u64("total_iters", &mut total);
            ok(LinearLr::new(opt, start, end, total).map(|s| Box::new(s) as _))
        }
        "ConstantLR" => {
            let (mut factor, mut total) = (1.0 / 3.0, 5);
            g.f64("factor", &mut factor);
            g.u64("total_iters", &mut total);
            ok(ConstantLr::new(opt, factor, total).map(|s| Box::new(s) as _))
        }
        "PolynomialLR" => {
            let (mut total, mut power) = (5, 1.0);
            g.u64("total_iters", &mut total);
            g.f64("power", &mut power);
            ok(PolynomialLr::new(opt, total, power).map(|s| Box::new(s) as _))
        }
        "CosineAnnealingWarmRestarts" => {
            let (mut t_0, mut t_mult, mut eta_min) = (0, 1, 0.0);
            g.u64("T_0", &mut t_0);
            g.u64("T_mult", &mut t_mult);
            g.f64("eta_min", &mut eta_min);
            ok(CosineAnnealingWarmRestarts::new(opt, t_0, t_mult, eta_min)
                .map(|s| Box::new(s) as _))
        }
        "OneCycleLR" => {
            let mut max_lr = f64::NAN;
            g.f64("max_lr", &mut max_lr);
            let total = match g.get("total_steps") {
                Some(t) => t.as_u64().expect("total_steps"),
                None => {
                    let e = g.get("epochs").and_then(Value::as_u64).expect("epochs");
                    let s = g
                        .get("steps_per_epoch")
                        .and_then(Value::as_u64)
                        .expect("steps_per_epoch");
                    e * s
                }
            };
            g.get("epochs");
            g.get("steps_per_epoch");
            let mut s = OneCycleSettings::new(max_lr, total);
            g.f64("pct_start", &mut s.pct_start);
            s.anneal_strategy = match str_of(&mut g, "anneal_strategy") {
                "cos" => Anneal::Cos,
                "linear" => Anneal::Linear,
                other => panic!("anneal_strategy {other:?}"),
            };
            g.bool("cycle_momentum", &mut s.cycle_momentum);
            g.f64("base_momentum", &mut s.base_momentum);
            g.f64("max_momentum", &mut s.max_momentum);
            g.f64("div_factor", &mut s.div_factor);
            g.f64("final_div_factor", &mut s.final_div_factor);
            g.bool("three_phase", &mut s.three_phase);
            ok(OneCycleLr::new(opt, s).map(|s| Box::new(s) as _))
        }
        "CyclicLR" => {
            let (mut base, mut max) = (f64::NAN, f64::NAN);
            g.f64("base_lr", &mut base);
            g.f64("max_lr", &mut max);
            let mut s = CyclicSettings::new(base, max);
            g.u64("step_size_up", &mut s.step_size_up);
            s.step_size_down = g
                .get("step_size_down")
                .map(|v| v.as_u64().expect("step_size_down"));
            let mut gamma = 1.0;
            g.f64("gamma", &mut gamma);
            let (mode, scale_mode) = (str_of(&mut g, "mode"), str_of(&mut g, "scale_mode"));
            s.mode = match (mode, scale_mode) {
                ("triangular", "cycle") => CyclicMode::Triangular,
                ("triangular2", "cycle") => CyclicMode::Triangular2,
                ("exp_range", "iterations") => CyclicMode::ExpRange { gamma },
                other => panic!("CyclicLR mode/scale_mode {other:?}"),
            };
            assert!(
                g.get("scale_fn").is_none(),
                "CyclicLR: a custom scale_fn cannot come from JSON"
            );
            g.bool("cycle_momentum", &mut s.cycle_momentum);
            g.f64("base_momentum", &mut s.base_momentum);
            g.f64("max_momentum", &mut s.max_momentum);
            ok(CyclicLr::new(opt, s).map(|s| Box::new(s) as _))
        }
        "SequentialLR" => {
            let kids = children(&mut g, opt);
            let milestones: Vec<u64> = g
                .get("milestones")
                .and_then(Value::as_array)
                .expect("milestones")
                .iter()
                .map(|m| m.as_u64().expect("milestone"))
                .collect();
            ok(SequentialLr::new(opt, kids, milestones).map(|s| Box::new(s) as _))
        }
        "ChainedScheduler" => {
            let kids = children(&mut g, opt);
            ok(ChainedScheduler::new(opt, kids).map(|s| Box::new(s) as _))
        }
        "ReduceLROnPlateau" => {
            let mut c = PlateauConfig {
                mode: match str_of(&mut g, "mode") {
                    "min" => PlateauMode::Min,
                    "max" => PlateauMode::Max,
                    other => panic!("mode {other:?}"),
                },
                ..PlateauConfig::default()
            };
            g.f64("factor", &mut c.factor);
            g.u64("patience", &mut c.patience);
            g.f64("threshold", &mut c.threshold);
            c.threshold_mode = match str_of(&mut g, "threshold_mode") {
                "rel" => ThresholdMode::Rel,
                "abs" => ThresholdMode::Abs,
                other => panic!("threshold_mode {other:?}"),
            };
            g.u64("cooldown", &mut c.cooldown);
            g.f64("min_lr", &mut c.min_lr);
            g.f64("eps", &mut c.eps);
            Schedule::Plateau(
                ReduceLrOnPlateau::new(opt, c).unwrap_or_else(|e| panic!("{class}: {e}")),
            )
        }
        other => panic!("no mapping for torch.optim.lr_scheduler.{other}"),
    };
    g.finish(class);
    s
}

/// The schedule's optimiser over one parameter, and the schedule.
fn setup(spec: &Value) -> (Param<f64>, Box<dyn Optimizer>, Schedule) {
    let mut o = spec["optimizer"].as_object().expect("optimizer").clone();
    let class = o
        .remove("class")
        .and_then(|c| c.as_str().map(String::from))
        .expect("optimizer.class");
    let p = Param::new(Tensor::from_vec(vec![0.5], [1]).unwrap());
    let mut opt = build(&class, &o, &p);
    let s = scheduler(spec, opt.as_mut());
    (p, opt, s)
}

/// One loop iteration as PyTorch ran it: read, zero gradient + optimiser step, schedule step.
fn advance(spec: &Value, k: usize, p: &Param<f64>, opt: &mut dyn Optimizer, s: &mut Schedule) {
    p.set_grad(Some(Tensor::zeros([1]).unwrap())).unwrap();
    opt.step().unwrap();
    let metric = spec.get("metrics").map(|m| m[k].as_f64().expect("metric"));
    s.step(opt, metric)
        .unwrap_or_else(|e| panic!("{}: step {k}: {e}", spec["name"]));
}

#[test]
fn every_schedule_matches_pytorch() {
    let data = load("optim_extra.json");
    let schedules = data["schedules"].as_array().expect("schedules");
    assert!(!schedules.is_empty());
    let tol = Tolerance {
        atol: 1e-15,
        rtol: 1e-12,
    };
    let mut failures = Vec::new();
    let mut overall = WorstRatio::default();
    let mut compared = 0;
    for spec in schedules {
        let name = spec["name"].as_str().expect("name");
        let steps = spec["steps"].as_u64().expect("steps") as usize;
        let (p, mut opt, mut s) = setup(spec);
        let mut worst = WorstRatio::default();
        for k in 0..steps {
            worst.check(opt.lr(), spec["lrs"][k].as_f64().unwrap(), tol, || {
                format!("lrs[{k}]")
            });
            compared += 1;
            if let Some(ms) = spec.get("momentums") {
                let m = opt.group_momentums()[0].expect("a momentum");
                worst.check(m, ms[k].as_f64().unwrap(), tol, || {
                    format!("momentums[{k}]")
                });
                compared += 1;
            }
            advance(spec, k, &p, opt.as_mut(), &mut s);
        }
        println!(
            "{name:32} worst {:.3e} of tolerance (|diff| {:.1e}) at {}",
            worst.ratio, worst.abs, worst.at
        );
        if worst.ratio > 1.0 {
            failures.push(format!(
                "{name}: {} off by {:.3e} x tolerance",
                worst.at, worst.ratio
            ));
        }
        overall.merge(&worst, name);
    }
    println!(
        "{} schedules, {compared} values compared; worst {:.3e} of tolerance at {}",
        schedules.len(),
        overall.ratio,
        overall.at
    );
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn every_schedule_resumes_from_a_file_bit_for_bit() {
    let data = load("optim_extra.json");
    for spec in data["schedules"].as_array().expect("schedules") {
        let name = spec["name"].as_str().unwrap();
        let steps = spec["steps"].as_u64().unwrap() as usize;
        let reading = |opt: &dyn Optimizer| {
            let m = opt.group_momentums()[0].unwrap_or(0.0);
            (opt.lr().to_bits(), m.to_bits())
        };
        let (p, mut opt, mut s) = setup(spec);
        let mut straight = Vec::new();
        for k in 0..steps {
            straight.push(reading(opt.as_ref()));
            advance(spec, k, &p, opt.as_mut(), &mut s);
        }
        for split in [1, steps / 2, steps - 1] {
            let (p, mut opt, mut s) = setup(spec);
            let mut resumed = Vec::new();
            for k in 0..split {
                resumed.push(reading(opt.as_ref()));
                advance(spec, k, &p, opt.as_mut(), &mut s);
            }
            let path = std::env::temp_dir().join(format!(
                "gradlab-resume-{name}-{split}-{}.safetensors",
                std::process::id()
            ));
            opt.save_with_scheduler(&path, s.as_dyn()).unwrap();
            // a new optimiser and schedule, built the same way, then the file
            let (p, mut opt, mut s) = setup(spec);
            opt.load_with_scheduler(&path, s.as_dyn_mut())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            std::fs::remove_file(&path).unwrap();
            for k in split..steps {
                resumed.push(reading(opt.as_ref()));
                advance(spec, k, &p, opt.as_mut(), &mut s);
            }
            assert_eq!(resumed, straight, "{name}: resumed after {split} steps");
        }
    }
}
