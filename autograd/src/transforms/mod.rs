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
//! vector-Jacobian product with `t` is `J·t`. One forward, one *recorded* reverse pass
//! (`Jᵀu` at `u = 0`, kept on the tape) and one reverse sweep over that recording only,
//! whatever the input and output sizes, and no second rule per op (built-in or
//! user-written). [`jacobian`] costs one forward and one reverse sweep per *output element*,
//! so the JVP is the cheaper way to `J·t` as soon as the output has more than a few
//! elements. Measured (README, "Function transforms"): a `jvp` took 1.1-3.3× a `vjp`, and a
//! full `jacobian` 7-30× a `jvp` at 16 outputs, 200-340× at 256.
//!
//! | transform | cost (F = one forward, B = one reverse sweep) |
//! | --- | --- |
//! | `value_and_grad`, `vjp` | F + B |
//! | `jvp` | F + one recorded B + one B over that recording |
//! | `hvp` | F + one recorded B + one B over it (reverse over reverse) |
//! | `jacobian` | F + one B per output element |
//! | `hessian` | F + one recorded B + one B over it per input element |
//! | `per_sample_grads` | F + B over the batch, with `B` copies of every parameter |
//! | `per_sample_grads_loop` | `B` × (F + B) on one example each |
//!
//! # Per-example gradients
//!
//! Both functions take the same closure, `f(params, batch) -> losses`, where each param
//! arrives with a leading batch axis (one copy per example, `[B', ..shape]`), each batch
//! tensor holds `B'` examples along its first axis, and `f` returns the `B'` per-example
//! losses. Written with broadcasting ops (`x.unsqueeze(1).matmul_t(w, false, true)` for a
//! linear layer), the same code serves any `B'`.
//!
//! [`per_sample_grads`] calls `f` once with `B' = B`: since `loss_i` reads only copy `i`
//! of the parameters, `∂(Σ_i loss_i)/∂θ_i = ∂loss_i/∂θ`, and one forward and one backward
//! pass give all `B` gradients (the trick behind `torch.func.vmap(grad(..))` for such
//! models). What it costs: `B` copies of every parameter (`B·|θ|` values, the size of the
//! result anyway), and each product becomes `B` matrix-vector products instead of one
//! matrix-matrix product. [`per_sample_grads_loop`] calls `f` once per example (`B' = 1`):
//! `B` forward and backward passes, but it works for any model, including one that can
//! only use a single set of parameters (squeeze the leading axis inside `f`) or one that
//! mixes examples (batch norm), where the vectorised form would be wrong. Measured on a
//! 64-32-10 MLP, the vectorised form runs at about the loop's speed (0.8-1.2×): one-row
//! products gain nothing from batching, so the saving is the per-call overhead only.

mod functional;
mod on_tape;
mod per_sample;

pub use functional::{func, hessian, hvp, jacobian, jvp, value_and_grad, vjp};
pub use per_sample::{per_sample_grads, per_sample_grads_loop, PerSampleGrads};
