//! Neural-network building blocks on `autograd`: modules ([`Module`] + [`Forward`],
//! derived with `#[derive(Module)]`), layers, activations, PyTorch-exact initialisers,
//! stable losses, safetensors state, and diagnostics that show why a network will not
//! train.
//!
//! ```
//! use autograd::{Tape, Tensor};
//! use nn::{loss, Ctx, Linear, Module, Relu, Sequential};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mlp = Sequential::<f32>::new()
//!     .append(Linear::new(4, 16, &mut rng)?)
//!     .append(Relu)
//!     .append(Linear::new(16, 3, &mut rng)?);
//! let tape = Tape::new();
//! let x = tape.constant(Tensor::randn([8, 4], &mut rng)?);
//! let logits = Ctx::new(&tape).call(&mlp, x)?;
//! let l = loss::cross_entropy(logits, &[0, 1, 2, 0, 1, 2, 0, 1])?;
//! l.backward()?;
//! assert!(mlp.parameters().iter().all(|p| p.grad().is_some()));
//! # Ok::<(), nn::Error>(())
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`module`] | [`Module`] (and its derive), [`Forward`], [`Ctx`] and hooks, [`Buffer`], [`Generator`], [`Mode`], [`gradcheck_module`] |
//! | [`layers`] | Linear, Conv1d/2d, ConvTranspose1d/2d, max/average/adaptive pools, Upsample, Flatten, Dropout, BatchNorm, LayerNorm, GroupNorm, RmsNorm, Embedding, Sequential, ModuleList |
//! | [`activation`] | the [`Activation`] descriptor; activations as functions and modules |
//! | [`init`] | `torch.nn.init` initialisers and `calculate_gain` |
//! | [`loss`] | every `torch.nn` loss, with PyTorch's options and reductions |
//! | [`state`] | safetensors save/load |
//! | [`diagnostics`] | activation statistics, saturation, dead units, gradient norms |
//! | [`summary`](mod@summary) | the model summary: each layer's path, type, output shape and parameters |
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

// The derives expand to `::nn::...` paths; this makes them resolve inside nn too.
extern crate self as nn;

pub mod activation;
mod checkpoint;
pub mod diagnostics;
mod error;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod state;
pub mod summary;

pub use activation::{
    Activation, Elu, Gelu, Identity, LeakyRelu, LogSoftmax, PRelu, Relu, Selu, Sigmoid, Silu,
    Softmax, Softplus, Tanh,
};
pub use checkpoint::{checkpoint, checkpoint_with};
pub use diagnostics::{diagnose, Report};
pub use error::{Error, ModuleError, Result};
pub use init::Init;
pub use layers::*;
pub use module::{
    gradcheck_module, gradgradcheck_module, Buffer, Ctx, Forward, Generator, Layer, Mode, Module,
    ModuleCall, Vars,
};
pub use summary::{summary, summary_with, Summary};

/// Derives [`Module`] from a struct's fields: each field is named after itself, and its
/// type says what it is ([`module::Visit`]): a [`Param`](autograd::Param), [`Buffer`],
/// [`Generator`], [`Mode`], a module, an `Option` of those, or configuration
/// ([`module::Plain`]: numbers, flags, configs), which is not visited.
///
/// The impl is generic over the float: the struct's own `T: Float` if it has one
/// (`struct Block<T: Float> { fc: Linear<T> }`), else any float its fields allow
/// (`struct Net { fc: Linear<f32> }` is a `Module<f32>`).
///
/// Attributes:
/// - `#[module(skip)]` on a field: leave it out (a cache, a handle to something else).
/// - `#[module(activation)]` on the struct: it is an activation; [`Module::activation`]
///   returns it (the struct must implement [`Activation`]).
/// - `#[module(type_name = expr)]`: the name reports use, when not the struct's name.
/// - `#[module(crate = path)]`: where `nn` is, when not a direct dependency named `nn`
///   (`#[module(crate = gradlab::nn)]`).
///
/// A field whose type is none of these does not compile, and the error names it:
///
/// ```compile_fail
/// use autograd::Float;
/// #[derive(nn::Module)]
/// struct Bad<T: Float> {
///     fc: nn::Linear<T>,
///     cache: std::collections::HashMap<String, f32>, // needs #[module(skip)]
/// }
/// ```
pub use nn_derive::Module;

/// Derives [`Vars`] for a module's input or output struct: its `Var`s in field order
/// (fields must implement [`Vars`]; `#[vars(skip)]` leaves one out).
pub use nn_derive::Vars;

#[doc(hidden)]
pub mod __private {
    pub use autograd::{Float, Var};
}
