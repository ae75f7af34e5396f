//! User-defined architectures outside the crate, written as the README shows: a residual
//! MLP (one input), a self-attention block (several inputs and an optional mask) and a
//! recurrent cell (input and state in, output and state out). The only code beyond the
//! maths is `#[derive(Module)]`.

use autograd::{Float, GradcheckOptions, Param, Tape, Tensor, Var};
use nn::loss;
use nn::{gradcheck_module, Ctx, Forward, LayerNorm, Linear, Module, ModuleList, Vars};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `y = x + fc2(relu(fc1(norm(x))))`, a pre-norm residual block.
#[derive(Module)]
struct ResidualBlock<T: Float> {
    norm: LayerNorm<T>,
    fc1: Linear<T>,
    fc2: Linear<T>,
}

impl<T: Float> ResidualBlock<T> {
    fn new(dim: usize, hidden: usize, rng: &mut StdRng) -> nn::Result<Self> {
        Ok(ResidualBlock {
            norm: LayerNorm::new(&[dim])?,
            fc1: Linear::new(dim, hidden, rng)?,
            fc2: Linear::new(hidden, dim, rng)?,
        })
    }
}

impl<T: Float> Forward<T> for ResidualBlock<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let h = cx.call(&self.norm, x)?;
        let h = cx.call(&self.fc1, h)?.relu();
        let h = cx.call(&self.fc2, h)?;
        Ok(x.add(h)?)
    }
}

/// An embedding-free classifier: input projection, `n` residual blocks, a head, and one
/// parameter of its own (a learnt output temperature).
#[derive(Module)]
struct ResMlp<T: Float> {
    input: Linear<T>,
    blocks: ModuleList<ResidualBlock<T>>,
    head: Linear<T>,
    log_temperature: Param<T>,
}

impl<T: Float> ResMlp<T> {
    fn new(inputs: usize, dim: usize, classes: usize, depth: usize, seed: u64) -> nn::Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let input = Linear::new(inputs, dim, &mut rng)?;
        let blocks = (0..depth)
            .map(|_| ResidualBlock::new(dim, 2 * dim, &mut rng))
            .collect::<nn::Result<_>>()?;
        Ok(ResMlp {
            input,
            blocks,
            head: Linear::new(dim, classes, &mut rng)?,
            log_temperature: Param::new(Tensor::zeros([1]).unwrap()),
        })
    }
}

impl<T: Float> Forward<T> for ResMlp<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let mut h = cx.call(&self.input, x)?;
        for block in &self.blocks {
            h = cx.call(block, h)?;
        }
        let logits = cx.call(&self.head, h)?;
        Ok(logits.mul(cx.param(&self.log_temperature).neg().exp())?)
    }
}

#[test]
fn custom_modules_get_hierarchical_names_and_counts() {
    let net = ResMlp::<f32>::new(4, 6, 3, 2, 0).unwrap();
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "log_temperature",
            "input.weight",
            "input.bias",
            "blocks.0.norm.weight",
            "blocks.0.norm.bias",
            "blocks.0.fc1.weight",
            "blocks.0.fc1.bias",
            "blocks.0.fc2.weight",
            "blocks.0.fc2.bias",
            "blocks.1.norm.weight",
            "blocks.1.norm.bias",
            "blocks.1.fc1.weight",
            "blocks.1.fc1.bias",
            "blocks.1.fc2.weight",
            "blocks.1.fc2.bias",
            "head.weight",
            "head.bias",
        ]
    );
    // input 4·6 + 6, per block 2·6 + (6·12 + 12) + (12·6 + 6), head 6·3 + 3, temperature 1
    let block = 12 + 84 + 78;
    assert_eq!(net.num_parameters(), 30 + 2 * block + 21 + 1);
    assert_eq!(net.parameters().len(), 17);
}

