//! The test kit (`optim::testing`) on every built-in rule, where it must find nothing, and
//! on deliberately broken rules, where it must name what is broken.

use autograd::{DType, Float, ParamMut, Tensor};
use optim::testing::{Check, Kit, Outcome};
use optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Lbfgs, LineSearch, NAdam, RAdam, RmsProp, Rprop,
    RuleState, Sgd, StepCx, UpdateRule,
};

fn reference(name: &str) -> String {
    let path = autograd::testing::reference::reference_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_kit_finds_nothing_wrong_with_any_built_in_rule() {
    let momentum = Sgd {
        momentum: 0.9,
        dampening: 0.1,
        weight_decay: 0.01,
        ..Sgd::default()
    };
    let nesterov = Sgd {
        momentum: 0.9,
        nesterov: true,
        ..Sgd::default()
    };
    let centered = RmsProp {
        centered: true,
        momentum: 0.5,
        ..RmsProp::default()
    };
    let amsgrad = Adam {
        amsgrad: true,
        weight_decay: 0.01,
        ..Adam::default()
    };
    let radam = RAdam {
        weight_decay: 0.01,
        decoupled_weight_decay: true,
        ..RAdam::default()
    };
    // t0 = 3, so averaging starts within the 20 steps
    let asgd = Asgd {
        t0: 3.0,
        ..Asgd::default()
    };
    let wolfe = Lbfgs {
        line_search_fn: Some(LineSearch::StrongWolfe),
        history_size: 4,
        ..Lbfgs::default()
    };
    let up = |mut r: Sgd| {
        r.maximize = true;
        r
    };
    let reports = vec![
        Kit::new(Sgd::default())
            .maximizing(up(Sgd::default()))
            .run(),
        Kit::new(momentum.clone()).maximizing(up(momentum)).run(),
        Kit::new(nesterov.clone()).maximizing(up(nesterov)).run(),
        Kit::new(Adagrad::default())
            .maximizing(Adagrad {
                maximize: true,
                ..Adagrad::default()
            })
            .run(),
        Kit::new(centered.clone())
            .maximizing(RmsProp {
                maximize: true,
                ..centered
            })
            .run(),
        Kit::new(amsgrad.clone())
            .maximizing(Adam {
                maximize: true,
                ..amsgrad
            })
            .trajectory(
                reference("optim_trajectories.json"),
                "adam_amsgrad_wd/quartic",
            )
            .run(),
        Kit::new(AdamW::default())
            .maximizing(AdamW {
                maximize: true,
                ..AdamW::default()
            })
            .run(),
        Kit::new(NAdam::default())
            .maximizing(NAdam {
                maximize: true,
                ..NAdam::default()
            })
            .run(),
        Kit::new(radam.clone())
            .maximizing(RAdam {
                maximize: true,
                ..radam.clone()
            })
            .trajectory(
                reference("optim_extra.json"),
                "radam_decoupled_wd/rosenbrock",
            )
            .run(),
        Kit::new(Adamax::default())
            .maximizing(Adamax {
                maximize: true,
                ..Adamax::default()
            })
            .run(),
        Kit::new(Adadelta::default())
            .lr(1.0)
            .maximizing(Adadelta {
                maximize: true,
                ..Adadelta::default()
            })
            .run(),
        Kit::new(Rprop::default())
            .maximizing(Rprop {
                maximize: true,
                ..Rprop::default()
            })
            .trajectory(reference("optim_extra.json"), "rprop/quartic")
            .run(),
        Kit::new(asgd.clone())
            .maximizing(Asgd {
                maximize: true,
                ..asgd
            })
            .run(),
        Kit::closure(Lbfgs::default())
            .lr(0.1)
            .maximizing(Lbfgs {
                maximize: true,
                ..Lbfgs::default()
            })
            .run(),
        Kit::closure(wolfe.clone())
            .lr(1.0)
            .maximizing(Lbfgs {
                maximize: true,
                ..wolfe
            })
            .run(),
    ];
    for r in &reports {
        println!("{r}");
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| r.to_string())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Every check ran somewhere (only Groups is skipped, for LBFGS, and Trajectory where
    // no reference was given).
    for r in &reports {
        for (check, outcome) in &r.results {
            if let Outcome::Skipped(why) = outcome {
                assert!(
                    matches!(check, Check::Trajectory)
                        || (r.rule == "lbfgs" && *check == Check::Groups),
                    "{}: {check:?} skipped: {why}",
                    r.rule
                );
            }
        }
    }
}

/// Heavy-ball momentum, `b ← μb + g; p ← p − lr·b`, with one deliberate bug chosen by
/// `bug`.
#[derive(Clone, Debug)]
struct Momentum {
    bug: Bug,
    maximize: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    None,
    /// `RuleState::tensors` forgets the buffer, so it is neither saved nor loaded.
    StateNotSaved,
    /// The f32 path uses μ = 0.8 instead of 0.9.
    F32Path,
    /// `maximize` is a field, but `UpdateRule::maximize` is not overridden.
    MaximizeIgnored,
}

#[derive(Clone, Debug)]
struct MomentumState<T: Float> {
    buf: Tensor<T>,
    forget: bool,
}

impl<T: Float> RuleState<T> for MomentumState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        if self.forget {
            vec![]
        } else {
            vec![("buf", &self.buf)]
        }
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        if self.forget {
            vec![]
        } else {
            vec![("buf", &mut self.buf)]
        }
    }
}

