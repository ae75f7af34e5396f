//! Property tests for every op family: reverse-mode gradients against central finite
//! differences in f64 over random shapes and values (broadcasting included), second
//! derivatives for the smooth ops, and forward values against naive reference loops where
//! the op does real index arithmetic (reductions, matmul, conv, pooling).
//!
//! Seeds are fixed (`RngAlgorithm::ChaCha` with a constant seed) so runs are reproducible;
//! values stay away from kinks and ties so finite differences are meaningful.

use autograd::testing::{
    away_from, broadcast_pair, check_gradgrad, check_gradients, distinct, matmul_pair, positive,
    shapes, tensor, tensor_of, tensor_with, values,
};
use autograd::{
    assert_close, set_conv_algorithm, Conv2dArgs, ConvAlgorithm, Result, Shape, Tensor, Var,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6772_6164_6c61_6221),
        // Integration tests have no lib.rs for SourceParallel to find; cargo runs tests from
        // the crate directory, so this lands in autograd/proptest-regressions/.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/ops_prop.txt",
        ))),
        ..Config::default()
    }
}

type UnaryFn = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;

/// Runs first- (and optionally second-) order checks of each unary map on `x`.
fn check_unaries(
    ops: &[(&str, UnaryFn)],
    x: &Tensor<f64>,
    second: bool,
) -> Result<(), TestCaseError> {
    for &(name, f) in ops {
        check_gradients(|v| Ok(f(v[0])), std::slice::from_ref(x))
            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        if second {
            check_gradgrad(|v| Ok(f(v[0])), std::slice::from_ref(x))
                .map_err(|e| TestCaseError::fail(format!("{name} (second order): {e}")))?;
        }
    }
    Ok(())
}

const SMOOTH_ANYWHERE: &[(&str, UnaryFn)] = &[
    ("neg", |x| x.neg()),
    ("exp", |x| x.exp()),
    ("square", |x| x.square()),
    ("sin", |x| x.sin()),
    ("cos", |x| x.cos()),
    ("tanh", |x| x.tanh()),
    ("sigmoid", |x| x.sigmoid()),
    ("erf", |x| x.erf()),
    ("gelu", |x| x.gelu()),
    ("gelu_tanh", |x| x.gelu_tanh()),
    ("silu", |x| x.silu()),
    ("softplus", |x| x.softplus(1.0, 20.0)),
    ("softplus_beta", |x| x.softplus(2.5, 3.0)),
    ("powf_int", |x| x.powf(3.0)),
    ("add_scalar", |x| x.add_scalar(0.7)),
    ("sub_scalar", |x| x.sub_scalar(0.7)),
    ("rsub_scalar", |x| x.rsub_scalar(0.7)),
    ("mul_scalar", |x| x.mul_scalar(-1.3)),
    ("div_scalar", |x| x.div_scalar(-1.3)),
    ("scalar_lhs_sugar", |x| 2.0 - x * 3.0 + 1.5),
];

const POSITIVE_ONLY: &[(&str, UnaryFn)] = &[
    ("ln", |x| x.ln()),
    ("log1p", |x| x.log1p()),
    ("sqrt", |x| x.sqrt()),
    ("rsqrt", |x| x.rsqrt()),
    ("recip", |x| x.recip()),
    ("powf_frac", |x| x.powf(-1.7)),
    ("powf_half", |x| x.powf(0.5)),
    ("scalar_div_sugar", |x| 2.0 / x),
];

