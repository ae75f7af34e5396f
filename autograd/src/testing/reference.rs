//! Reading PyTorch reference files in the `op_gradients/v1` schema (cases of inputs,
//! attributes, outputs, cotangents and vector-Jacobian products) and comparing results
//! against them: the one reader behind every parity test of the workspace (autograd's op
//! and transform parity, nn's ops and losses, optim's trajectories through
//! `optim::testing::pytorch`).
//!
//! ```
//! use autograd::testing::reference::{Case, Comparison};
//! use autograd::testing::Tolerance;
//!
//! let json = r#"{"name": "double", "op": "mul_scalar", "attrs": {"c": 2.0},
//!   "inputs": {"x": {"shape": [2], "dtype": "float64", "data": [1.5, -2.0]}},
//!   "differentiable": ["x"],
//!   "output": {"shape": [2], "dtype": "float64", "data": [3.0, -4.0]}}"#;
//! let case = Case::from_json(&serde_json::from_str(json).unwrap()).unwrap();
//! let x = case.inputs["x"].tensor();
//! let ours = x.map(|v| v * case.attrs.f64("c", 1.0));
//! let mut cmp = Comparison::default();
//! cmp.compare("output", &case.name, "output", &ours, &case.output, Tolerance { atol: 0.0, rtol: 0.0 });
//! assert!(cmp.failures().is_empty());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::tensor::Tensor;
use crate::testing::assert::close_failure;
use crate::testing::Tolerance;

/// The directory reference files are read from: `GRADLAB_REFERENCE_DIR` when it is set (a
/// held-out set with other shapes and attributes), else `fallback` (the project's copy).
pub fn reference_dir(fallback: impl AsRef<Path>) -> PathBuf {
    match std::env::var_os("GRADLAB_REFERENCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => fallback.as_ref().to_path_buf(),
    }
}

/// `name` in [`reference_dir`], falling back to the workspace's `tests/data/` (the project's
/// copy of the PyTorch reference files).
pub fn reference_file(name: &str) -> PathBuf {
    reference_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data")).join(name)
}

/// A JSON array of numbers as `f64`s.
///
/// # Errors
/// A message when `v` is not an array or holds a non-number.
pub fn floats(v: &Value) -> Result<Vec<f64>, String> {
    v.as_array()
        .ok_or_else(|| format!("expected an array of numbers, got {v}"))?
        .iter()
        .map(|x| x.as_f64().ok_or_else(|| format!("not a number: {x}")))
        .collect()
}

/// The worst deviation seen over many scalar comparisons, as a fraction of the tolerance
/// `|ours − reference| / (atol + rtol·|reference|)` (≤ 1 passes; a non-finite value of ours
/// counts as infinitely far), with the largest absolute difference and where the worst one
/// was: the summary a trajectory replay prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorstRatio {
    /// The largest ratio seen.
    pub ratio: f64,
    /// The largest absolute difference seen.
    pub abs: f64,
    /// Where the largest ratio was.
    pub at: String,
}

impl WorstRatio {
    /// Compares one value, recording it if it is the worst so far; returns whether it is
    /// within the tolerance.
    pub fn check(
        &mut self,
        ours: f64,
        reference: f64,
        tol: Tolerance,
        at: impl FnOnce() -> String,
    ) -> bool {
        let diff = (ours - reference).abs();
        let ratio = if ours.is_finite() {
            diff / (tol.atol + tol.rtol * reference.abs())
        } else {
            f64::INFINITY
        };
        if diff > self.abs {
            self.abs = diff;
        }
        if ratio > self.ratio || ratio.is_nan() {
            self.ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
            self.at = at();
        }
        ratio <= 1.0
    }

    /// Folds `other` (one case's worst) into `self` (the overall worst), prefixing its
    /// location with `name`.
    pub fn merge(&mut self, other: &WorstRatio, name: &str) {
        if other.ratio > self.ratio {
            self.ratio = other.ratio;
            self.at = format!("{name}: {}", other.at);
        }
        self.abs = self.abs.max(other.abs);
    }
}

