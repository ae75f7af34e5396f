//! [`MaxPool2d`] and [`AvgPool2d`] over NCHW inputs.

use autograd::{Float, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward};
use crate::Module;

#[track_caller]
fn check<T: Float>(layer: &'static str, x: Var<'_, T>) -> Result<()> {
    if x.rank() != 4 {
        return Err(Error::input(layer, "[N, C, H, W]", x.shape()));
    }
    Ok(())
}

/// `nn.MaxPool2d`: the maximum of each window (floor mode); the gradient goes to each
/// window's arg-max.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Module)]
pub struct MaxPool2d {
    /// Window (rows, cols).
    pub kernel_size: (usize, usize),
    /// Step between windows; `None` = the kernel size (PyTorch's default).
    pub stride: Option<(usize, usize)>,
    /// Implicit padding with -inf on each side (at most half the kernel).
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// A `k × k` window with stride `k` and no padding.
    pub fn new(k: usize) -> Self {
        MaxPool2d {
            kernel_size: (k, k),
            stride: None,
            padding: (0, 0),
        }
    }
}

impl<T: Float> Forward<T> for MaxPool2d {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        check("MaxPool2d", x)?;
        Ok(x.max_pool2d(self.kernel_size, self.stride, self.padding)?)
    }
}

/// `nn.AvgPool2d`: the mean of each window (padding zeros count, PyTorch's
/// `count_include_pad=True`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Module)]
pub struct AvgPool2d {
    /// Window (rows, cols).
    pub kernel_size: (usize, usize),
    /// Step between windows; `None` = the kernel size (PyTorch's default).
    pub stride: Option<(usize, usize)>,
    /// Zero padding on each side (at most half the kernel).
    pub padding: (usize, usize),
}

impl AvgPool2d {
    /// A `k × k` window with stride `k` and no padding.
    pub fn new(k: usize) -> Self {
        AvgPool2d {
            kernel_size: (k, k),
            stride: None,
            padding: (0, 0),
        }
    }
}

impl<T: Float> Forward<T> for AvgPool2d {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        check("AvgPool2d", x)?;
        Ok(x.avg_pool2d(self.kernel_size, self.stride, self.padding)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::gradcheck_module;
    use autograd::{GradcheckOptions, Tape, Tensor};

    // Distinct values, so no window has a tie for its max (max is not differentiable there).
    fn x() -> Tensor<f64> {
        Tensor::from_fn([2, 2, 4, 5], |i| ((i * 37 % 80) as f64) * 0.1 - 4.0).unwrap()
    }

    #[test]
    fn pools_have_torch_shapes_and_values() {
        let tape = Tape::<f64>::new();
        let v = tape.constant(Tensor::arange(16).unwrap().reshape([1, 1, 4, 4]).unwrap());
        let m = MaxPool2d::new(2).forward(&Ctx::new(&tape), v).unwrap();
        assert_eq!(m.value().to_vec(), [5., 7., 13., 15.]);
        let a = AvgPool2d::new(2).forward(&Ctx::new(&tape), v).unwrap();
        assert_eq!(a.value().to_vec(), [2.5, 4.5, 10.5, 12.5]);
        let bad = tape.constant(Tensor::zeros([4, 4]).unwrap());
        assert!(matches!(
            MaxPool2d::new(2).forward(&Ctx::new(&tape), bad),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn pools_gradcheck_with_stride_and_padding() {
        let o = GradcheckOptions::default();
        gradcheck_module(&MaxPool2d::new(2), &[x()], |v| v[0], &o).unwrap();
        gradcheck_module(&AvgPool2d::new(2), &[x()], |v| v[0], &o).unwrap();
        let strided = MaxPool2d {
            kernel_size: (3, 2),
            stride: Some((1, 2)),
            padding: (1, 1),
        };
        gradcheck_module(&strided, &[x()], |v| v[0], &o).unwrap();
        let avg = AvgPool2d {
            kernel_size: (2, 3),
            stride: Some((2, 1)),
            padding: (1, 1),
        };
        gradcheck_module(&avg, &[x()], |v| v[0], &o).unwrap();
    }
}
