//! Reductions over all or chosen axes, with `keepdim`: `sum`, `mean`, `max`, `min`,
//! `logsumexp`, `var`, `std`.
//!
//! Axes are `&[isize]` (negative counts from the end); an empty list means every axis.

use smallvec::SmallVec;

use crate::error::Result;
use crate::op::{BackwardCx, Op, ValueGrads};
use crate::tensor::{Float, Tensor};
use crate::var::Var;

/// Sum over `axes`; the gradient is `g` broadcast back over the summed axes.
#[derive(Debug, Clone)]
pub struct Sum {
    axes: SmallVec<[usize; 4]>,
    keepdim: bool,
}
impl<T: Float> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let axes: SmallVec<[isize; 4]> = self.axes.iter().map(|&a| a as isize).collect();
        if axes.is_empty() {
            // Reducing a 0-d tensor over "all" of its no axes is the identity.
            return Ok(x[0].clone());
        }
        x[0].sum_axes(&axes, self.keepdim)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let s = cx.input(0).shape();
        let kept = s.reduced(&self.axes, true);
        Ok(vec![Some(cx.grad().reshape(kept)?.broadcast_to(s)?)])
    }
    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        let s = x[0].shape();
        let g = g.reshape(s.reduced(&self.axes, true)).ok()?;
        Some(smallvec::smallvec![Some(g.broadcast_to(s.clone()).ok()?)])
    }
}

