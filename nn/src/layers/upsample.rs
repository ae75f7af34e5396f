//! [`Upsample`]: resizing NCHW images by nearest-neighbour or bilinear interpolation, as
//! `nn.Upsample`.

use autograd::{Float, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward, Plain};
use crate::Module;

/// How [`Upsample`] interpolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Copy the nearest source pixel (`mode='nearest'`).
    Nearest,
    /// Linear in each axis (`mode='bilinear'`); `align_corners` maps the corner pixels'
    /// centres onto each other instead of the image edges (PyTorch's default: false).
    Bilinear {
        /// PyTorch's `align_corners`.
        align_corners: bool,
    },
}

impl Plain for UpsampleMode {}

/// `nn.Upsample`: resizes `[N, C, H, W]` to a fixed `size`, or by `scale_factor`
/// (`H' = ⌊H·scale⌋`, and the scale itself maps output to source coordinates, as PyTorch
/// does when it is given). Exactly one of the two is set.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Ctx, Upsample, UpsampleMode};
/// let up = Upsample::scale(2.0, UpsampleMode::Nearest);
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(Tensor::from_vec(vec![1., 2.], [1, 1, 1, 2])?);
/// let y = Ctx::new(&tape).call(&up, x)?;
/// assert_eq!(y.value().to_vec(), [1., 1., 2., 2., 1., 1., 2., 2.]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Module)]
pub struct Upsample {
    /// The output size (rows, cols), or `None` to use `scale_factor`.
    pub size: Option<(usize, usize)>,
    /// Scale factors (rows, cols), or `None` to use `size`.
    pub scale_factor: Option<(f64, f64)>,
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
}

/// An output size `(rows, cols)`, and the scale factors it came from, if any.
type Target = ((usize, usize), Option<(f64, f64)>);

impl Upsample {
    /// Scales both axes by `factor`.
    pub fn scale(factor: f64, mode: UpsampleMode) -> Self {
        Upsample {
            size: None,
            scale_factor: Some((factor, factor)),
            mode,
        }
    }

    /// Resizes to `rows × cols`.
    pub fn size(rows: usize, cols: usize, mode: UpsampleMode) -> Self {
        Upsample {
            size: Some((rows, cols)),
            scale_factor: None,
            mode,
        }
    }

    /// The output size for an input of `rows × cols`, and the scales to map coordinates.
    #[track_caller]
    fn target(&self, rows: usize, cols: usize) -> Result<Target> {
        match (self.size, self.scale_factor) {
            (Some(size), None) => Ok((size, None)),
            (None, Some((sh, sw))) => {
                let scaled = |n: usize, s: f64| {
                    let v = (n as f64 * s).floor();
                    (s.is_finite() && s > 0.0 && v >= 1.0 && v < usize::MAX as f64)
                        .then_some(v as usize)
                };
                match (scaled(rows, sh), scaled(cols, sw)) {
                    (Some(h), Some(w)) => Ok(((h, w), Some((sh, sw)))),
                    _ => Err(Error::config(
                        "Upsample",
                        format!(
                            "scale factors ({sh}, {sw}) give no valid output size for a {rows}x{cols} input"
                        ),
                    )),
                }
            }
            _ => Err(Error::config(
                "Upsample",
                "exactly one of size and scale_factor must be set",
            )),
        }
    }
}

impl<T: Float> Forward<T> for Upsample {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = x.shape();
        if s.rank() != 4 || s.contains(&0) {
            return Err(Error::input(
                "Upsample",
                "[N, C, H, W] with no zero-length dimension",
                s,
            ));
        }
        let (size, scales) = self.target(s[2], s[3])?;
        if size.0 == 0 || size.1 == 0 {
            return Err(Error::config(
                "Upsample",
                format!("output size {size:?} must be positive"),
            ));
        }
        Ok(match self.mode {
            UpsampleMode::Nearest => x.upsample_nearest2d(size, scales)?,
            UpsampleMode::Bilinear { align_corners } => {
                x.upsample_bilinear2d(size, align_corners, scales)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{gradcheck_module, gradgradcheck_module};
    use autograd::{GradcheckOptions, Tape, Tensor};

    #[test]
    fn upsample_gradchecks_in_both_modes() {
        let x = Tensor::from_fn([1, 2, 3, 2], |i| (i as f64 * 0.37).sin()).unwrap();
        let o = GradcheckOptions::default();
        for mode in [
            UpsampleMode::Nearest,
            UpsampleMode::Bilinear {
                align_corners: false,
            },
            UpsampleMode::Bilinear {
                align_corners: true,
            },
        ] {
            let xs = std::slice::from_ref(&x);
            gradcheck_module(&Upsample::scale(2.0, mode), xs, |v| v[0], &o).unwrap();
            // a size that is no multiple of the input's, smaller in one axis
            gradcheck_module(&Upsample::size(5, 1, mode), xs, |v| v[0], &o).unwrap();
        }
    }

    #[test]
    fn upsample_rejects_bad_settings() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::ones([1, 1, 2, 2]).unwrap());
        let both = Upsample {
            size: Some((4, 4)),
            ..Upsample::scale(2.0, UpsampleMode::Nearest)
        };
        assert!(matches!(
            both.forward(&Ctx::new(&tape), x),
            Err(Error::InvalidConfig { .. })
        ));
        let shrink = Upsample::scale(0.1, UpsampleMode::Nearest);
        assert!(shrink.forward(&Ctx::new(&tape), x).is_err());
        let nan = Upsample::scale(f64::NAN, UpsampleMode::Nearest);
        assert!(nan.forward(&Ctx::new(&tape), x).is_err());
        let flat = tape.constant(Tensor::ones([2, 2]).unwrap());
        assert!(matches!(
            Upsample::scale(2.0, UpsampleMode::Nearest).forward(&Ctx::new(&tape), flat),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn upsample_gradgradchecks() {
        let x = Tensor::from_fn([1, 1, 2, 3], |i| (i as f64 * 0.53).cos()).unwrap();
        let o = GradcheckOptions::default();
        let bilinear = UpsampleMode::Bilinear {
            align_corners: false,
        };
        for m in [
            Upsample::scale(2.0, UpsampleMode::Nearest),
            Upsample::size(3, 4, bilinear),
        ] {
            gradgradcheck_module(&m, std::slice::from_ref(&x), |v| v[0].square(), &o).unwrap();
        }
    }
}
