//! A run's scalars (loss, accuracy, learning rate, gradient norm, anything) appended to
//! `metrics.jsonl` in the run's folder as they are logged, so a run that crashes keeps its
//! history up to its last step.
//!
//! One JSON object per line: `step` and/or `epoch`, then the scalars in the order given —
//! `{"step":120,"epoch":3,"loss":0.41,"lr":0.001}` — readable by `pandas.read_json(path,
//! lines=True)`, `jq` or [`read_metrics`]. JSON has no NaN or infinity; a diverged value is
//! written as the string `"NaN"`, `"Infinity"` or `"-Infinity"` (the spelling of Python's
//! and JavaScript's parsers) and read back as that float, so divergence is recorded, not
//! lost.
//!
//! ```
//! use gradlab::metrics::{read_metrics, At, MetricsLogger};
//! let dir = std::env::temp_dir().join(format!("gradlab-metrics-doc-{}", std::process::id()));
//! let mut log = MetricsLogger::create(&dir)?;
//! log.log(At::step(1), &[("loss", 2.31), ("lr", 0.01)])?;
//! log.log(At::step(2), &[("loss", 1.87), ("lr", 0.01)])?;
//! log.log(At::epoch(0).at_step(2), &[("val_acc", 0.71)])?;
//! let m = read_metrics(log.path())?;
//! assert_eq!(m.series("loss", gradlab::metrics::Axis::Step).points, vec![(1.0, 2.31), (2.0, 1.87)]);
//! assert_eq!(m.last("val_acc"), Some(0.71));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), gradlab::metrics::MetricsError>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::plot::Series;

/// The file name inside a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// What can go wrong logging or reading metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The run folder or the file could not be created, written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A scalar name that cannot be logged.
    #[error("metric name {name:?}: {reason}")]
    Name {
        /// The name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// A complete line that is not a metrics record.
    #[error("{}:{line}: {reason}: {text:?}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The line.
        text: String,
    },
}

/// When a record was taken: a step, an epoch, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct At {
    /// The optimiser step.
    pub step: Option<u64>,
    /// The epoch.
    pub epoch: Option<u64>,
}

impl At {
    /// At optimiser step `step`.
    pub fn step(step: u64) -> Self {
        At {
            step: Some(step),
            epoch: None,
        }
    }

    /// At the end of epoch `epoch`.
    pub fn epoch(epoch: u64) -> Self {
        At {
            step: None,
            epoch: Some(epoch),
        }
    }

    /// The same, also at step `step`.
    pub fn at_step(self, step: u64) -> Self {
        At {
            step: Some(step),
            ..self
        }
    }
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// When.
    pub at: At,
    /// The scalars, in logged order.
    pub values: Vec<(String, f64)>,
}

impl Record {
    /// The value of `name` in this record.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// Appends records to `<run>/metrics.jsonl`.
///
/// Each record is one `write` of one complete line on an unbuffered file: once
/// [`MetricsLogger::log`] returns, the line is in the operating system's hands and survives
/// a crash or kill of the process. [`MetricsLogger::sync`] also asks the disk to keep it
/// through a power loss (slower; call it at checkpoints).
#[derive(Debug)]
pub struct MetricsLogger {
    path: PathBuf,
    file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetricsError + '_ {
    move |source| MetricsError::Io {
        path: path.to_owned(),
        source,
    }
}

impl MetricsLogger {
    /// Starts a new log in `run_dir` (created if missing), replacing an earlier one.
    ///
    /// # Errors
    /// [`MetricsError::Io`] when the folder or file cannot be created.
    pub fn create(run_dir: impl AsRef<Path>) -> Result<Self, MetricsError> {
        let dir = run_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(METRICS_FILE);
        let file = File::create(&path).map_err(io(&path))?;
        Ok(MetricsLogger { path, file })
    }

