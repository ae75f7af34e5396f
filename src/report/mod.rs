//! A run's report: one self-contained HTML file (inline SVG and CSS, no script, no network)
//! with the configuration, the model summary, the loss / accuracy / learning-rate curves,
//! per-layer diagnostics over training as small multiples, and a confusion matrix.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the input: [`Report`], [`LayerStats`], [`Confusion`] — plain data a training loop fills |
//! | `html.rs` | [`Report::to_html`], [`Report::write`] |
//!
//! ```
//! use gradlab::plot::Series;
//! use gradlab::report::{Confusion, LayerStats, Report};
//!
//! let mut r = Report::new("digits MLP");
//! r.config = vec![("optimizer".into(), "Adam, lr 0.01".into()), ("epochs".into(), "2".into())];
//! r.loss = vec![Series::new("train", vec![(1.0, 0.9), (2.0, 0.4)])];
//! r.accuracy = vec![Series::new("held out", vec![(1.0, 0.88), (2.0, 0.95)])];
//! r.layers = vec![LayerStats { epoch: 1, layer: "fc1".into(), dead_fraction: Some(0.1), ..Default::default() }];
//! r.confusion = Some(Confusion::from_predictions(&["0", "1"], &[0, 1, 1], &[0, 1, 0])?);
//! let html = r.to_html()?;
//! assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
//! # Ok::<(), gradlab::plot::PlotError>(())
//! ```

mod html;

use crate::metrics::{Axis, Metrics};
use crate::plot::{PlotError, Series};

/// Everything a report shows. Every part is optional: what is empty is left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The heading.
    pub title: String,
    /// The run's configuration, as name → value, in display order.
    pub config: Vec<(String, String)>,
    /// The model summary, pre-rendered (shown in a monospace block).
    pub model_summary: Option<String>,
    /// Loss curves (e.g. "train" per step, "held out" per epoch), against [`Report::x_label`].
    pub loss: Vec<Series>,
    /// Accuracy curves (fractions in `[0, 1]`).
    pub accuracy: Vec<Series>,
    /// Learning-rate curves.
    pub learning_rate: Vec<Series>,
    /// The x axis of the curves ("epoch" unless set).
    pub x_label: Option<String>,
    /// Per-layer diagnostics, one row per layer and epoch.
    pub layers: Vec<LayerStats>,
    /// A classifier's confusion matrix on held-out data.
    pub confusion: Option<Confusion>,
    /// Free text paragraphs shown under the title (what was expected, what to look at).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report with a title.
    pub fn new(title: impl Into<String>) -> Self {
        Report {
            title: title.into(),
            ..Default::default()
        }
    }

    /// Fills the curves from a metrics log: `loss` series from the named metrics, and so
    /// on, each against `axis`. Metrics the log does not hold are skipped.
    ///
    /// ```
    /// # use gradlab::{metrics::{Axis, Metrics}, report::Report};
    /// # let m = Metrics::default();
    /// let mut r = Report::new("run");
    /// r.curves_from_metrics(&m, Axis::Epoch, &["train_loss", "val_loss"], &["val_acc"], &["lr"]);
    /// ```
    pub fn curves_from_metrics(
        &mut self,
        metrics: &Metrics,
        axis: Axis,
        loss: &[&str],
        accuracy: &[&str],
        learning_rate: &[&str],
    ) {
        let take = |names: &[&str]| -> Vec<Series> {
            names
                .iter()
                .map(|n| metrics.series(n, axis))
                .filter(|s| !s.points.is_empty())
                .collect()
        };
        self.loss = take(loss);
        self.accuracy = take(accuracy);
        self.learning_rate = take(learning_rate);
        self.x_label = Some(
            match axis {
                Axis::Step => "step",
                Axis::Epoch => "epoch",
            }
            .into(),
        );
    }
}

/// One layer's training diagnostics at the end of one epoch (what `nn::diagnose` measures).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerStats {
    /// The epoch.
    pub epoch: u64,
    /// The layer's path (`"blocks.1.fc2"`).
    pub layer: String,
    /// Fraction of saturated units (sigmoid/tanh), if measured.
    pub saturation: Option<f64>,
    /// Fraction of dead units (ReLU), if measured.
    pub dead_fraction: Option<f64>,
    /// Norm of the layer's parameter gradient, if measured.
    pub grad_norm: Option<f64>,
}

/// A confusion matrix: `counts[t][p]` examples of true class `t` predicted as `p`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Class names, in index order.
    pub classes: Vec<String>,
    /// Square counts, rows true, columns predicted.
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    /// Counts predictions against the truth.
    ///
    /// # Errors
    /// [`PlotError::Invalid`] when the two lists differ in length or a class index is out
    /// of range.
    pub fn from_predictions(
        classes: &[&str],
        truth: &[usize],
        predicted: &[usize],
    ) -> Result<Self, PlotError> {
        let k = classes.len();
        let invalid = |reason| PlotError::Invalid {
            figure: "confusion matrix".into(),
            reason,
        };
        if truth.len() != predicted.len() {
            return Err(invalid("truth and predictions differ in length"));
        }
        let mut counts = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t >= k || p >= k {
                return Err(invalid("a class index is out of range"));
            }
            counts[t][p] += 1;
        }
        Ok(Confusion {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            counts,
        })
    }

    /// The fraction on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().flatten().sum();
        let right: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        if total == 0 {
            0.0
        } else {
            right as f64 / total as f64
        }
    }

    /// Per class: (recall = right / true count, precision = right / predicted count);
    /// `None` where the count is 0.
    pub fn per_class(&self) -> Vec<(Option<f64>, Option<f64>)> {
        let k = self.counts.len();
        (0..k)
            .map(|c| {
                let right = self.counts[c][c] as f64;
                let truth: u64 = self.counts[c].iter().sum();
                let pred: u64 = self.counts.iter().map(|r| r[c]).sum();
                let frac = |n: u64| (n > 0).then(|| right / n as f64);
                (frac(truth), frac(pred))
            })
            .collect()
    }
}
