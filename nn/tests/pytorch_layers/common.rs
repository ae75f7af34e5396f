//! The shared machinery of the layer parity test: inputs on a tape, loading a case's
//! `params` into a module by its `state_dict` keys, train/eval, the comparison of outputs,
//! gradients and buffers at the reference README's tolerances. A family file only builds
//! its module from `attrs` and calls it (see `main.rs` for the API).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, ensure, Context};
use autograd::testing::reference::{Attrs, Comparison, LayerCase, RefTensor};
use autograd::testing::Tolerance;
use autograd::{Param, Tape, Tensor, Var};
use nn::{Buffer, Ctx, Forward, Module};
use serde_json::Value;

/// Outputs, gradients and float buffers (the reference README's layer tolerances).
pub const FIRST: Tolerance = Tolerance {
    atol: 1e-13,
    rtol: 1e-12,
};
/// Integer buffers (`num_batches_tracked`) and buffers that must not change.
pub const EXACT: Tolerance = Tolerance {
    atol: 0.0,
    rtol: 0.0,
};

/// One result of a module call, by the output name the case uses.
pub enum Out<'t> {
    /// A float output: compared, and differentiated against its cotangent.
    Float(Var<'t, f64>),
    /// An int64 output (max-pool indices): compared exactly, no cotangent.
    Int {
        /// The values, row-major.
        values: Vec<usize>,
        /// Their shape.
        shape: Vec<usize>,
    },
}

/// What a family returns: the module's outputs under the case's output names.
#[derive(Default)]
pub struct Run<'t> {
    outputs: Vec<(String, Out<'t>)>,
}

impl<'t> Run<'t> {
    /// No outputs yet.
    pub fn new() -> Self {
        Run::default()
    }

    /// Adds a float output named `name` (`"output"`, `"h_n"`, `"attn_weights"`).
    pub fn output(mut self, name: &str, v: Var<'t, f64>) -> Self {
        self.outputs.push((name.to_string(), Out::Float(v)));
        self
    }

    /// Adds an int64 output (positions) with its shape.
    pub fn indices(mut self, name: &str, values: Vec<usize>, shape: Vec<usize>) -> Self {
        self.outputs
            .push((name.to_string(), Out::Int { values, shape }));
        self
    }
}

/// What `Harness::bind` recorded: the substituted parameters and the module's buffers.
struct Bound<'t> {
    /// Every parameter: name, handle, and the `Var` that stands for it on the tape.
    params: Vec<(String, Param<f64>, Var<'t, f64>)>,
    /// Every buffer: name, handle (shared with the module), and the value loaded.
    buffers: Vec<(String, Buffer<f64>, Tensor<f64>)>,
}

/// A case on a tape: its inputs as `Var`s, and the module state once bound.
pub struct Harness<'c, 't> {
    /// The case being run.
    pub case: &'c LayerCase,
    tape: &'t Tape<f64>,
    vars: BTreeMap<String, Var<'t, f64>>,
    bound: RefCell<Option<Bound<'t>>>,
}

impl<'c, 't> Harness<'c, 't> {
    /// Records the case's inputs on `tape`: differentiable ones as variables, the rest
    /// (int64 indices and masks included, as floats) as constants.
    pub fn new(case: &'c LayerCase, tape: &'t Tape<f64>) -> Self {
        let vars = case
            .inputs
            .iter()
            .map(|(k, r)| {
                let v = if case.differentiable.contains(k) {
                    tape.var(r.tensor())
                } else {
                    tape.constant(r.tensor())
                };
                (k.clone(), v)
            })
            .collect();
        Harness {
            case,
            tape,
            vars,
            bound: RefCell::new(None),
        }
    }

