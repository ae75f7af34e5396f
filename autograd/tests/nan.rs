//! A NaN that comes in with the data is never laundered into a number: every op's output
//! is NaN where PyTorch's is, and gradients at a NaN follow PyTorch's backward formulas
//! (which pass the gradient through some kinks and zero it at others). Anomaly mode then
//! sees the NaN at the first op that produced it.
//!
//! The expected values are PyTorch 2.x's (CPU kernels and `derivatives.yaml`), quoted in
//! the comments.

use autograd::{Conv2dArgs, Error, Tape, Tensor, Var};

const NAN: f64 = f64::NAN;

/// `[1.5, NaN, -0.5]`: a NaN between two ordinary values.
fn x() -> Tensor<f64> {
    Tensor::from_vec(vec![1.5, NAN, -0.5], [3]).unwrap()
}

fn nan_at(v: &[f64]) -> Vec<bool> {
    v.iter().map(|x| x.is_nan()).collect()
}

type Unary = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;

#[test]
fn elementwise_maps_keep_a_nan_input_nan() {
    let ops: &[(&str, Unary)] = &[
        ("relu", |v| v.relu()), // torch.relu(nan) = nan (was 0)
        ("leaky_relu", |v| v.leaky_relu(0.1)),
        ("elu", |v| v.elu(1.0)),
        ("selu", |v| v.selu()),
        ("gelu", |v| v.gelu()),
        ("gelu_tanh", |v| v.gelu_tanh()),
        ("silu", |v| v.silu()),
        ("softplus", |v| v.softplus(1.0, 20.0)),
        ("sigmoid", |v| v.sigmoid()),
        ("tanh", |v| v.tanh()),
        ("clamp", |v| v.clamp(-1.0, 1.0)), // torch.clamp(nan, -1, 1) = nan (was -1)
        ("abs", |v| v.abs()),
        ("exp", |v| v.exp()),
        ("square", |v| v.square()),
        ("recip", |v| v.recip()),
        ("powf", |v| v.powf(3.0)),
        ("sin", |v| v.sin()),
        ("cos", |v| v.cos()),
        ("erf", |v| v.erf()),
        ("neg", |v| v.neg()),
        ("hardtanh", |v| v.hardtanh(-1.0, 1.0).unwrap()), // clamp's forward
        ("softsign", |v| v.softsign()),
        ("logsigmoid", |v| v.logsigmoid()),
        ("mish", |v| v.mish()),
        ("scalar arithmetic", |v| {
            v.add_scalar(1.0)
                .mul_scalar(2.0)
                .rsub_scalar(3.0)
                .div_scalar(4.0)
        }),
    ];
    for (name, f) in ops {
        let tape = Tape::new();
        let y = f(tape.constant(x())).value().to_vec();
        assert_eq!(nan_at(&y), [false, true, false], "{name}: {y:?}");
    }
    // the same in f32, whose tanh and exp are polynomial approximations
    let tape = Tape::<f32>::new();
    let x32 = tape.constant(x().cast());
    for y in [x32.tanh(), x32.exp(), x32.sigmoid(), x32.relu()] {
        assert!(y.value().to_vec()[1].is_nan());
    }
}

#[test]
fn clamp_follows_pytorch_for_nan_inputs_and_bounds() {
    let tape = Tape::new();
    let v = tape.constant(Tensor::from_vec(vec![-3.0, 0.5, 3.0, NAN], [4]).unwrap());
    let y = v.clamp(-1.0, 1.0).value().to_vec();
    assert_eq!(&y[..3], &[-1.0, 0.5, 1.0]);
    assert!(y[3].is_nan());
    // a NaN bound makes every output NaN (torch.clamp(x, min=nan) = nan)
    for y in [v.clamp(NAN, 1.0), v.clamp(-1.0, NAN)] {
        assert!(y.value().as_slice().iter().all(|x| x.is_nan()));
    }
    // min > max: max everywhere, as min(max(x, lo), hi)
    assert_eq!(&v.clamp(2.0, 1.0).value().to_vec()[..3], &[1.0, 1.0, 1.0]);
}

