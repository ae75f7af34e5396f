//! Tensor files: named tensors in [safetensors](https://huggingface.co/docs/safetensors)
//! files, the one codec behind model state (`nn::state`) and optimiser state
//! (`optim::state`); NumPy `.npy` arrays ([`npy`]); and the one crash-safe file write they
//! all use.
//!
//! A [`TensorFile`] is what a safetensors file holds: tensors by name (in their stored
//! element type, [`StoredTensor`]) and string metadata. Reading never panics on file
//! contents: a truncated or malformed file is [`Error::Corrupt`], and every problem with
//! one tensor names that tensor.
//!
//! [`write_atomic`] replaces a file so that a reader (or a crash) only ever sees the old
//! file or the complete new one: the bytes go to a uniquely named temporary file in the
//! same directory, are flushed to disk, renamed over the target, and the directory entry is
//! flushed too. Concurrent writers to one path each use their own temporary file, so they
//! all succeed and the file ends up as one of their complete versions. The temporary file
//! is removed on every error path, a file of the user's that happens to be called
//! `<path>.tmp` is never touched, and an existing target keeps its permissions.
//!
//! ```
//! use autograd::io::{StoredTensor, TensorFile};
//! use autograd::Tensor;
//!
//! let mut file = TensorFile::default();
//! file.tensors.insert("w".into(), StoredTensor::from_float(&Tensor::from_vec(vec![1.0f32, 2.0], [2])?));
//! file.metadata.insert("format".into(), "pt".into());
//! let path = std::env::temp_dir().join(format!("io-doc-{}.safetensors", std::process::id()));
//! file.save(&path)?;
//! let back = TensorFile::load(&path)?;
//! let w: Tensor<f32> = back.get("w")?.to_float("w")?;
//! assert_eq!(w.to_vec(), vec![1.0, 2.0]);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

use crate::tensor::{DType, Float, Tensor};

/// Result with the codec's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong reading or writing a tensor file.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read, written or renamed.
    #[error("{path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, bad header, bad offsets).
    #[error("{path:?} is not a valid safetensors file: {reason}")]
    Corrupt {
        /// The file (`<memory>` for bytes).
        path: PathBuf,
        /// What is wrong, naming the tensor when one is to blame.
        reason: String,
    },
    /// A tensor that should be in the file is not.
    #[error("tensor {name:?} is missing")]
    Missing {
        /// The tensor's name.
        name: String,
    },
    /// The file has a tensor nothing asked for.
    #[error("tensor {name:?} is not expected here")]
    Unexpected {
        /// The tensor's name.
        name: String,
    },
    /// A tensor has another shape than the one it is loaded into.
    #[error("tensor {name:?} has shape {got:?}, expected {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A tensor has another element type than the one it is loaded into (there is no
    /// implicit conversion, so precision never changes silently).
    #[error("tensor {name:?} is {got}, expected {expected}")]
    DType {
        /// The tensor's name.
        name: String,
        /// The element type needed.
        expected: StoredDType,
        /// The element type in the file.
        got: StoredDType,
    },
    /// A metadata entry is missing or does not parse.
    #[error("metadata {key:?} {problem}")]
    Metadata {
        /// The metadata key.
        key: String,
        /// What is wrong (`"is missing"`, `"= \"x\" is not a number"`).
        problem: String,
    },
}

// Debug forwards to Display so that `unwrap()` and `?` in main print the readable message.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The element type of a stored tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredDType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer (PyTorch's `num_batches_tracked`).
    I64,
    /// Any other safetensors type, by its safetensors name (`"BF16"`); readable but not
    /// loadable.
    Other(String),
}

impl fmt::Display for StoredDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredDType::F32 => f.write_str("F32"),
            StoredDType::F64 => f.write_str("F64"),
            StoredDType::I64 => f.write_str("I64"),
            StoredDType::Other(s) => f.write_str(s),
        }
    }
}

