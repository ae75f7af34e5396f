//! Unit tests of the schedules against their closed forms and PyTorch's rules; the parity
//! test against PyTorch's own sequences is `optim/tests/pytorch_extra.rs`.

use super::*;
use crate::{Optim, ParamGroup, Sgd};
use autograd::{Param, Tensor};
use std::f64::consts::PI;

/// An optimiser with two groups, base rates 0.1 and 0.02.
fn opt() -> Optim<Sgd> {
    let p = || Param::new(Tensor::<f64>::zeros([1]).unwrap());
    Optim::with_groups(
        vec![
            ParamGroup::new(vec![p()], 0.1),
            ParamGroup::new(vec![p()], 0.02),
        ],
        Sgd::default(),
    )
    .unwrap()
}

const BASES: [f64; 2] = [0.1, 0.02];

/// Steps `s` for `epochs` epochs and checks every group's rate against `closed(e, base)`.
fn check(
    opt: &mut Optim<Sgd>,
    s: &mut dyn LrScheduler,
    epochs: u64,
    tol: f64,
    closed: impl Fn(u64, f64) -> f64,
) {
    for e in 0..=epochs {
        if e > 0 {
            s.step(opt).unwrap();
        }
        assert_eq!(s.last_epoch(), e);
        for (g, base) in BASES.iter().enumerate() {
            let (got, want) = (opt.group_lrs()[g], closed(e, *base));
            assert!(
                (got - want).abs() <= tol * base,
                "epoch {e} group {g}: {got} vs closed form {want}"
            );
            assert_eq!(s.last_lr()[g], got);
        }
    }
}

#[test]
fn step_lr_decays_every_step_size_epochs() {
    let mut o = opt();
    let mut s = StepLr::new(&mut o, 3, 0.3).unwrap();
    check(&mut o, &mut s, 20, 1e-15, |e, b| {
        b * 0.3f64.powi((e / 3) as i32)
    });
}

#[test]
fn multistep_lr_decays_at_milestones_counting_repeats() {
    let mut o = opt();
    let mut s = MultiStepLr::new(&mut o, vec![2, 5, 5], 0.1).unwrap();
    let hits = |e: u64| [2u64, 5, 5].iter().filter(|&&m| m <= e).count() as i32;
    check(&mut o, &mut s, 8, 1e-15, |e, b| b * 0.1f64.powi(hits(e)));
}

#[test]
fn exponential_lr_is_geometric() {
    let mut o = opt();
    let mut s = ExponentialLr::new(&mut o, 0.9).unwrap();
    check(&mut o, &mut s, 30, 1e-14, |e, b| b * 0.9f64.powi(e as i32));
}

#[test]
fn cosine_recursion_follows_the_closed_form_through_two_periods() {
    let mut o = opt();
    let eta_min = 0.001;
    let mut s = CosineAnnealingLr::new(&mut o, 10, eta_min).unwrap();
    check(&mut o, &mut s, 40, 1e-13, |e, b| {
        eta_min + (b - eta_min) * (1.0 + (PI * e as f64 / 10.0).cos()) / 2.0
    });
}

#[test]
fn cosine_reaches_eta_min_at_t_max() {
    let mut o = opt();
    let mut s = CosineAnnealingLr::new(&mut o, 4, 0.0).unwrap();
    for _ in 0..4 {
        s.step(&mut o).unwrap();
    }
    // (1 + cos π) is exactly 0, so the recursion lands exactly on eta_min
    assert_eq!(o.group_lrs(), vec![0.0, 0.0]);
}

#[test]
fn linear_warmup_ramps_then_holds() {
    let mut o = opt();
    let mut s = LinearLr::new(&mut o, 0.25, 1.0, 4).unwrap();
    assert_eq!(o.group_lrs(), vec![0.025, 0.005]); // epoch 0 = base · start_factor
    check(&mut o, &mut s, 10, 1e-15, |e, b| {
        b * (0.25 + 0.75 * e.min(4) as f64 / 4.0)
    });
}

#[test]
fn schedulers_drive_a_dyn_optimizer() {
    let mut o = opt();
    let dynamic: &mut dyn Optimizer = &mut o;
    let mut s = ExponentialLr::new(dynamic, 0.5).unwrap();
    s.step(dynamic).unwrap();
    assert_eq!(dynamic.group_lrs(), vec![0.05, 0.01]);
}

