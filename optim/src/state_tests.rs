//! Tests of the state format, loading and validation.

use super::*;
use crate::{Adam, NAdam, Optimizer, ParamGroup, Sgd};
use autograd::io::{Error as IoError, StoredDType};
use autograd::{Param, Tape};
use std::path::Path;

/// Two groups, three params; the last never gets a gradient.
fn setup<T: Float>(lr: f64) -> (Vec<Param<T>>, Optim<Adam, T>) {
    let ps: Vec<Param<T>> = [vec![0.5, -1.0, 2.0], vec![1.5], vec![7.0, 7.0]]
        .into_iter()
        .map(|v| {
            let n = v.len();
            Param::new(Tensor::from_vec(v.into_iter().map(T::of).collect(), [n]).unwrap())
        })
        .collect();
    let opt = Optim::with_groups(
        vec![
            ParamGroup::new(vec![ps[0].clone()], lr),
            ParamGroup::new(vec![ps[1].clone(), ps[2].clone()], lr / 2.0).with_weight_decay(0.1),
        ],
        Adam {
            amsgrad: true,
            ..Adam::default()
        },
    )
    .unwrap();
    (ps, opt)
}

/// L = Σ (p0³ − p0) + p1⁴ (not p2).
fn train<T: Float>(ps: &[Param<T>], opt: &mut dyn Optimizer, steps: usize) {
    for _ in 0..steps {
        opt.zero_grad();
        let tape = Tape::new();
        let a = tape.param(&ps[0]);
        let b = tape.param(&ps[1]);
        let loss = (a.powf(T::of(3.0)) - a).sum() + b.powf(T::of(4.0)).sum();
        loss.backward().unwrap();
        opt.step().unwrap();
    }
}

fn bits<T: Float>(ps: &[Param<T>]) -> Vec<u64> {
    ps.iter()
        .flat_map(|p| p.value().to_vec())
        .map(|x| x.as_f64().to_bits())
        .collect()
}

fn resume_through_file_is_bit_identical<T: Float>(tag: &str) {
    let (ps, mut opt) = setup::<T>(0.05);
    train(&ps, &mut opt, 14);
    let straight = bits(&ps);

    let (ps, mut opt) = setup::<T>(0.05);
    train(&ps, &mut opt, 6);
    let path = std::env::temp_dir().join(format!(
        "optim-state-{tag}-{}.safetensors",
        std::process::id()
    ));
    opt.save(&path).unwrap();
    let values: Vec<Tensor<T>> = ps.iter().map(|p| p.value()).collect();

    // "another process": fresh params (new ids) with the saved values, fresh optimiser
    let (ps2, mut opt2) = setup::<T>(9.0);
    for (p, v) in ps2.iter().zip(values) {
        p.set_value(v).unwrap();
    }
    opt2.load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(opt2.group_lrs(), vec![0.05, 0.025]);
    assert_eq!(opt2.groups()[1].weight_decay, Some(0.1));
    assert_eq!(opt2.step_count(), 6);
    assert_eq!(opt2.param_step(&ps2[0]), 6);
    assert!(opt2.state(&ps2[2]).is_none());
    train(&ps2, &mut opt2, 8);
    assert_eq!(
        bits(&ps2),
        straight,
        "resumed run differs from the uninterrupted one"
    );
}

#[test]
fn resume_through_a_file_is_bit_identical_in_f64_and_f32() {
    resume_through_file_is_bit_identical::<f64>("f64");
    resume_through_file_is_bit_identical::<f32>("f32");
}

#[test]
fn file_layout_is_as_documented() {
    let (ps, mut opt) = setup::<f64>(0.05);
    train(&ps, &mut opt, 2);
    let sd = StateDict::from_bytes(&opt.state_dict().unwrap().to_bytes().unwrap()).unwrap();
    let keys: Vec<&str> = sd.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "0.exp_avg",
            "0.exp_avg_sq",
            "0.max_exp_avg_sq",
            "1.exp_avg",
            "1.exp_avg_sq",
            "1.max_exp_avg_sq"
        ]
    );
    let m = |k: &str| sd.metadata.get(k).map(String::as_str);
    assert_eq!(m("format"), Some("gradlab.optim/v1"));
    assert_eq!(m("optimizer"), Some("adam"));
    assert_eq!(m("dtype"), Some("F64"));
    assert_eq!(m("step_count"), Some("2"));
    assert_eq!(m("groups"), Some("2"));
    assert_eq!(m("group.1.params"), Some("2"));
    assert_eq!(m("group.0.lr"), Some("0.05"));
    assert_eq!(m("group.0.weight_decay"), None);
    assert_eq!(m("group.1.weight_decay"), Some("0.1"));
    assert_eq!(
        (m("0.step"), m("1.step"), m("2.step")),
        (Some("2"), Some("2"), None)
    );
    assert_eq!(sd.tensors["0.exp_avg"].dims(), &[3]);
}

