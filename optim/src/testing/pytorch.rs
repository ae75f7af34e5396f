//! Replaying PyTorch optimiser references (feature `testing`): the optimiser PyTorch ran,
//! built from its class name and resolved `param_group`, and a replay of one trajectory
//! case of `optim_trajectories.json` / `optim_extra.json` against it.
//!
//! Files are found and read through [`autograd::testing::reference`], the one reader of
//! the workspace's reference files. Nothing about the cases is hardcoded: a held-out file
//! with other hyper-parameters runs unchanged, and a `param_group` key this mapping does
//! not know fails (so a new hyper-parameter cannot be silently ignored). These are test
//! helpers over trusted files: a malformed file panics with a message naming the field.

use autograd::testing::reference::{floats as try_floats, WorstRatio};
use autograd::testing::Tolerance;
use autograd::{Param, Tensor};
use serde_json::{Map, Value};

use crate::testing::Problem;
use crate::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, ClosureOptim, ClosureResult, Lbfgs, LineSearch,
    NAdam, Optim, Optimizer, RAdam, RmsProp, Rprop, Sgd, UpdateRule,
};

/// A JSON array of numbers.
///
/// # Panics
/// When `v` is not one.
pub fn floats(v: &Value) -> Vec<f64> {
    try_floats(v).unwrap_or_else(|e| panic!("{e}"))
}

/// Hyper-parameters PyTorch records that do not change the maths on CPU tensors.
const IMPLEMENTATION_ONLY: &[&str] = &["foreach", "fused", "capturable", "differentiable"];

/// Reads a `param_group` (or a scheduler's `resolved_kwargs`), failing on any key it was
/// not asked about.
#[derive(Debug)]
pub struct Group<'a> {
    /// The keys and values.
    pub map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Group<'a> {
    /// A reader of `map` that has used no key yet.
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Group { map, used: vec![] }
    }

    /// Sets `into` from the number at `key`, if present.
    ///
    /// # Panics
    /// When the value is not a number.
    pub fn f64(&mut self, key: &'static str, into: &mut f64) {
        self.used.push(key);
        if let Some(v) = self.map.get(key) {
            *into = v
                .as_f64()
                .unwrap_or_else(|| panic!("{key}: not a number: {v}"));
        }
    }

    /// Sets `into` from the count at `key`, if present.
    ///
    /// # Panics
    /// When the value is not a non-negative integer.
    pub fn u64(&mut self, key: &'static str, into: &mut u64) {
        self.used.push(key);
        if let Some(v) = self.map.get(key) {
            *into = v
                .as_u64()
                .unwrap_or_else(|| panic!("{key}: not a count: {v}"));
        }
    }

    /// Sets `into` from the boolean at `key`, if present.
    ///
    /// # Panics
    /// When the value is not a boolean.
    pub fn bool(&mut self, key: &'static str, into: &mut bool) {
        self.used.push(key);
        if let Some(v) = self.map.get(key) {
            *into = v
                .as_bool()
                .unwrap_or_else(|| panic!("{key}: not a bool: {v}"));
        }
    }

    /// Sets `into` from the pair of numbers at `key`, if present.
    ///
    /// # Panics
    /// When the value is not two numbers.
    pub fn pair(&mut self, key: &'static str, into: &mut (f64, f64)) {
        self.used.push(key);
        if let Some(v) = self.map.get(key) {
            let b = floats(v);
            assert_eq!(b.len(), 2, "{key}: expected two numbers");
            *into = (b[0], b[1]);
        }
    }

    /// A value that may be null; `None` when absent or null.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Checks that every key was asked about (or only selects an implementation).
    ///
    /// # Panics
    /// Naming `what` and the first key nobody asked about.
    pub fn finish(self, what: &str) {
        for key in self.map.keys() {
            let known =
                self.used.contains(&key.as_str()) || IMPLEMENTATION_ONLY.contains(&key.as_str());
            assert!(known, "{what}: unsupported key {key:?}");
        }
    }
}

fn boxed<R: UpdateRule<f64> + 'static>(p: &Param<f64>, lr: f64, rule: R) -> Box<dyn Optimizer> {
    Box::new(Optim::new(vec![p.clone()], lr, rule).expect("reference hyper-parameters are valid"))
}

