//! Connectionist temporal classification (Graves et al. 2006): the negative log of the
//! total probability of every alignment of a label sequence to the input frames.
//!
//! The forward (α) recursion is written in `Var` ops, in log space: each frame is one
//! `logsumexp` over the three predecessor states plus the frame's emissions. Its gradient
//! (the state posteriors) and its Hessian then come from autograd, exactly. States an
//! alignment cannot reach are known from the lengths alone and held at a finite `-1e30`
//! instead of `-inf`, so no `inf - inf` appears in values or gradients.

use autograd::tensor::PAD;
use autograd::{Float, Tape, Tensor, Var};

use super::{fail, Reduction};
use crate::error::Result;

/// Stands for `ln 0` in the recursion: `exp(NEG - m)` is exactly 0 for any real `m`.
const NEG: f64 = -1e30;

/// CTC loss (`torch.nn.CTCLoss`), with PyTorch's conventions: log-probabilities
/// `(T, N, C)` (time-major; `(T, C)` for one sequence) over `C` classes including the
/// blank; `mean` divides each sequence's loss by its target length and averages over the
/// batch.
///
/// The gradient is the true derivative of the loss, `-γ` (the posterior of each frame's
/// class, times the incoming gradient) on the used frames. PyTorch's `ctc_loss` returns
/// `exp(log_probs) - γ` instead, the gradient "as if" the log-probabilities came from a
/// `log_softmax` (PyTorch issue #52241); through a `log_softmax`, which is how CTC is used,
/// both give the same gradient of the logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtcLoss {
    /// The blank class (PyTorch's default 0).
    pub blank: usize,
    /// How the per-sequence losses are combined.
    pub reduction: Reduction,
    /// Replace the infinite loss of an impossible alignment (a target too long for its
    /// input) by 0, with zero gradient.
    pub zero_infinity: bool,
}

