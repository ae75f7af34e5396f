//! Ordering along an axis: `sort`, `topk`, `argmax`/`argmin`, and `max_dim`/`min_dim`
//! (values with their positions).
//!
//! Values are differentiable: they are a gather of the input, so each value's gradient goes
//! back to the element it came from. Positions are plain index data (`Vec<usize>`, laid out
//! row-major like the values, each a position along the axis as PyTorch returns it) and carry
//! no gradient. NaN orders above every number, as in PyTorch; ties keep their input order.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// Ascending order with NaN above every number (and equal to itself).
fn ascending<T: Float>(a: T, b: T) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The first `k` positions of every lane of `axis` in sorted order (descending when
/// `descending`), stably. Returns the flat input indices of the picks (row-major over the
/// output, whose `axis` has size `k`) and the picks' positions along the axis.
fn ranked<T: Float>(
    x: &Tensor<T>,
    axis: usize,
    k: usize,
    descending: bool,
) -> (Vec<usize>, Vec<usize>) {
    let s = x.shape();
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis + 1..].iter().product();
    let n = s[axis];
    let data = x.as_slice();
    // An empty input or output has nothing to rank, but may have a huge axis or outer
    // extent: no loop over it, no buffer for it.
    if data.is_empty() || k == 0 {
        return (Vec::new(), Vec::new());
    }
    let total = outer * k * inner;
    let (mut flat, mut pos) = (vec![0; total], vec![0; total]);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let at = |p: usize| data[(o * n + p) * inner + i];
            order.clear();
            order.extend(0..n);
            // `sort_by` is stable, so equal values keep their input order either way.
            if descending {
                order.sort_by(|&p, &q| ascending(at(q), at(p)));
            } else {
                order.sort_by(|&p, &q| ascending(at(p), at(q)));
            }
            for (r, &p) in order.iter().take(k).enumerate() {
                let out = (o * k + r) * inner + i;
                flat[out] = (o * n + p) * inner + i;
                pos[out] = p;
            }
        }
    }
    (flat, pos)
}

