//! Freezing: a frozen first layer stays bit-identical through training with SGD (momentum,
//! weight decay), AdamW and L-BFGS, while the rest trains; unfreezing mid-run resumes it.

use autograd::{Param, Tape, Tensor};
use nn::{Ctx, Linear, Module, Sequential, Tanh};
use optim::{AdamW, ClosureOptim, Lbfgs, Optim, Optimizer, Sgd};
use rand::{rngs::StdRng, SeedableRng};

fn mlp() -> Sequential<f64> {
    let mut rng = StdRng::seed_from_u64(11);
    Sequential::new()
        .append(Linear::new(4, 16, &mut rng).unwrap())
        .append(Tanh)
        .append(Linear::new(16, 16, &mut rng).unwrap())
        .append(Tanh)
        .append(Linear::new(16, 1, &mut rng).unwrap())
}

/// A fixed regression batch: y = sin(x₀) + x₁·x₂ − x₃.
fn data() -> (Tensor<f64>, Tensor<f64>) {
    let mut rng = StdRng::seed_from_u64(5);
    let x = Tensor::<f64>::randn([64, 4], &mut rng).unwrap();
    let v = x.to_vec();
    let y: Vec<f64> = v
        .chunks(4)
        .map(|r| r[0].sin() + r[1] * r[2] - r[3])
        .collect();
    (x, Tensor::from_vec(y, [64, 1]).unwrap())
}

fn loss(model: &Sequential<f64>, x: &Tensor<f64>, y: &Tensor<f64>, backward: bool) -> f64 {
    let tape = Tape::new();
    let out = Ctx::new(&tape)
        .call(model, tape.constant(x.clone()))
        .unwrap();
    let l = nn::loss::mse_loss(out, tape.constant(y.clone())).unwrap();
    if backward {
        l.backward().unwrap();
    }
    l.item().unwrap()
}

fn first_layer(model: &Sequential<f64>) -> Vec<Param<f64>> {
    let ps: Vec<(String, Param<f64>)> = model.named_parameters();
    let first: Vec<Param<f64>> = ps
        .iter()
        .filter(|(n, _)| n.starts_with("0."))
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(first.len(), 2);
    first
}

fn snapshot(ps: &[Param<f64>]) -> Vec<Vec<u64>> {
    ps.iter()
        .map(|p| p.value().to_vec().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Trains `steps` steps; returns (first loss, last loss).
fn train(model: &Sequential<f64>, opt: &mut dyn Optimizer, steps: usize) -> (f64, f64) {
    let (x, y) = data();
    let first = loss(model, &x, &y, false);
    for _ in 0..steps {
        opt.zero_grad();
        loss(model, &x, &y, true);
        opt.step().unwrap();
    }
    (first, loss(model, &x, &y, false))
}

fn check_frozen_first_layer(make: impl Fn(Vec<Param<f64>>) -> Box<dyn Optimizer>, name: &str) {
    let model = mlp();
    let frozen = first_layer(&model);
    let rest: Vec<Param<f64>> = model
        .parameters()
        .into_iter()
        .filter(|p| frozen.iter().all(|f| f.id() != p.id()))
        .collect();
    // A stale gradient from before freezing must not move it either.
    let (x, y) = data();
    loss(&model, &x, &y, true);
    frozen.iter().for_each(|p| p.set_requires_grad(false));
    let before = snapshot(&frozen);
    let rest_before = snapshot(&rest);
    let mut opt = make(model.parameters());
    assert!(frozen.iter().all(|p| p.grad().is_some()));
    opt.step().unwrap(); // the stale gradient is still there for this step
    let (l0, l1) = train(&model, opt.as_mut(), 300);
    assert_eq!(snapshot(&frozen), before, "{name}: frozen layer moved");
    let rest_after = snapshot(&rest);
    for (a, b) in rest_after.iter().zip(&rest_before) {
        assert_ne!(a, b, "{name}: a trainable tensor did not change");
    }
    assert!(l1 < 0.5 * l0, "{name}: loss {l0} -> {l1}");
}

#[test]
fn a_frozen_first_layer_stays_bit_identical_while_the_rest_trains() {
    check_frozen_first_layer(
        |ps| {
            let sgd = Sgd {
                momentum: 0.9,
                weight_decay: 1e-3,
                ..Sgd::default()
            };
            Box::new(Optim::new(ps, 0.02, sgd).unwrap())
        },
        "sgd",
    );
    check_frozen_first_layer(
        |ps| Box::new(Optim::new(ps, 0.01, AdamW::default()).unwrap()),
        "adamw",
    );
}

#[test]
fn lbfgs_leaves_a_frozen_layer_alone() {
    let model = mlp();
    let frozen = first_layer(&model);
    frozen.iter().for_each(|p| p.set_requires_grad(false));
    let before = snapshot(&frozen);
    let (x, y) = data();
    let m = &model;
    let (xc, yc) = (x.clone(), y.clone());
    let mut opt = ClosureOptim::new(model.parameters(), 1.0, Lbfgs::default()).unwrap();
    let l0 = loss(&model, &x, &y, false);
    for _ in 0..5 {
        opt.step_with(&mut || Ok(loss(m, &xc, &yc, true))).unwrap();
    }
    assert_eq!(snapshot(&frozen), before);
    assert!(loss(&model, &x, &y, false) < 0.5 * l0);
}

/// Frozen for 100 steps (no momentum buffer, no step count for it), then unfrozen: it
/// moves from then on, its optimiser state starting at its first real update.
#[test]
fn unfreezing_mid_run_resumes_training_that_layer() {
    let model = mlp();
    let first = first_layer(&model);
    first.iter().for_each(|p| p.set_requires_grad(false));
    let sgd = Sgd {
        momentum: 0.9,
        weight_decay: 1e-3,
        ..Sgd::default()
    };
    let mut opt = Optim::new(model.parameters(), 0.02, sgd).unwrap();
    let before = snapshot(&first);
    train(&model, &mut opt, 100);
    assert_eq!(snapshot(&first), before);
    assert!(first
        .iter()
        .all(|p| opt.state(p).is_none() && opt.param_step(p) == 0));
    assert!(first.iter().all(|p| p.grad().is_none()));
    first.iter().for_each(|p| p.set_requires_grad(true));
    let (l0, l1) = train(&model, &mut opt, 100);
    assert!(first.iter().all(|p| opt.param_step(p) == 100));
    for (a, b) in snapshot(&first).iter().zip(&before) {
        assert_ne!(a, b);
    }
    assert!(l1 < l0);
    assert_eq!(opt.step_count(), 200);
}
