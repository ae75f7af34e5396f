//! BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm and RMSNorm.

use anyhow::{anyhow, bail};
use autograd::testing::reference::Attrs;
use nn::{BatchNorm1d, BatchNorm2d, BatchNormConfig, GroupNorm, LayerNormConfig, RmsNorm};

use super::common::{usize_attr, Harness, Run};

/// The modules of this family.
pub const MODULES: &[&str] = &[
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "RMSNorm",
];

/// `normalized_shape`: one size or a list.
fn shape_attr(a: &Attrs) -> anyhow::Result<Vec<usize>> {
    a.get("normalized_shape")
        .ok_or_else(|| anyhow!("missing attr normalized_shape"))?;
    a.ints("normalized_shape")
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| anyhow!("negative size {d}")))
        .collect()
}

/// Builds and calls the case's module.
pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    let x = h.input("x")?;
    let y = match h.case.module.as_str() {
        m @ ("BatchNorm1d" | "BatchNorm2d") => {
            h.only_attrs(
                &[
                    "num_features",
                    "eps",
                    "momentum",
                    "affine",
                    "track_running_stats",
                ],
                &[],
            )?;
            let cfg = BatchNormConfig {
                eps: a.f64("eps", 1e-5),
                // `momentum=None` (null) is PyTorch's cumulative average.
                momentum: match a.0.get("momentum") {
                    None => Some(0.1),
                    Some(v) if v.is_null() => None,
                    Some(v) => Some(v.as_f64().ok_or_else(|| anyhow!("momentum {v}"))?),
                },
                affine: a.bool("affine", true),
                track_running_stats: a.bool("track_running_stats", true),
                ..BatchNormConfig::new(usize_attr(a, "num_features")?)
            };
            if m == "BatchNorm1d" {
                let bn: BatchNorm1d<f64> = cfg.init()?;
                h.call(&bn, x)?
            } else {
                let bn: BatchNorm2d<f64> = cfg.init()?;
                h.call(&bn, x)?
            }
        }
        "LayerNorm" => {
            h.only_attrs(
                &["normalized_shape", "eps", "elementwise_affine", "bias"],
                &[],
            )?;
            let ln = LayerNormConfig {
                eps: a.f64("eps", 1e-5),
                elementwise_affine: a.bool("elementwise_affine", true),
                bias: a.bool("bias", true),
                ..LayerNormConfig::new(&shape_attr(a)?)
            }
            .init::<f64>()?;
            h.call(&ln, x)?
        }
        "GroupNorm" => {
            h.only_attrs(&["num_groups", "num_channels", "eps", "affine"], &[])?;
            let gn = GroupNorm::<f64>::with_options(
                usize_attr(a, "num_groups")?,
                usize_attr(a, "num_channels")?,
                a.f64("eps", 1e-5),
                a.bool("affine", true),
            )?;
            h.call(&gn, x)?
        }
        "RMSNorm" => {
            h.only_attrs(&["normalized_shape", "eps", "elementwise_affine"], &[])?;
            // eps None (null) means the dtype's machine epsilon, in PyTorch and here.
            let eps = a.get("eps").map(|_| a.f64("eps", 0.0));
            let norm = RmsNorm::<f64>::with_options(
                &shape_attr(a)?,
                eps,
                a.bool("elementwise_affine", true),
            )?;
            h.call(&norm, x)?
        }
        m => bail!("{m} is not in this family"),
    };
    Ok(Run::new().output("output", y))
}
