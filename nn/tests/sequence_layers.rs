//! The sequence layers through their public API: attention (`scaled_dot_product_attention`,
//! `MultiheadAttention`), recurrent layers and cells, transformer layers. Gradients are
//! checked in f64 against finite differences with respect to the inputs *and* every
//! parameter (first order everywhere, second order where it is cheap); recurrences run
//! several steps from a non-zero state, so a state not carried through time fails;
//! attention is compared with plain loops; a fully masked query must stay finite; bad
//! inputs must give typed errors naming the layer, its path and the caller's line.
//! (PyTorch parity of every case of `layers.json` is `tests/pytorch_layers/seq.rs`.)

use autograd::{GradcheckOptions, Tape, Tensor, Var};
use nn::{
    gradcheck_module, gradgradcheck_module, scaled_dot_product_attention, AttentionInput, AttnMask,
    AttnWeights, BoolMask, CellConfig, Ctx, DecoderInput, EncoderInput, Error,
    FeedForwardActivation, Forward, GruCell, LstmCell, LstmState, Module, MultiheadAttention,
    MultiheadAttentionConfig, RecurrentWeights, RnnCell, RnnConfig, RnnNonlinearity,
    TransformerLayerConfig,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn opts() -> GradcheckOptions {
    GradcheckOptions::default()
}

fn close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) {
    assert_eq!(a.dims(), b.dims());
    for (i, (x, y)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

// --- attention ---

/// `softmax(q kᵀ·scale + add) v` for one `[L, d]`, `[S, d]`, `[S, dv]` triple by plain
/// loops; `blocked(i, j)` pairs get no weight, and a query with every key blocked gets 0.
#[allow(clippy::too_many_arguments)]
fn naive_attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    (l, s, d, dv): (usize, usize, usize, usize),
    scale: f64,
    blocked: &dyn Fn(usize, usize) -> bool,
    add: &dyn Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut out = vec![0.0; l * dv];
    for i in 0..l {
        let scores: Vec<Option<f64>> = (0..s)
            .map(|j| {
                (!blocked(i, j)).then(|| {
                    (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() * scale + add(i, j)
                })
            })
            .collect();
        let m = scores
            .iter()
            .flatten()
            .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        if m == f64::NEG_INFINITY {
            continue; // fully masked: zero
        }
        let e: Vec<f64> = scores
            .iter()
            .map(|s| s.map_or(0.0, |s| (s - m).exp()))
            .collect();
        let z: f64 = e.iter().sum();
        for j in 0..s {
            for c in 0..dv {
                out[i * dv + c] += e[j] / z * v[j * dv + c];
            }
        }
    }
    out
}

#[test]
fn sdpa_matches_plain_loops_with_causal_boolean_and_additive_masks() {
    let mut r = rng(1);
    let (n, h, l, s, d, dv) = (2, 2, 3, 5, 4, 3);
    let tape = Tape::<f64>::new();
    let q = tape.constant(Tensor::randn([n, h, l, d], &mut r));
    let k = tape.constant(Tensor::randn([n, h, s, d], &mut r));
    let v = tape.constant(Tensor::randn([n, h, s, dv], &mut r));
    let add = Tensor::randn([l, s], &mut r);
    // sample 1 cannot see key 1 (broadcast over heads and queries)
    let pad = BoolMask::from_fn([n, 1, 1, s], |ix| ix[0] == 1 && ix[3] == 1);
    let plain = scaled_dot_product_attention(
        q,
        k,
        v,
        Some(AttnMask::Additive(tape.constant(add.clone()))),
        true,
        None,
    )
    .unwrap();
    let padded = scaled_dot_product_attention(q, k, v, Some(pad.into()), true, Some(0.7)).unwrap();
    let (qv, kv, vv) = (q.value(), k.value(), v.value());
    for b in 0..n * h {
        let qs = &qv.as_slice()[b * l * d..(b + 1) * l * d];
        let ks = &kv.as_slice()[b * s * d..(b + 1) * s * d];
        let vs = &vv.as_slice()[b * s * dv..(b + 1) * s * dv];
        let dims = (l, s, d, dv);
        let causal = |i: usize, j: usize| j > i;
        let want = naive_attention(qs, ks, vs, dims, 0.5, &causal, &|i, j| {
            add.as_slice()[i * s + j]
        });
        let pv = plain.value();
        let got = &pv.as_slice()[b * l * dv..(b + 1) * l * dv];
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-13, "{g} vs {w}");
        }
        let sample = b / h;
        let blocked = |i: usize, j: usize| j > i || (sample == 1 && j == 1);
        let want = naive_attention(qs, ks, vs, dims, 0.7, &blocked, &|_, _| 0.0);
        let pv = padded.value();
        let got = &pv.as_slice()[b * l * dv..(b + 1) * l * dv];
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-13, "{g} vs {w}");
        }
    }
}

#[test]
fn sdpa_gradchecks_to_second_order_including_a_learnt_additive_mask() {
    let mut r = rng(2);
    let inputs = [
        Tensor::randn([2, 3, 2], &mut r),
        Tensor::randn([2, 4, 2], &mut r),
        Tensor::randn([2, 4, 3], &mut r),
        Tensor::randn([3, 4], &mut r), // a relative-position bias, differentiable
    ];
    let f = autograd::gradcheck::func(|v| {
        let out = scaled_dot_product_attention(
            v[0],
            v[1],
            v[2],
            Some(AttnMask::Additive(v[3])),
            true,
            None,
        )
        .map_err(Error::into_autograd)?;
        Ok(out.tanh().sum())
    });
    autograd::gradcheck(&f, &inputs, &opts()).unwrap();
    autograd::gradgradcheck(&f, &inputs, &opts()).unwrap();
}