#[test]
fn scalar_state_is_stored_as_f64() {
    let p = Param::new(Tensor::from_vec(vec![1.0f32], [1]).unwrap());
    let mut opt = Optim::new(vec![p.clone()], 0.1, NAdam::default()).unwrap();
    p.set_grad(Some(Tensor::from_vec(vec![1.0f32], [1]).unwrap()))
        .unwrap();
    opt.step().unwrap();
    let sd = opt.state_dict().unwrap();
    assert_eq!(sd.tensors["0.exp_avg"].dtype(), StoredDType::F32);
    let mu = sd.tensors["0.mu_product"]
        .to_float::<f64>("0.mu_product")
        .unwrap();
    assert_eq!(mu.item().unwrap(), opt.state(&p).unwrap().mu_product);
}

/// The codec error inside an optim error.
fn io(e: &Error) -> &IoError {
    match e {
        Error::StateFile(inner) => inner,
        other => panic!("expected a state-file error, got {other}"),
    }
}

#[test]
fn mismatched_state_is_rejected_with_a_precise_error() {
    let (ps, mut opt) = setup::<f64>(0.05);
    train(&ps, &mut opt, 1);
    let good = opt.state_dict().unwrap();
    let before = opt.state_dict().unwrap();

    // another optimiser
    let p = Param::new(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]).unwrap());
    let mut sgd = Optim::new(vec![p], 0.1, Sgd::default()).unwrap();
    let e = sgd.load_state_dict(&good).unwrap_err();
    assert!(matches!(
        e,
        Error::StateKind {
            expected: "sgd",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "optimizer state: written by \"adam\", cannot load into \"sgd\""
    );

    // another layout
    let p = Param::new(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]).unwrap());
    let mut one_group = Optim::new(vec![p], 0.1, Adam::default()).unwrap();
    let e = one_group.load_state_dict(&good).unwrap_err();
    assert_eq!(
        e.to_string(),
        "optimizer state: groups is 2 in the file but 1 here"
    );

    // a missing and an unexpected tensor, named
    let mut sd = good.clone();
    sd.tensors.remove("1.exp_avg_sq");
    let e = opt.load_state_dict(&sd).unwrap_err();
    assert!(matches!(io(&e), IoError::Missing { name } if name == "1.exp_avg_sq"));
    assert_eq!(
        e.to_string(),
        "optimizer state: tensor \"1.exp_avg_sq\" is missing"
    );
    let mut sd = good.clone();
    sd.tensors.insert(
        "2.exp_avg".into(),
        StateTensor::F64(Tensor::zeros([2]).unwrap()),
    );
    let e = opt.load_state_dict(&sd).unwrap_err();
    assert!(matches!(io(&e), IoError::Unexpected { name } if name == "2.exp_avg"));

    // a wrong shape
    let mut sd = good.clone();
    sd.tensors.insert(
        "0.exp_avg".into(),
        StateTensor::F64(Tensor::zeros([2]).unwrap()),
    );
    let e = opt.load_state_dict(&sd).unwrap_err();
    assert_eq!(
        e.to_string(),
        "optimizer state: tensor \"0.exp_avg\" has shape [2], expected [3]"
    );

    // a wrong dtype: an f64 file into an f32 optimiser
    let (_, mut opt32) = setup::<f32>(0.05);
    let mut sd = good.clone();
    sd.metadata.insert("dtype".into(), "F32".into());
    let e = opt32.load_state_dict(&sd).unwrap_err();
    assert!(matches!(
        io(&e),
        IoError::DType {
            expected: StoredDType::F32,
            got: StoredDType::F64,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "optimizer state: tensor \"0.exp_avg\" is F64, expected F32"
    );

    // malformed bytes and metadata
    let e = Error::from(StateDict::from_bytes(b"not a safetensors file").unwrap_err());
    assert!(matches!(io(&e), IoError::Corrupt { .. }));
    let mut sd = good.clone();
    sd.metadata.insert("step_count".into(), "many".into());
    let e = opt.load_state_dict(&sd).unwrap_err();
    assert_eq!(
        e.to_string(),
        "optimizer state: metadata \"step_count\" = \"many\" does not parse as u64"
    );

    // a missing file names it
    let e = opt
        .load(Path::new("/nonexistent/optim.safetensors"))
        .unwrap_err();
    assert!(matches!(io(&e), IoError::Io { .. }));
    assert!(e
        .to_string()
        .starts_with("optimizer state: \"/nonexistent/optim.safetensors\": "));

    // failed loads changed nothing
    assert_eq!(opt.state_dict().unwrap(), before);
}

#[test]
fn loaded_values_are_validated_like_constructed_ones() {
    let (ps, mut opt) = setup::<f64>(0.05);
    train(&ps, &mut opt, 2);
    let good = opt.state_dict().unwrap();
    let before = opt.state_dict().unwrap();
    let reject = |sd: &StateDict, opt: &mut Optim<Adam, f64>| -> (String, f64) {
        match opt.load_state_dict(sd).unwrap_err() {
            Error::InvalidState { key, value, .. } => (key, value),
            other => panic!("expected InvalidState, got {other}"),
        }
    };
    let with_meta = |k: &str, v: &str| {
        let mut sd = good.clone();
        sd.metadata.insert(k.into(), v.into());
        sd
    };
    // group settings: as the constructor checks them
    for wd in ["-5.0", "NaN", "inf"] {
        let (key, _) = reject(&with_meta("group.1.weight_decay", wd), &mut opt);
        assert_eq!(key, "group.1.weight_decay");
    }
    let (key, value) = reject(&with_meta("group.0.lr", "-0.1"), &mut opt);
    assert_eq!((key.as_str(), value), ("group.0.lr", -0.1));
    let (key, _) = reject(&with_meta("group.0.momentum", "1.5"), &mut opt);
    assert_eq!(key, "group.0.momentum"); // Adam's β₁ must be in [0, 1)
                                         // step counts: past 2^53 (u64::MAX would wrap to 0 in release and turn the
                                         // parameters into NaN), or more updates for a parameter than optimiser steps
    let e = opt
        .load_state_dict(&with_meta("step_count", &u64::MAX.to_string()))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidState { key, .. } if key == "step_count"),
        "{e}"
    );
    let (key, _) = reject(&with_meta("0.step", "3"), &mut opt);
    assert_eq!(key, "0.step");
    let (key, _) = reject(&with_meta("0.step", "0"), &mut opt);
    assert_eq!(key, "0.step");
    // rule state: NaN moments, negative second moments, named with their parameter
    let mut sd = good.clone();
    sd.tensors.insert(
        "1.exp_avg".into(),
        StateTensor::F64(Tensor::from_vec(vec![f64::NAN], [1]).unwrap()),
    );
    assert_eq!(reject(&sd, &mut opt).0, "1.exp_avg");
    let mut sd = good.clone();
    sd.tensors.insert(
        "0.exp_avg_sq".into(),
        StateTensor::F64(Tensor::from_vec(vec![1.0, -1.0, 0.0], [3]).unwrap()),
    );
    assert_eq!(reject(&sd, &mut opt), ("0.exp_avg_sq".into(), -1.0));
    let e = opt.load_state_dict(&sd).unwrap_err();
    assert_eq!(
        e.to_string(),
        "optimizer state: 0.exp_avg_sq = -1 is invalid: must be finite and >= 0"
    );
    assert_eq!(opt.state_dict().unwrap(), before);
}

