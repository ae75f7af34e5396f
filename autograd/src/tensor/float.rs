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

    /// `tanh`, in a form the compiler can vectorise when mapped over a slice. For `f64` it
    /// is the correctly rounded-ish libm `tanh`; for `f32` a branch-free rational
    /// approximation within a few ulp (measured in the tests below), since libm's scalar
    /// `tanhf` dominated deep-tanh-network time.
    fn tanh_v(self) -> Self;

    /// `eˣ` in a vectorisable form: libm's `exp` for `f64`; for `f32` a branch-free
    /// Cephes-style range reduction and polynomial, within 2 ulp (tested below).
    fn exp_v(self) -> Self;
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
    #[inline]
    fn tanh_v(self) -> Self {
        tanh_f32(self)
    }
    #[inline]
    fn exp_v(self) -> Self {
        exp_f32(self)
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
    #[inline]
    fn tanh_v(self) -> Self {
        self.tanh()
    }
    #[inline]
    fn exp_v(self) -> Self {
        self.exp()
    }
}

/// tanh for f32 as a [13/6] odd rational function on `[-7.9, 7.9]` (beyond which tanh
/// rounds to ±1 in f32), the approximation Eigen uses for its vectorised `ptanh`. Branch
/// free and without `mul_add` (a libm call unless the target has FMA), so a loop over it
/// vectorises.
#[inline]
#[allow(clippy::excessive_precision)] // the coefficients as published, rounded by the compiler
fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * -2.760_768_5e-16 + 2.000_187_9e-13;
    let p = x2 * p + -8.604_671_5e-11;
    let p = x2 * p + 5.122_297e-8;
    let p = x2 * p + 1.485_722_4e-5;
    let p = x2 * p + 6.372_619_3e-4;
    let p = x2 * p + 4.893_524_6e-3;
    let p = x * p;
    let q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    let q = x2 * q + 2.268_434_6e-3;
    let q = x2 * q + 4.893_525_2e-3;
    p / q
}

/// eˣ for f32 without branches or libm calls, so loops over it vectorise: x = n·ln 2 + r
/// with |r| ≤ ln 2 / 2, eʳ by Cephes' degree-6 polynomial, and 2ⁿ applied as two exact
/// power-of-two factors so results near overflow and in the subnormal range come out right.
#[inline]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Rounds to nearest through the float adder (1.5·2²³), where `round()` would be a call.
    const SHIFTER: f32 = 12_582_912.0;
    // Outside this range eˣ is inf or 0 in f32 either way; clamping keeps n in range.
    let x = x.clamp(-104.0, 89.0);
    let n = (x * LOG2E + SHIFTER) - SHIFTER;
    let r = x - n * 0.693_359_375 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_15e-4_f32;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    let y = p * r * r + r + 1.0;
    let n = n as i32;
    let (n1, n2) = (n >> 1, n - (n >> 1));
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    y * pow2(n1) * pow2(n2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_tanh_is_within_a_few_ulp_of_the_exact_value() {
        let mut worst_ulp = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 5e-5; // [-10, 10]
            let exact = (x as f64).tanh();
            let got = x.tanh_v() as f64;
            let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            worst_ulp = worst_ulp.max((got - exact).abs() / ulp);
        }
        assert!(worst_ulp <= 4.0, "worst error {worst_ulp} ulp");
    }

    #[test]
    fn f32_exp_is_within_two_ulp_and_overflows_and_underflows_like_libm() {
        let mut worst_ulp = 0.0f64;
        for i in -1_000_000..=1_000_000 {
            let x = i as f32 * 8.8e-5; // [-88, 88]
            let exact = (x as f64).exp();
            let got = x.exp_v() as f64;
            let ulp = (exact as f32).abs() as f64 * f32::EPSILON as f64;
            worst_ulp = worst_ulp.max((got - exact).abs() / ulp);
        }
        assert!(worst_ulp <= 2.0, "worst error {worst_ulp} ulp");
        assert_eq!(89.0f32.exp_v(), f32::INFINITY);
        assert_eq!(1e30f32.exp_v(), f32::INFINITY);
        assert_eq!((-1e30f32).exp_v(), 0.0);
        assert!(f32::NAN.exp_v().is_nan());
        // subnormal results: e^-95 ≈ 5.5e-42
        let sub = (-95.0f32).exp_v() as f64;
        assert!((sub - (-95.0f64).exp()).abs() < 1e-44, "{sub}");
    }
}
