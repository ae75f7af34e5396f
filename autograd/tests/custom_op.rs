//! A differentiable op defined outside the crate through the public `Op` trait, checked to
//! first and second order, and a deliberately wrong rule that gradcheck must catch and
//! blame on the right op and line.

use autograd::gradcheck::func;
use autograd::{
    gradcheck, gradgradcheck, BackwardCx, Error, GradcheckOptions, Op, Result, Tape, Tensor, Var,
};

/// `y = x·sin x`, fused: `dy/dx = sin x + x cos x`, written with `Var` ops so it can be
/// differentiated again (`d²y/dx² = 2 cos x - x sin x`).
#[derive(Debug)]
struct XSinX;

impl Op<f64> for XSinX {
    fn name(&self) -> &'static str {
        "x_sin_x"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v * v.sin()))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        let x = cx.input(0);
        let d = x.sin().add(x.mul(x.cos())?)?;
        Ok(vec![Some(cx.grad().mul(d)?)])
    }
}

/// `y = x³` with a wrong rule: `2x²` instead of `3x²`.
#[derive(Debug)]
struct BadCube;

impl Op<f64> for BadCube {
    fn name(&self) -> &'static str {
        "bad_cube"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v * v * v))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(
            cx.grad().mul(cx.input(0).square().mul_scalar(2.0))?,
        )])
    }
}

fn inputs() -> Vec<Tensor<f64>> {
    vec![Tensor::from_vec(vec![0.3, -1.2, 2.0, 0.7, -0.4, 1.5], [2, 3]).unwrap()]
}

#[test]
fn custom_op_forward_matches_its_formula() {
    let tape = Tape::<f64>::new();
    let x = tape.var(inputs()[0].clone());
    let y = tape.apply(XSinX, &[x]).unwrap();
    autograd::assert_close!(y, inputs()[0].map(|v| v * v.sin()));
    let dy = tape.grad(y.sum(), &[x]).unwrap()[0];
    autograd::assert_close!(dy, inputs()[0].map(|v| v.sin() + v * v.cos()));
}

#[test]
fn custom_op_passes_gradcheck_and_gradgradcheck() {
    let f = func(|v| Ok(v[0].tape().apply(XSinX, &[v[0]])?.mul_scalar(2.0)));
    gradcheck(f, &inputs(), &GradcheckOptions::default()).unwrap();
    gradgradcheck(f, &inputs(), &GradcheckOptions::default()).unwrap();
    // composed with built-ins, and in fast mode
    let g = func(|v| v[0].tape().apply(XSinX, &[v[0].tanh()])?.mul(v[0]));
    let fast = GradcheckOptions {
        fast: true,
        ..GradcheckOptions::default()
    };
    gradcheck(g, &inputs(), &fast).unwrap();
    gradgradcheck(g, &inputs(), &fast).unwrap();
}

#[test]
fn a_wrong_backward_rule_fails_gradcheck_and_is_blamed() {
    let line = line!() + 1;
    let f = func(|v| Ok(v[0].tape().apply(BadCube, &[v[0].mul_scalar(0.5)])?.sum()));
    let err = gradcheck(f, &inputs(), &GradcheckOptions::default()).unwrap_err();
    let Error::Gradcheck(report) = &err else {
        panic!("expected Error::Gradcheck, got {err}")
    };
    println!("{report}");
    assert_eq!(report.order, 1);
    assert_eq!(report.input, 0);
    assert_eq!(report.input_shape.dims(), &[2, 3]);
    // y = Σ (x/2)³: true dy/dx = 3x²/8, the rule gives 2x²/8; the worst is the largest |x| = 2
    assert_eq!(report.element, vec![0, 2]);
    assert_eq!(report.output_index, Some(0));
    assert!(
        (report.numerical - 1.5).abs() < 1e-6,
        "{}",
        report.numerical
    );
    assert!(
        (report.analytical - 1.0).abs() < 1e-12,
        "{}",
        report.analytical
    );
    let (out_op, _) = report.output_op.expect("output op");
    assert_eq!(out_op, "sum");
    let blame = report.blame.as_ref().expect("the wrong rule is blamed");
    assert_eq!(blame.op, "bad_cube");
    assert_eq!(
        (blame.location.file(), blame.location.line()),
        (file!(), line)
    );
    assert_eq!(blame.input, 0);
    // the report's text names all of it
    let text = err.to_string();
    assert!(text.contains("input 0 (shape [2, 3])"), "{text}");
    assert!(text.contains("worst entry: input element [0, 2]"), "{text}");
    assert!(text.contains("numerical 1.5000000"), "{text}");
    assert!(text.contains("analytical 1.0000000"), "{text}");
    assert!(
        text.contains(&format!(
            "culprit: `bad_cube` recorded at {}:{line}:",
            file!()
        )),
        "{text}"
    );
}

