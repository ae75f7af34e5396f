//! The tape: a Wengert list of recorded ops, and the reverse sweeps over it.
//!
//! Nodes are appended in execution order, so the list is already topologically sorted and
//! backward is a single reverse pass with no graph search and no reference counting.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::panic::Location;

use smallbox::{smallbox, space::S4, SmallBox};
use smallvec::SmallVec;

use crate::error::{Error, Loc, Phase, Result};
use crate::op::{BackwardCx, Op};
use crate::param::{Param, ParamId};
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

/// A recorded op, stored inline when it fits in four words (every scalar-parameter op
/// does), so recording allocates nothing beyond the output tensor.
type OpBox<T> = SmallBox<dyn Op<T>, S4>;

enum Kind<T: Float> {
    /// No gradient: data, detached values, results of ops on constants or under no_grad.
    Constant,
    /// An input that gradients are taken with respect to (`tape.var`).
    Leaf,
    /// A bound [`Param`]: backward accumulates into it.
    Param(Param<T>),
    /// A recorded op. The box is taken out while its backward rule runs.
    Op {
        op: Option<OpBox<T>>,
        parents: SmallVec<[usize; 2]>,
    },
}

/// (parent node, gradient for it) pairs returned by one backward rule.
type ParentGrads<'t, T> = SmallVec<[(usize, Var<'t, T>); 2]>;

struct Node<T: Float> {
    value: Tensor<T>,
    kind: Kind<T>,
    location: Loc,
}

impl<T: Float> Node<T> {
    fn requires_grad(&self) -> bool {
        !matches!(self.kind, Kind::Constant)
    }

    fn op_name(&self) -> &'static str {
        match &self.kind {
            Kind::Constant => "constant",
            Kind::Leaf => "var",
            Kind::Param(_) => "param",
            Kind::Op { op, .. } => op.as_ref().map_or("<running>", |o| o.name()),
        }
    }
}

/// The node list, in chunks of fixed capacity: pushing never moves recorded nodes, where
/// a growing `Vec` re-copied the whole tape at every doubling.
struct NodeList<T: Float> {
    chunks: Vec<Vec<Node<T>>>,
    len: usize,
}

const CHUNK_BITS: usize = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

impl<T: Float> Default for NodeList<T> {
    fn default() -> Self {
        NodeList {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Float> NodeList<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, node: Node<T>) {
        let c = self.len >> CHUNK_BITS;
        if c == self.chunks.len() {
            // Start small: most tapes in tests and examples hold a few dozen nodes.
            let cap = if c == 0 { 64 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(cap));
        }
        self.chunks[c].push(node);
        self.len += 1;
    }

    /// Drops nodes from `n` on, keeping the chunks' memory for reuse.
    fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        let first = n >> CHUNK_BITS;
        self.chunks[first].truncate(n & (CHUNK - 1));
        for c in &mut self.chunks[first + 1..] {
            c.clear();
        }
        self.len = n;
    }

    fn clear(&mut self) {
        self.truncate(0);
    }
}

