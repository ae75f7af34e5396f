//! Every case of the PyTorch reference file `tests/data/ops_extra.json` (or of the
//! directory named by `GRADLAB_REFERENCE_DIR`): the outputs, the integer indices and the
//! vector-Jacobian product of every differentiable input, for the ops of `autograd` and the
//! losses of `nn::loss`. The loss cases of `op_gradients.json` run through `nn::loss` too.
//!
//! Cases are dispatched on their `op` and read every parameter from `attrs` and the input
//! shapes, so a held-out file with other shapes, seeds and attributes runs unchanged; an op
//! or attribute this file does not know fails the test. Tolerances are the reference
//! README's: `rtol 1e-12, atol 1e-13`; integer outputs and the outputs of pure
//! data-movement ops exact. A last test perturbs every stored value in turn and checks that
//! the comparison then fails, so no case compares nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use autograd::ops::PadMode;
use autograd::testing::reference::{load_json, reference_dir, Attrs, Case, Comparison};
use autograd::testing::Tolerance;
use autograd::{Tape, Tensor, Var};
use nn::loss::{self, KlDivReduction, Reduction};

const FIRST: Tolerance = Tolerance {
    atol: 1e-13,
    rtol: 1e-12,
};
const EXACT: Tolerance = Tolerance {
    atol: 0.0,
    rtol: 0.0,
};
/// Ops whose outputs are copies of input values.
const DATA_MOVEMENT: &[&str] = &[
    "pad",
    "flip",
    "roll",
    "repeat",
    "expand",
    "tril",
    "triu",
    "masked_fill",
    "where",
    "split",
    "chunk",
    "stack",
    "index_select",
    "gather",
    "clamp",
    "hardtanh",
];
/// The ops of `op_gradients.json` that are losses.
const LOSS_OPS: &[&str] = &[
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy_with_logits",
];

fn reference_file(name: &str) -> PathBuf {
    reference_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data")).join(name)
}

/// What a case's op produced.
enum Produced<'t> {
    /// A differentiable value.
    Value(Var<'t, f64>),
    /// A value and the positions PyTorch returns as `extra_outputs.indices`.
    WithIndices(Var<'t, f64>, Vec<usize>),
    /// Integer output only (argmax), with its shape.
    Indices(Vec<usize>, Vec<usize>),
}

/// Inputs of a case on a tape: float inputs as `Var`s (variables when differentiable),
/// int64 inputs as signed integers with their shapes.
struct Inputs<'t> {
    vars: BTreeMap<String, Var<'t, f64>>,
    ints: BTreeMap<String, (Vec<i64>, Vec<usize>)>,
}

impl<'t> Inputs<'t> {
    fn new(case: &Case, tape: &'t Tape<f64>) -> Self {
        let (mut vars, mut ints) = (BTreeMap::new(), BTreeMap::new());
        for (k, r) in &case.inputs {
            if r.int {
                ints.insert(k.clone(), (r.ints().unwrap(), r.shape.clone()));
            } else if case.differentiable.contains(k) {
                vars.insert(k.clone(), tape.var(r.tensor()));
            } else {
                vars.insert(k.clone(), tape.constant(r.tensor()));
            }
        }
        Inputs { vars, ints }
    }
    fn v(&self, name: &str) -> Var<'t, f64> {
        *self
            .vars
            .get(name)
            .unwrap_or_else(|| panic!("missing float input {name}"))
    }
    fn opt(&self, name: &str) -> Option<Var<'t, f64>> {
        self.vars.get(name).copied()
    }
    fn idx(&self, name: &str) -> Vec<usize> {
        self.ints[name]
            .0
            .iter()
            .map(|&i| usize::try_from(i).expect("a non-negative index"))
            .collect()
    }
    /// An int64 0/1 input as a float mask.
    fn mask(&self, name: &str) -> Tensor<f64> {
        let (d, s) = &self.ints[name];
        Tensor::from_vec(d.iter().map(|&v| v as f64).collect(), s.clone()).unwrap()
    }
    fn weight(&self, name: &str) -> Option<Tensor<f64>> {
        self.opt(name).map(|v| v.value())
    }
}