/// Piecewise maps, kinks at 0 (and at the clamp bounds ±1).
const KINKED: &[(&str, UnaryFn)] = &[
    ("relu", |x| x.relu()),
    ("abs", |x| x.abs()),
    ("leaky_relu", |x| x.leaky_relu(0.1)),
    ("elu", |x| x.elu(1.3)),
    ("selu", |x| x.selu()),
    ("clamp", |x| x.clamp(-1.0, 1.0)),
];

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn unary_gradients_match_finite_differences(x in tensor(shapes(0..=3, 1..=3))) {
        check_unaries(SMOOTH_ANYWHERE, &x, true)?;
    }

    #[test]
    fn unary_gradients_on_positive_domains(x in tensor_with(shapes(0..=3, 1..=3), positive(0.2, 3.0))) {
        check_unaries(POSITIVE_ONLY, &x, true)?;
    }

    #[test]
    fn unary_gradients_away_from_kinks(x in tensor_with(shapes(0..=3, 1..=3), away_from(&[0.0, -1.0, 1.0], 0.01))) {
        check_unaries(KINKED, &x, true)?;
    }

    #[test]
    fn unary_forward_values_match_std(x in tensor(shapes(1..=2, 1..=4))) {
        let tape = autograd::Tape::new();
        let v = tape.constant(x.clone());
        assert_close!(v.sigmoid(), x.map(|t| 1.0 / (1.0 + (-t).exp())));
        assert_close!(v.softplus(1.0, 20.0), x.map(|t| t.exp().ln_1p()));
        assert_close!(v.elu(0.5), x.map(|t| if t > 0.0 { t } else { 0.5 * t.exp_m1() }));
        assert_close!(v.silu(), x.map(|t| t / (1.0 + (-t).exp())));
        assert_close!(v.clamp(-0.5, 0.25), x.map(|t| t.clamp(-0.5, 0.25)));
        assert_close!(v.leaky_relu(0.2), x.map(|t| if t > 0.0 { t } else { 0.2 * t }));
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn binary_gradients_with_broadcasting(
        (a, b) in broadcast_pair(3, 3).prop_flat_map(|(sa, sb)| (
            tensor_of(sa, values(-2.0..=2.0)),
            tensor_of(sb, away_from(&[0.0], 0.4)),
        ))
    ) {
        let xs = [a, b];
        check_gradients(|v| v[0].add(v[1]), &xs)?;
        check_gradients(|v| v[0].sub(v[1]), &xs)?;
        check_gradients(|v| v[0].mul(v[1]), &xs)?;
        check_gradients(|v| v[0].div(v[1]), &xs)?;
        check_gradgrad(|v| v[0].mul(v[1]), &xs)?;
        check_gradgrad(|v| v[0].div(v[1]), &xs)?;
        // The same op with the operands swapped broadcasts the other way.
        check_gradients(|v| v[1].div(v[0].exp()), &xs)?;
    }

    #[test]
    fn pow_gradients_with_broadcasting(
        (a, b) in broadcast_pair(3, 3).prop_flat_map(|(sa, sb)| (
            tensor_of(sa, positive(0.3, 2.5)),
            tensor_of(sb, values(-2.0..=2.0)),
        ))
    ) {
        let xs = [a, b];
        check_gradients(|v| v[0].pow(v[1]), &xs)?;
        check_gradgrad(|v| v[0].pow(v[1]), &xs)?;
    }

    #[test]
    fn maximum_and_minimum_route_to_the_winner(
        (sa, sb, t) in broadcast_pair(3, 3).prop_flat_map(|(sa, sb)| {
            let n = sa.numel() + sb.numel();
            (Just(sa), Just(sb), distinct(Just(Shape::from([n])), 1e-2))
        })
    ) {
        // One distinct tensor split in two: no element of a ties with any element of b.
        let d = t.to_vec();
        let a = Tensor::from_vec(d[..sa.numel()].to_vec(), sa.clone()).unwrap();
        let b = Tensor::from_vec(d[sa.numel()..].to_vec(), sb.clone()).unwrap();
        let xs = [a, b];
        check_gradients(|v| v[0].maximum(v[1]), &xs)?;
        check_gradients(|v| v[0].minimum(v[1]), &xs)?;
        check_gradgrad(|v| v[0].maximum(v[1])?.square().sum().into_ok(), &xs)?;
    }

    #[test]
    fn where_cond_routes_by_the_mask(
        ((a, b), c) in broadcast_pair(3, 3).prop_flat_map(|(sa, sb)| (
            (tensor_of(sa.clone(), values(-2.0..=2.0)), tensor_of(sb.clone(), values(-2.0..=2.0))),
            tensor_of(sa.broadcast(&sb, "t").unwrap(), values(-1.0..=1.0)),
        ))
    ) {
        let cond = c.map(|t| if t > 0.0 { 1.0 } else { 0.0 });
        let xs = [a, b];
        check_gradients(|v| v[0].where_cond(&cond, v[1]), &xs)?;
    }
}

/// Small helper so closures returning a `Var` can sit where a `Result` is expected.
trait IntoOk<'t> {
    fn into_ok(self) -> Result<Var<'t, f64>>;
}
impl<'t> IntoOk<'t> for Var<'t, f64> {
    fn into_ok(self) -> Result<Var<'t, f64>> {
        Ok(self)
    }
}