impl From<DType> for StoredDType {
    fn from(d: DType) -> Self {
        match d {
            DType::F32 => StoredDType::F32,
            DType::F64 => StoredDType::F64,
        }
    }
}

/// One tensor as stored in a file, in its stored element type.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredTensor {
    /// `f32` elements.
    F32(Tensor<f32>),
    /// `f64` elements.
    F64(Tensor<f64>),
    /// `i64` elements (row-major), with their dimensions.
    I64 {
        /// The dimensions.
        dims: Vec<usize>,
        /// The elements.
        values: Vec<i64>,
    },
    /// A tensor of a type gradlab does not load, kept (without its data) so that a
    /// mismatch can name it.
    Other {
        /// The safetensors type name.
        dtype: String,
        /// The dimensions.
        dims: Vec<usize>,
    },
}

impl StoredTensor {
    /// Stores a float tensor in its own element type (no rounding).
    pub fn from_float<T: Float>(t: &Tensor<T>) -> Self {
        // The casts are to the same type, so they are exact.
        match T::DTYPE {
            DType::F32 => StoredTensor::F32(t.cast()),
            DType::F64 => StoredTensor::F64(t.cast()),
        }
    }

    /// Stores a float tensor holding whole numbers as `I64` (rounding to nearest).
    pub fn from_integer<T: Float>(t: &Tensor<T>) -> Self {
        StoredTensor::I64 {
            dims: t.dims().to_vec(),
            values: t
                .as_slice()
                .iter()
                .map(|v| v.as_f64().round() as i64)
                .collect(),
        }
    }

    /// The stored element type.
    pub fn dtype(&self) -> StoredDType {
        match self {
            StoredTensor::F32(_) => StoredDType::F32,
            StoredTensor::F64(_) => StoredDType::F64,
            StoredTensor::I64 { .. } => StoredDType::I64,
            StoredTensor::Other { dtype, .. } => StoredDType::Other(dtype.clone()),
        }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        match self {
            StoredTensor::F32(t) => t.dims(),
            StoredTensor::F64(t) => t.dims(),
            StoredTensor::I64 { dims, .. } | StoredTensor::Other { dims, .. } => dims,
        }
    }

    /// The tensor as `Tensor<T>`; it must be stored as `T` (no silent rounding).
    ///
    /// # Errors
    /// [`Error::DType`] naming `name` when the element types differ.
    pub fn to_float<T: Float>(&self, name: &str) -> Result<Tensor<T>> {
        match (self, T::DTYPE) {
            (StoredTensor::F32(t), DType::F32) => Ok(t.cast()),
            (StoredTensor::F64(t), DType::F64) => Ok(t.cast()),
            _ => Err(self.dtype_error(name, T::DTYPE.into())),
        }
    }

    /// An `I64` tensor's values as `Tensor<T>` (exact below 2⁵³ for `f64`).
    ///
    /// # Errors
    /// [`Error::DType`] naming `name` when the tensor is not `I64`.
    pub fn integer_to_float<T: Float>(&self, name: &str) -> Result<Tensor<T>> {
        match self {
            StoredTensor::I64 { dims, values } => {
                let data = values.iter().map(|&v| T::of(v as f64)).collect();
                Tensor::from_vec(data, dims.clone()).map_err(|_| Error::Shape {
                    name: name.to_owned(),
                    expected: dims.clone(),
                    got: vec![values.len()],
                })
            }
            _ => Err(self.dtype_error(name, StoredDType::I64)),
        }
    }

    /// Checks the dimensions.
    ///
    /// # Errors
    /// [`Error::Shape`] naming `name`.
    pub fn expect_dims(&self, name: &str, expected: &[usize]) -> Result<()> {
        if self.dims() == expected {
            Ok(())
        } else {
            Err(Error::Shape {
                name: name.to_owned(),
                expected: expected.to_vec(),
                got: self.dims().to_vec(),
            })
        }
    }

