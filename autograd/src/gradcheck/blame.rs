//! Naming the culprit of a failed check: every recorded op is checked on its own, at the
//! values it saw, against finite differences of its own forward (first order) or of its
//! own backward rule (second order).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{close, unravel, Blame, GradcheckOptions, Rule};
use crate::error::Result;
use crate::tape::Tape;
use crate::tensor::{Shape, Tensor};
use crate::var::Var;

/// Records `f` at `xs` and returns the first op whose backward rule or fast path fails a
/// first-order local check.
pub(super) fn first_order<F>(
    f: &F,
    xs: &[Tensor<f64>],
    opts: &GradcheckOptions,
) -> Result<Option<Blame>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    for id in 0..=y.id() {
        // A rule that cannot even run here has already failed the main check; the blame
        // is a diagnosis, so it moves on.
        if let Ok(Some(b)) = first_order_at(&tape, id, opts) {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Records `f` at `xs` and returns the first op whose backward rule has the right value
/// but the wrong derivative (a second-order local check).
pub(super) fn second_order<F>(
    f: &F,
    xs: &[Tensor<f64>],
    opts: &GradcheckOptions,
) -> Result<Option<Blame>>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::new();
    let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    for id in 0..=y.id() {
        if let Ok(Some(b)) = second_order_at(&tape, id, opts) {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

fn one_hot(k: usize, shape: &Shape) -> Tensor<f64> {
    let mut e = vec![0.0; shape.numel()];
    e[k] = 1.0;
    Tensor::from_parts(e, shape.clone())
}

/// Checks node `id`'s backward rule, and its fast path if it has one, against finite
/// differences of its own forward at the values recorded on `tape`. `None` when both pass
/// or the node is not an op.
fn first_order_at(tape: &Tape<f64>, id: usize, opts: &GradcheckOptions) -> Result<Option<Blame>> {
    let Some((parents, out_shape)) = tape.op_parents(id) else {
        return Ok(None);
    };
    let (op, location) = tape.node_info(id).expect("internal: op node");
    let vals: Vec<Tensor<f64>> = parents.iter().map(|&p| tape.value(p)).collect();
    let n_out = out_shape.numel();
    // rows[path][slot][k]: the vector-Jacobian product of one-hot output k for input
    // `slot`, by the rule (path 0) and the fast path (path 1, when the op has one).
    let zeros = |v: &Tensor<f64>| vec![vec![0.0; v.numel()]; n_out];
    let mut rule: Vec<Vec<Vec<f64>>> = vals.iter().map(zeros).collect();
    let mut fast: Option<Vec<Vec<Vec<f64>>>> = Some(vals.iter().map(zeros).collect());
    for k in 0..n_out {
        let e = one_hot(k, &out_shape);
        let g = tape.no_grad(|| {
            let c = tape.constant(e.clone());
            tape.rule_grads(id, c)
        })?;
        for (slot, t) in g.iter().enumerate() {
            if let Some(t) = t {
                rule[slot][k].copy_from_slice(t.as_slice());
            }
        }
        match (tape.rule_values(id, &e), &mut fast) {
            (Some(vg), Some(rows)) if vg.len() == parents.len() => {
                for (slot, t) in vg.iter().enumerate() {
                    if let Some(t) = t.as_ref().filter(|t| t.numel() == rows[slot][k].len()) {
                        rows[slot][k].copy_from_slice(t.as_slice());
                    }
                }
            }
            // No fast path for these operands: `Var::backward` uses the rule.
            _ => fast = None,
        }
    }
    for (slot, &p) in parents.iter().enumerate() {
        if !tape.requires_grad(p) {
            continue;
        }
        for j in 0..vals[slot].numel() {
            let mut plus = vals.clone();
            let mut minus = vals.clone();
            plus[slot].as_mut_slice()[j] += opts.eps;
            minus[slot].as_mut_slice()[j] -= opts.eps;
            let (yp, ym) = (tape.rerun(id, &plus)?, tape.rerun(id, &minus)?);
            let diffs = yp.as_slice().iter().zip(ym.as_slice());
            for (k, (a, b)) in diffs.enumerate() {
                let num = (a - b) / (2.0 * opts.eps);
                let paths = [
                    (Rule::Backward, Some(&rule)),
                    (Rule::BackwardValues, fast.as_ref()),
                ];
                for (which, rows) in paths {
                    let Some(rows) = rows else { continue };
                    let ana = rows[slot][k][j];
                    if !close(num, ana, opts) {
                        return Ok(Some(Blame {
                            op,
                            location,
                            rule: which,
                            input: slot,
                            index: unravel(j, vals[slot].shape()),
                            numerical: num,
                            analytical: ana,
                        }));
                    }
                }
            }
        }
    }
    Ok(None)
}

fn rademacher(shape: &Shape, rng: &mut StdRng) -> Tensor<f64> {
    let data = (0..shape.numel())
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect();
    Tensor::from_parts(data, shape.clone())
}

/// Checks the derivative of node `id`'s backward rule: `s(x) = Σ_slot ⟨rule(x, u)_slot,
/// w_slot⟩` for fixed random `u` and `w`, differentiated through the rule's own recorded
/// ops (and the op's output, which the rule may use), against finite differences of `s`
/// with the rule re-run at perturbed inputs. A rule can have the right value and still
/// fail here: one that treats as a constant something that depends on the inputs.
fn second_order_at(tape: &Tape<f64>, id: usize, opts: &GradcheckOptions) -> Result<Option<Blame>> {
    let Some((parents, out_shape)) = tape.op_parents(id) else {
        return Ok(None);
    };
    // An input used in several slots (x·x) is one node: perturb all its slots together,
    // as its gradient sums them.
    let mut distinct: Vec<usize> = Vec::new();
    for &p in &parents {
        if tape.requires_grad(p) && !distinct.contains(&p) {
            distinct.push(p);
        }
    }
    if distinct.is_empty() {
        return Ok(None);
    }
    let (op, location) = tape.node_info(id).expect("internal: op node");
    let mut rng =
        StdRng::seed_from_u64(opts.seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let u = rademacher(&out_shape, &mut rng);
    let vals: Vec<Tensor<f64>> = parents.iter().map(|&p| tape.value(p)).collect();
    let w: Vec<Tensor<f64>> = vals
        .iter()
        .map(|v| rademacher(v.shape(), &mut rng))
        .collect();

    // Analytical: record the rule at the real nodes and differentiate s back to them.
    let grads = tape.rule_vars(id, tape.constant(u.clone()))?;
    let mut s: Option<Var<'_, f64>> = None;
    for (g, w) in grads.iter().zip(&w) {
        if let Some(g) = g {
            let term = g.mul(tape.constant(w.clone()))?.sum();
            s = Some(match s {
                None => term,
                Some(acc) => acc.add(term)?,
            });
        }
    }
    let ana = match s {
        Some(s) => tape.grad_until(s, id, &distinct)?,
        None => vec![None; distinct.len()],
    };

    // Numerical: s at perturbed inputs, the rule re-run on stand-ins for them.
    let s_at = |vals: &[Tensor<f64>]| -> Result<f64> {
        tape.no_grad(|| {
            let y = tape.rerun(id, vals)?;
            let inputs: Vec<Var<'_, f64>> = parents
                .iter()
                .zip(vals)
                .map(|(&p, v)| {
                    // the rule may ask which inputs want a gradient
                    if tape.requires_grad(p) {
                        tape.var(v.clone())
                    } else {
                        tape.constant(v.clone())
                    }
                })
                .collect();
            let gs = tape.rule_at(id, &inputs, tape.var(y), tape.constant(u.clone()))?;
            let mut total = 0.0;
            for (g, w) in gs.iter().zip(&w) {
                if let Some(g) = g {
                    let gv = g.value();
                    total += gv
                        .as_slice()
                        .iter()
                        .zip(w.as_slice())
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
                }
            }
            Ok(total)
        })
    };
    for (di, &p) in distinct.iter().enumerate() {
        let slot = parents
            .iter()
            .position(|&q| q == p)
            .expect("internal: a parent");
        let n = vals[slot].numel();
        for j in 0..n {
            let (mut plus, mut minus) = (vals.clone(), vals.clone());
            for (k, &q) in parents.iter().enumerate() {
                if q == p {
                    plus[k].as_mut_slice()[j] += opts.eps;
                    minus[k].as_mut_slice()[j] -= opts.eps;
                }
            }
            let num = (s_at(&plus)? - s_at(&minus)?) / (2.0 * opts.eps);
            let a = ana[di].as_ref().map_or(0.0, |t| t.as_slice()[j]);
            if !close(num, a, opts) {
                return Ok(Some(Blame {
                    op,
                    location,
                    rule: Rule::SecondOrder,
                    input: slot,
                    index: unravel(j, vals[slot].shape()),
                    numerical: num,
                    analytical: a,
                }));
            }
        }
    }
    Ok(None)
}
