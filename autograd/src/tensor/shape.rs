//! Shapes, axes and row-major strides.

use std::fmt;
use std::ops::Deref;
use std::panic::Location;

use smallvec::SmallVec;

use crate::error::{Error, Result};

/// The most elements a tensor may hold: a buffer of that many `f64` is `isize::MAX` bytes,
/// the largest allocation Rust allows.
pub const MAX_NUMEL: usize = isize::MAX as usize / std::mem::size_of::<f64>();

/// The dimensions of a tensor, outermost first. Up to four dimensions are stored inline.
///
/// Any list of dimensions is a `Shape` (errors carry the shapes a caller asked for), but only
/// a *valid* shape can belong to a tensor: the product of its nonzero dimensions is at most
/// [`MAX_NUMEL`]. Every strides, offset and sub-product of a valid shape is then representable,
/// so kernels index without overflow checks. Constructors and ops check user-given shapes
/// once, with [`Shape::check`], and return [`Error::TooLarge`] otherwise.
#[derive(Eq, Default)]
pub struct Shape(SmallVec<[usize; 4]>);

impl Shape {
    /// The shape of a 0-d (scalar) tensor.
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar). For a shape no tensor can have (see
    /// [`Shape::checked_numel`]) the product saturates at `usize::MAX` instead of wrapping, so
    /// it never equals a real buffer's length.
    #[inline]
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// The element count if a tensor can have this shape: `None` when the product of the
    /// nonzero dimensions exceeds [`MAX_NUMEL`] (including when it overflows `usize`).
    ///
    /// Zero dimensions are left out of the bound so that strides, which multiply the
    /// dimensions to the right of each axis, never overflow either: `[0, 2⁴⁰, 2⁴⁰]` has no
    /// elements but no tensor can have it.
    ///
    /// ```
    /// use autograd::Shape;
    /// assert_eq!(Shape::from([2, 3]).checked_numel(), Some(6));
    /// assert_eq!(Shape::from([3, 0]).checked_numel(), Some(0));
    /// assert_eq!(Shape::from([1 << 32, 1 << 32]).checked_numel(), None);
    /// ```
    pub fn checked_numel(&self) -> Option<usize> {
        let mut nonzero = 1usize;
        let mut any_zero = false;
        for &d in self.0.iter() {
            if d == 0 {
                any_zero = true;
            } else {
                nonzero = nonzero.checked_mul(d).filter(|&n| n <= MAX_NUMEL)?;
            }
        }
        Some(if any_zero { 0 } else { nonzero })
    }

    /// Checks that a tensor can have this shape, returning its element count.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (naming `op` and the caller's line) when
    /// [`Shape::checked_numel`] is `None`.
    #[track_caller]
    pub fn check(&self, op: &'static str) -> Result<usize> {
        // Taken here: `#[track_caller]` does not reach into the closure below.
        let location = Location::caller();
        self.checked_numel().ok_or_else(|| Error::TooLarge {
            op,
            shape: self.clone(),
            location,
        })
    }

    /// The dimensions as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut s: SmallVec<[usize; 4]> = SmallVec::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            // Exact for valid shapes; saturating keeps an invalid one from wrapping.
            s[i] = s[i + 1].saturating_mul(self.0[i + 1]);
        }
        s
    }

    /// Resolves a possibly negative axis (`-1` is the last) against this shape.
    ///
    /// # Errors
    /// [`Error::Axis`] when the axis is out of range.
    #[track_caller]
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::Axis {
                op,
                axis,
                shape: self.clone(),
                location: Location::caller(),
            });
        }
        Ok(a as usize)
    }

    /// Resolves a list of axes; an empty list means all axes. Duplicates are an error.
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range or given twice.
    #[track_caller]
    pub fn axes(&self, op: &'static str, axes: &[isize]) -> Result<SmallVec<[usize; 4]>> {
        if axes.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        let mut out: SmallVec<[usize; 4]> = SmallVec::new();
        for &a in axes {
            let u = self.axis(op, a)?;
            if out.contains(&u) {
                return Err(Error::Axis {
                    op,
                    axis: a,
                    shape: self.clone(),
                    location: Location::caller(),
                });
            }
            out.push(u);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The NumPy broadcast of two shapes (trailing dimensions aligned, size 1 stretches).
    ///
    /// # Errors
    /// [`Error::Broadcast`] when a pair of aligned dimensions differ and neither is 1;
    /// [`Error::TooLarge`] when the result is too large for a tensor (`[n, 1, 0]` and
    /// `[1, n, 0]` are both valid for a huge `n`, their broadcast is not).
    #[track_caller]
    pub fn broadcast(&self, other: &Shape, op: &'static str) -> Result<Shape> {
        if self == other {
            return Ok(self.clone());
        }
        let r = self.rank().max(other.rank());
        let mut out: SmallVec<[usize; 4]> = SmallVec::from_elem(1, r);
        for i in 0..r {
            let a = self.dim_from_end(r - 1 - i);
            let b = other.dim_from_end(r - 1 - i);
            out[i] = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(Error::Broadcast {
                        op,
                        lhs: self.clone(),
                        rhs: other.clone(),
                        location: Location::caller(),
                    })
                }
            };
        }
        let out = Shape(out);
        out.check(op)?;
        Ok(out)
    }

    /// Strides for reading a tensor of this shape as if it had shape `target` (which it must
    /// broadcast to): 0 along stretched or missing dimensions.
    pub(crate) fn broadcast_strides(&self, target: &Shape) -> SmallVec<[usize; 4]> {
        let own = self.strides();
        let off = target.rank() - self.rank();
        (0..target.rank())
            .map(|i| {
                if i < off || self.0[i - off] == 1 {
                    0
                } else {
                    own[i - off]
                }
            })
            .collect()
    }

    fn dim_from_end(&self, k: usize) -> usize {
        if k < self.rank() {
            self.0[self.rank() - 1 - k]
        } else {
            1
        }
    }

    /// This shape with the given (sorted, resolved) axes set to 1 or removed.
    pub(crate) fn reduced(&self, axes: &[usize], keepdim: bool) -> Shape {
        let mut out = SmallVec::new();
        for (i, &d) in self.0.iter().enumerate() {
            if axes.contains(&i) {
                if keepdim {
                    out.push(1);
                }
            } else {
                out.push(d);
            }
        }
        Shape(out)
    }
}

