//! Recurrent and attention layers: RNN, LSTM, GRU, their cells, MultiheadAttention,
//! `scaled_dot_product_attention` and the transformer layers. Every size and flag comes
//! from the case (`attrs`, `call`, tensor shapes); masks are int64 0/1 inputs (PyTorch's
//! `mask.bool()`, 1 = may not attend) read as [`BoolMask`]s, float masks as additive
//! constants. An input, attribute or call argument this family does not read fails the
//! case rather than being ignored.

use anyhow::{anyhow, bail, ensure};
use autograd::testing::reference::Attrs;
use autograd::Var;
use nn::{
    scaled_dot_product_attention, AttentionInput, AttnMask, AttnWeights, BoolMask, CellConfig,
    DecoderInput, EncoderInput, FeedForwardActivation, LstmState, MultiheadAttentionConfig,
    RnnConfig, RnnNonlinearity, TransformerLayerConfig,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::common::{opt_usize_attr, usize_attr, Harness, Run};

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

/// Builds and calls the case's module.
pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    match h.case.module.as_str() {
        "RNN" | "LSTM" | "GRU" => recurrent(h),
        "RNNCell" | "LSTMCell" | "GRUCell" => cell(h),
        "MultiheadAttention" => multihead_attention(h),
        "scaled_dot_product_attention" => sdpa(h),
        "TransformerEncoderLayer" | "TransformerDecoderLayer" => transformer(h),
        m => bail!("{m} is not a sequence layer"),
    }
}

/// The weights are overwritten by the case's `params`; the seed only fixes the rest.
fn rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

/// Fails when the case has an input outside `known`.
fn only_inputs(h: &Harness<'_, '_>, known: &[&str]) -> anyhow::Result<()> {
    if let Some(k) = h.case.inputs.keys().find(|k| !known.contains(&k.as_str())) {
        bail!("{} input {k:?} is not handled by this test", h.case.module);
    }
    Ok(())
}

/// A string attribute that must be one of `allowed`.
fn choice<'a>(
    a: &'a Attrs,
    key: &str,
    default: &'a str,
    allowed: &[&str],
) -> anyhow::Result<&'a str> {
    let v = a.str(key, default);
    ensure!(
        allowed.contains(&v),
        "attr {key} = {v:?} is not one of {allowed:?}"
    );
    Ok(v)
}

/// Fails unless the flag is at the one value the layer implements (`add_bias_kv`,
/// `is_causal` hints...).
fn require_bool(a: &Attrs, key: &str, value: bool) -> anyhow::Result<()> {
    ensure!(
        a.bool(key, value) == value,
        "{key} = {} is not supported",
        !value
    );
    Ok(())
}

/// PyTorch's `is_causal` flags of modules are hints that the named mask, which must then
/// be passed, is causal: the mask decides. Fails when the flag is set without it.
fn causal_hint(h: &Harness<'_, '_>, flag: &str, mask: &str) -> anyhow::Result<()> {
    ensure!(
        !h.call_args().bool(flag, false) || h.case.inputs.contains_key(mask),
        "{flag} = true needs the {mask} it describes"
    );
    Ok(())
}

fn nonlinearity(a: &Attrs) -> anyhow::Result<RnnNonlinearity> {
    Ok(
        match choice(a, "nonlinearity", "tanh", &["tanh", "relu"])? {
            "relu" => RnnNonlinearity::Relu,
            _ => RnnNonlinearity::Tanh,
        },
    )
}

