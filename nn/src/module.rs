//! The [`Module`] trait, the forward context [`Ctx`], and [`Buffer`]s (non-trainable state).
//!
//! A module computes `forward` on [`Var`]s and *names* what it owns: its own parameters
//! and buffers, and its child modules. Everything else — hierarchical names
//! (`"layers.0.weight"`), parameter lists for optimisers, parameter counts, train/eval
//! switching, state files — is derived from those names by provided methods.
//!
//! Forward runs through a [`Ctx`] rather than a bare tape. The context binds parameters
//! (`cx.param(&self.weight)`), and can *substitute* a parameter by any `Var`: that is how
//! [`gradcheck_module`] checks gradients with respect to parameters, and how a module is
//! called functionally with other weights. It also records the outputs of child calls
//! made with [`Ctx::call`], which is what [`crate::diagnostics`] measures.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use autograd::{Float, GradcheckOptions, Param, ParamId, Shape, Tape, Tensor, Var};

use crate::error::{Error, Result};

/// The activation a module applies, so diagnostics can use the right derivative to
/// measure saturation and dead units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Activation {
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Rectified linear unit.
    Relu,
    /// Leaky ReLU.
    LeakyRelu,
    /// Exponential linear unit.
    Elu,
    /// Parametric ReLU.
    PRelu,
    /// Scaled ELU.
    Selu,
    /// Gaussian error linear unit.
    Gelu,
    /// Softplus.
    Softplus,
    /// SiLU / swish.
    Silu,
    /// Softmax.
    Softmax,
    /// Log-softmax.
    LogSoftmax,
}

/// A differentiable building block that owns [`Param`]s and names its children.
///
/// Implement [`forward`](Module::forward) and, if the module has any, name its children
/// ([`children`](Module::children)) and its own parameters
/// ([`own_params`](Module::own_params)); the rest is provided.
///
/// ```
/// use autograd::{Float, Tape, Tensor, Var};
/// use nn::{Ctx, Linear, Module};
/// use rand::SeedableRng;
///
/// /// y = x + fc2(relu(fc1(x)))
/// struct Residual<T: Float> { fc1: Linear<T>, fc2: Linear<T> }
///
/// impl<T: Float> Module<T> for Residual<T> {
///     fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
///         let h = cx.call("fc1", &self.fc1, x)?.relu();
///         Ok(x.add(cx.call("fc2", &self.fc2, h)?)?)
///     }
///     fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<T>)) {
///         f("fc1", &self.fc1);
///         f("fc2", &self.fc2);
///     }
/// }
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let block = Residual { fc1: Linear::<f64>::new(4, 8, &mut rng)?, fc2: Linear::new(8, 4, &mut rng)? };
/// let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
/// assert_eq!(block.num_parameters(), 4 * 8 + 8 + 8 * 4 + 4);
///
/// let tape = Tape::new();
/// let y = block.forward(&nn::Ctx::new(&tape), tape.constant(Tensor::ones([2, 4])?))?;
/// assert_eq!(y.dims(), [2, 4]);
/// # Ok::<(), nn::Error>(())
/// ```
pub trait Module<T: Float> {
    /// The output for input `x`, recorded on `cx`'s tape.
    ///
    /// # Errors
    /// [`Error::InputShape`] when the input does not fit the layer; tape errors.
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>>;

