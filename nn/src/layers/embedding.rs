//! [`Embedding`]: a lookup table of learnt vectors.

use autograd::{Float, Param, Var};
use rand::Rng;

use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Ctx, Forward};
use crate::Module;

/// `nn.Embedding(num_embeddings, embedding_dim)`: row `i` of the weight for index `i`.
/// The gradient scatters back into the rows looked up (repeated indices add up).
///
/// With a padding index ([`with_padding_idx`](Embedding::with_padding_idx), PyTorch's
/// `padding_idx`), that row is returned like any other but never receives a gradient,
/// so it keeps whatever value it holds (zeros, unless loaded from elsewhere).
#[derive(Debug, Module)]
pub struct Embedding<T: Float> {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Param<T>,
    padding_idx: Option<usize>,
}

impl<T: Float> Embedding<T> {
    /// A table initialised `N(0, 1)`, PyTorch's default.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes.
    #[track_caller]
    pub fn new(num_embeddings: usize, embedding_dim: usize, rng: &mut impl Rng) -> Result<Self> {
        Self::with_init(
            num_embeddings,
            embedding_dim,
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
            rng,
        )
    }

    /// A table drawn from `init`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes; [`Error::Init`] from the initialiser.
    #[track_caller]
    pub fn with_init(
        num_embeddings: usize,
        embedding_dim: usize,
        init: Init,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if num_embeddings == 0 || embedding_dim == 0 {
            return Err(Error::config(
                "Embedding",
                format!("sizes must be positive, got {num_embeddings} × {embedding_dim}"),
            ));
        }
        let w = init.tensor([num_embeddings, embedding_dim], rng)?;
        Ok(Embedding {
            weight: Param::named("weight", w),
            padding_idx: None,
        })
    }

    /// Makes row `padding_idx` the padding row, as PyTorch's `padding_idx`: it is zeroed
    /// now, and no gradient ever reaches it.
    ///
    /// ```
    /// use autograd::Tape;
    /// use nn::{Ctx, Embedding};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let e = Embedding::<f64>::new(5, 2, &mut rng)?.with_padding_idx(0)?;
    /// let tape = Tape::new();
    /// let y = e.lookup(&Ctx::new(&tape), &[0, 3, 0])?;
    /// y.sum().backward()?;
    /// let g = e.weight.grad().unwrap();
    /// assert_eq!(g.to_vec()[..2], [0.0, 0.0]); // the padding row
    /// assert_eq!(g.to_vec()[6..8], [1.0, 1.0]); // row 3
    /// # Ok::<(), nn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `padding_idx` is not a row of the table.
    #[track_caller]
    pub fn with_padding_idx(mut self, padding_idx: usize) -> Result<Self> {
        let shape = self.weight.shape();
        if padding_idx >= shape[0] {
            return Err(Error::config(
                "Embedding",
                format!(
                    "padding_idx {padding_idx} is not a row of a table of {}",
                    shape[0]
                ),
            ));
        }
        let mut w = self.weight.value().to_vec();
        let d = shape[1];
        w[padding_idx * d..(padding_idx + 1) * d].fill(T::zero());
        self.weight
            .set_value(autograd::Tensor::from_vec(w, shape)?)?;
        self.padding_idx = Some(padding_idx);
        Ok(self)
    }

    /// The padding row, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    /// The vectors of `indices`, `[len, dim]`.
    ///
    /// # Errors
    /// [`Error::InputShape`] naming the first index out of range.
    #[track_caller]
    pub fn lookup<'t>(&self, cx: &Ctx<'t, T>, indices: &[usize]) -> Result<Var<'t, T>> {
        let n = self.weight.shape()[0];
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::input(
                "Embedding",
                format!("indices below {n}, but got index {bad}"),
                autograd::Shape::from([indices.len()]),
            ));
        }
        let rows = cx.param(&self.weight).index_select(0, indices)?;
        let Some(pad) = self.padding_idx else {
            return Ok(rows);
        };
        if !indices.contains(&pad) {
            return Ok(rows);
        }
        // The padding row's value goes through as a constant, so its gradient is zero
        // while the forward is unchanged.
        let is_pad = autograd::Tensor::from_fn([indices.len(), 1], |i| {
            if indices[i] == pad {
                T::one()
            } else {
                T::zero()
            }
        })?;
        let fixed = cx.tape().constant(rows.value());
        Ok(fixed.where_cond(&is_pad, rows)?)
    }
}

