//! Losses on literals (PyTorch 2.15 float64 values where noted), their typed errors, and
//! their behaviour at logits of magnitude 1e4. Gradient checks over random shapes live in
//! `nn/tests/losses_prop.rs`; every case of the PyTorch reference file in
//! `nn/tests/pytorch_ops_extra.rs`.

use autograd::{gradcheck, Float, GradcheckOptions, Tape, Tensor, Var};

use super::*;
use crate::Error;

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s.to_vec()).unwrap()
}

const X: [f64; 6] = [0.3, -1.2, 2.0, 0.7, -0.4, 1.1];
const Y: [f64; 6] = [0.1, -0.2, 0.5, 2.0, -0.1, 0.3];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-12 * b.abs()
}

#[test]
fn regression_losses_match_their_formulas() {
    let tape = Tape::<f64>::new();
    let (x, y) = (tape.constant(t(&X, &[2, 3])), tape.constant(t(&Y, &[2, 3])));
    let d: Vec<f64> = X.iter().zip(Y).map(|(a, b)| a - b).collect();
    let want_mse = d.iter().map(|d| d * d).sum::<f64>() / 6.0;
    assert!(close(mse_loss(x, y).unwrap().item().unwrap(), want_mse));
    let want_l1 = d.iter().map(|d| d.abs()).sum::<f64>();
    let l1 = L1Loss {
        reduction: Reduction::Sum,
    };
    assert!(close(l1.forward(x, y).unwrap().item().unwrap(), want_l1));
    // δ = 1: d = 0.2 → 0.02, d = 1.5 → 1.0, d = -1.3 → 0.8 ...
    let huber = HuberLoss {
        reduction: Reduction::None,
        ..Default::default()
    };
    let h = huber.forward(x, y).unwrap().value().to_vec();
    for (a, d) in h.iter().zip(&d) {
        let want = if d.abs() < 1.0 {
            0.5 * d * d
        } else {
            d.abs() - 0.5
        };
        assert!(close(*a, want));
    }
    // smooth L1 with β = δ is Huber / δ; with β = 0 it is L1
    let (sl1, hub) = (
        SmoothL1Loss {
            beta: 0.7,
            ..Default::default()
        },
        HuberLoss {
            delta: 0.7,
            ..Default::default()
        },
    );
    let a = sl1.forward(x, y).unwrap().item().unwrap();
    assert!(close(a * 0.7, hub.forward(x, y).unwrap().item().unwrap()));
    let zero_beta = SmoothL1Loss {
        beta: 0.0,
        ..Default::default()
    };
    assert!(close(
        zero_beta.forward(x, y).unwrap().item().unwrap(),
        want_l1 / 6.0
    ));
}

#[test]
fn cross_entropy_matches_torch_with_and_without_smoothing() {
    // torch 2.15 (float64): F.cross_entropy(torch.tensor([[0.3,-1.2,2.0],[0.7,-0.4,1.1]]),
    //   torch.tensor([2,0])) = 0.6200359578654773; with label_smoothing=0.1: 0.7133692911988107
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&X, &[2, 3]));
    let ce = cross_entropy(x, &[2usize, 0]).unwrap().item().unwrap();
    assert!(close(ce, 0.6200359578654773));
    let smoothed = CrossEntropyLoss {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let ls = smoothed.forward(x, &[2usize, 0]).unwrap().item().unwrap();
    assert!(close(ls, 0.7133692911988107));
    // nll of log_softmax is cross-entropy
    let nll = nll_loss(x.log_softmax(1).unwrap(), &[2usize, 0])
        .unwrap()
        .item()
        .unwrap();
    assert!(close(nll, ce));
    // one-hot probability targets give the same loss as the class indices
    let onehot = tape.constant(t(&[0., 0., 1., 1., 0., 0.], &[2, 3]));
    let soft = CrossEntropyLoss::default()
        .forward_probs(x, onehot)
        .unwrap()
        .item()
        .unwrap();
    assert!(close(soft, ce));
}

#[test]
fn ignored_targets_drop_out_of_the_mean_and_the_gradient() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&X, &[2, 3]));
    let ce = |targets: &[i64]| CrossEntropyLoss::default().forward(x, targets).unwrap();
    let only_first = ce(&[2, -100]);
    let first_alone = cross_entropy(x.narrow(0, 0, 1).unwrap(), &[2usize]).unwrap();
    assert!(close(
        only_first.item().unwrap(),
        first_alone.item().unwrap()
    ));
    let g = tape.grad(only_first, &[x]).unwrap()[0].value().to_vec();
    assert_eq!(&g[3..], &[0.0, 0.0, 0.0]);
    // every target ignored: a defined 0 with a zero gradient (PyTorch gives NaN)
    let none = ce(&[-100, -100]);
    assert_eq!(none.item().unwrap(), 0.0);
    let g = tape.grad(none, &[x]).unwrap()[0].value().to_vec();
    assert!(g.iter().all(|&v| v == 0.0));
}

