//! [`ConvTranspose1d`] and [`ConvTranspose2d`]: transposed convolutions ("deconvolutions",
//! the input gradient of a convolution), as `nn.ConvTranspose1d` and `nn.ConvTranspose2d`.

use autograd::{ConvTranspose1dArgs, ConvTranspose2dArgs, Float, Param, Shape, Var};
use rand::Rng;

use super::conv::{check_channels, conv_params};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Ctx, Forward, Plain};
use crate::Module;

/// PyTorch's rule for `output_padding`: below the stride or the dilation of its axis.
#[track_caller]
fn check_output_padding(layer: &'static str, op: usize, s: usize, d: usize) -> Result<()> {
    if op >= s && op >= d {
        return Err(Error::config(
            layer,
            format!("output_padding {op} must be smaller than the stride {s} or the dilation {d}"),
        ));
    }
    Ok(())
}

/// Checks a transposed convolution's input: rank, channels, no zero-length dimension and
/// a positive output size per axis (`(n - 1)s - 2p + d(k - 1) + output_padding + 1`,
/// computed without overflow).
#[track_caller]
fn check_input(
    layer: &'static str,
    s: &Shape,
    channels: usize,
    axes: &[(usize, usize, usize, usize, usize)],
) -> Result<()> {
    let spatial = if axes.len() == 1 { "L" } else { "H, W" };
    let layout = format!("[N, {channels}, {spatial}]");
    if s.rank() != 2 + axes.len() || s[1] != channels {
        return Err(Error::input(layer, layout, s.clone()));
    }
    if s.contains(&0) {
        return Err(Error::input(
            layer,
            format!("{layout} with no zero-length dimension"),
            s.clone(),
        ));
    }
    let positive = axes.iter().enumerate().all(|(a, &(k, st, p, op, d))| {
        let full = (s[2 + a] - 1)
            .checked_mul(st)
            .and_then(|v| v.checked_add(d.checked_mul(k - 1)?))
            .and_then(|v| v.checked_add(op + 1));
        matches!(full.and_then(|f| f.checked_sub(p.checked_mul(2)?)), Some(n) if n > 0)
    });
    if !positive {
        return Err(Error::input(
            layer,
            format!(
                "{layout} large enough for a positive output with padding {:?}",
                axes.iter().map(|a| a.2).collect::<Vec<_>>()
            ),
            s.clone(),
        ));
    }
    Ok(())
}

/// The hyper-parameters and initialisers of a [`ConvTranspose2d`] layer (PyTorch's
/// names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size (rows, cols).
    pub kernel_size: (usize, usize),
    /// Stride (default 1).
    pub stride: (usize, usize),
    /// Rows/cols removed from each side of the full output (default 0).
    pub padding: (usize, usize),
    /// Rows/cols added at the bottom/right (default 0); below the stride or dilation.
    pub output_padding: (usize, usize),
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

impl ConvTranspose2dConfig {
    /// PyTorch's defaults for a `k × k` kernel.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        ConvTranspose2dConfig {
            in_channels,
            out_channels,
            kernel_size: (kernel_size, kernel_size),
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
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
    /// [`Error::InvalidConfig`] for zero sizes, channels not divisible by `groups`, or an
    /// `output_padding` not below the stride or the dilation; [`Error::Init`] from the
    /// initialiser.
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<ConvTranspose2d<T>> {
        let c = self;
        let (k, s, d) = (c.kernel_size, c.stride, c.dilation);
        let layer = "ConvTranspose2d";
        check_channels(
            layer,
            c.in_channels,
            c.out_channels,
            c.groups,
            &[k.0, k.1, s.0, s.1, d.0, d.1],
        )?;
        check_output_padding(layer, c.output_padding.0, s.0, d.0)?;
        check_output_padding(layer, c.output_padding.1, s.1, d.1)?;
        let shape = vec![c.in_channels, c.out_channels / c.groups, k.0, k.1];
        let (weight, bias) = conv_params(
            layer,
            shape,
            c.out_channels,
            c.bias,
            &c.weight_init,
            c.bias_init.as_ref(),
            rng,
        )?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            config: *c,
        })
    }
}

impl Plain for ConvTranspose2dConfig {}

/// A 2-d transposed convolution, `nn.ConvTranspose2d`: `[N, C_in, H, W] →
/// [N, C_out, H', W']`, `H' = (H - 1)s - 2p + d(k - 1) + output_padding + 1`. Input pixel
/// `(h, w)` adds `x·weight[c_in, :, i, j]` at output `(h·s - p + i·d, w·s - p + j·d)`.
/// Parameters `weight` `[C_in, C_out/groups, kH, kW]` (in-channels first, as PyTorch)
/// and `bias` `[C_out]`.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{ConvTranspose2dConfig, Ctx};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let up = ConvTranspose2dConfig { stride: (2, 2), padding: (1, 1), output_padding: (1, 1),
///     ..ConvTranspose2dConfig::new(4, 6, 3) }.init::<f32>(&mut rng)?;
/// let tape = Tape::new();
/// let y = Ctx::new(&tape).call(&up, tape.constant(Tensor::ones([2, 4, 3, 4])?))?;
/// assert_eq!(y.dims(), [2, 6, 6, 8]); // exactly twice the size
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct ConvTranspose2d<T: Float> {
    /// `[C_in, C_out/groups, kH, kW]`.
    pub weight: Param<T>,
    /// `[C_out]`, if any.
    pub bias: Option<Param<T>>,
    config: ConvTranspose2dConfig,
}

