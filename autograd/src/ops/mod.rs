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
//! | `conv.rs` | conv2d (stride, padding, dilation, groups), max_pool2d, avg_pool2d |
//! | `nn.rs` | softmax, log_softmax, glu, layer_norm (losses live in `nn::loss`) |

pub mod binary;
pub mod conv;
pub mod einsum;
pub mod index;
pub mod layout;
pub mod linalg;
pub mod nn;
pub mod norm;
pub mod reduce;
pub mod scan;
pub mod shape;
pub mod sort;
pub mod unary;

pub use binary::reduce_to_shape;
pub use conv::Conv2dArgs;
pub use einsum::EinsumProblem;
pub use layout::PadMode;