#[test]
fn cross_entropy_takes_unbatched_and_spatial_scores() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&X, &[2, 3]));
    let row = cross_entropy(x.narrow(0, 1, 1).unwrap().reshape([3]).unwrap(), &[0usize]).unwrap();
    assert_eq!(row.rank(), 0);
    // (N, C, d): class axis 1, one target per (n, d); the same as moving C last
    let img = tape.constant(t(&[0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 0.5, 0.2], &[1, 2, 4]));
    let spatial = CrossEntropyLoss {
        reduction: Reduction::None,
        ..Default::default()
    }
    .forward(img, &[1usize, 0, 0, 1])
    .unwrap();
    assert_eq!(spatial.dims(), vec![1, 4]);
    let flat = img.permute(&[0, 2, 1]).unwrap().reshape([4, 2]).unwrap();
    let per = CrossEntropyLoss {
        reduction: Reduction::None,
        ..Default::default()
    }
    .forward(flat, &[1usize, 0, 0, 1])
    .unwrap();
    for (a, b) in spatial.value().to_vec().iter().zip(per.value().to_vec()) {
        assert!(close(*a, b));
    }
}

#[test]
fn multi_margin_matches_torch_definition() {
    // row 0, t = 2: (max(0, 1 - 2 + 0.3) + max(0, 1 - 2 - 1.2)) / 3 = 0
    // row 1, t = 0: (max(0, 1 - 0.7 - 0.4) + max(0, 1 - 0.7 + 1.1)) / 3 = 1.4/3
    // (torch 2.15: F.multi_margin_loss(x, [2, 0], reduction="none") = [0.0000, 0.4667])
    let tape = Tape::<f64>::new();
    let x = tape.constant(t(&X, &[2, 3]));
    let l = MultiMarginLoss {
        reduction: Reduction::None,
        ..Default::default()
    }
    .forward(x, &[2usize, 0])
    .unwrap()
    .value()
    .to_vec();
    assert!(l[0].abs() < 1e-12 && close(l[1], 1.4 / 3.0), "{l:?}");
    gradcheck(
        |v| multi_margin_loss(v[0], &[2usize, 0]).map_err(Error::into_autograd),
        &[t(&X, &[2, 3])],
        &GradcheckOptions::default(),
    )
    .unwrap();
}

#[test]
fn ctc_of_a_hand_countable_lattice() {
    // 3 frames over {blank, a, b}, each frame p = (0.5, 0.3, 0.2). Label "ab": the
    // alignments are "ab-", "a-b", "-ab", "aab", "abb" with probabilities
    // .3·.2·.5 ×3 = .09 and .3·.3·.2 + .3·.2·.2 = .03, total .12.
    let tape = Tape::<f64>::new();
    let frame = [0.5f64.ln(), 0.3f64.ln(), 0.2f64.ln()];
    let lp = tape.var(Tensor::from_fn([3, 1, 3], |k| frame[k % 3]).unwrap());
    let l = CtcLoss {
        reduction: Reduction::Sum,
        ..Default::default()
    }
    .forward(lp, &[vec![1, 2]], &[3])
    .unwrap();
    assert!(close(l.item().unwrap(), -(0.12f64).ln()));
    // the same label in 2 frames has one alignment, "ab"; in 1 frame none
    let two = ctc_loss(lp, &[vec![1, 2]], &[2]).unwrap().item().unwrap();
    assert!(close(two, -(0.06f64).ln() / 2.0));
    let one = ctc_loss(lp, &[vec![1, 2]], &[1]).unwrap();
    assert_eq!(one.item().unwrap(), f64::INFINITY);
    let zeroed = CtcLoss {
        zero_infinity: true,
        ..Default::default()
    }
    .forward(lp, &[vec![1, 2]], &[1])
    .unwrap();
    assert_eq!(zeroed.item().unwrap(), 0.0);
    let g = tape.grad(zeroed, &[lp]).unwrap()[0].value().to_vec();
    assert!(g.iter().all(|&v| v == 0.0));
    // a repeated label needs a blank between its copies: "aa" fits 3 frames only as "a-a"
    let aa = ctc_loss(lp, &[vec![1, 1]], &[3]).unwrap().item().unwrap();
    assert!(close(aa, -(0.3f64 * 0.5 * 0.3).ln() / 2.0));
}

