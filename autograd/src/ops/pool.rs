//! Pooling on NCHW tensors: max pooling (with its arg-max positions), average pooling
//! (both divisor conventions) and adaptive average pooling. Each gathers every output
//! position's window (a flat gather, [`PAD`] outside the input) into a trailing axis and
//! reduces it, so the gradients are the reduction's rule and the gather's transpose.

use crate::error::{Error, Result};
use crate::op::{BackwardCx, Op, ValueGrads};
use crate::ops::conv::Windows;
use crate::ops::index::ScatterAddFlat;
use crate::ops::resample::per_index;
use crate::tensor::kernels::par;
use crate::tensor::{Float, Shape, Tensor, PAD};
use crate::var::Var;

/// Options of 2-d max pooling (PyTorch's names and defaults, `F.max_pool2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2dArgs {
    /// Step between windows; `None` = the kernel size.
    pub stride: Option<(usize, usize)>,
    /// Implicit `-∞` padding on each side, at most half the (dilated) kernel.
    pub padding: (usize, usize),
    /// Spacing between window taps.
    pub dilation: (usize, usize),
    /// Round the output size up, so a last partial window is kept (PyTorch's rule: it
    /// must start inside the input or the leading padding).
    pub ceil_mode: bool,
}

impl Default for MaxPool2dArgs {
    fn default() -> Self {
        MaxPool2dArgs {
            stride: None,
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }
}

/// Options of 2-d average pooling (PyTorch's names and defaults, `F.avg_pool2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2dArgs {
    /// Step between windows; `None` = the kernel size.
    pub stride: Option<(usize, usize)>,
    /// Zero padding on each side, at most half the kernel.
    pub padding: (usize, usize),
    /// Round the output size up (see [`MaxPool2dArgs::ceil_mode`]).
    pub ceil_mode: bool,
    /// Whether the padding counts in the divisor: the divisor is the window clipped to
    /// the padded input (`true`, the default) or to the input itself (`false`).
    pub count_include_pad: bool,
    /// A fixed divisor for every window instead.
    pub divisor_override: Option<usize>,
}

