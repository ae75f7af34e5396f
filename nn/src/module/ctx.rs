//! [`Ctx`]: the context a forward pass runs in. It binds (or substitutes) parameters,
//! runs child modules ([`Ctx::call`]), gives hooks each call's path, inputs and outputs,
//! and wraps errors with the layer, its path and the caller's line.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::Location;

use autograd::{Float, Loc, Param, ParamId, Tape, Var};

use super::forward::{Forward, Layer, Vars};
use super::visit::{join, walk, Module, ModuleId};
use crate::error::{Error, ModuleError, Result};

/// What a forward hook sees of one module call.
pub struct ModuleCall<'a, 't, T: Float> {
    /// The module's path in the model (`"blocks.1.fc2"`; `""` for the model itself).
    pub path: &'a str,
    /// The module (its [`type_name`](Module::type_name),
    /// [`activation`](Module::activation), parameters...).
    pub module: &'a dyn Module<T>,
    /// Its input, flattened by [`Vars`].
    pub inputs: &'a [Var<'t, T>],
    /// Its output, flattened by [`Vars`].
    pub outputs: &'a [Var<'t, T>],
    /// Where it was called (the `cx.call` line).
    pub location: Loc,
}

type Hook<'t, T> = Box<dyn FnMut(&ModuleCall<'_, 't, T>) + 't>;

struct Substitute<'t, T: Float> {
    value: Var<'t, T>,
    used: Cell<bool>,
}

/// The context a forward pass runs in: the tape, parameter substitutions, and (once a
/// hook is added) the bookkeeping that names each call by its path.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Ctx, Linear, Relu, Sequential};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mlp = Sequential::<f32>::new()
///     .append(Linear::new(4, 8, &mut rng)?)
///     .append(Relu)
///     .append(Linear::new(8, 2, &mut rng)?);
/// let tape = Tape::new();
/// let seen = std::cell::RefCell::new(Vec::new());
/// let mut cx = Ctx::new(&tape);
/// cx.add_forward_hook(|call| {
///     seen.borrow_mut().push((call.path.to_string(), call.module.type_name(), call.outputs[0].dims()))
/// });
/// let y = cx.call(&mlp, tape.constant(Tensor::ones([3, 4])?))?;
/// assert_eq!(y.dims(), [3, 2]);
/// assert_eq!(
///     seen.borrow()[..3],
///     [("0".to_string(), "Linear", vec![3, 8]), ("1".to_string(), "Relu", vec![3, 8]), ("2".to_string(), "Linear", vec![3, 2])]
/// );
/// assert_eq!(seen.borrow()[3].0, ""); // the model itself, last
/// # Ok::<(), nn::Error>(())
/// ```
pub struct Ctx<'t, T: Float> {
    tape: &'t Tape<T>,
    subs: HashMap<ParamId, Substitute<'t, T>>,
    trace: Option<Trace<'t, T>>,
    /// Set while a checkpointed segment is re-run (see [`Ctx::is_recomputing`]).
    recomputing: bool,
    /// Every parameter [`Ctx::param`] was asked for, once each, in order, when logging
    /// (what a checkpoint learns its segment's parameters from).
    bound: Option<RefCell<Vec<Param<T>>>>,
}

impl<'t, T: Float> Ctx<'t, T> {
    /// A context on `tape`.
    pub fn new(tape: &'t Tape<T>) -> Self {
        Ctx {
            tape,
            subs: HashMap::new(),
            trace: None,
            recomputing: false,
            bound: None,
        }
    }

    /// A context for running a checkpointed segment: `recomputing` as given, logging
    /// the parameters the segment binds.
    pub(crate) fn for_segment(tape: &'t Tape<T>, recomputing: bool) -> Self {
        Ctx {
            recomputing,
            bound: Some(RefCell::new(Vec::new())),
            ..Ctx::new(tape)
        }
    }