fn axis(attrs: &Attrs, key: &str) -> isize {
    attrs
        .int(key)
        .unwrap_or_else(|| panic!("missing attr {key}")) as isize
}
/// An axis with PyTorch's default when the attribute is absent.
fn axis_or(attrs: &Attrs, key: &str, default: isize) -> isize {
    attrs.int(key).map_or(default, |a| a as isize)
}
fn axes(attrs: &Attrs, key: &str) -> Vec<isize> {
    attrs.ints(key).into_iter().map(|a| a as isize).collect()
}
fn usizes(attrs: &Attrs, key: &str) -> Vec<usize> {
    attrs
        .ints(key)
        .into_iter()
        .map(|a| usize::try_from(a).expect("non-negative"))
        .collect()
}
fn reduction(attrs: &Attrs) -> Reduction {
    match attrs.str("reduction", "mean") {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        r => panic!("unknown reduction {r:?}"),
    }
}
/// A norm order: a number, or "inf" / "-inf".
fn order(attrs: &Attrs, key: &str, default: f64) -> f64 {
    match attrs.get(key) {
        None => default,
        Some(v) => v.as_f64().unwrap_or_else(|| match v.as_str() {
            Some("inf") => f64::INFINITY,
            Some("-inf") => f64::NEG_INFINITY,
            _ => panic!("attr {key} is not a norm order: {v}"),
        }),
    }
}
/// The operand names of a `torch.einsum('eq', a, b)` expression, in order.
fn einsum_operands(torch: &str) -> Vec<String> {
    let close = torch.rfind(['\'', '"']).expect("an equation string");
    torch[close + 1..]
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
/// Inputs `x0, x1, ..` in numeric order.
fn numbered<'t>(inp: &Inputs<'t>) -> Vec<Var<'t, f64>> {
    let mut named: Vec<(usize, Var<'t, f64>)> = inp
        .vars
        .iter()
        .map(|(k, v)| {
            let n = k.trim_start_matches(|c: char| !c.is_ascii_digit());
            (n.parse().expect("numbered inputs"), *v)
        })
        .collect();
    named.sort_by_key(|p| p.0);
    named.into_iter().map(|p| p.1).collect()
}