#[test]
fn a_fully_masked_query_gets_a_zero_output_and_finite_zero_gradients() {
    let mut r = rng(3);
    let (l, s) = (3, 4);
    let tape = Tape::<f64>::new();
    let q = tape.var(Tensor::randn([2, l, 2], &mut r));
    let k = tape.var(Tensor::randn([2, s, 2], &mut r));
    let v = tape.var(Tensor::randn([2, s, 3], &mut r));
    // query 1 sees nothing (boolean), query 2 sees nothing (-inf additive entries)
    let blocked = BoolMask::from_fn([l, s], |ix| ix[0] == 1);
    let add = Tensor::from_fn([l, s], |i| if i / s == 2 { f64::NEG_INFINITY } else { 0.1 });
    let bias = AttnMask::Additive(tape.constant(add));
    for mask in [AttnMask::Block(blocked), bias] {
        let out = scaled_dot_product_attention(q, k, v, Some(mask), false, None).unwrap();
        let o = out.value();
        let dead = (0..l)
            .find(|&i| o.as_slice()[i * 3..i * 3 + 3] == [0.0; 3])
            .unwrap();
        assert!(dead == 1 || dead == 2);
        for b in 0..2 {
            assert_eq!(
                o.as_slice()[(b * l + dead) * 3..(b * l + dead + 1) * 3],
                [0.0; 3]
            );
        }
        assert!(o.as_slice().iter().all(|x| x.is_finite()));
        let c = tape.constant(Tensor::randn(out.shape(), &mut r));
        let g = tape.grad(out.mul(c).unwrap().sum(), &[q, k, v]).unwrap();
        for gi in &g {
            assert!(gi.value().as_slice().iter().all(|x| x.is_finite()));
        }
        // nothing flows back through the dead query
        let gq = g[0].value();
        for b in 0..2 {
            assert_eq!(
                gq.as_slice()[(b * l + dead) * 2..(b * l + dead + 1) * 2],
                [0.0; 2]
            );
        }
    }
}

fn mha(cfg: MultiheadAttentionConfig, seed: u64) -> MultiheadAttention<f64> {
    let m = cfg.init::<f64>(&mut rng(seed)).unwrap();
    // non-zero biases, so a bias that is not applied shows
    for (_, p) in m.named_parameters() {
        if p.shape().rank() == 1 {
            p.set_value(Tensor::randn(p.shape(), &mut rng(seed + 100)))
                .unwrap();
        }
    }
    m
}

#[test]
fn mha_names_its_parameters_as_pytorch() {
    let names = |m: &MultiheadAttention<f64>| -> Vec<String> {
        m.named_parameters().into_iter().map(|(n, _)| n).collect()
    };
    let packed = mha(MultiheadAttentionConfig::new(4, 2), 0);
    assert_eq!(
        names(&packed),
        [
            "in_proj_weight",
            "in_proj_bias",
            "out_proj.weight",
            "out_proj.bias"
        ]
    );
    let sep = mha(
        MultiheadAttentionConfig {
            kdim: Some(3),
            bias: false,
            ..MultiheadAttentionConfig::new(4, 2)
        },
        0,
    );
    assert_eq!(
        names(&sep),
        [
            "q_proj_weight",
            "k_proj_weight",
            "v_proj_weight",
            "out_proj.weight"
        ]
    );
    assert_eq!(sep.k_proj_weight.as_ref().unwrap().shape().dims(), &[4, 3]);
    assert_eq!(sep.v_proj_weight.as_ref().unwrap().shape().dims(), &[4, 4]);
}