impl Default for AvgPool2dArgs {
    fn default() -> Self {
        AvgPool2dArgs {
            stride: None,
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
}

/// Pooling output length along one axis (PyTorch's `pooling_output_shape`), or `None`
/// when the window does not fit, a size is zero or the arithmetic overflows.
fn pool_len(n: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    if k == 0 || s == 0 || d == 0 {
        return None;
    }
    let span = d.checked_mul(k - 1)?.checked_add(1)?;
    let padded = p.checked_mul(2)?.checked_add(n)?;
    let room = padded.checked_sub(span)?;
    let mut out = if ceil {
        room.checked_add(s - 1)? / s + 1
    } else {
        room / s + 1
    };
    // The last window must start inside the input or the leading padding.
    if ceil && (out - 1).checked_mul(s)? >= n + p {
        out -= 1;
    }
    Some(out)
}

/// The geometry of one pooling call, checked.
#[derive(Debug, Clone)]
struct Pooling {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    out: (usize, usize),
}

impl Pooling {
    #[track_caller]
    fn new(
        op: &'static str,
        xs: &Shape,
        kernel: (usize, usize),
        stride: Option<(usize, usize)>,
        padding: (usize, usize),
        dilation: (usize, usize),
        ceil: bool,
    ) -> Result<Self> {
        check_image(op, xs)?;
        let stride = stride.unwrap_or(kernel);
        // No closure builds these errors: `#[track_caller]` does not reach through one.
        for (what, v) in [
            ("kernel size", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if v.0 == 0 || v.1 == 0 {
                return Err(Error::invalid(
                    op,
                    format!("{what} must be positive in both axes, got {v:?}"),
                    xs,
                ));
            }
        }
        // Saturating: `2p > span` would overflow for a huge padding; a saturated span
        // only lets an overflowing padding through to `pool_len`, which refuses it.
        let half_span = |k: usize, d: usize| d.saturating_mul(k - 1).saturating_add(1) / 2;
        if padding.0 > half_span(kernel.0, dilation.0)
            || padding.1 > half_span(kernel.1, dilation.1)
        {
            return Err(Error::invalid(
                op,
                format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
                xs,
            ));
        }
        let oh = pool_len(xs[2], kernel.0, stride.0, padding.0, dilation.0, ceil);
        let ow = pool_len(xs[3], kernel.1, stride.1, padding.1, dilation.1, ceil);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(Error::invalid(
                op,
                format!(
                    "a {}x{} window (stride {stride:?}, padding {padding:?}, dilation {dilation:?}) does not fit",
                    kernel.0, kernel.1
                ),
                xs,
            ));
        };
        Ok(Pooling {
            kernel,
            stride,
            padding,
            dilation,
            out: (oh, ow),
        })
    }

    /// Every window of `x` in a trailing axis, `[N, C, OH, OW, kH·kW]`, `fill` outside, and
    /// (when `keep`) the flat indices gathered.
    #[track_caller]
    fn gather<'t, T: Float>(
        &self,
        op: &'static str,
        x: Var<'t, T>,
        fill: T,
        keep: bool,
    ) -> Result<(Var<'t, T>, Vec<usize>)> {
        let xs = x.shape();
        // Every channel as its own one-channel image, so windows stay per channel.
        let flat = Shape::from([xs[0] * xs[1], 1, xs[2], xs[3]]);
        let idx = Windows {
            kernel: self.kernel,
            out: self.out,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
        .indices(op, &flat)?;
        let k = self.kernel.0 * self.kernel.1;
        let shape = Shape::from([xs[0], xs[1], self.out.0, self.out.1, k]);
        let kept = if keep { idx.clone() } else { Vec::new() };
        Ok((x.gather_named(op, idx, shape, fill), kept))
    }
}

/// Max pooling as one op: each output is its window's maximum (padding taps read `-∞`, a
/// NaN wins), read from the input in place; no index list, no gathered copy. The gradient
/// goes to the window's first tap equal to that maximum (where `max` over the gathered
/// window sent it): the fast path adds it into the input's plane, the `Var` rule scatters
/// the output gradient there (differentiable again: a gather).
#[derive(Debug, Clone)]
struct MaxPool(Pooling);

impl MaxPool {
    /// Column of tap `j` of output `z` (at `z·kW + j`) in a `w`-wide plane, or `None` in
    /// the padding: once per plane, not per window.
    fn tap_cols(&self, w: usize) -> Vec<Option<usize>> {
        let p = &self.0;
        (0..p.out.1)
            .flat_map(|z| {
                (0..p.kernel.1).map(move |j| {
                    // Saturating: a sum past usize lies outside the image anyway.
                    let q = (z * p.stride.1).saturating_add(j * p.dilation.1);
                    q.checked_sub(p.padding.1).filter(|&q| q < w)
                })
            })
            .collect()
    }

    /// Calls `tap(y, i, j, row)` for every output row `y` and tap `(i, j)`, `row` the
    /// tap's input row (`None` in the padding); taps in order, or in reverse when `rev`.
    #[inline(always)]
    fn taps(&self, h: usize, rev: bool, mut tap: impl FnMut(usize, usize, usize, Option<usize>)) {
        let p = &self.0;
        let (kh, kw) = p.kernel;
        for y in 0..p.out.0 {
            for t in 0..kh * kw {
                let t = if rev { kh * kw - 1 - t } else { t };
                let (i, j) = (t / kw, t % kw);
                let r = (y * p.stride.0).saturating_add(i * p.dilation.0);
                tap(y, i, j, r.checked_sub(p.padding.0).filter(|&r| r < h));
            }
        }
    }

    /// Each window's maximum of one `h × w` plane into `out` (`OH·OW`): a NaN tap makes it
    /// NaN, padding taps read `-∞` (as `max` over the gathered window did). A plain `max`
    /// and a NaN flag over a row of windows at a time, tap by tap, so the loop has neither
    /// a data-dependent branch nor a chain between iterations (a compare-and-branch per
    /// tap made the first version slower than the gather it replaced).
    #[inline(always)]
    fn max_plane<T: Float>(&self, plane: &[T], (h, w): (usize, usize), out: &mut [T]) {
        let (ow, kw) = (self.0.out.1, self.0.kernel.1);
        let last = (self.0.kernel.0 - 1, kw - 1);
        let cols = self.tap_cols(w);
        let mut nan = vec![false; ow];
        self.taps(h, false, |y, i, j, row| {
            let o = &mut out[y * ow..][..ow];
            if (i, j) == (0, 0) {
                o.fill(T::neg_infinity());
                nan.fill(false);
            }
            for (z, (b, n)) in o.iter_mut().zip(nan.iter_mut()).enumerate() {
                let v = match (row, cols[z * kw + j]) {
                    (Some(r), Some(q)) => plane[r * w + q],
                    _ => T::neg_infinity(),
                };
                *b = b.max(v);
                *n |= v.is_nan();
            }
            if (i, j) == last {
                for (b, &n) in o.iter_mut().zip(&nan) {
                    if n {
                        *b = T::nan();
                    }
                }
            }
        });
    }

    /// Where each window of one plane takes its maximum `y` (the output): the position in
    /// the plane of its first tap equal to it (the first NaN for a NaN), [`PAD`] for a
    /// padding tap, into `at`. Taps run in reverse and the last match wins, chosen with
    /// integer masks: no data-dependent branch.
    #[inline(always)]
    fn argmax_plane<T: Float>(
        &self,
        plane: &[T],
        (h, w): (usize, usize),
        y: &[T],
        at: &mut [usize],
    ) {
        let (ow, kw) = (self.0.out.1, self.0.kernel.1);
        let last = (self.0.kernel.0 - 1, kw - 1);
        let cols = self.tap_cols(w);
        self.taps(h, true, |yy, i, j, row| {
            let (a, m) = (&mut at[yy * ow..][..ow], &y[yy * ow..][..ow]);
            if (i, j) == last {
                a.fill(PAD);
            }
            for (z, (a, &m)) in a.iter_mut().zip(m).enumerate() {
                let (v, k) = match (row, cols[z * kw + j]) {
                    (Some(r), Some(q)) => (plane[r * w + q], r * w + q),
                    _ => (T::neg_infinity(), PAD),
                };
                let hit = (v == m) | (v.is_nan() & m.is_nan());
                let mask = usize::from(hit).wrapping_neg();
                *a = (k & mask) | (*a & !mask);
            }
        });
    }

    /// Planes per piece of split work: about [`par::CHUNK`] outputs.
    fn planes_per_piece(&self) -> usize {
        par::rows_per_piece(self.0.out.0 * self.0.out.1)
    }
}

impl<T: Float> Op<T> for MaxPool {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let xs = x[0].shape();
        let (h, w) = (xs[2], xs[3]);
        let shape = Shape::from([xs[0], xs[1], self.0.out.0, self.0.out.1]);
        let mut out = crate::tensor::buffer("max_pool2d", &shape)?;
        out.resize(shape.numel(), T::zero());
        let per = self.0.out.0 * self.0.out.1;
        let src = x[0].as_slice();
        let work = out.len().saturating_mul(self.0.kernel.0 * self.0.kernel.1);
        par::for_chunks_mut(&mut out, per * self.planes_per_piece(), work, |start, o| {
            for (k, o) in o.chunks_mut(per).enumerate() {
                let plane = start / per + k;
                self.max_plane(&src[plane * h * w..][..h * w], (h, w), o);
            }
        });
        Ok(Tensor::from_parts(out, shape))
    }

    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, y) = (cx.input(0).value(), cx.output().value());
        let xs = x.shape().clone();
        let (h, w) = (xs[2], xs[3]);
        let per = self.0.out.0 * self.0.out.1;
        let planes = xs[0] * xs[1];
        let mut idx = crate::tensor::buffer("max_pool2d", &Shape::from([planes, per]))?;
        idx.resize(planes * per, PAD);
        for (plane, at) in idx.chunks_mut(per.max(1)).enumerate().take(planes) {
            let src = &x.as_slice()[plane * h * w..][..h * w];
            self.argmax_plane(src, (h, w), &y.as_slice()[plane * per..][..per], at);
            for a in at.iter_mut().filter(|a| **a != PAD) {
                *a += plane * h * w;
            }
        }
        let g = cx.grad().apply1(ScatterAddFlat {
            idx: idx.into(),
            shape: xs,
        })?;
        Ok(vec![Some(g)])
    }

    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        let xs = x[0].shape();
        let (h, w) = (xs[2], xs[3]);
        let per = self.0.out.0 * self.0.out.1;
        let (src, ys, gs) = (x[0].as_slice(), y.as_slice(), g.as_slice());
        let mut gx = vec![T::zero(); xs.numel()];
        let plane_len = h * w;
        let work = gs.len().saturating_mul(self.0.kernel.0 * self.0.kernel.1);
        par::for_chunks_mut(
            &mut gx,
            plane_len * self.planes_per_piece(),
            work,
            |start, d| {
                let mut at = vec![PAD; per];
                for (k, d) in d.chunks_mut(plane_len).enumerate() {
                    let plane = start / plane_len + k;
                    let src = &src[plane * plane_len..][..plane_len];
                    self.argmax_plane(src, (h, w), &ys[plane * per..][..per], &mut at);
                    for (&a, &gv) in at.iter().zip(&gs[plane * per..][..per]) {
                        if a != PAD {
                            d[a] += gv;
                        }
                    }
                }
            },
        );
        Some(smallvec::smallvec![Some(Tensor::from_parts(
            gx,
            xs.clone()
        ))])
    }
}

