//! The integration tests as one binary, one module per file (or directory): each test
//! binary compiled the generic code of autograd and nn for `f64` again, which was most of CI's
//! build time.

#[path = "checkpoint.rs"]
mod checkpoint;
#[path = "custom_module.rs"]
mod custom_module;
#[path = "layer_errors.rs"]
mod layer_errors;
#[path = "losses_prop.rs"]
mod losses_prop;
#[path = "module_api.rs"]
mod module_api;
#[path = "pytorch_layers/main.rs"]
mod pytorch_layers;
#[path = "pytorch_ops_extra.rs"]
mod pytorch_ops_extra;
#[path = "sequence_layers/main.rs"]
mod sequence_layers;
#[path = "state.rs"]
mod state;
