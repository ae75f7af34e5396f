//! Raw loops over contiguous buffers: GEMM, elementwise maps, reductions, gathers.
//!
//! | file | what |
//! | --- | --- |
//! | `gemm.rs` | matrix products through the GEMM crate |
//! | `elementwise.rs` | maps and broadcasting zips |
//! | `reduce.rs` | sums and arg-max/min over axes |
//! | `index.rs` | permutes, flat gathers and scatters (the basis of slicing, pooling, im2col) |
//! | `par.rs` | splitting maps, reductions and gathers into size-fixed pieces over the pool |
//! | `threads.rs` | the thread pool: run N chunks on this thread and spinning helpers |

pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod index;
pub(crate) mod par;
pub(crate) mod reduce;
pub(crate) mod threads;
