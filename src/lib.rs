//! gradlab: differentiable programming in Rust — a tape autograd ([`autograd`]), neural
//! network building blocks ([`nn`]) and PyTorch-exact optimisers ([`optim`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod guide;
pub mod metrics;
pub mod plot;
pub mod report;

/// The data sets, under their former path (the examples still import them from here).
pub mod datasets {
    pub use crate::data::{digits_path, DataError, Digits};
}

pub use autograd;
pub use nn;
pub use optim;

/// The names most programs need.
pub mod prelude {
    pub use autograd::{Param, Tape, Tensor, Var};
}

/// The README's example runs as a doc test, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
