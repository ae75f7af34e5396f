//! Tests of the driver: groups, skipping, validation.

use super::*;
use crate::{Adam, ParamGroup, Sgd};

fn param(v: &[f64]) -> Param<f64> {
    Param::new(Tensor::from_vec(v.to_vec(), [v.len()]).unwrap())
}

fn set_grad(p: &Param<f64>, g: &[f64]) {
    p.set_grad(Some(Tensor::from_vec(g.to_vec(), [g.len()]).unwrap()))
        .unwrap();
}

#[test]
fn params_without_grad_are_skipped_and_keep_no_state() {
    let (a, b) = (param(&[1.0, 2.0]), param(&[3.0]));
    let mut opt = Optim::new(vec![a.clone(), b.clone()], 0.5, Adam::default()).unwrap();
    set_grad(&a, &[1.0, -1.0]);
    opt.step().unwrap();
    assert_eq!(b.value().to_vec(), vec![3.0]);
    assert!(opt.state(&b).is_none());
    assert_eq!((opt.param_step(&a), opt.param_step(&b)), (1, 0));
    // Adam's first step moves each coordinate by lr·sign(g) (up to eps)
    let v = a.value().to_vec();
    assert!((v[0] - 0.5).abs() < 1e-7 && (v[1] - 2.5).abs() < 1e-7);
    // b's count starts when it first has a gradient, as PyTorch's state["step"]
    set_grad(&b, &[1.0]);
    opt.step().unwrap();
    assert_eq!(
        (opt.param_step(&a), opt.param_step(&b), opt.step_count()),
        (2, 1, 2)
    );
}

#[test]
fn groups_have_their_own_lr_and_weight_decay() {
    let (a, b) = (param(&[1.0]), param(&[1.0]));
    let sgd = Sgd {
        weight_decay: 0.5,
        ..Sgd::default()
    };
    let mut opt = Optim::with_groups(
        vec![
            ParamGroup::new(vec![a.clone()], 0.1),
            ParamGroup::new(vec![b.clone()], 0.01).with_weight_decay(0.0),
        ],
        sgd,
    )
    .unwrap();
    set_grad(&a, &[2.0]);
    set_grad(&b, &[2.0]);
    opt.step().unwrap();
    assert_eq!(a.value().to_vec(), vec![1.0 - 0.1 * (2.0 + 0.5)]); // rule's default decay
    assert_eq!(b.value().to_vec(), vec![1.0 - 0.01 * 2.0]); // group's override
    assert_eq!(opt.group_lrs(), vec![0.1, 0.01]);
    opt.set_lr(0.2).unwrap();
    assert_eq!(opt.group_lrs(), vec![0.2, 0.2]);
    opt.set_group_lr(1, 0.3).unwrap();
    assert_eq!((opt.lr(), opt.group_lrs()[1]), (0.2, 0.3));
}

#[test]
fn zero_grad_clears_every_gradient_and_add_param_group_extends() {
    let (a, b) = (param(&[1.0]), param(&[2.0]));
    let mut opt = Optim::new(vec![a.clone()], 0.1, Sgd::default()).unwrap();
    opt.add_param_group(ParamGroup::new(vec![b.clone()], 0.2))
        .unwrap();
    set_grad(&a, &[1.0]);
    set_grad(&b, &[1.0]);
    opt.zero_grad();
    assert!(a.grad().is_none() && b.grad().is_none());
    assert_eq!(opt.params().count(), 2);
    assert_eq!(opt.num_groups(), 2);
}

#[test]
fn optimizers_are_object_safe_and_generic_over_dtype() {
    let p32 = Param::new(Tensor::from_vec(vec![1.0f32, -1.0], [2]).unwrap());
    let p64 = param(&[1.0]);
    let mut opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Optim::new(vec![p32.clone()], 0.1, Adam::default()).unwrap()),
        Box::new(Optim::new(vec![p64.clone()], 0.1, Sgd::default()).unwrap()),
    ];
    p32.set_grad(Some(Tensor::from_vec(vec![1.0f32, -1.0], [2]).unwrap()))
        .unwrap();
    set_grad(&p64, &[1.0]);
    for o in &mut opts {
        o.step().unwrap();
    }
    assert_eq!(opts[0].name(), "adam");
    assert!((p32.value().to_vec()[0] - 0.9).abs() < 1e-6);
    assert_eq!(p64.value().to_vec(), vec![0.9]);
}