impl CtcLoss {
    /// The loss of `log_probs` (`(T, N, C)` or `(T, C)`) against one label sequence per
    /// batch entry (no blanks; lengths may differ), using the first `input_lengths[n]`
    /// frames of entry `n`. Later frames get a zero gradient.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// use nn::loss::ctc_loss;
    /// let tape = Tape::<f64>::new();
    /// // 2 frames, classes {blank, a}, uniform: the label "a" has alignments "aa", "-a",
    /// // "a-", each of probability 1/4.
    /// let lp = tape.var(Tensor::full([2, 1, 2], 0.5f64.ln())?);
    /// let l = ctc_loss(lp, &[vec![1]], &[2])?;
    /// assert!((l.item()? - (-(0.75f64).ln())).abs() < 1e-12);
    /// # Ok::<(), nn::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Loss`] when `log_probs` is not rank 2 or 3, the number of targets or
    /// input lengths is not the batch size, an input length is 0 or exceeds `T`, the blank
    /// is not a class, or a label is the blank or not a class.
    #[track_caller]
    pub fn forward<'t, T: Float, S: AsRef<[usize]>>(
        &self,
        log_probs: Var<'t, T>,
        targets: &[S],
        input_lengths: &[usize],
    ) -> Result<Var<'t, T>> {
        let loss = "ctc_loss";
        let s = log_probs.shape();
        let unbatched = s.rank() == 2;
        if s.rank() != 2 && s.rank() != 3 {
            return Err(fail(loss, "log_probs must be (T, N, C) or (T, C)", s));
        }
        let lp = if unbatched {
            log_probs.unsqueeze(1)?
        } else {
            log_probs
        };
        let (t_max, n, c) = {
            let d = lp.shape();
            (d[0], d[1], d[2])
        };
        if targets.len() != n || input_lengths.len() != n {
            return Err(fail(
                loss,
                format!(
                    "{} targets and {} input lengths for a batch of {n}",
                    targets.len(),
                    input_lengths.len()
                ),
                s,
            ));
        }
        if self.blank >= c {
            return Err(fail(
                loss,
                format!("blank {} is not one of the {c} classes", self.blank),
                s,
            ));
        }
        for (i, (tg, &len)) in targets.iter().zip(input_lengths).enumerate() {
            if len == 0 || len > t_max {
                return Err(fail(
                    loss,
                    format!("input length {len} of sequence {i} is not in 1..={t_max}"),
                    s,
                ));
            }
            if let Some(&bad) = tg.as_ref().iter().find(|&&l| l >= c || l == self.blank) {
                return Err(fail(
                    loss,
                    format!("sequence {i} has label {bad}, the blank or not one of {c} classes"),
                    s,
                ));
            }
        }
        // The lattice and the emissions are [T, N, 2L + 1]: a size no tensor can have is an
        // error before anything is allocated (a target in memory has L < isize::MAX / 8, so
        // 2L + 1 does not overflow).
        let s_max = targets.iter().map(|t| 2 * t.as_ref().len() + 1).max();
        autograd::Shape::from([t_max, n, s_max.unwrap_or(1)]).check(loss)?;
        let lattice = Lattice::new(targets, input_lengths, self.blank, t_max);
        let s_max = lattice.s_max;
        let tape = lp.tape();
        let neg = T::of(NEG);
        let neg_scalar = tape.constant(Tensor::scalar(neg));

        // Emissions of every extended-label state at every frame, [T, N, S].
        let mut idx = Vec::with_capacity(t_max * n * s_max);
        for t in 0..t_max {
            for b in 0..n {
                for st in 0..s_max {
                    idx.push((t * n + b) * c + lattice.ext[b][st]);
                }
            }
        }
        let emit = lp.gather_flat(idx, [t_max, n, s_max], T::zero())?;
        let mut alpha = frame(emit, 0)?.where_cond(&lattice.reach(0)?, neg_scalar)?;
        let allow = lattice.skip_allowed()?;
        for t in 1..t_max {
            let c0 = alpha;
            let c1 = shift(tape, alpha, 1)?;
            let c2 = shift(tape, alpha, 2)?.where_cond(&allow, neg_scalar)?;
            let step = Var::stack(&[c0, c1, c2], -1)?.logsumexp(&[-1], false)?;
            let next = step
                .add(frame(emit, t)?)?
                .where_cond(&lattice.reach(t)?, neg_scalar)?;
            // Sequences whose input has ended keep their last α.
            alpha = next.where_cond(&lattice.active(t)?, alpha)?;
        }
        // The two final states, the second absent for an empty target.
        let mut ends = Vec::with_capacity(2 * n);
        for b in 0..n {
            let last = lattice.len[b] - 1;
            ends.push(b * s_max + last);
            ends.push(if last >= 1 { b * s_max + last - 1 } else { PAD });
        }
        let per = alpha
            .gather_flat(ends, [n, 2], neg)?
            .logsumexp(&[-1], false)?
            .neg();
        // An impossible alignment: infinite loss (or 0), with no gradient either way.
        let possible = Tensor::from_fn([n], |b| {
            if lattice.possible(b) {
                T::one()
            } else {
                T::zero()
            }
        })?;
        let replacement = if self.zero_infinity {
            T::zero()
        } else {
            T::infinity()
        };
        let per = per.where_cond(&possible, tape.constant(Tensor::scalar(replacement)))?;
        Ok(match self.reduction {
            Reduction::Mean => {
                let lens =
                    Tensor::from_fn([n], |b| T::of(targets[b].as_ref().len().max(1) as f64))?;
                per.div(tape.constant(lens))?.mean()
            }
            Reduction::Sum => per.sum(),
            Reduction::None if unbatched => per.reshape([])?,
            Reduction::None => per,
        })
    }
}

/// CTC loss with blank 0, averaged as PyTorch does
/// (`torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths)`,
/// the target lengths being those of `targets`' sequences).
///
/// # Errors
/// As [`CtcLoss::forward`].
#[track_caller]
pub fn ctc_loss<'t, T: Float, S: AsRef<[usize]>>(
    log_probs: Var<'t, T>,
    targets: &[S],
    input_lengths: &[usize],
) -> Result<Var<'t, T>> {
    CtcLoss::default().forward(log_probs, targets, input_lengths)
}

/// Frame `t` of the emissions `[T, N, S]`, as `[N, S]`.
#[track_caller]
fn frame<'t, T: Float>(emit: Var<'t, T>, t: usize) -> Result<Var<'t, T>> {
    let d = emit.shape();
    Ok(emit.narrow(0, t, 1)?.reshape([d[1], d[2]])?)
}

