//! Recurrent and attention layers: RNN, LSTM, GRU, their cells, MultiheadAttention,
//! `scaled_dot_product_attention` and the transformer layers. Not part of this branch
//! (layers-a): every case fails here until the sequence branch (layers-b) replaces this
//! file with the real family.

use anyhow::bail;

use crate::common::{Harness, Run};

/// The modules of this family.
pub const MODULES: &[&str] = &[
    "RNN",
    "LSTM",
    "GRU",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "MultiheadAttention",
    "scaled_dot_product_attention",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
];

/// Fails the case: the module is not implemented in this branch.
pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    bail!(
        "{} is not implemented in this branch (the sequence layers come from layers-b)",
        h.case.module
    )
}
