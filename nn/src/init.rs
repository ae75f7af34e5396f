//! Weight initialisers with `torch.nn.init`'s exact formulas.
//!
//! Each initialiser is a function returning a fresh tensor from an explicit seeded RNG,
//! and a variant of [`Init`], the value layer constructors take. Fans follow PyTorch's
//! `_calculate_fan_in_and_fan_out`: for a weight `[out, in, k1, k2, ..]`,
//! `fan_in = in · k1·k2·…` and `fan_out = out · k1·k2·…` (the receptive field multiplies
//! both), so linear `[out, in]` and conv `[C_out, C_in/groups, kH, kW]` weights share one
//! rule. See <https://github.com/pytorch/pytorch/blob/main/torch/nn/init.py>.
//!
//! | function | distribution |
//! | --- | --- |
//! | [`constant`], [`zeros`], [`ones`] | a fixed value |
//! | [`normal`] | `N(mean, std²)` |
//! | [`uniform`] | `U(a, b)` |
//! | [`xavier_uniform`] | `U(-√3σ, √3σ)`, `σ = gain·√(2/(fan_in + fan_out))` |
//! | [`xavier_normal`] | `N(0, σ²)`, same `σ` |
//! | [`kaiming_uniform`] | `U(-√3σ, √3σ)`, `σ = calculate_gain(nonlinearity)/√fan` |
//! | [`kaiming_normal`] | `N(0, σ²)`, same `σ` |
//! | [`lecun_normal`] | `N(0, 1/fan_in)` |
//! | [`orthogonal`] | `gain · Q`, `Q` from the QR of a Gaussian matrix, sign-fixed |
//!
//! Gains come from the activation itself: `calculate_gain` and the Kaiming initialisers
//! take the activation module (`&Relu`, `&LeakyRelu { negative_slope: 0.2 }`, `&Tanh`,
//! `&Identity` for PyTorch's `"linear"`), whose [`Activation`] descriptor knows its gain.
//!
//! ```
//! use nn::init::{self, FanMode};
//! use nn::{Relu, Tanh};
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let w = init::kaiming_normal::<f32>([256, 128], FanMode::FanIn, &Relu, &mut rng)?;
//! assert_eq!(w.dims(), &[256, 128]);
//! assert_eq!(init::calculate_gain(&Tanh)?, 5.0 / 3.0);
//! # Ok::<(), nn::Error>(())
//! ```

use std::panic::Location;

use autograd::{Float, Shape, Tensor};
use rand::Rng;

use crate::activation::{Activation, Identity, LeakyRelu, Relu};
use crate::error::{Error, Result};

#[track_caller]
fn init_error(init: &'static str, reason: String, shape: Shape) -> Error {
    Error::Init {
        init,
        reason,
        shape,
        location: Location::caller(),
    }
}

/// Which fan scales the variance: `FanIn` preserves the forward activations' variance,
/// `FanOut` the backward gradients'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// The number of inputs of each unit.
    FanIn,
    /// The number of outputs of each unit.
    FanOut,
}

/// The recommended gain for a nonlinearity, as `torch.nn.init.calculate_gain`: read
/// from the activation's [`Activation`] descriptor (`&Identity` is PyTorch's `"linear"`,
/// also used for convolutions; `&LeakyRelu { negative_slope: a }` is
/// `("leaky_relu", a)`).
///
/// # Errors
/// [`Error::InvalidConfig`] for an activation PyTorch defines no gain for (GELU, ELU,
/// ...), as PyTorch raises.
#[track_caller]
pub fn calculate_gain(nonlinearity: &dyn Activation) -> Result<f64> {
    nonlinearity.gain().ok_or_else(|| {
        Error::config(
            "calculate_gain",
            format!(
                "PyTorch defines no gain for {} (it has gains for linear, sigmoid, tanh, relu, leaky_relu, selu)",
                nonlinearity.name()
            ),
        )
    })
}

