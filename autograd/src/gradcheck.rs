//! Gradient checking by central finite differences in f64.
//!
//! [`gradcheck`] compares every entry of the Jacobian that reverse mode computes against
//! `(f(x + ε) - f(x - ε)) / 2ε`, with PyTorch's defaults (ε = 1e-6, atol = 1e-5,
//! rtol = 1e-3). Fast mode compares random projections `uᵀJv` instead, for large inputs; a
//! fast-mode failure is re-run in full for the failing input, as PyTorch does, so the report
//! still names the worst element. [`gradgradcheck`] checks second derivatives by running
//! the same check on the vector-Jacobian product.
//!
//! On failure the report also *blames* an op: it re-checks every recorded op of the
//! function locally (its own backward rule against finite differences of its own forward)
//! and names the first one that disagrees, with the source line that recorded it.
//!
//! ```
//! use autograd::{gradcheck, GradcheckOptions, Tensor};
//! let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3])?;
//! // f(x) = Σ sin(x)·x
//! gradcheck(|v| Ok(v[0].sin().mul(v[0])?.sum()), &[x], &GradcheckOptions::default())?;
//! # Ok::<(), autograd::Error>(())
//! ```

use std::fmt;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{Error, Loc, Result};
use crate::tape::Tape;
use crate::tensor::{Shape, Tensor};
use crate::var::Var;

/// Tolerances and mode of a gradient check. Defaults are PyTorch's.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (against the numerical value).
    pub rtol: f64,
    /// Compare random projections `uᵀJv` instead of every entry.
    pub fast: bool,
    /// Seed of the random projections (fast mode) and gradgradcheck's cotangent.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            fast: false,
            seed: 0,
        }
    }
}

/// An op whose own backward rule disagrees with finite differences of its forward.
#[derive(Clone, Debug)]
pub struct Blame {
    /// The op's name.
    pub op: &'static str,
    /// Where it was recorded.
    pub location: Loc,
    /// Which of its inputs.
    pub input: usize,
    /// The worst element of that input.
    pub index: Vec<usize>,
    /// Finite-difference value.
    pub numerical: f64,
    /// The rule's value.
    pub analytical: f64,
}

/// Where and by how much a gradient check failed.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// 1 for [`gradcheck`], 2 for [`gradgradcheck`].
    pub order: u8,
    /// Index of the input whose gradient is wrong.
    pub input: usize,
    /// That input's shape.
    pub input_shape: Shape,
    /// Flat index into the output of the worst entry (`None` for a projection).
    pub output_index: Option<usize>,
    /// Multi-index into the input of the worst entry (empty for a projection).
    pub element: Vec<usize>,
    /// Finite-difference value.
    pub numerical: f64,
    /// Reverse-mode value.
    pub analytical: f64,
    /// Tolerances used.
    pub atol: f64,
    /// Relative tolerance used.
    pub rtol: f64,
    /// The last op of the function (what produced its output) and its line.
    pub output_op: Option<(&'static str, Loc)>,
    /// The first recorded op whose own rule fails a local check, if one does.
    pub blame: Option<Blame>,
    /// Whether this came from a fast-mode projection that a full re-check did not confirm
    /// element-wise.
    pub projection_only: bool,
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.order == 1 {
            "gradcheck"
        } else {
            "gradgradcheck"
        };
        let err = (self.numerical - self.analytical).abs();
        let allowed = self.atol + self.rtol * self.numerical.abs();
        writeln!(
            f,
            "{kind}: the Jacobian of the output with respect to input {} (shape {}) is wrong",
            self.input, self.input_shape
        )?;
        if self.projection_only {
            writeln!(f, "  random projection uᵀJv:")?;
        } else {
            write!(f, "  worst entry: input element {:?}", self.element)?;
            if let Some(o) = self.output_index {
                write!(f, ", output element {o}")?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  numerical {:.10e}, analytical {:.10e}: |diff| {:.3e} > atol + rtol·|numerical| = {:.3e}",
            self.numerical, self.analytical, err, allowed
        )?;
        if let Some((op, loc)) = self.output_op {
            writeln!(f, "  output produced by `{op}` at {loc}")?;
        }
        match &self.blame {
            Some(b) => write!(
                f,
                "  culprit: `{}` recorded at {} — its backward rule gives {:.10e} for input {} element {:?}, finite differences {:.10e}",
                b.op, b.location, b.analytical, b.input, b.index, b.numerical
            ),
            None => write!(f, "  no single op fails a local check (look at how the ops are combined)"),
        }
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

/// Evaluates `f` at `xs`. The inputs are recorded as differentiable leaves, exactly as
/// in the analytical pass: a function that takes gradients itself (the vector-Jacobian
/// product [`gradgradcheck`] differentiates) would see constants as inputs with zero
/// gradient and evaluate to zero at every point.
fn eval<F>(f: &F, xs: &[Tensor<f64>]) -> Result<Tensor<f64>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    f(&vars).map(|v| v.value())
}

/// `(f(x + ε·dir) - f(x - ε·dir)) / 2ε` with `dir` applied to input `i`.
fn directional<F>(
    f: &F,
    xs: &[Tensor<f64>],
    i: usize,
    dir: &Tensor<f64>,
    eps: f64,
) -> Result<Vec<f64>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let mut plus = xs.to_vec();
    let mut minus = xs.to_vec();
    plus[i].zip_mut_with(dir, |a, d| *a += eps * d)?;
    minus[i].zip_mut_with(dir, |a, d| *a -= eps * d)?;
    let (yp, ym) = (eval(f, &plus)?, eval(f, &minus)?);
    Ok(yp
        .as_slice()
        .iter()
        .zip(ym.as_slice())
        .map(|(p, m)| (p - m) / (2.0 * eps))
        .collect())
}

