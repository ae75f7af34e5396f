//! Attention masks, typed by meaning: [`BoolMask`] says which query–key pairs may *not*
//! attend, [`AttnMask`] is either such a mask or an additive float mask. PyTorch takes
//! both as tensors and tells them apart by dtype, so passing a "keep" mask where a
//! "block" mask is expected (or a 0/1 float where a bool was meant) silently inverts or
//! ignores it; here the meaning is in the type and stated at every construction site.

use std::panic::Location;
use std::sync::Arc;

use autograd::{Float, Shape, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::Vars;

/// Which query–key pairs may **not** attend (`true` = blocked): PyTorch's boolean
/// `attn_mask` / `key_padding_mask` convention, where a blocked score becomes `-inf`
/// before the softmax.
///
/// The polarity is named at construction: [`from_blocked`](BoolMask::from_blocked) for
/// "true means blocked" data (PyTorch's), [`from_allowed`](BoolMask::from_allowed) for
/// "true means may attend" data (JAX/Flax's `mask`, a padding "keep" mask), or one of
/// [`causal`](BoolMask::causal), [`key_padding`](BoolMask::key_padding),
/// [`from_fn`](BoolMask::from_fn).
///
/// ```
/// use nn::BoolMask;
/// // query i may see keys j <= i
/// let causal = BoolMask::causal(3, 3);
/// assert_eq!(causal.blocked(), &[false, true, true, false, false, true, false, false, false]);
/// // sample 0 has 2 real keys of 3, sample 1 all 3
/// let pad = BoolMask::key_padding(&[2, 3], 3)?;
/// assert_eq!(pad.dims(), &[2, 3]);
/// assert!(pad.is_blocked(&[0, 2]) && !pad.is_blocked(&[1, 2]));
/// // the same mask from "keep" data
/// let keep = BoolMask::from_allowed(&[true, true, false, true, true, true], [2, 3])?;
/// assert_eq!(keep, pad);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BoolMask {
    blocked: Arc<[bool]>,
    shape: Shape,
}

impl std::fmt::Debug for BoolMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BoolMask({} of {} blocked)",
            self.count_blocked(),
            self.shape
        )
    }
}

impl BoolMask {
    /// A mask from row-major data in which `true` means **blocked** (PyTorch's bool mask).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `blocked.len()` is not the shape's element count.
    #[track_caller]
    pub fn from_blocked(blocked: &[bool], shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if blocked.len() != shape.numel() {
            return Err(Error::config(
                "BoolMask",
                format!(
                    "{} values for shape {shape} ({} elements)",
                    blocked.len(),
                    shape.numel()
                ),
            ));
        }
        Ok(BoolMask {
            blocked: blocked.into(),
            shape,
        })
    }

    /// A mask from row-major data in which `true` means **may attend** (a "keep" mask);
    /// stored inverted.
    ///
    /// # Errors
    /// As [`BoolMask::from_blocked`].
    #[track_caller]
    pub fn from_allowed(allowed: &[bool], shape: impl Into<Shape>) -> Result<Self> {
        let blocked: Vec<bool> = allowed.iter().map(|a| !a).collect();
        Self::from_blocked(&blocked, shape)
    }

    /// A mask whose entry at each multi-index is `blocked(index)`.
    pub fn from_fn(shape: impl Into<Shape>, mut blocked: impl FnMut(&[usize]) -> bool) -> Self {
        let shape = shape.into();
        let dims = shape.dims().to_vec();
        let mut index = vec![0usize; dims.len()];
        let mut data = Vec::with_capacity(shape.numel());
        for _ in 0..shape.numel() {
            data.push(blocked(&index));
            // row-major increment
            for a in (0..dims.len()).rev() {
                index[a] += 1;
                if index[a] < dims[a] {
                    break;
                }
                index[a] = 0;
            }
        }
        BoolMask {
            blocked: data.into(),
            shape,
        }
    }

    /// The causal mask `[queries, keys]`: query `i` may attend to keys `j <= i` (blocked
    /// strictly above the diagonal, aligned at the top left), as PyTorch's
    /// `is_causal=True` and `nn.Transformer.generate_square_subsequent_mask`.
    pub fn causal(queries: usize, keys: usize) -> Self {
        Self::from_fn([queries, keys], |ix| ix[1] > ix[0])
    }

