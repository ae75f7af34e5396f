//! Convolutions on NCL and NCHW tensors: `conv1d`, `conv2d`, `conv_transpose1d` and
//! `conv_transpose2d`: their arguments, checks and `Var` methods.
//!
//! `conv2d` (and `conv1d`, a height-1 `conv2d`) is one op, `Conv2d` in `conv2d_op.rs`,
//! whose forward pass and first-order gradients run the kernels of `conv_kernels.rs`; its
//! `Var` rule gathers each output position's window of input taps (a flat gather with
//! [`PAD`] for taps in the padding, the index built by `Windows`) and multiplies the
//! `[positions, C·k]` matrix by the weight's gradient. A transposed convolution is that
//! op's adjoint in the input: the input times the weight gives, per input position, the
//! taps it adds to the output, and the same window index scatters them into place (col2im:
//! `scatter_add`, the gather's transpose).
//! Gradients therefore come from the matmul rule and the gather/scatter pair, to any
//! order. The 1-d forms are the 2-d ones on a height-1 image.

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::ops::conv2d_op::Conv2d;
use crate::ops::conv_kernels::conv_algorithm;
use crate::ops::index::ScatterAddFlat;
use crate::tensor::{Float, Shape, PAD};
use crate::var::Var;

/// Geometry of a 2-d convolution (PyTorch's argument names).
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

/// Geometry of a 1-d convolution (PyTorch's argument names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dArgs {
    /// Step between windows.
    pub stride: usize,
    /// Zero padding added on each side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups (1 = dense convolution).
    pub groups: usize,
}

