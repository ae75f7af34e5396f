//! [`Dropout`]: inverted dropout with a seeded generator.

use autograd::{Float, Tensor, Var};
use rand::Rng;

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward, Generator, Mode};
use crate::Module;

/// Inverted dropout (Srivastava et al. 2014, as `F.dropout`): in training each element is
/// zeroed with probability `p` and the survivors are scaled by `1/(1 - p)`, so the
/// expected output equals the input and evaluation needs no rescaling. With
/// `training = false` it is the identity. `p = 1` zeroes everything.
///
/// # Errors
/// [`Error::InvalidConfig`] for `p` outside `[0, 1]`.
#[track_caller]
pub fn dropout<'t, T: Float>(
    x: Var<'t, T>,
    p: f64,
    training: bool,
    rng: &mut (impl Rng + ?Sized),
) -> Result<Var<'t, T>> {
    check_p(p)?;
    if !training || p == 0.0 {
        return Ok(x);
    }
    let mask = mask(x.shape(), p, rng)?;
    Ok(x.mul(x.tape().constant(mask))?)
}

/// `x` with dropout `p` drawn from `generator` (training mode): the mask is drawn inside
/// the generator's lock and applied outside it, so the op records the caller's line.
#[track_caller]
pub(crate) fn dropout_from<'t, T: Float>(
    x: Var<'t, T>,
    p: f64,
    generator: &Generator,
) -> Result<Var<'t, T>> {
    check_p(p)?;
    if p == 0.0 {
        return Ok(x);
    }
    let mask = generator.with_rng(|rng| mask(x.shape(), p, rng))?;
    Ok(x.mul(x.tape().constant(mask))?)
}

/// Keep-and-scale mask: `1/(1 - p)` with probability `1 - p`, else 0.
fn mask<T: Float, R: Rng + ?Sized>(
    shape: autograd::Shape,
    p: f64,
    rng: &mut R,
) -> Result<Tensor<T>> {
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    Ok(Tensor::from_fn(shape, |_| {
        if rng.random::<f64>() < p {
            T::zero()
        } else {
            T::of(scale)
        }
    })?)
}

#[track_caller]
fn check_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::config(
            "Dropout",
            format!("p must be in [0, 1], got {p}"),
        ));
    }
    Ok(())
}

/// `nn.Dropout(p)` with its own seeded [`Generator`]: the masks are reproducible from the
/// seed, and the generator's position is saved with the module state
/// ([`state::save`](crate::state::save), under the name `"<path>.generator"`), so a
/// resumed run draws the same masks bit for bit. Identity in evaluation mode.
#[derive(Debug, Module)]
pub struct Dropout {
    p: f64,
    generator: Generator,
    mode: Mode,
}

impl Dropout {
    /// Drops with probability `p`, drawing masks from a generator seeded with `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for `p` outside `[0, 1]`.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        check_p(p)?;
        Ok(Dropout {
            p,
            generator: Generator::new(seed),
            mode: Mode::new(),
        })
    }

    /// The generator the masks are drawn from.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<T: Float> Forward<T> for Dropout {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let training = self.mode.is_training();
        if !training || self.p == 0.0 {
            return Ok(x);
        }
        let mask = self
            .generator
            .with_rng(|rng| mask(x.shape(), self.p, rng))?;
        Ok(x.mul(x.tape().constant(mask))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{gradcheck, GradcheckOptions, Tape};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn dropout_zeroes_about_p_and_scales_survivors() {
        let d = Dropout::new(0.3, 7).unwrap();
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::ones([100, 100]).unwrap());
        let y = d.forward(&Ctx::new(&tape), x).unwrap().value();
        let zeros = y.as_slice().iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
        // Binomial(1e4, 0.3): std of the fraction is √(0.21/1e4) ≈ 0.0046; 0.03 is > 6σ.
        assert!((zeros - 0.3).abs() < 0.03, "{zeros}");
        assert!(y
            .as_slice()
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
        // seeded: the same seed gives the same mask
        let again = Dropout::new(0.3, 7)
            .unwrap()
            .forward(&Ctx::new(&tape), x)
            .unwrap()
            .value();
        assert_eq!(y, again);
        Module::<f64>::eval(&d);
        assert_eq!(d.forward(&Ctx::new(&tape), x).unwrap().value(), x.value());
        assert!(Dropout::new(1.5, 0).is_err());
        let all = dropout(x, 1.0, true, &mut StdRng::seed_from_u64(0)).unwrap();
        assert!(all.value().as_slice().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn dropout_gradchecks_in_training_mode_with_a_fixed_mask() {
        // Rebuild the layer from the same seed on every evaluation so finite differences
        // see the same mask.
        let x = Tensor::from_fn([3, 4], |i| i as f64 * 0.3 - 1.0).unwrap();
        gradcheck(
            |v| {
                let d = Dropout::new(0.4, 11).unwrap();
                let y = d
                    .forward(&Ctx::new(v[0].tape()), v[0])
                    .map_err(Error::into_autograd)?;
                Ok(y.square().sum())
            },
            std::slice::from_ref(&x),
            &GradcheckOptions::default(),
        )
        .unwrap();
        // gradcheck_module restores the generator before every evaluation, so the same
        // layer checks in training mode, and is left where it was
        let d = Dropout::new(0.4, 11).unwrap();
        let before = d.generator().state();
        crate::gradcheck_module(&d, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
        assert_eq!(d.generator().state(), before);
    }
}
