//! Freezing (`Param::set_requires_grad`), gradient hooks on values (`Var::register_hook`)
//! in both sweeps, and parameter hooks after accumulation.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use autograd::{gradcheck, Error, GradcheckOptions, Param, Tape, Tensor, Var};

fn t(v: &[f64], dims: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), dims.to_vec()).unwrap()
}

fn params(xs: &[Tensor<f64>]) -> Vec<Param<f64>> {
    xs.iter().map(|x| Param::new(x.clone())).collect()
}

type Build = for<'t> fn(&[Var<'t, f64>]) -> Var<'t, f64>;

/// One builder per op with a first-order fast path (`Op::backward_values`: add, sub, mul,
/// neg, the scalar ops, every `Unary` op, sum, matmul), and one without (div), each
/// applied last so the hooked value is that op's output.
fn fast_path_ops() -> Vec<(&'static str, Build, Vec<Tensor<f64>>)> {
    let a = t(&[0.5, -1.25, 2.0, 0.75, -0.3, 1.5], &[2, 3]);
    let b = t(&[1.5, 0.25, -0.5, 2.0, 0.6, -1.1], &[2, 3]);
    let m = t(&[0.2, -0.4, 1.0, 0.3, -0.7, 0.9], &[3, 2]);
    vec![
        (
            "add",
            |v| v[0].add(v[1]).unwrap(),
            vec![a.clone(), b.clone()],
        ),
        (
            "sub",
            |v| v[0].sub(v[1]).unwrap(),
            vec![a.clone(), b.clone()],
        ),
        (
            "mul",
            |v| v[0].mul(v[1]).unwrap(),
            vec![a.clone(), b.clone()],
        ),
        ("neg", |v| v[0].neg(), vec![a.clone()]),
        ("add_scalar", |v| v[0].add_scalar(0.5), vec![a.clone()]),
        ("mul_scalar", |v| v[0].mul_scalar(-1.5), vec![a.clone()]),
        ("rsub_scalar", |v| v[0].rsub_scalar(2.0), vec![a.clone()]),
        ("div_scalar", |v| v[0].div_scalar(4.0), vec![a.clone()]),
        ("exp (unary)", |v| v[0].exp(), vec![a.clone()]),
        ("tanh (unary)", |v| v[0].tanh(), vec![a.clone()]),
        ("relu (unary)", |v| v[0].relu(), vec![a.clone()]),
        ("sum", |v| v[0].sum(), vec![a.clone()]),
        ("matmul", |v| v[0].matmul(v[1]).unwrap(), vec![a.clone(), m]),
        (
            "div (no fast path)",
            |v| v[0].div(v[1]).unwrap(),
            vec![a, b],
        ),
    ]
}

/// Gradients of `sum(f(xs)·c)` into the params by `backward`, with a hook that doubles
/// the gradient of `f(xs)` when `hooked`.
fn backward_grads(f: Build, xs: &[Tensor<f64>], hooked: bool) -> Vec<Tensor<f64>> {
    let ps = params(xs);
    let tape = Tape::new();
    let vs: Vec<_> = ps.iter().map(|p| tape.param(p)).collect();
    let y = f(&vs);
    if hooked {
        y.register_hook(|g| Ok(Some(g.mul_scalar(2.0)))).unwrap();
    }
    let c = Tensor::from_fn(y.shape(), |i| 0.5 + (i % 5) as f64 * 0.25).unwrap();
    y.mul(tape.constant(c)).unwrap().sum().backward().unwrap();
    ps.iter().map(|p| p.grad().unwrap()).collect()
}

/// The same by `Tape::grad`.
fn grad_grads(f: Build, xs: &[Tensor<f64>], hooked: bool) -> Vec<Tensor<f64>> {
    let tape = Tape::new();
    let vs: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vs);
    if hooked {
        y.register_hook(|g| Ok(Some(g.mul_scalar(2.0)))).unwrap();
    }
    let c = Tensor::from_fn(y.shape(), |i| 0.5 + (i % 5) as f64 * 0.25).unwrap();
    let loss = y.mul(tape.constant(c)).unwrap().sum();
    tape.grad(loss, &vs)
        .unwrap()
        .iter()
        .map(|g| g.value())
        .collect()
}

fn doubled(g: &[Tensor<f64>]) -> Vec<Vec<f64>> {
    g.iter()
        .map(|g| g.to_vec().iter().map(|v| 2.0 * v).collect())
        .collect()
}

fn vecs(g: &[Tensor<f64>]) -> Vec<Vec<f64>> {
    g.iter().map(|g| g.to_vec()).collect()
}

