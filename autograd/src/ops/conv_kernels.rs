//! The arithmetic of a 2-d convolution on plain buffers: the output, and the gradients
//! of the input, the weight and the bias, by either of two algorithms.
//!
//! - **im2col + GEMM**: per image and group, the windows are copied into a
//!   `[C_in/g·kH·kW, OH·OW]` matrix and multiplied by the weight `[C_out/g, C_in/g·kH·kW]`,
//!   which writes the output's NCHW planes directly. The input gradient is `Wᵀ·g` scattered
//!   back (col2im); the weight gradient is `g·colsᵀ`.
//! - **direct**: per image, each output plane accumulates `w·(input plane)` over the taps,
//!   from a zero-padded copy of the image (at stride 1 one long axpy per tap on planes
//!   laid out at the padded width); the gradients are the same loops transposed. Measured
//!   slower than im2col + GEMM on the CNN workload's shapes, even with one input channel
//!   (`examples/conv_algos.rs`), so [`ConvAlgorithm::Auto`] does not pick it; it stays
//!   selectable so the comparison can be re-run on other shapes and machines.
//!
//! Work is split across images only, in pieces that depend on the sizes alone: each image's
//! output and input gradient are computed by one thread, and the weight gradient keeps one
//! partial per fixed block of images, added in block order, so every thread count gives
//! the same bits (`tests/thread_determinism.rs`).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::tensor::kernels::{gemm::gemm, par, threads};
use crate::tensor::Float;

/// How [`Var::conv2d`](crate::Var::conv2d) computes a convolution and its first-order
/// gradients (see [`set_conv_algorithm`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Chosen per call from the shapes (the faster of the two as measured by
    /// `examples/conv_algos.rs`).
    #[default]
    Auto,
    /// Window matrix (im2col) and one matrix product per image and group.
    Im2colGemm,
    /// Loops over output rows and kernel taps, on a zero-padded copy of each image.
    Direct,
}

static ALGORITHM: AtomicU8 = AtomicU8::new(0);

/// Chooses the algorithm convolutions recorded from now on use (the default is
/// [`ConvAlgorithm::Auto`]); for measuring them against each other, as
/// `torch.backends.cudnn` settings do. Every choice computes the same function; the last
/// bits of a result may differ between algorithms (their sums run in different orders),
/// never between thread counts.
///
/// ```
/// use autograd::{set_conv_algorithm, conv_algorithm, ConvAlgorithm};
/// set_conv_algorithm(ConvAlgorithm::Direct);
/// assert_eq!(conv_algorithm(), ConvAlgorithm::Direct);
/// set_conv_algorithm(ConvAlgorithm::Auto);
/// ```
pub fn set_conv_algorithm(a: ConvAlgorithm) {
    let v = match a {
        ConvAlgorithm::Auto => 0,
        ConvAlgorithm::Im2colGemm => 1,
        ConvAlgorithm::Direct => 2,
    };
    ALGORITHM.store(v, Ordering::Relaxed);
}

/// The algorithm set by [`set_conv_algorithm`].
pub fn conv_algorithm() -> ConvAlgorithm {
    match ALGORITHM.load(Ordering::Relaxed) {
        1 => ConvAlgorithm::Im2colGemm,
        2 => ConvAlgorithm::Direct,
        _ => ConvAlgorithm::Auto,
    }
}

/// The sizes of one convolution, all checked by the caller: the output, the window matrix
/// of one image's group and the padded image exist (no product overflows).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) co: usize,
    pub(crate) groups: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    pub(crate) stride: (usize, usize),
    pub(crate) padding: (usize, usize),
    pub(crate) dilation: (usize, usize),
}

impl Geom {
    fn cig(&self) -> usize {
        self.c / self.groups
    }
    fn cog(&self) -> usize {
        self.co / self.groups
    }
    /// Rows of a group's window matrix: `C_in/g·kH·kW`.
    pub(crate) fn k(&self) -> usize {
        self.cig() * self.kh * self.kw
    }
    /// Output positions per plane.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn in_img(&self) -> usize {
        self.c * self.h * self.w
    }
    fn out_img(&self) -> usize {
        self.co * self.p()
    }
    fn w_numel(&self) -> usize {
        self.co * self.k()
    }
    /// The padded image's rows and columns.
    pub(crate) fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.padding.0, self.w + 2 * self.padding.1)
    }

    /// The algorithm for `requested` on these sizes.
    pub(crate) fn resolve(&self, requested: ConvAlgorithm) -> ConvAlgorithm {
        match requested {
            // im2col + GEMM was faster than the direct loops on both convolutions of the
            // CNN workload, forward and backward, 1 and 2 threads, even with a single input
            // channel (examples/conv_algos.rs; numbers in its documentation), so it is the
            // choice at every size until a measured shape says otherwise.
            ConvAlgorithm::Auto => ConvAlgorithm::Im2colGemm,
            a => a,
        }
    }

    /// Multiply-adds of the forward pass, saturating (only compared with thresholds).
    fn work(&self) -> usize {
        self.n
            .saturating_mul(self.out_img())
            .saturating_mul(self.k())
    }
}