impl Default for Conv1dArgs {
    fn default() -> Self {
        Conv1dArgs {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Geometry of a 2-d transposed convolution (PyTorch's argument names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dArgs {
    /// Step between the positions an input pixel writes to, (rows, cols).
    pub stride: (usize, usize),
    /// Rows/cols removed from each side of the full output, (rows, cols).
    pub padding: (usize, usize),
    /// Rows/cols added at the bottom/right end of the output; each must be below the
    /// stride or the dilation of its axis.
    pub output_padding: (usize, usize),
    /// Spacing between kernel taps, (rows, cols).
    pub dilation: (usize, usize),
    /// Channel groups (1 = dense).
    pub groups: usize,
}

impl Default for ConvTranspose2dArgs {
    fn default() -> Self {
        ConvTranspose2dArgs {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Geometry of a 1-d transposed convolution (PyTorch's argument names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose1dArgs {
    /// Step between the positions an input element writes to.
    pub stride: usize,
    /// Elements removed from each end of the full output.
    pub padding: usize,
    /// Elements added at the end of the output; below the stride or the dilation.
    pub output_padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups (1 = dense).
    pub groups: usize,
}

impl Default for ConvTranspose1dArgs {
    fn default() -> Self {
        ConvTranspose1dArgs {
            stride: 1,
            padding: 0,
            output_padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Output length of a window sweep along one axis, `⌊(n + 2p - d(k-1) - 1)/s⌋ + 1`, in
/// checked arithmetic, or the reason there is none: a zero argument, a window that does
/// not fit, or a padded size or span that overflows.
pub(crate) fn window_len(
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> std::result::Result<usize, &'static str> {
    if k == 0 {
        return Err("kernel size must be positive");
    }
    if s == 0 {
        return Err("stride must be positive");
    }
    if d == 0 {
        return Err("dilation must be positive");
    }
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

/// Output length of a transposed convolution along one axis,
/// `(n - 1)s - 2p + d(k - 1) + output_padding + 1`, or `None` when it is not positive or
/// the arithmetic overflows.
pub(crate) fn transposed_len(
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    op: usize,
    d: usize,
) -> Option<usize> {
    let full = n
        .checked_sub(1)?
        .checked_mul(s)?
        .checked_add(d.checked_mul(k.checked_sub(1)?)?)?
        .checked_add(op)?
        .checked_add(1)?;
    full.checked_sub(p.checked_mul(2)?).filter(|&l| l > 0)
}

/// One axis of a transposed convolution: checks stride, dilation and output padding as
/// PyTorch does, and returns the output length.
#[track_caller]
fn transposed_axis(
    op: &'static str,
    xs: &Shape,
    (n, k): (usize, usize),
    (s, p, o, d): (usize, usize, usize, usize),
) -> Result<usize> {
    if k == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel size must be positive, got {k}"),
            xs,
        ));
    }
    if s == 0 {
        return Err(Error::invalid(op, "stride must be positive", xs));
    }
    if d == 0 {
        return Err(Error::invalid(op, "dilation must be positive", xs));
    }
    if o >= s && o >= d {
        return Err(Error::invalid(
            op,
            format!("output_padding {o} must be smaller than the stride {s} or the dilation {d}"),
            xs,
        ));
    }
    match transposed_len(n, k, s, p, o, d) {
        Some(len) => Ok(len),
        None => Err(Error::invalid(
            op,
            format!(
                "a kernel of {k} with stride {s}, padding {p}, output_padding {o} and dilation {d} gives no output (or overflows)"
            ),
            xs,
        )),
    }
}

/// `C_out/groups · groups`, checked.
#[track_caller]
fn transposed_channels(op: &'static str, ws: &Shape, groups: usize) -> Result<usize> {
    match ws[1].checked_mul(groups) {
        Some(c) => Ok(c),
        None => Err(Error::invalid(op, "output channels overflow", ws)),
    }
}

/// Where the windows of a sweep over `image: [N, C, H, W]` read: `out` positions per
/// axis, position `(y, z)`'s tap `(i, j)` at row `y·stride - padding + i·dilation` (and
/// likewise for columns). The flat indices are laid out `[N, OH, OW, C, kh, kw]`, with
/// [`PAD`] for taps outside the image.
pub(crate) struct Windows {
    pub(crate) kernel: (usize, usize),
    pub(crate) out: (usize, usize),
    pub(crate) stride: (usize, usize),
    pub(crate) padding: (usize, usize),
    pub(crate) dilation: (usize, usize),
}

impl Windows {
    #[track_caller]
    pub(crate) fn indices(&self, op: &'static str, image: &Shape) -> Result<Vec<usize>> {
        let (n, c, h, w) = (image[0], image[1], image[2], image[3]);
        let (kh, kw) = self.kernel;
        let (oh, ow) = self.out;
        // One entry per element of the [N, OH, OW, C, kh, kw] layout: a huge padding makes
        // the list huge however small the input, so its size is checked (TooLarge) and its
        // allocation fallible.
        let layout = Shape::from([n, oh, ow, c, kh, kw]);
        let mut idx = crate::tensor::buffer(op, &layout)?;
        // An empty layout can still hold countless windows (no channels): do not loop over
        // them. Otherwise every product of its dimensions is at most MAX_NUMEL.
        if layout.numel() == 0 {
            return Ok(idx);
        }
        // Each tap's row (column) inside the image, or `None` in the padding, computed
        // once per (position, tap) with checked arithmetic.
        let taps = |out: usize, k: usize, s: usize, d: usize, p: usize, len: usize| {
            let mut t = Vec::with_capacity(out * k);
            for pos in 0..out {
                for tap in 0..k {
                    let at = pos
                        .checked_mul(s)
                        .and_then(|a| a.checked_add(tap.checked_mul(d)?));
                    t.push(match at {
                        Some(a) if a >= p && a - p < len => Some(a - p),
                        _ => None,
                    });
                }
            }
            t
        };
        let rows = taps(oh, kh, self.stride.0, self.dilation.0, self.padding.0, h);
        let cols = taps(ow, kw, self.stride.1, self.dilation.1, self.padding.1, w);
        for b in 0..n {
            for y in 0..oh {
                for z in 0..ow {
                    for ch in 0..c {
                        let plane = (b * c + ch) * h * w;
                        for r in &rows[y * kh..(y + 1) * kh] {
                            for q in &cols[z * kw..(z + 1) * kw] {
                                idx.push(match (r, q) {
                                    (Some(r), Some(q)) => plane + r * w + q,
                                    _ => PAD,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(idx)
    }
}

/// The output height and width of `kh × kw` windows over `x: [N, C, H, W]` (`a`
/// validated), or an error naming `op` that says why there is none.
#[track_caller]
fn out_hw(
    x: &Shape,
    (kh, kw): (usize, usize),
    a: &Conv2dArgs,
    op: &'static str,
) -> Result<(usize, usize)> {
    let geometry = window_len(x[2], kh, a.stride.0, a.padding.0, a.dilation.0).and_then(|oh| {
        Ok((
            oh,
            window_len(x[3], kw, a.stride.1, a.padding.1, a.dilation.1)?,
        ))
    });
    // A `match`, not `map_err`: an error built in a closure would carry the closure's line.
    match geometry {
        Ok(hw) => Ok(hw),
        Err(why) => Err(Error::invalid(
            op,
            format!(
                "a {kh}x{kw} window (stride {:?}, padding {:?}, dilation {:?}): {why}",
                a.stride, a.padding, a.dilation
            ),
            x,
        )),
    }
}

#[track_caller]
fn check_rank(op: &'static str, s: &Shape, rank: usize, layout: &str) -> Result<()> {
    if s.rank() != rank {
        return Err(Error::invalid(
            op,
            format!("expected a tensor of rank {rank} ({layout})"),
            s,
        ));
    }
    Ok(())
}

#[track_caller]
fn check_nonzero(op: &'static str, what: &str, s: &Shape) -> Result<()> {
    if s.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("{what} has a zero-length dimension"),
            s,
        ));
    }
    Ok(())
}

#[track_caller]
fn check_bias<T: Float>(op: &'static str, bias: Option<Var<'_, T>>, channels: usize) -> Result<()> {
    if let Some(b) = bias {
        if b.shape().dims() != [channels] {
            return Err(Error::ShapeMismatch {
                op,
                expected: Shape::from([channels]),
                got: b.shape(),
                location: std::panic::Location::caller(),
            });
        }
    }
    Ok(())
}

/// Checks a convolution's operands: ranks, positive kernel sizes and groups, and `groups`
/// dividing the input channels (`C_in = weight[1]·groups` for a convolution,
/// `= weight[0]` for a transposed one). A convolution takes an empty input (its output is
/// then empty, or zeros without input channels); a transposed one needs every input and
/// weight dimension positive.
#[track_caller]
fn check_operands(
    op: &'static str,
    xs: &Shape,
    ws: &Shape,
    rank: usize,
    groups: usize,
    transposed: bool,
) -> Result<()> {
    let layout = if rank == 3 { "N, C, L" } else { "N, C, H, W" };
    check_rank(op, xs, rank, layout)?;
    check_rank(op, ws, rank, "the weight")?;
    if ws.dims()[2..].contains(&0) {
        return Err(Error::invalid(
            op,
            format!(
                "kernel size must be positive in every axis, got {:?}",
                &ws.dims()[2..]
            ),
            xs,
        ));
    }
    if groups == 0 {
        return Err(Error::invalid(op, "groups must be positive", xs));
    }
    if transposed {
        check_nonzero(op, "the input", xs)?;
        check_nonzero(op, "the weight", ws)?;
    }
    let c = xs[1];
    let ok = c.is_multiple_of(groups)
        && if transposed {
            ws[0] == c
        } else {
            ws[0].is_multiple_of(groups) && ws[1].checked_mul(groups) == Some(c)
        };
    if !ok {
        let want = if transposed {
            "[C_in, C_out/groups, k..]"
        } else {
            "[C_out, C_in/groups, k..] with C_out divisible by groups"
        };
        return Err(Error::invalid(
            op,
            format!("input channels {c} do not match weight {ws} ({want}) with {groups} groups"),
            xs,
        ));
    }
    Ok(())
}

impl<'t, T: Float> Var<'t, T> {
    /// 2-d cross-correlation (no kernel flip), as `torch.nn.functional.conv2d`: `self` is
    /// `[N, C_in, H, W]`, `weight` is `[C_out, C_in/groups, kH, kW]`, `bias` is `[C_out]`;
    /// the output is `[N, C_out, H', W']` with `H' = ⌊(H + 2p - d(kH - 1) - 1)/s⌋ + 1`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for wrong ranks, channel counts that do not match the
    /// weight and groups, a stride, dilation, groups or kernel size of 0, or a window that
    /// does not fit (sizes that overflow included); [`Error::ShapeMismatch`] for a bias
    /// that is not `[C_out]`; [`Error::TooLarge`] when a padding makes the windows too
    /// many to represent or allocate.
    #[track_caller]
    pub fn conv2d(self, weight: Self, bias: Option<Self>, args: Conv2dArgs) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        check_operands("conv2d", &xs, &ws, 4, args.groups, false)?;
        args.validate("conv2d", &xs)?;
        check_bias("conv2d", bias, ws[0])?;
        // Every argument is checked against the whole input here, so a grouped convolution
        // reports the user's shapes, not one group's; what fails inside (an allocation)
        // is reported as conv2d's too.
        let out = out_hw(&xs, (ws[2], ws[3]), &args, "conv2d")?;
        self.conv2d_checked(weight, bias, args, out)
            .map_err(|e| e.in_op("conv2d"))
    }

    /// [`Var::conv2d`] once its arguments are checked and its output size `out` known:
    /// one [`Conv2d`] op (groups and bias included).
    #[track_caller]
    fn conv2d_checked(
        self,
        weight: Self,
        bias: Option<Self>,
        args: Conv2dArgs,
        out: (usize, usize),
    ) -> Result<Self> {
        let op = Conv2d {
            args,
            out,
            algo: conv_algorithm(),
        };
        op.check_sizes::<T>(&self.shape(), &weight.shape())?;
        let mut inputs: SmallVec<[Self; 3]> = SmallVec::new();
        inputs.push(self);
        inputs.push(weight);
        inputs.extend(bias);
        self.tape()
            .record(op, &inputs, std::panic::Location::caller())
    }

    /// 1-d cross-correlation, as `torch.nn.functional.conv1d`: `self` is `[N, C_in, L]`,
    /// `weight` `[C_out, C_in/groups, k]`, `bias` `[C_out]`; the output is
    /// `[N, C_out, L']` with `L' = ⌊(L + 2p - d(k - 1) - 1)/s⌋ + 1`. Computed as
    /// [`conv2d`](Var::conv2d) on a height-1 image.
    ///
    /// # Errors
    /// As [`conv2d`](Var::conv2d), naming `conv1d` and the 3-d shapes.
    #[track_caller]
    pub fn conv1d(self, weight: Self, bias: Option<Self>, args: Conv1dArgs) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        check_operands("conv1d", &xs, &ws, 3, args.groups, false)?;
        check_bias("conv1d", bias, ws[0])?;
        if let Err(why) = window_len(xs[2], ws[2], args.stride, args.padding, args.dilation) {
            return Err(Error::invalid(
                "conv1d",
                format!(
                    "a kernel of {} (stride {}, padding {}, dilation {}): {why}",
                    ws[2], args.stride, args.padding, args.dilation
                ),
                &xs,
            ));
        }
        let args2 = Conv2dArgs {
            stride: (1, args.stride),
            padding: (0, args.padding),
            dilation: (1, args.dilation),
            groups: args.groups,
        };
        self.conv1d_as_2d(weight, bias, args2)
            .map_err(|e| e.in_op("conv1d"))
    }

    /// [`Var::conv1d`] once checked: [`Var::conv2d`] on a height-1 image.
    #[track_caller]
    fn conv1d_as_2d(self, weight: Self, bias: Option<Self>, args: Conv2dArgs) -> Result<Self> {
        self.unsqueeze(2)?
            .conv2d(weight.unsqueeze(2)?, bias, args)?
            .squeeze(2)
    }

    /// 2-d transposed convolution, as `torch.nn.functional.conv_transpose2d`: `self` is
    /// `[N, C_in, H, W]`, `weight` `[C_in, C_out/groups, kH, kW]` (in-channels first),
    /// `bias` `[C_out]`. Input pixel `(h, w)` adds `x·weight[.., i, j]` to output
    /// `(h·s - p + i·d, w·s - p + j·d)` (positions outside are dropped), so
    /// `H' = (H - 1)s - 2p + d(kH - 1) + output_padding + 1`. It is the gradient of
    /// [`conv2d`](Var::conv2d) with respect to its input.
    ///
    /// ```
    /// use autograd::{ConvTranspose2dArgs, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [1, 1, 1, 2])?);
    /// let w = tape.var(Tensor::ones([1, 1, 1, 3])?);
    /// let args = ConvTranspose2dArgs { stride: (1, 2), ..Default::default() };
    /// // each input spreads over 3 columns, 2 apart: [1, 1, 1+2, 2, 2]
    /// let y = x.conv_transpose2d(w, None, args)?;
    /// assert_eq!(y.value().to_vec(), [1.0, 1.0, 3.0, 2.0, 2.0]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for wrong ranks, zero-length dimensions, channels that do
    /// not match the weight and groups, a zero stride or dilation, an `output_padding` not
    /// below the stride or the dilation of its axis (as PyTorch requires), or an output
    /// size that is not positive or overflows; [`Error::ShapeMismatch`] for a bias that is
    /// not `[C_out]`; [`Error::TooLarge`] for an output too large to represent or allocate.
    #[track_caller]
    pub fn conv_transpose2d(
        self,
        weight: Self,
        bias: Option<Self>,
        args: ConvTranspose2dArgs,
    ) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        let op = "conv_transpose2d";
        check_operands(op, &xs, &ws, 4, args.groups, true)?;
        let g = args.groups;
        let co = transposed_channels(op, &ws, g)?;
        check_bias(op, bias, co)?;
        let a = &args;
        let out = (
            transposed_axis(
                op,
                &xs,
                (xs[2], ws[2]),
                (a.stride.0, a.padding.0, a.output_padding.0, a.dilation.0),
            )?,
            transposed_axis(
                op,
                &xs,
                (xs[3], ws[3]),
                (a.stride.1, a.padding.1, a.output_padding.1, a.dilation.1),
            )?,
        );
        self.conv_transpose2d_checked(weight, bias, args, out)
            .map_err(|e| e.in_op(op))
    }

    /// [`Var::conv_transpose2d`] once its arguments are checked and its output size
    /// `out` known.
    #[track_caller]
    fn conv_transpose2d_checked(
        self,
        weight: Self,
        bias: Option<Self>,
        args: ConvTranspose2dArgs,
        out: (usize, usize),
    ) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        let g = args.groups;
        let co = ws[1] * g;
        let y = if g == 1 {
            self.conv_transpose2d_dense(weight, args, out)?
        } else {
            let ci = xs[1] / g;
            // A loop, not a closure: `#[track_caller]` does not reach through closures.
            let mut parts = Vec::with_capacity(g);
            for k in 0..g {
                let w = weight.narrow(0, k * ci, ci)?;
                parts.push(
                    self.narrow(1, k * ci, ci)?
                        .conv_transpose2d_dense(w, args, out)?,
                );
            }
            Var::concat(&parts, 1)?
        };
        match bias {
            Some(b) => y.add(b.reshape([1, co, 1, 1])?),
            None => Ok(y),
        }
    }

    #[track_caller]
    fn conv_transpose2d_dense(
        self,
        weight: Self,
        args: ConvTranspose2dArgs,
        (oh, ow): (usize, usize),
    ) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        let (n, ci, h, w) = (xs[0], xs[1], xs[2], xs[3]);
        let (co, kh, kw) = (ws[1], ws[2], ws[3]);
        let image = Shape::from([n, co, oh, ow]);
        // The output's size comes from the user's stride and dilation, not from any
        // existing tensor: check it before the scatter allocates it.
        image.check("conv_transpose2d")?;
        // The windows of a convolution over the output, one per input pixel: exactly the
        // places each input pixel's taps land.
        let idx = Windows {
            kernel: (kh, kw),
            out: (h, w),
            stride: args.stride,
            padding: args.padding,
            dilation: args.dilation,
        }
        .indices("conv_transpose2d", &image)?;
        // [N·H·W, C_in] · [C_in, C_out·kH·kW]: every tap of every input pixel, laid out
        // [N, H, W, C_out, kH, kW] like the window index.
        let taps = self
            .permute(&[0, 2, 3, 1])?
            .reshape([n * h * w, ci])?
            .matmul(weight.reshape([ci, co * kh * kw])?)?;
        taps.apply1(ScatterAddFlat {
            idx: idx.into(),
            shape: image,
        })
    }

    /// 1-d transposed convolution, as `torch.nn.functional.conv_transpose1d`: `self` is
    /// `[N, C_in, L]`, `weight` `[C_in, C_out/groups, k]`, `bias` `[C_out]`;
    /// `L' = (L - 1)s - 2p + d(k - 1) + output_padding + 1`. Computed as
    /// [`conv_transpose2d`](Var::conv_transpose2d) on a height-1 image.
    ///
    /// # Errors
    /// As [`conv_transpose2d`](Var::conv_transpose2d), naming `conv_transpose1d` and the
    /// 3-d shapes.
    #[track_caller]
    pub fn conv_transpose1d(
        self,
        weight: Self,
        bias: Option<Self>,
        args: ConvTranspose1dArgs,
    ) -> Result<Self> {
        let (xs, ws) = (self.shape(), weight.shape());
        let op = "conv_transpose1d";
        check_operands(op, &xs, &ws, 3, args.groups, true)?;
        let co = transposed_channels(op, &ws, args.groups)?;
        check_bias(op, bias, co)?;
        let (s, p, o, d) = (
            args.stride,
            args.padding,
            args.output_padding,
            args.dilation,
        );
        transposed_axis(op, &xs, (xs[2], ws[2]), (s, p, o, d))?;
        let args2 = ConvTranspose2dArgs {
            stride: (1, s),
            padding: (0, p),
            output_padding: (0, o),
            dilation: (1, d),
            groups: args.groups,
        };
        self.conv_transpose1d_as_2d(weight, bias, args2)
            .map_err(|e| e.in_op(op))
    }

    /// [`Var::conv_transpose1d`] once checked: [`Var::conv_transpose2d`] on a height-1
    /// image.
    #[track_caller]
    fn conv_transpose1d_as_2d(
        self,
        weight: Self,
        bias: Option<Self>,
        args: ConvTranspose2dArgs,
    ) -> Result<Self> {
        self.unsqueeze(2)?
            .conv_transpose2d(weight.unsqueeze(2)?, bias, args)?
            .squeeze(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn transposed_conv_is_the_input_gradient_of_conv() {
        // <conv(x), y> = <x, conv_transpose(y)> for any x, y: the defining adjoint identity.
        let tape = Tape::<f64>::new();
        let x = tape
            .constant(Tensor::from_fn([2, 4, 7, 6], |i| ((i * 37 % 23) as f64) - 11.0).unwrap());
        let w =
            tape.constant(Tensor::from_fn([6, 2, 3, 2], |i| ((i * 13 % 7) as f64) - 3.0).unwrap());
        let args = Conv2dArgs {
            stride: (2, 1),
            padding: (1, 1),
            dilation: (1, 2),
            groups: 2,
        };
        let cx = x.conv2d(w, None, args).unwrap();
        let y =
            tape.constant(Tensor::from_fn(cx.shape(), |i| ((i * 5 % 11) as f64) - 5.0).unwrap());
        let t = y
            .conv_transpose2d(
                w,
                None,
                ConvTranspose2dArgs {
                    stride: args.stride,
                    padding: args.padding,
                    dilation: args.dilation,
                    groups: args.groups,
                    output_padding: (0, 0),
                },
            )
            .unwrap();
        // conv: H 7 → 4, W 6 → 6; back: H (4 - 1)·2 - 2 + 2 + 1 = 7, W (6 - 1) - 2 + 2 + 1 = 6
        assert_eq!(t.dims(), [2, 4, 7, 6]);
        let lhs = cx.mul(y).unwrap().sum().value().item().unwrap();
        let rhs = x.mul(t).unwrap().sum().value().item().unwrap();
        assert_eq!(lhs, rhs);
    }

    #[test]
    fn sizes_are_checked_not_wrapped() {
        assert_eq!(window_len(5, 3, 1, 0, 1), Ok(3));
        assert!(window_len(5, 3, 0, 0, 1).is_err());
        assert!(window_len(5, 0, 1, 0, 1).is_err());
        assert_eq!(
            window_len(5, 3, 1, usize::MAX, 1),
            Err("the padded size overflows")
        );
        assert_eq!(
            window_len(5, 3, 1, 0, usize::MAX),
            Err("the dilated window's span overflows")
        );
        assert_eq!(transposed_len(3, 3, 2, 1, 1, 1), Some(6));
        assert_eq!(transposed_len(1, 1, 1, 1, 0, 1), None);
        assert_eq!(transposed_len(usize::MAX, 3, 2, 0, 0, 1), None);
    }
}