#[test]
fn gradients_at_a_nan_follow_pytorchs_backward_formulas() {
    // (op, its gradient at the NaN for an incoming gradient of 1)
    let cases: &[(&str, Unary, Option<f64>)] = &[
        // threshold_backward(grad, result, 0): `result <= 0 ? 0 : grad`, NaN <= 0 is false
        ("relu", |v| v.relu(), Some(1.0)),
        // leaky_relu_backward: `x > 0 ? grad : grad * slope`
        ("leaky_relu", |v| v.leaky_relu(0.1), Some(0.1)),
        // elu_backward: `x <= 0 ? grad * α e^x : grad`
        ("elu", |v| v.elu(1.0), Some(1.0)),
        // clamp_backward: where(min <= x <= max, grad, 0)
        ("clamp", |v| v.clamp(-1.0, 1.0), Some(0.0)),
        // hardtanh_backward's vectorised CPU kernel: `(x > min) & (x < max) & grad`, 0 at a
        // NaN (its scalar tail loop, `x <= min || x >= max ? 0 : grad`, would pass it; the
        // vectorised result is what PyTorch returns for all but a tensor's last few
        // elements)
        ("hardtanh", |v| v.hardtanh(-1.0, 1.0).unwrap(), Some(0.0)),
        ("softsign", |v| v.softsign(), None),
        ("logsigmoid", |v| v.logsigmoid(), None),
        // abs: grad * sgn(x), and sign(NaN) = (0 < a) - (a < 0) = 0
        ("abs", |v| v.abs(), Some(0.0)),
        // smooth maps: the derivative at NaN is NaN
        ("tanh", |v| v.tanh(), None),
        ("sigmoid", |v| v.sigmoid(), None),
        ("softplus", |v| v.softplus(1.0, 20.0), None),
        ("exp", |v| v.exp(), None),
    ];
    for &(name, f, want) in cases {
        for first_order in [true, false] {
            // `backward` takes the fast path where there is one, `grad` the Var rule.
            let p = autograd::Param::new(x());
            let tape = Tape::new();
            let v = tape.param(&p);
            let y = f(v).sum();
            let g = if first_order {
                y.backward().unwrap();
                p.grad().unwrap().to_vec()[1]
            } else {
                tape.grad(y, &[v]).unwrap()[0].value().to_vec()[1]
            };
            match want {
                Some(w) => assert_eq!(g, w, "{name} (backward: {first_order})"),
                None => assert!(g.is_nan(), "{name}: {g}"),
            }
        }
    }
}

