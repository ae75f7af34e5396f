//! Ops that copy, rearrange or mask elements along axes: `pad` (constant, reflect,
//! replicate, circular), `flip`, `roll`, `repeat`, `expand`, `tril`/`triu`,
//! `masked_fill`, `split`/`chunk`.
//!
//! Each is a gather of the input through a computed flat index map (the one mechanism of
//! `index.rs`), so its gradient is the matching scatter-add: copies of an element add up,
//! padding and masked-out entries get nothing, and every order of derivative comes for free.
//! Output sizes computed from user arguments use checked arithmetic.

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape, Tensor, PAD};
use crate::var::Var;

/// How [`Var::pad`] fills the new border (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode<T> {
    /// A constant (`mode='constant', value=..`); padded entries get no gradient.
    Constant(T),
    /// The mirror image around the edge element, which is not repeated: `[a, b, c, d]`
    /// padded by 2 on each side is `[c, b, a, b, c, d, c, b]`. Each pad must be smaller
    /// than its dimension.
    Reflect,
    /// The edge element repeated (`'replicate'`); the dimension must not be empty.
    Replicate,
    /// The other end of the axis wrapped around (`'circular'`); each pad must be at most
    /// its dimension.
    Circular,
}

/// Appends to `idx` the flat input indices of a gather in which output position `i` along
/// axis `d` reads input position `maps[d][i]` (or nothing, [`PAD`]) independently of the
/// other axes, row-major over the output shape `[maps[0].len(), maps[1].len(), ..]`;
/// `input` gives the strides.
fn separable_indices(idx: &mut Vec<usize>, input: &Shape, maps: &[Vec<usize>]) {
    fn fill(idx: &mut Vec<usize>, maps: &[Vec<usize>], strides: &[usize], base: usize) {
        let Some((map, rest)) = maps.split_first() else {
            idx.push(base);
            return;
        };
        for &m in map {
            // In range: `m` is below its input dimension, so the offset is below numel.
            let at = if base == PAD || m == PAD {
                PAD
            } else {
                base + m * strides[0]
            };
            fill(idx, rest, &strides[1..], at);
        }
    }
    fill(idx, maps, &input.strides(), 0);
}

/// Resolves a list of distinct axes in the order given (an empty list is no axis).
#[track_caller]
fn distinct_axes(op: &'static str, shape: &Shape, axes: &[isize]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let u = shape.axis(op, a)?;
        if out.contains(&u) {
            return Err(Error::Axis {
                op,
                axis: a,
                shape: shape.clone(),
                location: std::panic::Location::caller(),
            });
        }
        out.push(u);
    }
    Ok(out)
}

impl<'t, T: Float> Var<'t, T> {
    /// Gathers into an output of `dims` through per-axis maps: `map(d, i)` is the input
    /// position that output position `i` along axis `d` reads (or [`PAD`]). The output
    /// shape is checked first, and the maps are only built for a non-empty output (an
    /// empty tensor may still have a huge axis, whose map is never needed); every buffer
    /// is reserved fallibly, the index buffer first, since a valid shape can still be
    /// larger than memory.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for an output shape no tensor can have or that cannot be
    /// allocated.
    #[track_caller]
    fn gather_separable(
        self,
        op: &'static str,
        dims: Vec<usize>,
        fill: T,
        map: impl Fn(usize, usize) -> usize,
    ) -> Result<Self> {
        let out = Shape::from(dims);
        if out.check(op)? == 0 {
            return Ok(self.gather_named(op, Vec::new(), out, fill));
        }
        let mut idx = crate::tensor::buffer(op, &out)?;
        let mut maps = Vec::with_capacity(out.rank());
        for (d, &n) in out.iter().enumerate() {
            let mut m = crate::tensor::buffer(op, &Shape::from([n]))?;
            m.extend((0..n).map(|i| map(d, i)));
            maps.push(m);
        }
        separable_indices(&mut idx, &self.shape(), &maps);
        Ok(self.gather_named(op, idx, out, fill))
    }