/// The op of a case, applied to its inputs. `None` for an op this file does not know.
fn apply<'t>(case: &Case, inp: &Inputs<'t>) -> anyhow::Result<Option<Produced<'t>>> {
    use Produced::{Indices, Value, WithIndices};
    let a = &case.attrs;
    let x = || inp.v("x");
    let keep = a.bool("keepdim", false);
    Ok(Some(match case.op.as_str() {
        "cumsum" => Value(x().cumsum(axis(a, "dim"))?),
        "cumprod" => Value(x().cumprod(axis(a, "dim"))?),
        "sort" => {
            // Always stable here; the reference inputs have no ties, so it agrees with
            // PyTorch's default (unstable) sort.
            let (v, i) = x().sort(axis_or(a, "dim", -1), a.bool("descending", false))?;
            WithIndices(v, i)
        }
        "topk" => {
            assert!(
                a.bool("sorted", true),
                "topk: unsorted order is not reproducible"
            );
            let k = usize::try_from(a.int("k").expect("k")).expect("k >= 0");
            let (v, i) = x().topk(k, axis_or(a, "dim", -1), a.bool("largest", true))?;
            WithIndices(v, i)
        }
        "argmax" | "argmin" => {
            // Without a dim PyTorch reduces the flattened tensor.
            let (src, d) = match a.int("dim") {
                Some(d) => (x(), d as isize),
                None => (x().reshape([x().shape().numel()])?, 0),
            };
            let i = if case.op == "argmax" {
                src.argmax(d)?
            } else {
                src.argmin(d)?
            };
            let mut shape = src.dims();
            let ax = src.shape().axis("argmax", d)?;
            if keep && a.int("dim").is_some() {
                shape[ax] = 1;
            } else {
                shape.remove(ax);
            }
            Indices(i, shape)
        }
        "max" | "min" => {
            let (v, i) = if case.op == "max" {
                x().max_dim(axis(a, "dim"), keep)?
            } else {
                x().min_dim(axis(a, "dim"), keep)?
            };
            WithIndices(v, i)
        }
        "std" | "var" => {
            let c = usize::try_from(a.int("correction").unwrap_or(1)).expect("correction");
            let d = axes(a, "dim");
            Value(if case.op == "std" {
                x().std(&d, c, keep)?
            } else {
                x().var(&d, c, keep)?
            })
        }
        "vector_norm" => Value(x().vector_norm(order(a, "ord", 2.0), &axes(a, "dim"), keep)?),
        "matrix_norm" => {
            assert_eq!(a.str("ord", "fro"), "fro", "matrix_norm: only 'fro'");
            let d = match axes(a, "dim") {
                d if d.is_empty() => vec![-2, -1],
                d => d,
            };
            let r = x().rank() as isize;
            let last_two = d.len() == 2
                && d.iter().all(|&k| k.rem_euclid(r) >= r - 2)
                && d[0].rem_euclid(r) != d[1].rem_euclid(r);
            Value(if last_two {
                x().frobenius_norm(keep)?
            } else {
                x().vector_norm(2.0, &d, keep)?
            })
        }
        "logsumexp" => Value(x().logsumexp(&axes(a, "dim"), keep)?),
        "pad" => {
            let mode = match a.str("mode", "constant") {
                "constant" => PadMode::Constant(a.f64("value", 0.0)),
                "reflect" => PadMode::Reflect,
                "replicate" => PadMode::Replicate,
                "circular" => PadMode::Circular,
                m => panic!("pad: unknown mode {m:?}"),
            };
            Value(x().pad(&usizes(a, "pad"), mode)?)
        }
        "flip" => Value(x().flip(&axes(a, "dims"))?),
        "roll" => Value(x().roll(&axes(a, "shifts"), &axes(a, "dims"))?),
        "repeat" => Value(x().repeat(&usizes(a, "repeats"))?),
        "expand" => Value(x().expand(&axes(a, "size"))?),
        "tril" => Value(x().tril(axis_or(a, "diagonal", 0))?),
        "triu" => Value(x().triu(axis_or(a, "diagonal", 0))?),
        "masked_fill" => Value(x().masked_fill(&inp.mask("mask"), a.f64("value", 0.0))?),
        "where" => Value(inp.v("a").where_cond(&inp.mask("cond"), inp.v("b"))?),
        "clamp" => Value(x().clamp(a.f64("min", f64::NEG_INFINITY), a.f64("max", f64::INFINITY))),
        "split" => {
            let d = axis_or(a, "dim", 0);
            let sizes = match a.get("sizes").expect("sizes") {
                v if v.is_array() => usizes(a, "sizes"),
                // An int is a piece size, the last piece taking the remainder.
                v => {
                    let step = v.as_u64().expect("a split size") as usize;
                    let n = x().shape()[x().shape().axis("split", d)?];
                    let mut s = vec![step; n / step];
                    if n % step != 0 {
                        s.push(n % step);
                    }
                    s
                }
            };
            let piece = a.int("piece").expect("piece") as usize;
            Value(x().split(&sizes, d)?[piece])
        }
        "chunk" => {
            let chunks = a.int("chunks").expect("chunks") as usize;
            let piece = a.int("piece").expect("piece") as usize;
            Value(x().chunk(chunks, axis_or(a, "dim", 0))?[piece])
        }
        "stack" => Value(Var::stack(&numbered(inp), axis_or(a, "dim", 0))?),
        "index_select" => Value(x().index_select(axis(a, "dim"), &inp.idx("index"))?),
        "gather" => {
            let shape = inp.ints["index"].1.clone();
            Value(x().gather(axis(a, "dim"), &inp.idx("index"), shape)?)
        }
        "scatter_add" => {
            let shape = inp.ints["index"].1.clone();
            let base = inp.v("self");
            Value(base.scatter_add(axis(a, "dim"), &inp.idx("index"), shape, inp.v("src"))?)
        }
        "einsum" => {
            let ops: Vec<Var<'t, f64>> = einsum_operands(&case.torch)
                .iter()
                .map(|n| inp.v(n))
                .collect();
            Value(Var::einsum(a.str("equation", ""), &ops)?)
        }
        "cosine_similarity" => Value(inp.v("x1").cosine_similarity(
            inp.v("x2"),
            axis_or(a, "dim", 1),
            a.f64("eps", 1e-8),
        )?),
        "normalize" => {
            Value(x().normalize(a.f64("p", 2.0), axis_or(a, "dim", 1), a.f64("eps", 1e-12))?)
        }
        "softmax" => Value(x().softmax(axis(a, "dim"))?),
        "log_softmax" => Value(x().log_softmax(axis(a, "dim"))?),
        "hardtanh" => Value(x().hardtanh(a.f64("min_val", -1.0), a.f64("max_val", 1.0))?),
        "mish" => Value(x().mish()),
        "silu" => Value(x().silu()),
        "softsign" => Value(x().softsign()),
        "logsigmoid" => Value(x().logsigmoid()),
        "glu" => Value(x().glu(axis_or(a, "dim", -1))?),
        _ => return apply_loss(case, inp),
    }))
}

