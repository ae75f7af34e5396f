//! Every case of `optim_trajectories.json` reproduced in f64: losses, gradients (through the
//! tape) and parameters, step for step, at the tolerance and `check_steps` the file gives.
//!
//! Reads `$GRADLAB_REFERENCE_DIR/optim_trajectories.json` when the variable is set (e.g. a
//! held-out set), else the project's copy in `tests/data/`. Nothing about the cases is
//! hardcoded: the optimiser comes from `optimizer` + `param_group`, the problem from
//! `problems`, sizes and step counts from the data.

use std::path::PathBuf;

use autograd::{Param, Tape, Tensor};
use optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, NAdam, Optim, Optimizer, RmsProp, Sgd, UpdateRule,
};
use serde_json::Value;

fn reference_file() -> PathBuf {
    let dir = std::env::var_os("GRADLAB_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data")));
    dir.join("optim_trajectories.json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of numbers, got {v}"))
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Hyper-parameters PyTorch records that do not change the maths on CPU tensors.
const IMPLEMENTATION_ONLY: &[&str] = &["foreach", "fused", "capturable", "differentiable"];

/// Reads `param_group` into a rule, failing on any key it does not understand so that a
/// new hyper-parameter cannot be silently ignored.
struct Group<'a> {
    map: &'a serde_json::Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Group<'a> {
    fn f64(&mut self, key: &'static str, into: &mut f64) {
        self.used.push(key);
        if let Some(v) = self.map.get(key) {
            *into = v
                .as_f64()
                .unwrap_or_else(|| panic!("{key}: not a number: {v}"));
        }
    }
    fn bool(&mut self, key: &'static str, into: &mut bool) {
        self.used.push(key);
        if let Some(v) = self.map.get(key) {
            *into = v
                .as_bool()
                .unwrap_or_else(|| panic!("{key}: not a bool: {v}"));
        }
    }
    fn betas(&mut self, into: &mut (f64, f64)) {
        self.used.push("betas");
        if let Some(v) = self.map.get("betas") {
            let b = floats(v);
            *into = (b[0], b[1]);
        }
    }
    fn finish(self, optimizer: &str) {
        for key in self.map.keys() {
            let known = key == "lr"
                || self.used.contains(&key.as_str())
                || IMPLEMENTATION_ONLY.contains(&key.as_str());
            assert!(known, "{optimizer}: unsupported param_group key {key:?}");
        }
    }
}

fn boxed<R: UpdateRule<f64> + 'static>(p: &Param<f64>, lr: f64, rule: R) -> Box<dyn Optimizer> {
    Box::new(Optim::new(vec![p.clone()], lr, rule).expect("reference hyper-parameters are valid"))
}

/// The optimiser PyTorch ran, from the case's class name and resolved `param_group`.
fn build(
    optimizer: &str,
    pg: &serde_json::Map<String, Value>,
    p: &Param<f64>,
) -> Box<dyn Optimizer> {
    let lr = pg["lr"].as_f64().expect("lr");
    let mut g = Group {
        map: pg,
        used: vec![],
    };
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
            g.betas(&mut r.betas);
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
            g.betas(&mut r.betas);
            g.f64("eps", &mut r.eps);
            g.f64("weight_decay", &mut r.weight_decay);
            g.f64("momentum_decay", &mut r.momentum_decay);
            g.bool("decoupled_weight_decay", &mut r.decoupled_weight_decay);
            g.bool("maximize", &mut r.maximize);
            boxed(p, lr, r)
        }
        "Adamax" => {
            let mut r = Adamax::default();
            g.betas(&mut r.betas);
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
        other => panic!("no mapping for torch.optim.{other}"),
    };
    g.finish(optimizer);
    opt
}

/// The loss at the current value of `p`, with its gradient accumulated into `p` by the tape.
fn loss_and_backward(problem_name: &str, problem: &Value, p: &Param<f64>) -> f64 {
    let tape = Tape::new();
    let w = tape.param(p);
    let loss = match problem_name {
        // L = Σ c (p − t)² + k Σ p⁴
        "quartic" => {
            let n = p.numel();
            let c = tape.constant(Tensor::from_vec(floats(&problem["c"]), [n]).unwrap());
            let t = tape.constant(Tensor::from_vec(floats(&problem["t"]), [n]).unwrap());
            let k = problem["quartic_coef"].as_f64().expect("quartic_coef");
            (c * (w - t).square()).sum() + w.powf(4.0).sum().mul_scalar(k)
        }
        // L = (a − x)² + b (y − x²)²
        "rosenbrock" => {
            let a = problem["a"].as_f64().expect("a");
            let b = problem["b"].as_f64().expect("b");
            let x = w.narrow(0, 0, 1).unwrap();
            let y = w.narrow(0, 1, 1).unwrap();
            (x.rsub_scalar(a).square() + (y - x.square()).square().mul_scalar(b)).sum()
        }
        other => panic!("no definition for problem {other:?}"),
    };
    let value = loss.item().unwrap();
    loss.backward().unwrap();
    value
}

