//! The crate's error type.
//!
//! Every variant names the layer, loss, initialiser or tensor involved as fields, so tests
//! can match on them and messages say what to fix. An error raised inside a module run
//! through [`Ctx::call`](crate::Ctx::call) comes wrapped in [`Error::Module`]: the layer
//! the user called, its path in the model and the user's line, around the original error
//! (an autograd error keeps its op and shapes).
//!
//! Policy (shared with `optim`): `autograd::Error` is wrapped unboxed, through `#[from]`;
//! a lower crate's error is carried, not translated (the state codec's
//! [`autograd::io::Error`] arrives as [`Error::State`]); variants with large payloads are
//! boxed, so `nn::Error` stays under clippy's `result_large_err` limit of 128 bytes (a size
//! test below keeps it so) and no crate needs `allow(clippy::result_large_err)`.

use std::fmt;
use std::panic::Location;

use autograd::{Loc, Shape};

use crate::module::ModuleId;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `nn`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the tape or a tensor op.
    #[error(transparent)]
    Autograd(#[from] autograd::Error),
    /// An error inside a module run through [`Ctx::call`](crate::Ctx::call), with the
    /// module's context; [`Error::innermost`] is the error itself.
    #[error("{0}")]
    Module(Box<ModuleError>),

    // --- configuration ---
    /// A layer, loss or initialiser was given an argument outside its valid range.
    #[error("{what}: {reason} (at {location})")]
    InvalidConfig {
        /// The layer, loss or initialiser.
        what: &'static str,
        /// What is wrong, in words.
        reason: String,
        /// The caller's line (the constructor call).
        location: Loc,
    },
    /// An initialiser cannot compute fans for (or otherwise fill) a tensor of this shape.
    #[error("{init}: {reason} (shape {shape}, at {location})")]
    Init {
        /// The initialiser.
        init: &'static str,
        /// What is wrong, in words.
        reason: String,
        /// The shape it was asked to fill.
        shape: Shape,
        /// The caller's line.
        location: Loc,
    },

    // --- inputs ---
    /// A layer was given an input of a shape it cannot take.
    #[error("{layer}: expected input {expected}, got shape {got} (at {location})")]
    InputShape {
        /// The layer.
        layer: &'static str,
        /// What it accepts, in words (`"[N, 784]"`, `"rank 4 (NCHW)"`).
        expected: String,
        /// The shape it was given.
        got: Shape,
        /// The caller's line (where the layer was called).
        location: Loc,
    },
    /// A loss was given inputs, targets or options it cannot use; names the loss the user
    /// called, the shape of its input and the line of the call.
    #[error("{loss}: {reason} (input shape {shape}, at {location})")]
    Loss {
        /// The loss (PyTorch's functional name: `cross_entropy`, `ctc_loss`, ...).
        loss: &'static str,
        /// What is wrong, in words.
        reason: String,
        /// The shape of the loss's (first) input.
        shape: Shape,
        /// The caller's source line.
        location: &'static std::panic::Location<'static>,
    },
    /// A value that should be a loss is not one (a `diagnose` loss closure returned a
    /// tensor with more than one element).
    #[error("{loss}: {reason}")]
    InvalidTarget {
        /// The loss.
        loss: &'static str,
        /// What is wrong, in words.
        reason: String,
    },

    // --- gradient checks ---
    /// [`gradcheck_module`](crate::gradcheck_module) substituted a parameter that the
    /// module never bound through [`Ctx::param`](crate::Ctx::param) (it binds it with
    /// `tape.param`, or does not use it), so that parameter's gradient was not checked.
    #[error("gradcheck_module: parameter `{name}` was substituted but never bound through `cx.param` (bound with `tape.param`, or unused?), so its gradient cannot be checked")]
    UnboundParameter {
        /// The parameter's hierarchical name.
        name: String,
    },
    /// [`gradcheck_module`](crate::gradcheck_module) found a wrong gradient.
    #[error("gradcheck_module: the gradient with respect to {checked} is wrong: {source}")]
    ModuleGradcheck {
        /// `"input 1"` or `"parameter fc.weight"`.
        checked: String,
        /// autograd's report (element, numerical vs analytical, culprit op).
        source: Box<autograd::Error>,
    },

    // --- state I/O ---
    /// Reading, writing or matching a state file failed: the tensor-file codec's error
    /// ([`autograd::io::Error`]), which names the file or the tensor (missing, unexpected,
    /// of another shape or element type, corrupt bytes, an I/O failure). Boxed, as optim's
    /// `StateFile`, to keep `Error` small.
    #[error("state: {0}")]
    State(Box<autograd::io::Error>),
    /// A generator's (random stream's) state in the file is malformed, missing while
    /// others are present, or has no generator in the module.
    #[error("state: generator `{name}`: {reason}")]
    StateGenerator {
        /// The generator's hierarchical name (`"3.generator"`).
        name: String,
        /// What is wrong, in words.
        reason: String,
    },
}

