//! [`Flatten`]: merges a range of axes into one.

use autograd::{Float, Var};

use crate::error::Result;
use crate::module::{Ctx, Forward};
use crate::Module;

/// `nn.Flatten(start_dim, end_dim)`: `[N, C, H, W] → [N, C·H·W]` by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Module)]
pub struct Flatten {
    /// First axis merged (default 1, keeping the batch axis).
    pub start_dim: isize,
    /// Last axis merged, inclusive (default -1).
    pub end_dim: isize,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten {
            start_dim: 1,
            end_dim: -1,
        }
    }
}

impl<T: Float> Forward<T> for Flatten {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    #[track_caller]
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(x.flatten(self.start_dim, self.end_dim)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::gradcheck_module;
    use autograd::{GradcheckOptions, Tape, Tensor};

    #[test]
    fn flatten_keeps_the_batch_axis_and_gradchecks() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(Tensor::zeros([2, 3, 4, 5]).unwrap());
        let y = Flatten::default().forward(&Ctx::new(&tape), x).unwrap();
        assert_eq!(y.dims(), [2, 60]);
        let mid = Flatten {
            start_dim: 1,
            end_dim: 2,
        };
        assert_eq!(mid.forward(&Ctx::new(&tape), x).unwrap().dims(), [2, 12, 5]);
        let bad = Flatten {
            start_dim: 7,
            end_dim: -1,
        };
        assert!(bad.forward(&Ctx::new(&tape), x).is_err());
        gradcheck_module(
            &Flatten::default(),
            &[Tensor::from_fn([2, 2, 3], |i| i as f64 * 0.1).unwrap()],
            |v| v[0],
            &GradcheckOptions::default(),
        )
        .unwrap();
    }
}