/// Doubling a gradient is exact in floating point, and every rule is linear in the
/// gradient flowing in, so a doubling hook doubles the inputs' gradients bit for bit —
/// on the fast path of every op that has one, and through the `Var` rules.
#[test]
fn a_doubling_hook_doubles_gradients_exactly_on_every_fast_path_and_in_grad() {
    for (name, f, xs) in fast_path_ops() {
        let plain = backward_grads(f, &xs, false);
        assert_eq!(
            vecs(&backward_grads(f, &xs, true)),
            doubled(&plain),
            "backward, {name}"
        );
        let plain_grad = grad_grads(f, &xs, false);
        assert_eq!(vecs(&plain_grad), vecs(&plain), "grad vs backward, {name}");
        assert_eq!(
            vecs(&grad_grads(f, &xs, true)),
            doubled(&plain),
            "Tape::grad, {name}"
        );
    }
}

/// L = sum(h²) with h = exp(x): dL/dh = 2h. An inspecting hook on h sees exactly that,
/// in both sweeps, and leaves the gradient (checked against finite differences) alone.
#[test]
fn an_inspecting_hook_sees_the_exact_gradient_and_changes_nothing() {
    let x0 = t(&[0.1, -0.7, 1.3], &[3]);
    let seen: Rc<RefCell<Vec<Vec<f64>>>> = Rc::default();
    let p = Param::new(x0.clone());
    let tape = Tape::new();
    let h = tape.param(&p).exp();
    let s = seen.clone();
    h.register_hook(move |g| {
        s.borrow_mut().push(g.value().to_vec());
        Ok(None)
    })
    .unwrap();
    h.square().sum().backward().unwrap();
    let expected: Vec<f64> = h.value().to_vec().iter().map(|v| 2.0 * v).collect();
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(seen.borrow()[0], expected);
    let dx: Vec<f64> = x0.to_vec().iter().map(|x| 2.0 * (2.0 * x).exp()).collect();
    for (g, e) in p.grad().unwrap().to_vec().iter().zip(&dx) {
        assert!((g - e).abs() <= 1e-12 * e.abs(), "{g} vs {e}");
    }

    // In Tape::grad the hook sees the same value, as a Var of that sweep.
    let x = tape.var(x0.clone());
    let h2 = x.exp();
    let s = seen.clone();
    h2.register_hook(move |g| {
        s.borrow_mut().push(g.value().to_vec());
        Ok(None)
    })
    .unwrap();
    let by_grad = tape.grad(h2.square().sum(), &[x]).unwrap()[0].value();
    assert_eq!(seen.borrow()[1], expected);
    assert_eq!(by_grad.to_vec(), p.grad().unwrap().to_vec());

    // And a function with an inspecting hook inside passes gradcheck.
    gradcheck(
        |v| {
            let h = v[0].exp();
            h.register_hook(|_| Ok(None))?;
            Ok(h.square().sum())
        },
        &[x0],
        &GradcheckOptions::default(),
    )
    .unwrap();
}

