//! [`Linear`]: `y = x Wᵀ + b`, with the weight stored `[out, in]` as in PyTorch.

use autograd::{Float, Param, Var};
use rand::Rng;

use crate::error::{Error, Result};
use crate::init::{self, Init};
use crate::module::{Ctx, Forward};
use crate::Module;

/// The hyper-parameters and initialisers of a [`Linear`] layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearConfig {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Whether to add a bias.
    pub bias: bool,
    /// Weight initialiser (PyTorch's default: [`Init::TORCH_LAYER_DEFAULT`]).
    pub weight_init: Init,
    /// Bias initialiser; `None` is PyTorch's `U(-1/√in, 1/√in)`.
    pub bias_init: Option<Init>,
}

impl LinearConfig {
    /// PyTorch's defaults for an `in → out` layer with bias.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        LinearConfig {
            in_features,
            out_features,
            bias: true,
            weight_init: Init::TORCH_LAYER_DEFAULT,
            bias_init: None,
        }
    }

    /// Builds the layer, drawing its weights from `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero features; [`Error::Init`] from the initialiser.
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<Linear<T>> {
        let (i, o) = (self.in_features, self.out_features);
        if i == 0 || o == 0 {
            return Err(Error::config(
                "Linear",
                format!("features must be positive, got {i} → {o}"),
            ));
        }
        let weight = Param::named("weight", self.weight_init.tensor([o, i], rng)?);
        let bias = if self.bias {
            let b = match &self.bias_init {
                Some(init) => init.tensor([o], rng)?,
                None => init::torch_default_bias(o, i, rng)?,
            };
            Some(Param::named("bias", b))
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            in_features: i,
            out_features: o,
        })
    }
}

/// A fully connected layer, `nn.Linear`: `y = x Wᵀ + b` over the last axis of `x`
/// (`[*, in] → [*, out]`).
#[derive(Debug, Module)]
pub struct Linear<T: Float> {
    /// `[out, in]`.
    pub weight: Param<T>,
    /// `[out]`, if any.
    pub bias: Option<Param<T>>,
    in_features: usize,
    out_features: usize,
}

impl<T: Float> Linear<T> {
    /// An `in → out` layer with bias and PyTorch's default initialisation.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let fc = nn::Linear::<f32>::new(784, 10, &mut rng)?;
    /// assert_eq!(fc.weight.shape().dims(), &[10, 784]);
    /// # Ok::<(), nn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero features.
    #[track_caller]
    pub fn new(in_features: usize, out_features: usize, rng: &mut impl Rng) -> Result<Self> {
        LinearConfig::new(in_features, out_features).init(rng)
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

impl<T: Float> Forward<T> for Linear<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        if s.rank() == 0 || s[s.rank() - 1] != self.in_features {
            return Err(Error::input(
                "Linear",
                format!("[*, {}]", self.in_features),
                s,
            ));
        }
        let bias = cx.param_opt(self.bias.as_ref());
        linear(x, cx.param(&self.weight), bias)
    }
}