/// The optimiser PyTorch ran, from the case's class name and resolved `param_group`.
///
/// # Panics
/// For an unknown class, an unknown or malformed key, or hyper-parameters the rule refuses.
pub fn build(optimizer: &str, pg: &Map<String, Value>, p: &Param<f64>) -> Box<dyn Optimizer> {
    let mut g = Group::new(pg);
    let mut lr = f64::NAN;
    g.f64("lr", &mut lr);
    let opt = match optimizer {
        "SGD" => {
            let mut r = Sgd::default();
            g.f64("momentum", &mut r.momentum);
            g.f64("dampening", &mut r.dampening);
            g.f64("weight_decay", &mut r.weight_decay);
            g.bool("nesterov", &mut r.nesterov);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "Adagrad" => {
            let mut r = Adagrad::default();
            g.f64("lr_decay", &mut r.lr_decay);
            g.f64("weight_decay", &mut r.weight_decay);
            g.f64(
                "initial_accumulator_value",
                &mut r.initial_accumulator_value,
            );
            g.f64("eps", &mut r.eps);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "RMSprop" => {
            let mut r = RmsProp::default();
            g.f64("alpha", &mut r.alpha);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.f64("momentum", &mut r.momentum);
            g.bool("centered", &mut r.centered);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        // torch.optim.Adam(decoupled_weight_decay=True) is AdamW.
        "Adam" | "AdamW" => {
            let mut r = Adam::default();
            let mut decoupled = optimizer == "AdamW";
            g.pair("betas", &mut r.betas);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.bool("amsgrad", &mut r.amsgrad);
            g.bool("maximize", &mut r.maximize);
            g.bool("decoupled_weight_decay", &mut decoupled);
            if decoupled {
                let w = AdamW {
                    betas: r.betas,
                    eps: r.eps,
                    weight_decay: r.weight_decay,
                    amsgrad: r.amsgrad,
                    maximize: r.maximize,
                };
                boxed(p, lr, w)
            } else {
                boxed(p, lr, r)
            }
        }
        "NAdam" => {
            let mut r = NAdam::default();
            g.pair("betas", &mut r.betas);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.f64("momentum_decay", &mut r.momentum_decay);
            g.bool("decoupled_weight_decay", &mut r.decoupled_weight_decay);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "RAdam" => {
            let mut r = RAdam::default();
            g.pair("betas", &mut r.betas);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.bool("decoupled_weight_decay", &mut r.decoupled_weight_decay);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "Adamax" => {
            let mut r = Adamax::default();
            g.pair("betas", &mut r.betas);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "Adadelta" => {
            let mut r = Adadelta::default();
            g.f64("rho", &mut r.rho);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "Rprop" => {
            let mut r = Rprop::default();
            g.pair("etas", &mut r.etas);
            g.pair("step_sizes", &mut r.step_sizes);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "ASGD" => {
            let mut r = Asgd::default();
            g.f64("lambd", &mut r.lambd);
            g.f64("alpha", &mut r.alpha);
            g.f64("t0", &mut r.t0);
            g.f64("weight_decay", &mut r.weight_decay);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "LBFGS" => {
            let mut r = Lbfgs::default();
            g.u64("max_iter", &mut r.max_iter);
            r.max_eval = g
                .get("max_eval")
                .map(|v| v.as_u64().expect("max_eval: a count"));
            g.f64("tolerance_grad", &mut r.tolerance_grad);
            g.f64("tolerance_change", &mut r.tolerance_change);
            g.u64("history_size", &mut r.history_size);
            r.line_search_fn = g.get("line_search_fn").map(|v| match v.as_str() {
                Some("strong_wolfe") => LineSearch::StrongWolfe,
                other => panic!("LBFGS: unknown line_search_fn {other:?}"),
            });
            g.bool("maximize", &mut r.maximize);
            Box::new(
                ClosureOptim::new(vec![p.clone()], lr, r)
                    .expect("reference hyper-parameters are valid"),
            )
        }
        other => panic!("no mapping for torch.optim.{other}"),
    };
    g.finish(optimizer);
    opt
}

/// Replays one trajectory case of `data` (the schema of `optim_trajectories.json`, with
/// `optim_extra.json`'s extra fields when present: `closure_evals`, `averaged_params`,
/// `eta`, `mu`), appending a line to `failures` for each mismatch; returns the case's worst
/// deviation and how many values were compared.
///
/// # Panics
/// When a field the schema requires is missing or malformed, or a step fails.
pub fn replay_case(data: &Value, case: &Value, failures: &mut Vec<String>) -> (WorstRatio, usize) {
    let name = case["name"].as_str().expect("name");
    let problem_name = case["problem"].as_str().expect("problem");
    let problem = Problem::from_json(problem_name, &data["problems"][problem_name])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let count = |key: &str| {
        case[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {key}")) as usize
    };
    let (steps, check_steps) = (count("steps"), count("check_steps"));
    let (rtol, atol) = (
        case["rtol"].as_f64().unwrap(),
        case["atol"].as_f64().unwrap(),
    );
    let init = floats(&case["initial_params"]);
    let n = init.len();
    let p = Param::new(Tensor::from_vec(init, [n]).unwrap());
    let pg = case["param_group"].as_object().expect("param_group");
    let mut opt = build(case["optimizer"].as_str().expect("optimizer"), pg, &p);

    let mut worst = WorstRatio::default();
    let tol = Tolerance { atol, rtol };
    let mut compared = 0;
    let (mut first_loss, mut last_finite, mut last_calls) = (f64::NAN, true, 0);
    let state_scalar = |opt: &dyn Optimizer, key: &str| -> Vec<f64> {
        let sd = opt.state_dict().unwrap();
        let t: Tensor<f64> = sd
            .get(key)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_float(key)
            .unwrap();
        t.to_vec()
    };
    for k in 0..steps {
        // losses[k]/grads[k] are those of the step's first evaluation (LBFGS evaluates more).
        let mut calls = 0usize;
        let mut first: Option<(f64, Vec<f64>)> = None;
        let mut closure = || -> ClosureResult {
            calls += 1;
            let loss = problem.loss_and_backward(&p)?;
            if first.is_none() {
                first = Some((loss, p.grad().expect("backward sets the gradient").to_vec()));
            }
            Ok(loss)
        };
        let returned = opt
            .step_with(&mut closure)
            .unwrap_or_else(|e| panic!("{name}: step {}: {e}", k + 1));
        let (loss, grad) =
            first.unwrap_or_else(|| panic!("{name}: step {} evaluated nothing", k + 1));
        assert_eq!(
            returned.to_bits(),
            loss.to_bits(),
            "{name}: step returns its first loss"
        );
        let params = p.value().to_vec();
        if k == 0 {
            first_loss = loss;
        }
        last_calls = calls;
        if k >= check_steps {
            // Past check_steps only the qualitative behaviour is comparable.
            last_finite &= loss.is_finite() && params.iter().all(|x| x.is_finite());
            continue;
        }
        let step = k + 1;
        worst.check(loss, case["losses"][k].as_f64().unwrap(), tol, || {
            format!("loss before step {step}")
        });
        let (ref_grad, ref_params) = (floats(&case["grads"][k]), floats(&case["params"][k]));
        assert_eq!(
            (grad.len(), params.len()),
            (ref_grad.len(), ref_params.len()),
            "{name}"
        );
        for i in 0..n {
            worst.check(grad[i], ref_grad[i], tol, || {
                format!("grad[{i}] before step {step}")
            });
            worst.check(params[i], ref_params[i], tol, || {
                format!("param[{i}] after step {step}")
            });
        }
        compared += 1 + 2 * n;
        if let Some(evals) = case.get("closure_evals") {
            let want = evals[k].as_u64().expect("closure_evals") as usize;
            if calls != want {
                failures.push(format!(
                    "{name}: step {step}: {calls} closure evaluations, PyTorch {want}"
                ));
            }
            compared += 1;
        }
        if let Some(avg) = case.get("averaged_params") {
            let ax = state_scalar(opt.as_ref(), "0.ax");
            for (i, (a, r)) in ax.iter().zip(floats(&avg[k])).enumerate() {
                worst.check(*a, r, tol, || {
                    format!("averaged_params[{i}] after step {step}")
                });
            }
            compared += n;
        }
        // ASGD's η and μ: scalar formulas, rtol 1e-12 (README).
        for key in ["eta", "mu"] {
            if let Some(series) = case.get(key) {
                let ours = state_scalar(opt.as_ref(), &format!("0.{key}"))[0];
                worst.check(
                    ours,
                    series[k].as_f64().unwrap(),
                    Tolerance {
                        atol: 0.0,
                        rtol: 1e-12,
                    },
                    || format!("{key} after step {step}"),
                );
                compared += 1;
            }
        }
    }
    let final_loss = problem.loss(&p).unwrap();
    let ref_final = case["final_loss"].as_f64().unwrap();
    if check_steps >= steps {
        worst.check(final_loss, ref_final, tol, || "final loss".into());
    } else {
        // Qualitative: finite, descending, near PyTorch's final loss, and (for closure
        // optimisers, which converge) one evaluation per step at the end.
        let settled = case.get("closure_evals").is_none() || last_calls == 1;
        let qualitative = last_finite
            && final_loss < first_loss
            && (final_loss - ref_final).abs() <= 1e-3 * (ref_final.abs() + 1e-3)
            && settled;
        println!("{name:45} past check_steps {check_steps}: final loss {final_loss:e} vs PyTorch {ref_final:e}, last step {last_calls} evaluation(s)");
        if !qualitative {
            failures.push(format!(
                "{name}: after check_steps: finite {last_finite}, loss {first_loss} -> {final_loss} (PyTorch {ref_final}), last step {last_calls} evaluations"
            ));
        }
    }
    println!(
        "{name:45} worst {:.3e} of tolerance (|diff| {:.1e}) at {}",
        worst.ratio, worst.abs, worst.at
    );
    if worst.ratio > 1.0 {
        failures.push(format!(
            "{name}: {} off by {:.3e} x tolerance",
            worst.at, worst.ratio
        ));
    }
    (worst, compared)
}
