//! [`Conv1d`] and [`Conv2d`]: cross-correlation over NCL and NCHW inputs, as `nn.Conv1d`
//! and `nn.Conv2d`, with the checks every convolution layer shares.

use autograd::{Conv1dArgs, Conv2dArgs, Float, Param, Shape, Var};
use rand::Rng;

use crate::error::{Error, Result};
use crate::init::{self, Init};
use crate::module::{Ctx, Forward, Plain};
use crate::Module;

/// What every convolution layer checks at construction: positive sizes, and channels
/// divisible by the groups.
#[track_caller]
pub(crate) fn check_channels(
    layer: &'static str,
    in_channels: usize,
    out_channels: usize,
    groups: usize,
    positive: &[usize],
) -> Result<()> {
    if in_channels == 0 || out_channels == 0 || groups == 0 || positive.contains(&0) {
        return Err(Error::config(
            layer,
            "channels, kernel size, stride, dilation and groups must be positive",
        ));
    }
    if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(Error::config(
            layer,
            format!("{in_channels} → {out_channels} channels are not divisible by {groups} groups"),
        ));
    }
    Ok(())
}

/// Draws a convolution's weight (`shape`) and bias (`[channels]`) with PyTorch's default
/// rule unless initialisers are given: Kaiming-uniform weights, a bias uniform in
/// `±1/√fan_in` (the fan computed from the weight's shape, as PyTorch does for both
/// layouts).
///
/// A weight whose size in bytes does not fit in `isize` (e.g. a kernel of `usize::MAX`
/// taps) is `Error::InvalidConfig` naming `layer`, before anything is allocated.
#[track_caller]
pub(crate) fn conv_params<T: Float>(
    layer: &'static str,
    shape: Vec<usize>,
    channels: usize,
    bias: bool,
    weight_init: &Init,
    bias_init: Option<&Init>,
    rng: &mut impl Rng,
) -> Result<(Param<T>, Option<Param<T>>)> {
    let bytes = shape
        .iter()
        .try_fold(std::mem::size_of::<T>(), |acc, &d| acc.checked_mul(d))
        .filter(|&b| isize::try_from(b).is_ok());
    if bytes.is_none() {
        return Err(Error::config(
            layer,
            format!("a weight of shape {shape:?} does not fit in memory"),
        ));
    }
    let weight = Param::named("weight", weight_init.tensor(shape, rng)?);
    let bias = if bias {
        let (fan_in, _) = init::fans(&weight.shape())?;
        let b = match bias_init {
            Some(i) => i.tensor([channels], rng)?,
            None => init::torch_default_bias(channels, fan_in, rng)?,
        };
        Some(Param::named("bias", b))
    } else {
        None
    };
    Ok((weight, bias))
}

/// Checks a convolution layer's input: rank, channels (dim 1), no zero-length dimension,
/// and, per spatial axis, a window of `(kernel, padding, dilation)` that fits.
#[track_caller]
pub(crate) fn check_input(
    layer: &'static str,
    s: &Shape,
    channels: usize,
    windows: &[(usize, usize, usize)],
) -> Result<()> {
    let spatial = ["L", "H, W", "D, H, W"][windows.len() - 1];
    let layout = format!("[N, {channels}, {spatial}]");
    if s.rank() != 2 + windows.len() || s[1] != channels {
        return Err(Error::input(layer, layout, s.clone()));
    }
    if s.contains(&0) {
        return Err(Error::input(
            layer,
            format!("{layout} with no zero-length dimension"),
            s.clone(),
        ));
    }
    let fits = windows.iter().enumerate().all(|(a, &(k, p, d))| {
        let span = d.checked_mul(k - 1).and_then(|v| v.checked_add(1));
        let padded = p.checked_mul(2).and_then(|v| v.checked_add(s[2 + a]));
        matches!((span, padded), (Some(span), Some(padded)) if padded >= span)
    });
    if !fits {
        let desc: Vec<String> = windows
            .iter()
            .map(|(k, p, d)| format!("kernel {k} (padding {p}, dilation {d})"))
            .collect();
        return Err(Error::input(
            layer,
            format!("{layout} large enough for a {}", desc.join(" by ")),
            s.clone(),
        ));
    }
    Ok(())
}

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
    /// [`Error::InvalidConfig`] for zero sizes or channels not divisible by `groups`;
    /// [`Error::Init`] from the initialiser.
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<Conv2d<T>> {
        let c = self;
        let (k, s, d) = (c.kernel_size, c.stride, c.dilation);
        check_channels(
            "Conv2d",
            c.in_channels,
            c.out_channels,
            c.groups,
            &[k.0, k.1, s.0, s.1, d.0, d.1],
        )?;
        let shape = vec![c.out_channels, c.in_channels / c.groups, k.0, k.1];
        let (weight, bias) = conv_params(
            "Conv2d",
            shape,
            c.out_channels,
            c.bias,
            &c.weight_init,
            c.bias_init.as_ref(),
            rng,
        )?;
        Ok(Conv2d {
            weight,
            bias,
            config: *c,
        })
    }
}

