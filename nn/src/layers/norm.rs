//! Normalisation layers: [`BatchNorm1d`], [`BatchNorm2d`] (running statistics, train vs
//! eval) and [`LayerNorm`]. ([`GroupNorm`](crate::GroupNorm) and
//! [`RmsNorm`](crate::RmsNorm) have files of their own.)

use autograd::{Float, Param, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{Buffer, Ctx, Forward, Mode, Plain};
use crate::Module;

/// The hyper-parameters of a batch-norm layer (PyTorch's names and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Channels `C` (dim 1 of the input).
    pub num_features: usize,
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Running-statistics update rate (default 0.1); `None` = cumulative average.
    pub momentum: Option<f64>,
    /// Learnt per-channel scale and shift (default true).
    pub affine: bool,
    /// Keep running statistics for evaluation (default true); without them the layer
    /// always normalises with batch statistics.
    pub track_running_stats: bool,
}

impl BatchNormConfig {
    /// PyTorch's defaults for `num_features` channels.
    pub fn new(num_features: usize) -> Self {
        BatchNormConfig {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }

    /// Builds the layer (`D` = 1 for `[N, C]`/`[N, C, L]` inputs, 2 for `[N, C, H, W]`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero features, `eps <= 0` or a momentum outside `[0, 1]`.
    #[track_caller]
    pub fn init<T: Float, const D: usize>(&self) -> Result<BatchNorm<T, D>> {
        let c = self.num_features;
        if c == 0
            || self.eps.is_nan()
            || self.eps <= 0.0
            || self.momentum.is_some_and(|m| !(0.0..=1.0).contains(&m))
        {
            return Err(Error::config(
                "BatchNorm",
                format!("need features > 0, eps > 0 and momentum in [0, 1], got {self:?}"),
            ));
        }
        let track = self.track_running_stats;
        Ok(BatchNorm {
            weight: self
                .affine
                .then(|| Tensor::ones([c]).map(|t| Param::named("weight", t)))
                .transpose()?,
            bias: self
                .affine
                .then(|| Tensor::zeros([c]).map(|t| Param::named("bias", t)))
                .transpose()?,
            running_mean: track
                .then(|| Tensor::zeros([c]).map(Buffer::new))
                .transpose()?,
            running_var: track
                .then(|| Tensor::ones([c]).map(Buffer::new))
                .transpose()?,
            num_batches_tracked: track
                .then(|| Tensor::zeros([]).map(Buffer::integer))
                .transpose()?,
            config: *self,
            mode: Mode::new(),
        })
    }
}

impl Plain for BatchNormConfig {}

/// Batch normalisation (Ioffe & Szegedy 2015), as `nn.BatchNorm1d` (`D = 1`) and
/// `nn.BatchNorm2d` (`D = 2`):
/// `y = (x - E[x]) / √(Var[x] + eps) · γ + β` per channel (dim 1).
///
/// In training the statistics are the batch's (biased variance), and the running
/// estimates move by `r ← (1 - momentum)·r + momentum·batch`, with the *unbiased* batch
/// variance, as PyTorch does. In evaluation the running estimates are used. Buffers are
/// named `running_mean`, `running_var` and `num_batches_tracked` like PyTorch's.
#[derive(Debug, Module)]
#[module(type_name = if D == 2 { "BatchNorm2d" } else { "BatchNorm1d" })]
pub struct BatchNorm<T: Float, const D: usize> {
    // Field names are PyTorch's state-dict names.
    weight: Option<Param<T>>,
    bias: Option<Param<T>>,
    running_mean: Option<Buffer<T>>,
    running_var: Option<Buffer<T>>,
    num_batches_tracked: Option<Buffer<T>>,
    config: BatchNormConfig,
    mode: Mode,
}

/// `nn.BatchNorm1d`: inputs `[N, C]` or `[N, C, L]`.
pub type BatchNorm1d<T> = BatchNorm<T, 1>;
/// `nn.BatchNorm2d`: inputs `[N, C, H, W]`.
pub type BatchNorm2d<T> = BatchNorm<T, 2>;

impl<T: Float, const D: usize> BatchNorm<T, D> {
    /// `num_features` channels with PyTorch's defaults (eps 1e-5, momentum 0.1, affine,
    /// running statistics).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero features.
    #[track_caller]
    pub fn new(num_features: usize) -> Result<Self> {
        BatchNormConfig::new(num_features).init()
    }

    /// The scale γ, if affine.
    pub fn weight(&self) -> Option<&Param<T>> {
        self.weight.as_ref()
    }

    /// The shift β, if affine.
    pub fn bias(&self) -> Option<&Param<T>> {
        self.bias.as_ref()
    }

