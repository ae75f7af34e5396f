//! The crate's error type.
//!
//! Variants carry their details as fields (not pre-formatted strings) so that tests and
//! callers can match on them.
//!
//! Policy (all gradlab crates): `autograd::Error` is wrapped unboxed with `#[from]`, so `?`
//! on an autograd call converts directly; this crate's own large payloads are boxed, so that
//! [`Error`] stays under clippy's 128-byte `result_large_err` limit (checked by a test below).

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a user's closure (see [`Optimizer::step_with`](crate::Optimizer::step_with)) may
/// fail with: any error, so that autograd, nn and the user's own errors all pass through `?`.
pub type ClosureError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in `optim`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- construction and setters ---
    /// A hyper-parameter is out of its valid range (PyTorch's `ValueError("Invalid ...")`).
    #[error("invalid {name} {value}: {reason}")]
    InvalidHyperparameter {
        /// The hyper-parameter, with PyTorch's name (`"lr"`, `"betas.0"`, `"momentum"`).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What the valid range is.
        reason: &'static str,
    },
    /// An optimiser was built over no parameters at all.
    #[error("optimizer got an empty parameter list")]
    EmptyParamList,
    /// The same parameter was passed twice (in one group or across groups).
    #[error("parameter at position {index} appears more than once in the optimizer")]
    DuplicateParam {
        /// Its position in the optimiser's flat parameter list (the second occurrence).
        index: usize,
    },
    /// A parameter-group index is out of range.
    #[error("no parameter group {index}: the optimizer has {groups}")]
    NoSuchGroup {
        /// The requested group.
        index: usize,
        /// How many groups there are.
        groups: usize,
    },
    /// The optimiser does not support what was asked of it (a second parameter group for
    /// LBFGS, a momentum for a rule without one, ...).
    #[error("{optimizer}: {what}")]
    Unsupported {
        /// The optimiser or scheduler.
        optimizer: &'static str,
        /// What it does not support.
        what: &'static str,
    },

    // --- stepping ---
    /// [`Optimizer::step`](crate::Optimizer::step) was called on an optimiser that needs to
    /// re-evaluate the loss.
    #[error("{optimizer}: step needs a closure that re-evaluates the loss; call step_with")]
    ClosureRequired {
        /// The optimiser.
        optimizer: &'static str,
    },
    /// The user's closure failed; the error is passed through.
    #[error(transparent)]
    Closure(ClosureError),
    /// A parameter's gradient does not have the parameter's shape (the parameter's shape
    /// was changed after the gradient was computed).
    #[error(
        "parameter at position {index}: gradient of shape {grad:?} for a value of shape {param:?}"
    )]
    GradShape {
        /// The parameter's position in the optimiser.
        index: usize,
        /// The value's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },

    // --- schedules ---
    /// [`ReduceLrOnPlateau`](crate::ReduceLrOnPlateau) was stepped without a metric.
    #[error("{scheduler}: step called without a metric; call observe(metric) first")]
    MissingMetric {
        /// The scheduler.
        scheduler: &'static str,
    },

    // --- state I/O ---
    /// Reading, writing or decoding a state file failed (the codec's error, naming the
    /// file or the tensor).
    #[error("optimizer state: {0}")]
    StateFile(Box<autograd::io::Error>),
    /// The state was written by another optimiser or scheduler.
    #[error("optimizer state: written by {found:?}, cannot load into {expected:?}")]
    StateKind {
        /// This optimiser's or scheduler's name.
        expected: &'static str,
        /// The name in the state.
        found: String,
    },
    /// The state's parameter layout differs from this optimiser's (group count, group size).
    #[error("optimizer state: {what} is {found} in the file but {expected} here")]
    StateLayout {
        /// Which count differs (`"groups"`, `"group 0 size"`).
        what: String,
        /// This optimiser's value.
        expected: usize,
        /// The file's value.
        found: usize,
    },
    /// A loaded value is out of the range a constructed optimiser or scheduler could have
    /// (a negative weight decay, a NaN in a moment, a step count past 2⁵³).
    #[error("optimizer state: {key} = {value} is invalid: {reason}")]
    InvalidState {
        /// Where the value is (`"group.0.weight_decay"`, `"3.exp_avg_sq"`, `"scheduler.last_epoch"`).
        key: String,
        /// The value.
        value: f64,
        /// What the valid range is.
        reason: &'static str,
    },

    // --- autograd ---
    /// An error from `autograd` (tensor shapes, parameters).
    #[error(transparent)]
    Autograd(#[from] autograd::Error),
}

impl From<autograd::io::Error> for Error {
    fn from(e: autograd::io::Error) -> Self {
        Error::StateFile(Box::new(e))
    }
}

impl Error {
    /// Prefixes the key of an [`Error::InvalidState`] (a rule's state check names the
    /// tensor; the loader adds the parameter index). Other errors pass unchanged.
    pub(crate) fn in_state(self, prefix: &str) -> Self {
        match self {
            Error::InvalidState { key, value, reason } => Error::InvalidState {
                key: format!("{prefix}.{key}"),
                value,
                reason,
            },
            other => other,
        }
    }
}

// Debug forwards to Display so that `unwrap()` and `?` in main print the readable message.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autograd_errors_pass_through_unchanged() {
        let p = autograd::Param::new(autograd::Tensor::<f64>::zeros([2]).unwrap());
        let inner = p
            .set_value(autograd::Tensor::zeros([3]).unwrap())
            .unwrap_err();
        let text = inner.to_string();
        let e = Error::from(inner);
        assert!(matches!(e, Error::Autograd(_)));
        assert_eq!(e.to_string(), text);
        assert_eq!(format!("{e:?}"), text); // Debug forwards to Display
    }

    #[test]
    fn error_stays_below_clippys_large_err_limit() {
        // Every fallible call returns Result<_, Error>; past 128 bytes clippy's
        // result_large_err fires in every user crate that returns it.
        let (ours, inner) = (
            std::mem::size_of::<Error>(),
            std::mem::size_of::<autograd::Error>(),
        );
        println!("optim::Error {ours} bytes (autograd::Error {inner})");
        assert!(ours < 128, "optim::Error is {ours} bytes");
    }

    #[test]
    fn closure_errors_keep_their_source() {
        let e = Error::Closure("data loader ran dry".into());
        assert_eq!(e.to_string(), "data loader ran dry");
    }
}
