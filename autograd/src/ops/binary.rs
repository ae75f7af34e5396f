//! Elementwise ops of two tensors with NumPy broadcasting: `add`, `sub`, `mul`, `div`,
//! `pow`, `maximum`, `minimum`, and `where_cond` selection.
//!
//! The gradient of a broadcast operand is the incoming gradient summed over the stretched
//! dimensions, through the one helper [`reduce_to_shape`].

use crate::error::Result;
use smallvec::smallvec;

use crate::op::{BackwardCx, Op, ValueGrads};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// Sums `g` down to `shape` (which must broadcast to `g`'s shape): the gradient of a
/// broadcast. Returns `g` itself when the shapes already agree.
///
/// # Errors
/// [`crate::Error::Broadcast`] when `shape` does not broadcast to `g`'s shape.
#[track_caller]
pub fn reduce_to_shape<'t, T: Float>(g: Var<'t, T>, shape: &Shape) -> Result<Var<'t, T>> {
    if g.tape().has_shape(g.id(), shape) {
        return Ok(g);
    }
    let gs = g.shape();
    let lead = gs.rank() - shape.rank().min(gs.rank());
    let axes: Vec<isize> = (0..gs.rank())
        .filter(|&i| i < lead || (shape[i - lead] == 1 && gs[i] != 1))
        .map(|i| i as isize)
        .collect();
    let summed = if axes.is_empty() {
        g
    } else {
        g.sum_axes(&axes, true)?
    };
    summed.reshape(shape.clone())
}

/// Whether both operands already have the gradient's shape (no broadcast to undo).
fn same_shapes<T: Float>(x: &[&Tensor<T>], g: &Tensor<T>) -> bool {
    x.iter().all(|t| t.shape() == g.shape())
}

fn both<'t, T: Float>(
    cx: &BackwardCx<'t, '_, T>,
    ga: Option<Var<'t, T>>,
    gb: Option<Var<'t, T>>,
) -> Result<Vec<Option<Var<'t, T>>>> {
    // Most products do not broadcast: compare shapes on the tape before cloning any.
    let like = |g: Var<'t, T>, input: Var<'t, T>| {
        if g.tape().same_shape(g.id(), input.id()) {
            Ok(g)
        } else {
            reduce_to_shape(g, &input.shape())
        }
    };
    let ra = ga.map(|g| like(g, cx.input(0))).transpose()?;
    let rb = gb.map(|g| like(g, cx.input(1))).transpose()?;
    Ok(vec![ra, rb])
}

/// `a + b`; both gradients are `g` (reduced to each operand's shape).
#[derive(Debug, Clone, Copy)]
pub struct Add;
impl<T: Float> Op<T> for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].zip_with(x[1], "add", |a, b| a + b)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        both(cx, Some(cx.grad()), Some(cx.grad()))
    }
    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        same_shapes(x, g).then(|| smallvec![Some(g.clone()), Some(g.clone())])
    }
}

/// `a - b`; gradients `g` and `-g`.
#[derive(Debug, Clone, Copy)]
pub struct Sub;
impl<T: Float> Op<T> for Sub {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].zip_with(x[1], "sub", |a, b| a - b)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        both(cx, Some(cx.grad()), Some(cx.grad().neg()))
    }
    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        same_shapes(x, g).then(|| smallvec![Some(g.clone()), Some(g.map(|v| -v))])
    }
}

/// `a · b`; gradients `g·b` and `g·a`.
#[derive(Debug, Clone, Copy)]
pub struct Mul;
impl<T: Float> Op<T> for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].zip_with(x[1], "mul", |a, b| a * b)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad());
        let ga = a.requires_grad().then(|| g.mul(b)).transpose()?;
        let gb = b.requires_grad().then(|| g.mul(a)).transpose()?;
        both(cx, ga, gb)
    }
    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        if !same_shapes(x, g) {
            return None;
        }
        let ga = needs[0]
            .then(|| g.zip_with(x[1], "mul", |g, b| g * b).ok())
            .flatten();
        let gb = needs[1]
            .then(|| g.zip_with(x[0], "mul", |g, a| g * a).ok())
            .flatten();
        Some(smallvec![ga, gb])
    }
}

/// `a / b`; gradients `g/b` and `-g·a/b²`.
#[derive(Debug, Clone, Copy)]
pub struct Div;
impl<T: Float> Op<T> for Div {
    fn name(&self) -> &'static str {
        "div"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].zip_with(x[1], "div", |a, b| a / b)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad());
        let ga = a.requires_grad().then(|| g.div(b)).transpose()?;
        let gb = if b.requires_grad() {
            Some(g.mul(a)?.div(b.square())?.neg())
        } else {
            None
        };
        both(cx, ga, gb)
    }
}