/// RNN, LSTM, GRU: `output, h_n = m(x, h0)` / `output, (h_n, c_n) = m(x, (h0, c0))`.
fn recurrent<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let module = h.case.module.as_str();
    let mut known = vec![
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
    ];
    match module {
        "RNN" => known.push("nonlinearity"),
        "LSTM" => known.push("proj_size"),
        _ => {}
    }
    h.only_attrs(&known, &[])?;
    ensure!(
        opt_usize_attr(a, "proj_size")?.unwrap_or(0) == 0,
        "LSTM proj_size is not supported"
    );
    let cfg = RnnConfig {
        num_layers: opt_usize_attr(a, "num_layers")?.unwrap_or(1),
        nonlinearity: nonlinearity(a)?,
        bias: a.bool("bias", true),
        batch_first: a.bool("batch_first", false),
        dropout: a.f64("dropout", 0.0),
        bidirectional: a.bool("bidirectional", false),
        ..RnnConfig::new(usize_attr(a, "input_size")?, usize_attr(a, "hidden_size")?)
    };
    let x = h.input("x")?;
    let (h0, c0) = (h.opt_input("h0"), h.opt_input("c0"));
    match module {
        "LSTM" => {
            only_inputs(h, &["x", "h0", "c0"])?;
            let state = match (h0, c0) {
                (Some(h), Some(c)) => Some(LstmState { h, c }),
                (None, None) => None,
                _ => bail!("LSTM takes both h0 and c0 or neither"),
            };
            let lstm = cfg.lstm(&mut rng())?;
            let (out, s) = h.call(&lstm, (x, state))?;
            Ok(Run::new()
                .output("output", out)
                .output("h_n", s.h)
                .output("c_n", s.c))
        }
        "GRU" => {
            only_inputs(h, &["x", "h0"])?;
            let gru = cfg.gru(&mut rng())?;
            let (out, h_n) = h.call(&gru, (x, h0))?;
            Ok(Run::new().output("output", out).output("h_n", h_n))
        }
        _ => {
            only_inputs(h, &["x", "h0"])?;
            let rnn = cfg.rnn(&mut rng())?;
            let (out, h_n) = h.call(&rnn, (x, h0))?;
            Ok(Run::new().output("output", out).output("h_n", h_n))
        }
    }
}

/// RNNCell, LSTMCell, GRUCell: `h_1 = m(x, hx)` / `h_1, c_1 = m(x, (hx, cx))`.
fn cell<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let module = h.case.module.as_str();
    let mut known = vec!["input_size", "hidden_size", "bias"];
    if module == "RNNCell" {
        known.push("nonlinearity");
    }
    h.only_attrs(&known, &[])?;
    let cfg = CellConfig {
        bias: a.bool("bias", true),
        nonlinearity: nonlinearity(a)?,
        ..CellConfig::new(usize_attr(a, "input_size")?, usize_attr(a, "hidden_size")?)
    };
    let x = h.input("x")?;
    let hx = h.opt_input("hx");
    match module {
        "LSTMCell" => {
            only_inputs(h, &["x", "hx", "cx"])?;
            let state = match (hx, h.opt_input("cx")) {
                (Some(h), Some(c)) => Some(LstmState { h, c }),
                (None, None) => None,
                _ => bail!("LSTMCell takes both hx and cx or neither"),
            };
            let s = h.call(&cfg.lstm_cell(&mut rng())?, (x, state))?;
            Ok(Run::new().output("h_1", s.h).output("c_1", s.c))
        }
        "GRUCell" => {
            only_inputs(h, &["x", "hx"])?;
            let h1 = h.call(&cfg.gru_cell(&mut rng())?, (x, hx))?;
            Ok(Run::new().output("h_1", h1))
        }
        _ => {
            only_inputs(h, &["x", "hx"])?;
            let h1 = h.call(&cfg.rnn_cell(&mut rng())?, (x, hx))?;
            Ok(Run::new().output("h_1", h1))
        }
    }
}

/// How PyTorch reads a boolean mask: `True` = may not attend (`nn.MultiheadAttention`
/// and the transformer layers) or `True` = may attend (`F.scaled_dot_product_attention`,
/// the opposite convention, which a typed [`BoolMask`] makes explicit).
#[derive(Clone, Copy, PartialEq)]
enum Polarity {
    TrueBlocks,
    TrueAllows,
}

