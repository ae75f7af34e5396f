//! Neural-network building blocks on `autograd`: the [`Module`] trait, layers,
//! activations, PyTorch-exact initialisers, stable losses, safetensors state, and
//! diagnostics that show why a network will not train.
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
//! let logits = mlp.forward(&Ctx::new(&tape), x)?;
//! let l = loss::cross_entropy(logits, &[0, 1, 2, 0, 1, 2, 0, 1], 0.0, loss::Reduction::Mean)?;
//! l.backward()?;
//! assert!(mlp.parameters().iter().all(|p| p.grad().is_some()));
//! # Ok::<(), nn::Error>(())
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`module`] | [`Module`], [`Ctx`], [`Buffer`], [`gradcheck_module`] |
//! | [`layers`] | Linear, Conv2d, pools, Flatten, Dropout, BatchNorm, LayerNorm, Embedding, Sequential |
//! | [`activation`] | activations as functions and modules |
//! | [`init`] | `torch.nn.init` initialisers and `calculate_gain` |
//! | [`loss`] | losses with reductions |
//! | [`state`] | safetensors save/load |
//! | [`diagnostics`] | activation statistics, saturation, dead units, gradient norms |
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod activation;
pub mod diagnostics;
mod error;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod state;

pub use activation::{
    Elu, Gelu, LeakyRelu, LogSoftmax, PRelu, Relu, Selu, Sigmoid, Silu, Softmax, Softplus, Tanh,
};
pub use diagnostics::{diagnose, Report};
pub use error::{Error, Result};
pub use init::Init;
pub use layers::*;
pub use module::{gradcheck_module, Activation, Buffer, Ctx, Module};
