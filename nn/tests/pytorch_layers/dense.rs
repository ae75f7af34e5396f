//! Linear, Embedding and PReLU.

use anyhow::{bail, ensure};
use nn::{Embedding, Linear, LinearConfig, PRelu};

use super::common::{opt_usize_attr, rng, usize_attr, Harness, Run};

/// The modules of this family.
pub const MODULES: &[&str] = &["Linear", "Embedding", "PReLU"];

/// Builds and calls the case's module.
pub fn run<'t>(h: &Harness<'_, 't>) -> anyhow::Result<Run<'t>> {
    let a = h.attrs();
    match h.case.module.as_str() {
        "Linear" => {
            h.only_attrs(&["in_features", "out_features", "bias"], &[])?;
            let fc: Linear<f64> = LinearConfig {
                bias: a.bool("bias", true),
                ..LinearConfig::new(
                    usize_attr(a, "in_features")?,
                    usize_attr(a, "out_features")?,
                )
            }
            .init(&mut rng())?;
            Ok(Run::new().output("output", h.call(&fc, h.input("x")?)?))
        }
        "Embedding" => {
            h.only_attrs(
                &[
                    "num_embeddings",
                    "embedding_dim",
                    "padding_idx",
                    "max_norm",
                    "scale_grad_by_freq",
                    "sparse",
                ],
                &[],
            )?;
            ensure!(a.get("max_norm").is_none(), "max_norm is not supported");
            ensure!(
                !a.bool("scale_grad_by_freq", false),
                "scale_grad_by_freq is not supported"
            );
            let n = usize_attr(a, "num_embeddings")?;
            let mut e = Embedding::<f64>::new(n, usize_attr(a, "embedding_dim")?, &mut rng())?;
            // PyTorch accepts a negative padding_idx, counted from the end.
            if let Some(p) = a.int("padding_idx") {
                let p = if p < 0 { p + n as i64 } else { p };
                e = e.with_padding_idx(usize::try_from(p)?)?;
            }
            // The module's own forward, which takes the int64 indices as a float tensor.
            Ok(Run::new().output("output", h.call(&e, h.input("indices")?)?))
        }
        "PReLU" => {
            h.only_attrs(&["num_parameters", "init"], &[])?;
            let n = opt_usize_attr(a, "num_parameters")?.unwrap_or(1);
            let m = PRelu::<f64>::new(n, a.f64("init", 0.25))?;
            Ok(Run::new().output("output", h.call(&m, h.input("x")?)?))
        }
        m => bail!("{m} is not in this family"),
    }
}
