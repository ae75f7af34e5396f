//! The [`Op`] trait: one mechanism for built-in and user-defined differentiable operations.
//!
//! An op computes its output from input *values* (`forward`, no tape involved) and states
//! its vector-Jacobian product in terms of `Var` ops on the same tape (`backward`), so the
//! gradient is itself differentiable: grad-of-grad comes for free.
//!
//! ```
//! use autograd::{BackwardCx, Op, Result, Tape, Tensor, Var};
//!
//! /// y = x³, dy/dx = 3x².
//! #[derive(Debug)]
//! struct Cube;
//!
//! impl Op<f64> for Cube {
//!     fn name(&self) -> &'static str { "cube" }
//!     fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
//!         Ok(x[0].map(|v| v * v * v))
//!     }
//!     fn backward<'t>(&self, cx: &BackwardCx<'t, '_, f64>) -> Result<Vec<Option<Var<'t, f64>>>> {
//!         let x = cx.input(0);
//!         Ok(vec![Some(cx.grad().mul(x.square().mul_scalar(3.0))?)])
//!     }
//! }
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var(Tensor::scalar(2.0));
//! let y = tape.apply(Cube, &[x])?;
//! let dy = tape.grad(y, &[x])?[0];
//! assert_eq!(dy.item()?, 12.0);
//! # Ok::<(), autograd::Error>(())
//! ```

use std::fmt;

use smallvec::SmallVec;

use crate::error::{Error, Loc, Result};
use crate::tape::Tape;
use crate::tensor::{Float, Tensor};
use crate::var::Var;

/// A differentiable operation.
pub trait Op<T: Float>: fmt::Debug + 'static {
    /// Lower-case name used in errors and tape dumps ("exp", "matmul").
    fn name(&self) -> &'static str;

    /// Output value from input values. Never touches the tape.
    ///
    /// # Errors
    /// Whatever shape errors the op detects.
    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;

    /// Vector-Jacobian product: the gradient of each input given the output's gradient
    /// `cx.grad()`, written with `Var` ops so it can be differentiated again. `None` means
    /// no gradient flows to that input. The default has no rule: backward through the op
    /// then fails with [`Error::NoBackward`], never a silent zero.
    ///
    /// # Errors
    /// [`Error::NoBackward`] by default; shape errors of the ops used.
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Err(Error::NoBackward {
            op: self.name(),
            location: cx.location(),
        })
    }

    /// An optional fast path for first-order [`Var::backward`]: the same vector-Jacobian
    /// product as [`Op::backward`], on plain values, recording nothing. Return `None` (the
    /// default) to use `backward`; `Tape::grad` always uses `backward`. `needs[i]` says
    /// whether input `i` wants a gradient (a `None` there is then fine).
    ///
    /// Only the ops that dominate small-graph time implement it (elementwise arithmetic,
    /// the common activations, sums, 2-d matmul), and only for operands that do not
    /// broadcast; `autograd/tests/fast_path.rs` checks each against its `backward`.
    fn backward_values(
        &self,
        _inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
        _grad: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        None
    }
}

/// Gradients of an op's inputs as plain values (see [`Op::backward_values`]).
pub type ValueGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

/// What a backward rule can see: the op's inputs and output as `Var`s on the tape, and the
/// gradient flowing into the output.
pub struct BackwardCx<'t, 'a, T: Float> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) inputs: &'a [Var<'t, T>],
    pub(crate) output: Var<'t, T>,
    pub(crate) grad: Var<'t, T>,
    pub(crate) location: Loc,
}

impl<'t, T: Float> BackwardCx<'t, '_, T> {
    /// Input `i` of the op.
    ///
    /// # Panics
    /// If `i` is not below the op's number of inputs (a bug in the rule).
    pub fn input(&self, i: usize) -> Var<'t, T> {
        self.inputs[i]
    }

    /// All inputs.
    pub fn inputs(&self) -> &[Var<'t, T>] {
        self.inputs
    }

    /// The op's output.
    pub fn output(&self) -> Var<'t, T> {
        self.output
    }

    /// The gradient of the final result with respect to the op's output.
    pub fn grad(&self) -> Var<'t, T> {
        self.grad
    }

    /// The tape (to record constants).
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Where the op was recorded.
    pub fn location(&self) -> Loc {
        self.location
    }
}

/// A unary elementwise map with a closed-form derivative: implement this and wrap the
/// value in [`Unary`] to get a full [`Op`].
pub trait UnaryDerivative<T: Float>: fmt::Debug + Send + Sync + 'static {
    /// Name used in errors and dumps.
    const NAME: &'static str;
    /// The function, per element.
    fn f(&self, x: T) -> T;
    /// `dy/dx` as a `Var` expression of the input `x` and output `y` (so it can be
    /// differentiated again).
    ///
    /// # Errors
    /// Shape errors of the ops used (none for elementwise expressions).
    fn df<'t>(&self, x: Var<'t, T>, y: Var<'t, T>) -> Result<Var<'t, T>>;

    /// Whether [`UnaryDerivative::df_value`] is implemented (the first-order fast path).
    const HAS_DF_VALUE: bool = false;

    /// `dy/dx` per element from plain `x` and `y`, the same value as [`df`](Self::df);
    /// only called when `HAS_DF_VALUE` is true.
    fn df_value(&self, _x: T, _y: T) -> T {
        T::nan()
    }
}

/// Adapts a [`UnaryDerivative`] to an [`Op`]: forward maps `f`, backward is `g · df(x, y)`.
#[derive(Debug)]
pub struct Unary<U>(pub U);

impl<T: Float, U: UnaryDerivative<T>> Op<T> for Unary<U> {
    fn name(&self) -> &'static str {
        U::NAME
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].map(
            #[inline(always)]
            |v| self.0.f(v),
        ))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let d = self.0.df(cx.input(0), cx.output())?;
        Ok(vec![Some(cx.grad().mul(d)?)])
    }
    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        if !U::HAS_DF_VALUE {
            return None;
        }
        let d = x[0].zip3_map(
            y,
            g,
            #[inline(always)]
            |x, y, g| g * self.0.df_value(x, y),
        );
        Some(smallvec::smallvec![Some(d)])
    }
}
