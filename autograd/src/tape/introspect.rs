//! What gradient checks read from a tape and re-run of single nodes: an op's parents and
//! name, its forward on other values, and its backward rule and fast path in isolation.

use smallvec::SmallVec;

use crate::error::{Loc, Result};
use crate::op::ValueGrads;
use crate::tensor::{Float, Shape, Tensor};
use crate::var::Var;

use super::nodes::Kind;
use super::Tape;

impl<T: Float> Tape<T> {
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

    /// Node `i`'s rule applied to `grad`, as `Var`s recorded on this tape (differentiable
    /// when recording is on); empty for a node that is not an op.
    pub(crate) fn rule_vars<'t>(
        &'t self,
        i: usize,
        grad: Var<'t, T>,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(self
            .invoke_rule(i, None, grad)?
            .map_or_else(Vec::new, |(grads, ..)| grads))
    }

    /// Node `i`'s rule applied to `grad`, one gradient value per input slot.
    pub(crate) fn rule_grads(&self, i: usize, grad: Var<'_, T>) -> Result<Vec<Option<Tensor<T>>>> {
        Ok(self
            .rule_vars(i, grad)?
            .into_iter()
            .map(|g| g.map(|v| v.value()))
            .collect())
    }

    /// Node `i`'s rule run with stand-ins for its inputs and output (to evaluate the rule
    /// at other values); empty for a node that is not an op.
    pub(crate) fn rule_at<'t>(
        &'t self,
        i: usize,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        grad: Var<'t, T>,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(self
            .invoke_rule(i, Some((inputs, output)), grad)?
            .map_or_else(Vec::new, |(grads, ..)| grads))
    }

    /// Node `i`'s first-order fast path ([`Op::backward_values`](crate::Op::backward_values))
    /// applied to `grad`; `None` when the op has none for these operands (or the node is
    /// not an op).
    pub(crate) fn rule_values(&self, i: usize, grad: &Tensor<T>) -> Option<ValueGrads<T>> {
        let inner = self.inner.borrow();
        let node = &inner.nodes[i];
        let Kind::Op {
            op: Some(op),
            parents,
        } = &node.kind
        else {
            return None;
        };
        let vals: SmallVec<[&Tensor<T>; 2]> =
            parents.iter().map(|&p| &inner.nodes[p].value).collect();
        let needs: SmallVec<[bool; 2]> = parents
            .iter()
            .map(|&p| inner.nodes[p].requires_grad())
            .collect();
        op.backward_values(&vals, &node.value, grad, &needs)
    }

    /// Gradient values of a one-element `output` at nodes `wrt`, from a sweep that runs
    /// the rules of nodes `stop..=output` only: the derivative through those nodes alone,
    /// with the nodes below `stop` held fixed.
    pub(crate) fn grad_until(
        &self,
        output: Var<'_, T>,
        stop: usize,
        wrt: &[usize],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        let seed = self.seed(output.id(), "grad", output_location(self, output.id()))?;
        let seed = self.constant(seed);
        let grads = self.sweep(output, seed, stop)?;
        Ok(wrt
            .iter()
            .map(|&p| grads.get(p).copied().flatten().map(|g| g.value()))
            .collect())
    }
}

fn output_location<T: Float>(tape: &Tape<T>, id: usize) -> Loc {
    tape.inner.borrow().nodes[id].location
}