#[track_caller]
fn check_image(op: &'static str, xs: &Shape) -> Result<()> {
    if xs.rank() != 4 {
        return Err(Error::invalid(op, "expected an NCHW tensor of rank 4", xs));
    }
    if xs.contains(&0) {
        return Err(Error::invalid(
            op,
            "the input has a zero-length dimension",
            xs,
        ));
    }
    Ok(())
}

impl<'t, T: Float> Var<'t, T> {
    /// Max over `kernel` windows (stride = kernel when `None`, floor mode), as
    /// `torch.nn.functional.max_pool2d`. The gradient goes to each window's arg-max.
    ///
    /// # Errors
    /// As [`max_pool2d_args`](Var::max_pool2d_args).
    #[track_caller]
    pub fn max_pool2d(
        self,
        kernel: (usize, usize),
        stride: Option<(usize, usize)>,
        padding: (usize, usize),
    ) -> Result<Self> {
        self.max_pool2d_args(
            kernel,
            MaxPool2dArgs {
                stride,
                padding,
                ..MaxPool2dArgs::default()
            },
        )
    }

    /// Max over `kernel` windows with every option of `F.max_pool2d` (stride, `-∞`
    /// padding, dilation, ceil mode). The gradient goes to each window's first maximum;
    /// an element picked by several overlapping windows collects all their gradients.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-NCHW input, a zero-length dimension, a zero
    /// kernel, stride or dilation, padding above half the dilated kernel, or a window
    /// that does not fit; [`Error::TooLarge`] when the windows are too many to allocate.
    #[track_caller]
    pub fn max_pool2d_args(self, kernel: (usize, usize), args: MaxPool2dArgs) -> Result<Self> {
        let p = Pooling::new(
            "max_pool2d",
            &self.shape(),
            kernel,
            args.stride,
            args.padding,
            args.dilation,
            args.ceil_mode,
        )?;
        let xs = self.shape();
        // The output's size comes from the user's stride and padding: check it first.
        Shape::from([xs[0], xs[1], p.out.0, p.out.1]).check("max_pool2d")?;
        self.apply1(MaxPool(p))
    }

