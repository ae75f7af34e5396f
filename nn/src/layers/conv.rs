//! [`Conv2d`]: 2-d cross-correlation over NCHW inputs, as `nn.Conv2d`.

use autograd::{Conv2dArgs, Float, Param, Var};
use rand::Rng;

use crate::error::{Error, Result};
use crate::init::{self, Init};
use crate::module::{Ctx, Forward};
use crate::Module;

/// The hyper-parameters and initialisers of a [`Conv2d`] layer (PyTorch's names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size (rows, cols).
    pub kernel_size: (usize, usize),
    /// Stride (default 1).
    pub stride: (usize, usize),
    /// Zero padding on each side (default 0).
    pub padding: (usize, usize),
    /// Kernel dilation (default 1).
    pub dilation: (usize, usize),
    /// Channel groups (default 1).
    pub groups: usize,
    /// Whether to add a bias (default true).
    pub bias: bool,
    /// Weight initialiser (PyTorch's default: [`Init::TORCH_LAYER_DEFAULT`]).
    pub weight_init: Init,
    /// Bias initialiser; `None` is PyTorch's `U(-1/√fan_in, 1/√fan_in)`.
    pub bias_init: Option<Init>,
}

impl Conv2dConfig {
    /// PyTorch's defaults for a `k × k` convolution.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size: (kernel_size, kernel_size),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            weight_init: Init::TORCH_LAYER_DEFAULT,
            bias_init: None,
        }
    }

    /// Builds the layer, drawing its weights from `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes or channels not divisible by `groups`.
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<Conv2d<T>> {
        let c = self;
        let positive = [
            c.in_channels,
            c.out_channels,
            c.kernel_size.0,
            c.kernel_size.1,
            c.stride.0,
            c.stride.1,
            c.dilation.0,
            c.dilation.1,
            c.groups,
        ];
        if positive.contains(&0) {
            return Err(Error::config(
                "Conv2d",
                "channels, kernel size, stride, dilation and groups must be positive",
            ));
        }
        // `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
        #[allow(clippy::manual_is_multiple_of)]
        let divisible = c.in_channels % c.groups == 0 && c.out_channels % c.groups == 0;
        if !divisible {
            return Err(Error::config(
                "Conv2d",
                format!(
                    "{} → {} channels are not divisible by {} groups",
                    c.in_channels, c.out_channels, c.groups
                ),
            ));
        }
        let shape = [
            c.out_channels,
            c.in_channels / c.groups,
            c.kernel_size.0,
            c.kernel_size.1,
        ];
        let weight = Param::named("weight", c.weight_init.tensor(shape, rng)?);
        let bias = if c.bias {
            let (fan_in, _) = init::fans(&weight.shape())?;
            let b = match &c.bias_init {
                Some(i) => i.tensor([c.out_channels], rng)?,
                None => init::torch_default_bias(c.out_channels, fan_in, rng)?,
            };
            Some(Param::named("bias", b))
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            config: *c,
        })
    }
}

impl crate::module::Plain for Conv2dConfig {}

/// A 2-d convolution layer, `nn.Conv2d`: `[N, C_in, H, W] → [N, C_out, H', W']`.
#[derive(Debug, Module)]
pub struct Conv2d<T: Float> {
    /// `[C_out, C_in/groups, kH, kW]`.
    pub weight: Param<T>,
    /// `[C_out]`, if any.
    pub bias: Option<Param<T>>,
    config: Conv2dConfig,
}

impl<T: Float> Conv2d<T> {
    /// A `k × k` convolution with stride 1, no padding, a bias and PyTorch's default
    /// initialisation.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes.
    #[track_caller]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Conv2dConfig::new(in_channels, out_channels, kernel_size).init(rng)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }
}

