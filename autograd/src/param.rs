//! Persistent leaves: values that outlive tapes and collect gradients.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::tensor::{Float, Tensor};

/// A stable identity for a [`Param`], unique within the process; optimisers key their
/// per-parameter state by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ParamId(pub u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A hook run after a parameter's gradient has been accumulated.
type PostHook<T> = Arc<dyn Fn(&Param<T>) + Send + Sync>;

struct Slot<T> {
    value: Tensor<T>,
    grad: Option<Tensor<T>>,
    name: Option<String>,
    requires_grad: bool,
    /// (hook id, hook), in registration order.
    post_hooks: Vec<(u64, PostHook<T>)>,
}

static NEXT_HOOK: AtomicU64 = AtomicU64::new(0);

/// A trainable tensor shared between a module, the tapes it is bound into and an optimiser.
///
/// Cloning a `Param` clones the handle, not the value. `tape.param(&p)` binds it into a
/// tape; `loss.backward()` adds the gradient into [`Param::grad`].
///
/// ```
/// use autograd::{Param, Tape, Tensor};
/// let w = Param::new(Tensor::from_vec(vec![1.0f64, 2.0], [2])?);
/// let tape = Tape::new();
/// let x = tape.param(&w);
/// x.square().sum().backward()?; // d/dw sum(w^2) = 2w
/// assert_eq!(w.grad().unwrap().to_vec(), vec![2.0, 4.0]);
/// # Ok::<(), autograd::Error>(())
/// ```
#[derive(Clone)]
pub struct Param<T> {
    id: ParamId,
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T: Float> Param<T> {
    /// A new parameter with a fresh id and no gradient.
    pub fn new(value: Tensor<T>) -> Self {
        Param {
            id: ParamId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            slot: Arc::new(Mutex::new(Slot {
                value,
                grad: None,
                name: None,
                requires_grad: true,
                post_hooks: Vec::new(),
            })),
        }
    }

    /// A new parameter carrying a name (used in tape dumps and reports).
    pub fn named(name: impl Into<String>, value: Tensor<T>) -> Self {
        let p = Self::new(value);
        p.set_name(name);
        p
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A panic while holding the lock cannot leave a Slot half-written (every write is a
        // single assignment), so a poisoned lock is still safe to use.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stable id.
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The name, if one was given.
    pub fn name(&self) -> Option<String> {
        self.lock().name.clone()
    }

    /// Sets the name.
    pub fn set_name(&self, name: impl Into<String>) {
        self.lock().name = Some(name.into());
    }

    /// The current value (a cheap shared clone).
    pub fn value(&self) -> Tensor<T> {
        self.lock().value.clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> crate::Shape {
        self.lock().value.shape().clone()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.lock().value.numel()
    }

    /// Replaces the value; the shape must stay the same.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ.
    #[track_caller]
    pub fn set_value(&self, value: Tensor<T>) -> Result<()> {
        let mut s = self.lock();
        if s.value.shape() != value.shape() {
            return Err(Error::ShapeMismatch {
                op: "set_value",
                expected: s.value.shape().clone(),
                got: value.shape().clone(),
                location: std::panic::Location::caller(),
            });
        }
        s.value = value;
        Ok(())
    }

    /// The accumulated gradient, or `None` before any backward (or after `zero_grad`).
    pub fn grad(&self) -> Option<Tensor<T>> {
        self.lock().grad.clone()
    }

    /// Clears the gradient (PyTorch's `set_to_none=True`).
    pub fn zero_grad(&self) {
        self.lock().grad = None;
    }

    /// Replaces the gradient (clipping and custom training loops use this).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the gradient's shape differs from the value's.
    #[track_caller]
    pub fn set_grad(&self, grad: Option<Tensor<T>>) -> Result<()> {
        let mut s = self.lock();
        if let Some(g) = &grad {
            if g.shape() != s.value.shape() {
                return Err(Error::ShapeMismatch {
                    op: "set_grad",
                    expected: s.value.shape().clone(),
                    got: g.shape().clone(),
                    location: std::panic::Location::caller(),
                });
            }
        }
        s.grad = grad;
        Ok(())
    }

    /// Whether the parameter is trainable (the default). A frozen one (`false`) records no
    /// gradient path when bound into a tape: nothing is computed or accumulated for it (nor
    /// for values only it feeds), its [`grad`](Param::grad) stays as it was, and optimisers
    /// skip it.
    pub fn requires_grad(&self) -> bool {
        self.lock().requires_grad
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter: PyTorch's `requires_grad_`.
    ///
    /// It takes effect at the next binding: a tape the parameter is already bound into
    /// keeps what it recorded. Freezing does not clear an existing gradient (call
    /// [`zero_grad`](Param::zero_grad) for that), but optimisers skip a frozen parameter
    /// whatever its gradient. The flag is runtime state, like PyTorch's: state files do
    /// not save it, so freeze again after loading.
    ///
    /// ```
    /// use autograd::{Param, Tape, Tensor};
    /// let w = Param::new(Tensor::from_vec(vec![1.0f64, 2.0], [2])?);
    /// let b = Param::new(Tensor::scalar(0.5f64));
    /// w.set_requires_grad(false);
    /// let tape = Tape::new();
    /// let y = tape.param(&w).square().sum().add(tape.param(&b))?;
    /// y.backward()?;
    /// assert!(w.grad().is_none()); // frozen: nothing computed, nothing accumulated
    /// assert_eq!(b.grad().unwrap().item()?, 1.0);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    pub fn set_requires_grad(&self, requires_grad: bool) {
        self.lock().requires_grad = requires_grad;
    }

    /// Adds `g` into the gradient buffer.
    pub(crate) fn accumulate_grad(&self, g: Tensor<T>) {
        let mut s = self.lock();
        match &mut s.grad {
            None => s.grad = Some(g),
            Some(acc) => acc
                .zip_mut_with(&g, |a, b| *a += b)
                .expect("internal: gradient shape checked against the node"),
        }
    }

    /// Registers `hook` to run each time a backward sweep has accumulated this
    /// parameter's gradient (PyTorch's `register_post_accumulate_grad_hook`): it sees the
    /// parameter, whose [`grad`](Param::grad) then includes this backward's contribution.
    /// Hooks run in registration order, once per [`Var::backward`](crate::Var::backward)
    /// that reaches the parameter, as soon as its gradient is complete — before the sweep
    /// goes on to earlier nodes, so work on it (an all-reduce, an optimiser step) can
    /// overlap the rest of the backward. [`Tape::grad`](crate::Tape::grad) does not touch
    /// params and so runs none. Clones of the parameter share the hooks.
    ///
    /// The returned handle removes the hook; dropping it keeps the hook.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use autograd::{Param, Tape, Tensor};
    /// let w = Param::new(Tensor::scalar(3.0f64));
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let seen = calls.clone();
    /// let handle = w.register_post_accumulate_grad_hook(move |p| {
    ///     assert_eq!(p.grad().unwrap().item().unwrap(), 6.0); // d(w²)/dw, accumulated
    ///     seen.fetch_add(1, Ordering::Relaxed);
    /// });
    /// let tape = Tape::new();
    /// tape.param(&w).square().backward()?;
    /// handle.remove();
    /// w.zero_grad();
    /// tape.param(&w).square().backward()?;
    /// assert_eq!(calls.load(Ordering::Relaxed), 1);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    pub fn register_post_accumulate_grad_hook(
        &self,
        hook: impl Fn(&Param<T>) + Send + Sync + 'static,
    ) -> HookHandle {
        let id = NEXT_HOOK.fetch_add(1, Ordering::Relaxed);
        self.lock().post_hooks.push((id, Arc::new(hook)));
        let slot = Arc::downgrade(&self.slot);
        HookHandle {
            remove: Box::new(move || {
                if let Some(slot) = slot.upgrade() {
                    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                    s.post_hooks.retain(|(h, _)| *h != id);
                }
            }),
        }
    }

    /// Runs the post-accumulate hooks (outside the lock: they read the gradient).
    pub(crate) fn run_post_accumulate_hooks(&self) {
        let hooks: Vec<PostHook<T>> = {
            let s = self.lock();
            if s.post_hooks.is_empty() {
                return;
            }
            s.post_hooks.iter().map(|(_, h)| h.clone()).collect()
        };
        for h in hooks {
            h(self);
        }
    }

    /// Runs `f` on the value and the gradient together, under one lock: the optimiser's
    /// entry point for in-place updates.
    ///
    /// The value is lent as a [`ParamMut`], which writes elements but cannot change the
    /// shape: every tape the parameter is bound into, its gradient and an optimiser's state
    /// for it were made for this shape. (Use [`Param::set_value`] to replace the value.)
    ///
    /// ```
    /// use autograd::{Param, Tensor};
    /// let w = Param::new(Tensor::from_vec(vec![1.0f64, 2.0], [2])?);
    /// w.set_grad(Some(Tensor::from_vec(vec![0.5, -0.5], [2])?))?;
    /// w.update(|v, g| v.zip_mut_with(g.unwrap(), |w, g| *w -= 0.1 * g))?; // one SGD step
    /// assert_eq!(w.value().to_vec(), vec![0.95, 2.05]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut ParamMut<'_, T>, Option<&Tensor<T>>) -> R) -> R {
        let mut s = self.lock();
        let Slot { value, grad, .. } = &mut *s;
        f(&mut ParamMut(value), grad.as_ref())
    }
}

/// Removes the hook it was returned for ([`Param::register_post_accumulate_grad_hook`]).
/// Dropping the handle without calling [`remove`](HookHandle::remove) keeps the hook.
#[must_use = "dropping the handle keeps the hook; call `remove` to remove it"]
pub struct HookHandle {
    remove: Box<dyn FnOnce() + Send + Sync>,
}

impl HookHandle {
    /// Removes the hook (a no-op once its parameter is gone).
    pub fn remove(self) {
        (self.remove)()
    }
}

impl fmt::Debug for HookHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookHandle")
    }
}