    /// [`max_pool2d_args`](Var::max_pool2d_args) that also returns, for each output, the
    /// position of its maximum as PyTorch's `return_indices=True` does: the flat index
    /// `h·W + w` within its `(n, c)` plane of the unpadded input, laid out like the output.
    ///
    /// ```
    /// use autograd::{MaxPool2dArgs, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 5., 2., 0., 3., 4.], [1, 1, 2, 3])?);
    /// let (y, at) = x.max_pool2d_with_indices((2, 2), MaxPool2dArgs { stride: Some((1, 1)), ..Default::default() })?;
    /// assert_eq!(y.value().to_vec(), [5., 5.]);
    /// assert_eq!(at, [1, 1]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`max_pool2d_args`](Var::max_pool2d_args).
    #[track_caller]
    pub fn max_pool2d_with_indices(
        self,
        kernel: (usize, usize),
        args: MaxPool2dArgs,
    ) -> Result<(Self, Vec<usize>)> {
        let xs = self.shape();
        let p = Pooling::new(
            "max_pool2d",
            &xs,
            kernel,
            args.stride,
            args.padding,
            args.dilation,
            args.ceil_mode,
        )?;
        let (w, idx) = p.gather("max_pool2d", self, T::neg_infinity(), true)?;
        let (y, pos) = w.max_dim(-1, false)?;
        let k = kernel.0 * kernel.1;
        let plane = xs[2] * xs[3];
        let at = pos
            .iter()
            .enumerate()
            .map(|(o, &j)| {
                let window = &idx[o * k..(o + 1) * k];
                // Only a window of -∞ values can pick a padding tap; PyTorch then names the
                // window's first element inside the input.
                let chosen = if window[j] == PAD {
                    window.iter().copied().find(|&i| i != PAD).unwrap_or(0)
                } else {
                    window[j]
                };
                chosen % plane
            })
            .collect();
        Ok((y, at))
    }