#[test]
fn construction_errors_name_the_problem() {
    let p = param(&[1.0]);
    let e = Optim::new(vec![p.clone()], -0.1, Sgd::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid lr -0.1: must be a finite number >= 0"
    );
    assert!(matches!(
        e,
        Error::InvalidHyperparameter { name: "lr", value, .. } if value == -0.1
    ));

    let e = Optim::<Sgd>::new(vec![], 0.1, Sgd::default()).unwrap_err();
    assert!(matches!(e, Error::EmptyParamList));
    assert_eq!(e.to_string(), "optimizer got an empty parameter list");

    let e = Optim::with_groups(
        vec![
            ParamGroup::new(vec![p.clone(), param(&[2.0])], 0.1),
            ParamGroup::new(vec![p.clone()], 0.1),
        ],
        Sgd::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::DuplicateParam { index: 2 }));
    assert_eq!(
        e.to_string(),
        "parameter at position 2 appears more than once in the optimizer"
    );

    let e = Optim::with_groups(
        vec![ParamGroup::new(vec![p.clone()], 0.1).with_weight_decay(-1.0)],
        Sgd::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid weight_decay -1: must be a finite number >= 0"
    );

    let mut opt = Optim::new(vec![p], 0.1, Sgd::default()).unwrap();
    let e = opt.set_group_lr(3, 0.1).unwrap_err();
    assert!(matches!(
        e,
        Error::NoSuchGroup {
            index: 3,
            groups: 1
        }
    ));
    assert_eq!(e.to_string(), "no parameter group 3: the optimizer has 1");
}

#[test]
fn every_rule_rejects_its_bad_hyperparameters() {
    use crate::{Adadelta, Adagrad, AdamW, Adamax, NAdam, RmsProp};
    let p = || vec![param(&[1.0])];
    let msg = |e: Error| e.to_string();
    let bad_beta = Adam {
        betas: (-0.1, 0.999),
        ..Adam::default()
    };
    assert_eq!(
        msg(Optim::new(p(), 0.1, bad_beta).unwrap_err()),
        "invalid betas.0 -0.1: must be in [0, 1)"
    );
    let bad_eps = AdamW {
        eps: -1e-8,
        ..AdamW::default()
    };
    assert_eq!(
        msg(Optim::new(p(), 0.1, bad_eps).unwrap_err()),
        "invalid eps -0.00000001: must be a finite number >= 0"
    );
    let bad = [
        Optim::new(
            p(),
            0.1,
            Sgd {
                momentum: -0.9,
                ..Sgd::default()
            },
        )
        .err(),
        Optim::new(
            p(),
            0.1,
            Sgd {
                dampening: 2.0,
                ..Sgd::default()
            },
        )
        .err(),
        Optim::new(
            p(),
            0.1,
            Adagrad {
                lr_decay: -1.0,
                ..Adagrad::default()
            },
        )
        .err(),
        Optim::new(
            p(),
            0.1,
            RmsProp {
                alpha: -0.5,
                ..RmsProp::default()
            },
        )
        .err(),
        Optim::new(
            p(),
            0.1,
            NAdam {
                betas: (0.9, 1.5),
                ..NAdam::default()
            },
        )
        .err(),
        Optim::new(
            p(),
            0.1,
            Adamax {
                weight_decay: f64::NAN,
                ..Adamax::default()
            },
        )
        .err(),
        Optim::new(
            p(),
            0.1,
            Adadelta {
                eps: f64::INFINITY,
                ..Adadelta::default()
            },
        )
        .err(),
    ];
    let names: Vec<&str> = bad
        .iter()
        .map(|e| match e {
            Some(Error::InvalidHyperparameter { name, .. }) => *name,
            other => panic!("expected InvalidHyperparameter, got {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "momentum",
            "dampening",
            "lr_decay",
            "alpha",
            "betas.1",
            "weight_decay",
            "eps"
        ]
    );
}

#[test]
fn setters_validate_as_constructors_do() {
    let (a, b) = (param(&[1.0]), param(&[2.0]));
    let mut opt = Optim::with_groups(
        vec![
            ParamGroup::new(vec![a.clone()], 0.1),
            ParamGroup::new(vec![b.clone()], 0.2),
        ],
        Adam::default(),
    )
    .unwrap();
    for bad in [f64::NAN, -0.1, f64::INFINITY] {
        let e = opt.set_lr(bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidHyperparameter { name: "lr", .. }),
            "{e}"
        );
        let e = opt.set_group_lr(1, bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidHyperparameter { name: "lr", .. }),
            "{e}"
        );
        let e = opt.set_group_initial_lr(0, bad).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidHyperparameter {
                    name: "initial_lr",
                    ..
                }
            ),
            "{e}"
        );
    }
    // Adam's momentum is β₁, which must stay in [0, 1)
    for bad in [1.0, -0.5, f64::NAN] {
        let e = opt.set_group_momentum(0, bad).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidHyperparameter {
                    name: "betas.0",
                    ..
                }
            ),
            "{e}"
        );
    }
    // nothing changed, and a step with a NaN rate never happened
    assert_eq!(opt.group_lrs(), vec![0.1, 0.2]);
    assert_eq!(opt.group_momentums(), vec![Some(0.9), Some(0.9)]);
    opt.set_group_momentum(1, 0.5).unwrap();
    assert_eq!(opt.group_momentums(), vec![Some(0.9), Some(0.5)]);
    // a rule without momentum or weight decay says so
    let mut plain = Optim::new(vec![param(&[1.0])], 0.1, Sgd::default()).unwrap();
    let e = plain.set_group_momentum(0, 0.9).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                optimizer: "sgd",
                ..
            }
        ),
        "{e}"
    );
    let e = Optim::with_groups(
        vec![ParamGroup::new(vec![param(&[1.0])], 0.1).with_weight_decay(0.1)],
        crate::Rprop::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "rprop: this rule has no weight decay to set");
}

