//! Saving and loading a module's named parameters and buffers as
//! [safetensors](https://huggingface.co/docs/safetensors), interoperable with PyTorch.
//!
//! Names are the hierarchical names of [`Module::named_parameters`] and
//! [`Module::named_buffers`] (`"0.weight"`, `"2.running_mean"`), which are PyTorch's
//! `state_dict` keys for the same architecture, so a file written by
//! `safetensors.torch.save_file(model.state_dict(), path)` loads here and vice versa.
//! Parameters and float buffers are stored in the model's dtype (`F32` or `F64`); integer
//! buffers (`num_batches_tracked`) as `I64`, as PyTorch does.
//!
//! - **Writes are atomic**: the bytes go to a temporary file in the same directory, are
//!   synced, and the file is renamed over the target, so a crash never leaves a
//!   half-written state file.
//! - **Loads are strict and all-or-nothing**: every name of the module must be in the
//!   file and every name in the file must be in the module, with the same shape and
//!   dtype; everything is checked before any value is replaced. A truncated or corrupt
//!   file is an error naming the file; nothing here panics on file contents.
//! - **No implicit dtype conversion**: loading an `F32` file into an `f64` model is
//!   [`Error::State`] carrying the codec's `DType` error naming the tensor. Convert explicitly (load into an `f32` model
//!   and cast the values), so precision never changes silently.
//! - **Random streams travel with the state**: the position of every
//!   [`Generator`](crate::Generator) (dropout's) is written in the file's metadata as
//!   `"generator:<name>"` (so the tensors stay exactly PyTorch's `state_dict`), and
//!   restored on load: a resumed run draws the same dropout masks bit for bit. A file
//!   without generator entries (one written by PyTorch) leaves the generators as they are;
//!   a file with them must match the module's generators one for one.
//!
//! ```
//! use nn::{state, Linear};
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let a = Linear::<f32>::new(3, 2, &mut rng)?;
//! let b = Linear::<f32>::new(3, 2, &mut rng)?;
//! let path = std::env::temp_dir().join(format!("nn-doc-{}.safetensors", std::process::id()));
//! state::save(&a, &path)?;
//! state::load(&b, &path)?;
//! assert_eq!(a.weight.value(), b.weight.value());
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), nn::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use autograd::io::{self, StoredTensor, TensorFile};
use autograd::{Float, Param, Shape, Tensor};

use crate::error::{Error, Result};
use crate::module::{Buffer, GeneratorState, Module};

/// Metadata key prefix of a generator's state.
const GENERATOR_KEY: &str = "generator:";

enum Slot<T: Float> {
    Param(Param<T>),
    Buffer(Buffer<T>),
}

impl<T: Float> Slot<T> {
    fn value(&self) -> Tensor<T> {
        match self {
            Slot::Param(p) => p.value(),
            Slot::Buffer(b) => b.value(),
        }
    }
    fn shape(&self) -> Shape {
        match self {
            Slot::Param(p) => p.shape(),
            Slot::Buffer(b) => b.shape(),
        }
    }
    fn integer(&self) -> bool {
        matches!(self, Slot::Buffer(b) if b.is_integer())
    }
    fn set(&self, t: Tensor<T>) -> Result<()> {
        match self {
            Slot::Param(p) => Ok(p.set_value(t)?),
            Slot::Buffer(b) => b.set_value(t),
        }
    }
}

/// The module's parameters and buffers by name. A duplicate name (a custom module
/// naming two children alike) is an error rather than a silently dropped tensor.
fn slots<T: Float, M: Module<T> + ?Sized>(module: &M) -> Result<BTreeMap<String, Slot<T>>> {
    let mut out = BTreeMap::new();
    let mut dup = None;
    for (n, p) in module.named_parameters() {
        if out.insert(n.clone(), Slot::Param(p)).is_some() {
            dup.get_or_insert(n);
        }
    }
    for (n, b) in module.named_buffers() {
        if out.insert(n.clone(), Slot::Buffer(b)).is_some() {
            dup.get_or_insert(n);
        }
    }
    match dup {
        Some(n) => Err(Error::config(
            "state",
            format!("the module names two tensors `{n}`"),
        )),
        None => Ok(out),
    }
}

/// The module's state as safetensors bytes.
///
/// # Errors
/// [`Error::InvalidConfig`] when two tensors share a name; [`Error::State`] if the
/// serialiser rejects the data.
pub fn to_bytes<T: Float, M: Module<T> + ?Sized>(module: &M) -> Result<Vec<u8>> {
    let mut file = TensorFile::default();
    for (n, s) in slots(module)? {
        let t = match s.integer() {
            true => StoredTensor::from_integer(&s.value()),
            false => StoredTensor::from_float(&s.value()),
        };
        file.tensors.insert(n, t);
    }
    file.metadata.insert("format".into(), "pt".into());
    for (name, g) in module.named_generators() {
        file.metadata
            .insert(format!("{GENERATOR_KEY}{name}"), g.state().to_hex());
    }
    file.to_bytes().map_err(Error::from)
}

/// Loads state from safetensors bytes (see [`load`] for the rules).
///
/// # Errors
/// As [`load`], with the path reported as `<memory>`.
pub fn from_bytes<T: Float, M: Module<T> + ?Sized>(module: &M, bytes: &[u8]) -> Result<()> {
    load_impl(module, TensorFile::from_bytes(bytes).map_err(Error::from)?)
}

