//! [`RmsNorm`]: root-mean-square normalisation (Zhang & Sennrich 2019), as `nn.RMSNorm`.

use autograd::{Float, Param, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward};
use crate::Module;

/// `nn.RMSNorm(normalized_shape)`: `y = x / √(mean(x²) + eps) · weight` over the trailing
/// `normalized_shape` dimensions, with no mean subtracted and no bias. `eps = None` uses
/// the machine epsilon of the element type, as PyTorch's default
/// (`torch.finfo(x.dtype).eps`).
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Ctx, RmsNorm};
/// let norm = RmsNorm::<f64>::with_options(&[2], Some(0.0), true)?;
/// let tape = Tape::new();
/// let y = Ctx::new(&tape).call(&norm, tape.constant(Tensor::from_vec(vec![3.0, 4.0], [1, 2])?))?;
/// // rms = √((9 + 16)/2)
/// let r = 12.5f64.sqrt();
/// assert_eq!(y.value().to_vec(), [3.0 / r, 4.0 / r]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct RmsNorm<T: Float> {
    weight: Option<Param<T>>,
    normalized_shape: Vec<usize>,
    eps: Option<f64>,
}

impl<T: Float> RmsNorm<T> {
    /// Normalises over trailing axes `normalized_shape`, default eps, with `weight = 1`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty or zero-sized shape.
    #[track_caller]
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        Self::with_options(normalized_shape, None, true)
    }

    /// With explicit `eps` (`None`: the element type's machine epsilon) and
    /// `elementwise_affine`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty or zero-sized shape or a negative or NaN eps.
    #[track_caller]
    pub fn with_options(
        normalized_shape: &[usize],
        eps: Option<f64>,
        elementwise_affine: bool,
    ) -> Result<Self> {
        if normalized_shape.is_empty()
            || normalized_shape.contains(&0)
            || eps.is_some_and(|e| e.is_nan() || e < 0.0)
        {
            return Err(Error::config(
                "RmsNorm",
                format!(
                    "need a non-empty positive shape and eps >= 0, got {normalized_shape:?}, {eps:?}"
                ),
            ));
        }
        Ok(RmsNorm {
            weight: elementwise_affine
                .then(|| Tensor::ones(normalized_shape.to_vec()).map(|t| Param::named("weight", t)))
                .transpose()?,
            normalized_shape: normalized_shape.to_vec(),
            eps,
        })
    }

    /// The scale, if affine.
    pub fn weight(&self) -> Option<&Param<T>> {
        self.weight.as_ref()
    }
}

impl<T: Float> Forward<T> for RmsNorm<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        let k = self.normalized_shape.len();
        if s.rank() < k || s.dims()[s.rank() - k..] != self.normalized_shape[..] {
            return Err(Error::input(
                "RmsNorm",
                format!("[*, {:?}]", self.normalized_shape),
                s,
            ));
        }
        let eps = self.eps.unwrap_or_else(|| T::epsilon().as_f64());
        let w = self.weight.as_ref().map(|w| cx.param(w));
        Ok(x.rms_norm(k, w, eps)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{gradcheck_module, gradgradcheck_module};
    use autograd::{GradcheckOptions, Tape};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn rms_norm_gradchecks_over_one_and_two_trailing_axes() {
        let mut rng = StdRng::seed_from_u64(12);
        let o = GradcheckOptions::default();
        for shape in [vec![3], vec![2, 3]] {
            let norm = RmsNorm::<f64>::with_options(&shape, Some(1e-6), true).unwrap();
            norm.weight()
                .unwrap()
                .set_value(Tensor::uniform(shape.clone(), 0.5, 1.5, &mut rng).unwrap())
                .unwrap();
            let x = Tensor::randn([2, 2, 3], &mut rng).unwrap();
            gradcheck_module(&norm, &[x], |v| v[0], &o).unwrap();
        }
    }

    #[test]
    fn rms_norm_default_eps_is_the_machine_epsilon() {
        let norm = RmsNorm::<f32>::new(&[1]).unwrap();
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(&norm, tape.constant(Tensor::zeros([2, 1]).unwrap()))
            .unwrap();
        // 0/√(0 + eps) = 0: finite
        assert_eq!(y.value().to_vec(), [0.0, 0.0]);
        let tiny = tape.constant(Tensor::full([1, 1], f32::EPSILON.sqrt()).unwrap());
        let y = Ctx::new(&tape).call(&norm, tiny).unwrap().value().to_vec()[0];
        // x/√(x² + eps) with x² = eps: 1/√2
        assert!((y - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(RmsNorm::<f32>::new(&[]).is_err());
        let bad = tape.constant(Tensor::zeros([2, 3]).unwrap());
        assert!(matches!(
            Ctx::new(&tape).call(&norm, bad),
            Err(Error::Module(_))
        ));
    }

    #[test]
    fn rms_norm_gradgradchecks() {
        let mut rng = StdRng::seed_from_u64(14);
        let norm = RmsNorm::<f64>::with_options(&[3], Some(1e-6), true).unwrap();
        let x = Tensor::randn([2, 3], &mut rng).unwrap();
        gradgradcheck_module(&norm, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
    }
}
