//! Layers: the built-in [`Module`](crate::Module)s.
//!
//! | file | layers |
//! | --- | --- |
//! | `linear.rs` | [`Linear`] (`x Wᵀ + b`) |
//! | `conv.rs` | [`Conv1d`], [`Conv2d`] |
//! | `conv_transpose.rs` | [`ConvTranspose1d`], [`ConvTranspose2d`] |
//! | `pool.rs` | [`MaxPool2d`] (with indices), [`AvgPool2d`], [`AdaptiveAvgPool2d`] |
//! | `upsample.rs` | [`Upsample`] (nearest, bilinear) |
//! | `flatten.rs` | [`Flatten`] |
//! | `dropout.rs` | [`Dropout`] (seeded, inverted scaling) |
//! | `norm.rs` | [`BatchNorm1d`], [`BatchNorm2d`], [`LayerNorm`] |
//! | `group_norm.rs` | [`GroupNorm`] |
//! | `rms_norm.rs` | [`RmsNorm`] |
//! | `embedding.rs` | [`Embedding`] (with a padding index) |
//! | `sequential.rs` | [`Sequential`] (a chain of single-`Var` layers) |
//! | `module_list.rs` | [`ModuleList`] (an indexed stack of modules) |
//!
//! Layers with weights take an initialiser and a seeded RNG through a config
//! (`LinearConfig { .. }.init(&mut rng)`); `new` uses PyTorch's defaults.

mod conv;
mod conv_transpose;
mod dropout;
mod embedding;
mod flatten;
mod group_norm;
mod linear;
mod module_list;
mod norm;
mod pool;
mod rms_norm;
mod sequential;
mod upsample;

pub use conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
pub use conv_transpose::{
    ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d, ConvTranspose2dConfig,
};
pub use dropout::{dropout, Dropout};
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use group_norm::GroupNorm;
pub use linear::{Linear, LinearConfig};
pub use module_list::ModuleList;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, LayerNorm, LayerNormConfig};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use rms_norm::RmsNorm;
pub use sequential::Sequential;
pub use upsample::{Upsample, UpsampleMode};
