//! Gradient clipping over a slice of parameters, as `torch.nn.utils.clip_grad_norm_` and
//! `clip_grad_value_` do it.

use autograd::{Float, Param};

use crate::common::check_finite_non_negative;
use crate::error::{Error, Result};

/// The `norm_type`-norm of `xs` (`∞`: max |x|), PyTorch's `vector_norm`.
fn vector_norm<T: Float>(xs: impl Iterator<Item = T>, norm_type: T) -> T {
    if norm_type.is_infinite() {
        xs.fold(T::zero(), |m, x| m.max(x.abs()))
    } else if norm_type == T::of(2.0) {
        xs.map(|x| x * x).sum::<T>().sqrt()
    } else if norm_type == T::one() {
        xs.map(|x| x.abs()).sum()
    } else {
        xs.map(|x| x.abs().powf(norm_type))
            .sum::<T>()
            .powf(norm_type.recip())
    }
}

/// Scales the gradients of `params` so that their joint `norm_type`-norm is at most
/// `max_norm`, and returns the norm before clipping.
///
/// The formula is PyTorch's `clip_grad_norm_`: the total norm is the norm of the
/// per-parameter norms, and every gradient is multiplied by
/// `min(1, max_norm / (total_norm + 1e-6))`. Parameters without a gradient are skipped; with
/// none at all the result is 0. `norm_type` may be `f64::INFINITY` (max |g|). A non-finite
/// total norm is returned as is (PyTorch's default `error_if_nonfinite=False`).
///
/// ```
/// use autograd::{Param, Tensor};
/// let p = Param::new(Tensor::from_vec(vec![0.0f64, 0.0], [2])?);
/// p.set_grad(Some(Tensor::from_vec(vec![3.0, 4.0], [2])?))?;
/// let norm = optim::clip_grad_norm(&[p.clone()], 1.0, 2.0)?;
/// assert_eq!(norm, 5.0);
/// let g = p.grad().unwrap().to_vec();
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for a negative or non-finite `max_norm` or a
/// `norm_type` that is not positive.
pub fn clip_grad_norm<T: Float>(params: &[Param<T>], max_norm: f64, norm_type: f64) -> Result<f64> {
    check_finite_non_negative("max_norm", max_norm)?;
    if norm_type.is_nan() || norm_type <= 0.0 {
        return Err(Error::InvalidHyperparameter {
            name: "norm_type",
            value: norm_type,
            reason: "must be > 0 (or infinity)",
        });
    }
    let with_grad: Vec<_> = params
        .iter()
        .filter_map(|p| p.grad().map(|g| (p, g)))
        .collect();
    if with_grad.is_empty() {
        return Ok(0.0);
    }
    let nt = T::of(norm_type);
    let norms = with_grad
        .iter()
        .map(|(_, g)| vector_norm(g.as_slice().iter().copied(), nt));
    let total = vector_norm(norms, nt);
    let coef = (T::of(max_norm) / (total + T::of(1e-6))).min(T::one());
    // PyTorch multiplies even when the coefficient clamps to 1; that product is exact, so
    // skipping it changes nothing but a copy.
    if coef < T::one() {
        for (p, g) in with_grad {
            p.set_grad(Some(g.map(|x| x * coef)))?;
        }
    }
    Ok(total.as_f64())
}

/// Clamps every gradient element of `params` into `[-clip_value, clip_value]`
/// (`torch.nn.utils.clip_grad_value_`). Parameters without a gradient are skipped.
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for a negative or non-finite `clip_value`.
pub fn clip_grad_value<T: Float>(params: &[Param<T>], clip_value: f64) -> Result<()> {
    check_finite_non_negative("clip_value", clip_value)?;
    let c = T::of(clip_value);
    for p in params {
        if let Some(g) = p.grad() {
            p.set_grad(Some(g.map(|x| x.max(-c).min(c))))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::Tensor;

    fn param_with_grad(g: Vec<f64>) -> Param<f64> {
        let n = g.len();
        let p = Param::new(Tensor::zeros([n]).unwrap());
        p.set_grad(Some(Tensor::from_vec(g, [n]).unwrap())).unwrap();
        p
    }

    #[test]
    fn global_norm_spans_all_params_and_uses_torch_coefficient() {
        // grads (3, 4) and (12): norms 5 and 12, total sqrt(25 + 144) = 13
        let a = param_with_grad(vec![3.0, 4.0]);
        let b = param_with_grad(vec![12.0]);
        let none = Param::new(Tensor::<f64>::zeros([3]).unwrap());
        let total = clip_grad_norm(&[a.clone(), none.clone(), b.clone()], 6.5, 2.0).unwrap();
        assert_eq!(total, 13.0);
        let coef = 6.5 / (13.0 + 1e-6);
        assert_eq!(a.grad().unwrap().to_vec(), vec![3.0 * coef, 4.0 * coef]);
        assert_eq!(b.grad().unwrap().to_vec(), vec![12.0 * coef]);
        assert!(none.grad().is_none());
    }

    #[test]
    fn norm_below_max_leaves_gradients_alone() {
        let a = param_with_grad(vec![0.3, -0.4]);
        assert_eq!(
            clip_grad_norm(std::slice::from_ref(&a), 1.0, 2.0).unwrap(),
            0.5
        );
        assert_eq!(a.grad().unwrap().to_vec(), vec![0.3, -0.4]);
    }

    #[test]
    fn inf_and_one_norms() {
        let a = param_with_grad(vec![1.0, -7.0]);
        let b = param_with_grad(vec![2.0]);
        assert_eq!(
            clip_grad_norm(&[a.clone(), b.clone()], 100.0, f64::INFINITY).unwrap(),
            7.0
        );
        assert_eq!(clip_grad_norm(&[a, b], 100.0, 1.0).unwrap(), 10.0);
        assert_eq!(clip_grad_norm::<f64>(&[], 1.0, 2.0).unwrap(), 0.0);
    }

    #[test]
    fn three_norm_matches_formula() {
        let a = param_with_grad(vec![1.0, -2.0, 3.0]);
        let want = (1.0f64 + 8.0 + 27.0).powf(1.0 / 3.0);
        let got = clip_grad_norm(&[a], 1e9, 3.0).unwrap();
        assert!((got - want).abs() < 1e-12);
    }

    #[test]
    fn clip_by_value_clamps_each_element() {
        let a = param_with_grad(vec![-3.0, 0.25, 9.0]);
        clip_grad_value(std::slice::from_ref(&a), 1.0).unwrap();
        assert_eq!(a.grad().unwrap().to_vec(), vec![-1.0, 0.25, 1.0]);
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let a = param_with_grad(vec![1.0]);
        let e = clip_grad_norm(std::slice::from_ref(&a), -1.0, 2.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid max_norm -1: must be a finite number >= 0"
        );
        let e = clip_grad_norm(std::slice::from_ref(&a), 1.0, 0.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid norm_type 0: must be > 0 (or infinity)"
        );
        let e = clip_grad_value(&[a], f64::NAN).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidHyperparameter {
                name: "clip_value",
                ..
            }
        ));
    }
}
