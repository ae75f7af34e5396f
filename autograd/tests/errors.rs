//! Every `Error` variant, produced on purpose: its fields, its message, and the location
//! pointing at the line of this file that made the failing call.

use autograd::gradcheck::func;
use autograd::{gradcheck, BackwardCx, Error, GradcheckOptions, Op, Result, Tape, Tensor, Var};

fn t(data: &[f64], dims: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), dims).unwrap()
}

/// Asserts the error points at `line` of this file, and its message ends with that location.
fn points_here(e: &Error, line: u32) {
    let loc = e.location().unwrap_or_else(|| panic!("no location in {e}"));
    assert_eq!((loc.file(), loc.line()), (file!(), line), "{e}");
    assert!(
        e.to_string().contains(&format!("{}:{line}:", file!())),
        "{e}"
    );
    // Debug forwards to Display
    assert_eq!(format!("{e:?}"), e.to_string());
}

#[test]
fn broadcast() {
    let tape = Tape::<f64>::new();
    let (a, b) = (
        tape.var(Tensor::zeros([2, 3]).unwrap()),
        tape.var(Tensor::zeros([4]).unwrap()),
    );
    let line = line!() + 1;
    let e = a.add(b).unwrap_err();
    assert!(
        matches!(&e, Error::Broadcast { op: "add", lhs, rhs, .. } if lhs.dims() == [2, 3] && rhs.dims() == [4]),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("add: shapes [2, 3] and [4] do not broadcast (at "),
        "{e}"
    );
    points_here(&e, line);
}

#[test]
#[should_panic(expected = "mul: shapes [2] and [3] do not broadcast")]
fn operator_sugar_panics_with_the_same_message() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(Tensor::zeros([2]).unwrap()) * tape.var(Tensor::zeros([3]).unwrap());
}

#[test]
fn shape_mismatch() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]).unwrap());
    let line = line!() + 1;
    let e = a.reshape([7]).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "reshape", .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("reshape: expected shape [7], got [2, 3]"),
        "{e}"
    );
    points_here(&e, line);

    let line = line!() + 1;
    let e = Var::concat(&[a, tape.var(Tensor::zeros([3, 2]).unwrap())], 0).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "concat", .. }),
        "{e}"
    );
    points_here(&e, line);

    let line = line!() + 1;
    let e = Tensor::from_vec(vec![1.0f64, 2.0], [3]).unwrap_err();
    points_here(&e, line);

    let y = a.sum();
    let line = line!() + 1;
    let e = y.backward_with(Tensor::zeros([2]).unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "backward", .. }),
        "{e}"
    );
    points_here(&e, line);

    let c = tape.constant(Tensor::zeros([3]).unwrap());
    let line = line!() + 1;
    let e = tape.vjp(a, c, &[a]).unwrap_err();
    assert!(matches!(&e, Error::ShapeMismatch { op: "vjp", .. }), "{e}");
    points_here(&e, line);
}

#[test]
fn matmul() {
    let tape = Tape::<f64>::new();
    let (a, b) = (
        tape.var(Tensor::zeros([2, 3]).unwrap()),
        tape.var(Tensor::zeros([2, 3]).unwrap()),
    );
    let line = line!() + 1;
    let e = a.matmul(b).unwrap_err();
    assert!(matches!(&e, Error::Matmul { op: "matmul", .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("matmul: cannot multiply shapes [2, 3] and [2, 3]"),
        "{e}"
    );
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.matmul(tape.var(Tensor::zeros([3]).unwrap())).unwrap_err();
    assert!(matches!(&e, Error::Matmul { .. }), "{e}");
    points_here(&e, line);
    // batch dimensions that do not broadcast
    let (c, d) = (
        tape.var(Tensor::zeros([2, 2, 3]).unwrap()),
        tape.var(Tensor::zeros([3, 3, 2]).unwrap()),
    );
    let line = line!() + 1;
    let e = c.matmul(d).unwrap_err();
    assert!(matches!(&e, Error::Broadcast { op: "matmul", .. }), "{e}");
    points_here(&e, line);
}

#[test]
fn axis() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]).unwrap());
    let line = line!() + 1;
    let e = a.sum_axes(&[2], false).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Axis {
                op: "sum",
                axis: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("sum: axis 2 is out of range for a tensor of shape [2, 3]"),
        "{e}"
    );
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.softmax(-3).unwrap_err();
    assert!(matches!(&e, Error::Axis { axis: -3, .. }), "{e}");
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.mean_axes(&[0, -2], true).unwrap_err();
    assert!(matches!(&e, Error::Axis { .. }), "{e}");
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.unsqueeze(3).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Axis {
                op: "unsqueeze",
                ..
            }
        ),
        "{e}"
    );
    points_here(&e, line);
}