/// The context of an error raised inside a module run through
/// [`Ctx::call`](crate::Ctx::call).
pub struct ModuleError {
    /// The type of the module the error came out of (`"Linear"`).
    pub layer: &'static str,
    /// Its path in the model (`"blocks.1.fc2"`; `""` for the model itself), relative to
    /// the outermost module run through `cx.call`.
    pub path: String,
    /// Where it was called: the `cx.call` line in the caller's code.
    pub location: Loc,
    /// The error itself.
    pub source: Error,
    /// While the error propagates out of nested calls, `path` is relative to this module.
    pub(crate) anchor: Option<ModuleId>,
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "in {}", self.layer)?;
        } else {
            write!(f, "in {} `{}`", self.layer, self.path)?;
        }
        write!(f, " (called at {}): {}", self.location, self.source)
    }
}

impl fmt::Debug for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for Error {
    // Debug forwards to Display so `unwrap()` and `?` in main print a readable message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<autograd::io::Error> for Error {
    fn from(e: autograd::io::Error) -> Self {
        Error::State(Box::new(e))
    }
}

impl Error {
    /// The error without module context: the error itself for every variant but
    /// [`Error::Module`], whose wrapped error it returns.
    pub fn innermost(&self) -> &Error {
        match self {
            Error::Module(m) => m.source.innermost(),
            other => other,
        }
    }

    /// The module context, if the error came out of a module call.
    pub fn module(&self) -> Option<&ModuleError> {
        match self {
            Error::Module(m) => Some(m),
            _ => None,
        }
    }

    /// The autograd error inside (looking through module context), if this is one.
    pub fn as_autograd(&self) -> Option<&autograd::Error> {
        match self.innermost() {
            Error::Autograd(e) => Some(e),
            _ => None,
        }
    }

    /// Converts to an `autograd::Error`, for closures that must return one (such as
    /// [`autograd::gradcheck()`]'s): an autograd error is unwrapped (module context
    /// dropped), others become `InvalidArgument` carrying this error's message.
    #[track_caller]
    pub fn into_autograd(self) -> autograd::Error {
        match self {
            Error::Autograd(e) => e,
            Error::Module(m) if matches!(m.source.innermost(), Error::Autograd(_)) => {
                m.source.into_autograd()
            }
            other => autograd::Error::InvalidArgument {
                op: "nn",
                reason: other.to_string(),
                shape: Shape::scalar(),
                location: Location::caller(),
            },
        }
    }

    #[track_caller]
    pub(crate) fn config(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            what,
            reason: reason.into(),
            location: Location::caller(),
        }
    }

    #[track_caller]
    pub(crate) fn input(layer: &'static str, expected: impl Into<String>, got: Shape) -> Self {
        Error::InputShape {
            layer,
            expected: expected.into(),
            got,
            location: Location::caller(),
        }
    }

    pub(crate) fn target(loss: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidTarget {
            loss,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn error_stays_below_clippys_large_err_limit() {
        // Every fallible function returns Result<_, Error>; at 128 bytes clippy's
        // result_large_err fires in every user crate that returns our errors.
        assert!(std::mem::size_of::<super::Error>() < 128);
        assert!(std::mem::size_of::<super::ModuleError>() < 256);
        assert!(std::mem::size_of::<autograd::Error>() < 128);
        assert!(std::mem::size_of::<autograd::io::Error>() < 128);
    }
}
