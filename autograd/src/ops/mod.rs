//! Every built-in differentiable op: each file holds a family, and each op's forward, its
//! backward rule and its `Var` method sit together.
//!
//! | file | ops |
//! | --- | --- |
//! | `unary.rs` | neg, exp, ln, log1p, sqrt, rsqrt, square, recip, abs, powf, sin, cos, tanh, sigmoid, erf, relu, leaky_relu, elu, selu, gelu (erf, tanh), softplus, silu, mish, softsign, logsigmoid, hardtanh, clamp, scalar arithmetic |
//! | `binary.rs` | add, sub, mul, div, pow, maximum, minimum, where_cond (broadcasting); `reduce_to_shape` |
//! | `reduce.rs` | sum, mean, max, min, logsumexp, var, std over axes |
//! | `norm.rs` | vector_norm (any order), frobenius_norm, normalize, cosine_similarity |
//! | `scan.rs` | cumsum, cumprod |
//! | `sort.rs` | sort, topk, argmax, argmin, max_dim, min_dim (values with positions) |
//! | `linalg.rs` | matmul (batched, transposed operands) |
//! | `einsum.rs` | einsum, lowered to diagonal gathers, sums, permutes and batched matmul |
//! | `shape.rs` | reshape, flatten, squeeze, unsqueeze, permute, transpose, broadcast_to, concat, stack |
//! | `layout.rs` | pad (constant, reflect, replicate, circular), flip, roll, repeat, expand, tril, triu, masked_fill, split, chunk |
//! | `index.rs` | gather_flat / scatter_add_flat, narrow, slice, index_select, gather, scatter_add |
//! | `conv.rs` | conv1d, conv2d, conv_transpose1d, conv_transpose2d (stride, padding, dilation, groups, output_padding) |
//! | `conv2d_op.rs` | the conv2d op: kernels forward and first-order backward, composed `Var` rule |
//! | `conv_kernels.rs` | convolution arithmetic on buffers (im2col + GEMM, direct) and the algorithm setting |
//! | `pool.rs` | max_pool2d (with indices, dilation, ceil mode), avg_pool2d (both divisors), adaptive_avg_pool2d |
//! | `resample.rs` | upsample_nearest2d, upsample_bilinear2d |
//! | `nn.rs` | softmax, log_softmax, glu, layer_norm, group_norm, rms_norm (losses live in `nn::loss`) |

pub mod binary;
pub mod conv;
mod conv2d_op;
mod conv_kernels;
pub mod einsum;
pub mod index;
pub mod layout;
pub mod linalg;
pub mod nn;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resample;
pub mod scan;
pub mod shape;
pub mod sort;
pub mod unary;

pub use binary::reduce_to_shape;
pub use conv::{Conv1dArgs, Conv2dArgs, ConvTranspose1dArgs, ConvTranspose2dArgs};
pub use conv_kernels::{conv_algorithm, set_conv_algorithm, ConvAlgorithm};
pub use einsum::EinsumProblem;
pub use layout::PadMode;
pub use pool::{AvgPool2dArgs, MaxPool2dArgs};
