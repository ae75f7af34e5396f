//! The crate's error type.
//!
//! Variants carry their details as fields (not pre-formatted strings) so that tests and
//! callers can match on them.

use std::path::PathBuf;

use autograd::DType;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `optim`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- construction ---
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

    // --- schedules ---
    /// [`ReduceLrOnPlateau`](crate::ReduceLrOnPlateau) was stepped without a metric.
    #[error("{scheduler}: step called without a metric; call observe(metric) first")]
    MissingMetric {
        /// The scheduler.
        scheduler: &'static str,
    },

    // --- state I/O ---
    /// Reading or writing a state file failed.
    #[error("optimizer state {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid state file (bad safetensors framing, metadata, values).
    #[error("optimizer state: malformed file: {reason}")]
    StateFormat {
        /// What is wrong.
        reason: String,
    },
    /// The state was written by another optimiser.
    #[error("optimizer state: written by {found:?}, cannot load into {expected:?}")]
    StateOptimizer {
        /// This optimiser's [`UpdateRule::NAME`](crate::UpdateRule::NAME).
        expected: &'static str,
        /// The name in the file.
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
    /// A state tensor is missing, or present but not expected.
    #[error("optimizer state: tensor {key:?} is {problem}")]
    StateKey {
        /// The tensor name, `"{param_index}.{state_name}"`.
        key: String,
        /// `"missing"` or `"unexpected"`.
        problem: &'static str,
    },
    /// A state tensor has the wrong shape for its parameter.
    #[error("optimizer state: tensor {key:?} has shape {got:?}, parameter needs {expected:?}")]
    StateShape {
        /// The tensor name.
        key: String,
        /// The shape the parameter needs.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A state tensor has the wrong element type.
    #[error("optimizer state: tensor {key:?} is {got:?}, expected {expected:?}")]
    StateDType {
        /// The tensor name.
        key: String,
        /// The dtype this optimiser needs.
        expected: DType,
        /// The dtype in the file.
        got: DType,
    },

    // --- autograd ---
    /// An error from `autograd` (tensor shapes, parameters).
    #[error(transparent)]
    Autograd(#[from] autograd::Error),
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
}
