//! NumPy `.npy` files: read and write `float32`, `float64` and `int64` arrays, so data and
//! results move to and from NumPy (`np.save` / `np.load`) without hand-written parsers.
//!
//! The format (NumPy's `numpy.lib.format`): the magic `\x93NUMPY`, a version byte pair
//! (1.0 has a 2-byte header length, 2.0 and 3.0 a 4-byte one; 3.0's header is UTF-8), then
//! a Python dict literal `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`
//! padded with spaces to a multiple of 64 bytes and ended by `\n`, then the raw elements.
//! Reading is strict: exactly those three keys, a known dtype, a shape whose byte size does
//! not overflow, and (for files) exactly as many data bytes as the shape needs. Both byte
//! orders and Fortran order are read (converted to row-major native values); writing is
//! always version 1.0 (2.0 when the header needs it), little-endian, C order, as `np.save`,
//! and a file is replaced crash-safely through [`write_atomic`](super::write_atomic).
//!
//! ```
//! use autograd::{io::npy, Tensor};
//! let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
//! let path = std::env::temp_dir().join(format!("npy-doc-{}.npy", std::process::id()));
//! npy::save(&path, &t)?;                       // np.load(path) gives the same float32 array
//! let back: Tensor<f32> = npy::load(&path)?;
//! assert_eq!(back, t);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::tensor::{DType, Float, Tensor};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Headers (magic, version, length and dict) are padded to a multiple of this, as NumPy does
/// so that the data is aligned for memory mapping.
const ALIGN: usize = 64;
/// NumPy refuses headers longer than this by default (`max_header_size`); so do we, which
/// also bounds what a corrupt length field can make us allocate.
const MAX_HEADER: usize = 10_000;

/// What can go wrong reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("npy: {}: {source}", path.display())]
    Io {
        /// The file (empty for a stream).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The first six bytes are not `\x93NUMPY`.
    #[error("npy: not a .npy file (magic bytes {found:02x?})")]
    BadMagic {
        /// The bytes found.
        found: Vec<u8>,
    },
    /// A format version other than 1.0, 2.0 or 3.0.
    #[error("npy: unsupported format version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The header dict is malformed.
    #[error("npy: bad header ({reason}): {header:?}")]
    BadHeader {
        /// What is wrong.
        reason: &'static str,
        /// The header text as read.
        header: String,
    },
    /// The dtype is not one this codec reads.
    #[error(
        "npy: unsupported dtype {descr:?} (supported: '<f4', '<f8', '<i8' and their '>' forms)"
    )]
    UnsupportedDtype {
        /// The `descr` field.
        descr: String,
    },
    /// No tensor can have the shape: the product of its nonzero dimensions exceeds
    /// [`MAX_NUMEL`](crate::MAX_NUMEL) (or overflows), so its byte size does not fit in
    /// memory arithmetic.
    #[error("npy: shape {shape:?} is too large")]
    TooLarge {
        /// The shape.
        shape: Vec<usize>,
    },
    /// Fewer or more data bytes than the shape needs.
    #[error("npy: shape {shape:?} needs {expected} data bytes, found {found}")]
    DataLength {
        /// The shape.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Element count and shape disagree when building an array.
    #[error("npy: {len} elements do not fill shape {shape:?}")]
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// The number of elements given.
        len: usize,
    },
    /// The array's dtype is not the one asked for.
    #[error("npy: the array holds {found}, not {expected}")]
    DtypeMismatch {
        /// What the caller asked for.
        expected: &'static str,
        /// What the array holds.
        found: &'static str,
    },
}

/// The elements of an array, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `float32` (`'<f4'`).
    F32(Vec<f32>),
    /// `float64` (`'<f8'`).
    F64(Vec<f64>),
    /// `int64` (`'<i8'`): labels, indices.
    I64(Vec<i64>),
}

impl NpyData {
    fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    /// NumPy's name of the dtype (`"float32"`, `"float64"`, `"int64"`).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::I64(_) => "int64",
        }
    }
}