    /// The running mean and (unbiased) variance, if tracked.
    pub fn running_stats(&self) -> Option<(Tensor<T>, Tensor<T>)> {
        match (&self.running_mean, &self.running_var) {
            (Some(m), Some(v)) => Some((m.value(), v.value())),
            _ => None,
        }
    }

    #[track_caller]
    fn check_input(&self, s: &autograd::Shape) -> Result<()> {
        let ok_rank = if D == 2 {
            s.rank() == 4
        } else {
            s.rank() == 2 || s.rank() == 3
        };
        if !ok_rank || s[1] != self.config.num_features {
            let c = self.config.num_features;
            let want = if D == 2 {
                format!("[N, {c}, H, W]")
            } else {
                format!("[N, {c}] or [N, {c}, L]")
            };
            return Err(Error::input(
                if D == 2 { "BatchNorm2d" } else { "BatchNorm1d" },
                want,
                s.clone(),
            ));
        }
        Ok(())
    }

    fn update_running(&self, mean: &Tensor<T>, var: &Tensor<T>, n: usize) -> Result<()> {
        let (Some(rmean), Some(rvar), Some(tracked)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) else {
            return Ok(());
        };
        let count = tracked.value().as_slice()[0] + T::one();
        tracked.set_value(Tensor::full([], count)?)?;
        let m = match self.config.momentum {
            Some(m) => m,
            None => 1.0 / count.as_f64(),
        };
        let (m, keep) = (T::of(m), T::of(1.0 - m));
        let unbias = T::of(n as f64 / (n as f64 - 1.0));
        let rm = rmean
            .value()
            .zip_with(mean, "batch_norm", |r, b| keep * r + m * b)?;
        let rv = rvar
            .value()
            .zip_with(var, "batch_norm", |r, b| keep * r + m * b * unbias)?;
        rmean.set_value(rm)?;
        rvar.set_value(rv)?;
        Ok(())
    }
}

impl<T: Float, const D: usize> Forward<T> for BatchNorm<T, D> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        self.check_input(&s)?;
        let c = self.config.num_features;
        let axes: Vec<isize> = (0..s.rank() as isize).filter(|&a| a != 1).collect();
        let mut bshape = vec![1; s.rank()];
        bshape[1] = c;
        let eps = T::of(self.config.eps);
        let tape = cx.tape();
        let training = self.mode.is_training();
        let stats = match (&self.running_mean, &self.running_var) {
            (Some(m), Some(v)) => Some((m, v)),
            _ => None,
        };
        let use_batch = training || stats.is_none();
        let y = if use_batch {
            let n = s.numel() / c;
            if n <= 1 {
                return Err(Error::input(
                    self.type_name(),
                    "more than one value per channel in training mode",
                    s,
                ));
            }
            let mean = x.mean_axes(&axes, true)?;
            let centred = x.sub(mean)?;
            let var = centred.square().mean_axes(&axes, true)?;
            // A checkpointed segment re-run in backward has updated them already.
            if training && !cx.is_recomputing() {
                let (m, v) = (mean.value().reshape([c])?, var.value().reshape([c])?);
                self.update_running(&m, &v, n)?;
            }
            centred.mul(var.add_scalar(eps).rsqrt())?
        } else {
            let (rmean, rvar) = stats.expect("internal: checked by use_batch");
            let mean = tape.constant(rmean.value().reshape(bshape.clone())?);
            let inv = rvar
                .value()
                .reshape(bshape.clone())?
                .map(|v| (v + eps).sqrt().recip());
            x.sub(mean)?.mul(tape.constant(inv))?
        };
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => {
                let w = cx.param(w).reshape(bshape.clone())?;
                let b = cx.param(b).reshape(bshape)?;
                Ok(y.mul(w)?.add(b)?)
            }
            _ => Ok(y),
        }
    }
}

/// The options of a [`LayerNorm`] (PyTorch's names and defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// The trailing dimensions normalised jointly.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// A learnt scale `weight` of `normalized_shape` (default true).
    pub elementwise_affine: bool,
    /// A learnt shift `bias` too, when affine (default true).
    pub bias: bool,
}

