//! Elementwise maps of one tensor: `neg`, `exp`, `ln`, ..., the activations, and the
//! scalar forms of the arithmetic ops.
//!
//! Most are a [`UnaryDerivative`]: the function per element and its derivative as a `Var`
//! expression of `x` and `y = f(x)`. Derivatives at kinks follow PyTorch (0 at relu's 0,
//! `sign(0) = 0` for abs).

use crate::error::Result;
use smallvec::smallvec;

use crate::op::{BackwardCx, Op, UnaryDerivative, ValueGrads};
use crate::tensor::{Float, Tensor};
use crate::var::Var;

/// A constant 0/1 mask of where `pred` holds on `x`'s value: the derivative of piecewise
/// maps, which is locally constant.
#[track_caller]
pub(crate) fn mask<'t, T: Float>(x: Var<'t, T>, pred: impl Fn(T) -> bool + Sync) -> Var<'t, T> {
    let m = x
        .value()
        .map(|v| if pred(v) { T::one() } else { T::zero() });
    x.tape().constant(m)
}

/// Defines a [`UnaryDerivative`] unit struct. `f` is the map per element, `df` the
/// derivative as a `Var` expression of `x` and `y`.
macro_rules! unary_op {
    ($(#[$doc:meta])* $name:ident, $op:literal, |$v:ident| $f:expr, |$x:ident, $y:ident| $df:expr,
     value |$vx:ident, $vy:ident| $dfv:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl<T: Float> UnaryDerivative<T> for $name {
            const NAME: &'static str = $op;
            const HAS_DF_VALUE: bool = true;
            #[inline(always)]
            fn f(&self, $v: T) -> T {
                $f
            }
            #[allow(unused_variables)]
            fn df<'t>(&self, $x: Var<'t, T>, $y: Var<'t, T>) -> Result<Var<'t, T>> {
                $df
            }
            #[inline(always)]
            #[allow(unused_variables)]
            fn df_value(&self, $vx: T, $vy: T) -> T {
                $dfv
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $op:literal, |$v:ident| $f:expr, |$x:ident, $y:ident| $df:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl<T: Float> UnaryDerivative<T> for $name {
            const NAME: &'static str = $op;
            #[inline(always)]
            fn f(&self, $v: T) -> T {
                $f
            }
            #[allow(unused_variables)]
            fn df<'t>(&self, $x: Var<'t, T>, $y: Var<'t, T>) -> Result<Var<'t, T>> {
                $df
            }
        }
    };
}

unary_op!(
    /// `y = eˣ`; `dy/dx = y`.
    Exp, "exp", |v| v.exp_v(), |x, y| Ok(y), value |x, y| y
);
unary_op!(
    /// `y = ln x`; `dy/dx = 1/x`.
    Ln, "ln", |v| v.ln(), |x, y| Ok(x.recip()), value |x, y| x.recip()
);
unary_op!(
    /// `y = ln(1 + x)`, accurate near 0; `dy/dx = 1/(1 + x)`.
    Log1p, "log1p", |v| v.ln_1p(), |x, y| Ok(x.add_scalar(T::one()).recip())
);
unary_op!(
    /// `y = √x`; `dy/dx = 1/(2y)`.
    Sqrt, "sqrt", |v| v.sqrt(), |x, y| Ok(y.recip().mul_scalar(T::of(0.5))), value |x, y| T::of(0.5) / y
);
unary_op!(
    /// `y = 1/√x`; `dy/dx = -y/(2x)`.
    Rsqrt, "rsqrt", |v| v.sqrt().recip(), |x, y| Ok(y.div(x)?.mul_scalar(T::of(-0.5)))
);
unary_op!(
    /// `y = x²`; `dy/dx = 2x`.
    Square, "square", |v| v * v, |x, y| Ok(x.mul_scalar(T::of(2.0))), value |x, y| x + x
);
unary_op!(
    /// `y = 1/x`; `dy/dx = -y²`.
    Recip, "recip", |v| v.recip(), |x, y| Ok(y.square().neg())
);
unary_op!(
    /// `y = |x|`; `dy/dx = sign(x)`, 0 at 0 (as PyTorch).
    Abs, "abs", |v| v.abs(), |x, y| {
        let s = x.value().map(|v| if v > T::zero() { T::one() } else if v < T::zero() { -T::one() } else { T::zero() });
        Ok(x.tape().constant(s))
    }
);
unary_op!(
    /// `y = sin x`; `dy/dx = cos x`.
    Sin, "sin", |v| v.sin(), |x, y| Ok(x.cos())
);
unary_op!(
    /// `y = cos x`; `dy/dx = -sin x`.
    Cos, "cos", |v| v.cos(), |x, y| Ok(x.sin().neg())
);
unary_op!(
    /// `y = tanh x`; `dy/dx = 1 - y²`.
    Tanh, "tanh", |v| v.tanh_v(), |x, y| Ok(y.square().rsub_scalar(T::one())), value |x, y| T::one() - y * y
);
unary_op!(
    /// `y = 1/(1 + e⁻ˣ)`, evaluated without overflow for either sign; `dy/dx = y(1 - y)`.
    Sigmoid, "sigmoid", |v| sigmoid(v), |x, y| y.mul(y.rsub_scalar(T::one())), value |x, y| y * (T::one() - y)
);
unary_op!(
    /// `y = max(x, 0)`; `dy/dx = 1` for x > 0, else 0 (subgradient 0 at the kink). A NaN
    /// input stays NaN, and its gradient passes through, as in PyTorch (`clamp_min` forward,
    /// `threshold_backward`, which zeroes only where `x <= 0`).
    Relu, "relu", |v| if v > T::zero() || v.is_nan() { v } else { T::zero() }, |x, y| Ok(mask(x, |v| v > T::zero() || v.is_nan())), value |x, y| if x <= T::zero() { T::zero() } else { T::one() }
);
unary_op!(
    /// The error function; `d erf(x)/dx = 2/√π · e^{-x²}`.
    Erf, "erf", |v| v.erf(), |x, y| Ok(x.square().neg().exp().mul_scalar(T::of(std::f64::consts::FRAC_2_SQRT_PI)))
);

unary_op!(
    /// `y = x/(1 + |x|)`; `dy/dx = 1/(1 + |x|)²`.
    Softsign, "softsign", |v| v / (T::one() + v.abs()), |x, y| Ok(x.abs().add_scalar(T::one()).square().recip())
);
unary_op!(
    /// `y = ln σ(x) = min(x, 0) - ln(1 + e^{-|x|})`, finite for any x; `dy/dx = σ(-x)`.
    LogSigmoid, "logsigmoid", |v| v.min(T::zero()) - (-v.abs()).exp().ln_1p(), |x, y| Ok(x.neg().sigmoid())
);

/// The exact GELU `y = x·Φ(x)`, `Φ` the standard normal CDF (`Float::gelu_v`, accurate
/// in the left tail too); `dy/dx = Φ(x) + x·φ(x)`, as a `Var` expression
/// `(1 + erf(x/√2))/2 + x·e^{-x²/2}/√(2π)` so it differentiates again.
#[derive(Debug, Clone, Copy)]
pub struct Gelu;
impl<T: Float> UnaryDerivative<T> for Gelu {
    const NAME: &'static str = "gelu";
    const HAS_DF_VALUE: bool = true;
    #[inline(always)]
    fn f(&self, v: T) -> T {
        v.gelu_v()
    }
    fn df<'t>(&self, x: Var<'t, T>, _y: Var<'t, T>) -> Result<Var<'t, T>> {
        let cdf = x
            .mul_scalar(T::of(std::f64::consts::FRAC_1_SQRT_2))
            .erf()
            .add_scalar(T::one())
            .mul_scalar(T::of(0.5));
        let inv_sqrt_2pi = 0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
        let pdf = x
            .square()
            .mul_scalar(T::of(-0.5))
            .exp()
            .mul_scalar(T::of(inv_sqrt_2pi));
        cdf.add(x.mul(pdf)?)
    }
    #[inline(always)]
    fn df_value(&self, x: T, _y: T) -> T {
        x.gelu_grad_v()
    }
}

/// The logistic function, split by sign so `exp` never overflows.
#[inline(always)]
pub(crate) fn sigmoid<T: Float>(v: T) -> T {
    // e^{-|v|} ≤ 1 never overflows; both branches are computed and one selected, so a loop
    // over this vectorises.
    let e = (-v.abs()).exp_v();
    let r = T::one() / (T::one() + e);
    if v >= T::zero() {
        r
    } else {
        e * r
    }
}

/// `y = x` for x > 0, else `slope · x`; `dy/dx` is 1 or `slope`.
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu<T>(pub T);
impl<T: Float> UnaryDerivative<T> for LeakyRelu<T> {
    const NAME: &'static str = "leaky_relu";
    fn f(&self, v: T) -> T {
        if v > T::zero() {
            v
        } else {
            v * self.0
        }
    }
    fn df<'t>(&self, x: Var<'t, T>, _y: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = self.0;
        let d = x.value().map(|v| if v > T::zero() { T::one() } else { s });
        Ok(x.tape().constant(d))
    }
}

/// `y = x` for x > 0, else `α(eˣ - 1)`; `dy/dx` is 1, or `y + α` (so it is differentiable
/// again through `y`).
#[derive(Debug, Clone, Copy)]
pub struct Elu<T>(pub T);
impl<T: Float> UnaryDerivative<T> for Elu<T> {
    const NAME: &'static str = "elu";
    fn f(&self, v: T) -> T {
        if v > T::zero() {
            v
        } else {
            self.0 * v.exp_m1_v()
        }
    }
    fn df<'t>(&self, x: Var<'t, T>, y: Var<'t, T>) -> Result<Var<'t, T>> {
        // where(x <= 0, y + α, 1), selected rather than blended with a 0/1 mask: at a NaN
        // input the blend would give 0·NaN = NaN where PyTorch's `elu_backward` passes the
        // gradient through (NaN <= 0 is false).
        let neg = x
            .value()
            .map(|v| if v <= T::zero() { T::one() } else { T::zero() });
        let one = x.tape().constant(Tensor::scalar(T::one()));
        y.add_scalar(self.0).where_cond(&neg, one)
    }
}

/// `y = ln(1 + e^{βx})/β`, and `y = x` where `βx > threshold` (PyTorch's softplus);
/// `dy/dx = sigmoid(βx)` (1 past the threshold).
#[derive(Debug, Clone, Copy)]
pub struct Softplus<T> {
    /// β.
    pub beta: T,
    /// Past `βx > threshold` the function is the identity.
    pub threshold: T,
}
impl<T: Float> UnaryDerivative<T> for Softplus<T> {
    const NAME: &'static str = "softplus";
    fn f(&self, v: T) -> T {
        let bx = self.beta * v;
        if bx > self.threshold {
            v
        } else {
            // max(z, 0) + ln(1 + e^{-|z|}) never overflows, unlike ln(1 + e^z).
            (bx.max(T::zero()) + (-bx.abs()).exp_v().ln_1p_v()) / self.beta
        }
    }
    fn df<'t>(&self, x: Var<'t, T>, _y: Var<'t, T>) -> Result<Var<'t, T>> {
        let (b, th) = (self.beta, self.threshold);
        let lin = mask(x, |v| b * v > th);
        let s = x.mul_scalar(b).sigmoid();
        lin.add(lin.rsub_scalar(T::one()).mul(s)?)
    }
}

/// `y = clamp(x, min, max)` = `min(max(x, min), max)`, as PyTorch: a NaN input stays NaN,
/// a NaN bound makes every output NaN, and `min > max` gives `max` everywhere.
/// `dy/dx = 1` inside `[min, max]`, else 0 (and 0 at a NaN, as PyTorch's `clamp_backward`).
#[derive(Debug, Clone, Copy)]
pub struct Clamp<T> {
    /// Lower bound (`-inf` for none).
    pub min: T,
    /// Upper bound (`inf` for none).
    pub max: T,
}
impl<T: Float> UnaryDerivative<T> for Clamp<T> {
    const NAME: &'static str = "clamp";
    fn f(&self, v: T) -> T {
        // Not `v.max(min).min(max)`: Rust's float max/min return the number when the
        // other operand is NaN, which would turn a NaN input into a bound.
        if self.min.is_nan() || self.max.is_nan() {
            return T::nan();
        }
        let y = if v < self.min { self.min } else { v };
        if y > self.max {
            self.max
        } else {
            y
        }
    }
    fn df<'t>(&self, x: Var<'t, T>, _y: Var<'t, T>) -> Result<Var<'t, T>> {
        let (lo, hi) = (self.min, self.max);
        Ok(mask(x, |v| v >= lo && v <= hi))
    }
}

/// `y = clamp(x, min, max)` with PyTorch's hardtanh gradient: 1 strictly inside
/// `(min, max)`, 0 outside and at the bounds (clamp's gradient includes the bounds).
#[derive(Debug, Clone, Copy)]
pub struct Hardtanh<T> {
    /// Lower bound.
    pub min: T,
    /// Upper bound.
    pub max: T,
}
impl<T: Float> UnaryDerivative<T> for Hardtanh<T> {
    const NAME: &'static str = "hardtanh";
    fn f(&self, v: T) -> T {
        if v.is_nan() {
            v
        } else {
            v.max(self.min).min(self.max)
        }
    }
    fn df<'t>(&self, x: Var<'t, T>, _y: Var<'t, T>) -> Result<Var<'t, T>> {
        let (lo, hi) = (self.min, self.max);
        Ok(mask(x, |v| v > lo && v < hi))
    }
}

/// `y = xᵖ` for a constant `p`; `dy/dx = p·xᵖ⁻¹` (0 for p = 0, as PyTorch).
#[derive(Debug, Clone, Copy)]
pub struct Powf<T>(pub T);
impl<T: Float> UnaryDerivative<T> for Powf<T> {
    const NAME: &'static str = "powf";
    fn f(&self, v: T) -> T {
        v.powf(self.0)
    }
    fn df<'t>(&self, x: Var<'t, T>, _y: Var<'t, T>) -> Result<Var<'t, T>> {
        let p = self.0;
        if p == T::zero() {
            return Ok(x.tape().constant(x.value().zeros_like()));
        }
        Ok(x.powf(p - T::one()).mul_scalar(p))
    }
}

/// `y = -x`.
#[derive(Debug, Clone, Copy)]
pub struct Neg;
impl<T: Float> Op<T> for Neg {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].map(|v| -v))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad().neg())])
    }
    fn backward_values(
        &self,
        _x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        Some(smallvec![Some(g.map(|v| -v))])
    }
}

