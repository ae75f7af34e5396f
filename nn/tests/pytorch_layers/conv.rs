//! Conv1d, Conv2d, ConvTranspose1d and ConvTranspose2d.

use anyhow::{bail, ensure};
use nn::{Conv1dConfig, Conv2dConfig, ConvTranspose1dConfig, ConvTranspose2dConfig};

use super::common::{rng, tuple_attr, usize_attr, Harness, Run};

/// The modules of this family.
pub const MODULES: &[&str] = &["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"];

const CONV_ATTRS: &[&str] = &[
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "padding_mode",
    "output_padding",
];

/// Builds and calls the case's module.
pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let module = h.case.module.as_str();
    let transposed = module.starts_with("ConvTranspose");
    let known = if transposed {
        CONV_ATTRS
    } else {
        &CONV_ATTRS[..CONV_ATTRS.len() - 1]
    };
    h.only_attrs(known, &[])?;
    ensure!(
        a.str("padding_mode", "zeros") == "zeros",
        "padding_mode {} is not supported",
        a.str("padding_mode", "zeros")
    );
    let (ci, co) = (
        usize_attr(a, "in_channels")?,
        usize_attr(a, "out_channels")?,
    );
    let groups = a.int("groups").map_or(Ok(1), usize::try_from)?;
    let bias = a.bool("bias", true);
    let x = h.input("x")?;
    let y = match module {
        "Conv1d" => {
            let m = Conv1dConfig {
                stride: tuple_attr::<1>(a, "stride", [1])?[0],
                padding: tuple_attr::<1>(a, "padding", [0])?[0],
                dilation: tuple_attr::<1>(a, "dilation", [1])?[0],
                groups,
                bias,
                ..Conv1dConfig::new(ci, co, tuple_attr::<1>(a, "kernel_size", [0])?[0])
            }
            .init::<f64>(&mut rng())?;
            h.call(&m, x)?
        }
        "Conv2d" => {
            let pair = |k, d| tuple_attr::<2>(a, k, d).map(|[p, q]| (p, q));
            let m = Conv2dConfig {
                kernel_size: pair("kernel_size", [0, 0])?,
                stride: pair("stride", [1, 1])?,
                padding: pair("padding", [0, 0])?,
                dilation: pair("dilation", [1, 1])?,
                groups,
                bias,
                ..Conv2dConfig::new(ci, co, 1)
            }
            .init::<f64>(&mut rng())?;
            h.call(&m, x)?
        }
        "ConvTranspose1d" => {
            let one = |k, d| tuple_attr::<1>(a, k, [d]).map(|[v]| v);
            let m = ConvTranspose1dConfig {
                stride: one("stride", 1)?,
                padding: one("padding", 0)?,
                output_padding: one("output_padding", 0)?,
                dilation: one("dilation", 1)?,
                groups,
                bias,
                ..ConvTranspose1dConfig::new(ci, co, one("kernel_size", 0)?)
            }
            .init::<f64>(&mut rng())?;
            h.call(&m, x)?
        }
        "ConvTranspose2d" => {
            let pair = |k, d| tuple_attr::<2>(a, k, d).map(|[p, q]| (p, q));
            let m = ConvTranspose2dConfig {
                kernel_size: pair("kernel_size", [0, 0])?,
                stride: pair("stride", [1, 1])?,
                padding: pair("padding", [0, 0])?,
                output_padding: pair("output_padding", [0, 0])?,
                dilation: pair("dilation", [1, 1])?,
                groups,
                bias,
                ..ConvTranspose2dConfig::new(ci, co, 1)
            }
            .init::<f64>(&mut rng())?;
            h.call(&m, x)?
        }
        m => bail!("{m} is not in this family"),
    };
    Ok(Run::new().output("output", y))
}
