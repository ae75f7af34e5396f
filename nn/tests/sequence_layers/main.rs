//! The sequence layers through their public API: attention (`scaled_dot_product_attention`,
//! `MultiheadAttention`), recurrent layers and cells, transformer layers. Gradients are
//! checked in f64 against finite differences with respect to the inputs *and* every
//! parameter, first and second order; recurrences run several steps from a non-zero
//! state, so a state not carried through time fails;
//! attention is compared with plain loops; a fully masked query must stay finite; bad
//! inputs must give typed errors naming the layer, its path and the caller's line.
//! (PyTorch parity of every case of `layers.json` is `tests/pytorch_layers/seq.rs`.) One
//! file per family.

use autograd::{GradcheckOptions, Tape, Tensor, Var};
use nn::{
    gradcheck_module, gradgradcheck_module, scaled_dot_product_attention, AttentionInput, AttnMask,
    AttnWeights, BoolMask, CellConfig, Ctx, DecoderInput, EncoderInput, Error,
    FeedForwardActivation, Forward, GruCell, LstmCell, LstmState, Module, MultiheadAttention,
    MultiheadAttentionConfig, RecurrentWeights, RnnCell, RnnConfig, RnnNonlinearity,
    TransformerLayerConfig,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod attention;
mod recurrent;
mod transformer;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn opts() -> GradcheckOptions {
    GradcheckOptions::default()
}

fn close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) {
    assert_eq!(a.dims(), b.dims());
    for (i, (x, y)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}