/// A random subset of the axes of a rank-`r` shape (possibly empty = all), plus keepdim.
fn axes_of(r: usize) -> impl Strategy<Value = (Vec<isize>, bool)> {
    (
        proptest::collection::vec(any::<bool>(), r),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(pick, neg, keep)| {
            let axes = (0..r)
                .filter(|&i| pick[i])
                .map(|i| {
                    if neg {
                        i as isize - r as isize
                    } else {
                        i as isize
                    }
                })
                .collect();
            (axes, keep)
        })
}

/// Reference reduction by multi-index walk: folds every element into its output slot.
fn naive_reduce(
    x: &Tensor<f64>,
    axes: &[isize],
    keep: bool,
    init: f64,
    f: impl Fn(f64, f64) -> f64,
) -> Tensor<f64> {
    let r = x.rank();
    let ax: Vec<usize> = if axes.is_empty() {
        (0..r).collect()
    } else {
        axes.iter()
            .map(|&a| a.rem_euclid(r.max(1) as isize) as usize)
            .collect()
    };
    let out_dims: Vec<usize> = (0..r)
        .map(|i| if ax.contains(&i) { 1 } else { x.dims()[i] })
        .collect();
    let out_shape = Shape::from(out_dims.clone());
    let ost = out_shape.strides();
    let st = x.shape().strides();
    let mut out = vec![init; out_shape.numel()];
    for (flat, &v) in x.as_slice().iter().enumerate() {
        let mut o = 0;
        for d in 0..r {
            let i = (flat / st[d]) % x.dims()[d];
            if !ax.contains(&d) {
                o += i * ost[d];
            }
        }
        out[o] = f(out[o], v);
    }
    let dims: Vec<usize> = if keep {
        out_dims
    } else {
        (0..r)
            .filter(|i| !ax.contains(i))
            .map(|i| x.dims()[i])
            .collect()
    };
    Tensor::from_vec(out, dims).unwrap()
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn reductions_match_naive_loops_and_finite_differences(
        (x, (axes, keep)) in shapes(0..=3, 1..=3).prop_flat_map(|s| (distinct(Just(s.clone()), 1e-2), axes_of(s.rank())))
    ) {
        let tape = autograd::Tape::new();
        let v = tape.constant(x.clone());
        assert_close!(v.sum_axes(&axes, keep).unwrap(), naive_reduce(&x, &axes, keep, 0.0, |a, b| a + b));
        assert_close!(v.max_axes(&axes, keep).unwrap(), naive_reduce(&x, &axes, keep, f64::NEG_INFINITY, f64::max));
        assert_close!(v.min_axes(&axes, keep).unwrap(), naive_reduce(&x, &axes, keep, f64::INFINITY, f64::min));
        let n = x.numel() / naive_reduce(&x, &axes, keep, 0.0, |a, _| a).numel();
        assert_close!(v.mean_axes(&axes, keep).unwrap(), naive_reduce(&x, &axes, keep, 0.0, |a, b| a + b).map(|s| s / n as f64));
        let lse = naive_reduce(&x, &axes, keep, 0.0, |a, b| a + b.exp()).map(f64::ln);
        assert_close!(v.logsumexp(&axes, keep).unwrap(), lse);

        let xs = [x];
        check_gradients(|v| v[0].sum_axes(&axes, keep), &xs)?;
        check_gradients(|v| v[0].mean_axes(&axes, keep), &xs)?;
        check_gradients(|v| v[0].max_axes(&axes, keep), &xs)?;
        check_gradients(|v| v[0].min_axes(&axes, keep), &xs)?;
        check_gradients(|v| v[0].logsumexp(&axes, keep), &xs)?;
        check_gradgrad(|v| v[0].logsumexp(&axes, keep), &xs)?;
        check_gradgrad(|v| Ok(v[0].sum_axes(&axes, keep)?.square()), &xs)?;
        check_gradgrad(|v| Ok(v[0].max_axes(&axes, keep)?.square()), &xs)?;
    }

    #[test]
    fn variance_matches_the_two_pass_formula(
        (x, (axes, keep), corr) in shapes(1..=3, 2..=3).prop_flat_map(|s| (tensor(Just(s.clone())), axes_of(s.rank()), 0usize..=1))
    ) {
        let tape = autograd::Tape::new();
        let v = tape.constant(x.clone());
        let n = x.numel() / naive_reduce(&x, &axes, true, 0.0, |a, _| a).numel();
        let mean = naive_reduce(&x, &axes, true, 0.0, |a, b| a + b).map(|s| s / n as f64);
        let sq = x.sub(&mean).unwrap().map(|d| d * d);
        let want = naive_reduce(&sq, &axes, keep, 0.0, |a, b| a + b).map(|s| s / (n - corr) as f64);
        assert_close!(v.var(&axes, corr, keep).unwrap(), want);
        let xs = [x];
        check_gradients(|v| v[0].var(&axes, corr, keep), &xs)?;
        check_gradgrad(|v| v[0].var(&axes, corr, keep), &xs)?;
    }
}

