//! Every built-in differentiable op: each file holds a family, and each op's forward, its
//! backward rule and its `Var` method sit together.
//!
//! | file | ops |
//! | --- | --- |
//! | `unary.rs` | neg, exp, ln, log1p, sqrt, rsqrt, square, recip, abs, powf, sin, cos, tanh, sigmoid, erf, relu, leaky_relu, elu, selu, gelu (erf, tanh), softplus, silu, clamp, scalar arithmetic |
//! | `binary.rs` | add, sub, mul, div, pow, maximum, minimum, where_cond (broadcasting); `reduce_to_shape` |
//! | `reduce.rs` | sum, mean, max, min, logsumexp, var over axes |
//! | `linalg.rs` | matmul (batched, transposed operands) |
//! | `shape.rs` | reshape, flatten, squeeze, unsqueeze, permute, transpose, broadcast_to, concat, stack |
//! | `index.rs` | gather_flat / scatter_add_flat, narrow, slice, index_select, gather |
//! | `conv.rs` | conv2d (stride, padding, dilation, groups), max_pool2d, avg_pool2d |
//! | `nn.rs` | softmax, log_softmax, cross_entropy, nll, mse, bce_with_logits, layer_norm |

pub mod binary;
pub mod conv;
pub mod index;
pub mod linalg;
pub mod nn;
pub mod reduce;
pub mod shape;
pub mod unary;

pub use binary::reduce_to_shape;
pub use conv::Conv2dArgs;
