//! Optimisers that match PyTorch step for step, learning-rate schedules, gradient clipping
//! and resumable optimiser state, over any set of [`autograd::Param`]s.
//!
//! ```
//! use autograd::{Param, Tape, Tensor};
//! use optim::{clip_grad_norm, Adam, CosineAnnealingLr, LrScheduler, Optim, Optimizer};
//!
//! let w = Param::new(Tensor::from_vec(vec![3.0f64, -2.0], [2])?);
//! let mut opt = Optim::new(vec![w.clone()], 0.1, Adam::default())?;
//! let mut sched = CosineAnnealingLr::new(&mut opt, 50, 0.0)?;
//! for _ in 0..50 {
//!     opt.zero_grad();
//!     let tape = Tape::new();
//!     tape.param(&w).square().sum().backward()?;   // L = |w|²
//!     clip_grad_norm(&[w.clone()], 1.0, 2.0)?;     // PyTorch's clip_grad_norm_
//!     opt.step()?;
//!     sched.step(&mut opt)?;
//! }
//! assert!(w.value().as_slice().iter().all(|x| x.abs() < 0.5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | file | what |
//! | --- | --- |
//! | `optimizer.rs` | [`Optimizer`] (object safe), [`ParamGroup`] |
//! | `rule.rs`, `driver.rs` | per-parameter rules: [`UpdateRule`] + [`RuleState`] + [`StepCx`], driven by [`Optim`] |
//! | `closure.rs` | loss-re-evaluating rules: [`ClosureRule`] + [`ClosureCx`], driven by [`ClosureOptim`] |
//! | `common.rs` | [`WeightDecay`], momentum step, `lerp`, bias correction, hyper-parameter and state checks |
//! | `sgd.rs` … `asgd.rs` | one rule per file: [`Sgd`], [`Adagrad`], [`RmsProp`], [`Adam`], [`AdamW`], [`NAdam`], [`RAdam`], [`Adamax`], [`Adadelta`], [`Rprop`], [`Asgd`] |
//! | `lbfgs/` | [`Lbfgs`] with its strong-Wolfe line search |
//! | `schedule/` | [`LrScheduler`] and every PyTorch schedule (see [`schedule`]) |
//! | `clip.rs` | [`clip_grad_norm`], [`clip_grad_value`] |
//! | `state.rs` | [`StateDict`] and the state file format |
//! | `testing/` | the test kit for new rules (feature `testing`) |
//!
//! Writing a new optimiser is one [`UpdateRule`] impl (see `examples/custom_optimizer.rs`),
//! or one [`ClosureRule`] impl when it must re-evaluate the loss; [`testing`] (feature
//! `testing`) checks it the way the built-in rules are checked.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod clip;
mod closure;
pub mod common;
mod driver;
mod error;
mod optimizer;
mod rule;
pub mod schedule;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod asgd;
mod lbfgs;
mod nadam;
mod radam;
mod rmsprop;
mod rprop;
mod sgd;

#[cfg(test)]
mod test_util;

pub use adadelta::{Adadelta, AdadeltaState};
pub use adagrad::{Adagrad, AdagradState};
pub use adam::{Adam, AdamState};
pub use adamax::{Adamax, AdamaxState};
pub use adamw::AdamW;
pub use asgd::{Asgd, AsgdState};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use closure::{ClosureCx, ClosureOptim, ClosureRule, GroupView};
pub use common::WeightDecay;
pub use driver::Optim;
pub use error::{ClosureError, Error, Result};
pub use lbfgs::{Lbfgs, LbfgsState, LineSearch};
pub use nadam::{NAdam, NAdamState};
pub use optimizer::{ClosureResult, Optimizer, ParamGroup};
pub use radam::RAdam;
pub use rmsprop::{RmsProp, RmsPropState};
pub use rprop::{Rprop, RpropState};
pub use rule::{RuleState, StepCx, UpdateRule};
pub use schedule::{
    Anneal, ChainedScheduler, ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, CyclicLr,
    CyclicMode, CyclicSettings, ExponentialLr, LambdaLr, LinearLr, LrScheduler, MultiStepLr,
    MultiplicativeLr, OneCycleLr, OneCycleSettings, PlateauConfig, PlateauMode, PolynomialLr,
    ReduceLrOnPlateau, SchedulerState, SequentialLr, StepLr, ThresholdMode,
};
pub use sgd::{Sgd, SgdState};
pub use state::{StateDict, StateTensor};