#[test]
fn a_wrong_rule_is_caught_in_fast_mode_and_confirmed_elementwise() {
    let line = line!() + 1;
    let f = func(|v| v[0].tape().apply(BadCube, &[v[0]])?.mul(v[0].exp()));
    let fast = GradcheckOptions {
        fast: true,
        ..GradcheckOptions::default()
    };
    let err = gradcheck(f, &inputs(), &fast).unwrap_err();
    let Error::Gradcheck(report) = &err else {
        panic!("expected Error::Gradcheck, got {err}")
    };
    assert!(
        !report.projection_only,
        "the slow re-check names an element: {report}"
    );
    assert_eq!(report.element.len(), 2);
    let blame = report.blame.as_ref().expect("blamed");
    assert_eq!((blame.op, blame.location.line()), ("bad_cube", line));
}

/// `y = x³` with a rule that is right to first order but cuts the graph: `3·detach(x)²`
/// has the right value and no derivative with respect to `x`.
#[derive(Debug)]
struct DetachedCube;

impl Op<f64> for DetachedCube {
    fn name(&self) -> &'static str {
        "detached_cube"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v * v * v))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        let d = cx.input(0).detach().square().mul_scalar(3.0);
        Ok(vec![Some(cx.grad().mul(d)?)])
    }
}

#[test]
fn a_rule_that_is_not_differentiable_fails_only_gradgradcheck() {
    let f = func(|v| Ok(v[0].tape().apply(DetachedCube, &[v[0]])?.sum()));
    gradcheck(f, &inputs(), &GradcheckOptions::default()).unwrap();
    let err = gradgradcheck(f, &inputs(), &GradcheckOptions::default()).unwrap_err();
    let Error::Gradcheck(report) = &err else {
        panic!("expected Error::Gradcheck, got {err}")
    };
    assert_eq!(report.order, 2);
    // d²y/dx² = 6x, the detached rule gives 0: the worst is x = 2 (analytical 0, numerical 12·u)
    assert_eq!(report.element, vec![0, 2]);
    assert_eq!(report.analytical, 0.0);
    assert!(err.to_string().starts_with("gradgradcheck"), "{err}");
    // Every primitive inside the rule is right on its own; the op is named all the same
    // (it was "no single op fails a local check"), by a local check of its rule's derivative.
    let blame = report.blame.as_ref().expect("the detached rule is blamed");
    assert_eq!(blame.op, "detached_cube");
    assert_eq!(blame.rule, autograd::report::Rule::SecondOrder);
    assert_eq!(blame.analytical, 0.0);
    assert!(
        err.to_string()
            .contains("culprit: `detached_cube` recorded at"),
        "{err}"
    );
}

/// `y = x·sin x` with a correct rule and a fast path (what `Var::backward` runs) that is
/// 1 % off: the kind of drift a second copy of a rule invites.
#[derive(Debug)]
struct DriftingFastPath;

impl Op<f64> for DriftingFastPath {
    fn name(&self) -> &'static str {
        "drifting_fast_path"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        XSinX.forward(x)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        XSinX.backward(cx)
    }
    fn backward_values(
        &self,
        x: &[&Tensor<f64>],
        _y: &Tensor<f64>,
        g: &Tensor<f64>,
        _needs: &[bool],
    ) -> Option<autograd::ValueGrads<f64>> {
        let d = x[0].map(|v| 1.01 * (v.sin() + v * v.cos()));
        Some(smallvec::smallvec![Some(g.mul(&d).ok()?)])
    }
}

#[test]
fn a_fast_path_one_percent_off_fails_every_check_and_is_blamed() {
    use autograd::report::{Rule, Sweep};
    use autograd::testing::{check_gradients, check_gradients_with};
    let line = line!() + 1;
    let f = func(|v| Ok(v[0].tape().apply(DriftingFastPath, &[v[0]])?.sum()));
    for fast in [false, true] {
        let opts = GradcheckOptions {
            fast,
            ..GradcheckOptions::default()
        };
        let err = gradcheck(f, &inputs(), &opts).unwrap_err();
        let Error::Gradcheck(report) = &err else {
            panic!("expected Error::Gradcheck, got {err}")
        };
        // Tape::grad (the rule) is right; Var::backward (the fast path) is not.
        assert_eq!(report.sweep, Sweep::Backward, "{err}");
        let blame = report.blame.as_ref().expect("blamed");
        assert_eq!(
            (blame.op, blame.rule, blame.location.line()),
            ("drifting_fast_path", Rule::BackwardValues, line)
        );
        assert!(err.to_string().contains("Var::backward"), "{err}");
        assert!(
            err.to_string()
                .contains("its backward_values fast path gives"),
            "{err}"
        );
        assert!(check_gradients_with(f, &inputs(), &opts).is_err());
    }
    assert!(check_gradients(f, &inputs()).is_err());
    // the rule itself is right, to second order too
    gradgradcheck(f, &inputs(), &GradcheckOptions::default()).unwrap();
}

