//! Every case of the PyTorch reference file `tests/data/op_gradients.json` (or of the
//! directory named by `GRADLAB_REFERENCE_DIR`): output values, vector-Jacobian products
//! for every differentiable input, arg-max indices, and the second-order cases (a Hessian
//! by grad-of-grad, a Hessian-vector product by double backward).
//!
//! Cases are dispatched on their `op` field and read all parameters from `attrs`, so a
//! held-out file with other shapes and attributes runs unchanged; an op this file does not
//! know fails the test. Tolerances are the reference README's: outputs and gradients
//! `rtol 1e-12, atol 1e-13`; second order `rtol 1e-10, atol 1e-12`; shape ops, relu, abs,
//! max and max-pool exact.

use std::collections::BTreeMap;
use std::path::PathBuf;

use autograd::testing::reference::{load_json, reference_dir, Attrs, Case, Comparison, RefTensor};
use autograd::testing::Tolerance;
use autograd::{AvgPool2dArgs, Conv2dArgs, MaxPool2dArgs, Result, Tape, Tensor, Var};
use serde_json::Value;

const FIRST: Tolerance = Tolerance {
    atol: 1e-13,
    rtol: 1e-12,
};
const SECOND: Tolerance = Tolerance {
    atol: 1e-12,
    rtol: 1e-10,
};
const EXACT: Tolerance = Tolerance {
    atol: 0.0,
    rtol: 0.0,
};
/// Ops whose outputs and gradients involve no rounding at all.
const EXACT_OPS: &[&str] = &[
    "transpose",
    "permute",
    "reshape",
    "cat",
    "narrow",
    "slice",
    "relu",
    "abs",
    "max",
    "min",
    "max_pool2d",
];

fn reference_file() -> PathBuf {
    reference_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data"))
        .join("op_gradients.json")
}

fn attr_i(attrs: &Attrs, key: &str) -> Option<isize> {
    attrs.int(key).map(|v| v as isize)
}
/// An axis list: absent means all axes, an integer one axis, an array several.
fn attr_axes(attrs: &Attrs, key: &str) -> Vec<isize> {
    attrs.ints(key).into_iter().map(|d| d as isize).collect()
}
fn reduction<'t>(v: Var<'t, f64>, attrs: &Attrs) -> Result<Var<'t, f64>> {
    match attrs.str("reduction", "mean") {
        "mean" => Ok(v.mean()),
        "sum" => Ok(v.sum()),
        "none" => Ok(v),
        r => panic!("unknown reduction {r:?}"),
    }
}
fn no_unsupported(op: &str, attrs: &Attrs, keys: &[&str]) {
    for k in keys {
        assert!(
            attrs.get(k).is_none(),
            "{op}: attribute {k} = {} is not supported by this test",
            attrs.0[k]
        );
    }
}

/// `-log_softmax(logits)[n, target[n]]` per row, composed from autograd's primitives (the
/// losses themselves live in `nn::loss`, whose parity test runs these cases too).
fn picked_nll<'t>(logp: Var<'t, f64>, t: &[usize]) -> Result<Var<'t, f64>> {
    Ok(logp.gather(1, t, [t.len(), 1])?.reshape([t.len()])?.neg())
}

