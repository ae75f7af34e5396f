//! Saving and restoring optimiser state, so that training resumes bit-identically.
//!
//! # Format
//!
//! A [safetensors](https://huggingface.co/docs/safetensors) file. Parameters are keyed by
//! their **position in the optimiser's parameter list** (groups in order, parameters in
//! order within a group; [`Optim::params`]), because `ParamId`s are
//! only unique within one process. Rebuild the optimiser over the same parameters in the
//! same order before loading.
//!
//! Tensors:
//!
//! | name | dtype | what |
//! | --- | --- | --- |
//! | `"{i}.{state}"` | the optimiser's (`F32`/`F64`) | a state tensor of parameter `i` (`"0.exp_avg"`, `"3.momentum_buffer"`) |
//! | `"{i}.{scalar}"` | `F64`, 0-d | a scalar state value (`"0.mu_product"`) |
//!
//! Metadata (all strings; floats in Rust's shortest round-trip form):
//!
//! | key | value |
//! | --- | --- |
//! | `format` | `gradlab.optim/v1` |
//! | `optimizer` | the rule's [`UpdateRule::NAME`] (`"adam"`) |
//! | `dtype` | `F32` or `F64` |
//! | `step_count` | times [`Optimizer::step`](crate::Optimizer::step) ran |
//! | `groups` | number of parameter groups |
//! | `group.{g}.params` | parameters in group `g` |
//! | `group.{g}.lr` | group `g`'s learning rate (restored on load, as PyTorch does) |
//! | `group.{g}.weight_decay` | group `g`'s weight decay override, absent when it has none |
//! | `{i}.step` | updates parameter `i` has had; absent when it has no state yet |
//!
//! Hyper-parameters of the rule itself are not stored: they are part of the code that
//! builds the optimiser.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use autograd::{DType, Float, ParamId, Tensor};
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};
use crate::optimizer::{Entry, Optim, RuleState, UpdateRule};

/// The `format` metadata value this version writes and reads.
pub const FORMAT: &str = "gradlab.optim/v1";

/// A tensor in a [`StateDict`], in its stored element type.
#[derive(Clone, Debug, PartialEq)]
pub enum StateTensor {
    /// `f32` elements.
    F32(Tensor<f32>),
    /// `f64` elements.
    F64(Tensor<f64>),
}

impl StateTensor {
    /// Wraps a tensor without changing its element type.
    pub fn from_tensor<T: Float>(t: &Tensor<T>) -> Self {
        // The cast is to the same type, so it is exact.
        match T::DTYPE {
            DType::F32 => StateTensor::F32(t.cast()),
            DType::F64 => StateTensor::F64(t.cast()),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            StateTensor::F32(_) => DType::F32,
            StateTensor::F64(_) => DType::F64,
        }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        match self {
            StateTensor::F32(t) => t.dims(),
            StateTensor::F64(t) => t.dims(),
        }
    }

    /// The tensor as `Tensor<T>`, which must be its stored type (no silent rounding).
    ///
    /// # Errors
    /// [`Error::StateDType`] naming `key` when the types differ.
    pub fn to_tensor<T: Float>(&self, key: &str) -> Result<Tensor<T>> {
        if self.dtype() != T::DTYPE {
            return Err(Error::StateDType {
                key: key.to_owned(),
                expected: T::DTYPE,
                got: self.dtype(),
            });
        }
        Ok(match self {
            StateTensor::F32(t) => t.cast(),
            StateTensor::F64(t) => t.cast(),
        })
    }