/// The losses: `nn::loss` structs built from the case's attributes.
fn apply_loss<'t>(case: &Case, inp: &Inputs<'t>) -> anyhow::Result<Option<Produced<'t>>> {
    let a = &case.attrs;
    // kl_div has its own reductions (batchmean), read below.
    let red = if case.op == "kl_div" {
        Reduction::Mean
    } else {
        reduction(a)
    };
    let (input, target) = (|| inp.v("input"), || inp.v("target"));
    let out = match case.op.as_str() {
        "cross_entropy" => {
            let l = loss::CrossEntropyLoss {
                weight: inp.weight("weight"),
                ignore_index: a.int("ignore_index").unwrap_or(-100),
                label_smoothing: a.f64("label_smoothing", 0.0),
                reduction: red,
            };
            match inp.ints.get("target") {
                Some((t, _)) => l.forward(input(), t)?,
                None => l.forward_probs(input(), target())?,
            }
        }
        "nll_loss" => loss::NllLoss {
            weight: inp.weight("weight"),
            ignore_index: a.int("ignore_index").unwrap_or(-100),
            reduction: red,
        }
        .forward(input(), &inp.ints["target"].0)?,
        "kl_div" => {
            let reduction = match a.str("reduction", "mean") {
                "mean" => KlDivReduction::Mean,
                "batchmean" => KlDivReduction::BatchMean,
                "sum" => KlDivReduction::Sum,
                "none" => KlDivReduction::None,
                r => panic!("kl_div: unknown reduction {r:?}"),
            };
            let log_target = a.bool("log_target", false);
            loss::KlDivLoss {
                reduction,
                log_target,
            }
            .forward(input(), target())?
        }
        "smooth_l1_loss" => loss::SmoothL1Loss {
            reduction: red,
            beta: a.f64("beta", 1.0),
        }
        .forward(input(), target())?,
        "huber_loss" => loss::HuberLoss {
            reduction: red,
            delta: a.f64("delta", 1.0),
        }
        .forward(input(), target())?,
        "l1_loss" => loss::L1Loss { reduction: red }.forward(input(), target())?,
        "mse_loss" => loss::MseLoss { reduction: red }.forward(input(), target())?,
        "binary_cross_entropy" => loss::BceLoss {
            weight: inp.weight("weight"),
            reduction: red,
        }
        .forward(input(), target())?,
        "binary_cross_entropy_with_logits" => loss::BceWithLogitsLoss {
            weight: inp.weight("weight"),
            pos_weight: inp.weight("pos_weight"),
            reduction: red,
        }
        .forward(input(), target())?,
        "margin_ranking_loss" => loss::MarginRankingLoss {
            margin: a.f64("margin", 0.0),
            reduction: red,
        }
        .forward(inp.v("input1"), inp.v("input2"), target())?,
        "triplet_margin_loss" => loss::TripletMarginLoss {
            margin: a.f64("margin", 1.0),
            p: a.f64("p", 2.0),
            eps: a.f64("eps", 1e-6),
            swap: a.bool("swap", false),
            reduction: red,
        }
        .forward(inp.v("anchor"), inp.v("positive"), inp.v("negative"))?,
        "cosine_embedding_loss" => loss::CosineEmbeddingLoss {
            margin: a.f64("margin", 0.0),
            reduction: red,
        }
        .forward(inp.v("input1"), inp.v("input2"), target())?,
        "hinge_embedding_loss" => loss::HingeEmbeddingLoss {
            margin: a.f64("margin", 1.0),
            reduction: red,
        }
        .forward(input(), target())?,
        "soft_margin_loss" => loss::SoftMarginLoss { reduction: red }.forward(input(), target())?,
        "multilabel_soft_margin_loss" => loss::MultiLabelSoftMarginLoss {
            weight: inp.weight("weight"),
            reduction: red,
        }
        .forward(input(), target())?,
        "poisson_nll_loss" => loss::PoissonNllLoss {
            log_input: a.bool("log_input", true),
            full: a.bool("full", false),
            eps: a.f64("eps", 1e-8),
            reduction: red,
        }
        .forward(input(), target())?,
        "gaussian_nll_loss" => loss::GaussianNllLoss {
            full: a.bool("full", false),
            eps: a.f64("eps", 1e-6),
            reduction: red,
        }
        .forward(input(), target(), inp.v("var"))?,
        "ctc_loss" => {
            let lp = match inp.opt("logits") {
                Some(z) => z.log_softmax(-1)?,
                None => inp.v("log_probs"),
            };
            loss::CtcLoss {
                blank: a.int("blank").unwrap_or(0) as usize,
                reduction: red,
                zero_infinity: a.bool("zero_infinity", false),
            }
            .forward(lp, &ctc_targets(inp), &inp.idx("input_lengths"))?
        }
        _ => return Ok(None),
    };
    Ok(Some(Produced::Value(out)))
}

