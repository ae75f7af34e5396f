//! The integration tests as one binary, one module per file: each test binary compiled the
//! generic code of autograd and optim for `f64` again, which was most of CI's build time.

#[path = "closure_rules.rs"]
mod closure_rules;
#[path = "kit.rs"]
mod kit;
#[path = "pytorch_extra.rs"]
mod pytorch_extra;
#[path = "pytorch_trajectories.rs"]
mod pytorch_trajectories;