#[test]
fn invalid_argument() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]).unwrap());
    let line = line!() + 1;
    let e = a.narrow(1, 2, 2).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { op: "narrow", .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("narrow: range 2..4 exceeds axis 1 of size 3 (shape [2, 3], at "),
        "{e}"
    );
    points_here(&e, line);

    let line = line!() + 1;
    let e = a.slice(0, 0, None, 0).unwrap_err();
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.index_select(0, &[2]).unwrap_err();
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.gather(1, &[0, 3], [2, 1]).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { op: "gather", .. }),
        "{e}"
    );
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.permute(&[0, 0]).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { op: "permute", .. }),
        "{e}"
    );
    points_here(&e, line);

    let img = tape.var(Tensor::zeros([1, 1, 2, 2]).unwrap());
    let line = line!() + 1;
    let e = img.max_pool2d((3, 3), None, (0, 0)).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::InvalidArgument {
                op: "max_pool2d",
                ..
            }
        ),
        "{e}"
    );
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.avg_pool2d((1, 1), None, (0, 0)).unwrap_err();
    points_here(&e, line);
    let w = tape.var(Tensor::zeros([1, 1, 3, 3]).unwrap());
    let args = autograd::Conv2dArgs::default();
    let line = line!() + 1;
    let e = img.conv2d(w, None, args).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { op: "conv2d", .. }),
        "{e}"
    );
    points_here(&e, line);
    let line = line!() + 1;
    let e = a.item().unwrap_err();
    points_here(&e, line);
}

#[derive(Debug)]
struct NoRule;
impl Op<f64> for NoRule {
    fn name(&self) -> &'static str {
        "no_rule"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].clone())
    }
}

#[test]
fn no_backward() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[1.0], &[1]));
    let line = line!() + 1;
    let y = tape.apply(NoRule, &[x]).unwrap();
    let e = tape.grad(y.sum(), &[x]).unwrap_err();
    assert!(matches!(&e, Error::NoBackward { op: "no_rule", .. }), "{e}");
    assert!(
        e.to_string().starts_with(
            "no_rule: has no backward rule, so no gradient can flow through it (recorded at "
        ),
        "{e}"
    );
    points_here(&e, line);
}

/// Returns a gradient of the wrong shape (`shape = true`) or the wrong number of them.
#[derive(Debug)]
struct Broken {
    shape: bool,
}
impl Op<f64> for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].clone())
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
        if self.shape {
            Ok(vec![Some(cx.grad().sum())])
        } else {
            Ok(vec![Some(cx.grad()), None])
        }
    }
}

#[test]
fn bad_backward() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&[1.0, 2.0], &[2]));
    let line = line!() + 1;
    let y = tape.apply(Broken { shape: true }, &[x]).unwrap();
    let e = tape.grad(y.sum(), &[x]).unwrap_err();
    assert!(matches!(&e, Error::BadBackward { op: "broken", .. }), "{e}");
    assert!(e.to_string().starts_with("broken: backward rule returned a gradient of shape [] for an input of shape [2] (recorded at "), "{e}");
    points_here(&e, line);

    let line = line!() + 1;
    let y = tape.apply(Broken { shape: false }, &[x]).unwrap();
    let e = y.sum().backward().unwrap_err();
    assert!(
        e.to_string()
            .starts_with("broken: backward rule returned 2 gradients for 1 inputs"),
        "{e}"
    );
    points_here(&e, line);
}

#[test]
fn not_scalar() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros([2]).unwrap());
    let y = x.exp();
    let line = line!() + 1;
    let e = y.backward().unwrap_err();
    assert!(matches!(&e, Error::NotScalar { op: "backward", .. }), "{e}");
    assert!(e.to_string().starts_with("backward: the output has shape [2]; gradients can be implicitly seeded only for a one-element output"), "{e}");
    points_here(&e, line);
    let line = line!() + 1;
    let e = tape.grad(y, &[x]).unwrap_err();
    assert!(matches!(&e, Error::NotScalar { op: "grad", .. }), "{e}");
    points_here(&e, line);
}

