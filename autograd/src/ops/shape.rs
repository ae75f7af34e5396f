//! Ops that move elements without arithmetic: `reshape` (and `flatten`, `squeeze`,
//! `unsqueeze`), `permute`/`transpose`, `broadcast_to`, `concat`/`stack`.

use std::panic::Location;

use crate::error::{Error, Result};
use crate::op::{BackwardCx, Op};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// Same elements, new shape; the gradient is reshaped back.
#[derive(Debug, Clone)]
pub struct Reshape(pub Shape);
impl<T: Float> Op<T> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].reshape(self.0.clone())
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad().reshape(cx.input(0).shape())?)])
    }
}

/// Axis `i` of the output is axis `perm[i]` of the input; the gradient is permuted back.
#[derive(Debug, Clone)]
pub struct Permute(pub Vec<usize>);
impl<T: Float> Op<T> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].permute(&self.0)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let mut inv = vec![0; self.0.len()];
        for (i, &p) in self.0.iter().enumerate() {
            inv[p] = i;
        }
        Ok(vec![Some(cx.grad().permute(&inv)?)])
    }
}

/// NumPy broadcast to a larger shape; the gradient is summed back down.
#[derive(Debug, Clone)]
pub struct BroadcastTo(pub Shape);
impl<T: Float> Op<T> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].broadcast_to(self.0.clone())
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(super::binary::reduce_to_shape(
            cx.grad(),
            &cx.input(0).shape(),
        )?)])
    }
}

