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

    /// `eˣ - 1` in a vectorisable form (libm's `expm1` for `f64`; for `f32` within 2 ulp,
    /// tested below).
    fn exp_m1_v(self) -> Self;

    /// `ln(1 + x)` in a vectorisable form (libm's `log1p` for `f64`; for `f32` within 3
    /// ulp, tested below).
    fn ln_1p_v(self) -> Self;

    /// The exact GELU `x·Φ(x)`, `Φ` the standard normal CDF, accurate in the tails (for
    /// `f32` within 3 ulp for `x ≥ -0.67` and 8 ulp below, down into the subnormal
    /// results, tested below).
    fn gelu_v(self) -> Self;

    /// The derivative of the exact GELU, `Φ(x) + x·φ(x)`.
    fn gelu_grad_v(self) -> Self;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn erf(self) -> Self {
        erf_f32(self)
    }
    #[inline(always)]
    fn tanh_v(self) -> Self {
        tanh_f32(self)
    }
    #[inline(always)]
    fn exp_v(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn exp_m1_v(self) -> Self {
        exp_m1_f32(self)
    }
    #[inline(always)]
    fn ln_1p_v(self) -> Self {
        ln_1p_f32(self)
    }
    #[inline(always)]
    fn gelu_v(self) -> Self {
        gelu_f32(self)
    }
    #[inline(always)]
    fn gelu_grad_v(self) -> Self {
        gelu_grad_f32(self)
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
    #[inline]
    fn exp_m1_v(self) -> Self {
        self.exp_m1()
    }
    #[inline]
    fn ln_1p_v(self) -> Self {
        self.ln_1p()
    }
    fn gelu_v(self) -> Self {
        // Φ(x) = erfc(-x/√2)/2: erfc keeps its relative accuracy in the left tail, where
        // 1 + erf(x/√2) would cancel to nothing.
        self * 0.5 * libm::erfc(-self * std::f64::consts::FRAC_1_SQRT_2)
    }
    fn gelu_grad_v(self) -> Self {
        let phi = (-0.5 * self * self).exp()
            * (0.5 * std::f64::consts::FRAC_2_SQRT_PI)
            * std::f64::consts::FRAC_1_SQRT_2;
        0.5 * libm::erfc(-self * std::f64::consts::FRAC_1_SQRT_2) + self * phi
    }
}

/// tanh for f32 as a [13/6] odd rational function on `[-7.9, 7.9]` (beyond which tanh
/// rounds to ±1 in f32), the approximation Eigen uses for its vectorised `ptanh`. Branch
/// free and without `mul_add` (a libm call unless the target has FMA), so a loop over it
/// vectorises.
#[inline(always)]
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
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Rounds to nearest through the float adder (1.5·2²³), where `round()` would be a call.
    const SHIFTER: f32 = 12_582_912.0;
    // Outside this range eˣ is inf or 0 in f32 either way; clamping keeps n in range.
    let x = x.clamp(-104.0, 89.0);
    let shifted = x * LOG2E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = x - n * 0.693_359_375 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_15e-4_f32;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    let y = p * r * r + r + 1.0;
    // n as an integer from the shifted sum's low mantissa bits: `n as i32` is a saturating
    // conversion, which x86 without AVX-512 does one lane at a time.
    let n = (shifted.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let (n1, n2) = (n >> 1, n - (n >> 1));
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    y * pow2(n1) * pow2(n2)
}

/// `eˣ - 1` for f32, branch free: a degree-10 Taylor polynomial where `|x| < 0.7` (where
/// `eˣ - 1` would cancel), else `exp_f32(x) - 1`, whose rounding is then below an ulp of
/// the result.
#[inline(always)]
fn exp_m1_f32(x: f32) -> f32 {
    // 1/k! for k = 2..=10, Horner from the top.
    const C: [f32; 9] = [
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let mut p = C[0];
    for &c in &C[1..] {
        p = p * x + c;
    }
    let small = x + x * x * p;
    let large = exp_f32(x) - 1.0;
    if x == 0.0 {
        // ±0 (x + 0 would turn -0 into +0)
        x
    } else if x.abs() < 0.7 {
        small
    } else {
        large
    }
}

/// `ln x` for f32 and positive normal `x` (Cephes' `logf`: mantissa in `[√½, √2)`, a
/// degree-8 polynomial, the exponent times ln 2 in two parts). Branch free; callers
/// handle zero, negative, subnormal and non-finite inputs.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
fn ln_f32_normal(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // mantissa in [0.5, 1)
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let below = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= i32::from(below);
    m = if below { m + m } else { m };
    let r = m - 1.0;
    let z = r * r;
    let mut p = 7.037_683_629_2e-2_f32;
    p = p * r - 1.151_461_031_0e-1;
    p = p * r + 1.167_699_874_0e-1;
    p = p * r - 1.242_014_084_6e-1;
    p = p * r + 1.424_932_278_7e-1;
    p = p * r - 1.666_805_766_5e-1;
    p = p * r + 2.000_071_476_5e-1;
    p = p * r - 2.499_999_399_3e-1;
    p = p * r + 3.333_333_117_4e-1;
    let ef = e as f32;
    let y = r * z * p + ef * -2.121_944_4e-4 - 0.5 * z;
    r + y + ef * 0.693_359_375
}

/// `ln(1 + x)` for f32, branch free and without calls: `w = 1 + x` rounded, then `ln w ·
/// x/(w - 1)`, which cancels the rounding of `w` (Goldberg 1991, Theorem 4); `x` itself
/// where `w == 1`; -∞ at -1, NaN below it, +∞ at +∞.
#[inline(always)]
fn ln_1p_f32(x: f32) -> f32 {
    let w = 1.0 + x;
    // ln w for a positive finite w; a stand-in elsewhere, where another case is selected
    let ok = w > 0.0 && w < f32::INFINITY;
    let wn = if ok { w } else { 2.0 };
    let fast = if w == 1.0 {
        x
    } else {
        ln_f32_normal(wn) * (x / (wn - 1.0))
    };
    if x == -1.0 {
        f32::NEG_INFINITY
    } else if x.is_nan() || x < -1.0 {
        f32::NAN
    } else if x == f32::INFINITY {
        x
    } else {
        fast
    }
}

/// `x` with the low 12 mantissa bits cleared, so its square is exact in f32.
#[inline(always)]
fn split_hi(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xffff_f000)
}

/// `scale · e^{extra - s·x²}` for `s` a power of two, with `x²` carried in two parts (`x =
/// h + l`, `h²` exact) so large `x` keep the result's relative accuracy, and the tiny factor
/// `e^{-s·h²}` applied last, so a result in the subnormal range is rounded once; `x` here is
/// finite.
#[inline(always)]
fn exp_neg_sq(x: f32, s: f32, extra: f32, scale: f32) -> f32 {
    let h = split_hi(x);
    let lo = (x - h) * (x + h);
    scale * exp_f32(-lo * s + extra) * exp_f32(-(h * h) * s)
}

/// The coefficients of Numerical Recipes' `erfcc` (Chebyshev fit): `erfc(a) = t·e^{-a² +
/// q(t)}` with `t = 1/(1 + a/2)`, relative error below 1.2·10⁻⁷ for every `a ≥ 0`.
#[allow(clippy::excessive_precision)]
const ERFC_Q: [f32; 10] = [
    0.170_872_77,
    -0.822_152_23,
    1.488_515_87,
    -1.135_203_98,
    0.278_868_07,
    -0.186_288_06,
    0.096_784_18,
    0.374_091_96,
    1.000_023_68,
    -1.265_512_23,
];

/// `t` and `q(t)` of [`ERFC_Q`] for `a ≥ 0`.
#[inline(always)]
fn erfc_t_q(a: f32) -> (f32, f32) {
    let t = 1.0 / (1.0 + 0.5 * a);
    let mut q = ERFC_Q[0];
    for &c in &ERFC_Q[1..] {
        q = q * t + c;
    }
    (t, q)
}

/// `erf(x)/x - 1` by its Taylor series in `x²` (11 terms: truncation below 10⁻⁹ for
/// `|x| ≤ 1`), so `erf(x) = x + x·p` adds a small correction to an exact `x`.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn erf_small_p(x2: f32) -> f32 {
    // (2/√π)·(-1)ⁿ/(n!(2n+1)) for n = 10..=1, then 2/√π - 1 for n = 0.
    const C: [f32; 11] = [
        1.480_719_3e-8,
        -1.636_584_5e-7,
        1.646_211_4e-6,
        -1.492_565e-5,
        1.205_533_3e-4,
        -8.548_327e-4,
        5.223_977_6e-3,
        -2.686_617_1e-2,
        1.128_379_2e-1,
        -3.761_263_9e-1,
        1.283_791_7e-1,
    ];
    let mut p = C[0];
    for &c in &C[1..] {
        p = p * x2 + c;
    }
    p
}