/// At most this many blocks of images carry a partial weight gradient: enough to keep two
/// or four threads busy, few enough that the partials stay small. Depends on nothing but
/// this constant, so the blocks (and the sums) are the same for every thread count.
const WEIGHT_BLOCKS: usize = 8;

/// Output positions `lo..hi` along an axis of `out` whose tap at offset `off` (`tap ·
/// dilation`) lands inside an input of length `len`: `0 ≤ o·s + off - p < len`.
fn valid(out: usize, off: usize, s: usize, p: usize, len: usize) -> (usize, usize) {
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    let hi = if len + p <= off {
        0
    } else {
        ((len + p - off - 1) / s + 1).min(out)
    };
    (lo.min(hi), hi)
}

/// `cols[(ci·kH + i)·kW + j][y·OW + x]` = the input under tap `(i, j)` of output `(y, x)` in
/// channel `ci` of `x` (one image's group, `C_in/g` planes), 0 in the padding.
#[inline(always)]
fn im2col<T: Float>(g: &Geom, x: &[T], cols: &mut [T]) {
    let (p, ow) = (g.p(), g.ow);
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    for ci in 0..g.cig() {
        let plane = &x[ci * g.h * g.w..][..g.h * g.w];
        for i in 0..g.kh {
            let (ylo, yhi) = valid(g.oh, i * dh, sh, ph, g.h);
            for j in 0..g.kw {
                let (xlo, xhi) = valid(ow, j * dw, sw, pw, g.w);
                let row = &mut cols[((ci * g.kh + i) * g.kw + j) * p..][..p];
                row[..ylo * ow].fill(T::zero());
                row[yhi * ow..].fill(T::zero());
                for y in ylo..yhi {
                    let src = &plane[(y * sh + i * dh - ph) * g.w..][..g.w];
                    let dst = &mut row[y * ow..][..ow];
                    dst[..xlo].fill(T::zero());
                    dst[xhi..].fill(T::zero());
                    if sw == 1 {
                        let x0 = xlo + j * dw - pw;
                        dst[xlo..xhi].copy_from_slice(&src[x0..x0 + (xhi - xlo)]);
                    } else {
                        for (xo, d) in dst[xlo..xhi].iter_mut().enumerate() {
                            *d = src[(xlo + xo) * sw + j * dw - pw];
                        }
                    }
                }
            }
        }
    }
}

/// The transpose of [`im2col`]: adds each window entry of `cols` into `gx` where it was
/// read from (one image's group).
#[inline(always)]
fn col2im<T: Float>(g: &Geom, cols: &[T], gx: &mut [T]) {
    let (p, ow) = (g.p(), g.ow);
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    for ci in 0..g.cig() {
        let plane = &mut gx[ci * g.h * g.w..][..g.h * g.w];
        for i in 0..g.kh {
            let (ylo, yhi) = valid(g.oh, i * dh, sh, ph, g.h);
            for j in 0..g.kw {
                let (xlo, xhi) = valid(ow, j * dw, sw, pw, g.w);
                let row = &cols[((ci * g.kh + i) * g.kw + j) * p..][..p];
                for y in ylo..yhi {
                    let dst = &mut plane[(y * sh + i * dh - ph) * g.w..][..g.w];
                    let src = &row[y * ow..][..ow];
                    if sw == 1 {
                        let x0 = xlo + j * dw - pw;
                        for (d, &s) in dst[x0..x0 + (xhi - xlo)].iter_mut().zip(&src[xlo..xhi]) {
                            *d += s;
                        }
                    } else {
                        for (xo, &s) in src[xlo..xhi].iter().enumerate() {
                            dst[(xlo + xo) * sw + j * dw - pw] += s;
                        }
                    }
                }
            }
        }
    }
}

