//! `einsum`: Einstein summation over any number of operands, lowered to the ops that
//! already have backward rules (a diagonal gather, `broadcast_to`, `sum`, `permute`,
//! `reshape` and batched `matmul`), so it is differentiable to any order with no rule of its
//! own.
//!
//! The equation follows `torch.einsum`: one letter (`a-z`, `A-Z`) per axis, terms separated
//! by commas, an optional `->` and output; `...` stands for the broadcast leading axes. A
//! letter missing from the output is summed over; a letter repeated in one operand takes the
//! diagonal; without `->` the output is every letter that appears once, in ASCII order
//! (upper case first), after the `...` axes. Axes of size 1 broadcast against the same
//! letter elsewhere, as in PyTorch.

use std::fmt;

use crate::error::{Error, Result};
use crate::tensor::{Float, Shape};
use crate::var::Var;

/// What is wrong with an `einsum` equation, or with its operands for it
/// (see [`Error::Einsum`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EinsumProblem {
    /// No operands were given.
    NoOperands,
    /// A character that is not a subscript letter, `,`, `->`, `...` or a space.
    InvalidCharacter {
        /// Its position in the equation (in characters).
        position: usize,
        /// The character.
        found: char,
    },
    /// A `.` outside `...`, or more than one `...` in one term.
    BadEllipsis {
        /// The term (operand index; the number of operands for the output).
        term: usize,
    },
    /// The number of terms before `->` differs from the number of operands.
    OperandCount {
        /// Terms in the equation.
        terms: usize,
        /// Operands given.
        operands: usize,
    },
    /// An operand's rank does not match its subscripts.
    RankMismatch {
        /// The operand.
        operand: usize,
        /// Its number of letters.
        subscripts: usize,
        /// Whether its term has `...` (then the rank may be larger).
        ellipsis: bool,
        /// Its rank.
        rank: usize,
    },
    /// A letter repeated within one operand labels axes of different sizes.
    RepeatedSizeMismatch {
        /// The operand.
        operand: usize,
        /// The letter.
        label: char,
        /// The two sizes.
        sizes: (usize, usize),
    },
    /// A letter (or, with `label = '.'`, an axis under `...`) has sizes that neither
    /// agree nor broadcast (one of them 1) across operands.
    SizeMismatch {
        /// The letter, or `.` for an axis under `...`.
        label: char,
        /// The two sizes.
        sizes: (usize, usize),
    },
    /// The output lists a letter twice.
    RepeatedOutput {
        /// The letter.
        label: char,
    },
    /// The output lists a letter that no operand has.
    UnknownOutput {
        /// The letter.
        label: char,
    },
}

impl fmt::Display for EinsumProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EinsumProblem::NoOperands => write!(f, "no operands"),
            EinsumProblem::InvalidCharacter { position, found } => write!(
                f,
                "invalid character {found:?} at position {position} (subscripts are a-z, A-Z)"
            ),
            EinsumProblem::BadEllipsis { term } => {
                write!(f, "term {term} has a '.' outside a single '...'")
            }
            EinsumProblem::OperandCount { terms, operands } => {
                write!(f, "{terms} terms for {operands} operands")
            }
            EinsumProblem::RankMismatch {
                operand,
                subscripts,
                ellipsis,
                rank,
            } => write!(
                f,
                "operand {operand} has rank {rank} but {}{subscripts} subscripts",
                if *ellipsis { "'...' and " } else { "" }
            ),
            EinsumProblem::RepeatedSizeMismatch {
                operand,
                label,
                sizes,
            } => write!(
                f,
                "subscript {label} is repeated in operand {operand} for axes of sizes {} and {}",
                sizes.0, sizes.1
            ),
            EinsumProblem::SizeMismatch { label, sizes } => write!(
                f,
                "subscript {label} labels axes of sizes {} and {}, which do not broadcast",
                sizes.0, sizes.1
            ),
            EinsumProblem::RepeatedOutput { label } => {
                write!(f, "output subscript {label} appears twice")
            }
            EinsumProblem::UnknownOutput { label } => {
                write!(f, "output subscript {label} appears in no operand")
            }
        }
    }
}

