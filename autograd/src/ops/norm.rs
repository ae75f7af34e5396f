//! Norms and what is built on them: `vector_norm` (any order p, ±inf, 0),
//! `frobenius_norm`, `normalize`, `cosine_similarity`.
//!
//! [`VectorNorm`] is one op with its own backward so that a zero norm gets a zero gradient
//! (as in PyTorch) instead of the NaN that `sqrt(Σx²)` composed from primitives gives at 0.

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::op::{BackwardCx, Op};
use crate::tensor::{Float, Tensor};
use crate::var::Var;

/// `(Σ |x|ᵖ)^{1/p}` over `axes`, with `p = ±inf` the largest / smallest `|x|` and `p = 0`
/// the count of nonzero elements.
#[derive(Debug, Clone)]
pub struct VectorNorm {
    ord: f64,
    axes: SmallVec<[usize; 4]>,
    keepdim: bool,
}

impl VectorNorm {
    fn iaxes(&self) -> SmallVec<[isize; 4]> {
        self.axes.iter().map(|&a| a as isize).collect()
    }
}

/// 1 where `v ≠ 0`, else 0.
fn nonzero<T: Float>(t: &Tensor<T>) -> Tensor<T> {
    t.map(|v| if v == T::zero() { T::zero() } else { T::one() })
}

/// `sign(v)` with `sign(0) = 0`.
fn sign<T: Float>(t: &Tensor<T>) -> Tensor<T> {
    t.map(|v| {
        if v > T::zero() {
            T::one()
        } else if v < T::zero() {
            -T::one()
        } else {
            T::zero()
        }
    })
}

impl<T: Float> Op<T> for VectorNorm {
    fn name(&self) -> &'static str {
        "vector_norm"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (x, p, axes) = (x[0], self.ord, self.iaxes());
        if axes.is_empty() {
            return Ok(if p == 0.0 {
                nonzero(x)
            } else {
                x.map(|v| v.abs())
            });
        }
        let k = self.keepdim;
        if p.is_infinite() {
            return Ok(x.map(|v| v.abs()).extreme_axes(&axes, k, p > 0.0)?.0);
        }
        if p == 0.0 {
            return nonzero(x).sum_axes(&axes, k);
        }
        if p == 1.0 {
            return x.map(|v| v.abs()).sum_axes(&axes, k);
        }
        if p == 2.0 {
            return Ok(x.map(|v| v * v).sum_axes(&axes, k)?.map(|s| s.sqrt()));
        }
        let pt = T::of(p);
        let inv = T::of(1.0 / p);
        Ok(x.map(|v| v.abs().powf(pt))
            .sum_axes(&axes, k)?
            .map(|s| s.powf(inv)))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, p) = (cx.input(0), self.ord);
        if p == 0.0 {
            // A count: piecewise constant.
            return Ok(vec![None]);
        }
        let xs = x.shape();
        let kept = xs.reduced(&self.axes, true);
        let g = cx.grad().reshape(kept.clone())?;
        let n = cx.output().reshape(kept)?;
        let tape = cx.tape();
        let xv = x.value();
        if p == 1.0 {
            return Ok(vec![Some(g.mul(tape.constant(sign(&xv)))?)]);
        }
        if p.is_infinite() {
            // The gradient is shared equally by the elements that attain the extreme.
            let hit = attains(&xv, &n.value())?;
            let count = hit.sum_axes(&self.iaxes(), true)?;
            let w = hit.mul(&sign(&xv))?.div(&count)?;
            return Ok(vec![Some(g.mul(tape.constant(w))?)]);
        }
        // A zero norm means x = 0 there: the gradient is 0 (PyTorch's masked rule), so
        // divide by 1 instead of 0 and let the factor x (or |x|^{p-1}) give the zero.
        let nz = nonzero(&n.value());
        let one = tape.constant(Tensor::scalar(T::one()));
        let safe_n = n.where_cond(&nz, one)?;
        if p == 2.0 {
            return Ok(vec![Some(x.mul(g.div(safe_n)?)?)]);
        }
        let pm1 = T::of(p - 1.0);
        let num = x.abs().powf(pm1).mul(tape.constant(sign(&xv)))?;
        Ok(vec![Some(num.mul(g.div(safe_n.powf(pm1))?)?)])
    }
}

/// 1 where `|x| == n` (with `n` broadcast over the reduced axes), else 0.
fn attains<T: Float>(x: &Tensor<T>, n: &Tensor<T>) -> Result<Tensor<T>> {
    x.zip_with(n, "vector_norm", |v, m| {
        if v.abs() == m {
            T::one()
        } else {
            T::zero()
        }
    })
}

impl<'t, T: Float> Var<'t, T> {
    /// The vector `ord`-norm over `axes` (all when empty), as
    /// `torch.linalg.vector_norm(x, ord, dim, keepdim)`: `(Σ |x|ᵖ)^{1/p}`; `ord = inf` /
    /// `-inf` is the largest / smallest `|x|`, `ord = 0` the number of nonzero elements.
    ///
    /// The gradient is `sign(x)·|x|^{p-1} / ‖x‖^{p-1}` (for p = 2, `x/‖x‖`), zero where the
    /// norm is zero; for ±inf it is shared equally by the elements attaining the extreme;
    /// for p = 0 there is none.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![3., -4.], [2])?);
    /// assert_eq!(x.vector_norm(2.0, &[], false)?.item()?, 5.0);
    /// assert_eq!(x.vector_norm(1.0, &[], false)?.item()?, 7.0);
    /// assert_eq!(x.vector_norm(f64::INFINITY, &[], false)?.item()?, 4.0);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range or repeated; [`Error::InvalidArgument`] for
    /// a NaN order, or an infinite order over an empty reduction.
    #[track_caller]
    pub fn vector_norm(self, ord: f64, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.norm_named("vector_norm", ord, axes, keepdim)
    }