/// Joins its inputs along `axis`; each input's gradient is its slab of `g`.
#[derive(Debug, Clone, Copy)]
pub struct Concat(pub usize);
impl<T: Float> Op<T> for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Tensor::concat(x, self.0 as isize)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let mut start = 0;
        let mut out = Vec::with_capacity(cx.inputs().len());
        for v in cx.inputs() {
            let len = v.shape()[self.0];
            out.push(Some(cx.grad().narrow(self.0 as isize, start, len)?));
            start += len;
        }
        Ok(out)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The same elements under another shape with the same element count.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the element counts differ.
    #[track_caller]
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape == self.shape() {
            return Ok(self);
        }
        self.apply1(Reshape(shape))
    }

    /// Merges axes `start..=end` into one (PyTorch's `flatten(start_dim, end_dim)`).
    ///
    /// # Errors
    /// [`Error::Axis`] for axes out of range or `start > end`.
    #[track_caller]
    pub fn flatten(self, start: isize, end: isize) -> Result<Self> {
        let s = self.shape();
        if s.rank() == 0 {
            return self.reshape([1]);
        }
        let a = s.axis("flatten", start)?;
        let b = s.axis("flatten", end)?;
        if a > b {
            return Err(Error::Axis {
                op: "flatten",
                axis: start,
                shape: s,
                location: Location::caller(),
            });
        }
        let mut dims: Vec<usize> = s[..a].to_vec();
        dims.push(s[a..=b].iter().product());
        dims.extend_from_slice(&s[b + 1..]);
        self.reshape(dims)
    }

    /// Removes axis `axis`, which must have size 1.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] when the axis is not of size 1.
    #[track_caller]
    pub fn squeeze(self, axis: isize) -> Result<Self> {
        let s = self.shape();
        let a = s.axis("squeeze", axis)?;
        if s[a] != 1 {
            return Err(Error::invalid(
                "squeeze",
                format!("axis {a} has size {}, not 1", s[a]),
                &s,
            ));
        }
        let mut dims = s.to_vec();
        dims.remove(a);
        self.reshape(dims)
    }

    /// Inserts an axis of size 1 at `axis` (`-1` appends).
    ///
    /// # Errors
    /// [`Error::Axis`] when `axis` is outside `-(rank+1)..=rank`.
    #[track_caller]
    pub fn unsqueeze(self, axis: isize) -> Result<Self> {
        let s = self.shape();
        let r = s.rank() as isize + 1;
        let a = if axis < 0 { axis + r } else { axis };
        if !(0..r).contains(&a) {
            return Err(Error::Axis {
                op: "unsqueeze",
                axis,
                shape: s,
                location: Location::caller(),
            });
        }
        let mut dims = s.to_vec();
        dims.insert(a as usize, 1);
        self.reshape(dims)
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `perm` is not a permutation of the axes.
    #[track_caller]
    pub fn permute(self, perm: &[usize]) -> Result<Self> {
        self.apply1(Permute(perm.to_vec()))
    }

    /// Swaps two axes (negative axes count from the end).
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn transpose(self, a: isize, b: isize) -> Result<Self> {
        let s = self.shape();
        let (a, b) = (s.axis("transpose", a)?, s.axis("transpose", b)?);
        let mut perm: Vec<usize> = (0..s.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The transpose of a matrix (swaps the last two axes).
    ///
    /// # Errors
    /// [`Error::Axis`] when the rank is below 2.
    #[track_caller]
    pub fn t(self) -> Result<Self> {
        self.transpose(-2, -1)
    }

    /// Stretches to `shape` by NumPy broadcasting.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when it does not broadcast to `shape`.
    #[track_caller]
    pub fn broadcast_to(self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape == self.shape() {
            return Ok(self);
        }
        self.apply1(BroadcastTo(shape))
    }

    /// Joins vars along an existing axis.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty list; [`Error::Axis`];
    /// [`Error::ShapeMismatch`] when the other dimensions differ; [`Error::ForeignVar`].
    #[track_caller]
    pub fn concat(vars: &[Self], axis: isize) -> Result<Self> {
        let Some(first) = vars.first() else {
            return Err(Error::invalid(
                "concat",
                "needs at least one input",
                &Shape::scalar(),
            ));
        };
        let ax = first.shape().axis("concat", axis)?;
        first.tape().record(Concat(ax), vars, Location::caller())
    }

    /// Stacks same-shaped vars along a new axis (`-1` appends it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty list; [`Error::Axis`] when `axis` is outside
    /// `-(rank+1)..=rank`; [`Error::ShapeMismatch`] when the shapes differ;
    /// [`Error::ForeignVar`]. Each names `stack`.
    #[track_caller]
    pub fn stack(vars: &[Self], axis: isize) -> Result<Self> {
        let Some(first) = vars.first() else {
            return Err(Error::invalid(
                "stack",
                "needs at least one input",
                &Shape::scalar(),
            ));
        };
        let s = first.shape();
        let r = s.rank() as isize + 1;
        if !(-r..r).contains(&axis) {
            return Err(Error::Axis {
                op: "stack",
                axis,
                shape: s,
                location: Location::caller(),
            });
        }
        if let Some(v) = vars.iter().find(|v| !v.tape().has_shape(v.id(), &s)) {
            if std::ptr::eq(v.tape(), first.tape()) {
                return Err(Error::ShapeMismatch {
                    op: "stack",
                    expected: s,
                    got: v.shape(),
                    location: Location::caller(),
                });
            }
        }
        // A loop, not `map`: `#[track_caller]` does not reach through a closure, and the
        // recorded nodes should point at the caller's line.
        let mut expanded = Vec::with_capacity(vars.len());
        for v in vars {
            expanded.push(v.unsqueeze(axis).map_err(|e| e.in_op("stack"))?);
        }
        Self::concat(&expanded, axis).map_err(|e| e.in_op("stack"))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor, Var};

    #[test]
    fn shape_ops_on_literals() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::arange(6).unwrap().reshape([2, 3]).unwrap());
        assert_eq!(
            x.t().unwrap().value().to_vec(),
            vec![0., 3., 1., 4., 2., 5.]
        );
        assert_eq!(x.flatten(0, 1).unwrap().dims(), vec![6]);
        assert_eq!(x.unsqueeze(-1).unwrap().dims(), vec![2, 3, 1]);
        let s = Var::stack(&[x, x], 1).unwrap();
        assert_eq!(s.dims(), vec![2, 2, 3]);
        let c = Var::concat(&[x, x.narrow(1, 0, 1).unwrap()], 1).unwrap();
        assert_eq!(c.value().to_vec(), vec![0., 1., 2., 0., 3., 4., 5., 3.]);
        // the narrowed copy sends its gradient back to column 0
        let g = tape.grad(c.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![2., 1., 1., 2., 1., 1.]);
        let b = x.narrow(0, 0, 1).unwrap().broadcast_to([4, 3]).unwrap();
        let g = tape.grad(b.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![4., 4., 4., 0., 0., 0.]);
    }
}