/// Worst `|ours − ref| / (atol + rtol·|ref|)` seen (≤ 1 passes) and where.
#[derive(Default)]
struct Worst {
    ratio: f64,
    abs: f64,
    at: String,
}

impl Worst {
    fn check(
        &mut self,
        ours: f64,
        reference: f64,
        rtol: f64,
        atol: f64,
        at: impl FnOnce() -> String,
    ) {
        let diff = (ours - reference).abs();
        let ratio = if ours.is_finite() {
            diff / (atol + rtol * reference.abs())
        } else {
            f64::INFINITY
        };
        if diff > self.abs {
            self.abs = diff;
        }
        if ratio > self.ratio {
            self.ratio = ratio;
            self.at = at();
        }
    }
}

#[test]
fn every_reference_trajectory_matches_pytorch() {
    let path = reference_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let data: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(data["format"], "optim_trajectories/v1");
    let cases = data["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());

    let mut failures = Vec::new();
    let mut overall = Worst::default();
    let mut compared = 0usize;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let problem_name = case["problem"].as_str().expect("problem");
        let problem = &data["problems"][problem_name];
        let steps = case["steps"].as_u64().expect("steps") as usize;
        let check_steps = case["check_steps"].as_u64().expect("check_steps") as usize;
        let (rtol, atol) = (
            case["rtol"].as_f64().unwrap(),
            case["atol"].as_f64().unwrap(),
        );
        let init = floats(&case["initial_params"]);
        let n = init.len();

        let p = Param::new(Tensor::from_vec(init, [n]).unwrap());
        let pg = case["param_group"].as_object().expect("param_group");
        let mut opt = build(case["optimizer"].as_str().expect("optimizer"), pg, &p);

        let mut worst = Worst::default();
        let mut first_loss = f64::NAN;
        let mut last_finite = true;
        for k in 0..steps {
            opt.zero_grad();
            let loss = loss_and_backward(problem_name, problem, &p);
            let grad = p.grad().expect("backward sets the gradient").to_vec();
            opt.step().unwrap();
            let params = p.value().to_vec();
            if k == 0 {
                first_loss = loss;
            }
            if k >= check_steps {
                // Past check_steps only the qualitative behaviour is comparable.
                last_finite &= loss.is_finite() && params.iter().all(|x| x.is_finite());
                continue;
            }
            worst.check(
                loss,
                case["losses"][k].as_f64().unwrap(),
                rtol,
                atol,
                || format!("loss before step {}", k + 1),
            );
            let (ref_grad, ref_params) = (floats(&case["grads"][k]), floats(&case["params"][k]));
            assert_eq!(
                (grad.len(), params.len()),
                (ref_grad.len(), ref_params.len())
            );
            for i in 0..n {
                worst.check(grad[i], ref_grad[i], rtol, atol, || {
                    format!("grad[{i}] before step {}", k + 1)
                });
                worst.check(params[i], ref_params[i], rtol, atol, || {
                    format!("param[{i}] after step {}", k + 1)
                });
            }
            compared += 1 + 2 * n;
        }
        // The final loss, at the parameters after the last step.
        opt.zero_grad();
        let final_loss = loss_and_backward(problem_name, problem, &p);
        let ref_final = case["final_loss"].as_f64().unwrap();
        if check_steps >= steps {
            worst.check(final_loss, ref_final, rtol, atol, || "final loss".into());
        } else {
            let qualitative = last_finite
                && final_loss < first_loss
                && (final_loss - ref_final).abs() <= 1e-3 * (ref_final.abs() + 1e-3);
            println!(
                "{name:45} past check_steps {check_steps}: final loss {final_loss} vs PyTorch {ref_final}"
            );
            if !qualitative {
                failures.push(format!(
                    "{name}: after check_steps: finite {last_finite}, loss {first_loss} -> {final_loss} (PyTorch {ref_final})"
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
        if worst.ratio > overall.ratio {
            overall = Worst {
                at: format!("{name}: {}", worst.at),
                ..worst
            };
        } else {
            overall.abs = overall.abs.max(worst.abs);
        }
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