    /// Pads the trailing axes, as `torch.nn.functional.pad`: `pads` lists `(before, after)`
    /// pairs starting from the **last** axis, so `[1, 2, 0, 1]` pads the last axis with 1
    /// before and 2 after, and the one before it with 0 and 1.
    ///
    /// ```
    /// use autograd::{ops::PadMode, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], [4])?);
    /// let r = x.pad(&[2, 2], PadMode::Reflect)?;
    /// assert_eq!(r.value().to_vec(), vec![3., 2., 1., 2., 3., 4., 3., 2.]);
    /// let c = x.pad(&[1, 0], PadMode::Constant(0.5))?;
    /// assert_eq!(c.value().to_vec(), vec![0.5, 1., 2., 3., 4.]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// The gradient of a copied entry flows to its source (reflected and replicated copies
    /// add up); constant padding gets none.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an odd number of pads, more pairs than axes, a
    /// reflect pad not smaller than its dimension, a circular pad larger than its
    /// dimension, a replicate or circular pad of an empty dimension, or a padding that
    /// overflows an axis's size; [`Error::TooLarge`] for an output shape no tensor can
    /// have.
    #[track_caller]
    pub fn pad(self, pads: &[usize], mode: PadMode<T>) -> Result<Self> {
        let shape = self.shape();
        let r = shape.rank();
        if !pads.len().is_multiple_of(2) || pads.len() / 2 > r {
            return Err(Error::invalid(
                "pad",
                format!(
                    "{} pad values: need (before, after) pairs for at most {r} axes",
                    pads.len()
                ),
                &shape,
            ));
        }
        let mut befores = vec![0usize; r];
        let mut afters = vec![0usize; r];
        for (k, pair) in pads.chunks(2).enumerate() {
            befores[r - 1 - k] = pair[0];
            afters[r - 1 - k] = pair[1];
        }
        let mut dims = Vec::with_capacity(r);
        for d in 0..r {
            let n = shape[d];
            let (b, a) = (befores[d], afters[d]);
            let bad = match mode {
                PadMode::Constant(_) => None,
                PadMode::Reflect if b.max(a) > 0 && b.max(a) >= n => Some(format!(
                    "reflect padding ({b}, {a}) of axis {d} must be smaller than its size {n}"
                )),
                PadMode::Replicate if b.max(a) > 0 && n == 0 => Some(format!(
                    "cannot replicate the edge of axis {d}, which is empty"
                )),
                PadMode::Circular if b.max(a) > 0 && b.max(a) > n => Some(format!(
                    "circular padding ({b}, {a}) of axis {d} wraps around more than once (size {n})"
                )),
                _ => None,
            };
            if let Some(reason) = bad {
                return Err(Error::invalid("pad", reason, &shape));
            }
            match n.checked_add(b).and_then(|m| m.checked_add(a)) {
                Some(m) => dims.push(m),
                None => {
                    return Err(Error::invalid(
                        "pad",
                        format!("padding ({b}, {a}) of axis {d} overflows its size"),
                        &shape,
                    ))
                }
            }
        }
        let fill = match mode {
            PadMode::Constant(v) => v,
            _ => T::zero(),
        };
        // The maps are built only for a non-empty output, whose every dim is at most
        // MAX_NUMEL and so fits in isize (as do the paddings, which are smaller).
        self.gather_separable("pad", dims, fill, |d, i| {
            let (n, b) = (shape[d] as isize, befores[d] as isize);
            let j = i as isize - b;
            if (0..n).contains(&j) {
                return j as usize;
            }
            match mode {
                PadMode::Constant(_) => PAD,
                PadMode::Reflect => (if j < 0 { -j } else { 2 * (n - 1) - j }) as usize,
                PadMode::Replicate => j.clamp(0, n - 1) as usize,
                PadMode::Circular => j.rem_euclid(n) as usize,
            }
        })
    }

    /// Reverses the order of elements along each of `axes` (`torch.flip`; an empty list
    /// flips nothing).
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range or given twice.
    #[track_caller]
    pub fn flip(self, axes: &[isize]) -> Result<Self> {
        let shape = self.shape();
        let ax = distinct_axes("flip", &shape, axes)?;
        self.gather_separable("flip", shape.to_vec(), T::zero(), |d, i| {
            if ax.contains(&d) {
                shape[d] - 1 - i
            } else {
                i
            }
        })
    }