/// One image zero-padded: `[C, H + 2pH, W + 2pW]`, written into `out`.
#[inline(always)]
fn pad_image<T: Float>(g: &Geom, x: &[T], out: &mut [T]) {
    let (hp, wp) = g.padded();
    let (ph, pw) = g.padding;
    out.fill(T::zero());
    for ci in 0..g.c {
        for y in 0..g.h {
            let src = &x[(ci * g.h + y) * g.w..][..g.w];
            out[(ci * hp + y + ph) * wp + pw..][..g.w].copy_from_slice(src);
        }
    }
}

/// `dst[x] += a·src[x·s]` for every `x` of `dst`.
#[inline(always)]
fn axpy_strided<T: Float>(dst: &mut [T], a: T, src: &[T], s: usize) {
    if s == 1 {
        let n = dst.len();
        for (d, &v) in dst.iter_mut().zip(&src[..n]) {
            *d += a * v;
        }
    } else {
        for (xo, d) in dst.iter_mut().enumerate() {
            *d += a * src[xo * s];
        }
    }
}

/// Length of a stride-1 plane laid out on the padded image's row width `wp`: output
/// `(y, x)` at `y·wp + x`, so tap `(i, j)` of every output reads the padded plane at one
/// offset, `i·dH·wp + j·dW`, and a tap is one long axpy (or dot product) instead of a
/// short one per row. The `wp - OW` columns past each row are scratch.
fn flat_span(g: &Geom) -> usize {
    let (_, wp) = g.padded();
    if g.oh == 0 || g.ow == 0 {
        0
    } else {
        (g.oh - 1) * wp + g.ow
    }
}

/// `Σ a[i]·b[i]` over 32 lanes (so it vectorises with several accumulators), the lanes
/// then added in order.
#[inline(always)]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    const L: usize = 32;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [T::zero(); L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..L {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut s = T::zero();
    for (&x, &y) in ra.iter().zip(rb) {
        s += x * y;
    }
    for l in lanes {
        s += l;
    }
    s
}

/// [`direct_forward_image`] for stride 1 on the flat layout of [`flat_span`].
#[inline(always)]
fn direct_forward_flat<T: Float>(g: &Geom, xp: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let (hp, wp) = g.padded();
    let (dh, dw) = g.dilation;
    let (cig, cog, ow) = (g.cig(), g.cog(), g.ow);
    let span = flat_span(g);
    let mut acc = vec![T::zero(); span];
    for co in 0..g.co {
        let grp = co / cog.max(1);
        acc.fill(bias.map_or(T::zero(), |b| b[co]));
        let wk = &w[co * g.k()..][..g.k()];
        for ci in 0..cig {
            let plane = &xp[(grp * cig + ci) * hp * wp..][..hp * wp];
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let a = wk[(ci * g.kh + i) * g.kw + j];
                    let src = &plane[i * dh * wp + j * dw..][..span];
                    for (d, &v) in acc.iter_mut().zip(src) {
                        *d += a * v;
                    }
                }
            }
        }
        for y in 0..g.oh {
            out[(co * g.oh + y) * ow..][..ow].copy_from_slice(&acc[y * wp..][..ow]);
        }
    }
}

/// One output-gradient plane on the flat layout of [`flat_span`], zeros in the scratch
/// columns.
#[inline(always)]
fn flat_plane<T: Float>(g: &Geom, gplane: &[T], flat: &mut [T]) {
    let (_, wp) = g.padded();
    flat.fill(T::zero());
    for y in 0..g.oh {
        flat[y * wp..][..g.ow].copy_from_slice(&gplane[y * g.ow..][..g.ow]);
    }
}

/// The output of one image, direct: every output row starts at the bias and adds
/// `w[co, ci, i, j]·(padded input row)` for each tap in (ci, i, j) order.
#[inline(always)]
fn direct_forward_image<T: Float>(g: &Geom, xp: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    if g.stride == (1, 1) {
        return direct_forward_flat(g, xp, w, bias, out);
    }
    let (hp, wp) = g.padded();
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let (cig, cog, ow) = (g.cig(), g.cog(), g.ow);
    for co in 0..g.co {
        let grp = co / cog.max(1);
        let b = bias.map_or(T::zero(), |b| b[co]);
        let wk = &w[co * g.k()..][..g.k()];
        for y in 0..g.oh {
            let dst = &mut out[(co * g.oh + y) * ow..][..ow];
            dst.fill(b);
            for ci in 0..cig {
                let plane = &xp[(grp * cig + ci) * hp * wp..][..hp * wp];
                for i in 0..g.kh {
                    let row = &plane[(y * sh + i * dh) * wp..][..wp];
                    for j in 0..g.kw {
                        let a = wk[(ci * g.kh + i) * g.kw + j];
                        axpy_strided(dst, a, &row[j * dw..], sw);
                    }
                }
            }
        }
    }
}