#[test]
fn plateau_reduces_after_patience_and_respects_cooldown_and_min_lr() {
    let mut o = opt();
    let config = PlateauConfig {
        patience: 2,
        factor: 0.5,
        cooldown: 1,
        min_lr: 0.03,
        ..PlateauConfig::default()
    };
    let mut s = ReduceLrOnPlateau::new(&o, config).unwrap();
    let metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95];
    let mut lrs = Vec::new();
    for m in metrics {
        s.step_with(&mut o, m).unwrap();
        lrs.push(o.group_lrs()[0]);
    }
    // improve, improve, bad 1, bad 2, bad 3 > patience → 0.05; cooldown epoch (bad reset),
    // bad 1, bad 2, bad 3 → max(0.025, min_lr 0.03) = 0.03
    assert_eq!(lrs, [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.03]);
    assert_eq!(s.best(), 0.9);
    // group 1 (0.02) is already below min_lr: max(0.01, 0.03) would raise it, and PyTorch
    // only applies a reduction (old - new > eps), so it stays.
    assert_eq!(o.group_lrs()[1], 0.02);
}

#[test]
fn plateau_max_mode_with_absolute_threshold() {
    let mut o = opt();
    let config = PlateauConfig {
        mode: PlateauMode::Max,
        threshold_mode: ThresholdMode::Abs,
        threshold: 0.1,
        patience: 0,
        ..PlateauConfig::default()
    };
    let mut s = ReduceLrOnPlateau::new(&o, config).unwrap();
    s.step_with(&mut o, 0.5).unwrap(); // first value improves on -inf
    assert_eq!(o.lr(), 0.1);
    s.step_with(&mut o, 0.55).unwrap(); // +0.05 is below the 0.1 threshold: bad → reduce
    assert_eq!(o.lr(), 0.1 * 0.1);
    s.step_with(&mut o, 0.7).unwrap(); // +0.2 improves
    assert_eq!(s.best(), 0.7);
    assert_eq!(s.num_bad_epochs(), 0);
}

#[test]
fn plateau_without_metric_is_an_error() {
    let mut o = opt();
    let mut s = ReduceLrOnPlateau::new(&o, PlateauConfig::default()).unwrap();
    let e = s.step(&mut o).unwrap_err();
    assert!(matches!(e, Error::MissingMetric { .. }));
    assert_eq!(
        e.to_string(),
        "ReduceLrOnPlateau: step called without a metric; call observe(metric) first"
    );
}

#[test]
fn bad_schedule_settings_are_rejected() {
    let mut o = opt();
    let msg = |e: Error| e.to_string();
    assert_eq!(
        msg(StepLr::new(&mut o, 0, 0.1).unwrap_err()),
        "invalid step_size 0: must be >= 1"
    );
    assert_eq!(
        msg(ExponentialLr::new(&mut o, -0.5).unwrap_err()),
        "invalid gamma -0.5: must be a finite number >= 0"
    );
    assert_eq!(
        msg(CosineAnnealingLr::new(&mut o, 0, 0.0).unwrap_err()),
        "invalid t_max 0: must be >= 1"
    );
    assert_eq!(
        msg(LinearLr::new(&mut o, 0.0, 1.0, 5).unwrap_err()),
        "invalid start_factor 0: must be in (0, 1]"
    );
    assert_eq!(
        msg(LinearLr::new(&mut o, 0.5, 1.5, 5).unwrap_err()),
        "invalid end_factor 1.5: must be in [0, 1]"
    );
    let bad = PlateauConfig {
        factor: 1.0,
        ..PlateauConfig::default()
    };
    assert_eq!(
        msg(ReduceLrOnPlateau::new(&o, bad).unwrap_err()),
        "invalid factor 1: must be in [0, 1)"
    );
    // a failed constructor leaves the rates alone
    assert_eq!(o.group_lrs(), vec![0.1, 0.02]);
}

#[test]
fn cosine_with_a_huge_t_max_stays_finite_and_positive() {
    // t_max near u64::MAX once cast to i64 negative (and 2·t_max overflowed)
    for t_max in [u64::MAX, u64::MAX / 2 + 1, i64::MAX as u64 + 7] {
        let mut o = opt();
        let mut s = CosineAnnealingLr::new(&mut o, t_max, 0.001).unwrap();
        for _ in 0..5 {
            s.step(&mut o).unwrap();
        }
        for (lr, base) in o.group_lrs().into_iter().zip(BASES) {
            // π·5/t_max is ~0, so the rate has barely moved from its base
            assert!(
                lr.is_finite() && (lr - base).abs() < 1e-12,
                "t_max {t_max}: {lr}"
            );
        }
    }
}

