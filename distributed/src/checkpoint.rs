//! Checkpoints of a data-parallel run: written by rank 0, read by rank 0 and broadcast, in
//! the same files a single process writes and reads.
//!
//! A checkpoint is a folder with two files:
//!
//! | file | written by | a single process reads it with |
//! | --- | --- | --- |
//! | [`MODEL_FILE`] | [`nn::state::save`] | [`nn::state::load`] |
//! | [`OPTIMIZER_FILE`] | [`Optimizer::save`] or [`Optimizer::save_with_scheduler`] | [`Optimizer::load`] / [`Optimizer::load_with_scheduler`] |
//!
//! Nothing in them depends on the number of ranks (the replicas are identical), so a
//! distributed run resumes from a single process's checkpoint and the other way round.
//! Loading needs no shared file system: only rank 0 reads, and the bytes are broadcast.

use std::path::{Path, PathBuf};

use autograd::Float;
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
    /// Rank 0 writes the model and the optimiser (with `scheduler`'s state when given) to
    /// the folder `dir`, creating it; the other ranks wait for it. A collective call.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] on every rank when rank 0 could not write.
    pub fn save_checkpoint(
        &self,
        dir: impl AsRef<Path>,
        scheduler: Option<&dyn LrScheduler>,
    ) -> Result<()> {
        let dir = dir.as_ref();
        let (model_path, opt_path) = checkpoint_paths(dir);
        on_main_agreed(self.world(), || {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            nn::state::save(self.model(), &model_path).map_err(|e| e.to_string())?;
            match scheduler {
                Some(s) => self.optimizer().save_with_scheduler(&opt_path, s),
                None => self.optimizer().save(&opt_path),
            }
            .map_err(|e| e.to_string())
        })
        .map_err(|reason| Error::Checkpoint {
            path: dir.display().to_string(),
            reason,
        })
    }

    /// Rank 0 reads the checkpoint in `dir` (written by [`save_checkpoint`](Ddp::save_checkpoint)
    /// or by a single process) and every rank restores the model, the optimiser and, when
    /// given, the schedule from the broadcast bytes. A collective call.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] on every rank when rank 0 cannot read the files or when they do
    /// not fit the model or the optimiser (the same bytes fail the same way everywhere).
    pub fn load_checkpoint(
        &mut self,
        dir: impl AsRef<Path>,
        scheduler: Option<&mut dyn LrScheduler>,
    ) -> Result<()> {
        let dir = dir.as_ref();
        let checkpoint_error = |reason: String| Error::Checkpoint {
            path: dir.display().to_string(),
            reason,
        };
        let (model_path, opt_path) = checkpoint_paths(dir);
        let (mut model_bytes, mut opt_bytes) = (Vec::new(), Vec::new());
        on_main_agreed(self.world(), || {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            model_bytes = read(&model_path)?;
            opt_bytes = read(&opt_path)?;
            Ok(())
        })
        .map_err(checkpoint_error)?;
        self.world().broadcast_bytes(&mut model_bytes);
        self.world().broadcast_bytes(&mut opt_bytes);
        nn::state::from_bytes(self.model(), &model_bytes)
            .map_err(|e| checkpoint_error(e.to_string()))?;
        let loaded = match scheduler {
            None => StateDict::from_bytes(&opt_bytes)
                .map_err(optim::Error::from)
                .and_then(|sd| self.optimizer_mut().load_state_dict(&sd)),
            Some(s) => {
                // The schedule's state is only reachable through the path-based loader:
                // each rank restores from its own temporary copy of rank 0's bytes.
                let tmp = std::env::temp_dir().join(format!(
                    "gradlab-ckpt-{}-{}.safetensors",
                    std::process::id(),
                    self.world().rank()
                ));
                let res = std::fs::write(&tmp, &opt_bytes)
                    .map_err(|e| checkpoint_error(format!("{}: {e}", tmp.display())))?;
                let loaded = self.optimizer_mut().load_with_scheduler(&tmp, s);
                let _ = (res, std::fs::remove_file(&tmp));
                loaded
            }
        };
        loaded.map_err(|e| checkpoint_error(e.to_string()))
    }
}
