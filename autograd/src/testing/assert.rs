//! Gradient checks for property tests and the [`assert_close!`](crate::assert_close) macro.
//!
//! Tolerances live here and nowhere else: [`Tolerance::DEFAULT_F64`] and
//! [`Tolerance::DEFAULT_F32`] for value comparisons, [`GradcheckOptions::default`]
//! (PyTorch's) for finite-difference checks.

use std::panic::Location;

use proptest::test_runner::TestCaseError;

use crate::error::Result;
use crate::gradcheck::{gradcheck, gradgradcheck, GradcheckOptions};
use crate::tensor::{DType, Float, Tensor};
use crate::var::Var;

/// Inputs with more elements than this in total are checked in fast mode (random
/// projections `uᵀJv`, JAX's `check_vjp` style); smaller ones get the full Jacobian.
pub const FAST_MODE_NUMEL: usize = 48;

fn to_case_error(e: crate::Error) -> TestCaseError {
    // The report's Display names the input, the worst element and the culprit op.
    TestCaseError::fail(e.to_string())
}

fn options_for(inputs: &[Tensor<f64>]) -> GradcheckOptions {
    let n: usize = inputs.iter().map(|t| t.numel()).sum();
    GradcheckOptions {
        fast: n > FAST_MODE_NUMEL,
        ..GradcheckOptions::default()
    }
}

/// [`gradcheck`] for use inside `proptest!`: full Jacobian for small inputs, fast mode
/// (random projections, [`GradcheckOptions::projections`] per input) past
/// [`FAST_MODE_NUMEL`] elements; a failure becomes a `TestCaseError` whose message is the
/// [`GradcheckReport`](crate::GradcheckReport) (which says the mode it ran in), so proptest
/// shrinks it to a minimal shape and value. Both reverse sweeps are checked, so an op's
/// `backward_values` fast path cannot drift from its rule.
///
/// ```
/// use autograd::{testing::check_gradients, Tensor};
/// let x = Tensor::from_vec(vec![0.5, -1.5], [2])?;
/// // f(x) = Σ x·tanh(x)
/// check_gradients(|v| Ok(v[0].mul(v[0].tanh())?.sum()), &[x]).unwrap();
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// A `TestCaseError::Fail` with the report (or `f`'s own error) as its message.
pub fn check_gradients<F>(f: F, inputs: &[Tensor<f64>]) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    check_gradients_with(f, inputs, &options_for(inputs))
}

/// [`check_gradients`] with explicit options (tolerances, mode, seed).
///
/// ```
/// use autograd::{testing::check_gradients_with, GradcheckOptions, Tensor};
/// let opts = GradcheckOptions { fast: true, ..GradcheckOptions::default() };
/// let x = Tensor::from_vec(vec![0.5, -1.5, 2.0], [3])?;
/// check_gradients_with(|v| Ok(v[0].exp().sum()), &[x], &opts).unwrap();
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// As [`check_gradients`].
pub fn check_gradients_with<F>(
    f: F,
    inputs: &[Tensor<f64>],
    opts: &GradcheckOptions,
) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    gradcheck(f, inputs, opts).map_err(to_case_error)
}

/// [`gradgradcheck`] for use inside `proptest!` (second derivatives through the backward
/// rules), with the same slow/fast split and error conversion as [`check_gradients`].
///
/// ```
/// use autograd::{testing::check_gradgrad, Tensor};
/// let x = Tensor::from_vec(vec![0.3, -0.8], [2])?;
/// check_gradgrad(|v| Ok(v[0].sin().mul(v[0])?.sum()), &[x]).unwrap();
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// As [`check_gradients`].
pub fn check_gradgrad<F>(f: F, inputs: &[Tensor<f64>]) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    check_gradgrad_with(f, inputs, &options_for(inputs))
}

/// [`check_gradgrad`] with explicit options.
///
/// ```
/// use autograd::{testing::check_gradgrad_with, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.3, 0.8], [2])?;
/// check_gradgrad_with(|v| Ok(v[0].ln().sum()), &[x], &GradcheckOptions::default()).unwrap();
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// As [`check_gradients`].
pub fn check_gradgrad_with<F>(
    f: F,
    inputs: &[Tensor<f64>],
    opts: &GradcheckOptions,
) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    gradgradcheck(f, inputs, opts).map_err(to_case_error)
}

