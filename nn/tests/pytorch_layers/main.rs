//! Every case of the PyTorch reference file `tests/data/layers.json` (or of the directory
//! named by `GRADLAB_REFERENCE_DIR`): each `torch.nn` module is built from the case's
//! `attrs`, its `params` are loaded by their `state_dict` keys, and its outputs, the
//! gradient of `Σ_j <outputs[j], cotangents[j]>` with respect to every differentiable input
//! and every trainable parameter, and the buffers after the call are compared with
//! PyTorch's at the reference README's tolerances (rtol 1e-12, atol 1e-13; integers
//! exact). Cases are dispatched on `module`; every size, flag and hyper-parameter comes
//! from `attrs`, `call` and the tensor shapes, so a held-out file runs unchanged. An
//! unknown module, or an attribute its family does not read, fails the test.
//!
//! # Writing a family
//!
//! A family file (`conv.rs`, `norm.rs`, `seq.rs`, ...) exports `MODULES`, the `torch.nn`
//! class names it handles, and `run`, which builds the module from the case and calls it
//! through the [`Harness`](common::Harness). Register the file in [`FAMILIES`] below.
//!
//! ```ignore
//! pub const MODULES: &[&str] = &["Linear"];
//!
//! pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
//!     let a = h.attrs();
//!     h.only_attrs(&["in_features", "out_features", "bias"], &[])?; // no flag ignored
//!     let fc: Linear<f64> = LinearConfig { bias: a.bool("bias", true),
//!         ..LinearConfig::new(usize_attr(a, "in_features")?, usize_attr(a, "out_features")?) }
//!         .init(&mut rng())?;
//!     let y = h.call(&fc, h.input("x")?)?;     // loads params, sets mode, `cx.call`
//!     Ok(Run::new().output("output", y))       // outputs under the case's names
//! }
//! ```
//!
//! The harness API (`common.rs`):
//!
//! | item | what |
//! | --- | --- |
//! | `h.case`, `h.attrs()`, `h.call_args()` | the [`LayerCase`]; its constructor and call arguments ([`Attrs`] getters) |
//! | `h.only_attrs(&attrs, &call_args)` | fails on any `attrs`/`call` key outside the lists |
//! | `h.input(name)`, `h.opt_input(name)` | an input as a `Var` (a variable if differentiable; int64 inputs as float constants) |
//! | `h.indices(name)`, `h.mask(name)` | an int64 input as `(Vec<usize>, shape)`, or as a 0/1 float tensor (bool masks) |
//! | `h.call(&module, input)` | `h.bind` + `cx.call(&module, input)` + `h.check_bound`: the usual way |
//! | `h.bind(&module)` | loads `params` by `named_parameters()`/`named_buffers()` keys (missing, extra, wrongly shaped or wrongly typed keys fail; the parameters must be the case's `trainable`), sets train/eval from `training`, and returns a `Ctx` in which each parameter is a variable of the tape; for calls other than `cx.call` (a method returning indices) |
//! | `h.check_bound(&cx)` | fails when a parameter was not read through `cx.param` |
//! | `Run::new().output(name, var)`, `.indices(name, values, shape)` | the outputs, under the case's names |
//! | `usize_attr`, `opt_usize_attr`, `tuple_attr::<N>` | typed attribute readers (`tuple_attr` reads PyTorch's int-or-tuple sizes) |
//!
//! After `run` returns, the harness checks: the output names are the case's; each float
//! output against the stored value, each int output exactly; one cotangent per float
//! output; the gradients of every `differentiable` input and every parameter (the
//! substituted variables) against `grads`, whose keys must be exactly those; the buffers
//! against `buffers_after`, or unchanged when the case stores none; a case with `params`
//! must have bound a module. One line per case reports how much of the tolerance its
//! worst element used.
//!
//! [`LayerCase`]: autograd::testing::reference::LayerCase
//! [`Attrs`]: autograd::testing::reference::Attrs

mod common;
mod conv;
mod dense;
mod norm;
mod pool;
mod seq;

use std::path::PathBuf;

use autograd::testing::reference::{load_json, reference_dir, Comparison, LayerCase};
use common::{check_case, Harness, Run};

type RunFn = for<'c, 't> fn(&Harness<'c, 't>) -> anyhow::Result<Run<'t>>;

/// A family file: the modules it handles and its entry point.
struct Family {
    modules: &'static [&'static str],
    run: RunFn,
}

/// Every family, in dispatch order.
const FAMILIES: &[Family] = &[
    Family {
        modules: dense::MODULES,
        run: dense::run,
    },
    Family {
        modules: conv::MODULES,
        run: conv::run,
    },
    Family {
        modules: pool::MODULES,
        run: pool::run,
    },
    Family {
        modules: norm::MODULES,
        run: norm::run,
    },
    Family {
        modules: seq::MODULES,
        run: seq::run,
    },
];