/// erf for f32, branch free (both forms computed, one selected, so loops vectorise):
/// `x + x·p(x²)` for `|x| < 1`, else `±(1 - erfc(|x|))` with erfc from [`erfc_t_q`] and
/// `e^{-x²}` from [`exp_neg_sq`]. Within 2 ulp (tested below).
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let small = x + x * erf_small_p(x * x);
    // erfc(10) ≈ 2·10⁻⁴⁵: past it erf is ±1 in f32; clamping keeps the tail finite.
    let ac = if a < 10.0 { a } else { 10.0 };
    let (t, q) = erfc_t_q(ac);
    let large = (1.0 - exp_neg_sq(ac, 1.0, q, t)).copysign(x);
    if x.is_nan() {
        x
    } else if a < 1.0 {
        small
    } else {
        large
    }
}

/// Below this `x` (where `Φ(x) = 1/4`) the GELU takes `Φ` from the erfc tail: the series
/// form `1/2 + erf(x/√2)/2` cancels more than a factor 2 there.
const GELU_LEFT: f32 = -0.674_49;

/// The exact GELU's `Φ(x)` for f32 where `GELU_LEFT ≤ x < √2`, by the erf series (`Φ` in
/// [1/4, 0.93] there, so at most a factor 2 cancels).
#[inline(always)]
fn gelu_central_cdf(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    0.5 + 0.5 * (z + z * erf_small_p(z * z))
}