/// `aᵇ` elementwise; gradients `g·b·aᵇ⁻¹` and `g·aᵇ·ln a` (0 where a = 0, as PyTorch).
#[derive(Debug, Clone, Copy)]
pub struct Pow;
impl<T: Float> Op<T> for Pow {
    fn name(&self) -> &'static str {
        "pow"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].zip_with(x[1], "pow", |a, b| a.powf(b))
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b, g, y) = (cx.input(0), cx.input(1), cx.grad(), cx.output());
        let ga = if a.requires_grad() {
            Some(g.mul(b)?.mul(a.pow(b.sub_scalar(T::one()))?)?)
        } else {
            None
        };
        let gb = if b.requires_grad() {
            // ln 0 = -inf would turn 0·(-inf) into NaN; the limit of aᵇ·ln a at a = 0 is 0.
            let nonzero = super::unary::mask(a, |v| v != T::zero());
            let safe_a = a.mul(nonzero)?.add(nonzero.rsub_scalar(T::one()))?;
            Some(g.mul(y)?.mul(safe_a.ln())?.mul(nonzero)?)
        } else {
            None
        };
        both(cx, ga, gb)
    }
}

/// Constant weights of `maximum` (`max = true`) or `minimum` backward for `a` and for `b`,
/// PyTorch's rule: each side gets the gradient unless it loses, half of it on ties. A NaN
/// compares neither equal, greater nor less, so both sides keep the full gradient there.
fn win_weights<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    max: bool,
    op: &'static str,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let half = T::of(0.5);
    let weight = |x: T, y: T| {
        let loses = if max { x < y } else { x > y };
        if x == y {
            half
        } else if loses {
            T::zero()
        } else {
            T::one()
        }
    };
    Ok((a.zip_with(b, op, weight)?, b.zip_with(a, op, weight)?))
}

/// `max(a, b)` (`max = true`) or `min(a, b)` elementwise.
#[derive(Debug, Clone, Copy)]
pub struct Extremum {
    /// `true` for maximum.
    pub max: bool,
}
impl<T: Float> Op<T> for Extremum {
    fn name(&self) -> &'static str {
        if self.max {
            "maximum"
        } else {
            "minimum"
        }
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let max = self.max;
        x[0].zip_with(x[1], self.name_static(), |a, b| {
            if a.is_nan() || b.is_nan() {
                T::nan()
            } else if (a >= b) == max {
                a
            } else {
                b
            }
        })
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad());
        let (wa, wb) = win_weights(&a.value(), &b.value(), self.max, self.name_static())?;
        let ga = g.mul(cx.tape().constant(wa))?;
        let gb = g.mul(cx.tape().constant(wb))?;
        both(cx, Some(ga), Some(gb))
    }
}

impl Extremum {
    fn name_static(&self) -> &'static str {
        if self.max {
            "maximum"
        } else {
            "minimum"
        }
    }
}

/// `cond ? a : b` with a constant condition (nonzero = true), all three broadcast.
#[derive(Debug, Clone)]
pub struct Where<T: Float> {
    cond: Tensor<T>,
}
impl<T: Float> Op<T> for Where<T> {
    fn name(&self) -> &'static str {
        "where"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self
            .cond
            .shape()
            .broadcast(x[0].shape(), "where")?
            .broadcast(x[1].shape(), "where")?;
        let c = self.cond.broadcast_to(shape.clone())?;
        let a = x[0].broadcast_to(shape.clone())?;
        let b = x[1].broadcast_to(shape.clone())?;
        let data = c
            .as_slice()
            .iter()
            .zip(a.as_slice().iter().zip(b.as_slice()))
            .map(|(&c, (&a, &b))| if c != T::zero() { a } else { b })
            .collect();
        Tensor::from_vec(data, shape)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let g = cx.grad();
        let zero = cx.tape().constant(Tensor::scalar(T::zero()));
        let ga = g.where_cond(&self.cond, zero)?;
        let gb = zero.where_cond(&self.cond, g)?;
        both(cx, Some(ga), Some(gb))
    }
}

