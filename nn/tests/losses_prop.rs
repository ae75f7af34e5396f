//! Property tests for every loss of `nn::loss`: first and second derivatives against
//! central finite differences in f64, over random shapes, options and every reduction,
//! with respect to every input PyTorch differentiates (targets included). One `proptest!`
//! block per family; values stay off the hinges and clamps of the piecewise losses.

use autograd::testing::{
    away_from, check_gradgrad, check_gradients, positive, shapes, tensor_of, tensor_with, values,
};
use autograd::{Shape, Tensor, Var};
use nn::loss::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x6c6f_7373_6573_2121),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/losses_prop.txt",
        ))),
        ..Config::default()
    }
}

/// An `nn` result as the `autograd` result gradient checks take.
fn ag<T>(r: nn::Result<T>) -> autograd::Result<T> {
    r.map_err(nn::Error::into_autograd)
}

fn reductions() -> impl Strategy<Value = Reduction> {
    prop::sample::select(vec![Reduction::Mean, Reduction::Sum, Reduction::None])
}

/// Two tensors of one random shape: `x` from `xs` values, `y` from `ys` values.
fn pair(
    xs: BoxedStrategy<f64>,
    ys: BoxedStrategy<f64>,
) -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    shapes(1..=3, 1..=3)
        .prop_flat_map(move |s| (tensor_of(s.clone(), xs.clone()), tensor_of(s, ys.clone())))
}

/// Inputs whose difference from the targets stays `margin` away from each of `kinks`.
fn away_diffs(
    kinks: &'static [f64],
    margin: f64,
) -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    pair(values(-2.0..=2.0), away_from(kinks, margin)).prop_map(|(y, d)| {
        let x = y.add(&d).unwrap();
        (x, y)
    })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn regression_losses_match_finite_differences(
        ((x, y), r, beta) in (away_diffs(&[0.0, 0.5, -0.5, 1.0, -1.0], 0.02), reductions(), prop::sample::select(vec![0.5, 1.0]))
    ) {
        let xs = [x, y];
        check_gradients(|v| ag(MseLoss { reduction: r }.forward(v[0], v[1])), &xs)?;
        check_gradgrad(|v| ag(MseLoss { reduction: r }.forward(v[0], v[1])), &xs)?;
        check_gradients(|v| ag(L1Loss { reduction: r }.forward(v[0], v[1])), &xs)?;
        check_gradgrad(|v| Ok(ag(L1Loss { reduction: r }.forward(v[0], v[1]))?.square()), &xs)?;
        let sl1 = SmoothL1Loss { reduction: r, beta };
        check_gradients(|v| ag(sl1.forward(v[0], v[1])), &xs)?;
        check_gradgrad(|v| ag(sl1.forward(v[0], v[1])), &xs)?;
        let hub = HuberLoss { reduction: r, delta: beta };
        check_gradients(|v| ag(hub.forward(v[0], v[1])), &xs)?;
        check_gradgrad(|v| ag(hub.forward(v[0], v[1])), &xs)?;
    }
}

/// Scores `(N, C)` or `(N, C, d)`, class targets (some ignored when asked), class weights.
#[derive(Clone, Debug)]
struct ClassCase {
    x: Tensor<f64>,
    targets: Vec<i64>,
    weight: Tensor<f64>,
    probs: Tensor<f64>,
}