impl<T: Float> ConvTranspose2d<T> {
    /// A `k × k` transposed convolution with stride 1, no padding, a bias and PyTorch's
    /// default initialisation.
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
        ConvTranspose2dConfig::new(in_channels, out_channels, kernel_size).init(rng)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ConvTranspose2dConfig {
        &self.config
    }
}

impl<T: Float> Forward<T> for ConvTranspose2d<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let c = &self.config;
        let axis = |pick: fn((usize, usize)) -> usize| {
            (
                pick(c.kernel_size),
                pick(c.stride),
                pick(c.padding),
                pick(c.output_padding),
                pick(c.dilation),
            )
        };
        check_input(
            "ConvTranspose2d",
            &x.shape(),
            c.in_channels,
            &[axis(|t| t.0), axis(|t| t.1)],
        )?;
        let args = ConvTranspose2dArgs {
            stride: c.stride,
            padding: c.padding,
            output_padding: c.output_padding,
            dilation: c.dilation,
            groups: c.groups,
        };
        let b = self.bias.as_ref().map(|b| cx.param(b));
        Ok(x.conv_transpose2d(cx.param(&self.weight), b, args)?)
    }
}

/// The hyper-parameters and initialisers of a [`ConvTranspose1d`] layer (PyTorch's
/// names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose1dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel_size: usize,
    /// Stride (default 1).
    pub stride: usize,
    /// Elements removed from each end of the full output (default 0).
    pub padding: usize,
    /// Elements added at the end (default 0); below the stride or the dilation.
    pub output_padding: usize,
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

impl ConvTranspose1dConfig {
    /// PyTorch's defaults for a kernel of `kernel_size`.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        ConvTranspose1dConfig {
            in_channels,
            out_channels,
            kernel_size,
            stride: 1,
            padding: 0,
            output_padding: 0,
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
    /// As [`ConvTranspose2dConfig::init`].
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<ConvTranspose1d<T>> {
        let c = self;
        let layer = "ConvTranspose1d";
        check_channels(
            layer,
            c.in_channels,
            c.out_channels,
            c.groups,
            &[c.kernel_size, c.stride, c.dilation],
        )?;
        check_output_padding(layer, c.output_padding, c.stride, c.dilation)?;
        let shape = vec![c.in_channels, c.out_channels / c.groups, c.kernel_size];
        let (weight, bias) = conv_params(
            layer,
            shape,
            c.out_channels,
            c.bias,
            &c.weight_init,
            c.bias_init.as_ref(),
            rng,
        )?;
        Ok(ConvTranspose1d {
            weight,
            bias,
            config: *c,
        })
    }
}

impl Plain for ConvTranspose1dConfig {}

/// A 1-d transposed convolution, `nn.ConvTranspose1d`: `[N, C_in, L] → [N, C_out, L']`,
/// `L' = (L - 1)s - 2p + d(k - 1) + output_padding + 1`. Parameters `weight`
/// `[C_in, C_out/groups, k]` and `bias` `[C_out]`.
#[derive(Debug, Module)]
pub struct ConvTranspose1d<T: Float> {
    /// `[C_in, C_out/groups, k]`.
    pub weight: Param<T>,
    /// `[C_out]`, if any.
    pub bias: Option<Param<T>>,
    config: ConvTranspose1dConfig,
}

impl<T: Float> ConvTranspose1d<T> {
    /// A transposed convolution with stride 1, no padding, a bias and PyTorch's default
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
        ConvTranspose1dConfig::new(in_channels, out_channels, kernel_size).init(rng)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ConvTranspose1dConfig {
        &self.config
    }
}