/// Letters map to 0..52 in ASCII order (`A-Z`, then `a-z`); axes under `...` to 52 and up.
const LETTERS: usize = 52;

fn letter_id(c: char) -> Option<usize> {
    match c {
        'A'..='Z' => Some(c as usize - 'A' as usize),
        'a'..='z' => Some(c as usize - 'a' as usize + 26),
        _ => None,
    }
}

fn label_char(id: usize) -> char {
    match id {
        0..=25 => (b'A' + id as u8) as char,
        26..=51 => (b'a' + (id - 26) as u8) as char,
        _ => '.',
    }
}

/// One term: letter ids, with `None` standing for `...`.
type Term = Vec<Option<usize>>;

/// Splits the equation into input terms and the explicit output term, if any.
fn parse(equation: &str) -> Result<(Vec<Term>, Option<Term>), EinsumProblem> {
    let mut inputs: Vec<Term> = vec![Vec::new()];
    let mut output: Option<Term> = None;
    let chars: Vec<char> = equation.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let in_output = output.is_some();
        let term_no = inputs.len() - 1 + usize::from(in_output);
        match c {
            ' ' | '\t' | '\n' => {}
            ',' if !in_output => inputs.push(Vec::new()),
            '-' if !in_output && chars.get(i + 1) == Some(&'>') => {
                output = Some(Vec::new());
                i += 1;
            }
            '.' => {
                let term = match output.as_mut() {
                    Some(o) => o,
                    None => inputs.last_mut().expect("internal: at least one term"),
                };
                if chars.get(i + 1) != Some(&'.')
                    || chars.get(i + 2) != Some(&'.')
                    || term.contains(&None)
                {
                    return Err(EinsumProblem::BadEllipsis { term: term_no });
                }
                term.push(None);
                i += 2;
            }
            c => {
                let Some(id) = letter_id(c) else {
                    return Err(EinsumProblem::InvalidCharacter {
                        position: i,
                        found: c,
                    });
                };
                match output.as_mut() {
                    Some(o) => o.push(Some(id)),
                    None => inputs
                        .last_mut()
                        .expect("internal: at least one term")
                        .push(Some(id)),
                }
            }
        }
        i += 1;
    }
    Ok((inputs, output))
}

/// Each operand's axis labels (with `...` expanded, right-aligned across operands) and the
/// output's labels.
fn resolve(
    inputs: &[Term],
    output: Option<&Term>,
    ranks: &[usize],
) -> Result<(Vec<Vec<usize>>, Vec<usize>), EinsumProblem> {
    if inputs.len() != ranks.len() {
        return Err(EinsumProblem::OperandCount {
            terms: inputs.len(),
            operands: ranks.len(),
        });
    }
    let mut ell = vec![0; inputs.len()];
    for (o, (term, &rank)) in inputs.iter().zip(ranks).enumerate() {
        let letters = term.iter().filter(|s| s.is_some()).count();
        let has = term.len() > letters;
        if (has && rank < letters) || (!has && rank != letters) {
            return Err(EinsumProblem::RankMismatch {
                operand: o,
                subscripts: letters,
                ellipsis: has,
                rank,
            });
        }
        ell[o] = rank - letters;
    }
    let e_max = ell.iter().copied().max().unwrap_or(0);
    let expand = |term: &Term, e: usize| -> Vec<usize> {
        let mut out = Vec::new();
        for s in term {
            match s {
                Some(id) => out.push(*id),
                None => out.extend((e_max - e..e_max).map(|k| LETTERS + k)),
            }
        }
        out
    };
    let labels: Vec<Vec<usize>> = inputs
        .iter()
        .zip(&ell)
        .map(|(t, &e)| expand(t, e))
        .collect();
    let out = match output {
        Some(term) => {
            let out = expand(term, e_max);
            for (k, &l) in out.iter().enumerate() {
                if out[..k].contains(&l) {
                    return Err(EinsumProblem::RepeatedOutput {
                        label: label_char(l),
                    });
                }
                if l < LETTERS && !labels.iter().any(|ls| ls.contains(&l)) {
                    return Err(EinsumProblem::UnknownOutput {
                        label: label_char(l),
                    });
                }
            }
            out
        }
        None => {
            let mut out: Vec<usize> = (LETTERS..LETTERS + e_max).collect();
            for id in 0..LETTERS {
                let count: usize = labels
                    .iter()
                    .map(|ls| ls.iter().filter(|&&l| l == id).count())
                    .sum();
                if count == 1 {
                    out.push(id);
                }
            }
            out
        }
    };
    Ok((labels, out))
}