/// `scale · erfc(|x|/√2)/2`, the normal tail `Φ(-|x|)` times `scale` (`|x|` clamped at
/// 20, past which Φ(-|x|) underflows anyway).
#[inline(always)]
fn gelu_tail_cdf(x: f32, scale: f32) -> f32 {
    let a = x.abs();
    let ac = if a < 20.0 { a } else { 20.0 };
    let (t, q) = erfc_t_q(ac * std::f32::consts::FRAC_1_SQRT_2);
    // e^{-x²/2 + q} with x² in two parts, the scale applied before the tiny factor
    exp_neg_sq(ac, 0.5, q, 0.5 * t * scale)
}

/// The exact GELU `x·Φ(x)` for f32, branch free (every form computed, one selected): the
/// series in the middle, `x·(1 - Φ(-x))` past √2, and left of `GELU_LEFT` `x·Φ(x)` with `x`
/// folded into the tail before its smallest factor, so results down in the subnormal range
/// keep their accuracy.
#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    let central = x * gelu_central_cdf(x);
    let left = gelu_tail_cdf(x, x);
    let right = x * (1.0 - gelu_tail_cdf(x, 1.0));
    if x < GELU_LEFT {
        left
    } else if x < std::f32::consts::SQRT_2 {
        central
    } else {
        right
    }
}