impl LayerNormConfig {
    /// PyTorch's defaults over `normalized_shape`.
    pub fn new(normalized_shape: &[usize]) -> Self {
        LayerNormConfig {
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }

    /// Builds the layer, with `weight = 1` and `bias = 0`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty or zero-sized shape or `eps < 0`.
    #[track_caller]
    pub fn init<T: Float>(&self) -> Result<LayerNorm<T>> {
        let shape = &self.normalized_shape;
        if shape.is_empty() || shape.contains(&0) || self.eps.is_nan() || self.eps < 0.0 {
            return Err(Error::config(
                "LayerNorm",
                format!(
                    "need a non-empty positive shape and eps >= 0, got {shape:?}, {}",
                    self.eps
                ),
            ));
        }
        let affine = self.elementwise_affine;
        Ok(LayerNorm {
            weight: affine
                .then(|| Tensor::ones(shape.clone()).map(|t| Param::named("weight", t)))
                .transpose()?,
            bias: (affine && self.bias)
                .then(|| Tensor::zeros(shape.clone()).map(|t| Param::named("bias", t)))
                .transpose()?,
            normalized_shape: shape.clone(),
            eps: self.eps,
        })
    }
}

/// `nn.LayerNorm(normalized_shape)`: normalises over the trailing axes of each sample
/// jointly, `(x - mean)/√(var + eps) · γ + β` (biased variance), the same in training and
/// evaluation. `weight` γ and `bias` β have shape `normalized_shape`.
#[derive(Debug, Module)]
pub struct LayerNorm<T: Float> {
    weight: Option<Param<T>>,
    bias: Option<Param<T>>,
    normalized_shape: Vec<usize>,
    eps: f64,
}

impl<T: Float> LayerNorm<T> {
    /// Normalises over trailing axes `normalized_shape`, eps 1e-5, with γ = 1 and β = 0.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty or zero-sized shape.
    #[track_caller]
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        LayerNormConfig::new(normalized_shape).init()
    }

    /// With explicit `eps` and `elementwise_affine` (and a bias when affine); see
    /// [`LayerNormConfig`] for an affine scale without a bias.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty or zero-sized shape or `eps < 0`.
    #[track_caller]
    pub fn with_options(
        normalized_shape: &[usize],
        eps: f64,
        elementwise_affine: bool,
    ) -> Result<Self> {
        LayerNormConfig {
            eps,
            elementwise_affine,
            ..LayerNormConfig::new(normalized_shape)
        }
        .init()
    }

    /// The scale γ, if affine.
    pub fn weight(&self) -> Option<&Param<T>> {
        self.weight.as_ref()
    }

    /// The shift β, if any.
    pub fn bias(&self) -> Option<&Param<T>> {
        self.bias.as_ref()
    }
}

