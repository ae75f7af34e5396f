//! Scans along an axis: `cumsum` and `cumprod`.
//!
//! The gradient of a cumulative sum is the reverse cumulative sum of the incoming gradient,
//! so [`CumSum`] carries a direction flag and its backward is itself reversed. The gradient
//! of a cumulative product is written with `cumsum`, products and quotients of `Var`s, with
//! the zeros of the input treated separately (where dividing by the input would give 0/0),
//! so it stays exact and differentiable again.

use crate::error::Result;
use crate::op::{BackwardCx, Op};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// `(outer, n, inner)`: the lanes of `axis`, each `n` long with stride `inner`.
fn lanes(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Calls `f(flat indices of one lane, in order along the axis)` for every lane; `reverse`
/// walks each lane from its end.
fn for_each_lane(shape: &Shape, axis: usize, reverse: bool, mut f: impl FnMut(&[usize])) {
    // An empty tensor has no lane, but may have a huge axis or outer extent: no loop, no
    // lane buffer.
    if shape.numel() == 0 {
        return;
    }
    let (outer, n, inner) = lanes(shape, axis);
    let mut lane = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            lane.clear();
            lane.extend((0..n).map(|p| (o * n + p) * inner + i));
            if reverse {
                lane.reverse();
            }
            f(&lane);
        }
    }
}

/// Running sum along `axis` (from the end when `reverse`); the gradient is the running sum
/// of `g` in the other direction.
#[derive(Debug, Clone, Copy)]
pub struct CumSum {
    axis: usize,
    reverse: bool,
}
impl<T: Float> Op<T> for CumSum {
    fn name(&self) -> &'static str {
        "cumsum"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let src = x[0].as_slice();
        let mut out = vec![T::zero(); src.len()];
        for_each_lane(x[0].shape(), self.axis, self.reverse, |lane| {
            let mut acc = T::zero();
            for &k in lane {
                acc += src[k];
                out[k] = acc;
            }
        });
        Tensor::from_vec(out, x[0].shape().clone())
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad().infallible(CumSum {
            axis: self.axis,
            reverse: !self.reverse,
        }))])
    }
}