    /// Mean over `kernel` windows (stride = kernel when `None`; padded zeros count, as
    /// PyTorch's default `count_include_pad=True`).
    ///
    /// # Errors
    /// As [`avg_pool2d_args`](Var::avg_pool2d_args).
    #[track_caller]
    pub fn avg_pool2d(
        self,
        kernel: (usize, usize),
        stride: Option<(usize, usize)>,
        padding: (usize, usize),
    ) -> Result<Self> {
        self.avg_pool2d_args(
            kernel,
            AvgPool2dArgs {
                stride,
                padding,
                ..AvgPool2dArgs::default()
            },
        )
    }

    /// Average over `kernel` windows with every option of `F.avg_pool2d`: each window's
    /// sum divided by `divisor_override`, else by the window clipped to the padded input
    /// (`count_include_pad`, the default; `kH·kW` unless a ceil-mode window overhangs) or
    /// to the input itself.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-NCHW input, a zero-length dimension, a zero
    /// kernel, stride or divisor, padding above half the kernel, or a window that does
    /// not fit; [`Error::TooLarge`] when the windows are too many to allocate.
    #[track_caller]
    pub fn avg_pool2d_args(self, kernel: (usize, usize), args: AvgPool2dArgs) -> Result<Self> {
        let xs = self.shape();
        let op = "avg_pool2d";
        let p = Pooling::new(
            op,
            &xs,
            kernel,
            args.stride,
            args.padding,
            (1, 1),
            args.ceil_mode,
        )?;
        if args.divisor_override == Some(0) {
            return Err(Error::invalid(op, "divisor_override must be positive", &xs));
        }
        let (w, _) = p.gather(op, self, T::zero(), false)?;
        let sums = w.sum_axes(&[-1], false)?;
        // PyTorch's divisor: the window clipped to the padded input, or to the input.
        let extent = |o: usize, k: usize, s: usize, pad: usize, n: usize| {
            // o·s is a window start inside the padded input (`pool_len` checked that the
            // padded size n + 2p fits), the window's end may pass it: saturate.
            let start = o * s;
            let end = start.saturating_add(k).min(n + 2 * pad);
            let padded = end - start;
            let inside = end.min(n + pad).saturating_sub(start.max(pad));
            (padded, inside)
        };
        let (oh, ow) = p.out;
        let divisors = Tensor::from_fn([1, 1, oh, ow], |i| {
            let (y, z) = (i / ow, i % ow);
            let (ph, ih) = extent(y, kernel.0, p.stride.0, p.padding.0, xs[2]);
            let (pw, iw) = extent(z, kernel.1, p.stride.1, p.padding.1, xs[3]);
            let d = match args.divisor_override {
                Some(d) => d,
                None if args.count_include_pad => ph * pw,
                None => ih * iw,
            };
            T::of(d.max(1) as f64)
        })?;
        sums.div(self.tape().constant(divisors))
    }

