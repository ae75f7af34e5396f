//! `scaled_dot_product_attention` and `MultiheadAttention`: against plain loops, gradient
//! checks, fully masked queries, PyTorch's names and shapes, typed errors.

use super::*;

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
    let q = tape.constant(Tensor::randn([n, h, l, d], &mut r).unwrap());
    let k = tape.constant(Tensor::randn([n, h, s, d], &mut r).unwrap());
    let v = tape.constant(Tensor::randn([n, h, s, dv], &mut r).unwrap());
    let add = Tensor::randn([l, s], &mut r).unwrap();
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
        Tensor::randn([2, 3, 2], &mut r).unwrap(),
        Tensor::randn([2, 4, 2], &mut r).unwrap(),
        Tensor::randn([2, 4, 3], &mut r).unwrap(),
        Tensor::randn([3, 4], &mut r).unwrap(), // a relative-position bias, differentiable
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
    autograd::gradcheck(f, &inputs, &opts()).unwrap();
    autograd::gradgradcheck(f, &inputs, &opts()).unwrap();
}

#[test]
fn a_fully_masked_query_gets_a_zero_output_and_finite_zero_gradients() {
    let mut r = rng(3);
    let (l, s) = (3, 4);
    let tape = Tape::<f64>::new();
    let q = tape.var(Tensor::randn([2, l, 2], &mut r).unwrap());
    let k = tape.var(Tensor::randn([2, s, 2], &mut r).unwrap());
    let v = tape.var(Tensor::randn([2, s, 3], &mut r).unwrap());
    // query 1 sees nothing (boolean), query 2 sees nothing (-inf additive entries)
    let blocked = BoolMask::from_fn([l, s], |ix| ix[0] == 1);
    let add =
        Tensor::from_fn([l, s], |i| if i / s == 2 { f64::NEG_INFINITY } else { 0.1 }).unwrap();
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
        let c = tape.constant(Tensor::randn(out.shape(), &mut r).unwrap());
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
            p.set_value(Tensor::randn(p.shape(), &mut rng(seed + 100)).unwrap())
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
    let x = tape.constant(Tensor::randn([4, 2, 6], &mut r).unwrap());
    let mem = tape.constant(Tensor::randn([5, 2, 6], &mut r).unwrap());
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
    let q = tape.constant(Tensor::randn([3, 2, 4], &mut r).unwrap());
    let kv = tape.constant(Tensor::randn([3, 5, 4], &mut r).unwrap());
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
    let x = Tensor::randn([3, 2, 4], &mut r).unwrap();
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
        Tensor::randn([2, 2, 4], &mut r).unwrap(),
        Tensor::randn([2, 3, 3], &mut r).unwrap(),
        Tensor::randn([2, 3, 2], &mut r).unwrap(),
    ];
    let add = Tensor::randn([4, 2, 3], &mut r).unwrap();
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
    let inputs = [
        Tensor::randn([2, 2], &mut r).unwrap(),
        Tensor::randn([3, 2], &mut r).unwrap(),
    ];
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
    let x = Tensor::randn([2, 3, 4], &mut r).unwrap();
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
    let q = tape.constant(Tensor::randn([3, 4], &mut r).unwrap());
    let kv = tape.constant(Tensor::randn([5, 4], &mut r).unwrap());
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
    let x = Tensor::randn([4, 2, 4], &mut r).unwrap();
    let run = |m: &MultiheadAttention<f64>| {
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(m, AttentionInput::self_attention(tape.constant(x.clone())))
            .unwrap();
        y.0.value()
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
    let t = |dims: &[usize]| tape.constant(Tensor::zeros(dims.to_vec()).unwrap());
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
        let e = Ctx::new(&tape).call(&holder.attn, input.clone());
        let e = e.unwrap_err();
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
