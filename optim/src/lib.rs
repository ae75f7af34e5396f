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
//! | `optimizer.rs` | [`Optimizer`] (object safe), [`UpdateRule`] + [`RuleState`], the driver [`Optim`], [`ParamGroup`], [`StepCx`] |
//! | `common.rs` | [`WeightDecay`], momentum step, `lerp`, bias correction, hyper-parameter checks |
//! | `sgd.rs` … `adadelta.rs` | one rule per file: [`Sgd`], [`Adagrad`], [`RmsProp`], [`Adam`], [`AdamW`], [`NAdam`], [`Adamax`], [`Adadelta`] |
//! | `schedule.rs` | [`LrScheduler`]: [`StepLr`], [`MultiStepLr`], [`ExponentialLr`], [`CosineAnnealingLr`], [`LinearLr`], [`ReduceLrOnPlateau`] |
//! | `clip.rs` | [`clip_grad_norm`], [`clip_grad_value`] |
//! | `state.rs` | [`StateDict`] and the safetensors state format |
//!
//! Writing a new optimiser is one [`UpdateRule`] impl (see `examples/custom_optimizer.rs`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
// `Error` wraps `autograd::Error` unboxed (transparent, as nn does), which puts it at
// clippy's 128-byte threshold; an error is built at most once per step, so the size is
// not worth an extra allocation and a less direct `?` from autograd calls.
#![allow(clippy::result_large_err)]

pub mod clip;
pub mod common;
mod error;
mod optimizer;
pub mod schedule;
pub mod state;

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod nadam;
mod rmsprop;
mod sgd;

#[cfg(test)]
mod testing;

pub use adadelta::{Adadelta, AdadeltaState};
pub use adagrad::{Adagrad, AdagradState};
pub use adam::{Adam, AdamState};
pub use adamax::{Adamax, AdamaxState};
pub use adamw::AdamW;
pub use clip::{clip_grad_norm, clip_grad_value};
pub use common::WeightDecay;
pub use error::{Error, Result};
pub use nadam::{NAdam, NAdamState};
pub use optimizer::{Optim, Optimizer, ParamGroup, RuleState, StepCx, UpdateRule};
pub use rmsprop::{RmsProp, RmsPropState};
pub use schedule::{
    CosineAnnealingLr, ExponentialLr, LinearLr, LrScheduler, MultiStepLr, PlateauConfig,
    PlateauMode, ReduceLrOnPlateau, StepLr, ThresholdMode,
};
pub use sgd::{Sgd, SgdState};
pub use state::{StateDict, StateTensor};
