//! The element types a tensor can hold.

use std::fmt::{Debug, Display};
use std::iter::Sum;

/// The data type of a tensor's elements, as stored in files.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
}

/// A floating-point element type: `f32` or `f64`.
///
/// Beyond `num_traits::Float` this carries the few things the kernels need per type: a
/// `erf`, and lossless-as-possible conversion from `f64` constants.
pub trait Float:
    num_traits::Float + num_traits::NumAssign + Default + Debug + Display + Sum + Send + Sync + 'static
{
    /// The dtype tag of this type.
    const DTYPE: DType;

    /// Converts an `f64` constant (rounding for `f32`).
    fn of(x: f64) -> Self;

    /// Widens to `f64`.
    fn as_f64(self) -> f64;

    /// The error function.
    fn erf(self) -> Self;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
