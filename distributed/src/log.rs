//! Rank-aware output: only rank 0 prints, logs metrics and writes reports.

use std::path::{Path, PathBuf};

use gradlab::metrics::{At, MetricsLogger};

use crate::error::Result;
use crate::world::World;

/// Prints a line on rank 0 only (`println!` otherwise).
///
/// ```no_run
/// let world = distributed::World::init()?;
/// let (epoch, loss) = (3, 0.25);
/// distributed::main_println!(world, "epoch {epoch}: loss {loss:.4}");
/// world.finish();
/// # Ok::<(), distributed::Error>(())
/// ```
#[macro_export]
macro_rules! main_println {
    ($world:expr, $($arg:tt)*) => {
        if $world.is_main() {
            println!($($arg)*);
        }
    };
}

/// A [`MetricsLogger`] on rank 0, nothing elsewhere: every rank calls
/// [`log`](MainLogger::log) the same way and one `metrics.jsonl` is written. Log values
/// that every rank agrees on (a [`World::mean`] of the ranks' losses, a metric summed with
/// [`World::sum`]).
pub struct MainLogger {
    inner: Option<MetricsLogger>,
}

impl MainLogger {
    /// Creates `run_dir/metrics.jsonl` on rank 0. Not a collective call.
    ///
    /// # Errors
    /// On rank 0, [`Error::Metrics`](crate::Error::Metrics) when the folder or file cannot
    /// be created (returning it from [`launch`](crate::launch) ends the job).
    pub fn create(world: &World, run_dir: impl AsRef<Path>) -> Result<Self> {
        let inner = match world.is_main() {
            true => Some(MetricsLogger::create(run_dir)?),
            false => None,
        };
        Ok(MainLogger { inner })
    }

    /// Appends one record on rank 0; does nothing elsewhere. Not a collective call.
    ///
    /// # Errors
    /// On rank 0, [`Error::Metrics`](crate::Error::Metrics) when the line cannot be written.
    pub fn log(&mut self, at: At, scalars: &[(&str, f64)]) -> Result<()> {
        if let Some(l) = &mut self.inner {
            l.log(at, scalars)?;
        }
        Ok(())
    }

    /// The log file, on rank 0.
    pub fn path(&self) -> Option<PathBuf> {
        self.inner.as_ref().map(|l| l.path().to_path_buf())
    }
}
