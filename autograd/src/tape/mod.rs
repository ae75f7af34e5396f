//! The tape: a Wengert list of recorded ops, and the reverse sweeps over it.
//!
//! Nodes are appended in execution order, so the list is already topologically sorted and
//! backward is a single reverse pass with no graph search and no reference counting.
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Tape`]: recording values, params and ops |
//! | `nodes.rs` | the node list and what a node holds |
//! | `anomaly.rs` | anomaly mode: the first NaN or infinity, forward or backward |
//! | `rules.rs` | running one node's backward rule, with its output checked |
//! | `backward.rs` | the first-order sweep behind [`Var::backward`] (fast paths, into params) |
//! | `grad.rs` | the differentiable sweep behind [`Tape::grad`] and [`Tape::vjp`] |
//! | `hooks.rs` | gradient hooks on values ([`Var::register_hook`]) |
//! | `introspect.rs` | what gradient checks read and re-run of single nodes |

mod anomaly;
mod backward;
mod grad;
mod hooks;
mod introspect;
mod nodes;
mod rules;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::panic::Location;

use smallbox::smallbox;
use smallvec::SmallVec;

use crate::error::{Error, Loc, Result};
use crate::op::Op;
use crate::param::{Param, ParamId};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

use nodes::{Kind, Node, NodeList};

struct Inner<T: Float> {
    nodes: NodeList<T>,
    params: HashMap<ParamId, usize>,
    grad_enabled: bool,
    anomaly: bool,
    anomaly_err: Option<Error>,
    /// Depth of backward rules running. Their scratch ops' forward values are not checked
    /// for anomalies: a non-finite gradient is the rule's fault, and is reported against
    /// the op whose rule it is (phase backward) once the rule returns.
    in_rule: u32,
    /// Gradient hooks by node, in registration order (empty for almost every tape, which
    /// is all the sweeps check per node).
    hooks: HashMap<usize, Vec<std::rc::Rc<hooks::VarHook<T>>>>,
}

/// A recording of differentiable computation.
///
/// Create one per training step (or [`reset`](Tape::reset) it): dropping it frees the
/// whole graph at once.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::scalar(3.0));
/// let y = x.square().add_scalar(x.value().item()? * 5.0); // y = x² + 15
/// let dy = tape.grad(y, &[x])?[0];                        // dy/dx = 2x = 6
/// assert_eq!(dy.item()?, 6.0);
/// # Ok::<(), autograd::Error>(())
/// ```
pub struct Tape<T: Float = f32> {
    inner: RefCell<Inner<T>>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape, recording.
    pub fn new() -> Self {
        Tape {
            inner: RefCell::new(Inner {
                nodes: NodeList::default(),
                params: HashMap::new(),
                grad_enabled: true,
                anomaly: false,
                anomaly_err: None,
                in_rule: 0,
                hooks: HashMap::new(),
            }),
        }
    }

    /// Number of recorded nodes (leaves and constants included).
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every node, keeping the allocation (no `Var` of this tape can be alive).
    pub fn reset(&mut self) {
        let inner = self.inner.get_mut();
        inner.nodes.clear();
        inner.params.clear();
        inner.hooks.clear();
        inner.anomaly_err = None;
    }

    /// Whether ops are being recorded (false inside [`Tape::no_grad`]).
    pub fn is_grad_enabled(&self) -> bool {
        self.inner.borrow().grad_enabled
    }

