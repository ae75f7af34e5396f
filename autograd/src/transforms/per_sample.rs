//! Per-example gradients; the closure's contract and the costs are in the
//! [`transforms`](super) docs.

use std::panic::Location;

use crate::error::{Error, Loc, Result};
use crate::tape::Tape;
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

use super::functional::{bind, joined, take_grads};

/// The per-example losses and gradients of a batch.
#[derive(Clone, Debug)]
pub struct PerSampleGrads<T: Float> {
    /// `losses[i] = loss_i(θ)`, shape `[B]`.
    pub losses: Tensor<T>,
    /// One tensor per parameter, shape `[B, ..param.shape]`: `grads[p][i] = ∂loss_i/∂θ_p`.
    pub grads: Vec<Tensor<T>>,
}

impl<T: Float> PerSampleGrads<T> {
    /// The batch size `B`.
    pub fn batch_size(&self) -> usize {
        self.losses.numel()
    }

    /// `(1/B) Σ_i loss_i`, the usual mean loss.
    pub fn mean_loss(&self) -> T {
        self.losses.sum_all() / T::of(self.batch_size().max(1) as f64)
    }

    /// `∂ mean_loss / ∂θ_p = (1/B) Σ_i grads[p][i]` for each parameter.
    ///
    /// # Errors
    /// None in practice (the reduction is over an axis every gradient has); typed for
    /// uniformity with the tensor ops it uses.
    pub fn mean_grads(&self) -> Result<Vec<Tensor<T>>> {
        let scale = T::one() / T::of(self.batch_size().max(1) as f64);
        self.grads
            .iter()
            .map(|g| {
                let mut m = g.sum_axes(&[0], false)?;
                m.mapv_inplace(|v| v * scale);
                Ok(m)
            })
            .collect()
    }
}

/// The common batch size of `batch` (the length of every tensor's first axis).
fn batch_size<T: Float>(op: &'static str, batch: &[Tensor<T>], loc: Loc) -> Result<usize> {
    let Some(first) = batch.first() else {
        return Err(Error::InvalidArgument {
            op,
            reason: "no batch tensors: the batch size is the first axis of the batch".into(),
            shape: Shape::scalar(),
            location: loc,
        });
    };
    for t in batch {
        if t.rank() == 0 || t.dims()[0] != first.dims().first().copied().unwrap_or(0) {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "every batch tensor needs the same leading (batch) axis; the first has shape {}",
                    first.shape()
                ),
                shape: t.shape().clone(),
                location: loc,
            });
        }
    }
    Ok(first.dims()[0])
}

fn check_losses<T: Float>(op: &'static str, losses: Var<'_, T>, b: usize, loc: Loc) -> Result<()> {
    let s = losses.shape();
    if s.dims() != [b] {
        return Err(Error::ShapeMismatch {
            op,
            expected: Shape::from([b]),
            got: s,
            location: loc,
        });
    }
    Ok(())
}

/// Example `i` of `t` (its first-axis slice), keeping the axis: shape `[1, ..]`.
fn example<T: Float>(t: &Tensor<T>, i: usize) -> Result<Tensor<T>> {
    let row = t.numel() / t.dims()[0].max(1);
    let data = t.as_slice()[i * row..(i + 1) * row].to_vec();
    let mut dims = t.dims().to_vec();
    dims[0] = 1;
    Tensor::from_vec(data, dims)
}

