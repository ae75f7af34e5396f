//! Property tests for the ops of `ops_extra.json`, one `proptest!` block per family: forward
//! values against naive reference loops, and first and second derivatives against central
//! finite differences in f64, over random shapes, axes and arguments.
//!
//! Seeds are fixed; values stay away from kinks and ties (sort and top-k with distinct
//! values, ∞-norms with distinct magnitudes, hardtanh away from its bounds).

use autograd::ops::PadMode;
use autograd::testing::{
    away_from, check_gradgrad, check_gradients, distinct, shapes, tensor, tensor_of, tensor_with,
    values,
};
use autograd::{assert_close, Shape, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6f70_735f_6578_7472),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/ops_extra_prop.txt",
        ))),
        ..Config::default()
    }
}

/// A tensor and one of its axes (as a possibly negative index).
fn with_axis(t: BoxedStrategy<Tensor<f64>>) -> impl Strategy<Value = (Tensor<f64>, isize)> {
    t.prop_flat_map(|t| {
        let r = t.rank() as isize;
        (Just(t), -r..r)
    })
}

/// `(outer, n, inner)` of `axis`, and the flat index of `(o, p, i)`.
fn lanes(s: &[usize], ax: usize) -> (usize, usize, usize) {
    (
        s[..ax].iter().product(),
        s[ax],
        s[ax + 1..].iter().product(),
    )
}

fn resolve(rank: usize, axis: isize) -> usize {
    axis.rem_euclid(rank as isize) as usize
}

/// Applies `f` to every lane along `axis`, writing its output lane (of length `k`).
fn map_lanes(
    x: &Tensor<f64>,
    axis: isize,
    k: usize,
    f: impl Fn(&[f64]) -> Vec<f64>,
) -> Tensor<f64> {
    let s = x.dims().to_vec();
    let ax = resolve(s.len(), axis);
    let (outer, n, inner) = lanes(&s, ax);
    let mut out = vec![0.0; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let lane: Vec<f64> = (0..n)
                .map(|p| x.as_slice()[(o * n + p) * inner + i])
                .collect();
            for (r, v) in f(&lane).into_iter().enumerate() {
                out[(o * k + r) * inner + i] = v;
            }
        }
    }
    let mut d = s;
    d[ax] = k;
    Tensor::from_vec(out, d).unwrap()
}

