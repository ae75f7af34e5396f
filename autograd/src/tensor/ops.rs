//! Value-level maths on tensors: what the tape's ops call in their forward passes, and
//! what optimisers use directly.

use std::panic::Location;

use super::kernels::{self, elementwise, index, reduce};
use super::{buffer, Float, Shape, Storage, Tensor};
use crate::error::{Error, Result};

impl<T: Float> Tensor<T> {
    /// `f` applied to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        if let Storage::One(x) = self.storage {
            return Tensor {
                storage: Storage::One(f(x)),
                shape: self.shape.clone(),
            };
        }
        Self::from_parts(
            // Forced inline, so a large `f` (erf, GELU) is inlined into the loop, which
            // then vectorises, instead of being called per element.
            self.as_slice()
                .iter()
                .map(
                    #[inline(always)]
                    |&x| f(x),
                )
                .collect(),
            self.shape.clone(),
        )
    }

    /// `f(a, b, c)` over three tensors of `self`'s shape (the caller guarantees the
    /// shapes), with the same inline one-element path as [`Tensor::map`].
    pub(crate) fn zip3_map(&self, b: &Self, c: &Self, f: impl Fn(T, T, T) -> T) -> Self {
        if let (Storage::One(x), Storage::One(y), Storage::One(z)) =
            (&self.storage, &b.storage, &c.storage)
        {
            return Tensor {
                storage: Storage::One(f(*x, *y, *z)),
                shape: self.shape.clone(),
            };
        }
        let data = self
            .as_slice()
            .iter()
            .zip(b.as_slice())
            .zip(c.as_slice())
            .map(
                #[inline(always)]
                |((&x, &y), &z)| f(x, y, z),
            )
            .collect();
        Self::from_parts(data, self.shape.clone())
    }

    /// `f` applied to every element in place (copying first if the buffer is shared).
    pub fn mapv_inplace(&mut self, f: impl Fn(T) -> T) {
        self.as_mut_slice().iter_mut().for_each(|x| *x = f(*x));
    }

    /// `f(a, b)` elementwise with NumPy broadcasting; `op` names the caller in errors.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast; [`Error::TooLarge`] when
    /// their broadcast is too large.
    #[track_caller]
    pub fn zip_with(&self, other: &Self, op: &'static str, f: impl Fn(T, T) -> T) -> Result<Self> {
        if let (Storage::One(a), Storage::One(b)) = (&self.storage, &other.storage) {
            if self.shape == other.shape {
                return Ok(Tensor {
                    storage: Storage::One(f(*a, *b)),
                    shape: self.shape.clone(),
                });
            }
        }
        let out = self.shape.broadcast(&other.shape, op)?;
        let mut data = buffer(op, &out)?;
        elementwise::zip_broadcast(
            self.as_slice(),
            &self.shape,
            other.as_slice(),
            &other.shape,
            &out,
            f,
            &mut data,
        );
        Ok(Self::from_parts(data, out))
    }

    /// `f(&mut a, b)` for every element of `self`, with `other` broadcast to `self`'s shape.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when `other` does not broadcast to `self`'s shape.
    #[track_caller]
    pub fn zip_mut_with(&mut self, other: &Self, f: impl Fn(&mut T, T)) -> Result<()> {
        if self.shape == other.shape {
            let o = other.as_slice();
            for (a, &b) in self.as_mut_slice().iter_mut().zip(o) {
                f(a, b);
            }
            return Ok(());
        }
        let out = self.shape.broadcast(&other.shape, "zip_mut_with")?;
        if out != self.shape {
            return Err(Error::Broadcast {
                op: "zip_mut_with",
                lhs: self.shape.clone(),
                rhs: other.shape.clone(),
                location: Location::caller(),
            });
        }
        let b = other.broadcast_to(out)?;
        for (a, &b) in self.as_mut_slice().iter_mut().zip(b.as_slice()) {
            f(a, b);
        }
        Ok(())
    }

    /// Elementwise sum with broadcasting.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "add", |a, b| a + b)
    }

    /// Elementwise difference with broadcasting.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "sub", |a, b| a - b)
    }

    /// Elementwise product with broadcasting.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "mul", |a, b| a * b)
    }

    /// Elementwise quotient with broadcasting.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn div(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "div", |a, b| a / b)
    }

    /// Sum of all elements.
    pub fn sum_all(&self) -> T {
        reduce::sum_axes(
            self.as_slice(),
            &self.shape,
            &(0..self.rank()).collect::<Vec<_>>(),
        )[0]
    }

    /// Sum over `axes` (all axes when empty; negative axes count from the end).
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range or repeated; [`Error::TooLarge`] when the
    /// input is empty and the zeros it sums to cannot be allocated.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let ax = self.shape.axes("sum", axes)?;
        if self.numel() == 0 {
            // Sums over an empty axis are zeros, and can be far more of them than the
            // input has elements (`[2⁴⁰, 0]` summed over axis 1).
            return Self::full_named("sum", self.shape.reduced(&ax, keepdim), T::zero());
        }
        let data = reduce::sum_axes(self.as_slice(), &self.shape, &ax);
        Ok(Self::from_parts(data, self.shape.reduced(&ax, keepdim)))
    }

    /// Largest (`max = true`) or smallest values over `axes`, with the flat input index of
    /// each (the first one on ties).
    ///
    /// # Errors
    /// [`Error::Axis`] for a bad axis; [`Error::InvalidArgument`] for an empty reduction.
    #[track_caller]
    pub fn extreme_axes(
        &self,
        axes: &[isize],
        keepdim: bool,
        max: bool,
    ) -> Result<(Self, Vec<usize>)> {
        let op = if max { "max" } else { "min" };
        let ax = self.shape.axes(op, axes)?;
        if ax.iter().any(|&a| self.shape[a] == 0) || self.numel() == 0 {
            return Err(Error::invalid(
                op,
                "cannot reduce over an empty axis",
                &self.shape,
            ));
        }
        let idx = reduce::arg_extreme(self.as_slice(), &self.shape, &ax, max);
        let x = self.as_slice();
        let data = idx.iter().map(|&i| x[i]).collect();
        Ok((
            Self::from_parts(data, self.shape.reduced(&ax, keepdim)),
            idx,
        ))
    }

    /// This tensor stretched to `shape` by NumPy broadcasting (copies).
    ///
    /// # Errors
    /// [`Error::Broadcast`] when it does not broadcast to `shape`; [`Error::TooLarge`] when
    /// `shape` is too large.
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let out = self.shape.broadcast(&shape, "broadcast_to")?;
        if out != shape {
            return Err(Error::Broadcast {
                op: "broadcast_to",
                lhs: self.shape.clone(),
                rhs: shape,
                location: Location::caller(),
            });
        }
        if self.shape == shape {
            return Ok(self.clone());
        }
        if self.numel() == 1 {
            return Self::full_named("broadcast_to", shape, self.as_slice()[0]);
        }
        let strides = self.shape.broadcast_strides(&shape);
        let mut data = buffer("broadcast_to", &shape)?;
        elementwise::strided_copy(self.as_slice(), &strides, &shape, &mut data);
        Ok(Self::from_parts(data, shape))
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]` (copies).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `perm` is not a permutation of `0..rank`.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Result<Self> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "permute",
                format!("{perm:?} is not a permutation of the axes"),
                &self.shape,
            ));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let own = self.shape.strides();
        let shape: Shape = perm.iter().map(|&p| self.shape[p]).collect();
        let strides: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
        let mut data = Vec::with_capacity(self.numel());
        elementwise::strided_copy(self.as_slice(), &strides, &shape, &mut data);
        Ok(Self::from_parts(data, shape))
    }

    /// Swaps two axes (negative axes count from the end; copies).
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let a = self.shape.axis("transpose", a)?;
        let b = self.shape.axis("transpose", b)?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Matrix product with NumPy batch broadcasting over leading dimensions.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2])?;
    /// assert_eq!(a.matmul(&Tensor::eye(2)?)?, a);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Matmul`] when a rank is below 2 or the inner dimensions differ;
    /// [`Error::Broadcast`] when the batch dimensions do not broadcast; [`Error::TooLarge`]
    /// when the product is too large.
    #[track_caller]
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)` where `op` transposes the last two axes when its flag is set;
    /// the transpose is done by strides, never copied.
    ///
    /// # Errors
    /// As [`Tensor::matmul`].
    #[track_caller]
    pub fn matmul_t(&self, other: &Self, ta: bool, tb: bool) -> Result<Self> {
        let (sa, sb) = (&self.shape, &other.shape);
        // Taken here: `#[track_caller]` does not reach into a closure.
        let location = Location::caller();
        let bad = || Error::Matmul {
            op: "matmul",
            lhs: sa.clone(),
            rhs: sb.clone(),
            location,
        };
        if sa.rank() < 2 || sb.rank() < 2 {
            return Err(bad());
        }
        let (ra, rb) = (sa.rank(), sb.rank());
        let (m, k) = if ta {
            (sa[ra - 1], sa[ra - 2])
        } else {
            (sa[ra - 2], sa[ra - 1])
        };
        let (k2, n) = if tb {
            (sb[rb - 1], sb[rb - 2])
        } else {
            (sb[rb - 2], sb[rb - 1])
        };
        if k != k2 {
            return Err(bad());
        }
        let ba = Shape::from(&sa[..ra - 2]);
        let bb = Shape::from(&sb[..rb - 2]);
        let batch = ba.broadcast(&bb, "matmul")?;
        // The output is the one shape here not bounded by an operand's: with k = 0, m·n
        // can be anything.
        let mut dims = batch.dims().to_vec();
        dims.extend([m, n]);
        let out_shape = Shape::from(dims);
        let mut out = buffer("matmul", &out_shape)?;
        out.resize(out_shape.numel(), T::zero());
        if out.is_empty() {
            // Also when the batch is huge and each product empty: nothing to loop over.
            return Ok(Self::from_parts(out, out_shape));
        }
        // Valid operand shapes bound every product below.
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        let (a, b) = (self.as_slice(), other.as_slice());
        let (mat_a, mat_b, mat_c) = (m * k, k * n, m * n);
        let mut c_off = 0;
        let sta: Vec<usize> = ba
            .broadcast_strides(&batch)
            .iter()
            .map(|s| s * mat_a)
            .collect();
        let stb: Vec<usize> = bb
            .broadcast_strides(&batch)
            .iter()
            .map(|s| s * mat_b)
            .collect();
        elementwise::walk2(&batch, &sta, &stb, |oa, ob| {
            kernels::gemm::gemm(
                m,
                k,
                n,
                &a[oa..oa + mat_a],
                rsa,
                csa,
                &b[ob..ob + mat_b],
                rsb,
                csb,
                &mut out[c_off..c_off + mat_c],
            );
            c_off += mat_c;
        });
        Ok(Self::from_parts(out, out_shape))
    }

    /// `out[k] = flat(self)[idx[k]]` (or `fill` where `idx[k]` is [`PAD`](super::PAD)),
    /// shaped as `shape`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a shape no tensor can have; [`Error::InvalidArgument`] when
    /// `idx.len()` differs from `shape`'s element count or an index is out of range.
    #[track_caller]
    pub fn gather_flat(&self, idx: &[usize], shape: impl Into<Shape>, fill: T) -> Result<Self> {
        let shape = shape.into();
        let n = shape.check("gather_flat")?;
        check_flat_indices("gather_flat", idx, n, self.numel(), &self.shape)?;
        Ok(self.gather_flat_unchecked(idx, shape, fill))
    }

    pub(crate) fn gather_flat_unchecked(&self, idx: &[usize], shape: Shape, fill: T) -> Self {
        Self::from_parts(index::gather(self.as_slice(), idx, fill), shape)
    }

    /// The transpose of [`Tensor::gather_flat`]: a zero tensor of `shape` with each element
    /// of `self` added at flat position `idx[k]` (entries equal to [`PAD`](super::PAD) are
    /// dropped).
    ///
    /// # Errors
    /// [`Error::TooLarge`] when `shape` is too large (its zeros are allocated whatever
    /// `idx` holds); [`Error::InvalidArgument`] when `idx.len()` differs from `self`'s
    /// element count or an index is out of range for `shape`.
    #[track_caller]
    pub fn scatter_add_flat(&self, idx: &[usize], shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let mut out = buffer("scatter_add_flat", &shape)?;
        check_flat_indices("scatter_add_flat", idx, self.numel(), shape.numel(), &shape)?;
        out.resize(shape.numel(), T::zero());
        index::scatter_add_into(self.as_slice(), idx, &mut out);
        Ok(Self::from_parts(out, shape))
    }

    /// For indices known to be in range (the backward of a gather, a transposed
    /// convolution's col2im). The target may be larger than anything that exists (a
    /// transposed convolution's output, sized by the user's stride), so it is allocated
    /// fallibly.
    #[track_caller]
    pub(crate) fn scatter_add_flat_unchecked(&self, idx: &[usize], shape: Shape) -> Result<Self> {
        let mut out = buffer("scatter_add_flat", &shape)?;
        out.resize(shape.numel(), T::zero());
        index::scatter_add_into(self.as_slice(), idx, &mut out);
        Ok(Self::from_parts(out, shape))
    }

    /// Joins tensors along an existing axis; all other dimensions must agree.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty list; [`Error::Axis`] for a bad axis;
    /// [`Error::ShapeMismatch`] when the other dimensions differ; [`Error::TooLarge`] when
    /// the result is too large.
    #[track_caller]
    pub fn concat(tensors: &[&Self], axis: isize) -> Result<Self> {
        let Some(first) = tensors.first() else {
            return Err(Error::invalid(
                "concat",
                "needs at least one tensor",
                &Shape::scalar(),
            ));
        };
        let ax = first.shape.axis("concat", axis)?;
        let mut total = 0;
        for t in tensors {
            let same_rank = t.rank() == first.rank();
            let same_other =
                same_rank && (0..t.rank()).all(|i| i == ax || t.shape[i] == first.shape[i]);
            if !same_other {
                return Err(Error::ShapeMismatch {
                    op: "concat",
                    expected: first.shape.clone(),
                    got: t.shape.clone(),
                    location: Location::caller(),
                });
            }
            // Saturating: an overflowing total makes an invalid shape, refused below.
            total = t.shape[ax].saturating_add(total);
        }
        let mut dims = first.dims().to_vec();
        dims[ax] = total;
        let out_shape = Shape::from(dims);
        let mut data = buffer("concat", &out_shape)?;
        let outer: usize = first.shape[..ax].iter().product();
        let inner: usize = first.shape[ax + 1..].iter().product();
        // An empty result may still have a huge outer extent: do not loop over it.
        let outer = if out_shape.numel() == 0 { 0 } else { outer };
        for o in 0..outer {
            for t in tensors {
                let block = t.shape[ax] * inner;
                data.extend_from_slice(&t.as_slice()[o * block..(o + 1) * block]);
            }
        }
        Ok(Self::from_parts(data, out_shape))
    }
}