    /// A key-padding mask `[N, keys]` from each sample's number of real keys: key `j` of
    /// sample `n` is blocked when `j >= lengths[n]`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a length exceeds `keys`.
    #[track_caller]
    pub fn key_padding(lengths: &[usize], keys: usize) -> Result<Self> {
        if let Some((n, &len)) = lengths.iter().enumerate().find(|(_, &l)| l > keys) {
            return Err(Error::config(
                "BoolMask::key_padding",
                format!("sample {n} has length {len}, more than the {keys} keys"),
            ));
        }
        Ok(Self::from_fn([lengths.len(), keys], |ix| {
            ix[1] >= lengths[ix[0]]
        }))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Row-major entries, `true` where blocked.
    pub fn blocked(&self) -> &[bool] {
        &self.blocked
    }

    /// How many entries are blocked.
    pub fn count_blocked(&self) -> usize {
        self.blocked.iter().filter(|&&b| b).count()
    }

    /// Whether the entry at `index` is blocked (`false` for an index out of range).
    pub fn is_blocked(&self, index: &[usize]) -> bool {
        if index.len() != self.shape.rank() || index.iter().zip(self.dims()).any(|(i, d)| i >= d) {
            return false;
        }
        let flat: usize = index
            .iter()
            .zip(self.shape.strides().iter())
            .map(|(i, s)| i * s)
            .sum();
        self.blocked[flat]
    }

    /// The same entries under another shape with as many elements.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.shape.numel() {
            return Err(Error::config(
                "BoolMask::reshape",
                format!("cannot view a mask of shape {} as {shape}", self.shape),
            ));
        }
        Ok(BoolMask {
            blocked: self.blocked.clone(),
            shape,
        })
    }

    /// Blocked where either mask is (PyTorch combines `attn_mask` and
    /// `key_padding_mask` this way), with NumPy broadcasting.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the shapes do not broadcast.
    #[track_caller]
    pub fn or(&self, other: &BoolMask) -> Result<Self> {
        let shape = self
            .shape
            .broadcast(&other.shape, "BoolMask::or")
            .map_err(|_| {
                Error::config(
                    "BoolMask::or",
                    format!("shapes {} and {} do not broadcast", self.shape, other.shape),
                )
            })?;
        let a = self.broadcast_index(&shape);
        let b = other.broadcast_index(&shape);
        let data: Vec<bool> = a
            .iter()
            .zip(&b)
            .map(|(&i, &j)| self.blocked[i] || other.blocked[j])
            .collect();
        Ok(BoolMask {
            blocked: data.into(),
            shape,
        })
    }

    /// For each element of `shape` (which this mask broadcasts to), the flat index of the
    /// element of this mask it reads.
    fn broadcast_index(&self, shape: &Shape) -> Vec<usize> {
        let out = shape.dims();
        let pad = out.len() - self.shape.rank();
        let own = self.shape.strides();
        let strides: Vec<usize> = (0..out.len())
            .map(|a| {
                if a < pad || self.shape[a - pad] == 1 {
                    0
                } else {
                    own[a - pad]
                }
            })
            .collect();
        let mut idx = Vec::with_capacity(shape.numel());
        let mut pos = vec![0usize; out.len()];
        let mut flat = 0usize;
        for _ in 0..shape.numel() {
            idx.push(flat);
            for a in (0..out.len()).rev() {
                pos[a] += 1;
                flat += strides[a];
                if pos[a] < out[a] {
                    break;
                }
                flat -= strides[a] * pos[a];
                pos[a] = 0;
            }
        }
        idx
    }

    /// For each row (all axes but the last), whether every key is blocked: shape with
    /// the last axis 1, `1.0` for a row that keeps at least one key, `0.0` for a fully
    /// masked one. `None` when no row is fully masked.
    pub(crate) fn alive_rows<T: Float>(&self) -> Option<Tensor<T>> {
        let dims = self.dims();
        let s = *dims.last()?;
        let rows = self.shape.numel() / s.max(1);
        let alive: Vec<T> = (0..rows)
            .map(|r| {
                let row = &self.blocked[r * s..(r + 1) * s];
                if row.iter().all(|&b| b) {
                    T::zero()
                } else {
                    T::one()
                }
            })
            .collect();
        if alive.iter().all(|&a| a == T::one()) {
            return None;
        }
        let mut out = dims.to_vec();
        *out.last_mut()? = 1;
        Tensor::from_vec(alive, out).ok()
    }

    /// The additive form used on the scores: `0` where allowed, [`blocked_score`] where
    /// blocked.
    pub(crate) fn to_additive<T: Float>(&self) -> Tensor<T> {
        let fill = blocked_score::<T>();
        let data = self
            .blocked
            .iter()
            .map(|&b| if b { fill } else { T::zero() })
            .collect();
        Tensor::from_vec(data, self.shape.clone()).expect("internal: mask data matches shape")
    }
}

