//! Every case of the `transforms` section of the PyTorch reference file
//! `tests/data/ops_extra.json` (or of the directory named by `GRADLAB_REFERENCE_DIR`):
//! Jacobians, Hessian blocks, JVPs, HVPs and per-sample gradients, each computed by the
//! closure form in `autograd::transforms` and by the on-tape form where there is one.
//!
//! Cases are dispatched on `kind`; the function is code, so it is looked up by the case's
//! `name` (and its `function` string is checked to be the one that name means), while every
//! shape, value, tangent and the `wrt`/`batch` lists come from the file, so a held-out file
//! with other shapes and seeds runs unchanged. Tolerance: the reference README's `rtol
//! 1e-12, atol 1e-13` for every float, second order included.

use std::collections::BTreeMap;

use autograd::testing::reference::{load_json, reference_file, Comparison, RefTensor};
use autograd::testing::Tolerance;
use autograd::{transforms, Result, Tape, Tensor, Var};
use serde_json::Value;

const TOL: Tolerance = Tolerance {
    atol: 1e-13,
    rtol: 1e-12,
};

/// A reference tensor, decoded by the workspace's one reader.
fn reference(v: &Value) -> RefTensor {
    RefTensor::from_json(v).unwrap_or_else(|e| panic!("{e}"))
}

fn tensor(v: &Value) -> Tensor<f64> {
    reference(v).tensor()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list of names")
        .iter()
        .map(|s| s.as_str().expect("a name").to_string())
        .collect()
}

/// The function each transform name stands for, exactly as its `function` string says.
const FUNCTIONS: &[(&str, &str)] = &[
    ("jacobian_tanh_affine", "f(x) = tanh(W @ x + b)"),
    ("hessian_two_inputs", "f(x, y) = sum_i sin(x_i) * (y @ y^T @ x)_i"),
    ("jvp_softmax_times_x", "f(x) = softmax(x) * x"),
    ("hvp_logsumexp", "f(x) = logsumexp(A @ x)"),
    (
        "per_sample_grads_linear",
        "loss_i(W, b) = cross_entropy(X[i] @ W^T + b, y[i]) for i < B; mean_loss(W, b) = (1/B) sum_i loss_i(W, b)",
    ),
];

/// `A @ x` for a matrix `A` and a vector `x`, as a vector.
fn matvec<'t>(a: Var<'t, f64>, x: Var<'t, f64>) -> Result<Var<'t, f64>> {
    let n = x.shape().numel();
    let y = a.matmul(x.reshape([n, 1])?)?;
    y.reshape([y.shape().numel()])
}

/// `f` of a (non-batched) transform, with its inputs by name.
fn function<'t>(name: &str, v: &BTreeMap<String, Var<'t, f64>>) -> Result<Var<'t, f64>> {
    let x = |k: &str| *v.get(k).unwrap_or_else(|| panic!("{name}: no input {k}"));
    match name {
        "jacobian_tanh_affine" => Ok(matvec(x("W"), x("x"))?.add(x("b"))?.tanh()),
        "hessian_two_inputs" => {
            let y = x("y");
            let yyt = y.matmul_t(y, false, true)?;
            Ok(x("x").sin().mul(matvec(yyt, x("x"))?)?.sum())
        }
        "jvp_softmax_times_x" => x("x").softmax(0)?.mul(x("x")),
        "hvp_logsumexp" => matvec(x("A"), x("x"))?.logsumexp(&[0], false),
        other => panic!("no function for transform {other}"),
    }
}

/// The per-example losses `[B']` of `per_sample_grads_linear`, with per-example weights
/// `W: [B', C, D]`, `b: [B', C]` and examples `X: [B', D]`, `y: [B']` (class indices as
/// floats).
fn per_example_cross_entropy<'t>(
    w: Var<'t, f64>,
    b: Var<'t, f64>,
    x: Var<'t, f64>,
    y: Var<'t, f64>,
) -> Result<Var<'t, f64>> {
    let n = x.dims()[0];
    let c = w.dims()[1];
    let z = x.unsqueeze(1)?.matmul_t(w, false, true)?.reshape([n, c])?;
    let z = z.add(b)?;
    let targets: Vec<usize> = y.value().as_slice().iter().map(|&t| t as usize).collect();
    let picked = z.log_softmax(1)?.gather(1, &targets, [n, 1])?;
    Ok(picked.reshape([n])?.neg())
}