    /// The parameters bound through this context so far, in order (empty unless made by
    /// [`Ctx::for_segment`]).
    pub(crate) fn bound_params(&self) -> Vec<Param<T>> {
        self.bound
            .as_ref()
            .map_or_else(Vec::new, |b| b.borrow().clone())
    }

    /// The value substituted for `p`, if any (a checkpoint carries substitutions into the
    /// contexts its segment runs in).
    pub(crate) fn substitute_of(&self, p: ParamId) -> Option<Var<'t, T>> {
        self.subs.get(&p).map(|s| s.value)
    }

    /// Whether this forward pass re-runs a checkpointed segment
    /// ([`checkpoint`](crate::checkpoint)) — during backward, to recompute the values it
    /// did not keep. A layer with side effects on its state skips them then, so they
    /// happen once per forward pass: batch norm does not update its running statistics
    /// again (it still normalises with the batch's statistics, as in the first run).
    pub fn is_recomputing(&self) -> bool {
        self.recomputing
    }

    /// The tape (to record constants and data).
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Makes every later [`Ctx::param`] of `p` return `value` instead of binding `p`:
    /// the functional form of a module (`torch.func.functional_call`), used to
    /// gradient-check a module with respect to its parameters.
    pub fn substitute(&mut self, p: &Param<T>, value: Var<'t, T>) {
        self.subs.insert(
            p.id(),
            Substitute {
                value,
                used: Cell::new(false),
            },
        );
    }

    /// Whether the substitute of `p` has been returned by [`Ctx::param`] (`None` when `p`
    /// has none): a module that binds `p` with `tape.param` never uses it.
    pub fn substitute_used(&self, p: &Param<T>) -> Option<bool> {
        self.subs.get(&p.id()).map(|s| s.used.get())
    }

    /// The `Var` of parameter `p`: its substitute if it has one, else `p` bound into the
    /// tape (so `backward` accumulates into `p.grad()`). Bind parameters through this,
    /// not `tape.param`, so that substitution (and so `gradcheck_module`) reaches them.
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'t, T> {
        if let Some(bound) = &self.bound {
            let mut bound = bound.borrow_mut();
            if !bound.iter().any(|q| q.id() == p.id()) {
                bound.push(p.clone());
            }
        }
        match self.subs.get(&p.id()) {
            Some(s) => {
                s.used.set(true);
                s.value
            }
            None => self.tape.param(p),
        }
    }

    /// [`Ctx::param`] of an optional parameter (a layer's `bias: Option<Param<T>>`).
    #[track_caller]
    pub fn param_opt(&self, p: Option<&Param<T>>) -> Option<Var<'t, T>> {
        match p {
            Some(p) => Some(self.param(p)),
            None => None,
        }
    }

    /// Adds a forward hook: after every module call made through [`Ctx::call`] (children
    /// before parents, the model itself last), `hook` sees the module's path, the module,
    /// its inputs and outputs as `Var`s, and the call's line. What
    /// [`diagnose`](crate::diagnose) is built on.
    ///
    /// Paths are found by identity among the modules visited from the outermost call
    /// (`cx.call(&model, x)` is the root, path `""`): a module called from its parent is
    /// named after the field that holds it, wherever it sits below the parent
    /// (`self.blocks[1]` is `"blocks.1"`). Zero-sized modules of one type held side by
    /// side (two `Relu` fields) share an address; they are told apart by call order — the
    /// k-th such call within one call of the parent takes the k-th of them in field order.
    /// A module found nowhere in the tree is named `"<parent>.<Type>"`.
    pub fn add_forward_hook(&mut self, hook: impl FnMut(&ModuleCall<'_, 't, T>) + 't) {
        self.trace
            .get_or_insert_with(|| Trace {
                hooks: RefCell::new(Vec::new()),
                state: RefCell::new(TraceState::default()),
            })
            .hooks
            .get_mut()
            .push(Box::new(hook));
    }

    /// Runs `module` on `input`: PyTorch's `module(input)`. Use it for the model
    /// (`cx.call(&model, x)`) and for children inside a `forward`
    /// (`cx.call(&self.fc1, x)`); the child's name is found from its field, so it is
    /// never written twice.
    ///
    /// What it adds to `module.forward(cx, input)`: forward hooks see the call by its path,
    /// and an error raised inside becomes [`Error::Module`], naming the layer that failed,
    /// its path in the model and this call's line. Without hooks there is no lookup: the
    /// path of a failing layer is worked out only when an error passes through.
    ///
    /// # Errors
    /// The module's errors, wrapped in [`Error::Module`].
    #[track_caller]
    pub fn call<M: Forward<T>>(&self, module: &M, input: M::Input<'t>) -> Result<M::Output<'t>> {
        let location = Location::caller();
        match &self.trace {
            None => module
                .forward(self, input)
                .map_err(|e| wrap(e, module, None, None, location)),
            Some(trace) => {
                let path = trace.enter(module, None);
                let inputs = input.vars();
                let out = module.forward(self, input);
                trace.exit(module, path, &inputs, out, location)
            }
        }
    }

    /// [`Ctx::call`] for the `index`-th child of a container (`Sequential`), which is
    /// named by its index rather than found by identity (boxed zero-sized layers share
    /// one address).
    #[track_caller]
    pub(crate) fn call_indexed(
        &self,
        parent: &dyn Module<T>,
        index: usize,
        layer: &dyn Layer<T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let location = Location::caller();
        let module: &dyn Module<T> = layer;
        match &self.trace {
            None => layer
                .forward_var(self, x)
                .map_err(|e| wrap(e, module, None, Some((parent, index)), location)),
            Some(trace) => {
                let path = trace.enter(module, Some((parent, index)));
                let out = layer.forward_var(self, x);
                trace.exit(module, path, &[x], out, location)
            }
        }
    }
}

