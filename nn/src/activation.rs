//! Activations: the [`Activation`] descriptor, and each activation as a module (which
//! implements it) and as a function.
//!
//! An activation lives in one place: its module. The module's `forward` is the
//! computation (the autograd op, whose backward rule is the one derivative), and its
//! [`Activation`] impl says what the rest of the crate needs to know:
//! [`init::calculate_gain`](crate::init::calculate_gain) reads its gain, and
//! [`diagnose`](crate::diagnose) reads whether it saturates or has a dead region and
//! measures f' through the op's own backward rule. A user's activation module that
//! implements [`Activation`] (and derives with `#[module(activation)]`) is measured the
//! same way. The functions (`nn::relu(x)`) are the same ops, for use inside a `forward`.
//!
//! | module | function | PyTorch | gain | saturates | dead region |
//! | --- | --- | --- | --- | --- | --- |
//! | [`Identity`] | — | `nn.Identity` | 1 | no | no |
//! | [`Sigmoid`] | [`sigmoid`] | `nn.Sigmoid` | 1 | max f' 1/4 | no |
//! | [`Tanh`] | [`tanh`] | `nn.Tanh` | 5/3 | max f' 1 | no |
//! | [`Relu`] | [`relu`] | `nn.ReLU` | √2 | no | x ≤ 0 |
//! | [`LeakyRelu`] | [`leaky_relu`] | `nn.LeakyReLU` (slope 0.01) | √(2/(1 + slope²)) | no | no |
//! | [`Elu`] | [`elu`] | `nn.ELU` (α = 1) | — | no | no |
//! | [`PRelu`] | [`prelu`] | `nn.PReLU` (init 0.25) | — | no | no |
//! | [`Selu`] | [`selu`] | `nn.SELU` | 3/4 | no | no |
//! | [`Gelu`] | [`gelu`] | `nn.GELU` (exact or tanh) | — | no | no |
//! | [`Softplus`] | [`softplus`] | `nn.Softplus` (β = 1, threshold 20) | — | no | no |
//! | [`Silu`] | [`silu`] | `nn.SiLU` | — | no | no |
//! | [`Softmax`] | [`softmax`] | `nn.Softmax(dim)` | not elementwise: no descriptor | | |
//! | [`LogSoftmax`] | [`log_softmax`] | `nn.LogSoftmax(dim)` | not elementwise: no descriptor | | |
//!
//! Gains are `torch.nn.init.calculate_gain`'s; "—" is where PyTorch defines none.

use std::fmt;

use autograd::{Float, Param, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{short_type_name, Ctx, Forward};
use crate::Module;

/// What the crate needs to know about an elementwise activation `y = f(x)`, implemented
/// by its module: the initialisation gain and how diagnostics read its derivative.
/// The derivative itself is never written here: diagnostics take it from the op's
/// backward rule.
///
/// ```
/// use autograd::{Float, Var};
/// use nn::{Activation, Ctx, Forward, Module};
///
/// /// Softsign, x / (1 + |x|): saturates (f' = 1/(1 + |x|)², at most 1).
/// #[derive(Debug, Module)]
/// #[module(activation)]
/// struct Softsign;
///
/// impl<T: Float> Forward<T> for Softsign {
///     type Input<'t> = Var<'t, T>;
///     type Output<'t> = Var<'t, T>;
///     fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
///         Ok(x.div(x.abs().add_scalar(T::one()))?)
///     }
/// }
///
/// impl Activation for Softsign {
///     fn gain(&self) -> Option<f64> { None }
///     fn max_derivative(&self) -> Option<f64> { Some(1.0) }
/// }
///
/// assert_eq!(Module::<f32>::activation(&Softsign).unwrap().name(), "Softsign");
/// ```
pub trait Activation: fmt::Debug {
    /// A short name for reports (`"Tanh"`); the type's name by default.
    fn name(&self) -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The gain `torch.nn.init.calculate_gain` recommends for this nonlinearity (`None`
    /// where PyTorch defines none, as for GELU).
    fn gain(&self) -> Option<f64>;

    /// For an activation that saturates (f' → 0 as |x| → ∞, as sigmoid and tanh), the
    /// largest |f'|: diagnostics count an output as saturated where |f'| is below 1 % of
    /// it. `None` (the default) for activations that keep passing gradient on one side.
    fn max_derivative(&self) -> Option<f64> {
        None
    }

    /// Whether f' is exactly 0 on a region (ReLU for x ≤ 0), so that a unit can die:
    /// diagnostics report the fraction of units whose f' is 0 for every sample.
    fn has_dead_region(&self) -> bool {
        false
    }
}

/// Descriptors are equal when they describe the same activation: same name and gain
/// (so `Init` values compare).
impl PartialEq for dyn Activation + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && self.gain() == other.gain()
    }
}