#[test]
fn new_schedules_follow_their_closed_forms() {
    let mut o = opt();
    let mut s = ConstantLr::new(&mut o, 0.5, 3).unwrap();
    check(
        &mut o,
        &mut s,
        8,
        1e-15,
        |e, b| if e < 3 { b * 0.5 } else { b },
    );

    let mut o = opt();
    let mut s = PolynomialLr::new(&mut o, 4, 2.0).unwrap();
    check(&mut o, &mut s, 8, 1e-14, |e, b| {
        b * (1.0 - e.min(4) as f64 / 4.0).powi(2)
    });

    let mut o = opt();
    let mut s = CosineAnnealingWarmRestarts::new(&mut o, 2, 2, 0.0).unwrap();
    // cycles of 2, 4, 8: restarts at e = 2 and 6
    check(&mut o, &mut s, 12, 1e-14, |e, b| {
        let (t_cur, t_i) = match e {
            0..=1 => (e, 2),
            2..=5 => (e - 2, 4),
            _ => (e - 6, 8),
        };
        b * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
    });

    let mut o = opt();
    let mut s = LambdaLr::new(&mut o, |e| 1.0 / (e + 1) as f64).unwrap();
    check(&mut o, &mut s, 6, 1e-15, |e, b| b / (e + 1) as f64);

    let mut o = opt();
    let mut s = MultiplicativeLr::new(&mut o, |_| 0.5).unwrap();
    check(&mut o, &mut s, 6, 1e-15, |e, b| b * 0.5f64.powi(e as i32));
}

#[test]
fn one_cycle_and_cyclic_drive_the_momentum_and_need_one() {
    let p = Param::new(Tensor::<f64>::zeros([1]).unwrap());
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let mut o = Optim::new(vec![p.clone()], 0.1, sgd).unwrap();
    let mut s = OneCycleLr::new(&mut o, OneCycleSettings::new(1.0, 10)).unwrap();
    // max_lr/div_factor, through the cosine formula at pct 0 (as PyTorch, a few ulp off)
    assert!((o.lr() - 1.0 / 25.0).abs() < 1e-16);
    assert_eq!(o.group_momentums(), vec![Some(0.95)]);
    assert_eq!(o.group_initial_lrs(), vec![Some(0.04)]);
    for _ in 0..2 {
        s.step(&mut o).unwrap(); // the peak is at step 2 (0.3·10 − 1)
    }
    assert!((o.group_momentums()[0].unwrap() - 0.85).abs() < 1e-15);
    for _ in 2..10 {
        s.step(&mut o).unwrap();
    }
    let e = s.step(&mut o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                optimizer: "OneCycleLr",
                ..
            }
        ),
        "{e}"
    );

    // plain SGD has no momentum to cycle
    let mut plain = Optim::new(vec![p.clone()], 0.1, Sgd::default()).unwrap();
    let e = CyclicLr::new(&mut plain, CyclicSettings::new(0.01, 0.1)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                optimizer: "CyclicLr",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(plain.lr(), 0.1); // a failed constructor changes nothing
                                 // without momentum cycling it works
    let s = CyclicLr::new(
        &mut plain,
        CyclicSettings {
            cycle_momentum: false,
            ..CyclicSettings::new(0.01, 0.1)
        },
    );
    assert!(s.is_ok());
    assert_eq!(plain.lr(), 0.01);
}

