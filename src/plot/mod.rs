//! Figures and tables shared by the studies and the run report: SVG line charts, histogram
//! grids, small multiples, a confusion matrix, and plain-text tables.
//!
//! | file | what |
//! | --- | --- |
//! | `chart.rs` | [`line_chart`], [`histogram_grid`], [`small_multiples`] (files or SVG strings), [`Series`], [`HistPanel`] |
//! | `confusion.rs` | [`confusion_matrix_svg`] |
//! | `table.rs` | [`format_table`], [`print_table`] |
//!
//! Every chart renders to an SVG string (`*_svg`, what the HTML report inlines) and to a
//! file (the same string, written out), so the two never differ.
//!
//! ```
//! use gradlab::plot::{line_chart_svg, Series};
//! let loss = Series::new("train", vec![(0.0, 2.3), (1.0, 0.9), (2.0, 0.4)]);
//! let svg = line_chart_svg("loss", ("epoch", "loss"), &[loss], None)?;
//! assert!(svg.starts_with("<svg"));
//! # Ok::<(), gradlab::plot::PlotError>(())
//! ```

mod chart;
mod confusion;
mod table;

use std::path::PathBuf;

pub use chart::{
    histogram_grid, histogram_grid_svg, line_chart, line_chart_svg, small_multiples,
    small_multiples_svg, HistPanel, Panel, Series,
};
pub use confusion::confusion_matrix_svg;
pub(crate) use confusion::escape;
pub use table::{format_table, print_table};

/// The error of a backend drawing into an SVG string or file.
pub type DrawError = plotters::drawing::DrawingAreaErrorKind<std::io::Error>;

/// What can go wrong drawing a figure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// A file or folder could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The drawing backend failed.
    #[error("drawing {figure:?}: {source}")]
    Draw {
        /// The figure's title.
        figure: String,
        /// The backend's error.
        source: DrawError,
    },
    /// Arguments a figure cannot be drawn from.
    #[error("{figure:?}: {reason}")]
    Invalid {
        /// The figure's title.
        figure: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The folder figures are written into, created if missing.
///
/// # Errors
/// [`PlotError::Io`] when it cannot be created.
pub fn out_dir(dir: impl Into<PathBuf>) -> Result<PathBuf, PlotError> {
    let p = dir.into();
    std::fs::create_dir_all(&p).map_err(|source| PlotError::Io {
        path: p.clone(),
        source,
    })?;
    Ok(p)
}

/// Writes an SVG string to `path`.
pub(crate) fn write_svg(path: &std::path::Path, svg: &str) -> Result<(), PlotError> {
    std::fs::write(path, svg).map_err(|source| PlotError::Io {
        path: path.to_owned(),
        source,
    })
}