#[test]
fn group_momentum_reaches_the_rule() {
    // SGD with momentum: group 1 overrides μ; a separate optimiser with that μ agrees.
    let sgd = |m| Sgd {
        momentum: m,
        ..Sgd::default()
    };
    let (a, b) = (param(&[1.0, -2.0]), param(&[1.0, -2.0]));
    let mut grouped = Optim::with_groups(
        vec![ParamGroup::new(vec![a.clone()], 0.1).with_momentum(0.5)],
        sgd(0.9),
    )
    .unwrap();
    let mut plain = Optim::new(vec![b.clone()], 0.1, sgd(0.5)).unwrap();
    for _ in 0..3 {
        set_grad(&a, &[1.0, 1.0]);
        set_grad(&b, &[1.0, 1.0]);
        grouped.step().unwrap();
        plain.step().unwrap();
    }
    assert_eq!(a.value().to_vec(), b.value().to_vec());
}

#[test]
fn a_parameter_cannot_change_shape_under_the_optimiser() {
    // Main's driver checked every gradient's shape before updating any parameter, for a
    // value reshaped through `Param::update` after backward. `Param::update` now lends a
    // `ParamMut` (elements, not the tensor) and `set_value` refuses another shape, so the
    // state the check guarded against cannot be built: the step goes through whole.
    let (a, b) = (param(&[1.0, 2.0]), param(&[3.0]));
    let mut opt = Optim::new(vec![a.clone(), b.clone()], 0.1, Sgd::default()).unwrap();
    set_grad(&a, &[1.0, 1.0]);
    set_grad(&b, &[1.0]);
    let e = b
        .set_value(Tensor::from_vec(vec![3.0, 4.0], [2]).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            &e,
            autograd::Error::ShapeMismatch {
                op: "set_value",
                ..
            }
        ),
        "{e}"
    );
    opt.step().unwrap();
    assert_eq!(a.value().to_vec(), vec![0.9, 1.9]);
    assert_eq!(b.value().to_vec(), vec![2.9]);
    assert_eq!(opt.step_count(), 1);
}