struct Trace<'t, T: Float> {
    hooks: RefCell<Vec<Hook<'t, T>>>,
    state: RefCell<TraceState>,
}

#[derive(Default)]
struct TraceState {
    /// Every module below the root by identity: its paths, in field order.
    table: HashMap<ModuleId, Vec<String>>,
    /// The calls in progress, outermost first.
    frames: Vec<Frame>,
}

struct Frame {
    identity: ModuleId,
    path: String,
    /// Calls made so far from this frame, per callee identity (for zero-sized siblings).
    calls: HashMap<ModuleId, usize>,
}

fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.matches('.').count() + 1
    }
}

fn is_below(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        !path.is_empty()
    } else {
        path.len() > prefix.len()
            && path.starts_with(prefix)
            && path[prefix.len()..].starts_with('.')
    }
}

impl TraceState {
    fn start(&mut self, root: &dyn Module<impl Float>) {
        self.table.clear();
        walk(root, "", &mut |path, m| {
            self.table
                .entry(m.module_id())
                .or_default()
                .push(path.to_string())
        });
    }

    /// The path of `module`, called from the innermost frame.
    fn resolve(&mut self, module: &dyn Module<impl Float>) -> String {
        let id = module.module_id();
        let Some(parent) = self.frames.last_mut() else {
            return String::new();
        };
        let candidates: &[String] = self.table.get(&id).map_or(&[], |v| v);
        // Prefer the module below the caller; a module shared from elsewhere keeps the
        // path it has in the tree.
        let below: Vec<&String> = candidates
            .iter()
            .filter(|p| is_below(p, &parent.path))
            .collect();
        let pool = if below.is_empty() {
            candidates.iter().collect()
        } else {
            below
        };
        let Some(min) = pool.iter().map(|p| depth(p)).min() else {
            return join(&parent.path, &format!("<{}>", module.type_name()));
        };
        let shallowest: Vec<&String> = pool.into_iter().filter(|p| depth(p) == min).collect();
        let k = parent.calls.entry(id).or_insert(0);
        let path = shallowest[*k % shallowest.len()].clone();
        *k += 1;
        path
    }
}