/// The same values as a distinct `Var`.
fn copy(v: Var<'_, f64>) -> Var<'_, f64> {
    v.mul_scalar(1.0)
}

#[test]
fn mha_fast_projection_paths_equal_the_separate_one() {
    // One product for q, k, v (self-attention) or for k, v (shared memory) must give what
    // three products give; the same values as distinct Vars take the separate path.
    let m = mha(MultiheadAttentionConfig::new(6, 3), 4);
    let mut r = rng(5);
    let tape = Tape::<f64>::new();
    let cx = Ctx::new(&tape);
    let x = tape.constant(Tensor::randn([4, 2, 6], &mut r));
    let mem = tape.constant(Tensor::randn([5, 2, 6], &mut r));
    let w = AttnWeights::PerHead;
    let (a, wa) = cx
        .call(&m, AttentionInput::self_attention(x).with_weights(w))
        .unwrap();
    let (b, wb) = cx
        .call(&m, AttentionInput::new(x, copy(x), copy(x)).with_weights(w))
        .unwrap();
    close(&a.value(), &b.value(), 1e-14);
    close(&wa.unwrap().value(), &wb.unwrap().value(), 1e-14);
    let (c, _) = cx.call(&m, AttentionInput::new(x, mem, mem)).unwrap();
    let (d, _) = cx.call(&m, AttentionInput::new(x, mem, copy(mem))).unwrap();
    close(&c.value(), &d.value(), 1e-14);
}

#[test]
fn mha_weights_have_pytorchs_shapes_and_rows_that_sum_to_one() {
    let m = mha(
        MultiheadAttentionConfig {
            batch_first: true,
            ..MultiheadAttentionConfig::new(4, 2)
        },
        6,
    );
    let mut r = rng(7);
    let tape = Tape::<f64>::new();
    let cx = Ctx::new(&tape);
    let q = tape.constant(Tensor::randn([3, 2, 4], &mut r));
    let kv = tape.constant(Tensor::randn([3, 5, 4], &mut r));
    let (y, none) = cx.call(&m, AttentionInput::new(q, kv, kv)).unwrap();
    assert_eq!((y.dims(), none.is_none()), (vec![3, 2, 4], true));
    let input = |w| AttentionInput::new(q, kv, kv).with_weights(w);
    let avg = cx
        .call(&m, input(AttnWeights::Averaged))
        .unwrap()
        .1
        .unwrap();
    let per = cx.call(&m, input(AttnWeights::PerHead)).unwrap().1.unwrap();
    assert_eq!((avg.dims(), per.dims()), (vec![3, 2, 5], vec![3, 2, 2, 5]));
    let sums = per.sum_axes(&[-1], false).unwrap().value();
    assert!(sums.as_slice().iter().all(|s| (s - 1.0).abs() < 1e-14));
    close(
        &avg.value(),
        &per.mean_axes(&[1], false).unwrap().value(),
        1e-15,
    );
}

#[test]
fn mha_gradchecks_in_inputs_and_every_parameter() {
    let mut r = rng(8);
    // self-attention, sequence-first, causal + padding masks, averaged weights out
    let m = mha(MultiheadAttentionConfig::new(4, 2), 9);
    let x = Tensor::randn([3, 2, 4], &mut r);
    let pad = BoolMask::key_padding(&[3, 2], 3).unwrap();
    gradcheck_module(
        &m,
        std::slice::from_ref(&x),
        |v| {
            AttentionInput::self_attention(v[0])
                .with_attn_mask(BoolMask::causal(3, 3))
                .with_key_padding_mask(pad.clone())
                .with_weights(AttnWeights::Averaged)
        },
        &opts(),
    )
    .unwrap();
    // cross-attention with kdim/vdim, no bias, batch first, per-head weights and a
    // per-sample-and-head additive mask
    let m = mha(
        MultiheadAttentionConfig {
            kdim: Some(3),
            vdim: Some(2),
            bias: false,
            batch_first: true,
            ..MultiheadAttentionConfig::new(4, 2)
        },
        10,
    );
    let inputs = [
        Tensor::randn([2, 2, 4], &mut r),
        Tensor::randn([2, 3, 3], &mut r),
        Tensor::randn([2, 3, 2], &mut r),
    ];
    let add = Tensor::randn([4, 2, 3], &mut r);
    gradcheck_module(
        &m,
        &inputs,
        |v| {
            let mask = AttnMask::Additive(v[0].tape().constant(add.clone()));
            AttentionInput::new(v[0], v[1], v[2])
                .with_attn_mask(mask)
                .with_weights(AttnWeights::PerHead)
        },
        &opts(),
    )
    .unwrap();
    // key = value, unbatched
    let m = mha(MultiheadAttentionConfig::new(2, 1), 11);
    let inputs = [Tensor::randn([2, 2], &mut r), Tensor::randn([3, 2], &mut r)];
    gradcheck_module(
        &m,
        &inputs,
        |v| AttentionInput::new(v[0], v[1], v[1]),
        &opts(),
    )
    .unwrap();
    gradgradcheck_module(
        &m,
        &inputs,
        |v| AttentionInput::new(v[0], v[1], v[1]),
        &opts(),
    )
    .unwrap();
}

#[test]
fn mha_with_a_fully_padded_sample_keeps_the_whole_batch_finite() {
    let m = mha(
        MultiheadAttentionConfig {
            batch_first: true,
            ..MultiheadAttentionConfig::new(4, 2)
        },
        12,
    );
    let mut r = rng(13);
    let x = Tensor::randn([2, 3, 4], &mut r);
    // sample 0 has no key at all
    let pad = BoolMask::key_padding(&[0, 3], 3).unwrap();
    let tape = Tape::new();
    let (y, _) = Ctx::new(&tape)
        .call(
            &m,
            AttentionInput::self_attention(tape.constant(x.clone()))
                .with_key_padding_mask(pad.clone()),
        )
        .unwrap();
    // zero attention: sample 0's output is out_proj's bias at every position
    let bias = m.out_proj.bias.as_ref().unwrap().value();
    for i in 0..3 {
        close(
            &Tensor::from_vec(y.value().as_slice()[i * 4..i * 4 + 4].to_vec(), [4]).unwrap(),
            &bias,
            0.0,
        );
    }
    m.zero_grad();
    y.square().sum().backward().unwrap();
    for (name, p) in m.named_parameters() {
        let g = p.grad().unwrap();
        assert!(g.as_slice().iter().all(|v| v.is_finite()), "{name}");
    }
    gradcheck_module(
        &m,
        &[x],
        |v| AttentionInput::self_attention(v[0]).with_key_padding_mask(pad.clone()),
        &opts(),
    )
    .unwrap();
}

#[test]
fn mha_unbatched_input_equals_a_batch_of_one() {
    let m = mha(MultiheadAttentionConfig::new(4, 2), 14);
    let mut r = rng(15);
    let tape = Tape::new();
    let cx = Ctx::new(&tape);
    let q = tape.constant(Tensor::randn([3, 4], &mut r));
    let kv = tape.constant(Tensor::randn([5, 4], &mut r));
    let mask = BoolMask::from_fn([3, 5], |ix| ix[1] == 4);
    let (a, wa) = cx
        .call(
            &m,
            AttentionInput::new(q, kv, kv)
                .with_attn_mask(mask.clone())
                .with_weights(AttnWeights::Averaged),
        )
        .unwrap();
    let one = |v| Var::unsqueeze(v, 1).unwrap(); // [L, 1, E]
    let (b, wb) = cx
        .call(
            &m,
            AttentionInput::new(one(q), one(kv), one(kv))
                .with_attn_mask(mask)
                .with_weights(AttnWeights::Averaged),
        )
        .unwrap();
    close(&a.value(), &b.value().reshape([3, 4]).unwrap(), 1e-15);
    close(
        &wa.unwrap().value(),
        &wb.unwrap().value().reshape([3, 5]).unwrap(),
        1e-15,
    );
}

#[test]
fn mha_attention_dropout_is_seeded_and_off_in_evaluation() {
    let m = mha(
        MultiheadAttentionConfig {
            dropout: 0.5,
            ..MultiheadAttentionConfig::new(4, 2)
        },
        16,
    );
    assert!(m.generator().is_some());
    let mut r = rng(17);
    let x = Tensor::randn([4, 2, 4], &mut r);
    let run = |m: &MultiheadAttention<f64>| {
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(m, AttentionInput::self_attention(tape.constant(x.clone())))
            .unwrap();
        let v = y.0.value();
        v
    };
    let (a, b) = (run(&m), run(&m));
    assert_ne!(a, b, "a new mask per call in training");
    m.eval();
    let (c, d) = (run(&m), run(&m));
    assert_eq!(c, d);
    m.train();
    // the generator is replayed for every perturbation
    gradcheck_module(&m, &[x], |v| AttentionInput::self_attention(v[0]), &opts()).unwrap();
}

/// A model holding an attention layer, to see errors with a path.
#[derive(Module)]
struct Holder {
    attn: MultiheadAttention<f64>,
}

impl Forward<f64> for Holder {
    type Input<'t> = AttentionInput<'t, f64>;
    type Output<'t> = Var<'t, f64>;
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, input: Self::Input<'t>) -> nn::Result<Var<'t, f64>> {
        Ok(cx.call(&self.attn, input)?.0)
    }
}

#[test]
fn mha_rejects_bad_inputs_with_typed_errors_naming_layer_path_and_line() {
    let e = MultiheadAttentionConfig::new(6, 4)
        .init::<f64>(&mut rng(0))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig { what: "MultiheadAttention", reason, .. } if reason.contains("not divisible")),
        "{e}"
    );
    let holder = Holder {
        attn: mha(
            MultiheadAttentionConfig {
                kdim: Some(3),
                ..MultiheadAttentionConfig::new(4, 2)
            },
            0,
        ),
    };
    let tape = Tape::<f64>::new();
    let t = |dims: &[usize]| tape.constant(Tensor::zeros(dims.to_vec()));
    let cases: Vec<(AttentionInput<'_, f64>, &str)> = vec![
        (
            AttentionInput::new(t(&[2, 3, 2, 4]), t(&[5, 2, 3]), t(&[5, 2, 4])),
            "query",
        ),
        (
            AttentionInput::new(t(&[2, 3, 4]), t(&[5, 3, 4]), t(&[5, 3, 4])),
            "key [S, N, 3]",
        ),
        (
            AttentionInput::new(t(&[2, 3, 4]), t(&[5, 2, 3]), t(&[5, 2, 4])),
            "batch size 3",
        ),
        (
            AttentionInput::new(t(&[2, 3, 4]), t(&[5, 3, 3]), t(&[4, 3, 4])),
            "as many entries",
        ),
        (
            AttentionInput::new(t(&[0, 3, 4]), t(&[5, 3, 3]), t(&[5, 3, 4])),
            "non-empty",
        ),
        (
            AttentionInput::new(t(&[2, 3, 4]), t(&[5, 3, 3]), t(&[5, 3, 4]))
                .with_attn_mask(BoolMask::causal(2, 4)),
            "attn_mask [2, 5]",
        ),
        (
            AttentionInput::new(t(&[2, 3, 4]), t(&[5, 3, 3]), t(&[5, 3, 4]))
                .with_key_padding_mask(BoolMask::key_padding(&[5, 5], 5).unwrap()),
            "key_padding_mask [3, 5]",
        ),
    ];
    for (input, expected) in cases {
        // called directly: no path, this line
        let line = line!() + 1;
        let e = Ctx::new(&tape)
            .call(&holder.attn, input.clone())
            .unwrap_err();
        let m = e.module().unwrap();
        assert_eq!(
            (m.layer, m.path.as_str()),
            ("MultiheadAttention", ""),
            "{e}"
        );
        assert_eq!(
            (m.location.file(), m.location.line()),
            (file!(), line),
            "{e}"
        );
        // inside a model: its path, and the line in this file that called it
        let e = Ctx::new(&tape).call(&holder, input).unwrap_err();
        let m = e.module().unwrap();
        assert_eq!(
            (m.layer, m.path.as_str()),
            ("MultiheadAttention", "attn"),
            "{e}"
        );
        assert_eq!(m.location.file(), file!(), "{e}");
        match e.innermost() {
            Error::InputShape {
                layer,
                expected: what,
                ..
            } => {
                assert_eq!(*layer, "MultiheadAttention");
                assert!(what.contains(expected), "{what} lacks {expected:?}");
            }
            other => panic!("not an input-shape error: {other}"),
        }
    }
    // functional: the error names the function and the caller's line
    let line = line!() + 1;
    let e = scaled_dot_product_attention(t(&[2, 3]), t(&[4, 2]), t(&[4, 1]), None, false, None)
        .unwrap_err();
    assert!(
        matches!(&e, Error::InputShape { layer: "scaled_dot_product_attention", location, .. } if location.line() == line),
        "{e}"
    );
    let mask = AttnMask::Block(BoolMask::causal(3, 5));
    let e = scaled_dot_product_attention(
        t(&[2, 3, 2]),
        t(&[2, 4, 2]),
        t(&[2, 4, 1]),
        Some(mask),
        false,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("attn_mask"), "{e}");
}