/// Max or min over `axes`. The gradient goes to the first extreme element of each group
/// (the element PyTorch's `max(dim)` returns the index of).
#[derive(Debug, Clone)]
pub struct Extreme {
    axes: SmallVec<[usize; 4]>,
    keepdim: bool,
    max: bool,
}
impl Extreme {
    fn iaxes(&self) -> SmallVec<[isize; 4]> {
        self.axes.iter().map(|&a| a as isize).collect()
    }
}
impl<T: Float> Op<T> for Extreme {
    fn name(&self) -> &'static str {
        if self.max {
            "max"
        } else {
            "min"
        }
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        if self.axes.is_empty() {
            return Ok(x[0].clone());
        }
        Ok(x[0].extreme_axes(&self.iaxes(), self.keepdim, self.max)?.0)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let x = cx.input(0);
        if self.axes.is_empty() {
            return Ok(vec![Some(cx.grad())]);
        }
        let (_, idx) = x.value().extreme_axes(&self.iaxes(), true, self.max)?;
        let g = cx.grad().infallible(super::index::ScatterAddFlat {
            idx: idx.into(),
            shape: x.shape(),
        });
        Ok(vec![Some(g)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Sum of all elements, as a 0-d var.
    #[track_caller]
    pub fn sum(self) -> Self {
        let axes = (0..self.rank()).collect();
        self.infallible(Sum {
            axes,
            keepdim: false,
        })
    }

    /// Sum over `axes` (all when empty).
    ///
    /// # Errors
    /// [`crate::Error::Axis`] for an axis out of range or repeated.
    #[track_caller]
    pub fn sum_axes(self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let axes = self.shape().axes("sum", axes)?;
        self.apply1(Sum { axes, keepdim })
    }

    /// Mean of all elements, as a 0-d var.
    #[track_caller]
    pub fn mean(self) -> Self {
        let n = self.shape().numel();
        self.sum().div_scalar(T::of(n as f64))
    }

    /// Mean over `axes` (all when empty).
    ///
    /// # Errors
    /// [`crate::Error::Axis`] for an axis out of range or repeated.
    #[track_caller]
    pub fn mean_axes(self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let s = self.shape();
        let ax = s.axes("mean", axes)?;
        let n: usize = ax.iter().map(|&a| s[a]).product();
        Ok(self.sum_axes(axes, keepdim)?.div_scalar(T::of(n as f64)))
    }

    /// Maximum over `axes` (all when empty).
    ///
    /// # Errors
    /// [`crate::Error::Axis`]; [`crate::Error::InvalidArgument`] for an empty axis.
    #[track_caller]
    pub fn max_axes(self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let axes = self.shape().axes("max", axes)?;
        self.apply1(Extreme {
            axes,
            keepdim,
            max: true,
        })
    }

    /// Minimum over `axes` (all when empty).
    ///
    /// # Errors
    /// [`crate::Error::Axis`]; [`crate::Error::InvalidArgument`] for an empty axis.
    #[track_caller]
    pub fn min_axes(self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let axes = self.shape().axes("min", axes)?;
        self.apply1(Extreme {
            axes,
            keepdim,
            max: false,
        })
    }

    /// `ln Σ eˣ` over `axes`, computed as `m + ln Σ e^{x-m}` with `m` the (detached)
    /// maximum so it never overflows; the gradient is the softmax.
    ///
    /// # Errors
    /// [`crate::Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn logsumexp(self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.shape().axes("logsumexp", axes)?;
        let m = self.stable_shift(axes)?;
        let lse = self.sub(m)?.exp().sum_axes(axes, true)?.ln().add(m)?;
        if keepdim {
            Ok(lse)
        } else {
            let s = self.shape();
            let ax = s.axes("logsumexp", axes)?;
            lse.reshape(s.reduced(&ax, false))
        }
    }

    /// The detached maximum over `axes` (kept dims) that softmax-like ops subtract before
    /// `exp`. An infinite maximum (an all -inf group) would give -inf - -inf = NaN, so
    /// those groups are shifted by 0 instead.
    #[track_caller]
    pub(crate) fn stable_shift(self, axes: &[isize]) -> Result<Self> {
        let m = self.max_axes(axes, true)?.detach();
        if m.value().as_slice().iter().any(|v| v.is_infinite()) {
            let safe = m
                .value()
                .map(|v| if v.is_infinite() { T::zero() } else { v });
            return Ok(self.tape().constant(safe));
        }
        Ok(m)
    }

    /// Variance over `axes` (all when empty) with `correction` (`torch.var(x, dim,
    /// correction, keepdim)`): `Σ (x - mean)² / (n - correction)`; 1 is Bessel's correction
    /// (PyTorch's default), 0 the biased variance.
    ///
    /// # Errors
    /// [`crate::Error::Axis`] for an axis out of range; [`crate::Error::InvalidArgument`]
    /// when `correction` is not below the number `n` of elements reduced per group
    /// (PyTorch returns NaN or inf there).
    #[track_caller]
    pub fn var(self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Self> {
        self.var_named("var", axes, correction, keepdim)
    }

    /// Standard deviation over `axes` with `correction` (`torch.std`): the square root of
    /// [`Var::var`]. Its gradient is infinite where every element of a group is equal.
    ///
    /// # Errors
    /// As [`Var::var`].
    #[track_caller]
    pub fn std(self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Self> {
        Ok(self.var_named("std", axes, correction, keepdim)?.sqrt())
    }

    #[track_caller]
    fn var_named(
        self,
        op: &'static str,
        axes: &[isize],
        correction: usize,
        keepdim: bool,
    ) -> Result<Self> {
        let s = self.shape();
        let ax = s.axes(op, axes)?;
        let n: usize = ax.iter().map(|&a| s[a]).product();
        if n <= correction {
            return Err(crate::Error::invalid(
                op,
                format!(
                    "correction {correction} leaves no degrees of freedom for {n} elements per group"
                ),
                &s,
            ));
        }
        let centred = self.sub(self.mean_axes(axes, true)?)?;
        let ss = centred.square().sum_axes(axes, keepdim)?;
        Ok(ss.div_scalar(T::of((n - correction) as f64)))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    fn x() -> Tensor<f64> {
        Tensor::from_vec(vec![1., 5., 3., 4., 2., 6.], [2, 3]).unwrap()
    }

    #[test]
    fn reductions_over_axes() {
        let tape = Tape::new();
        let v = tape.constant(x());
        assert_eq!(v.sum().value().item().unwrap(), 21.0);
        assert_eq!(
            v.sum_axes(&[0], false).unwrap().value().to_vec(),
            vec![5., 7., 9.]
        );
        assert_eq!(
            v.mean_axes(&[-1], true).unwrap().value().to_vec(),
            vec![3., 4.]
        );
        assert_eq!(
            v.max_axes(&[1], false).unwrap().value().to_vec(),
            vec![5., 6.]
        );
        assert_eq!(
            v.min_axes(&[0], false).unwrap().value().to_vec(),
            vec![1., 2., 3.]
        );
        // unbiased variance of [1, 5, 3] is 4, of [4, 2, 6] is 4
        assert_eq!(
            v.var(&[1], 1, false).unwrap().value().to_vec(),
            vec![4., 4.]
        );
        let lse = v.logsumexp(&[1], false).unwrap().value().to_vec();
        assert!((lse[0] - (1f64.exp() + 5f64.exp() + 3f64.exp()).ln()).abs() < 1e-14);
    }

    #[test]
    fn max_routes_the_gradient_to_the_arg_max() {
        let tape = Tape::new();
        let v = tape.var(x());
        let g = tape
            .grad(v.max_axes(&[1], false).unwrap().sum(), &[v])
            .unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![0., 1., 0., 0., 0., 1.]);
    }
}
