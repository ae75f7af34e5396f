//! Checkpoints of a data-parallel run: written by rank 0, read by rank 0 and broadcast, in
//! the same files a single process writes and reads.
//!
//! A checkpoint is a folder with two or three files:
//!
//! | file | written by | a single process reads it with |
//! | --- | --- | --- |
//! | [`MODEL_FILE`] | [`nn::state::save`] | [`nn::state::load`] |
//! | [`OPTIMIZER_FILE`] | [`Optimizer::save`] or [`Optimizer::save_with_scheduler`] | [`Optimizer::load`] / [`Optimizer::load_with_scheduler`] |
//! | [`LOADER_FILE`] (optional) | [`LoaderState::save`] | [`LoaderState::load`], then [`DataLoader::resume`](gradlab::data::DataLoader::resume) |
//!
//! Nothing in them depends on the number of ranks: the replicas are identical, and the
//! loader's position is stored as the single process's (the global batch size, see
//! [`LoaderState::unsharded`]). So a distributed run resumes from a single process's
//! checkpoint and the other way round, and a run of `N` ranks from one of `M` ranks when
//! `M` divides the global batch. Loading needs no shared file system: only rank 0 reads, and
//! the bytes are broadcast.

use std::path::{Path, PathBuf};

use autograd::Float;
use gradlab::data::LoaderState;
use mpi::datatype::Equivalence;
use nn::Module;
use optim::state::StateDict;
use optim::{LrScheduler, Optimizer};

use crate::ddp::Ddp;
use crate::error::{Error, Result};
use crate::world::World;

/// The model's parameters and buffers, as [`nn::state::save`] writes them.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimiser's state (and the schedule's, when saved with one).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The data loader's position as one process with the global batch would have it.
pub const LOADER_FILE: &str = "loader.json";

/// The two files of the checkpoint in `dir`: (model, optimiser).
pub fn checkpoint_paths(dir: impl AsRef<Path>) -> (PathBuf, PathBuf) {
    let dir = dir.as_ref();
    (dir.join(MODEL_FILE), dir.join(OPTIMIZER_FILE))
}

/// Runs `f` on rank 0 and tells every rank whether it succeeded: `Err(message)` everywhere
/// when it failed there.
fn on_main_agreed(
    world: &World,
    f: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut status = Vec::new();
    if world.is_main() {
        if let Err(e) = f() {
            status = e.into_bytes();
            if status.is_empty() {
                status.push(b'?');
            }
        }
    }
    world.broadcast_bytes(&mut status);
    if status.is_empty() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&status).into_owned())
    }
}

impl<T, M, O> Ddp<'_, T, M, O>
where
    T: Float + Equivalence,
    M: Module<T>,
    O: Optimizer,
{
    /// Rank 0 writes the model, the optimiser (with `scheduler`'s state when given) and,
    /// when given, this rank's data loader position `loader` to the folder `dir`, creating
    /// it; the other ranks wait for it. A collective call: every rank passes its own
    /// loader's state (they must agree; the sampler's shards make them equal) or none.
    ///
    /// # Errors
    /// [`Error::Disagreement`] when the ranks' loader positions differ;
    /// [`Error::Checkpoint`] on every rank when rank 0 could not write.
    pub fn save_checkpoint(
        &self,
        dir: impl AsRef<Path>,
        scheduler: Option<&dyn LrScheduler>,
        loader: Option<&LoaderState>,
    ) -> Result<()> {
        let dir = dir.as_ref();
        let world = self.world();
        world.agree("the data loader's position", &format!("{loader:?}"))?;
        let loader = loader.map(|l| l.unsharded(world.size())).transpose()?;
        let (model_path, opt_path) = checkpoint_paths(dir);
        on_main_agreed(world, || {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            nn::state::save(self.model(), &model_path).map_err(|e| e.to_string())?;
            match scheduler {
                Some(s) => self.optimizer().save_with_scheduler(&opt_path, s),
                None => self.optimizer().save(&opt_path),
            }
            .map_err(|e| e.to_string())?;
            let loader_path = dir.join(LOADER_FILE);
            match loader {
                Some(l) => l.save(&loader_path).map_err(|e| e.to_string()),
                // a stale position from an earlier save must not be resumed from
                None => match std::fs::remove_file(&loader_path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                    _ => Ok(()),
                },
            }
        })
        .map_err(|reason| Error::Checkpoint {
            path: dir.display().to_string(),
            reason,
        })
    }

    /// Rank 0 reads the checkpoint in `dir` (written by [`save_checkpoint`](Ddp::save_checkpoint)
    /// or by a single process) and every rank restores the model, the optimiser and, when
    /// given, the schedule from the broadcast bytes. Returns the data loader's position for
    /// this rank's shard when the checkpoint has one (hand it to
    /// [`DataLoader::resume`](gradlab::data::DataLoader::resume)). A collective call.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] on every rank when rank 0 cannot read the files or when they do
    /// not fit the model or the optimiser (the same bytes fail the same way everywhere);
    /// [`Error::Data`] when the saved global batch does not split over this world's ranks.
    pub fn load_checkpoint(
        &mut self,
        dir: impl AsRef<Path>,
        scheduler: Option<&mut dyn LrScheduler>,
    ) -> Result<Option<LoaderState>> {
        let dir = dir.as_ref();
        let checkpoint_error = |reason: String| Error::Checkpoint {
            path: dir.display().to_string(),
            reason,
        };
        let (model_path, opt_path) = checkpoint_paths(dir);
        let (mut model_bytes, mut opt_bytes) = (Vec::new(), Vec::new());
        // [present, seed, epoch, batch, dataset_len, batch_size]
        let mut loader = [0u64; 6];
        on_main_agreed(self.world(), || {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            model_bytes = read(&model_path)?;
            opt_bytes = read(&opt_path)?;
            let loader_path = dir.join(LOADER_FILE);
            if loader_path.exists() {
                let l = LoaderState::load(&loader_path).map_err(|e| e.to_string())?;
                let (batch, len, size) =
                    (l.batch as u64, l.dataset_len as u64, l.batch_size as u64);
                loader = [1, l.seed, l.epoch, batch, len, size];
            }
            Ok(())
        })
        .map_err(checkpoint_error)?;
        self.world().broadcast(&mut loader);
        self.world().broadcast_bytes(&mut model_bytes);
        self.world().broadcast_bytes(&mut opt_bytes);
        nn::state::from_bytes(self.model(), &model_bytes)
            .map_err(|e| checkpoint_error(e.to_string()))?;
        let loaded = StateDict::from_bytes(&opt_bytes)
            .map_err(optim::Error::from)
            .and_then(|sd| match scheduler {
                None => self.optimizer_mut().load_state_dict(&sd),
                Some(s) => self.optimizer_mut().load_state_dict_with_scheduler(&sd, s),
            });
        loaded.map_err(|e| checkpoint_error(e.to_string()))?;
        if loader[0] == 0 {
            return Ok(None);
        }
        // the values were usize on rank 0; a rank with a narrower usize is refused
        let size = |v: u64| {
            usize::try_from(v)
                .map_err(|_| checkpoint_error(format!("{LOADER_FILE}: {v} does not fit usize")))
        };
        let global = LoaderState {
            seed: loader[1],
            epoch: loader[2],
            batch: size(loader[3])?,
            dataset_len: size(loader[4])?,
            batch_size: size(loader[5])?,
        };
        Ok(Some(global.sharded(self.world().size())?))
    }
}
