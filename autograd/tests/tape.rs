//! Tape behaviour: accumulation into params, higher-order gradients, cutting the graph,
//! the node count and dump, missing backward rules and anomaly mode.

use autograd::{assert_close, BackwardCx, Error, Op, Param, Phase, Result, Tape, Tensor, Var};

fn t(data: &[f64], dims: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), dims).unwrap()
}

#[test]
fn backward_accumulates_into_params_across_calls() {
    let w = Param::new(t(&[1.0, -2.0, 3.0], &[3]));
    let tape = Tape::new();
    let x = tape.param(&w);
    // y = Σ w², so dy/dw = 2w; two backward calls add up to 4w, as in PyTorch
    let y = x.square().sum();
    y.backward().unwrap();
    assert_close!(w.grad().unwrap(), [2.0, -4.0, 6.0]);
    y.backward().unwrap();
    assert_close!(w.grad().unwrap(), [4.0, -8.0, 12.0]);
    // a second tape adds into the same buffer until zero_grad
    let tape2 = Tape::new();
    tape2.param(&w).sum().backward().unwrap();
    assert_close!(w.grad().unwrap(), [5.0, -7.0, 13.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn binding_a_param_twice_gives_one_node_and_one_gradient() {
    let w = Param::new(Tensor::scalar(3.0));
    let tape = Tape::new();
    let (a, b) = (tape.param(&w), tape.param(&w));
    assert_eq!(a.id(), b.id());
    // y = w·w, dy/dw = 2w = 6
    a.mul(b).unwrap().backward().unwrap();
    assert_eq!(w.grad().unwrap().item().unwrap(), 6.0);
}

#[test]
fn backward_with_a_cotangent_weights_the_outputs() {
    let w = Param::new(t(&[1.0, 2.0], &[2]));
    let tape = Tape::new();
    let y = tape.param(&w).exp();
    y.backward_with(t(&[0.5, -1.0], &[2])).unwrap();
    assert_close!(w.grad().unwrap(), [0.5 * 1f64.exp(), -(2f64.exp())]);
}

#[test]
fn second_derivatives_come_from_grad_of_grad() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(0.7));
    // y = x³ sin x: y' = 3x² sin x + x³ cos x, y'' = 6x sin x + 6x² cos x - x³ sin x
    let y = x.powf(3.0).mul(x.sin()).unwrap();
    let d1 = tape.grad(y, &[x]).unwrap()[0];
    let d2 = tape.grad(d1, &[x]).unwrap()[0];
    let d3 = tape.grad(d2, &[x]).unwrap()[0];
    let v = 0.7f64;
    assert_close!(
        d1.item().unwrap(),
        3.0 * v * v * v.sin() + v.powi(3) * v.cos()
    );
    assert_close!(
        d2.item().unwrap(),
        6.0 * v * v.sin() + 6.0 * v * v * v.cos() - v.powi(3) * v.sin()
    );
    // y''' = 6 sin x + 18x cos x - 9x² sin x - x³ cos x
    assert_close!(
        d3.item().unwrap(),
        6.0 * v.sin() + 18.0 * v * v.cos() - 9.0 * v * v * v.sin() - v.powi(3) * v.cos()
    );
}

#[test]
fn hessian_vector_product_by_double_backward() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[0.3, -0.5, 1.2], &[3]));
    let a = tape.constant(t(&[1.0, 2.0, 0.5, 2.0, -1.0, 0.0, 0.5, 0.0, 3.0], &[3, 3]));
    // f(x) = ½ xᵀAx + Σ x⁴/4 (A symmetric): ∇f = Ax + x³, H = A + diag(3x²)
    let ax = a
        .matmul(x.reshape([3, 1]).unwrap())
        .unwrap()
        .reshape([3])
        .unwrap();
    let f = x
        .mul(ax)
        .unwrap()
        .sum()
        .mul_scalar(0.5)
        .add(x.powf(4.0).sum().mul_scalar(0.25))
        .unwrap();
    let g = tape.grad(f, &[x]).unwrap()[0];
    let v = tape.constant(t(&[1.0, -1.0, 2.0], &[3]));
    let hv = tape.grad(g.mul(v).unwrap().sum(), &[x]).unwrap()[0];
    let xs = [0.3f64, -0.5, 1.2];
    let vs = [1.0, -1.0, 2.0];
    let am = [[1.0, 2.0, 0.5], [2.0, -1.0, 0.0], [0.5, 0.0, 3.0]];
    let want: Vec<f64> = (0..3)
        .map(|i| (0..3).map(|j| am[i][j] * vs[j]).sum::<f64>() + 3.0 * xs[i] * xs[i] * vs[i])
        .collect();
    assert_close!(hv, want);
}

