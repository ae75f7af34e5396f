//! Tensors and a reverse-mode tape with higher-order gradients and gradient checking.
//!
//! Record ops on a [`Tape`] through `Var` handles, then either call
//! [`backward`](Var::backward) (gradients land in each [`Param`]) or ask
//! [`Tape::grad`] for gradients as `Var`s that can be differentiated again.
//!
//! ```
//! use autograd::{gradcheck, GradcheckOptions, Param, Tape, Tensor};
//!
//! let w = Param::new(Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3, 1])?);
//! let tape = Tape::new();
//! let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?);
//! let y = x.matmul(tape.param(&w))?.tanh().sum();   // y = Σ tanh(x·w)
//! y.backward()?;                                    // dy/dw lands in w.grad()
//! assert_eq!(w.grad().unwrap().dims(), &[3, 1]);
//!
//! // second order: d/dx of (dy/dx)² through the same tape
//! let x = tape.var(Tensor::scalar(0.3));
//! let dx = tape.grad(x.sin().mul(x)?, &[x])?[0];     // sin x + x cos x
//! let ddx = tape.grad(dx, &[x])?[0];                 // 2 cos x - x sin x
//! assert!((ddx.item()? - (2.0 * 0.3f64.cos() - 0.3 * 0.3f64.sin())).abs() < 1e-12);
//!
//! // check a function's gradients against finite differences
//! let f = autograd::gradcheck::func(|v| Ok(v[0].sigmoid().mul(v[0])?.sum()));
//! gradcheck(&f, &[Tensor::from_vec(vec![0.1, -0.7], [2])?], &GradcheckOptions::default())?;
//! # Ok::<(), autograd::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod error;
pub mod gradcheck;
pub mod io;
#[cfg(feature = "ndarray")]
mod ndarray_interop;
pub mod op;
pub mod ops;
mod param;
pub mod report;
mod tape;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transforms;
mod var;

pub use error::{Error, Loc, Phase, Result};
pub use gradcheck::{gradcheck, gradgradcheck, GradcheckOptions};
pub use op::{BackwardCx, Op, Unary, UnaryDerivative, ValueGrads};
pub use ops::{
    conv_algorithm, set_conv_algorithm, AvgPool2dArgs, Conv1dArgs, Conv2dArgs, ConvAlgorithm,
    ConvTranspose1dArgs, ConvTranspose2dArgs, EinsumProblem, MaxPool2dArgs, PadMode,
};
pub use param::{HookHandle, Param, ParamId, ParamMut};
pub use report::GradcheckReport;
pub use tape::Tape;
pub use tensor::kernels::par::for_each_piece_mut;
pub use tensor::kernels::threads::{num_threads, set_num_threads, NUM_THREADS_ENV};
pub use tensor::pool::{
    buffer_cache_bytes, buffer_cache_limit, empty_buffer_cache, set_buffer_cache_limit,
    BUFFER_CACHE_ENV,
};
pub use tensor::{DType, Float, Shape, Tensor, MAX_NUMEL};
pub use var::Var;