impl Plain for Conv2dConfig {}

/// A 2-d convolution layer, `nn.Conv2d`: `[N, C_in, H, W] → [N, C_out, H', W']` with
/// `H' = ⌊(H + 2p - d(k - 1) - 1)/s⌋ + 1`. Parameters `weight` `[C_out, C_in/groups, kH,
/// kW]` and `bias` `[C_out]`, PyTorch's names and layouts.
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
        let c = &self.config;
        let windows = [
            (c.kernel_size.0, c.padding.0, c.dilation.0),
            (c.kernel_size.1, c.padding.1, c.dilation.1),
        ];
        check_input("Conv2d", &x.shape(), c.in_channels, &windows)?;
        let args = Conv2dArgs {
            stride: c.stride,
            padding: c.padding,
            dilation: c.dilation,
            groups: c.groups,
        };
        let b = self.bias.as_ref().map(|b| cx.param(b));
        Ok(x.conv2d(cx.param(&self.weight), b, args)?)
    }
}

/// The hyper-parameters and initialisers of a [`Conv1d`] layer (PyTorch's names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv1dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel_size: usize,
    /// Stride (default 1).
    pub stride: usize,
    /// Zero padding at each end (default 0).
    pub padding: usize,
    /// Kernel dilation (default 1).
    pub dilation: usize,
    /// Channel groups (default 1).
    pub groups: usize,
    /// Whether to add a bias (default true).
    pub bias: bool,
    /// Weight initialiser (PyTorch's default: [`Init::TORCH_LAYER_DEFAULT`]).
    pub weight_init: Init,
    /// Bias initialiser; `None` is PyTorch's `U(-1/√fan_in, 1/√fan_in)`.
    pub bias_init: Option<Init>,
}

impl Conv1dConfig {
    /// PyTorch's defaults for a kernel of `kernel_size`.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Conv1dConfig {
            in_channels,
            out_channels,
            kernel_size,
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
            weight_init: Init::TORCH_LAYER_DEFAULT,
            bias_init: None,
        }
    }

    /// Builds the layer, drawing its weights from `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes or channels not divisible by `groups`;
    /// [`Error::Init`] from the initialiser.
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<Conv1d<T>> {
        let c = self;
        check_channels(
            "Conv1d",
            c.in_channels,
            c.out_channels,
            c.groups,
            &[c.kernel_size, c.stride, c.dilation],
        )?;
        let shape = vec![c.out_channels, c.in_channels / c.groups, c.kernel_size];
        let (weight, bias) = conv_params(
            "Conv1d",
            shape,
            c.out_channels,
            c.bias,
            &c.weight_init,
            c.bias_init.as_ref(),
            rng,
        )?;
        Ok(Conv1d {
            weight,
            bias,
            config: *c,
        })
    }
}

impl Plain for Conv1dConfig {}

/// A 1-d convolution layer, `nn.Conv1d`: `[N, C_in, L] → [N, C_out, L']` with
/// `L' = ⌊(L + 2p - d(k - 1) - 1)/s⌋ + 1`. Parameters `weight` `[C_out, C_in/groups, k]`
/// and `bias` `[C_out]`.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Conv1dConfig, Ctx};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let conv = Conv1dConfig { stride: 2, padding: 1, ..Conv1dConfig::new(4, 6, 3) }
///     .init::<f32>(&mut rng)?;
/// let tape = Tape::new();
/// let y = Ctx::new(&tape).call(&conv, tape.constant(Tensor::ones([2, 4, 9])?))?;
/// assert_eq!(y.dims(), [2, 6, 5]); // ⌊(9 + 2 - 2 - 1)/2⌋ + 1
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct Conv1d<T: Float> {
    /// `[C_out, C_in/groups, k]`.
    pub weight: Param<T>,
    /// `[C_out]`, if any.
    pub bias: Option<Param<T>>,
    config: Conv1dConfig,
}

