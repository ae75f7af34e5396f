//! Transforms of a closure of `Var`s evaluated at given tensors, returning tensors.
//!
//! Inputs are bound as fresh [`Param`]s, so every first-order sweep is the fast
//! [`Var::backward`] pass (plain-value rules, scratch nodes freed as it goes): a Jacobian
//! with many rows does not grow the tape by one backward graph per row.

use std::panic::Location;

use crate::error::{Error, Loc, Result};
use crate::param::Param;
use crate::tape::Tape;
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// Binds `inputs` as fresh params of `tape`.
pub(super) fn bind<'t, T: Float>(
    tape: &'t Tape<T>,
    inputs: &[Tensor<T>],
) -> (Vec<Param<T>>, Vec<Var<'t, T>>) {
    let params: Vec<Param<T>> = inputs.iter().map(|x| Param::new(x.clone())).collect();
    let vars = params.iter().map(|p| tape.param(p)).collect();
    (params, vars)
}

/// Each param's accumulated gradient (zeros where none reached it), clearing it.
pub(super) fn take_grads<T: Float>(params: &[Param<T>]) -> Vec<Tensor<T>> {
    params
        .iter()
        .map(|p| {
            let g = p.grad().unwrap_or_else(|| p.value().zeros_like());
            p.zero_grad();
            g
        })
        .collect()
}

/// `outer ++ inner` as a shape.
pub(super) fn joined(outer: &Shape, inner: &Shape) -> Shape {
    outer.iter().chain(inner.iter()).copied().collect()
}

/// Checks that `given[i]` has the shape of `inputs[i]` for every `i` (and as many of them).
pub(super) fn check_like<T: Float>(
    op: &'static str,
    inputs: &[Shape],
    given: &[Tensor<T>],
    loc: Loc,
) -> Result<()> {
    if inputs.len() != given.len() {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("{} tensors given for {} inputs", given.len(), inputs.len()),
            shape: Shape::from([given.len()]),
            location: loc,
        });
    }
    for (s, g) in inputs.iter().zip(given) {
        if s != g.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: s.clone(),
                got: g.shape().clone(),
                location: loc,
            });
        }
    }
    Ok(())
}

pub(super) fn one_hot<T: Float>(k: usize, shape: &Shape) -> Result<Tensor<T>> {
    let mut e = vec![T::zero(); shape.numel()];
    e[k] = T::one();
    Tensor::from_vec(e, shape.clone())
}

/// `d output / d params` by one fast reverse sweep per element of `output`: one tensor per
/// param, of shape `output.shape ++ param.shape`.
pub(super) fn jacobian_rows<T: Float>(
    output: Var<'_, T>,
    params: &[Param<T>],
) -> Result<Vec<Tensor<T>>> {
    let out_shape = output.shape();
    let n = out_shape.numel();
    // Each Jacobian's shape is checked and its buffer reserved before any sweep: an
    // output and a parameter of valid sizes can still make one no tensor can have.
    let mut data: Vec<Vec<T>> = params
        .iter()
        .map(|p| crate::tensor::buffer("jacobian", &joined(&out_shape, &p.shape())))
        .collect::<Result<_>>()?;
    for k in 0..n {
        output.backward_with(one_hot(k, &out_shape)?)?;
        for (d, g) in data.iter_mut().zip(take_grads(params)) {
            d.extend_from_slice(g.as_slice());
        }
    }
    data.into_iter()
        .zip(params)
        .map(|(d, p)| Tensor::from_vec(d, joined(&out_shape, &p.shape())))
        .collect()
}

/// The sum over `i` of `Σ a_i · b_i` (every pair of the same shape).
#[track_caller]
pub(super) fn dot_all<'t, T: Float>(a: &[Var<'t, T>], b: &[Var<'t, T>]) -> Result<Var<'t, T>> {
    let mut acc: Option<Var<'t, T>> = None;
    for (x, y) in a.iter().zip(b) {
        let d = x.mul(*y)?.sum();
        acc = Some(match acc {
            None => d,
            Some(s) => s.add(d)?,
        });
    }
    acc.ok_or(Error::InvalidArgument {
        op: "dot",
        reason: "no inputs to differentiate with respect to".into(),
        shape: Shape::scalar(),
        location: Location::caller(),
    })
}

/// Pins a closure stored in a `let` to the higher-ranked signature the transforms take (a
/// closure passed straight to them gets it by inference), for any element type; the
/// counterpart of [`gradcheck::func`](crate::gradcheck::func).
///
/// ```
/// use autograd::{transforms::{func, value_and_grad}, Tensor};
/// let f = func(|v| Ok(v[0].square().sum()));
/// let (_, g) = value_and_grad(&f, &[Tensor::from_vec(vec![1.0f32, 2.0], [2])?])?;
/// assert_eq!(g[0].to_vec(), vec![2.0, 4.0]);
/// # Ok::<(), autograd::Error>(())
/// ```
pub fn func<T, F>(f: F) -> F
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    f
}

