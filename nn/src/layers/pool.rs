//! Pooling over NCHW inputs: [`MaxPool2d`], [`AvgPool2d`] and [`AdaptiveAvgPool2d`].

use autograd::{AvgPool2dArgs, Float, MaxPool2dArgs, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward};
use crate::Module;

/// Checks a pooling layer's input: NCHW, no zero-length dimension.
#[track_caller]
fn check<T: Float>(layer: &'static str, x: Var<'_, T>) -> Result<()> {
    let s = x.shape();
    if s.rank() != 4 {
        return Err(Error::input(layer, "[N, C, H, W]", s));
    }
    if s.contains(&0) {
        return Err(Error::input(
            layer,
            "[N, C, H, W] with no zero-length dimension",
            s,
        ));
    }
    Ok(())
}

/// `nn.MaxPool2d`: the maximum of each window; the gradient goes to each window's
/// arg-max. [`forward_with_indices`](MaxPool2d::forward_with_indices) also returns the
/// arg-max positions (PyTorch's `return_indices=True`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Module)]
pub struct MaxPool2d {
    /// Window (rows, cols).
    pub kernel_size: (usize, usize),
    /// Step between windows; `None` = the kernel size (PyTorch's default).
    pub stride: Option<(usize, usize)>,
    /// Implicit padding with -∞ on each side (at most half the dilated kernel).
    pub padding: (usize, usize),
    /// Spacing between window taps (default 1).
    pub dilation: (usize, usize),
    /// Round the output size up, keeping a last partial window (default false).
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// A `k × k` window with stride `k`, no padding, floor mode.
    pub fn new(k: usize) -> Self {
        MaxPool2d {
            kernel_size: (k, k),
            stride: None,
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    fn args(&self) -> MaxPool2dArgs {
        MaxPool2dArgs {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        }
    }

    /// The pooled values and, for each, the position of its maximum: the flat index
    /// `h·W + w` within its `(n, c)` plane of the input, laid out like the output
    /// (PyTorch's `return_indices=True`; `MaxUnpool2d`'s convention).
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// use nn::{Ctx, MaxPool2d};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 5., 2., 0., 3., 4., 9., 8.], [1, 1, 2, 4])?);
    /// let (y, at) = MaxPool2d::new(2).forward_with_indices(&Ctx::new(&tape), x)?;
    /// assert_eq!(y.value().to_vec(), [5., 9.]);
    /// assert_eq!(at, [1, 6]);
    /// # Ok::<(), nn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InputShape`] for an input that is not NCHW or has a zero-length
    /// dimension; autograd's error for a window that does not fit.
    #[track_caller]
    pub fn forward_with_indices<'t, T: Float>(
        &self,
        _cx: &Ctx<'t, T>,
        x: Var<'t, T>,
    ) -> Result<(Var<'t, T>, Vec<usize>)> {
        check("MaxPool2d", x)?;
        Ok(x.max_pool2d_with_indices(self.kernel_size, self.args())?)
    }
}

impl<T: Float> Forward<T> for MaxPool2d {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        check("MaxPool2d", x)?;
        Ok(x.max_pool2d_args(self.kernel_size, self.args())?)
    }
}

/// `nn.AvgPool2d`: the mean of each window. By default the zero padding counts in the
/// divisor (`count_include_pad = true`, PyTorch's default); with `false` each window is
/// divided by the number of its elements inside the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Module)]
pub struct AvgPool2d {
    /// Window (rows, cols).
    pub kernel_size: (usize, usize),
    /// Step between windows; `None` = the kernel size (PyTorch's default).
    pub stride: Option<(usize, usize)>,
    /// Zero padding on each side (at most half the kernel).
    pub padding: (usize, usize),
    /// Round the output size up, keeping a last partial window (default false).
    pub ceil_mode: bool,
    /// Whether the padding counts in the divisor (default true).
    pub count_include_pad: bool,
    /// A fixed divisor for every window instead (default none).
    pub divisor_override: Option<usize>,
}

