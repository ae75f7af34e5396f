//! Activations, as functions on [`Var`]s and as parameter-free [`Module`]s (plus [`PRelu`],
//! whose slope is learnt).
//!
//! | module | function | PyTorch |
//! | --- | --- | --- |
//! | [`Sigmoid`] | [`sigmoid`] | `nn.Sigmoid` |
//! | [`Tanh`] | [`tanh`] | `nn.Tanh` |
//! | [`Relu`] | [`relu`] | `nn.ReLU` |
//! | [`LeakyRelu`] | [`leaky_relu`] | `nn.LeakyReLU` (slope 0.01) |
//! | [`Elu`] | [`elu`] | `nn.ELU` (α = 1) |
//! | [`PRelu`] | [`prelu`] | `nn.PReLU` (init 0.25) |
//! | [`Selu`] | [`selu`] | `nn.SELU` |
//! | [`Gelu`] | [`gelu`] | `nn.GELU` (exact or tanh) |
//! | [`Softplus`] | [`softplus`] | `nn.Softplus` (β = 1, threshold 20) |
//! | [`Silu`] | [`silu`] | `nn.SiLU` |
//! | [`Softmax`] | [`softmax`] | `nn.Softmax(dim)` |
//! | [`LogSoftmax`] | [`log_softmax`] | `nn.LogSoftmax(dim)` |

use autograd::{Float, Param, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{Activation, Ctx, Module};

/// `1/(1 + e⁻ˣ)`; derivative `y(1 - y)`, at most 1/4.
pub fn sigmoid<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.sigmoid()
}

/// `tanh x`; derivative `1 - y²`, at most 1.
pub fn tanh<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.tanh()
}

/// `max(x, 0)`; derivative 1 for x > 0, else 0 (0 at the kink, as PyTorch).
pub fn relu<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.relu()
}

/// `x` for x > 0, else `slope·x`.
pub fn leaky_relu<T: Float>(x: Var<'_, T>, slope: f64) -> Var<'_, T> {
    x.leaky_relu(T::of(slope))
}

/// `x` for x > 0, else `α(eˣ - 1)` (Clevert et al. 2015).
pub fn elu<T: Float>(x: Var<'_, T>, alpha: f64) -> Var<'_, T> {
    x.elu(T::of(alpha))
}

/// `λ·elu(x, α)` with PyTorch's λ ≈ 1.0507 and α ≈ 1.6733 (Klambauer et al. 2017).
pub fn selu<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.selu()
}

/// GELU, `x·Φ(x)`; with `tanh_approx` the tanh form `nn.GELU(approximate="tanh")` uses.
pub fn gelu<T: Float>(x: Var<'_, T>, tanh_approx: bool) -> Var<'_, T> {
    if tanh_approx {
        x.gelu_tanh()
    } else {
        x.gelu()
    }
}

/// `ln(1 + e^{βx})/β`, the identity where `βx > threshold`.
pub fn softplus<T: Float>(x: Var<'_, T>, beta: f64, threshold: f64) -> Var<'_, T> {
    x.softplus(T::of(beta), T::of(threshold))
}

/// `x·σ(x)` (SiLU, swish).
pub fn silu<T: Float>(x: Var<'_, T>) -> Var<'_, T> {
    x.silu()
}

/// Softmax along `dim` (stable for logits of any size).
///
/// # Errors
/// [`autograd::Error::Axis`] for a dim out of range.
pub fn softmax<T: Float>(x: Var<'_, T>, dim: isize) -> Result<Var<'_, T>> {
    Ok(x.softmax(dim)?)
}

/// Log-softmax along `dim`, `x - logsumexp(x)` (stable for logits of any size).
///
/// # Errors
/// [`autograd::Error::Axis`] for a dim out of range.
pub fn log_softmax<T: Float>(x: Var<'_, T>, dim: isize) -> Result<Var<'_, T>> {
    Ok(x.log_softmax(dim)?)
}

/// Parametric ReLU (He et al. 2015): `max(0, x) + w·min(0, x)`, with one slope shared
/// (`weight: [1]`) or one per channel (`weight: [C]`, channel = dim 1, as `nn.PReLU`).
/// The derivative is 1 (x > 0) or `w` in `x`, and `min(0, x)` in `w`.
///
/// # Errors
/// [`Error::InputShape`] when `weight` has `C > 1` entries and `x` has no dim 1 of size `C`.
pub fn prelu<'t, T: Float>(x: Var<'t, T>, weight: Var<'t, T>) -> Result<Var<'t, T>> {
    let c = weight.shape().numel();
    let xs = x.shape();
    let w = if c == 1 {
        weight.reshape(autograd::Shape::scalar())?
    } else {
        if xs.rank() < 2 || xs[1] != c {
            return Err(Error::input(
                "prelu",
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

/// `nn.Sigmoid`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;
impl<T: Float> Module<T> for Sigmoid {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(sigmoid(x))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Sigmoid)
    }
}

/// `nn.Tanh`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;
impl<T: Float> Module<T> for Tanh {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(tanh(x))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Tanh)
    }
}

/// `nn.ReLU`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu;
impl<T: Float> Module<T> for Relu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(relu(x))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Relu)
    }
}

/// `nn.LeakyReLU(negative_slope)`.
#[derive(Clone, Copy, Debug)]
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
impl<T: Float> Module<T> for LeakyRelu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(leaky_relu(x, self.negative_slope))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::LeakyRelu)
    }
}

/// `nn.ELU(alpha)`.
#[derive(Clone, Copy, Debug)]
pub struct Elu {
    /// α (PyTorch's default 1).
    pub alpha: f64,
}
impl Default for Elu {
    fn default() -> Self {
        Elu { alpha: 1.0 }
    }
}
impl<T: Float> Module<T> for Elu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(elu(x, self.alpha))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Elu)
    }
}