#[track_caller]
fn check_scalar<T: Float>(op: &'static str, y: Var<'_, T>) -> Result<()> {
    if y.shape().numel() != 1 {
        return Err(Error::NotScalar {
            op,
            shape: y.shape(),
            location: Location::caller(),
        });
    }
    Ok(())
}

/// `f(inputs)` and its gradient with respect to every input (JAX's `value_and_grad`).
///
/// ```
/// use autograd::{transforms::value_and_grad, Tensor};
/// // f(x) = Σ x³, ∇f = 3x²
/// let (y, g) = value_and_grad(|v| Ok(v[0].powf(3.0).sum()), &[Tensor::from_vec(vec![1.0f64, 2.0], [2])?])?;
/// assert_eq!((y.item()?, g[0].to_vec()), (9.0, vec![3.0, 12.0]));
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::NotScalar`] when `f`'s output has more than one element (use [`vjp`]); `f`'s
/// own errors; [`Error::NoBackward`] on a path through an op without a backward rule.
#[track_caller]
pub fn value_and_grad<T, F>(f: F, inputs: &[Tensor<T>]) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let tape = Tape::new();
    let (params, vars) = bind(&tape, inputs);
    let y = f(&vars)?;
    check_scalar("value_and_grad", y)?;
    y.backward()?;
    Ok((y.value(), take_grads(&params)))
}

/// `f(inputs)` and the vector-Jacobian product `Jᵀ·cotangent` for every input (as
/// `torch.autograd.functional.vjp`).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `cotangent`'s shape is not the output's; as
/// [`value_and_grad`] otherwise.
#[track_caller]
pub fn vjp<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    cotangent: &Tensor<T>,
) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let loc = Location::caller();
    let tape = Tape::new();
    let (params, vars) = bind(&tape, inputs);
    let y = f(&vars)?;
    if &y.shape() != cotangent.shape() {
        return Err(Error::ShapeMismatch {
            op: "vjp",
            expected: y.shape(),
            got: cotangent.shape().clone(),
            location: loc,
        });
    }
    y.backward_with(cotangent.clone())?;
    Ok((y.value(), take_grads(&params)))
}

/// `f(inputs)` and the Jacobian-vector product `J·tangents = Σ_i ∂f/∂x_i · t_i` (forward
/// mode, as `torch.func.jvp`), by the double-vjp construction: see the
/// [module docs](super) for why and what it costs.
///
/// ```
/// use autograd::{transforms::jvp, Tensor};
/// // f(x) = sin(x) elementwise, so J·t = cos(x)·t
/// let x = Tensor::from_vec(vec![0.0f64, 1.0], [2])?;
/// let (_, jt) = jvp(|v| Ok(v[0].sin()), &[x], &[Tensor::from_vec(vec![2.0, 1.0], [2])?])?;
/// assert_eq!(jt.to_vec(), vec![2.0, 1.0f64.cos()]);
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] when the number of tangents differs from the number of inputs
/// (or there are none); [`Error::ShapeMismatch`] when a tangent's shape is not its input's;
/// [`Error::NoBackward`] when a backward rule on the path is not itself differentiable;
/// `f`'s own errors.
#[track_caller]
pub fn jvp<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    tangents: &[Tensor<T>],
) -> Result<(Tensor<T>, Tensor<T>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let loc = Location::caller();
    let shapes: Vec<Shape> = inputs.iter().map(|x| x.shape().clone()).collect();
    check_like("jvp", &shapes, tangents, loc)?;
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    let t: Vec<_> = tangents.iter().map(|t| tape.constant(t.clone())).collect();
    // Jᵀu is recorded (it is differentiated next), at u = 0: it is linear in u.
    let u = tape.var(y.value().zeros_like());
    let vjps = tape.vjp(y, u, &vars)?;
    let s = dot_all(&vjps, &t)?;
    // Only the value of d⟨Jᵀu, t⟩/du = J·t is wanted: this sweep records nothing, and it
    // stops at u instead of running on through f's own graph.
    let jv = tape.no_grad(|| tape.grad(s, &[u]))?;
    Ok((y.value(), jv[0].value()))
}