/// `x` holds indices (as floats, which must be whole numbers in range) of any shape; the
/// output has shape `x.shape + [dim]`. No gradient flows to `x`.
impl<T: Float> Forward<T> for Embedding<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let xv = x.value();
        let n = self.weight.shape()[0];
        let mut idx = Vec::with_capacity(xv.numel());
        for &v in xv.as_slice() {
            let f = v.as_f64();
            if f.fract() != 0.0 || f < 0.0 || f >= n as f64 {
                return Err(Error::input(
                    "Embedding",
                    format!("whole-number indices in [0, {n}), but got {f}"),
                    x.shape(),
                ));
            }
            idx.push(f as usize);
        }
        let rows = self.lookup(cx, &idx)?;
        let mut out = x.dims();
        out.push(self.weight.shape()[1]);
        Ok(rows.reshape(out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{gradcheck, GradcheckOptions, Tape, Tensor};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn embedding_looks_up_rows_and_scatters_gradients() {
        let e = Embedding::<f64>::new(4, 3, &mut StdRng::seed_from_u64(0)).unwrap();
        e.weight
            .set_value(Tensor::arange(12).unwrap().reshape([4, 3]).unwrap())
            .unwrap();
        let tape = Tape::new();
        let x = tape.constant(Tensor::from_vec(vec![2.0, 0.0, 2.0], [3]).unwrap());
        let y = e.forward(&Ctx::new(&tape), x).unwrap();
        assert_eq!(y.dims(), [3, 3]);
        assert_eq!(y.value().to_vec(), [6., 7., 8., 0., 1., 2., 6., 7., 8.]);
        y.sum().backward().unwrap();
        // row 2 was looked up twice
        assert_eq!(
            e.weight.grad().unwrap().to_vec(),
            [1., 1., 1., 0., 0., 0., 2., 2., 2., 0., 0., 0.]
        );
        let bad = tape.constant(Tensor::from_vec(vec![4.0], [1]).unwrap());
        assert!(matches!(
            e.forward(&Ctx::new(&tape), bad),
            Err(Error::InputShape { .. })
        ));
        let frac = tape.constant(Tensor::from_vec(vec![1.5], [1]).unwrap());
        assert!(e.forward(&Ctx::new(&tape), frac).is_err());
    }

    #[test]
    fn embedding_gradchecks_in_its_weight() {
        let e = Embedding::<f64>::new(5, 2, &mut StdRng::seed_from_u64(1)).unwrap();
        let idx = Tensor::from_vec(vec![1.0, 4.0, 1.0, 0.0], [2, 2]).unwrap();
        gradcheck(
            |v| {
                let mut cx = Ctx::new(v[0].tape());
                cx.substitute(&e.weight, v[0]);
                let y = e
                    .forward(&cx, cx.tape().constant(idx.clone()))
                    .map_err(Error::into_autograd)?;
                Ok(y.square().sum())
            },
            &[e.weight.value()],
            &GradcheckOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn padding_row_is_returned_but_never_learns() {
        let e = Embedding::<f64>::new(4, 2, &mut StdRng::seed_from_u64(2))
            .unwrap()
            .with_padding_idx(1)
            .unwrap();
        assert_eq!(e.padding_idx(), Some(1));
        // zeroed at construction, as PyTorch; a loaded state can put values there
        assert_eq!(e.weight.value().to_vec()[2..4], [0.0, 0.0]);
        e.weight
            .set_value(Tensor::arange(8).unwrap().reshape([4, 2]).unwrap())
            .unwrap();
        let tape = Tape::new();
        let idx = tape.constant(Tensor::from_vec(vec![1.0, 3.0, 1.0], [3]).unwrap());
        let y = e.forward(&Ctx::new(&tape), idx).unwrap();
        assert_eq!(y.value().to_vec(), [2., 3., 6., 7., 2., 3.]);
        y.square().sum().backward().unwrap();
        // d/dw of Σ y² = 2y on the rows read, nothing on the padding row
        assert_eq!(
            e.weight.grad().unwrap().to_vec(),
            [0., 0., 0., 0., 0., 0., 12., 14.]
        );
        // first and second order with respect to the weight, on indices without the
        // padding row: its zero gradient is a convention, not the derivative, so finite
        // differences disagree with it by design (the input is a dummy: the indices are
        // constants)
        let o = autograd::GradcheckOptions::default();
        fn pick<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
            let idx = Tensor::from_vec(vec![3.0, 2.0, 3.0, 0.0], [2, 2]).unwrap();
            v[0].tape().constant(idx)
        }
        crate::gradcheck_module(&e, &[Tensor::zeros([1]).unwrap()], pick, &o).unwrap();
        crate::gradgradcheck_module(&e, &[Tensor::zeros([1]).unwrap()], pick, &o).unwrap();
        assert!(Embedding::<f64>::new(4, 2, &mut StdRng::seed_from_u64(2))
            .unwrap()
            .with_padding_idx(4)
            .is_err());
    }
}
