//! Property-testing support (feature `testing`): proptest strategies for shapes and
//! tensors, gradient checks that return [`TestCaseError`](proptest::test_runner::TestCaseError)
//! so failures shrink, and [`assert_close!`](crate::assert_close) with per-dtype tolerances.
//!
//! | file | what |
//! | --- | --- |
//! | `strategies.rs` | shapes, tensors, broadcast and matmul pairs, values away from kinks, distinct and positive values |
//! | `assert.rs` | [`check_gradients`], [`check_gradgrad`], [`assert_close!`](crate::assert_close) and its [`Tolerance`] defaults |
//! | `reference.rs` | reading PyTorch reference files (`op_gradients/v1` cases) and comparing against them |
//!
//! ```
//! use autograd::testing::{check_gradients, shapes, tensor};
//! use proptest::prelude::*;
//!
//! proptest!(|(x in tensor(shapes(1..=2, 1..=3)))| {
//!     // d/dx Σ sin(x) = cos(x), checked against finite differences
//!     check_gradients(|v| Ok(v[0].sin().sum()), &[x])?;
//! });
//! ```

pub mod assert;
pub mod reference;
pub mod strategies;

pub use assert::{
    check_gradgrad, check_gradgrad_with, check_gradients, check_gradients_with, AssertClose,
    Tolerance, FAST_MODE_NUMEL,
};
pub use strategies::{
    away_from, broadcast_pair, distinct, matmul_pair, positive, shapes, tensor, tensor_of,
    tensor_with, values, MatmulPair,
};