    fn le_bytes(&self) -> Vec<u8> {
        match self {
            StateTensor::F32(t) => t.as_slice().iter().flat_map(|x| x.to_le_bytes()).collect(),
            StateTensor::F64(t) => t.as_slice().iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// An optimiser's state in memory: named tensors plus string metadata, exactly what the
/// safetensors file holds (see the [module docs](self) for the names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    /// State tensors by name.
    pub tensors: BTreeMap<String, StateTensor>,
    /// Step counts, group settings and format information.
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// Serialises to safetensors bytes.
    ///
    /// # Errors
    /// [`Error::StateFormat`] if safetensors rejects the data (it does not for state built
    /// by this crate).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let dtype = match t.dtype() {
                    DType::F32 => Dtype::F32,
                    DType::F64 => Dtype::F64,
                };
                (k.clone(), dtype, t.dims().to_vec(), t.le_bytes())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, dtype, shape, data)| {
                TensorView::new(*dtype, shape.clone(), data).map(|v| (k.as_str(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(format_err)?;
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(views, &Some(meta)).map_err(format_err)
    }

    /// Parses safetensors bytes.
    ///
    /// # Errors
    /// [`Error::StateFormat`] for anything but a safetensors file of `F32`/`F64` tensors.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(format_err)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(format_err)?;
        let metadata = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let t = match view.dtype() {
                Dtype::F32 => StateTensor::F32(
                    Tensor::from_vec(
                        data.chunks_exact(4)
                            .map(|c| f32::from_le_bytes(le_bytes(c)))
                            .collect(),
                        shape,
                    )
                    .map_err(|e| format_err(e.to_string()))?,
                ),
                Dtype::F64 => StateTensor::F64(
                    Tensor::from_vec(
                        data.chunks_exact(8)
                            .map(|c| f64::from_le_bytes(le_bytes(c)))
                            .collect(),
                        shape,
                    )
                    .map_err(|e| format_err(e.to_string()))?,
                ),
                other => {
                    return Err(format_err(format!(
                        "tensor {name:?} has dtype {other:?}, expected F32 or F64"
                    )))
                }
            };
            tensors.insert(name, t);
        }
        Ok(StateDict { tensors, metadata })
    }

    /// Writes a safetensors file atomically (to `path.tmp`, then renamed over `path`), so a
    /// crash mid-write never leaves a truncated checkpoint.
    ///
    /// # Errors
    /// [`Error::Io`] when writing or renaming fails.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        fs::write(&tmp, bytes).map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a safetensors file.
    ///
    /// # Errors
    /// [`Error::Io`] when reading fails, [`Error::StateFormat`] as [`StateDict::from_bytes`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format_err(format!("metadata {key:?} is missing")))
    }

    fn meta_parse<V: std::str::FromStr>(&self, key: &str) -> Result<V> {
        let s = self.meta(key)?;
        s.parse()
            .map_err(|_| format_err(format!("metadata {key:?} = {s:?} does not parse")))
    }
}

/// A chunk from `chunks_exact(N)` as an array.
fn le_bytes<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(chunk);
    a
}

fn format_err(e: impl ToString) -> Error {
    Error::StateFormat {
        reason: e.to_string(),
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "F32",
        DType::F64 => "F64",
    }
}

/// Builds the [`StateDict`] of `opt`.
pub(crate) fn export<R: UpdateRule<T>, T: Float>(opt: &Optim<R, T>) -> StateDict {
    let mut sd = StateDict::default();
    let m = &mut sd.metadata;
    m.insert("format".into(), FORMAT.into());
    m.insert("optimizer".into(), R::NAME.into());
    m.insert("dtype".into(), dtype_name(T::DTYPE).into());
    m.insert("step_count".into(), opt.step_count.to_string());
    m.insert("groups".into(), opt.groups().len().to_string());
    for (g, group) in opt.groups().iter().enumerate() {
        m.insert(format!("group.{g}.params"), group.params.len().to_string());
        // `{:?}` prints the shortest string that parses back to the same f64.
        m.insert(format!("group.{g}.lr"), format!("{:?}", group.lr));
        if let Some(wd) = group.weight_decay {
            m.insert(format!("group.{g}.weight_decay"), format!("{wd:?}"));
        }
    }
    for (i, p) in opt.params().enumerate() {
        let Some(entry) = opt.state.get(&p.id()) else {
            continue;
        };
        sd.metadata
            .insert(format!("{i}.step"), entry.step.to_string());
        for (name, t) in entry.state.tensors() {
            sd.tensors
                .insert(format!("{i}.{name}"), StateTensor::from_tensor(t));
        }
        for (name, x) in entry.state.scalars() {
            sd.tensors
                .insert(format!("{i}.{name}"), StateTensor::F64(Tensor::scalar(x)));
        }
    }
    sd
}

/// What loading produces: the new state map, the step count, and per group (lr, weight decay).
pub(crate) type Imported<S> = (HashMap<ParamId, Entry<S>>, u64, Vec<(f64, Option<f64>)>);