// --- recurrent layers and cells ---

/// A cell of `kind` with the weights `w` of one layer and direction.
fn cell_from<C: Module<f64>>(c: C, w: &RecurrentWeights<f64>) -> C {
    let ps = c.named_parameters();
    let src = [
        Some(&w.weight_ih),
        Some(&w.weight_hh),
        w.bias_ih.as_ref(),
        w.bias_hh.as_ref(),
    ];
    for ((_, p), s) in ps.iter().zip(src.into_iter().flatten()) {
        p.set_value(s.value()).unwrap();
    }
    c
}

/// The documented stacked, bidirectional recurrence, run one cell call at a time:
/// `xs` are the time steps `[N, in]`; `step(layer, dir, x, state)` is the cell of that
/// layer and direction; `h(state)` its output. Returns every step's top-layer output
/// (`[N, dirs·H]`) and the final states in `layer·dirs + dir` order.
#[allow(clippy::type_complexity)]
fn unroll<'t, S: Copy>(
    xs: Vec<Var<'t, f64>>,
    layers: usize,
    dirs: usize,
    init: &[Option<S>],
    step: &dyn Fn(usize, usize, Var<'t, f64>, Option<S>) -> S,
    h: &dyn Fn(&S) -> Var<'t, f64>,
) -> (Vec<Var<'t, f64>>, Vec<S>) {
    let l = xs.len();
    let mut input = xs;
    let mut finals = Vec::new();
    for layer in 0..layers {
        let mut outs: Vec<Vec<Var<'t, f64>>> = vec![Vec::new(); l];
        for dir in 0..dirs {
            let mut s = init[layer * dirs + dir];
            let order: Vec<usize> = if dir == 0 {
                (0..l).collect()
            } else {
                (0..l).rev().collect()
            };
            for t in order {
                let new = step(layer, dir, input[t], s);
                outs[t].push(h(&new));
                s = Some(new);
            }
            finals.push(s.unwrap());
        }
        input = outs
            .into_iter()
            .map(|o| Var::concat(&o, 1).unwrap())
            .collect();
    }
    (input, finals)
}

