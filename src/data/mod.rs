//! Datasets and a data loader.
//!
//! | file | what |
//! | --- | --- |
//! | `dataset.rs` | the [`Dataset`] and [`Collate`] traits, [`LabeledBatch`], [`DataError`] |
//! | `loader.rs` | [`DataLoader`]: seeded per-epoch shuffling, batching, `drop_last`, background workers, a resumable [`LoaderState`] |
//! | `rng.rs` | [`BatchRng`], the fixed generator behind every order and batch stream |
//! | `digits.rs` | [`Digits`], the 8×8 handwritten digits of `data/digits.csv` |
//! | `text.rs` | [`CharCorpus`], [`CharVocab`], [`TextSplit`], [`TextWindows`]: character-level text (`data/kjv.txt`) |
//!
//! A training loop reads one epoch at a time; the loader remembers where it is, so stopping
//! and resuming (with [`DataLoader::state`] and [`DataLoader::resume`]) continues with the
//! very next batch:
//!
//! ```
//! use gradlab::data::{CharCorpus, DataLoader, LoaderOptions, TextSplit, TextWindows, kjv_path};
//!
//! let corpus = CharCorpus::load(kjv_path())?;
//! let (train, _valid) = corpus.split(&TextSplit::new(64))?;
//! let opts = LoaderOptions { seed: 1, workers: 1, ..LoaderOptions::new(32) };
//! let mut loader = DataLoader::new(train, opts.clone(), TextWindows::collate)?;
//! let first = loader.epoch().next().unwrap()?;     // inputs and next-char targets, [32, 64]
//! assert_eq!((first.batch, first.len), (32, 64));
//! let saved = loader.state();                      // epoch 0, batch 1
//!
//! let (train, _) = corpus.split(&TextSplit::new(64))?;
//! let mut resumed = DataLoader::new(train, opts, TextWindows::collate)?;
//! resumed.resume(saved)?;
//! assert_eq!(resumed.epoch().next().unwrap()?, loader.epoch().next().unwrap()?);
//! # Ok::<(), gradlab::data::DataError>(())
//! ```

mod dataset;
mod digits;
mod loader;
mod rng;
mod text;

pub use dataset::{Collate, DataError, Dataset, LabeledBatch};
pub use digits::{digits_path, Digits};
pub use loader::{Batches, DataLoader, LoaderOptions, LoaderState};
pub use rng::BatchRng;
pub use text::{kjv_path, CharCorpus, CharVocab, TextSplit, TextWindows, TokenBatch};