/// CTC targets as one sequence per batch entry, from PyTorch's padded `(N, S)` form or its
/// concatenated 1-d form, cut at `target_lengths`.
fn ctc_targets(inp: &Inputs<'_>) -> Vec<Vec<usize>> {
    let lens = inp.idx("target_lengths");
    let (_, shape) = &inp.ints["targets"];
    let flat = inp.idx("targets");
    let mut out = Vec::with_capacity(lens.len());
    let mut start = 0;
    for (n, &len) in lens.iter().enumerate() {
        let from = if shape.len() == 2 {
            n * shape[1]
        } else {
            start
        };
        out.push(flat[from..from + len].to_vec());
        start += len;
    }
    out
}

/// PyTorch's `ctc_loss` gradient of `log_probs` is the true derivative plus
/// `g_n·exp(log_probs)` on the used frames (the reference README, PyTorch issue #52241):
/// ours is the true derivative, so the reference's convention is added to it here.
fn ctc_convention(case: &Case, inp: &Inputs<'_>, ours: &Tensor<f64>) -> Tensor<f64> {
    let lp = inp.v("log_probs").value();
    let d = lp.dims().to_vec();
    let (t_max, n, c) = if d.len() == 3 {
        (d[0], d[1], d[2])
    } else {
        (d[0], 1, d[1])
    };
    let frames = inp.idx("input_lengths");
    let lens = inp.idx("target_lengths");
    let cot = case.cotangent.as_ref().expect("cotangent").data.clone();
    let g: Vec<f64> = (0..n)
        .map(|b| match reduction(&case.attrs) {
            Reduction::Mean => cot[0] / (n as f64 * lens[b].max(1) as f64),
            Reduction::Sum => cot[0],
            Reduction::None => cot[b],
        })
        .collect();
    let mut out = ours.to_vec();
    for t in 0..t_max {
        for b in 0..n {
            if t < frames[b] {
                for k in 0..c {
                    let i = (t * n + b) * c + k;
                    out[i] += g[b] * lp.as_slice()[i].exp();
                }
            }
        }
    }
    Tensor::from_vec(out, d).unwrap()
}

/// Runs one case, recording every mismatch in `cmp`.
fn run_case(case: &Case, cmp: &mut Comparison) {
    let name = case.name.as_str();
    let tape = Tape::<f64>::new();
    let inp = Inputs::new(case, &tape);
    let produced = match apply(case, &inp) {
        Ok(Some(p)) => p,
        Ok(None) => {
            cmp.fail(format!(
                "{name}: unknown op {:?}: add it to this file",
                case.op
            ));
            return;
        }
        Err(e) => {
            cmp.fail(format!("{name}: forward failed: {e}"));
            return;
        }
    };
    let tol = if DATA_MOVEMENT.contains(&case.op.as_str()) {
        EXACT
    } else {
        FIRST
    };
    let out = match produced {
        Produced::Indices(i, shape) => {
            cmp.compare_indices(name, "output", &i, &shape, &case.output);
            return;
        }
        Produced::Value(v) => v,
        Produced::WithIndices(v, i) => {
            match case.extra_outputs.get("indices") {
                Some(r) => cmp.compare_indices(name, "indices", &i, &v.dims(), r),
                None => cmp.fail(format!("{name}: indices computed but none stored")),
            }
            v
        }
    };
    cmp.compare("output", name, "output", &out.value(), &case.output, tol);
    if case.differentiable.is_empty() {
        return;
    }
    let cot = tape.constant(case.cotangent.as_ref().expect("cotangent").tensor());
    let wrt: Vec<_> = case.differentiable.iter().map(|d| inp.v(d)).collect();
    let grads = match tape.vjp(out, cot, &wrt) {
        Ok(g) => g,
        Err(e) => {
            cmp.fail(format!("{name}: vjp failed: {e}"));
            return;
        }
    };
    for (d, g) in case.differentiable.iter().zip(grads) {
        let mut g = g.value();
        if case.op == "ctc_loss" && d == "log_probs" {
            g = ctc_convention(case, &inp, &g);
        }
        cmp.compare(
            "grad",
            name,
            &format!("grad of {d}"),
            &g,
            &case.grads[d],
            FIRST,
        );
    }
}