    /// The tape.
    // Part of the family API; the sequence family (layers-b) uses it.
    #[allow(dead_code)]
    pub fn tape(&self) -> &'t Tape<f64> {
        self.tape
    }

    /// Constructor arguments.
    pub fn attrs(&self) -> &'c Attrs {
        &self.case.attrs
    }

    /// Call arguments.
    // Part of the family API; the sequence family (layers-b) uses it.
    #[allow(dead_code)]
    pub fn call_args(&self) -> &'c Attrs {
        &self.case.call
    }

    /// Input `name` as a `Var` (a variable when differentiable; int64 inputs as float
    /// constants).
    pub fn input(&self, name: &str) -> anyhow::Result<Var<'t, f64>> {
        self.vars
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("the case has no input {name:?}"))
    }

    /// Input `name` if the case has it (an optional initial state).
    // Part of the family API; the sequence family (layers-b) uses it.
    #[allow(dead_code)]
    pub fn opt_input(&self, name: &str) -> Option<Var<'t, f64>> {
        self.vars.get(name).copied()
    }

    /// An int64 input as indices, with its shape.
    // Part of the family API; the sequence family (layers-b) uses it.
    #[allow(dead_code)]
    pub fn indices(&self, name: &str) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
        let r = self.int_input(name)?;
        Ok((
            r.indices().map_err(|e| anyhow!("{name}: {e}"))?,
            r.shape.clone(),
        ))
    }

    /// An int64 0/1 input (a bool mask stored as int64) as a 0/1 float tensor.
    // Part of the family API; the sequence family (layers-b) uses it.
    #[allow(dead_code)]
    pub fn mask(&self, name: &str) -> anyhow::Result<Tensor<f64>> {
        Ok(self.int_input(name)?.tensor())
    }

    // Part of the family API; the sequence family (layers-b) uses it.
    #[allow(dead_code)]
    fn int_input(&self, name: &str) -> anyhow::Result<&'c RefTensor> {
        let r = self
            .case
            .inputs
            .get(name)
            .ok_or_else(|| anyhow!("the case has no input {name:?}"))?;
        ensure!(r.int, "input {name:?} is not int64");
        Ok(r)
    }

    /// Fails when `attrs` or `call` hold a key outside `known`: a flag a family does not
    /// read would otherwise be silently ignored.
    pub fn only_attrs(&self, known: &[&str], known_call: &[&str]) -> anyhow::Result<()> {
        for (what, attrs, list) in [
            ("attr", &self.case.attrs, known),
            ("call argument", &self.case.call, known_call),
        ] {
            if let Some(m) = attrs.0.as_object() {
                if let Some(k) = m.keys().find(|k| !list.contains(&k.as_str())) {
                    bail!(
                        "{} {what} {k:?} = {} is not handled by this test",
                        self.case.module,
                        m[k]
                    );
                }
            }
        }
        Ok(())
    }

    /// Loads the case's `params` into `module` by its `named_parameters()` and
    /// `named_buffers()` keys (every key must match exactly, shapes included; the
    /// parameters must be exactly the case's `trainable`), sets training or evaluation
    /// mode from the case, and returns a context in which every parameter is substituted
    /// by a variable of this tape, so the gradient of each can be taken.
    pub fn bind(&self, module: &dyn Module<f64>) -> anyhow::Result<Ctx<'t, f64>> {
        ensure!(
            self.bound.borrow().is_none(),
            "the harness binds one module per case"
        );
        let params = module.named_parameters();
        let buffers = module.named_buffers();
        let ours: BTreeSet<&str> = params
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(buffers.iter().map(|(n, _)| n.as_str()))
            .collect();
        let theirs: BTreeSet<&str> = self.case.params.keys().map(String::as_str).collect();
        let missing: Vec<_> = theirs.difference(&ours).collect();
        let extra: Vec<_> = ours.difference(&theirs).collect();
        ensure!(
            missing.is_empty() && extra.is_empty(),
            "state_dict keys differ: the case has {missing:?} that the module lacks, \
             the module has {extra:?} that the case lacks"
        );
        let ours_trainable: BTreeSet<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        let theirs_trainable: BTreeSet<&str> =
            self.case.trainable.iter().map(String::as_str).collect();
        ensure!(
            ours_trainable == theirs_trainable,
            "parameters {ours_trainable:?} are not the case's trainable {theirs_trainable:?}"
        );
        let mut cx = Ctx::new(self.tape);
        let mut bound = Bound {
            params: Vec::new(),
            buffers: Vec::new(),
        };
        for (name, p) in params {
            let r = &self.case.params[&name];
            ensure!(!r.int, "parameter {name} is int64 in the case");
            p.set_value(r.tensor())
                .with_context(|| format!("loading parameter {name}"))?;
            let v = self.tape.var(r.tensor());
            cx.substitute(&p, v);
            bound.params.push((name, p, v));
        }
        for (name, b) in buffers {
            let r = &self.case.params[&name];
            ensure!(
                r.int == b.is_integer(),
                "buffer {name}: int64 in the case is {}, in the module {}",
                r.int,
                b.is_integer()
            );
            b.set_value(r.tensor())
                .with_context(|| format!("loading buffer {name}"))?;
            bound.buffers.push((name, b, r.tensor()));
        }
        module.set_training(self.case.training);
        *self.bound.borrow_mut() = Some(bound);
        Ok(cx)
    }

    /// [`bind`](Self::bind)s `module`, runs it on `input` through `cx.call` (PyTorch's
    /// `module(input)`), and checks that every parameter was bound through `cx.param`.
    pub fn call<M: Forward<f64>>(
        &self,
        module: &M,
        input: M::Input<'t>,
    ) -> anyhow::Result<M::Output<'t>> {
        let cx = self.bind(module)?;
        let out = cx.call(module, input)?;
        self.check_bound(&cx)?;
        Ok(out)
    }

    /// Fails when a parameter of the bound module was not read through `cx.param` (so
    /// its gradient could not be taken).
    pub fn check_bound(&self, cx: &Ctx<'t, f64>) -> anyhow::Result<()> {
        if let Some(b) = self.bound.borrow().as_ref() {
            for (name, p, _) in &b.params {
                ensure!(
                    cx.substitute_used(p) == Some(true),
                    "parameter {name} was not bound through cx.param"
                );
            }
        }
        Ok(())
    }
}

