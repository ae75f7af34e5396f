//! Bad inputs and bad settings of every convolution, pooling, resampling, normalisation
//! and embedding layer are typed errors, never panics: a bad input names the layer, its
//! path in the model, the shape it got and the caller's line; a bad setting names the
//! layer and the constructor's line.

use autograd::{Tape, Tensor};
use nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig,
    ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d, ConvTranspose2dConfig, Ctx, Embedding,
    Error, GroupNorm, Identity, Layer, LayerNorm, Linear, MaxPool2d, PRelu, RmsNorm, Sequential,
    Upsample, UpsampleMode,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

/// `layer` as the second entry of a model, fed an input of `shape`: the error must name
/// `name` at path `"1"` and this call's line, with the shape in the message.
fn fails_in_place(layer: Box<dyn Layer<f64>>, name: &str, shape: &[usize]) {
    let mut model = Sequential::new().append(Identity);
    model.push_boxed(layer);
    let tape = Tape::new();
    let x = tape.constant(Tensor::zeros(shape.to_vec()).unwrap());
    let line = line!() + 1;
    let e = Ctx::new(&tape).call(&model, x).unwrap_err();
    let m = e
        .module()
        .unwrap_or_else(|| panic!("{name}: no module context in {e}"));
    assert_eq!((m.layer, m.path.as_str()), (name, "1"), "{e}");
    assert_eq!(
        (m.location.file(), m.location.line()),
        (file!(), line),
        "{e}"
    );
    let text = e.to_string();
    let dims = format!("{shape:?}");
    assert!(
        text.contains(&dims),
        "{name}: the message lacks the shape {dims}: {text}"
    );
    match e.innermost() {
        // the layer's own check: names the layer and the caller's line
        Error::InputShape {
            layer, location, ..
        } => {
            assert_eq!(*layer, name, "{e}");
            assert_eq!(location.line(), line, "{e}");
        }
        // an op's check, reached through the layer: names the op and the shape
        Error::Autograd(a) => assert!(a.location().is_some(), "{e}"),
        other => panic!("{name}: unexpected {other}"),
    }
}

