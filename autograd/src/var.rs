//! [`Var`]: a `Copy` handle to a value on a tape, and the `std::ops` sugar on it.
//!
//! The op methods themselves live with their forward and backward rules in `ops/`.

use std::fmt;
use std::panic::Location;

use crate::error::Result;
use crate::op::{Op, Unary, UnaryDerivative};
use crate::tape::Tape;
use crate::tensor::{Float, Shape, Tensor};

/// A value recorded on a [`Tape`]: a tape reference and a node id, so it is `Copy` and
/// expressions read like maths.
///
/// Ops that cannot fail return `Var`; ops that can fail on shapes return `Result<Var>`.
#[derive(Clone, Copy)]
pub struct Var<'t, T: Float> {
    tape: &'t Tape<T>,
    id: usize,
}

impl<'t, T: Float> Var<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, id: usize) -> Self {
        Var { tape, id }
    }

    /// The tape this value lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The node's index on the tape.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The value (a cheap shared clone).
    pub fn value(&self) -> Tensor<T> {
        self.tape.value(self.id)
    }

    /// The shape of the value.
    pub fn shape(&self) -> Shape {
        self.tape.shape(self.id)
    }

    /// The dimensions of the value.
    pub fn dims(&self) -> Vec<usize> {
        self.shape().to_vec()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape().rank()
    }

    /// The value of a one-element var.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] when it has more than one element.
    #[track_caller]
    pub fn item(&self) -> Result<T> {
        self.value().item()
    }

    /// Whether a gradient can flow back through this value.
    pub fn requires_grad(&self) -> bool {
        self.tape.requires_grad(self.id)
    }

    /// The same value, cut off from the graph (no gradient flows through it).
    #[track_caller]
    pub fn detach(self) -> Self {
        Var::new(self.tape, self.tape.detach(self.id, Location::caller()))
    }

    /// Backpropagates from this one-element value, adding `d self / d p` into the gradient
    /// of every [`Param`](crate::Param) it depends on. The tape's recorded ops are kept, so
    /// `backward` can run again (gradients then add up, as in PyTorch).
    ///
    /// # Errors
    /// [`crate::Error::NotScalar`] when the value has more than one element;
    /// [`crate::Error::NoBackward`] when the path crosses an op without a backward rule;
    /// [`crate::Error::Anomaly`] in anomaly mode.
    #[track_caller]
    pub fn backward(self) -> Result<()> {
        self.tape.backward_from(self.id, None, Location::caller())
    }

    /// Like [`Var::backward`] with an explicit gradient for this value (any shape).
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] when `cotangent`'s shape differs; as
    /// [`Var::backward`] otherwise.
    #[track_caller]
    pub fn backward_with(self, cotangent: Tensor<T>) -> Result<()> {
        self.tape
            .backward_from(self.id, Some(cotangent), Location::caller())
    }

    /// Records `op` with this value as its only input: the entry point for elementwise
    /// maps defined by a [`UnaryDerivative`].
    #[track_caller]
    pub fn unary<U: UnaryDerivative<T>>(self, u: U) -> Self {
        self.infallible(Unary(u))
    }

    /// Records a binary op (used by the built-in ops; custom ops use [`Tape::apply`]).
    #[track_caller]
    pub(crate) fn binary<O: Op<T>>(self, op: O, rhs: Self) -> Result<Self> {
        self.tape.record(op, &[self, rhs], Location::caller())
    }

    /// Records a unary op that may fail on shapes.
    #[track_caller]
    pub(crate) fn apply1<O: Op<T>>(self, op: O) -> Result<Self> {
        self.tape.record(op, &[self], Location::caller())
    }

    /// `self · rhs` for operands known to have the same shape.
    #[track_caller]
    pub(crate) fn mul_same(self, rhs: Self) -> Self {
        self.binary(crate::ops::binary::Mul, rhs)
            .expect("internal: same-shape product")
    }

    /// `self + rhs` for operands known to have the same shape.
    #[track_caller]
    pub(crate) fn add_same(self, rhs: Self) -> Self {
        self.binary(crate::ops::binary::Add, rhs)
            .expect("internal: same-shape sum")
    }

    /// Records a unary op that cannot fail.
    #[track_caller]
    pub(crate) fn infallible<O: Op<T>>(self, op: O) -> Self {
        self.tape
            .record(op, &[self], Location::caller())
            .expect("internal: this op cannot fail")
    }
}

impl<T: Float> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var(#{} {:?})", self.id, self.value())
    }
}

macro_rules! binary_sugar {
    ($trait:ident, $method:ident, $scalar:ident) => {
        /// # Panics
        /// When the shapes do not broadcast, with the message of the `Result` method.
        impl<'t, T: Float> std::ops::$trait for Var<'t, T> {
            type Output = Var<'t, T>;
            #[track_caller]
            fn $method(self, rhs: Self) -> Self {
                match Var::$method(self, rhs) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }

        impl<'t, T: Float> std::ops::$trait<T> for Var<'t, T> {
            type Output = Var<'t, T>;
            #[track_caller]
            fn $method(self, rhs: T) -> Self {
                self.$scalar(rhs)
            }
        }
    };
}

binary_sugar!(Add, add, add_scalar);
binary_sugar!(Sub, sub, sub_scalar);
binary_sugar!(Mul, mul, mul_scalar);
binary_sugar!(Div, div, div_scalar);

impl<'t, T: Float> std::ops::Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn neg(self) -> Self {
        Var::neg(self)
    }
}

macro_rules! scalar_lhs_sugar {
    ($t:ty) => {
        impl<'t> std::ops::Add<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn add(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.add_scalar(self)
            }
        }
        impl<'t> std::ops::Sub<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn sub(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.rsub_scalar(self)
            }
        }
        impl<'t> std::ops::Mul<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn mul(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.mul_scalar(self)
            }
        }
        impl<'t> std::ops::Div<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn div(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                rhs.recip().mul_scalar(self)
            }
        }
    };
}

scalar_lhs_sugar!(f32);
scalar_lhs_sugar!(f64);