fn class_case() -> impl Strategy<Value = ClassCase> {
    (1usize..=3, 2usize..=4, 0usize..=2).prop_flat_map(|(n, c, d)| {
        let dims: Vec<usize> = if d == 0 { vec![n, c] } else { vec![n, c, d] };
        let positions = n * d.max(1);
        (
            tensor_of(dims.clone(), values(-3.0..=3.0)),
            proptest::collection::vec(-1i64..c as i64, positions),
            tensor_of([c], positive(0.2, 2.0)),
            tensor_of(dims, positive(0.05, 1.0)),
        )
            .prop_map(move |(x, targets, weight, raw)| {
                // probability targets: positive entries normalised along the class axis
                let tape = autograd::Tape::new();
                let r = tape.constant(raw);
                let probs = r.div(r.sum_axes(&[1], true).unwrap()).unwrap().value();
                ClassCase {
                    x,
                    targets,
                    weight,
                    probs,
                }
            })
    })
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn class_losses_match_finite_differences(
        (c, r, smoothing, use_weight) in (class_case(), reductions(), prop::sample::select(vec![0.0, 0.15]), any::<bool>())
    ) {
        // -1 stands for an ignored target
        let weight = use_weight.then(|| c.weight.clone());
        let ce = CrossEntropyLoss { weight: weight.clone(), ignore_index: -1, label_smoothing: smoothing, reduction: r };
        let t = c.targets.clone();
        let xs = [c.x.clone()];
        check_gradients(|v| ag(ce.forward(v[0], &t)), &xs)?;
        check_gradgrad(|v| ag(ce.forward(v[0], &t)), &xs)?;
        let nll = NllLoss { weight: weight.clone(), ignore_index: -1, reduction: r };
        check_gradients(|v| ag(nll.forward(v[0].log_softmax(1)?, &t)), &xs)?;
        // probability targets: both the scores and the targets are differentiable
        let both = [c.x.clone(), c.probs.clone()];
        let soft = CrossEntropyLoss { weight, ignore_index: -100, label_smoothing: smoothing, reduction: r };
        check_gradients(|v| ag(soft.forward_probs(v[0], v[1])), &both)?;
        check_gradgrad(|v| ag(soft.forward_probs(v[0], v[1])), &both)?;
        // cross-entropy is nll of log_softmax, for every option
        let tape = autograd::Tape::new();
        let x = tape.constant(c.x.clone());
        if smoothing == 0.0 {
            let a = ce.forward(x, &t).unwrap().value();
            let b = nll.forward(x.log_softmax(1).unwrap(), &t).unwrap().value();
            autograd::assert_close!(a, b);
        }
    }

    #[test]
    fn multi_margin_matches_finite_differences(
        (x, t, w, p, r) in (2usize..=4, 1usize..=3).prop_flat_map(|(c, n)| (
            tensor_of([n, c], values(-2.0..=2.0)),
            proptest::collection::vec(0usize..c, n),
            tensor_of([c], positive(0.2, 2.0)),
            1u32..=2,
            reductions(),
        ))
    ) {
        let mm = MultiMarginLoss { p, margin: 0.7, weight: Some(w), reduction: r };
        let xs = [x];
        check_gradients(|v| ag(mm.forward(v[0], &t)), &xs)?;
        check_gradgrad(|v| Ok(ag(mm.forward(v[0], &t))?.square()), &xs)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn binary_losses_match_finite_differences(
        ((x, y), (p, q), signs, r) in (
            pair(values(-4.0..=4.0), values(0.0..=1.0)),
            pair(values(0.05..=0.95), values(0.05..=0.95)),
            any::<u64>(),
            reductions(),
        )
    ) {
        let bce = BceLoss { weight: Some(p.map(|v| 1.0 + v)), reduction: r };
        let probs = [p.clone(), q.clone()];
        check_gradients(|v| ag(bce.forward(v[0], v[1])), &probs)?;
        check_gradgrad(|v| ag(bce.forward(v[0], v[1])), &probs)?;
        let last = *x.dims().last().unwrap();
        let logits = BceWithLogitsLoss {
            weight: Some(Tensor::from_fn([last], |k| 0.5 + k as f64).unwrap()),
            pos_weight: Some(Tensor::from_fn([last], |k| 2.0 - 0.4 * k as f64).unwrap()),
            reduction: r,
        };
        let both = [x.clone(), y.clone()];
        check_gradients(|v| ag(logits.forward(v[0], v[1])), &both)?;
        check_gradgrad(|v| ag(logits.forward(v[0], v[1])), &both)?;
        // ±1 labels from the bits of `signs`
        let pm = Tensor::from_fn(x.shape(), |k| if signs >> (k % 64) & 1 == 1 { 1.0 } else { -1.0 }).unwrap();
        let sm = SoftMarginLoss { reduction: r };
        check_gradients(|v| ag(sm.forward(v[0], v[0].tape().constant(pm.clone()))), std::slice::from_ref(&x))?;
        check_gradgrad(|v| ag(sm.forward(v[0], v[0].tape().constant(pm.clone()))), std::slice::from_ref(&x))?;
        if x.rank() <= 2 {
            let ml = MultiLabelSoftMarginLoss { weight: Some(Tensor::from_fn([last], |k| 1.0 + 0.3 * k as f64).unwrap()), reduction: r };
            check_gradients(|v| ag(ml.forward(v[0], v[1])), &both)?;
            check_gradgrad(|v| ag(ml.forward(v[0], v[1])), &both)?;
        }
    }

    #[test]
    fn hinge_loss_matches_finite_differences_off_the_hinge(
        (s, signs, r) in (tensor_with(shapes(1..=2, 1..=4), away_from(&[1.0, -1.0], 0.05)), any::<u64>(), reductions())
    ) {
        let pm = Tensor::from_fn(s.shape(), |k| if signs >> (k % 64) & 1 == 1 { 1.0 } else { -1.0 }).unwrap();
        let h = HingeLoss { reduction: r };
        check_gradients(|v| ag(h.forward(v[0], v[0].tape().constant(pm.clone()))), &[s])?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn embedding_losses_match_finite_differences(
        (a, b, n, signs, r, p, swap) in (1usize..=3, 1usize..=4).prop_flat_map(|(rows, d)| (
            tensor_of([rows, d], values(-2.0..=2.0)),
            tensor_of([rows, d], values(-2.0..=2.0)),
            tensor_of([rows, d], values(-2.0..=2.0)),
            any::<u64>(),
            reductions(),
            prop::sample::select(vec![2.0, 1.5, 3.0]),
            any::<bool>(),
        ))
    ) {
        let rows = a.dims()[0];
        let sign = |shape: &[usize]| Tensor::from_fn(shape, |k| if signs >> (k % 64) & 1 == 1 { 1.0 } else { -1.0 }).unwrap();
        // hinge arguments are continuous random values: the chance that one lands within
        // a finite-difference step of its kink is negligible
        let mr = MarginRankingLoss { margin: 0.3, reduction: r };
        let y = sign(a.dims());
        check_gradients(|v| ag(mr.forward(v[0], v[1], v[0].tape().constant(y.clone()))), &[a.clone(), b.clone()])?;
        let tm = TripletMarginLoss { margin: 1.5, p, eps: 1e-6, swap, reduction: r };
        let abn = [a.clone(), b.clone(), n];
        check_gradients(|v| ag(tm.forward(v[0], v[1], v[2])), &abn)?;
        check_gradgrad(|v| ag(tm.forward(v[0], v[1], v[2])), &abn)?;
        let ce = CosineEmbeddingLoss { margin: -0.2, reduction: r };
        let yc = sign(&[rows]);
        check_gradients(|v| ag(ce.forward(v[0], v[1], v[0].tape().constant(yc.clone()))), &[a.clone(), b.clone()])?;
        check_gradgrad(|v| ag(ce.forward(v[0], v[1], v[0].tape().constant(yc.clone()))), &[a.clone(), b])?;
        let he = HingeEmbeddingLoss { margin: 0.8, reduction: r };
        check_gradients(|v| ag(he.forward(v[0], v[0].tape().constant(y.clone()))), &[a])?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn likelihood_losses_match_finite_differences(
        ((x, t, raw, q), r, log_input, full) in (
            shapes(1..=3, 1..=3).prop_flat_map(|s| (
                tensor_of(s.clone(), values(-2.0..=2.0)),
                tensor_of(s.clone(), values(0.0..=4.0)),
                tensor_of(s.clone(), positive(0.05, 1.0)),
                tensor_of(s, values(-2.0..=0.0)),
            )),
            reductions(),
            any::<bool>(),
            any::<bool>(),
        )
    ) {
        let kr = match r { Reduction::Mean => KlDivReduction::BatchMean, Reduction::Sum => KlDivReduction::Sum, Reduction::None => KlDivReduction::None };
        let kl = KlDivLoss { reduction: kr, log_target: false };
        let probs = [x.clone(), raw.clone()];
        check_gradients(|v| ag(kl.forward(v[0], v[1])), &probs)?;
        check_gradgrad(|v| ag(kl.forward(v[0], v[1])), &probs)?;
        let kll = KlDivLoss { reduction: KlDivReduction::Mean, log_target: true };
        let logs = [x.clone(), q];
        check_gradients(|v| ag(kll.forward(v[0], v[1])), &logs)?;
        check_gradgrad(|v| ag(kll.forward(v[0], v[1])), &logs)?;
        // Poisson: log-rates anywhere; rates kept positive; counts that straddle 1 for `full`
        let po = PoissonNllLoss { log_input, full, eps: 1e-8, reduction: r };
        let rates = if log_input { x.clone() } else { raw.map(|v| v + 0.5) };
        let counts = t.map(|v| if (v - 1.0).abs() < 0.05 { v + 0.1 } else { v });
        let pc = [rates, counts];
        check_gradients(|v| ag(po.forward(v[0], v[1])), &pc)?;
        check_gradgrad(|v| ag(po.forward(v[0], v[1])), &pc)?;
        // Gaussian: heteroscedastic, and one variance per row (last axis dropped)
        let ga = GaussianNllLoss { full, eps: 1e-6, reduction: r };
        let var = raw.map(|v| v + 0.2);
        let xtv = [x.clone(), t.clone(), var];
        check_gradients(|v| ag(ga.forward(v[0], v[1], v[2])), &xtv)?;
        check_gradgrad(|v| ag(ga.forward(v[0], v[1], v[2])), &xtv)?;
        let row_dims = &x.dims()[..x.rank() - 1];
        let row_var = Tensor::from_fn(Shape::from(row_dims), |k| 0.3 + 0.1 * k as f64).unwrap();
        let xtr = [x, t, row_var];
        check_gradients(|v| ag(ga.forward(v[0], v[1], v[2])), &xtr)?;
    }
}

/// Logits `(T, N, C)`, label sequences without blanks (class 0), and input lengths, some
/// of them too short for their labels (an impossible alignment) now and then.
#[derive(Clone, Debug)]
struct CtcCase {
    logits: Tensor<f64>,
    targets: Vec<Vec<usize>>,
    lengths: Vec<usize>,
}

fn ctc_case() -> impl Strategy<Value = CtcCase> {
    (1usize..=5, 1usize..=2, 2usize..=4).prop_flat_map(|(t, n, c)| {
        (
            tensor_of([t, n, c], values(-2.0..=2.0)),
            proptest::collection::vec(proptest::collection::vec(1usize..c, 0..=2), n),
            proptest::collection::vec(1usize..=t, n),
        )
            .prop_map(|(logits, targets, lengths)| CtcCase {
                logits,
                targets,
                lengths,
            })
    })
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn ctc_matches_finite_differences_to_second_order((c, r, zero_inf) in (ctc_case(), reductions(), any::<bool>())) {
        let ctc = CtcLoss { blank: 0, reduction: r, zero_infinity: zero_inf };
        let (tg, ln) = (c.targets.clone(), c.lengths.clone());
        let tape = autograd::Tape::new();
        let value = ctc.forward(tape.constant(c.logits.clone()).log_softmax(-1).unwrap(), &tg, &ln).unwrap().value();
        // an impossible alignment gives inf (not differentiable): check only finite losses
        prop_assume!(value.first_non_finite().is_none());
        let xs = [c.logits.clone()];
        check_gradients(|v| ag(ctc.forward(v[0].log_softmax(-1)?, &tg, &ln)), &xs)?;
        check_gradgrad(|v| ag(ctc.forward(v[0].log_softmax(-1)?, &tg, &ln)), &xs)?;
        // the gradient is the true derivative in the log-probabilities too
        let lp = [tape.constant(c.logits.clone()).log_softmax(-1).unwrap().value()];
        check_gradients(|v| ag(ctc.forward(v[0], &tg, &ln)), &lp)?;
    }
}

#[test]
fn ctc_of_a_batch_is_the_batch_of_ctcs() {
    // Sequences of different lengths in one batch give the same losses as each alone.
    let tape = autograd::Tape::<f64>::new();
    let logits = Tensor::from_fn([4, 2, 3], |k| ((k * 7 % 11) as f64 * 0.3).sin()).unwrap();
    let lp = tape.var(logits).log_softmax(-1).unwrap();
    let per = CtcLoss {
        reduction: Reduction::None,
        ..Default::default()
    };
    let both = per
        .forward(lp, &[vec![1, 2], vec![2]], &[4, 3])
        .unwrap()
        .value()
        .to_vec();
    for (b, (t, len)) in [(vec![1, 2], 4), (vec![2], 3)].into_iter().enumerate() {
        let one: Var<'_, f64> = lp.narrow(1, b, 1).unwrap();
        let alone = per.forward(one, &[t], &[len]).unwrap().value().to_vec();
        assert!((alone[0] - both[b]).abs() < 1e-12, "{alone:?} vs {both:?}");
    }
}