/// `op(a)·op(b)` by broadcasting and summing, independent of the GEMM kernel.
fn naive_matmul(a: &Tensor<f64>, b: &Tensor<f64>, ta: bool, tb: bool) -> Tensor<f64> {
    let a = if ta {
        a.transpose(-2, -1).unwrap()
    } else {
        a.clone()
    };
    let b = if tb {
        b.transpose(-2, -1).unwrap()
    } else {
        b.clone()
    };
    let mut da = a.dims().to_vec();
    da.push(1);
    let mut db = b.dims().to_vec();
    db.insert(db.len() - 2, 1);
    let prod = a.reshape(da).unwrap().mul(&b.reshape(db).unwrap()).unwrap();
    prod.sum_axes(&[-2], false).unwrap()
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn matmul_batched_broadcast_and_transposed(p in matmul_pair(2, 4, true)) {
        let tape = autograd::Tape::new();
        let (a, b) = (tape.constant(p.a.clone()), tape.constant(p.b.clone()));
        assert_close!(a.matmul_t(b, p.ta, p.tb).unwrap(), naive_matmul(&p.a, &p.b, p.ta, p.tb));
        let (ta, tb) = (p.ta, p.tb);
        let xs = [p.a, p.b];
        check_gradients(|v| v[0].matmul_t(v[1], ta, tb), &xs)?;
        check_gradgrad(|v| v[0].matmul_t(v[1], ta, tb), &xs)?;
    }

    #[test]
    fn matmul_large_enough_for_the_gemm_kernel(
        (a, b, ta, tb) in (17usize..=24, 17usize..=24, 17usize..=24, any::<bool>(), any::<bool>(), 0usize..=2)
            .prop_flat_map(|(m, k, n, ta, tb, batch)| {
                // m·k·n > 16³: past the small-product loop, into the packed GEMM kernel
                let mut da = vec![2; batch];
                da.extend(if ta { [k, m] } else { [m, k] });
                let db: Vec<usize> = if tb { vec![n, k] } else { vec![k, n] };
                (tensor(Just(Shape::from(da))), tensor(Just(Shape::from(db))), Just(ta), Just(tb))
            })
    ) {
        let tape = autograd::Tape::new();
        let (av, bv) = (tape.constant(a.clone()), tape.constant(b.clone()));
        assert_close!(av.matmul_t(bv, ta, tb).unwrap(), naive_matmul(&a, &b, ta, tb));
        check_gradients(|v| v[0].matmul_t(v[1], ta, tb), &[a, b])?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn shape_ops_move_gradients_back(
        (x, perm, a, b) in shapes(1..=4, 1..=3).prop_flat_map(|s| {
            let r = s.rank();
            (tensor(Just(s)), Just((0..r).collect::<Vec<usize>>()).prop_shuffle(), 0..r, 0..r)
        })
    ) {
        let r = x.rank() as isize;
        let (a, b) = (a as isize, b as isize);
        let n = x.numel();
        let xs = [x.clone()];
        check_gradients(|v| v[0].reshape([n]), &xs)?;
        check_gradients(|v| v[0].flatten(a.min(b), a.max(b)), &xs)?;
        check_gradients(|v| v[0].unsqueeze(a)?.squeeze(a), &xs)?;
        check_gradients(|v| v[0].unsqueeze(-1), &xs)?;
        check_gradients(|v| v[0].permute(&perm), &xs)?;
        check_gradients(|v| v[0].transpose(a, b - r), &xs)?;
        let mut big = vec![2];
        big.extend(x.dims());
        check_gradients(|v| v[0].broadcast_to(big.clone()), &xs)?;
        check_gradients(|v| Var::concat(&[v[0], v[0].sin()], a), &xs)?;
        check_gradients(|v| Var::stack(&[v[0].cos(), v[0]], b), &xs)?;
        check_gradgrad(|v| Ok(v[0].permute(&perm)?.square()), &xs)?;
        check_gradgrad(|v| Ok(Var::concat(&[v[0], v[0].sin()], a)?.square()), &xs)?;
        // forward: permute agrees with the tensor-level permutation, concat with Tensor::concat
        let tape = autograd::Tape::new();
        let v = tape.constant(x.clone());
        assert_eq!(v.permute(&perm).unwrap().value(), x.permute(&perm).unwrap());
        assert_eq!(Var::concat(&[v, v], a).unwrap().value(), Tensor::concat(&[&x, &x], a).unwrap());
    }

    #[test]
    fn broadcast_to_sums_back_over_stretched_axes((sa, sb) in broadcast_pair(3, 3), seed in any::<u64>()) {
        let out = sa.broadcast(&sb, "t").unwrap();
        let x = Tensor::from_fn(sa, |i| ((i as u64 + seed % 7) as f64).sin()).unwrap();
        check_gradients(|v| v[0].broadcast_to(out.clone()), &[x])?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn index_ops_scatter_gradients_back(
        (x, ax, start, end, step, picks) in shapes(1..=3, 1..=5).prop_flat_map(|s| {
            let r = s.rank();
            (tensor(Just(s)), 0..r, -6isize..6, proptest::option::of(-6isize..6), 1usize..=3, proptest::collection::vec(0usize..64, 0..5))
        })
    ) {
        let n = x.dims()[ax];
        let axi = ax as isize;
        let picks: Vec<usize> = picks.iter().map(|p| p % n).collect();
        let xs = [x.clone()];
        check_gradients(|v| v[0].slice(axi, start, end, step), &xs)?;
        check_gradients(|v| v[0].narrow(axi, n / 3, n - n / 3), &xs)?;
        check_gradients(|v| v[0].index_select(axi, &picks), &xs)?;
        // gather: index shape = x's shape with the axis resized to the number of picks
        let mut ishape = x.dims().to_vec();
        ishape[ax] = 2;
        let idx: Vec<usize> = (0..ishape.iter().product::<usize>()).map(|k| (k * 7 + 3) % n).collect();
        check_gradients(|v| v[0].gather(axi, &idx, ishape.clone()), &xs)?;
        let flat: Vec<usize> = (0..5).map(|k| if k == 2 { autograd::tensor::PAD } else { (k * 5) % x.numel() }).collect();
        check_gradients(|v| v[0].gather_flat(flat.clone(), [5], 0.25), &xs)?;
        check_gradgrad(|v| Ok(v[0].index_select(axi, &picks)?.square()), &xs)?;
        // forward: slice follows Python's rules
        let tape = autograd::Tape::new();
        let y = tape.constant(x.clone()).slice(axi, start, end, step).unwrap();
        let ni = n as isize;
        let norm = |i: isize| if i < 0 { (i + ni).max(0) } else { i.min(ni) };
        let (s0, e0) = (norm(start), norm(end.unwrap_or(ni)));
        let want: Vec<usize> = (s0..e0.max(s0)).step_by(step).map(|i| i as usize).collect();
        let tape2 = autograd::Tape::new();
        let z = tape2.constant(x.clone()).index_select(axi, &want).unwrap();
        assert_eq!(y.value(), z.value());
    }
}

/// Direct-loop 2-d cross-correlation, as torch.nn.functional.conv2d.
fn naive_conv2d(
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    b: Option<&Tensor<f64>>,
    a: Conv2dArgs,
) -> Tensor<f64> {
    let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (co, cig, kh, kw) = (w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]);
    let _ = c;
    let oh = (h + 2 * a.padding.0 - a.dilation.0 * (kh - 1) - 1) / a.stride.0 + 1;
    let ow = (wd + 2 * a.padding.1 - a.dilation.1 * (kw - 1) - 1) / a.stride.1 + 1;
    let cog = co / a.groups;
    let mut out = vec![0.0; n * co * oh * ow];
    for bi in 0..n {
        for o in 0..co {
            let g = o / cog;
            for y in 0..oh {
                for z in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.as_slice()[o]);
                    for ci in 0..cig {
                        let cin = g * cig + ci;
                        for i in 0..kh {
                            for j in 0..kw {
                                let r = (y * a.stride.0 + i * a.dilation.0) as isize
                                    - a.padding.0 as isize;
                                let q = (z * a.stride.1 + j * a.dilation.1) as isize
                                    - a.padding.1 as isize;
                                if r < 0 || q < 0 || r as usize >= h || q as usize >= wd {
                                    continue;
                                }
                                acc += x.at(&[bi, cin, r as usize, q as usize]).unwrap()
                                    * w.at(&[o, ci, i, j]).unwrap();
                            }
                        }
                    }
                    out[((bi * co + o) * oh + y) * ow + z] = acc;
                }
            }
        }
    }
    Tensor::from_vec(out, [n, co, oh, ow]).unwrap()
}

