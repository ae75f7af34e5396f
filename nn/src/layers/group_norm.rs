//! [`GroupNorm`]: normalisation over groups of channels (Wu & He 2018), as
//! `nn.GroupNorm`.

use autograd::{Float, Param, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward};
use crate::Module;

/// `nn.GroupNorm(num_groups, num_channels)`: the channels (dim 1) of each sample split
/// into `num_groups` contiguous groups, each normalised over its channels and all
/// positions, `(x - mean)/√(var + eps)` with the biased variance, then scaled and shifted
/// per channel (`weight`, `bias`: `[C]`). The same in training and evaluation; unlike
/// batch norm it does not depend on the batch.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Ctx, GroupNorm};
/// let gn = GroupNorm::<f64>::new(2, 4)?;
/// let tape = Tape::new();
/// let y = Ctx::new(&tape).call(&gn, tape.constant(Tensor::from_fn([1, 4, 3], |i| i as f64)?))?;
/// // each group (6 values) now sums (so averages) to 0
/// let m = y.value().reshape([2, 6])?.sum_axes(&[1], false)?;
/// assert!(m.as_slice().iter().all(|v| v.abs() < 1e-12));
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct GroupNorm<T: Float> {
    weight: Option<Param<T>>,
    bias: Option<Param<T>>,
    num_groups: usize,
    num_channels: usize,
    eps: f64,
}

impl<T: Float> GroupNorm<T> {
    /// `num_channels` channels in `num_groups` groups, eps 1e-5, affine (γ = 1, β = 0).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes or channels not divisible by the groups.
    #[track_caller]
    pub fn new(num_groups: usize, num_channels: usize) -> Result<Self> {
        Self::with_options(num_groups, num_channels, 1e-5, true)
    }

    /// With explicit `eps` and `affine`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes, channels not divisible by the groups, or
    /// `eps < 0`.
    #[track_caller]
    pub fn with_options(
        num_groups: usize,
        num_channels: usize,
        eps: f64,
        affine: bool,
    ) -> Result<Self> {
        if num_groups == 0
            || num_channels == 0
            || !num_channels.is_multiple_of(num_groups)
            || eps.is_nan()
            || eps < 0.0
        {
            return Err(Error::config(
                "GroupNorm",
                format!(
                    "need {num_channels} channels divisible into {num_groups} groups (both positive) and eps >= 0, got eps {eps}"
                ),
            ));
        }
        Ok(GroupNorm {
            weight: affine
                .then(|| Tensor::ones([num_channels]).map(|t| Param::named("weight", t)))
                .transpose()?,
            bias: affine
                .then(|| Tensor::zeros([num_channels]).map(|t| Param::named("bias", t)))
                .transpose()?,
            num_groups,
            num_channels,
            eps,
        })
    }

    /// The per-channel scale γ, if affine.
    pub fn weight(&self) -> Option<&Param<T>> {
        self.weight.as_ref()
    }

    /// The per-channel shift β, if affine.
    pub fn bias(&self) -> Option<&Param<T>> {
        self.bias.as_ref()
    }
}

impl<T: Float> Forward<T> for GroupNorm<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        if s.rank() < 2 || s[1] != self.num_channels || s.contains(&0) {
            return Err(Error::input(
                "GroupNorm",
                format!(
                    "[N, {}, *] with no zero-length dimension",
                    self.num_channels
                ),
                s,
            ));
        }
        let w = self.weight.as_ref().map(|w| cx.param(w));
        let b = self.bias.as_ref().map(|b| cx.param(b));
        Ok(x.group_norm(self.num_groups, w, b, self.eps)?)
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
    fn group_norm_gradchecks_in_input_weight_and_bias() {
        let mut rng = StdRng::seed_from_u64(11);
        let gn = GroupNorm::<f64>::new(2, 4).unwrap();
        gn.weight()
            .unwrap()
            .set_value(Tensor::uniform([4], 0.5, 1.5, &mut rng).unwrap())
            .unwrap();
        gn.bias()
            .unwrap()
            .set_value(Tensor::randn([4], &mut rng).unwrap())
            .unwrap();
        let o = GradcheckOptions::default();
        gradcheck_module(
            &gn,
            &[Tensor::randn([2, 4, 3], &mut rng).unwrap()],
            |v| v[0],
            &o,
        )
        .unwrap();
        let plain = GroupNorm::<f64>::with_options(3, 3, 1e-5, false).unwrap();
        assert!(plain.named_parameters().is_empty());
        gradcheck_module(
            &plain,
            &[Tensor::randn([2, 3, 2, 2], &mut rng).unwrap()],
            |v| v[0],
            &o,
        )
        .unwrap();
    }

    #[test]
    fn group_norm_rejects_bad_configs_and_inputs() {
        assert!(GroupNorm::<f32>::new(3, 4).is_err());
        assert!(GroupNorm::<f32>::new(0, 4).is_err());
        let gn = GroupNorm::<f32>::new(2, 4).unwrap();
        let tape = Tape::new();
        for shape in [vec![2, 3, 5], vec![4], vec![2, 4, 0]] {
            let x = tape.constant(Tensor::zeros(shape).unwrap());
            assert!(matches!(
                gn.forward(&Ctx::new(&tape), x),
                Err(Error::InputShape {
                    layer: "GroupNorm",
                    ..
                })
            ));
        }
    }

    #[test]
    fn group_norm_gradgradchecks() {
        let mut rng = StdRng::seed_from_u64(13);
        let gn = GroupNorm::<f64>::new(2, 4).unwrap();
        gn.bias()
            .unwrap()
            .set_value(Tensor::randn([4], &mut rng).unwrap())
            .unwrap();
        let x = Tensor::randn([1, 4, 2], &mut rng).unwrap();
        gradgradcheck_module(&gn, &[x], |v| v[0], &GradcheckOptions::default()).unwrap();
    }
}