/// Running product along `axis`.
///
/// With `y` the output, `dx_i = Σ_{j≥i} g_j · y_j / x_i` wherever `x_i ≠ 0` (an identity
/// around such a point, so its derivatives are right too). At a zero `x_i = 0` the sum is
/// taken directly, as `Σ_{j≥i} g_j · y'_j` with `y'` the running product of `x` with `x_i`
/// replaced by 1: that is `∂y_j/∂x_i` exactly, and a polynomial in the other inputs.
#[derive(Debug, Clone, Copy)]
pub struct CumProd {
    axis: usize,
}
impl<T: Float> Op<T> for CumProd {
    fn name(&self) -> &'static str {
        "cumprod"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let src = x[0].as_slice();
        let mut out = vec![T::zero(); src.len()];
        for_each_lane(x[0].shape(), self.axis, false, |lane| {
            let mut acc = T::one();
            for &k in lane {
                acc *= src[k];
                out[k] = acc;
            }
        });
        Tensor::from_vec(out, x[0].shape().clone())
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, y, g) = (cx.input(0), cx.output(), cx.grad());
        let rev = CumSum {
            axis: self.axis,
            reverse: true,
        };
        let xv = x.value();
        let tail = g.mul(y)?.infallible(rev);
        if !xv.as_slice().contains(&T::zero()) {
            return Ok(vec![Some(tail.div(x)?)]);
        }
        let shape = xv.shape().clone();
        let src = xv.as_slice();
        let nonzero = xv.map(|v| if v == T::zero() { T::zero() } else { T::one() });
        // zeros[r][k] = 1 where k is the (r+1)-th zero of its lane.
        let mut zeros: Vec<Vec<T>> = Vec::new();
        for_each_lane(&shape, self.axis, false, |lane| {
            for (r, &k) in lane.iter().filter(|&&k| src[k] == T::zero()).enumerate() {
                if zeros.len() == r {
                    zeros.push(vec![T::zero(); src.len()]);
                }
                zeros[r][k] = T::one();
            }
        });
        let tape = cx.tape();
        let one = tape.constant(Tensor::scalar(T::one()));
        let zero = tape.constant(Tensor::scalar(T::zero()));
        // Nonzero x_i: tail / x_i; the zeros' own entries come from the loop below.
        let safe_x = x.where_cond(&nonzero, one)?;
        let mut grad = tail.div(safe_x)?.where_cond(&nonzero, zero)?;
        for at in zeros {
            let at = Tensor::from_vec(at, shape.clone())?;
            let x1 = one.where_cond(&at, x)?;
            let y1 = x1.infallible(CumProd { axis: self.axis });
            let gz = g.mul(y1)?.infallible(rev).where_cond(&at, zero)?;
            grad = grad.add(gz)?;
        }
        Ok(vec![Some(grad)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Running sum along `axis` (`torch.cumsum`): `y_i = Σ_{j≤i} x_j`. The gradient is the
    /// running sum of the incoming gradient from the end, `dx_i = Σ_{j≥i} g_j`.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3.], [3])?);
    /// assert_eq!(x.cumsum(0)?.value().to_vec(), vec![1., 3., 6.]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn cumsum(self, axis: isize) -> Result<Self> {
        let axis = self.shape().axis("cumsum", axis)?;
        self.apply1(CumSum {
            axis,
            reverse: false,
        })
    }

    /// Running product along `axis` (`torch.cumprod`): `y_i = Π_{j≤i} x_j`. The gradient is
    /// `dx_i = Σ_{j≥i} g_j y_j / x_i`, computed without dividing by zero where the lane
    /// holds zeros (exact there too, and differentiable again).
    ///
    /// # Errors
    /// [`crate::Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn cumprod(self, axis: isize) -> Result<Self> {
        let axis = self.shape().axis("cumprod", axis)?;
        self.apply1(CumProd { axis })
    }
}

#[cfg(test)]
mod tests {
    use crate::{gradcheck, gradgradcheck, GradcheckOptions, Tape, Tensor};

    #[test]
    fn cumsum_and_its_reverse_gradient() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::arange(6).unwrap().reshape([2, 3]).unwrap());
        let y = x.cumsum(1).unwrap();
        assert_eq!(y.value().to_vec(), vec![0., 1., 3., 3., 7., 12.]);
        // d/dx_i Σ_j y_j = number of j ≥ i
        let g = tape.grad(y.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![3., 2., 1., 3., 2., 1.]);
        assert_eq!(
            x.cumsum(0).unwrap().value().to_vec(),
            vec![0., 1., 2., 3., 5., 7.]
        );
    }

    #[test]
    fn cumprod_gradient_is_exact_at_zeros() {
        // f = Σ_j cumprod(x)_j for x = [2, 0, 3, 0, 5]: y = [2, 0, 0, 0, 0]
        // df/dx0 = 1 (only y0 survives), df/dx1 = 2 + 2·3 = 8 (y1, y2 through x1 with
        // the later zero killing the rest), df/dx2..4 = 0.
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![2., 0., 3., 0., 5.], [5]).unwrap());
        let y = x.cumprod(0).unwrap();
        assert_eq!(y.value().to_vec(), vec![2., 0., 0., 0., 0.]);
        let g = tape.grad(y.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![1., 8., 0., 0., 0.]);
        let o = GradcheckOptions::default();
        for data in [
            vec![0.5, -1.2, 0.0, 2.0, 0.7, 0.0],
            vec![0.0, 0.3, -0.8, 1.1, 0.0, 0.4],
        ] {
            let x = Tensor::from_vec(data, [2, 3]).unwrap();
            for axis in [0, 1] {
                gradcheck(|v| v[0].cumprod(axis), std::slice::from_ref(&x), &o).unwrap();
                gradgradcheck(|v| v[0].cumprod(axis), std::slice::from_ref(&x), &o).unwrap();
            }
        }
    }
}