/// An n-dimensional array as stored in a `.npy` file: a shape and row-major elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Npy {
    shape: Vec<usize>,
    data: NpyData,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    F32,
    F64,
    I64,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::F32 => 4,
            Kind::F64 | Kind::I64 => 8,
        }
    }
}

/// The parsed header dict.
struct Header {
    kind: Kind,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> NpyError + '_ {
    move |source| NpyError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Npy {
    /// An array from a shape and row-major elements.
    ///
    /// # Errors
    /// [`NpyError::ShapeMismatch`] when the element count is not the shape's product;
    /// [`NpyError::TooLarge`] when that product overflows.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<Self, NpyError> {
        let n = numel(&shape)?;
        if n != data.len() {
            return Err(NpyError::ShapeMismatch {
                shape,
                len: data.len(),
            });
        }
        Ok(Npy { shape, data })
    }

    /// A tensor's shape and elements (`float32` or `float64` after its element type).
    pub fn from_tensor<T: Float>(t: &Tensor<T>) -> Self {
        let data = match T::DTYPE {
            DType::F32 => NpyData::F32(t.as_slice().iter().map(|&x| x.as_f64() as f32).collect()),
            DType::F64 => NpyData::F64(t.as_slice().iter().map(|&x| x.as_f64()).collect()),
        };
        Npy {
            shape: t.dims().to_vec(),
            data,
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements.
    pub fn data(&self) -> &NpyData {
        &self.data
    }

    /// The elements as a tensor of `T`. `float32` and `float64` arrays convert to either
    /// element type (`float64` to `f32` rounds to nearest, as NumPy's `astype`).
    ///
    /// # Errors
    /// [`NpyError::DtypeMismatch`] for an `int64` array (use [`Npy::to_i64`]).
    pub fn to_tensor<T: Float>(&self) -> Result<Tensor<T>, NpyError> {
        let data: Vec<T> = match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| T::of(x as f64)).collect(),
            NpyData::F64(v) => v.iter().map(|&x| T::of(x)).collect(),
            NpyData::I64(_) => {
                return Err(NpyError::DtypeMismatch {
                    expected: "a float array",
                    found: "int64",
                })
            }
        };
        Tensor::from_vec(data, self.shape.clone()).map_err(|_| NpyError::ShapeMismatch {
            shape: self.shape.clone(),
            len: self.data.len(),
        })
    }

    /// The elements of an `int64` array.
    ///
    /// # Errors
    /// [`NpyError::DtypeMismatch`] for a float array.
    pub fn to_i64(&self) -> Result<&[i64], NpyError> {
        match &self.data {
            NpyData::I64(v) => Ok(v),
            d => Err(NpyError::DtypeMismatch {
                expected: "int64",
                found: d.dtype_name(),
            }),
        }
    }