/// Mask input `name`, if present: int64 0/1 as a [`BoolMask`] (PyTorch's `mask.bool()`,
/// read with `polarity`), float64 as an additive constant.
fn mask<'t>(
    h: &Harness<'_, 't>,
    name: &str,
    polarity: Polarity,
) -> anyhow::Result<Option<AttnMask<'t, f64>>> {
    let Some(r) = h.case.inputs.get(name) else {
        return Ok(None);
    };
    ensure!(
        !h.case.differentiable.iter().any(|d| d == name),
        "mask {name} is differentiable in the case"
    );
    if r.int {
        ensure!(
            r.data.iter().all(|&v| v == 0.0 || v == 1.0),
            "bool mask {name} holds values other than 0 and 1"
        );
        let set: Vec<bool> = r.data.iter().map(|&v| v != 0.0).collect();
        let m = match polarity {
            Polarity::TrueBlocks => BoolMask::from_blocked(&set, r.shape.clone())?,
            Polarity::TrueAllows => BoolMask::from_allowed(&set, r.shape.clone())?,
        };
        Ok(Some(AttnMask::Block(m)))
    } else {
        Ok(Some(AttnMask::Additive(h.input(name)?)))
    }
}

/// `attn_output, attn_weights = m(query, key, value, key_padding_mask=.., attn_mask=..,
/// need_weights=.., average_attn_weights=..)`; a case with input `x` is self-attention.
fn multihead_attention<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let c = h.call_args();
    h.only_attrs(
        &[
            "embed_dim",
            "num_heads",
            "dropout",
            "bias",
            "kdim",
            "vdim",
            "batch_first",
            "add_bias_kv",
            "add_zero_attn",
        ],
        &["need_weights", "average_attn_weights", "is_causal"],
    )?;
    require_bool(a, "add_bias_kv", false)?;
    require_bool(a, "add_zero_attn", false)?;
    causal_hint(h, "is_causal", "attn_mask")?;
    let cfg = MultiheadAttentionConfig {
        dropout: a.f64("dropout", 0.0),
        bias: a.bool("bias", true),
        kdim: opt_usize_attr(a, "kdim")?,
        vdim: opt_usize_attr(a, "vdim")?,
        batch_first: a.bool("batch_first", false),
        ..MultiheadAttentionConfig::new(usize_attr(a, "embed_dim")?, usize_attr(a, "num_heads")?)
    };
    let mha = cfg.init::<f64>(&mut rng())?;
    let masks = ["attn_mask", "key_padding_mask"];
    let mut input = if h.case.inputs.contains_key("x") {
        only_inputs(h, &["x", masks[0], masks[1]])?;
        AttentionInput::self_attention(h.input("x")?)
    } else {
        only_inputs(h, &["query", "key", "value", masks[0], masks[1]])?;
        AttentionInput::new(h.input("query")?, h.input("key")?, h.input("value")?)
    };
    input.attn_mask = mask(h, "attn_mask", Polarity::TrueBlocks)?;
    input.key_padding_mask = mask(h, "key_padding_mask", Polarity::TrueBlocks)?;
    input.weights = match (
        c.bool("need_weights", true),
        c.bool("average_attn_weights", true),
    ) {
        (false, _) => AttnWeights::None,
        (true, true) => AttnWeights::Averaged,
        (true, false) => AttnWeights::PerHead,
    };
    let (out, weights) = h.call(&mha, input)?;
    let mut run = Run::new().output("attn_output", out);
    if let Some(w) = weights {
        run = run.output("attn_weights", w);
    }
    Ok(run)
}

