//! Transformer encoder and decoder layers: PyTorch's names, gradient checks, fully padded
//! sequences, dropout in evaluation, typed errors.

use super::*;

fn layer_cfg(
    norm_first: bool,
    activation: FeedForwardActivation,
    batch_first: bool,
) -> TransformerLayerConfig {
    TransformerLayerConfig {
        dim_feedforward: 6,
        dropout: 0.0,
        activation,
        batch_first,
        norm_first,
        ..TransformerLayerConfig::new(4, 2)
    }
}

#[test]
fn transformer_layers_name_their_parameters_as_pytorch() {
    let enc = layer_cfg(false, FeedForwardActivation::Relu, false)
        .encoder::<f64>(&mut rng(0))
        .unwrap();
    let names: Vec<String> = enc.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "self_attn.in_proj_weight",
            "self_attn.in_proj_bias",
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "linear1.weight",
            "linear1.bias",
            "linear2.weight",
            "linear2.bias",
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias"
        ]
    );
    let dec = layer_cfg(false, FeedForwardActivation::Relu, false)
        .decoder::<f64>(&mut rng(0))
        .unwrap();
    let names: Vec<String> = dec.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[4], "multihead_attn.in_proj_weight");
    assert_eq!(names.last().unwrap(), "norm3.bias");
    assert_eq!(names.len(), 18);
}

#[test]
fn transformer_layers_gradcheck_in_inputs_and_every_parameter() {
    let mut r = rng(30);
    for (norm_first, act, bf) in [
        (false, FeedForwardActivation::Relu, false),
        (true, FeedForwardActivation::Gelu, true),
    ] {
        let cfg = layer_cfg(norm_first, act, bf);
        let enc = cfg.encoder::<f64>(&mut r).unwrap();
        let (n, l) = (2, 3);
        let x = if bf {
            Tensor::randn([n, l, 4], &mut r).unwrap()
        } else {
            Tensor::randn([l, n, 4], &mut r).unwrap()
        };
        let pad = BoolMask::key_padding(&[3, 2], 3).unwrap();
        gradcheck_module(
            &enc,
            std::slice::from_ref(&x),
            |v| {
                EncoderInput::new(v[0])
                    .with_mask(BoolMask::causal(l, l))
                    .with_key_padding_mask(pad.clone())
            },
            &opts(),
        )
        .unwrap();
        let dec = cfg.decoder::<f64>(&mut r).unwrap();
        let mem = if bf {
            Tensor::randn([n, 4, 4], &mut r).unwrap()
        } else {
            Tensor::randn([4, n, 4], &mut r).unwrap()
        };
        let mem_pad = BoolMask::key_padding(&[4, 3], 4).unwrap();
        gradcheck_module(
            &dec,
            &[x, mem],
            |v| {
                DecoderInput::new(v[0], v[1])
                    .with_tgt_mask(BoolMask::causal(l, l))
                    .with_memory_key_padding_mask(mem_pad.clone())
            },
            &opts(),
        )
        .unwrap();
    }
}

#[test]
fn transformer_layers_gradgradcheck_in_inputs_and_every_parameter() {
    let mut r = rng(31);
    // the smallest layers that still have every part: d_model 2, one head, 2 hidden units
    for (norm_first, act) in [
        (false, FeedForwardActivation::Gelu),
        (true, FeedForwardActivation::Relu),
    ] {
        let cfg = TransformerLayerConfig {
            dim_feedforward: 2,
            dropout: 0.0,
            activation: act,
            norm_first,
            ..TransformerLayerConfig::new(2, 1)
        };
        let (l, n) = (2, 1);
        let x = Tensor::randn([l, n, 2], &mut r).unwrap();
        let enc = cfg.encoder::<f64>(&mut r).unwrap();
        gradgradcheck_module(
            &enc,
            std::slice::from_ref(&x),
            |v| EncoderInput::new(v[0]).with_mask(BoolMask::causal(l, l)),
            &opts(),
        )
        .unwrap();
        let dec = cfg.decoder::<f64>(&mut r).unwrap();
        let mem = Tensor::randn([3, n, 2], &mut r).unwrap();
        gradgradcheck_module(
            &dec,
            &[x, mem],
            |v| DecoderInput::new(v[0], v[1]).with_tgt_mask(BoolMask::causal(l, l)),
            &opts(),
        )
        .unwrap();
    }
}

#[test]
fn a_fully_padded_sequence_keeps_a_transformer_batch_finite() {
    let enc = layer_cfg(true, FeedForwardActivation::Gelu, true)
        .encoder::<f64>(&mut rng(31))
        .unwrap();
    let x = Tensor::randn([2, 3, 4], &mut rng(32)).unwrap();
    let pad = BoolMask::key_padding(&[3, 0], 3).unwrap();
    let tape = Tape::new();
    let y = Ctx::new(&tape)
        .call(
            &enc,
            EncoderInput::new(tape.constant(x.clone())).with_key_padding_mask(pad.clone()),
        )
        .unwrap();
    assert!(y.value().as_slice().iter().all(|v| v.is_finite()));
    enc.zero_grad();
    y.square().sum().backward().unwrap();
    for (name, p) in enc.named_parameters() {
        assert!(
            p.grad().unwrap().as_slice().iter().all(|v| v.is_finite()),
            "{name}"
        );
    }
    gradcheck_module(
        &enc,
        &[x],
        |v| EncoderInput::new(v[0]).with_key_padding_mask(pad.clone()),
        &opts(),
    )
    .unwrap();
}

#[test]
fn transformer_dropout_is_off_in_evaluation() {
    let enc = TransformerLayerConfig {
        dim_feedforward: 8,
        ..TransformerLayerConfig::new(4, 2)
    }
    .encoder::<f64>(&mut rng(33))
    .unwrap();
    let x = Tensor::randn([3, 2, 4], &mut rng(34)).unwrap();
    let run = || {
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(&enc, EncoderInput::new(tape.constant(x.clone())))
            .unwrap();
        y.value()
    };
    assert_ne!(run(), run());
    enc.eval();
    assert_eq!(run(), run());
}

#[test]
fn transformer_layers_reject_bad_inputs() {
    let cfg = layer_cfg(false, FeedForwardActivation::Relu, true);
    let dec = cfg.decoder::<f64>(&mut rng(0)).unwrap();
    let tape = Tape::<f64>::new();
    let t = |dims: &[usize]| tape.constant(Tensor::zeros(dims.to_vec()).unwrap());
    let e = Ctx::new(&tape)
        .call(&dec, DecoderInput::new(t(&[2, 3, 5]), t(&[2, 4, 4])))
        .unwrap_err();
    assert!(e.to_string().contains("tgt [N, L, 4]"), "{e}");
    let e = Ctx::new(&tape)
        .call(&dec, DecoderInput::new(t(&[2, 3, 4]), t(&[3, 4, 4])))
        .unwrap_err();
    assert!(e.to_string().contains("batch size 2"), "{e}");
    assert!(TransformerLayerConfig::new(6, 4)
        .encoder::<f64>(&mut rng(0))
        .is_err());
    let e = Ctx::new(&tape)
        .call(
            &dec,
            DecoderInput::new(t(&[2, 3, 4]), t(&[2, 4, 4])).with_tgt_mask(BoolMask::causal(3, 4)),
        )
        .unwrap_err();
    // the attention layer inside names itself and its path
    let m = e.module().unwrap();
    assert_eq!(
        (m.layer, m.path.as_str()),
        ("MultiheadAttention", "self_attn"),
        "{e}"
    );
    assert!(e.to_string().contains("attn_mask [3, 3]"), "{e}");
}