/// `x` (`[N, S]`) shifted right by `k` states, the first `k` filled with `NEG`.
#[track_caller]
fn shift<'t, T: Float>(tape: &'t Tape<T>, x: Var<'t, T>, k: usize) -> Result<Var<'t, T>> {
    let d = x.shape();
    let (n, s) = (d[0], d[1]);
    let fill = tape.constant(Tensor::full([n, k.min(s)], T::of(NEG))?);
    if k >= s {
        return Ok(fill);
    }
    Ok(Var::concat(&[fill, x.narrow(1, 0, s - k)?], 1)?)
}

/// The structure of the recursion, from the labels and lengths alone.
struct Lattice {
    /// Extended labels `(blank, l1, blank, l2, .., blank)` per sequence, padded with the
    /// blank to `s_max`.
    ext: Vec<Vec<usize>>,
    /// Extended length `2L + 1` per sequence.
    len: Vec<usize>,
    /// Input length per sequence.
    frames: Vec<usize>,
    s_max: usize,
    /// `reach[t][b][s]`: state `s` of sequence `b` can be occupied at frame `t`.
    reach: Vec<Vec<Vec<bool>>>,
}

impl Lattice {
    fn new<S: AsRef<[usize]>>(targets: &[S], frames: &[usize], blank: usize, t_max: usize) -> Self {
        let len: Vec<usize> = targets.iter().map(|t| 2 * t.as_ref().len() + 1).collect();
        let s_max = len.iter().copied().max().unwrap_or(1);
        let ext: Vec<Vec<usize>> = targets
            .iter()
            .map(|t| {
                (0..s_max)
                    .map(|s| {
                        let t = t.as_ref();
                        if s % 2 == 1 && s / 2 < t.len() {
                            t[s / 2]
                        } else {
                            blank
                        }
                    })
                    .collect()
            })
            .collect();
        let mut lat = Lattice {
            ext,
            len,
            frames: frames.to_vec(),
            s_max,
            reach: Vec::with_capacity(t_max),
        };
        let n = targets.len();
        let first: Vec<Vec<bool>> = (0..n)
            .map(|b| (0..s_max).map(|s| s < lat.len[b].min(2)).collect())
            .collect();
        lat.reach.push(first);
        for t in 1..t_max {
            let prev = &lat.reach[t - 1];
            let cur: Vec<Vec<bool>> = (0..n)
                .map(|b| {
                    (0..s_max)
                        .map(|s| {
                            s < lat.len[b]
                                && (prev[b][s]
                                    || (s >= 1 && prev[b][s - 1])
                                    || (lat.can_skip(b, s) && prev[b][s - 2]))
                        })
                        .collect()
                })
                .collect();
            lat.reach.push(cur);
        }
        lat
    }

    /// The transition `s - 2 → s` skips a blank between two different labels.
    fn can_skip(&self, b: usize, s: usize) -> bool {
        s >= 2 && s < self.len[b] && s % 2 == 1 && self.ext[b][s] != self.ext[b][s - 2]
    }

    fn mask<T: Float>(&self, f: impl Fn(usize, usize) -> bool) -> Result<Tensor<T>> {
        let (n, s) = (self.ext.len(), self.s_max);
        Ok(Tensor::from_fn([n, s], |k| {
            if f(k / s, k % s) {
                T::one()
            } else {
                T::zero()
            }
        })?)
    }

    fn reach<T: Float>(&self, t: usize) -> Result<Tensor<T>> {
        self.mask(|b, s| self.reach[t][b][s])
    }

    fn skip_allowed<T: Float>(&self) -> Result<Tensor<T>> {
        self.mask(|b, s| self.can_skip(b, s))
    }

    /// 1 for the sequences whose input still runs at frame `t`, as `[N, 1]`.
    fn active<T: Float>(&self, t: usize) -> Result<Tensor<T>> {
        let n = self.frames.len();
        Ok(Tensor::from_fn([n, 1], |b| {
            if t < self.frames[b] {
                T::one()
            } else {
                T::zero()
            }
        })?)
    }

    /// Whether an end state is reachable at the sequence's last frame.
    fn possible(&self, b: usize) -> bool {
        let r = &self.reach[self.frames[b] - 1][b];
        let last = self.len[b] - 1;
        r[last] || (last >= 1 && r[last - 1])
    }
}