fn split_time<'t>(x: Var<'t, f64>) -> Vec<Var<'t, f64>> {
    (0..x.dims()[0])
        .map(|t| x.narrow(0, t, 1).unwrap().squeeze(0).unwrap())
        .collect()
}

#[test]
fn recurrent_layers_equal_their_cells_unrolled_from_a_nonzero_state() {
    let (i, hid, l, n) = (3, 2, 4, 2);
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..RnnConfig::new(i, hid)
    };
    let mut r = rng(20);
    let tape = Tape::<f64>::new();
    let cx = Ctx::new(&tape);
    let x = tape.constant(Tensor::randn([l, n, i], &mut r));
    let h0 = tape.constant(Tensor::randn([4, n, hid], &mut r));
    let c0 = tape.constant(Tensor::randn([4, n, hid], &mut r));
    let in_size = |layer: usize| if layer == 0 { i } else { 2 * hid };

    // LSTM
    let lstm = cfg.lstm::<f64>(&mut r).unwrap();
    let cells: Vec<Vec<LstmCell<f64>>> = (0..2)
        .map(|layer| {
            (0..2)
                .map(|d| {
                    let c = CellConfig::new(in_size(layer), hid)
                        .lstm_cell(&mut rng(0))
                        .unwrap();
                    cell_from(c, lstm.weights(layer, d == 1).unwrap())
                })
                .collect()
        })
        .collect();
    let (out, state) = cx
        .call(&lstm, (x, Some(LstmState { h: h0, c: c0 })))
        .unwrap();
    let init: Vec<Option<LstmState<'_, f64>>> = split_time(h0)
        .into_iter()
        .zip(split_time(c0))
        .map(|(h, c)| Some(LstmState { h, c }))
        .collect();
    let (want, finals) = unroll(
        split_time(x),
        2,
        2,
        &init,
        &|layer, d, x, s| cx.call(&cells[layer][d], (x, s)).unwrap(),
        &|s| s.h,
    );
    close(&out.value(), &Var::stack(&want, 0).unwrap().value(), 1e-14);
    let hs: Vec<_> = finals.iter().map(|s| s.h).collect();
    let cs: Vec<_> = finals.iter().map(|s| s.c).collect();
    close(
        &state.h.value(),
        &Var::stack(&hs, 0).unwrap().value(),
        1e-14,
    );
    close(
        &state.c.value(),
        &Var::stack(&cs, 0).unwrap().value(),
        1e-14,
    );

    // GRU and RNN (ReLU)
    let init: Vec<Option<Var<'_, f64>>> = split_time(h0).into_iter().map(Some).collect();
    let gru = cfg.gru::<f64>(&mut r).unwrap();
    let gcells: Vec<Vec<GruCell<f64>>> = (0..2)
        .map(|layer| {
            (0..2)
                .map(|d| {
                    let c = CellConfig::new(in_size(layer), hid)
                        .gru_cell(&mut rng(0))
                        .unwrap();
                    cell_from(c, gru.weights(layer, d == 1).unwrap())
                })
                .collect()
        })
        .collect();
    let (out, h_n) = cx.call(&gru, (x, Some(h0))).unwrap();
    let (want, finals) = unroll(
        split_time(x),
        2,
        2,
        &init,
        &|layer, d, x, s| cx.call(&gcells[layer][d], (x, s)).unwrap(),
        &|s| *s,
    );
    close(&out.value(), &Var::stack(&want, 0).unwrap().value(), 1e-14);
    close(
        &h_n.value(),
        &Var::stack(&finals, 0).unwrap().value(),
        1e-14,
    );

    let rcfg = RnnConfig {
        nonlinearity: RnnNonlinearity::Relu,
        ..cfg
    };
    let rnn = rcfg.rnn::<f64>(&mut r).unwrap();
    let rcells: Vec<Vec<RnnCell<f64>>> = (0..2)
        .map(|layer| {
            (0..2)
                .map(|d| {
                    let c = CellConfig {
                        nonlinearity: RnnNonlinearity::Relu,
                        ..CellConfig::new(in_size(layer), hid)
                    }
                    .rnn_cell(&mut rng(0))
                    .unwrap();
                    cell_from(c, rnn.weights(layer, d == 1).unwrap())
                })
                .collect()
        })
        .collect();
    let (out, h_n) = cx.call(&rnn, (x, Some(h0))).unwrap();
    let (want, finals) = unroll(
        split_time(x),
        2,
        2,
        &init,
        &|layer, d, x, s| cx.call(&rcells[layer][d], (x, s)).unwrap(),
        &|s| *s,
    );
    close(&out.value(), &Var::stack(&want, 0).unwrap().value(), 1e-14);
    close(
        &h_n.value(),
        &Var::stack(&finals, 0).unwrap().value(),
        1e-14,
    );
}