/// `y = x + c` for a constant `c`.
#[derive(Debug, Clone, Copy)]
pub struct AddScalar<T>(pub T);
impl<T: Float> Op<T> for AddScalar<T> {
    fn name(&self) -> &'static str {
        "add_scalar"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let c = self.0;
        Ok(x[0].map(|v| v + c))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad())])
    }
    fn backward_values(
        &self,
        _x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        Some(smallvec![Some(g.clone())])
    }
}

/// `y = c·x` for a constant `c`.
#[derive(Debug, Clone, Copy)]
pub struct MulScalar<T>(pub T);
impl<T: Float> Op<T> for MulScalar<T> {
    fn name(&self) -> &'static str {
        "mul_scalar"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let c = self.0;
        Ok(x[0].map(|v| v * c))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad().mul_scalar(self.0))])
    }
    fn backward_values(
        &self,
        _x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        let c = self.0;
        Some(smallvec![Some(g.map(|v| v * c))])
    }
}

/// `y = c - x` for a constant `c`.
#[derive(Debug, Clone, Copy)]
pub struct RsubScalar<T>(pub T);
impl<T: Float> Op<T> for RsubScalar<T> {
    fn name(&self) -> &'static str {
        "rsub_scalar"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let c = self.0;
        Ok(x[0].map(|v| c - v))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad().neg())])
    }
    fn backward_values(
        &self,
        _x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        Some(smallvec![Some(g.map(|v| -v))])
    }
}

