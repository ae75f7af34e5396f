//! Modules: [`Module`] (bookkeeping, normally derived), [`Forward`] (the computation,
//! with inputs and outputs of the module's own types), [`Ctx`] (the context a forward
//! runs in: parameter binding and substitution, child calls, hooks), the leaves a module
//! holds besides parameters ([`Buffer`], [`Generator`], [`Mode`]), and
//! [`gradcheck_module`].
//!
//! A module is a struct; `#[derive(Module)]` names everything it owns after its fields,
//! and `forward` calls children with `cx.call(&self.child, input)`, so every name is
//! written once:
//!
//! ```
//! use autograd::{Float, Param, Tape, Tensor, Var};
//! use nn::{Ctx, Forward, Linear, Module};
//! use rand::SeedableRng;
//!
//! /// y = x + fc2(relu(fc1(x))) · scale
//! #[derive(Module)]
//! struct Residual<T: Float> {
//!     fc1: Linear<T>,
//!     fc2: Linear<T>,
//!     scale: Param<T>,
//! }
//!
//! impl<T: Float> Forward<T> for Residual<T> {
//!     type Input<'t> = Var<'t, T>;
//!     type Output<'t> = Var<'t, T>;
//!     fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
//!         let h = cx.call(&self.fc1, x)?.relu();
//!         let h = cx.call(&self.fc2, h)?;
//!         Ok(x.add(h.mul(cx.param(&self.scale))?)?)
//!     }
//! }
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let block = Residual {
//!     fc1: Linear::<f64>::new(4, 8, &mut rng)?,
//!     fc2: Linear::new(8, 4, &mut rng)?,
//!     scale: Param::new(Tensor::ones([1])?),
//! };
//! let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
//!
//! let tape = Tape::new();
//! let y = Ctx::new(&tape).call(&block, tape.constant(Tensor::ones([2, 4])?))?;
//! assert_eq!(y.dims(), [2, 4]);
//! # Ok::<(), nn::Error>(())
//! ```
//!
//! | item | what |
//! | --- | --- |
//! | [`Module`] | named fields and everything derived from them (parameters, buffers, train/eval, counts) |
//! | [`Visit`], [`Field`], [`Plain`] | what each field type is to a module |
//! | [`Forward`], [`Layer`], [`Vars`] | the computation; its object-safe single-`Var` form; flattening inputs and outputs |
//! | [`Ctx`], [`ModuleCall`] | the forward context; what a forward hook sees |
//! | [`Buffer`], [`Generator`], [`Mode`] | saved non-trainable state, saved random streams, the train/eval flag |
//! | [`gradcheck_module`], [`gradgradcheck_module`] | gradients (first and second order) with respect to inputs and every parameter |

mod ctx;
mod forward;
mod gradcheck;
mod leaf;
mod visit;

pub use ctx::{Ctx, ModuleCall};
pub use forward::{Forward, Layer, Vars};
pub use gradcheck::{gradcheck_module, gradgradcheck_module};
pub use leaf::{Buffer, Generator, GeneratorState, Mode};
pub(crate) use visit::short_type_name;
#[doc(hidden)]
pub use visit::ModuleId;
pub use visit::{Field, Module, Plain, Visit};