/// The gradient of each example's loss with respect to `params`, in one forward and one
/// backward pass over per-example copies of the parameters (see the
/// [module docs](super) for the closure's contract and the cost).
///
/// `f(params, batch)` receives each param as `[B, ..shape]` (copy `i` for example `i`) and
/// each batch tensor as given, and returns the `[B]` per-example losses.
///
/// ```
/// use autograd::{transforms::per_sample_grads, Tensor};
/// // loss_i(w) = (x_i · w)², so ∂loss_i/∂w = 2 (x_i · w) x_i
/// let w = Tensor::from_vec(vec![1.0f64, -1.0], [2])?;
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 5.0], [2, 2])?;
/// let ps = per_sample_grads(
///     |p, b| Ok(p[0].mul(b[0])?.sum_axes(&[1], false)?.square()), // Σ_j w_ij x_ij, squared
///     &[w],
///     &[x],
/// )?;
/// assert_eq!(ps.losses.to_vec(), vec![1.0, 4.0]);
/// assert_eq!(ps.grads[0].to_vec(), vec![-2.0, -4.0, -12.0, -20.0]);
/// # Ok::<(), autograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] when `batch` is empty or its tensors disagree on the batch
/// size; [`Error::ShapeMismatch`] when `f` does not return `[B]` losses; `f`'s own errors.
#[track_caller]
pub fn per_sample_grads<T, F>(
    f: F,
    params: &[Tensor<T>],
    batch: &[Tensor<T>],
) -> Result<PerSampleGrads<T>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>], &[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let loc = Location::caller();
    let b = batch_size("per_sample_grads", batch, loc)?;
    let copies = params
        .iter()
        .map(|p| p.broadcast_to(joined(&Shape::from([b]), p.shape())))
        .collect::<Result<Vec<_>>>()?;
    let tape = Tape::new();
    let (copies, pv) = bind(&tape, &copies);
    let bv: Vec<_> = batch.iter().map(|t| tape.constant(t.clone())).collect();
    let losses = f(&pv, &bv)?;
    check_losses("per_sample_grads", losses, b, loc)?;
    losses.sum().backward()?;
    Ok(PerSampleGrads {
        losses: losses.value(),
        grads: take_grads(&copies),
    })
}