/// Zeros at the positions `zeros` selects, else `x`'s values.
fn with_zeros(x: &Tensor<f64>, zeros: &[bool]) -> Tensor<f64> {
    Tensor::from_fn(x.shape(), |k| {
        if zeros[k % zeros.len()] {
            0.0
        } else {
            x.as_slice()[k]
        }
    })
    .unwrap()
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn scans_match_running_loops_and_finite_differences(
        ((x, axis), zeros) in (
            with_axis(tensor_with(shapes(1..=3, 1..=4), away_from(&[0.0], 0.3))),
            proptest::collection::vec(proptest::bool::weighted(0.2), 1..=7),
        )
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let n = x.dims()[resolve(x.rank(), axis)];
        let run = |lane: &[f64], mul: bool| {
            let mut acc = if mul { 1.0 } else { 0.0 };
            lane.iter().map(|&v| { acc = if mul { acc * v } else { acc + v }; acc }).collect()
        };
        assert_close!(v.cumsum(axis).unwrap(), map_lanes(&x, axis, n, |l| run(l, false)));
        assert_close!(v.cumprod(axis).unwrap(), map_lanes(&x, axis, n, |l| run(l, true)));
        let xs = [x.clone()];
        check_gradients(|v| v[0].cumsum(axis), &xs)?;
        check_gradgrad(|v| Ok(v[0].cumsum(axis)?.square()), &xs)?;
        check_gradients(|v| v[0].cumprod(axis), &xs)?;
        check_gradgrad(|v| v[0].cumprod(axis), &xs)?;
        // Exact zeros in the lanes: the product's gradient takes the zero-safe path.
        let z = [with_zeros(&x, &zeros)];
        check_gradients(|v| v[0].cumprod(axis), &z)?;
        check_gradgrad(|v| v[0].cumprod(axis), &z)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn sorting_matches_a_sorted_copy_and_routes_gradients(
        ((x, axis), desc, kfrac) in (
            with_axis(distinct(shapes(1..=3, 1..=4), 1e-2)),
            any::<bool>(),
            0.0f64..=1.0,
        )
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let ax = resolve(x.rank(), axis);
        let n = x.dims()[ax];
        let k = ((n as f64) * kfrac).round() as usize;
        let sorted = |lane: &[f64]| {
            let mut l = lane.to_vec();
            l.sort_by(f64::total_cmp);
            if desc { l.reverse(); }
            l
        };
        let (s, si) = v.sort(axis, desc).unwrap();
        assert_close!(s, map_lanes(&x, axis, n, sorted), atol = 0.0, rtol = 0.0);
        // the positions pick the values: gathering x at them gives the sorted values
        assert_close!(v.gather(axis, &si, s.shape()).unwrap(), s, atol = 0.0, rtol = 0.0);
        let (t, ti) = v.topk(k, axis, desc).unwrap();
        assert_close!(t, map_lanes(&x, axis, k, |l| sorted(l)[..k].to_vec()), atol = 0.0, rtol = 0.0);
        assert_close!(v.gather(axis, &ti, t.shape()).unwrap(), t, atol = 0.0, rtol = 0.0);
        let (m, mi) = v.max_dim(axis, true).unwrap();
        assert_close!(m, map_lanes(&x, axis, 1, |l| vec![l.iter().copied().fold(f64::MIN, f64::max)]));
        assert_eq!(v.argmax(axis).unwrap(), mi);
        let (m, mi) = v.min_dim(axis, false).unwrap();
        assert_close!(m, v.min_axes(&[axis], false).unwrap());
        assert_eq!(v.argmin(axis).unwrap(), mi);
        let xs = [x];
        check_gradients(|v| Ok(v[0].sort(axis, desc)?.0), &xs)?;
        check_gradients(|v| Ok(v[0].topk(k, axis, desc)?.0), &xs)?;
        check_gradients(|v| Ok(v[0].max_dim(axis, false)?.0), &xs)?;
        check_gradients(|v| Ok(v[0].min_dim(axis, true)?.0), &xs)?;
        check_gradgrad(|v| Ok(v[0].sort(axis, desc)?.0.square()), &xs)?;
        check_gradgrad(|v| Ok(v[0].topk(k, axis, desc)?.0.square()), &xs)?;
    }
}

/// Distinct magnitudes at least 1 away from 0, with random signs: no kink of |x| and no
/// tie for an ∞-norm.
fn magnitudes(shape: BoxedStrategy<Shape>) -> BoxedStrategy<Tensor<f64>> {
    distinct(shape, 2e-2)
        .prop_flat_map(|t| {
            let n = t.numel();
            (Just(t), proptest::collection::vec(any::<bool>(), n))
        })
        .prop_map(|(t, signs)| {
            Tensor::from_fn(t.shape(), |k| {
                let m = t.as_slice()[k] + 3.5;
                if signs[k] {
                    m
                } else {
                    -m
                }
            })
            .unwrap()
        })
        .boxed()
}

fn axes_of(r: usize) -> impl Strategy<Value = (Vec<isize>, bool)> {
    (proptest::collection::vec(any::<bool>(), r), any::<bool>()).prop_map(move |(pick, keep)| {
        (
            (0..r).filter(|&i| pick[i]).map(|i| i as isize).collect(),
            keep,
        )
    })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn norms_match_their_formulas_and_finite_differences(
        (x, (axes, keep), p) in shapes(1..=3, 1..=3).prop_flat_map(|s| {
            let r = s.rank();
            (magnitudes(Just(s).boxed()), axes_of(r), prop::sample::select(vec![1.0, 2.0, 3.0, 1.5, 0.5, f64::INFINITY, f64::NEG_INFINITY]))
        })
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let all: Vec<isize> = if axes.is_empty() { (0..x.rank() as isize).collect() } else { axes.clone() };
        // one reduced axis at a time would need several passes; reduce by flattening the
        // chosen axes to the end instead
        let kept: Vec<usize> = (0..x.rank()).filter(|d| !all.contains(&(*d as isize))).collect();
        let mut perm = kept.clone();
        perm.extend(all.iter().map(|&a| a as usize));
        let moved = x.permute(&perm).unwrap();
        let group: usize = all.iter().map(|&a| x.dims()[a as usize]).product();
        let rows = moved.reshape([x.numel() / group, group]).unwrap();
        let want: Vec<f64> = rows.as_slice().chunks(group).map(|g| {
            if p == f64::INFINITY { g.iter().fold(0.0f64, |a, v| a.max(v.abs())) }
            else if p == f64::NEG_INFINITY { g.iter().fold(f64::INFINITY, |a, v| a.min(v.abs())) }
            else { g.iter().map(|v| v.abs().powf(p)).sum::<f64>().powf(1.0 / p) }
        }).collect();
        let got = v.vector_norm(p, &axes, keep).unwrap();
        assert_close!(got.value().to_vec(), want);
        let xs = [x.clone()];
        check_gradients(|v| v[0].vector_norm(p, &axes, keep), &xs)?;
        if p.is_finite() {
            check_gradgrad(|v| v[0].vector_norm(p, &axes, keep), &xs)?;
        }
        let ax = axes.first().copied().unwrap_or(-1);
        check_gradients(|v| v[0].normalize(p.abs().min(4.0), ax, 1e-12), &xs)?;
        check_gradgrad(|v| v[0].normalize(2.0, ax, 1e-12), &xs)?;
        if x.rank() >= 2 {
            let f = v.frobenius_norm(keep).unwrap();
            assert_close!(f, v.vector_norm(2.0, &[-2, -1], keep).unwrap());
            check_gradgrad(|v| v[0].frobenius_norm(keep), &xs)?;
        }
    }

    #[test]
    fn std_and_var_with_a_correction(
        (x, (axes, keep), corr) in shapes(1..=3, 2..=3).prop_flat_map(|s| {
            let r = s.rank();
            (tensor(Just(s)), axes_of(r), 0usize..=1)
        })
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let s = v.std(&axes, corr, keep).unwrap();
        assert_close!(s, v.var(&axes, corr, keep).unwrap().value().map(f64::sqrt));
        let xs = [x];
        check_gradients(|v| v[0].std(&axes, corr, keep), &xs)?;
        check_gradgrad(|v| v[0].std(&axes, corr, keep), &xs)?;
    }

    #[test]
    fn cosine_similarity_broadcasts_and_matches_its_formula(
        ((a, b), axis) in autograd::testing::broadcast_pair(3, 3)
            .prop_filter("a common axis", |(sa, sb)| sa.rank().max(sb.rank()) >= 1)
            .prop_flat_map(|(sa, sb)| {
                let r = sa.rank().max(sb.rank()) as isize;
                ((tensor_of(sa, away_from(&[0.0], 0.2)), tensor_of(sb, away_from(&[0.0], 0.2))), -r..r)
            })
    ) {
        let tape = Tape::new();
        let (va, vb) = (tape.constant(a.clone()), tape.constant(b.clone()));
        let cs = va.cosine_similarity(vb, axis, 1e-8).unwrap();
        let dot = va.mul(vb).unwrap().sum_axes(&[axis], false).unwrap();
        let shape = a.shape().broadcast(b.shape(), "t").unwrap();
        let na = va.broadcast_to(shape.clone()).unwrap().vector_norm(2.0, &[axis], false).unwrap();
        let nb = vb.broadcast_to(shape).unwrap().vector_norm(2.0, &[axis], false).unwrap();
        assert_close!(cs, dot.div(na.mul(nb).unwrap()).unwrap());
        let xs = [a, b];
        check_gradients(|v| v[0].cosine_similarity(v[1], axis, 1e-8), &xs)?;
        check_gradgrad(|v| v[0].cosine_similarity(v[1], axis, 1e-8), &xs)?;
    }
}

/// Reference padding of one axis by index arithmetic on Python's definitions.
fn pad_source(i: isize, n: isize, mode: u8) -> Option<isize> {
    if (0..n).contains(&i) {
        return Some(i);
    }
    match mode {
        0 => None,
        1 => Some(if i < 0 { -i } else { 2 * (n - 1) - i }),
        2 => Some(i.clamp(0, n - 1)),
        _ => Some(i.rem_euclid(n)),
    }
}

/// A tensor, a pad list for some of its trailing axes valid for `mode`, and the mode.
fn pad_case() -> impl Strategy<Value = (Tensor<f64>, Vec<usize>, u8)> {
    (tensor(shapes(1..=3, 1..=4)), 0u8..4).prop_flat_map(|(x, mode)| {
        let r = x.rank();
        let dims = x.dims().to_vec();
        (0..=r).prop_flat_map(move |k| {
            // pads for the last k axes, last axis first; reflect needs pad < n, circular pad <= n
            let limits: Vec<usize> = (0..k)
                .map(|j| {
                    let n = dims[r - 1 - j];
                    match mode {
                        1 => n - 1,
                        3 => n,
                        _ => 3,
                    }
                })
                .collect();
            let pads: Vec<BoxedStrategy<usize>> = limits
                .iter()
                .flat_map(|&l| [(0..=l).boxed(), (0..=l).boxed()])
                .collect();
            (Just(x.clone()), pads, Just(mode))
        })
    })
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn pad_matches_index_arithmetic_and_finite_differences((x, pads, mode) in pad_case()) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let pm = match mode { 0 => PadMode::Constant(0.25), 1 => PadMode::Reflect, 2 => PadMode::Replicate, _ => PadMode::Circular };
        let y = v.pad(&pads, pm).unwrap();
        let r = x.rank();
        let (mut before, mut after) = (vec![0; r], vec![0; r]);
        for (j, pair) in pads.chunks(2).enumerate() {
            before[r - 1 - j] = pair[0];
            after[r - 1 - j] = pair[1];
        }
        let dims: Vec<usize> = (0..r).map(|d| x.dims()[d] + before[d] + after[d]).collect();
        prop_assert_eq!(y.dims(), dims.clone());
        let ys = Shape::from(dims.clone()).strides();
        let xs_ = x.shape().strides();
        let want = Tensor::from_fn(dims, |k| {
            let mut off = 0;
            for d in 0..r {
                let i = ((k / ys[d]) % y.dims()[d]) as isize - before[d] as isize;
                match pad_source(i, x.dims()[d] as isize, mode) {
                    Some(j) => off += j as usize * xs_[d],
                    None => return 0.25,
                }
            }
            x.as_slice()[off]
        }).unwrap();
        assert_close!(y, want, atol = 0.0, rtol = 0.0);
        let xs = [x];
        check_gradients(|v| v[0].pad(&pads, pm), &xs)?;
        check_gradgrad(|v| Ok(v[0].pad(&pads, pm)?.square()), &xs)?;
    }

    #[test]
    fn moving_ops_match_index_arithmetic_and_finite_differences(
        ((x, axis), shift, reps, diag, m) in (
            with_axis(tensor(shapes(1..=3, 1..=4))),
            -5isize..=5,
            proptest::collection::vec(1usize..=3, 3..=4),
            -2isize..=2,
            tensor(shapes(1..=1, 1..=1)),
        )
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let ax = resolve(x.rank(), axis);
        let n = x.dims()[ax];
        assert_close!(v.flip(&[axis]).unwrap(), map_lanes(&x, axis, n, |l| l.iter().rev().copied().collect()));
        let rolled = map_lanes(&x, axis, n, |l| (0..n).map(|j| l[(j as isize - shift).rem_euclid(n as isize) as usize]).collect());
        assert_close!(v.roll(&[shift], &[axis]).unwrap(), rolled);
        // repeat = tile: out[i] = x[i mod n] on every axis
        let reps = reps[..reps.len().max(x.rank())].to_vec();
        let t = v.repeat(&reps).unwrap();
        let lead = reps.len() - x.rank();
        let td = t.dims();
        let ts = t.value().shape().strides();
        let xst = x.shape().strides();
        let want = Tensor::from_fn(t.shape(), |k| {
            let off: usize = (lead..td.len()).map(|d| ((k / ts[d]) % td[d]) % x.dims()[d - lead] * xst[d - lead]).sum();
            x.as_slice()[off]
        }).unwrap();
        assert_close!(t, want, atol = 0.0, rtol = 0.0);
        // split into two pieces at a random point, chunk into up to 3
        let cut = n / 2;
        let parts = v.split(&[cut, n - cut], axis).unwrap();
        assert_close!(Var::concat(&parts, axis).unwrap(), x.clone(), atol = 0.0, rtol = 0.0);
        let chunks = v.chunk(3, axis).unwrap();
        assert_close!(Var::concat(&chunks, axis).unwrap(), x.clone(), atol = 0.0, rtol = 0.0);
        let xs = [x.clone()];
        check_gradients(|v| v[0].flip(&[axis]), &xs)?;
        check_gradients(|v| v[0].roll(&[shift], &[axis]), &xs)?;
        check_gradients(|v| v[0].roll(&[shift], &[]), &xs)?;
        check_gradients(|v| v[0].repeat(&reps), &xs)?;
        check_gradgrad(|v| Ok(v[0].repeat(&reps)?.square()), &xs)?;
        check_gradients(|v| Ok(v[0].split(&[cut, n - cut], axis)?[1].sin()), &xs)?;
        check_gradients(|v| Ok(Var::concat(&v[0].chunk(3, axis)?, axis)?.square()), &xs)?;
        if x.rank() >= 2 {
            let (h, w) = (x.dims()[x.rank() - 2], x.dims()[x.rank() - 1]);
            let tri = |lower: bool| Tensor::from_fn(x.shape(), |k| {
                let (i, j) = (((k / w) % h) as isize, (k % w) as isize);
                if (lower && j - i <= diag) || (!lower && j - i >= diag) { x.as_slice()[k] } else { 0.0 }
            }).unwrap();
            assert_close!(v.tril(diag).unwrap(), tri(true), atol = 0.0, rtol = 0.0);
            assert_close!(v.triu(diag).unwrap(), tri(false), atol = 0.0, rtol = 0.0);
            check_gradients(|v| v[0].tril(diag), &xs)?;
            check_gradgrad(|v| Ok(v[0].triu(diag)?.square()), &xs)?;
        }
        // expand a size-1 axis (a narrowed copy) and add a leading axis
        let one = v.narrow(axis, 0, 1).unwrap();
        let mut sizes: Vec<isize> = vec![2];
        sizes.extend(x.dims().iter().map(|&d| d as isize));
        let e = one.expand(&sizes).unwrap();
        prop_assert_eq!(e.dims(), sizes.iter().map(|&d| d as usize).collect::<Vec<_>>());
        check_gradients(|v| v[0].narrow(axis, 0, 1)?.expand(&sizes), &xs)?;
        // masked_fill with a mask broadcast along the axis
        let mut md = vec![1; x.rank()];
        md[ax] = n;
        let mask = Tensor::from_fn(md, |k| if m.as_slice()[0] > 0.0 { (k % 2) as f64 } else { ((k + 1) % 2) as f64 }).unwrap();
        let filled = v.masked_fill(&mask, -7.0).unwrap();
        let want = mask.broadcast_to(x.shape()).unwrap().as_slice().iter().zip(x.as_slice())
            .map(|(&c, &v)| if c != 0.0 { -7.0 } else { v }).collect::<Vec<_>>();
        assert_close!(filled.value().to_vec(), want, atol = 0.0, rtol = 0.0);
        check_gradients(|v| v[0].masked_fill(&mask, -7.0), &xs)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn scatter_add_is_the_transpose_of_gather(
        ((base, axis), raw, extra) in (
            with_axis(tensor(shapes(1..=3, 1..=4))),
            proptest::collection::vec(0usize..64, 64),
            proptest::collection::vec(0usize..=1, 3),
        )
    ) {
        let ax = resolve(base.rank(), axis);
        let dims = base.dims().to_vec();
        // index shape: like base off the axis (possibly smaller), any length along it
        let ishape: Vec<usize> = dims.iter().enumerate().map(|(d, &n)| if d == ax { 1 + raw[d] % 3 } else { (n - extra[d % 3]).max(1) }).collect();
        let count: usize = ishape.iter().product();
        let index: Vec<usize> = (0..count).map(|k| raw[k % raw.len()] % dims[ax]).collect();
        // src may be larger than the index: one more along the first axis
        let mut sdims = ishape.clone();
        sdims[0] += extra[0];
        let src = Tensor::from_fn(sdims.clone(), |k| (k as f64 * 0.37).sin()).unwrap();
        let tape = Tape::new();
        let (b, s) = (tape.constant(base.clone()), tape.constant(src.clone()));
        let y = b.scatter_add(axis, &index, ishape.clone(), s).unwrap();
        // naive: out = base; out[.., index, ..] += src[.., j, ..]
        let mut want = base.to_vec();
        let (bst, ist, sst) = (base.shape().strides(), Shape::from(ishape.clone()).strides(), Shape::from(sdims).strides());
        for (k, &t) in index.iter().enumerate() {
            let (mut o, mut so) = (0, 0);
            for d in 0..ishape.len() {
                let i = (k / ist[d]) % ishape[d];
                o += if d == ax { t } else { i } * bst[d];
                so += i * sst[d];
            }
            want[o] += src.as_slice()[so];
        }
        assert_close!(y.value().to_vec(), want);
        let xs = [base, src];
        let (ix, is) = (index.clone(), ishape.clone());
        check_gradients(|v| v[0].scatter_add(axis, &ix, is.clone(), v[1]), &xs)?;
        check_gradgrad(|v| Ok(v[0].scatter_add(axis, &ix, is.clone(), v[1])?.square()), &xs)?;
        check_gradients(|v| v[0].gather(axis, &ix, is.clone()), &xs[..1])?;
        check_gradients(|v| v[0].index_select(axis, &ix[..ix.len().min(4)]), &xs[..1])?;
    }
}

/// A random einsum: 1 to 3 operands over the labels `abcd` (sizes 1 to 3), a repeated
/// label now and then, and an explicit output of distinct labels that occur.
#[derive(Clone, Debug)]
struct EinsumCase {
    equation: String,
    operands: Vec<Tensor<f64>>,
    terms: Vec<Vec<usize>>,
    output: Vec<usize>,
    sizes: Vec<usize>,
}

fn einsum_case() -> impl Strategy<Value = EinsumCase> {
    (
        proptest::collection::vec(1usize..=3, 4),
        proptest::collection::vec(proptest::collection::vec(0usize..4, 0..=3), 1..=3),
        proptest::collection::vec(any::<bool>(), 4),
    )
        .prop_flat_map(|(sizes, terms, keep)| {
            let mut present: Vec<usize> = terms.iter().flatten().copied().collect();
            present.sort_unstable();
            present.dedup();
            let output: Vec<usize> = present.iter().copied().filter(|&l| keep[l]).collect();
            let operands: Vec<BoxedStrategy<Tensor<f64>>> = terms
                .iter()
                .map(|t| {
                    tensor_of(
                        t.iter().map(|&l| sizes[l]).collect::<Vec<_>>(),
                        values(-2.0..=2.0),
                    )
                })
                .collect();
            (Just(sizes), Just(terms), Just(output), operands)
        })
        .prop_map(|(sizes, terms, output, operands)| {
            let letters = |t: &[usize]| {
                t.iter()
                    .map(|&l| (b'a' + l as u8) as char)
                    .collect::<String>()
            };
            let lhs: Vec<String> = terms.iter().map(|t| letters(t)).collect();
            let equation = format!("{}->{}", lhs.join(","), letters(&output));
            EinsumCase {
                equation,
                operands,
                terms,
                output,
                sizes,
            }
        })
}

/// Einsum by brute force: sum over every assignment of every label.
fn naive_einsum(c: &EinsumCase) -> Tensor<f64> {
    let labels = c.sizes.len();
    let total: usize = c.sizes.iter().product();
    let out_dims: Vec<usize> = c.output.iter().map(|&l| c.sizes[l]).collect();
    let out_n: usize = out_dims.iter().product();
    let mut out = vec![0.0; out_n];
    for a in 0..total {
        let mut val = vec![0; labels];
        let mut rem = a;
        for l in (0..labels).rev() {
            val[l] = rem % c.sizes[l];
            rem /= c.sizes[l];
        }
        let mut prod = 1.0;
        for (t, x) in c.terms.iter().zip(&c.operands) {
            let st = x.shape().strides();
            let off: usize = t.iter().zip(st.iter()).map(|(&l, &s)| val[l] * s).sum();
            prod *= x.as_slice()[off];
        }
        let o = c.output.iter().fold(0, |acc, &l| acc * c.sizes[l] + val[l]);
        out[o] += prod;
    }
    // a label absent from every operand never varies: divide out its repeats
    let unused: usize = (0..labels)
        .filter(|l| !c.terms.iter().any(|t| t.contains(l)))
        .map(|l| c.sizes[l])
        .product();
    Tensor::from_vec(out.iter().map(|v| v / unused as f64).collect(), out_dims).unwrap()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn einsum_matches_brute_force_and_finite_differences(c in einsum_case()) {
        let tape = Tape::new();
        let ops: Vec<Var<'_, f64>> = c.operands.iter().map(|t| tape.constant(t.clone())).collect();
        let y = Var::einsum(&c.equation, &ops).unwrap();
        assert_close!(y, naive_einsum(&c));
        let eq = c.equation.clone();
        check_gradients(|v| Var::einsum(&eq, v), &c.operands)?;
        check_gradgrad(|v| Ok(Var::einsum(&eq, v)?.square()), &c.operands)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn new_activations_match_closed_forms_and_finite_differences(
        (x, axis) in with_axis(tensor_with(shapes(1..=3, 1..=4).prop_map(|s| {
            let mut d = s.to_vec();
            let last = d.len() - 1;
            d[last] *= 2; // an even axis for glu
            Shape::from(d)
        }).boxed(), away_from(&[0.0, -1.0, 0.5], 0.05)))
    ) {
        let tape = Tape::new();
        let v = tape.constant(x.clone());
        let sp = |t: f64| t.max(0.0) + (-t.abs()).exp().ln_1p();
        assert_close!(v.mish(), x.map(|t| t * sp(t).tanh()));
        assert_close!(v.softsign(), x.map(|t| t / (1.0 + t.abs())));
        assert_close!(v.logsigmoid(), x.map(|t| -sp(-t)));
        assert_close!(v.hardtanh(-1.0, 0.5).unwrap(), x.map(|t| t.clamp(-1.0, 0.5)), atol = 0.0, rtol = 0.0);
        let xs = [x.clone()];
        check_gradients(|v| Ok(v[0].mish()), &xs)?;
        check_gradgrad(|v| Ok(v[0].mish()), &xs)?;
        check_gradients(|v| Ok(v[0].softsign()), &xs)?;
        check_gradgrad(|v| Ok(v[0].softsign()), &xs)?;
        check_gradients(|v| Ok(v[0].logsigmoid()), &xs)?;
        check_gradgrad(|v| Ok(v[0].logsigmoid()), &xs)?;
        check_gradients(|v| v[0].hardtanh(-1.0, 0.5), &xs)?;
        check_gradgrad(|v| Ok(v[0].hardtanh(-1.0, 0.5)?.square()), &xs)?;
        // glu along the doubled last axis, and along any axis of even size
        check_gradients(|v| v[0].glu(-1), &xs)?;
        check_gradgrad(|v| v[0].glu(-1), &xs)?;
        if x.dims()[resolve(x.rank(), axis)] % 2 == 0 {
            let n = x.dims()[resolve(x.rank(), axis)] / 2;
            let a = v.narrow(axis, 0, n).unwrap().value();
            let b = v.narrow(axis, n, n).unwrap().value();
            let want = a.mul(&b.map(|t| 1.0 / (1.0 + (-t).exp()))).unwrap();
            assert_close!(v.glu(axis).unwrap(), want);
        }
    }
}
