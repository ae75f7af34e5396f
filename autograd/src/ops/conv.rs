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

impl Conv2dArgs {
    /// Checks the arguments on their own: stride, dilation and groups must be positive
    /// (PyTorch rejects 0 for each).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `op`, the offending argument and `shape` (the
    /// input's).
    #[track_caller]
    pub fn validate(&self, op: &'static str, shape: &Shape) -> Result<()> {
        // No closure builds these errors: `#[track_caller]` does not reach through one.
        for (what, v) in [("stride", self.stride), ("dilation", self.dilation)] {
            if v.0 == 0 || v.1 == 0 {
                return Err(Error::invalid(
                    op,
                    format!("{what} must be positive in both axes, got {v:?}"),
                    shape,
                ));
            }
        }
        if self.groups == 0 {
            return Err(Error::invalid(op, "groups must be positive", shape));
        }
        Ok(())
    }
}

/// Output size along one axis: `(n + 2p - d(k-1) - 1) / s + 1`, in checked arithmetic
/// (k, s, d ≥ 1). `Err` says why there is none: the window does not fit, or the padded
/// size overflows.
fn out_len(
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> std::result::Result<usize, &'static str> {
    let span = (k - 1)
        .checked_mul(d)
        .and_then(|x| x.checked_add(1))
        .ok_or("the dilated window's span overflows")?;
    let padded = p
        .checked_mul(2)
        .and_then(|x| x.checked_add(n))
        .ok_or("the padded size overflows")?;
    if padded < span {
        return Err("the window does not fit in the padded input");
    }
    Ok((padded - span) / s + 1)
}

/// The output height and width of `kh × kw` windows over `x: [N, C, H, W]` (`a` validated).
#[track_caller]
fn out_hw(
    x: &Shape,
    (kh, kw): (usize, usize),
    a: &Conv2dArgs,
    op: &'static str,
) -> Result<(usize, usize)> {
    let (h, w) = (x[2], x[3]);
    if kh == 0 || kw == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel size must be positive in both axes, got {kh}x{kw}"),
            x,
        ));
    }
    let location = std::panic::Location::caller();
    let geometry = out_len(h, kh, a.stride.0, a.padding.0, a.dilation.0)
        .and_then(|oh| Ok((oh, out_len(w, kw, a.stride.1, a.padding.1, a.dilation.1)?)));
    geometry.map_err(|why| Error::InvalidArgument {
        op,
        reason: format!(
            "a {kh}x{kw} window (stride {:?}, padding {:?}, dilation {:?}): {why}",
            a.stride, a.padding, a.dilation
        ),
        shape: x.clone(),
        location,
    })
}

