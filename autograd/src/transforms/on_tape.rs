//! Transforms on `Var`s of the caller's tape. Everything they return is recorded, so it can
//! be differentiated again: a penalty on a Jacobian, the gradient of a Hessian-vector
//! product, a JVP inside a loss.

use std::panic::Location;

use crate::error::{Error, Loc, Result};
use crate::tape::Tape;
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

use super::functional::{dot_all, joined, one_hot};

fn check_same_shapes<T: Float>(
    op: &'static str,
    inputs: &[Var<'_, T>],
    given: &[Var<'_, T>],
    loc: Loc,
) -> Result<()> {
    if inputs.len() != given.len() || inputs.is_empty() {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "{} vectors given for {} inputs (need one per input, at least one)",
                given.len(),
                inputs.len()
            ),
            shape: Shape::from([given.len()]),
            location: loc,
        });
    }
    for (x, v) in inputs.iter().zip(given) {
        let (xs, vs) = (x.shape(), v.shape());
        if xs != vs {
            return Err(Error::ShapeMismatch {
                op,
                expected: xs,
                got: vs,
                location: loc,
            });
        }
    }
    Ok(())
}

impl<T: Float> Tape<T> {
    /// The Jacobian of `output` with respect to each of `inputs`, as `Var`s of shape
    /// `output.shape ++ input.shape` on this tape (one recorded reverse pass per output
    /// element), so it can be differentiated again.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2])?);
    /// let j = tape.jacobian(x.square(), &[x])?[0];          // diag(2x)
    /// assert_eq!(j.value().to_vec(), vec![2.0, 0.0, 0.0, 4.0]);
    /// let g = tape.grad(j.sum(), &[x])?[0];                  // d Σ J / dx = 2
    /// assert_eq!(g.value().to_vec(), vec![2.0, 2.0]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ForeignVar`] when a var is from another tape; [`Error::NoBackward`] on a
    /// path through an op without a backward rule.
    #[track_caller]
    pub fn jacobian<'t>(
        &'t self,
        output: Var<'t, T>,
        inputs: &[Var<'t, T>],
    ) -> Result<Vec<Var<'t, T>>> {
        let loc = Location::caller();
        if inputs
            .iter()
            .chain([&output])
            .any(|v| !std::ptr::eq(v.tape(), self))
        {
            return Err(Error::ForeignVar {
                op: "jacobian",
                location: loc,
            });
        }
        let out_shape = output.shape();
        let n = out_shape.numel();
        let mut rows: Vec<Vec<Var<'t, T>>> = vec![Vec::with_capacity(n); inputs.len()];
        for k in 0..n {
            let e = self.constant(one_hot(k, &out_shape)?);
            for (r, g) in rows.iter_mut().zip(self.vjp(output, e, inputs)?) {
                r.push(g);
            }
        }
        rows.into_iter()
            .zip(inputs)
            .map(|(r, x)| {
                let shape = joined(&out_shape, &x.shape());
                if r.is_empty() {
                    // An empty output has an empty Jacobian, which nothing can flow through.
                    return Ok(self.constant(Tensor::from_vec(vec![], shape)?));
                }
                Var::stack(&r, 0)?.reshape(shape)
            })
            .collect()
    }

    /// The Hessian blocks of a one-element `output`: `h[a][b]`, of shape `inputs[a].shape ++
    /// inputs[b].shape`, holds `∂²output / ∂inputs[a][I] ∂inputs[b][J]`, recorded on this
    /// tape (the Jacobian of the recorded gradient).
    ///
    /// # Errors
    /// [`Error::NotScalar`] for a multi-element output; as [`Tape::jacobian`] otherwise.
    #[track_caller]
    pub fn hessian<'t>(
        &'t self,
        output: Var<'t, T>,
        inputs: &[Var<'t, T>],
    ) -> Result<Vec<Vec<Var<'t, T>>>> {
        let grads = self.grad(output, inputs)?;
        grads.iter().map(|&g| self.jacobian(g, inputs)).collect()
    }

    /// The Hessian-vector product `H·v` of a one-element `output`, one `Var` per input
    /// (`(H·v)_a = Σ_b ∂²output/∂x_a∂x_b · v_b`), by reverse over reverse; recorded.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2])?);
    /// let v = tape.constant(Tensor::from_vec(vec![1.0, 0.0], [2])?);
    /// let hv = tape.hvp(x.powf(3.0).sum(), &[x], &[v])?[0];  // H = diag(6x)
    /// assert_eq!(hv.value().to_vec(), vec![6.0, 0.0]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `vectors` and `inputs` differ in number (or are
    /// empty); [`Error::ShapeMismatch`] when a vector's shape is not its input's;
    /// [`Error::NotScalar`] for a multi-element output; as [`Tape::grad`] otherwise.
    #[track_caller]
    pub fn hvp<'t>(
        &'t self,
        output: Var<'t, T>,
        inputs: &[Var<'t, T>],
        vectors: &[Var<'t, T>],
    ) -> Result<Vec<Var<'t, T>>> {
        check_same_shapes("hvp", inputs, vectors, Location::caller())?;
        let grads = self.grad(output, inputs)?;
        self.grad(dot_all(&grads, vectors)?, inputs)
    }

    /// The Jacobian-vector product `J·t = Σ_i ∂output/∂x_i · t_i` (forward mode), of
    /// `output`'s shape, recorded on this tape.
    ///
    /// Built from two reverse passes (the double-vjp construction): `u ↦ Jᵀu` is linear,
    /// so `∂⟨Jᵀu, t⟩/∂u = J·t`; `u` is a zero placeholder. Every backward rule on the
    /// path must itself be differentiable, which all built-in rules are.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2])?);
    /// let t = tape.constant(Tensor::from_vec(vec![1.0, 1.0], [2])?);
    /// let jt = tape.jvp(x.powf(3.0), &[x], &[t])?;           // 3x²·t
    /// assert_eq!(jt.value().to_vec(), vec![3.0, 12.0]);
    /// let d = tape.grad(jt.sum(), &[x])?[0];                 // d Σ 3x² / dx = 6x
    /// assert_eq!(d.value().to_vec(), vec![6.0, 12.0]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tape::hvp`] (for the tangents), without the one-element condition.
    #[track_caller]
    pub fn jvp<'t>(
        &'t self,
        output: Var<'t, T>,
        inputs: &[Var<'t, T>],
        tangents: &[Var<'t, T>],
    ) -> Result<Var<'t, T>> {
        check_same_shapes("jvp", inputs, tangents, Location::caller())?;
        let u = self.var(output.value().zeros_like());
        let vjps = self.vjp(output, u, inputs)?;
        Ok(self.grad(dot_all(&vjps, tangents)?, &[u])?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::super::functional::tests::{rand, smooth};
    use crate::{assert_close, gradcheck, gradgradcheck, transforms, GradcheckOptions};

    use super::*;

    /// Flattens and joins vars into one vector, so a check sees every entry.
    fn flat<'t>(vs: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        let f = vs
            .iter()
            .map(|v| v.reshape([v.shape().numel()]))
            .collect::<Result<Vec<_>>>()?;
        Var::concat(&f, 0)
    }

    #[test]
    fn tape_forms_match_the_closure_forms() {
        let xs = [rand(&[3], 1), rand(&[3, 2], 2)];
        let tape = Tape::new();
        let v: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
        let y = smooth(&v).unwrap();
        let j = tape.jacobian(y, &v).unwrap();
        let (_, j2) = transforms::jacobian(smooth, &xs).unwrap();
        for (a, b) in j.iter().zip(&j2) {
            assert_close!(a.value(), b);
        }
        let s = y.tanh().sum();
        let h = tape.hessian(s, &v).unwrap();
        let h2 = transforms::hessian(
            transforms::func(|v: &[Var<'_, f64>]| Ok(smooth(v)?.tanh().sum())),
            &xs,
        )
        .unwrap();
        for (ra, rb) in h.iter().zip(&h2) {
            for (a, b) in ra.iter().zip(rb) {
                assert_close!(a.value(), b);
            }
        }
    }

    #[test]
    fn jacobian_on_tape_is_differentiable() {
        // x ↦ J_f(x, y) for both inputs: its gradient needs every rule's own rule
        gradcheck(
            |v| flat(&v[0].tape().jacobian(smooth(v)?, v)?),
            &[rand(&[3], 3), rand(&[3, 2], 4)],
            &GradcheckOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn hessian_and_hvp_on_tape_are_differentiable() {
        let f = transforms::func(|v: &[Var<'_, f64>]| {
            Ok(v[0].sin().mul(v[1].sum_axes(&[1], false)?)?.exp().sum())
        });
        let xs = [rand(&[3], 5), rand(&[3, 2], 6)];
        gradcheck(
            |v| {
                let h = v[0].tape().hessian(f(v)?, v)?;
                flat(&[h[0][0], h[0][1], h[1][1]])
            },
            &xs,
            &GradcheckOptions::default(),
        )
        .unwrap();
        // with respect to the point and to the vector alike
        let vs = [rand(&[3], 7), rand(&[3, 2], 8)];
        let all = [xs[0].clone(), xs[1].clone(), vs[0].clone(), vs[1].clone()];
        gradcheck(
            |v| flat(&v[0].tape().hvp(f(&v[..2])?, &v[..2], &v[2..])?),
            &all,
            &GradcheckOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn jvp_on_tape_is_differentiable_in_the_point_and_the_tangent() {
        let xs = [rand(&[3], 9), rand(&[3, 2], 10)];
        let ts = [rand(&[3], 11), rand(&[3, 2], 12)];
        let all = [xs[0].clone(), xs[1].clone(), ts[0].clone(), ts[1].clone()];
        let g = transforms::func(|v: &[Var<'_, f64>]| {
            v[0].tape().jvp(smooth(&v[..2])?, &v[..2], &v[2..])
        });
        gradcheck(g, &all, &GradcheckOptions::default()).unwrap();
        gradgradcheck(g, &all, &GradcheckOptions::default()).unwrap();
    }

    #[test]
    fn vars_of_another_tape_are_refused() {
        let (t1, t2) = (Tape::<f64>::new(), Tape::new());
        let x = t1.var(rand(&[2], 13));
        let y = t2.var(rand(&[2], 14));
        let e = t2.jacobian(y.exp(), &[x]).unwrap_err();
        assert!(matches!(e, Error::ForeignVar { op: "jacobian", .. }), "{e}");
        let e = t2.jvp(y.exp(), &[y], &[t2.var(rand(&[3], 1))]).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "jvp", .. }), "{e}");
        let e = t2.hvp(y.exp().sum(), &[y], &[]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { op: "hvp", .. }), "{e}");
    }

    #[test]
    fn an_empty_output_has_an_empty_jacobian() {
        let tape = Tape::<f64>::new();
        let x = tape.var(rand(&[2], 15));
        let empty = x.narrow(0, 0, 0).unwrap();
        let j = tape.jacobian(empty, &[x]).unwrap()[0];
        assert_eq!(j.dims(), vec![0, 2]);
    }
}