fn add1(g: Var<'_, f64>) -> autograd::Result<Option<Var<'_, f64>>> {
    Ok(Some(g.add_scalar(1.0)))
}

fn mul3(g: Var<'_, f64>) -> autograd::Result<Option<Var<'_, f64>>> {
    Ok(Some(g.mul_scalar(3.0)))
}

/// Hooks run in registration order, each on the previous one's result:
/// (g + 1)·3 and (g·3) + 1 differ.
#[test]
fn hooks_chain_in_registration_order() {
    for (first_add, expected) in [(true, (1.0 + 1.0) * 3.0), (false, 1.0 * 3.0 + 1.0)] {
        let p = Param::new(Tensor::scalar(5.0f64));
        let tape = Tape::new();
        let w = tape.param(&p);
        let y = w.mul_scalar(1.0);
        if first_add {
            y.register_hook(add1).unwrap();
            y.register_hook(mul3).unwrap();
        } else {
            y.register_hook(mul3).unwrap();
            y.register_hook(add1).unwrap();
        }
        y.backward().unwrap();
        assert_eq!(p.grad().unwrap().item().unwrap(), expected);
    }
}

/// In `Tape::grad` a hook's replacement is part of the function: with y = x³ and a
/// doubling hook on y, dL/dx = 2·3x², and its derivative 2·6x.
#[test]
fn hooks_in_grad_are_differentiated_again() {
    let tape = Tape::new();
    let x = tape.var(Tensor::scalar(1.5f64));
    let y = x.mul(x.square()).unwrap();
    y.register_hook(|g| Ok(Some(g.mul_scalar(2.0)))).unwrap();
    let dx = tape.grad(y, &[x]).unwrap()[0];
    assert_eq!(dx.item().unwrap(), 2.0 * 3.0 * 1.5 * 1.5);
    let ddx = tape.grad(dx, &[x]).unwrap()[0];
    assert_eq!(ddx.item().unwrap(), 2.0 * 6.0 * 1.5);
}

/// A hook on a parameter's `Var` sees the gradient before accumulation and can replace
/// what is accumulated; a hook on a plain leaf runs in `backward` too (inspecting).
#[test]
fn hooks_on_leaves_run_before_accumulation() {
    let p = Param::new(t(&[1.0, 2.0], &[2]));
    p.set_grad(Some(t(&[10.0, 10.0], &[2]))).unwrap();
    let tape = Tape::new();
    let w = tape.param(&p);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    w.register_hook(move |g| {
        s.borrow_mut().push(g.value().to_vec());
        Ok(Some(g.mul_scalar(2.0)))
    })
    .unwrap();
    let leaf = tape.var(t(&[3.0, 4.0], &[2]));
    let s = seen.clone();
    leaf.register_hook(move |g| {
        s.borrow_mut().push(g.value().to_vec());
        Ok(None)
    })
    .unwrap();
    w.mul(leaf).unwrap().sum().backward().unwrap();
    // Leaf (id 1) first in the reverse sweep, then the param (id 0): each its own
    // gradient, the param's before the 10s already accumulated.
    assert_eq!(*seen.borrow(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    assert_eq!(p.grad().unwrap().to_vec(), vec![16.0, 18.0]);
}

#[test]
fn a_hook_returning_the_wrong_shape_is_a_typed_error_naming_hook_and_op() {
    let tape = Tape::new();
    let x = tape.var(t(&[1.0, 2.0, 3.0], &[3]));
    let y = x.exp();
    let hook_line = line!() + 1;
    y.register_hook(|g| Ok(Some(g.sum()))).unwrap();
    for err in [
        y.sum().backward().unwrap_err(),
        tape.grad(y.sum(), &[x]).unwrap_err(),
    ] {
        match &err {
            Error::HookShape {
                op,
                hook,
                expected,
                got,
                ..
            } => {
                assert_eq!(*op, "exp");
                assert_eq!(hook.line(), hook_line);
                assert!(hook.file().ends_with("hooks.rs"));
                assert_eq!(expected.dims(), [3]);
                assert_eq!(got.dims(), [] as [usize; 0]);
            }
            other => panic!("expected HookShape, got {other}"),
        }
        assert!(err.to_string().contains("exp"), "{err}");
    }
    // The failed backward left no scratch nodes behind.
    let n = tape.len();
    let _ = y.sum().backward();
    assert_eq!(tape.len(), n + 1);
}

#[test]
fn hook_errors_and_misuse_are_errors() {
    let tape = Tape::new();
    let c = tape.constant(Tensor::scalar(1.0f64));
    assert!(matches!(
        c.register_hook(|_| Ok(None)),
        Err(Error::NoGradient { .. })
    ));
    let frozen = Param::new(Tensor::scalar(1.0f64));
    frozen.set_requires_grad(false);
    assert!(matches!(
        tape.param(&frozen).register_hook(|_| Ok(None)),
        Err(Error::NoGradient { .. })
    ));
    // A hook's own error ends the sweep and comes out of it.
    let x = tape.var(t(&[1.0, 2.0], &[2]));
    let y = x.exp();
    y.register_hook(|g| {
        g.reshape([3])?; // 2 elements into 3: fails
        Ok(None)
    })
    .unwrap();
    assert!(matches!(
        y.sum().backward(),
        Err(Error::ShapeMismatch { .. } | Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_hook_returning_a_foreign_var_is_an_error() {
    let tape = Tape::new();
    let x = tape.var(Tensor::scalar(2.0f64));
    let y = x.exp();
    let other: &'static Tape<f64> = Box::leak(Box::new(Tape::new()));
    y.register_hook(move |_| Ok(Some(other.constant(Tensor::scalar(1.0)))))
        .unwrap();
    assert!(matches!(
        y.backward(),
        Err(Error::ForeignVar {
            op: "register_hook",
            ..
        })
    ));
}

/// A frozen parameter records no gradient path: nothing is computed for it or for values
/// only it feeds, nothing accumulates, and unfreezing takes effect at the next binding.
#[test]
fn a_frozen_param_gets_no_gradient_and_feeds_no_path() {
    let w = Param::new(t(&[1.0, 2.0], &[2]));
    let b = Param::new(t(&[0.5, 0.5], &[2]));
    w.set_requires_grad(false);
    assert!(!w.requires_grad());
    let tape = Tape::new();
    let wv = tape.param(&w);
    let only_w = wv.exp().square();
    assert!(!wv.requires_grad() && !only_w.requires_grad());
    let n_before = tape.len();
    only_w
        .mul(tape.param(&b))
        .unwrap()
        .sum()
        .backward()
        .unwrap();
    assert!(w.grad().is_none());
    assert_eq!(b.grad().unwrap().to_vec(), only_w.value().to_vec());
    assert_eq!(tape.len(), n_before + 3); // param b, mul, sum: nothing left by backward
                                          // Tape::grad with respect to a frozen param's Var: zero (no path), like any
                                          // input the output does not depend on.
    let g = tape.grad(only_w.sum(), &[wv]).unwrap()[0].value();
    assert_eq!(g.to_vec(), vec![0.0, 0.0]);

    w.set_requires_grad(true);
    let tape = Tape::new();
    tape.param(&w).square().sum().backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![2.0, 4.0]);
}

/// (which hook, the gradient it saw)
type Seen = (usize, Vec<f64>);

#[test]
fn post_accumulate_hooks_see_the_accumulated_gradient_until_removed() {
    let w = Param::new(t(&[1.0, -2.0], &[2]));
    let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let h1 = w.register_post_accumulate_grad_hook(move |p| {
        l1.lock().unwrap().push((1, p.grad().unwrap().to_vec()))
    });
    let _h2 = w.register_post_accumulate_grad_hook(move |p| {
        l2.lock().unwrap().push((2, p.grad().unwrap().to_vec()))
    });
    let tape = Tape::new();
    // w is used twice: the hooks run once, after both contributions are in.
    let v = tape.param(&w);
    v.square().add(v).unwrap().sum().backward().unwrap(); // 2w + 1
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, vec![3.0, -3.0]), (2, vec![3.0, -3.0])]
    );
    h1.remove();
    let tape = Tape::new();
    tape.param(&w).sum().backward().unwrap(); // + 1, accumulated onto 3, -3
    assert_eq!(log.lock().unwrap()[2..], [(2, vec![4.0, -2.0])]);
    // Tape::grad does not touch params, so runs no post-accumulate hook.
    let tape = Tape::new();
    let v = tape.param(&w);
    tape.grad(v.sum(), &[v]).unwrap();
    assert_eq!(log.lock().unwrap().len(), 3);

    // They run as each param completes, before the sweep reaches earlier nodes: the hook
    // of the later-bound param runs first.
    let a = Param::new(Tensor::scalar(1.0f64));
    let b = Param::new(Tensor::scalar(2.0f64));
    let order = Arc::new(AtomicUsize::new(0));
    let (oa, ob) = (order.clone(), order.clone());
    let _ = a.register_post_accumulate_grad_hook(move |_| {
        assert_eq!(oa.fetch_add(1, Ordering::SeqCst), 1)
    });
    let _ = b.register_post_accumulate_grad_hook(move |_| {
        assert_eq!(ob.fetch_add(1, Ordering::SeqCst), 0)
    });
    let tape = Tape::new();
    tape.param(&a)
        .mul(tape.param(&b))
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(order.load(Ordering::SeqCst), 2);
}

#[test]
fn vjp_values_matches_vjp_and_stops_at_its_inputs() {
    let tape = Tape::new();
    let a = tape.var(t(&[0.3, -1.2, 2.0], &[3]));
    let h = a.exp(); // upstream of the input below: not differentiated through
    let x = h.mul_scalar(0.5);
    let y = x.tanh().mul(x).unwrap();
    let c = t(&[1.0, -2.0, 0.5], &[3]);
    let by_values = tape.vjp_values(y, c.clone(), &[x, x]).unwrap();
    let by_vjp = tape.vjp(y, tape.constant(c), &[x]).unwrap()[0].value();
    assert_eq!(by_values[0].to_vec(), by_vjp.to_vec());
    assert_eq!(by_values[1].to_vec(), by_vjp.to_vec());
    let n = tape.len();
    let unrelated = tape.vjp_values(y, t(&[1.0; 3], &[3]), &[a]).unwrap();
    assert_ne!(unrelated[0].to_vec(), vec![0.0; 3]); // a is upstream: full derivative
    assert_eq!(tape.len(), n); // nothing left on the tape
}