/// The op of a case, applied to its inputs: float inputs as `vars`, int64 ones in `ints`.
fn apply<'t>(
    op: &str,
    attrs: &Attrs,
    vars: &BTreeMap<String, Var<'t, f64>>,
    ints: &BTreeMap<String, Vec<usize>>,
) -> Result<Var<'t, f64>> {
    let v = |name: &str| {
        *vars
            .get(name)
            .unwrap_or_else(|| panic!("{op}: missing input {name}"))
    };
    let x = || v("x");
    Ok(match op {
        "sigmoid" => x().sigmoid(),
        "tanh" => x().tanh(),
        "relu" => x().relu(),
        "exp" => x().exp(),
        "log" => x().ln(),
        "log1p" => x().log1p(),
        "sqrt" => x().sqrt(),
        "rsqrt" => x().rsqrt(),
        "abs" => x().abs(),
        "neg" => x().neg(),
        "sin" => x().sin(),
        "cos" => x().cos(),
        "erf" => x().erf(),
        "square" => x().square(),
        "silu" => x().silu(),
        "leaky_relu" => x().leaky_relu(attrs.f64("negative_slope", 0.01)),
        "elu" => x().elu(attrs.f64("alpha", 1.0)),
        "selu" => {
            let (a, s) = (
                attrs.f64("alpha", autograd::ops::unary::SELU_ALPHA),
                attrs.f64("scale", autograd::ops::unary::SELU_SCALE),
            );
            if a == autograd::ops::unary::SELU_ALPHA && s == autograd::ops::unary::SELU_SCALE {
                x().selu()
            } else {
                x().elu(a).mul_scalar(s)
            }
        }
        "gelu" => match attrs.str("approximate", "none") {
            "none" => x().gelu(),
            "tanh" => x().gelu_tanh(),
            a => panic!("gelu: unknown approximate = {a:?}"),
        },
        "softplus" => x().softplus(attrs.f64("beta", 1.0), attrs.f64("threshold", 20.0)),
        "clamp" => x().clamp(
            attrs.f64("min", f64::NEG_INFINITY),
            attrs.f64("max", f64::INFINITY),
        ),
        "pow" => match attrs.get("exponent") {
            Some(e) => x().powf(e.as_f64().expect("numeric exponent")),
            None => v("x").pow(v("exponent"))?,
        },
        "prelu" => {
            // x where x >= 0, else weight[c]·x with c along dim 1.
            let (x, w) = (x(), v("weight"));
            let mut wdims = vec![1; x.rank().max(1)];
            let c = w.shape().numel();
            if x.rank() >= 2 {
                wdims[1] = c;
            } else {
                wdims[0] = c;
            }
            let scaled = x.mul(w.reshape(wdims)?)?;
            let cond = x.value().map(|t| if t >= 0.0 { 1.0 } else { 0.0 });
            x.where_cond(&cond, scaled)?
        }
        "add" => v("a").add(v("b"))?,
        "sub" => v("a").sub(v("b"))?,
        "mul" => v("a").mul(v("b"))?,
        "div" => v("a").div(v("b"))?,
        "maximum" => v("a").maximum(v("b"))?,
        "minimum" => v("a").minimum(v("b"))?,
        "matmul" => v("a").matmul(v("b"))?,
        "sum" => x().sum_axes(&attr_axes(attrs, "dim"), attrs.bool("keepdim", false))?,
        "mean" => x().mean_axes(&attr_axes(attrs, "dim"), attrs.bool("keepdim", false))?,
        "max" => x().max_axes(&attr_axes(attrs, "dim"), attrs.bool("keepdim", false))?,
        "min" => x().min_axes(&attr_axes(attrs, "dim"), attrs.bool("keepdim", false))?,
        "logsumexp" => x().logsumexp(&attr_axes(attrs, "dim"), attrs.bool("keepdim", false))?,
        "softmax" => x().softmax(attr_i(attrs, "dim").expect("softmax needs dim"))?,
        "log_softmax" => x().log_softmax(attr_i(attrs, "dim").expect("log_softmax needs dim"))?,
        // The losses, composed from the primitives they are built on in nn::loss.
        "cross_entropy" => {
            no_unsupported(op, attrs, &["weight"]);
            assert_eq!(
                attrs.f64("label_smoothing", 0.0),
                0.0,
                "{op}: label smoothing"
            );
            assert_eq!(
                attrs.int("ignore_index").unwrap_or(-100),
                -100,
                "{op}: ignore_index"
            );
            let t = &ints["target"];
            reduction(picked_nll(v("input").log_softmax(1)?, t)?, attrs)?
        }
        "nll_loss" => {
            no_unsupported(op, attrs, &["weight"]);
            reduction(picked_nll(v("input"), &ints["target"])?, attrs)?
        }
        "mse_loss" => reduction(v("input").sub(v("target"))?.square(), attrs)?,
        "binary_cross_entropy_with_logits" => {
            no_unsupported(op, attrs, &["weight", "pos_weight"]);
            // softplus(x) - x·y = -[y ln σ(x) + (1 - y) ln(1 - σ(x))]
            let (i, t) = (v("input"), v("target"));
            reduction(i.softplus(1.0, f64::INFINITY).sub(i.mul(t)?)?, attrs)?
        }
        "transpose" => x().transpose(
            attr_i(attrs, "dim0").unwrap(),
            attr_i(attrs, "dim1").unwrap(),
        )?,
        "permute" => {
            let p: Vec<usize> = attr_axes(attrs, "dims")
                .iter()
                .map(|&d| d.rem_euclid(x().rank() as isize) as usize)
                .collect();
            x().permute(&p)?
        }
        "reshape" => {
            let mut dims: Vec<isize> = attr_axes(attrs, "shape");
            // One -1 stands for whatever size the element count leaves.
            if let Some(i) = dims.iter().position(|&d| d < 0) {
                let known: isize = dims.iter().filter(|&&d| d >= 0).product();
                dims[i] = x().shape().numel() as isize / known.max(1);
            }
            x().reshape(dims.iter().map(|&d| d as usize).collect::<Vec<_>>())?
        }
        "cat" | "concat" => {
            // Inputs x0, x1, ..., x10 in numeric order (not the map's lexical order).
            let mut named: Vec<(usize, Var<'t, f64>)> = vars
                .iter()
                .map(|(k, v)| {
                    (
                        k.trim_start_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .unwrap_or(0),
                        *v,
                    )
                })
                .collect();
            named.sort_by_key(|p| p.0);
            let parts: Vec<_> = named.into_iter().map(|p| p.1).collect();
            Var::concat(&parts, attr_i(attrs, "dim").unwrap_or(0))?
        }
        "narrow" => x().narrow(
            attr_i(attrs, "dim").unwrap(),
            attr_i(attrs, "start").unwrap() as usize,
            attr_i(attrs, "length").unwrap() as usize,
        )?,
        "slice" => x().slice(
            attr_i(attrs, "dim").unwrap(),
            attr_i(attrs, "start").unwrap_or(0),
            attr_i(attrs, "end"),
            attr_i(attrs, "step").unwrap_or(1) as usize,
        )?,
        "layer_norm" => {
            let dims = attr_axes(attrs, "normalized_shape").len();
            x().layer_norm(
                dims,
                vars.get("weight").copied(),
                vars.get("bias").copied(),
                attrs.f64("eps", 1e-5),
            )?
        }
        "conv2d" => {
            let args = Conv2dArgs {
                stride: attrs.pair("stride", (1, 1)),
                padding: attrs.pair("padding", (0, 0)),
                dilation: attrs.pair("dilation", (1, 1)),
                groups: attr_i(attrs, "groups").unwrap_or(1) as usize,
            };
            x().conv2d(v("weight"), vars.get("bias").copied(), args)?
        }
        "max_pool2d" | "avg_pool2d" => {
            let k = attrs.pair("kernel_size", (0, 0));
            let stride = attrs.get("stride").map(|_| attrs.pair("stride", k));
            let padding = attrs.pair("padding", (0, 0));
            let ceil_mode = attrs.bool("ceil_mode", false);
            if op == "max_pool2d" {
                let args = MaxPool2dArgs {
                    stride,
                    padding,
                    dilation: attrs.pair("dilation", (1, 1)),
                    ceil_mode,
                };
                x().max_pool2d_args(k, args)?
            } else {
                let args = AvgPool2dArgs {
                    stride,
                    padding,
                    ceil_mode,
                    count_include_pad: attrs.bool("count_include_pad", true),
                    divisor_override: attr_i(attrs, "divisor_override").map(|d| d as usize),
                };
                x().avg_pool2d_args(k, args)?
            }
        }
        other => panic!("unknown op {other:?}: add it to pytorch_parity.rs"),
    })
}