/// [`per_sample_grads`] computed one example at a time: `f` is called `B` times, with each
/// param as `[1, ..shape]` and each batch tensor's example `i` as `[1, ..]`, and must return
/// a `[1]` loss. Slower, but right for any model (see the [module docs](super)).
///
/// # Errors
/// As [`per_sample_grads`] (with `[1]` as the expected loss shape).
#[track_caller]
pub fn per_sample_grads_loop<T, F>(
    f: F,
    params: &[Tensor<T>],
    batch: &[Tensor<T>],
) -> Result<PerSampleGrads<T>>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>], &[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    let loc = Location::caller();
    let b = batch_size("per_sample_grads_loop", batch, loc)?;
    let ones = params
        .iter()
        .map(|p| p.reshape(joined(&Shape::from([1]), p.shape())))
        .collect::<Result<Vec<_>>>()?;
    let mut losses = Vec::with_capacity(b);
    let mut grads: Vec<Vec<T>> = params
        .iter()
        .map(|p| {
            crate::tensor::buffer(
                "per_sample_grads_loop",
                &joined(&Shape::from([b]), p.shape()),
            )
        })
        .collect::<Result<_>>()?;
    for i in 0..b {
        let tape = Tape::new();
        let (ps, pv) = bind(&tape, &ones);
        let bv = batch
            .iter()
            .map(|t| Ok(tape.constant(example(t, i)?)))
            .collect::<Result<Vec<_>>>()?;
        let loss = f(&pv, &bv)?;
        check_losses("per_sample_grads_loop", loss, 1, loc)?;
        loss.sum().backward()?;
        losses.push(loss.value().as_slice()[0]);
        for (acc, g) in grads.iter_mut().zip(take_grads(&ps)) {
            acc.extend_from_slice(g.as_slice());
        }
    }
    Ok(PerSampleGrads {
        losses: Tensor::from_vec(losses, [b])?,
        grads: grads
            .into_iter()
            .zip(params)
            .map(|(g, p)| Tensor::from_vec(g, joined(&Shape::from([b]), p.shape())))
            .collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::functional::tests::rand;
    use super::super::value_and_grad;
    use super::*;
    use crate::assert_close;

    fn pin<F>(f: F) -> F
    where
        F: for<'t> Fn(&[Var<'t, f64>], &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
    {
        f
    }

    /// A 2-layer tanh MLP with per-example weights (any leading batch size `n`), squared
    /// error against `t`: loss_i = Σ (W2ᵢ·tanh(W1ᵢ·xᵢ + b1ᵢ) - tᵢ)².
    fn mlp_losses<'t>(p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        let (w1, b1, w2) = (p[0], p[1], p[2]);
        let (x, t) = (b[0], b[1]);
        let h = x.unsqueeze(1)?.matmul_t(w1, false, true)?; // [n, 1, H]
        let h = h.add(b1.unsqueeze(1)?)?.tanh();
        let y = h.matmul_t(w2, false, true)?.squeeze(1)?; // [n, O]
        y.sub(t)?.square().sum_axes(&[1], false)
    }

    #[test]
    fn vectorised_and_looped_per_sample_gradients_agree() {
        let params = [rand(&[4, 3], 1), rand(&[4], 2), rand(&[2, 4], 3)];
        let batch = [rand(&[5, 3], 4), rand(&[5, 2], 5)];
        let v = per_sample_grads(mlp_losses, &params, &batch).unwrap();
        let l = per_sample_grads_loop(mlp_losses, &params, &batch).unwrap();
        assert_eq!(v.batch_size(), 5);
        assert_close!(v.losses, l.losses);
        for (a, b) in v.grads.iter().zip(&l.grads) {
            assert_eq!(a.dims()[0], 5);
            assert_close!(a, b);
        }
    }

    #[test]
    fn per_sample_gradients_average_to_the_gradient_of_the_mean_loss() {
        let params = [rand(&[4, 3], 6), rand(&[4], 7), rand(&[2, 4], 8)];
        let batch = [rand(&[6, 3], 9), rand(&[6, 2], 10)];
        let ps = per_sample_grads(mlp_losses, &params, &batch).unwrap();
        // The ordinary batched model, shared weights, mean over the batch.
        let (mean, grads) = value_and_grad(
            |p| {
                let tape = p[0].tape();
                let (x, t) = (
                    tape.constant(batch[0].clone()),
                    tape.constant(batch[1].clone()),
                );
                let h = x.matmul_t(p[0], false, true)?.add(p[1])?.tanh();
                Ok(h.matmul_t(p[2], false, true)?
                    .sub(t)?
                    .square()
                    .sum_axes(&[1], false)?
                    .mean())
            },
            &params,
        )
        .unwrap();
        assert_close!(ps.mean_loss(), mean.item().unwrap());
        for (a, b) in ps.mean_grads().unwrap().iter().zip(&grads) {
            assert_close!(a, b);
        }
    }

    #[test]
    fn a_model_that_needs_one_set_of_parameters_runs_in_the_loop() {
        // f squeezes the copy axis away, which only works when it has length 1
        let f = pin(|p, b| {
            Ok(b[0]
                .matmul_t(p[0].squeeze(0)?, false, true)?
                .sum_axes(&[1], false)?
                .exp())
        });
        let params = [rand(&[2, 3], 11)];
        let batch = [rand(&[4, 3], 12)];
        let l = per_sample_grads_loop(f, &params, &batch).unwrap();
        assert_eq!(l.grads[0].dims(), &[4, 2, 3]);
        // the vectorised form cannot squeeze [4, 2, 3] and says so
        let e = per_sample_grads(f, &params, &batch).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { op: "squeeze", .. }),
            "{e}"
        );
    }

    #[test]
    fn batch_and_loss_shapes_are_checked() {
        let params = [rand(&[4, 3], 1), rand(&[4], 2), rand(&[2, 4], 3)];
        let e = per_sample_grads(mlp_losses, &params, &[rand(&[5, 3], 4), rand(&[4, 2], 5)])
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "per_sample_grads",
                    ..
                }
            ),
            "{e}"
        );
        let e = per_sample_grads_loop(mlp_losses, &params, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "per_sample_grads_loop",
                    ..
                }
            ),
            "{e}"
        );
        let summed = pin(|p, b| Ok(mlp_losses(p, b)?.sum()));
        let e =
            per_sample_grads(summed, &params, &[rand(&[5, 3], 4), rand(&[5, 2], 5)]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ShapeMismatch {
                    op: "per_sample_grads",
                    ..
                }
            ),
            "{e}"
        );
    }
}