fn close(num: f64, ana: f64, o: &GradcheckOptions) -> bool {
    (num - ana).abs() <= o.atol + o.rtol * num.abs()
}

/// `jac[i][k][j] = d out_k / d xs[i]_j`, and the op that produced the output.
type Jacobians = (Vec<Vec<Vec<f64>>>, Option<(&'static str, Loc)>);

/// Full Jacobians of `f` at `xs`, reverse mode.
fn analytical_jacobians<F>(f: &F, xs: &[Tensor<f64>]) -> Result<Jacobians>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    let output_op = tape.node_info(y.id());
    let n_out = y.shape().numel();
    let ys = y.shape();
    let mut jac: Vec<Vec<Vec<f64>>> = xs.iter().map(|_| Vec::with_capacity(n_out)).collect();
    for k in 0..n_out {
        let mut e = vec![0.0; n_out];
        e[k] = 1.0;
        let c = tape.constant(Tensor::from_parts(e, ys.clone()));
        let grads = tape.no_grad(|| tape.vjp(y, c, &vars))?;
        for (i, g) in grads.iter().enumerate() {
            jac[i].push(g.value().to_vec());
        }
    }
    Ok((jac, output_op))
}

/// Checks the gradients of `f` at `inputs` against central finite differences in f64.
///
/// `f` builds its output from `Var`s of the inputs (any output shape). Every Jacobian
/// entry is compared (or, with `fast`, one random projection per input).
///
/// # Errors
/// [`Error::Gradcheck`] with a [`GradcheckReport`] on a mismatch; `f`'s own errors.
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>], opts: &GradcheckOptions) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    check(&f, inputs, opts, 1)
}

fn check<F>(f: &F, xs: &[Tensor<f64>], opts: &GradcheckOptions, order: u8) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    if opts.fast {
        if let Some(i) = fast_failure(f, xs, opts)? {
            // Confirm element-wise, as PyTorch's fast mode does, to name the worst entry.
            return match slow_check(f, xs, opts, order, Some(i))? {
                Some(r) => Err(Error::Gradcheck(Box::new(r))),
                None => {
                    let (num, ana) = projection(f, xs, opts, i)?;
                    let (_, output_op) = analytical_jacobians(f, xs)?;
                    Err(Error::Gradcheck(Box::new(GradcheckReport {
                        order,
                        input: i,
                        input_shape: xs[i].shape().clone(),
                        output_index: None,
                        element: vec![],
                        numerical: num,
                        analytical: ana,
                        atol: opts.atol,
                        rtol: opts.rtol,
                        output_op,
                        blame: blame(f, xs, opts)?,
                        projection_only: true,
                    })))
                }
            };
        }
        return Ok(());
    }
    match slow_check(f, xs, opts, order, None)? {
        Some(r) => Err(Error::Gradcheck(Box::new(r))),
        None => Ok(()),
    }
}

/// Random unit-scale directions `u` (output) and `v` (input `i`), fixed by the seed.
fn projection<F>(f: &F, xs: &[Tensor<f64>], opts: &GradcheckOptions, i: usize) -> Result<(f64, f64)>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(i as u64));
    let v = Tensor::<f64>::randn(xs[i].shape().clone(), &mut rng)?;
    let jv = directional(f, xs, i, &v, opts.eps)?;
    let u = Tensor::<f64>::randn([jv.len()], &mut rng)?;
    let num: f64 = jv.iter().zip(u.as_slice()).map(|(a, b)| a * b).sum();
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    let uc = tape.constant(u.reshape(y.shape())?);
    let g = tape.no_grad(|| tape.vjp(y, uc, &vars))?[i].value();
    let ana: f64 = g
        .as_slice()
        .iter()
        .zip(v.as_slice())
        .map(|(a, b)| a * b)
        .sum();
    Ok((num, ana))
}

