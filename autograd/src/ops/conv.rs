//! Convolution and pooling on NCHW tensors, built from im2col windows (a flat gather)
//! followed by a GEMM or a reduction, so their gradients come from the gather's transpose
//! and the matmul rule.

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape, PAD};
use crate::var::Var;

/// Geometry of a 2-d convolution or pooling window (PyTorch's argument names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dArgs {
    /// Step between windows, (rows, cols).
    pub stride: (usize, usize),
    /// Zero padding added on each side, (rows, cols).
    pub padding: (usize, usize),
    /// Spacing between kernel taps, (rows, cols).
    pub dilation: (usize, usize),
    /// Channel groups (1 = dense convolution).
    pub groups: usize,
}

impl Default for Conv2dArgs {
    fn default() -> Self {
        Conv2dArgs {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Output size along one axis, or `None` when the window does not fit.
fn out_len(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    let padded = n + 2 * p;
    (padded >= span && s > 0).then(|| (padded - span) / s + 1)
}

/// Flat im2col indices for `x: [N, C, H, W]` and a `kh × kw` window: the result is laid out
/// `[N, OH, OW, C, kh, kw]`, with [`PAD`] for taps in the padding.
#[track_caller]
fn windows(
    x: &Shape,
    (kh, kw): (usize, usize),
    a: &Conv2dArgs,
    op: &'static str,
) -> Result<(Vec<usize>, usize, usize)> {
    let (n, c, h, w) = (x[0], x[1], x[2], x[3]);
    let oh = out_len(h, kh, a.stride.0, a.padding.0, a.dilation.0);
    let ow = out_len(w, kw, a.stride.1, a.padding.1, a.dilation.1);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(Error::invalid(
            op,
            format!(
                "a {kh}x{kw} window (stride {:?}, padding {:?}, dilation {:?}) does not fit",
                a.stride, a.padding, a.dilation
            ),
            x,
        ));
    };
    let mut idx = Vec::with_capacity(n * oh * ow * c * kh * kw);
    for b in 0..n {
        for y in 0..oh {
            for z in 0..ow {
                for ch in 0..c {
                    let plane = (b * c + ch) * h * w;
                    for i in 0..kh {
                        let r = (y * a.stride.0 + i * a.dilation.0) as isize - a.padding.0 as isize;
                        for j in 0..kw {
                            let q =
                                (z * a.stride.1 + j * a.dilation.1) as isize - a.padding.1 as isize;
                            let inside = r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w;
                            idx.push(if inside {
                                plane + r as usize * w + q as usize
                            } else {
                                PAD
                            });
                        }
                    }
                }
            }
        }
    }
    Ok((idx, oh, ow))
}

#[track_caller]
fn check_rank4(op: &'static str, s: &Shape) -> Result<()> {
    if s.rank() != 4 {
        return Err(Error::invalid(op, "expected an NCHW tensor of rank 4", s));
    }
    Ok(())
}

impl<'t, T: Float> Var<'t, T> {
    /// 2-d cross-correlation (no kernel flip), as `torch.nn.functional.conv2d`: `self` is
    /// `[N, C_in, H, W]`, `weight` is `[C_out, C_in/groups, kH, kW]`, `bias` is `[C_out]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for wrong ranks, channel counts, groups, or a window that
    /// does not fit.
    #[track_caller]
    pub fn conv2d(self, weight: Self, bias: Option<Self>, args: Conv2dArgs) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        check_rank4("conv2d", &xs)?;
        check_rank4("conv2d", &ws)?;
        let g = args.groups;
        if g == 0 || xs[1] % g != 0 || ws[0] % g != 0 || ws[1] * g != xs[1] {
            return Err(Error::invalid(
                "conv2d",
                format!(
                    "input channels {} do not match weight {ws} with {g} groups",
                    xs[1]
                ),
                &xs,
            ));
        }
        if let Some(b) = bias {
            if b.shape().dims() != [ws[0]] {
                return Err(Error::ShapeMismatch {
                    op: "conv2d",
                    expected: Shape::from([ws[0]]),
                    got: b.shape(),
                    location: std::panic::Location::caller(),
                });
            }
        }
        let out = if g == 1 {
            self.conv2d_dense(weight, args)?
        } else {
            let (ci, co) = (xs[1] / g, ws[0] / g);
            let parts = (0..g)
                .map(|k| {
                    self.narrow(1, k * ci, ci)?
                        .conv2d_dense(weight.narrow(0, k * co, co)?, args)
                })
                .collect::<Result<Vec<_>>>()?;
            Var::concat(&parts, 1)?
        };
        match bias {
            Some(b) => out.add(b.reshape([1, ws[0], 1, 1])?),
            None => Ok(out),
        }
    }

    #[track_caller]
    fn conv2d_dense(self, weight: Self, args: Conv2dArgs) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        let (co, kh, kw) = (ws[0], ws[2], ws[3]);
        let (idx, oh, ow) = windows(&xs, (kh, kw), &args, "conv2d")?;
        let n = xs[0];
        let k = xs[1] * kh * kw;
        let cols = self.gather_named("im2col", idx, Shape::from([n * oh * ow, k]), T::zero());
        // [N·OH·OW, K] · [C_out, K]ᵀ in one GEMM, then back to NCHW.
        let y = cols.matmul_t(weight.reshape([co, k])?, false, true)?;
        y.reshape([n, oh * ow, co])?
            .permute(&[0, 2, 1])?
            .reshape([n, co, oh, ow])
    }

