//! gradlab: differentiable programming in Rust — a tape autograd ([`autograd`]), neural
//! network building blocks ([`nn`]) and PyTorch-exact optimisers ([`optim`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod datasets;
pub mod guide;

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