#[test]
fn foreign_var() {
    let (ta, tb) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a = ta.var(Tensor::zeros([2]).unwrap());
    let b = tb.var(Tensor::zeros([2]).unwrap());
    let line = line!() + 1;
    let e = a.add(b).unwrap_err();
    assert!(matches!(&e, Error::ForeignVar { op: "add", .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("add: an operand belongs to another tape (at "),
        "{e}"
    );
    points_here(&e, line);
    let line = line!() + 1;
    let e = Var::concat(&[a, b], 0).unwrap_err();
    points_here(&e, line);
    // grad on tape B of a var of tape A, with tape B holding fewer nodes than A's id
    let _ = (
        ta.var(Tensor::zeros([1]).unwrap()),
        ta.var(Tensor::zeros([1]).unwrap()),
    );
    let big = ta.var(Tensor::zeros([1]).unwrap()).sum();
    let line = line!() + 1;
    let e = tb.grad(big, &[b]).unwrap_err();
    assert!(matches!(&e, Error::ForeignVar { op: "grad", .. }), "{e}");
    points_here(&e, line);
    let line = line!() + 1;
    let e = tb.grad(b.sum(), &[a]).unwrap_err();
    points_here(&e, line);
    let line = line!() + 1;
    let e = tb.apply(NoRule, &[a]).unwrap_err();
    points_here(&e, line);
}

#[test]
fn anomaly() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_mode(true);
    let x = tape.var(t(&[1.0, 0.0], &[2]));
    let line = line!() + 1;
    let y = x.recip(); // 1/0 = inf
    let e = y.sum().backward().unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Anomaly {
                op: "recip",
                index: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("recip: forward produced a non-finite value (NaN or inf) at element 1 of a tensor of shape [2] (op recorded at "), "{e}");
    points_here(&e, line);
    // apply reports its own op's anomaly right away
    let tape = Tape::<f64>::new();
    tape.set_anomaly_mode(true);
    #[derive(Debug)]
    struct Nan;
    impl Op<f64> for Nan {
        fn name(&self) -> &'static str {
            "nan"
        }
        fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0].map(|_| f64::NAN))
        }
    }
    let x = tape.var(t(&[1.0], &[1]));
    let line = line!() + 1;
    let e = tape.apply(Nan, &[x]).unwrap_err();
    assert!(matches!(&e, Error::Anomaly { op: "nan", .. }), "{e}");
    points_here(&e, line);
}

#[test]
fn gradcheck_failure() {
    #[derive(Debug)]
    struct Wrong;
    impl Op<f64> for Wrong {
        fn name(&self) -> &'static str {
            "wrong"
        }
        fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0].map(f64::exp))
        }
        fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
            Ok(vec![Some(cx.grad())]) // should be g·eˣ
        }
    }
    let line = line!() + 1;
    let f = func(|v| v[0].tape().apply(Wrong, &[v[0]]));
    let e = gradcheck(f, &[t(&[1.0, 0.5], &[2])], &GradcheckOptions::default()).unwrap_err();
    let Error::Gradcheck(r) = &e else {
        panic!("expected Gradcheck, got {e}")
    };
    assert!(e.location().is_none());
    assert!(
        e.to_string().starts_with(
            "gradcheck (full Jacobian): the Jacobian of the output with respect to input 0 (shape [2]) is wrong"
        ),
        "{e}"
    );
    assert_eq!(r.element, vec![0]);
    let b = r.blame.as_ref().unwrap();
    assert_eq!(
        (b.op, b.location.file(), b.location.line()),
        ("wrong", file!(), line)
    );
    assert!(
        e.to_string().contains(&format!(
            "output produced by `wrong` at {}:{line}:",
            file!()
        )),
        "{e}"
    );
}

