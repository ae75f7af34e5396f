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
    /// The model summary ([`nn::summary()`]): shown as a table, and its type names label
    /// the per-layer figures.
    pub model: Option<nn::Summary>,
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

/// The metrics-log name of a per-layer diagnostic: `layer/{path}/{stat}`.
const LAYER_PREFIX: &str = "layer/";

impl LayerStats {
    /// One row per layer of a [`nn::diagnose`] report taken at the end of `epoch`: the
    /// saturated and dead fractions of activation layers, and for layers with parameters
    /// the norm of the loss's gradient with respect to all of them (their subtree's).
    pub fn from_diagnostics(epoch: u64, report: &nn::diagnostics::Report) -> Vec<LayerStats> {
        report
            .layers
            .iter()
            .map(|l| {
                let prefix = format!("{}.", l.name);
                let mut sq = None;
                for p in report.params.iter().filter(|p| p.name.starts_with(&prefix)) {
                    *sq.get_or_insert(0.0) += p.grad_norm * p.grad_norm;
                }
                LayerStats {
                    epoch,
                    layer: l.name.clone(),
                    saturation: l.saturated,
                    dead_fraction: l.dead,
                    grad_norm: sq.map(f64::sqrt),
                }
            })
            .collect()
    }

    /// The measured values as metrics-log scalars named `layer/{path}/saturation`,
    /// `layer/{path}/dead_fraction` and `layer/{path}/grad_norm`, so that a run's log holds
    /// its diagnostics and [`Report::layers_from_metrics`] reads them back.
    pub fn to_metrics(&self) -> Vec<(String, f64)> {
        [
            ("saturation", self.saturation),
            ("dead_fraction", self.dead_fraction),
            ("grad_norm", self.grad_norm),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((format!("{LAYER_PREFIX}{}/{k}", self.layer), v?)))
        .collect()
    }
}

impl Report {
    /// Fills [`Report::layers`] from the `layer/{path}/{stat}` scalars of a metrics log
    /// (written from [`LayerStats::to_metrics`]), one row per layer and record with an
    /// epoch, layers in order of first appearance.
    pub fn layers_from_metrics(&mut self, metrics: &Metrics) {
        let mut rows: Vec<LayerStats> = Vec::new();
        for r in &metrics.records {
            let Some(epoch) = r.at.epoch else { continue };
            for (name, v) in &r.values {
                let Some(rest) = name.strip_prefix(LAYER_PREFIX) else {
                    continue;
                };
                let Some((layer, stat)) = rest.rsplit_once('/') else {
                    continue;
                };
                let i = match rows
                    .iter()
                    .position(|x| x.epoch == epoch && x.layer == layer)
                {
                    Some(i) => i,
                    None => {
                        rows.push(LayerStats {
                            epoch,
                            layer: layer.to_string(),
                            ..Default::default()
                        });
                        rows.len() - 1
                    }
                };
                let slot = match stat {
                    "saturation" => &mut rows[i].saturation,
                    "dead_fraction" => &mut rows[i].dead_fraction,
                    "grad_norm" => &mut rows[i].grad_norm,
                    _ => continue,
                };
                *slot = Some(*v);
            }
        }
        self.layers = rows;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{read_metrics, At, MetricsLogger};
    use autograd::Shape;
    use nn::diagnostics::{LayerStats as Layer, ParamStats, Report as Diagnostics};

    fn layer(name: &str, dead: Option<f64>) -> Layer {
        Layer {
            name: name.into(),
            type_name: "X",
            activation: None,
            shape: Shape::from([2, 3]),
            mean: 0.0,
            std: 1.0,
            saturated: None,
            dead,
            grad_norm: 9.0,
        }
    }

    fn param(name: &str, grad_norm: f64) -> ParamStats {
        ParamStats {
            name: name.into(),
            shape: Shape::from([3]),
            norm: 1.0,
            grad_norm,
        }
    }

    #[test]
    fn diagnostics_become_layer_rows_and_survive_a_metrics_log() {
        // layer "0" owns 0.weight (‖g‖ = 3) and 0.bias (‖g‖ = 4): ‖g‖ = √(9 + 16) = 5;
        // "1" has no parameters ("10.weight" is not below "1"); "10" has one, ‖g‖ = 2.
        let d = Diagnostics {
            loss: 1.0,
            layers: vec![layer("0", None), layer("1", Some(0.25)), layer("10", None)],
            params: vec![
                param("0.weight", 3.0),
                param("0.bias", 4.0),
                param("10.weight", 2.0),
            ],
        };
        let rows = LayerStats::from_diagnostics(7, &d);
        let expected = vec![
            LayerStats {
                epoch: 7,
                layer: "0".into(),
                grad_norm: Some(5.0),
                ..Default::default()
            },
            LayerStats {
                epoch: 7,
                layer: "1".into(),
                dead_fraction: Some(0.25),
                ..Default::default()
            },
            LayerStats {
                epoch: 7,
                layer: "10".into(),
                grad_norm: Some(2.0),
                ..Default::default()
            },
        ];
        assert_eq!(rows, expected);
        assert_eq!(
            rows[1].to_metrics(),
            vec![("layer/1/dead_fraction".to_string(), 0.25)]
        );

        let dir =
            std::env::temp_dir().join(format!("gradlab-report-layers-{}", std::process::id()));
        let mut log = MetricsLogger::create(&dir).unwrap();
        log.log(At::step(3), &[("loss", 1.0)]).unwrap();
        let scalars: Vec<(String, f64)> = rows.iter().flat_map(|r| r.to_metrics()).collect();
        let refs: Vec<(&str, f64)> = scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        log.log(At::epoch(7).at_step(3), &refs).unwrap();
        let mut r = Report::new("x");
        r.layers_from_metrics(&read_metrics(log.path()).unwrap());
        assert_eq!(r.layers, expected);
        std::fs::remove_dir_all(&dir).ok();
    }
}
