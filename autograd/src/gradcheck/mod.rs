//! Gradient checking by central finite differences in f64.
//!
//! [`gradcheck`] compares every entry of the Jacobian that reverse mode computes against
//! `(f(x + ε) - f(x - ε)) / 2ε`, with PyTorch's defaults (ε = 1e-6, atol = 1e-5,
//! rtol = 1e-3). It checks both reverse sweeps: [`Tape::grad`](crate::Tape::grad), built
//! from every op's differentiable rule, and [`Var::backward`](crate::Var::backward), which
//! training runs and which uses an op's first-order fast path
//! ([`Op::backward_values`](crate::Op::backward_values)) where it has one, so a fast path
//! cannot drift from the rule it accelerates.
//!
//! Fast mode compares random projections `uᵀJv` instead, for large inputs: several per
//! input, with ±1 entries so that a single wrong Jacobian entry enters every projection at
//! full size. A fast-mode failure is re-run in full for the failing input, as PyTorch does,
//! so the report still names the worst element. [`gradgradcheck`] checks second
//! derivatives by running the same check on the vector-Jacobian product.
//!
//! On failure the report also *blames* an op: it re-checks every recorded op of the
//! function locally (its own backward rule and fast path against finite differences of its
//! own forward, and for second order the derivative of its rule against finite differences
//! of the rule) and names the first one that disagrees, with the source line that recorded
//! it.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | options, [`gradcheck`], [`gradgradcheck`], the comparison loop |
//! | `jacobian.rs` | numerical and analytical Jacobians and projections |
//! | `blame.rs` | local checks of single ops, to name the culprit |
//!
//! The report types live in [`crate::report`].
//!
//! ```
//! use autograd::{gradcheck, GradcheckOptions, Tensor};
//! let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3])?;
//! // f(x) = Σ sin(x)·x
//! gradcheck(|v| Ok(v[0].sin().mul(v[0])?.sum()), &[x], &GradcheckOptions::default())?;
//! # Ok::<(), autograd::Error>(())
//! ```

mod blame;
mod jacobian;

use std::panic::Location;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};
use crate::var::Var;

pub use crate::report::{Blame, GradcheckReport, Mode, Rule, Sweep};

/// Tolerances and mode of a gradient check. Defaults are PyTorch's.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Finite-difference step (finite, positive).
    pub eps: f64,
    /// Absolute tolerance (finite, non-negative).
    pub atol: f64,
    /// Relative tolerance against the numerical value (finite, non-negative).
    pub rtol: f64,
    /// Compare random projections `uᵀJv` instead of every entry.
    pub fast: bool,
    /// Random projections per input in fast mode (at least 1). Each has ±1 entries, so a
    /// single wrong Jacobian entry `e` changes it by exactly `|e|`; several guard against
    /// errors that cancel in one projection and against a projection whose own size (and
    /// so whose relative tolerance) happens to be large.
    pub projections: usize,
    /// Seed of the random projections (fast mode), gradgradcheck's cotangent and the local
    /// second-order checks.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            fast: false,
            projections: 4,
            seed: 0,
        }
    }
}

impl GradcheckOptions {
    /// Checks the options: a zero or NaN step, or a negative or NaN tolerance, would make
    /// a check fail on a correct op (or pass on a wrong one).
    ///
    /// ```
    /// use autograd::GradcheckOptions;
    /// let bad = GradcheckOptions { eps: 0.0, ..GradcheckOptions::default() };
    /// assert!(bad.validate("gradcheck").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming the first bad option.
    #[track_caller]
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let checks: [(&'static str, f64, bool, &'static str); 4] = [
            (
                "eps",
                self.eps,
                self.eps.is_finite() && self.eps > 0.0,
                "the step must be finite and positive",
            ),
            (
                "atol",
                self.atol,
                self.atol.is_finite() && self.atol >= 0.0,
                "a tolerance must be finite and non-negative",
            ),
            (
                "rtol",
                self.rtol,
                self.rtol.is_finite() && self.rtol >= 0.0,
                "a tolerance must be finite and non-negative",
            ),
            (
                "projections",
                self.projections as f64,
                !self.fast || self.projections > 0,
                "fast mode needs at least one projection",
            ),
        ];
        for (name, value, ok, reason) in checks {
            if !ok {
                return Err(Error::InvalidOption {
                    op,
                    name,
                    value,
                    reason,
                    location: Location::caller(),
                });
            }
        }
        Ok(())
    }

    /// The mode these options run in.
    pub fn mode(&self) -> Mode {
        if self.fast {
            Mode::Fast {
                projections: self.projections,
            }
        } else {
            Mode::Full
        }
    }
}