    /// Calls `f` with the name and a reference of each child module (`"fc1"`, `"0"`).
    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<T>)) {
        let _ = f;
    }

    /// Calls `f` with each parameter this module owns directly (not its children's).
    fn own_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        let _ = f;
    }

    /// Calls `f` with each buffer (non-trainable state) this module owns directly.
    fn own_buffers(&self, f: &mut dyn FnMut(&str, &Buffer<T>)) {
        let _ = f;
    }

    /// Switches this module's own behaviour (not its children's) between training and
    /// evaluation; only modules that behave differently (dropout, batch norm) override it.
    fn set_own_training(&self, training: bool) {
        let _ = training;
    }

    /// The activation this module applies, if it is an activation module.
    fn activation(&self) -> Option<Activation> {
        None
    }

    /// A short type name for reports (`"Linear"`).
    fn type_name(&self) -> &'static str {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base)
    }

    /// Calls `f` with the hierarchical name (`"layers.0.weight"`) of every parameter of
    /// this module and its descendants, depth first, own parameters before children's.
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        self.own_params(f);
        self.children(&mut |name, child| {
            child.visit_params(&mut |n, p| f(&join(name, n), p));
        });
    }

    /// Like [`visit_params`](Module::visit_params) for buffers.
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &Buffer<T>)) {
        self.own_buffers(f);
        self.children(&mut |name, child| {
            child.visit_buffers(&mut |n, b| f(&join(name, n), b));
        });
    }

    /// Every parameter with its hierarchical name (handles sharing the module's values).
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut out = Vec::new();
        self.visit_params(&mut |n, p| out.push((n.to_string(), p.clone())));
        out
    }

    /// Every parameter, in [`named_parameters`](Module::named_parameters) order: what an
    /// optimiser takes.
    fn parameters(&self) -> Vec<Param<T>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Every buffer with its hierarchical name.
    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        let mut out = Vec::new();
        self.visit_buffers(&mut |n, b| out.push((n.to_string(), b.clone())));
        out
    }

    /// Total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |_, p| n += p.numel());
        n
    }

    /// Sets training (`true`) or evaluation mode on this module and every descendant.
    fn set_training(&self, training: bool) {
        self.set_own_training(training);
        self.children(&mut |_, c| c.set_training(training));
    }

    /// Training mode (dropout drops, batch norm uses batch statistics). The default.
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (dropout is the identity, batch norm uses running statistics).
    fn eval(&self) {
        self.set_training(false);
    }

    /// Clears the gradient of every parameter.
    fn zero_grad(&self) {
        self.visit_params(&mut |_, p| p.zero_grad());
    }
}

impl<T: Float, M: Module<T> + ?Sized> Module<T> for Box<M> {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        (**self).forward(cx, x)
    }
    fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<T>)) {
        (**self).children(f)
    }
    fn own_params(&self, f: &mut dyn FnMut(&str, &Param<T>)) {
        (**self).own_params(f)
    }
    fn own_buffers(&self, f: &mut dyn FnMut(&str, &Buffer<T>)) {
        (**self).own_buffers(f)
    }
    fn set_own_training(&self, training: bool) {
        (**self).set_own_training(training)
    }
    fn activation(&self) -> Option<Activation> {
        (**self).activation()
    }
    fn type_name(&self) -> &'static str {
        (**self).type_name()
    }
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{name}"),
    }
}

/// Non-trainable module state saved with the parameters (batch norm's running
/// statistics). A shared handle, like [`Param`], without a gradient.
#[derive(Clone, Debug)]
pub struct Buffer<T: Float> {
    value: Arc<Mutex<Tensor<T>>>,
    integer: bool,
}

impl<T: Float> Buffer<T> {
    /// A floating-point buffer.
    pub fn new(value: Tensor<T>) -> Self {
        Buffer {
            value: Arc::new(Mutex::new(value)),
            integer: false,
        }
    }

    /// A counter-like buffer whose values are integers, stored as `I64` in state files
    /// (PyTorch's `num_batches_tracked`).
    pub fn integer(value: Tensor<T>) -> Self {
        Buffer {
            integer: true,
            ..Self::new(value)
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tensor<T>> {
        // Every write is a single assignment, so a poisoned lock still holds a whole value.
        self.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current value (a cheap shared clone).
    pub fn value(&self) -> Tensor<T> {
        self.lock().clone()
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.lock().shape().clone()
    }

    /// Whether the buffer holds integers (saved as `I64`).
    pub fn is_integer(&self) -> bool {
        self.integer
    }

    /// Replaces the value; the shape must stay the same.
    ///
    /// # Errors
    /// [`Error::InputShape`] when the shapes differ.
    pub fn set_value(&self, value: Tensor<T>) -> Result<()> {
        let mut v = self.lock();
        if v.shape() != value.shape() {
            return Err(Error::input(
                "Buffer::set_value",
                format!("shape {}", v.shape()),
                value.shape().clone(),
            ));
        }
        *v = value;
        Ok(())
    }
}

/// A train/eval flag with interior mutability, so mode switches work through `&self`.
#[derive(Debug)]
pub(crate) struct Mode(AtomicBool);

impl Mode {
    pub(crate) fn new() -> Self {
        Mode(AtomicBool::new(true))
    }
    pub(crate) fn training(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    pub(crate) fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed)
    }
}

/// One recorded child call: the module's path, kind and output.
#[derive(Clone, Debug)]
pub struct Record<'t, T: Float> {
    /// Hierarchical name of the module (`"layers.3"`).
    pub name: String,
    /// Its type name (`"Linear"`).
    pub type_name: &'static str,
    /// The activation it applies, if any.
    pub activation: Option<Activation>,
    /// Its output.
    pub output: Var<'t, T>,
}

/// The context a forward pass runs in: the tape, parameter substitutions, the current
/// module path and (optionally) a recorder of child outputs.
pub struct Ctx<'t, T: Float> {
    tape: &'t Tape<T>,
    subs: HashMap<ParamId, Var<'t, T>>,
    path: RefCell<Vec<String>>,
    records: Option<RefCell<Vec<Record<'t, T>>>>,
}