fn fast_failure<F>(f: &F, xs: &[Tensor<f64>], opts: &GradcheckOptions) -> Result<Option<usize>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    for i in 0..xs.len() {
        let (num, ana) = projection(f, xs, opts, i)?;
        if !close(num, ana, opts) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn slow_check<F>(
    f: &F,
    xs: &[Tensor<f64>],
    opts: &GradcheckOptions,
    order: u8,
    only: Option<usize>,
) -> Result<Option<GradcheckReport>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let (jac, output_op) = analytical_jacobians(f, xs)?;
    for i in 0..xs.len() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        // (excess over tolerance, output k, element j, numerical, analytical)
        let mut worst: Option<(f64, usize, usize, f64, f64)> = None;
        for j in 0..xs[i].numel() {
            let mut e = vec![0.0; xs[i].numel()];
            e[j] = 1.0;
            let col = directional(
                f,
                xs,
                i,
                &Tensor::from_parts(e, xs[i].shape().clone()),
                opts.eps,
            )?;
            for (k, &num) in col.iter().enumerate() {
                let ana = jac[i][k][j];
                if !close(num, ana, opts) {
                    let excess = (num - ana).abs() - (opts.atol + opts.rtol * num.abs());
                    if worst.is_none_or(|w| excess > w.0 || excess.is_nan()) {
                        worst = Some((excess, k, j, num, ana));
                    }
                }
            }
        }
        if let Some((_, k, j, num, ana)) = worst {
            return Ok(Some(GradcheckReport {
                order,
                input: i,
                input_shape: xs[i].shape().clone(),
                output_index: Some(k),
                element: unravel(j, xs[i].shape()),
                numerical: num,
                analytical: ana,
                atol: opts.atol,
                rtol: opts.rtol,
                output_op,
                blame: blame(f, xs, opts)?,
                projection_only: false,
            }));
        }
    }
    Ok(None)
}

/// Re-runs `f` and checks each recorded op's backward rule locally.
fn blame<F>(f: &F, xs: &[Tensor<f64>], opts: &GradcheckOptions) -> Result<Option<Blame>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    for id in 0..=y.id() {
        if let Some(b) = tape.local_check(id, opts)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

impl Tape<f64> {
    /// Checks node `id`'s backward rule against finite differences of its own forward, at
    /// the values recorded on this tape. `None` when it passes or the node is not an op.
    pub(crate) fn local_check(&self, id: usize, opts: &GradcheckOptions) -> Result<Option<Blame>> {
        let Some((parents, out_shape)) = self.op_parents(id) else {
            return Ok(None);
        };
        let vals: Vec<Tensor<f64>> = parents.iter().map(|&p| self.value(p)).collect();
        let n_out = out_shape.numel();
        for (pi, &p) in parents.iter().enumerate() {
            if !self.requires_grad(p) {
                continue;
            }
            let n_in = vals[pi].numel();
            // Analytical rows: vjp of each one-hot output through this node's rule only.
            let mut ana = vec![vec![0.0; n_in]; n_out];
            for (k, row) in ana.iter_mut().enumerate() {
                let mut e = vec![0.0; n_out];
                e[k] = 1.0;
                let g = self.no_grad(|| {
                    let c = self.constant(Tensor::from_parts(e, out_shape.clone()));
                    self.rule_grads(id, c)
                })?;
                if let Some(t) = g.get(pi).and_then(|t| t.as_ref()) {
                    row.copy_from_slice(t.as_slice());
                }
            }
            #[allow(clippy::needless_range_loop)] // j indexes the input and every row
            for j in 0..n_in {
                let mut plus = vals.clone();
                let mut minus = vals.clone();
                plus[pi].as_mut_slice()[j] += opts.eps;
                minus[pi].as_mut_slice()[j] -= opts.eps;
                let (yp, ym) = (self.rerun(id, &plus)?, self.rerun(id, &minus)?);
                let diffs = yp.as_slice().iter().zip(ym.as_slice());
                for ((p, m), row) in diffs.zip(&ana) {
                    let num = (p - m) / (2.0 * opts.eps);
                    if !close(num, row[j], opts) {
                        let (op, location) = self.node_info(id).expect("internal: op node");
                        return Ok(Some(Blame {
                            op,
                            location,
                            input: pi,
                            index: unravel(j, vals[pi].shape()),
                            numerical: num,
                            analytical: row[j],
                        }));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Checks second derivatives: [`gradcheck`] applied to `x ↦ Jᵀu` (the vector-Jacobian
/// product of `f` with a fixed random cotangent `u`), which covers every backward rule's
/// own backward rule along the way.
///
/// # Errors
/// [`Error::Gradcheck`] (with `order = 2`) on a mismatch; `f`'s own errors.
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>], opts: &GradcheckOptions) -> Result<()>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let out_shape = eval(&f, inputs)?.shape().clone();
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x9e37_79b9);
    let u = Tensor::<f64>::randn(out_shape, &mut rng)?;
    let vjp = func(move |vars| {
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
    check(&vjp, inputs, opts, 2)
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