/// An RNG for module constructors: every value they draw is replaced by the case's.
pub fn rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0)
}

/// A required non-negative integer attribute.
pub fn usize_attr(a: &Attrs, key: &str) -> anyhow::Result<usize> {
    let v = a.int(key).ok_or_else(|| anyhow!("missing attr {key}"))?;
    usize::try_from(v).map_err(|_| anyhow!("attr {key} = {v} is negative"))
}

/// An optional non-negative integer attribute.
pub fn opt_usize_attr(a: &Attrs, key: &str) -> anyhow::Result<Option<usize>> {
    a.int(key)
        .map(|v| usize::try_from(v).map_err(|_| anyhow!("attr {key} = {v} is negative")))
        .transpose()
}

/// A geometry attribute given as one integer or a list of `n` (PyTorch's `_pair`,
/// `_single`), or `default` when absent.
pub fn tuple_attr<const N: usize>(
    a: &Attrs,
    key: &str,
    default: [usize; N],
) -> anyhow::Result<[usize; N]> {
    let Some(v) = a.get(key) else {
        return Ok(default);
    };
    let one = |v: &Value| {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| anyhow!("attr {key}: {v} is not a size"))
    };
    match v {
        Value::Array(list) => {
            ensure!(list.len() == N, "attr {key}: expected {N} sizes, got {v}");
            let mut out = [0; N];
            for (o, x) in out.iter_mut().zip(list) {
                *o = one(x)?;
            }
            Ok(out)
        }
        v => Ok([one(v)?; N]),
    }
}

/// Runs one case through `run` (the family's function) and compares everything it
/// produces; the returned comparison holds the failures and the worst error.
pub fn check_case(
    case: &LayerCase,
    run: for<'c, 't> fn(&Harness<'c, 't>) -> anyhow::Result<Run<'t>>,
) -> Comparison {
    let mut cmp = Comparison::default();
    if let Err(e) = check_case_inner(case, run, &mut cmp) {
        cmp.fail(format!("{}: {e:#}", case.name));
    }
    cmp
}

