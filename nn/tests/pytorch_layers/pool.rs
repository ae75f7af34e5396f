//! AvgPool2d, MaxPool2d (with indices), AdaptiveAvgPool2d and Upsample.

use anyhow::{anyhow, bail, ensure};
use nn::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, Upsample, UpsampleMode};
use serde_json::Value;

use super::common::{opt_usize_attr, tuple_attr, Harness, Run};

/// The modules of this family.
pub const MODULES: &[&str] = &["AvgPool2d", "MaxPool2d", "AdaptiveAvgPool2d", "Upsample"];

fn pair(t: [usize; 2]) -> (usize, usize) {
    (t[0], t[1])
}

/// One size or a pair of sizes, each possibly `null` (PyTorch's "keep this size").
fn optional_pair(v: &Value) -> anyhow::Result<(Option<usize>, Option<usize>)> {
    let one = |v: &Value| -> anyhow::Result<Option<usize>> {
        match v {
            Value::Null => Ok(None),
            v => Ok(Some(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| anyhow!("{v} is not a size"))?,
            )),
        }
    };
    match v {
        Value::Array(a) if a.len() == 2 => Ok((one(&a[0])?, one(&a[1])?)),
        v => {
            let n = one(v)?;
            Ok((n, n))
        }
    }
}

/// One factor or a pair of factors.
fn factor_pair(v: &Value) -> anyhow::Result<(f64, f64)> {
    let one = |v: &Value| v.as_f64().ok_or_else(|| anyhow!("{v} is not a factor"));
    match v {
        Value::Array(a) if a.len() == 2 => Ok((one(&a[0])?, one(&a[1])?)),
        v => {
            let f = one(v)?;
            Ok((f, f))
        }
    }
}

/// Builds and calls the case's module.
pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let x = h.input("x")?;
    match h.case.module.as_str() {
        "MaxPool2d" => {
            h.only_attrs(
                &[
                    "kernel_size",
                    "stride",
                    "padding",
                    "dilation",
                    "ceil_mode",
                    "return_indices",
                ],
                &[],
            )?;
            let kernel = pair(tuple_attr(a, "kernel_size", [0, 0])?);
            let m = MaxPool2d {
                kernel_size: kernel,
                stride: a
                    .get("stride")
                    .map(|_| tuple_attr(a, "stride", [0, 0]).map(pair))
                    .transpose()?,
                padding: pair(tuple_attr(a, "padding", [0, 0])?),
                dilation: pair(tuple_attr(a, "dilation", [1, 1])?),
                ceil_mode: a.bool("ceil_mode", false),
            };
            if a.bool("return_indices", false) {
                let cx = h.bind(&m)?;
                let (y, at) = m.forward_with_indices(&cx, x)?;
                let shape = y.dims();
                Ok(Run::new().output("output", y).indices("indices", at, shape))
            } else {
                Ok(Run::new().output("output", h.call(&m, x)?))
            }
        }
        "AvgPool2d" => {
            h.only_attrs(
                &[
                    "kernel_size",
                    "stride",
                    "padding",
                    "ceil_mode",
                    "count_include_pad",
                    "divisor_override",
                ],
                &[],
            )?;
            let m = AvgPool2d {
                kernel_size: pair(tuple_attr(a, "kernel_size", [0, 0])?),
                stride: a
                    .get("stride")
                    .map(|_| tuple_attr(a, "stride", [0, 0]).map(pair))
                    .transpose()?,
                padding: pair(tuple_attr(a, "padding", [0, 0])?),
                ceil_mode: a.bool("ceil_mode", false),
                count_include_pad: a.bool("count_include_pad", true),
                divisor_override: opt_usize_attr(a, "divisor_override")?,
            };
            Ok(Run::new().output("output", h.call(&m, x)?))
        }
        "AdaptiveAvgPool2d" => {
            h.only_attrs(&["output_size"], &[])?;
            let size = a
                .get("output_size")
                .ok_or_else(|| anyhow!("missing attr output_size"))?;
            let m = AdaptiveAvgPool2d {
                output_size: optional_pair(size)?,
            };
            Ok(Run::new().output("output", h.call(&m, x)?))
        }
        "Upsample" => {
            h.only_attrs(
                &[
                    "size",
                    "scale_factor",
                    "mode",
                    "align_corners",
                    "recompute_scale_factor",
                ],
                &[],
            )?;
            ensure!(
                !a.bool("recompute_scale_factor", false),
                "recompute_scale_factor is not supported"
            );
            let mode = match a.str("mode", "nearest") {
                "nearest" => {
                    ensure!(
                        a.get("align_corners").is_none(),
                        "align_corners applies to linear modes only"
                    );
                    UpsampleMode::Nearest
                }
                "bilinear" => UpsampleMode::Bilinear {
                    align_corners: a.bool("align_corners", false),
                },
                m => bail!("Upsample mode {m:?} is not supported"),
            };
            let size = match a.get("size") {
                Some(v) => {
                    let (r, c) = optional_pair(v)?;
                    Some((
                        r.ok_or_else(|| anyhow!("size without rows"))?,
                        c.ok_or_else(|| anyhow!("size without cols"))?,
                    ))
                }
                None => None,
            };
            let m = Upsample {
                size,
                scale_factor: a.get("scale_factor").map(factor_pair).transpose()?,
                mode,
            };
            Ok(Run::new().output("output", h.call(&m, x)?))
        }
        m => bail!("{m} is not in this family"),
    }
}