#[test]
fn custom_module_gradchecks_with_respect_to_every_parameter() {
    let net = ResMlp::<f64>::new(3, 4, 2, 2, 1).unwrap();
    let x = Tensor::randn([3, 3], &mut StdRng::seed_from_u64(2)).unwrap();
    gradcheck_module(&net, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
}

#[test]
fn custom_module_trains_and_its_layers_show_in_diagnostics() {
    let net = ResMlp::<f64>::new(2, 8, 2, 2, 3).unwrap();
    // two separable blobs
    let mut rng = StdRng::seed_from_u64(4);
    let n = 32;
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let noise = Tensor::<f64>::randn([n, 2], &mut rng).unwrap();
    let x = Tensor::from_fn([n, 2], |k| {
        let sign = if labels[k / 2] == 0 { -1.0 } else { 1.0 };
        sign * 1.5 + 0.5 * noise.as_slice()[k]
    })
    .unwrap();
    let params = net.parameters();
    let loss_at = |net: &ResMlp<f64>| {
        let tape = Tape::new();
        let logits = Ctx::new(&tape).call(net, tape.constant(x.clone())).unwrap();
        loss::cross_entropy(logits, &labels)
            .unwrap()
            .item()
            .unwrap()
    };
    let first = loss_at(&net);
    for _ in 0..30 {
        net.zero_grad();
        let tape = Tape::new();
        let logits = Ctx::new(&tape)
            .call(&net, tape.constant(x.clone()))
            .unwrap();
        loss::cross_entropy(logits, &labels)
            .unwrap()
            .backward()
            .unwrap();
        for p in &params {
            p.update(|v, g| {
                if let Some(g) = g {
                    v.zip_mut_with(g, |w, g| *w -= 0.1 * g).unwrap();
                }
            });
        }
    }
    let last = loss_at(&net);
    assert!(last < 0.5 * first, "loss {first} → {last}");

    let report = nn::diagnose(&net, &x, |y| loss::cross_entropy(y, &labels)).unwrap();
    let names: Vec<&str> = report.layers.iter().map(|l| l.name.as_str()).collect();
    // children before parents, in call order; ModuleList elements by index
    assert_eq!(
        names,
        [
            "input",
            "blocks.0.norm",
            "blocks.0.fc1",
            "blocks.0.fc2",
            "blocks.0",
            "blocks.1.norm",
            "blocks.1.fc1",
            "blocks.1.fc2",
            "blocks.1",
            "head"
        ]
    );
    assert_eq!(report.params.len(), 17);
}

/// The inputs of an attention block: a typed struct, not a list indexed by position.
#[derive(Vars)]
struct AttentionInput<'t, T: Float> {
    query: Var<'t, T>,
    key: Var<'t, T>,
    value: Var<'t, T>,
    /// Added to the scores before the softmax (`-inf`-like where attention is not
    /// allowed), broadcast over the batch.
    mask: Option<Var<'t, T>>,
}

/// Single-head scaled dot-product attention with input and output projections:
/// `out(softmax(q kᵀ/√d + mask) v)`.
#[derive(Module)]
struct Attention<T: Float> {
    q: Linear<T>,
    k: Linear<T>,
    v: Linear<T>,
    out: Linear<T>,
}

impl<T: Float> Attention<T> {
    fn new(dim: usize, rng: &mut StdRng) -> nn::Result<Self> {
        Ok(Attention {
            q: Linear::new(dim, dim, rng)?,
            k: Linear::new(dim, dim, rng)?,
            v: Linear::new(dim, dim, rng)?,
            out: Linear::new(dim, dim, rng)?,
        })
    }
}

impl<T: Float> Forward<T> for Attention<T> {
    type Input<'t> = AttentionInput<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: AttentionInput<'t, T>) -> nn::Result<Var<'t, T>> {
        let q = cx.call(&self.q, input.query)?; // [B, Lq, d]
        let k = cx.call(&self.k, input.key)?; // [B, Lk, d]
        let v = cx.call(&self.v, input.value)?; // [B, Lk, d]
        let d = q.shape()[q.rank() - 1] as f64;
        let mut scores = q
            .matmul_t(k, false, true)?
            .mul_scalar(T::of(d.sqrt().recip()));
        if let Some(mask) = input.mask {
            scores = scores.add(mask)?;
        }
        let weights = scores.softmax(-1)?;
        cx.call(&self.out, weights.matmul(v)?)
    }
}

#[test]
fn attention_block_gradchecks_in_query_key_value_and_every_parameter() {
    let mut rng = StdRng::seed_from_u64(11);
    let attn = Attention::<f64>::new(4, &mut rng).unwrap();
    let names: Vec<String> = attn
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "q.weight",
            "q.bias",
            "k.weight",
            "k.bias",
            "v.weight",
            "v.bias",
            "out.weight",
            "out.bias"
        ]
    );
    // cross-attention: 3 queries over 5 keys, batch of 2
    let q = Tensor::randn([2, 3, 4], &mut rng).unwrap();
    let kv = Tensor::randn([2, 5, 4], &mut rng).unwrap();
    let value = Tensor::randn([2, 5, 4], &mut rng).unwrap();
    let o = GradcheckOptions::default();
    gradcheck_module(
        &attn,
        &[q.clone(), kv.clone(), value.clone()],
        |v| AttentionInput {
            query: v[0],
            key: v[1],
            value: v[2],
            mask: None,
        },
        &o,
    )
    .unwrap();
    // with a mask hiding the last two keys from the first query
    let mask = Tensor::from_fn([3, 5], |i| if (3..5).contains(&i) { -1e4 } else { 0.0 }).unwrap();
    gradcheck_module(
        &attn,
        &[q, kv, value],
        |v| AttentionInput {
            query: v[0],
            key: v[1],
            value: v[2],
            mask: Some(v[0].tape().constant(mask.clone())),
        },
        &o,
    )
    .unwrap();
}