/// A composite op reports the call the user made, not the primitive inside it that failed
/// (`softmax(x, 5)` said "max: axis 5 ...", `stack` said "unsqueeze"), with the user's
/// line.
#[test]
fn composite_ops_name_themselves() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]).unwrap());
    let b = tape.var(Tensor::zeros([3, 2]).unwrap());
    let expect = |e: Error, op: &str, line: u32| {
        let named = match &e {
            Error::Axis { op: o, .. }
            | Error::ShapeMismatch { op: o, .. }
            | Error::Broadcast { op: o, .. }
            | Error::InvalidArgument { op: o, .. }
            | Error::ForeignVar { op: o, .. } => *o,
            _ => "",
        };
        assert_eq!(named, op, "{e}");
        assert!(e.to_string().starts_with(&format!("{op}: ")), "{e}");
        points_here(&e, line);
    };
    let line = line!() + 1;
    let e = a.softmax(5).unwrap_err();
    expect(e, "softmax", line);
    let line = line!() + 1;
    let e = a.log_softmax(-3).unwrap_err();
    expect(e, "log_softmax", line);
    let line = line!() + 1;
    let e = a.logsumexp(&[2], false).unwrap_err();
    expect(e, "logsumexp", line);
    let line = line!() + 1;
    let e = Var::stack(&[a, a], 4).unwrap_err();
    expect(e, "stack", line);
    let line = line!() + 1;
    let e = Var::stack(&[a, b], 0).unwrap_err();
    expect(e, "stack", line);
    let line = line!() + 1;
    let e = Var::<f64>::stack(&[], 0).unwrap_err();
    expect(e, "stack", line);
    let other = Tape::<f64>::new();
    let foreign = other.var(Tensor::zeros([2, 3]).unwrap());
    let line = line!() + 1;
    let e = Var::stack(&[a, foreign], 0).unwrap_err();
    expect(e, "stack", line);
    let w = tape.var(Tensor::zeros([4]).unwrap());
    let line = line!() + 1;
    let e = a.layer_norm(1, Some(w), None, 1e-5).unwrap_err();
    expect(e, "layer_norm", line);
    // stacking along a new last axis works, and -1 appends it
    assert_eq!(Var::stack(&[a, a], -1).unwrap().dims(), vec![2, 3, 2]);
}

/// A grouped convolution whose window does not fit reports the input the user passed, not
/// one group's slice of it, and the user's line.
#[test]
fn grouped_conv2d_reports_the_whole_input() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros([1, 4, 2, 2]).unwrap());
    let w = tape.var(Tensor::zeros([2, 2, 3, 3]).unwrap());
    let args = autograd::Conv2dArgs {
        groups: 2,
        ..autograd::Conv2dArgs::default()
    };
    let line = line!() + 1;
    let e = x.conv2d(w, None, args).unwrap_err();
    match &e {
        Error::InvalidArgument { op, shape, .. } => {
            assert_eq!(*op, "conv2d");
            assert_eq!(shape.dims(), &[1, 4, 2, 2], "{e}");
        }
        other => panic!("expected InvalidArgument, got {other}"),
    }
    points_here(&e, line);
}