/// Direct-loop pooling: max (padding never wins) or mean (padding counts as zeros).
fn naive_pool(
    x: &Tensor<f64>,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    max: bool,
) -> Tensor<f64> {
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let oh = (h + 2 * p.0 - k.0) / s.0 + 1;
    let ow = (w + 2 * p.1 - k.1) / s.1 + 1;
    let mut out = vec![];
    for plane in 0..n * c {
        for y in 0..oh {
            for z in 0..ow {
                let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                for i in 0..k.0 {
                    for j in 0..k.1 {
                        let r = (y * s.0 + i) as isize - p.0 as isize;
                        let q = (z * s.1 + j) as isize - p.1 as isize;
                        if r < 0 || q < 0 || r as usize >= h || q as usize >= w {
                            continue;
                        }
                        let v = x.as_slice()[plane * h * w + r as usize * w + q as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.push(if max { acc } else { acc / (k.0 * k.1) as f64 });
            }
        }
    }
    Tensor::from_vec(out, [n, c, oh, ow]).unwrap()
}

#[derive(Debug, Clone)]
struct ConvCase {
    x: Tensor<f64>,
    w: Tensor<f64>,
    b: Tensor<f64>,
    args: Conv2dArgs,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
        (
            0usize..=1,
            0usize..=2,
            1usize..=2,
            1usize..=2,
            0usize..=3,
            0usize..=3,
        ),
    )
        .prop_flat_map(
            |((n, groups, cig, cog), (kh, kw, sh, sw), (ph, pw, dh, dw, exh, exw))| {
                // Input just big enough for one window, plus a few extra rows/columns.
                let h = dh * (kh - 1) + 1 + exh;
                let wd = dw * (kw - 1) + 1 + exw;
                let (c, co) = (groups * cig, groups * cog);
                let args = Conv2dArgs {
                    stride: (sh, sw),
                    padding: (ph, pw),
                    dilation: (dh, dw),
                    groups,
                };
                (
                    tensor(Just(Shape::from([n, c, h, wd]))),
                    tensor(Just(Shape::from([co, cig, kh, kw]))),
                    tensor(Just(Shape::from([co]))),
                    Just(args),
                )
            },
        )
        .prop_map(|(x, w, b, args)| ConvCase { x, w, b, args })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn conv2d_matches_direct_loops_and_finite_differences(c in conv_case()) {
        // Both algorithms. The setting is read when the op is recorded; the lock keeps the
        // other test that switches it from doing so meanwhile.
        let _only_us = crate::CONV_ALGORITHM
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for algo in [ConvAlgorithm::Im2colGemm, ConvAlgorithm::Direct] {
            set_conv_algorithm(algo);
            let tape = autograd::Tape::new();
            let (x, w, b) = (tape.constant(c.x.clone()), tape.constant(c.w.clone()), tape.constant(c.b.clone()));
            assert_close!(x.conv2d(w, Some(b), c.args).unwrap(), naive_conv2d(&c.x, &c.w, Some(&c.b), c.args));
            assert_close!(x.conv2d(w, None, c.args).unwrap(), naive_conv2d(&c.x, &c.w, None, c.args));
            let args = c.args;
            let xs = [c.x.clone(), c.w.clone(), c.b.clone()];
            check_gradients(|v| v[0].conv2d(v[1], Some(v[2]), args), &xs)?;
            check_gradgrad(|v| v[0].conv2d(v[1], Some(v[2]), args), &xs)?;
        }
        set_conv_algorithm(ConvAlgorithm::Auto);
    }

    #[test]
    fn pooling_matches_direct_loops_and_finite_differences(
        (x, k, s, p) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, 0usize..=1, 0usize..=1)
            .prop_flat_map(|(kh, kw, sh, sw, ph, pw)| {
                let (ph, pw) = (ph.min(kh / 2), pw.min(kw / 2));
                (
                    (1usize..=2, 1usize..=2, kh..=kh + 3, kw..=kw + 3)
                        .prop_flat_map(|(n, c, h, w)| distinct(Just(Shape::from([n, c, h, w])), 1e-2)),
                    Just((kh, kw)), Just((sh, sw)), Just((ph, pw)),
                )
            })
    ) {
        let tape = autograd::Tape::new();
        let v = tape.constant(x.clone());
        assert_close!(v.max_pool2d(k, Some(s), p).unwrap(), naive_pool(&x, k, s, p, true), atol = 0.0, rtol = 0.0);
        assert_close!(v.avg_pool2d(k, Some(s), p).unwrap(), naive_pool(&x, k, s, p, false));
        let xs = [x];
        check_gradients(|v| v[0].max_pool2d(k, Some(s), p), &xs)?;
        check_gradients(|v| v[0].avg_pool2d(k, Some(s), p), &xs)?;
        check_gradgrad(|v| Ok(v[0].max_pool2d(k, Some(s), p)?.square()), &xs)?;
        check_gradgrad(|v| Ok(v[0].avg_pool2d(k, Some(s), p)?.square()), &xs)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn nn_compositions_match_finite_differences(
        (x, axis) in shapes(2..=2, 1..=4).prop_flat_map(|s| {
            (tensor_with(Just(s), values(-4.0..=4.0)), -2isize..=1)
        })
    ) {
        let xs = [x.clone()];
        check_gradients(|v| v[0].softmax(axis), &xs)?;
        check_gradients(|v| v[0].log_softmax(axis), &xs)?;
        check_gradgrad(|v| v[0].softmax(axis), &xs)?;
        check_gradgrad(|v| v[0].log_softmax(axis), &xs)?;
        // forward: rows of softmax sum to 1, and log_softmax is its logarithm
        let tape = autograd::Tape::new();
        let v = tape.constant(x.clone());
        let sm = v.softmax(axis).unwrap();
        let ones = Tensor::<f64>::ones(naive_reduce(&x, &[axis], false, 0.0, |a, _| a).shape().clone()).unwrap();
        assert_close!(sm.sum_axes(&[axis], false).unwrap(), ones);
        assert_close!(v.log_softmax(axis).unwrap(), sm.value().map(f64::ln));
    }

    #[test]
    fn layer_norm_matches_finite_differences(
        (x, w, b, dims) in shapes(2..=3, 2..=4).prop_flat_map(|s| {
            (1usize..=2).prop_flat_map(move |dims| {
                let norm: Vec<usize> = s[s.rank() - dims..].to_vec();
                (tensor(Just(s.clone())), tensor(Just(Shape::from(norm.clone()))), tensor(Just(Shape::from(norm))), Just(dims))
            })
        })
    ) {
        let xs = [x.clone(), w, b];
        check_gradients(|v| v[0].layer_norm(dims, Some(v[1]), Some(v[2]), 1e-5), &xs)?;
        check_gradgrad(|v| v[0].layer_norm(dims, Some(v[1]), Some(v[2]), 1e-5), &xs)?;
        check_gradients(|v| v[0].layer_norm(dims, None, None, 1e-5), &xs[..1])?;
        // forward: each normalised group has mean 0 and biased variance ≈ 1
        let tape = autograd::Tape::new();
        let y = tape.constant(x).layer_norm(dims, None, None, 0.0).unwrap();
        let axes: Vec<isize> = (1..=dims as isize).map(|d| -d).collect();
        let m = y.mean_axes(&axes, false).unwrap();
        assert_close!(m.value(), m.value().zeros_like(), atol = 1e-12);
        let var = y.var(&axes, 0, false).unwrap();
        assert_close!(var.value(), var.value().ones_like(), atol = 1e-9);
    }
}
