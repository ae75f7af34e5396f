//! Indexing ops built on one gather/scatter pair: `gather_flat` reads elements by flat
//! index, `scatter_add_flat` is its transpose. Each is the other's backward, so slicing,
//! `index_select`, `gather`, arg-max routing, pooling windows and im2col are all
//! differentiable to any order without per-op backward code.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::op::{BackwardCx, Op};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// `out[k] = flat(x)[idx[k]]`, `fill` at [`PAD`](crate::tensor::PAD); output shaped `shape`.
#[derive(Debug, Clone)]
pub struct GatherFlat<T> {
    pub(crate) idx: Arc<[usize]>,
    pub(crate) shape: Shape,
    pub(crate) fill: T,
    pub(crate) name: &'static str,
}
impl<T: Float> Op<T> for GatherFlat<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].gather_flat_unchecked(&self.idx, self.shape.clone(), self.fill))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let g = cx.grad().infallible(ScatterAddFlat {
            idx: self.idx.clone(),
            shape: cx.input(0).shape(),
        });
        Ok(vec![Some(g)])
    }
}

/// Zeros of `shape` with `flat(x)[k]` added at `idx[k]`: the transpose of [`GatherFlat`].
#[derive(Debug, Clone)]
pub struct ScatterAddFlat {
    pub(crate) idx: Arc<[usize]>,
    pub(crate) shape: Shape,
}
impl<T: Float> Op<T> for ScatterAddFlat {
    fn name(&self) -> &'static str {
        "scatter_add_flat"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].scatter_add_flat_unchecked(&self.idx, self.shape.clone())
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let g = cx.grad().infallible(GatherFlat {
            idx: self.idx.clone(),
            shape: cx.input(0).shape(),
            fill: T::zero(),
            name: "gather_flat",
        });
        Ok(vec![Some(g)])
    }
}

/// Flat indices of the entries `picks` (each below `shape[axis]`) along `axis`, and the
/// shape they make. The output can be larger than the input (`index_select` may repeat an
/// index), so its size is checked.
#[track_caller]
fn slice_indices(
    op: &'static str,
    shape: &Shape,
    axis: usize,
    picks: &[usize],
) -> Result<(Vec<usize>, Shape)> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    let mut dims = shape.to_vec();
    dims[axis] = picks.len();
    let out = Shape::from(dims);
    let mut idx = crate::tensor::buffer(op, &out)?;
    // An empty result may still have a huge outer extent: do not loop over it.
    let outer = if out.numel() == 0 { 0 } else { outer };
    for o in 0..outer {
        for &p in picks {
            let base = (o * n + p) * inner;
            idx.extend(base..base + inner);
        }
    }
    Ok((idx, out))
}

impl<'t, T: Float> Var<'t, T> {
    #[track_caller]
    pub(crate) fn gather_named(
        self,
        name: &'static str,
        idx: Vec<usize>,
        shape: Shape,
        fill: T,
    ) -> Self {
        self.infallible(GatherFlat {
            idx: idx.into(),
            shape,
            fill,
            name,
        })
    }

    /// `out[k] = flat(self)[idx[k]]` (or `fill` where `idx[k]` is [`PAD`](crate::tensor::PAD)), shaped `shape`:
    /// the general differentiable gather; its gradient scatters back.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a shape no tensor can have; [`Error::InvalidArgument`] when
    /// `idx.len()` differs from `shape`'s element count or an index is out of range.
    #[track_caller]
    pub fn gather_flat(self, idx: Vec<usize>, shape: impl Into<Shape>, fill: T) -> Result<Self> {
        let shape = shape.into();
        let n = shape.check("gather_flat")?;
        let own = self.shape();
        crate::tensor::check_flat_indices("gather_flat", &idx, n, own.numel(), &own)?;
        Ok(self.gather_named("gather_flat", idx, shape, fill))
    }