#[test]
fn every_rules_scalar_state_is_validated() {
    // NAdam's μ product must stay in (0, 1]: 1 − Π divides the update.
    let p = Param::new(Tensor::from_vec(vec![1.0f64], [1]).unwrap());
    let mut opt = Optim::new(vec![p.clone()], 0.1, NAdam::default()).unwrap();
    p.set_grad(Some(Tensor::from_vec(vec![1.0], [1]).unwrap()))
        .unwrap();
    opt.step().unwrap();
    let mut sd = opt.state_dict().unwrap();
    sd.tensors
        .insert("0.mu_product".into(), StateTensor::F64(Tensor::scalar(1.5)));
    let e = opt.load_state_dict(&sd).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidState { key, .. } if key == "0.mu_product"),
        "{e}"
    );
    // ASGD's η and μ
    let mut opt = Optim::new(vec![p.clone()], 0.1, crate::Asgd::default()).unwrap();
    p.set_grad(Some(Tensor::from_vec(vec![1.0], [1]).unwrap()))
        .unwrap();
    opt.step().unwrap();
    for (key, bad) in [("0.eta", -1.0), ("0.mu", 0.0), ("0.eta", f64::NAN)] {
        let mut sd = opt.state_dict().unwrap();
        sd.tensors
            .insert(key.into(), StateTensor::F64(Tensor::scalar(bad)));
        let e = opt.load_state_dict(&sd).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidState { key: k, .. } if k == key),
            "{e}"
        );
    }
}

