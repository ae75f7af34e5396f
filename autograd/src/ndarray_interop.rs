//! Conversions between [`Tensor`] and `ndarray` arrays (feature `ndarray`).
//!
//! Both are row-major n-dimensional arrays, so a conversion is a copy of the elements in
//! logical order (a move of the buffer when an owned array is already contiguous and
//! row-major). An `ndarray` view of any layout — transposed, sliced, broadcast — converts to
//! a contiguous tensor with the same logical elements.
//!
//! ```
//! use autograd::Tensor;
//! use ndarray::{array, Array2};
//!
//! let a = array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
//! let t = Tensor::from_ndarray(&a.t())?;             // a transposed view
//! assert_eq!(t.dims(), &[3, 2]);
//! assert_eq!(t.to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
//! let back: Array2<f64> = (&t).try_into()?;          // rank-checked
//! assert_eq!(back, a.t());
//! assert_eq!(t.to_ndarray().shape(), &[3, 2]);       // dynamic rank, never fails
//! # Ok::<(), autograd::Error>(())
//! ```

use std::panic::Location;

use ndarray::{Array, ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape, Tensor};

impl<T: Float> Tensor<T> {
    /// Copies an `ndarray` array or view of any layout into a tensor of the same shape and
    /// logical elements.
    ///
    /// # Errors
    /// None for arrays `ndarray` can build; typed for uniformity with the other
    /// constructors.
    #[track_caller]
    pub fn from_ndarray<S, D>(a: &ArrayBase<S, D>) -> Result<Self>
    where
        S: Data<Elem = T>,
        D: Dimension,
    {
        // `iter` walks in logical (row-major) order whatever the strides.
        Tensor::from_vec(a.iter().copied().collect(), a.shape())
    }

    /// The tensor as an `ndarray` array of dynamic rank (a copy).
    ///
    /// # Panics
    /// Never: a tensor's elements always fill its shape (an invariant of `Tensor`).
    pub fn to_ndarray(&self) -> ArrayD<T> {
        Array::from_shape_vec(IxDyn(self.dims()), self.to_vec())
            .expect("internal: a tensor's data fills its shape")
    }
}

impl<T: Float, D: Dimension> TryFrom<Array<T, D>> for Tensor<T> {
    type Error = Error;

    /// Moves the buffer of a contiguous row-major array; copies any other layout.
    #[track_caller]
    fn try_from(a: Array<T, D>) -> Result<Self> {
        if !a.is_standard_layout() {
            return Tensor::from_ndarray(&a);
        }
        let shape = Shape::from(a.shape());
        let n = a.len();
        match a.into_raw_vec_and_offset() {
            (v, Some(0)) if v.len() == n => Tensor::from_vec(v, shape),
            // A standard-layout array that starts inside its buffer (a sliced owned array):
            // copy the part it covers.
            (v, off) => {
                let start = off.unwrap_or(0);
                Tensor::from_vec(v[start..start + n].to_vec(), shape)
            }
        }
    }
}

impl<T: Float, D: Dimension> TryFrom<&Tensor<T>> for Array<T, D> {
    type Error = Error;

    /// Copies the tensor into an array of rank `D` (`Array2`, `Array3`, … or `ArrayD`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `D` has a fixed rank other than the tensor's.
    #[track_caller]
    fn try_from(t: &Tensor<T>) -> Result<Self> {
        // Taken here: `#[track_caller]` does not reach into the closure below.
        let location = Location::caller();
        t.to_ndarray()
            .into_dimensionality::<D>()
            .map_err(|_| Error::InvalidArgument {
                op: "to_ndarray",
                reason: format!(
                    "an array of rank {} cannot hold a tensor of rank {}",
                    D::NDIM.map_or("any".to_string(), |n| n.to_string()),
                    t.rank()
                ),
                shape: t.shape().clone(),
                location,
            })
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{array, s, Array1, Array2, Array3, ArrayD};

    use super::*;

    #[test]
    fn owned_arrays_round_trip_with_their_shape() {
        let a = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        let t = Tensor::try_from(a.clone()).unwrap();
        assert_eq!(t.dims(), &[2, 3, 4]);
        assert_eq!(t.at(&[1, 2, 3]).unwrap(), 123.0);
        let back: Array3<f32> = (&t).try_into().unwrap();
        assert_eq!(back, a);
        let dynamic: ArrayD<f32> = (&t).try_into().unwrap();
        assert_eq!(dynamic.shape(), &[2, 3, 4]);
    }

    #[test]
    fn views_of_any_layout_keep_their_logical_order() {
        let a = Array2::from_shape_fn((4, 5), |(i, j)| (10 * i + j) as f64);
        // a strided slice: rows 1 and 3, columns 4, 2, 0
        let v = a.slice(s![1..;2, ..;-2]);
        let t = Tensor::from_ndarray(&v).unwrap();
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(t.to_vec(), vec![14.0, 12.0, 10.0, 34.0, 32.0, 30.0]);
        // an owned array in column-major layout
        let f = a.t().to_owned();
        assert!(!f.is_standard_layout());
        let t = Tensor::try_from(f.clone()).unwrap();
        assert_eq!(t.at(&[4, 1]).unwrap(), 14.0);
        let back: Array2<f64> = (&t).try_into().unwrap();
        assert_eq!(back, f);
        // a broadcast view
        let row = array![1.0, 2.0];
        let b = Tensor::from_ndarray(&row.broadcast((3, 2)).unwrap()).unwrap();
        assert_eq!(b.to_vec(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn a_sliced_owned_array_moves_only_what_it_covers() {
        let mut a = Array1::from_iter((0..10).map(|x| x as f64));
        a.slice_collapse(s![3..6]);
        let t = Tensor::try_from(a).unwrap();
        assert_eq!(t.to_vec(), vec![3.0, 4.0, 5.0]);
    }

    #[test]
    fn a_scalar_converts_both_ways() {
        let t = Tensor::from_ndarray(&ndarray::arr0(2.5f64)).unwrap();
        assert_eq!((t.rank(), t.item().unwrap()), (0, 2.5));
        assert_eq!(t.to_ndarray().ndim(), 0);
    }

    #[test]
    fn a_wrong_rank_is_a_typed_error() {
        let t = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]).unwrap();
        let e = Array2::<f64>::try_from(&t).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "to_ndarray",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("rank 2"), "{e}");
    }
}
