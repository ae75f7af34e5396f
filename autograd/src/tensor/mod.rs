//! N-dimensional row-major tensors with shared storage, without autodiff.
//!
//! | file | what |
//! | --- | --- |
//! | `shape.rs` | [`Shape`], axes, broadcasting, strides |
//! | `float.rs` | the [`Float`] element trait (f32, f64) and [`DType`] |
//! | `ops.rs` | value-level maths: elementwise, reductions, matmul, indexing |
//! | `kernels/` | the raw loops those call |
//!
//! A tensor is always contiguous; cloning shares the buffer, and in-place methods copy it
//! first only when it is shared (copy on write). A one-element tensor keeps its value
//! inline, so scalar graphs (micrograd-style) allocate nothing per value.

mod float;
pub(crate) mod kernels;
mod ops;
pub(crate) mod pool;
pub(crate) use ops::check_flat_indices;
mod shape;

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

pub use float::{DType, Float};
pub use kernels::index::PAD;
pub use shape::{Shape, MAX_NUMEL};

use crate::error::{Error, Result};

#[derive(Clone)]
enum Storage<T> {
    One(T),
    // A buffer goes back to the cache of large buffers (`pool`) when its last tensor drops.
    Shared(Arc<pool::Buffer<T>>),
}

/// An n-dimensional array of `f32` or `f64`, row-major, cheap to clone.
///
/// ```
/// use autograd::Tensor;
/// let t = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
/// assert_eq!(t.dims(), &[2, 3]);
/// assert_eq!(t.at(&[1, 2])?, 6.0);
/// let s = t.sum_axes(&[1], false)?;
/// assert_eq!(s.to_vec(), vec![6.0, 15.0]);
/// # Ok::<(), autograd::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor<T> {
    storage: Storage<T>,
    shape: Shape,
}