/// The score given to a blocked pair: the most negative finite value halved (finite, so
/// a fully masked row never computes `-inf - (-inf)`; halved, so adding a score to it
/// cannot overflow). `exp(blocked - max)` underflows to exactly 0 for any row that keeps
/// a key, so such rows equal PyTorch's `-inf` masking bit for bit.
pub(crate) fn blocked_score<T: Float>() -> T {
    T::min_value() * T::of(0.5)
}

/// A boolean mask is a constant: no `Var` for hooks.
impl<'t, T: Float> Vars<'t, T> for BoolMask {
    fn visit_vars(&self, _f: &mut dyn FnMut(Var<'t, T>)) {}
}

/// An attention mask: which pairs may not attend, or a float added to the scores.
///
/// Both combine with each other and with a key-padding mask as PyTorch does (blocked
/// where either blocks; additive masks add). An additive entry of `-inf` blocks its pair
/// exactly as a [`BoolMask`] entry does (it is turned into one, so it never meets
/// `-inf - (-inf)`).
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{AttnMask, BoolMask};
/// let tape = Tape::<f64>::new();
/// let block: AttnMask<f64> = BoolMask::causal(4, 4).into();
/// // an ALiBi-style bias, differentiable if it is a tape variable
/// let bias = tape.var(Tensor::from_fn([4, 4], |i| -((i % 4) as f64 - (i / 4) as f64).abs())?);
/// let add = AttnMask::Additive(bias);
/// assert_eq!(block.dims(), add.dims());
/// # Ok::<(), autograd::Error>(())
/// ```
#[derive(Clone, Debug)]
pub enum AttnMask<'t, T: Float> {
    /// Pairs that may not attend (`true` = blocked); their scores become `-inf`.
    Block(BoolMask),
    /// Added to the scores `q·kᵀ·scale` before the softmax (relative-position biases,
    /// ALiBi, a float mask of `0`/`-inf`). Gradients flow into it when it is a tape
    /// variable; record a constant with `tape.constant(..)` otherwise.
    Additive(Var<'t, T>),
}

impl<'t, T: Float> AttnMask<'t, T> {
    /// The causal mask `[queries, keys]` (see [`BoolMask::causal`]).
    pub fn causal(queries: usize, keys: usize) -> Self {
        AttnMask::Block(BoolMask::causal(queries, keys))
    }

    /// The mask's shape.
    pub fn shape(&self) -> Shape {
        match self {
            AttnMask::Block(m) => m.shape().clone(),
            AttnMask::Additive(v) => v.shape(),
        }
    }

    /// The mask's dimensions.
    pub fn dims(&self) -> Vec<usize> {
        self.shape().to_vec()
    }

    /// The same mask under another shape with as many elements.
    #[track_caller]
    pub(crate) fn reshape(&self, shape: Shape) -> Result<Self> {
        Ok(match self {
            AttnMask::Block(m) => AttnMask::Block(m.reshape(shape)?),
            AttnMask::Additive(v) => AttnMask::Additive(v.reshape(shape)?),
        })
    }
}

impl<T: Float> From<BoolMask> for AttnMask<'_, T> {
    fn from(m: BoolMask) -> Self {
        AttnMask::Block(m)
    }
}

impl<'t, T: Float> Vars<'t, T> for AttnMask<'t, T> {
    fn visit_vars(&self, f: &mut dyn FnMut(Var<'t, T>)) {
        if let AttnMask::Additive(v) = self {
            f(*v)
        }
    }
}

/// The masks that apply to one score tensor, reduced to at most one boolean and one
/// additive part (each broadcasting to the scores).
pub(crate) struct ScoreMask<'t, T: Float> {
    pub(crate) blocked: Option<BoolMask>,
    pub(crate) additive: Option<Var<'t, T>>,
}

impl<'t, T: Float> Default for ScoreMask<'t, T> {
    fn default() -> Self {
        ScoreMask {
            blocked: None,
            additive: None,
        }
    }
}