    /// Reads one array from a stream (bytes after it are left unread).
    ///
    /// # Errors
    /// [`NpyError::BadMagic`], [`NpyError::UnsupportedVersion`], [`NpyError::BadHeader`],
    /// [`NpyError::UnsupportedDtype`], [`NpyError::TooLarge`]; [`NpyError::DataLength`]
    /// when the stream ends before the data does; [`NpyError::Io`] for read errors.
    pub fn read(mut r: impl Read) -> Result<Self, NpyError> {
        let io = io_err(Path::new(""));
        let mut pre = [0u8; 8];
        read_prefix(&mut r, &mut pre).map_err(io)?;
        if &pre[..6] != MAGIC {
            return Err(NpyError::BadMagic {
                found: pre[..6].to_vec(),
            });
        }
        let (major, minor) = (pre[6], pre[7]);
        let len_bytes = match (major, minor) {
            (1, 0) => 2,
            (2, 0) | (3, 0) => 4,
            _ => return Err(NpyError::UnsupportedVersion { major, minor }),
        };
        let mut lb = [0u8; 4];
        read_prefix(&mut r, &mut lb[..len_bytes]).map_err(io_err(Path::new("")))?;
        let header_len = u32::from_le_bytes(lb) as usize;
        if header_len > MAX_HEADER {
            return Err(NpyError::BadHeader {
                reason: "header longer than 10000 bytes",
                header: String::new(),
            });
        }
        let mut raw = vec![0u8; header_len];
        read_prefix(&mut r, &mut raw).map_err(io_err(Path::new("")))?;
        if major != 3 && !raw.is_ascii() {
            return Err(NpyError::BadHeader {
                reason: "a version 1 or 2 header must be ASCII",
                header: String::from_utf8_lossy(&raw).into_owned(),
            });
        }
        let text = String::from_utf8(raw).map_err(|e| NpyError::BadHeader {
            reason: "header is not UTF-8",
            header: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;
        let h = parse_header(&text)?;
        let n = numel(&h.shape)?;
        let bytes = n
            .checked_mul(h.kind.size())
            .ok_or_else(|| NpyError::TooLarge {
                shape: h.shape.clone(),
            })?;
        // `take` + `read_to_end` grows the buffer as data arrives, so a header that claims
        // a huge shape cannot make us allocate more than the stream holds.
        let mut buf = Vec::new();
        r.by_ref()
            .take(bytes as u64)
            .read_to_end(&mut buf)
            .map_err(io_err(Path::new("")))?;
        if buf.len() != bytes {
            return Err(NpyError::DataLength {
                shape: h.shape,
                expected: bytes as u64,
                found: buf.len() as u64,
            });
        }
        let data = decode(&buf, h.kind, h.big_endian);
        let npy = Npy {
            shape: h.shape,
            data,
        };
        Ok(if h.fortran { npy.into_c_order() } else { npy })
    }

    /// Reads a `.npy` file, which must hold exactly one array and nothing after it.
    ///
    /// # Errors
    /// As [`Npy::read`], with the path in [`NpyError::Io`]; [`NpyError::DataLength`] also
    /// for bytes after the data.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, NpyError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        let mut r = io::BufReader::new(file);
        let npy = Self::read(&mut r).map_err(|e| with_path(e, path))?;
        let mut extra = Vec::new();
        r.read_to_end(&mut extra).map_err(io_err(path))?;
        if !extra.is_empty() {
            let expected = (npy.data.len() * npy.kind().size()) as u64;
            return Err(NpyError::DataLength {
                shape: npy.shape,
                expected,
                found: expected + extra.len() as u64,
            });
        }
        Ok(npy)
    }

    fn kind(&self) -> Kind {
        match self.data {
            NpyData::F32(_) => Kind::F32,
            NpyData::F64(_) => Kind::F64,
            NpyData::I64(_) => Kind::I64,
        }
    }

    /// Writes the array in `.npy` format (version 1.0, or 2.0 for a header past 65535
    /// bytes; little-endian; C order).
    ///
    /// # Errors
    /// [`NpyError::Io`] when writing fails.
    pub fn write(&self, mut w: impl Write) -> Result<(), NpyError> {
        let io = io_err(Path::new(""));
        let descr = match self.kind() {
            Kind::F32 => "<f4",
            Kind::F64 => "<f8",
            Kind::I64 => "<i8",
        };
        let shape = match self.shape.as_slice() {
            [d] => format!("({d},)"),
            s => format!(
                "({})",
                s.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut dict =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // As `np.save`, so that files are byte-identical to NumPy's: spare spaces for the
        // leading dimension to grow in place, then padding so that magic, version, length
        // field, dict and '\n' end on the alignment (a full block when already aligned).
        if let Some(d) = self.shape.first() {
            let digits = d.to_string().len();
            dict.extend(std::iter::repeat_n(' ', 21usize.saturating_sub(digits)));
        }
        let padded = |len_bytes: usize| {
            let unpadded = 8 + len_bytes + dict.len() + 1;
            dict.len() + ALIGN - unpadded % ALIGN + 1
        };
        let len_bytes = if padded(2) <= u16::MAX as usize { 2 } else { 4 };
        let header_len = padded(len_bytes);
        dict.extend(std::iter::repeat_n(' ', header_len - dict.len() - 1));
        dict.push('\n');
        let mut out = Vec::with_capacity(8 + len_bytes + dict.len() + self.data.len() * 8);
        out.extend_from_slice(MAGIC);
        if len_bytes == 2 {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&[2, 0]);
            out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        match &self.data {
            NpyData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
        w.write_all(&out).map_err(io)
    }

    /// Writes the array to a file, replacing it crash-safely (through
    /// [`write_atomic`](super::write_atomic): a reader or a crash sees the old file or the
    /// complete new one, never a torn one).
    ///
    /// # Errors
    /// [`NpyError::Io`] with the path.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), NpyError> {
        let path = path.as_ref();
        let mut bytes = Vec::new();
        self.write(&mut bytes).map_err(|e| with_path(e, path))?;
        super::write_atomic(path, &bytes).map_err(|e| match e {
            super::Error::Io { path, source } => NpyError::Io { path, source },
            // write_atomic fails only with I/O errors; keep any other one readable.
            other => NpyError::Io {
                path: path.to_owned(),
                source: io::Error::other(other.to_string()),
            },
        })
    }

    /// Reorders Fortran-order (column-major) elements into row-major.
    fn into_c_order(self) -> Self {
        let shape = self.shape;
        let r = shape.len();
        // Element at row-major index i has multi-index m; its column-major offset is
        // Σ m[d]·Π_{e<d} shape[e].
        let mut col_strides = vec![1usize; r];
        for d in 1..r {
            col_strides[d] = col_strides[d - 1] * shape[d - 1];
        }
        let n: usize = shape.iter().product();
        let src = |i: usize| {
            let (mut rem, mut off) = (i, 0);
            for d in (0..r).rev() {
                off += (rem % shape[d]) * col_strides[d];
                rem /= shape[d];
            }
            off
        };
        fn gather<T: Copy>(v: &[T], n: usize, src: impl Fn(usize) -> usize) -> Vec<T> {
            (0..n).map(|i| v[src(i)]).collect()
        }
        let data = match &self.data {
            NpyData::F32(v) => NpyData::F32(gather(v, n, src)),
            NpyData::F64(v) => NpyData::F64(gather(v, n, src)),
            NpyData::I64(v) => NpyData::I64(gather(v, n, src)),
        };
        Npy { shape, data }
    }
}

impl fmt::Display for Npy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} array of shape {:?}",
            self.data.dtype_name(),
            self.shape
        )
    }
}