/// `(fan_in, fan_out)` of a weight of `shape`, as PyTorch's
/// `_calculate_fan_in_and_fan_out`.
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions, or fans that overflow `usize`.
#[track_caller]
pub fn fans(shape: &Shape) -> Result<(usize, usize)> {
    let d = shape.dims();
    if d.len() < 2 {
        return Err(init_error(
            "fans",
            "fan in and fan out need a tensor with at least 2 dimensions".into(),
            shape.clone(),
        ));
    }
    let fans = d[2..]
        .iter()
        .try_fold(1usize, |acc, &k| acc.checked_mul(k))
        .and_then(|r| Some((d[1].checked_mul(r)?, d[0].checked_mul(r)?)));
    fans.ok_or_else(|| init_error("fans", "the fans overflow usize".into(), shape.clone()))
}

#[track_caller]
fn fan(shape: &Shape, mode: FanMode) -> Result<usize> {
    let (i, o) = fans(shape)?;
    Ok(match mode {
        FanMode::FanIn => i,
        FanMode::FanOut => o,
    })
}

#[track_caller]
fn nonzero_fan(init: &'static str, shape: &Shape, n: usize) -> Result<f64> {
    if n == 0 {
        return Err(init_error(
            init,
            "the fan is zero, so the scale is undefined".into(),
            shape.clone(),
        ));
    }
    Ok(n as f64)
}

#[track_caller]
fn check_finite(init: &'static str, shape: &Shape, vals: &[(&str, f64)]) -> Result<()> {
    if let Some((name, v)) = vals.iter().find(|(_, v)| !v.is_finite()) {
        return Err(init_error(
            init,
            format!("{name} must be finite, got {v}"),
            shape.clone(),
        ));
    }
    Ok(())
}

/// Every element equal to `value`.
///
/// # Errors
/// [`Error::Init`] for a non-finite `value`, as every other initialiser rejects one;
/// [`Error::Autograd`] (`TooLarge`) for a shape no tensor can have.
#[track_caller]
pub fn constant<T: Float>(shape: impl Into<Shape>, value: f64) -> Result<Tensor<T>> {
    let shape = shape.into();
    check_finite("constant", &shape, &[("value", value)])?;
    Ok(Tensor::full(shape, T::of(value))?)
}

/// Zeros.
///
/// # Errors
/// [`Error::Autograd`] (`TooLarge`) for a shape no tensor can have.
#[track_caller]
pub fn zeros<T: Float>(shape: impl Into<Shape>) -> Result<Tensor<T>> {
    Ok(Tensor::zeros(shape)?)
}

/// Ones.
///
/// # Errors
/// [`Error::Autograd`] (`TooLarge`) for a shape no tensor can have.
#[track_caller]
pub fn ones<T: Float>(shape: impl Into<Shape>) -> Result<Tensor<T>> {
    Ok(Tensor::ones(shape)?)
}

/// Samples of `N(mean, std²)`.
///
/// # Errors
/// [`Error::Init`] for a negative or non-finite `std` or a non-finite `mean`.
#[track_caller]
pub fn normal<T: Float>(
    shape: impl Into<Shape>,
    mean: f64,
    std: f64,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    check_finite("normal", &shape, &[("mean", mean), ("std", std)])?;
    if std < 0.0 {
        return Err(init_error(
            "normal",
            format!("std must be non-negative, got {std}"),
            shape,
        ));
    }
    let z = Tensor::<f64>::randn(shape, rng)?;
    Ok(z.map(|v| mean + std * v).cast())
}

/// Samples of `U(a, b)`.
///
/// # Errors
/// [`Error::Init`] when `a > b` or a bound is not finite.
#[track_caller]
pub fn uniform<T: Float>(
    shape: impl Into<Shape>,
    a: f64,
    b: f64,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    check_finite("uniform", &shape, &[("a", a), ("b", b)])?;
    if a > b {
        return Err(init_error(
            "uniform",
            format!("lower bound {a} exceeds upper bound {b}"),
            shape,
        ));
    }
    Ok(Tensor::<f64>::uniform(shape, a, b, rng)?.cast())
}

/// Glorot & Bengio (2010) uniform: `U(-√3σ, √3σ)` with
/// `σ = gain·√(2/(fan_in + fan_out))` (`torch.nn.init.xavier_uniform_`).
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions or zero fans.
#[track_caller]
pub fn xavier_uniform<T: Float>(
    shape: impl Into<Shape>,
    gain: f64,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    let std = xavier_std("xavier_uniform", &shape, gain)?;
    let bound = 3f64.sqrt() * std;
    uniform(shape, -bound, bound, rng)
}