#[test]
fn maximum_and_minimum_propagate_nan_and_give_both_sides_the_gradient() {
    let tape = Tape::new();
    let a = tape.var(Tensor::from_vec(vec![NAN, 1.0, 2.0, 3.0], [4]).unwrap());
    let b = tape.var(Tensor::from_vec(vec![0.0, NAN, 2.0, 1.0], [4]).unwrap());
    for (y, name) in [(a.maximum(b), "maximum"), (a.minimum(b), "minimum")] {
        let y = y.unwrap();
        let v = y.value().to_vec();
        assert_eq!(nan_at(&v), [true, true, false, false], "{name}");
        let g = tape.grad(y.sum(), &[a, b]).unwrap();
        // PyTorch: where(a == b, g/2, g).masked_fill_(a loses, 0); NaN neither ties nor
        // loses, so both sides keep g.
        let (ga, gb) = (g[0].value().to_vec(), g[1].value().to_vec());
        assert_eq!((ga[0], gb[0], ga[1], gb[1]), (1.0, 1.0, 1.0, 1.0), "{name}");
        assert_eq!((ga[2], gb[2]), (0.5, 0.5), "{name} tie");
        let (win, lose) = if name == "maximum" {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        assert_eq!((ga[3], gb[3]), (win, lose), "{name}");
    }
}

#[test]
fn reductions_and_normalisations_propagate_nan() {
    let tape = Tape::new();
    let m = tape.constant(Tensor::from_vec(vec![1.0, NAN, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap());
    let rows = |v: Var<'_, f64>| nan_at(&v.value().to_vec());
    assert_eq!(rows(m.sum_axes(&[1], false).unwrap()), [true, false]);
    assert_eq!(rows(m.mean_axes(&[1], false).unwrap()), [true, false]);
    // torch.max / amax propagate NaN
    assert_eq!(rows(m.max_axes(&[1], false).unwrap()), [true, false]);
    assert_eq!(rows(m.min_axes(&[1], false).unwrap()), [true, false]);
    assert_eq!(rows(m.logsumexp(&[1], false).unwrap()), [true, false]);
    assert_eq!(rows(m.var(&[1], 1, false).unwrap()), [true, false]);
    assert!(m.sum().value().item().unwrap().is_nan());
    // a NaN poisons its whole softmax row, and only that row
    for s in [m.softmax(1).unwrap(), m.log_softmax(1).unwrap()] {
        assert_eq!(
            rows(s),
            [true, true, true, false, false, false],
            "softmax/log_softmax"
        );
    }
    let ln = m.layer_norm(1, None, None, 1e-5).unwrap();
    assert_eq!(rows(ln), [true, true, true, false, false, false]);
}

#[test]
fn where_selects_without_arithmetic() {
    // torch.where: the unselected NaN does not leak, the selected one stays
    let tape = Tape::new();
    let a = tape.var(Tensor::from_vec(vec![NAN, NAN], [2]).unwrap());
    let b = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    let cond = Tensor::from_vec(vec![1.0, 0.0], [2]).unwrap();
    let y = a.where_cond(&cond, b).unwrap();
    let v = y.value().to_vec();
    assert!(v[0].is_nan());
    assert_eq!(v[1], 2.0);
    let g = tape.grad(y.sum(), &[a, b]).unwrap();
    assert_eq!(g[0].value().to_vec(), vec![1.0, 0.0]);
    assert_eq!(g[1].value().to_vec(), vec![0.0, 1.0]);
}

#[test]
fn matmul_conv_and_pooling_propagate_nan() {
    let tape = Tape::new();
    let img = Tensor::from_fn([1, 1, 4, 4], |i| if i == 5 { NAN } else { i as f64 }).unwrap();
    let x = tape.constant(img);
    // the NaN at (1, 1) lies in the top-left 2x2 window only
    for y in [
        x.max_pool2d((2, 2), None, (0, 0)).unwrap(),
        x.avg_pool2d((2, 2), None, (0, 0)).unwrap(),
    ] {
        assert_eq!(nan_at(&y.value().to_vec()), [true, false, false, false]);
    }
    let w = tape.constant(Tensor::ones([1, 1, 2, 2]).unwrap());
    let c = x.conv2d(w, None, Conv2dArgs::default()).unwrap();
    // 3x3 outputs; the windows at (0,0), (0,1), (1,0), (1,1) cover (1, 1)
    let want: Vec<bool> = (0..9).map(|k| k / 3 <= 1 && k % 3 <= 1).collect();
    assert_eq!(nan_at(&c.value().to_vec()), want);
    let a = tape.constant(Tensor::from_vec(vec![1.0, NAN, 0.0, 1.0], [2, 2]).unwrap());
    // row 0 of a·I sums NaN·0 and NaN·1: both NaN (0·NaN is NaN, as in any BLAS)
    let p = a.matmul(tape.constant(Tensor::eye(2).unwrap())).unwrap();
    assert_eq!(nan_at(&p.value().to_vec()), [true, true, false, false]);
}

#[test]
fn anomaly_mode_names_the_first_op_that_sees_a_nan_from_the_data() {
    let tape = Tape::new();
    tape.set_anomaly_mode(true);
    let data = tape.constant(x());
    let line = line!() + 1;
    let h = data.relu().mul_scalar(2.0).sum();
    // relu used to turn the NaN into 0, so the anomaly went unseen
    assert!(h.value().item().unwrap().is_nan());
    match tape.check_anomaly() {
        Err(Error::Anomaly { op, location, .. }) => {
            assert_eq!(op, "relu");
            assert_eq!(location.line(), line);
        }
        other => panic!("expected an anomaly at relu, got {other:?}"),
    }
}

#[test]
fn ordering_ops_rank_nan_above_every_number() {
    // torch.sort / topk / argmax / max(dim): NaN compares greater than every number, and
    // max(dim) / min(dim) / argmin return a NaN's position (they propagate it)
    let tape = Tape::new();
    let v = tape.var(Tensor::from_vec(vec![1.5, NAN, -0.5, 0.0], [4]).unwrap());
    let (s, i) = v.sort(0, false).unwrap();
    assert_eq!(nan_at(&s.value().to_vec()), [false, false, false, true]);
    assert_eq!(i, vec![2, 3, 0, 1]);
    let (s, i) = v.sort(0, true).unwrap();
    assert_eq!(nan_at(&s.value().to_vec()), [true, false, false, false]);
    assert_eq!(i, vec![1, 0, 3, 2]);
    let (t, i) = v.topk(2, 0, true).unwrap();
    assert!(t.value().to_vec()[0].is_nan());
    assert_eq!(i, vec![1, 0]);
    let (t, i) = v.topk(2, 0, false).unwrap();
    assert_eq!((t.value().to_vec(), i), (vec![-0.5, 0.0], vec![2, 3]));
    assert_eq!(v.argmax(0).unwrap(), vec![1]);
    assert_eq!(v.argmin(0).unwrap(), vec![1]);
    for (y, i) in [v.max_dim(0, false).unwrap(), v.min_dim(0, false).unwrap()] {
        assert!(y.value().item().unwrap().is_nan());
        assert_eq!(i, vec![1]);
        // the gradient goes to the element whose position is returned
        let g = tape.grad(y, &[v]).unwrap()[0].value().to_vec();
        assert_eq!(g, vec![0.0, 1.0, 0.0, 0.0]);
    }
}

#[test]
fn scans_norms_and_the_new_activations_propagate_nan() {
    let tape = Tape::new();
    let v = tape.constant(Tensor::from_vec(vec![1.5, NAN, -0.5, 0.0], [4]).unwrap());
    let nans = |y: Var<'_, f64>| nan_at(&y.value().to_vec());
    // a running sum or product stays NaN from the NaN on; 0·NaN is NaN
    assert_eq!(nans(v.cumsum(0).unwrap()), [false, true, true, true]);
    assert_eq!(nans(v.cumprod(0).unwrap()), [false, true, true, true]);
    for ord in [1.0, 2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY] {
        // torch.linalg.vector_norm: amax/amin and sums propagate NaN
        assert!(
            nans(v.vector_norm(ord, &[], false).unwrap())[0],
            "ord {ord}"
        );
    }
    // ord 0 counts the nonzero elements, and NaN != 0
    assert_eq!(v.vector_norm(0.0, &[], false).unwrap().item().unwrap(), 3.0);
    let m = tape.constant(Tensor::from_vec(vec![1.0, NAN, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap());
    let rows = [true, true, true, false, false, false];
    // x / max(‖x‖, eps): clamp_min(NaN, eps) is NaN, not eps
    assert_eq!(nans(m.normalize(2.0, 1, 1e-12).unwrap()), rows);
    assert_eq!(nans(m.std(&[1], 1, false).unwrap()), [true, false]);
    let c = m.cosine_similarity(m, 1, 1e-8).unwrap();
    assert_eq!(nans(c), [true, false]);
    // gated, contracted and moved data keep the NaN where it lands
    assert_eq!(
        nans(m.reshape([3, 2]).unwrap().glu(1).unwrap()),
        [true, false, false]
    );
    let e = autograd::Var::einsum("ij,kj->ik", &[m, m]).unwrap();
    assert_eq!(nans(e), [true, true, true, false]);
    assert_eq!(nans(v.flip(&[0]).unwrap()), [false, false, true, false]);
    assert_eq!(
        nans(v.roll(&[1], &[0]).unwrap()),
        [false, false, true, false]
    );
    let p = v.pad(&[1, 1], autograd::ops::PadMode::Reflect).unwrap();
    assert_eq!(nans(p), [true, false, true, false, false, false]);
}

#[test]
fn layer_convolutions_pools_and_resampling_propagate_nan() {
    use autograd::{Conv1dArgs, ConvTranspose1dArgs, MaxPool2dArgs};
    let tape = Tape::new();
    // conv1d over [0, 1, NaN, 3, 4] with a width-2 window: windows 1 and 2 hold the NaN
    let seq = Tensor::from_vec(vec![0.0, 1.0, NAN, 3.0, 4.0], [1, 1, 5]).unwrap();
    let two = tape.constant(Tensor::ones([1, 1, 2]).unwrap());
    let c = tape
        .constant(seq)
        .conv1d(two, None, Conv1dArgs::default())
        .unwrap();
    assert_eq!(nan_at(&c.value().to_vec()), [false, true, true, false]);
    // conv_transpose1d of [1, NaN, 2]: out[j] = x[j] + x[j - 1], so outputs 1 and 2
    let short = tape.constant(Tensor::from_vec(vec![1.0, NAN, 2.0], [1, 1, 3]).unwrap());
    let t = short
        .conv_transpose1d(two, None, ConvTranspose1dArgs::default())
        .unwrap();
    assert_eq!(nan_at(&t.value().to_vec()), [false, true, true, false]);

    let img = Tensor::from_fn([1, 1, 4, 4], |i| if i == 5 { NAN } else { i as f64 }).unwrap();
    let x = tape.constant(img);
    // a 2x2 window dilated by 2 (stride 1): only the window at (1, 1) has a tap on (1, 1);
    // torch.max_pool2d propagates a NaN in its window
    let dilated = MaxPool2dArgs {
        stride: Some((1, 1)),
        dilation: (2, 2),
        ..MaxPool2dArgs::default()
    };
    let m = x.max_pool2d_args((2, 2), dilated).unwrap();
    assert_eq!(nan_at(&m.value().to_vec()), [false, false, false, true]);
    // adaptive pooling to 2x2 averages the four 2x2 blocks
    let a = x.adaptive_avg_pool2d((2, 2)).unwrap();
    assert_eq!(nan_at(&a.value().to_vec()), [true, false, false, false]);
    // nearest upsampling by 2 copies the NaN to the 2x2 block at (2, 2)
    let up = x.upsample_nearest2d((8, 8), None).unwrap().value().to_vec();
    let want: Vec<bool> = (0..64)
        .map(|k| (2..4).contains(&(k / 8)) && (2..4).contains(&(k % 8)))
        .collect();
    assert_eq!(nan_at(&up), want);
    // bilinear: output (2, 2) reads source rows/cols 0 and 1 (a weight times NaN is NaN,
    // as in ATen), output (7, 7) only row/col 3
    let bl = x
        .upsample_bilinear2d((8, 8), false, None)
        .unwrap()
        .value()
        .to_vec();
    assert!(bl[2 * 8 + 2].is_nan());
    assert!(!bl[7 * 8 + 7].is_nan());
}