/// Checks the gradients of `f` at `inputs` against central finite differences in f64.
///
/// `f` builds its output from `Var`s of the inputs (any output shape). Every Jacobian
/// entry is compared (or, with `fast`, random projections per input), as computed by both
/// [`Tape::grad`](crate::Tape::grad) and [`Var::backward`](crate::Var::backward).
///
/// # Errors
/// [`Error::InvalidOption`] for bad options; [`Error::Gradcheck`] with a
/// [`GradcheckReport`] on a mismatch; `f`'s own errors.
#[track_caller]
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>], opts: &GradcheckOptions) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    opts.validate("gradcheck")?;
    match check(&f, inputs, opts, 1)? {
        None => Ok(()),
        Some(mut report) => {
            report.blame = blame::first_order(&f, inputs, opts)?;
            Err(Error::Gradcheck(Box::new(report)))
        }
    }
}

/// Checks second derivatives: [`gradcheck`] applied to `x ↦ Jᵀu` (the vector-Jacobian
/// product of `f` with a fixed random cotangent `u`), which covers every backward rule's
/// own backward rule along the way. A failure is blamed on an op whose rule fails a
/// first-order local check, or else on the first op whose rule is not the right function
/// of its inputs (a second-order local check).
///
/// # Errors
/// [`Error::InvalidOption`] for bad options; [`Error::Gradcheck`] (with `order = 2`) on a
/// mismatch; `f`'s own errors.
#[track_caller]
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>], opts: &GradcheckOptions) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    opts.validate("gradgradcheck")?;
    let out_shape = jacobian::eval(&f, inputs)?.shape().clone();
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x9e37_79b9);
    let u = Tensor::<f64>::randn(out_shape, &mut rng)?;
    let vjp = func(|vars| {
        let tape = vars[0].tape();
        let y = f(vars)?;
        let c = tape.constant(u.clone());
        let gs = tape.vjp(y, c, vars)?;
        let flat = gs
            .iter()
            .map(|g| g.reshape([g.shape().numel()]))
            .collect::<Result<Vec<_>>>()?;
        Var::concat(&flat, 0)
    });
    match check(&vjp, inputs, opts, 2)? {
        None => Ok(()),
        Some(mut report) => {
            report.blame = match blame::first_order(&vjp, inputs, opts)? {
                Some(b) => Some(b),
                None => blame::second_order(&f, inputs, opts)?,
            };
            Err(Error::Gradcheck(Box::new(report)))
        }
    }
}

/// Pins a closure's signature to the higher-ranked one the checks need. A closure passed
/// straight to [`gradcheck`] gets it by inference; one stored in a `let` first does not,
/// so wrap it in `func`:
///
/// ```
/// use autograd::{gradcheck, gradcheck::func, GradcheckOptions, Tensor};
/// let f = func(|v| Ok(v[0].exp().sum()));
/// gradcheck(&f, &[Tensor::from_vec(vec![0.1, 0.2], [2])?], &GradcheckOptions::default())?;
/// # Ok::<(), autograd::Error>(())
/// ```
pub fn func<F>(f: F) -> F
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    f
}

fn close(num: f64, ana: f64, o: &GradcheckOptions) -> bool {
    (num - ana).abs() <= o.atol + o.rtol * num.abs()
}

/// How far past the tolerance an entry is (NaN counts as worst).
fn excess(num: f64, ana: f64, o: &GradcheckOptions) -> f64 {
    let e = (num - ana).abs() - (o.atol + o.rtol * num.abs());
    if e.is_nan() {
        f64::INFINITY
    } else {
        e
    }
}

fn unravel(mut i: usize, shape: &Shape) -> Vec<usize> {
    let mut out = vec![0; shape.rank()];
    for d in (0..shape.rank()).rev() {
        out[d] = i % shape[d].max(1);
        i /= shape[d].max(1);
    }
    out
}

/// A Jacobian entry out of tolerance: (excess over tolerance, output k, element j,
/// numerical, analytical).
type Entry = (f64, usize, usize, f64, f64);