#[test]
fn bce_saturates_at_the_clamp_with_finite_gradients() {
    let tape = Tape::<f64>::new();
    let p = tape.var(Tensor::from_vec(vec![1.0, 0.0], [2]).unwrap());
    let y = tape.var(Tensor::from_vec(vec![0.0, 1.0], [2]).unwrap());
    let l = BceLoss {
        reduction: Reduction::Sum,
        ..Default::default()
    }
    .forward(p, y)
    .unwrap();
    assert_eq!(l.item().unwrap(), 200.0);
    let g = tape.grad(l, &[p, y]).unwrap();
    // PyTorch's clamped gradient (p - y)/max(p(1-p), 1e-12) = ±1e12; the target's is the
    // difference of the clamped logs, ±100
    assert_eq!(g[0].value().to_vec(), vec![1e12, -1e12]);
    assert_eq!(g[1].value().to_vec(), vec![-100.0, 100.0]);
}

/// `-log softmax(x)[t]` and its gradient `softmax(x) - onehot(t)`, by a stable closed form
/// in f64 (the max subtracted before `exp`).
fn ce_closed_form(row: &[f64], t: usize) -> (f64, Vec<f64>) {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
    let loss = m + z.ln() - row[t];
    let g = row
        .iter()
        .enumerate()
        .map(|(i, v)| (v - m).exp() / z - if i == t { 1.0 } else { 0.0 })
        .collect();
    (loss, g)
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

/// Logits of magnitude 1e4: `exp` overflows in both f32 (past ~88) and f64 (past ~709), so
/// an unshifted formula would give inf or NaN. Values and gradients must be finite and equal
/// the stable closed forms.
fn extreme_logits_match_closed_forms<T: Float>() {
    let big = [1e4, -1e4, 0.0, -1e4, 1e4, 5e3];
    let lab = [1.0, 0.0, 1.0, 1.0, 0.0, 0.5];
    let tape = Tape::<T>::new();
    let of = |v: &[f64]| Tensor::from_vec(v.iter().map(|&x| T::of(x)).collect(), [2, 3]).unwrap();
    let x = tape.var(of(&big));
    let y = tape.constant(of(&lab));
    let tol = |want: f64| 1e-6 * want.abs().max(1.0);
    let check = |l: Var<'_, T>, want: f64, gwant: &[f64]| {
        let v = l.item().unwrap().as_f64();
        assert!((v - want).abs() <= tol(want), "{v} vs {want}");
        let g = tape.grad(l, &[x]).unwrap()[0].value();
        for (a, b) in g.as_slice().iter().zip(gwant) {
            assert!(
                a.is_finite() && (a.as_f64() - b).abs() <= tol(*b),
                "{a} vs {b}"
            );
        }
    };
    // cross-entropy, class targets [1, 0]: mean of the rows' closed forms
    let (l0, g0) = ce_closed_form(&big[..3], 1);
    let (l1, g1) = ce_closed_form(&big[3..], 0);
    let g: Vec<f64> = g0.iter().chain(&g1).map(|v| v / 2.0).collect();
    check(cross_entropy(x, &[1usize, 0]).unwrap(), (l0 + l1) / 2.0, &g);
    // nll of log_softmax: the same
    check(
        nll_loss(x.log_softmax(1).unwrap(), &[1usize, 0]).unwrap(),
        (l0 + l1) / 2.0,
        &g,
    );
    // BCE with logits: softplus(x) - x·y per element, gradient σ(x) - y
    let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
    let want: f64 = big
        .iter()
        .zip(lab)
        .map(|(&v, y)| softplus(v) - v * y)
        .sum::<f64>()
        / 6.0;
    let gw: Vec<f64> = big
        .iter()
        .zip(lab)
        .map(|(&v, y)| (sigmoid(v) - y) / 6.0)
        .collect();
    check(binary_cross_entropy_with_logits(x, y).unwrap(), want, &gw);
    // soft margin with labels ±1: softplus(-y·x), gradient -y·σ(-y·x)
    let signs = [1.0, -1.0, 1.0, -1.0, 1.0, 1.0];
    let s = tape.constant(of(&signs));
    let want: f64 = big
        .iter()
        .zip(signs)
        .map(|(&v, y)| softplus(-y * v))
        .sum::<f64>()
        / 6.0;
    let gw: Vec<f64> = big
        .iter()
        .zip(signs)
        .map(|(&v, y)| -y * sigmoid(-y * v) / 6.0)
        .collect();
    check(soft_margin_loss(x, s).unwrap(), want, &gw);
    // multi-label soft margin: per element softplus(x) - x·y over C, then the mean over N
    let want: f64 = big
        .iter()
        .zip(lab)
        .map(|(&v, y)| softplus(v) - v * y)
        .sum::<f64>()
        / 3.0
        / 2.0;
    let gw: Vec<f64> = big
        .iter()
        .zip(lab)
        .map(|(&v, y)| (sigmoid(v) - y) / 6.0)
        .collect();
    check(multilabel_soft_margin_loss(x, y).unwrap(), want, &gw);
    // label smoothing, probability targets and CTC over log_softmax stay finite too
    let frames = Tensor::from_vec(
        [
            1e4, -1e4, 0.0, -1e4, 1e4, 5e3, 0.0, 1e4, -1e4, 5e3, -1e4, 1e4,
        ]
        .iter()
        .map(|&v| T::of(v))
        .collect(),
        [4, 1, 3],
    )
    .unwrap();
    let z = tape.var(frames);
    let ctc = ctc_loss(z.log_softmax(-1).unwrap(), &[vec![1, 2]], &[4]).unwrap();
    assert!(ctc.item().unwrap().is_finite());
    let g = tape.grad(ctc, &[z]).unwrap()[0].value();
    assert!(g.first_non_finite().is_none(), "{g:?}");
    for l in [
        CrossEntropyLoss {
            label_smoothing: 0.1,
            ..Default::default()
        }
        .forward(x, &[1usize, 0])
        .unwrap(),
        CrossEntropyLoss::default().forward_probs(x, y).unwrap(),
        KlDivLoss::default()
            .forward(x.log_softmax(1).unwrap(), y)
            .unwrap(),
    ] {
        assert!(l.item().unwrap().is_finite());
        let g = tape.grad(l, &[x]).unwrap()[0].value();
        assert!(g.first_non_finite().is_none(), "{g:?}");
    }
}