/// Glorot & Bengio (2010) normal: `N(0, σ²)` with `σ = gain·√(2/(fan_in + fan_out))`
/// (`torch.nn.init.xavier_normal_`).
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions or zero fans.
#[track_caller]
pub fn xavier_normal<T: Float>(
    shape: impl Into<Shape>,
    gain: f64,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    let std = xavier_std("xavier_normal", &shape, gain)?;
    normal(shape, 0.0, std, rng)
}

#[track_caller]
fn xavier_std(init: &'static str, shape: &Shape, gain: f64) -> Result<f64> {
    let (i, o) = fans(shape)?;
    let n = nonzero_fan(init, shape, i + o)?;
    check_finite(init, shape, &[("gain", gain)])?;
    Ok(gain * (2.0 / n).sqrt())
}

/// He et al. (2015) uniform: `U(-√3σ, √3σ)` with `σ = calculate_gain(nonlinearity)/√fan`
/// (`torch.nn.init.kaiming_uniform_`; PyTorch's `a` is the slope of
/// `&LeakyRelu { negative_slope: a }`, and its default `nonlinearity="leaky_relu", a=0` is
/// `&Relu`'s gain).
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions or a zero fan; [`Error::InvalidConfig`]
/// for an activation without a gain.
#[track_caller]
pub fn kaiming_uniform<T: Float>(
    shape: impl Into<Shape>,
    mode: FanMode,
    nonlinearity: &dyn Activation,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    let std = kaiming_std("kaiming_uniform", &shape, mode, nonlinearity)?;
    let bound = 3f64.sqrt() * std;
    uniform(shape, -bound, bound, rng)
}

/// He et al. (2015) normal: `N(0, σ²)` with `σ = calculate_gain(nonlinearity)/√fan`
/// (`torch.nn.init.kaiming_normal_`).
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions or a zero fan; [`Error::InvalidConfig`]
/// for an activation without a gain.
#[track_caller]
pub fn kaiming_normal<T: Float>(
    shape: impl Into<Shape>,
    mode: FanMode,
    nonlinearity: &dyn Activation,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    let std = kaiming_std("kaiming_normal", &shape, mode, nonlinearity)?;
    normal(shape, 0.0, std, rng)
}

#[track_caller]
fn kaiming_std(
    init: &'static str,
    shape: &Shape,
    mode: FanMode,
    nonlinearity: &dyn Activation,
) -> Result<f64> {
    let n = nonzero_fan(init, shape, fan(shape, mode)?)?;
    let gain = calculate_gain(nonlinearity)?;
    check_finite(init, shape, &[("gain", gain)])?;
    Ok(gain / n.sqrt())
}

/// LeCun normal: `N(0, 1/fan_in)`, the initialisation SELU networks assume (Klambauer et
/// al. 2017). PyTorch has no function of this name; it equals
/// `kaiming_normal_(w, mode="fan_in", nonlinearity="linear")`, which the SELU docs
/// recommend. (JAX's `lecun_normal` truncates the normal; this does not.)
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions or a zero fan.
#[track_caller]
pub fn lecun_normal<T: Float>(shape: impl Into<Shape>, rng: &mut impl Rng) -> Result<Tensor<T>> {
    let shape = shape.into();
    let std = kaiming_std("lecun_normal", &shape, FanMode::FanIn, &Identity)?;
    normal(shape, 0.0, std, rng)
}