/// `nn.SELU`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selu;
impl<T: Float> Module<T> for Selu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(selu(x))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Selu)
    }
}

/// `nn.GELU(approximate)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gelu {
    /// Use the tanh approximation (`approximate="tanh"`); exact by default.
    pub tanh_approx: bool,
}
impl<T: Float> Module<T> for Gelu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(gelu(x, self.tanh_approx))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Gelu)
    }
}

/// `nn.Softplus(beta, threshold)`.
#[derive(Clone, Copy, Debug)]
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
impl<T: Float> Module<T> for Softplus {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(softplus(x, self.beta, self.threshold))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Softplus)
    }
}

/// `nn.SiLU`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silu;
impl<T: Float> Module<T> for Silu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(silu(x))
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Silu)
    }
}

/// `nn.Softmax(dim)`.
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    /// The axis that sums to one (negative counts from the end).
    pub dim: isize,
}
impl<T: Float> Module<T> for Softmax {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        softmax(x, self.dim)
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::Softmax)
    }
}

/// `nn.LogSoftmax(dim)`.
#[derive(Clone, Copy, Debug)]
pub struct LogSoftmax {
    /// The axis normalised over (negative counts from the end).
    pub dim: isize,
}
impl<T: Float> Module<T> for LogSoftmax {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        log_softmax(x, self.dim)
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::LogSoftmax)
    }
}

/// `nn.PReLU(num_parameters, init)`: a learnt negative slope, shared or per channel.
#[derive(Debug)]
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

impl<T: Float> Module<T> for PRelu<T> {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        prelu(x, cx.param(&self.weight))
    }
    fn own_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        f("weight", &self.weight);
    }
    fn activation(&self) -> Option<Activation> {
        Some(Activation::PRelu)
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

    fn check(m: &dyn Module<f64>) {
        gradcheck_module(m, &x(), &GradcheckOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", m.type_name()));
    }

    #[test]
    fn every_activation_module_passes_gradcheck() {
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
        gradcheck_module(&conv, &x4, &GradcheckOptions::default()).unwrap();
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
    fn activation_modules_report_their_kind() {
        assert_eq!(
            Module::<f32>::activation(&Sigmoid),
            Some(Activation::Sigmoid)
        );
        assert_eq!(Module::<f32>::activation(&Relu), Some(Activation::Relu));
        assert_eq!(Module::<f32>::type_name(&Relu), "Relu");
    }
}