/// Reads and parses a JSON reference file.
///
/// # Errors
/// A message naming the file when it cannot be read or is not JSON.
pub fn load_json(path: impl AsRef<Path>) -> Result<Value, String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

/// A reference tensor: `{"shape": [..], "dtype": "float64" | "int64", "data": [..]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements, row-major (int64 data widened to f64, exact below 2⁵³).
    pub data: Vec<f64>,
    /// Whether the dtype is int64.
    pub int: bool,
}

impl RefTensor {
    /// Decodes one tensor object.
    ///
    /// # Errors
    /// A message when the object lacks a shape or data, holds a non-number, or its data
    /// length is not the product of its shape.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let dims = v["shape"]
            .as_array()
            .ok_or_else(|| format!("tensor without a shape: {v}"))?;
        let mut shape = Vec::with_capacity(dims.len());
        for d in dims {
            let d = d.as_u64().ok_or_else(|| format!("bad dimension {d}"))?;
            shape.push(usize::try_from(d).map_err(|_| format!("dimension {d} too large"))?);
        }
        let raw = v["data"]
            .as_array()
            .ok_or_else(|| format!("tensor without data: {v}"))?;
        let mut data = Vec::with_capacity(raw.len());
        for x in raw {
            data.push(x.as_f64().ok_or_else(|| format!("not a number: {x}"))?);
        }
        let n = crate::Shape::from(shape.clone())
            .checked_numel()
            .ok_or_else(|| format!("shape {shape:?} is one no tensor can have"))?;
        if n != data.len() {
            return Err(format!(
                "shape {shape:?} needs {n} elements, data has {}",
                data.len()
            ));
        }
        let int = v["dtype"].as_str() == Some("int64");
        Ok(RefTensor { shape, data, int })
    }

    /// The values as an f64 tensor.
    pub fn tensor(&self) -> Tensor<f64> {
        Tensor::from_parts(self.data.clone(), crate::Shape::from(self.shape.clone()))
    }

    /// The values as signed integers (class indices, lengths, `-100` ignore markers).
    ///
    /// # Errors
    /// A message when the tensor is not int64.
    pub fn ints(&self) -> Result<Vec<i64>, String> {
        if !self.int {
            return Err(format!(
                "expected an int64 tensor of shape {:?}",
                self.shape
            ));
        }
        Ok(self.data.iter().map(|&x| x as i64).collect())
    }

    /// The values as indices.
    ///
    /// # Errors
    /// A message when the tensor is not int64 or holds a negative value.
    pub fn indices(&self) -> Result<Vec<usize>, String> {
        self.ints()?
            .into_iter()
            .map(|i| usize::try_from(i).map_err(|_| format!("negative index {i}")))
            .collect()
    }
}

/// A case's `attrs`, with typed getters. A missing or `null` attribute takes the default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attrs(pub Value);