#[test]
fn a_masked_key_gets_no_attention_and_hooks_see_all_four_inputs() {
    let mut rng = StdRng::seed_from_u64(12);
    let attn = Attention::<f64>::new(4, &mut rng).unwrap();
    let tape = Tape::new();
    let q = tape.constant(Tensor::randn([1, 2, 4], &mut rng).unwrap());
    let kv = tape.constant(Tensor::randn([1, 3, 4], &mut rng).unwrap());
    let seen = std::cell::RefCell::new(Vec::new());
    let mut cx = Ctx::new(&tape);
    cx.add_forward_hook(|call| {
        seen.borrow_mut()
            .push((call.path.to_string(), call.inputs.len()))
    });
    // value 2 differs between the runs, but is masked out for both queries
    let run = |value: Tensor<f64>| {
        let mask = tape
            .constant(Tensor::from_fn([2, 3], |i| if i % 3 == 2 { -1e9 } else { 0.0 }).unwrap());
        let input = AttentionInput {
            query: q,
            key: kv,
            value: tape.constant(value),
            mask: Some(mask),
        };
        cx.call(&attn, input).unwrap().value()
    };
    let base = Tensor::randn([1, 3, 4], &mut rng).unwrap();
    let mut changed = base.to_vec();
    for v in &mut changed[8..] {
        *v += 100.0;
    }
    let a = run(base);
    let b = run(Tensor::from_vec(changed, [1, 3, 4]).unwrap());
    for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
        assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
    }
    let seen = seen.borrow();
    assert_eq!(
        seen[..5],
        [
            ("q".to_string(), 1),
            ("k".to_string(), 1),
            ("v".to_string(), 1),
            ("out".to_string(), 1),
            (String::new(), 4) // query, key, value and the mask
        ]
    );
}

/// The state a recurrent cell carries from step to step.
#[derive(Clone, Copy, Vars)]
struct CellState<'t, T: Float> {
    h: Var<'t, T>,
    c: Var<'t, T>,
}

/// A small gated recurrent cell: `c' = f ⊙ c + (1 - f) ⊙ tanh(W x + U h)`, `h' = tanh(c')`
/// with a forget gate `f = σ(G [x, h])`; the output is `h'`. A missing state is zeros.
#[derive(Module)]
struct Cell<T: Float> {
    w: Linear<T>,
    u: Linear<T>,
    gate: Linear<T>,
    hidden: usize,
}

impl<T: Float> Forward<T> for Cell<T> {
    type Input<'t> = (Var<'t, T>, Option<CellState<'t, T>>);
    type Output<'t> = (Var<'t, T>, CellState<'t, T>);
    fn forward<'t>(
        &self,
        cx: &Ctx<'t, T>,
        (x, state): Self::Input<'t>,
    ) -> nn::Result<Self::Output<'t>> {
        let state = match state {
            Some(s) => s,
            None => {
                let zeros = cx
                    .tape()
                    .constant(Tensor::zeros([x.shape()[0], self.hidden]).unwrap());
                CellState { h: zeros, c: zeros }
            }
        };
        let candidate = cx.call(&self.w, x)?.add(cx.call(&self.u, state.h)?)?.tanh();
        let f = cx
            .call(&self.gate, Var::concat(&[x, state.h], 1)?)?
            .sigmoid();
        let keep = f.mul(state.c)?;
        let c = keep.add(f.neg().add_scalar(T::one()).mul(candidate)?)?;
        let h = c.tanh();
        Ok((h, CellState { h, c }))
    }
}

/// Runs the cell over a sequence, carrying the state: what an RNN layer does.
#[derive(Module)]
struct Unroll<T: Float> {
    cell: Cell<T>,
}

impl<T: Float> Forward<T> for Unroll<T> {
    type Input<'t> = (Vec<Var<'t, T>>, Option<CellState<'t, T>>);
    type Output<'t> = (Vec<Var<'t, T>>, CellState<'t, T>);
    fn forward<'t>(
        &self,
        cx: &Ctx<'t, T>,
        (xs, mut state): Self::Input<'t>,
    ) -> nn::Result<Self::Output<'t>> {
        let mut outs = Vec::with_capacity(xs.len());
        for x in xs {
            let (y, s) = cx.call(&self.cell, (x, state))?;
            outs.push(y);
            state = Some(s);
        }
        let last = state.expect("at least one step");
        Ok((outs, last))
    }
}