impl<T: Float> Tensor<T> {
    /// Builds a tensor from row-major data.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when no tensor can have `shape` (see [`Shape::checked_numel`]);
    /// [`Error::ShapeMismatch`] when `data.len()` is not the product of the dimensions.
    #[track_caller]
    pub fn from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.check("from_vec")? != data.len() {
            return Err(Error::ShapeMismatch {
                op: "from_vec",
                expected: shape,
                got: Shape::from([data.len()]),
                location: Location::caller(),
            });
        }
        Ok(Self::from_parts(data, shape))
    }

    /// Builds a tensor whose element count is known to match (kernels' outputs).
    pub(crate) fn from_parts(data: Vec<T>, shape: Shape) -> Self {
        debug_assert_eq!(
            Some(data.len()),
            shape.checked_numel(),
            "internal: kernel output size"
        );
        let storage = if data.len() == 1 {
            Storage::One(data[0])
        } else {
            Storage::Shared(Arc::new(pool::Buffer::new(data)))
        };
        Tensor { storage, shape }
    }

    /// A 0-d tensor holding one value.
    pub fn scalar(x: T) -> Self {
        Tensor {
            storage: Storage::One(x),
            shape: Shape::scalar(),
        }
    }

    /// A tensor of `shape` filled with `value`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// assert_eq!(Tensor::full([2, 2], 7.0f32)?.to_vec(), vec![7.0; 4]);
    /// assert!(Tensor::<f32>::full([1 << 32, 1 << 32], 0.0).is_err());
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLarge`] when no tensor can have `shape` or its buffer cannot be
    /// allocated.
    #[track_caller]
    pub fn full(shape: impl Into<Shape>, value: T) -> Result<Self> {
        Self::full_named("full", shape.into(), value)
    }

    #[track_caller]
    fn full_named(op: &'static str, shape: Shape, value: T) -> Result<Self> {
        if shape.iter().all(|&d| d == 1) {
            return Ok(Tensor {
                storage: Storage::One(value),
                shape,
            });
        }
        let mut data = buffer(op, &shape)?;
        data.resize(shape.numel(), value);
        Ok(Self::from_parts(data, shape))
    }

    /// A tensor of a shape taken from a valid tensor, filled with `value` (the crate's
    /// infallible form of [`Tensor::full`]).
    pub(crate) fn filled(shape: Shape, value: T) -> Self {
        debug_assert!(shape.checked_numel().is_some(), "internal: invalid shape");
        if shape.numel() == 1 {
            return Tensor {
                storage: Storage::One(value),
                shape,
            };
        }
        let n = shape.numel();
        let mut data = pool::take(n).unwrap_or_else(|| Vec::with_capacity(n));
        data.resize(n, value);
        Self::from_parts(data, shape)
    }

    /// A tensor of zeros.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    #[track_caller]
    pub fn zeros(shape: impl Into<Shape>) -> Result<Self> {
        Self::full_named("zeros", shape.into(), T::zero())
    }

    /// A tensor of ones.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    #[track_caller]
    pub fn ones(shape: impl Into<Shape>) -> Result<Self> {
        Self::full_named("ones", shape.into(), T::one())
    }

    /// Zeros with this tensor's shape.
    pub fn zeros_like(&self) -> Self {
        Self::filled(self.shape.clone(), T::zero())
    }

    /// Ones with this tensor's shape.
    pub fn ones_like(&self) -> Self {
        Self::filled(self.shape.clone(), T::one())
    }

    /// `value` everywhere, with this tensor's shape.
    pub fn full_like(&self, value: T) -> Self {
        Self::filled(self.shape.clone(), value)
    }

    /// `[0, 1, ..., n-1]` as a 1-d tensor.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when `n` elements cannot be allocated.
    #[track_caller]
    pub fn arange(n: usize) -> Result<Self> {
        Self::from_fn_named("arange", Shape::from([n]), |i| T::of(i as f64))
    }

    /// The `n × n` identity matrix.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when `n²` overflows or cannot be allocated.
    #[track_caller]
    pub fn eye(n: usize) -> Result<Self> {
        // n + 1 divides every diagonal offset i·n + i.
        Self::from_fn_named("eye", Shape::from([n, n]), |k| {
            if k % (n + 1) == 0 {
                T::one()
            } else {
                T::zero()
            }
        })
    }

    /// Builds a tensor by calling `f` with each flat (row-major) index.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    #[track_caller]
    pub fn from_fn(shape: impl Into<Shape>, f: impl FnMut(usize) -> T) -> Result<Self> {
        Self::from_fn_named("from_fn", shape.into(), f)
    }

    #[track_caller]
    fn from_fn_named(op: &'static str, shape: Shape, f: impl FnMut(usize) -> T) -> Result<Self> {
        let mut data = buffer(op, &shape)?;
        data.extend((0..shape.numel()).map(f));
        Ok(Self::from_parts(data, shape))
    }

    /// Uniform samples in `[0, 1)` from a seeded generator.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let t = autograd::Tensor::<f32>::rand([2, 2], &mut rng)?;
    /// assert!(t.to_vec().iter().all(|&x| (0.0..1.0).contains(&x)));
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tensor::full`].
    #[track_caller]
    pub fn rand(shape: impl Into<Shape>, rng: &mut impl Rng) -> Result<Self> {
        Self::uniform_named("rand", shape.into(), T::zero(), T::one(), rng)
    }

    /// Uniform samples in `[low, high)`.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    #[track_caller]
    pub fn uniform(shape: impl Into<Shape>, low: T, high: T, rng: &mut impl Rng) -> Result<Self> {
        Self::uniform_named("uniform", shape.into(), low, high, rng)
    }

    #[track_caller]
    fn uniform_named(
        op: &'static str,
        shape: Shape,
        low: T,
        high: T,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (lo, hi) = (low.as_f64(), high.as_f64());
        let mut data = buffer(op, &shape)?;
        let n = shape.numel();
        // An empty or non-finite range has no distribution: every sample is `low`.
        match Uniform::new(lo, hi) {
            Ok(d) => data.extend((0..n).map(|_| T::of(d.sample(rng)))),
            Err(_) => data.resize(n, low),
        }
        Ok(Self::from_parts(data, shape))
    }

    /// Standard normal samples from a seeded generator.
    ///
    /// # Errors
    /// As [`Tensor::full`].
    #[track_caller]
    pub fn randn(shape: impl Into<Shape>, rng: &mut impl Rng) -> Result<Self> {
        let shape = shape.into();
        let mut data = buffer("randn", &shape)?;
        data.extend((0..shape.numel()).map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            T::of(z)
        }));
        Ok(Self::from_parts(data, shape))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions as a slice.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        match &self.storage {
            Storage::One(x) => std::slice::from_ref(x),
            Storage::Shared(v) => v,
        }
    }

    /// Mutable access to the elements, copying the buffer first if it is shared.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::One(x) => std::slice::from_mut(x),
            Storage::Shared(v) => Arc::make_mut(v).as_mut_slice(),
        }
    }

    /// A copy of the elements in row-major order.
    pub fn to_vec(&self) -> Vec<T> {
        self.as_slice().to_vec()
    }

    /// Whether two tensors share one buffer (a clone and its source do).
    pub fn shares_storage(&self, other: &Self) -> bool {
        match (&self.storage, &other.storage) {
            (Storage::Shared(a), Storage::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The element at a multi-index.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the index has the wrong length or is out of range.
    #[track_caller]
    pub fn at(&self, index: &[usize]) -> Result<T> {
        if index.len() != self.rank() || index.iter().zip(self.dims()).any(|(&i, &d)| i >= d) {
            return Err(Error::invalid(
                "at",
                format!("index {index:?} is out of range"),
                &self.shape,
            ));
        }
        let off: usize = index
            .iter()
            .zip(self.shape.strides().iter())
            .map(|(i, s)| i * s)
            .sum();
        Ok(self.as_slice()[off])
    }

    /// The value of a one-element tensor.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the tensor has more or fewer than one element.
    #[track_caller]
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                "only a one-element tensor has an item",
                &self.shape,
            ));
        }
        Ok(self.as_slice()[0])
    }

    /// Converts the elements to another float type.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor::from_parts(
            self.as_slice().iter().map(|x| U::of(x.as_f64())).collect(),
            self.shape.clone(),
        )
    }

    /// The flat index of the first NaN or infinite element, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.as_slice().iter().position(|x| !x.is_finite())
    }

    /// The same data under another shape with the same element count (no copy).
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a shape no tensor can have; [`Error::ShapeMismatch`] when
    /// the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.check("reshape")? != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                expected: shape,
                got: self.shape.clone(),
                location: Location::caller(),
            });
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            shape,
        })
    }
}

