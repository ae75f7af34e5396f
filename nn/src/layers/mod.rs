//! Layers: the built-in [`Module`](crate::Module)s.
//!
//! | file | layers |
//! | --- | --- |
//! | `linear.rs` | [`Linear`] (`x Wᵀ + b`), [`linear`] (its function) |
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
//! | `mask.rs` | [`BoolMask`] ("may not attend"), [`AttnMask`] (boolean or additive) |
//! | `attention.rs` | [`scaled_dot_product_attention`], [`MultiheadAttention`] |
//! | `rnn_cell.rs` | [`RnnCell`], [`LstmCell`], [`GruCell`] (one step each) |
//! | `recurrent.rs` | [`Rnn`], [`Lstm`], [`Gru`] (whole sequences, stacked, bidirectional) |
//! | `transformer.rs` | [`TransformerEncoderLayer`], [`TransformerDecoderLayer`] (post- or pre-norm) |
//!
//! Layers with weights take an initialiser and a seeded RNG through a config
//! (`LinearConfig { .. }.init(&mut rng)`); `new` uses PyTorch's defaults.

pub mod attention;
mod conv;
mod conv_transpose;
mod dropout;
mod embedding;
mod flatten;
mod group_norm;
mod linear;
mod mask;
mod module_list;
mod norm;
mod pool;
mod recurrent;
mod rms_norm;
mod rnn_cell;
mod sequential;
pub mod transformer;
mod upsample;

pub use attention::{
    scaled_dot_product_attention, AttentionInput, AttnWeights, MultiheadAttention,
    MultiheadAttentionConfig,
};
pub use conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
pub use conv_transpose::{
    ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d, ConvTranspose2dConfig,
};
pub use dropout::{dropout, Dropout};
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use group_norm::GroupNorm;
pub use linear::{linear, Linear, LinearConfig};
pub use mask::{AttnMask, BoolMask};
pub use module_list::ModuleList;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, LayerNorm, LayerNormConfig};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use recurrent::{Gru, Lstm, RecurrentWeights, Rnn, RnnConfig};
pub use rms_norm::RmsNorm;
pub use rnn_cell::{CellConfig, GruCell, LstmCell, LstmState, RnnCell, RnnNonlinearity};
pub use sequential::Sequential;
pub use transformer::{
    DecoderInput, EncoderInput, FeedForwardActivation, TransformerDecoderLayer,
    TransformerEncoderLayer, TransformerLayerConfig,
};
pub use upsample::{Upsample, UpsampleMode};