    /// Rotates elements along `axes` by `shifts` (`torch.roll`): a positive shift moves
    /// entries to higher indices, `out[(i + s) mod n] = x[i]`. With no axes the tensor is
    /// rolled as if flattened, by the single shift given. An axis given twice is rolled
    /// twice.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the numbers of shifts and axes differ (or, with no
    /// axes, there is not exactly one shift); [`Error::Axis`] for an axis out of range.
    #[track_caller]
    pub fn roll(self, shifts: &[isize], axes: &[isize]) -> Result<Self> {
        let shape = self.shape();
        if axes.is_empty() {
            if shifts.len() != 1 {
                return Err(Error::invalid(
                    "roll",
                    format!("{} shifts without axes: need exactly one", shifts.len()),
                    &shape,
                ));
            }
            let n = shape.numel();
            let flat = self.reshape([n])?;
            return flat
                .gather_separable("roll", vec![n], T::zero(), |_, j| {
                    roll_source(j, n, shifts[0] as i128)
                })?
                .reshape(shape);
        }
        if shifts.len() != axes.len() {
            return Err(Error::invalid(
                "roll",
                format!("{} shifts for {} axes", shifts.len(), axes.len()),
                &shape,
            ));
        }
        let mut total = vec![0i128; shape.rank()];
        for (&s, &a) in shifts.iter().zip(axes) {
            total[shape.axis("roll", a)?] += s as i128;
        }
        self.gather_separable("roll", shape.to_vec(), T::zero(), |d, j| {
            roll_source(j, shape[d], total[d])
        })
    }

    /// Tiles the tensor (`x.repeat(..)`, NumPy's `tile`, not `repeat_interleave`):
    /// `out[i, j] = x[i mod n0, j mod n1]`. `repeats` may be longer than the rank; the
    /// tensor is then treated as having leading axes of size 1. The gradient sums the
    /// copies.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `repeats` is shorter than the rank or an axis's
    /// size overflows; [`Error::TooLarge`] for an output shape no tensor can have.
    #[track_caller]
    pub fn repeat(self, repeats: &[usize]) -> Result<Self> {
        let shape = self.shape();
        if repeats.len() < shape.rank() {
            return Err(Error::invalid(
                "repeat",
                format!(
                    "{} repeats for a tensor of rank {}: give at least one per axis",
                    repeats.len(),
                    shape.rank()
                ),
                &shape,
            ));
        }
        let lead = repeats.len() - shape.rank();
        let mut padded = vec![1usize; lead];
        padded.extend_from_slice(&shape);
        let mut dims = Vec::with_capacity(padded.len());
        for (&n, &k) in padded.iter().zip(repeats) {
            match n.checked_mul(k) {
                Some(m) => dims.push(m),
                None => {
                    return Err(Error::invalid(
                        "repeat",
                        format!("repeating an axis of size {n} {k} times overflows"),
                        &shape,
                    ))
                }
            }
        }
        let x = self.reshape(padded.clone())?;
        // Only called for a non-empty output, where no axis of `padded` is 0.
        x.gather_separable("repeat", dims, T::zero(), |d, i| i % padded[d])
    }

    /// Broadcasts size-1 (or missing leading) axes to `sizes` (`x.expand(..)`); `-1` keeps
    /// an existing axis's size. No data is duplicated in the gradient: it sums the copies.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `sizes` is shorter than the rank, holds a negative
    /// size other than `-1` (or `-1` for a new axis), or asks to stretch an axis whose
    /// size is not 1; [`Error::TooLarge`] for a shape no tensor can have.
    #[track_caller]
    pub fn expand(self, sizes: &[isize]) -> Result<Self> {
        let shape = self.shape();
        let r = shape.rank();
        if sizes.len() < r {
            return Err(Error::invalid(
                "expand",
                format!("{sizes:?} has fewer axes than the tensor"),
                &shape,
            ));
        }
        let lead = sizes.len() - r;
        let mut dims = Vec::with_capacity(sizes.len());
        for (i, &s) in sizes.iter().enumerate() {
            let own = (i >= lead).then(|| shape[i - lead]);
            let d = match (s, own) {
                (-1, Some(n)) => n,
                (s, _) if s < 0 => {
                    return Err(Error::invalid(
                        "expand",
                        format!("size {s} at position {i} of {sizes:?}"),
                        &shape,
                    ))
                }
                (s, Some(n)) if n != 1 && s as usize != n => {
                    return Err(Error::invalid(
                        "expand",
                        format!("axis {} of size {n} cannot be expanded to {s}", i - lead),
                        &shape,
                    ))
                }
                (s, _) => s as usize,
            };
            dims.push(d);
        }
        Shape::from(dims.clone()).check("expand")?;
        self.broadcast_to(dims)
    }

    /// The lower triangle of the last two axes (`torch.tril`): keeps `x[.., i, j]` where
    /// `j - i <= diagonal`, zeros elsewhere (exact zeros: an infinity above the diagonal
    /// does not turn into NaN).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the rank is below 2.
    #[track_caller]
    pub fn tril(self, diagonal: isize) -> Result<Self> {
        self.triangle("tril", diagonal, true)
    }