impl<T: Float> Forward<T> for Conv2d<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        let c = &self.config;
        if s.rank() != 4 || s[1] != c.in_channels {
            return Err(Error::input(
                "Conv2d",
                format!("[N, {}, H, W]", c.in_channels),
                s,
            ));
        }
        // Checked here, on the caller's shape: with groups, autograd convolves each
        // group's slice and would report that slice's shape instead.
        let fits = |n: usize, k: usize, p: usize, d: usize| {
            let span = d.checked_mul(k - 1).and_then(|v| v.checked_add(1));
            let padded = p.checked_mul(2).and_then(|v| v.checked_add(n));
            matches!((span, padded), (Some(span), Some(padded)) if padded >= span)
        };
        let (kh, kw) = c.kernel_size;
        if !fits(s[2], kh, c.padding.0, c.dilation.0) || !fits(s[3], kw, c.padding.1, c.dilation.1)
        {
            return Err(Error::input(
                "Conv2d",
                format!(
                    "[N, {}, H, W] large enough for a {kh}x{kw} window with padding {:?} and dilation {:?}",
                    c.in_channels, c.padding, c.dilation
                ),
                s,
            ));
        }
        let args = Conv2dArgs {
            stride: c.stride,
            padding: c.padding,
            dilation: c.dilation,
            groups: c.groups,
        };
        let b = match &self.bias {
            Some(b) => Some(cx.param(b)),
            None => None,
        };
        Ok(x.conv2d(cx.param(&self.weight), b, args)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::gradcheck_module;
    use autograd::{GradcheckOptions, Tape, Tensor};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn conv2d_with_stride_and_padding_gradchecks() {
        let mut rng = StdRng::seed_from_u64(3);
        let cfg = Conv2dConfig {
            stride: (2, 1),
            padding: (1, 2),
            ..Conv2dConfig::new(2, 3, 3)
        };
        let conv: Conv2d<f64> = cfg.init(&mut rng).unwrap();
        let x = Tensor::randn([2, 2, 5, 4], &mut rng).unwrap();
        let tape = Tape::new();
        let y = conv
            .forward(&Ctx::new(&tape), tape.constant(x.clone()))
            .unwrap();
        // H' = (5 + 2 - 3)/2 + 1 = 3, W' = (4 + 4 - 3)/1 + 1 = 6
        assert_eq!(y.dims(), [2, 3, 3, 6]);
        gradcheck_module(&conv, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
        let grouped: Conv2d<f64> = Conv2dConfig {
            groups: 2,
            bias: false,
            ..Conv2dConfig::new(2, 4, 2)
        }
        .init(&mut rng)
        .unwrap();
        gradcheck_module(
            &grouped,
            &[Tensor::randn([1, 2, 3, 3], &mut rng).unwrap()],
            |v| v[0],
            &GradcheckOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn conv_default_init_uses_the_receptive_field_fan() {
        // fan_in = 3·5·5 = 75, so weights and bias lie in ±1/√75
        let conv = Conv2d::<f64>::new(3, 16, 5, &mut StdRng::seed_from_u64(4)).unwrap();
        assert_eq!(conv.weight.shape().dims(), &[16, 3, 5, 5]);
        let bound = 1.0 / 75f64.sqrt();
        let w = conv.weight.value();
        assert!(w.as_slice().iter().all(|v| v.abs() <= bound));
        assert!(w.as_slice().iter().any(|v| v.abs() > 0.9 * bound));
        let b = conv.bias.as_ref().unwrap().value();
        assert!(b.as_slice().iter().all(|v| v.abs() <= bound));
    }

    #[test]
    fn conv_rejects_bad_configs_and_inputs() {
        let mut rng = StdRng::seed_from_u64(0);
        let bad = Conv2dConfig {
            groups: 2,
            ..Conv2dConfig::new(3, 4, 3)
        };
        assert!(matches!(
            bad.init::<f32>(&mut rng),
            Err(Error::InvalidConfig { .. })
        ));
        let conv = Conv2d::<f32>::new(3, 4, 3, &mut rng).unwrap();
        let tape = Tape::new();
        let x = tape.constant(Tensor::zeros([1, 2, 5, 5]).unwrap());
        assert!(matches!(
            conv.forward(&Ctx::new(&tape), x),
            Err(Error::InputShape { .. })
        ));
        // a 3×3 kernel does not fit a 2×2 image: an error, not a panic
        let small = tape.constant(Tensor::zeros([1, 3, 2, 2]).unwrap());
        assert!(conv.forward(&Ctx::new(&tape), small).is_err());
    }
}
