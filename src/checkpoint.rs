//! A training run's whole state in one file, so that a run stopped after any step and
//! resumed ends with the same weights, bit for bit, as the run that was never stopped.
//!
//! A [`TrainState`] holds
//!
//! - the **model**: parameters, buffers, and its random streams (dropout's
//!   [`Generator`]s) — exactly what [`nn::state::save`] writes;
//! - the **optimiser**: its per-parameter state, step counts and group settings
//!   ([`Optimizer::state_dict`]), and the **learning-rate schedule**'s counters;
//! - the **data loader's position** ([`LoaderState`]: seed, epoch, next batch), which with
//!   the loader's derived streams fixes every later batch and every random draw of its
//!   collate function;
//! - any **other random stream** of the run (a [`Generator`] the loop draws noise from),
//!   and named **values** (the step counter, early stopping's best score).
//!
//! It is one safetensors file, written crash-safely ([`autograd::io::write_atomic`]): a
//! reader, or a run killed mid-write, sees the previous checkpoint or the new one, never
//! a mixture. Tensors are named `model/{name}` and `optim/{name}`; metadata `format`
//! (`gradlab.checkpoint/v1`), `model/…`, `optim/…` (the schedule under
//! `optim/scheduler.…`), `loader.…`, `generator.{name}` and `value.{name}`.
//!
//! [`TrainState::restore`] is all or nothing: if any part does not fit (another model, an
//! optimiser over other parameters, a loader over other data), nothing is changed.
//!
//! ```
//! use autograd::Tape;
//! use gradlab::checkpoint::TrainState;
//! use gradlab::data::{digits_path, DataLoader, Digits, LoaderOptions};
//! use nn::{Ctx, Linear, Module};
//! use optim::{Adam, ExponentialLr, LrScheduler, Optim, Optimizer};
//! use rand::SeedableRng;
//!
//! let (train, _) = Digits::load(digits_path())?.split(200, 0);
//! let mut loader = DataLoader::new(train, LoaderOptions::new(32), Digits::collate::<f32>)?;
//! let model = Linear::<f32>::new(64, 10, &mut rand::rngs::StdRng::seed_from_u64(0))?;
//! let mut opt = Optim::new(model.parameters(), 1e-2, Adam::default())?;
//! let mut sched = ExponentialLr::new(&mut opt, 0.99)?;
//! let mut batches = loader.epoch();
//! for batch in batches.by_ref().take(3) {
//!     let batch = batch?;
//!     let tape = Tape::new();
//!     let logits = Ctx::new(&tape).call(&model, tape.constant(batch.inputs))?;
//!     opt.zero_grad();
//!     nn::loss::cross_entropy(logits, &batch.labels)?.backward()?;
//!     opt.step()?;
//!     sched.step(&mut opt)?;
//! }
//! // after 3 steps, mid-epoch
//! let mut state = TrainState::capture(&model, &opt, Some(&sched), batches.state())?;
//! state.set_u64("step", 3);
//! drop(batches);
//! let bytes = state.to_bytes()?; // or state.save(path)
//!
//! // ... later, in a new process with freshly built objects:
//! let back = TrainState::from_bytes(&bytes)?;
//! back.restore(&model, &mut opt, Some(&mut sched), &mut loader)?;
//! assert_eq!(back.get_u64("step")?, 3);
//! assert_eq!(loader.state().batch, 3); // the next batch is the 4th of epoch 0
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use autograd::io::{self, TensorFile};
use autograd::Float;
use nn::module::GeneratorState;
use nn::{Generator, Module};
use optim::{LrScheduler, Optimizer};

use crate::data::{Collate, DataError, DataLoader, Dataset, LoaderState};

/// The `format` metadata value of this version.
pub const FORMAT: &str = "gradlab.checkpoint/v1";

const MODEL: &str = "model/";
const OPTIM: &str = "optim/";
const LOADER: &str = "loader.";
const GENERATOR: &str = "generator.";
const VALUE: &str = "value.";

/// What can go wrong saving or restoring a train state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written, is not a safetensors file, or lacks an
    /// entry (named).
    #[error("checkpoint: {0}")]
    File(#[from] io::Error),
    /// The model's state does not fit the model (a tensor missing, of another shape).
    #[error("checkpoint: model: {0}")]
    Model(#[from] nn::Error),
    /// The optimiser's or the schedule's state does not fit them.
    #[error("checkpoint: optimiser: {0}")]
    Optimizer(#[from] optim::Error),
    /// The loader's position does not fit the loader (another dataset length or batch
    /// size).
    #[error("checkpoint: data loader: {0}")]
    Loader(#[from] DataError),
    /// The file is a safetensors file but not a checkpoint of this version.
    #[error("checkpoint: format is {found:?}, expected {FORMAT:?}")]
    Format {
        /// The `format` entry found (`""` when absent).
        found: String,
    },
}

/// Result with [`CheckpointError`].
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// One train state: model, optimiser, schedule, loader position, random streams and named
/// values (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    file: TensorFile,
}

fn missing(key: String, problem: impl Into<String>) -> CheckpointError {
    io::Error::Metadata {
        key,
        problem: problem.into(),
    }
    .into()
}

/// The entries of `file` under `prefix`, with the prefix removed.
fn unprefix(file: &TensorFile, prefix: &str) -> TensorFile {
    TensorFile {
        tensors: file
            .tensors
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v.clone())))
            .collect(),
        metadata: file
            .metadata
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v.clone())))
            .collect(),
    }
}