impl<'t, T: Float> Var<'t, T> {
    /// Sorts along `axis` (`torch.sort(x, dim, descending, stable=True)`), returning the
    /// sorted values and each value's position along `axis` in the input. The gradient of
    /// a value flows to the element it came from.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![0.3, -1.0, 2.0], [3])?);
    /// let (values, indices) = x.sort(0, false)?;
    /// assert_eq!(values.value().to_vec(), vec![-1.0, 0.3, 2.0]);
    /// assert_eq!(indices, vec![1, 0, 2]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn sort(self, axis: isize, descending: bool) -> Result<(Self, Vec<usize>)> {
        let shape = self.shape();
        let ax = shape.axis("sort", axis)?;
        let (flat, pos) = ranked(&self.value(), ax, shape[ax], descending);
        Ok((self.gather_named("sort", flat, shape, T::zero()), pos))
    }

    /// The `k` largest (or, with `largest = false`, smallest) values along `axis` in sorted
    /// order, with their positions (`torch.topk(x, k, dim, largest, sorted=True)`).
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] when `k` exceeds the axis's size.
    #[track_caller]
    pub fn topk(self, k: usize, axis: isize, largest: bool) -> Result<(Self, Vec<usize>)> {
        let shape = self.shape();
        let ax = shape.axis("topk", axis)?;
        if k > shape[ax] {
            return Err(Error::invalid(
                "topk",
                format!("k = {k} exceeds axis {ax} of size {}", shape[ax]),
                &shape,
            ));
        }
        let (flat, pos) = ranked(&self.value(), ax, k, largest);
        let mut dims = shape.to_vec();
        dims[ax] = k;
        Ok((
            self.gather_named("topk", flat, Shape::from(dims), T::zero()),
            pos,
        ))
    }

    /// The position of the largest value along `axis` (`torch.argmax(x, dim, keepdim)`);
    /// the first one on ties, a NaN if there is one. Not differentiable: plain indices,
    /// laid out like the reduced tensor.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for an empty tensor.
    #[track_caller]
    pub fn argmax(self, axis: isize) -> Result<Vec<usize>> {
        Ok(self.extreme_dim("argmax", axis, false, true)?.1)
    }

    /// The position of the smallest value along `axis` (`torch.argmin`); the first one on
    /// ties, a NaN if there is one.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for an empty tensor.
    #[track_caller]
    pub fn argmin(self, axis: isize) -> Result<Vec<usize>> {
        Ok(self.extreme_dim("argmin", axis, false, false)?.1)
    }

    /// The maximum along `axis` with its positions (`torch.max(x, dim, keepdim)`). The
    /// gradient flows to the first maximal element of each lane, the one whose position is
    /// returned.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for an empty tensor.
    #[track_caller]
    pub fn max_dim(self, axis: isize, keepdim: bool) -> Result<(Self, Vec<usize>)> {
        let (ax, pos) = self.extreme_dim("max_dim", axis, keepdim, true)?;
        Ok((self.max_axes(&[ax as isize], keepdim)?, pos))
    }

    /// The minimum along `axis` with its positions (`torch.min(x, dim, keepdim)`).
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for an empty tensor.
    #[track_caller]
    pub fn min_dim(self, axis: isize, keepdim: bool) -> Result<(Self, Vec<usize>)> {
        let (ax, pos) = self.extreme_dim("min_dim", axis, keepdim, false)?;
        Ok((self.min_axes(&[ax as isize], keepdim)?, pos))
    }

    /// The resolved axis and the positions along it of each lane's extreme element.
    #[track_caller]
    fn extreme_dim(
        self,
        op: &'static str,
        axis: isize,
        keepdim: bool,
        max: bool,
    ) -> Result<(usize, Vec<usize>)> {
        let shape = self.shape();
        let ax = shape.axis(op, axis)?;
        // PyTorch returns empty results for an empty tensor with a non-empty axis; here every
        // empty reduction is an error, as for `max_axes`.
        if shape.numel() == 0 {
            return Err(Error::invalid(
                op,
                format!("the tensor is empty, so axis {ax} has no extreme element"),
                &shape,
            ));
        }
        let x = self.value();
        let (_, flat) = x.extreme_axes(&[ax as isize], keepdim, max)?;
        let inner: usize = shape[ax + 1..].iter().product();
        Ok((ax, flat.iter().map(|&f| (f / inner) % shape[ax]).collect()))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, Tape, Tensor};

    #[test]
    fn sort_and_topk_keep_positions_and_route_gradients() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![3., 1., 2., 0., 5., 4.], [2, 3]).unwrap());
        let (v, i) = x.sort(1, true).unwrap();
        assert_eq!(v.value().to_vec(), vec![3., 2., 1., 5., 4., 0.]);
        assert_eq!(i, vec![0, 2, 1, 1, 2, 0]);
        let (v, i) = x.topk(1, 0, false).unwrap();
        assert_eq!((v.value().to_vec(), i), (vec![0., 1., 2.], vec![1, 0, 0]));
        // the top-1 of each column sends its gradient back to where it came from
        let g = tape.grad(v.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![0., 1., 1., 1., 0., 0.]);
        assert!(matches!(
            x.topk(4, 1, true),
            Err(Error::InvalidArgument { op: "topk", .. })
        ));
    }

    #[test]
    fn nan_sorts_last_and_wins_argmax() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::from_vec(vec![1., f64::NAN, 0.], [3]).unwrap());
        let (_, i) = x.sort(0, false).unwrap();
        assert_eq!(i, vec![2, 0, 1]);
        let (_, i) = x.sort(0, true).unwrap();
        assert_eq!(i, vec![1, 0, 2]);
        assert_eq!(x.argmax(0).unwrap(), vec![1]);
        assert_eq!(x.argmin(0).unwrap(), vec![1]);
    }

    #[test]
    fn max_dim_and_argmin_along_inner_axes() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![3., 1., 2., 0., 5., 4.], [2, 3]).unwrap());
        let (v, i) = x.max_dim(0, true).unwrap();
        assert_eq!((v.dims(), i), (vec![1, 3], vec![0, 1, 1]));
        assert_eq!(x.argmin(1).unwrap(), vec![1, 0]);
        let empty = tape.var(Tensor::zeros([2, 0]).unwrap());
        assert!(matches!(
            empty.argmax(1),
            Err(Error::InvalidArgument { op: "argmax", .. })
        ));
    }
}
