//! Function transforms: Jacobians, Hessians, Jacobian- and Hessian-vector products and
//! per-example gradients, built on [`Tape::grad`](crate::Tape::grad) and
//! [`Tape::vjp`](crate::Tape::vjp).
//!
//! | file | what |
//! | --- | --- |
//! | `functional.rs` | [`value_and_grad`], [`vjp`], [`jvp`], [`jacobian`], [`hessian`], [`hvp`] on a closure of `Var`s, as [`gradcheck`](crate::gradcheck()) takes one |
//! | `on_tape.rs` | [`Tape::jacobian`](crate::Tape::jacobian), [`Tape::hessian`](crate::Tape::hessian), [`Tape::hvp`](crate::Tape::hvp), [`Tape::jvp`](crate::Tape::jvp): the same on `Var`s of a caller's tape, differentiable again |
//! | `per_sample.rs` | [`per_sample_grads`] (one pass over per-example parameter copies) and [`per_sample_grads_loop`] (one pass per example) |
//!
//! The closure forms take `f: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>` and the input
//! values, record `f` on a fresh tape and return plain tensors; every input is
//! differentiated (capture constants in the closure and bind them with
//! [`Tape::constant`](crate::Tape::constant)). The tape forms return `Var`s on the caller's
//! tape, so a Jacobian, a Hessian-vector product or a JVP can itself be differentiated
//! (a gradient penalty on a Jacobian, a third derivative).
//!
//! ```
//! use autograd::{transforms, Tensor};
//! // f(x, y) = Σ x² y
//! let f = transforms::func(|v| Ok(v[0].square().mul(v[1])?.sum()));
//! let (x, y) = (Tensor::from_vec(vec![1.0, 2.0], [2])?, Tensor::from_vec(vec![3.0, 4.0], [2])?);
//! let h = transforms::hessian(&f, &[x.clone(), y])?;
//! assert_eq!(h[0][0].to_vec(), vec![6.0, 0.0, 0.0, 8.0]);   // ∂²f/∂x² = diag(2y)
//! assert_eq!(h[0][1].to_vec(), vec![2.0, 0.0, 0.0, 4.0]);   // ∂²f/∂x∂y = diag(2x)
//! let (_, jv) = transforms::jvp(|v| Ok(v[0].square()), &[x], &[Tensor::from_vec(vec![1.0, 1.0], [2])?])?;
//! assert_eq!(jv.to_vec(), vec![2.0, 4.0]);                  // J·1 = 2x
//! # Ok::<(), autograd::Error>(())
//! ```
//!
//! # Forward mode, and what each transform costs
//!
//! gradlab's ops carry reverse-mode rules only, so [`jvp`] uses the double-vjp
//! construction rather than dual numbers: `u ↦ Jᵀu` is linear in `u`, and its own
//! vector-Jacobian product with `v` is `J·v`. One forward, one *recorded* reverse pass
//! (`Jᵀu` at `u = 0`, kept on the tape) and one reverse sweep over that recording: about
//! 3-4 forward-and-backward costs, whatever the input and output sizes, and no new rule per
//! op. [`jacobian`] costs one forward and one reverse sweep per *output element*; so the
//! JVP is the cheaper way to get `J·v` as soon as the output has more than a few elements
//! (measured figures in the README's transforms section). A forward-mode rule per op would
//! save the recorded pass (about 1.5-2× faster) at the price of a second rule for every op,
//! built-in or user-written.
//!
//! | transform | cost (F = one forward, B = one reverse sweep) |
//! | --- | --- |
//! | `value_and_grad`, `vjp` | F + B |
//! | `jvp` | F + 2 B recorded + 1 B over the recording (≈ 3-4 F) |
//! | `hvp` | F + B recorded + B over the recording (reverse over reverse) |
//! | `jacobian` | F + one B per output element |
//! | `hessian` | F + B recorded + one B over it per input element |
//! | `per_sample_grads` | one F + B over the batch with B copies of each parameter |
//! | `per_sample_grads_loop` | B × (F + B) on one example each |

mod functional;
mod on_tape;
mod per_sample;

pub use functional::{func, hessian, hvp, jacobian, jvp, value_and_grad, vjp};
pub use per_sample::{per_sample_grads, per_sample_grads_loop, PerSampleGrads};
