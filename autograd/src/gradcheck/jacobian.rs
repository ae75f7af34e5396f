//! Jacobians both ways: by central finite differences, and by the two reverse sweeps
//! ([`Tape::grad`] and [`Var::backward`]) as vector-Jacobian products.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{close, GradcheckOptions, Sweep};
use crate::error::{Loc, Result};
use crate::param::Param;
use crate::tape::Tape;
use crate::tensor::{Shape, Tensor};
use crate::var::Var;

/// Evaluates `f` at `xs`. The inputs are recorded as differentiable leaves, exactly as
/// in the analytical pass: a function that takes gradients itself (the vector-Jacobian
/// product [`gradgradcheck`](super::gradgradcheck) differentiates) would see constants as
/// inputs with zero gradient and evaluate to zero at every point.
pub(super) fn eval<F>(f: &F, xs: &[Tensor<f64>]) -> Result<Tensor<f64>>
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

/// Column `j` of the Jacobian with respect to input `i`, by finite differences.
pub(super) fn column<F>(f: &F, xs: &[Tensor<f64>], i: usize, j: usize, eps: f64) -> Result<Vec<f64>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let mut e = vec![0.0; xs[i].numel()];
    e[j] = 1.0;
    directional(f, xs, i, &Tensor::from_parts(e, xs[i].shape().clone()), eps)
}

/// The vector-Jacobian products `Jᵀc` for every input, by each sweep.
struct Vjps {
    grad: Vec<Tensor<f64>>,
    backward: Vec<Tensor<f64>>,
}

/// Records `f` at `xs` twice — inputs as leaves for [`Tape::vjp`], and as [`Param`]s for
/// [`Var::backward_with`], which accumulates into them through the ops' fast paths — and
/// runs `body` with a function from a cotangent to both products, the output's shape, and
/// the op that produced the output.
fn with_vjps<F, R>(
    f: &F,
    xs: &[Tensor<f64>],
    body: impl FnOnce(
        &dyn Fn(&Tensor<f64>) -> Result<Vjps>,
        &Shape,
        Option<(&'static str, Loc)>,
    ) -> Result<R>,
) -> Result<R>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    let params: Vec<Param<f64>> = xs.iter().map(|x| Param::new(x.clone())).collect();
    let ptape = Tape::new();
    let pvars: Vec<_> = params.iter().map(|p| ptape.param(p)).collect();
    let py = f(&pvars)?;
    let vjps = |c: &Tensor<f64>| -> Result<Vjps> {
        let cv = tape.constant(c.clone());
        let grad = tape
            .no_grad(|| tape.vjp(y, cv, &vars))?
            .iter()
            .map(|g| g.value())
            .collect();
        params.iter().for_each(Param::zero_grad);
        py.backward_with(c.clone())?;
        // An input the output does not depend on gets no gradient in its Param.
        let backward = params
            .iter()
            .map(|p| p.grad().unwrap_or_else(|| p.value().zeros_like()))
            .collect();
        Ok(Vjps { grad, backward })
    };
    body(&vjps, &y.shape(), tape.node_info(y.id()))
}

/// `rows[i][k][j] = d out_k / d xs[i]_j`, by each sweep.
pub(super) struct Jacobians {
    pub(super) grad: Vec<Vec<Vec<f64>>>,
    pub(super) backward: Vec<Vec<Vec<f64>>>,
    pub(super) output_op: Option<(&'static str, Loc)>,
}

/// Full Jacobians of `f` at `xs` by both sweeps, one one-hot cotangent per output.
pub(super) fn analytical<F>(f: &F, xs: &[Tensor<f64>]) -> Result<Jacobians>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    with_vjps(f, xs, |vjps, out_shape, output_op| {
        let n_out = out_shape.numel();
        let mut jac = Jacobians {
            grad: xs.iter().map(|_| Vec::with_capacity(n_out)).collect(),
            backward: xs.iter().map(|_| Vec::with_capacity(n_out)).collect(),
            output_op,
        };
        for k in 0..n_out {
            let mut e = vec![0.0; n_out];
            e[k] = 1.0;
            let v = vjps(&Tensor::from_parts(e, out_shape.clone()))?;
            for i in 0..xs.len() {
                jac.grad[i].push(v.grad[i].to_vec());
                jac.backward[i].push(v.backward[i].to_vec());
            }
        }
        Ok(jac)
    })
}

/// A fast-mode projection that failed.
pub(super) struct FailedProjection {
    pub(super) input: usize,
    pub(super) sweep: Sweep,
    pub(super) numerical: f64,
    pub(super) analytical: f64,
    pub(super) output_op: Option<(&'static str, Loc)>,
}

/// ±1 entries: every element of a Jacobian enters `uᵀJv` with weight ±1, so no entry can
/// hide behind a small random coefficient (as a Gaussian draw near 0 lets it).
fn rademacher(shape: &Shape, rng: &mut StdRng) -> Tensor<f64> {
    let data = (0..shape.numel())
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect();
    Tensor::from_parts(data, shape.clone())
}

/// Compares `opts.projections` random projections `uᵀJv` per input, by both sweeps,
/// against finite differences; the first that fails, if any.
pub(super) fn failing_projection<F>(
    f: &F,
    xs: &[Tensor<f64>],
    opts: &GradcheckOptions,
) -> Result<Option<FailedProjection>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    with_vjps(f, xs, |vjps, out_shape, output_op| {
        for i in 0..xs.len() {
            let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(i as u64));
            for _ in 0..opts.projections {
                let v = rademacher(xs[i].shape(), &mut rng);
                let u = rademacher(out_shape, &mut rng);
                let jv = directional(f, xs, i, &v, opts.eps)?;
                let num: f64 = jv.iter().zip(u.as_slice()).map(|(a, b)| a * b).sum();
                let products = vjps(&u)?;
                let dot = |g: &Tensor<f64>| -> f64 {
                    g.as_slice()
                        .iter()
                        .zip(v.as_slice())
                        .map(|(a, b)| a * b)
                        .sum()
                };
                for (sweep, g) in [
                    (Sweep::Grad, &products.grad[i]),
                    (Sweep::Backward, &products.backward[i]),
                ] {
                    let ana = dot(g);
                    if !close(num, ana, opts) {
                        return Ok(Some(FailedProjection {
                            input: i,
                            sweep,
                            numerical: num,
                            analytical: ana,
                            output_op,
                        }));
                    }
                }
            }
        }
        Ok(None)
    })
}
