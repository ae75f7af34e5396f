//! Layers: the built-in [`Module`](crate::Module)s.
//!
//! | file | layers |
//! | --- | --- |
//! | `linear.rs` | [`Linear`] (`x Wᵀ + b`) |
//! | `conv.rs` | [`Conv2d`] |
//! | `pool.rs` | [`MaxPool2d`], [`AvgPool2d`] |
//! | `flatten.rs` | [`Flatten`] |
//! | `dropout.rs` | [`Dropout`] (seeded, inverted scaling) |
//! | `norm.rs` | [`BatchNorm1d`], [`BatchNorm2d`], [`LayerNorm`] |
//! | `embedding.rs` | [`Embedding`] |
//! | `sequential.rs` | [`Sequential`] (a chain of single-`Var` layers) |
//! | `module_list.rs` | [`ModuleList`] (an indexed stack of modules) |
//!
//! Layers with weights take an initialiser and a seeded RNG through a config
//! (`LinearConfig { .. }.init(&mut rng)`); `new` uses PyTorch's defaults.

mod conv;
mod dropout;
mod embedding;
mod flatten;
mod linear;
mod module_list;
mod norm;
mod pool;
mod sequential;

pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::{dropout, Dropout};
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use linear::{Linear, LinearConfig};
pub use module_list::ModuleList;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, LayerNorm};
pub use pool::{AvgPool2d, MaxPool2d};
pub use sequential::Sequential;