    fn dtype_error(&self, name: &str, expected: StoredDType) -> Error {
        Error::DType {
            name: name.to_owned(),
            expected,
            got: self.dtype(),
        }
    }

    /// The safetensors type and little-endian bytes, or `None` for [`StoredTensor::Other`].
    fn encode(&self) -> Option<Raw> {
        let (dtype, data): (Dtype, Vec<u8>) = match self {
            StoredTensor::F32(t) => (Dtype::F32, le_bytes(t.as_slice(), |x| x.to_le_bytes())),
            StoredTensor::F64(t) => (Dtype::F64, le_bytes(t.as_slice(), |x| x.to_le_bytes())),
            StoredTensor::I64 { values, .. } => (Dtype::I64, le_bytes(values, |x| x.to_le_bytes())),
            StoredTensor::Other { .. } => return None,
        };
        Some(Raw {
            dtype,
            shape: self.dims().to_vec(),
            data,
        })
    }

    /// Decodes a tensor the parser has already checked (`data.len()` = elements × size).
    fn decode(name: &str, dtype: Dtype, shape: &[usize], data: &[u8], path: &Path) -> Result<Self> {
        let corrupt = || Error::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "tensor {name:?}: {} bytes do not hold shape {shape:?}",
                data.len()
            ),
        };
        Ok(match dtype {
            Dtype::F32 => {
                let v = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(arr(c)))
                    .collect();
                StoredTensor::F32(Tensor::from_vec(v, shape.to_vec()).map_err(|_| corrupt())?)
            }
            Dtype::F64 => {
                let v = data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(arr(c)))
                    .collect();
                StoredTensor::F64(Tensor::from_vec(v, shape.to_vec()).map_err(|_| corrupt())?)
            }
            Dtype::I64 => {
                let values: Vec<i64> = data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(arr(c)))
                    .collect();
                if Some(values.len()) != shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
                    return Err(corrupt());
                }
                StoredTensor::I64 {
                    dims: shape.to_vec(),
                    values,
                }
            }
            other => StoredTensor::Other {
                dtype: format!("{other:?}"),
                dims: shape.to_vec(),
            },
        })
    }
}

fn le_bytes<X: Copy, const N: usize>(xs: &[X], f: impl Fn(X) -> [u8; N]) -> Vec<u8> {
    xs.iter().flat_map(|&x| f(x)).collect()
}

/// A chunk of `chunks_exact(N)` as an array.
fn arr<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(chunk);
    a
}

/// One tensor's bytes in safetensors layout, for the serialiser.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The contents of a safetensors file: tensors by name and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    /// The tensors, by name.
    pub tensors: BTreeMap<String, StoredTensor>,
    /// The metadata (safetensors' `__metadata__`), string to string.
    pub metadata: BTreeMap<String, String>,
}

const MEMORY: &str = "<memory>";

impl TensorFile {
    /// Serialises to safetensors bytes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (path `<memory>`) for a [`StoredTensor::Other`], which has no data
    /// to write.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let raws = self
            .tensors
            .iter()
            .map(|(name, t)| {
                t.encode()
                    .map(|r| (name.as_str(), r))
                    .ok_or_else(|| Error::Corrupt {
                        path: MEMORY.into(),
                        reason: format!(
                            "tensor {name:?} of type {} has no data to write",
                            t.dtype()
                        ),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        let metadata = (!metadata.is_empty()).then_some(metadata);
        safetensors::serialize(raws.iter().map(|(n, r)| (*n, r)), &metadata)
            .map_err(|e| corrupt(Path::new(MEMORY), e, &[]))
    }

    /// Parses safetensors bytes (errors report the path `<memory>`).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the bytes are not a valid safetensors file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::parse(bytes, Path::new(MEMORY))
    }

    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read, [`Error::Corrupt`] when it is not a valid
    /// safetensors file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Writes the file with [`write_atomic`].
    ///
    /// # Errors
    /// As [`TensorFile::to_bytes`] and [`write_atomic`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| corrupt(path, e, bytes))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(path, e, bytes))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let t = StoredTensor::decode(&name, view.dtype(), view.shape(), view.data(), path)?;
            tensors.insert(name, t);
        }
        let metadata = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(TensorFile { tensors, metadata })
    }