/// Saxe et al. (2013) orthogonal: the weight viewed as `rows × (numel/rows)` has
/// orthonormal rows (or columns, whichever are fewer), times `gain`
/// (`torch.nn.init.orthogonal_`). Like PyTorch it takes the QR decomposition of a Gaussian
/// matrix and fixes the signs so `R` has a positive diagonal — which makes `Q` unique, so
/// modified Gram–Schmidt (used here) yields the same `Q` as PyTorch's Householder QR.
///
/// # Errors
/// [`Error::Init`] for fewer than 2 dimensions or an empty tensor.
#[track_caller]
pub fn orthogonal<T: Float>(
    shape: impl Into<Shape>,
    gain: f64,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let shape = shape.into();
    if shape.rank() < 2 || shape.numel() == 0 {
        return Err(init_error(
            "orthogonal",
            "only tensors with 2 or more dimensions and at least one element are supported".into(),
            shape,
        ));
    }
    check_finite("orthogonal", &shape, &[("gain", gain)])?;
    let rows = shape[0];
    let cols = shape.numel() / rows;
    let flat = Tensor::<f64>::randn([rows, cols], rng)?.to_vec();
    // Work on a tall m × n matrix (m >= n), column by column.
    let (m, n) = if rows < cols {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut a: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            (0..m)
                .map(|i| {
                    if rows < cols {
                        flat[j * cols + i] // transposed: column j is row j of flat
                    } else {
                        flat[i * cols + j]
                    }
                })
                .collect()
        })
        .collect();
    for j in 0..n {
        let (done, rest) = a.split_at_mut(j);
        let col = &mut rest[0];
        for q in done.iter() {
            let r: f64 = q.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
            col.iter_mut().zip(q).for_each(|(c, q)| *c -= r * q);
        }
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm <= f64::EPSILON {
            // A Gaussian matrix is rank-deficient with probability zero.
            return Err(init_error(
                "orthogonal",
                "the random matrix was numerically rank-deficient".into(),
                shape,
            ));
        }
        col.iter_mut().for_each(|v| *v /= norm);
    }
    let out = Tensor::from_fn(shape, |k| {
        let (i, j) = (k / cols, k % cols);
        // Q is m × n stored by columns; undo the transpose for wide matrices.
        let v = if rows < cols { a[i][j] } else { a[j][i] };
        T::of(gain * v)
    })?;
    Ok(out)
}

/// An initialiser as a value, for layer constructors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every element equal to the value.
    Constant(f64),
    /// Zeros.
    Zeros,
    /// Ones.
    Ones,
    /// `N(mean, std²)`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// `U(a, b)`.
    Uniform {
        /// Lower bound.
        a: f64,
        /// Upper bound.
        b: f64,
    },
    /// [`xavier_uniform`].
    XavierUniform {
        /// Gain (see [`calculate_gain`]).
        gain: f64,
    },
    /// [`xavier_normal`].
    XavierNormal {
        /// Gain (see [`calculate_gain`]).
        gain: f64,
    },
    /// [`kaiming_uniform`].
    KaimingUniform {
        /// Fan mode.
        mode: FanMode,
        /// The activation the gain is computed for (`&Relu`,
        /// `&LeakyRelu { negative_slope: 0.2 }`).
        nonlinearity: &'static dyn Activation,
    },
    /// [`kaiming_normal`].
    KaimingNormal {
        /// Fan mode.
        mode: FanMode,
        /// The activation the gain is computed for.
        nonlinearity: &'static dyn Activation,
    },
    /// [`lecun_normal`].
    LecunNormal,
    /// [`orthogonal`].
    Orthogonal {
        /// Gain.
        gain: f64,
    },
}

impl Init {
    /// PyTorch's default for `Linear` and `Conv2d` weights:
    /// `kaiming_uniform_(w, a=√5)`, i.e. `U(-1/√fan_in, 1/√fan_in)`.
    pub const TORCH_LAYER_DEFAULT: Init = Init::KaimingUniform {
        mode: FanMode::FanIn,
        nonlinearity: &LeakyRelu {
            negative_slope: 2.236_067_977_499_79,
        },
    };

    /// He initialisation for ReLU networks: `N(0, 2/fan_in)`.
    pub const HE_NORMAL: Init = Init::KaimingNormal {
        mode: FanMode::FanIn,
        nonlinearity: &Relu,
    };

    /// A fresh tensor of `shape` drawn from this initialiser.
    ///
    /// # Errors
    /// [`Error::Init`] as the underlying function.
    #[track_caller]
    pub fn tensor<T: Float>(
        &self,
        shape: impl Into<Shape>,
        rng: &mut impl Rng,
    ) -> Result<Tensor<T>> {
        let shape = shape.into();
        match *self {
            Init::Constant(v) => constant(shape, v),
            Init::Zeros => zeros(shape),
            Init::Ones => ones(shape),
            Init::Normal { mean, std } => normal(shape, mean, std, rng),
            Init::Uniform { a, b } => uniform(shape, a, b, rng),
            Init::XavierUniform { gain } => xavier_uniform(shape, gain, rng),
            Init::XavierNormal { gain } => xavier_normal(shape, gain, rng),
            Init::KaimingUniform { mode, nonlinearity } => {
                kaiming_uniform(shape, mode, nonlinearity, rng)
            }
            Init::KaimingNormal { mode, nonlinearity } => {
                kaiming_normal(shape, mode, nonlinearity, rng)
            }
            Init::LecunNormal => lecun_normal(shape, rng),
            Init::Orthogonal { gain } => orthogonal(shape, gain, rng),
        }
    }
}