/// Pins a stored closure to the higher-ranked signature the per-sample transforms take.
fn pin<F>(f: F) -> F
where
    F: for<'t> Fn(&[Var<'t, f64>], &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    f
}

struct Case<'a> {
    name: &'a str,
    inputs: BTreeMap<String, Tensor<f64>>,
    wrt: Vec<String>,
    cmp: &'a mut Comparison,
}

impl Case<'_> {
    fn compare(&mut self, what: &str, ours: &Tensor<f64>, r: &Value) {
        let category = what.split(['[', ' ']).next().unwrap_or(what);
        self.cmp
            .compare(category, self.name, what, ours, &reference(r), TOL);
    }

    fn wrt_tensors(&self) -> Vec<Tensor<f64>> {
        self.wrt.iter().map(|k| self.inputs[k].clone()).collect()
    }

    /// `function(name)` with the `wrt` inputs taken from `vars` and the others as constants.
    fn eval<'t>(&self, vars: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        let tape = vars[0].tape();
        let mut m = BTreeMap::new();
        for (k, t) in &self.inputs {
            m.insert(k.clone(), tape.constant(t.clone()));
        }
        for (k, v) in self.wrt.iter().zip(vars) {
            m.insert(k.clone(), *v);
        }
        function(self.name, &m)
    }

    fn jacobian(&mut self, c: &Value) {
        let (out, jac) =
            transforms::jacobian(|v| self.eval(v), &self.wrt_tensors()).expect("jacobian");
        self.compare("output", &out, &c["output"]);
        // One tensor for one input, else an object keyed by input name.
        let j = &c["jacobian"];
        let refs: Vec<&Value> = if j.get("shape").is_some() {
            assert_eq!(self.wrt.len(), 1, "one Jacobian tensor for several inputs");
            vec![j]
        } else {
            self.wrt.iter().map(|k| &j[k]).collect()
        };
        // the on-tape (differentiable) form gives the same numbers
        let tape = Tape::new();
        let vars: Vec<_> = self
            .wrt_tensors()
            .into_iter()
            .map(|t| tape.var(t))
            .collect();
        let y = self.eval(&vars).expect("forward");
        let on_tape = tape.jacobian(y, &vars).expect("tape.jacobian");
        for (i, r) in refs.into_iter().enumerate() {
            let k = self.wrt[i].clone();
            self.compare(&format!("jacobian[{k}]"), &jac[i], r);
            self.compare(&format!("tape.jacobian[{k}]"), &on_tape[i].value(), r);
        }
    }

    fn hessian(&mut self, c: &Value) {
        let xs = self.wrt_tensors();
        let (value, grads) = transforms::value_and_grad(|v| self.eval(v), &xs).expect("grad");
        self.compare("value", &value, &c["value"]);
        for (k, g) in self.wrt.clone().iter().zip(&grads) {
            self.compare(&format!("grad[{k}]"), g, &c["grad"][k]);
        }
        let h = transforms::hessian(|v| self.eval(v), &xs).expect("hessian");
        let tape = Tape::new();
        let vars: Vec<_> = xs.into_iter().map(|t| tape.var(t)).collect();
        let y = self.eval(&vars).expect("forward");
        let on_tape = tape.hessian(y, &vars).expect("tape.hessian");
        let wrt = self.wrt.clone();
        for (a, ka) in wrt.iter().enumerate() {
            for (b, kb) in wrt.iter().enumerate() {
                let key = format!("{ka},{kb}");
                let r = &c["hessian"][&key];
                assert!(!r.is_null(), "{}: no Hessian block {key}", self.name);
                self.compare(&format!("hessian[{key}]"), &h[a][b], r);
                self.compare(&format!("tape.hessian[{key}]"), &on_tape[a][b].value(), r);
            }
        }
    }

    fn jvp(&mut self, c: &Value) {
        let xs = self.wrt_tensors();
        let ts: Vec<_> = self.wrt.iter().map(|k| tensor(&c["tangents"][k])).collect();
        let (out, jv) = transforms::jvp(|v| self.eval(v), &xs, &ts).expect("jvp");
        self.compare("output", &out, &c["output"]);
        self.compare("jvp", &jv, &c["jvp"]);
        let tape = Tape::new();
        let vars: Vec<_> = xs.into_iter().map(|t| tape.var(t)).collect();
        let tv: Vec<_> = ts.into_iter().map(|t| tape.constant(t)).collect();
        let y = self.eval(&vars).expect("forward");
        let on_tape = tape.jvp(y, &vars, &tv).expect("tape.jvp");
        self.compare("tape.jvp", &on_tape.value(), &c["jvp"]);
    }

    fn hvp(&mut self, c: &Value) {
        let xs = self.wrt_tensors();
        let vs: Vec<_> = self.wrt.iter().map(|k| tensor(&c["vector"][k])).collect();
        let (_, grads) = transforms::value_and_grad(|v| self.eval(v), &xs).expect("grad");
        let (value, hv) = transforms::hvp(|v| self.eval(v), &xs, &vs).expect("hvp");
        self.compare("value", &value, &c["value"]);
        let tape = Tape::new();
        let vars: Vec<_> = xs.into_iter().map(|t| tape.var(t)).collect();
        let vv: Vec<_> = vs.into_iter().map(|t| tape.constant(t)).collect();
        let y = self.eval(&vars).expect("forward");
        let on_tape = tape.hvp(y, &vars, &vv).expect("tape.hvp");
        for (i, k) in self.wrt.clone().iter().enumerate() {
            self.compare(&format!("grad[{k}]"), &grads[i], &c["grad"][k]);
            self.compare(&format!("hvp[{k}]"), &hv[i], &c["hvp"][k]);
            self.compare(&format!("tape.hvp[{k}]"), &on_tape[i].value(), &c["hvp"][k]);
        }
    }

    fn per_sample_grads(&mut self, c: &Value) {
        assert_eq!(self.name, "per_sample_grads_linear");
        let batch_names = names(&c["batch"]);
        let (params, batch): (Vec<_>, Vec<_>) = (self.wrt_tensors(), {
            batch_names.iter().map(|k| self.inputs[k].clone()).collect()
        });
        let pos = |list: &[String], k: &str| list.iter().position(|n| n == k).expect(k);
        let (iw, ib) = (pos(&self.wrt, "W"), pos(&self.wrt, "b"));
        let (ix, iy) = (pos(&batch_names, "X"), pos(&batch_names, "y"));
        let f = pin(|p, b| per_example_cross_entropy(p[iw], p[ib], b[ix], b[iy]));
        let vectorised = transforms::per_sample_grads(f, &params, &batch).expect("vectorised");
        let looped = transforms::per_sample_grads_loop(f, &params, &batch).expect("loop");
        for (how, r) in [("vectorised", vectorised), ("loop", looped)] {
            self.compare(&format!("{how} losses"), &r.losses, &c["losses"]);
            self.compare(
                &format!("{how} mean_loss"),
                &Tensor::scalar(r.mean_loss()),
                &c["mean_loss"],
            );
            let means = r.mean_grads().expect("mean");
            for (i, k) in self.wrt.clone().iter().enumerate() {
                self.compare(&format!("{how} grads[{k}]"), &r.grads[i], &c["grads"][k]);
                self.compare(
                    &format!("{how} mean_grads[{k}]"),
                    &means[i],
                    &c["mean_grads"][k],
                );
            }
        }
    }
}