impl<T: Float> Forward<T> for LayerNorm<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        let k = self.normalized_shape.len();
        if s.rank() < k || s.dims()[s.rank() - k..] != self.normalized_shape[..] {
            return Err(Error::input(
                "LayerNorm",
                format!("[*, {:?}]", self.normalized_shape),
                s,
            ));
        }
        let w = self.weight.as_ref().map(|w| cx.param(w));
        let b = self.bias.as_ref().map(|b| cx.param(b));
        Ok(x.layer_norm(k, w, b, self.eps)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{gradcheck_module, gradgradcheck_module};
    use autograd::{GradcheckOptions, Tape};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn randomise_affine<const D: usize>(bn: &BatchNorm<f64, D>, rng: &mut StdRng) {
        let c = bn.config.num_features;
        bn.weight()
            .unwrap()
            .set_value(Tensor::uniform([c], 0.5, 1.5, rng).unwrap())
            .unwrap();
        bn.bias()
            .unwrap()
            .set_value(Tensor::randn([c], rng).unwrap())
            .unwrap();
    }

    #[test]
    fn batchnorm_gradchecks_in_train_and_eval_mode() {
        let mut rng = StdRng::seed_from_u64(9);
        let o = GradcheckOptions::default();
        let bn1 = BatchNorm1d::<f64>::new(3).unwrap();
        randomise_affine(&bn1, &mut rng);
        gradcheck_module(
            &bn1,
            &[Tensor::randn([5, 3], &mut rng).unwrap()],
            |v| v[0],
            &o,
        )
        .unwrap();
        gradcheck_module(
            &bn1,
            &[Tensor::randn([4, 3, 2], &mut rng).unwrap()],
            |v| v[0],
            &o,
        )
        .unwrap();
        let bn2 = BatchNorm2d::<f64>::new(2).unwrap();
        randomise_affine(&bn2, &mut rng);
        gradcheck_module(
            &bn2,
            &[Tensor::randn([2, 2, 3, 3], &mut rng).unwrap()],
            |v| v[0],
            &o,
        )
        .unwrap();
        bn2.eval();
        gradcheck_module(
            &bn2,
            &[Tensor::randn([2, 2, 3, 3], &mut rng).unwrap()],
            |v| v[0],
            &o,
        )
        .unwrap();
    }

    #[test]
    fn batchnorm_normalises_and_tracks_torch_running_stats() {
        let bn = BatchNorm1d::<f64>::new(2).unwrap();
        let tape = Tape::new();
        // channel 0: [1, 2, 3, 6] (mean 3, biased var 3.5, unbiased 14/3)
        // channel 1: [0, 0, 4, 4] (mean 2, biased var 4, unbiased 16/3)
        let x =
            tape.constant(Tensor::from_vec(vec![1., 0., 2., 0., 3., 4., 6., 4.], [4, 2]).unwrap());
        let y = bn.forward(&Ctx::new(&tape), x).unwrap().value();
        let want0 = (1.0 - 3.0) / (3.5f64 + 1e-5).sqrt();
        assert!((y.at(&[0, 0]).unwrap() - want0).abs() < 1e-12);
        let (rm, rv) = bn.running_stats().unwrap();
        // r = 0.9·init + 0.1·batch; init mean 0, var 1
        assert!((rm.to_vec()[0] - 0.3).abs() < 1e-12 && (rm.to_vec()[1] - 0.2).abs() < 1e-12);
        assert!((rv.to_vec()[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-12);
        assert!((rv.to_vec()[1] - (0.9 + 0.1 * 16.0 / 3.0)).abs() < 1e-12);
        let names: Vec<_> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["running_mean", "running_var", "num_batches_tracked"]
        );
        assert_eq!(bn.named_buffers()[2].1.value().to_vec(), [1.0]);
        // eval uses the running statistics and does not update them
        bn.eval();
        let y = bn.forward(&Ctx::new(&tape), x).unwrap().value();
        let want = (1.0 - 0.3) / (0.9f64 + 0.1 * 14.0 / 3.0 + 1e-5).sqrt();
        assert!((y.at(&[0, 0]).unwrap() - want).abs() < 1e-12);
        assert_eq!(bn.running_stats().unwrap().0, rm);
        // a batch of one cannot be normalised in training mode
        bn.train();
        let one = tape.constant(Tensor::ones([1, 2]).unwrap());
        assert!(matches!(
            bn.forward(&Ctx::new(&tape), one),
            Err(Error::InputShape { .. })
        ));
        let wrong = tape.constant(Tensor::ones([4, 3]).unwrap());
        assert!(matches!(
            bn.forward(&Ctx::new(&tape), wrong),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn layernorm_gradchecks_and_normalises_the_trailing_axes() {
        let mut rng = StdRng::seed_from_u64(10);
        let ln = LayerNorm::<f64>::new(&[2, 3]).unwrap();
        ln.weight()
            .unwrap()
            .set_value(Tensor::uniform([2, 3], 0.5, 1.5, &mut rng).unwrap())
            .unwrap();
        ln.bias()
            .unwrap()
            .set_value(Tensor::randn([2, 3], &mut rng).unwrap())
            .unwrap();
        gradcheck_module(
            &ln,
            &[Tensor::randn([4, 2, 3], &mut rng).unwrap()],
            |v| v[0],
            &GradcheckOptions::default(),
        )
        .unwrap();
        let plain = LayerNorm::<f64>::with_options(&[3], 1e-5, false).unwrap();
        let tape = Tape::new();
        let y = plain
            .forward(
                &Ctx::new(&tape),
                tape.constant(Tensor::from_vec(vec![1., 2., 3.], [1, 3]).unwrap()),
            )
            .unwrap()
            .value()
            .to_vec();
        // mean 2, biased var 2/3
        let s = (2.0f64 / 3.0 + 1e-5).sqrt();
        assert!((y[0] + 1.0 / s).abs() < 1e-12 && y[1].abs() < 1e-12);
        let bad = tape.constant(Tensor::ones([2, 4]).unwrap());
        assert!(matches!(
            plain.forward(&Ctx::new(&tape), bad),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn norms_gradgradcheck_and_layer_norm_can_drop_its_bias() {
        let mut rng = StdRng::seed_from_u64(15);
        let o = GradcheckOptions::default();
        let bn = BatchNorm1d::<f64>::new(2).unwrap();
        randomise_affine(&bn, &mut rng);
        let x = Tensor::randn([3, 2], &mut rng).unwrap();
        gradgradcheck_module(&bn, std::slice::from_ref(&x), |v| v[0], &o).unwrap();
        bn.eval();
        gradgradcheck_module(&bn, &[x], |v| v[0].square(), &o).unwrap();
        let bn2 = BatchNorm2d::<f64>::new(2).unwrap();
        randomise_affine(&bn2, &mut rng);
        let x = Tensor::randn([2, 2, 2, 2], &mut rng).unwrap();
        gradgradcheck_module(&bn2, std::slice::from_ref(&x), |v| v[0], &o).unwrap();
        bn2.eval();
        gradgradcheck_module(&bn2, &[x], |v| v[0].square(), &o).unwrap();
        let ln: LayerNorm<f64> = LayerNormConfig {
            bias: false,
            ..LayerNormConfig::new(&[2, 2])
        }
        .init()
        .unwrap();
        let names: Vec<_> = ln.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight"]);
        let x = Tensor::randn([2, 2, 2], &mut rng).unwrap();
        gradgradcheck_module(&ln, &[x], |v| v[0], &o).unwrap();
    }
}