/// An empty buffer with room for the elements of a tensor of `shape`, which is checked
/// first. An allocation the system refuses is an error too, not an abort: a shape can be
/// valid and still far larger than memory.
#[track_caller]
pub(crate) fn buffer<U: 'static>(op: &'static str, shape: &Shape) -> Result<Vec<U>> {
    let n = shape.check(op)?;
    // Taken here: `#[track_caller]` does not reach into the closure below.
    let location = Location::caller();
    pool::take(n).ok_or_else(|| Error::TooLarge {
        op,
        shape: shape.clone(),
        location,
    })
}

impl<T: Float> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.as_slice() == other.as_slice()
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{:?}>{} ", T::DTYPE, self.shape)?;
        fmt::Display::fmt(self, f)
    }
}

impl<T: Float> fmt::Display for Tensor<T> {
    /// Nested brackets, eliding the middle of long dimensions (like NumPy past 6 entries).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn rec<T: Float>(
            f: &mut fmt::Formatter<'_>,
            data: &[T],
            dims: &[usize],
            prec: Option<usize>,
        ) -> fmt::Result {
            if dims.is_empty() {
                return match prec {
                    Some(p) => write!(f, "{:.*}", p, data[0]),
                    None => write!(f, "{:.4}", data[0]),
                };
            }
            let n = dims[0];
            let step = data.len() / n.max(1);
            write!(f, "[")?;
            for i in 0..n {
                if n > 6 && i == 3 {
                    write!(f, ", ...")?;
                }
                if n > 6 && (3..n - 3).contains(&i) {
                    continue;
                }
                if i > 0 {
                    write!(f, ", ")?;
                }
                rec(f, &data[i * step..(i + 1) * step], &dims[1..], prec)?;
            }
            write!(f, "]")
        }
        rec(f, self.as_slice(), self.dims(), f.precision())
    }
}