    /// `length` entries from `start` along `axis` (PyTorch's `narrow`).
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] when the range exceeds the dimension.
    #[track_caller]
    pub fn narrow(self, axis: isize, start: usize, length: usize) -> Result<Self> {
        let shape = self.shape();
        let ax = shape.axis("narrow", axis)?;
        // Checked: `start + length` may wrap to a small number (narrow(1, usize::MAX, 2)).
        let end = start.checked_add(length);
        if end.is_none_or(|e| e > shape[ax]) {
            let end = end.map_or_else(|| format!("{start}+{length}"), |e| e.to_string());
            return Err(Error::invalid(
                "narrow",
                format!(
                    "range {start}..{end} exceeds axis {ax} of size {}",
                    shape[ax]
                ),
                &shape,
            ));
        }
        self.narrow_named("narrow", &shape, ax, start, length)
    }

    /// `length` entries from `start` along the resolved axis `ax` of `shape` (this var's
    /// shape), recorded under `op`; the caller has checked that `start + length` is
    /// within the axis.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when the index buffer cannot be allocated.
    #[track_caller]
    pub(crate) fn narrow_named(
        self,
        op: &'static str,
        shape: &Shape,
        ax: usize,
        start: usize,
        length: usize,
    ) -> Result<Self> {
        let picks: Vec<usize> = (start..start + length).collect();
        let (idx, out) = slice_indices(op, shape, ax, &picks)?;
        Ok(self.gather_named(op, idx, out, T::zero()))
    }

    /// `self[.., start:end:step, ..]` along `axis`, with Python's slice rules for
    /// negative and out-of-range bounds (`end = None` means to the end).
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for `step = 0`.
    #[track_caller]
    pub fn slice(self, axis: isize, start: isize, end: Option<isize>, step: usize) -> Result<Self> {
        let shape = self.shape();
        let ax = shape.axis("slice", axis)?;
        if step == 0 {
            return Err(Error::invalid("slice", "step must be positive", &shape));
        }
        let n = shape[ax] as isize;
        let clampi = |i: isize| if i < 0 { (i + n).max(0) } else { i.min(n) };
        let (s, e) = (clampi(start), clampi(end.unwrap_or(n)));
        let picks: Vec<usize> = (s..e.max(s)).step_by(step).map(|i| i as usize).collect();
        let (idx, out) = slice_indices("slice", &shape, ax, &picks)?;
        Ok(self.gather_named("slice", idx, out, T::zero()))
    }

    /// The entries at `indices` along `axis` (PyTorch's `index_select`); indices may repeat.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for an index out of range;
    /// [`Error::TooLarge`] when the selection is too large.
    #[track_caller]
    pub fn index_select(self, axis: isize, indices: &[usize]) -> Result<Self> {
        let shape = self.shape();
        let ax = shape.axis("index_select", axis)?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= shape[ax]) {
            return Err(Error::invalid(
                "index_select",
                format!(
                    "index {bad} out of range for axis {ax} of size {}",
                    shape[ax]
                ),
                &shape,
            ));
        }
        let (idx, out) = slice_indices("index_select", &shape, ax, indices)?;
        Ok(self.gather_named("index_select", idx, out, T::zero()))
    }

    /// PyTorch's `gather`: `out[i][j] = self[i][index[i][j]]` along `axis` (any rank); the
    /// output has `index_shape`, which must match `self` except along `axis`.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::TooLarge`] for an index shape no tensor can have;
    /// [`Error::InvalidArgument`] when the index shape or a value is out of range.
    #[track_caller]
    pub fn gather(
        self,
        axis: isize,
        index: &[usize],
        index_shape: impl Into<Shape>,
    ) -> Result<Self> {
        let shape = self.shape();
        let ishape: Shape = index_shape.into();
        let ax = shape.axis("gather", axis)?;
        ishape.check("gather")?;
        let ok = ishape.rank() == shape.rank()
            && index.len() == ishape.numel()
            && (0..shape.rank()).all(|d| d == ax || ishape[d] <= shape[d]);
        if !ok {
            return Err(Error::invalid(
                "gather",
                format!(
                    "index of shape {ishape} ({} values) does not fit",
                    index.len()
                ),
                &shape,
            ));
        }
        if let Some(&bad) = index.iter().find(|&&i| i >= shape[ax]) {
            return Err(Error::invalid(
                "gather",
                format!(
                    "index {bad} out of range for axis {ax} of size {}",
                    shape[ax]
                ),
                &shape,
            ));
        }
        let st = shape.strides();
        let ist = ishape.strides();
        let idx = (0..ishape.numel())
            .map(|k| {
                let mut off = 0;
                for d in 0..ishape.rank() {
                    let i = (k / ist[d]) % ishape[d];
                    off += if d == ax { index[k] } else { i } * st[d];
                }
                off
            })
            .collect();
        Ok(self.gather_named("gather", idx, ishape, T::zero()))
    }
    /// PyTorch's `scatter_add`: `out = self`, then `src` added at `index` along `axis`:
    /// `out[i][index[i][j]] += src[i][j]` for axis 1 (any rank; indices may repeat and then
    /// accumulate). `index` has `index_shape`, of `self`'s rank, no larger than `src` in any
    /// axis and no larger than `self` outside `axis`; `src`'s entries beyond `index_shape`
    /// are unused. The gradient of `self` is the incoming gradient, that of `src` its
    /// `gather` at `index`.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let base = tape.var(Tensor::zeros([2, 3])?);
    /// let src = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], [2, 2])?);
    /// let y = base.scatter_add(1, &[0, 0, 2, 1], [2, 2], src)?;
    /// assert_eq!(y.value().to_vec(), vec![3., 0., 0., 0., 4., 3.]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] when the ranks or the index shape do not
    /// fit or an index is out of range; [`Error::ForeignVar`] when `src` is on another tape.
    #[track_caller]
    pub fn scatter_add(
        self,
        axis: isize,
        index: &[usize],
        index_shape: impl Into<Shape>,
        src: Self,
    ) -> Result<Self> {
        let shape = self.shape();
        let ishape: Shape = index_shape.into();
        let ax = shape.axis("scatter_add", axis)?;
        if !std::ptr::eq(self.tape(), src.tape()) {
            return Err(Error::ForeignVar {
                op: "scatter_add",
                location: std::panic::Location::caller(),
            });
        }
        let sshape = src.shape();
        // Bounded by src's shape first, so the element count below cannot overflow.
        let ok = ishape.rank() == shape.rank()
            && sshape.rank() == shape.rank()
            && (0..shape.rank())
                .all(|d| ishape[d] <= sshape[d] && (d == ax || ishape[d] <= shape[d]))
            && index.len() == ishape.numel();
        if !ok {
            return Err(Error::invalid(
                "scatter_add",
                format!(
                    "index of shape {ishape} ({} values) does not fit src of shape {sshape}",
                    index.len()
                ),
                &shape,
            ));
        }
        if let Some(&bad) = index.iter().find(|&&i| i >= shape[ax]) {
            return Err(Error::invalid(
                "scatter_add",
                format!(
                    "index {bad} out of range for axis {ax} of size {}",
                    shape[ax]
                ),
                &shape,
            ));
        }
        let (st, sst, ist) = (shape.strides(), sshape.strides(), ishape.strides());
        let mut to = Vec::with_capacity(index.len());
        let mut from = Vec::with_capacity(index.len());
        for (k, &target) in index.iter().enumerate() {
            let (mut off, mut soff) = (0, 0);
            for d in 0..ishape.rank() {
                let i = (k / ist[d]) % ishape[d];
                off += if d == ax { target } else { i } * st[d];
                soff += i * sst[d];
            }
            to.push(off);
            from.push(soff);
        }
        // Only the index-shaped corner of src is scattered; take it out first when src is
        // larger.
        let part = if sshape == ishape {
            src
        } else {
            src.gather_named("scatter_add", from, ishape, T::zero())
        };
        let spread = part.infallible(ScatterAddFlat {
            idx: to.into(),
            shape: shape.clone(),
        });
        self.add(spread)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn slice_follows_python_rules() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::arange(10).unwrap().reshape([2, 5]).unwrap());
        let y = x.slice(1, 1, Some(5), 2).unwrap();
        assert_eq!(y.value().to_vec(), vec![1., 3., 6., 8.]);
        let z = x.slice(1, -2, None, 1).unwrap();
        assert_eq!(z.value().to_vec(), vec![3., 4., 8., 9.]);
    }

    #[test]
    fn gather_picks_along_the_axis() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::arange(6).unwrap().reshape([2, 3]).unwrap());
        let y = x.gather(1, &[2, 0, 1, 1], [2, 2]).unwrap();
        assert_eq!(y.value().to_vec(), vec![2., 0., 4., 4.]);
        // the repeated index 1 in row 1 collects two gradient contributions
        let g = tape.grad(y.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![1., 0., 1., 0., 2., 0.]);
    }
}