fn cases(file: &str) -> Vec<Case> {
    let path = reference_file(file);
    let json = load_json(&path).unwrap();
    assert_eq!(json["format"], "op_gradients/v1", "{}", path.display());
    let cases = Case::all(&json).unwrap();
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    cases
}

fn report(what: &str, n: usize, cmp: &Comparison) {
    println!("{n} cases of {what}");
    print!("{}", cmp.summary());
    assert!(
        cmp.failures().is_empty(),
        "{} mismatches:\n{}",
        cmp.failures().len(),
        cmp.failures().join("\n")
    );
}

#[test]
fn every_ops_extra_case_matches_pytorch() {
    let cases = cases("ops_extra.json");
    let mut cmp = Comparison::default();
    for case in &cases {
        run_case(case, &mut cmp);
    }
    report("ops_extra.json", cases.len(), &cmp);
}

#[test]
fn the_loss_cases_of_op_gradients_match_through_nn_loss() {
    let cases: Vec<Case> = cases("op_gradients.json")
        .into_iter()
        .filter(|c| LOSS_OPS.contains(&c.op.as_str()))
        .collect();
    assert!(!cases.is_empty());
    let mut cmp = Comparison::default();
    for case in &cases {
        run_case(case, &mut cmp);
    }
    report("op_gradients.json's losses", cases.len(), &cmp);
}

/// The comparison must fail when any one stored value is off: each case's first output
/// element, first index and the first element of each gradient in turn, nudged by 1e-9
/// relative (a thousand times the tolerance) or, for integers, by one.
#[test]
fn a_changed_stored_value_fails_the_comparison() {
    let nudge = |data: &mut Vec<f64>, int: bool| {
        if int {
            data[0] += 1.0;
        } else {
            data[0] += 1e-9 * data[0].abs().max(1.0);
        }
    };
    let mut checked = 0;
    for case in cases("ops_extra.json") {
        let mut variants: Vec<(String, Case)> = Vec::new();
        if !case.output.data.is_empty() {
            let mut c = case.clone();
            nudge(&mut c.output.data, c.output.int);
            variants.push(("output".into(), c));
        }
        if let Some(ix) = case.extra_outputs.get("indices") {
            let mut c = case.clone();
            let mut ix = ix.clone();
            nudge(&mut ix.data, true);
            c.extra_outputs.insert("indices".into(), ix);
            variants.push(("indices".into(), c));
        }
        for d in &case.differentiable {
            if case.grads[d].data.is_empty() {
                continue;
            }
            let mut c = case.clone();
            let g = c.grads.get_mut(d).unwrap();
            nudge(&mut g.data, false);
            variants.push((format!("grad of {d}"), c));
        }
        for (what, c) in variants {
            let mut cmp = Comparison::default();
            run_case(&c, &mut cmp);
            assert!(
                !cmp.failures().is_empty(),
                "{}: a changed {what} still passed",
                case.name
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} perturbations ran");
}

#[test]
fn einsum_operands_come_from_the_torch_expression() {
    assert_eq!(
        einsum_operands("torch.einsum('bhqd,bhkd->bhqk', q, k)"),
        vec!["q", "k"]
    );
    assert_eq!(einsum_operands("torch.einsum('ii->', x)"), vec!["x"]);
}
