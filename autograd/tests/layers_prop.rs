//! Property tests for the ops behind the convolution, pooling, resampling and
//! normalisation layers: forward values against direct loops written from PyTorch's
//! definitions, and first and second derivatives against central finite differences in
//! f64, over random shapes and geometries. Then the typed errors for bad arguments, each
//! pointing at the caller's line.
//!
//! Seeds are fixed; max pooling runs on distinct values, so no window has a tie.

use autograd::testing::{check_gradgrad, check_gradients, distinct, tensor};
use autograd::{
    assert_close, AvgPool2dArgs, Conv1dArgs, ConvTranspose1dArgs, ConvTranspose2dArgs, Error,
    MaxPool2dArgs, Shape, Tape, Tensor,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6c61_7965_7273_5f61),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/layers_prop.txt",
        ))),
        ..Config::default()
    }
}

/// Direct-loop transposed 2-d convolution: input pixel `(h, w)` of channel `ci` adds
/// `x·w[ci, o, i, j]` at output `(h·s - p + i·d, w·s - p + j·d)` of channel
/// `g·C_out/g + o`, dropping positions outside (the reference README's definition).
fn naive_conv_transpose2d(
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    b: Option<&Tensor<f64>>,
    a: ConvTranspose2dArgs,
) -> Tensor<f64> {
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (cog, kh, kw) = (w.dims()[1], w.dims()[2], w.dims()[3]);
    let co = cog * a.groups;
    let cig = c / a.groups;
    let oh =
        (h - 1) * a.stride.0 + a.dilation.0 * (kh - 1) + a.output_padding.0 + 1 - 2 * a.padding.0;
    let ow =
        (wd - 1) * a.stride.1 + a.dilation.1 * (kw - 1) + a.output_padding.1 + 1 - 2 * a.padding.1;
    let mut out = vec![0.0; n * co * oh * ow];
    for bi in 0..n {
        for o in 0..co {
            let bias = b.map_or(0.0, |b| b.as_slice()[o]);
            for k in 0..oh * ow {
                out[(bi * co + o) * oh * ow + k] = bias;
            }
        }
        for ci in 0..c {
            let g = ci / cig;
            for y in 0..h {
                for z in 0..wd {
                    let v = x.at(&[bi, ci, y, z]).unwrap();
                    for oc in 0..cog {
                        let o = g * cog + oc;
                        for i in 0..kh {
                            for j in 0..kw {
                                let r = (y * a.stride.0 + i * a.dilation.0) as isize
                                    - a.padding.0 as isize;
                                let q = (z * a.stride.1 + j * a.dilation.1) as isize
                                    - a.padding.1 as isize;
                                if r < 0 || q < 0 || r as usize >= oh || q as usize >= ow {
                                    continue;
                                }
                                out[((bi * co + o) * oh + r as usize) * ow + q as usize] +=
                                    v * w.at(&[ci, oc, i, j]).unwrap();
                            }
                        }
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, [n, co, oh, ow]).unwrap()
}

/// Direct-loop 1-d convolution.
fn naive_conv1d(x: &Tensor<f64>, w: &Tensor<f64>, b: &Tensor<f64>, a: Conv1dArgs) -> Tensor<f64> {
    let (n, l) = (x.dims()[0], x.dims()[2]);
    let (co, cig, k) = (w.dims()[0], w.dims()[1], w.dims()[2]);
    let ol = (l + 2 * a.padding - a.dilation * (k - 1) - 1) / a.stride + 1;
    let cog = co / a.groups;
    Tensor::from_fn([n, co, ol], |f| {
        let (bi, o, t) = (f / (co * ol), (f / ol) % co, f % ol);
        let g = o / cog;
        let mut acc = b.as_slice()[o];
        for ci in 0..cig {
            for j in 0..k {
                let p = (t * a.stride + j * a.dilation) as isize - a.padding as isize;
                if p >= 0 && (p as usize) < l {
                    acc +=
                        x.at(&[bi, g * cig + ci, p as usize]).unwrap() * w.at(&[o, ci, j]).unwrap();
                }
            }
        }
        acc
    })
    .unwrap()
}

/// PyTorch's pooling output size (`pooling_output_shape`).
fn pool_len(n: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> usize {
    let num = n + 2 * p - d * (k - 1) - 1;
    let mut o = if ceil { num.div_ceil(s) } else { num / s } + 1;
    if ceil && (o - 1) * s >= n + p {
        o -= 1;
    }
    o
}

/// Direct-loop max pooling with indices (first maximum in scan order, as ATen).
fn naive_max_pool(
    x: &Tensor<f64>,
    k: (usize, usize),
    a: MaxPool2dArgs,
) -> (Tensor<f64>, Vec<usize>) {
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let s = a.stride.unwrap_or(k);
    let oh = pool_len(h, k.0, s.0, a.padding.0, a.dilation.0, a.ceil_mode);
    let ow = pool_len(w, k.1, s.1, a.padding.1, a.dilation.1, a.ceil_mode);
    let (mut vals, mut idx) = (vec![], vec![]);
    for plane in 0..n * c {
        for y in 0..oh {
            for z in 0..ow {
                let (mut best, mut at) = (f64::NEG_INFINITY, usize::MAX);
                for i in 0..k.0 {
                    for j in 0..k.1 {
                        let r = (y * s.0 + i * a.dilation.0) as isize - a.padding.0 as isize;
                        let q = (z * s.1 + j * a.dilation.1) as isize - a.padding.1 as isize;
                        if r < 0 || q < 0 || r as usize >= h || q as usize >= w {
                            continue;
                        }
                        let v = x.as_slice()[plane * h * w + r as usize * w + q as usize];
                        if v > best {
                            (best, at) = (v, r as usize * w + q as usize);
                        }
                    }
                }
                vals.push(best);
                idx.push(at);
            }
        }
    }
    (Tensor::from_vec(vals, [n, c, oh, ow]).unwrap(), idx)
}

/// Direct-loop average pooling with ATen's divisor rule.
fn naive_avg_pool(x: &Tensor<f64>, k: (usize, usize), a: AvgPool2dArgs) -> Tensor<f64> {
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let s = a.stride.unwrap_or(k);
    let (ph, pw) = (a.padding.0 as isize, a.padding.1 as isize);
    let oh = pool_len(h, k.0, s.0, a.padding.0, 1, a.ceil_mode);
    let ow = pool_len(w, k.1, s.1, a.padding.1, 1, a.ceil_mode);
    let mut out = vec![];
    for plane in 0..n * c {
        for y in 0..oh {
            for z in 0..ow {
                let hs = (y * s.0) as isize - ph;
                let ws = (z * s.1) as isize - pw;
                let he = (hs + k.0 as isize).min(h as isize + ph);
                let we = (ws + k.1 as isize).min(w as isize + pw);
                let pool = (he - hs) * (we - ws);
                let (hs, ws) = (hs.max(0), ws.max(0));
                let (he, we) = (he.min(h as isize), we.min(w as isize));
                let mut sum = 0.0;
                for r in hs..he {
                    for q in ws..we {
                        sum += x.as_slice()[plane * h * w + r as usize * w + q as usize];
                    }
                }
                let div = match a.divisor_override {
                    Some(d) => d as isize,
                    None if a.count_include_pad => pool,
                    None => (he - hs) * (we - ws),
                };
                out.push(sum / div as f64);
            }
        }
    }
    Tensor::from_vec(out, [n, c, oh, ow]).unwrap()
}

/// Direct-loop adaptive average pooling.
fn naive_adaptive(x: &Tensor<f64>, (oh, ow): (usize, usize)) -> Tensor<f64> {
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    Tensor::from_fn([n, c, oh, ow], |f| {
        let (plane, y, z) = (f / (oh * ow), (f / ow) % oh, f % ow);
        let (r0, r1) = (y * h / oh, ((y + 1) * h).div_ceil(oh));
        let (c0, c1) = (z * w / ow, ((z + 1) * w).div_ceil(ow));
        let mut sum = 0.0;
        for r in r0..r1 {
            for q in c0..c1 {
                sum += x.as_slice()[plane * h * w + r * w + q];
            }
        }
        sum / ((r1 - r0) * (c1 - c0)) as f64
    })
    .unwrap()
}

/// Direct bilinear interpolation from the reference README's formula.
fn naive_bilinear(x: &Tensor<f64>, (oh, ow): (usize, usize), align: bool) -> Tensor<f64> {
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let src = |d: usize, n_in: usize, n_out: usize| -> (usize, usize, f64) {
        let s = if align {
            if n_out > 1 {
                d as f64 * (n_in - 1) as f64 / (n_out - 1) as f64
            } else {
                0.0
            }
        } else {
            ((d as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0)
        };
        let i0 = (s.floor() as usize).min(n_in - 1);
        (i0, (i0 + 1).min(n_in - 1), s - i0 as f64)
    };
    Tensor::from_fn([n, c, oh, ow], |f| {
        let (plane, y, z) = (f / (oh * ow), (f / ow) % oh, f % ow);
        let (r0, r1, ly) = src(y, h, oh);
        let (c0, c1, lx) = src(z, w, ow);
        let at = |r: usize, q: usize| x.as_slice()[plane * h * w + r * w + q];
        let top = (1.0 - lx) * at(r0, c0) + lx * at(r0, c1);
        let bottom = (1.0 - lx) * at(r1, c0) + lx * at(r1, c1);
        (1.0 - ly) * top + ly * bottom
    })
    .unwrap()
}

#[derive(Debug, Clone)]
struct TransposeCase {
    x: Tensor<f64>,
    w: Tensor<f64>,
    b: Tensor<f64>,
    args: ConvTranspose2dArgs,
}

fn transpose_case() -> impl Strategy<Value = TransposeCase> {
    (
        (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (1usize..=3, 1usize..=2, 1usize..=3, 1usize..=2),
        (
            0usize..=2,
            0usize..=1,
            1usize..=2,
            1usize..=2,
            0usize..=2,
            0usize..=2,
        ),
        (1usize..=3, 1usize..=3),
    )
        .prop_flat_map(
            |((n, groups, cig, cog), (kh, kw, sh, sw), (ph, pw, dh, dw, oph, opw), (h, wd))| {
                // output_padding below the stride or the dilation; padding small enough to
                // leave an output
                let oph = oph.min(sh.max(dh) - 1);
                let opw = opw.min(sw.max(dw) - 1);
                let full_h = (h - 1) * sh + dh * (kh - 1) + oph + 1;
                let full_w = (wd - 1) * sw + dw * (kw - 1) + opw + 1;
                let ph = ph.min((full_h - 1) / 2);
                let pw = pw.min((full_w - 1) / 2);
                let args = ConvTranspose2dArgs {
                    stride: (sh, sw),
                    padding: (ph, pw),
                    output_padding: (oph, opw),
                    dilation: (dh, dw),
                    groups,
                };
                (
                    tensor(Just(Shape::from([n, groups * cig, h, wd]))),
                    tensor(Just(Shape::from([groups * cig, cog, kh, kw]))),
                    tensor(Just(Shape::from([groups * cog]))),
                    Just(args),
                )
            },
        )
        .prop_map(|(x, w, b, args)| TransposeCase { x, w, b, args })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn conv_transpose2d_matches_direct_loops_and_finite_differences(c in transpose_case()) {
        let tape = Tape::new();
        let (x, w, b) = (tape.constant(c.x.clone()), tape.constant(c.w.clone()), tape.constant(c.b.clone()));
        assert_close!(
            x.conv_transpose2d(w, Some(b), c.args).unwrap(),
            naive_conv_transpose2d(&c.x, &c.w, Some(&c.b), c.args)
        );
        let args = c.args;
        let xs = [c.x, c.w, c.b];
        check_gradients(|v| v[0].conv_transpose2d(v[1], Some(v[2]), args), &xs)?;
        check_gradgrad(|v| v[0].conv_transpose2d(v[1], Some(v[2]), args), &xs)?;
    }

    #[test]
    fn the_1d_convolutions_match_direct_loops_and_finite_differences(
        (x, w, b, args, l_out) in (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2, 1usize..=3, 1usize..=2, 0usize..=1, 1usize..=2, 0usize..=3)
            .prop_flat_map(|(n, groups, cig, cog, k, s, p, d, extra)| {
                let l = d * (k - 1) + 1 + extra;
                let args = Conv1dArgs { stride: s, padding: p, dilation: d, groups };
                (
                    tensor(Just(Shape::from([n, groups * cig, l]))),
                    tensor(Just(Shape::from([groups * cog, cig, k]))),
                    tensor(Just(Shape::from([groups * cog]))),
                    Just(args),
                    Just((l + 2 * p - d * (k - 1) - 1) / s + 1),
                )
            })
    ) {
        let tape = Tape::new();
        let y = tape.constant(x.clone()).conv1d(tape.constant(w.clone()), Some(tape.constant(b.clone())), args).unwrap();
        assert_eq!(y.dims()[2], l_out);
        assert_close!(y, naive_conv1d(&x, &w, &b, args));
        let xs = [x, w, b];
        check_gradients(|v| v[0].conv1d(v[1], Some(v[2]), args), &xs)?;
        check_gradgrad(|v| v[0].conv1d(v[1], Some(v[2]), args), &xs)?;
        // The transposed form, fed the convolution's output shape with the same weight
        // read as [C_in, C_out/g, k], when that leaves an output.
        let (k, l_out) = (xs[1].dims()[2], y.dims()[2]);
        if (l_out - 1) * args.stride + args.dilation * (k - 1) + 1 > 2 * args.padding {
            let targs = ConvTranspose1dArgs {
                stride: args.stride,
                padding: args.padding,
                dilation: args.dilation,
                groups: args.groups,
                output_padding: 0,
            };
            let back = [Tensor::from_fn(y.shape(), |i| (i as f64 * 0.61).cos()).unwrap(), xs[1].clone()];
            check_gradients(|v| v[0].conv_transpose1d(v[1], None, targs), &back)?;
            check_gradgrad(|v| v[0].conv_transpose1d(v[1], None, targs), &back)?;
        }
    }

    #[test]
    fn max_pooling_with_dilation_and_ceil_mode_matches_direct_loops(
        (x, k, args) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, 0usize..=1, 0usize..=1, 1usize..=2, 1usize..=2, any::<bool>())
            .prop_flat_map(|(kh, kw, sh, sw, ph, pw, dh, dw, ceil)| {
                // at most half the dilated span d(k-1)+1, rounded down
                let ph = ph.min((dh * (kh - 1)).div_ceil(2));
                let pw = pw.min((dw * (kw - 1)).div_ceil(2));
                let args = MaxPool2dArgs { stride: Some((sh, sw)), padding: (ph, pw), dilation: (dh, dw), ceil_mode: ceil };
                (
                    (1usize..=2, 1usize..=2, dh * (kh - 1) + 1..=dh * (kh - 1) + 4, dw * (kw - 1) + 1..=dw * (kw - 1) + 4)
                        .prop_flat_map(|(n, c, h, w)| distinct(Just(Shape::from([n, c, h, w])), 1e-2)),
                    Just((kh, kw)),
                    Just(args),
                )
            })
    ) {
        let tape = Tape::new();
        let (y, at) = tape.constant(x.clone()).max_pool2d_with_indices(k, args).unwrap();
        let (want, want_at) = naive_max_pool(&x, k, args);
        assert_close!(y, want, atol = 0.0, rtol = 0.0);
        prop_assert_eq!(at, want_at);
        let xs = [x];
        check_gradients(|v| v[0].max_pool2d_args(k, args), &xs)?;
        check_gradgrad(|v| Ok(v[0].max_pool2d_args(k, args)?.square()), &xs)?;
    }

    #[test]
    fn average_pooling_divisors_match_aten(
        (x, k, args) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, 0usize..=1, 0usize..=1, any::<bool>(), any::<bool>(), 0usize..=3)
            .prop_flat_map(|(kh, kw, sh, sw, ph, pw, ceil, include, over)| {
                let args = AvgPool2dArgs {
                    stride: Some((sh, sw)),
                    padding: (ph.min(kh / 2), pw.min(kw / 2)),
                    ceil_mode: ceil,
                    count_include_pad: include,
                    divisor_override: (over > 0).then_some(over),
                };
                (tensor(
                    (1usize..=2, 1usize..=2, kh..=kh + 3, kw..=kw + 3).prop_map(|(n, c, h, w)| Shape::from([n, c, h, w]))
                ), Just((kh, kw)), Just(args))
            })
    ) {
        let tape = Tape::new();
        assert_close!(tape.constant(x.clone()).avg_pool2d_args(k, args).unwrap(), naive_avg_pool(&x, k, args));
        let xs = [x];
        check_gradients(|v| v[0].avg_pool2d_args(k, args), &xs)?;
        check_gradgrad(|v| Ok(v[0].avg_pool2d_args(k, args)?.square()), &xs)?;
    }

    #[test]
    fn adaptive_pooling_and_resampling_match_direct_loops(
        (x, out) in (1usize..=2, 1usize..=2, 1usize..=6, 1usize..=6, 1usize..=7, 1usize..=7)
            .prop_flat_map(|(n, c, h, w, oh, ow)| (tensor(Just(Shape::from([n, c, h, w]))), Just((oh, ow))))
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        // smaller or larger than the input (larger repeats input pixels)
        assert_close!(v.adaptive_avg_pool2d(out).unwrap(), naive_adaptive(&x, out));
        for align in [false, true] {
            assert_close!(v.upsample_bilinear2d(out, align, None).unwrap(), naive_bilinear(&x, out, align));
        }
        // nearest with in/out: ⌊d·in/out⌋
        let (h, w) = (x.dims()[2], x.dims()[3]);
        let near = Tensor::from_fn([x.dims()[0], x.dims()[1], out.0, out.1], |f| {
            let (plane, y, z) = (f / (out.0 * out.1), (f / out.1) % out.0, f % out.1);
            let r = ((y as f32 * (h as f32 / out.0 as f32)).floor() as usize).min(h - 1);
            let q = ((z as f32 * (w as f32 / out.1 as f32)).floor() as usize).min(w - 1);
            x.as_slice()[plane * h * w + r * w + q]
        }).unwrap();
        assert_close!(v.upsample_nearest2d(out, None).unwrap(), near, atol = 0.0, rtol = 0.0);
        let xs = [x];
        check_gradients(|v| v[0].adaptive_avg_pool2d(out), &xs)?;
        check_gradgrad(|v| Ok(v[0].adaptive_avg_pool2d(out)?.square()), &xs)?;
        check_gradients(|v| v[0].upsample_nearest2d(out, None), &xs)?;
        check_gradgrad(|v| Ok(v[0].upsample_nearest2d(out, None)?.square()), &xs)?;
        for align in [false, true] {
            check_gradients(|v| v[0].upsample_bilinear2d(out, align, None), &xs)?;
            check_gradgrad(|v| Ok(v[0].upsample_bilinear2d(out, align, None)?.square()), &xs)?;
        }
    }

    #[test]
    fn group_and_rms_norm_match_their_formulas_and_finite_differences(
        (x, w, b, groups, dims) in (1usize..=2, 1usize..=3, 1usize..=2, 1usize..=3, 1usize..=2)
            .prop_flat_map(|(n, groups, per, len, dims)| {
                let c = groups * per;
                (
                    tensor(Just(Shape::from([n, c, len]))),
                    tensor(Just(Shape::from([c]))),
                    tensor(Just(Shape::from([c]))),
                    Just(groups),
                    Just(dims),
                )
            })
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        // group norm is layer norm over each group's channels and positions
        let (n, c, l) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let by_group = v.reshape([n, groups, c / groups * l]).unwrap().layer_norm(1, None, None, 1e-5).unwrap().reshape([n, c, l]).unwrap();
        let affine = by_group.mul(tape.constant(w.reshape([1, c, 1]).unwrap())).unwrap().add(tape.constant(b.reshape([1, c, 1]).unwrap())).unwrap();
        assert_close!(v.group_norm(groups, Some(tape.constant(w.clone())), Some(tape.constant(b.clone())), 1e-5).unwrap(), affine);
        // rms norm: x / √(mean x² + eps) over the last `dims` axes
        let axes: Vec<isize> = (1..=dims as isize).map(|d| -d).collect();
        let ms = v.square().mean_axes(&axes, true).unwrap().value();
        let want = Tensor::from_fn(x.shape(), |i| {
            let lane = if dims == 1 { i / l } else { i / (c * l) };
            x.as_slice()[i] / (ms.as_slice()[lane] + 1e-6).sqrt()
        }).unwrap();
        assert_close!(v.rms_norm(dims, None, 1e-6).unwrap(), want);
        let xs = [x, w, b];
        check_gradients(|v| v[0].group_norm(groups, Some(v[1]), Some(v[2]), 1e-5), &xs)?;
        check_gradgrad(|v| v[0].group_norm(groups, Some(v[1]), Some(v[2]), 1e-5), &xs)?;
        let rms_w = Tensor::from_fn(if dims == 1 { Shape::from([l]) } else { Shape::from([c, l]) }, |i| 0.5 + 0.1 * i as f64).unwrap();
        let ys = [xs[0].clone(), rms_w];
        check_gradients(|v| v[0].rms_norm(dims, Some(v[1]), 1e-6), &ys)?;
        check_gradgrad(|v| v[0].rms_norm(dims, Some(v[1]), 1e-6), &ys)?;
    }
}

/// `e` names `op` and points at `line` of this file.
fn named_here(e: &Error, op: &str, line: u32) {
    assert!(
        matches!(e, Error::InvalidArgument { op: o, .. } | Error::ShapeMismatch { op: o, .. } if *o == op),
        "{e}"
    );
    let loc = e.location().unwrap_or_else(|| panic!("no location in {e}"));
    assert_eq!((loc.file(), loc.line()), (file!(), line), "{e}");
}

#[test]
fn bad_geometry_is_a_typed_error_at_the_callers_line() {
    let tape = Tape::<f64>::new();
    let x4 = tape.var(Tensor::zeros([1, 2, 3, 3]).unwrap());
    let w = tape.var(Tensor::zeros([2, 1, 2, 2]).unwrap());
    let base = ConvTranspose2dArgs::default();
    let bad = [
        ConvTranspose2dArgs {
            stride: (0, 1),
            ..base
        },
        ConvTranspose2dArgs {
            dilation: (1, 0),
            ..base
        },
        // output_padding equal to the stride (and above the dilation)
        ConvTranspose2dArgs {
            stride: (2, 2),
            output_padding: (2, 0),
            ..base
        },
        // padding that leaves no output
        ConvTranspose2dArgs {
            padding: (3, 0),
            ..base
        },
        ConvTranspose2dArgs { groups: 0, ..base },
        // 2 channels in 3 groups
        ConvTranspose2dArgs { groups: 3, ..base },
        // a size that overflows
        ConvTranspose2dArgs {
            stride: (usize::MAX, 1),
            ..base
        },
    ];
    for args in bad {
        let line = line!() + 1;
        let e = x4.conv_transpose2d(w, None, args).unwrap_err();
        named_here(&e, "conv_transpose2d", line);
    }
    let b3 = tape.var(Tensor::zeros([3]).unwrap());
    let line = line!() + 1;
    let e = x4.conv_transpose2d(w, Some(b3), base).unwrap_err();
    named_here(&e, "conv_transpose2d", line);

    let x3 = tape.var(Tensor::zeros([1, 2, 4]).unwrap());
    let (long, narrow) = (
        tape.var(Tensor::zeros([2, 2, 5]).unwrap()),
        tape.var(Tensor::zeros([2, 2, 1]).unwrap()),
    );
    let c1 = Conv1dArgs::default();
    let line = line!() + 1;
    let e = x3.conv1d(long, None, c1).unwrap_err(); // kernel longer than the input
    named_here(&e, "conv1d", line);
    let line = line!() + 1;
    let e = x4.conv1d(narrow, None, c1).unwrap_err(); // rank 4
    named_here(&e, "conv1d", line);
    let empty = tape.var(Tensor::zeros([1, 2, 0]).unwrap());
    let (w1, t1) = (
        tape.var(Tensor::zeros([2, 1, 1]).unwrap()),
        ConvTranspose1dArgs::default(),
    );
    let line = line!() + 1;
    let e = empty.conv_transpose1d(w1, None, t1).unwrap_err();
    named_here(&e, "conv_transpose1d", line);
    let w11 = tape.var(Tensor::zeros([2, 2, 1, 1]).unwrap());
    let huge = autograd::Conv2dArgs {
        padding: (usize::MAX, 0),
        ..Default::default()
    };
    let line = line!() + 1;
    let e = x4.conv2d(w11, None, huge).unwrap_err();
    named_here(&e, "conv2d", line);

    let no_dilation = MaxPool2dArgs {
        dilation: (0, 1),
        ..Default::default()
    };
    let wide_pad = MaxPool2dArgs {
        padding: (2, 0),
        ..Default::default()
    };
    let zero_div = AvgPool2dArgs {
        divisor_override: Some(0),
        ..Default::default()
    };
    let line = line!() + 1;
    let e = x4.max_pool2d_args((2, 2), no_dilation).unwrap_err();
    named_here(&e, "max_pool2d", line);
    let line = line!() + 1;
    let e = x4.max_pool2d_args((2, 2), wide_pad).unwrap_err();
    named_here(&e, "max_pool2d", line);
    let line = line!() + 1;
    let e = x4.avg_pool2d_args((2, 2), zero_div).unwrap_err();
    named_here(&e, "avg_pool2d", line);
    let line = line!() + 1;
    let e = x4.adaptive_avg_pool2d((0, 2)).unwrap_err();
    named_here(&e, "adaptive_avg_pool2d", line);
    let line = line!() + 1;
    let e = x3.upsample_nearest2d((2, 2), None).unwrap_err();
    named_here(&e, "upsample_nearest2d", line);
    let nan = Some((f64::NAN, 1.0));
    let line = line!() + 1;
    let e = x4.upsample_bilinear2d((2, 2), false, nan).unwrap_err();
    named_here(&e, "upsample_bilinear2d", line);

    let line = line!() + 1;
    let e = x4.group_norm(3, None, None, 1e-5).unwrap_err();
    named_here(&e, "group_norm", line);
    let line = line!() + 1;
    let e = x4.group_norm(2, Some(b3), None, 1e-5).unwrap_err();
    named_here(&e, "group_norm", line);
    let line = line!() + 1;
    let e = x4.rms_norm(5, None, 1e-5).unwrap_err();
    named_here(&e, "rms_norm", line);
}