/// `F.linear`: `y = x Wᵀ + b` over the last axis of `x` (`[*, in] → [*, out]`), with
/// `weight` `[out, in]` and `bias` `[out]`; the leading axes are folded into one, so it
/// is a single GEMM whatever the rank.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(Tensor::ones([2, 5, 3])?);
/// let w = tape.constant(Tensor::ones([4, 3])?);
/// let y = nn::linear(x, w, None)?;
/// assert_eq!(y.dims(), [2, 5, 4]);
/// assert_eq!(y.value().as_slice()[0], 3.0);
/// # Ok::<(), nn::Error>(())
/// ```
///
/// # Errors
/// [`Error::InputShape`] when `x` is a scalar or its last axis is not `weight`'s second;
/// autograd's errors when `weight` is not a matrix or `bias` does not broadcast.
#[track_caller]
pub fn linear<'t, T: Float>(
    x: Var<'t, T>,
    weight: Var<'t, T>,
    bias: Option<Var<'t, T>>,
) -> Result<Var<'t, T>> {
    let s = x.shape();
    let w = weight.shape();
    if w.rank() != 2 || s.rank() == 0 || s[s.rank() - 1] != w[1] {
        return Err(Error::input(
            "linear",
            format!("[*, in] with weight [out, in], got weight {w}"),
            s,
        ));
    }
    let (out_features, in_features) = (w[0], w[1]);
    let lead: Vec<usize> = s.dims()[..s.rank() - 1].to_vec();
    let rows: usize = lead.iter().product();
    let x2 = x.reshape([rows, in_features])?;
    let mut y = x2.matmul_t(weight, false, true)?;
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    let mut out = lead;
    out.push(out_features);
    Ok(y.reshape(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{gradcheck_module, gradgradcheck_module};
    use autograd::{GradcheckOptions, Tape, Tensor};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn forward_is_x_times_w_transposed_plus_b() {
        let fc = Linear::<f64>::new(3, 2, &mut StdRng::seed_from_u64(0)).unwrap();
        fc.weight
            .set_value(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], [2, 3]).unwrap())
            .unwrap();
        fc.bias
            .as_ref()
            .unwrap()
            .set_value(Tensor::from_vec(vec![0.5, -1.0], [2]).unwrap())
            .unwrap();
        let tape = Tape::new();
        let x = tape.constant(Tensor::from_vec(vec![1., 0., -1.], [1, 3]).unwrap());
        let y = fc.forward(&Ctx::new(&tape), x).unwrap();
        // [1·1 + 0·2 - 1·3 + 0.5, 4 - 6 - 1]
        assert_eq!(y.value().to_vec(), [-1.5, -3.0]);
        // rank-3 and rank-1 inputs keep their leading axes
        let x3 = tape.constant(Tensor::ones([2, 4, 3]).unwrap());
        assert_eq!(fc.forward(&Ctx::new(&tape), x3).unwrap().dims(), [2, 4, 2]);
        let x1 = tape.constant(Tensor::ones([3]).unwrap());
        assert_eq!(fc.forward(&Ctx::new(&tape), x1).unwrap().dims(), [2]);
        let bad = tape.constant(Tensor::ones([2, 4]).unwrap());
        let e = fc.forward(&Ctx::new(&tape), bad).unwrap_err();
        assert!(
            e.to_string().contains("Linear: expected input [*, 3]"),
            "{e}"
        );
    }

    #[test]
    fn linear_gradchecks_in_input_weight_and_bias() {
        let mut rng = StdRng::seed_from_u64(1);
        let x = Tensor::randn([4, 3], &mut rng).unwrap();
        let fc = Linear::<f64>::new(3, 5, &mut rng).unwrap();
        gradcheck_module(
            &fc,
            std::slice::from_ref(&x),
            |v| v[0],
            &GradcheckOptions::default(),
        )
        .unwrap();
        let cfg = LinearConfig {
            bias: false,
            ..LinearConfig::new(3, 2)
        };
        let nb: Linear<f64> = cfg.init(&mut rng).unwrap();
        assert_eq!(nb.named_parameters().len(), 1);
        gradcheck_module(&nb, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
    }

    #[test]
    fn default_init_is_torch_kaiming_uniform_with_bias_bound_one_over_root_fan_in() {
        let fc = Linear::<f64>::new(400, 300, &mut StdRng::seed_from_u64(2)).unwrap();
        let bound = 1.0 / 20.0;
        let w = fc.weight.value();
        assert!(w.as_slice().iter().all(|v| v.abs() <= bound));
        // U(-b, b) has std b/√3
        let n = w.numel() as f64;
        let std = (w.as_slice().iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        assert!((std / (bound / 3f64.sqrt()) - 1.0).abs() < 0.03);
        let b = fc.bias.as_ref().unwrap().value();
        assert!(b.as_slice().iter().all(|v| v.abs() <= bound));
        assert!(LinearConfig::new(0, 3)
            .init::<f32>(&mut StdRng::seed_from_u64(0))
            .is_err());
    }

    #[test]
    fn linear_gradgradchecks_with_leading_batch_axes() {
        let mut rng = StdRng::seed_from_u64(3);
        let fc = Linear::<f64>::new(3, 2, &mut rng).unwrap();
        let x = Tensor::randn([2, 2, 3], &mut rng).unwrap();
        // tanh inside, so the second derivative in x is not zero
        gradgradcheck_module(&fc, &[x], |v| v[0].tanh(), &GradcheckOptions::default()).unwrap();
    }
}