/// `y = x / c` for a constant `c` (divides, so `x / 3` rounds as in PyTorch).
#[derive(Debug, Clone, Copy)]
pub struct DivScalar<T>(pub T);
impl<T: Float> Op<T> for DivScalar<T> {
    fn name(&self) -> &'static str {
        "div_scalar"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let c = self.0;
        Ok(x[0].map(|v| v / c))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad().div_scalar(self.0))])
    }
    fn backward_values(
        &self,
        _x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        let c = self.0;
        Some(smallvec![Some(g.map(|v| v / c))])
    }
}

/// SELU's α (Klambauer et al. 2017), as in PyTorch.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// SELU's scale, as in PyTorch.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

// `add`, `neg`... are the fallible (or plain) methods behind the `std::ops` sugar in
// var.rs, which calls them; the names are deliberate.
#[allow(clippy::should_implement_trait)]
impl<'t, T: Float> Var<'t, T> {
    /// `-x`.
    #[track_caller]
    #[allow(clippy::should_implement_trait)] // `std::ops::Neg` is implemented too, as sugar
    pub fn neg(self) -> Self {
        self.infallible(Neg)
    }
    /// `eˣ`; the derivative is `eˣ`.
    #[track_caller]
    pub fn exp(self) -> Self {
        self.unary(Exp)
    }
    /// Natural logarithm; the derivative is `1/x`.
    #[track_caller]
    pub fn ln(self) -> Self {
        self.unary(Ln)
    }
    /// `ln(1 + x)`; the derivative is `1/(1 + x)`.
    #[track_caller]
    pub fn log1p(self) -> Self {
        self.unary(Log1p)
    }
    /// `√x`; the derivative is `1/(2√x)`.
    #[track_caller]
    pub fn sqrt(self) -> Self {
        self.unary(Sqrt)
    }
    /// `1/√x`; the derivative is `-x^{-3/2}/2`.
    #[track_caller]
    pub fn rsqrt(self) -> Self {
        self.unary(Rsqrt)
    }
    /// `x²`; the derivative is `2x`.
    #[track_caller]
    pub fn square(self) -> Self {
        self.unary(Square)
    }
    /// `1/x`; the derivative is `-1/x²`.
    #[track_caller]
    pub fn recip(self) -> Self {
        self.unary(Recip)
    }
    /// `|x|`; the derivative is `sign(x)` (0 at 0).
    #[track_caller]
    pub fn abs(self) -> Self {
        self.unary(Abs)
    }
    /// `xᵖ` for a constant exponent; the derivative is `p·xᵖ⁻¹`.
    #[track_caller]
    pub fn powf(self, p: T) -> Self {
        self.unary(Powf(p))
    }
    /// `sin x`.
    #[track_caller]
    pub fn sin(self) -> Self {
        self.unary(Sin)
    }
    /// `cos x`.
    #[track_caller]
    pub fn cos(self) -> Self {
        self.unary(Cos)
    }
    /// `tanh x`; the derivative is `1 - tanh²x`.
    #[track_caller]
    pub fn tanh(self) -> Self {
        self.unary(Tanh)
    }
    /// `1/(1 + e⁻ˣ)`; the derivative is `y(1 - y)`, at most 1/4.
    #[track_caller]
    pub fn sigmoid(self) -> Self {
        self.unary(Sigmoid)
    }
    /// The error function.
    #[track_caller]
    pub fn erf(self) -> Self {
        self.unary(Erf)
    }
    /// `max(x, 0)`; the derivative is 1 for x > 0 and 0 otherwise (0 at the kink). NaN
    /// stays NaN, as in PyTorch.
    #[track_caller]
    pub fn relu(self) -> Self {
        self.unary(Relu)
    }
    /// `x` for x > 0, else `slope·x`.
    #[track_caller]
    pub fn leaky_relu(self, slope: T) -> Self {
        self.unary(LeakyRelu(slope))
    }
    /// `x` for x > 0, else `α(eˣ - 1)` (Clevert et al. 2015).
    #[track_caller]
    pub fn elu(self, alpha: T) -> Self {
        self.unary(Elu(alpha))
    }
    /// `scale · elu(x, α)` with PyTorch's constants (Klambauer et al. 2017).
    #[track_caller]
    pub fn selu(self) -> Self {
        self.elu(T::of(SELU_ALPHA)).mul_scalar(T::of(SELU_SCALE))
    }
    /// `ln(1 + e^{βx})/β`, linear past `βx > threshold` (PyTorch: β = 1, threshold = 20).
    #[track_caller]
    pub fn softplus(self, beta: T, threshold: T) -> Self {
        self.unary(Softplus { beta, threshold })
    }
    /// `x · sigmoid(x)` (SiLU / swish).
    #[track_caller]
    pub fn silu(self) -> Self {
        self.mul_same(self.sigmoid())
    }
    /// GELU, exact form: `x·Φ(x) = x/2 · (1 + erf(x/√2))`, one op whose first-order
    /// backward is one fused pass (`Φ(x) + x·φ(x)` per element).
    #[track_caller]
    pub fn gelu(self) -> Self {
        self.unary(Gelu)
    }
    /// GELU, tanh approximation: `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`.
    #[track_caller]
    pub fn gelu_tanh(self) -> Self {
        let k = T::of((2.0 / std::f64::consts::PI).sqrt());
        let inner = self
            .add_same(self.powf(T::of(3.0)).mul_scalar(T::of(0.044715)))
            .mul_scalar(k)
            .tanh()
            .add_scalar(T::one());
        self.mul_scalar(T::of(0.5)).mul_same(inner)
    }
    /// `hardtanh(x) = clamp(x, min_val, max_val)` (`torch.nn.functional.hardtanh`); the
    /// gradient is 1 strictly inside `(min_val, max_val)`, else 0.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] when `min_val > max_val` or either is NaN.
    #[track_caller]
    pub fn hardtanh(self, min_val: T, max_val: T) -> Result<Self> {
        if min_val.is_nan() || max_val.is_nan() || min_val > max_val {
            return Err(crate::Error::invalid(
                "hardtanh",
                format!("min_val {min_val} must not exceed max_val {max_val}"),
                &self.shape(),
            ));
        }
        Ok(self.unary(Hardtanh {
            min: min_val,
            max: max_val,
        }))
    }
    /// `x/(1 + |x|)` (softsign); the derivative is `1/(1 + |x|)²`.
    #[track_caller]
    pub fn softsign(self) -> Self {
        self.unary(Softsign)
    }
    /// `ln σ(x) = -softplus(-x)`, finite for logits of any size; the derivative is
    /// `σ(-x)`.
    #[track_caller]
    pub fn logsigmoid(self) -> Self {
        self.unary(LogSigmoid)
    }
    /// Mish (Misra 2019): `x · tanh(softplus(x))`, softplus without a threshold so the
    /// function is smooth everywhere.
    #[track_caller]
    pub fn mish(self) -> Self {
        self.mul_same(self.softplus(T::one(), T::infinity()).tanh())
    }
    /// `clamp(x, min, max)`; gradient 1 inside the range, 0 outside. NaN inputs (and NaN
    /// bounds) give NaN, as in PyTorch.
    #[track_caller]
    pub fn clamp(self, min: T, max: T) -> Self {
        self.unary(Clamp { min, max })
    }
    /// `x + c`.
    #[track_caller]
    pub fn add_scalar(self, c: T) -> Self {
        self.infallible(AddScalar(c))
    }
    /// `x - c`.
    #[track_caller]
    pub fn sub_scalar(self, c: T) -> Self {
        self.infallible(AddScalar(-c))
    }
    /// `c - x`.
    #[track_caller]
    pub fn rsub_scalar(self, c: T) -> Self {
        self.infallible(RsubScalar(c))
    }
    /// `c · x`.
    #[track_caller]
    pub fn mul_scalar(self, c: T) -> Self {
        self.infallible(MulScalar(c))
    }
    /// `x / c`.
    #[track_caller]
    pub fn div_scalar(self, c: T) -> Self {
        self.infallible(DivScalar(c))
    }
}

