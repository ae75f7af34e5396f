//! Running one node's backward rule: shared by both sweeps and by gradient checks, so the
//! rule's output is checked the same way everywhere — as strictly as an op's inputs.

use smallvec::SmallVec;

use crate::error::{Error, Loc, Result};
use crate::op::BackwardCx;
use crate::tensor::Float;
use crate::var::Var;

use super::nodes::Kind;
use super::Tape;

/// (parent node, gradient for it) pairs returned by one backward rule.
pub(super) type ParentGrads<'t, T> = SmallVec<[(usize, Var<'t, T>); 2]>;

/// A rule's raw output: one optional gradient per input slot, the node's parents, the
/// op's name and where it was recorded.
pub(super) type RuleOutput<'t, T> = (
    Vec<Option<Var<'t, T>>>,
    SmallVec<[usize; 2]>,
    &'static str,
    Loc,
);

impl<T: Float> Tape<T> {
    /// Calls node `i`'s backward rule with `grad` flowing in, on the node's own inputs and
    /// output, or on stand-ins for them (`at`: inputs and output, for re-running a rule at
    /// other values). `None` for a node that is not an op.
    ///
    /// The output is checked: one gradient per input, each recorded on this tape.
    pub(super) fn invoke_rule<'t>(
        &'t self,
        i: usize,
        at: Option<(&[Var<'t, T>], Var<'t, T>)>,
        grad: Var<'t, T>,
    ) -> Result<Option<RuleOutput<'t, T>>> {
        let (op, parents, location) = {
            let mut inner = self.inner.borrow_mut();
            let node = &mut inner.nodes[i];
            let location = node.location;
            match &mut node.kind {
                Kind::Op { op, parents } => (
                    op.take().expect("internal: backward rule re-entered"),
                    SmallVec::<[usize; 2]>::from_slice(parents),
                    location,
                ),
                _ => return Ok(None),
            }
        };
        let own: SmallVec<[Var<'t, T>; 2]> = parents.iter().map(|&p| Var::new(self, p)).collect();
        let (inputs, output) = match at {
            Some((inputs, output)) => (inputs, output),
            None => (&own[..], Var::new(self, i)),
        };
        let cx = BackwardCx {
            tape: self,
            inputs,
            output,
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
        // A gradient from another tape would be read here by its id, i.e. as whatever
        // unrelated node of this tape has that id (or past the end).
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
    pub(super) fn run_rule<'t>(&'t self, i: usize, grad: Var<'t, T>) -> Result<ParentGrads<'t, T>> {
        let Some((grads, parents, name, location)) = self.invoke_rule(i, None, grad)? else {
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
}
