//! A new optimiser written outside the `optim` crate: Lion, as one `UpdateRule` plus its
//! state type, checked with the test kit, then used to fit a small tanh MLP to `sin(x)`.
//!
//! Run with `cargo run --example custom_optimizer`.

use autograd::{Float, Param, ParamMut, Tape, Tensor};
use optim::testing::Kit;
use optim::{
    CosineAnnealingLr, LrScheduler, Optim, Optimizer, RuleState, StepCx, UpdateRule, WeightDecay,
};
use rand::{rngs::StdRng, SeedableRng};

/// Lion, evolved sign momentum ([Chen et al. 2023](https://arxiv.org/abs/2302.06675)):
/// `c ← β₁m + (1−β₁)g;  p ← p·(1 − lr·λ) − lr·sign(c);  m ← β₂m + (1−β₂)g`.
#[derive(Clone, Debug)]
struct Lion {
    betas: (f64, f64),
    weight_decay: f64,
}

#[derive(Clone, Debug)]
struct LionState<T: Float> {
    exp_avg: Tensor<T>,
}

impl<T: Float> RuleState<T> for LionState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![("exp_avg", &self.exp_avg)]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![("exp_avg", &mut self.exp_avg)]
    }
}

impl<T: Float> UpdateRule<T> for Lion {
    type State = LionState<T>;
    const NAME: &'static str = "lion";

    fn weight_decay(&self) -> Option<f64> {
        Some(self.weight_decay) // the default for groups that do not set their own
    }
    fn init(&self, p: &Tensor<T>) -> LionState<T> {
        LionState {
            exp_avg: p.zeros_like(),
        }
    }
    fn update(
        &self,
        cx: &StepCx,
        p: &mut ParamMut<'_, T>,
        g: &Tensor<T>,
        s: &mut LionState<T>,
    ) -> optim::Result<()> {
        let g = WeightDecay::Decoupled.apply(cx, p, g);
        let (b1, b2, lr) = (T::of(self.betas.0), T::of(self.betas.1), T::of(cx.lr));
        let sign = |c: T| if c == T::zero() { c } else { c.signum() }; // torch.sign(0) = 0
        for ((p, &g), m) in p
            .as_mut_slice()
            .iter_mut()
            .zip(g.as_slice())
            .zip(s.exp_avg.as_mut_slice())
        {
            *p -= lr * sign(b1 * *m + (T::one() - b1) * g);
            *m = b2 * *m + (T::one() - b2) * g;
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    // Data: y = sin(x) on 64 points in [-3, 3].
    let n = 64;
    let xs: Vec<f64> = (0..n)
        .map(|i| -3.0 + 6.0 * i as f64 / (n - 1) as f64)
        .collect();
    let x = Tensor::from_vec(xs.clone(), [n, 1])?;
    let y = Tensor::from_vec(xs.iter().map(|v| v.sin()).collect(), [n, 1])?;

    // A 1-32-1 tanh MLP, weights applied as x @ W + b.
    let mut rng = StdRng::seed_from_u64(0);
    let hidden = 32;
    let w1 = Param::named("w1", Tensor::randn([1, hidden], &mut rng)?.map(|v| v * 0.8));
    let b1 = Param::named("b1", Tensor::zeros([hidden])?);
    let w2 = Param::named(
        "w2",
        Tensor::randn([hidden, 1], &mut rng)?.map(|v| v / (hidden as f64).sqrt()),
    );
    let b2 = Param::named("b2", Tensor::zeros([1])?);

    let lion = Lion {
        betas: (0.9, 0.99),
        weight_decay: 1e-3,
    };

    // First the checks every built-in rule passes (optim::testing, feature "testing"):
    // state round trip, f32 against f64, groups, determinism, descent, ...
    let report = Kit::new(lion.clone()).run();
    println!("{report}");
    anyhow::ensure!(report.is_ok(), "Lion fails the kit");

    let mut opt = Optim::new(
        vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()],
        3e-3,
        lion,
    )?;
    let steps = 2000;
    let mut sched = CosineAnnealingLr::new(&mut opt, steps, 1e-4)?;

    let mut first = None;
    let mut last = f64::NAN;
    for step in 0..=steps {
        opt.zero_grad();
        let tape = Tape::new();
        let h = (tape.constant(x.clone()).matmul(tape.param(&w1))? + tape.param(&b1)).tanh();
        let pred = h.matmul(tape.param(&w2))? + tape.param(&b2);
        let loss = nn::loss::mse_loss(pred, tape.constant(y.clone()))?;
        last = loss.item()?;
        first.get_or_insert(last);
        if step % 200 == 0 {
            println!("step {step:5}  lr {:.2e}  mse {last:.6}", opt.lr());
        }
        if step == steps {
            break;
        }
        loss.backward()?;
        opt.step()?;
        sched.step(&mut opt)?;
    }
    let first = first.unwrap_or(last);
    println!("mse {first:.4} -> {last:.6} with Lion, an optimiser defined in this file");
    anyhow::ensure!(last < first / 20.0, "Lion did not fit sin(x)");
    Ok(())
}