#[test]
fn gradient_penalty_backpropagates_through_a_gradient() {
    // loss = ‖∂(w·x²)/∂x‖² = ‖2wx‖² = 4w²Σx², so dloss/dw = 8wΣx²
    let w = Param::new(Tensor::scalar(1.5));
    let tape = Tape::new();
    let x = tape.var(t(&[0.5, -1.0], &[2]));
    let wv = tape.param(&w);
    let y = x.square().mul(wv).unwrap().sum();
    let gx = tape.grad(y, &[x]).unwrap()[0];
    let penalty = gx.square().sum();
    penalty.backward().unwrap();
    assert_close!(w.grad().unwrap().item().unwrap(), 8.0 * 1.5 * 1.25);
}

#[test]
fn detach_no_grad_and_constants_record_no_gradient_path() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[1.0, 2.0], &[2]));
    let c = tape.constant(t(&[3.0, 4.0], &[2]));
    assert!(x.requires_grad());
    assert!(!c.requires_grad());
    assert!(!x.detach().requires_grad());
    assert!(!tape.no_grad(|| x.exp()).requires_grad());
    assert!(tape.is_grad_enabled());
    assert!(!x.add(c).unwrap().detach().requires_grad());
    // y = x·detach(x) + no_grad(x²) + c: only the first factor carries a gradient, dy/dx = x
    let y = x
        .mul(x.detach())
        .unwrap()
        .add(tape.no_grad(|| x.square()))
        .unwrap()
        .add(c)
        .unwrap()
        .sum();
    assert_close!(tape.grad(y, &[x]).unwrap()[0], [1.0, 2.0]);
    // a constant input gets a zero gradient, and a param through detach gets none
    let w = Param::new(Tensor::scalar(2.0));
    let wv = tape.param(&w);
    let z = wv.detach().mul(x).unwrap().sum();
    assert_close!(tape.grad(z, &[c]).unwrap()[0], [0.0, 0.0]);
    z.backward().unwrap();
    assert!(w.grad().is_none());
}

#[test]
fn no_grad_restores_recording_after_a_panic() {
    let tape = Tape::<f64>::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tape.no_grad(|| panic!("boom"))
    }));
    assert!(r.is_err());
    assert!(tape.is_grad_enabled());
}

#[test]
fn len_and_display_list_every_node_with_its_line() {
    let tape = Tape::<f64>::new();
    assert!(tape.is_empty());
    let w = Param::named("w", t(&[1.0, 2.0], &[2]));
    let x = tape.var(t(&[3.0, 4.0], &[2]));
    let line = line!() + 1;
    let y = x.mul(tape.param(&w)).unwrap().exp().sum();
    assert_eq!(tape.len(), 5); // var, param, mul, exp, sum
    let dump = tape.to_string();
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 5, "{dump}");
    assert!(
        lines[0].starts_with("#0") && lines[0].contains("var"),
        "{dump}"
    );
    assert!(
        lines[1].contains("param") && lines[1].contains('w'),
        "{dump}"
    );
    assert!(
        lines[2].contains("mul") && lines[2].contains("<- #0, #1"),
        "{dump}"
    );
    assert!(
        lines[3].contains("exp") && lines[3].contains("<- #2"),
        "{dump}"
    );
    assert!(
        lines[4].contains("sum") && lines[4].contains("[]"),
        "{dump}"
    );
    let here = format!("{}:{line}:", file!());
    assert!(lines[2].contains(&here), "expected {here} in {dump}");
    assert!(format!("{tape:?}").starts_with("Tape(5 nodes)"));
    let _ = y;
}

#[test]
fn backward_drops_its_scratch_nodes() {
    let w = Param::new(t(&[0.5, -0.25, 2.0], &[3]));
    let tape = Tape::new();
    let y = tape
        .param(&w)
        .tanh()
        .mul_scalar(3.0)
        .softmax(0)
        .unwrap()
        .square()
        .sum();
    let before = tape.len();
    y.backward().unwrap();
    assert_eq!(tape.len(), before);
    y.backward().unwrap();
    assert_eq!(tape.len(), before);
    // grad keeps its nodes (they may be differentiated again)
    let x = tape.var(Tensor::scalar(1.0));
    let n = tape.len();
    let g = tape.grad(x.exp(), &[x]).unwrap()[0];
    assert!(tape.len() > n + 1);
    assert_eq!(g.item().unwrap(), 1f64.exp());
}

#[test]
fn reset_forgets_every_node() {
    let mut tape = Tape::<f64>::new();
    {
        let x = tape.var(Tensor::scalar(1.0));
        let _ = x.exp();
    }
    tape.reset();
    assert!(tape.is_empty());
}

/// An op with a forward but no backward rule.
#[derive(Debug)]
struct Opaque;
impl Op<f64> for Opaque {
    fn name(&self) -> &'static str {
        "opaque"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v.round()))
    }
}