/// The comparison, without the blame: `None` when every check passes.
fn check<F>(
    f: &F,
    xs: &[Tensor<f64>],
    opts: &GradcheckOptions,
    order: u8,
) -> Result<Option<GradcheckReport>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    if !opts.fast {
        return full_check(f, xs, opts, order, None);
    }
    let Some(fail) = jacobian::failing_projection(f, xs, opts)? else {
        return Ok(None);
    };
    // Confirm element-wise, as PyTorch's fast mode does, to name the worst entry.
    if let Some(r) = full_check(f, xs, opts, order, Some(fail.input))? {
        return Ok(Some(r));
    }
    Ok(Some(GradcheckReport {
        order,
        mode: opts.mode(),
        sweep: fail.sweep,
        input: fail.input,
        input_shape: xs[fail.input].shape().clone(),
        output_index: None,
        element: vec![],
        numerical: fail.numerical,
        analytical: fail.analytical,
        atol: opts.atol,
        rtol: opts.rtol,
        output_op: fail.output_op,
        blame: None,
        projection_only: true,
    }))
}

/// Every Jacobian entry of input `only` (or of every input), from both sweeps, against
/// finite differences. The worst entry is reported, from the `Tape::grad` sweep when it
/// fails (its rules are the reference), else from the `Var::backward` sweep.
fn full_check<F>(
    f: &F,
    xs: &[Tensor<f64>],
    opts: &GradcheckOptions,
    order: u8,
    only: Option<usize>,
) -> Result<Option<GradcheckReport>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let jac = jacobian::analytical(f, xs)?;
    for i in 0..xs.len() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let mut worst: [Option<Entry>; 2] = [None, None];
        for j in 0..xs[i].numel() {
            let col = jacobian::column(f, xs, i, j, opts.eps)?;
            for (k, &num) in col.iter().enumerate() {
                for (s, rows) in [&jac.grad, &jac.backward].into_iter().enumerate() {
                    let ana = rows[i][k][j];
                    if !close(num, ana, opts) {
                        let e = excess(num, ana, opts);
                        if worst[s].is_none_or(|w| e > w.0) {
                            worst[s] = Some((e, k, j, num, ana));
                        }
                    }
                }
            }
        }
        let found = match worst {
            [Some(w), _] => Some((Sweep::Grad, w)),
            [None, Some(w)] => Some((Sweep::Backward, w)),
            [None, None] => None,
        };
        if let Some((sweep, (_, k, j, num, ana))) = found {
            return Ok(Some(GradcheckReport {
                order,
                mode: opts.mode(),
                sweep,
                input: i,
                input_shape: xs[i].shape().clone(),
                output_index: Some(k),
                element: unravel(j, xs[i].shape()),
                numerical: num,
                analytical: ana,
                atol: opts.atol,
                rtol: opts.rtol,
                output_op: jac.output_op,
                blame: None,
                projection_only: false,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_would_blame_a_correct_op_are_refused() {
        let x = [Tensor::from_vec(vec![0.3, -0.2], [2]).unwrap()];
        let f = func(|v| Ok(v[0].exp().sum()));
        let d = GradcheckOptions::default();
        for (opts, name) in [
            (
                GradcheckOptions {
                    eps: 0.0,
                    ..d.clone()
                },
                "eps",
            ),
            (
                GradcheckOptions {
                    eps: f64::NAN,
                    ..d.clone()
                },
                "eps",
            ),
            (
                GradcheckOptions {
                    eps: -1e-6,
                    ..d.clone()
                },
                "eps",
            ),
            (
                GradcheckOptions {
                    eps: f64::INFINITY,
                    ..d.clone()
                },
                "eps",
            ),
            (
                GradcheckOptions {
                    atol: -1e-5,
                    ..d.clone()
                },
                "atol",
            ),
            (
                GradcheckOptions {
                    atol: f64::NAN,
                    ..d.clone()
                },
                "atol",
            ),
            (
                GradcheckOptions {
                    rtol: f64::NAN,
                    ..d.clone()
                },
                "rtol",
            ),
            (
                GradcheckOptions {
                    rtol: -0.1,
                    ..d.clone()
                },
                "rtol",
            ),
            (
                GradcheckOptions {
                    fast: true,
                    projections: 0,
                    ..d.clone()
                },
                "projections",
            ),
        ] {
            for e in [
                gradcheck(f, &x, &opts).unwrap_err(),
                gradgradcheck(f, &x, &opts).unwrap_err(),
            ] {
                match &e {
                    Error::InvalidOption {
                        name: n, location, ..
                    } => {
                        assert_eq!(*n, name, "{e}");
                        assert_eq!(location.file(), file!(), "{e}");
                    }
                    other => panic!("{name}: expected InvalidOption, got {other}"),
                }
            }
        }
        // zero tolerances are strict, not invalid
        let strict = GradcheckOptions {
            atol: 0.0,
            rtol: 0.0,
            ..d
        };
        assert!(strict.validate("gradcheck").is_ok());
    }
}