/// Reads a float `.npy` file into a tensor (see [`Npy::to_tensor`] for conversions).
///
/// # Errors
/// As [`Npy::load`] and [`Npy::to_tensor`].
pub fn load<T: Float>(path: impl AsRef<Path>) -> Result<Tensor<T>, NpyError> {
    Npy::load(path)?.to_tensor()
}

/// Writes a tensor as a `.npy` file (`float32` or `float64` after `T`).
///
/// # Errors
/// [`NpyError::Io`] with the path.
pub fn save<T: Float>(path: impl AsRef<Path>, t: &Tensor<T>) -> Result<(), NpyError> {
    Npy::from_tensor(t).save(path)
}

fn with_path(e: NpyError, path: &Path) -> NpyError {
    match e {
        NpyError::Io { source, .. } => NpyError::Io {
            path: path.to_owned(),
            source,
        },
        e => e,
    }
}

/// `read_exact`, with an early end of stream reported as the I/O error it is.
fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    r.read_exact(buf)
}

/// The element count of a shape a tensor can have (the rule of [`crate::Shape::check`]:
/// an empty array may not carry huge dimensions either, whose strides would overflow).
fn numel(shape: &[usize]) -> Result<usize, NpyError> {
    crate::Shape::from(shape.to_vec())
        .checked_numel()
        .ok_or_else(|| NpyError::TooLarge {
            shape: shape.to_vec(),
        })
}