impl<'t, T: Float> Ctx<'t, T> {
    /// A plain context on `tape`.
    pub fn new(tape: &'t Tape<T>) -> Self {
        Ctx {
            tape,
            subs: HashMap::new(),
            path: RefCell::new(Vec::new()),
            records: None,
        }
    }

    /// A context that records the output of every [`Ctx::call`] (for diagnostics).
    pub fn recording(tape: &'t Tape<T>) -> Self {
        Ctx {
            records: Some(RefCell::new(Vec::new())),
            ..Self::new(tape)
        }
    }

    /// The tape (to record constants and data).
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Makes every later [`Ctx::param`] of `p` return `value` instead of binding `p`:
    /// the functional form of a module (`torch.func.functional_call`), used to
    /// gradient-check a module with respect to its parameters.
    pub fn substitute(&mut self, p: &Param<T>, value: Var<'t, T>) {
        self.subs.insert(p.id(), value);
    }

    /// The `Var` of parameter `p`: its substitute if it has one, else `p` bound into the
    /// tape (so `backward` accumulates into `p.grad()`).
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'t, T> {
        match self.subs.get(&p.id()) {
            Some(&v) => v,
            None => self.tape.param(p),
        }
    }

    /// Runs child `module` named `name` on `x`, extending the module path and, when
    /// recording, recording the output under the full path.
    ///
    /// # Errors
    /// The child's errors.
    pub fn call<M: Module<T> + ?Sized>(
        &self,
        name: &str,
        module: &M,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        self.path.borrow_mut().push(name.to_string());
        let y = module.forward(self, x);
        let full = self.path.borrow().join(".");
        self.path.borrow_mut().pop();
        let y = y?;
        if let Some(r) = &self.records {
            r.borrow_mut().push(Record {
                name: full,
                type_name: module.type_name(),
                activation: module.activation(),
                output: y,
            });
        }
        Ok(y)
    }

    /// The records made so far (empty unless built with [`Ctx::recording`]).
    pub fn records(&self) -> Vec<Record<'t, T>> {
        self.records
            .as_ref()
            .map(|r| r.borrow().clone())
            .unwrap_or_default()
    }
}

/// Checks the gradients of `module`'s output with respect to its input *and every
/// parameter* against finite differences, by substituting the parameters with checked
/// inputs (input 0 is `x`, input `i + 1` is the `i`-th of
/// [`named_parameters`](Module::named_parameters)). The output is reduced to
/// `Σ out ⊙ c` with a fixed non-uniform `c`, so every output element is checked while
/// the Jacobian stays small.
///
/// The module runs once per perturbation: a module with randomness (dropout in training
/// mode) must be rebuilt with the same seed each call; use [`autograd::gradcheck()`] with
/// [`Ctx::substitute`] directly for that.
///
/// # Errors
/// [`autograd::Error::Gradcheck`] naming the failing input (inside [`Error::Autograd`]);
/// the module's own errors.
// The closure must return autograd::Result, whose error is over clippy's size limit.
#[allow(clippy::result_large_err)]
pub fn gradcheck_module<M: Module<f64> + ?Sized>(
    module: &M,
    x: &Tensor<f64>,
    opts: &GradcheckOptions,
) -> Result<()> {
    let params = module.parameters();
    let mut inputs = vec![x.clone()];
    inputs.extend(params.iter().map(Param::value));
    // The closure's error type is autograd's; carry nn errors out of it by side channel.
    let nn_err: RefCell<Option<Error>> = RefCell::new(None);
    let res = autograd::gradcheck(
        |v| {
            let mut cx = Ctx::new(v[0].tape());
            for (p, var) in params.iter().zip(&v[1..]) {
                cx.substitute(p, *var);
            }
            match module.forward(&cx, v[0]) {
                Ok(y) => {
                    let c = Tensor::from_fn(y.shape(), |i| 1.0 + (i as f64 * 0.37).sin() * 0.5)?;
                    Ok(y.mul(v[0].tape().constant(c))?.sum())
                }
                Err(Error::Autograd(e)) => Err(*e),
                Err(e) => {
                    let shape = y_shape_of(&e);
                    *nn_err.borrow_mut() = Some(e);
                    Err(autograd::Error::InvalidArgument {
                        op: "gradcheck_module",
                        reason: "the module failed".into(),
                        shape,
                        location: std::panic::Location::caller(),
                    })
                }
            }
        },
        &inputs,
        opts,
    );
    match (res, nn_err.into_inner()) {
        (_, Some(e)) => Err(e),
        (r, None) => Ok(r?),
    }
}