fn reference_file() -> PathBuf {
    reference_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data"))
        .join("layers.json")
}

fn cases() -> Vec<LayerCase> {
    let path = reference_file();
    let json = load_json(&path).unwrap();
    let cases = LayerCase::all(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    cases
}

/// Runs one case through its family; an unknown module is a failure.
fn run_case(case: &LayerCase) -> Comparison {
    match FAMILIES
        .iter()
        .find(|f| f.modules.contains(&case.module.as_str()))
    {
        Some(f) => check_case(case, f.run),
        None => {
            let mut cmp = Comparison::default();
            cmp.fail(format!(
                "{}: unknown module {:?}: add it to a family of pytorch_layers",
                case.name, case.module
            ));
            cmp
        }
    }
}

#[test]
fn every_layers_case_matches_pytorch() {
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        let cmp = run_case(case);
        match cmp.worst_ratio() {
            Some((r, at)) => println!(
                "{:<32} {:<26} worst {r:.3e} of the tolerance ({at})",
                case.name, case.module
            ),
            None => println!("{:<32} {:<26} nothing compared", case.name, case.module),
        }
        failures.extend(cmp.failures().iter().cloned());
    }
    println!("{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every stored value the harness compares must matter: each case that passes as stored
/// fails when the first element of one output, one gradient or one buffer is nudged by
/// 1e-9 relative (a thousand times the tolerance) or, for integers, by one.
#[test]
fn a_changed_stored_value_fails_the_case() {
    fn nudge(t: &mut autograd::testing::reference::RefTensor) {
        if t.int {
            t.data[0] += 1.0;
        } else {
            t.data[0] += 1e-9 * t.data[0].abs().max(1.0);
        }
    }
    let mut checked = 0;
    for case in cases() {
        if !run_case(&case).failures().is_empty() {
            continue; // reported by every_layers_case_matches_pytorch
        }
        let mut variants: Vec<(String, LayerCase)> = Vec::new();
        for k in case.outputs.keys() {
            let mut c = case.clone();
            nudge(c.outputs.get_mut(k).unwrap());
            variants.push((format!("output {k}"), c));
        }
        for k in case.grads.keys() {
            let mut c = case.clone();
            nudge(c.grads.get_mut(k).unwrap());
            variants.push((format!("grad of {k}"), c));
        }
        for k in case.buffers_after.iter().flat_map(|b| b.keys()) {
            let mut c = case.clone();
            nudge(c.buffers_after.as_mut().unwrap().get_mut(k).unwrap());
            variants.push((format!("buffer {k}"), c));
        }
        for (what, c) in variants {
            assert!(
                !run_case(&c).failures().is_empty(),
                "{}: a changed {what} still passed",
                case.name
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no case passed, so nothing was perturbed");
    println!("{checked} perturbations failed as they should");
}

/// The state must load exactly: a `params` key the module lacks, a module key the case
/// lacks, a wrong shape, a parameter listed as a buffer, a missing gradient or an
/// unknown module each fail the case.
#[test]
fn state_and_schema_mismatches_fail_the_case() {
    let cases = cases();
    let linear = cases
        .iter()
        .find(|c| c.module == "Linear" && c.params.contains_key("bias"))
        .expect("a Linear case with bias")
        .clone();
    assert!(run_case(&linear).failures().is_empty());
    let mut changes: Vec<(&str, LayerCase)> = Vec::new();
    let mut c = linear.clone();
    let b = c.params["bias"].clone();
    c.params.insert("extra".into(), b);
    changes.push(("an extra key", c));
    let mut c = linear.clone();
    c.params.remove("bias");
    changes.push(("a missing key", c));
    let mut c = linear.clone();
    let w = c.params.get_mut("weight").unwrap();
    let (rows, cols) = (w.shape[0], w.shape[1]);
    w.shape = vec![cols, rows];
    changes.push(("a transposed shape", c));
    let mut c = linear.clone();
    c.trainable.retain(|k| k != "bias");
    changes.push(("a parameter not listed as trainable", c));
    let mut c = linear.clone();
    c.grads.remove("bias");
    changes.push(("a missing gradient", c));
    let mut c = linear.clone();
    c.outputs
        .insert("extra".into(), c.outputs["output"].clone());
    changes.push(("an output the module does not produce", c));
    let mut c = linear.clone();
    c.attrs.0["device"] = "cuda".into();
    changes.push(("an attribute the family does not read", c));
    let mut c = linear;
    c.module = "Linear2".into();
    changes.push(("an unknown module", c));
    for (what, c) in changes {
        let cmp = run_case(&c);
        assert!(!cmp.failures().is_empty(), "{what} still passed");
    }
}