/// The size of every label across operands (size 1 broadcasts).
fn label_sizes(labels: &[Vec<usize>], shapes: &[Shape]) -> Result<Vec<usize>, EinsumProblem> {
    let mut size: Vec<Option<usize>> = vec![None; LETTERS + 64];
    for (o, (ls, s)) in labels.iter().zip(shapes).enumerate() {
        let mut own: Vec<Option<usize>> = vec![None; size.len()];
        for (&l, &d) in ls.iter().zip(s.iter()) {
            if l >= size.len() {
                size.resize(l + 1, None);
                own.resize(l + 1, None);
            }
            match own[l] {
                Some(prev) if prev != d => {
                    return Err(EinsumProblem::RepeatedSizeMismatch {
                        operand: o,
                        label: label_char(l),
                        sizes: (prev, d),
                    })
                }
                _ => own[l] = Some(d),
            }
            size[l] = match size[l] {
                None => Some(d),
                Some(prev) if prev == d || d == 1 => Some(prev),
                Some(1) => Some(d),
                Some(prev) => {
                    return Err(EinsumProblem::SizeMismatch {
                        label: label_char(l),
                        sizes: (prev, d),
                    })
                }
            };
        }
    }
    Ok(size.into_iter().map(|s| s.unwrap_or(1)).collect())
}

/// A partial result: a value and the label of each of its axes.
struct Labelled<'t, T: Float> {
    var: Var<'t, T>,
    labels: Vec<usize>,
}

impl<'t, T: Float> Labelled<'t, T> {
    /// Sums away the labels `drop` says to drop.
    #[track_caller]
    fn sum_out(self, drop: impl Fn(usize) -> bool) -> Result<Self> {
        let axes: Vec<isize> = (0..self.labels.len())
            .filter(|&k| drop(self.labels[k]))
            .map(|k| k as isize)
            .collect();
        if axes.is_empty() {
            return Ok(self);
        }
        let labels = self.labels.iter().copied().filter(|&l| !drop(l)).collect();
        Ok(Labelled {
            var: self.var.sum_axes(&axes, false)?,
            labels,
        })
    }