fn prefix_into(file: &mut TensorFile, prefix: &str, part: TensorFile) {
    for (k, v) in part.tensors {
        file.tensors.insert(format!("{prefix}{k}"), v);
    }
    for (k, v) in part.metadata {
        file.metadata.insert(format!("{prefix}{k}"), v);
    }
}

impl TrainState {
    /// Takes the state of a run: `model`, `opt`, the schedule driving it (if any), and the
    /// loader's position (`loader.state()`, or `batches.state()` inside an epoch).
    ///
    /// # Errors
    /// [`CheckpointError::Model`] when the model names two tensors alike;
    /// [`CheckpointError::Optimizer`] when the optimiser cannot export its state.
    pub fn capture<T: Float, M: Module<T> + ?Sized>(
        model: &M,
        opt: &dyn Optimizer,
        scheduler: Option<&dyn LrScheduler>,
        loader: LoaderState,
    ) -> Result<Self> {
        let mut file = TensorFile::default();
        file.metadata.insert("format".into(), FORMAT.into());
        let model_file = TensorFile::from_bytes(&nn::state::to_bytes(model)?)?;
        prefix_into(&mut file, MODEL, model_file);
        let mut sd = opt.state_dict()?;
        if let Some(s) = scheduler {
            optim::state::insert_scheduler(&mut sd, s);
        }
        prefix_into(&mut file, OPTIM, sd);
        let LoaderState {
            seed,
            epoch,
            batch,
            dataset_len,
            batch_size,
        } = loader;
        let m = &mut file.metadata;
        for (k, v) in [
            ("seed", seed),
            ("epoch", epoch),
            ("batch", batch as u64),
            ("dataset_len", dataset_len as u64),
            ("batch_size", batch_size as u64),
        ] {
            m.insert(format!("{LOADER}{k}"), v.to_string());
        }
        Ok(TrainState { file })
    }

    /// Adds a random stream of the run that is not part of the model (a generator the
    /// training loop draws from), under `name`.
    pub fn add_generator(&mut self, name: &str, g: &Generator) {
        self.file
            .metadata
            .insert(format!("{GENERATOR}{name}"), g.state().to_hex());
    }

    /// Moves `g` to the saved position of the stream called `name`.
    ///
    /// # Errors
    /// [`CheckpointError::File`] (metadata) when the state has no such stream or it is
    /// malformed.
    pub fn restore_generator(&self, name: &str, g: &Generator) -> Result<()> {
        g.set_state(&self.generator(name)?);
        Ok(())
    }

    fn generator(&self, name: &str) -> Result<GeneratorState> {
        let key = format!("{GENERATOR}{name}");
        let hex = self.file.meta(&key)?;
        GeneratorState::from_hex(hex).ok_or_else(|| missing(key, "is not a generator state"))
    }

    /// Stores an integer under `key` (the step counter, an epoch).
    pub fn set_u64(&mut self, key: &str, value: u64) {
        self.file
            .metadata
            .insert(format!("{VALUE}{key}"), value.to_string());
    }

    /// Stores a float under `key`, bit for bit (NaN and infinities included).
    pub fn set_f64(&mut self, key: &str, value: f64) {
        // `{:?}` is the shortest form that parses back to the same f64.
        self.file
            .metadata
            .insert(format!("{VALUE}{key}"), format!("{value:?}"));
    }