#[test]
fn recurrent_layers_gradcheck_through_time_from_a_nonzero_state() {
    let mut r = rng(21);
    // 2 layers × 2 directions over 4 steps, batch 2: inputs, h0 (c0) and every weight
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..RnnConfig::new(2, 2)
    };
    let x = Tensor::randn([4, 2, 2], &mut r);
    let h0 = Tensor::randn([4, 2, 2], &mut r);
    let c0 = Tensor::randn([4, 2, 2], &mut r);
    let lstm = cfg.lstm::<f64>(&mut r).unwrap();
    let inputs = [x.clone(), h0.clone(), c0];
    gradcheck_module(
        &lstm,
        &inputs,
        |v| (v[0], Some(LstmState { h: v[1], c: v[2] })),
        &opts(),
    )
    .unwrap();
    let gru = cfg.gru::<f64>(&mut r).unwrap();
    gradcheck_module(
        &gru,
        &[x.clone(), h0.clone()],
        |v| (v[0], Some(v[1])),
        &opts(),
    )
    .unwrap();
    let rnn = cfg.rnn::<f64>(&mut r).unwrap();
    gradcheck_module(&rnn, &[x.clone(), h0], |v| (v[0], Some(v[1])), &opts()).unwrap();
    // batch first, no bias, from zeros
    let bf = RnnConfig {
        batch_first: true,
        bias: false,
        ..RnnConfig::new(2, 3)
    };
    let xb = Tensor::randn([2, 3, 2], &mut r);
    let gru = bf.gru::<f64>(&mut r).unwrap();
    gradcheck_module(&gru, std::slice::from_ref(&xb), |v| (v[0], None), &opts()).unwrap();
    let lstm = bf.lstm::<f64>(&mut r).unwrap();
    gradcheck_module(&lstm, std::slice::from_ref(&xb), |v| (v[0], None), &opts()).unwrap();
}

fn state<'t>(v: &[Var<'t, f64>]) -> Option<LstmState<'t, f64>> {
    Some(LstmState { h: v[1], c: v[2] })
}

#[test]
fn recurrent_layers_and_cells_gradgradcheck() {
    let mut r = rng(22);
    let cfg = RnnConfig::new(2, 2);
    let x = Tensor::randn([3, 1, 2], &mut r);
    let h0 = Tensor::randn([1, 1, 2], &mut r);
    let c0 = Tensor::randn([1, 1, 2], &mut r);
    let lstm = cfg.lstm::<f64>(&mut r).unwrap();
    gradgradcheck_module(
        &lstm,
        &[x.clone(), h0.clone(), c0.clone()],
        |v| (v[0], Some(LstmState { h: v[1], c: v[2] })),
        &opts(),
    )
    .unwrap();
    let gru = cfg.gru::<f64>(&mut r).unwrap();
    gradgradcheck_module(&gru, &[x, h0], |v| (v[0], Some(v[1])), &opts()).unwrap();
    // cells, with and without a state
    let xc = Tensor::randn([2, 3], &mut r);
    let hc = Tensor::randn([2, 2], &mut r);
    let cc = Tensor::randn([2, 2], &mut r);
    let cells = CellConfig::new(3, 2);
    let lc = cells.lstm_cell::<f64>(&mut r).unwrap();
    let both = [xc.clone(), hc.clone(), cc];
    gradcheck_module(&lc, &both, |v| (v[0], state(v)), &opts()).unwrap();
    gradgradcheck_module(&lc, &both, |v| (v[0], state(v)), &opts()).unwrap();
    gradcheck_module(&lc, std::slice::from_ref(&xc), |v| (v[0], None), &opts()).unwrap();
    let gc = cells.gru_cell::<f64>(&mut r).unwrap();
    let rc = cells.rnn_cell::<f64>(&mut r).unwrap();
    let xh = [xc.clone(), hc];
    gradgradcheck_module(&gc, &xh, |v| (v[0], Some(v[1])), &opts()).unwrap();
    gradgradcheck_module(&rc, &xh, |v| (v[0], Some(v[1])), &opts()).unwrap();
    gradcheck_module(&gc, std::slice::from_ref(&xc), |v| (v[0], None), &opts()).unwrap();
}

#[test]
fn batch_first_only_transposes_input_and_output() {
    let mut r = rng(23);
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..RnnConfig::new(3, 2)
    };
    let tm = cfg.lstm::<f64>(&mut rng(1)).unwrap();
    let bf = RnnConfig {
        batch_first: true,
        ..cfg
    }
    .lstm::<f64>(&mut rng(1))
    .unwrap();
    let tape = Tape::new();
    let cx = Ctx::new(&tape);
    let x = tape.constant(Tensor::randn([5, 2, 3], &mut r));
    let (a, sa) = cx.call(&tm, (x, None)).unwrap();
    let (b, sb) = cx.call(&bf, (x.transpose(0, 1).unwrap(), None)).unwrap();
    close(&a.value(), &b.transpose(0, 1).unwrap().value(), 0.0);
    close(&sa.h.value(), &sb.h.value(), 0.0);
    // an unbatched sequence is a batch of one
    let x1 = tape.constant(Tensor::randn([5, 3], &mut r));
    let (u, su) = cx.call(&bf, (x1, None)).unwrap();
    let (v, sv) = cx.call(&tm, (x1.unsqueeze(1).unwrap(), None)).unwrap();
    assert_eq!((u.dims(), su.c.dims()), (vec![5, 4], vec![4, 2]));
    close(&u.value(), &v.value().reshape([5, 4]).unwrap(), 0.0);
    close(&su.c.value(), &sv.c.value().reshape([4, 2]).unwrap(), 0.0);
}