    /// The upper triangle of the last two axes (`torch.triu`): keeps `x[.., i, j]` where
    /// `j - i >= diagonal`, zeros elsewhere.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the rank is below 2.
    #[track_caller]
    pub fn triu(self, diagonal: isize) -> Result<Self> {
        self.triangle("triu", diagonal, false)
    }

    #[track_caller]
    fn triangle(self, op: &'static str, diagonal: isize, lower: bool) -> Result<Self> {
        let shape = self.shape();
        let r = shape.rank();
        if r < 2 {
            return Err(Error::invalid(op, "needs at least 2 axes", &shape));
        }
        let (h, w) = (shape[r - 2], shape[r - 1]);
        let diag = diagonal as i128;
        let idx = (0..shape.numel())
            .map(|k| {
                let j = (k % w) as i128;
                let i = ((k / w) % h) as i128;
                let keep = if lower { j - i <= diag } else { j - i >= diag };
                if keep {
                    k
                } else {
                    PAD
                }
            })
            .collect();
        Ok(self.gather_named(op, idx, shape, T::zero()))
    }

    /// `value` where `mask` is nonzero, `self` elsewhere (`x.masked_fill(mask, value)`).
    /// `mask` is a constant that broadcasts to `self`'s shape; filled entries get no
    /// gradient.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when `mask` does not broadcast to `self`'s shape.
    #[track_caller]
    pub fn masked_fill(self, mask: &Tensor<T>, value: T) -> Result<Self> {
        let shape = self.shape();
        let ok = matches!(mask.shape().broadcast(&shape, "masked_fill"), Ok(s) if s == shape);
        if !ok {
            return Err(Error::Broadcast {
                op: "masked_fill",
                lhs: mask.shape().clone(),
                rhs: shape,
                location: std::panic::Location::caller(),
            });
        }
        let fill = self.tape().constant(Tensor::scalar(value));
        fill.where_cond(mask, self)
    }

    /// Splits along `axis` into consecutive pieces of the given sizes (`torch.split` with
    /// a list of sizes); each piece's gradient lands at its offset.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] when the sizes do not add up to the
    /// axis's size.
    #[track_caller]
    pub fn split(self, sizes: &[usize], axis: isize) -> Result<Vec<Self>> {
        let shape = self.shape();
        let ax = shape.axis("split", axis)?;
        let total = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s));
        if total != Some(shape[ax]) {
            return Err(Error::invalid(
                "split",
                format!(
                    "sizes {sizes:?} do not add up to axis {ax} of size {}",
                    shape[ax]
                ),
                &shape,
            ));
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &len in sizes {
            out.push(self.narrow_named("split", &shape, ax, start, len)?);
            start += len;
        }
        Ok(out)
    }

    /// Splits along `axis` into `chunks` pieces of `ceil(n / chunks)` entries, the last one
    /// holding the remainder (`torch.chunk`); like PyTorch it may return fewer pieces
    /// (4 entries in 3 chunks are 2 and 2), and an empty axis gives `chunks` empty pieces.
    ///
    /// # Errors
    /// [`Error::Axis`]; [`Error::InvalidArgument`] for `chunks = 0`.
    #[track_caller]
    pub fn chunk(self, chunks: usize, axis: isize) -> Result<Vec<Self>> {
        let shape = self.shape();
        let ax = shape.axis("chunk", axis)?;
        if chunks == 0 {
            return Err(Error::invalid("chunk", "needs at least one chunk", &shape));
        }
        let n = shape[ax];
        if n == 0 {
            // `chunks` is the caller's and may be huge: reserve fallibly.
            let mut out = crate::tensor::buffer("chunk", &Shape::from([chunks]))?;
            let empty = self.narrow_named("chunk", &shape, ax, 0, 0)?;
            out.resize(chunks, empty);
            return Ok(out);
        }
        let size = n.div_ceil(chunks);
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let len = size.min(n - start);
            out.push(self.narrow_named("chunk", &shape, ax, start, len)?);
            start += len;
        }
        Ok(out)
    }
}

/// The source of position `j` of a roll by `shift` over an axis of `n > 0`:
/// `out[j] = x[(j - shift) mod n]`.
fn roll_source(j: usize, n: usize, shift: i128) -> usize {
    (j as i128 - shift).rem_euclid(n as i128) as usize
}

#[cfg(test)]
mod tests {
    use super::PadMode;
    use crate::{Error, Tape, Tensor};

    fn ramp(dims: &[usize]) -> Tensor<f64> {
        let n = dims.iter().product();
        Tensor::arange(n).unwrap().reshape(dims).unwrap()
    }

