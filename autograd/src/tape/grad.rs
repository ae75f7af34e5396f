//! The differentiable sweep behind [`Tape::grad`] and [`Tape::vjp`]: every op's
//! `Var` rule, recorded on the tape, so gradients can be differentiated again.

use std::panic::Location;

use crate::error::{Error, Loc, Result};
use crate::tensor::Float;
use crate::var::Var;

use super::nodes::Kind;
use super::Tape;

impl<T: Float> Tape<T> {
    /// Gradients of a one-element `output` with respect to `inputs`, as `Var`s on this
    /// tape that can be differentiated again (second derivatives, Hessian-vector products,
    /// gradient penalties). Params are not touched. An input that `output` does not depend
    /// on gets a zero gradient. Gradient hooks ([`Var::register_hook`]) on values between
    /// the inputs and the output run, on the differentiable gradient.
    ///
    /// # Errors
    /// [`Error::NotScalar`] for a multi-element output; [`Error::NoBackward`] when the path
    /// crosses an op without a backward rule; [`Error::ForeignVar`]; [`Error::Anomaly`].
    #[track_caller]
    pub fn grad<'t>(
        &'t self,
        output: Var<'t, T>,
        inputs: &[Var<'t, T>],
    ) -> Result<Vec<Var<'t, T>>> {
        let loc = Location::caller();
        // Before anything indexes this tape with the ids of possibly foreign vars.
        self.check_own(&output, inputs, "grad", loc)?;
        let seed = self.seed(output.id(), "grad", loc)?;
        let seed = self.push(seed, Kind::Constant, loc);
        self.grad_impl(output, Var::new(self, seed), inputs, loc)
    }

    /// The vector-Jacobian product `Jᵀ·cotangent` of `output` with respect to `inputs`
    /// (as [`Tape::grad`], for an output of any shape).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the cotangent's shape differs from the output's; as
    /// [`Tape::grad`] otherwise.
    #[track_caller]
    pub fn vjp<'t>(
        &'t self,
        output: Var<'t, T>,
        cotangent: Var<'t, T>,
        inputs: &[Var<'t, T>],
    ) -> Result<Vec<Var<'t, T>>> {
        let loc = Location::caller();
        self.check_own(&output, inputs, "vjp", loc)?;
        self.check_own(&cotangent, &[], "vjp", loc)?;
        let (os, cs) = (output.shape(), cotangent.shape());
        if os != cs {
            return Err(Error::ShapeMismatch {
                op: "vjp",
                expected: os,
                got: cs,
                location: loc,
            });
        }
        self.grad_impl(output, cotangent, inputs, loc)
    }

    fn check_own(
        &self,
        output: &Var<'_, T>,
        inputs: &[Var<'_, T>],
        op: &'static str,
        loc: Loc,
    ) -> Result<()> {
        if inputs
            .iter()
            .chain([output])
            .any(|v| !std::ptr::eq(v.tape(), self))
        {
            return Err(Error::ForeignVar { op, location: loc });
        }
        Ok(())
    }

    fn grad_impl<'t>(
        &'t self,
        output: Var<'t, T>,
        seed: Var<'t, T>,
        inputs: &[Var<'t, T>],
        loc: Loc,
    ) -> Result<Vec<Var<'t, T>>> {
        self.check_anomaly()?;
        if let Some(_v) = inputs
            .iter()
            .chain([&output, &seed])
            .find(|v| !std::ptr::eq(v.tape(), self))
        {
            return Err(Error::ForeignVar {
                op: "grad",
                location: loc,
            });
        }
        // Nodes older than every input cannot lie on a path from an input to the output.
        let stop = inputs
            .iter()
            .map(|v| v.id())
            .min()
            .unwrap_or(output.id() + 1);
        let grads = self.sweep(output, seed, stop)?;
        Ok(inputs
            .iter()
            .map(|v| match grads.get(v.id()).copied().flatten() {
                Some(g) => g,
                None => {
                    let z = self.value(v.id()).zeros_like();
                    Var::new(self, self.push(z, Kind::Constant, loc))
                }
            })
            .collect())
    }

    /// The reverse sweep from `output` (seeded with `seed`) through the rules of nodes
    /// `stop..=output`: the gradient of every node reached, as `Var`s. Nodes below `stop`
    /// receive gradients but do not pass them on.
    pub(super) fn sweep<'t>(
        &'t self,
        output: Var<'t, T>,
        seed: Var<'t, T>,
        stop: usize,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        let out = output.id();
        let mut grads: Vec<Option<Var<'t, T>>> = vec![None; out + 1];
        grads[out] = Some(seed);
        for i in (stop..=out).rev() {
            let Some(mut g) = grads[i] else { continue };
            if self.has_hooks(i) {
                g = self.run_hooks(i, g)?;
                grads[i] = Some(g);
            }
            for (p, gp) in self.run_rule(i, g)? {
                grads[p] = Some(match grads[p] {
                    None => gp,
                    Some(acc) => acc.add(gp)?,
                });
            }
        }
        Ok(grads)
    }
}
