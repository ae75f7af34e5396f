//! The objectives the kit and the PyTorch parity tests optimise, written with autograd ops
//! so every gradient comes from the tape.

use autograd::{Float, Param, Tape, Tensor};
use serde_json::Value;

/// A test objective over one parameter tensor.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    /// `L(p) = Σᵢ cᵢ·(pᵢ − tᵢ)²`: convex, minimum `t`.
    Quadratic {
        /// Curvatures `c` (positive for a convex bowl).
        c: Vec<f64>,
        /// The minimiser `t`.
        t: Vec<f64>,
    },
    /// `L(p) = Σᵢ cᵢ·(pᵢ − tᵢ)² + k·Σᵢ pᵢ⁴` (`optim_trajectories.json`'s "quartic").
    Quartic {
        /// Curvatures `c`.
        c: Vec<f64>,
        /// Targets `t`.
        t: Vec<f64>,
        /// The quartic coefficient `k`.
        quartic_coef: f64,
    },
    /// `L(x, y) = (a − x)² + b·(y − x²)²` over a 2-element parameter.
    Rosenbrock {
        /// `a` (1 in the classic form).
        a: f64,
        /// `b` (100 in the classic form).
        b: f64,
    },
}

fn floats(v: &Value, what: &str) -> Result<Vec<f64>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what}: expected an array of numbers"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| format!("{what}: {x} is not a number"))
        })
        .collect()
}

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v[key]
        .as_f64()
        .ok_or_else(|| format!("problem: {key:?} is missing or not a number"))
}

impl Problem {
    /// The problem named `name` (`"quartic"` or `"rosenbrock"`) from its entry in the
    /// `problems` block of a reference file (`optim_trajectories.json`'s schema).
    ///
    /// # Errors
    /// A message naming the unknown problem or the missing field.
    pub fn from_json(name: &str, spec: &Value) -> Result<Self, String> {
        match name {
            "quartic" => Ok(Problem::Quartic {
                c: floats(&spec["c"], "quartic.c")?,
                t: floats(&spec["t"], "quartic.t")?,
                quartic_coef: number(spec, "quartic_coef")?,
            }),
            "rosenbrock" => Ok(Problem::Rosenbrock {
                a: number(spec, "a")?,
                b: number(spec, "b")?,
            }),
            other => Err(format!("no definition for problem {other:?}")),
        }
    }

    /// The loss at `p`'s value; `backward` has accumulated its gradient into `p`.
    ///
    /// # Errors
    /// An autograd error when `p`'s shape does not fit the problem.
    pub fn loss_and_backward<T: Float>(&self, p: &Param<T>) -> autograd::Result<f64> {
        let tape = Tape::new();
        let w = tape.param(p);
        let constant = |v: &[f64]| {
            Tensor::from_vec(v.iter().map(|&x| T::of(x)).collect(), [v.len()])
                .map(|t| tape.constant(t))
        };
        let loss = match self {
            Problem::Quadratic { c, t } => {
                let (c, t) = (constant(c)?, constant(t)?);
                c.mul(w.sub(t)?.square())?.sum()
            }
            Problem::Quartic { c, t, quartic_coef } => {
                let (c, t) = (constant(c)?, constant(t)?);
                c.mul(w.sub(t)?.square())?
                    .sum()
                    .add(w.powf(T::of(4.0)).sum().mul_scalar(T::of(*quartic_coef)))?
            }
            Problem::Rosenbrock { a, b } => {
                let x = w.narrow(0, 0, 1)?;
                let y = w.narrow(0, 1, 1)?;
                x.rsub_scalar(T::of(*a))
                    .square()
                    .add(y.sub(x.square())?.square().mul_scalar(T::of(*b)))?
                    .sum()
            }
        };
        let value = loss.item()?.as_f64();
        loss.backward()?;
        Ok(value)
    }

    /// The loss at `p` without touching gradients.
    ///
    /// # Errors
    /// As [`loss_and_backward`](Self::loss_and_backward).
    pub fn loss<T: Float>(&self, p: &Param<T>) -> autograd::Result<f64> {
        let saved = p.grad();
        let v = self.loss_and_backward(p);
        p.set_grad(saved)?;
        v
    }
}
