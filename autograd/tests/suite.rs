//! The integration tests as one binary, one module per file: each test binary compiled
//! autograd's generic code for `f64` again, and eleven of them were most of CI's build time.
//! `allocations` (its own global allocator) and `overflow` (also run under the `overflow`
//! profile) stay binaries of their own.

/// Held by the tests that switch `autograd::set_conv_algorithm` (a process-wide setting),
/// so that each runs its convolutions under the algorithm it chose while the modules of
/// this binary run in parallel. (Other tests may record a convolution under either
/// algorithm: both compute the same function.)
pub(crate) static CONV_ALGORITHM: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[path = "custom_op.rs"]
mod custom_op;
#[path = "errors.rs"]
mod errors;
#[path = "fast_path.rs"]
mod fast_path;
#[path = "hooks.rs"]
mod hooks;
#[path = "layers_prop.rs"]
mod layers_prop;
#[path = "nan.rs"]
mod nan;
#[path = "ops_extra_prop.rs"]
mod ops_extra_prop;
#[path = "ops_prop.rs"]
mod ops_prop;
#[path = "pytorch_parity.rs"]
mod pytorch_parity;
#[path = "pytorch_transforms.rs"]
mod pytorch_transforms;
#[path = "tape.rs"]
mod tape;