#[test]
fn recurrent_parameters_have_pytorchs_names_and_shapes() {
    let lstm = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..RnnConfig::new(3, 5)
    }
    .lstm::<f32>(&mut rng(0))
    .unwrap();
    let got: Vec<(String, Vec<usize>)> = lstm
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.shape().to_vec()))
        .collect();
    let mut want = Vec::new();
    for k in 0..2 {
        for sfx in ["", "_reverse"] {
            let input = if k == 0 { 3 } else { 10 };
            want.push((format!("weight_ih_l{k}{sfx}"), vec![20, input]));
            want.push((format!("weight_hh_l{k}{sfx}"), vec![20, 5]));
            want.push((format!("bias_ih_l{k}{sfx}"), vec![20]));
            want.push((format!("bias_hh_l{k}{sfx}"), vec![20]));
        }
    }
    assert_eq!(got, want);
    // PyTorch's U(-1/√H, 1/√H)
    let bound = 1.0 / 5f32.sqrt();
    for (_, p) in lstm.named_parameters() {
        assert!(p.value().as_slice().iter().all(|v| v.abs() <= bound));
    }
    let gru = RnnConfig {
        bias: false,
        ..RnnConfig::new(3, 4)
    }
    .gru::<f32>(&mut rng(0))
    .unwrap();
    let names: Vec<String> = gru.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih_l0", "weight_hh_l0"]);
    assert_eq!(
        gru.weights(0, false).unwrap().weight_ih.shape().dims(),
        &[12, 3]
    );
    assert!(gru.weights(0, true).is_none() && gru.weights(1, false).is_none());
    let cell = LstmCell::<f32>::new(3, 4, &mut rng(0)).unwrap();
    let names: Vec<String> = cell
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
}

#[test]
fn inter_layer_dropout_applies_only_in_training() {
    let lstm = RnnConfig {
        num_layers: 2,
        dropout: 0.5,
        ..RnnConfig::new(3, 4)
    }
    .lstm::<f64>(&mut rng(0))
    .unwrap();
    assert!(lstm.generator().is_some());
    let x = Tensor::randn([3, 2, 3], &mut rng(1));
    let run = || {
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(&lstm, (tape.constant(x.clone()), None))
            .unwrap();
        let v = y.0.value();
        v
    };
    assert_ne!(run(), run());
    lstm.eval();
    assert_eq!(run(), run());
    // one layer has nothing to drop between
    let one = RnnConfig {
        dropout: 0.5,
        ..RnnConfig::new(3, 4)
    }
    .gru::<f64>(&mut rng(0))
    .unwrap();
    assert!(one.generator().is_none());
}

/// A model holding an LSTM, to see errors with a path.
#[derive(Module)]
struct Encoder {
    rnn: nn::Lstm<f64>,
}

impl Forward<f64> for Encoder {
    type Input<'t> = (Var<'t, f64>, Option<LstmState<'t, f64>>);
    type Output<'t> = Var<'t, f64>;
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, input: Self::Input<'t>) -> nn::Result<Var<'t, f64>> {
        Ok(cx.call(&self.rnn, input)?.0)
    }
}

#[test]
fn recurrent_layers_reject_bad_inputs_with_typed_errors() {
    let enc = Encoder {
        rnn: RnnConfig {
            num_layers: 2,
            ..RnnConfig::new(3, 4)
        }
        .lstm(&mut rng(0))
        .unwrap(),
    };
    let tape = Tape::<f64>::new();
    let t = |dims: &[usize]| tape.constant(Tensor::zeros(dims.to_vec()));
    let state = |h: &[usize], c: &[usize]| Some(LstmState { h: t(h), c: t(c) });
    let cases = vec![
        ((t(&[5, 2, 2, 3]), None), "input [L, N, 3]"),
        ((t(&[5, 2, 4]), None), "input [L, N, 3]"),
        ((t(&[0, 2, 3]), None), "non-empty"),
        (
            (t(&[5, 2, 3]), state(&[1, 2, 4], &[2, 2, 4])),
            "h0 [2, 2, 4]",
        ),
        (
            (t(&[5, 2, 3]), state(&[2, 2, 4], &[2, 3, 4])),
            "c0 [2, 2, 4]",
        ),
    ];
    for (input, expected) in cases {
        let line = line!() + 1;
        let e = Ctx::new(&tape).call(&enc.rnn, input).unwrap_err();
        assert_eq!(e.module().unwrap().location.line(), line, "{e}");
        let e = Ctx::new(&tape).call(&enc, input).unwrap_err();
        let m = e.module().unwrap();
        assert_eq!((m.layer, m.path.as_str()), ("Lstm", "rnn"), "{e}");
        match e.innermost() {
            Error::InputShape {
                layer: "Lstm",
                expected: what,
                ..
            } => {
                assert!(what.contains(expected), "{what} lacks {expected:?}")
            }
            other => panic!("{other}"),
        }
    }
    let bad = [
        RnnConfig::new(0, 4),
        RnnConfig {
            dropout: 1.5,
            ..RnnConfig::new(3, 4)
        },
        RnnConfig {
            nonlinearity: RnnNonlinearity::Relu,
            ..RnnConfig::new(3, 4)
        },
    ];
    for cfg in bad {
        assert!(matches!(
            cfg.lstm::<f64>(&mut rng(0)),
            Err(Error::InvalidConfig { what: "Lstm", .. })
        ));
    }
    // cells
    let cell = GruCell::<f64>::new(3, 2, &mut rng(0)).unwrap();
    let e = Ctx::new(&tape)
        .call(&cell, (t(&[4, 3]), Some(t(&[3, 2]))))
        .unwrap_err();
    assert!(e.to_string().contains("hx [4, 2]"), "{e}");
}

// --- transformer layers ---

fn layer_cfg(
    norm_first: bool,
    activation: FeedForwardActivation,
    batch_first: bool,
) -> TransformerLayerConfig {
    TransformerLayerConfig {
        dim_feedforward: 6,
        dropout: 0.0,
        activation,
        batch_first,
        norm_first,
        ..TransformerLayerConfig::new(4, 2)
    }
}