/// Writes the module's parameters and buffers to `path` atomically.
///
/// # Errors
/// [`Error::State`] (the codec's `Io`) when the directory cannot be written; as
/// [`to_bytes`].
pub fn save<T: Float, M: Module<T> + ?Sized>(module: &M, path: impl AsRef<Path>) -> Result<()> {
    io::write_atomic(path.as_ref(), &to_bytes(module)?).map_err(Error::from)
}

/// Loads parameters and buffers from the safetensors file at `path` into `module`.
///
/// Strict and all-or-nothing: nothing changes unless every tensor matches.
///
/// # Errors
/// [`Error::State`] carrying the codec's error ([`autograd::io::Error`]): `Io` when the
/// file cannot be read, `Corrupt` for a truncated or malformed file, `Missing`,
/// `Unexpected`, `Shape` or `DType` naming the first mismatching tensor;
/// [`Error::StateGenerator`] for a generator's state that does not match.
pub fn load<T: Float, M: Module<T> + ?Sized>(module: &M, path: impl AsRef<Path>) -> Result<()> {
    load_impl(module, TensorFile::load(path).map_err(Error::from)?)
}

fn load_impl<T: Float, M: Module<T> + ?Sized>(module: &M, file: TensorFile) -> Result<()> {
    let slots = slots(module)?;
    let mut staged = Vec::with_capacity(slots.len());
    for (name, slot) in &slots {
        let stored = file.get(name).map_err(Error::from)?;
        // The element type is checked before the shape, as the errors always were.
        let value = match slot.integer() {
            true => stored.integer_to_float::<T>(name),
            false => stored.to_float::<T>(name),
        }
        .and_then(|t| stored.expect_dims(name, slot.shape().dims()).map(|()| t));
        staged.push((slot, value.map_err(Error::from)?));
    }
    file.check_no_extra(|n| slots.contains_key(n))
        .map_err(Error::from)?;
    let generators = staged_generators(module, &file)?;
    for (slot, value) in staged {
        slot.set(value)?;
    }
    for (g, state) in generators {
        g.set_state(&state);
    }
    Ok(())
}

/// The generator states in the file's metadata, matched one for one with the module's
/// generators (none at all is fine: a PyTorch file).
fn staged_generators<T: Float, M: Module<T> + ?Sized>(
    module: &M,
    file: &TensorFile,
) -> Result<Vec<(crate::Generator, GeneratorState)>> {
    let mut saved: BTreeMap<&str, &str> = file
        .metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(GENERATOR_KEY)?, v.as_str())))
        .collect();
    if saved.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (name, g) in module.named_generators() {
        let hex = saved
            .remove(name.as_str())
            .ok_or_else(|| Error::StateGenerator {
                name: name.clone(),
                reason: "the file has generator states, but not this one".into(),
            })?;
        let state = GeneratorState::from_hex(hex).ok_or_else(|| Error::StateGenerator {
            name: name.clone(),
            reason: format!("malformed state {hex:?}"),
        })?;
        out.push((g, state));
    }
    if let Some((extra, _)) = saved.into_iter().next() {
        return Err(Error::StateGenerator {
            name: extra.to_string(),
            reason: "the file has its state, but the module has no such generator".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{BatchNorm1d, Linear, Sequential};
    use crate::Relu;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn net<T: Float>(seed: u64) -> Sequential<T> {
        let mut rng = StdRng::seed_from_u64(seed);
        Sequential::new()
            .append(Linear::new(3, 4, &mut rng).unwrap())
            .append(BatchNorm1d::new(4).unwrap())
            .append(Relu)
            .append(Linear::new(4, 2, &mut rng).unwrap())
    }

    #[test]
    fn bytes_round_trip_params_and_buffers() {
        let a = net::<f64>(1);
        a.named_buffers()[0]
            .1
            .set_value(Tensor::from_vec(vec![1., 2., 3., 4.], [4]).unwrap())
            .unwrap();
        a.named_buffers()[2]
            .1
            .set_value(Tensor::scalar(7.0))
            .unwrap();
        let b = net::<f64>(2);
        assert_ne!(a.parameters()[0].value(), b.parameters()[0].value());
        from_bytes(&b, &to_bytes(&a).unwrap()).unwrap();
        for ((na, pa), (nb, pb)) in a.named_parameters().iter().zip(b.named_parameters()) {
            assert_eq!(*na, nb);
            assert_eq!(pa.value(), pb.value());
        }
        for ((_, ba), (_, bb)) in a.named_buffers().iter().zip(b.named_buffers()) {
            assert_eq!(ba.value(), bb.value());
        }
    }

    #[test]
    fn loads_are_all_or_nothing() {
        let a = net::<f32>(1);
        let bytes = to_bytes(&a).unwrap();
        // a model whose last layer differs: the first layers match, the last does not
        let mut rng = StdRng::seed_from_u64(3);
        let b = Sequential::<f32>::new()
            .append(Linear::new(3, 4, &mut rng).unwrap())
            .append(BatchNorm1d::new(4).unwrap())
            .append(Relu)
            .append(Linear::new(4, 5, &mut rng).unwrap());
        let before = b.parameters()[0].value();
        let e = from_bytes(&b, &bytes).unwrap_err();
        assert!(
            matches!(&e, Error::State(s) if matches!(&**s, io::Error::Shape { name, .. } if name == "3.bias")),
            "{e}"
        );
        assert_eq!(b.parameters()[0].value(), before);
    }
}