/// Elementwise tolerance: `|actual - expected| <= atol + rtol·|expected|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (against the expected value).
    pub rtol: f64,
}

impl Tolerance {
    /// The default for f64 values: a few hundred ulps of relative error, for results
    /// computed in a different operation order.
    pub const DEFAULT_F64: Tolerance = Tolerance {
        atol: 1e-12,
        rtol: 1e-10,
    };
    /// The default for f32 values.
    pub const DEFAULT_F32: Tolerance = Tolerance {
        atol: 1e-6,
        rtol: 1e-5,
    };

    /// The default for a dtype.
    ///
    /// ```
    /// use autograd::{testing::Tolerance, DType};
    /// assert_eq!(Tolerance::for_dtype(DType::F32), Tolerance::DEFAULT_F32);
    /// ```
    pub fn for_dtype(d: DType) -> Tolerance {
        match d {
            DType::F32 => Self::DEFAULT_F32,
            DType::F64 => Self::DEFAULT_F64,
        }
    }

    /// Whether one pair of elements is within tolerance (infinities must match exactly;
    /// NaN never is).
    pub fn close(&self, actual: f64, expected: f64) -> bool {
        if actual == expected {
            return true;
        }
        (actual - expected).abs() <= self.atol + self.rtol * expected.abs()
    }
}

/// Values [`assert_close!`](crate::assert_close) can compare: a shape, elements widened to
/// f64, and a dtype for the default tolerance.
pub trait AssertClose {
    /// The element type's dtype.
    fn dtype(&self) -> DType;
    /// The dimensions (empty for a scalar).
    fn dims_for_close(&self) -> Vec<usize>;
    /// The elements, row-major, as f64.
    fn elems_for_close(&self) -> Vec<f64>;
}

impl AssertClose for f64 {
    fn dtype(&self) -> DType {
        DType::F64
    }
    fn dims_for_close(&self) -> Vec<usize> {
        vec![]
    }
    fn elems_for_close(&self) -> Vec<f64> {
        vec![*self]
    }
}

impl AssertClose for f32 {
    fn dtype(&self) -> DType {
        DType::F32
    }
    fn dims_for_close(&self) -> Vec<usize> {
        vec![]
    }
    fn elems_for_close(&self) -> Vec<f64> {
        vec![*self as f64]
    }
}

impl<T: Float> AssertClose for Tensor<T> {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn dims_for_close(&self) -> Vec<usize> {
        self.dims().to_vec()
    }
    fn elems_for_close(&self) -> Vec<f64> {
        self.as_slice().iter().map(|x| x.as_f64()).collect()
    }
}

impl<T: Float> AssertClose for Var<'_, T> {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn dims_for_close(&self) -> Vec<usize> {
        self.dims()
    }
    fn elems_for_close(&self) -> Vec<f64> {
        self.value().elems_for_close()
    }
}

impl<T: Float> AssertClose for Vec<T> {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn dims_for_close(&self) -> Vec<usize> {
        vec![self.len()]
    }
    fn elems_for_close(&self) -> Vec<f64> {
        self.iter().map(|x| x.as_f64()).collect()
    }
}

impl<T: Float, const N: usize> AssertClose for [T; N] {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn dims_for_close(&self) -> Vec<usize> {
        vec![N]
    }
    fn elems_for_close(&self) -> Vec<f64> {
        self.iter().map(|x| x.as_f64()).collect()
    }
}

impl<A: AssertClose + ?Sized> AssertClose for &A {
    fn dtype(&self) -> DType {
        (**self).dtype()
    }
    fn dims_for_close(&self) -> Vec<usize> {
        (**self).dims_for_close()
    }
    fn elems_for_close(&self) -> Vec<f64> {
        (**self).elems_for_close()
    }
}

