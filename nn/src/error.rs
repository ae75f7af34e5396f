//! The crate's error type.
//!
//! Every variant names the layer, loss, initialiser or tensor involved as fields, so tests
//! can match on them and messages say what to fix.

use std::fmt;
use std::path::PathBuf;

use autograd::Shape;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `nn`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the tape or a tensor op.
    ///
    /// Boxed (unlike STYLE's `#[from] autograd::Error`): `autograd::Error` is over 128
    /// bytes, which would put every `nn::Result` — and every user function returning one —
    /// over clippy's `result_large_err` limit. `?` still converts, through the `From` below.
    #[error(transparent)]
    Autograd(Box<autograd::Error>),

    // --- configuration ---
    /// A layer, loss or initialiser was given an argument outside its valid range.
    #[error("{what}: {reason}")]
    InvalidConfig {
        /// The layer, loss or initialiser.
        what: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// An initialiser cannot compute fans for (or otherwise fill) a tensor of this shape.
    #[error("{init}: {reason} (shape {shape})")]
    Init {
        /// The initialiser.
        init: &'static str,
        /// What is wrong, in words.
        reason: String,
        /// The shape it was asked to fill.
        shape: Shape,
    },

    // --- inputs ---
    /// A layer was given an input of a shape it cannot take.
    #[error("{layer}: expected input {expected}, got shape {got}")]
    InputShape {
        /// The layer.
        layer: &'static str,
        /// What it accepts, in words (`"[N, 784]"`, `"rank 4 (NCHW)"`).
        expected: String,
        /// The shape it was given.
        got: Shape,
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

    // --- state I/O ---
    /// Reading or writing a state file failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A state file (or buffer) is not valid safetensors: truncated, corrupt header, ...
    #[error("state file {path}: not a valid safetensors file: {reason}")]
    Corrupt {
        /// The file (`<memory>` for byte buffers).
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The module has a tensor the file lacks.
    #[error("state: tensor `{name}` is missing from the file")]
    MissingTensor {
        /// The tensor's hierarchical name.
        name: String,
    },
    /// The file has a tensor the module does not.
    #[error("state: the file has tensor `{name}`, which the module does not have")]
    UnexpectedTensor {
        /// The tensor's name in the file.
        name: String,
    },
    /// A tensor in the file has a different shape from the module's.
    #[error(
        "state: tensor `{name}` has shape {got:?} in the file, but the module expects {expected}"
    )]
    StateShape {
        /// The tensor's name.
        name: String,
        /// The module's shape.
        expected: Shape,
        /// The file's shape.
        got: Vec<usize>,
    },
    /// A tensor in the file has a different element type from the module's.
    #[error("state: tensor `{name}` is {got} in the file, but the module expects {expected} (no implicit conversion; cast the model or the file)")]
    StateDType {
        /// The tensor's name.
        name: String,
        /// The module's dtype (`F32`, `F64`, `I64`).
        expected: String,
        /// The file's dtype.
        got: String,
    },
}

impl fmt::Debug for Error {
    // Debug forwards to Display so `unwrap()` and `?` in main print a readable message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<autograd::Error> for Error {
    fn from(e: autograd::Error) -> Self {
        Error::Autograd(Box::new(e))
    }
}

impl Error {
    /// The autograd error inside, if this is one.
    pub fn as_autograd(&self) -> Option<&autograd::Error> {
        match self {
            Error::Autograd(e) => Some(e),
            _ => None,
        }
    }

    /// Converts to an `autograd::Error`, for closures that must return one (such as
    /// [`autograd::gradcheck()`]'s): autograd errors are unwrapped, others become
    /// `InvalidArgument` carrying this error's message.
    #[track_caller]
    pub fn into_autograd(self) -> autograd::Error {
        match self {
            Error::Autograd(e) => *e,
            other => autograd::Error::InvalidArgument {
                op: "nn",
                reason: other.to_string(),
                shape: Shape::scalar(),
                location: std::panic::Location::caller(),
            },
        }
    }

    pub(crate) fn config(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn input(layer: &'static str, expected: impl Into<String>, got: Shape) -> Self {
        Error::InputShape {
            layer,
            expected: expected.into(),
            got,
        }
    }

    pub(crate) fn target(loss: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidTarget {
            loss,
            reason: reason.into(),
        }
    }
}