/// The stride-1 walk both direct gradients share: for each output channel, its gradient
/// plane laid out flat on the padded width (`flat_plane`), then for each input channel of
/// its group and each tap, `f(flat, tap, at)` with `tap` the weight's flat index and `at`
/// the offset in the padded input where that tap's span starts.
#[inline(always)]
fn stride1_taps<T: Float>(g: &Geom, gy: &[T], mut f: impl FnMut(&[T], usize, usize)) {
    let (hp, wp) = g.padded();
    let (dh, dw) = g.dilation;
    let (cig, cog) = (g.cig(), g.cog());
    let mut flat = vec![T::zero(); flat_span(g)];
    for co in 0..g.co {
        let grp = co / cog.max(1);
        flat_plane(g, &gy[co * g.p()..][..g.p()], &mut flat);
        for ci in 0..cig {
            let plane = (grp * cig + ci) * hp * wp;
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let tap = co * g.k() + (ci * g.kh + i) * g.kw + j;
                    f(&flat, tap, plane + i * dh * wp + j * dw);
                }
            }
        }
    }
}

/// The input gradient of one image, direct, into the zero-filled padded buffer `gxp`
/// (cropped by the caller): each gradient row spreads `w·g` over the taps it fed.
#[inline(always)]
fn direct_grad_x_image<T: Float>(g: &Geom, gy: &[T], w: &[T], gxp: &mut [T]) {
    if g.stride == (1, 1) {
        stride1_taps(g, gy, |flat, tap, at| {
            let a = w[tap];
            for (d, &v) in gxp[at..][..flat.len()].iter_mut().zip(flat) {
                *d += a * v;
            }
        });
        return;
    }
    let (hp, wp) = g.padded();
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let (cig, cog, ow) = (g.cig(), g.cog(), g.ow);
    for co in 0..g.co {
        let grp = co / cog.max(1);
        let wk = &w[co * g.k()..][..g.k()];
        for y in 0..g.oh {
            let src = &gy[(co * g.oh + y) * ow..][..ow];
            for ci in 0..cig {
                let plane = &mut gxp[(grp * cig + ci) * hp * wp..][..hp * wp];
                for i in 0..g.kh {
                    let row = &mut plane[(y * sh + i * dh) * wp..][..wp];
                    for j in 0..g.kw {
                        let a = wk[(ci * g.kh + i) * g.kw + j];
                        let row = &mut row[j * dw..];
                        if sw == 1 {
                            for (d, &v) in row[..ow].iter_mut().zip(src) {
                                *d += a * v;
                            }
                        } else {
                            for (xo, &v) in src.iter().enumerate() {
                                row[xo * sw] += a * v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds one image's weight gradient to `gw`, direct: `gw[co, ci, i, j] += Σ_y Σ_x g[co, y,
/// x]·xp[ci, y·s + i·d, x·s + j·d]`, summed per tap over the rows into the lanes of `acc`
/// (one per output column) before the lanes are added in order.
#[inline(always)]
fn direct_grad_w_image<T: Float>(g: &Geom, xp: &[T], gy: &[T], gw: &mut [T], acc: &mut [T]) {
    if g.stride == (1, 1) {
        stride1_taps(g, gy, |flat, tap, at| {
            gw[tap] += dot(flat, &xp[at..][..flat.len()]);
        });
        return;
    }
    let (hp, wp) = g.padded();
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let (cig, cog, ow) = (g.cig(), g.cog(), g.ow);
    for co in 0..g.co {
        let grp = co / cog.max(1);
        let gk = &mut gw[co * g.k()..][..g.k()];
        let gplane = &gy[co * g.p()..][..g.p()];
        for ci in 0..cig {
            let plane = &xp[(grp * cig + ci) * hp * wp..][..hp * wp];
            for i in 0..g.kh {
                for j in 0..g.kw {
                    acc.fill(T::zero());
                    for y in 0..g.oh {
                        let row = &plane[(y * sh + i * dh) * wp + j * dw..];
                        let gr = &gplane[y * ow..][..ow];
                        if sw == 1 {
                            for ((a, &gv), &xv) in acc.iter_mut().zip(gr).zip(&row[..ow]) {
                                *a += gv * xv;
                            }
                        } else {
                            for (xo, (a, &gv)) in acc.iter_mut().zip(gr).enumerate() {
                                *a += gv * row[xo * sw];
                            }
                        }
                    }
                    let mut s = T::zero();
                    for &a in acc.iter() {
                        s += a;
                    }
                    gk[(ci * g.kh + i) * g.kw + j] += s;
                }
            }
        }
    }
}

/// The forward pass: `[N, C_out, OH, OW]` from `x: [N, C, H, W]`, `w: [C_out, C/g, kH,
/// kW]` and an optional bias, into `out` (`N·C_out·OH·OW` elements).
pub(crate) fn forward<T: Float>(
    g: &Geom,
    algo: ConvAlgorithm,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let algo = g.resolve(algo);
    let (k, p, cog) = (g.k(), g.p(), g.cog());
    let per = g.out_img();
    if per == 0 {
        return;
    }
    par::for_chunks_mut(out, per, g.work(), |start, out| {
        let b = start / per;
        let img = &x[b * g.in_img()..][..g.in_img()];
        par::simd::dispatch(
            #[inline(always)]
            || match algo {
                ConvAlgorithm::Direct => {
                    let (hp, wp) = g.padded();
                    let mut xp = vec![T::zero(); g.c * hp * wp];
                    pad_image(g, img, &mut xp);
                    direct_forward_image(g, &xp, w, bias, out);
                }
                _ => {
                    let mut cols = vec![T::zero(); k * p];
                    for grp in 0..g.groups {
                        let o = &mut out[grp * cog * p..][..cog * p];
                        im2col(g, &img[grp * g.cig() * g.h * g.w..], &mut cols);
                        gemm(
                            cog,
                            k,
                            p,
                            &w[grp * cog * k..],
                            k as isize,
                            1,
                            &cols,
                            p as isize,
                            1,
                            o,
                        );
                        if let Some(bias) = bias {
                            for (c, row) in o.chunks_exact_mut(p).enumerate() {
                                let bv = bias[grp * cog + c];
                                row.iter_mut().for_each(|v| *v += bv);
                            }
                        }
                    }
                }
            },
        );
    });
}

/// First-order gradients of [`forward`] for the output gradient `gy`: the input's and the
/// weight's where `needs` says so (empty vectors otherwise), and the bias's when
/// `need_bias`.
#[allow(clippy::type_complexity)]
pub(crate) fn backward<T: Float>(
    g: &Geom,
    algo: ConvAlgorithm,
    x: &[T],
    w: &[T],
    gy: &[T],
    (need_x, need_w, need_b): (bool, bool, bool),
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let algo = g.resolve(algo);
    let mut gx = if need_x {
        vec![T::zero(); g.n * g.in_img()]
    } else {
        Vec::new()
    };
    let blocks = g.n.clamp(1, WEIGHT_BLOCKS);
    let per_block = g.n.div_ceil(blocks).max(1);
    let blocks = g.n.div_ceil(per_block);
    let mut gw_parts = if need_w {
        vec![T::zero(); blocks * g.w_numel()]
    } else {
        Vec::new()
    };
    // One piece per block of images: its slice of the input gradient and its partial
    // weight gradient.
    let gx_piece = per_block * g.in_img();
    let mut pieces: Vec<(usize, &mut [T], &mut [T])> = Vec::with_capacity(blocks);
    {
        let mut gx_rest: &mut [T] = &mut gx;
        let mut gw_rest: &mut [T] = &mut gw_parts;
        for b in 0..blocks {
            let take = gx_piece.min(gx_rest.len());
            let (a, r) = std::mem::take(&mut gx_rest).split_at_mut(take);
            gx_rest = r;
            let take = g.w_numel().min(gw_rest.len());
            let (c, r) = std::mem::take(&mut gw_rest).split_at_mut(take);
            gw_rest = r;
            pieces.push((b * per_block, a, c));
        }
    }
    let run = |(first, gx, gw): &mut (usize, &mut [T], &mut [T])| {
        let images = *first..(*first + per_block).min(g.n);
        par::simd::dispatch(
            #[inline(always)]
            || match algo {
                ConvAlgorithm::Direct => backward_direct(g, x, w, gy, images, gx, gw),
                _ => backward_im2col(g, x, w, gy, images, gx, gw),
            },
        );
    };
    if par::worth_splitting(g.work()) && pieces.len() > 1 {
        threads::for_each_mut(&mut pieces, |_, p| run(p));
    } else {
        pieces.iter_mut().for_each(run);
    }
    drop(pieces);
    let mut gw = Vec::new();
    if need_w {
        gw = vec![T::zero(); g.w_numel()];
        if g.w_numel() > 0 {
            for part in gw_parts.chunks_exact(g.w_numel()) {
                for (a, &b) in gw.iter_mut().zip(part) {
                    *a += b;
                }
            }
        }
    }
    let gb = if need_b { bias_grad(g, gy) } else { Vec::new() };
    (gx, gw, gb)
}

/// `Σ_n Σ_p gy[n, co, p]` per output channel, in a fixed order.
fn bias_grad<T: Float>(g: &Geom, gy: &[T]) -> Vec<T> {
    let p = g.p();
    let mut gb = vec![T::zero(); g.co];
    if p == 0 {
        return gb;
    }
    for img in gy.chunks_exact(g.out_img().max(1)).take(g.n) {
        for (b, plane) in gb.iter_mut().zip(img.chunks_exact(p)) {
            // Eight lanes, so the sum vectorises; added in lane order.
            let mut lanes = [T::zero(); 8];
            let mut it = plane.chunks_exact(8);
            for c in &mut it {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += v;
                }
            }
            let mut s = T::zero();
            for &v in it.remainder() {
                s += v;
            }
            for l in lanes {
                s += l;
            }
            *b += s;
        }
    }
    gb
}

/// The gradients of the images `images` by im2col + GEMM: `gx` holds their input
/// gradients (empty when not wanted), `gw` their summed weight gradient (likewise).
#[inline(always)]
fn backward_im2col<T: Float>(
    g: &Geom,
    x: &[T],
    w: &[T],
    gy: &[T],
    images: std::ops::Range<usize>,
    gx: &mut [T],
    gw: &mut [T],
) {
    let (k, p, cog, cig) = (g.k(), g.p(), g.cog(), g.cig());
    let plane_in = cig * g.h * g.w;
    let mut cols = vec![T::zero(); k * p];
    let mut part = if gw.is_empty() {
        Vec::new()
    } else {
        vec![T::zero(); cog * k]
    };
    let first = images.start;
    for b in images {
        let img = &x[b * g.in_img()..][..g.in_img()];
        let gimg = &gy[b * g.out_img()..][..g.out_img()];
        for grp in 0..g.groups {
            let wg = &w[grp * cog * k..][..cog * k];
            let gg = &gimg[grp * cog * p..][..cog * p];
            if !gw.is_empty() {
                im2col(g, &img[grp * plane_in..], &mut cols);
                // g·colsᵀ: [C_out/g, P]·[P, K]
                gemm(
                    cog, p, k, gg, p as isize, 1, &cols, 1, p as isize, &mut part,
                );
                for (a, &v) in gw[grp * cog * k..][..cog * k].iter_mut().zip(&part) {
                    *a += v;
                }
            }
            if !gx.is_empty() {
                // Wᵀ·g: [K, C_out/g]·[C_out/g, P], then back into the image.
                gemm(k, cog, p, wg, 1, k as isize, gg, p as isize, 1, &mut cols);
                let gxi = &mut gx[(b - first) * g.in_img() + grp * plane_in..][..plane_in];
                col2im(g, &cols, gxi);
            }
        }
    }
}

/// As [`backward_im2col`], by the direct loops.
#[inline(always)]
fn backward_direct<T: Float>(
    g: &Geom,
    x: &[T],
    w: &[T],
    gy: &[T],
    images: std::ops::Range<usize>,
    gx: &mut [T],
    gw: &mut [T],
) {
    let (hp, wp) = g.padded();
    let (ph, pw) = g.padding;
    let mut xp = vec![T::zero(); g.c * hp * wp];
    let mut acc = vec![T::zero(); g.ow];
    let first = images.start;
    for b in images {
        let img = &x[b * g.in_img()..][..g.in_img()];
        let gimg = &gy[b * g.out_img()..][..g.out_img()];
        if !gw.is_empty() {
            pad_image(g, img, &mut xp);
            direct_grad_w_image(g, &xp, gimg, gw, &mut acc);
        }
        if !gx.is_empty() {
            xp.fill(T::zero());
            direct_grad_x_image(g, gimg, w, &mut xp);
            let gxi = &mut gx[(b - first) * g.in_img()..][..g.in_img()];
            for ci in 0..g.c {
                for y in 0..g.h {
                    gxi[(ci * g.h + y) * g.w..][..g.w]
                        .copy_from_slice(&xp[(ci * hp + y + ph) * wp + pw..][..g.w]);
                }
            }
        }
    }
}