#[cfg(test)]
mod tests {
    use crate::{gradcheck, gradgradcheck, GradcheckOptions, Tape, Tensor};

    fn x() -> Tensor<f64> {
        Tensor::from_vec(vec![-1.5, -0.25, 0.5, 2.0], [4]).unwrap()
    }

    #[test]
    fn activations_match_closed_forms() {
        let tape = Tape::new();
        let v = tape.constant(x());
        // relu, leaky_relu(0.1), elu(1): piecewise, exact on these inputs
        assert_eq!(v.relu().value().to_vec(), vec![0.0, 0.0, 0.5, 2.0]);
        assert_eq!(
            v.leaky_relu(0.1).value().to_vec(),
            vec![-0.15000000000000002, -0.025, 0.5, 2.0]
        );
        assert_eq!(v.abs().value().to_vec(), vec![1.5, 0.25, 0.5, 2.0]);
        assert_eq!(
            v.clamp(-1.0, 1.0).value().to_vec(),
            vec![-1.0, -0.25, 0.5, 1.0]
        );
        // selu(2) = scale·2, selu(-1.5) = scale·α·(e^-1.5 - 1)
        let s = v.selu().value().to_vec();
        assert!((s[3] - 2.101_401_974_710_961).abs() < 1e-15);
        let want = super::SELU_SCALE * super::SELU_ALPHA * (-1.5f64).exp_m1();
        assert!((s[0] - want).abs() < 1e-15, "{} vs {want}", s[0]);
        // gelu(0.5) = 0.5·Φ(0.5) = 0.5 · 0.691462461274013 (torch 2.x: 0.3457312306370065)
        assert!((v.gelu().value().to_vec()[2] - 0.345_731_230_637_006_5).abs() < 1e-15);
        // softplus past the threshold is the identity
        let big = tape.constant(Tensor::scalar(30.0));
        assert_eq!(big.softplus(1.0, 20.0).value().item().unwrap(), 30.0);
    }