impl AvgPool2d {
    /// A `k × k` window with stride `k`, no padding, PyTorch's defaults otherwise.
    pub fn new(k: usize) -> Self {
        AvgPool2d {
            kernel_size: (k, k),
            stride: None,
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
}

impl<T: Float> Forward<T> for AvgPool2d {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        check("AvgPool2d", x)?;
        let args = AvgPool2dArgs {
            stride: self.stride,
            padding: self.padding,
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
            divisor_override: self.divisor_override,
        };
        Ok(x.avg_pool2d_args(self.kernel_size, args)?)
    }
}

/// `nn.AdaptiveAvgPool2d(output_size)`: averages windows chosen so the output has a fixed
/// size whatever the input's: output row `i` covers input rows `⌊i·H/OH⌋` to
/// `⌈(i+1)·H/OH⌉ - 1`, likewise for columns. A `None` size keeps the input's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Module)]
pub struct AdaptiveAvgPool2d {
    /// Output (rows, cols); `None` keeps that input size.
    // Configuration, but a tuple of `Option`s is not `Plain`.
    #[module(skip)]
    pub output_size: (Option<usize>, Option<usize>),
}

impl AdaptiveAvgPool2d {
    /// Pools to `(rows, cols)`.
    pub fn new(rows: usize, cols: usize) -> Self {
        AdaptiveAvgPool2d {
            output_size: (Some(rows), Some(cols)),
        }
    }
}

impl<T: Float> Forward<T> for AdaptiveAvgPool2d {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        check("AdaptiveAvgPool2d", x)?;
        let s = x.shape();
        let out = (
            self.output_size.0.unwrap_or(s[2]),
            self.output_size.1.unwrap_or(s[3]),
        );
        if out.0 == 0 || out.1 == 0 {
            return Err(Error::input(
                "AdaptiveAvgPool2d",
                format!("a positive output size, not {out:?}"),
                s,
            ));
        }
        Ok(x.adaptive_avg_pool2d(out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{gradcheck_module, gradgradcheck_module};
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
        let ad = AdaptiveAvgPool2d::new(3, 1)
            .forward(&Ctx::new(&tape), v)
            .unwrap();
        // row windows [0, 2), [1, 3), [2, 4): means 3.5, 7.5, 11.5
        assert_eq!(ad.value().to_vec(), [3.5, 7.5, 11.5]);
        let bad = tape.constant(Tensor::zeros([4, 4]).unwrap());
        assert!(matches!(
            MaxPool2d::new(2).forward(&Ctx::new(&tape), bad),
            Err(Error::InputShape { .. })
        ));
        let empty = tape.constant(Tensor::zeros([1, 0, 4, 4]).unwrap());
        assert!(matches!(
            AdaptiveAvgPool2d::new(2, 2).forward(&Ctx::new(&tape), empty),
            Err(Error::InputShape { .. })
        ));
    }

    #[test]
    fn pools_gradcheck_with_stride_padding_dilation_and_ceil_mode() {
        let o = GradcheckOptions::default();
        gradcheck_module(&MaxPool2d::new(2), &[x()], |v| v[0], &o).unwrap();
        gradcheck_module(&AvgPool2d::new(2), &[x()], |v| v[0], &o).unwrap();
        let strided = MaxPool2d {
            kernel_size: (3, 2),
            stride: Some((1, 2)),
            padding: (1, 1),
            dilation: (1, 2),
            ceil_mode: true,
        };
        gradcheck_module(&strided, &[x()], |v| v[0], &o).unwrap();
        let avg = AvgPool2d {
            kernel_size: (2, 3),
            stride: Some((2, 1)),
            padding: (1, 1),
            ceil_mode: true,
            count_include_pad: false,
            divisor_override: None,
        };
        gradcheck_module(&avg, &[x()], |v| v[0], &o).unwrap();
        gradcheck_module(&AdaptiveAvgPool2d::new(3, 2), &[x()], |v| v[0], &o).unwrap();
    }

    #[test]
    fn max_pool_indices_name_the_unpadded_plane() {
        let tape = Tape::<f64>::new();
        let pool = MaxPool2d {
            stride: Some((2, 2)),
            padding: (1, 1),
            ..MaxPool2d::new(3)
        };
        let v = tape.var(x());
        let (y, at) = pool.forward_with_indices(&Ctx::new(&tape), v).unwrap();
        assert_eq!(y.dims(), [2, 2, 2, 3]);
        // every index reads back the pooled value from its own plane
        let xs = x();
        for (k, (&i, &yv)) in at.iter().zip(y.value().as_slice()).enumerate() {
            let plane = k / 6;
            assert_eq!(xs.as_slice()[plane * 20 + i], yv);
        }
    }

    #[test]
    fn pools_gradgradcheck() {
        let o = GradcheckOptions::default();
        let small = Tensor::from_fn([1, 2, 3, 4], |i| ((i * 37 % 24) as f64) * 0.1 - 1.2).unwrap();
        // squared inside, so the second derivative is not identically zero
        fn sq<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
            v[0].square()
        }
        let max = MaxPool2d {
            stride: Some((1, 1)),
            padding: (1, 0),
            ..MaxPool2d::new(2)
        };
        gradgradcheck_module(&max, std::slice::from_ref(&small), sq, &o).unwrap();
        let avg = AvgPool2d {
            padding: (1, 1),
            count_include_pad: false,
            ..AvgPool2d::new(2)
        };
        gradgradcheck_module(&avg, std::slice::from_ref(&small), sq, &o).unwrap();
        gradgradcheck_module(&AdaptiveAvgPool2d::new(2, 3), &[small], sq, &o).unwrap();
    }
}