impl PartialEq for Shape {
    // Shapes are compared on every op and every backward step; an explicit loop over at
    // most a handful of dims beats the `memcmp` call the derived slice comparison makes.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.dims(), other.dims());
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
    }
}

impl Clone for Shape {
    // Every op clones its output's shape; a slice copy beats SmallVec's generic extend.
    #[inline]
    fn clone(&self) -> Self {
        Shape(SmallVec::from_slice(&self.0))
    }
}

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.dims().hash(state);
    }
}

impl Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(SmallVec::from_slice(d))
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(SmallVec::from_slice(&d))
    }
}

impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(d: &[usize; N]) -> Self {
        Shape(SmallVec::from_slice(d))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(SmallVec::from_vec(d))
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

impl FromIterator<usize> for Shape {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        Shape(iter.into_iter().collect())
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        let a = Shape::from([2, 1, 3]);
        let b = Shape::from([4, 1]);
        assert_eq!(a.broadcast(&b, "t").unwrap(), Shape::from([2, 4, 3]));
        let c = Shape::from([2, 3]);
        let d = Shape::from([3, 3]);
        assert!(matches!(c.broadcast(&d, "t"), Err(Error::Broadcast { .. })));
    }

    #[test]
    fn negative_axes_count_from_the_end() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.axis("t", -1).unwrap(), 2);
        assert!(s.axis("t", 3).is_err());
        assert!(s.axes("t", &[0, -3]).is_err());
    }

    #[test]
    fn only_shapes_whose_nonzero_product_fits_are_valid() {
        let k = 1usize << 32;
        assert_eq!(Shape::from([k, k]).checked_numel(), None);
        assert_eq!(Shape::from([k, k]).numel(), usize::MAX);
        // 3·K ≡ 2000 (mod 2⁶⁴): the wrapped product would look like a small tensor
        let wrap = 0x5555_5555_5555_57f0usize;
        assert_eq!(wrap.wrapping_mul(3), 2000);
        assert!(Shape::from([3, wrap]).checked_numel().is_none());
        assert_eq!(Shape::from([0, 7]).checked_numel(), Some(0));
        assert_eq!(Shape::from([0, k, k]).checked_numel(), None);
        assert_eq!(Shape::from([MAX_NUMEL]).checked_numel(), Some(MAX_NUMEL));
        assert_eq!(Shape::from([MAX_NUMEL + 1]).checked_numel(), None);
        assert_eq!(Shape::scalar().checked_numel(), Some(1));
        assert!(matches!(
            Shape::from([k, 1, 0]).broadcast(&Shape::from([1, k, 0]), "t"),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::from([2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert_eq!(
            Shape::from([3, 1])
                .broadcast_strides(&Shape::from([2, 3, 4]))
                .as_slice(),
            &[0, 1, 0]
        );
    }
}
