//! Matrix products: `matmul` (2-d and batched, with NumPy broadcasting of leading
//! dimensions) and its transposed-operand forms.

use crate::error::Result;
use crate::op::{BackwardCx, Op, ValueGrads};
use crate::tensor::{Float, Tensor};
use crate::var::Var;

use super::binary::reduce_to_shape;

/// `C = op(A)·op(B)`, where `op` transposes the last two axes when its flag is set. The
/// flags let backward express `g·Bᵀ` and `Aᵀ·g` without copying a transpose, and keep the
/// rule closed: the gradient of a `MatMul` is two `MatMul`s.
#[derive(Debug, Clone, Copy)]
pub struct MatMul {
    /// Transpose the left operand.
    pub ta: bool,
    /// Transpose the right operand.
    pub tb: bool,
}

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        x[0].matmul_t(x[1], self.ta, self.tb)
    }
    fn backward<'t>(&self, cx: &BackwardCx<'t, '_, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad());
        let (ta, tb) = (self.ta, self.tb);
        // With C = op(A)·op(B): dop(A) = g·op(B)ᵀ and dop(B) = op(A)ᵀ·g; undoing the
        // transpose flags gives these four products.
        let ga = if a.requires_grad() {
            let d = if ta {
                b.matmul_t(g, tb, true)?
            } else {
                g.matmul_t(b, false, !tb)?
            };
            Some(reduce_to_shape(d, &a.shape())?)
        } else {
            None
        };
        let gb = if b.requires_grad() {
            let d = if tb {
                g.matmul_t(a, true, ta)?
            } else {
                a.matmul_t(g, !ta, false)?
            };
            Some(reduce_to_shape(d, &b.shape())?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
    fn backward_values(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Option<ValueGrads<T>> {
        // Plain 2-d products only; batched ones may need a broadcast undone.
        let (a, b) = (x[0], x[1]);
        if a.rank() != 2 || b.rank() != 2 {
            return None;
        }
        let (ta, tb) = (self.ta, self.tb);
        let ga = match (needs[0], ta) {
            (false, _) => None,
            (true, true) => Some(b.matmul_t(g, tb, true).ok()?),
            (true, false) => Some(g.matmul_t(b, false, !tb).ok()?),
        };
        let gb = match (needs[1], tb) {
            (false, _) => None,
            (true, true) => Some(g.matmul_t(a, true, ta).ok()?),
            (true, false) => Some(a.matmul_t(g, !ta, false).ok()?),
        };
        Some(smallvec::smallvec![ga, gb])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Matrix product, batched over broadcast leading dimensions (both ranks ≥ 2).
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], [2, 2])?);
    /// let b = tape.constant(Tensor::eye(2)?);
    /// assert_eq!(a.matmul(b)?.value(), a.value());
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Matmul`] when a rank is below 2 or inner dimensions differ;
    /// [`crate::Error::Broadcast`] when batch dimensions do not broadcast.
    #[track_caller]
    pub fn matmul(self, rhs: Self) -> Result<Self> {
        self.binary(
            MatMul {
                ta: false,
                tb: false,
            },
            rhs,
        )
    }

    /// `op(self)·op(rhs)` with optional transposes of the last two axes (no copy).
    ///
    /// # Errors
    /// As [`Var::matmul`].
    #[track_caller]
    pub fn matmul_t(self, rhs: Self, ta: bool, tb: bool) -> Result<Self> {
        self.binary(MatMul { ta, tb }, rhs)
    }
}

#[cfg(test)]
mod tests {
    use crate::{gradcheck, GradcheckOptions, Tape, Tensor};

    #[test]
    fn batched_matmul_broadcasts_the_batch() {
        let tape = Tape::<f64>::new();
        let a =
            tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6., 7., 8.], [2, 2, 2]).unwrap());
        let b = tape.var(Tensor::from_vec(vec![1., 0., 1., 1.], [2, 2]).unwrap());
        let y = a.matmul(b).unwrap();
        // [[1,2],[3,4]]·[[1,0],[1,1]] = [[3,2],[7,4]]; second batch [[11,6],[15,8]]
        assert_eq!(y.value().to_vec(), vec![3., 2., 7., 4., 11., 6., 15., 8.]);
        // the shared b collects the gradient of both batches: Σ_batch aᵀ·1
        let g = tape.grad(y.sum(), &[b]).unwrap()[0];
        assert_eq!(g.value().to_vec(), vec![16., 16., 20., 20.]);
    }

    #[test]
    fn transposed_flags_backward_matches_finite_differences() {
        // op(a) is 2×3 and op(b) is 3×2 under every combination of flags
        let a = Tensor::from_vec(vec![0.1, -0.4, 0.9, 1.3, -0.2, 0.5], [2, 3]).unwrap();
        let b = Tensor::from_vec(vec![0.3, 0.8, -1.1, 0.6, 0.2, -0.7], [3, 2]).unwrap();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let sa = if ta {
                a.transpose(0, 1).unwrap()
            } else {
                a.clone()
            };
            let sb = if tb {
                b.transpose(0, 1).unwrap()
            } else {
                b.clone()
            };
            let tape = Tape::new();
            let y = tape
                .constant(sa.clone())
                .matmul_t(tape.constant(sb.clone()), ta, tb)
                .unwrap();
            assert_eq!(y.value(), a.matmul(&b).unwrap());
            gradcheck(
                |v| v[0].matmul_t(v[1], ta, tb),
                &[sa, sb],
                &GradcheckOptions::default(),
            )
            .unwrap();
        }
    }
}