impl<'t, T: Float> Trace<'t, T> {
    /// Pushes a frame for a call of `module` and returns its path.
    fn enter(&self, module: &dyn Module<T>, index: Option<(&dyn Module<T>, usize)>) -> String {
        let mut st = self.state.borrow_mut();
        let path = match index {
            None if st.frames.is_empty() => {
                st.start(module);
                String::new()
            }
            None => st.resolve(module),
            Some((parent, i)) => {
                let parent_path = match st.frames.last() {
                    Some(f) if f.identity == parent.module_id() => f.path.clone(),
                    // The container's forward was called directly, not through `call`.
                    None => {
                        st.start(parent);
                        String::new()
                    }
                    Some(_) => st.resolve(parent),
                };
                join(&parent_path, &i.to_string())
            }
        };
        st.frames.push(Frame {
            identity: module.module_id(),
            path: path.clone(),
            calls: HashMap::new(),
        });
        path
    }

    /// Pops the frame, runs the hooks on success, wraps the error on failure.
    fn exit<O: Vars<'t, T>>(
        &self,
        module: &dyn Module<T>,
        path: String,
        inputs: &[Var<'t, T>],
        out: Result<O>,
        location: Loc,
    ) -> Result<O> {
        {
            let mut st = self.state.borrow_mut();
            st.frames.pop();
            if st.frames.is_empty() {
                st.table.clear();
            }
        }
        let out = out.map_err(|e| wrap(e, module, Some(&path), None, location))?;
        let outputs = out.vars();
        let call = ModuleCall {
            path: &path,
            module,
            inputs,
            outputs: &outputs,
            location,
        };
        for hook in self.hooks.borrow_mut().iter_mut() {
            hook(&call);
        }
        Ok(out)
    }
}

/// The path of the module with identity `target` below `root` (`""` for `root` itself),
/// the shallowest if several share it.
fn relative_path<T: Float>(root: &dyn Module<T>, target: ModuleId) -> Option<String> {
    if root.module_id() == target {
        return Some(String::new());
    }
    let mut found: Option<String> = None;
    walk(root, "", &mut |path, m| {
        if m.module_id() == target && found.as_ref().is_none_or(|f| depth(path) < depth(f)) {
            found = Some(path.to_string());
        }
    });
    found
}

/// Adds `module`'s context to an error coming out of its call: the first call it passes
/// wraps it (naming `module` and the call's line); every call it passes on the way out
/// extends the path, so the outermost call leaves the full path from the root.
fn wrap<T: Float>(
    e: Error,
    module: &dyn Module<T>,
    path: Option<&str>,
    index: Option<(&dyn Module<T>, usize)>,
    location: Loc,
) -> Error {
    let mut me = match e {
        Error::Module(me) => me,
        other => Box::new(ModuleError {
            layer: module.type_name(),
            path: String::new(),
            location,
            source: other,
            anchor: Some(module.module_id()),
        }),
    };
    if let Some(anchor) = me.anchor {
        let rel = relative_path(module, anchor);
        match path {
            // Traced: `module`'s own path is known, so the error's is final.
            Some(abs) => {
                me.path = join(abs, &join(&rel.unwrap_or_default(), &me.path));
                me.anchor = None;
            }
            None => {
                // A module that is nowhere below this one (built inside `forward`) is
                // named by its type, as hooks name it.
                let rel = rel.unwrap_or_else(|| format!("<{}>", anchor.short_type_name()));
                me.path = join(&rel, &me.path);
                me.anchor = Some(module.module_id());
                if let Some((parent, i)) = index {
                    me.path = join(&i.to_string(), &me.path);
                    me.anchor = Some(parent.module_id());
                }
            }
        }
    }
    Error::Module(me)
}
