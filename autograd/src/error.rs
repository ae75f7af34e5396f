//! The crate's error type.
//!
//! Every variant names the op that failed, the operands involved and the caller's source
//! line, as fields, so tests can match on them and messages point at user code.

use std::fmt;
use std::panic::Location;

use crate::report::GradcheckReport;
use crate::tensor::Shape;

/// A source location recorded with `#[track_caller]`.
pub type Loc = &'static Location<'static>;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an anomaly was seen while computing values or gradients.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// The op's forward computation.
    Forward,
    /// The op's backward rule.
    Backward,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
        })
    }
}

/// Everything that can go wrong in `autograd`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- shapes ---
    /// Two shapes that should broadcast against each other do not.
    #[error("{op}: shapes {lhs} and {rhs} do not broadcast (at {location})")]
    Broadcast {
        /// The op.
        op: &'static str,
        /// Left operand's shape.
        lhs: Shape,
        /// Right operand's shape.
        rhs: Shape,
        /// Caller's source line.
        location: Loc,
    },
    /// A shape differs from the one the op needs.
    #[error("{op}: expected shape {expected}, got {got} (at {location})")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// The shape the op needs.
        expected: Shape,
        /// The shape it was given.
        got: Shape,
        /// Caller's source line.
        location: Loc,
    },
    /// The inner dimensions of a matrix product differ, or an operand has rank < 2.
    #[error("{op}: cannot multiply shapes {lhs} and {rhs} (at {location})")]
    Matmul {
        /// The op.
        op: &'static str,
        /// Left operand's shape (as seen by the product, after any transpose flag).
        lhs: Shape,
        /// Right operand's shape.
        rhs: Shape,
        /// Caller's source line.
        location: Loc,
    },
    /// An axis is out of range for the tensor's rank.
    #[error("{op}: axis {axis} is out of range for a tensor of shape {shape} (at {location})")]
    Axis {
        /// The op.
        op: &'static str,
        /// The axis given (negative counts from the end).
        axis: isize,
        /// The tensor's shape.
        shape: Shape,
        /// Caller's source line.
        location: Loc,
    },
    /// A shape, or a size computed from user arguments (a padded image, a window count), is
    /// too large: its element count overflows or exceeds
    /// [`MAX_NUMEL`](crate::tensor::MAX_NUMEL), or the system refused the allocation.
    #[error(
        "{op}: a tensor of shape {shape} is too large to represent or allocate (at {location})"
    )]
    TooLarge {
        /// The op.
        op: &'static str,
        /// The shape asked for (dimensions as given, never wrapped).
        shape: Shape,
        /// Caller's source line.
        location: Loc,
    },
    /// An argument is out of its valid range (an index, a slice bound, a kernel size...).
    #[error("{op}: {reason} (shape {shape}, at {location})")]
    InvalidArgument {
        /// The op.
        op: &'static str,
        /// What is wrong, in words.
        reason: String,
        /// The shape of the operand the argument applies to.
        shape: Shape,
        /// Caller's source line.
        location: Loc,
    },

    /// A numeric option is out of its valid range (a gradient check's step or tolerances).
    #[error("{op}: {name} = {value} is invalid: {reason} (at {location})")]
    InvalidOption {
        /// The call that takes the option.
        op: &'static str,
        /// The option's name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        reason: &'static str,
        /// Caller's source line.
        location: Loc,
    },

    /// An `einsum` equation that cannot be parsed, or does not fit its operands.
    #[error("einsum: {problem} in {equation:?} (at {location})")]
    Einsum {
        /// The equation as given.
        equation: String,
        /// What is wrong with it.
        problem: crate::ops::EinsumProblem,
        /// Caller's source line.
        location: Loc,
    },

    // --- autodiff ---
    /// Backward reached an op that has no backward rule.
    #[error(
        "{op}: has no backward rule, so no gradient can flow through it (recorded at {location})"
    )]
    NoBackward {
        /// The op.
        op: &'static str,
        /// Where the op was recorded.
        location: Loc,
    },
    /// A backward rule returned a gradient of the wrong shape or count.
    #[error("{op}: backward rule returned {reason} (recorded at {location})")]
    BadBackward {
        /// The op.
        op: &'static str,
        /// What was wrong with it.
        reason: String,
        /// Where the op was recorded.
        location: Loc,
    },
    /// Gradients without an explicit cotangent need a single-element output.
    #[error("{op}: the output has shape {shape}; gradients can be implicitly seeded only for a one-element output (at {location})")]
    NotScalar {
        /// The call (`backward` or `grad`).
        op: &'static str,
        /// The output's shape.
        shape: Shape,
        /// Caller's source line.
        location: Loc,
    },
    /// A gradient hook returned a gradient whose shape differs from its value's.
    #[error("{op}: the gradient hook registered at {hook} returned a gradient of shape {got} for a value of shape {expected} (value recorded at {location})")]
    HookShape {
        /// The op that recorded the hooked value (`"param"`, `"var"` for leaves).
        op: &'static str,
        /// Where the hook was registered.
        hook: Loc,
        /// The value's shape.
        expected: Shape,
        /// The shape of the gradient the hook returned.
        got: Shape,
        /// Where the hooked value was recorded.
        location: Loc,
    },
    /// An operation that needs a value with a gradient path got one without (a constant,
    /// a frozen parameter, a value computed under `no_grad`).
    #[error(
        "{op}: the value needs no gradient, so no gradient will ever reach it (at {location})"
    )]
    NoGradient {
        /// The call.
        op: &'static str,
        /// Caller's source line.
        location: Loc,
    },
    /// A `Var` from one tape was used with another.
    #[error("{op}: an operand belongs to another tape (at {location})")]
    ForeignVar {
        /// The op.
        op: &'static str,
        /// Caller's source line.
        location: Loc,
    },
    /// Anomaly mode saw the first NaN or infinity produced by an op.
    #[error("{op}: {phase} produced a non-finite value (NaN or inf) at element {index} of a tensor of shape {shape} (op recorded at {location})")]
    Anomaly {
        /// The op that produced it.
        op: &'static str,
        /// Forward value or backward gradient.
        phase: Phase,
        /// Flat index of the first non-finite element.
        index: usize,
        /// Shape of the offending tensor.
        shape: Shape,
        /// Where the op was recorded.
        location: Loc,
    },
    /// A gradient check failed; the report says where and by how much.
    #[error("{0}")]
    Gradcheck(Box<GradcheckReport>),
}

