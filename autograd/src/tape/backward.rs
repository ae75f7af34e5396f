//! The first-order sweep behind [`Var::backward`](crate::Var::backward): values only,
//! recording nothing that outlives a rule, an op's `backward_values` fast path where it has
//! one, gradients added into bound params.

use smallvec::SmallVec;

use crate::error::{Error, Loc, Result};
use crate::tensor::{Float, Tensor};
use crate::var::Var;

use super::nodes::Kind;
use super::Tape;

impl<T: Float> Tape<T> {
    pub(super) fn seed(&self, output: usize, op: &'static str, loc: Loc) -> Result<Tensor<T>> {
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