/// PyTorch's arg-max indices of the case, recomputed from our side with
/// `Tensor::extreme_axes`.
fn our_indices(op: &str, attrs: &Attrs, x: &Tensor<f64>) -> Tensor<f64> {
    match op {
        "max" | "min" => {
            let axes = attr_axes(attrs, "dim");
            assert_eq!(axes.len(), 1, "indices need one dim");
            let ax = x.shape().axis("max", axes[0]).unwrap();
            let (vals, idx) = x
                .extreme_axes(&axes, attrs.bool("keepdim", false), op == "max")
                .unwrap();
            // Flat input index -> position along the reduced axis, as torch.max(dim) gives.
            let stride = x.shape().strides()[ax];
            let pos = idx
                .iter()
                .map(|&i| ((i / stride) % x.dims()[ax]) as f64)
                .collect();
            Tensor::from_vec(pos, vals.shape().clone()).unwrap()
        }
        "max_pool2d" => {
            let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
            let k = attrs.pair("kernel_size", (0, 0));
            let s = attrs.get("stride").map_or(k, |_| attrs.pair("stride", k));
            let p = attrs.pair("padding", (0, 0));
            let oh = (h + 2 * p.0 - k.0) / s.0 + 1;
            let ow = (w + 2 * p.1 - k.1) / s.1 + 1;
            // Window taps as flat input indices; padding taps read -inf so they never win.
            let mut idx = vec![];
            let mut padded = x.to_vec();
            padded.push(f64::NEG_INFINITY);
            let pad_at = padded.len() - 1;
            for plane in 0..n * c {
                for y in 0..oh {
                    for z in 0..ow {
                        for i in 0..k.0 {
                            for j in 0..k.1 {
                                let (r, q) = (
                                    (y * s.0 + i) as isize - p.0 as isize,
                                    (z * s.1 + j) as isize - p.1 as isize,
                                );
                                let inside =
                                    r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w;
                                idx.push(if inside {
                                    plane * h * w + r as usize * w + q as usize
                                } else {
                                    pad_at
                                });
                            }
                        }
                    }
                }
            }
            let src = Tensor::from_vec(padded.clone(), [padded.len()]).unwrap();
            let win = src
                .gather_flat(&idx, [n, c, oh, ow, k.0 * k.1], 0.0)
                .unwrap();
            let (vals, best) = win.extreme_axes(&[-1], false, true).unwrap();
            let pos = best.iter().map(|&b| (idx[b] % (h * w)) as f64).collect();
            Tensor::from_vec(pos, vals.shape().clone()).unwrap()
        }
        _ => panic!("{op}: extra_outputs.indices given for an op without arg-max"),
    }
}