/// `f(inputs)` and the Jacobian of `f` with respect to each input, of shape
/// `output.shape ++ input.shape` (`J[i..][j..] = ∂f_i/∂x_j`, as `torch.func.jacrev`).
///
/// ```
/// use autograd::{transforms::jacobian, Tensor};
/// // f(x) = A·x is linear, so its Jacobian is A
/// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2])?;
/// let x = Tensor::from_vec(vec![0.5, -1.0], [2, 1])?;
/// let (_, j) = jacobian(|v| v[0].tape().constant(a.clone()).matmul(v[0])?.reshape([3]), &[x])?;
/// assert_eq!(j[0].dims(), &[3, 2, 1]);
/// assert_eq!(j[0].to_vec(), a.to_vec());
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// `f`'s own errors; [`Error::NoBackward`] on a path through an op without a backward rule.
pub fn jacobian<T, F>(f: F, inputs: &[Tensor<T>]) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let tape = Tape::new();
    let (params, vars) = bind(&tape, inputs);
    let y = f(&vars)?;
    let jac = jacobian_rows(y, &params)?;
    Ok((y.value(), jac))
}

/// The Hessian of a scalar `f` in blocks: `h[a][b]` has shape `inputs[a].shape ++
/// inputs[b].shape` and holds `∂²f / ∂x_a[I] ∂x_b[J]` at `[I.., J..]` (as
/// `torch.func.hessian(f, argnums=(0, 1, ..))`). `h[b][a]` is `h[a][b]` with the index
/// groups swapped.
///
/// # Errors
/// [`Error::NotScalar`] when `f`'s output has more than one element; [`Error::NoBackward`]
/// when a backward rule on the path is not itself differentiable; `f`'s own errors.
#[track_caller]
pub fn hessian<T, F>(f: F, inputs: &[Tensor<T>]) -> Result<Vec<Vec<Tensor<T>>>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let tape = Tape::new();
    let (params, vars) = bind(&tape, inputs);
    let y = f(&vars)?;
    check_scalar("hessian", y)?;
    // The gradient is recorded; each row of a block is then one fast sweep through it.
    let grads = tape.grad(y, &vars)?;
    grads.iter().map(|&g| jacobian_rows(g, &params)).collect()
}

/// `f(inputs)` and the Hessian-vector product `H·v` of a scalar `f`, one tensor per input
/// (`(H·v)_a = Σ_b ∂²f/∂x_a∂x_b · v_b`), by reverse over reverse: the gradient is recorded,
/// and `⟨∇f, v⟩` is differentiated once more.
///
/// # Errors
/// [`Error::NotScalar`] for a multi-element output; [`Error::InvalidArgument`] /
/// [`Error::ShapeMismatch`] when `vectors` does not match the inputs; as [`hessian`]
/// otherwise.
#[track_caller]
pub fn hvp<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    vectors: &[Tensor<T>],
) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let loc = Location::caller();
    let shapes: Vec<Shape> = inputs.iter().map(|x| x.shape().clone()).collect();
    check_like("hvp", &shapes, vectors, loc)?;
    let tape = Tape::new();
    let (params, vars) = bind(&tape, inputs);
    let y = f(&vars)?;
    check_scalar("hvp", y)?;
    let grads = tape.grad(y, &vars)?;
    let v: Vec<_> = vectors.iter().map(|v| tape.constant(v.clone())).collect();
    // d⟨∇f, v⟩/dx = H·v, by the fast first-order sweep into the params.
    dot_all(&grads, &v)?.backward()?;
    Ok((y.value(), take_grads(&params)))
}