/// `y = sin x` elementwise whose rule is 25 % off at one flat position only: a single wrong
/// Jacobian entry among many right ones.
#[derive(Debug)]
struct OneWrongEntry(usize);

impl Op<f64> for OneWrongEntry {
    fn name(&self) -> &'static str {
        "one_wrong_entry"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(f64::sin))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        let x = cx.input(0);
        let scale = Tensor::from_fn(x.shape(), |i| if i == self.0 { 1.25 } else { 1.0 })?;
        let d = x.cos().mul(x.tape().constant(scale))?;
        Ok(vec![Some(cx.grad().mul(d)?)])
    }
}

#[test]
fn fast_mode_catches_a_single_wrong_jacobian_entry_at_every_position() {
    use autograd::testing::{check_gradients, FAST_MODE_NUMEL};
    // 100 elements, over FAST_MODE_NUMEL: check_gradients runs in fast mode. One random
    // Gaussian projection missed a 25 % error at 15 of these 100 positions.
    let n = 100;
    assert!(n > FAST_MODE_NUMEL);
    let x = Tensor::from_fn([n], |i| -1.2 + 0.024 * i as f64).unwrap(); // cos x in [0.36, 1]
    for p in 0..n {
        // a scalar output (Σ sin x, a gradient row) and a vector one (a diagonal Jacobian)
        let row = func(move |v| Ok(v[0].tape().apply(OneWrongEntry(p), &[v[0]])?.sum()));
        let diag = func(move |v| v[0].tape().apply(OneWrongEntry(p), &[v[0]]));
        for (what, err) in [
            ("row", check_gradients(row, std::slice::from_ref(&x))),
            ("diagonal", check_gradients(diag, std::slice::from_ref(&x))),
        ] {
            let err = err.expect_err(&format!("{what}: a wrong entry at {p} went unnoticed"));
            let msg = err.to_string();
            // says how it checked, and the full re-check names the entry
            assert!(
                msg.contains("fast mode, 4 random projections per input"),
                "{msg}"
            );
            assert!(
                msg.contains(&format!("worst entry: input element [{p}]")),
                "{msg}"
            );
        }
    }
}

/// `y = 2x` whose rule returns its gradient recorded on another tape (a leaked one, so the
/// lifetimes fit): `extra` nodes are recorded there first, so the gradient's id is either
/// an unrelated node of the op's own tape or past its end.
#[derive(Debug)]
struct ForeignGrad {
    extra: usize,
}

impl Op<f64> for ForeignGrad {
    fn name(&self) -> &'static str {
        "foreign_grad"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| 2.0 * v))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        let other: &'static Tape<f64> = Box::leak(Box::new(Tape::new()));
        for _ in 0..self.extra {
            other.constant(Tensor::scalar(0.0));
        }
        let g = other.constant(cx.grad().value().map(|v| 2.0 * v));
        Ok(vec![Some(g)])
    }
}

#[test]
fn a_rule_returning_a_gradient_from_another_tape_is_an_error_on_both_paths() {
    // extra = 0: the foreign gradient's id (0) is the input's own node on this tape, which
    // was silently used as the gradient; extra = 50: past this tape's end (an index panic).
    for extra in [0, 50] {
        let p = autograd::Param::new(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
        let tape = Tape::new();
        let x = tape.param(&p);
        let line = line!() + 1;
        let y = tape.apply(ForeignGrad { extra }, &[x]).unwrap().sum();
        for e in [y.backward().unwrap_err(), tape.grad(y, &[x]).unwrap_err()] {
            match &e {
                Error::BadBackward {
                    op,
                    reason,
                    location,
                } => {
                    assert_eq!(*op, "foreign_grad");
                    assert!(reason.contains("another tape"), "{e}");
                    assert_eq!(location.line(), line, "{e}");
                }
                other => panic!("expected BadBackward, got {other}"),
            }
        }
        assert!(p.grad().is_none(), "nothing was accumulated");
    }
}
