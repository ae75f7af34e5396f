//! Helpers for the rules' unit tests: tiny problems driven through the real tape and
//! driver, and the save/load round-trip check.

use autograd::{Param, Tape, Tensor};

use crate::{Optim, Optimizer, UpdateRule};

/// `n` steps on `L(p) = Σ p²` (gradient exactly `2p`) from `init`; the final parameters.
pub(crate) fn run_steps<R: UpdateRule<f64>>(rule: R, lr: f64, init: &[f64], n: usize) -> Vec<f64> {
    let p = Param::new(Tensor::from_vec(init.to_vec(), [init.len()]).unwrap());
    let mut opt = Optim::new(vec![p.clone()], lr, rule).unwrap();
    for _ in 0..n {
        opt.zero_grad();
        let tape = Tape::new();
        tape.param(&p).square().sum().backward().unwrap();
        opt.step().unwrap();
    }
    p.value().to_vec()
}

/// One step of Rosenbrock `(1 − x)² + 100 (y − x²)²` on `p = [x, y]`, gradient via the tape.
fn rosenbrock_grad(p: &Param<f64>) {
    let tape = Tape::new();
    let v = tape.param(p);
    let x = v.narrow(0, 0, 1).unwrap();
    let y = v.narrow(0, 1, 1).unwrap();
    let loss = x.rsub_scalar(1.0).square() + (y - x.square()).square().mul_scalar(100.0);
    loss.sum().backward().unwrap();
}

/// The parameters after each of `n` steps on Rosenbrock from (−1.5, 2), the start used by
/// `tests/data/optim_trajectories.json`.
pub(crate) fn rosenbrock_steps<R: UpdateRule<f64>>(rule: R, lr: f64, n: usize) -> Vec<Vec<f64>> {
    let p = Param::new(Tensor::from_vec(vec![-1.5, 2.0], [2]).unwrap());
    let mut opt = Optim::new(vec![p.clone()], lr, rule).unwrap();
    (0..n)
        .map(|_| {
            opt.zero_grad();
            rosenbrock_grad(&p);
            opt.step().unwrap();
            p.value().to_vec()
        })
        .collect()
}

/// Asserts `|got − want| <= 1e-13 + 1e-12·|want|` elementwise over a trajectory.
pub(crate) fn assert_trajectory(got: &[Vec<f64>], want: &[[f64; 2]]) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-13 + 1e-12 * b.abs(),
                "step {}: got {g:?}, PyTorch {w:?}",
                k + 1
            );
        }
    }
}

/// Trains 4 steps on Rosenbrock, saves through safetensors bytes, loads into a fresh
/// parameter and optimiser, trains 4 more and checks the result is bitwise identical to 8
/// uninterrupted steps.
pub(crate) fn assert_resume_is_bit_identical<R: UpdateRule<f64>>(rule: R, lr: f64) {
    let straight = rosenbrock_steps(rule.clone(), lr, 8);

    let p = Param::new(Tensor::from_vec(vec![-1.5, 2.0], [2]).unwrap());
    let mut opt = Optim::new(vec![p.clone()], lr, rule.clone()).unwrap();
    for _ in 0..4 {
        opt.zero_grad();
        rosenbrock_grad(&p);
        opt.step().unwrap();
    }
    let bytes = opt.state_dict().unwrap().to_bytes().unwrap();

    let q = Param::new(p.value().clone());
    // A different lr on purpose: loading restores the saved one.
    let mut fresh = Optim::new(vec![q.clone()], lr * 3.0 + 1.0, rule).unwrap();
    fresh
        .load_state_dict(&crate::StateDict::from_bytes(&bytes).unwrap())
        .unwrap();
    assert_eq!(fresh.lr(), lr);
    assert_eq!(fresh.step_count(), 4);
    for _ in 0..4 {
        fresh.zero_grad();
        rosenbrock_grad(&q);
        fresh.step().unwrap();
    }
    let (a, b) = (q.value().to_vec(), &straight[7]);
    assert!(
        a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "resumed {a:?} vs uninterrupted {b:?}"
    );
}