impl<T: Float> std::ops::Index<usize> for NodeList<T> {
    type Output = Node<T>;
    #[inline]
    fn index(&self, i: usize) -> &Node<T> {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T: Float> std::ops::IndexMut<usize> for NodeList<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Node<T> {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

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

impl<T: Float> Inner<T> {
    /// Checks a gradient a backward rule of `op` produced for node `p`: its shape must be
    /// the node's ([`Error::BadBackward`] otherwise), and in anomaly mode the first
    /// non-finite gradient is recorded against `op`.
    fn check_gradient(
        &mut self,
        op: &'static str,
        location: Loc,
        p: usize,
        g: &Tensor<T>,
    ) -> Result<()> {
        let ps = self.nodes[p].value.shape();
        if g.shape() != ps {
            return Err(Error::BadBackward {
                op,
                reason: format!(
                    "a gradient of shape {} for an input of shape {ps}",
                    g.shape()
                ),
                location,
            });
        }
        if self.anomaly && self.anomaly_err.is_none() {
            if let Some(index) = g.first_non_finite() {
                self.anomaly_err = Some(Error::Anomaly {
                    op,
                    phase: Phase::Backward,
                    index,
                    shape: g.shape().clone(),
                    location,
                });
            }
        }
        Ok(())
    }
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
        inner.anomaly_err = None;
    }

    /// Turns anomaly mode on or off. When on, the first op whose forward value or backward
    /// gradient holds a NaN or infinity is reported as [`Error::Anomaly`], naming the op and
    /// the line that recorded it: by [`Tape::apply`] when it is that op, and otherwise by the
    /// next [`Var::backward`], [`Tape::grad`], [`Tape::vjp`] or [`Tape::check_anomaly`].
    /// (Built-in ops return their `Var` as usual, so expressions need no extra `?`.) A
    /// non-finite gradient is blamed on the op whose backward rule produced it, not on the
    /// scratch ops inside that rule.
    pub fn set_anomaly_mode(&self, on: bool) {
        self.inner.borrow_mut().anomaly = on;
    }

    /// The anomaly seen so far, if any (it stays reported until [`Tape::reset`]).
    ///
    /// # Errors
    /// The first [`Error::Anomaly`] recorded in anomaly mode.
    pub fn check_anomaly(&self) -> Result<()> {
        match &self.inner.borrow().anomaly_err {
            Some(Error::Anomaly {
                op,
                phase,
                index,
                shape,
                location,
            }) => Err(Error::Anomaly {
                op,
                phase: *phase,
                index: *index,
                shape: shape.clone(),
                location,
            }),
            _ => Ok(()),
        }
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
        struct Restore<'a, T: Float>(&'a Tape<T>, bool);
        impl<T: Float> Drop for Restore<'_, T> {
            fn drop(&mut self) {
                self.0.inner.borrow_mut().grad_enabled = self.1;
            }
        }
        let prev = std::mem::replace(&mut self.inner.borrow_mut().grad_enabled, false);
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
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'_, T> {
        if let Some(&id) = self.inner.borrow().params.get(&p.id()) {
            return Var::new(self, id);
        }
        let id = self.push(p.value(), Kind::Param(p.clone()), Location::caller());
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
        if inner.anomaly && inner.anomaly_err.is_none() && inner.in_rule == 0 {
            if let Some(index) = value.first_non_finite() {
                inner.anomaly_err = Some(Error::Anomaly {
                    op: op.name(),
                    phase: Phase::Forward,
                    index,
                    shape: value.shape().clone(),
                    location: loc,
                });
            }
        }
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

    /// Calls node `i`'s backward rule with `grad` flowing in. Returns the rule's raw
    /// output, the node's parents, the op's name and where it was recorded; `None` for a
    /// node that is not an op.
    #[allow(clippy::type_complexity)]
    fn call_rule<'t>(
        &'t self,
        i: usize,
        grad: Var<'t, T>,
    ) -> Result<
        Option<(
            Vec<Option<Var<'t, T>>>,
            SmallVec<[usize; 2]>,
            &'static str,
            Loc,
        )>,
    > {
        let (op, parents, location) = {
            let mut inner = self.inner.borrow_mut();
            let node = &mut inner.nodes[i];
            let location = node.location;
            match &mut node.kind {
                Kind::Op { op, parents } => (
                    op.take().expect("internal: backward rule re-entered"),
                    SmallVec::from_slice(parents),
                    location,
                ),
                _ => return Ok(None),
            }
        };
        let mut inputs: SmallVec<[Var<'t, T>; 2]> = SmallVec::new();
        for &p in &parents {
            inputs.push(Var::new(self, p));
        }
        let cx = BackwardCx {
            tape: self,
            inputs: &inputs,
            output: Var::new(self, i),
            grad,
            location,
        };
        self.inner.borrow_mut().in_rule += 1;
        let res = op.backward(&cx);
        self.inner.borrow_mut().in_rule -= 1;
        let name = op.name();
        if let Kind::Op { op: slot, .. } = &mut self.inner.borrow_mut().nodes[i].kind {
            *slot = Some(op);
        }
        let grads = res?;
        if grads.len() != parents.len() {
            return Err(Error::BadBackward {
                op: name,
                reason: format!("{} gradients for {} inputs", grads.len(), parents.len()),
                location,
            });
        }
        // Checked as strictly as an op's inputs: a gradient from another tape would be read
        // here by its id, i.e. as whatever unrelated node of this tape has that id.
        if let Some(k) = grads
            .iter()
            .position(|g| g.is_some_and(|g| !std::ptr::eq(g.tape(), self)))
        {
            return Err(Error::BadBackward {
                op: name,
                reason: format!("a gradient for input {k} recorded on another tape"),
                location,
            });
        }
        Ok(Some((grads, parents, name, location)))
    }

    /// Runs node `i`'s backward rule with `grad` flowing in; returns (parent, gradient)
    /// pairs for the parents that require a gradient, checked for shape and anomalies.
    fn run_rule<'t>(&'t self, i: usize, grad: Var<'t, T>) -> Result<ParentGrads<'t, T>> {
        let Some((grads, parents, name, location)) = self.call_rule(i, grad)? else {
            return Ok(SmallVec::new());
        };
        let mut out = SmallVec::new();
        let mut inner = self.inner.borrow_mut();
        for (&p, g) in parents.iter().zip(grads) {
            let Some(g) = g else { continue };
            if !inner.nodes[p].requires_grad() {
                continue;
            }
            let value = inner.nodes[g.id()].value.clone();
            inner.check_gradient(name, location, p, &value)?;
            out.push((p, g));
        }
        drop(inner);
        self.check_anomaly()?;
        Ok(out)
    }

    /// Node `i`'s rule applied to `grad`, one gradient value per input slot (for local
    /// gradient checks).
    pub(crate) fn rule_grads(&self, i: usize, grad: Var<'_, T>) -> Result<Vec<Option<Tensor<T>>>> {
        Ok(match self.call_rule(i, grad)? {
            Some((grads, ..)) => grads.into_iter().map(|g| g.map(|v| v.value())).collect(),
            None => vec![],
        })
    }

    /// An op node's parents and output shape; `None` for leaves and constants.
    pub(crate) fn op_parents(&self, i: usize) -> Option<(Vec<usize>, Shape)> {
        let inner = self.inner.borrow();
        match &inner.nodes[i].kind {
            Kind::Op { parents, .. } => {
                Some((parents.to_vec(), inner.nodes[i].value.shape().clone()))
            }
            _ => None,
        }
    }

    /// An op node's name and recording line; `None` for leaves and constants.
    pub(crate) fn node_info(&self, i: usize) -> Option<(&'static str, Loc)> {
        let inner = self.inner.borrow();
        let n = &inner.nodes[i];
        matches!(n.kind, Kind::Op { .. }).then(|| (n.op_name(), n.location))
    }

    /// Re-evaluates node `i`'s op forward on other input values.
    pub(crate) fn rerun(&self, i: usize, inputs: &[Tensor<T>]) -> Result<Tensor<T>> {
        let inner = self.inner.borrow();
        match &inner.nodes[i].kind {
            Kind::Op { op: Some(op), .. } => {
                let refs: Vec<&Tensor<T>> = inputs.iter().collect();
                op.forward(&refs)
            }
            _ => Ok(inner.nodes[i].value.clone()),
        }
    }

    fn seed(&self, output: usize, op: &'static str, loc: Loc) -> Result<Tensor<T>> {
        let shape = self.shape(output);
        if shape.numel() != 1 {
            return Err(Error::NotScalar {
                op,
                shape,
                location: loc,
            });
        }
        Ok(Tensor::filled(shape, T::one()))
    }

    /// First-order reverse sweep from `output`, adding gradients into bound params. Runs
    /// with recording off and drops each rule's scratch nodes as soon as the rule returns,
    /// so the tape does not grow and each gradient buffer is freed once consumed.
    pub(crate) fn backward_from(
        &self,
        output: usize,
        cotangent: Option<Tensor<T>>,
        loc: Loc,
    ) -> Result<()> {
        self.check_anomaly()?;
        let seed = match cotangent {
            Some(c) => {
                let shape = self.shape(output);
                if c.shape() != &shape {
                    return Err(Error::ShapeMismatch {
                        op: "backward",
                        expected: shape,
                        got: c.shape().clone(),
                        location: loc,
                    });
                }
                c
            }
            None => self.seed(output, "backward", loc)?,
        };
        let mut grads: Vec<Option<Tensor<T>>> = vec![None; output + 1];
        grads[output] = Some(seed);
        let base = self.len();
        self.no_grad(|| {
            for i in (0..=output).rev() {
                let Some(g) = grads[i].take() else { continue };
                let param = match &self.inner.borrow().nodes[i].kind {
                    Kind::Param(p) => Some(p.clone()),
                    Kind::Op { .. } => None,
                    _ => continue,
                };
                if let Some(p) = param {
                    p.accumulate_grad(g);
                    continue;
                }
                if let Some(done) = self.fast_rule(i, &g, &mut grads) {
                    done?;
                    continue;
                }
                let gid = self.push(g, Kind::Constant, loc);
                let res = self.run_rule(i, Var::new(self, gid));
                let pairs = match res {
                    Ok(pairs) => pairs,
                    Err(e) => {
                        self.inner.borrow_mut().nodes.truncate(base);
                        return Err(e);
                    }
                };
                {
                    let inner = self.inner.borrow();
                    for (p, gv) in pairs {
                        accumulate(&mut grads[p], inner.nodes[gv.id()].value.clone());
                    }
                }
                self.inner.borrow_mut().nodes.truncate(base);
            }
            Ok(())
        })
    }

    /// Runs node `i`'s [`Op::backward_values`] fast path when it has one, adding the
    /// gradients into `grads`. `None` when the op has no fast path for these operands.
    fn fast_rule(
        &self,
        i: usize,
        g: &Tensor<T>,
        grads: &mut [Option<Tensor<T>>],
    ) -> Option<Result<()>> {
        let (out, parents, needs, name, location) = {
            let inner = self.inner.borrow();
            let node = &inner.nodes[i];
            let Kind::Op {
                op: Some(op),
                parents,
            } = &node.kind
            else {
                return None;
            };
            // Pushes, not collects: SmallVec's generic `extend` was a quarter of the
            // instructions of a scalar-graph backward.
            let mut vals: SmallVec<[&Tensor<T>; 2]> = SmallVec::new();
            let mut needs: SmallVec<[bool; 2]> = SmallVec::new();
            for &p in parents {
                vals.push(&inner.nodes[p].value);
                needs.push(inner.nodes[p].requires_grad());
            }
            let out = op.backward_values(&vals, &node.value, g, &needs)?;
            let parents: SmallVec<[usize; 2]> = SmallVec::from_slice(parents);
            (out, parents, needs, op.name(), node.location)
        };
        if out.len() != parents.len() {
            return Some(Err(Error::BadBackward {
                op: name,
                reason: format!("{} gradients for {} inputs", out.len(), parents.len()),
                location,
            }));
        }
        let mut inner = self.inner.borrow_mut();
        for ((&p, gp), need) in parents.iter().zip(out).zip(needs) {
            let Some(gp) = gp.filter(|_| need) else {
                continue;
            };
            if let Err(e) = inner.check_gradient(name, location, p, &gp) {
                return Some(Err(e));
            }
            if inner.anomaly_err.is_some() {
                drop(inner);
                return Some(self.check_anomaly());
            }
            accumulate(&mut grads[p], gp);
        }
        Some(Ok(()))
    }

    /// Gradients of a one-element `output` with respect to `inputs`, as `Var`s on this
    /// tape that can be differentiated again (second derivatives, Hessian-vector products,
    /// gradient penalties). Params are not touched. An input that `output` does not depend
    /// on gets a zero gradient.
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
        let out = output.id();
        let mut grads: Vec<Option<Var<'t, T>>> = vec![None; out + 1];
        grads[out] = Some(seed);
        // Nodes older than every input cannot lie on a path from an input to the output.
        let stop = inputs.iter().map(|v| v.id()).min().unwrap_or(out + 1);
        for i in (stop..=out).rev() {
            let Some(g) = grads[i] else { continue };
            for (p, gp) in self.run_rule(i, g)? {
                grads[p] = Some(match grads[p] {
                    None => gp,
                    Some(acc) => acc.add(gp)?,
                });
            }
        }
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
}

/// Adds a gradient contribution into a node's slot (in place when the buffer is unshared).
fn accumulate<T: Float>(slot: &mut Option<Tensor<T>>, g: Tensor<T>) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => acc
            .zip_mut_with(&g, |a, b| *a += b)
            .expect("internal: gradient shapes checked"),
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