    /// Reorders the axes to `order` (a permutation of the labels).
    #[track_caller]
    fn arrange(self, order: &[usize]) -> Result<Self> {
        let perm: Vec<usize> = order
            .iter()
            .map(|l| {
                self.labels
                    .iter()
                    .position(|m| m == l)
                    .expect("internal: einsum label present")
            })
            .collect();
        let var = if perm.iter().enumerate().all(|(i, &p)| i == p) {
            self.var
        } else {
            self.var.permute(&perm)?
        };
        Ok(Labelled {
            var,
            labels: order.to_vec(),
        })
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Einstein summation, as `torch.einsum(equation, *operands)`: `"ij,jk->ik"` is a matrix
    /// product, `"bij,bjk->bik"` a batched one, `"ii->"` the trace, `"i,j->ij"` the outer
    /// product, `"...ij->...ji"` a transpose of the last two axes. Each operand's gradient
    /// is the einsum of the incoming gradient with the other operands, and is itself
    /// differentiable.
    ///
    /// ```
    /// use autograd::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let q = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], [2, 2])?);
    /// let k = tape.var(Tensor::eye(2)?);
    /// let s = Var::einsum("qd,kd->qk", &[q, k])?;      // q · kᵀ
    /// assert_eq!(s.value().to_vec(), vec![1., 2., 3., 4.]);
    /// assert_eq!(Var::einsum("ii", &[q])?.item()?, 5.0); // trace
    /// # Ok::<(), autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Einsum`] with an [`EinsumProblem`] when the equation cannot be parsed or
    /// does not fit the operands' shapes; [`Error::ForeignVar`] when the operands are on
    /// different tapes; [`Error::TooLarge`] when the output or an intermediate product has
    /// a shape no tensor can have.
    #[track_caller]
    pub fn einsum(equation: &str, operands: &[Self]) -> Result<Self> {
        let location = std::panic::Location::caller();
        let fail = |problem| Error::Einsum {
            equation: equation.to_string(),
            problem,
            location,
        };
        let Some(first) = operands.first() else {
            return Err(fail(EinsumProblem::NoOperands));
        };
        if operands
            .iter()
            .any(|v| !std::ptr::eq(v.tape(), first.tape()))
        {
            return Err(Error::ForeignVar {
                op: "einsum",
                location,
            });
        }
        let shapes: Vec<Shape> = operands.iter().map(|v| v.shape()).collect();
        let ranks: Vec<usize> = shapes.iter().map(|s| s.rank()).collect();
        let (labels, out) = match parse(equation)
            .and_then(|(inputs, output)| resolve(&inputs, output.as_ref(), &ranks))
        {
            Ok(r) => r,
            Err(p) => return Err(fail(p)),
        };
        let size = match label_sizes(&labels, &shapes) {
            Ok(s) => s,
            Err(p) => return Err(fail(p)),
        };
        let out_dims: Vec<usize> = out.iter().map(|&l| size[l]).collect();
        Shape::from(out_dims.clone()).check("einsum")?;

        // Labels still needed after operand `i`: the output's and those of later operands.
        let needed_after = |i: usize, l: usize| {
            out.contains(&l) || labels[i + 1..].iter().any(|ls| ls.contains(&l))
        };
        // A label only this operand has, and nobody needs, is summed right away.
        let lone = |i: usize, l: usize| {
            !needed_after(i, l) && !labels[..i].iter().any(|other| other.contains(&l))
        };
        let mut acc = Self::einsum_prepare(*first, &labels[0], &size)?.sum_out(|l| lone(0, l))?;
        for (i, (&x, ls)) in operands.iter().zip(&labels).enumerate().skip(1) {
            let cur = Self::einsum_prepare(x, ls, &size)?.sum_out(|l| lone(i, l))?;
            acc = Self::einsum_contract(acc, cur, &size, |l| needed_after(i, l))?;
        }
        let acc = acc.sum_out(|l| !out.contains(&l))?;
        Ok(acc.arrange(&out)?.var)
    }

    /// Takes the diagonal of repeated labels and stretches size-1 axes that broadcast.
    #[track_caller]
    fn einsum_prepare(x: Self, ls: &[usize], size: &[usize]) -> Result<Labelled<'t, T>> {
        let shape = x.shape();
        let mut unique: Vec<usize> = Vec::with_capacity(ls.len());
        for &l in ls {
            if !unique.contains(&l) {
                unique.push(l);
            }
        }
        let mut var = x;
        if unique.len() < ls.len() {
            // out[u0, u1, ..] = x[the axes' labels' positions]: one gather for every diagonal.
            let udims: Vec<usize> = unique
                .iter()
                .map(|&l| shape[ls.iter().position(|&m| m == l).expect("internal: label")])
                .collect();
            let ushape = Shape::from(udims.clone());
            let ustrides = ushape.strides();
            let st = shape.strides();
            let mut idx = crate::tensor::buffer("einsum", &ushape)?;
            idx.extend((0..ushape.numel()).map(|k| {
                ls.iter()
                    .zip(st.iter())
                    .map(|(&l, &s)| {
                        let u = unique.iter().position(|&m| m == l).expect("internal");
                        (k / ustrides[u]) % udims[u] * s
                    })
                    .sum::<usize>()
            }));
            var = var.gather_named("einsum", idx, ushape, T::zero());
        }
        let dims: Vec<usize> = unique.iter().map(|&l| size[l]).collect();
        if var.dims() != dims {
            var = var.broadcast_to(dims)?;
        }
        Ok(Labelled {
            var,
            labels: unique,
        })
    }