    /// The tensor called `name`.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is none.
    pub fn get(&self, name: &str) -> Result<&StoredTensor> {
        self.tensors.get(name).ok_or_else(|| Error::Missing {
            name: name.to_owned(),
        })
    }

    /// The metadata entry `key`.
    ///
    /// # Errors
    /// [`Error::Metadata`] when it is missing.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::Metadata {
                key: key.to_owned(),
                problem: "is missing".into(),
            })
    }

    /// The metadata entry `key`, parsed (numbers in Rust's `FromStr` syntax).
    ///
    /// # Errors
    /// [`Error::Metadata`] when it is missing or does not parse.
    pub fn meta_parse<V: std::str::FromStr>(&self, key: &str) -> Result<V> {
        let s = self.meta(key)?;
        s.parse().map_err(|_| Error::Metadata {
            key: key.to_owned(),
            problem: format!("= {s:?} does not parse as {}", short_type_name::<V>()),
        })
    }

    /// The first tensor (in name order) for which `expected` is false.
    ///
    /// # Errors
    /// [`Error::Unexpected`] naming it.
    pub fn check_no_extra(&self, expected: impl Fn(&str) -> bool) -> Result<()> {
        match self.tensors.keys().find(|k| !expected(k)) {
            Some(name) => Err(Error::Unexpected { name: name.clone() }),
            None => Ok(()),
        }
    }
}

fn short_type_name<V>() -> &'static str {
    let full = std::any::type_name::<V>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A safetensors error as [`Error::Corrupt`]; when the error does not say which tensor is
/// at fault, the header is read again to find the one whose byte range does not fit its
/// shape.
fn corrupt(path: &Path, e: SafeTensorError, bytes: &[u8]) -> Error {
    let reason = match e {
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor {name:?} has data offsets that do not follow the previous tensor")
        }
        SafeTensorError::TensorInvalidInfo => match misfit_tensor(bytes) {
            Some(name) => {
                format!("tensor {name:?} has a byte range that does not match its shape and type")
            }
            None => "a tensor's byte range does not match its shape and type".into(),
        },
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensors do not cover the data section (truncated or padded file)".into()
        }
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "the file is too short for its header (truncated?)".into()
        }
        other => format!("{other:?}"),
    };
    Error::Corrupt {
        path: path.to_owned(),
        reason,
    }
}

/// The first tensor in the header whose data offsets do not span `numel × size` bytes.
fn misfit_tensor(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(arr(bytes.get(..8)?));
    let end = 8usize.checked_add(usize::try_from(n).ok()?)?;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..end)?).ok()?;
    let size = |dtype: &str| match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => Some(1),
        "I16" | "U16" | "F16" | "BF16" => Some(2),
        "I32" | "U32" | "F32" => Some(4),
        "I64" | "U64" | "F64" => Some(8),
        _ => None,
    };
    let mut entries: Vec<_> = header.as_object()?.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.into_iter().find_map(|(name, info)| {
        if name == "__metadata__" {
            return None;
        }
        let numel = info["shape"]
            .as_array()?
            .iter()
            .try_fold(1u64, |a, d| a.checked_mul(d.as_u64()?))?;
        let offsets = info["data_offsets"].as_array()?;
        let span = offsets
            .get(1)?
            .as_u64()?
            .checked_sub(offsets.first()?.as_u64()?);
        let want = numel.checked_mul(size(info["dtype"].as_str()?)?);
        (span != want).then(|| name.clone())
    })
}

mod atomic;
pub mod npy;

pub use atomic::write_atomic;

#[cfg(test)]
mod tests;