#[test]
fn an_op_without_a_backward_rule_fails_backward_naming_it() {
    let w = Param::new(t(&[1.4, 2.6], &[2]));
    let tape = Tape::new();
    let line = line!() + 1;
    let y = tape.apply(Opaque, &[tape.param(&w)]).unwrap();
    assert_eq!(y.value().to_vec(), vec![1.0, 3.0]);
    let len = tape.len();
    let loss = y.sum();
    let err = loss.backward().unwrap_err();
    match &err {
        Error::NoBackward { op, location } => {
            assert_eq!(*op, "opaque");
            assert_eq!((location.file(), location.line()), (file!(), line));
        }
        e => panic!("expected NoBackward, got {e}"),
    }
    assert!(
        err.to_string().starts_with("opaque: has no backward rule"),
        "{err}"
    );
    assert!(w.grad().is_none());
    assert_eq!(
        tape.len(),
        len + 1,
        "the failed backward leaves no scratch nodes"
    );
    assert!(matches!(
        tape.grad(loss, &[tape.param(&w)]),
        Err(Error::NoBackward { op: "opaque", .. })
    ));
    // without a path through it, the op does not matter
    let z = tape.param(&w).add(y.detach()).unwrap().sum();
    z.backward().unwrap();
    assert_close!(w.grad().unwrap(), [1.0, 1.0]);
}

#[test]
fn anomaly_mode_names_the_forward_op_and_its_line() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_mode(true);
    let x = tape.var(t(&[1.0, -1.0], &[2]));
    let line = line!() + 1;
    let y = x.ln(); // ln(-1) = NaN
    let err = tape.check_anomaly().unwrap_err();
    let check = |err: &Error| match err {
        Error::Anomaly {
            op,
            phase,
            index,
            shape,
            location,
        } => {
            assert_eq!(*op, "ln");
            assert_eq!(*phase, Phase::Forward);
            assert_eq!(*index, 1);
            assert_eq!(shape.dims(), &[2]);
            assert_eq!((location.file(), location.line()), (file!(), line));
        }
        e => panic!("expected Anomaly, got {e}"),
    };
    check(&err);
    assert!(
        err.to_string().contains(&format!("{}:{line}", file!())),
        "{err}"
    );
    // later ops still compute; backward and grad report the same anomaly
    let _ = y.add(x).unwrap();
    check(&y.sum().backward().unwrap_err());
    check(&tape.grad(y.sum(), &[x]).unwrap_err());
}

#[test]
fn anomaly_mode_names_the_backward_rule_that_made_an_infinity() {
    let w = Param::new(t(&[4.0, 0.0], &[2]));
    let tape = Tape::new();
    tape.set_anomaly_mode(true);
    let line = line!() + 1;
    let y = tape.param(&w).sqrt().sum(); // sqrt(0) is finite, its derivative is not
    tape.check_anomaly().unwrap();
    let err = y.backward().unwrap_err();
    match &err {
        Error::Anomaly {
            op,
            phase,
            index,
            location,
            ..
        } => {
            assert_eq!(*op, "sqrt");
            assert_eq!(*phase, Phase::Backward);
            assert_eq!(*index, 1);
            assert_eq!((location.file(), location.line()), (file!(), line));
        }
        e => panic!("expected Anomaly, got {e}"),
    }
    assert!(
        err.to_string()
            .contains("backward produced a non-finite value"),
        "{err}"
    );
    assert!(w.grad().is_none());
}

#[test]
fn without_anomaly_mode_non_finite_values_pass_silently() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[0.0], &[1]));
    let g = tape.grad(x.sqrt().sum(), &[x]).unwrap()[0];
    assert!(g.value().as_slice()[0].is_infinite());
}

#[test]
fn grad_of_an_unrelated_input_is_zero() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[1.0, 2.0], &[2]));
    let y = tape.var(t(&[3.0], &[1]));
    let g = tape.grad(x.exp().sum(), &[y, x]).unwrap();
    assert_close!(g[0], [0.0]);
    assert_close!(g[1], [1f64.exp(), 2f64.exp()]);
}

#[test]
fn a_var_used_twice_gets_both_contributions() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[2.0, -3.0], &[2]));
    // y = Σ x·x + x, dy/dx = 2x + 1
    let y = x.mul(x).unwrap().add(x).unwrap().sum();
    assert_close!(tape.grad(y, &[x]).unwrap()[0], [5.0, -5.0]);
}

#[test]
fn custom_ops_run_through_backward_and_grad() {
    #[derive(Debug)]
    struct Twice;
    impl Op<f64> for Twice {
        fn name(&self) -> &'static str {
            "twice"
        }
        fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0].map(|v| 2.0 * v))
        }
        fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
            Ok(vec![Some(cx.grad().mul_scalar(2.0))])
        }
    }
    let w = Param::new(Tensor::scalar(1.0));
    let tape = Tape::new();
    let y = tape.apply(Twice, &[tape.param(&w)]).unwrap().square();
    y.backward().unwrap();
    // y = (2w)², dy/dw = 8w
    assert_eq!(w.grad().unwrap().item().unwrap(), 8.0);
}