#[test]
fn losses_are_exact_for_logits_of_magnitude_1e4_in_f32_and_f64() {
    extreme_logits_match_closed_forms::<f32>();
    extreme_logits_match_closed_forms::<f64>();
}

/// Asserts a loss error names `loss` and points at `line` of this file.
fn loss_error(e: Error, loss: &str, line: u32) {
    match &e {
        Error::Loss {
            loss: l, location, ..
        } => {
            assert_eq!(*l, loss, "{e}");
            assert_eq!((location.file(), location.line()), (file!(), line), "{e}");
        }
        other => panic!("expected a {loss} error, got {other}"),
    }
}

#[test]
fn bad_inputs_are_loss_errors_at_the_callers_line() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&X, &[2, 3]));
    let y = tape.var(t(&Y, &[2, 3]));
    let wrong = tape.var(Tensor::zeros([3, 2]).unwrap());

    let line = line!() + 1;
    let e = cross_entropy(x, &[0usize, 3]).unwrap_err();
    loss_error(e, "cross_entropy", line);
    let line = line!() + 1;
    let e = cross_entropy(x, &[0usize]).unwrap_err();
    loss_error(e, "cross_entropy", line);
    let bad_weight = CrossEntropyLoss {
        weight: Some(Tensor::ones([4]).unwrap()),
        ..Default::default()
    };
    let line = line!() + 1;
    let e = bad_weight.forward(x, &[0usize, 1]).unwrap_err();
    loss_error(e, "cross_entropy", line);
    let l = CrossEntropyLoss {
        label_smoothing: 1.5,
        ..Default::default()
    };
    let line = line!() + 1;
    let e = l.forward(x, &[0usize, 1]).unwrap_err();
    loss_error(e, "cross_entropy", line);
    let probs = CrossEntropyLoss::default();
    let line = line!() + 1;
    let e = probs.forward_probs(x, wrong).unwrap_err();
    loss_error(e, "cross_entropy", line);
    // a negative class that is not the ignore_index
    let line = line!() + 1;
    let e = nll_loss(x, &[0i64, -3]).unwrap_err();
    loss_error(e, "nll_loss", line);
    assert!(e_msg(nll_loss(x, &[0i64, -3])).contains("class -3, out of range for 3 classes"));

    let line = line!() + 1;
    let e = mse_loss(x, wrong).unwrap_err();
    loss_error(e, "mse_loss", line);
    let l = HuberLoss {
        delta: 0.0,
        ..Default::default()
    };
    let line = line!() + 1;
    let e = l.forward(x, y).unwrap_err();
    loss_error(e, "huber_loss", line);
    let l = SmoothL1Loss {
        beta: -1.0,
        ..Default::default()
    };
    let line = line!() + 1;
    let e = l.forward(x, y).unwrap_err();
    loss_error(e, "smooth_l1_loss", line);
    let line = line!() + 1;
    let e = binary_cross_entropy(x, y).unwrap_err();
    loss_error(e, "binary_cross_entropy", line);
    let pw = BceWithLogitsLoss {
        pos_weight: Some(Tensor::ones([2]).unwrap()),
        ..Default::default()
    };
    let line = line!() + 1;
    let e = pw.forward(x, y).unwrap_err();
    loss_error(e, "binary_cross_entropy_with_logits", line);
    let line = line!() + 1;
    let e = hinge_embedding_loss(x, y).unwrap_err();
    loss_error(e, "hinge_embedding_loss", line);
    let line = line!() + 1;
    let e = cosine_embedding_loss(x, y, tape.constant(Tensor::ones([3]).unwrap())).unwrap_err();
    loss_error(e, "cosine_embedding_loss", line);
    let l = TripletMarginLoss {
        p: 0.0,
        ..Default::default()
    };
    let line = line!() + 1;
    let e = l.forward(x, y, y).unwrap_err();
    loss_error(e, "triplet_margin_loss", line);
    let line = line!() + 1;
    let e = kl_div(x, y.neg()).unwrap_err();
    loss_error(e, "kl_div", line);
    let line = line!() + 1;
    let e = gaussian_nll_loss(x, y, tape.constant(Tensor::ones([2, 2]).unwrap())).unwrap_err();
    loss_error(e, "gaussian_nll_loss", line);
    let line = line!() + 1;
    let e = gaussian_nll_loss(x, y, y).unwrap_err();
    loss_error(e, "gaussian_nll_loss", line);
    let cube = tape.var(Tensor::zeros([1, 2, 3]).unwrap());
    let line = line!() + 1;
    let e = multilabel_soft_margin_loss(cube, cube).unwrap_err();
    loss_error(e, "multilabel_soft_margin_loss", line);

    let lp = tape.var(Tensor::zeros([4, 2, 3]).unwrap());
    let line = line!() + 1;
    let e = ctc_loss(lp, &[vec![1], vec![0]], &[4, 4]).unwrap_err();
    loss_error(e, "ctc_loss", line);
    let line = line!() + 1;
    let e = ctc_loss(lp, &[vec![1], vec![2]], &[4, 5]).unwrap_err();
    loss_error(e, "ctc_loss", line);
    let line = line!() + 1;
    let e = ctc_loss(lp, &[vec![1]], &[4]).unwrap_err();
    loss_error(e, "ctc_loss", line);

    // operands from two tapes
    let other = Tape::<f64>::new();
    let line = line!() + 1;
    let e = mse_loss(x, other.var(t(&Y, &[2, 3]))).unwrap_err();
    loss_error(e, "mse_loss", line);
}

fn e_msg<T>(r: crate::Result<T>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loss_errors_read_well() {
    let tape = Tape::<f64>::new();
    let x = tape.var(t(&X, &[2, 3]));
    let msg = e_msg(cross_entropy(x, &[0usize, 3]));
    assert!(
        msg.starts_with("cross_entropy: target 1 is class 3, out of range for 3 classes (input shape [2, 3], at "),
        "{msg}"
    );
    assert!(msg.contains(file!()), "{msg}");
}

#[test]
fn anomaly_mode_points_at_the_loss_call() {
    // A NaN logit makes the loss's first op produce NaN; the op is recorded at the line
    // that called the loss, not inside nn.
    let tape = Tape::<f64>::new();
    tape.set_anomaly_mode(true);
    let x = tape.var(t(&[0.3, f64::NAN, 2.0, 0.7, -0.4, 1.1], &[2, 3]));
    let line = line!() + 1;
    let l = cross_entropy(x, &[2usize, 0]).unwrap();
    let e = l.backward().unwrap_err();
    match e {
        autograd::Error::Anomaly { location, .. } => {
            assert_eq!((location.file(), location.line()), (file!(), line), "{e}");
        }
        other => panic!("expected an anomaly, got {other}"),
    }
}