fn run_case(case: &Case, stats: &mut Comparison) {
    let (name, op, attrs) = (case.name.as_str(), case.op.as_str(), &case.attrs);
    let tape = Tape::<f64>::new();
    let mut vars = BTreeMap::new();
    let mut ints = BTreeMap::new();
    let mut floats = BTreeMap::new();
    for (k, r) in &case.inputs {
        if r.int {
            ints.insert(k.clone(), r.indices().expect("index input"));
        } else {
            let v = if case.differentiable.contains(k) {
                tape.var(r.tensor())
            } else {
                tape.constant(r.tensor())
            };
            floats.insert(k.clone(), r.tensor());
            vars.insert(k.clone(), v);
        }
    }
    let out = match apply(op, attrs, &vars, &ints) {
        Ok(o) => o,
        Err(e) => {
            stats.fail(format!("{name}: forward failed: {e}"));
            return;
        }
    };
    let exact = EXACT_OPS.contains(&op);
    let tol = if exact { EXACT } else { FIRST };
    stats.compare("output", name, "output", &out.value(), &case.output, tol);
    if let Some(ix) = case.extra_outputs.get("indices") {
        let x = floats
            .get("x")
            .or_else(|| floats.get("input"))
            .expect("arg-max input");
        stats.compare(
            "indices",
            name,
            "indices",
            &our_indices(op, attrs, x),
            ix,
            EXACT,
        );
    }
    if case.differentiable.is_empty() {
        return;
    }
    let cot = tape.constant(case.cotangent.as_ref().expect("cotangent").tensor());
    let inputs: Vec<_> = case.differentiable.iter().map(|d| vars[d]).collect();
    let grads = match tape.vjp(out, cot, &inputs) {
        Ok(g) => g,
        Err(e) => {
            stats.fail(format!("{name}: vjp failed: {e}"));
            return;
        }
    };
    for (d, g) in case.differentiable.iter().zip(grads) {
        stats.compare(
            "grad",
            name,
            &format!("grad of {d}"),
            &g.value(),
            &case.grads[d],
            tol,
        );
    }
}

fn parse(v: &Value) -> RefTensor {
    RefTensor::from_json(v).expect("reference tensor")
}

