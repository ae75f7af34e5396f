//! Unit tests of the schedules against their closed forms and PyTorch's rules; the parity
//! test against PyTorch's own sequences is `optim/tests/pytorch_extra.rs`.

use super::*;
use crate::{Optim, ParamGroup, Sgd};
use autograd::{Param, Tensor};
use std::f64::consts::PI;

/// An optimiser with two groups, base rates 0.1 and 0.02.
fn opt() -> Optim<Sgd> {
    let p = || Param::new(Tensor::<f64>::zeros([1]));
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