/// Checks `sd` against `opt` and builds the state to install, without touching `opt`.
pub(crate) fn import<R: UpdateRule<T>, T: Float>(
    opt: &Optim<R, T>,
    sd: &StateDict,
) -> Result<Imported<R::State>> {
    let format = sd.meta("format")?;
    if format != FORMAT {
        return Err(format_err(format!(
            "format {format:?}, expected {FORMAT:?}"
        )));
    }
    let name = sd.meta("optimizer")?;
    if name != R::NAME {
        return Err(Error::StateOptimizer {
            expected: R::NAME,
            found: name.to_owned(),
        });
    }
    let groups: usize = sd.meta_parse("groups")?;
    layout("groups".into(), opt.groups().len(), groups)?;
    let mut settings = Vec::with_capacity(groups);
    for (g, group) in opt.groups().iter().enumerate() {
        let n: usize = sd.meta_parse(&format!("group.{g}.params"))?;
        layout(format!("group {g} size"), group.params.len(), n)?;
        let lr: f64 = sd.meta_parse(&format!("group.{g}.lr"))?;
        crate::common::check_lr(lr)?;
        let key = format!("group.{g}.weight_decay");
        let wd = match sd.metadata.contains_key(&key) {
            true => Some(sd.meta_parse::<f64>(&key)?),
            false => None,
        };
        settings.push((lr, wd));
    }
    let dtype = sd.meta("dtype")?;
    if dtype != dtype_name(T::DTYPE) {
        return Err(format_err(format!(
            "dtype {dtype:?}, this optimizer is {}",
            dtype_name(T::DTYPE)
        )));
    }
    let step_count: u64 = sd.meta_parse("step_count")?;

    let mut used = 0;
    let mut entries = HashMap::new();
    for (i, p) in opt.params().enumerate() {
        let key = format!("{i}.step");
        if !sd.metadata.contains_key(&key) {
            continue;
        }
        let step: u64 = sd.meta_parse(&key)?;
        let value = p.value();
        let mut state = opt.rule().init(&value);
        for (name, slot) in state.tensors_mut() {
            let key = format!("{i}.{name}");
            let t = sd.tensors.get(&key).ok_or_else(|| Error::StateKey {
                key: key.clone(),
                problem: "missing",
            })?;
            if t.dims() != slot.dims() {
                return Err(Error::StateShape {
                    key,
                    expected: slot.dims().to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            *slot = t.to_tensor(&key)?;
            used += 1;
        }
        for (name, slot) in state.scalars_mut() {
            let key = format!("{i}.{name}");
            let t = sd.tensors.get(&key).ok_or_else(|| Error::StateKey {
                key: key.clone(),
                problem: "missing",
            })?;
            let t: Tensor<f64> = t.to_tensor(&key)?;
            *slot = t.item().map_err(|_| Error::StateShape {
                key,
                expected: vec![],
                got: t.dims().to_vec(),
            })?;
            used += 1;
        }
        entries.insert(p.id(), Entry { step, state });
    }
    if used != sd.tensors.len() {
        // Name the first tensor nothing asked for.
        let n = opt.params().count();
        let expected: std::collections::HashSet<String> = opt
            .params()
            .enumerate()
            .filter_map(|(i, p)| entries.get(&p.id()).map(|e| (i, e)))
            .flat_map(|(i, e)| {
                let names = e.state.tensors().into_iter().map(|(n, _)| n);
                let scalars = e.state.scalars().into_iter().map(|(n, _)| n);
                names.chain(scalars).map(move |n| format!("{i}.{n}"))
            })
            .collect();
        let key = sd
            .tensors
            .keys()
            .find(|k| !expected.contains(*k))
            .cloned()
            .unwrap_or_else(|| format!("<one of {n} params>"));
        return Err(Error::StateKey {
            key,
            problem: "unexpected",
        });
    }
    Ok((entries, step_count, settings))
}

fn layout(what: String, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::StateLayout {
            what,
            expected,
            found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Adam, NAdam, Optimizer, ParamGroup, Sgd};
    use autograd::{Param, Tape};

    /// Two groups, three params; the last never gets a gradient.
    fn setup<T: Float>(lr: f64) -> (Vec<Param<T>>, Optim<Adam, T>) {
        let ps: Vec<Param<T>> = [vec![0.5, -1.0, 2.0], vec![1.5], vec![7.0, 7.0]]
            .into_iter()
            .map(|v| {
                let n = v.len();
                Param::new(Tensor::from_vec(v.into_iter().map(T::of).collect(), [n]).unwrap())
            })
            .collect();
        let opt = Optim::with_groups(
            vec![
                ParamGroup::new(vec![ps[0].clone()], lr),
                ParamGroup::new(vec![ps[1].clone(), ps[2].clone()], lr / 2.0)
                    .with_weight_decay(0.1),
            ],
            Adam {
                amsgrad: true,
                ..Adam::default()
            },
        )
        .unwrap();
        (ps, opt)
    }

    /// L = Σ (p0³ − p0) + p1⁴ (not p2).
    fn train<T: Float>(ps: &[Param<T>], opt: &mut dyn Optimizer, steps: usize) {
        for _ in 0..steps {
            opt.zero_grad();
            let tape = Tape::new();
            let a = tape.param(&ps[0]);
            let b = tape.param(&ps[1]);
            let loss = (a.powf(T::of(3.0)) - a).sum() + b.powf(T::of(4.0)).sum();
            loss.backward().unwrap();
            opt.step().unwrap();
        }
    }

    fn bits<T: Float>(ps: &[Param<T>]) -> Vec<u64> {
        ps.iter()
            .flat_map(|p| p.value().to_vec())
            .map(|x| x.as_f64().to_bits())
            .collect()
    }

    fn resume_through_file_is_bit_identical<T: Float>(tag: &str) {
        let (ps, mut opt) = setup::<T>(0.05);
        train(&ps, &mut opt, 14);
        let straight = bits(&ps);

        let (ps, mut opt) = setup::<T>(0.05);
        train(&ps, &mut opt, 6);
        let path = std::env::temp_dir().join(format!(
            "optim-state-{tag}-{}.safetensors",
            std::process::id()
        ));
        opt.save(&path).unwrap();
        let values: Vec<Tensor<T>> = ps.iter().map(|p| p.value()).collect();

        // "another process": fresh params (new ids) with the saved values, fresh optimiser
        let (ps2, mut opt2) = setup::<T>(9.0);
        for (p, v) in ps2.iter().zip(values) {
            p.set_value(v).unwrap();
        }
        opt2.load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(opt2.group_lrs(), vec![0.05, 0.025]);
        assert_eq!(opt2.groups()[1].weight_decay, Some(0.1));
        assert_eq!(opt2.step_count(), 6);
        assert_eq!(opt2.param_step(&ps2[0]), 6);
        assert!(opt2.state(&ps2[2]).is_none());
        train(&ps2, &mut opt2, 8);
        assert_eq!(
            bits(&ps2),
            straight,
            "resumed run differs from the uninterrupted one"
        );
    }

    #[test]
    fn resume_through_a_file_is_bit_identical_in_f64_and_f32() {
        resume_through_file_is_bit_identical::<f64>("f64");
        resume_through_file_is_bit_identical::<f32>("f32");
    }

    #[test]
    fn file_layout_is_as_documented() {
        let (ps, mut opt) = setup::<f64>(0.05);
        train(&ps, &mut opt, 2);
        let sd = StateDict::from_bytes(&opt.state_dict().unwrap().to_bytes().unwrap()).unwrap();
        let keys: Vec<&str> = sd.tensors.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "0.exp_avg",
                "0.exp_avg_sq",
                "0.max_exp_avg_sq",
                "1.exp_avg",
                "1.exp_avg_sq",
                "1.max_exp_avg_sq"
            ]
        );
        let m = |k: &str| sd.metadata.get(k).map(String::as_str);
        assert_eq!(m("format"), Some("gradlab.optim/v1"));
        assert_eq!(m("optimizer"), Some("adam"));
        assert_eq!(m("dtype"), Some("F64"));
        assert_eq!(m("step_count"), Some("2"));
        assert_eq!(m("groups"), Some("2"));
        assert_eq!(m("group.1.params"), Some("2"));
        assert_eq!(m("group.0.lr"), Some("0.05"));
        assert_eq!(m("group.0.weight_decay"), None);
        assert_eq!(m("group.1.weight_decay"), Some("0.1"));
        assert_eq!(
            (m("0.step"), m("1.step"), m("2.step")),
            (Some("2"), Some("2"), None)
        );
        assert_eq!(sd.tensors["0.exp_avg"].dims(), &[3]);
    }

    #[test]
    fn scalar_state_is_stored_as_f64() {
        let p = Param::new(Tensor::from_vec(vec![1.0f32], [1]).unwrap());
        let mut opt = Optim::new(vec![p.clone()], 0.1, NAdam::default()).unwrap();
        p.set_grad(Some(Tensor::from_vec(vec![1.0f32], [1]).unwrap()))
            .unwrap();
        opt.step().unwrap();
        let sd = opt.state_dict().unwrap();
        assert_eq!(sd.tensors["0.exp_avg"].dtype(), DType::F32);
        let mu = sd.tensors["0.mu_product"]
            .to_tensor::<f64>("0.mu_product")
            .unwrap();
        assert_eq!(mu.item().unwrap(), opt.state(&p).unwrap().mu_product);
    }

    #[test]
    fn mismatched_state_is_rejected_with_a_precise_error() {
        let (ps, mut opt) = setup::<f64>(0.05);
        train(&ps, &mut opt, 1);
        let good = opt.state_dict().unwrap();
        let before = opt.state_dict().unwrap();

        // another optimiser
        let p = Param::new(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]).unwrap());
        let mut sgd = Optim::new(vec![p], 0.1, Sgd::default()).unwrap();
        let e = sgd.load_state_dict(&good).unwrap_err();
        assert!(matches!(
            e,
            Error::StateOptimizer {
                expected: "sgd",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "optimizer state: written by \"adam\", cannot load into \"sgd\""
        );

        // another layout
        let p = Param::new(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]).unwrap());
        let mut one_group = Optim::new(vec![p], 0.1, Adam::default()).unwrap();
        let e = one_group.load_state_dict(&good).unwrap_err();
        assert_eq!(
            e.to_string(),
            "optimizer state: groups is 2 in the file but 1 here"
        );

        // a missing and an unexpected tensor
        let mut sd = good.clone();
        sd.tensors.remove("1.exp_avg_sq");
        let e = opt.load_state_dict(&sd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "optimizer state: tensor \"1.exp_avg_sq\" is missing"
        );
        let mut sd = good.clone();
        sd.tensors.insert(
            "2.exp_avg".into(),
            StateTensor::F64(Tensor::zeros([2]).unwrap()),
        );
        let e = opt.load_state_dict(&sd).unwrap_err();
        assert!(matches!(&e, Error::StateKey { key, problem: "unexpected" } if key == "2.exp_avg"));

        // a wrong shape
        let mut sd = good.clone();
        sd.tensors.insert(
            "0.exp_avg".into(),
            StateTensor::F64(Tensor::zeros([2]).unwrap()),
        );
        let e = opt.load_state_dict(&sd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "optimizer state: tensor \"0.exp_avg\" has shape [2], parameter needs [3]"
        );

        // a wrong dtype: an f64 file into an f32 optimiser
        let (_, mut opt32) = setup::<f32>(0.05);
        let mut sd = good.clone();
        sd.metadata.insert("dtype".into(), "F32".into());
        let e = opt32.load_state_dict(&sd).unwrap_err();
        assert!(matches!(
            e,
            Error::StateDType {
                expected: DType::F32,
                got: DType::F64,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "optimizer state: tensor \"0.exp_avg\" is F64, expected F32"
        );

        // malformed bytes and metadata
        let e = StateDict::from_bytes(b"not a safetensors file").unwrap_err();
        assert!(matches!(e, Error::StateFormat { .. }));
        assert!(e
            .to_string()
            .starts_with("optimizer state: malformed file: "));
        let mut sd = good.clone();
        sd.metadata.insert("step_count".into(), "many".into());
        let e = opt.load_state_dict(&sd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "optimizer state: malformed file: metadata \"step_count\" = \"many\" does not parse"
        );

        // a missing file
        let e = opt
            .load(Path::new("/nonexistent/optim.safetensors"))
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e
            .to_string()
            .starts_with("optimizer state \"/nonexistent/optim.safetensors\": "));

        // failed loads changed nothing
        assert_eq!(opt.state_dict().unwrap(), before);
    }
}