/// Every bad argument to an op of `ops_extra.json` is an error naming that op (not a
/// primitive it is built from) and the line of this file that called it.
#[test]
fn extra_ops_name_themselves_and_the_callers_line() {
    use autograd::ops::PadMode;
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]).unwrap());
    let empty = tape.var(Tensor::zeros([2, 0]).unwrap());
    let named = |e: &Error, op: &str, line: u32| {
        let got = match e {
            Error::Axis { op, .. }
            | Error::InvalidArgument { op, .. }
            | Error::TooLarge { op, .. }
            | Error::Broadcast { op, .. }
            | Error::ForeignVar { op, .. } => *op,
            other => panic!("unexpected {other}"),
        };
        assert_eq!(got, op, "{e}");
        // The call is the macro invocation starting at `line`, which rustfmt may wrap.
        let loc = e.location().unwrap();
        assert_eq!(loc.file(), file!(), "{e}");
        assert!(
            (line..line + 4).contains(&loc.line()),
            "{e} (invocation at {line})"
        );
    };
    macro_rules! fails {
        ($op:literal, $call:expr) => {{
            let line = line!();
            let e = $call.unwrap_err();
            named(&e, $op, line);
        }};
    }
    fails!("cumsum", a.cumsum(2));
    fails!("cumprod", a.cumprod(-3));
    fails!("sort", a.sort(5, false));
    fails!("topk", a.topk(4, 1, true));
    fails!("argmax", empty.argmax(1));
    fails!("argmin", a.argmin(2));
    fails!("max_dim", empty.max_dim(0, false));
    fails!("min_dim", a.min_dim(9, true));
    fails!("std", a.std(&[1], 3, false));
    fails!("std", a.std(&[4], 1, false));
    fails!("var", a.var(&[0], 2, false));
    fails!("vector_norm", a.vector_norm(f64::NAN, &[], false));
    fails!("vector_norm", empty.vector_norm(f64::INFINITY, &[1], false));
    fails!(
        "frobenius_norm",
        tape.var(Tensor::zeros([3]).unwrap()).frobenius_norm(false)
    );
    fails!("normalize", a.normalize(2.0, 2, 1e-12));
    fails!(
        "cosine_similarity",
        a.cosine_similarity(tape.var(Tensor::zeros([4]).unwrap()), 1, 1e-8)
    );
    fails!("cosine_similarity", a.cosine_similarity(a, 2, 1e-8));
    fails!("pad", a.pad(&[1, 1, 1], PadMode::Constant(0.0)));
    fails!("pad", a.pad(&[1, 1, 1, 1, 1, 1], PadMode::Constant(0.0)));
    fails!("pad", a.pad(&[3, 0], PadMode::Reflect));
    fails!("pad", a.pad(&[0, 4], PadMode::Circular));
    fails!("pad", empty.pad(&[1, 0], PadMode::Replicate));
    fails!(
        "pad",
        a.pad(&[usize::MAX, usize::MAX], PadMode::Constant(0.0))
    );
    fails!(
        "pad",
        a.pad(
            &[usize::MAX / 4, 0, usize::MAX / 4, 0],
            PadMode::Constant(0.0)
        )
    );
    fails!("flip", a.flip(&[0, -2]));
    fails!("roll", a.roll(&[1, 2], &[0]));
    fails!("roll", a.roll(&[1], &[3]));
    fails!("repeat", a.repeat(&[2]));
    fails!("repeat", a.repeat(&[usize::MAX, 2]));
    fails!("expand", a.expand(&[4, 3]));
    fails!("expand", a.expand(&[-2, 3]));
    fails!("expand", a.expand(&[3]));
    fails!("tril", tape.var(Tensor::zeros([3]).unwrap()).tril(0));
    fails!("triu", tape.var(Tensor::zeros([3]).unwrap()).triu(0));
    fails!(
        "masked_fill",
        a.masked_fill(&Tensor::zeros([3, 3]).unwrap(), 1.0)
    );
    fails!("split", a.split(&[1, 1], 1));
    fails!("split", a.split(&[usize::MAX, 4], 1));
    fails!("chunk", a.chunk(0, 1));
    fails!("glu", a.glu(1));
    fails!("hardtanh", a.hardtanh(1.0, -1.0));
    let idx = tape.var(Tensor::zeros([2, 2]).unwrap());
    fails!("scatter_add", a.scatter_add(1, &[0, 3, 1, 1], [2, 2], idx));
    fails!("scatter_add", a.scatter_add(1, &[0, 1, 1], [2, 2], idx));
    fails!("scatter_add", a.scatter_add(1, &[0; 6], [2, 3], idx));
    fails!("scatter_add", a.scatter_add(1, &[0], [2, usize::MAX], idx));
    fails!("gather", a.gather(1, &[0, 0], [2, usize::MAX]));
    let other = Tape::<f64>::new();
    fails!(
        "scatter_add",
        a.scatter_add(
            1,
            &[0; 4],
            [2, 2],
            other.var(Tensor::zeros([2, 2]).unwrap())
        )
    );
    fails!(
        "cosine_similarity",
        a.cosine_similarity(other.var(Tensor::zeros([2, 3]).unwrap()), 1, 1e-8)
    );
}

#[test]
fn einsum_errors_carry_the_equation_and_the_line() {
    use autograd::ops::EinsumProblem;
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]).unwrap());
    let line = line!() + 1;
    let e = Var::einsum("ij,jk->ik", &[a, a]).unwrap_err();
    assert!(
        matches!(&e, Error::Einsum { equation, problem: EinsumProblem::SizeMismatch { label: 'j', sizes: (3, 2) }, .. } if equation == "ij,jk->ik"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("einsum: subscript j labels axes of sizes 3 and 2, which do not broadcast in \"ij,jk->ik\" (at "),
        "{e}"
    );
    points_here(&e, line);
    let other = Tape::<f64>::new();
    let line = line!() + 1;
    let e = Var::einsum("ij,ij->", &[a, other.var(Tensor::zeros([2, 3]).unwrap())]).unwrap_err();
    assert!(matches!(&e, Error::ForeignVar { op: "einsum", .. }), "{e}");
    points_here(&e, line);
    // an outer product no tensor can have (2⁸⁰ elements)
    let big = tape.var(Tensor::zeros([1]).unwrap());
    let wide = big.expand(&[1 << 20]).unwrap();
    let line = line!() + 1;
    let e = Var::einsum("a,b,c,d->abcd", &[wide, wide, wide, wide]).unwrap_err();
    assert!(matches!(&e, Error::TooLarge { op: "einsum", .. }), "{e}");
    points_here(&e, line);
}