    #[track_caller]
    fn norm_named(self, op: &'static str, ord: f64, axes: &[isize], keepdim: bool) -> Result<Self> {
        let shape = self.shape();
        let axes = shape.axes(op, axes)?;
        if ord.is_nan() {
            return Err(Error::invalid(op, "the order is NaN", &shape));
        }
        if ord.is_infinite() && axes.iter().any(|&a| shape[a] == 0) {
            return Err(Error::invalid(
                op,
                "an infinite-order norm of an empty reduction is undefined",
                &shape,
            ));
        }
        self.apply1(VectorNorm { ord, axes, keepdim })
    }

    /// The Frobenius norm of the matrices in the last two axes (leading axes are a batch),
    /// as `torch.linalg.matrix_norm(x, ord='fro', keepdim)`: `√(Σᵢⱼ xᵢⱼ²)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the rank is below 2.
    #[track_caller]
    pub fn frobenius_norm(self, keepdim: bool) -> Result<Self> {
        if self.rank() < 2 {
            return Err(Error::invalid(
                "frobenius_norm",
                "needs at least 2 axes",
                &self.shape(),
            ));
        }
        self.norm_named("frobenius_norm", 2.0, &[-2, -1], keepdim)
    }

    /// `x / max(‖x‖_p, eps)` along `axis` (`torch.nn.functional.normalize(x, p, dim, eps)`;
    /// PyTorch's eps is 1e-12).
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for a NaN `p`.
    #[track_caller]
    pub fn normalize(self, p: f64, axis: isize, eps: f64) -> Result<Self> {
        let n = self.norm_named("normalize", p, &[axis], true)?;
        self.div(n.clamp(T::of(eps), T::infinity()))
    }

    /// Cosine similarity along `axis`, broadcasting the two operands
    /// (`torch.nn.functional.cosine_similarity(x1, x2, dim, eps)`, PyTorch's eps 1e-8):
    /// `Σ (x1/max(‖x1‖, eps)) · (x2/max(‖x2‖, eps))`.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast; [`Error::Axis`] for an axis
    /// out of range of the broadcast shape; [`Error::ForeignVar`].
    #[track_caller]
    pub fn cosine_similarity(self, other: Self, axis: isize, eps: f64) -> Result<Self> {
        if !std::ptr::eq(self.tape(), other.tape()) {
            return Err(Error::ForeignVar {
                op: "cosine_similarity",
                location: std::panic::Location::caller(),
            });
        }
        let shape = self
            .shape()
            .broadcast(&other.shape(), "cosine_similarity")?;
        let ax = shape.axis("cosine_similarity", axis)? as isize;
        let (a, b) = (
            self.broadcast_to(shape.clone())?,
            other.broadcast_to(shape)?,
        );
        let eps = T::of(eps);
        let na = a.vector_norm(2.0, &[ax], true)?.clamp(eps, T::infinity());
        let nb = b.vector_norm(2.0, &[ax], true)?.clamp(eps, T::infinity());
        a.div(na)?.mul(b.div(nb)?)?.sum_axes(&[ax], false)
    }
}

#[cfg(test)]
mod tests {
    use crate::{gradcheck, gradgradcheck, GradcheckOptions, Tape, Tensor};

    #[test]
    fn zero_norm_has_zero_gradient() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![0., 0., 3., 4.], [2, 2]).unwrap());
        let n = x.vector_norm(2.0, &[1], false).unwrap();
        assert_eq!(n.value().to_vec(), vec![0., 5.]);
        let g = tape.grad(n.sum(), &[x]).unwrap()[0];
        let g = g.value().to_vec();
        assert_eq!(&g[..2], &[0., 0.]);
        assert!(
            (g[2] - 0.6).abs() < 1e-15 && (g[3] - 0.8).abs() < 1e-15,
            "{g:?}"
        );
    }

    #[test]
    fn inf_norm_splits_its_gradient_between_ties() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![-2., 1., 2.], [3]).unwrap());
        let n = x.vector_norm(f64::INFINITY, &[], false).unwrap();
        let g = tape.grad(n, &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![-0.5, 0., 0.5]);
    }

    #[test]
    fn norms_match_finite_differences_for_several_orders() {
        let x = Tensor::from_vec(vec![0.5, -1.2, 0.3, 2.0, -0.7, 1.1], [2, 3]).unwrap();
        let o = GradcheckOptions::default();
        for p in [1.0, 2.0, 3.0, 1.5, f64::INFINITY, f64::NEG_INFINITY] {
            gradcheck(
                |v| v[0].vector_norm(p, &[1], false),
                std::slice::from_ref(&x),
                &o,
            )
            .unwrap();
        }
        for p in [2.0, 3.0, 1.5] {
            gradgradcheck(
                |v| v[0].vector_norm(p, &[0], true),
                std::slice::from_ref(&x),
                &o,
            )
            .unwrap();
        }
        gradgradcheck(
            |v| v[0].normalize(2.0, -1, 1e-12),
            std::slice::from_ref(&x),
            &o,
        )
        .unwrap();
    }
}