#[test]
fn bad_settings_of_the_new_schedules_are_rejected() {
    let mut o = opt();
    let msg = |e: Error| e.to_string();
    assert_eq!(
        msg(ConstantLr::new(&mut o, 0.0, 3).unwrap_err()),
        "invalid factor 0: must be in (0, 1]"
    );
    assert_eq!(
        msg(PolynomialLr::new(&mut o, 0, 1.0).unwrap_err()),
        "invalid total_iters 0: must be >= 1"
    );
    assert_eq!(
        msg(PolynomialLr::new(&mut o, 5, f64::NAN).unwrap_err()),
        "invalid power NaN: must be a finite number >= 0"
    );
    assert_eq!(
        msg(CosineAnnealingWarmRestarts::new(&mut o, 0, 1, 0.0).unwrap_err()),
        "invalid T_0 0: must be >= 1"
    );
    assert_eq!(
        msg(CosineAnnealingLr::new(&mut o, 10, -1.0).unwrap_err()),
        "invalid eta_min -1: must be a finite number >= 0"
    );
    let one = |f: fn(&mut OneCycleSettings)| {
        let mut s = OneCycleSettings::new(1.0, 10);
        f(&mut s);
        s
    };
    let mut sgd = Optim::new(
        vec![Param::new(Tensor::<f64>::zeros([1]).unwrap())],
        0.1,
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
    )
    .unwrap();
    for (settings, name) in [
        (one(|s| s.total_steps = 0), "total_steps"),
        (one(|s| s.pct_start = 1.5), "pct_start"),
        (one(|s| s.pct_start = 0.1), "pct_start"), // 0.1·10 − 1 = 0: a zero-length phase
        (one(|s| s.div_factor = 0.0), "div_factor"),
        (one(|s| s.max_lr = f64::NAN), "max_lr"),
    ] {
        let e = OneCycleLr::new(&mut sgd, settings).unwrap_err();
        assert!(
            matches!(e, Error::InvalidHyperparameter { name: n, .. } if n == name),
            "{e}"
        );
    }
    let e = CyclicLr::new(
        &mut sgd,
        CyclicSettings {
            step_size_up: 0,
            ..CyclicSettings::new(0.01, 0.1)
        },
    )
    .unwrap_err();
    assert_eq!(msg(e), "invalid step_size_up 0: must be >= 1");
    // a closure returning NaN is a rate error at the step, and the rate is kept
    let mut o = opt();
    let mut s = LambdaLr::new(&mut o, |e| if e < 2 { 1.0 } else { f64::NAN }).unwrap();
    s.step(&mut o).unwrap();
    let e = s.step(&mut o).unwrap_err();
    assert!(
        matches!(e, Error::InvalidHyperparameter { name: "lr", .. }),
        "{e}"
    );
    assert_eq!(o.group_lrs(), BASES.to_vec());
    assert_eq!(s.last_epoch(), 1);
}

#[test]
fn combined_schedules_reject_plateau_and_bad_milestones() {
    let mut o = opt();
    let plateau = ReduceLrOnPlateau::new(&o, PlateauConfig::default()).unwrap();
    let e = ChainedScheduler::new(&o, vec![Box::new(plateau)]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                optimizer: "ChainedScheduler",
                ..
            }
        ),
        "{e}"
    );
    let a = ExponentialLr::new(&mut o, 0.9).unwrap();
    let b = ExponentialLr::new(&mut o, 0.8).unwrap();
    let e = SequentialLr::new(&mut o, vec![Box::new(a), Box::new(b)], vec![]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidHyperparameter {
                name: "milestones",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn scheduler_state_round_trips_and_rejects_foreign_or_bad_state() {
    let mut o = opt();
    let mut s = CosineAnnealingWarmRestarts::new(&mut o, 3, 2, 0.0).unwrap();
    for _ in 0..5 {
        s.step(&mut o).unwrap();
    }
    let state = s.state();
    let mut o2 = opt();
    let mut t = CosineAnnealingWarmRestarts::new(&mut o2, 3, 2, 0.0).unwrap();
    t.load_state(&state).unwrap();
    assert_eq!(
        (t.t_cur(), t.t_i(), t.last_epoch()),
        (s.t_cur(), s.t_i(), 5)
    );
    // another scheduler's state
    let step = StepLr::new(&mut o2, 2, 0.5).unwrap();
    let e = t.load_state(&step.state()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::StateKind {
                expected: "CosineAnnealingWarmRestarts",
                ..
            }
        ),
        "{e}"
    );
    // T_cur past T_i
    let mut bad = state.clone();
    bad.put_u64("T_cur", 100);
    let e = t.load_state(&bad).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidState { key, .. } if key == "scheduler.T_cur"),
        "{e}"
    );
    // a NaN base rate
    let mut bad = state.clone();
    bad.put_f64s("base_lrs", &[f64::NAN, 0.1]);
    let e = t.load_state(&bad).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidState { key, .. } if key == "scheduler.base_lrs"),
        "{e}"
    );
    assert_eq!(t.state(), state); // failed loads changed nothing
}