impl<T: Float> Conv1d<T> {
    /// A convolution with stride 1, no padding, a bias and PyTorch's default
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
        Conv1dConfig::new(in_channels, out_channels, kernel_size).init(rng)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Conv1dConfig {
        &self.config
    }
}

impl<T: Float> Forward<T> for Conv1d<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let c = &self.config;
        check_input(
            "Conv1d",
            &x.shape(),
            c.in_channels,
            &[(c.kernel_size, c.padding, c.dilation)],
        )?;
        let args = Conv1dArgs {
            stride: c.stride,
            padding: c.padding,
            dilation: c.dilation,
            groups: c.groups,
        };
        let b = self.bias.as_ref().map(|b| cx.param(b));
        Ok(x.conv1d(cx.param(&self.weight), b, args)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{gradcheck_module, gradgradcheck_module};
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
            dilation: (2, 1),
            ..Conv2dConfig::new(2, 4, 2)
        }
        .init(&mut rng)
        .unwrap();
        gradcheck_module(
            &grouped,
            &[Tensor::randn([1, 2, 4, 3], &mut rng).unwrap()],
            |v| v[0],
            &GradcheckOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn conv1d_gradchecks_with_groups_dilation_and_stride() {
        let mut rng = StdRng::seed_from_u64(5);
        let conv: Conv1d<f64> = Conv1dConfig {
            stride: 2,
            padding: 1,
            dilation: 2,
            groups: 2,
            ..Conv1dConfig::new(4, 2, 3)
        }
        .init(&mut rng)
        .unwrap();
        assert_eq!(conv.weight.shape().dims(), [2, 2, 3]);
        let x = Tensor::randn([2, 4, 7], &mut rng).unwrap();
        let tape = Tape::new();
        // ⌊(7 + 2 - 4 - 1)/2⌋ + 1 = 3
        let y = conv.forward(&Ctx::new(&tape), tape.constant(x.clone()));
        assert_eq!(y.unwrap().dims(), [2, 2, 3]);
        gradcheck_module(&conv, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
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
        for bad in [
            Conv1dConfig {
                stride: 0,
                ..Conv1dConfig::new(2, 2, 3)
            },
            Conv1dConfig {
                dilation: 0,
                ..Conv1dConfig::new(2, 2, 3)
            },
            Conv1dConfig::new(2, 2, 0),
            Conv1dConfig {
                groups: 3,
                ..Conv1dConfig::new(3, 4, 1)
            },
        ] {
            assert!(matches!(
                bad.init::<f32>(&mut rng),
                Err(Error::InvalidConfig { what: "Conv1d", .. })
            ));
        }
        let conv = Conv2d::<f32>::new(3, 4, 3, &mut rng).unwrap();
        let tape = Tape::new();
        for shape in [
            vec![1, 2, 5, 5], // wrong channels
            vec![3, 5, 5],    // wrong rank
            vec![1, 3, 2, 2], // kernel larger than input
            vec![1, 3, 0, 5], // zero-length
        ] {
            let x = tape.constant(Tensor::zeros(shape).unwrap());
            assert!(matches!(
                conv.forward(&Ctx::new(&tape), x),
                Err(Error::InputShape {
                    layer: "Conv2d",
                    ..
                })
            ));
        }
    }

    #[test]
    fn convolutions_gradgradcheck() {
        let mut rng = StdRng::seed_from_u64(6);
        let o = GradcheckOptions::default();
        let c1: Conv1d<f64> = Conv1dConfig {
            padding: 1,
            groups: 2,
            ..Conv1dConfig::new(2, 2, 2)
        }
        .init(&mut rng)
        .unwrap();
        let x = Tensor::randn([1, 2, 3], &mut rng).unwrap();
        gradgradcheck_module(&c1, &[x], |v| v[0].tanh(), &o).unwrap();
        let c2: Conv2d<f64> = Conv2dConfig {
            stride: (2, 1),
            dilation: (1, 2),
            ..Conv2dConfig::new(1, 2, 2)
        }
        .init(&mut rng)
        .unwrap();
        let x = Tensor::randn([1, 1, 3, 3], &mut rng).unwrap();
        gradgradcheck_module(&c2, &[x], |v| v[0].tanh(), &o).unwrap();
    }
}