impl Attrs {
    /// The raw attribute, `None` when absent or `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A float attribute.
    ///
    /// # Panics
    /// When the attribute is present but not a number (a malformed reference file).
    pub fn f64(&self, key: &str, default: f64) -> f64 {
        self.get(key).map_or(default, |v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("attr {key} is not a number: {v}"))
        })
    }

    /// An integer attribute.
    ///
    /// # Panics
    /// When the attribute is present but not an integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).map(|v| {
            v.as_i64()
                .unwrap_or_else(|| panic!("attr {key} is not an integer: {v}"))
        })
    }

    /// A boolean attribute.
    ///
    /// # Panics
    /// When the attribute is present but not a boolean.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        self.get(key).map_or(default, |v| {
            v.as_bool()
                .unwrap_or_else(|| panic!("attr {key} is not a boolean: {v}"))
        })
    }

    /// A string attribute.
    ///
    /// # Panics
    /// When the attribute is present but not a string.
    pub fn str<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).map_or(default, |v| {
            v.as_str()
                .unwrap_or_else(|| panic!("attr {key} is not a string: {v}"))
        })
    }

    /// A list of integers; a single integer is a list of one, absence the empty list.
    ///
    /// # Panics
    /// When the attribute is present but not an integer or a list of integers.
    pub fn ints(&self, key: &str) -> Vec<i64> {
        match self.get(key) {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| {
                    d.as_i64()
                        .unwrap_or_else(|| panic!("attr {key} holds a non-integer: {d}"))
                })
                .collect(),
            Some(v) => vec![v
                .as_i64()
                .unwrap_or_else(|| panic!("attr {key} is not an integer: {v}"))],
        }
    }

    /// A 2-d geometry argument: one integer for both sides or an `[h, w]` pair.
    ///
    /// # Panics
    /// When the attribute is present but neither.
    pub fn pair(&self, key: &str, default: (usize, usize)) -> (usize, usize) {
        let as_usize = |v: &Value| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_else(|| panic!("attr {key} must be an int or a pair: {v}"))
        };
        match self.get(key) {
            None => default,
            Some(Value::Array(a)) if a.len() == 2 => (as_usize(&a[0]), as_usize(&a[1])),
            Some(v) => {
                let n = as_usize(v);
                (n, n)
            }
        }
    }
}

/// One case of the `op_gradients/v1` schema.
#[derive(Clone, Debug)]
pub struct Case {
    /// Unique name.
    pub name: String,
    /// The op family the case exercises (dispatch on this and `attrs`).
    pub op: String,
    /// The exact PyTorch expression (documentation only).
    pub torch: String,
    /// The op's parameters.
    pub attrs: Attrs,
    /// Named inputs.
    pub inputs: BTreeMap<String, RefTensor>,
    /// The inputs that have a gradient in `grads`.
    pub differentiable: Vec<String>,
    /// The op's output.
    pub output: RefTensor,
    /// The upstream gradient the `grads` were computed with.
    pub cotangent: Option<RefTensor>,
    /// `Jᵀ·cotangent` for each differentiable input.
    pub grads: BTreeMap<String, RefTensor>,
    /// Extra integer outputs (`indices`).
    pub extra_outputs: BTreeMap<String, RefTensor>,
}

fn tensors(v: &Value) -> Result<BTreeMap<String, RefTensor>, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = v.as_object() {
        for (k, t) in m {
            out.insert(
                k.clone(),
                RefTensor::from_json(t).map_err(|e| format!("{k}: {e}"))?,
            );
        }
    }
    Ok(out)
}

impl Case {
    /// Decodes one case object.
    ///
    /// # Errors
    /// A message naming the case and the field that is missing or malformed.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let name = v["name"].as_str().ok_or("case without a name")?.to_string();
        let wrap = |e: String| format!("{name}: {e}");
        let op = v["op"]
            .as_str()
            .ok_or_else(|| wrap("no op".into()))?
            .to_string();
        let differentiable = v["differentiable"]
            .as_array()
            .map_or(Ok(vec![]), |a| {
                a.iter()
                    .map(|s| s.as_str().map(String::from).ok_or("bad differentiable"))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| wrap(e.into()))?;
        let cotangent = match v.get("cotangent").filter(|c| !c.is_null()) {
            Some(c) => Some(RefTensor::from_json(c).map_err(wrap)?),
            None => None,
        };
        Ok(Case {
            op,
            torch: v["torch"].as_str().unwrap_or_default().to_string(),
            attrs: Attrs(v["attrs"].clone()),
            inputs: tensors(&v["inputs"]).map_err(wrap)?,
            differentiable,
            output: RefTensor::from_json(&v["output"]).map_err(wrap)?,
            cotangent,
            grads: tensors(&v["grads"]).map_err(wrap)?,
            extra_outputs: tensors(&v["extra_outputs"]).map_err(wrap)?,
            name,
        })
    }

    /// Every case of a file's `cases` array.
    ///
    /// # Errors
    /// A message when `cases` is missing or a case does not decode.
    pub fn all(file: &Value) -> Result<Vec<Case>, String> {
        file["cases"]
            .as_array()
            .ok_or("the file has no cases array")?
            .iter()
            .map(Case::from_json)
            .collect()
    }
}