/// Flat im2col indices for `x: [N, C, H, W]` and a `kh × kw` window: the result is laid out
/// `[N, OH, OW, C, kh, kw]`, with [`PAD`] for taps in the padding (`a` validated).
#[track_caller]
fn windows(
    x: &Shape,
    (kh, kw): (usize, usize),
    a: &Conv2dArgs,
    op: &'static str,
) -> Result<(Vec<usize>, usize, usize)> {
    let (n, c, h, w) = (x[0], x[1], x[2], x[3]);
    let (oh, ow) = out_hw(x, (kh, kw), a, op)?;
    // One entry per element of the [N, OH, OW, C, kh, kw] layout: a huge padding makes the
    // list huge however small the input, so its size is checked and its allocation fallible.
    let layout = Shape::from([n, oh, ow, c, kh, kw]);
    let mut idx = crate::tensor::buffer(op, &layout)?;
    // With no channels the windows can still be countless: do not loop over them.
    let n = if layout.numel() == 0 { 0 } else { n };
    for b in 0..n {
        for y in 0..oh {
            for z in 0..ow {
                for ch in 0..c {
                    let plane = (b * c + ch) * h * w;
                    for i in 0..kh {
                        // Unsigned throughout: position r of the padded input is row r - p
                        // of the input, or padding when r < p or r - p >= h. Positions stay
                        // below the padded size, which `out_len` showed fits in a usize.
                        let r = y * a.stride.0 + i * a.dilation.0;
                        let row = r.checked_sub(a.padding.0).filter(|&r| r < h);
                        for j in 0..kw {
                            let q = z * a.stride.1 + j * a.dilation.1;
                            let col = q.checked_sub(a.padding.1).filter(|&q| q < w);
                            idx.push(match (row, col) {
                                (Some(r), Some(q)) => plane + r * w + q,
                                _ => PAD,
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
    /// [`Error::InvalidArgument`] for wrong ranks, channel counts, groups, a stride,
    /// dilation or kernel size of 0, or a window that does not fit; [`Error::TooLarge`] when
    /// a padding makes the output too large.
    #[track_caller]
    pub fn conv2d(self, weight: Self, bias: Option<Self>, args: Conv2dArgs) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        check_rank4("conv2d", &xs)?;
        check_rank4("conv2d", &ws)?;
        args.validate("conv2d", &xs)?;
        let g = args.groups;
        if xs[1] % g != 0 || ws[0] % g != 0 || ws[1].checked_mul(g) != Some(xs[1]) {
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
        // Every argument is checked against the whole input here, so a grouped convolution
        // reports the user's shapes, not one group's; what fails inside (an allocation)
        // is reported as conv2d's too.
        out_hw(&xs, (ws[2], ws[3]), &args, "conv2d")?;
        self.conv2d_checked(weight, bias, args)
            .map_err(|e| e.in_op("conv2d"))
    }

    /// [`Var::conv2d`] once its arguments are checked.
    #[track_caller]
    fn conv2d_checked(self, weight: Self, bias: Option<Self>, args: Conv2dArgs) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        let g = args.groups;
        let out = if g == 1 {
            self.conv2d_dense(weight, args)?
        } else {
            let (ci, co) = (xs[1] / g, ws[0] / g);
            // A loop, not a closure: `#[track_caller]` does not reach through closures, and
            // every node recorded here should point at the user's line.
            let mut parts = Vec::with_capacity(g);
            for k in 0..g {
                let w = weight.narrow(0, k * co, co)?;
                parts.push(self.narrow(1, k * ci, ci)?.conv2d_dense(w, args)?);
            }
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
            return Err(Error::invalid(
                op,
                format!("kernel size must be positive in both axes, got {kernel:?}"),
                &xs,
            ));
        }
        let args = Conv2dArgs {
            stride,
            padding,
            ..Conv2dArgs::default()
        };
        args.validate(op, &xs)?;
        // `p > k / 2` rather than `2p > k`, which overflows for a huge padding.
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            return Err(Error::invalid(
                op,
                format!("padding {padding:?} must be at most half the kernel size {kernel:?}"),
                &xs,
            ));
        }
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
    /// [`Error::InvalidArgument`] for a non-NCHW input, a kernel size or stride of 0, a
    /// padding over half the kernel, or a window that does not fit.
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
    /// [`Error::InvalidArgument`] for a non-NCHW input, a kernel size or stride of 0, a
    /// padding over half the kernel, or a window that does not fit.
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
        let x = tape.constant(Tensor::arange(9).unwrap().reshape([1, 1, 3, 3]).unwrap());
        let w = tape.constant(Tensor::ones([1, 1, 2, 2]).unwrap());
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
        let x = tape.var(Tensor::arange(25).unwrap().reshape([1, 1, 5, 5]).unwrap());
        let y = x.max_pool2d((2, 2), None, (0, 0)).unwrap();
        assert_eq!(y.value().to_vec(), vec![6., 8., 16., 18.]);
        let a = x.avg_pool2d((2, 2), None, (0, 0)).unwrap();
        assert_eq!(a.value().to_vec(), vec![3., 5., 13., 15.]);
        let g = tape.grad(y.sum(), &[x]).unwrap()[0].value().to_vec();
        assert_eq!(g.iter().sum::<f64>(), 4.0);
        assert_eq!((g[6], g[8], g[16], g[18], g[24]), (1., 1., 1., 1., 0.));
    }
}