/// The `Var → Var` plumbing every activation module shares.
macro_rules! elementwise {
    ($ty:ty, |$s:ident, $x:ident| $body:expr) => {
        impl<T: Float> Forward<T> for $ty {
            type Input<'t> = Var<'t, T>;
            type Output<'t> = Var<'t, T>;
            #[track_caller]
            fn forward<'t>(&self, _cx: &Ctx<'t, T>, $x: Var<'t, T>) -> Result<Var<'t, T>> {
                let $s = self;
                Ok($body)
            }
        }
    };
}

/// `1/(1 + e⁻ˣ)`; derivative `y(1 - y)`, at most 1/4.
#[track_caller]
pub fn sigmoid<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.sigmoid()
}

/// `tanh x`; derivative `1 - y²`, at most 1.
#[track_caller]
pub fn tanh<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.tanh()
}

/// `max(x, 0)`; derivative 1 for x > 0, else 0 (0 at the kink, as PyTorch).
#[track_caller]
pub fn relu<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.relu()
}

/// `x` for x > 0, else `slope·x`.
#[track_caller]
pub fn leaky_relu<T: Float>(x: Var<'_, T>, slope: f64) -> Var<'_, T> {
    x.leaky_relu(T::of(slope))
}

/// `x` for x > 0, else `α(eˣ - 1)` (Clevert et al. 2015).
#[track_caller]
pub fn elu<T: Float>(x: Var<'_, T>, alpha: f64) -> Var<'_, T> {
    x.elu(T::of(alpha))
}

/// `λ·elu(x, α)` with PyTorch's λ ≈ 1.0507 and α ≈ 1.6733 (Klambauer et al. 2017).
#[track_caller]
pub fn selu<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.selu()
}

/// GELU, `x·Φ(x)`; with `tanh_approx` the tanh form `nn.GELU(approximate="tanh")` uses.
#[track_caller]
pub fn gelu<T: Float>(x: Var<'_, T>, tanh_approx: bool) -> Var<'_, T> {
    if tanh_approx {
        x.gelu_tanh()
    } else {
        x.gelu()
    }
}

/// `ln(1 + e^{βx})/β`, the identity where `βx > threshold`.
#[track_caller]
pub fn softplus<T: Float>(x: Var<'_, T>, beta: f64, threshold: f64) -> Var<'_, T> {
    x.softplus(T::of(beta), T::of(threshold))
}

/// `x·σ(x)` (SiLU, swish).
#[track_caller]
pub fn silu<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.silu()
}

/// Softmax along `dim` (stable for logits of any size).
///
/// # Errors
/// [`autograd::Error::Axis`] for a dim out of range.
#[track_caller]
pub fn softmax<T: Float>(x: Var<'_, T>, dim: isize) -> Result<Var<'_, T>> {
    Ok(x.softmax(dim)?)
}

/// Log-softmax along `dim`, `x - logsumexp(x)` (stable for logits of any size).
///
/// # Errors
/// [`autograd::Error::Axis`] for a dim out of range.
#[track_caller]
pub fn log_softmax<T: Float>(x: Var<'_, T>, dim: isize) -> Result<Var<'_, T>> {
    Ok(x.log_softmax(dim)?)
}

/// Parametric ReLU (He et al. 2015): `max(0, x) + w·min(0, x)`, with one slope shared
/// (`weight: [1]`) or one per channel (`weight: [C]`, channel = dim 1, as `nn.PReLU`).
/// The derivative is 1 (x > 0) or `w` in `x`, and `min(0, x)` in `w`.
///
/// # Errors
/// [`Error::InputShape`] when `weight` has `C > 1` entries and `x` has no dim 1 of size `C`.
#[track_caller]
pub fn prelu<'t, T: Float>(x: Var<'t, T>, weight: Var<'t, T>) -> Result<Var<'t, T>> {
    let c = weight.shape().numel();
    let xs = x.shape();
    let w = if c == 1 {
        weight.reshape(autograd::Shape::scalar())?
    } else {
        if xs.rank() < 2 || xs[1] != c {
            return Err(Error::input(
                "PRelu",
                format!("a channel dim 1 of size {c} (one slope per channel)"),
                xs,
            ));
        }
        let mut dims = vec![1; xs.rank()];
        dims[1] = c;
        weight.reshape(dims)?
    };
    let pos = x.relu();
    Ok(pos.add(w.mul(x.sub(pos)?)?)?)
}

/// `nn.Identity`: returns its input. As a nonlinearity it is "linear" (gain 1), the one
/// `calculate_gain` uses for linear and convolution layers.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Identity;
elementwise!(Identity, |_s, x| x);
impl Activation for Identity {
    fn gain(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// `nn.Sigmoid`.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Sigmoid;
elementwise!(Sigmoid, |_s, x| sigmoid(x));
impl Activation for Sigmoid {
    fn gain(&self) -> Option<f64> {
        Some(1.0)
    }
    fn max_derivative(&self) -> Option<f64> {
        // σ'(0) = 1/4
        Some(0.25)
    }
}

/// `nn.Tanh`.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Tanh;
elementwise!(Tanh, |_s, x| tanh(x));
impl Activation for Tanh {
    fn gain(&self) -> Option<f64> {
        Some(5.0 / 3.0)
    }
    fn max_derivative(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// `nn.ReLU`.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Relu;
elementwise!(Relu, |_s, x| relu(x));
impl Activation for Relu {
    fn gain(&self) -> Option<f64> {
        Some(2f64.sqrt())
    }
    fn has_dead_region(&self) -> bool {
        true
    }
}

/// `nn.LeakyReLU(negative_slope)`.
#[derive(Clone, Copy, Debug, Module)]
#[module(activation)]
pub struct LeakyRelu {
    /// Slope for x < 0 (PyTorch's default 0.01).
    pub negative_slope: f64,
}
impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu {
            negative_slope: 0.01,
        }
    }
}
elementwise!(LeakyRelu, |s, x| leaky_relu(x, s.negative_slope));
impl Activation for LeakyRelu {
    fn gain(&self) -> Option<f64> {
        let a = self.negative_slope;
        Some((2.0 / (1.0 + a * a)).sqrt())
    }
}

/// `nn.ELU(alpha)`.
#[derive(Clone, Copy, Debug, Module)]
#[module(activation)]
pub struct Elu {
    /// α (PyTorch's default 1).
    pub alpha: f64,
}
impl Default for Elu {
    fn default() -> Self {
        Elu { alpha: 1.0 }
    }
}
elementwise!(Elu, |s, x| elu(x, s.alpha));
impl Activation for Elu {
    fn gain(&self) -> Option<f64> {
        None
    }
}

/// `nn.SELU`.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Selu;
elementwise!(Selu, |_s, x| selu(x));
impl Activation for Selu {
    fn gain(&self) -> Option<f64> {
        Some(0.75)
    }
}

/// `nn.GELU(approximate)`.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Gelu {
    /// Use the tanh approximation (`approximate="tanh"`); exact by default.
    pub tanh_approx: bool,
}
elementwise!(Gelu, |s, x| gelu(x, s.tanh_approx));
impl Activation for Gelu {
    fn gain(&self) -> Option<f64> {
        None
    }
}

/// `nn.Softplus(beta, threshold)`.
#[derive(Clone, Copy, Debug, Module)]
#[module(activation)]
pub struct Softplus {
    /// β (default 1).
    pub beta: f64,
    /// Linear past `βx > threshold` (default 20).
    pub threshold: f64,
}
impl Default for Softplus {
    fn default() -> Self {
        Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}
elementwise!(Softplus, |s, x| softplus(x, s.beta, s.threshold));
impl Activation for Softplus {
    fn gain(&self) -> Option<f64> {
        None
    }
}

/// `nn.SiLU`.
#[derive(Clone, Copy, Debug, Default, Module)]
#[module(activation)]
pub struct Silu;
elementwise!(Silu, |_s, x| silu(x));
impl Activation for Silu {
    fn gain(&self) -> Option<f64> {
        None
    }
}

/// `nn.Softmax(dim)`. Not elementwise, so not an [`Activation`].
#[derive(Clone, Copy, Debug, Module)]
pub struct Softmax {
    /// The axis that sums to one (negative counts from the end).
    pub dim: isize,
}
impl<T: Float> Forward<T> for Softmax {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        softmax(x, self.dim)
    }
}

/// `nn.LogSoftmax(dim)`. Not elementwise, so not an [`Activation`].
#[derive(Clone, Copy, Debug, Module)]
pub struct LogSoftmax {
    /// The axis normalised over (negative counts from the end).
    pub dim: isize,
}
impl<T: Float> Forward<T> for LogSoftmax {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        log_softmax(x, self.dim)
    }
}

/// `nn.PReLU(num_parameters, init)`: a learnt negative slope, shared or per channel.
#[derive(Debug, Module)]
#[module(activation)]
pub struct PRelu<T: Float> {
    /// Slopes, `[num_parameters]`.
    pub weight: Param<T>,
}

impl<T: Float> PRelu<T> {
    /// `num_parameters` slopes (1 = shared, or the channel count) initialised to `init`
    /// (PyTorch's default 0.25).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero parameters or a non-finite init.
    #[track_caller]
    pub fn new(num_parameters: usize, init: f64) -> Result<Self> {
        if num_parameters == 0 || !init.is_finite() {
            return Err(Error::config(
                "PRelu",
                format!("need at least one finite slope, got {num_parameters} × {init}"),
            ));
        }
        Ok(PRelu {
            weight: Param::named("weight", Tensor::full([num_parameters], T::of(init))?),
        })
    }
}

impl<T: Float> Forward<T> for PRelu<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        prelu(x, cx.param(&self.weight))
    }
}

impl<T: Float> Activation for PRelu<T> {
    fn gain(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::gradcheck_module;
    use autograd::{GradcheckOptions, Tape};

    // Values away from every kink (0 for the ReLU family).
    fn x() -> Tensor<f64> {
        Tensor::from_vec(vec![-2.1, -0.7, -0.2, 0.3, 0.9, 2.4, -1.3, 1.7], [2, 4]).unwrap()
    }

    fn check<M>(m: &M)
    where
        M: for<'t> Forward<f64, Input<'t> = Var<'t, f64>>,
    {
        gradcheck_module(m, &[x()], |v| v[0], &GradcheckOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", m.type_name()));
    }

    #[test]
    fn every_activation_module_passes_gradcheck() {
        check(&Identity);
        check(&Sigmoid);
        check(&Tanh);
        check(&Relu);
        check(&LeakyRelu::default());
        check(&Elu { alpha: 0.7 });
        check(&Selu);
        check(&Gelu::default());
        check(&Gelu { tanh_approx: true });
        check(&Softplus::default());
        check(&Softplus {
            beta: 2.0,
            threshold: 3.0,
        });
        check(&Silu);
        check(&Softmax { dim: 1 });
        check(&LogSoftmax { dim: -1 });
        check(&Softmax { dim: 0 });
    }

    #[test]
    fn prelu_gradchecks_in_input_and_shared_or_per_channel_slope() {
        // gradcheck_module perturbs the slope too (it is input 1)
        let shared = PRelu::<f64>::new(1, 0.25).unwrap();
        check(&shared);
        let per_channel = PRelu::<f64>::new(4, 0.25).unwrap();
        per_channel
            .weight
            .set_value(Tensor::from_vec(vec![0.1, 0.25, -0.3, 0.6], [4]).unwrap())
            .unwrap();
        check(&per_channel);
        // NCHW with per-channel slopes on dim 1
        let conv = PRelu::<f64>::new(2, 0.4).unwrap();
        let x4 = Tensor::from_fn([2, 2, 2, 2], |i| (i as f64 * 0.77).sin() + 0.05).unwrap();
        gradcheck_module(&conv, &[x4], |v| v[0], &GradcheckOptions::default()).unwrap();
    }

    #[test]
    fn prelu_values_and_slope_gradient() {
        let m = PRelu::<f64>::new(2, 0.25).unwrap();
        let tape = Tape::new();
        let x = tape.constant(Tensor::from_vec(vec![-2.0, 3.0, 4.0, -1.0], [2, 2]).unwrap());
        let y = m.forward(&Ctx::new(&tape), x).unwrap();
        assert_eq!(y.value().to_vec(), [-0.5, 3.0, 4.0, -0.25]);
        y.sum().backward().unwrap();
        // d/dw_c Σ y = Σ over channel c of min(0, x): channel 0 gets -2, channel 1 gets -1
        assert_eq!(m.weight.grad().unwrap().to_vec(), [-2.0, -1.0]);
        // a per-channel PReLU needs a matching dim 1
        let bad = tape.constant(Tensor::zeros([2, 3]).unwrap());
        assert!(matches!(
            m.forward(&Ctx::new(&tape), bad),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn activation_values_match_torch() {
        // torch 2.15 (float32 literals): F.selu(-1.) = -1.1113307, F.gelu(1.) = 0.8413447,
        // F.gelu(1., approximate="tanh") = 0.8411920, F.silu(1.) = 0.7310586,
        // F.softplus(1.) = 1.3132616, F.elu(-1.) = -0.6321205, F.leaky_relu(-1.) = -0.01
        let tape = Tape::<f64>::new();
        let v = |x: f64| tape.constant(Tensor::scalar(x));
        let close = |a: Var<'_, f64>, b: f64| assert!((a.item().unwrap() - b).abs() < 1e-6);
        close(selu(v(-1.0)), -1.1113307);
        close(gelu(v(1.0), false), 0.8413447);
        close(gelu(v(1.0), true), 0.8411920);
        close(silu(v(1.0)), 0.7310586);
        close(softplus(v(1.0), 1.0, 20.0), 1.3132616);
        close(elu(v(-1.0), 1.0), -0.6321205);
        close(leaky_relu(v(-1.0), 0.01), -0.01);
    }

    #[test]
    fn activation_modules_carry_their_descriptor() {
        let d = Module::<f32>::activation(&Sigmoid).unwrap();
        assert_eq!(d.name(), "Sigmoid");
        assert_eq!(d.max_derivative(), Some(0.25));
        let r = Module::<f32>::activation(&Relu).unwrap();
        assert!(r.has_dead_region() && r.max_derivative().is_none());
        assert_eq!(Module::<f32>::type_name(&Relu), "Relu");
        assert!(Module::<f32>::activation(&Softmax { dim: 1 }).is_none());
        let p = PRelu::<f64>::new(1, 0.25).unwrap();
        assert_eq!(Module::<f64>::activation(&p).unwrap().name(), "PRelu");
        // descriptors compare by what they describe
        let a: &dyn Activation = &LeakyRelu::default();
        let b: &dyn Activation = &LeakyRelu {
            negative_slope: 0.2,
        };
        assert!(a == a && a != b);
    }

    #[test]
    fn prelu_gradgradchecks_per_channel() {
        let m = PRelu::<f64>::new(4, 0.25).unwrap();
        m.weight
            .set_value(Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4], [4]).unwrap())
            .unwrap();
        // squared, so the second derivative in x and w is not zero
        crate::gradgradcheck_module(
            &m,
            &[x()],
            |v| v[0].mul(v[0]).unwrap(),
            &GradcheckOptions::default(),
        )
        .unwrap();
    }
}