    /// Continues the log in `run_dir` (a resumed run), creating it if missing. A last line
    /// cut short by a crash is removed first, so the next record starts on a line of its
    /// own.
    ///
    /// # Errors
    /// [`MetricsError::Io`] when the folder or file cannot be opened or repaired.
    pub fn append(run_dir: impl AsRef<Path>) -> Result<Self, MetricsError> {
        let dir = run_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(METRICS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < bytes.len() {
            file.set_len(keep as u64).map_err(io(&path))?;
        }
        Ok(MetricsLogger { path, file })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record.
    ///
    /// # Errors
    /// [`MetricsError::Name`] for an empty name, `step` or `epoch` (reserved), or a name
    /// given twice; [`MetricsError::Io`] when the write fails.
    pub fn log(&mut self, at: At, scalars: &[(&str, f64)]) -> Result<(), MetricsError> {
        let mut line = String::from("{");
        let mut sep = "";
        for (key, v) in [("step", at.step), ("epoch", at.epoch)] {
            if let Some(v) = v {
                line.push_str(&format!("{sep}\"{key}\":{v}"));
                sep = ",";
            }
        }
        for (i, &(name, v)) in scalars.iter().enumerate() {
            let bad = |reason| MetricsError::Name {
                name: name.to_string(),
                reason,
            };
            if name.is_empty() {
                return Err(bad("is empty"));
            }
            if name == "step" || name == "epoch" {
                return Err(bad("is reserved for the record's position"));
            }
            if scalars[..i].iter().any(|(n, _)| *n == name) {
                return Err(bad("appears twice in one record"));
            }
            let key = Value::String(name.to_string()).to_string();
            line.push_str(&format!("{sep}{key}:{}", number(v)));
            sep = ",";
        }
        line.push_str("}\n");
        self.file.write_all(line.as_bytes()).map_err(io(&self.path))
    }

    /// Asks the operating system to put everything logged so far on disk.
    ///
    /// # Errors
    /// [`MetricsError::Io`] when it cannot.
    pub fn sync(&self) -> Result<(), MetricsError> {
        self.file.sync_data().map_err(io(&self.path))
    }
}

/// A float as JSON: shortest round-trip decimal, or the string spelling of a non-finite.
fn number(v: f64) -> String {
    if v.is_nan() {
        "\"NaN\"".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        }
        .into()
    } else {
        // Rust's Display for f64 is the shortest string that parses back to the same value,
        // but writes no exponent, so 1e300 becomes 301 digits: use `{:e}` past that.
        // A float always carries a '.' or an exponent, so that a parser keeps it a float
        // (`-0` would come back as the integer 0, losing the sign).
        let plain = format!("{v}");
        if plain.len() > 24 {
            format!("{v:e}")
        } else if plain.contains('.') {
            plain
        } else {
            plain + ".0"
        }
    }
}

/// The x axis of a series taken from the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Records with a step, against the step.
    Step,
    /// Records with an epoch, against the epoch.
    Epoch,
}

/// A log read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Every complete record, in file order.
    pub records: Vec<Record>,
    /// The text of a last line cut short by a crash, if there is one (it is not a record).
    pub torn_tail: Option<String>,
}

impl Metrics {
    /// The values of `name` against `axis`, from every record that has both; named after
    /// the metric.
    pub fn series(&self, name: &str, axis: Axis) -> Series {
        let points = self
            .records
            .iter()
            .filter_map(|r| {
                let x = match axis {
                    Axis::Step => r.at.step,
                    Axis::Epoch => r.at.epoch,
                }?;
                Some((x as f64, r.get(name)?))
            })
            .collect();
        Series::new(name, points)
    }

    /// The last logged value of `name`.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.records.iter().rev().find_map(|r| r.get(name))
    }
}

/// Reads a `metrics.jsonl` written by [`MetricsLogger`] (or by hand in the same format).
/// A last line without its newline that does not parse is a write cut short by a crash: it
/// is returned in [`Metrics::torn_tail`], not as an error.
///
/// # Errors
/// [`MetricsError::Io`] when the file cannot be read; [`MetricsError::Format`] for a
/// complete line that is not an object of numbers with an optional integer `step`/`epoch`.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Metrics, MetricsError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut m = Metrics::default();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_record(line) {
            Ok(r) => m.records.push(r),
            Err(_) if !complete && i + 1 == lines.len() => {
                m.torn_tail = Some(line.to_string());
            }
            Err(reason) => {
                return Err(MetricsError::Format {
                    path: path.to_owned(),
                    line: i + 1,
                    reason,
                    text: line.to_string(),
                })
            }
        }
    }
    Ok(m)
}