    #[test]
    fn pad_modes_on_a_row() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ramp(&[4]));
        let p = |m| x.pad(&[2, 1], m).unwrap().value().to_vec();
        assert_eq!(p(PadMode::Constant(9.)), vec![9., 9., 0., 1., 2., 3., 9.]);
        assert_eq!(p(PadMode::Reflect), vec![2., 1., 0., 1., 2., 3., 2.]);
        assert_eq!(p(PadMode::Replicate), vec![0., 0., 0., 1., 2., 3., 3.]);
        assert_eq!(p(PadMode::Circular), vec![2., 3., 0., 1., 2., 3., 0.]);
        // reflected copies send their gradient back to the source: 2 and 1 appear twice
        let g = tape
            .grad(x.pad(&[2, 1], PadMode::Reflect).unwrap().sum(), &[x])
            .unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![1., 2., 3., 1.]);
    }

    #[test]
    fn pad_pairs_start_from_the_last_axis() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ramp(&[2, 3]));
        let y = x.pad(&[1, 2, 0, 1], PadMode::Constant(0.5)).unwrap();
        assert_eq!(y.dims(), vec![3, 6]);
        assert_eq!(
            y.value().to_vec()[..6].to_vec(),
            vec![0.5, 0., 1., 2., 0.5, 0.5]
        );
        let e = x.pad(&[3, 0], PadMode::Reflect).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { op: "pad", .. }), "{e}");
        assert!(x.pad(&[1, 1, 1], PadMode::Replicate).is_err());
        assert!(x.pad(&[usize::MAX, 1], PadMode::Constant(0.)).is_err());
    }

    #[test]
    fn flip_roll_repeat_expand() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ramp(&[2, 3]));
        assert_eq!(
            x.flip(&[0, -1]).unwrap().value().to_vec(),
            vec![5., 4., 3., 2., 1., 0.]
        );
        assert_eq!(
            x.roll(&[1], &[1]).unwrap().value().to_vec(),
            vec![2., 0., 1., 5., 3., 4.]
        );
        assert_eq!(
            x.roll(&[-1], &[]).unwrap().value().to_vec(),
            vec![1., 2., 3., 4., 5., 0.]
        );
        let r = x.repeat(&[2, 1, 2]).unwrap();
        assert_eq!(r.dims(), vec![2, 2, 6]);
        assert_eq!(
            r.value().to_vec()[..6].to_vec(),
            vec![0., 1., 2., 0., 1., 2.]
        );
        let g = tape.grad(r.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![4.; 6]);
        let e = x.narrow(0, 0, 1).unwrap().expand(&[4, -1]).unwrap();
        assert_eq!(e.dims(), vec![4, 3]);
        assert!(x.expand(&[4, 3]).is_err());
        assert!(x.expand(&[-1, 2, 3]).is_err());
    }

    #[test]
    fn triangles_split_and_chunk() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ramp(&[3, 3]));
        assert_eq!(
            x.tril(0).unwrap().value().to_vec(),
            vec![0., 0., 0., 3., 4., 0., 6., 7., 8.]
        );
        assert_eq!(
            x.triu(1).unwrap().value().to_vec(),
            vec![0., 1., 2., 0., 0., 5., 0., 0., 0.]
        );
        let parts = x.split(&[1, 2], 1).unwrap();
        assert_eq!(parts[1].value().to_vec(), vec![1., 2., 4., 5., 7., 8.]);
        assert!(x.split(&[1, 1], 1).is_err());
        let five = tape.var(ramp(&[5]));
        let sizes: Vec<usize> = five
            .chunk(3, 0)
            .unwrap()
            .iter()
            .map(|c| c.dims()[0])
            .collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        let four: Vec<usize> = tape
            .var(ramp(&[4]))
            .chunk(3, 0)
            .unwrap()
            .iter()
            .map(|c| c.dims()[0])
            .collect();
        assert_eq!(four, vec![2, 2]);
    }

    #[test]
    fn masked_fill_gets_no_gradient_where_filled() {
        let tape = Tape::<f64>::new();
        let x = tape.var(ramp(&[2, 2]));
        let m = Tensor::from_vec(vec![1., 0.], [2]).unwrap();
        let y = x.masked_fill(&m, -1.).unwrap();
        assert_eq!(y.value().to_vec(), vec![-1., 1., -1., 3.]);
        let g = tape.grad(y.sum(), &[x]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![0., 1., 0., 1.]);
        assert!(x.masked_fill(&Tensor::zeros([3]).unwrap(), 0.).is_err());
    }
}