#[cfg(test)]
pub(super) mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::assert_close;

    /// Values uniform in [-1, 1), fixed by `seed`.
    pub(crate) fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(data, shape).unwrap()
    }

    /// A smooth map [3] × [3, 2] → [2, 2] that mixes both inputs: with
    /// `a = tanh(x)ᵀ·(y ⊙ sin y)` ([1, 2]), `f = aᵀ·colsum(eʸ) + aᵀ ⊙ y[0..2]`.
    pub(crate) fn smooth<'t>(v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        let (x, y) = (v[0], v[1]);
        let a = x.tanh().reshape([1, 3])?.matmul(y.mul(y.sin())?)?; // [1, 2]
        let b = y.exp().sum_axes(&[0], true)?; // [1, 2]
        a.t()?.matmul(b)?.add(a.t()?.mul(y.narrow(0, 0, 2)?)?)
    }

    /// The Jacobian by central differences, `output.shape ++ input.shape` per input.
    fn numerical_jacobian<F>(f: &F, xs: &[Tensor<f64>]) -> Vec<Tensor<f64>>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
    {
        let eval = |xs: &[Tensor<f64>]| {
            let tape = Tape::new();
            let v: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
            f(&v).unwrap().value()
        };
        let out_shape = eval(xs).shape().clone();
        let eps = 1e-6;
        xs.iter()
            .enumerate()
            .map(|(i, x)| {
                let n = x.numel();
                let mut jac = vec![0.0; out_shape.numel() * n];
                for j in 0..n {
                    let (mut p, mut m) = (xs.to_vec(), xs.to_vec());
                    p[i].as_mut_slice()[j] += eps;
                    m[i].as_mut_slice()[j] -= eps;
                    let (yp, ym) = (eval(&p), eval(&m));
                    for k in 0..out_shape.numel() {
                        jac[k * n + j] = (yp.as_slice()[k] - ym.as_slice()[k]) / (2.0 * eps);
                    }
                }
                Tensor::from_vec(jac, joined(&out_shape, x.shape())).unwrap()
            })
            .collect()
    }

    /// `J` flattened to `[out, in]`, times `v` flattened.
    fn mat_vec(j: &Tensor<f64>, v: &Tensor<f64>) -> Vec<f64> {
        let n = v.numel();
        j.as_slice()
            .chunks(n)
            .map(|row| row.iter().zip(v.as_slice()).map(|(a, b)| a * b).sum())
            .collect()
    }

    #[test]
    fn jacobian_of_a_linear_map_is_its_matrix() {
        let a = rand(&[4, 3], 1);
        let x = rand(&[3], 2);
        let (y, j) = jacobian(
            |v| {
                let m = v[0].tape().constant(a.clone());
                m.matmul(v[0].reshape([3, 1])?)?.reshape([4])
            },
            &[x],
        )
        .unwrap();
        assert_eq!(y.dims(), &[4]);
        // each row is Aᵀ·e_k: products with 0 and 1 only, so exact
        assert_eq!(j[0].dims(), &[4, 3]);
        assert_eq!(j[0].to_vec(), a.to_vec());
    }

    #[test]
    fn jacobian_matches_finite_differences_for_every_input() {
        let xs = [rand(&[3], 3), rand(&[3, 2], 4)];
        let (_, j) = jacobian(smooth, &xs).unwrap();
        let num = numerical_jacobian(&smooth, &xs);
        for (a, n) in j.iter().zip(&num) {
            assert_eq!(a.dims(), n.dims());
            assert_close!(a, n, atol = 1e-8, rtol = 1e-6);
        }
    }

    #[test]
    fn jvp_equals_jacobian_times_tangent_and_vjp_equals_its_transpose() {
        let xs = [rand(&[3], 5), rand(&[3, 2], 6)];
        let ts = [rand(&[3], 7), rand(&[3, 2], 8)];
        let (y, j) = jacobian(smooth, &xs).unwrap();
        let (y2, jv) = jvp(smooth, &xs, &ts).unwrap();
        assert_eq!(y, y2);
        // J·t = Σ_i J_i·t_i
        let expected: Vec<f64> = mat_vec(&j[0], &ts[0])
            .iter()
            .zip(mat_vec(&j[1], &ts[1]))
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(jv.dims(), y.dims());
        assert_close!(jv.to_vec(), expected);
        // uᵀJ: column sums of J weighted by u
        let u = rand(&[2, 2], 9);
        let (_, g) = vjp(smooth, &xs, &u).unwrap();
        for (gi, ji) in g.iter().zip(&j) {
            let n = gi.numel();
            let expected: Vec<f64> = (0..n)
                .map(|c| {
                    (0..u.numel())
                        .map(|k| u.as_slice()[k] * ji.as_slice()[k * n + c])
                        .sum()
                })
                .collect();
            assert_close!(gi.to_vec(), expected);
        }
    }

    #[test]
    fn hessian_of_a_quadratic_form_is_its_symmetrised_matrix() {
        // f(x, y) = ½ xᵀAx + xᵀBy: H_xx = (A + Aᵀ)/2, H_xy = B, H_yx = Bᵀ, H_yy = 0
        let a = rand(&[3, 3], 10);
        let b = rand(&[3, 2], 11);
        let f = func(|v: &[Var<'_, f64>]| {
            let tape = v[0].tape();
            let (x, y) = (v[0].reshape([3, 1])?, v[1].reshape([2, 1])?);
            let q = x
                .t()?
                .matmul(tape.constant(a.clone()))?
                .matmul(x)?
                .mul_scalar(0.5);
            let c = x.t()?.matmul(tape.constant(b.clone()))?.matmul(y)?;
            Ok(q.add(c)?.sum())
        });
        let h = hessian(f, &[rand(&[3], 12), rand(&[2], 13)]).unwrap();
        let sym = a.add(&a.transpose(0, 1).unwrap()).unwrap().map(|v| v / 2.0);
        assert_close!(h[0][0], sym);
        assert_close!(h[0][1], b);
        assert_close!(h[1][0], b.transpose(0, 1).unwrap());
        assert_eq!(h[1][1].to_vec(), vec![0.0; 4]);
    }

    #[test]
    fn hessian_blocks_are_symmetric_and_hvp_is_hessian_times_vector() {
        let f = func(|v: &[Var<'_, f64>]| Ok(smooth(v)?.tanh().sum()));
        let xs = [rand(&[3], 14), rand(&[3, 2], 15)];
        let h = hessian(f, &xs).unwrap();
        let n = [3, 6];
        for a in 0..2 {
            for b in 0..2 {
                assert_eq!(h[a][b].dims().len(), xs[a].rank() + xs[b].rank());
                // h[a][b][i, j] = h[b][a][j, i]
                for i in 0..n[a] {
                    for j in 0..n[b] {
                        let (x, y) = (
                            h[a][b].as_slice()[i * n[b] + j],
                            h[b][a].as_slice()[j * n[a] + i],
                        );
                        assert_close!(x, y, atol = 1e-12, rtol = 1e-10);
                    }
                }
            }
        }
        let vs = [rand(&[3], 16), rand(&[3, 2], 17)];
        let (_, hv) = hvp(f, &xs, &vs).unwrap();
        for a in 0..2 {
            let expected: Vec<f64> = (0..2)
                .map(|b| {
                    let flat = h[a][b].reshape([n[a], n[b]]).unwrap();
                    mat_vec(&flat, &vs[b])
                })
                .reduce(|p, q| p.iter().zip(q).map(|(x, y)| x + y).collect())
                .unwrap();
            assert_close!(hv[a].to_vec(), expected);
        }
    }

    #[test]
    fn mismatched_or_non_scalar_arguments_are_typed_errors() {
        let x = rand(&[3], 18);
        let e = jvp(
            |v| Ok(v[0].exp()),
            std::slice::from_ref(&x),
            &[rand(&[2], 1)],
        )
        .unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "jvp", .. }), "{e}");
        let e = jvp(|v| Ok(v[0].exp()), std::slice::from_ref(&x), &[]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { op: "jvp", .. }), "{e}");
        let e = hvp(
            |v| Ok(v[0].exp()),
            std::slice::from_ref(&x),
            std::slice::from_ref(&x),
        )
        .unwrap_err();
        assert!(matches!(e, Error::NotScalar { op: "hvp", .. }), "{e}");
        let e = hessian(|v| Ok(v[0].exp()), std::slice::from_ref(&x)).unwrap_err();
        assert!(matches!(e, Error::NotScalar { op: "hessian", .. }), "{e}");
        let e = value_and_grad(|v| Ok(v[0].exp()), std::slice::from_ref(&x)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NotScalar {
                    op: "value_and_grad",
                    ..
                }
            ),
            "{e}"
        );
        let e = vjp(|v| Ok(v[0].exp()), &[x], &rand(&[4], 1)).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "vjp", .. }), "{e}");
        assert!(e.location().unwrap().file().ends_with("functional.rs"));
    }

    #[test]
    fn an_input_the_output_ignores_gets_zero_derivatives() {
        let xs = [rand(&[2], 19), rand(&[3], 20)];
        let (_, j) = jacobian(|v| Ok(v[0].sin()), &xs).unwrap();
        assert_eq!(j[1].dims(), &[2, 3]);
        assert_eq!(j[1].to_vec(), vec![0.0; 6]);
        let h = hessian(|v| Ok(v[0].sin().sum()), &xs).unwrap();
        assert_eq!(h[0][1].to_vec(), vec![0.0; 6]);
        assert_eq!(h[1][1].to_vec(), vec![0.0; 9]);
    }

    #[test]
    fn transforms_run_in_f32() {
        let x = Tensor::from_vec(vec![0.5f32, -1.0], [2]).unwrap();
        let (_, jv) = jvp(
            |v| Ok(v[0].square()),
            std::slice::from_ref(&x),
            &[x.ones_like()],
        )
        .unwrap();
        assert_eq!(jv.to_vec(), vec![1.0f32, -2.0]);
        let h = hessian(|v| Ok(v[0].powf(3.0).sum()), &[x]).unwrap();
        assert_eq!(h[0][0].to_vec(), vec![3.0f32, 0.0, 0.0, -6.0]);
    }
}
