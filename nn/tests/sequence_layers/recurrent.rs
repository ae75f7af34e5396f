//! RNN/LSTM/GRU and their cells: layers against their cells unrolled from a non-zero
//! state, gradient checks through time, PyTorch's names, typed errors.

use super::*;

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
    let x = tape.constant(Tensor::randn([l, n, i], &mut r).unwrap());
    let h0 = tape.constant(Tensor::randn([4, n, hid], &mut r).unwrap());
    let c0 = tape.constant(Tensor::randn([4, n, hid], &mut r).unwrap());
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
    let x = Tensor::randn([4, 2, 2], &mut r).unwrap();
    let h0 = Tensor::randn([4, 2, 2], &mut r).unwrap();
    let c0 = Tensor::randn([4, 2, 2], &mut r).unwrap();
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
    let xb = Tensor::randn([2, 3, 2], &mut r).unwrap();
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
    let x = Tensor::randn([3, 1, 2], &mut r).unwrap();
    let h0 = Tensor::randn([1, 1, 2], &mut r).unwrap();
    let c0 = Tensor::randn([1, 1, 2], &mut r).unwrap();
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
    // the plain RNN, stacked and bidirectional, so the second derivative also flows
    // between layers and through the reverse direction
    let deep = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..RnnConfig::new(2, 2)
    };
    let rnn = deep.rnn::<f64>(&mut r).unwrap();
    let xr = Tensor::randn([2, 1, 2], &mut r).unwrap();
    let hr = Tensor::randn([4, 1, 2], &mut r).unwrap();
    gradgradcheck_module(&rnn, &[xr, hr], |v| (v[0], Some(v[1])), &opts()).unwrap();
    // cells, with and without a state
    let xc = Tensor::randn([2, 3], &mut r).unwrap();
    let hc = Tensor::randn([2, 2], &mut r).unwrap();
    let cc = Tensor::randn([2, 2], &mut r).unwrap();
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
    let x = tape.constant(Tensor::randn([5, 2, 3], &mut r).unwrap());
    let (a, sa) = cx.call(&tm, (x, None)).unwrap();
    let (b, sb) = cx.call(&bf, (x.transpose(0, 1).unwrap(), None)).unwrap();
    close(&a.value(), &b.transpose(0, 1).unwrap().value(), 0.0);
    close(&sa.h.value(), &sb.h.value(), 0.0);
    // an unbatched sequence is a batch of one
    let x1 = tape.constant(Tensor::randn([5, 3], &mut r).unwrap());
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
    let x = Tensor::randn([3, 2, 3], &mut rng(1)).unwrap();
    let run = || {
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(&lstm, (tape.constant(x.clone()), None))
            .unwrap();
        y.0.value()
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
    let t = |dims: &[usize]| tape.constant(Tensor::zeros(dims.to_vec()).unwrap());
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