#[test]
fn a_scheduler_resumes_with_the_optimizer_bit_for_bit() {
    use crate::{CosineAnnealingWarmRestarts, LrScheduler};
    let run = |split: Option<usize>| -> (Vec<u64>, Vec<f64>) {
        let (ps, mut opt) = setup::<f64>(0.05);
        let mut sched = CosineAnnealingWarmRestarts::new(&mut opt, 3, 2, 0.001).unwrap();
        let mut lrs = Vec::new();
        for k in 0..14 {
            if split == Some(k) {
                let path = std::env::temp_dir().join(format!(
                    "optim-sched-{}-{k}.safetensors",
                    std::process::id()
                ));
                opt.save_with_scheduler(&path, &sched).unwrap();
                let values: Vec<Tensor<f64>> = ps.iter().map(|p| p.value()).collect();
                // "another process": new params, optimiser and schedule, then load
                let (ps2, mut opt2) = setup::<f64>(1.0);
                for (p, v) in ps2.iter().zip(values) {
                    p.set_value(v).unwrap();
                }
                let mut sched2 = CosineAnnealingWarmRestarts::new(&mut opt2, 3, 2, 0.001).unwrap();
                opt2.load_with_scheduler(&path, &mut sched2).unwrap();
                std::fs::remove_file(&path).unwrap();
                assert_eq!(sched2.state(), sched.state());
                for _ in k..14 {
                    lrs.push(opt2.lr());
                    train(&ps2, &mut opt2, 1);
                    sched2.step(&mut opt2).unwrap();
                }
                return (bits(&ps2), lrs);
            }
            lrs.push(opt.lr());
            train(&ps, &mut opt, 1);
            sched.step(&mut opt).unwrap();
        }
        (bits(&ps), lrs)
    };
    let straight = run(None);
    for split in [1, 4, 9] {
        let resumed = run(Some(split));
        assert_eq!(resumed.0, straight.0, "parameters, split at {split}");
        assert_eq!(
            resumed.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            straight.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "rates, split at {split}"
        );
    }
}

#[test]
fn a_bad_scheduler_state_leaves_optimizer_and_scheduler_unchanged() {
    use crate::{LrScheduler, StepLr};
    let (ps, mut opt) = setup::<f64>(0.05);
    let mut sched = StepLr::new(&mut opt, 2, 0.5).unwrap();
    train(&ps, &mut opt, 3);
    sched.step(&mut opt).unwrap();
    let path =
        std::env::temp_dir().join(format!("optim-badsched-{}.safetensors", std::process::id()));
    opt.save_with_scheduler(&path, &sched).unwrap();
    let mut sd = StateDict::load(&path).unwrap();
    sd.metadata
        .insert("scheduler.last_epoch".into(), u64::MAX.to_string());
    sd.save(&path).unwrap();

    let (_, mut opt2) = setup::<f64>(0.3);
    let mut sched2 = StepLr::new(&mut opt2, 2, 0.5).unwrap();
    let (opt_before, sched_before) = (opt2.state_dict().unwrap(), sched2.state());
    let e = opt2.load_with_scheduler(&path, &mut sched2).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidState { key, .. } if key == "scheduler.last_epoch"),
        "{e}"
    );
    assert_eq!(opt2.state_dict().unwrap(), opt_before);
    assert_eq!(sched2.state(), sched_before);
    // a file without schedule state is an error too, naming what is missing
    opt.save(&path).unwrap();
    let e = opt2.load_with_scheduler(&path, &mut sched2).unwrap_err();
    assert!(e.to_string().contains("scheduler.*"), "{e}");
    std::fs::remove_file(&path).unwrap();
}