fn decode(buf: &[u8], kind: Kind, big: bool) -> NpyData {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            buf.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().expect("internal: exact chunk");
                    if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }
                })
                .collect()
        };
    }
    match kind {
        Kind::F32 => NpyData::F32(conv!(f32, 4)),
        Kind::F64 => NpyData::F64(conv!(f64, 8)),
        Kind::I64 => NpyData::I64(conv!(i64, 8)),
    }
}

/// A cursor over the header text: just enough of Python's literal syntax for the dict
/// NumPy writes (strings, `True`/`False`, tuples of integers).
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn string(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let q = self.s[self.pos..]
            .chars()
            .next()
            .filter(|&c| c == '\'' || c == '"')?;
        let start = self.pos + 1;
        let end = start + self.s[start..].find(q)?;
        self.pos = end + 1;
        Some(&self.s[start..end])
    }
    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        let len = self.s[start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(self.s.len() - start);
        self.pos += len;
        &self.s[start..start + len]
    }
}

fn parse_header(text: &str) -> Result<Header, NpyError> {
    let bad = |reason| NpyError::BadHeader {
        reason,
        header: text.to_string(),
    };
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| bad("header does not end with a newline"))?;
    let body = body.trim_end_matches(' ');
    let mut lx = Lexer { s: body, pos: 0 };
    if !lx.eat('{') {
        return Err(bad("header is not a dict"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if lx.eat('}') {
            break;
        }
        let key = lx.string().ok_or_else(|| bad("expected a quoted key"))?;
        if !lx.eat(':') {
            return Err(bad("expected ':' after a key"));
        }
        let dup = match key {
            "descr" => descr
                .replace(lx.string().ok_or_else(|| bad("descr is not a string"))?)
                .is_some(),
            "fortran_order" => fortran
                .replace(match lx.word() {
                    "True" => true,
                    "False" => false,
                    _ => return Err(bad("fortran_order is not True or False")),
                })
                .is_some(),
            "shape" => shape
                .replace(
                    parse_shape(&mut lx).ok_or_else(|| bad("shape is not a tuple of integers"))?,
                )
                .is_some(),
            _ => return Err(bad("unexpected key (only descr, fortran_order, shape)")),
        };
        if dup {
            return Err(bad("a key appears twice"));
        }
        if !lx.eat(',') {
            if lx.eat('}') {
                break;
            }
            return Err(bad("expected ',' or '}'"));
        }
    }
    lx.skip_ws();
    if lx.pos != body.len() {
        return Err(bad("text after the dict"));
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(bad(
            "missing key (descr, fortran_order and shape are required)",
        ));
    };
    let (big_endian, kind) = match descr.as_bytes() {
        [b'<', rest @ ..] => (false, rest),
        [b'>', rest @ ..] => (true, rest),
        _ => (false, &b""[..]),
    };
    let kind = match kind {
        b"f4" => Kind::F32,
        b"f8" => Kind::F64,
        b"i8" => Kind::I64,
        _ => {
            return Err(NpyError::UnsupportedDtype {
                descr: descr.to_string(),
            })
        }
    };
    Ok(Header {
        kind,
        big_endian,
        fortran,
        shape,
    })
}

/// `()`, `(n,)` or `(a, b, ..)` with an optional trailing comma.
fn parse_shape(lx: &mut Lexer<'_>) -> Option<Vec<usize>> {
    if !lx.eat('(') {
        return None;
    }
    let mut dims = Vec::new();
    loop {
        if lx.eat(')') {
            break;
        }
        let w = lx.word();
        // Python writes plain decimals; `L` suffixes (Python 2) and signs are not shapes.
        if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        dims.push(w.parse().ok()?);
        if !lx.eat(',') {
            if lx.eat(')') {
                // `(3)` is the integer 3 in Python, not a tuple
                if dims.len() == 1 {
                    return None;
                }
                break;
            }
            return None;
        }
    }
    Some(dims)
}

#[cfg(test)]
#[path = "npy_tests.rs"]
mod tests;