    /// Contracts two partial results over their shared labels that are not `keep`, as one
    /// batched matrix product: `a` to `[batch, a-only, shared]`, `b` to
    /// `[batch, shared, b-only]`.
    #[track_caller]
    fn einsum_contract(
        a: Labelled<'t, T>,
        b: Labelled<'t, T>,
        size: &[usize],
        keep: impl Fn(usize) -> bool,
    ) -> Result<Labelled<'t, T>> {
        // A label on one side that nobody needs any more is summed first.
        let a = a.sum_out(|l| !keep(l) && !b.labels.contains(&l))?;
        let b = b.sum_out(|l| !keep(l) && !a.labels.contains(&l))?;
        let (mut batch, mut shared, mut a_only) = (vec![], vec![], vec![]);
        for &l in &a.labels {
            match (b.labels.contains(&l), keep(l)) {
                (true, true) => batch.push(l),
                (true, false) => shared.push(l),
                (false, _) => a_only.push(l),
            }
        }
        let b_only: Vec<usize> = b
            .labels
            .iter()
            .copied()
            .filter(|l| !a.labels.contains(l))
            .collect();
        let prod = |ls: &[usize]| -> usize { ls.iter().map(|&l| size[l]).product() };
        let (nb, m, k, n) = (prod(&batch), prod(&a_only), prod(&shared), prod(&b_only));
        let mut dims: Vec<usize> = batch.iter().map(|&l| size[l]).collect();
        dims.extend(a_only.iter().chain(&b_only).map(|&l| size[l]));
        Shape::from(dims.clone()).check("einsum")?;
        let order_a: Vec<usize> = batch
            .iter()
            .chain(&a_only)
            .chain(&shared)
            .copied()
            .collect();
        let order_b: Vec<usize> = batch
            .iter()
            .chain(&shared)
            .chain(&b_only)
            .copied()
            .collect();
        let av = a.arrange(&order_a)?.var;
        let bv = b.arrange(&order_b)?.var;
        let product = if batch.is_empty() {
            av.reshape([m, k])?.matmul(bv.reshape([k, n])?)?
        } else {
            av.reshape([nb, m, k])?.matmul(bv.reshape([nb, k, n])?)?
        };
        let labels = batch.into_iter().chain(a_only).chain(b_only).collect();
        Ok(Labelled {
            var: product.reshape(dims)?,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::EinsumProblem;
    use crate::{gradgradcheck, Error, GradcheckOptions, Tape, Tensor, Var};

    fn ramp(dims: &[usize]) -> Tensor<f64> {
        let n = dims.iter().product();
        Tensor::arange(n).unwrap().reshape(dims).unwrap()
    }

    #[test]
    fn einsum_matches_the_dedicated_ops() {
        let tape = Tape::<f64>::new();
        let a = tape.var(ramp(&[2, 3]));
        let b = tape.var(ramp(&[3, 4]));
        let mm = Var::einsum("ij,jk->ik", &[a, b]).unwrap();
        assert_eq!(mm.value(), a.matmul(b).unwrap().value());
        let t = Var::einsum("ij->ji", &[a]).unwrap();
        assert_eq!(t.value(), a.t().unwrap().value());
        let s = Var::einsum("ij->", &[a]).unwrap();
        assert_eq!(s.item().unwrap(), 15.0);
        let sq = tape.var(ramp(&[3, 3]));
        assert_eq!(Var::einsum("ii", &[sq]).unwrap().item().unwrap(), 12.0);
        assert_eq!(
            Var::einsum("ii->i", &[sq]).unwrap().value().to_vec(),
            vec![0., 4., 8.]
        );
        // implicit output: letters seen once, ASCII order (upper case first)
        assert_eq!(Var::einsum("ba", &[a]).unwrap().dims(), vec![3, 2]);
        assert_eq!(Var::einsum("aB", &[a]).unwrap().dims(), vec![3, 2]);
        // ellipsis with broadcasting batch axes
        let x = tape.var(ramp(&[5, 2, 3]));
        let y = Var::einsum("...ij,...jk", &[x, b]).unwrap();
        assert_eq!(y.dims(), vec![5, 2, 4]);
        assert_eq!(y.value(), x.matmul(b).unwrap().value());
        let three = Var::einsum(
            "i,j,k->ijk",
            &[
                a.flatten(0, 1).unwrap(),
                b.sum_axes(&[0], false).unwrap(),
                a.sum_axes(&[1], false).unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(three.dims(), vec![6, 4, 2]);
    }

    #[test]
    fn einsum_second_derivatives_match_finite_differences() {
        let o = GradcheckOptions::default();
        let a = Tensor::from_vec(vec![0.3, -1.0, 0.5, 2.0, 0.1, -0.7], [2, 3]).unwrap();
        let b = Tensor::from_vec(vec![1.2, -0.4, 0.8, 0.6, -1.1, 0.2], [3, 2]).unwrap();
        gradgradcheck(
            |v| Var::einsum("ij,jk->ik", &[v[0], v[1]]),
            &[a.clone(), b.clone()],
            &o,
        )
        .unwrap();
        gradgradcheck(|v| Var::einsum("ij,ji->", &[v[0], v[1]]), &[a, b], &o).unwrap();
    }

    #[test]
    fn bad_equations_are_typed_errors() {
        let tape = Tape::<f64>::new();
        let a = tape.var(ramp(&[2, 3]));
        let problem = |eq: &str, ops: &[Var<'_, f64>]| match Var::einsum(eq, ops).unwrap_err() {
            Error::Einsum { problem, .. } => problem,
            e => panic!("{e}"),
        };
        assert_eq!(
            problem("ij,jk", &[a]),
            EinsumProblem::OperandCount {
                terms: 2,
                operands: 1
            }
        );
        assert_eq!(
            problem("i1->i", &[a]),
            EinsumProblem::InvalidCharacter {
                position: 1,
                found: '1'
            }
        );
        assert!(matches!(
            problem("ijk", &[a]),
            EinsumProblem::RankMismatch { .. }
        ));
        assert!(matches!(
            problem("ii", &[a]),
            EinsumProblem::RepeatedSizeMismatch { .. }
        ));
        assert_eq!(
            problem("ij->ii", &[a]),
            EinsumProblem::RepeatedOutput { label: 'i' }
        );
        assert_eq!(
            problem("ij->k", &[a]),
            EinsumProblem::UnknownOutput { label: 'k' }
        );
        assert_eq!(
            problem("i..j", &[a]),
            EinsumProblem::BadEllipsis { term: 0 }
        );
        assert!(matches!(
            problem("ij,ij", &[a, tape.var(ramp(&[2, 4]))]),
            EinsumProblem::SizeMismatch { label: 'j', .. }
        ));
        assert_eq!(problem("", &[]), EinsumProblem::NoOperands);
        let e = Var::einsum("ij->k", &[a]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("einsum: output subscript k appears in no operand in \"ij->k\""),
            "{e}"
        );
    }
}