/// One case of the `layers/v1` schema (`layers.json`): a `torch.nn` module built from
/// `attrs`, its full state (`params`, parameters and buffers under their `state_dict`
/// keys), named inputs and outputs, one cotangent per float output, the gradients of
/// `Σ_j <outputs[j], cotangents[j]>` with respect to every differentiable input and every
/// trainable parameter, and the buffers after the call (batch norm in training mode).
#[derive(Clone, Debug)]
pub struct LayerCase {
    /// Unique name.
    pub name: String,
    /// The `torch.nn` class name (`"Conv2d"`), or a functional's name
    /// (`"scaled_dot_product_attention"`).
    pub module: String,
    /// The exact PyTorch code (documentation only).
    pub torch: String,
    /// Constructor keyword arguments.
    pub attrs: Attrs,
    /// Non-tensor keyword arguments of the call (`need_weights`, `is_causal`).
    pub call: Attrs,
    /// Training mode (`true`) or evaluation mode at call time.
    pub training: bool,
    /// Every `state_dict` entry: parameters and buffers.
    pub params: BTreeMap<String, RefTensor>,
    /// The `params` keys that are parameters (the rest are buffers).
    pub trainable: Vec<String>,
    /// Named inputs (int64 for indices and masks).
    pub inputs: BTreeMap<String, RefTensor>,
    /// The inputs that have an entry in `grads`.
    pub differentiable: Vec<String>,
    /// Every tensor output, by name.
    pub outputs: BTreeMap<String, RefTensor>,
    /// One cotangent per float output.
    pub cotangents: BTreeMap<String, RefTensor>,
    /// Gradients, keyed by input name or `state_dict` key.
    pub grads: BTreeMap<String, RefTensor>,
    /// The buffers after the call, when the call changes them.
    pub buffers_after: Option<BTreeMap<String, RefTensor>>,
    /// The formula or caveat of the case.
    pub note: String,
}

fn names(v: &Value, field: &str) -> Result<Vec<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("{field}: not a string: {s}"))
            })
            .collect(),
        Some(other) => Err(format!("{field}: not a list: {other}")),
    }
}

impl LayerCase {
    /// Decodes one case object.
    ///
    /// # Errors
    /// A message naming the case and the field that is missing or malformed.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let name = v["name"].as_str().ok_or("case without a name")?.to_string();
        let wrap = |e: String| format!("{name}: {e}");
        let module = v["module"]
            .as_str()
            .ok_or_else(|| wrap("no module".into()))?
            .to_string();
        let training = v["training"]
            .as_bool()
            .ok_or_else(|| wrap("no training flag".into()))?;
        let buffers_after = match v.get("buffers_after").filter(|b| !b.is_null()) {
            Some(b) => Some(tensors(b).map_err(wrap)?),
            None => None,
        };
        Ok(LayerCase {
            module,
            torch: v["torch"].as_str().unwrap_or_default().to_string(),
            attrs: Attrs(v["attrs"].clone()),
            call: Attrs(v["call"].clone()),
            training,
            params: tensors(&v["params"]).map_err(wrap)?,
            trainable: names(v, "trainable").map_err(wrap)?,
            inputs: tensors(&v["inputs"]).map_err(wrap)?,
            differentiable: names(v, "differentiable").map_err(wrap)?,
            outputs: tensors(&v["outputs"]).map_err(wrap)?,
            cotangents: tensors(&v["cotangents"]).map_err(wrap)?,
            grads: tensors(&v["grads"]).map_err(wrap)?,
            buffers_after,
            note: v["note"].as_str().unwrap_or_default().to_string(),
            name,
        })
    }

    /// Every case of a `layers/v1` file.
    ///
    /// # Errors
    /// A message when the format is not `layers/v1`, `cases` is missing or a case does
    /// not decode.
    pub fn all(file: &Value) -> Result<Vec<LayerCase>, String> {
        if file["format"] != "layers/v1" {
            return Err(format!("not a layers/v1 file: format {}", file["format"]));
        }
        file["cases"]
            .as_array()
            .ok_or("the file has no cases array")?
            .iter()
            .map(LayerCase::from_json)
            .collect()
    }
}