#[test]
fn transformer_layers_name_their_parameters_as_pytorch() {
    let enc = layer_cfg(false, FeedForwardActivation::Relu, false)
        .encoder::<f64>(&mut rng(0))
        .unwrap();
    let names: Vec<String> = enc.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "self_attn.in_proj_weight",
            "self_attn.in_proj_bias",
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "linear1.weight",
            "linear1.bias",
            "linear2.weight",
            "linear2.bias",
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias"
        ]
    );
    let dec = layer_cfg(false, FeedForwardActivation::Relu, false)
        .decoder::<f64>(&mut rng(0))
        .unwrap();
    let names: Vec<String> = dec.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[4], "multihead_attn.in_proj_weight");
    assert_eq!(names.last().unwrap(), "norm3.bias");
    assert_eq!(names.len(), 18);
}

#[test]
fn transformer_layers_gradcheck_in_inputs_and_every_parameter() {
    let mut r = rng(30);
    for (norm_first, act, bf) in [
        (false, FeedForwardActivation::Relu, false),
        (true, FeedForwardActivation::Gelu, true),
    ] {
        let cfg = layer_cfg(norm_first, act, bf);
        let enc = cfg.encoder::<f64>(&mut r).unwrap();
        let (n, l) = (2, 3);
        let x = if bf {
            Tensor::randn([n, l, 4], &mut r)
        } else {
            Tensor::randn([l, n, 4], &mut r)
        };
        let pad = BoolMask::key_padding(&[3, 2], 3).unwrap();
        gradcheck_module(
            &enc,
            std::slice::from_ref(&x),
            |v| {
                EncoderInput::new(v[0])
                    .with_mask(BoolMask::causal(l, l))
                    .with_key_padding_mask(pad.clone())
            },
            &opts(),
        )
        .unwrap();
        let dec = cfg.decoder::<f64>(&mut r).unwrap();
        let mem = if bf {
            Tensor::randn([n, 4, 4], &mut r)
        } else {
            Tensor::randn([4, n, 4], &mut r)
        };
        let mem_pad = BoolMask::key_padding(&[4, 3], 4).unwrap();
        gradcheck_module(
            &dec,
            &[x, mem],
            |v| {
                DecoderInput::new(v[0], v[1])
                    .with_tgt_mask(BoolMask::causal(l, l))
                    .with_memory_key_padding_mask(mem_pad.clone())
            },
            &opts(),
        )
        .unwrap();
    }
}

#[test]
fn a_fully_padded_sequence_keeps_a_transformer_batch_finite() {
    let enc = layer_cfg(true, FeedForwardActivation::Gelu, true)
        .encoder::<f64>(&mut rng(31))
        .unwrap();
    let x = Tensor::randn([2, 3, 4], &mut rng(32));
    let pad = BoolMask::key_padding(&[3, 0], 3).unwrap();
    let tape = Tape::new();
    let y = Ctx::new(&tape)
        .call(
            &enc,
            EncoderInput::new(tape.constant(x.clone())).with_key_padding_mask(pad.clone()),
        )
        .unwrap();
    assert!(y.value().as_slice().iter().all(|v| v.is_finite()));
    enc.zero_grad();
    y.square().sum().backward().unwrap();
    for (name, p) in enc.named_parameters() {
        assert!(
            p.grad().unwrap().as_slice().iter().all(|v| v.is_finite()),
            "{name}"
        );
    }
    gradcheck_module(
        &enc,
        &[x],
        |v| EncoderInput::new(v[0]).with_key_padding_mask(pad.clone()),
        &opts(),
    )
    .unwrap();
}

#[test]
fn transformer_dropout_is_off_in_evaluation() {
    let enc = TransformerLayerConfig {
        dim_feedforward: 8,
        ..TransformerLayerConfig::new(4, 2)
    }
    .encoder::<f64>(&mut rng(33))
    .unwrap();
    let x = Tensor::randn([3, 2, 4], &mut rng(34));
    let run = || {
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(&enc, EncoderInput::new(tape.constant(x.clone())))
            .unwrap();
        let v = y.value();
        v
    };
    assert_ne!(run(), run());
    enc.eval();
    assert_eq!(run(), run());
}

#[test]
fn transformer_layers_reject_bad_inputs() {
    let cfg = layer_cfg(false, FeedForwardActivation::Relu, true);
    let dec = cfg.decoder::<f64>(&mut rng(0)).unwrap();
    let tape = Tape::<f64>::new();
    let t = |dims: &[usize]| tape.constant(Tensor::zeros(dims.to_vec()));
    let e = Ctx::new(&tape)
        .call(&dec, DecoderInput::new(t(&[2, 3, 5]), t(&[2, 4, 4])))
        .unwrap_err();
    assert!(e.to_string().contains("tgt [N, L, 4]"), "{e}");
    let e = Ctx::new(&tape)
        .call(&dec, DecoderInput::new(t(&[2, 3, 4]), t(&[3, 4, 4])))
        .unwrap_err();
    assert!(e.to_string().contains("batch size 2"), "{e}");
    assert!(TransformerLayerConfig::new(6, 4)
        .encoder::<f64>(&mut rng(0))
        .is_err());
    let e = Ctx::new(&tape)
        .call(
            &dec,
            DecoderInput::new(t(&[2, 3, 4]), t(&[2, 4, 4])).with_tgt_mask(BoolMask::causal(3, 4)),
        )
        .unwrap_err();
    // the attention layer inside names itself and its path
    let m = e.module().unwrap();
    assert_eq!(
        (m.layer, m.path.as_str()),
        ("MultiheadAttention", "self_attn"),
        "{e}"
    );
    assert!(e.to_string().contains("attn_mask [3, 3]"), "{e}");
}
