//! The errors of distributed training.

/// A boxed error from user code (a training step's closure, a launched program).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in distributed training.
///
/// Errors every rank returns together (all ranks took part in the collective that found
/// them) say so through [`Error::is_collective`]: a program can then exit without aborting
/// the others, which returned the same error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- start-up ---
    /// MPI was initialised before (by this library or by other code in the process).
    #[error("MPI is already initialised in this process: create one World per process")]
    AlreadyInitialized,
    /// The ranks do not hold the same model (checked when a [`Ddp`](crate::Ddp) is built,
    /// before anything is broadcast).
    #[error("the model differs across ranks: {what} `{name}` is {on_rank0} on rank 0 but {on_other} on rank {rank}")]
    ModelMismatch {
        /// `"parameter"` or `"buffer"`.
        what: &'static str,
        /// The hierarchical name (`"fc1.weight"`), as rank 0 has it (or rank `rank` when
        /// rank 0 has fewer entries).
        name: String,
        /// The first rank that differs from rank 0.
        rank: usize,
        /// What rank 0 has there (`"f32 [16, 64]"`, or `"nothing"`).
        on_rank0: String,
        /// What rank `rank` has there.
        on_other: String,
    },
    /// A value every rank must agree on (a loader seed, a step count) differs.
    #[error("ranks disagree on {what}: rank 0 has {on_rank0}, rank {rank} has {on_other}")]
    Disagreement {
        /// What was compared.
        what: String,
        /// The first rank that differs from rank 0.
        rank: usize,
        /// Rank 0's value.
        on_rank0: String,
        /// Rank `rank`'s value.
        on_other: String,
    },
    /// A configuration value out of its range.
    #[error("{name} = {value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Its value, as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    // --- training steps ---
    /// This rank's step closure returned an error or panicked; the other ranks returned
    /// [`Error::PeerFailed`] from the same step.
    #[error("step {step} failed on this rank ({rank}): {source}")]
    StepFailed {
        /// This rank.
        rank: usize,
        /// The optimiser step (from 0) that failed.
        step: u64,
        /// The closure's error, or the panic's message.
        source: BoxError,
    },
    /// Another rank's step closure failed; this rank's gradients were discarded and the
    /// optimiser did not step.
    #[error("step {step} failed on rank(s) {ranks:?}; this rank ({rank}) stops too")]
    PeerFailed {
        /// This rank.
        rank: usize,
        /// The optimiser step (from 0) that failed.
        step: u64,
        /// The ranks that failed.
        ranks: Vec<usize>,
    },
    /// The ranks declared different loss reductions for the same step (some `Mean`, some
    /// `Sum`): the averaged gradient would be off by a factor, so no rank steps.
    #[error("step {step}: {mean_ranks} of {world} ranks declared a mean-reduced loss and the others a sum-reduced one")]
    ReductionMismatch {
        /// The optimiser step (from 0).
        step: u64,
        /// Ranks that declared `Mean`.
        mean_ranks: usize,
        /// All ranks.
        world: usize,
    },
    /// A step whose losses are means over zero examples on every rank.
    #[error("step {step}: no rank saw an example, so there is no mean to take")]
    NoExamples {
        /// The optimiser step (from 0).
        step: u64,
    },
    /// A checkpoint could not be written, read or applied (on rank 0 for reads and
    /// writes: every rank returns this error).
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What went wrong (on rank 0).
        reason: String,
    },
    // --- from the other crates ---
    /// A model or state error.
    #[error(transparent)]
    Nn(#[from] nn::Error),
    /// An optimiser error.
    #[error(transparent)]
    Optim(#[from] optim::Error),
    /// A tensor error.
    #[error(transparent)]
    Autograd(#[from] autograd::Error),
    /// A data loading error.
    #[error(transparent)]
    Data(#[from] gradlab::data::DataError),
    /// A metrics log error.
    #[error(transparent)]
    Metrics(#[from] gradlab::metrics::MetricsError),
}

impl Error {
    /// Whether every rank returned this error from the same collective call, so that a
    /// program may stop without aborting the others.
    pub fn is_collective(&self) -> bool {
        matches!(
            self,
            Error::ModelMismatch { .. }
                | Error::Disagreement { .. }
                | Error::StepFailed { .. }
                | Error::PeerFailed { .. }
                | Error::ReductionMismatch { .. }
                | Error::NoExamples { .. }
                | Error::Checkpoint { .. }
        )
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