/// `F.scaled_dot_product_attention(q, k, v, attn_mask=.., dropout_p=0, is_causal=..,
/// scale=..)`.
fn sdpa<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let c = h.call_args();
    h.only_attrs(&[], &["dropout_p", "is_causal", "scale", "enable_gqa"])?;
    ensure!(
        c.f64("dropout_p", 0.0) == 0.0,
        "dropout_p must be 0 to compare"
    );
    require_bool(c, "enable_gqa", false)?;
    only_inputs(h, &["q", "k", "v", "attn_mask"])?;
    let scale = c.get("scale").filter(|v| !v.is_null()).map(|v| {
        v.as_f64()
            .ok_or_else(|| anyhow!("call argument scale = {v} is not a number"))
    });
    let out = scaled_dot_product_attention(
        h.input("q")?,
        h.input("k")?,
        h.input("v")?,
        mask(h, "attn_mask", Polarity::TrueAllows)?,
        c.bool("is_causal", false),
        scale.transpose()?,
    )?;
    Ok(Run::new().output("output", out))
}

/// TransformerEncoderLayer `output = m(src, src_mask=.., src_key_padding_mask=..)` and
/// TransformerDecoderLayer `output = m(tgt, memory, tgt_mask=.., memory_mask=..,
/// tgt_key_padding_mask=.., memory_key_padding_mask=..)`.
fn transformer<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let decoder = h.case.module == "TransformerDecoderLayer";
    let hints: &[(&str, &str)] = if decoder {
        &[
            ("tgt_is_causal", "tgt_mask"),
            ("memory_is_causal", "memory_mask"),
        ]
    } else {
        &[("is_causal", "src_mask")]
    };
    let call_flags: Vec<&str> = hints.iter().map(|(f, _)| *f).collect();
    h.only_attrs(
        &[
            "d_model",
            "nhead",
            "dim_feedforward",
            "dropout",
            "activation",
            "layer_norm_eps",
            "batch_first",
            "norm_first",
            "bias",
        ],
        &call_flags,
    )?;
    for (flag, mask) in hints {
        causal_hint(h, flag, mask)?;
    }
    let activation = match choice(a, "activation", "relu", &["relu", "gelu"])? {
        "gelu" => FeedForwardActivation::Gelu,
        _ => FeedForwardActivation::Relu,
    };
    let d = TransformerLayerConfig::new(usize_attr(a, "d_model")?, usize_attr(a, "nhead")?);
    let cfg = TransformerLayerConfig {
        dim_feedforward: opt_usize_attr(a, "dim_feedforward")?.unwrap_or(d.dim_feedforward),
        dropout: a.f64("dropout", d.dropout),
        activation,
        layer_norm_eps: a.f64("layer_norm_eps", d.layer_norm_eps),
        batch_first: a.bool("batch_first", d.batch_first),
        norm_first: a.bool("norm_first", d.norm_first),
        bias: a.bool("bias", d.bias),
        ..d
    };
    let out: Var<'t, f64> = if decoder {
        only_inputs(
            h,
            &[
                "tgt",
                "memory",
                "tgt_mask",
                "memory_mask",
                "tgt_key_padding_mask",
                "memory_key_padding_mask",
            ],
        )?;
        let input = DecoderInput {
            tgt_mask: mask(h, "tgt_mask", Polarity::TrueBlocks)?,
            memory_mask: mask(h, "memory_mask", Polarity::TrueBlocks)?,
            tgt_key_padding_mask: mask(h, "tgt_key_padding_mask", Polarity::TrueBlocks)?,
            memory_key_padding_mask: mask(h, "memory_key_padding_mask", Polarity::TrueBlocks)?,
            ..DecoderInput::new(h.input("tgt")?, h.input("memory")?)
        };
        h.call(&cfg.decoder::<f64>(&mut rng())?, input)?
    } else {
        only_inputs(h, &["src", "src_mask", "src_key_padding_mask"])?;
        let input = EncoderInput {
            src_mask: mask(h, "src_mask", Polarity::TrueBlocks)?,
            src_key_padding_mask: mask(h, "src_key_padding_mask", Polarity::TrueBlocks)?,
            ..EncoderInput::new(h.input("src")?)
        };
        h.call(&cfg.encoder::<f64>(&mut rng())?, input)?
    };
    Ok(Run::new().output("output", out))
}