/// A layer, the name its errors must carry, and an input shape it must reject.
type BadInput = (Box<dyn Layer<f64>>, &'static str, Vec<usize>);

#[test]
fn bad_inputs_name_the_layer_its_path_the_shape_and_the_line() {
    let conv1 = || Conv1d::<f64>::new(4, 6, 3, &mut rng()).unwrap();
    let cases: Vec<BadInput> = vec![
        (Box::new(conv1()), "Conv1d", vec![2, 3, 8]), // wrong channels
        (Box::new(conv1()), "Conv1d", vec![1, 4, 2]), // kernel larger than input
        (Box::new(conv1()), "Conv1d", vec![1, 4, 0]), // zero-length
        (Box::new(conv1()), "Conv1d", vec![4, 8]),    // wrong rank
        (
            Box::new(Conv2d::<f64>::new(2, 2, 3, &mut rng()).unwrap()),
            "Conv2d",
            vec![1, 2, 8],
        ),
        (
            Box::new(ConvTranspose2d::<f64>::new(2, 3, 2, &mut rng()).unwrap()),
            "ConvTranspose2d",
            vec![1, 3, 4, 4],
        ),
        (
            Box::new(
                ConvTranspose1dConfig {
                    padding: 4,
                    ..ConvTranspose1dConfig::new(2, 2, 3)
                }
                .init::<f64>(&mut rng())
                .unwrap(),
            ),
            "ConvTranspose1d",
            vec![1, 2, 2], // the padding eats the whole output
        ),
        (Box::new(MaxPool2d::new(5)), "MaxPool2d", vec![1, 1, 3, 3]), // kernel too large
        (Box::new(MaxPool2d::new(0)), "MaxPool2d", vec![1, 1, 3, 3]), // zero kernel
        (
            Box::new(MaxPool2d {
                dilation: (1, 0),
                ..MaxPool2d::new(2)
            }),
            "MaxPool2d",
            vec![1, 1, 3, 3],
        ),
        (
            Box::new(ConvTranspose1d::<f64>::new(3, 2, 2, &mut rng()).unwrap()),
            "ConvTranspose1d",
            vec![1, 2, 4], // 2 channels into a layer built for 3
        ),
        (
            Box::new(AvgPool2d {
                stride: Some((0, 1)),
                ..AvgPool2d::new(2)
            }),
            "AvgPool2d",
            vec![1, 1, 3, 3],
        ),
        (
            Box::new(AdaptiveAvgPool2d::new(2, 2)),
            "AdaptiveAvgPool2d",
            vec![3, 3],
        ),
        (
            Box::new(Upsample::scale(2.0, UpsampleMode::Nearest)),
            "Upsample",
            vec![1, 3, 3],
        ),
        (
            Box::new(BatchNorm2d::<f64>::new(3).unwrap()),
            "BatchNorm2d",
            vec![2, 4, 2, 2],
        ),
        (
            Box::new(GroupNorm::<f64>::new(2, 4).unwrap()),
            "GroupNorm",
            vec![2, 6, 3],
        ),
        (
            Box::new(LayerNorm::<f64>::new(&[4, 5]).unwrap()),
            "LayerNorm",
            vec![2, 5, 4],
        ),
        (
            Box::new(RmsNorm::<f64>::new(&[8]).unwrap()),
            "RmsNorm",
            vec![2, 7],
        ),
        (
            Box::new(PRelu::<f64>::new(4, 0.25).unwrap()),
            "PRelu",
            vec![2, 3],
        ),
        (
            Box::new(Linear::<f64>::new(3, 2, &mut rng()).unwrap()),
            "Linear",
            vec![2, 4],
        ),
    ];
    for (layer, name, shape) in cases {
        fails_in_place(layer, name, &shape);
    }
    // an index past the table
    let model = Sequential::new()
        .append(Identity)
        .append(Embedding::<f64>::new(3, 2, &mut rng()).unwrap());
    let tape = Tape::new();
    let x = tape.constant(Tensor::from_vec(vec![0.0, 3.0], [2]).unwrap());
    let line = line!() + 1;
    let e = Ctx::new(&tape).call(&model, x).unwrap_err();
    let m = e.module().unwrap();
    assert_eq!(
        (m.layer, m.path.as_str(), m.location.line()),
        ("Embedding", "1", line)
    );
    assert!(matches!(
        e.innermost(),
        Error::InputShape {
            layer: "Embedding",
            ..
        }
    ));
}

/// Each constructor call returns `InvalidConfig` naming the layer and its own line.
#[test]
fn bad_settings_name_the_layer_and_the_constructors_line() {
    fn at(e: Error, name: &str, line: u32) {
        match e {
            Error::InvalidConfig { what, location, .. } => {
                assert_eq!(what, name);
                assert_eq!((location.file(), location.line()), (file!(), line));
            }
            other => panic!("{name}: {other}"),
        }
    }
    let base = Conv1dConfig::new(2, 2, 3);
    let bad = [
        Conv1dConfig { stride: 0, ..base },
        Conv1dConfig {
            dilation: 0,
            ..base
        },
        // 3 input channels in 2 groups
        Conv1dConfig {
            groups: 2,
            in_channels: 3,
            ..base
        },
    ];
    for cfg in bad {
        let line = line!() + 1;
        let e = cfg.init::<f64>(&mut rng());
        at(e.unwrap_err(), "Conv1d", line);
    }
    let base2 = Conv2dConfig::new(2, 2, 3);
    let bad2 = [
        Conv2dConfig {
            stride: (1, 0),
            ..base2
        },
        Conv2dConfig {
            dilation: (0, 1),
            ..base2
        },
        Conv2dConfig {
            kernel_size: (0, 3),
            ..base2
        },
        // a kernel whose element count overflows
        Conv2dConfig {
            kernel_size: (usize::MAX, 2),
            ..base2
        },
    ];
    for cfg in bad2 {
        let line = line!() + 1;
        let e = cfg.init::<f64>(&mut rng());
        at(e.unwrap_err(), "Conv2d", line);
    }
    // output_padding 2 is neither below the stride 2 nor the dilation 1
    let cfg = ConvTranspose2dConfig {
        stride: (2, 1),
        output_padding: (2, 0),
        ..ConvTranspose2dConfig::new(2, 2, 3)
    };
    let line = line!() + 1;
    let e = cfg.init::<f64>(&mut rng());
    at(e.unwrap_err(), "ConvTranspose2d", line);
    let line = line!() + 1;
    let e = ConvTranspose1d::<f64>::new(2, 2, 0, &mut rng());
    at(e.unwrap_err(), "ConvTranspose1d", line);
    let line = line!() + 1;
    let e = GroupNorm::<f64>::new(3, 4);
    at(e.unwrap_err(), "GroupNorm", line);
    let line = line!() + 1;
    let e = RmsNorm::<f64>::with_options(&[4], Some(f64::NAN), true);
    at(e.unwrap_err(), "RmsNorm", line);
    let table = Embedding::<f64>::new(3, 2, &mut rng()).unwrap();
    let line = line!() + 1;
    let e = table.with_padding_idx(3);
    at(e.unwrap_err(), "Embedding", line);
    // Upsample checks its settings when called: the call's line
    let up = Upsample {
        size: Some((4, 4)),
        ..Upsample::scale(2.0, UpsampleMode::Nearest)
    };
    let tape = Tape::<f64>::new();
    let x = tape.constant(Tensor::zeros([1, 1, 2, 2]).unwrap());
    let line = line!() + 1;
    let e = Ctx::new(&tape).call(&up, x).unwrap_err();
    assert_eq!(e.module().unwrap().location.line(), line);
    assert!(matches!(
        e.innermost(),
        Error::InvalidConfig {
            what: "Upsample",
            ..
        }
    ));
}