#[test]
fn every_transform_matches_pytorch() {
    let path = reference_file("ops_extra.json");
    let file = load_json(&path).unwrap_or_else(|e| panic!("{e}"));
    let transforms = file["transforms"].as_array().expect("a transforms list");
    assert!(
        !transforms.is_empty(),
        "no transforms in {}",
        path.display()
    );
    let mut cmp = Comparison::default();
    let mut kinds = BTreeMap::<String, usize>::new();
    for c in transforms {
        let name = c["name"].as_str().expect("name");
        let function = c["function"].as_str().expect("function");
        let known = FUNCTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("unknown transform {name} ({function})"));
        assert_eq!(
            known.1, function,
            "{name} is not the function this test implements"
        );
        let mut case = Case {
            name,
            inputs: c["inputs"]
                .as_object()
                .expect("inputs")
                .iter()
                .map(|(k, v)| (k.clone(), tensor(v)))
                .collect(),
            wrt: names(&c["wrt"]),
            cmp: &mut cmp,
        };
        let kind = c["kind"].as_str().expect("kind");
        match kind {
            "jacobian" => case.jacobian(c),
            "hessian" => case.hessian(c),
            "jvp" => case.jvp(c),
            "hvp" => case.hvp(c),
            "per_sample_grads" => case.per_sample_grads(c),
            other => panic!("{name}: unknown kind {other}"),
        }
        *kinds.entry(kind.to_string()).or_default() += 1;
    }
    println!("transforms checked: {kinds:?}\n{}", cmp.summary());
    assert!(cmp.failures().is_empty(), "{}", cmp.failures().join("\n"));
}