/// `Φ(x) + x·φ(x)`, the exact GELU's derivative, for f32.
#[inline(always)]
fn gelu_grad_f32(x: f32) -> f32 {
    // 1/√(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let a = x.abs();
    let ac = if a < 20.0 { a } else { 20.0 };
    let tail = gelu_tail_cdf(x, 1.0);
    let cdf = if x < GELU_LEFT {
        tail
    } else if x < std::f32::consts::SQRT_2 {
        gelu_central_cdf(x)
    } else {
        1.0 - tail
    };
    let pdf_x = exp_neg_sq(ac, 0.5, 0.0, x * INV_SQRT_2PI);
    let d = cdf + pdf_x;
    if x.is_nan() {
        x
    } else {
        d
    }
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

    /// The spacing of f32 values at `|v|` (the subnormal spacing below the normal range).
    fn f32_ulp_at(v: f64) -> f64 {
        let a = (v.abs() as f32).max(f32::MIN_POSITIVE);
        f32::from_bits(a.to_bits() & 0x7f80_0000) as f64 * f32::EPSILON as f64
    }

    /// The worst error in ulp of `f` against `exact` (evaluated in f64) over every 211th
    /// f32 bit pattern (both signs, zeros, subnormals, normals up to ±MAX, infinities,
    /// NaNs) and `extra` points; NaN must map to NaN and infinite exact values must come
    /// out exactly. Returns the error and the worst input.
    fn worst_ulp_full_range(
        f: impl Fn(f32) -> f32,
        exact: impl Fn(f64) -> f64,
        extra: &[f32],
        include: impl Fn(f32) -> bool,
    ) -> (f64, f32) {
        let specials = [
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0,
            -1.0,
        ];
        let grid = (0..=u32::MAX).step_by(211).map(f32::from_bits);
        let mut worst = (0.0f64, 0.0f32);
        for x in grid.chain(specials).chain(extra.iter().copied()) {
            if !include(x) {
                continue;
            }
            let got = f(x);
            let want = exact(x as f64);
            if want.is_nan() {
                assert!(got.is_nan(), "f({x:e}) = {got:e}, want NaN");
                continue;
            }
            let want32 = want as f32;
            if want32.is_infinite() || want == 0.0 {
                assert_eq!(got, want32, "f({x:e}) = {got:e}, want {want32:e}");
                // the sign of a zero result too
                assert_eq!(
                    got.is_sign_negative(),
                    want32.is_sign_negative(),
                    "f({x:e})"
                );
                continue;
            }
            let e = (got as f64 - want).abs() / f32_ulp_at(want);
            if e > worst.0 || e.is_nan() {
                worst = (e, x);
            }
        }
        worst
    }

    #[test]
    fn f32_erf_is_within_two_ulp_over_the_whole_range() {
        let dense: Vec<f32> = (-80_000..=80_000).map(|i| i as f32 * 1e-4).collect();
        let (ulp, at) = worst_ulp_full_range(<f32 as Float>::erf, libm::erf, &dense, |_| true);
        assert!(ulp <= 2.0, "worst error {ulp} ulp at {at:e}");
        assert_eq!(Float::erf(f32::INFINITY), 1.0);
        assert_eq!(Float::erf(f32::NEG_INFINITY), -1.0);
        assert!(Float::erf(-0.0f32).is_sign_negative());
    }

    #[test]
    fn f32_exp_m1_is_within_two_ulp_over_the_whole_range() {
        let dense: Vec<f32> = (-100_000..=100_000).map(|i| i as f32 * 1e-4).collect();
        let (ulp, at) = worst_ulp_full_range(|x| x.exp_m1_v(), f64::exp_m1, &dense, |_| true);
        assert!(ulp <= 2.0, "worst error {ulp} ulp at {at:e}");
        assert_eq!(f32::NEG_INFINITY.exp_m1_v(), -1.0);
        assert!((-0.0f32).exp_m1_v().is_sign_negative());
    }

    #[test]
    fn f32_ln_1p_is_within_three_ulp_over_the_whole_range() {
        let dense: Vec<f32> = (0..=200_000).map(|i| -0.99999 + i as f32 * 1e-4).collect();
        let (ulp, at) = worst_ulp_full_range(|x| x.ln_1p_v(), f64::ln_1p, &dense, |_| true);
        assert!(ulp <= 3.0, "worst error {ulp} ulp at {at:e}");
        assert_eq!((-1.0f32).ln_1p_v(), f32::NEG_INFINITY);
        assert!((-2.0f32).ln_1p_v().is_nan());
        assert!((-0.0f32).ln_1p_v().is_sign_negative());
    }

    #[test]
    fn f32_gelu_is_within_three_ulp_and_eight_in_the_left_tail_over_the_whole_range() {
        let dense: Vec<f32> = (-200_000..=100_000).map(|i| i as f32 * 1e-4).collect();
        // Left of Φ(x) = 1/4 the result is x·erfc(|x|/√2)/2 from Numerical Recipes' erfc
        // fit (relative error 1.2e-7) and two exps: 8 ulp there, 3 elsewhere. (PyTorch's
        // x/2·(1 + erf(x/√2)) loses every digit in the tail: at x = -3.66 its error is
        // about 2,000 ulp, and from x ≈ -5.5 on it returns 0.)
        let left = |x: f32| x < GELU_LEFT;
        let (ulp, at) = worst_ulp_full_range(|x| x.gelu_v(), f64::gelu_v, &dense, |x| !left(x));
        assert!(ulp <= 3.0, "worst error {ulp} ulp at {at:e}");
        let (ulp, at) = worst_ulp_full_range(|x| x.gelu_v(), f64::gelu_v, &dense, left);
        assert!(
            ulp <= 8.0,
            "worst error {ulp} ulp at {at:e} in the left tail"
        );
        // the left tail keeps its digits where x/2·(1 + erf(x/√2)) would round to 0
        let g = (-8.0f32).gelu_v() as f64;
        assert!((g / (-8.0f64).gelu_v() - 1.0).abs() < 1e-6, "{g:e}");
        assert!((-0.0f32).gelu_v().is_sign_negative());
        assert_eq!(f32::INFINITY.gelu_v(), f32::INFINITY);
    }

    #[test]
    fn f32_gelu_grad_is_within_eight_ulp_of_its_larger_term_over_the_whole_range() {
        let dense: Vec<f32> = (-200_000..=100_000).map(|i| i as f32 * 1e-4).collect();
        // Φ(x) + x·φ(x) cancels where its two terms are close (its root is at x ≈ -0.75),
        // so the bound is in ulp of the larger term; Φ left of GELU_LEFT is the erfc tail
        // of the GELU test above (8 ulp).
        let mut worst = (0.0f64, 0.0f32);
        let grid = (0..=u32::MAX).step_by(211).map(f32::from_bits);
        for x in grid.chain(dense) {
            let (got, want) = (x.gelu_grad_v(), (x as f64).gelu_grad_v());
            if want.is_nan() {
                assert!(got.is_nan(), "gelu'({x:e}) = {got:e}");
                continue;
            }
            let xd = x as f64;
            let pdf_x = xd * (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let scale = (want - pdf_x).abs().max(pdf_x.abs()).max(want.abs());
            let e = (got as f64 - want).abs() / f32_ulp_at(scale);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(
            worst.0 <= 8.0,
            "worst error {} ulp at {:e}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn f64_gelu_grad_is_the_derivative_of_f64_gelu() {
        for i in -400..=400 {
            let x = i as f64 * 0.025;
            let h = 1e-6;
            let fd = ((x + h).gelu_v() - (x - h).gelu_v()) / (2.0 * h);
            assert!((fd - x.gelu_grad_v()).abs() < 1e-8, "x = {x}");
        }
    }
}