    #[track_caller]
    fn pool_windows(
        self,
        op: &'static str,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        fill: T,
    ) -> Result<Self> {
        let xs = self.shape();
        check_rank4(op, &xs)?;
        if kernel.0 == 0 || kernel.1 == 0 {
            return Err(Error::invalid(op, "kernel size must be positive", &xs));
        }
        if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
            return Err(Error::invalid(
                op,
                "padding must be at most half the kernel size",
                &xs,
            ));
        }
        let args = Conv2dArgs {
            stride,
            padding,
            ..Conv2dArgs::default()
        };
        // Treat every channel as its own one-channel image, so windows stay per channel.
        let flat = Shape::from([xs[0] * xs[1], 1, xs[2], xs[3]]);
        let (idx, oh, ow) = windows(&flat, kernel, &args, op)?;
        let shape = Shape::from([xs[0], xs[1], oh, ow, kernel.0 * kernel.1]);
        Ok(self.gather_named(op, idx, shape, fill))
    }

    /// Max over `kernel` windows (stride = kernel when `None`, floor mode, padding with the
    /// lowest finite value), as `torch.nn.functional.max_pool2d`. The gradient goes to each
    /// window's arg-max.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-NCHW input or a window that does not fit.
    #[track_caller]
    pub fn max_pool2d(
        self,
        kernel: (usize, usize),
        stride: Option<(usize, usize)>,
        padding: (usize, usize),
    ) -> Result<Self> {
        self.pool_windows(
            "max_pool2d",
            kernel,
            stride.unwrap_or(kernel),
            padding,
            T::min_value(),
        )?
        .max_axes(&[-1], false)
    }

    /// Mean over `kernel` windows (stride = kernel when `None`; padded zeros count, as
    /// PyTorch's default `count_include_pad=True`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-NCHW input or a window that does not fit.
    #[track_caller]
    pub fn avg_pool2d(
        self,
        kernel: (usize, usize),
        stride: Option<(usize, usize)>,
        padding: (usize, usize),
    ) -> Result<Self> {
        self.pool_windows(
            "avg_pool2d",
            kernel,
            stride.unwrap_or(kernel),
            padding,
            T::zero(),
        )?
        .mean_axes(&[-1], false)
    }
}

#[cfg(test)]
mod tests {
    use super::Conv2dArgs;
    use crate::{Tape, Tensor};

    #[test]
    fn conv2d_of_a_ramp_with_padding() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::arange(9).reshape([1, 1, 3, 3]).unwrap());
        let w = tape.constant(Tensor::ones([1, 1, 2, 2]));
        let args = Conv2dArgs {
            padding: (1, 1),
            stride: (2, 2),
            ..Conv2dArgs::default()
        };
        // windows at (-1,-1), (-1,1), (1,-1), (1,1): sums 0, 1+2, 3+6, 4+5+7+8
        let y = x
            .conv2d(
                w,
                Some(tape.constant(Tensor::scalar(0.5).reshape([1]).unwrap())),
                args,
            )
            .unwrap();
        assert_eq!(y.dims(), vec![1, 1, 2, 2]);
        assert_eq!(y.value().to_vec(), vec![0.5, 3.5, 9.5, 24.5]);
    }

    #[test]
    fn pooling_drops_the_uncovered_edge() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::arange(25).reshape([1, 1, 5, 5]).unwrap());
        let y = x.max_pool2d((2, 2), None, (0, 0)).unwrap();
        assert_eq!(y.value().to_vec(), vec![6., 8., 16., 18.]);
        let a = x.avg_pool2d((2, 2), None, (0, 0)).unwrap();
        assert_eq!(a.value().to_vec(), vec![3., 5., 13., 15.]);
        let g = tape.grad(y.sum(), &[x]).unwrap()[0].value().to_vec();
        assert_eq!(g.iter().sum::<f64>(), 4.0);
        assert_eq!((g[6], g[8], g[16], g[18], g[24]), (1., 1., 1., 1., 0.));
    }
}