impl<'t, T: Float> ScoreMask<'t, T> {
    /// Adds `mask` (already shaped to broadcast to the scores): booleans combine by OR,
    /// additive masks add, and `-inf` entries of an additive mask move to the boolean
    /// part (their additive entry becomes 0, so no infinity enters the graph).
    #[track_caller]
    pub(crate) fn push(&mut self, mask: AttnMask<'t, T>) -> Result<()> {
        match mask {
            AttnMask::Block(m) => self.block(m),
            AttnMask::Additive(v) => {
                let value = v.value();
                let v = if value.as_slice().iter().any(|x| *x == T::neg_infinity()) {
                    let inf: Vec<bool> = value
                        .as_slice()
                        .iter()
                        .map(|x| *x == T::neg_infinity())
                        .collect();
                    let m = BoolMask::from_blocked(&inf, value.shape().clone())?;
                    let cleared = v.masked_fill(&m.to_indicator(), T::zero())?;
                    self.block(m)?;
                    cleared
                } else {
                    v
                };
                self.additive = Some(match self.additive {
                    None => v,
                    Some(a) => a.add(v)?,
                });
                Ok(())
            }
        }
    }

    #[track_caller]
    fn block(&mut self, m: BoolMask) -> Result<()> {
        self.blocked = Some(match &self.blocked {
            None => m,
            Some(b) => b.or(&m)?,
        });
        Ok(())
    }
}

impl BoolMask {
    /// `1.0` where blocked, `0.0` elsewhere (the form `masked_fill` takes).
    pub(crate) fn to_indicator<T: Float>(&self) -> Tensor<T> {
        let data = self
            .blocked
            .iter()
            .map(|&b| if b { T::one() } else { T::zero() })
            .collect();
        Tensor::from_vec(data, self.shape.clone()).expect("internal: mask data matches shape")
    }
}

/// An [`Error::InputShape`] for a mask, naming the layer and which mask.
#[track_caller]
pub(crate) fn mask_error(layer: &'static str, expected: String, got: Shape) -> Error {
    Error::InputShape {
        layer,
        expected,
        got,
        location: Location::caller(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::Tape;

    #[test]
    fn constructors_state_their_polarity() {
        let c = BoolMask::causal(2, 3);
        // query 0 sees key 0; query 1 sees keys 0, 1
        assert_eq!(c.blocked(), &[false, true, true, false, false, true]);
        let keep =
            BoolMask::from_allowed(&[true, false, false, true, true, false], [2, 3]).unwrap();
        assert_eq!(keep, c);
        assert!(BoolMask::from_blocked(&[true], [2]).is_err());
        assert!(BoolMask::key_padding(&[4], 3).is_err());
        let p = BoolMask::key_padding(&[1, 0], 2).unwrap();
        assert_eq!(p.blocked(), &[false, true, true, true]);
        assert_eq!(p.count_blocked(), 3);
        assert!(!p.is_blocked(&[5, 0]));
    }

    #[test]
    fn or_broadcasts_like_numpy() {
        // [2, 1, 3] padding-like OR [2, 3] causal-like → [2, 2, 3]
        let pad =
            BoolMask::from_blocked(&[false, false, true, false, false, false], [2, 1, 3]).unwrap();
        let att = BoolMask::from_blocked(&[false, true, true, false, false, true], [2, 3]).unwrap();
        let both = pad.or(&att).unwrap();
        assert_eq!(both.dims(), &[2, 2, 3]);
        assert_eq!(
            both.blocked(),
            &[
                false, true, true, false, false, true, // sample 0: key 2 padded
                false, true, true, false, false, true, // sample 1: nothing padded
            ]
        );
        assert!(pad.or(&BoolMask::causal(2, 2)).is_err());
    }

    #[test]
    fn alive_rows_flags_fully_masked_rows_only() {
        let m = BoolMask::from_blocked(&[true, true, false, true], [2, 2]).unwrap();
        let alive = m.alive_rows::<f64>().unwrap();
        assert_eq!(alive.dims(), &[2, 1]);
        assert_eq!(alive.to_vec(), vec![0.0, 1.0]);
        assert!(BoolMask::causal(3, 3).alive_rows::<f64>().is_none());
    }

    #[test]
    fn neg_infinity_in_an_additive_mask_becomes_a_block() {
        let tape = Tape::<f64>::new();
        let add = tape
            .constant(Tensor::from_vec(vec![0.5, f64::NEG_INFINITY, -1.0, 0.0], [2, 2]).unwrap());
        let mut sm = ScoreMask::default();
        sm.push(AttnMask::Additive(add)).unwrap();
        assert_eq!(
            sm.blocked.as_ref().unwrap().blocked(),
            &[false, true, false, false]
        );
        assert_eq!(
            sm.additive.unwrap().value().to_vec(),
            vec![0.5, 0.0, -1.0, 0.0]
        );
        assert!(blocked_score::<f32>().is_finite());
        assert!((blocked_score::<f32>() * 2.0).is_finite());
    }
}