// `add`, `neg`... are the fallible (or plain) methods behind the `std::ops` sugar in
// var.rs, which calls them; the names are deliberate.
#[allow(clippy::should_implement_trait)]
impl<'t, T: Float> Var<'t, T> {
    /// `self + rhs` with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    #[allow(clippy::should_implement_trait)] // the fallible form; `std::ops::Add` is the panicking sugar
    pub fn add(self, rhs: Self) -> Result<Self> {
        self.binary(Add, rhs)
    }
    /// `self - rhs` with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    #[allow(clippy::should_implement_trait)] // the fallible form; `std::ops::Sub` is the panicking sugar
    pub fn sub(self, rhs: Self) -> Result<Self> {
        self.binary(Sub, rhs)
    }
    /// `self · rhs` elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    #[allow(clippy::should_implement_trait)] // the fallible form; `std::ops::Mul` is the panicking sugar
    pub fn mul(self, rhs: Self) -> Result<Self> {
        self.binary(Mul, rhs)
    }
    /// `self / rhs` elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    #[allow(clippy::should_implement_trait)] // the fallible form; `std::ops::Div` is the panicking sugar
    pub fn div(self, rhs: Self) -> Result<Self> {
        self.binary(Div, rhs)
    }
    /// `selfʳʰˢ` elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn pow(self, rhs: Self) -> Result<Self> {
        self.binary(Pow, rhs)
    }
    /// Elementwise maximum; on ties the gradient is split equally. NaN in either operand
    /// gives NaN (and the full gradient to both sides), as in PyTorch.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn maximum(self, rhs: Self) -> Result<Self> {
        self.binary(Extremum { max: true }, rhs)
    }
    /// Elementwise minimum; on ties the gradient is split equally. NaN propagates, as in
    /// [`Var::maximum`].
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the shapes do not broadcast.
    #[track_caller]
    pub fn minimum(self, rhs: Self) -> Result<Self> {
        self.binary(Extremum { max: false }, rhs)
    }
    /// `cond ? self : other`, elementwise, with `cond` a constant mask (nonzero = true).
    /// The gradient flows only to the side each element was selected from.
    ///
    /// # Errors
    /// [`crate::Error::Broadcast`] when the three shapes do not broadcast.
    #[track_caller]
    pub fn where_cond(self, cond: &Tensor<T>, other: Self) -> Result<Self> {
        self.binary(Where { cond: cond.clone() }, other)
    }
}

#[cfg(test)]
mod tests {
    use crate::{gradcheck, GradcheckOptions, Tape, Tensor};

    #[test]
    fn broadcast_gradients_sum_over_stretched_axes() {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], [2, 3]).unwrap());
        let b = tape.var(Tensor::from_vec(vec![10., 20.], [2, 1]).unwrap());
        let y = a.mul(b).unwrap();
        assert_eq!(y.value().to_vec(), vec![10., 20., 30., 80., 100., 120.]);
        let g = tape.grad(y.sum(), &[a, b]).unwrap();
        // d/da = b broadcast, d/db = row sums of a
        assert_eq!(g[0].value().to_vec(), vec![10., 10., 10., 20., 20., 20.]);
        assert_eq!(g[1].value().to_vec(), vec![6., 15.]);
        assert_eq!(g[1].dims(), vec![2, 1]);
    }

    #[test]
    fn maximum_splits_the_gradient_on_ties() {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::from_vec(vec![1., 2., 3.], [3]).unwrap());
        let b = tape.var(Tensor::from_vec(vec![3., 2., 1.], [3]).unwrap());
        let y = a.maximum(b).unwrap();
        assert_eq!(y.value().to_vec(), vec![3., 2., 3.]);
        let g = tape.grad(y.sum(), &[a, b]).unwrap();
        assert_eq!(g[0].value().to_vec(), vec![0., 0.5, 1.]);
        assert_eq!(g[1].value().to_vec(), vec![1., 0.5, 0.]);
    }

    #[test]
    fn pow_gradient_is_finite_at_a_zero_base() {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::from_vec(vec![0.0, 2.0], [2]).unwrap());
        let b = tape.var(Tensor::from_vec(vec![2.0, 3.0], [2]).unwrap());
        let g = tape.grad(a.pow(b).unwrap().sum(), &[a, b]).unwrap();
        assert_eq!(g[0].value().to_vec(), vec![0.0, 12.0]);
        assert_eq!(g[1].value().to_vec(), vec![0.0, 8.0 * 2f64.ln()]);
    }

    #[test]
    fn div_backward_matches_finite_differences() {
        let a = Tensor::from_vec(vec![0.3, -1.1, 2.0], [3, 1]).unwrap();
        let b = Tensor::from_vec(vec![0.7, -1.3], [2]).unwrap();
        gradcheck(|v| v[0].div(v[1]), &[a, b], &GradcheckOptions::default()).unwrap();
    }
}