/// Checks a flat index list: `count` entries, each below `bound` or [`PAD`](super::PAD).
/// `shape` is the indexed tensor's, for the message. Shared by the tensor and `Var` forms
/// of gather and scatter.
#[track_caller]
pub(crate) fn check_flat_indices(
    op: &'static str,
    idx: &[usize],
    count: usize,
    bound: usize,
    shape: &Shape,
) -> Result<()> {
    if idx.len() != count {
        return Err(Error::invalid(
            op,
            format!("{} indices where {count} are needed", idx.len()),
            shape,
        ));
    }
    if let Some(&bad) = idx.iter().find(|&&i| i != super::PAD && i >= bound) {
        return Err(Error::invalid(
            op,
            format!("flat index {bad} is out of range (below {bound} needed)"),
            shape,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(data.to_vec(), shape).unwrap()
    }

    #[test]
    fn broadcasting_add_matches_numpy() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[10., 20.], &[2, 1]);
        assert_eq!(
            a.add(&b).unwrap().to_vec(),
            vec![11., 12., 13., 24., 25., 26.]
        );
        let r = t(&[1., 2., 3.], &[3]);
        assert_eq!(a.mul(&r).unwrap().to_vec(), vec![1., 4., 9., 4., 10., 18.]);
    }

    #[test]
    fn sums_over_inner_and_outer_axes() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        assert_eq!(a.sum_axes(&[0], false).unwrap().to_vec(), vec![5., 7., 9.]);
        assert_eq!(a.sum_axes(&[-1], true).unwrap().dims(), &[2, 1]);
        assert_eq!(a.sum_all(), 21.);
    }

    #[test]
    fn transposed_matmul_equals_explicit_transpose() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[1., 0., 2., 1., 0., 3.], &[2, 3]);
        let via_flag = a.matmul_t(&b, false, true).unwrap();
        let explicit = a.matmul(&b.transpose(0, 1).unwrap()).unwrap();
        assert_eq!(via_flag, explicit);
        // [1 2 3]·[1 0 2] = 7, [1 2 3]·[1 0 3] = 10 ...
        assert_eq!(via_flag.to_vec(), vec![7., 10., 16., 22.]);
        let c = a.matmul_t(&b, true, false).unwrap();
        assert_eq!(c, a.transpose(0, 1).unwrap().matmul(&b).unwrap());
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        let a = t(&[1., 3., 3., 0.], &[2, 2]);
        let (v, i) = a.extreme_axes(&[1], false, true).unwrap();
        assert_eq!(v.to_vec(), vec![3., 3.]);
        assert_eq!(i, vec![1, 2]);
    }

    #[test]
    fn concat_joins_along_an_inner_axis() {
        let a = t(&[1., 2., 3., 4.], &[2, 2]);
        let b = t(&[5., 6.], &[2, 1]);
        let c = Tensor::concat(&[&a, &b], 1).unwrap();
        assert_eq!(c.to_vec(), vec![1., 2., 5., 3., 4., 6.]);
        assert!(Tensor::concat(&[&a, &b], 0).is_err());
    }
}