/// The worst element of `actual` against `expected` if any is out of tolerance, as a
/// message; `None` when all are close. Shapes must agree (a scalar and a one-element
/// tensor of any rank agree).
pub fn close_failure(
    actual: &dyn AssertClose,
    expected: &dyn AssertClose,
    tol: Tolerance,
) -> Option<String> {
    let (da, de) = (actual.dims_for_close(), expected.dims_for_close());
    let (a, e) = (actual.elems_for_close(), expected.elems_for_close());
    let scalarish = a.len() == 1 && e.len() == 1;
    if da != de && !scalarish {
        return Some(format!("shapes differ: actual {da:?}, expected {de:?}"));
    }
    let mut worst: Option<(f64, usize)> = None;
    for (i, (&x, &y)) in a.iter().zip(&e).enumerate() {
        if !tol.close(x, y) {
            let excess = (x - y).abs() - (tol.atol + tol.rtol * y.abs());
            if worst.is_none_or(|w| excess > w.0 || excess.is_nan()) {
                worst = Some((excess, i));
            }
        }
    }
    let (_, i) = worst?;
    let bad = a
        .iter()
        .zip(&e)
        .filter(|(x, y)| !tol.close(**x, **y))
        .count();
    Some(format!(
        "{bad} of {} elements differ; worst at flat index {i}: actual {:e}, expected {:e}, \
         |diff| {:e} > atol {:e} + rtol {:e}·|expected|",
        a.len(),
        a[i],
        e[i],
        (a[i] - e[i]).abs(),
        tol.atol,
        tol.rtol
    ))
}

/// The function behind [`assert_close!`](crate::assert_close).
///
/// # Panics
/// When a value is out of tolerance or the shapes differ, naming the worst element.
#[track_caller]
pub fn assert_close_impl(
    actual: &dyn AssertClose,
    expected: &dyn AssertClose,
    atol: Option<f64>,
    rtol: Option<f64>,
    what: &str,
) {
    let d = Tolerance::for_dtype(expected.dtype());
    let tol = Tolerance {
        atol: atol.unwrap_or(d.atol),
        rtol: rtol.unwrap_or(d.rtol),
    };
    if let Some(msg) = close_failure(actual, expected, tol) {
        panic!(
            "assert_close!({what}) failed at {}: {msg}",
            Location::caller()
        );
    }
}

/// Asserts that two values (floats, tensors, vars, vectors or arrays) are elementwise
/// close: `|actual - expected| <= atol + rtol·|expected|`, with per-dtype defaults
/// ([`Tolerance::DEFAULT_F64`], [`Tolerance::DEFAULT_F32`]) unless `atol = ..` and/or
/// `rtol = ..` are given.
///
/// ```
/// use autograd::{assert_close, Tensor};
/// let t = Tensor::from_vec(vec![0.1f64 + 0.2, 1.0], [2])?;
/// assert_close!(t, [0.3, 1.0]);                          // f64 defaults
/// assert_close!(1.0f32 / 3.0, 0.3333333f32);             // f32 defaults
/// assert_close!(t, [0.31, 1.0], atol = 0.02, rtol = 0.0); // explicit tolerances
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Panics
/// When a value is out of tolerance or the shapes differ, naming the worst element.
#[macro_export]
macro_rules! assert_close {
    ($actual:expr, $expected:expr $(,)?) => {
        $crate::testing::assert::assert_close_impl(
            &$actual,
            &$expected,
            None,
            None,
            concat!(stringify!($actual), ", ", stringify!($expected)),
        )
    };
    ($actual:expr, $expected:expr, atol = $atol:expr, rtol = $rtol:expr $(,)?) => {
        $crate::testing::assert::assert_close_impl(
            &$actual,
            &$expected,
            Some($atol),
            Some($rtol),
            concat!(stringify!($actual), ", ", stringify!($expected)),
        )
    };
    ($actual:expr, $expected:expr, atol = $atol:expr $(,)?) => {
        $crate::testing::assert::assert_close_impl(
            &$actual,
            &$expected,
            Some($atol),
            None,
            concat!(stringify!($actual), ", ", stringify!($expected)),
        )
    };
    ($actual:expr, $expected:expr, rtol = $rtol:expr $(,)?) => {
        $crate::testing::assert::assert_close_impl(
            &$actual,
            &$expected,
            None,
            Some($rtol),
            concat!(stringify!($actual), ", ", stringify!($expected)),
        )
    };
}
