//! gradlab: differentiable programming in Rust — a tape autograd ([`autograd`]), neural
//! network building blocks ([`nn`]) and PyTorch-exact optimisers ([`optim`]).
#![warn(missing_docs)]

pub use autograd;
pub use nn;
pub use optim;

/// The names most programs need.
pub mod prelude {
    pub use autograd::{Param, Tape, Tensor, Var};
}