/// A parameter's value lent by [`Param::update`]: its elements can be written, its shape
/// cannot change. It reads as a [`Tensor`] (through `Deref`).
///
/// Rules that update a plain tensor outside a `Param` (in tests, say) wrap it with
/// [`ParamMut::new`].
///
/// Replacing the value, and with it the shape, does not compile:
///
/// ```compile_fail
/// use autograd::{Param, Tensor};
/// let w = Param::new(Tensor::<f64>::zeros([2]).unwrap());
/// w.update(|v, _| *v = Tensor::zeros([3]).unwrap());
/// ```
pub struct ParamMut<'a, T>(&'a mut Tensor<T>);

impl<T: Float> fmt::Debug for ParamMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParamMut({:?})", self.0)
    }
}

impl<'a, T: Float> ParamMut<'a, T> {
    /// Lends `value` with its shape fixed.
    pub fn new(value: &'a mut Tensor<T>) -> Self {
        ParamMut(value)
    }

    /// The elements, writable in place (copied first if the buffer is shared).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.0.as_mut_slice()
    }

    /// `f` applied to every element in place.
    pub fn mapv_inplace(&mut self, f: impl Fn(T) -> T + Sync) {
        self.0.mapv_inplace(f);
    }

    /// `f(&mut a, b)` for every element, with `other` broadcast to the value's shape.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when `other` does not broadcast to the value's shape.
    #[track_caller]
    pub fn zip_mut_with(&mut self, other: &Tensor<T>, f: impl Fn(&mut T, T) + Sync) -> Result<()> {
        self.0.zip_mut_with(other, f)
    }

    /// Copies `value`'s elements in.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `value`'s shape differs.
    #[track_caller]
    pub fn assign(&mut self, value: &Tensor<T>) -> Result<()> {
        if value.shape() != self.0.shape() {
            return Err(Error::ShapeMismatch {
                op: "assign",
                expected: self.0.shape().clone(),
                got: value.shape().clone(),
                location: std::panic::Location::caller(),
            });
        }
        self.0.as_mut_slice().copy_from_slice(value.as_slice());
        Ok(())
    }
}

impl<T> std::ops::Deref for ParamMut<'_, T> {
    type Target = Tensor<T>;
    fn deref(&self) -> &Tensor<T> {
        self.0
    }
}

impl<T: Float> fmt::Debug for Param<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        write!(
            f,
            "Param(#{} {} {}{})",
            self.id.0,
            s.name.as_deref().unwrap_or("-"),
            s.value.shape(),
            if s.requires_grad { "" } else { " frozen" }
        )
    }
}