    /// Adaptive average pooling to `out = (OH, OW)`, as
    /// `torch.nn.functional.adaptive_avg_pool2d`: output row `i` averages input rows
    /// `⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉` (exclusive end), likewise for columns, so windows may
    /// overlap and differ in size.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5.], [1, 1, 1, 5])?);
    /// // columns 0..3 and 2..5
    /// let y = x.adaptive_avg_pool2d((1, 2))?;
    /// assert_eq!(y.value().to_vec(), [2., 4.]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-NCHW input, a zero-length dimension or a zero
    /// output size; [`Error::TooLarge`] for an output size too large to allocate.
    #[track_caller]
    pub fn adaptive_avg_pool2d(self, out: (usize, usize)) -> Result<Self> {
        let xs = self.shape();
        let op = "adaptive_avg_pool2d";
        check_image(op, &xs)?;
        if out.0 == 0 || out.1 == 0 {
            return Err(Error::invalid(
                op,
                format!("output size {out:?} must be positive"),
                &xs,
            ));
        }
        // The output's size is the user's, not any tensor's: check it before building a
        // list of windows per row and column.
        Shape::from([xs[0], xs[1], out.0, out.1]).check(op)?;
        // Window bounds in u128: i·n cannot overflow it for any usize sizes.
        let bounds = |i: usize, n: usize, o: usize| {
            let (i, n, o) = (i as u128, n as u128, o as u128);
            let start = i * n / o;
            let end = ((i + 1) * n).div_ceil(o);
            (start as usize, (end - start) as usize)
        };
        // Called here, not in a closure: the errors point at the caller's line.
        let rows = per_index(op, out.0, |i| bounds(i, xs[2], out.0))?;
        let cols = per_index(op, out.1, |i| bounds(i, xs[3], out.1))?;
        let kh = rows.iter().map(|r| r.1).max().unwrap_or(1);
        let kw = cols.iter().map(|c| c.1).max().unwrap_or(1);
        let planes = xs[0] * xs[1];
        let mut idx = crate::tensor::buffer(op, &Shape::from([planes, out.0, out.1, kh, kw]))?;
        for plane in 0..planes {
            let base = plane * xs[2] * xs[3];
            for &(r0, rl) in &rows {
                for &(c0, cl) in &cols {
                    for i in 0..kh {
                        for j in 0..kw {
                            idx.push(if i < rl && j < cl {
                                base + (r0 + i) * xs[3] + c0 + j
                            } else {
                                PAD
                            });
                        }
                    }
                }
            }
        }
        let shape = Shape::from([xs[0], xs[1], out.0, out.1, kh * kw]);
        let sums = self
            .gather_named(op, idx, shape, T::zero())
            .sum_axes(&[-1], false)?;
        let sizes = Tensor::from_fn([1, 1, out.0, out.1], |i| {
            T::of((rows[i / out.1].1 * cols[i % out.1].1) as f64)
        })?;
        sums.div(self.tape().constant(sizes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tape, Tensor};

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

    #[test]
    fn ceil_mode_keeps_a_last_partial_window_that_starts_inside() {
        // n = 5, k = 2, s = 2: floor gives 2 windows, ceil 3 (the last starts at 4 < 5)
        assert_eq!(pool_len(5, 2, 2, 0, 1, false), Some(2));
        assert_eq!(pool_len(5, 2, 2, 0, 1, true), Some(3));
        // n = 4, k = 2, s = 2, p = 1: ceil would start a 4th window at 6 - 1 = 5 ≥ n + p
        assert_eq!(pool_len(4, 2, 2, 1, 1, true), Some(3));
        assert_eq!(pool_len(4, 2, 0, 1, 1, true), None);
        assert_eq!(pool_len(4, 2, 1, usize::MAX, 1, false), None);
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::arange(5).unwrap().reshape([1, 1, 1, 5]).unwrap());
        let args = AvgPool2dArgs {
            stride: Some((1, 2)),
            ceil_mode: true,
            ..AvgPool2dArgs::default()
        };
        // windows [0, 1], [2, 3], [4]: the last divides by the one column it has
        let y = x.avg_pool2d_args((1, 2), args).unwrap();
        assert_eq!(y.value().to_vec(), [0.5, 2.5, 4.0]);
    }

    #[test]
    fn avg_pool_divisors_follow_count_include_pad() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::ones([1, 1, 2, 2]).unwrap());
        let args = AvgPool2dArgs {
            stride: Some((1, 1)),
            padding: (1, 1),
            ..AvgPool2dArgs::default()
        };
        // 3x3 output; the corner window holds one real element of four
        let inc = x.avg_pool2d_args((2, 2), args).unwrap().value().to_vec();
        assert_eq!(inc[0], 0.25);
        let exc = AvgPool2dArgs {
            count_include_pad: false,
            ..args
        };
        assert!(x
            .avg_pool2d_args((2, 2), exc)
            .unwrap()
            .value()
            .to_vec()
            .iter()
            .all(|&v| v == 1.0));
        let over = AvgPool2dArgs {
            divisor_override: Some(2),
            ..args
        };
        assert_eq!(
            x.avg_pool2d_args((2, 2), over).unwrap().value().to_vec()[4],
            2.0
        );
    }
}