fn cell(seed: u64) -> Unroll<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Unroll {
        cell: Cell {
            w: Linear::new(3, 2, &mut rng).unwrap(),
            u: Linear::new(2, 2, &mut rng).unwrap(),
            gate: Linear::new(5, 2, &mut rng).unwrap(),
            hidden: 2,
        },
    }
}

/// The cell's maths on plain numbers, for one sample: an independent statement of it.
fn reference_step(m: &Cell<f64>, x: &[f64], h: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let lin = |l: &Linear<f64>, v: &[f64]| -> Vec<f64> {
        let w = l.weight.value();
        let b = l.bias.as_ref().unwrap().value();
        (0..l.out_features())
            .map(|o| {
                b.as_slice()[o]
                    + (0..l.in_features())
                        .map(|i| w.as_slice()[o * l.in_features() + i] * v[i])
                        .sum::<f64>()
            })
            .collect()
    };
    let (wx, uh) = (lin(&m.w, x), lin(&m.u, h));
    let xh: Vec<f64> = x.iter().chain(h).copied().collect();
    let g = lin(&m.gate, &xh);
    let mut c2 = vec![0.0; 2];
    let mut h2 = vec![0.0; 2];
    for j in 0..2 {
        let f = 1.0 / (1.0 + (-g[j]).exp());
        c2[j] = f * c[j] + (1.0 - f) * (wx[j] + uh[j]).tanh();
        h2[j] = c2[j].tanh();
    }
    (h2, c2)
}

#[test]
fn recurrent_cell_carries_its_state_through_every_step() {
    let model = cell(21);
    let mut rng = StdRng::seed_from_u64(22);
    let steps: Vec<Tensor<f64>> = (0..4)
        .map(|_| Tensor::randn([1, 3], &mut rng).unwrap())
        .collect();
    let (h0, c0) = (vec![0.5, -0.8], vec![1.2, -0.3]);
    let tape = Tape::new();
    let calls = std::cell::RefCell::new(Vec::new());
    let mut cx = Ctx::new(&tape);
    cx.add_forward_hook(|call| calls.borrow_mut().push(call.path.to_string()));
    let xs: Vec<_> = steps.iter().map(|t| tape.constant(t.clone())).collect();
    let init = CellState {
        h: tape.constant(Tensor::from_vec(h0.clone(), [1, 2]).unwrap()),
        c: tape.constant(Tensor::from_vec(c0.clone(), [1, 2]).unwrap()),
    };
    let (outs, last) = cx.call(&model, (xs, Some(init))).unwrap();
    // against the maths on plain numbers, step by step from the non-zero initial state
    let (mut h, mut c) = (h0, c0);
    for (t, x) in steps.iter().enumerate() {
        (h, c) = reference_step(&model.cell, x.as_slice(), &h, &c);
        for (got, want) in outs[t].value().as_slice().iter().zip(&h) {
            assert!((got - want).abs() < 1e-12, "step {t}: {got} vs {want}");
        }
    }
    for (got, want) in last.c.value().as_slice().iter().zip(&c) {
        assert!((got - want).abs() < 1e-12);
    }
    // hooks see each step's call of the cell and its children by path
    let calls = calls.borrow();
    assert_eq!(calls.iter().filter(|p| *p == "cell").count(), 4);
    assert_eq!(calls.iter().filter(|p| *p == "cell.gate").count(), 4);
    assert_eq!(calls.last().map(String::as_str), Some(""));
}

#[test]
fn recurrent_module_gradchecks_through_time_in_inputs_initial_state_and_parameters() {
    let model = cell(23);
    let mut rng = StdRng::seed_from_u64(24);
    let mut inputs: Vec<Tensor<f64>> = (0..3)
        .map(|_| Tensor::randn([2, 3], &mut rng).unwrap())
        .collect();
    inputs.push(Tensor::randn([2, 2], &mut rng).unwrap()); // h0
    inputs.push(Tensor::randn([2, 2], &mut rng).unwrap()); // c0
    gradcheck_module(
        &model,
        &inputs,
        |v| (v[..3].to_vec(), Some(CellState { h: v[3], c: v[4] })),
        &GradcheckOptions::default(),
    )
    .unwrap();
    // and from a missing (zero) state
    gradcheck_module(
        &model,
        &inputs[..3],
        |v| (v.to_vec(), None),
        &GradcheckOptions::default(),
    )
    .unwrap();
}
