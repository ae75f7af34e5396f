//! The `Dataset` and `Collate` traits, the batch type of labelled data, and the errors of
//! data loading.

use std::path::PathBuf;

use autograd::{Float, Tensor};

use super::rng::BatchRng;

/// What can go wrong loading or batching data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not what the format says.
    #[error("{}:{line}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An item index past the end of a dataset.
    #[error("index {index} is out of range for a dataset of {len} items")]
    Index {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// A loader or split option out of its range.
    #[error("{name} = {value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Its value, as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A saved loader position that does not fit this loader.
    #[error("cannot resume: the saved {field} is {saved}, this loader's is {current}")]
    ResumeMismatch {
        /// Which field differs.
        field: &'static str,
        /// The saved value.
        saved: u64,
        /// This loader's value.
        current: u64,
    },
    /// A background worker panicked while making a batch.
    #[error("a data loader worker panicked while making batch {batch} of epoch {epoch}")]
    WorkerPanicked {
        /// The epoch.
        epoch: u64,
        /// The batch index within the epoch.
        batch: usize,
    },
    /// A character outside a vocabulary.
    #[error("character {ch:?} is not in the vocabulary")]
    UnknownChar {
        /// The character.
        ch: char,
    },
    /// A token id outside a vocabulary.
    #[error("token {id} is out of range for a vocabulary of {len}")]
    UnknownToken {
        /// The id.
        id: usize,
        /// The vocabulary size.
        len: usize,
    },
    /// Building a tensor failed (in a collate function).
    #[error(transparent)]
    Tensor(#[from] autograd::Error),
}

/// A collection of examples addressed by index, like `torch.utils.data.Dataset`.
///
/// `get` must be deterministic: the loader may call it from any thread, in any order, and
/// a resumed run calls it again for the same indices. Randomness (augmentation) belongs in
/// the [`Collate`] step, which is handed its own seeded stream.
pub trait Dataset {
    /// One example.
    type Item;

    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `index`.
    ///
    /// # Errors
    /// [`DataError::Index`] when `index >= len()`; the dataset's own errors (a lazily
    /// read file).
    fn get(&self, index: usize) -> Result<Self::Item, DataError>;
}

/// Turns the items of one batch into what the training step consumes (tensors).
///
/// Implemented by every `Fn(Vec<Item>, &mut BatchRng) -> Result<Batch, DataError>`, so a
/// closure or a function such as [`Digits::collate`](super::Digits::collate) serves. The
/// [`BatchRng`] is the batch's own random stream, derived from the loader's seed, the
/// epoch and the batch index: augmentation drawn from it is the same whichever thread
/// makes the batch, and no two batches (or workers) share a stream.
pub trait Collate<I> {
    /// The collated batch.
    type Batch;

    /// Collates `items` (in batch order).
    ///
    /// # Errors
    /// Whatever collation can fail with (a tensor that cannot be built, a ragged batch).
    fn collate(&self, items: Vec<I>, rng: &mut BatchRng) -> Result<Self::Batch, DataError>;
}

impl<I, B, F> Collate<I> for F
where
    F: Fn(Vec<I>, &mut BatchRng) -> Result<B, DataError>,
{
    type Batch = B;
    fn collate(&self, items: Vec<I>, rng: &mut BatchRng) -> Result<B, DataError> {
        self(items, rng)
    }
}

/// A batch of labelled examples: inputs stacked along a new first axis, and their classes.
#[derive(Clone, Debug, PartialEq)]
pub struct LabeledBatch<T: Float> {
    /// `[B, ..]` inputs.
    pub inputs: Tensor<T>,
    /// `B` class indices.
    pub labels: Vec<usize>,
}

impl<T: Float> LabeledBatch<T> {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}
