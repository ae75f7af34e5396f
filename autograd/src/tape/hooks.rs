//! Gradient hooks on values: [`Var::register_hook`] (PyTorch's `Tensor.register_hook`),
//! run by both sweeps once a value's gradient is complete, before it flows on.

use std::panic::Location;
use std::rc::Rc;

use crate::error::{Error, Loc, Result};
use crate::tensor::Float;
use crate::var::Var;

use super::Tape;

/// The function a gradient hook runs: the gradient in, `Some(replacement)` or `None`
/// (keep it) out.
type HookFn<T> = dyn for<'a> Fn(Var<'a, T>) -> Result<Option<Var<'a, T>>>;

pub(crate) struct VarHook<T: Float> {
    f: Box<HookFn<T>>,
    /// Where it was registered: what errors name it by.
    registered: Loc,
}

impl<'t, T: Float> Var<'t, T> {
    /// Registers a gradient hook on this value (PyTorch's `Tensor.register_hook`): once the
    /// gradient flowing into the value is complete (every use of it has contributed), the
    /// hook sees it, and may replace it by returning `Ok(Some(g))` — the replacement then
    /// flows on to the value's inputs (or, on a parameter's `Var`, is what gets
    /// accumulated). `Ok(None)` keeps the gradient (an inspecting hook). Several hooks on
    /// one value run in registration order, each seeing the previous one's result.
    ///
    /// Both sweeps run hooks:
    /// - [`Var::backward`] hands the hook the gradient's value as a `Var` recorded with
    ///   recording off; whatever the hook computes is dropped once it returns.
    /// - [`Tape::grad`] and [`Tape::vjp`] hand the hook the differentiable gradient `Var`
    ///   of that sweep, and record what the hook computes: a replacement built from it
    ///   (`g.mul_scalar(2.0)`) is differentiated through when the result is differentiated
    ///   again, so higher-order gradients see the hook as part of the function. A hook
    ///   there runs for values on a path between the requested inputs and the output.
    ///
    /// Hooks live as long as the tape (until [`Tape::reset`]). A hook must not fail
    /// silently: its error ends the sweep and is returned by it.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(3.0));
    /// let y = x.square();
    /// y.register_hook(|g| Ok(Some(g.mul_scalar(2.0))))?; // doubles dL/dy
    /// let dx = tape.grad(y.mul_scalar(5.0), &[x])?[0];  // 2 · 5 · 2x
    /// assert_eq!(dx.item()?, 60.0);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NoGradient`] when the value has no gradient path (a constant, a frozen
    /// parameter, a value computed under `no_grad`): no gradient would ever reach the
    /// hook. When the hook returns a gradient of another shape, the sweep that runs it
    /// fails with [`Error::HookShape`], naming the hook's line and the value's op.
    #[track_caller]
    pub fn register_hook(
        self,
        hook: impl for<'a> Fn(Var<'a, T>) -> Result<Option<Var<'a, T>>> + 'static,
    ) -> Result<()> {
        let location = Location::caller();
        if !self.requires_grad() {
            return Err(Error::NoGradient {
                op: "register_hook",
                location,
            });
        }
        let hook = Rc::new(VarHook {
            f: Box::new(hook),
            registered: location,
        });
        self.tape()
            .inner
            .borrow_mut()
            .hooks
            .entry(self.id())
            .or_default()
            .push(hook);
        Ok(())
    }
}

impl<T: Float> Tape<T> {
    /// Whether node `i` has gradient hooks.
    pub(super) fn has_hooks(&self, i: usize) -> bool {
        let inner = self.inner.borrow();
        !inner.hooks.is_empty() && inner.hooks.contains_key(&i)
    }

    /// Runs node `i`'s hooks on its complete gradient `g`, returning the gradient that
    /// flows on. Each result is checked: recorded on this tape, with the node's shape.
    pub(super) fn run_hooks<'t>(&'t self, i: usize, g: Var<'t, T>) -> Result<Var<'t, T>> {
        // Cloned out of the tape: a hook records ops (and may register hooks).
        let hooks: Vec<Rc<VarHook<T>>> = match self.inner.borrow().hooks.get(&i) {
            Some(h) => h.clone(),
            None => return Ok(g),
        };
        let mut g = g;
        for h in hooks {
            let Some(out) = (h.f)(g)? else { continue };
            let (op, location) = {
                let inner = self.inner.borrow();
                (inner.nodes[i].op_name(), inner.nodes[i].location)
            };
            if !std::ptr::eq(out.tape(), self) {
                return Err(Error::ForeignVar {
                    op: "register_hook",
                    location: h.registered,
                });
            }
            if !self.same_shape(out.id(), i) {
                return Err(Error::HookShape {
                    op,
                    hook: h.registered,
                    expected: self.shape(i),
                    got: out.shape(),
                    location,
                });
            }
            g = out;
        }
        Ok(g)
    }
}
