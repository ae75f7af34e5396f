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
            Some(c) => self.check_cotangent(output, c, "backward", loc)?,
            None => self.seed(output, "backward", loc)?,
        };
        self.values_sweep(output, seed, None, loc).map(|_| ())
    }

    /// The vector-Jacobian product `Jᵀ·cotangent` of `output` with respect to `inputs`,
    /// as values, by the first-order sweep of [`Var::backward`] (each op's fast path where
    /// it has one) — [`Tape::vjp`] without recording anything that outlives the call, so
    /// the result cannot be differentiated again. Params are not touched: a param among
    /// `inputs` gets its gradient here instead. Gradient hooks run as in
    /// [`Var::backward`]. An input `output` does not depend on gets zeros.
    ///
    /// The sweep stops at the oldest input: gradients are partial derivatives through the
    /// nodes recorded after it.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2])?);
    /// let y = x.square();
    /// let g = tape.vjp_values(y, Tensor::from_vec(vec![1.0, 10.0], [2])?, &[x])?;
    /// assert_eq!(g[0].to_vec(), vec![2.0, 40.0]);
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the cotangent's shape differs from the output's;
    /// [`Error::ForeignVar`]; [`Error::NoBackward`]; [`Error::Anomaly`]; a hook's error.
    #[track_caller]
    pub fn vjp_values(
        &self,
        output: Var<'_, T>,
        cotangent: Tensor<T>,
        inputs: &[Var<'_, T>],
    ) -> Result<Vec<Tensor<T>>> {
        let loc = std::panic::Location::caller();
        if inputs
            .iter()
            .chain([&output])
            .any(|v| !std::ptr::eq(v.tape(), self))
        {
            return Err(Error::ForeignVar {
                op: "vjp_values",
                location: loc,
            });
        }
        self.check_anomaly()?;
        let seed = self.check_cotangent(output.id(), cotangent, "vjp_values", loc)?;
        let targets: Vec<usize> = inputs.iter().map(|v| v.id()).collect();
        let found = self.values_sweep(output.id(), seed, Some(&targets), loc)?;
        Ok(inputs
            .iter()
            .enumerate()
            .map(|(k, v)| {
                // The sweep files an input given twice under its first position.
                let first = targets.iter().position(|&t| t == v.id()).unwrap_or(k);
                found[first]
                    .clone()
                    .unwrap_or_else(|| self.value(v.id()).zeros_like())
            })
            .collect())
    }

    fn check_cotangent(
        &self,
        output: usize,
        c: Tensor<T>,
        op: &'static str,
        loc: Loc,
    ) -> Result<Tensor<T>> {
        let shape = self.shape(output);
        if c.shape() != &shape {
            return Err(Error::ShapeMismatch {
                op,
                expected: shape,
                got: c.shape().clone(),
                location: loc,
            });
        }
        Ok(c)
    }

    /// The values sweep from `output` seeded with `seed`. Without `targets` it runs to the
    /// start of the tape and accumulates into bound params; with them it stops at the
    /// oldest target and returns each target's gradient (params are then leaves).
    fn values_sweep(
        &self,
        output: usize,
        seed: Tensor<T>,
        targets: Option<&[usize]>,
        loc: Loc,
    ) -> Result<Vec<Option<Tensor<T>>>> {
        let mut grads: Vec<Option<Tensor<T>>> = vec![None; output + 1];
        grads[output] = Some(seed);
        let stop = targets.map_or(0, |t| t.iter().copied().min().unwrap_or(output + 1));
        let mut found: Vec<Option<Tensor<T>>> = vec![None; targets.map_or(0, <[usize]>::len)];
        let base = self.len();
        let res = self.no_grad(|| {
            for i in (stop..=output).rev() {
                let Some(mut g) = grads[i].take() else {
                    continue;
                };
                let (param, is_op, hooked) = {
                    let inner = self.inner.borrow();
                    let hooked = !inner.hooks.is_empty() && inner.hooks.contains_key(&i);
                    match &inner.nodes[i].kind {
                        Kind::Param(p) if targets.is_none() => (Some(p.clone()), false, hooked),
                        Kind::Op { .. } => (None, true, hooked),
                        Kind::Param(_) | Kind::Leaf => (None, false, hooked),
                        Kind::Constant => continue,
                    }
                };
                if hooked {
                    let gid = self.push(g, Kind::Constant, loc);
                    let out = self.run_hooks(i, Var::new(self, gid))?;
                    g = self.value(out.id());
                    self.inner.borrow_mut().nodes.truncate(base);
                }
                if let Some(t) = targets {
                    if let Some(k) = t.iter().position(|&t| t == i) {
                        found[k] = Some(g);
                        continue;
                    }
                }
                if let Some(p) = param {
                    p.accumulate_grad(g);
                    p.run_post_accumulate_hooks();
                    continue;
                }
                if !is_op {
                    continue;
                }
                if let Some(done) = self.fast_rule(i, &g, &mut grads) {
                    done?;
                    continue;
                }
                let gid = self.push(g, Kind::Constant, loc);
                let pairs = self.run_rule(i, Var::new(self, gid))?;
                {
                    let inner = self.inner.borrow();
                    for (p, gv) in pairs {
                        accumulate(&mut grads[p], inner.nodes[gv.id()].value.clone());
                    }
                }
                self.inner.borrow_mut().nodes.truncate(base);
            }
            Ok(())
        });
        // Whatever failed, the sweep's scratch nodes go.
        self.inner.borrow_mut().nodes.truncate(base);
        res.map(|()| found)
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