fn check_case_inner(
    case: &LayerCase,
    run: for<'c, 't> fn(&Harness<'c, 't>) -> anyhow::Result<Run<'t>>,
    cmp: &mut Comparison,
) -> anyhow::Result<()> {
    let name = case.name.as_str();
    let tape = Tape::<f64>::new();
    let h = Harness::new(case, &tape);
    for d in &case.differentiable {
        ensure!(
            case.inputs.get(d).is_some_and(|r| !r.int),
            "differentiable input {d} is not a float input"
        );
    }
    let produced = run(&h).context("the module call failed")?;
    let bound = h.bound.borrow_mut().take();
    if bound.is_none() {
        ensure!(
            case.params.is_empty(),
            "the case has params but the family bound no module"
        );
    }

    // Outputs: exactly the case's names.
    let ours: BTreeSet<&str> = produced.outputs.iter().map(|(n, _)| n.as_str()).collect();
    let theirs: BTreeSet<&str> = case.outputs.keys().map(String::as_str).collect();
    ensure!(
        ours == theirs,
        "outputs {ours:?} are not the case's {theirs:?}"
    );
    let mut total: Option<Var<'_, f64>> = None;
    for (out_name, out) in &produced.outputs {
        let reference = &case.outputs[out_name];
        match out {
            Out::Float(v) => {
                ensure!(!reference.int, "output {out_name} is int64 in the case");
                cmp.compare("output", name, out_name, &v.value(), reference, FIRST);
                let cot = case
                    .cotangents
                    .get(out_name)
                    .ok_or_else(|| anyhow!("no cotangent for float output {out_name}"))?;
                ensure!(
                    cot.shape == v.dims(),
                    "cotangent of {out_name} has shape {:?}, the output {:?}",
                    cot.shape,
                    v.dims()
                );
                let term = v.mul(tape.constant(cot.tensor()))?.sum();
                total = Some(match total {
                    None => term,
                    Some(t) => t.add(term)?,
                });
            }
            Out::Int { values, shape } => {
                ensure!(reference.int, "output {out_name} is float in the case");
                cmp.compare_indices(name, out_name, values, shape, reference);
            }
        }
    }
    let floats: BTreeSet<&str> = produced
        .outputs
        .iter()
        .filter(|(_, o)| matches!(o, Out::Float(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    let cots: BTreeSet<&str> = case.cotangents.keys().map(String::as_str).collect();
    ensure!(
        floats == cots,
        "cotangents {cots:?} are not one per float output {floats:?}"
    );

    // Gradients: every differentiable input, then every trainable parameter.
    let mut wrt: Vec<(String, Var<'_, f64>)> = case
        .differentiable
        .iter()
        .map(|d| Ok((d.clone(), h.input(d)?)))
        .collect::<anyhow::Result<_>>()?;
    if let Some(b) = &bound {
        wrt.extend(b.params.iter().map(|(n, _, v)| (n.clone(), *v)));
    }
    let wanted: BTreeSet<&str> = wrt.iter().map(|(n, _)| n.as_str()).collect();
    let stored: BTreeSet<&str> = case.grads.keys().map(String::as_str).collect();
    ensure!(
        wanted == stored,
        "gradients of {wanted:?} do not match the case's grads {stored:?}"
    );
    if let (Some(total), false) = (total, wrt.is_empty()) {
        let vars: Vec<_> = wrt.iter().map(|(_, v)| *v).collect();
        let grads = tape.grad(total, &vars).context("the gradient failed")?;
        for ((n, _), g) in wrt.iter().zip(grads) {
            cmp.compare(
                "grad",
                name,
                &format!("grad of {n}"),
                &g.value(),
                &case.grads[n],
                FIRST,
            );
        }
    } else {
        ensure!(wrt.is_empty(), "gradients stored but no float output");
    }

    // Buffers: as stored after the call, or unchanged when nothing is stored.
    let buffers = bound.map(|b| b.buffers).unwrap_or_default();
    match &case.buffers_after {
        Some(after) => {
            let ours: BTreeSet<&str> = buffers.iter().map(|(n, _, _)| n.as_str()).collect();
            let theirs: BTreeSet<&str> = after.keys().map(String::as_str).collect();
            ensure!(
                ours == theirs,
                "buffers {ours:?} are not the case's buffers_after {theirs:?}"
            );
            for (n, b, _) in &buffers {
                let tol = if b.is_integer() { EXACT } else { FIRST };
                let what = format!("buffer {n}");
                cmp.compare("buffer", name, &what, &b.value(), &after[n], tol);
            }
        }
        None => {
            for (n, b, before) in &buffers {
                if b.value() != *before {
                    cmp.fail(format!(
                        "{name}: buffer {n} changed, but the case stores no buffers_after"
                    ));
                }
            }
        }
    }
    Ok(())
}