/// Largest errors seen in one category of comparison.
#[derive(Clone, Debug, Default)]
struct Worst {
    abs: f64,
    rel: f64,
    at: String,
}

/// Collects comparison failures and the largest errors seen, per category, so a parity
/// test can report every mismatch at once and print how close the rest came.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    worst: BTreeMap<String, Worst>,
    failures: Vec<String>,
    /// The largest `|ours - ref| / (atol + rtol·|ref|)` seen, and where.
    worst_ratio: Option<(f64, String)>,
}

impl Comparison {
    /// Compares `ours` against `reference` elementwise at `tol` (shapes must agree),
    /// recording a failure naming the case and `what` otherwise.
    pub fn compare(
        &mut self,
        category: &str,
        case: &str,
        what: &str,
        ours: &Tensor<f64>,
        reference: &RefTensor,
        tol: Tolerance,
    ) {
        let r = reference.tensor();
        if let Some(msg) = close_failure(ours, &r, tol) {
            self.failures.push(format!("{case}: {what}: {msg}"));
        }
        if ours.dims() != r.dims() {
            return;
        }
        let e = self.worst.entry(category.to_string()).or_default();
        let mut ratio = 0.0f64;
        for (&a, &b) in ours.as_slice().iter().zip(r.as_slice()) {
            let d = (a - b).abs();
            let allowed = tol.atol + tol.rtol * b.abs();
            let q = if d == 0.0 {
                0.0
            } else if allowed > 0.0 {
                d / allowed
            } else {
                f64::INFINITY
            };
            // NaN compares as the worst there is.
            if q > ratio || q.is_nan() {
                ratio = if q.is_nan() { f64::INFINITY } else { q };
            }
            if d > e.abs {
                e.abs = d;
            }
            if b.abs() > 1e-3 && d / b.abs() > e.rel {
                e.rel = d / b.abs();
                e.at = format!("{case} {what}");
            }
        }
        if self.worst_ratio.as_ref().is_none_or(|w| ratio > w.0) {
            self.worst_ratio = Some((ratio, format!("{case} {what}")));
        }
    }

    /// The largest `|ours - ref| / (atol + rtol·|ref|)` over every element compared so
    /// far, with the case and quantity where it occurred: how much of the tolerance the
    /// worst element used (above 1 is a failure). `None` before any comparison.
    pub fn worst_ratio(&self) -> Option<(f64, &str)> {
        self.worst_ratio.as_ref().map(|(r, at)| (*r, at.as_str()))
    }

    /// Compares integer results (indices) exactly, shape included.
    pub fn compare_indices(
        &mut self,
        case: &str,
        what: &str,
        ours: &[usize],
        shape: &[usize],
        reference: &RefTensor,
    ) {
        let same = shape == reference.shape.as_slice()
            && ours.len() == reference.data.len()
            && ours
                .iter()
                .zip(&reference.data)
                .all(|(&a, &b)| a as f64 == b);
        if !same {
            self.failures.push(format!(
                "{case}: {what}: ours {ours:?} (shape {shape:?}), reference {:?} (shape {:?})",
                reference.data, reference.shape
            ));
        }
    }

    /// Records a failure that is not a value mismatch (an error, a missing result).
    pub fn fail(&mut self, message: impl Into<String>) {
        self.failures.push(message.into());
    }

    /// The failures so far.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// One line per category: the largest absolute error, and the largest relative error
    /// over elements with `|ref| > 1e-3`, with where it occurred.
    pub fn summary(&self) -> String {
        self.worst
            .iter()
            .map(|(cat, w)| {
                format!(
                    "  max error, {cat:<13}: abs {:.3e}, rel {:.3e} (|ref| > 1e-3; at {})\n",
                    w.abs, w.rel, w.at
                )
            })
            .collect()
    }
}