fn parse_record(line: &str) -> Result<Record, &'static str> {
    let Value::Object(map) = serde_json::from_str::<Value>(line).map_err(|_| "not JSON")? else {
        return Err("not a JSON object");
    };
    let mut r = Record {
        at: At::default(),
        values: Vec::new(),
    };
    for (k, v) in map {
        match (k.as_str(), &v) {
            ("step", _) => r.at.step = Some(v.as_u64().ok_or("step is not an integer")?),
            ("epoch", _) => r.at.epoch = Some(v.as_u64().ok_or("epoch is not an integer")?),
            (_, Value::Number(n)) => r.values.push((k, n.as_f64().ok_or("not a float")?)),
            (_, Value::String(s)) => {
                let x = match s.as_str() {
                    "NaN" => f64::NAN,
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    _ => return Err("a value is a string other than NaN/Infinity/-Infinity"),
                };
                r.values.push((k, x));
            }
            _ => return Err("a value is not a number"),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("gradlab-metrics-{tag}-{}", std::process::id()))
    }

    #[test]
    fn records_read_back_exactly_in_order() {
        let dir = temp_dir("order");
        let mut log = MetricsLogger::create(&dir).unwrap();
        let values = [0.1 + 0.2, 1e-300, 1e300, -0.0, 12345.678, f64::MIN_POSITIVE];
        for (s, &v) in values.iter().enumerate() {
            log.log(At::step(s as u64), &[("loss", v), ("lr", 1e-3)])
                .unwrap();
        }
        log.log(At::epoch(0).at_step(5), &[("val_acc", 0.5)])
            .unwrap();
        let m = read_metrics(log.path()).unwrap();
        assert_eq!(m.records.len(), 7);
        let loss = m.series("loss", Axis::Step);
        // bit-exact: shortest round-trip decimals
        for ((x, y), (s, v)) in loss.points.iter().zip(values.iter().enumerate()) {
            assert_eq!((*x, y.to_bits()), (s as f64, v.to_bits()));
        }
        assert_eq!(m.records[0].values[0].0, "loss"); // logged order kept
        assert_eq!(m.series("val_acc", Axis::Epoch).points, vec![(0.0, 0.5)]);
        assert_eq!(
            m.records[6].at,
            At {
                step: Some(5),
                epoch: Some(0)
            }
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn non_finite_values_are_recorded_not_lost() {
        let dir = temp_dir("nan");
        let mut log = MetricsLogger::create(&dir).unwrap();
        log.log(
            At::step(1),
            &[
                ("loss", f64::NAN),
                ("g", f64::INFINITY),
                ("h", f64::NEG_INFINITY),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(
            text,
            "{\"step\":1,\"loss\":\"NaN\",\"g\":\"Infinity\",\"h\":\"-Infinity\"}\n"
        );
        let r = &read_metrics(log.path()).unwrap().records[0];
        assert!(r.get("loss").unwrap().is_nan());
        assert_eq!(
            (r.get("g"), r.get("h")),
            (Some(f64::INFINITY), Some(f64::NEG_INFINITY))
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_names_and_bad_lines_are_typed_errors() {
        let dir = temp_dir("bad");
        let mut log = MetricsLogger::create(&dir).unwrap();
        for (scalars, reason) in [
            (&[("step", 1.0)][..], "reserved"),
            (&[("", 1.0)][..], "empty"),
            (&[("a", 1.0), ("a", 2.0)][..], "twice"),
        ] {
            let e = log.log(At::step(0), scalars).unwrap_err();
            assert!(
                matches!(&e, MetricsError::Name { reason: r, .. } if r.contains(reason)),
                "{e}"
            );
        }
        // names are escaped, not injected
        log.log(At::step(0), &[("a\"b\n", 1.0)]).unwrap();
        assert_eq!(
            read_metrics(log.path()).unwrap().records[0].values[0].0,
            "a\"b\n"
        );
        std::fs::write(log.path(), "{\"step\":1,\"loss\":1}\n{\"step\":\"x\"}\n").unwrap();
        let e = read_metrics(log.path()).unwrap_err();
        assert!(matches!(e, MetricsError::Format { line: 2, .. }), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The child half of the crash test: logs five steps and aborts, skipping every
    /// destructor and flush a clean exit would run.
    fn crash_child(dir: &Path) -> ! {
        let mut log = MetricsLogger::create(dir).unwrap();
        for s in 0..5u64 {
            log.log(At::step(s), &[("loss", 1.0 / (s + 1) as f64)])
                .unwrap();
        }
        std::process::abort();
    }

    #[test]
    fn a_crashed_run_keeps_its_history() {
        if let Some(dir) = std::env::var_os("GRADLAB_METRICS_CRASH_CHILD") {
            crash_child(Path::new(&dir));
        }
        let dir = temp_dir("crash");
        std::fs::remove_dir_all(&dir).ok();
        // This test binary, re-run on this test alone, as a process that really crashes.
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "metrics::tests::a_crashed_run_keeps_its_history"])
            .env("GRADLAB_METRICS_CRASH_CHILD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child should have aborted");
        let path = dir.join(METRICS_FILE);
        let m = read_metrics(&path).unwrap();
        assert_eq!(m.series("loss", Axis::Step).points.len(), 5);
        assert_eq!(m.last("loss"), Some(0.2));

        // a write cut short mid-line: the reader reports it, a resumed logger drops it
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"step\":5,\"lo").unwrap();
        let m = read_metrics(&path).unwrap();
        assert_eq!(
            (m.records.len(), m.torn_tail.as_deref()),
            (5, Some("{\"step\":5,\"lo"))
        );
        let mut log = MetricsLogger::append(&dir).unwrap();
        log.log(At::step(5), &[("loss", 0.1)]).unwrap();
        let m = read_metrics(&path).unwrap();
        assert_eq!((m.records.len(), &m.torn_tail), (6, &None));
        assert_eq!(m.last("loss"), Some(0.1));
        std::fs::remove_dir_all(&dir).ok();
    }
}
