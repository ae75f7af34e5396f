//! `conv2d` as one op: the forward pass and the first-order gradients run the kernels of
//! `conv_kernels.rs` on plain buffers (no index list, no permute, the bias fused), while
//! the `Var`-level rule, used by `Tape::grad` and for higher orders, is the gradient of
//! the im2col formulation written with differentiable ops (gather, matmul, scatter-add),
//! so it can be differentiated again.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::error::Result;
use crate::op::{BackwardCx, Op, ValueGrads};
use crate::ops::conv::{Conv2dArgs, Windows};
use crate::ops::conv_kernels::{self, ConvAlgorithm, Geom};
use crate::ops::index::ScatterAddFlat;
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// The convolution of `[x, w]` or `[x, w, bias]` (shapes checked when it is recorded).
#[derive(Debug, Clone)]
pub(crate) struct Conv2d {
    pub(crate) args: Conv2dArgs,
    /// Output height and width.
    pub(crate) out: (usize, usize),
    pub(crate) algo: ConvAlgorithm,
}

impl Conv2d {
    pub(crate) fn geom(&self, xs: &Shape, ws: &Shape) -> Geom {
        Geom {
            n: xs[0],
            c: xs[1],
            h: xs[2],
            w: xs[3],
            co: ws[0],
            groups: self.args.groups,
            kh: ws[2],
            kw: ws[3],
            oh: self.out.0,
            ow: self.out.1,
            stride: self.args.stride,
            padding: self.args.padding,
            dilation: self.args.dilation,
        }
    }

    /// Checks that the output and the kernels' scratch buffers can exist and be
    /// allocated for these operands: [`crate::Error::TooLarge`] otherwise.
    #[track_caller]
    pub(crate) fn check_sizes<T: Float>(&self, xs: &Shape, ws: &Shape) -> Result<()> {
        let g = self.geom(xs, ws);
        Shape::from([g.n, g.co, g.oh, g.ow]).check("conv2d")?;
        // The window matrix of the `Var` rule, `[N·OH·OW, K]` (each image's im2col scratch
        // is a slice of that size), and the direct loops' padded image: probing a
        // reservation maps no memory, and a refused one is an error, not an abort.
        drop(crate::tensor::buffer::<T>(
            "conv2d",
            &Shape::from([g.n, g.oh, g.ow, g.k()]),
        )?);
        if g.n > 0 && g.resolve(self.algo) == ConvAlgorithm::Direct {
            let (hp, wp) = g.padded();
            drop(crate::tensor::buffer::<T>(
                "conv2d",
                &Shape::from([g.c, hp, wp]),
            )?);
        }
        Ok(())
    }
}

impl<T: Float> Op<T> for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let g = self.geom(x[0].shape(), x[1].shape());
        let shape = Shape::from([g.n, g.co, g.oh, g.ow]);
        let mut out = crate::tensor::buffer("conv2d", &shape)?;
        out.resize(shape.numel(), T::zero());
        let bias = x.get(2).map(|b| b.as_slice());
        conv_kernels::forward(
            &g,
            self.algo,
            x[0].as_slice(),
            x[1].as_slice(),
            bias,
            &mut out,
        );
        Ok(Tensor::from_parts(out, shape))
    }

    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        rule(cx.inputs(), cx.grad(), self.args, self.out)
    }

    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        gy: &Tensor<T>,
        needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        let (xs, ws) = (x[0].shape(), x[1].shape());
        let g = self.geom(xs, ws);
        let need_b = x.len() > 2 && needs[2];
        let (gx, gw, gb) = conv_kernels::backward(
            &g,
            self.algo,
            x[0].as_slice(),
            x[1].as_slice(),
            gy.as_slice(),
            (needs[0], needs[1], need_b),
        );
        let mut out: ValueGrads<T> = SmallVec::new();
        out.push(needs[0].then(|| Tensor::from_parts(gx, xs.clone())));
        out.push(needs[1].then(|| Tensor::from_parts(gw, ws.clone())));
        if x.len() > 2 {
            out.push(need_b.then(|| Tensor::from_parts(gb, Shape::from([g.co]))));
        }
        Some(out)
    }
}

/// The vector-Jacobian product of a convolution as recorded ops: per group, the output
/// gradient as a `[N·OH·OW, C_out/g]` matrix `G`, the window matrix `X` of the input
/// (a gather), then `∂w = Gᵀ·X`, `∂x = scatter(G·W)` and `∂b = Σ g` over N, H, W.
fn rule<'t, T: Float>(
    inputs: &[Var<'t, T>],
    gy: Var<'t, T>,
    args: Conv2dArgs,
    (oh, ow): (usize, usize),
) -> Result<Vec<Option<Var<'t, T>>>> {
    let (x, w) = (inputs[0], inputs[1]);
    let (xs, ws) = (x.shape(), w.shape());
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (co, kh, kw) = (ws[0], ws[2], ws[3]);
    let groups = args.groups;
    let (cig, cog) = (c / groups, co / groups);
    let (p, k) = (oh * ow, cig * kh * kw);
    let (want_x, want_w) = (x.requires_grad(), w.requires_grad());
    let group_shape = Shape::from([n, cig, h, wd]);
    let idx: Arc<[usize]> = if want_x || want_w {
        Windows {
            kernel: (kh, kw),
            out: (oh, ow),
            stride: args.stride,
            padding: args.padding,
            dilation: args.dilation,
        }
        .indices("conv2d", &group_shape)?
        .into()
    } else {
        Arc::from([])
    };
    let (mut gxs, mut gws) = (Vec::new(), Vec::new());
    for grp in 0..groups {
        if !(want_x || want_w) {
            break;
        }
        let gyg = if groups == 1 {
            gy
        } else {
            gy.narrow(1, grp * cog, cog)?
        };
        let g2 = gyg
            .reshape([n, cog, p])?
            .permute(&[0, 2, 1])?
            .reshape([n * p, cog])?;
        if want_w {
            let xg = if groups == 1 {
                x
            } else {
                x.narrow(1, grp * cig, cig)?
            };
            let cols = xg.gather_named("im2col", idx.to_vec(), Shape::from([n * p, k]), T::zero());
            gws.push(
                g2.matmul_t(cols, true, false)?
                    .reshape([cog, cig, kh, kw])?,
            );
        }
        if want_x {
            let wg = if groups == 1 {
                w
            } else {
                w.narrow(0, grp * cog, cog)?
            };
            let gcols = g2.matmul(wg.reshape([cog, k])?)?;
            gxs.push(gcols.apply1(ScatterAddFlat {
                idx: idx.clone(),
                shape: group_shape.clone(),
            })?);
        }
    }
    let join = |parts: Vec<Var<'t, T>>, axis: isize| -> Result<Option<Var<'t, T>>> {
        Ok(match parts.len() {
            0 => None,
            1 => Some(parts[0]),
            _ => Some(Var::concat(&parts, axis)?),
        })
    };
    let mut grads = vec![join(gxs, 1)?, join(gws, 0)?];
    if let Some(b) = inputs.get(2) {
        grads.push(if b.requires_grad() {
            Some(gy.sum_axes(&[0, 2, 3], false)?)
        } else {
            None
        });
    }
    Ok(grads)
}