    /// The integer stored under `key`.
    ///
    /// # Errors
    /// [`CheckpointError::File`] (metadata) when it is missing or not an integer.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        Ok(self.file.meta_parse(&format!("{VALUE}{key}"))?)
    }

    /// The float stored under `key`.
    ///
    /// # Errors
    /// [`CheckpointError::File`] (metadata) when it is missing or not a number.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        Ok(self.file.meta_parse(&format!("{VALUE}{key}"))?)
    }

    /// The loader position the state was taken at.
    ///
    /// # Errors
    /// [`CheckpointError::File`] (metadata) when an entry is missing or malformed.
    pub fn loader_state(&self) -> Result<LoaderState> {
        let get = |k: &str| -> Result<u64> { Ok(self.file.meta_parse(&format!("{LOADER}{k}"))?) };
        let size = |k: &str| -> Result<usize> {
            usize::try_from(get(k)?)
                .map_err(|_| missing(format!("{LOADER}{k}"), "does not fit in usize"))
        };
        Ok(LoaderState {
            seed: get("seed")?,
            epoch: get("epoch")?,
            batch: size("batch")?,
            dataset_len: size("dataset_len")?,
            batch_size: size("batch_size")?,
        })
    }

    /// Puts the run back where the state was taken: the model's tensors and random
    /// streams, the optimiser's and the schedule's state, and the loader's position. All or
    /// nothing: when any part does not fit, every object is left as it was. Streams added
    /// with [`add_generator`](TrainState::add_generator) are restored separately, with
    /// [`restore_generator`](TrainState::restore_generator).
    ///
    /// # Errors
    /// [`CheckpointError::Loader`] for a loader over other data or batching;
    /// [`CheckpointError::Model`] for another model; [`CheckpointError::Optimizer`] for an
    /// optimiser over other parameters, another rule, a schedule of another kind, or a
    /// schedule given now but not saved (or saved but not given);
    /// [`CheckpointError::File`] for a missing or malformed entry.
    pub fn restore<T, M, D, C>(
        &self,
        model: &M,
        opt: &mut dyn Optimizer,
        scheduler: Option<&mut dyn LrScheduler>,
        loader: &mut DataLoader<D, C>,
    ) -> Result<()>
    where
        T: Float,
        M: Module<T> + ?Sized,
        D: Dataset + Send + Sync + 'static,
        C: Collate<D::Item> + Send + Sync + 'static,
        C::Batch: Send + 'static,
    {
        let position = self.loader_state()?;
        let model_bytes = unprefix(&self.file, MODEL).to_bytes()?;
        let sd = unprefix(&self.file, OPTIM);
        let has_schedule = sd.metadata.keys().any(|k| k.starts_with("scheduler."));
        let sched_state = match (&scheduler, has_schedule) {
            (Some(_), true) => Some(optim::state::scheduler_state(&sd)?),
            (None, false) => None,
            (Some(_), false) => {
                return Err(missing(
                    format!("{OPTIM}scheduler.*"),
                    "is missing: the run was saved without a schedule",
                ))
            }
            (None, true) => {
                return Err(missing(
                    format!("{OPTIM}scheduler.*"),
                    "is saved, but no schedule was given to restore it into",
                ))
            }
        };

        // Each step below is all-or-nothing by itself; keep what each one replaces, so
        // that a later failure can put the earlier ones back.
        let loader_before = loader.state();
        loader.resume(position)?;
        let model_before = match nn::state::to_bytes(model) {
            Ok(b) => b,
            Err(e) => {
                loader.resume(loader_before)?;
                return Err(e.into());
            }
        };
        if let Err(e) = nn::state::from_bytes(model, &model_bytes) {
            loader.resume(loader_before)?;
            return Err(e.into());
        }
        let undo_model_and_loader = |loader: &mut DataLoader<D, C>| -> Result<()> {
            nn::state::from_bytes(model, &model_before)?;
            loader.resume(loader_before)?;
            Ok(())
        };
        let opt_before = match opt.state_dict() {
            Ok(sd) => sd,
            Err(e) => {
                undo_model_and_loader(loader)?;
                return Err(e.into());
            }
        };
        if let Err(e) = opt.load_state_dict(&sd) {
            undo_model_and_loader(loader)?;
            return Err(e.into());
        }
        if let (Some(s), Some(state)) = (scheduler, sched_state) {
            if let Err(e) = s.load_state(&state) {
                opt.load_state_dict(&opt_before)?;
                undo_model_and_loader(loader)?;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The state as safetensors bytes.
    ///
    /// # Errors
    /// [`CheckpointError::File`] if the serialiser rejects the data.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.file.to_bytes()?)
    }

    /// Parses bytes written by [`to_bytes`](TrainState::to_bytes).
    ///
    /// # Errors
    /// [`CheckpointError::File`] for bytes that are not a safetensors file;
    /// [`CheckpointError::Format`] for one that is not a checkpoint of this version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::checked(TensorFile::from_bytes(bytes)?)
    }

    /// Writes the state to `path` crash-safely (the previous file stays whole until the
    /// new one is complete).
    ///
    /// # Errors
    /// [`CheckpointError::File`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(self.file.save(path)?)
    }

    /// Reads a file written by [`save`](TrainState::save).
    ///
    /// # Errors
    /// As [`from_bytes`](TrainState::from_bytes), and [`CheckpointError::File`] when it
    /// cannot be read.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::checked(TensorFile::load(path)?)
    }

    fn checked(file: TensorFile) -> Result<Self> {
        match file.metadata.get("format") {
            Some(f) if f == FORMAT => Ok(TrainState { file }),
            found => Err(CheckpointError::Format {
                found: found.cloned().unwrap_or_default(),
            }),
        }
    }

    /// Every named value (`value.*`), as stored.
    pub fn values(&self) -> BTreeMap<&str, &str> {
        self.file
            .metadata
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(VALUE)?, v.as_str())))
            .collect()
    }
}