impl<T: Float> UpdateRule<T> for Momentum {
    type State = MomentumState<T>;
    const NAME: &'static str = "momentum";

    fn maximize(&self) -> bool {
        self.maximize && self.bug != Bug::MaximizeIgnored
    }

    fn init(&self, p: &Tensor<T>) -> MomentumState<T> {
        MomentumState {
            buf: p.zeros_like(),
            forget: self.bug == Bug::StateNotSaved,
        }
    }

    fn update(
        &self,
        cx: &StepCx,
        p: &mut ParamMut<'_, T>,
        g: &Tensor<T>,
        s: &mut MomentumState<T>,
    ) -> optim::Result<()> {
        let mu = match (self.bug, T::DTYPE) {
            (Bug::F32Path, DType::F32) => T::of(0.8),
            _ => T::of(0.9),
        };
        s.buf.zip_mut_with(g, |b, g| *b = mu * *b + g)?;
        let lr = T::of(cx.lr);
        p.zip_mut_with(&s.buf, |p, b| *p -= lr * b)?;
        Ok(())
    }
}

fn check_momentum(bug: Bug) -> optim::testing::Report {
    Kit::new(Momentum {
        bug,
        maximize: false,
    })
    .maximizing(Momentum {
        bug,
        maximize: true,
    })
    .run()
}

/// The checks that failed, by name.
fn failed(r: &optim::testing::Report) -> Vec<Check> {
    r.failures().map(|(c, _)| c).collect()
}

#[test]
fn the_correct_momentum_rule_passes() {
    let r = check_momentum(Bug::None);
    assert!(r.is_ok(), "{r}");
}

#[test]
fn state_that_is_not_saved_is_caught_by_the_round_trip() {
    let r = check_momentum(Bug::StateNotSaved);
    assert_eq!(failed(&r), [Check::StateRoundTrip], "{r}");
    let why = r.failures().next().unwrap().1;
    assert!(why.contains("resumed run differs"), "{why}");
}

#[test]
fn a_wrong_f32_path_is_caught() {
    let r = check_momentum(Bug::F32Path);
    assert_eq!(failed(&r), [Check::F32MatchesF64], "{r}");
    let why = r.failures().next().unwrap().1;
    assert!(why.starts_with("step 2, element"), "{why}"); // μ enters at step 2
}

#[test]
fn an_ignored_maximize_is_caught() {
    let r = check_momentum(Bug::MaximizeIgnored);
    assert_eq!(failed(&r), [Check::Maximize], "{r}");
    let why = r.failures().next().unwrap().1;
    assert!(
        why.contains("maximizing L differs from minimizing -L"),
        "{why}"
    );
}

#[test]
fn a_trajectory_that_does_not_match_is_caught_and_located() {
    // Adam's defaults against the SGD reference case: the first step already differs.
    let r = Kit::new(Adam::default())
        .trajectory(reference("optim_trajectories.json"), "sgd/quartic")
        .run();
    assert_eq!(failed(&r), [Check::Trajectory], "{r}");
    let why = r.failures().next().unwrap().1;
    assert!(why.contains("after step 1"), "{why}");
    // an unknown case name is a failure naming it, not a panic
    let r = Kit::new(Adam::default())
        .trajectory(reference("optim_trajectories.json"), "no-such-case")
        .run();
    assert!(
        r.failures().next().unwrap().1.contains("no-such-case"),
        "{r}"
    );
}