impl<T: Float> Forward<T> for ConvTranspose1d<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let c = &self.config;
        check_input(
            "ConvTranspose1d",
            &x.shape(),
            c.in_channels,
            &[(
                c.kernel_size,
                c.stride,
                c.padding,
                c.output_padding,
                c.dilation,
            )],
        )?;
        let args = ConvTranspose1dArgs {
            stride: c.stride,
            padding: c.padding,
            output_padding: c.output_padding,
            dilation: c.dilation,
            groups: c.groups,
        };
        let b = self.bias.as_ref().map(|b| cx.param(b));
        Ok(x.conv_transpose1d(cx.param(&self.weight), b, args)?)
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
    fn conv_transpose2d_gradchecks_with_groups_output_padding_and_dilation() {
        let mut rng = StdRng::seed_from_u64(7);
        let up: ConvTranspose2d<f64> = ConvTranspose2dConfig {
            stride: (2, 1),
            padding: (1, 0),
            output_padding: (1, 1),
            dilation: (1, 2),
            groups: 2,
            ..ConvTranspose2dConfig::new(4, 2, 2)
        }
        .init(&mut rng)
        .unwrap();
        assert_eq!(up.weight.shape().dims(), [4, 1, 2, 2]);
        let x = Tensor::randn([1, 4, 2, 3], &mut rng).unwrap();
        let tape = Tape::new();
        let y = up.forward(&Ctx::new(&tape), tape.constant(x.clone()));
        // H: (2 - 1)·2 - 2 + 1 + 1 + 1 = 3; W: (3 - 1) + 2 + 1 + 1 = 6
        assert_eq!(y.unwrap().dims(), [1, 2, 3, 6]);
        gradcheck_module(&up, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
    }

    #[test]
    fn conv_transpose1d_gradchecks() {
        let mut rng = StdRng::seed_from_u64(8);
        let up: ConvTranspose1d<f64> = ConvTranspose1dConfig {
            stride: 3,
            padding: 1,
            output_padding: 2,
            ..ConvTranspose1dConfig::new(2, 3, 2)
        }
        .init(&mut rng)
        .unwrap();
        let x = Tensor::randn([2, 2, 3], &mut rng).unwrap();
        let tape = Tape::new();
        // (3 - 1)·3 - 2 + 1 + 2 + 1 = 8
        let y = up.forward(&Ctx::new(&tape), tape.constant(x.clone()));
        assert_eq!(y.unwrap().dims(), [2, 3, 8]);
        gradcheck_module(&up, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
    }

    #[test]
    fn conv_transpose_rejects_bad_configs_and_inputs() {
        let mut rng = StdRng::seed_from_u64(0);
        // output_padding must stay below the stride (or the dilation)
        let bad = ConvTranspose2dConfig {
            stride: (2, 2),
            output_padding: (2, 0),
            ..ConvTranspose2dConfig::new(2, 2, 3)
        };
        assert!(matches!(
            bad.init::<f32>(&mut rng),
            Err(Error::InvalidConfig {
                what: "ConvTranspose2d",
                ..
            })
        ));
        let ok_by_dilation = ConvTranspose1dConfig {
            dilation: 3,
            output_padding: 2,
            ..ConvTranspose1dConfig::new(2, 2, 3)
        };
        assert!(ok_by_dilation.init::<f32>(&mut rng).is_ok());
        let groups = ConvTranspose1dConfig {
            groups: 2,
            ..ConvTranspose1dConfig::new(2, 3, 3)
        };
        assert!(groups.init::<f32>(&mut rng).is_err());
        let up = ConvTranspose1d::<f32>::new(2, 2, 3, &mut rng).unwrap();
        let tape = Tape::new();
        for shape in [vec![1, 3, 4], vec![2, 4], vec![1, 2, 0]] {
            let x = tape.constant(Tensor::zeros(shape).unwrap());
            assert!(matches!(
                up.forward(&Ctx::new(&tape), x),
                Err(Error::InputShape {
                    layer: "ConvTranspose1d",
                    ..
                })
            ));
        }
        // padding that eats the whole output
        let eaten: ConvTranspose1d<f32> = ConvTranspose1dConfig {
            padding: 3,
            ..ConvTranspose1dConfig::new(2, 2, 3)
        }
        .init(&mut rng)
        .unwrap();
        let x = tape.constant(Tensor::zeros([1, 2, 2]).unwrap());
        assert!(matches!(
            eaten.forward(&Ctx::new(&tape), x),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn transposed_convolutions_gradgradcheck() {
        let mut rng = StdRng::seed_from_u64(9);
        let o = GradcheckOptions::default();
        let t1: ConvTranspose1d<f64> = ConvTranspose1dConfig {
            stride: 2,
            output_padding: 1,
            ..ConvTranspose1dConfig::new(2, 1, 2)
        }
        .init(&mut rng)
        .unwrap();
        let x = Tensor::randn([1, 2, 2], &mut rng).unwrap();
        gradgradcheck_module(&t1, &[x], |v| v[0].tanh(), &o).unwrap();
        let t2: ConvTranspose2d<f64> = ConvTranspose2dConfig {
            stride: (2, 1),
            padding: (1, 0),
            groups: 2,
            ..ConvTranspose2dConfig::new(2, 2, 2)
        }
        .init(&mut rng)
        .unwrap();
        let x = Tensor::randn([1, 2, 2, 2], &mut rng).unwrap();
        gradgradcheck_module(&t2, &[x], |v| v[0].tanh(), &o).unwrap();
    }
}