    /// Runs `f` with recording off: ops compute values but record no gradient path.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(1.0));
    /// let y = tape.no_grad(|| x.exp());
    /// assert!(!y.requires_grad());
    /// ```
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        self.with_grad_enabled(false, f)
    }

    /// Runs `f` with recording on, even inside [`Tape::no_grad`] or a backward sweep
    /// (PyTorch's `enable_grad`): what a rule that re-runs a forward computation during
    /// backward (activation checkpointing) uses to record it.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(1.0));
    /// let y = tape.no_grad(|| tape.enable_grad(|| x.exp()));
    /// assert!(y.requires_grad());
    /// ```
    pub fn enable_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        self.with_grad_enabled(true, f)
    }

    fn with_grad_enabled<R>(&self, enabled: bool, f: impl FnOnce() -> R) -> R {
        struct Restore<'a, T: Float>(&'a Tape<T>, bool);
        impl<T: Float> Drop for Restore<'_, T> {
            fn drop(&mut self) {
                self.0.inner.borrow_mut().grad_enabled = self.1;
            }
        }
        let prev = std::mem::replace(&mut self.inner.borrow_mut().grad_enabled, enabled);
        let _restore = Restore(self, prev);
        f()
    }

    fn push(&self, value: Tensor<T>, kind: Kind<T>, location: Loc) -> usize {
        let mut inner = self.inner.borrow_mut();
        inner.nodes.push(Node {
            value,
            kind,
            location,
        });
        inner.nodes.len() - 1
    }

    /// A value that needs no gradient (data, targets, masks).
    #[track_caller]
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        let id = self.push(value, Kind::Constant, Location::caller());
        Var::new(self, id)
    }

    /// An input to differentiate with respect to, via [`Tape::grad`].
    #[track_caller]
    pub fn var(&self, value: Tensor<T>) -> Var<'_, T> {
        let id = self.push(value, Kind::Leaf, Location::caller());
        Var::new(self, id)
    }

    /// Binds a [`Param`] into this tape; binding it again returns the same `Var`.
    ///
    /// A frozen parameter ([`Param::set_requires_grad`]`(false)`) is bound as a constant:
    /// no gradient path is recorded through it, so backward computes nothing for it (nor
    /// for values only it feeds) and accumulates nothing into it.
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'_, T> {
        if let Some(&id) = self.inner.borrow().params.get(&p.id()) {
            return Var::new(self, id);
        }
        let kind = if p.requires_grad() {
            Kind::Param(p.clone())
        } else {
            Kind::Constant
        };
        let id = self.push(p.value(), kind, Location::caller());
        self.inner.borrow_mut().params.insert(p.id(), id);
        Var::new(self, id)
    }

    pub(crate) fn value(&self, id: usize) -> Tensor<T> {
        self.inner.borrow().nodes[id].value.clone()
    }

    pub(crate) fn shape(&self, id: usize) -> Shape {
        self.inner.borrow().nodes[id].value.shape().clone()
    }

    /// Whether node `id`'s value has shape `shape`, without cloning it.
    pub(crate) fn has_shape(&self, id: usize, shape: &Shape) -> bool {
        self.inner.borrow().nodes[id].value.shape() == shape
    }

    /// Whether two nodes' values have the same shape, without cloning either.
    pub(crate) fn same_shape(&self, a: usize, b: usize) -> bool {
        let inner = self.inner.borrow();
        inner.nodes[a].value.shape() == inner.nodes[b].value.shape()
    }

    pub(crate) fn requires_grad(&self, id: usize) -> bool {
        self.inner.borrow().nodes[id].requires_grad()
    }

    pub(crate) fn detach(&self, id: usize, loc: Loc) -> usize {
        let v = self.value(id);
        self.push(v, Kind::Constant, loc)
    }

    /// Records a user-defined (or built-in) op applied to `inputs`.
    ///
    /// # Errors
    /// [`Error::ForeignVar`] when an input is from another tape; the op's own forward
    /// errors, pointed at the caller's line; [`Error::Anomaly`] in anomaly mode when this
    /// op's output is not finite.
    #[track_caller]
    pub fn apply<'t, O: Op<T>>(&'t self, op: O, inputs: &[Var<'t, T>]) -> Result<Var<'t, T>> {
        let loc = Location::caller();
        let v = self.record(op, inputs, loc)?;
        match &self.inner.borrow().anomaly_err {
            Some(Error::Anomaly { location, .. }) if std::ptr::eq(*location, loc) => {}
            _ => return Ok(v),
        }
        self.check_anomaly().map(|_| v)
    }

    /// Records an op; anomalies are stored, to be reported by backward. The workhorse of
    /// every built-in op.
    pub(crate) fn record<'t, O: Op<T>>(
        &'t self,
        op: O,
        inputs: &[Var<'t, T>],
        loc: Loc,
    ) -> Result<Var<'t, T>> {
        if let Some(v) = inputs.iter().find(|v| !std::ptr::eq(v.tape(), self)) {
            let _ = v;
            return Err(Error::ForeignVar {
                op: op.name(),
                location: loc,
            });
        }
        let mut inner = self.inner.borrow_mut();
        let value = {
            let mut vals: SmallVec<[&Tensor<T>; 4]> = SmallVec::new();
            for v in inputs {
                vals.push(&inner.nodes[v.id()].value);
            }
            op.forward(&vals).map_err(|e| e.at(loc))?
        };
        let requires =
            inner.grad_enabled && inputs.iter().any(|v| inner.nodes[v.id()].requires_grad());
        inner.check_forward(op.name(), &value, loc);
        let kind = if requires {
            Kind::Op {
                op: Some(smallbox!(op)),
                parents: {
                    let mut ids = SmallVec::new();
                    for v in inputs {
                        ids.push(v.id());
                    }
                    ids
                },
            }
        } else {
            Kind::Constant
        };
        inner.nodes.push(Node {
            value,
            kind,
            location: loc,
        });
        let id = inner.nodes.len() - 1;
        drop(inner);
        Ok(Var::new(self, id))
    }
}

impl<T: Float> fmt::Display for Tape<T> {
    /// One line per node: id, op, output shape, inputs and the line that recorded it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        for i in 0..inner.nodes.len() {
            let n = &inner.nodes[i];
            write!(
                f,
                "#{i:<4} {:<14} {:<16}",
                n.op_name(),
                n.value.shape().to_string()
            )?;
            match &n.kind {
                Kind::Op { parents, .. } => {
                    let ps: Vec<String> = parents.iter().map(|p| format!("#{p}")).collect();
                    write!(f, " <- {:<12}", ps.join(", "))?;
                }
                Kind::Param(p) => write!(f, " {:<15}", p.name().unwrap_or_default())?,
                _ => write!(f, " {:<15}", "")?,
            }
            writeln!(f, " at {}", n.location)?;
        }
        Ok(())
    }
}

impl<T: Float> fmt::Debug for Tape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tape({} nodes)\n{self}", self.len())
    }
}