fn y_shape_of(e: &Error) -> Shape {
    match e {
        Error::InputShape { got, .. } => got.clone(),
        _ => Shape::scalar(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Leaf {
        w: Param<f64>,
        b: Buffer<f64>,
    }
    impl Module<f64> for Leaf {
        fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> Result<Var<'t, f64>> {
            Ok(x.mul(cx.param(&self.w))?)
        }
        fn own_params(&self, f: &mut dyn FnMut(&str, &Param<f64>)) {
            f("w", &self.w);
        }
        fn own_buffers(&self, f: &mut dyn FnMut(&str, &Buffer<f64>)) {
            f("b", &self.b);
        }
    }
    struct Tree {
        a: Leaf,
        b: Leaf,
    }
    impl Module<f64> for Tree {
        fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> Result<Var<'t, f64>> {
            let h = cx.call("a", &self.a, x)?;
            cx.call("b", &self.b, h)
        }
        fn children(&self, f: &mut dyn FnMut(&str, &dyn Module<f64>)) {
            f("a", &self.a);
            f("b", &self.b);
        }
    }
    fn leaf(v: f64) -> Leaf {
        Leaf {
            w: Param::new(Tensor::full([2], v).unwrap()),
            b: Buffer::new(Tensor::zeros([1]).unwrap()),
        }
    }

    #[test]
    fn names_are_hierarchical_and_counts_add_up() {
        let t = Tree {
            a: leaf(2.0),
            b: leaf(3.0),
        };
        let names: Vec<_> = t.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a.w", "b.w"]);
        let bufs: Vec<_> = t.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(bufs, ["a.b", "b.b"]);
        assert_eq!(t.num_parameters(), 4);
        assert_eq!(t.type_name(), "Tree");
    }

    #[test]
    fn recording_context_names_each_call_by_path() {
        let t = Tree {
            a: leaf(2.0),
            b: leaf(3.0),
        };
        let tape = Tape::new();
        let cx = Ctx::recording(&tape);
        let y = cx
            .call("net", &t, tape.constant(Tensor::ones([2]).unwrap()))
            .unwrap();
        // y = x · 2 · 3
        assert_eq!(y.value().to_vec(), [6.0, 6.0]);
        let names: Vec<_> = cx.records().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["net.a", "net.b", "net"]);
    }

    #[test]
    fn substitution_replaces_a_parameter_in_forward() {
        let l = leaf(2.0);
        let tape = Tape::new();
        let mut cx = Ctx::new(&tape);
        cx.substitute(&l.w, tape.constant(Tensor::full([2], 5.0).unwrap()));
        let y = l
            .forward(&cx, tape.constant(Tensor::ones([2]).unwrap()))
            .unwrap();
        assert_eq!(y.value().to_vec(), [5.0, 5.0]);
    }

    #[test]
    fn gradcheck_module_checks_parameters() {
        let t = Tree {
            a: leaf(2.0),
            b: leaf(-0.5),
        };
        let x = Tensor::from_vec(vec![0.3, -1.1], [2]).unwrap();
        gradcheck_module(&t, &x, &GradcheckOptions::default()).unwrap();
    }
}