fn run_second_order(case: &Value, stats: &mut Comparison) {
    let name = case["name"].as_str().expect("case name");
    let function = case["function"].as_str().unwrap_or("");
    let tape = Tape::<f64>::new();
    match case["kind"].as_str() {
        Some("hessian") => {
            assert_eq!(
                function, "f(x) = sum_i tanh(x_i)^2 * x_i",
                "{name}: unknown function"
            );
            let x = tape.var(parse(&case["inputs"]["x"]).tensor());
            let f = x.tanh().square().mul(x).unwrap().sum();
            stats.compare(
                "output",
                name,
                "value",
                &f.value(),
                &parse(&case["value"]),
                FIRST,
            );
            let g = tape.grad(f, &[x]).unwrap()[0];
            stats.compare(
                "grad",
                name,
                "grad",
                &g.value(),
                &parse(&case["grad"]),
                FIRST,
            );
            // Row i of the Hessian is the gradient of g_i: a VJP of g with a one-hot cotangent.
            let n = x.shape().numel();
            let mut rows = vec![];
            for i in 0..n {
                let e = tape.constant(
                    Tensor::from_fn(x.shape(), |j| if i == j { 1.0 } else { 0.0 }).unwrap(),
                );
                rows.extend(tape.vjp(g, e, &[x]).unwrap()[0].value().to_vec());
            }
            let mut dims = x.dims();
            dims.extend(x.dims());
            let h = Tensor::from_vec(rows, dims).unwrap();
            stats.compare(
                "second order",
                name,
                "hessian",
                &h,
                &parse(&case["hessian"]),
                SECOND,
            );
        }
        Some("hvp") => {
            assert_eq!(
                function,
                "loss(W1, b1, W2, b2) = cross_entropy(tanh(X @ W1 + b1) @ W2 + b2, y, reduction='mean'); X and y are constants",
                "{name}: unknown function"
            );
            let xs = tape.constant(parse(&case["inputs"]["X"]).tensor());
            let y = parse(&case["inputs"]["y"]).indices().unwrap();
            let names = ["W1", "b1", "W2", "b2"];
            let p: Vec<_> = names
                .iter()
                .map(|k| tape.var(parse(&case["params"][*k]).tensor()))
                .collect();
            let h = xs.matmul(p[0]).unwrap().add(p[1]).unwrap().tanh();
            let logits = h.matmul(p[2]).unwrap().add(p[3]).unwrap();
            let loss = picked_nll(logits.log_softmax(1).unwrap(), &y)
                .unwrap()
                .mean();
            stats.compare(
                "output",
                name,
                "value",
                &loss.value(),
                &parse(&case["value"]),
                FIRST,
            );
            let g = tape.grad(loss, &p).unwrap();
            let mut dot = None;
            for (k, gk) in names.iter().zip(&g) {
                stats.compare(
                    "grad",
                    name,
                    &format!("grad of {k}"),
                    &gk.value(),
                    &parse(&case["grad"][*k]),
                    FIRST,
                );
                let vk = tape.constant(parse(&case["vector"][*k]).tensor());
                let term = gk.mul(vk).unwrap().sum();
                dot = Some(match dot {
                    None => term,
                    Some(d) => term.add(d).unwrap(),
                });
            }
            let hv = tape.grad(dot.unwrap(), &p).unwrap();
            for (k, hk) in names.iter().zip(hv) {
                stats.compare(
                    "second order",
                    name,
                    &format!("hvp of {k}"),
                    &hk.value(),
                    &parse(&case["hvp"][*k]),
                    SECOND,
                );
            }
        }
        other => panic!("{name}: unknown second-order kind {other:?}"),
    }
}

#[test]
fn every_reference_case_matches_pytorch() {
    let path = reference_file();
    let file = load_json(&path).unwrap();
    assert_eq!(file["format"], "op_gradients/v1");
    let mut stats = Comparison::default();
    let cases = Case::all(&file).unwrap();
    assert!(!cases.is_empty());
    for case in &cases {
        run_case(case, &mut stats);
    }
    let second = file["second_order"].as_array().map_or(&[][..], |v| v);
    for case in second {
        run_second_order(case, &mut stats);
    }
    println!(
        "{} cases, {} second-order cases from {}",
        cases.len(),
        second.len(),
        path.display()
    );
    print!("{}", stats.summary());
    assert!(
        stats.failures().is_empty(),
        "{} mismatches:\n{}",
        stats.failures().len(),
        stats.failures().join("\n")
    );
}

#[test]
#[should_panic(expected = "unknown op \"frobnicate\"")]
fn an_unknown_op_fails_loudly() {
    let _ = apply(
        "frobnicate",
        &Attrs::default(),
        &BTreeMap::new(),
        &BTreeMap::new(),
    );
}