impl fmt::Debug for Error {
    // Debug forwards to Display so `unwrap()` and `?` in main print a readable message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// The source location the error points at, if it has one.
    pub fn location(&self) -> Option<Loc> {
        match self {
            Error::Broadcast { location, .. }
            | Error::ShapeMismatch { location, .. }
            | Error::Matmul { location, .. }
            | Error::Axis { location, .. }
            | Error::TooLarge { location, .. }
            | Error::InvalidArgument { location, .. }
            | Error::InvalidOption { location, .. }
            | Error::Einsum { location, .. }
            | Error::NoBackward { location, .. }
            | Error::BadBackward { location, .. }
            | Error::NotScalar { location, .. }
            | Error::ForeignVar { location, .. }
            | Error::HookShape { location, .. }
            | Error::NoGradient { location, .. }
            | Error::Anomaly { location, .. } => Some(location),
            Error::Gradcheck(_) => None,
        }
    }

    /// Re-points a shape error raised inside a kernel at the caller's line.
    ///
    /// Tensor kernels do not know who called them through the tape; the tape knows, and
    /// rewrites the location once, where the op is recorded.
    pub(crate) fn at(mut self, loc: Loc) -> Self {
        match &mut self {
            Error::Broadcast { location, .. }
            | Error::ShapeMismatch { location, .. }
            | Error::Matmul { location, .. }
            | Error::Axis { location, .. }
            | Error::TooLarge { location, .. }
            | Error::InvalidArgument { location, .. }
            | Error::Einsum { location, .. } => *location = loc,
            _ => {}
        }
        self
    }

    /// Renames the op of a shape or argument error to `op`: a composite op (softmax,
    /// stack, conv2d...) reports the call the user made, not the primitive inside it that
    /// failed. The location (already the user's line, through `#[track_caller]`) and the
    /// shapes are kept; errors about recorded ops' rules (backward, anomalies) are left alone.
    pub(crate) fn in_op(mut self, name: &'static str) -> Self {
        match &mut self {
            Error::Broadcast { op, .. }
            | Error::ShapeMismatch { op, .. }
            | Error::Matmul { op, .. }
            | Error::Axis { op, .. }
            | Error::TooLarge { op, .. }
            | Error::InvalidArgument { op, .. }
            | Error::ForeignVar { op, .. } => *op = name,
            _ => {}
        }
        self
    }

    #[track_caller]
    pub(crate) fn invalid(op: &'static str, reason: impl Into<String>, shape: &Shape) -> Self {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
            shape: shape.clone(),
            location: Location::caller(),
        }
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn error_stays_below_clippys_large_err_limit() {
        // Every fallible op returns Result<_, Error>; past 128 bytes clippy's
        // result_large_err fires in every user crate that returns our errors.
        assert!(std::mem::size_of::<super::Error>() < 128);
    }
}