/// PyTorch's default bias of a layer whose weight has `fan_in` inputs:
/// `U(-1/√fan_in, 1/√fan_in)` (zero when `fan_in = 0`).
#[track_caller]
pub(crate) fn torch_default_bias<T: Float>(
    n: usize,
    fan_in: usize,
    rng: &mut impl Rng,
) -> Result<Tensor<T>> {
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    uniform([n], -bound, bound, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    fn mean_std(t: &Tensor<f64>) -> (f64, f64) {
        let v = t.as_slice();
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt())
    }

    /// Empirical std of a 512 × 512 draw within 3 % of the formula. With 262 144 samples the
    /// sample std's relative standard error is about 1/√(2n) ≈ 0.14 %, so 3 % is > 20 σ.
    fn assert_std(t: &Tensor<f64>, expected: f64) {
        let (m, s) = mean_std(t);
        assert!((s / expected - 1.0).abs() < 0.03, "std {s} vs {expected}");
        // the mean's standard error is σ/512, so 0.1σ is a 50-σ bound
        assert!(m.abs() < 0.1 * expected, "mean {m}");
    }

    const S: [usize; 2] = [512, 512];

    #[test]
    fn gains_match_torch_calculate_gain() {
        use crate::activation::{Gelu, Selu, Sigmoid, Tanh};
        // torch.nn.init.calculate_gain: linear 1, sigmoid 1, tanh 5/3, relu √2, selu 3/4,
        // leaky_relu √(2/(1 + a²)) with a = 0.01 by default
        assert_eq!(calculate_gain(&Identity).unwrap(), 1.0);
        assert_eq!(calculate_gain(&Sigmoid).unwrap(), 1.0);
        assert_eq!(calculate_gain(&Tanh).unwrap(), 5.0 / 3.0);
        assert_eq!(calculate_gain(&Relu).unwrap(), 2f64.sqrt());
        assert_eq!(calculate_gain(&Selu).unwrap(), 0.75);
        let lr = calculate_gain(&LeakyRelu::default()).unwrap();
        assert!((lr - (2.0 / (1.0 + 0.01f64 * 0.01)).sqrt()).abs() < 1e-15);
        let lr5 = calculate_gain(&LeakyRelu {
            negative_slope: 5f64.sqrt(),
        })
        .unwrap();
        assert!((lr5 - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
        // PyTorch raises "Unsupported nonlinearity gelu"
        let e = calculate_gain(&Gelu::default()).unwrap_err();
        assert!(e.to_string().contains("no gain for Gelu"), "{e}");
    }

    #[test]
    fn fans_use_the_receptive_field_like_torch() {
        // Linear [out, in]
        assert_eq!(fans(&Shape::from([10, 3])).unwrap(), (3, 10));
        // Conv2d [C_out, C_in/groups, kH, kW] = [16, 3, 5, 5]: fan_in = 3·25, fan_out = 16·25
        assert_eq!(fans(&Shape::from([16, 3, 5, 5])).unwrap(), (75, 400));
        // Conv1d [8, 4, 3]
        assert_eq!(fans(&Shape::from([8, 4, 3])).unwrap(), (12, 24));
        assert!(matches!(fans(&Shape::from([5])), Err(Error::Init { .. })));
    }

    #[test]
    fn normal_and_uniform_have_their_stated_moments() {
        assert_std(&normal(S, 0.0, 0.02, &mut rng()).unwrap(), 0.02);
        // U(a, b) has std (b - a)/√12
        assert_std(
            &uniform(S, -0.3, 0.3, &mut rng()).unwrap(),
            0.6 / 12f64.sqrt(),
        );
        let u: Tensor<f64> = uniform(S, -0.3, 0.3, &mut rng()).unwrap();
        assert!(u.as_slice().iter().all(|v| (-0.3..0.3).contains(v)));
        assert!(uniform::<f64>([2], 1.0, 0.0, &mut rng()).is_err());
        assert!(normal::<f64>([2], 0.0, -1.0, &mut rng()).is_err());
    }

    #[test]
    fn xavier_std_is_gain_times_root_two_over_fan_sum() {
        let want = 1.5 * (2.0 / 1024f64).sqrt();
        assert_std(&xavier_normal(S, 1.5, &mut rng()).unwrap(), want);
        assert_std(&xavier_uniform(S, 1.5, &mut rng()).unwrap(), want);
        let u: Tensor<f64> = xavier_uniform(S, 1.5, &mut rng()).unwrap();
        let bound = 3f64.sqrt() * want;
        assert!(u.as_slice().iter().all(|v| v.abs() <= bound));
    }

    #[test]
    fn kaiming_std_is_gain_over_root_fan() {
        let relu = 2f64.sqrt() / 512f64.sqrt();
        let w = kaiming_normal(S, FanMode::FanIn, &Relu, &mut rng()).unwrap();
        assert_std(&w, relu);
        let w = kaiming_uniform(S, FanMode::FanOut, &Relu, &mut rng()).unwrap();
        assert_std(&w, relu);
        // torch's Linear default, a = √5: gain √(1/3), so the bound is 1/√fan_in
        let w: Tensor<f64> = Init::TORCH_LAYER_DEFAULT.tensor(S, &mut rng()).unwrap();
        assert_std(&w, 1.0 / 512f64.sqrt() / 3f64.sqrt());
        assert!(w.as_slice().iter().all(|v| v.abs() <= 1.0 / 512f64.sqrt()));
        // a conv-shaped [64, 8, 8, 64] weight: receptive field 8·64, fan_out = 64·512
        let w = kaiming_normal(
            [64, 8, 8, 64],
            FanMode::FanOut,
            &crate::activation::Tanh,
            &mut rng(),
        )
        .unwrap();
        assert_std(&w, 5.0 / 3.0 / (64.0f64 * 512.0).sqrt());
    }

    #[test]
    fn lecun_normal_std_is_root_one_over_fan_in() {
        assert_std(&lecun_normal(S, &mut rng()).unwrap(), 1.0 / 512f64.sqrt());
    }

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal() {
        for (r, c) in [(6, 4), (4, 6), (5, 5)] {
            let w: Tensor<f64> = orthogonal([r, c], 2.0, &mut rng()).unwrap();
            // W Wᵀ = 4 I for wide, Wᵀ W = 4 I for tall matrices
            let g = if r <= c {
                w.matmul_t(&w, false, true).unwrap()
            } else {
                w.matmul_t(&w, true, false).unwrap()
            };
            let k = r.min(c);
            for i in 0..k {
                for j in 0..k {
                    let want = if i == j { 4.0 } else { 0.0 };
                    assert!((g.at(&[i, j]).unwrap() - want).abs() < 1e-12);
                }
            }
        }
        // conv weights are flattened to rows × (numel/rows)
        let w: Tensor<f64> = orthogonal([3, 2, 2, 2], 1.0, &mut rng()).unwrap();
        assert_eq!(w.dims(), &[3, 2, 2, 2]);
        assert!(orthogonal::<f64>([3], 1.0, &mut rng()).is_err());
    }

    #[test]
    fn init_fails_on_vectors_with_a_named_error() {
        let e = Init::XavierUniform { gain: 1.0 }
            .tensor::<f32>([7], &mut rng())
            .unwrap_err();
        assert!(e.to_string().contains("at least 2 dimensions"), "{e}");
    }

    #[test]
    fn constant_rejects_non_finite_values_like_every_initialiser() {
        let mut r = rng();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = Init::Constant(v).tensor::<f32>([2, 3], &mut r).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Init {
                        init: "constant",
                        ..
                    }
                ),
                "{e}"
            );
            assert!(constant::<f64>([4], v).is_err());
        }
        assert_eq!(constant::<f64>([2], 0.5).unwrap().to_vec(), vec![0.5, 0.5]);
    }
}