    #[test]
    fn kinks_take_zero_subgradient() {
        let tape = Tape::new();
        let z = tape.var(Tensor::from_vec(vec![0.0f64, 0.0], [2]).unwrap());
        let g = tape
            .grad(z.relu().add(z.abs()).unwrap().sum(), &[z])
            .unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn unary_backward_matches_finite_differences() {
        let o = GradcheckOptions::default();
        gradcheck(|v| Ok(v[0].tanh().mul(v[0].sigmoid())?.sum()), &[x()], &o).unwrap();
        gradcheck(
            |v| Ok(v[0].elu(0.7).add(v[0].gelu_tanh())?.sum()),
            &[x()],
            &o,
        )
        .unwrap();
        gradcheck(|v| Ok(v[0].abs().sqrt().ln().sum()), &[x()], &o).unwrap();
    }

    /// Inputs across the GELU's three forms (left tail, series, right tail) and the
    /// softplus threshold.
    fn wide() -> Tensor<f64> {
        Tensor::from_vec(vec![-6.0, -2.5, -0.9, -0.3, 0.2, 1.1, 1.7, 4.0], [8]).unwrap()
    }

    #[test]
    fn fused_gelu_and_the_vectorised_activations_pass_first_and_second_order_checks() {
        let o = GradcheckOptions::default();
        fn f<'t>(v: &[crate::Var<'t, f64>]) -> crate::Result<crate::Var<'t, f64>> {
            Ok(v[0]
                .gelu()
                .add(v[0].erf())?
                .add(v[0].elu(0.7))?
                .add(v[0].softplus(1.5, 3.0))?
                .sum())
        }
        gradcheck(f, &[wide()], &o).unwrap();
        gradgradcheck(f, &[wide()], &o).unwrap();
    }

    #[test]
    fn fused_gelu_matches_its_composite_definition_and_the_fast_backward_its_var_rule() {
        // value: x/2·(1 + erf(x/√2)) in f64 (no cancellation at these inputs)
        let tape = Tape::new();
        let xv = tape.var(wide());
        let composite = xv.mul_same(
            xv.mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
                .erf()
                .add_scalar(1.0)
                .mul_scalar(0.5),
        );
        let (fused, slow) = (xv.gelu().value().to_vec(), composite.value().to_vec());
        for ((a, b), x) in fused.iter().zip(&slow).zip(wide().to_vec()) {
            // the composite's 1 + erf cancels by up to 1/Φ(x) (80× at x = -2.5)
            if x > -3.0 {
                assert!((a - b).abs() <= 1e-14 * b.abs(), "{a} vs {b} at {x}");
            }
        }
        // at -6 the composite form cancels (1 + erf ≈ 2e-9) even in f64: compare with
        // the tabulated Φ(-6) = 9.865876450376982e-10 instead
        let at_6 = -6.0 * 9.865_876_450_376_982e-10;
        assert!(
            (fused[0] - at_6).abs() <= 1e-13 * at_6.abs(),
            "{}",
            fused[0]
        );
        // gradient: the first-order fast path (backward) against the Var rule (grad with
        // a graph kept for higher orders), f32 so the vectorised kernels are the ones run
        let x32: Tensor<f32> = wide().cast();
        let p = crate::Param::new(x32.clone());
        let t1 = Tape::new();
        t1.param(&p).gelu().sum().backward().unwrap();
        let fast = p.grad().unwrap().to_vec();
        let t2 = Tape::new();
        let b = t2.var(x32);
        let slow = t2.grad(b.gelu().sum(), &[b]).unwrap()[0].value().to_vec();
        for (f, s) in fast.iter().zip(&slow) {
            assert!((f - s).abs() <= 1e-6 * s.abs().max(1e-3), "{f} vs {s}");
        }
    }
}
