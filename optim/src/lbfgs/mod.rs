//! L-BFGS as a [`ClosureRule`]: `torch.optim.LBFGS`, with and without its strong-Wolfe
//! line search, evaluating the closure exactly as often as PyTorch does.

use autograd::{Float, Tensor};

use crate::closure::{ClosureCx, ClosureRule};
use crate::common::{check_finite_non_negative, check_state_all_finite, check_state_scalar};
use crate::error::{Error, Result};
use crate::rule::RuleState;

mod wolfe;

use wolfe::{py_min, strong_wolfe};

/// The line search [`Lbfgs`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSearch {
    /// The strong-Wolfe search with cubic interpolation (PyTorch's `'strong_wolfe'`).
    StrongWolfe,
}

/// Limited-memory BFGS: quasi-Newton steps from the last `history_size` curvature pairs,
/// with a fixed step `lr` or a strong-Wolfe line search, up to `max_iter` iterations (and
/// `max_eval` evaluations) per step.
///
/// ```text
/// g ← ∇f(x); stop if max|g| ≤ tolerance_grad
/// repeat up to max_iter times:
///   d ← −g (first iteration ever), else the two-loop recursion over the pairs (s, y)
///       with y = g − g_prev, s = t·d kept when y·s > 1e-10, H₀ = y·s / y·y
///   t ← min(1, 1/Σ|g|)·lr (first iteration ever), else lr
///   stop if g·d > −tolerance_change
///   x ← x + t·d (after the line search, if any), re-evaluate
///   stop on max_iter, max_eval, max|g| ≤ tolerance_grad, max|t·d| ≤ tolerance_change,
///   or |f − f_prev| < tolerance_change
/// ```
///
/// [Nocedal 1980](https://doi.org/10.1090/S0025-5718-1980-0572855-7); the line search
/// follows minFunc. Matches `torch.optim.LBFGS`, including the number of closure
/// evaluations per step and the memory carried from one step to the next; one parameter
/// group only, as there. With `maximize`, it minimises `−f` (the closure's loss is
/// returned as is).
///
/// ```
/// use autograd::{Param, Tape, Tensor};
/// use optim::{ClosureOptim, Lbfgs, LineSearch, Optimizer};
///
/// // Rosenbrock from (−1.5, 2)
/// let p = Param::new(Tensor::from_vec(vec![-1.5f64, 2.0], [2])?);
/// let rule = Lbfgs { line_search_fn: Some(LineSearch::StrongWolfe), ..Lbfgs::default() };
/// let mut opt = ClosureOptim::new(vec![p.clone()], 1.0, rule)?;
/// for _ in 0..20 {
///     opt.step_with(&mut || {
///         let tape = Tape::new();
///         let v = tape.param(&p);
///         let (x, y) = (v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?);
///         let loss = ((1.0 - x).square() + 100.0 * (y - x.square()).square()).sum();
///         let value = loss.item()?;
///         loss.backward()?;
///         Ok(value)
///     })?;
/// }
/// // it stops once the loss changes by less than tolerance_change (1e-9)
/// assert!(p.value().as_slice().iter().all(|v| (v - 1.0).abs() < 1e-4));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lbfgs {
    /// Iterations per step (default 20).
    pub max_iter: u64,
    /// Evaluations per step; `None` = `max_iter·5/4` (default).
    pub max_eval: Option<u64>,
    /// Stop when `max |g|` is at most this (default 1e-7).
    pub tolerance_grad: f64,
    /// Stop when the step, the loss change or `−g·d` is below this (default 1e-9).
    pub tolerance_change: f64,
    /// Curvature pairs kept (default 100).
    pub history_size: u64,
    /// `None` for fixed steps of `lr` (default), or a line search.
    pub line_search_fn: Option<LineSearch>,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search_fn: None,
            maximize: false,
        }
    }
}

impl Lbfgs {
    /// The evaluation budget per step: `max_eval`, else `max_iter·5/4` (PyTorch's integer
    /// division).
    pub fn max_eval(&self) -> u64 {
        self.max_eval.unwrap_or(self.max_iter.saturating_mul(5) / 4)
    }
}

/// [`Lbfgs`]'s state, over the flattened parameters (`n` elements). It carries over from
/// one step to the next, as PyTorch's does.
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsState<T: Float> {
    /// The last search direction `d` (`[n]`).
    pub d: Tensor<T>,
    /// The gradient at the start of the last iteration (`[n]`).
    pub prev_flat_grad: Tensor<T>,
    /// The kept gradient differences `y`, oldest first (`[k, n]`, `k ≤ history_size`).
    pub old_dirs: Tensor<T>,
    /// The kept steps `s` (`[k, n]`).
    pub old_stps: Tensor<T>,
    /// `1 / (y·s)` of each kept pair (`[k]`).
    pub ro: Tensor<T>,
    /// The last step length `t`.
    pub t: f64,
    /// The initial inverse-Hessian scale `y·s / y·y`.
    pub h_diag: f64,
    /// The loss at the start of the last iteration.
    pub prev_loss: f64,
    /// Iterations over all steps.
    pub n_iter: f64,
    /// Closure evaluations over all steps.
    pub func_evals: f64,
}

impl<T: Float> RuleState<T> for LbfgsState<T> {
    fn tensors(&self) -> Vec<(&'static str, &Tensor<T>)> {
        vec![
            ("d", &self.d),
            ("prev_flat_grad", &self.prev_flat_grad),
            ("old_dirs", &self.old_dirs),
            ("old_stps", &self.old_stps),
            ("ro", &self.ro),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Tensor<T>)> {
        vec![
            ("d", &mut self.d),
            ("prev_flat_grad", &mut self.prev_flat_grad),
            ("old_dirs", &mut self.old_dirs),
            ("old_stps", &mut self.old_stps),
            ("ro", &mut self.ro),
        ]
    }
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("t", self.t),
            ("h_diag", self.h_diag),
            ("prev_loss", self.prev_loss),
            ("n_iter", self.n_iter),
            ("func_evals", self.func_evals),
        ]
    }
    fn scalars_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        vec![
            ("t", &mut self.t),
            ("h_diag", &mut self.h_diag),
            ("prev_loss", &mut self.prev_loss),
            ("n_iter", &mut self.n_iter),
            ("func_evals", &mut self.func_evals),
        ]
    }
    /// The history holds `k` pairs, however many there are.
    fn accepts_shape(&self, name: &str, fresh: &[usize], loaded: &[usize]) -> bool {
        match name {
            "old_dirs" | "old_stps" => loaded.len() == 2 && loaded[1] == fresh[1],
            "ro" => loaded.len() == 1,
            _ => fresh == loaded,
        }
    }
}

/// `a·b` summed in two interleaved partial sums (even and odd indices), then added: the
/// order of PyTorch's CPU `dot` (its BLAS kernel) for the short vectors of the reference
/// problems, so the quasi-Newton recursion rounds as PyTorch's does. Rosenbrock's valley
/// amplifies a one-ulp difference in a direction about thirtyfold per step.
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let (mut even, mut odd) = (T::zero(), T::zero());
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if i % 2 == 0 {
            even += x * y;
        } else {
            odd += x * y;
        }
    }
    even + odd
}

fn max_abs<T: Float>(a: &[T]) -> f64 {
    a.iter().fold(T::zero(), |m, x| m.max(x.abs())).as_f64()
}

fn vec_tensor<T: Float>(v: Vec<T>, dims: &[usize]) -> Tensor<T> {
    Tensor::from_vec(v, dims.to_vec()).expect("internal: LBFGS buffers are sized by n")
}

impl<T: Float> LbfgsState<T> {
    fn history_len(&self) -> usize {
        self.ro.numel()
    }

    /// Appends a curvature pair, dropping the oldest when `history_size` are kept.
    fn push(&mut self, y: &[T], s: &[T], ro: T, history_size: usize) {
        let (n, k) = (y.len(), self.history_len());
        let drop = usize::from(k >= history_size);
        // Rows of `width` elements, minus the oldest when full, plus the new one.
        let keep = |t: &Tensor<T>, row: &[T]| {
            let width = row.len();
            let mut v = t.as_slice()[drop * width..].to_vec();
            v.extend_from_slice(row);
            v
        };
        let kept = k - drop + 1;
        self.old_dirs = vec_tensor(keep(&self.old_dirs, y), &[kept, n]);
        self.old_stps = vec_tensor(keep(&self.old_stps, s), &[kept, n]);
        self.ro = vec_tensor(keep(&self.ro, &[ro]), &[kept]);
    }

    /// The two-loop recursion: `−H·g` for the kept pairs and `H₀ = h_diag`.
    fn direction(&self, g: &[T]) -> Vec<T> {
        let (n, k) = (g.len(), self.history_len());
        let (dirs, stps, ro) = (
            self.old_dirs.as_slice(),
            self.old_stps.as_slice(),
            self.ro.as_slice(),
        );
        let row = |m: &[T], i: usize| -> Vec<T> { m[i * n..(i + 1) * n].to_vec() };
        let mut q: Vec<T> = g.iter().map(|&x| -x).collect();
        let mut al = vec![T::zero(); k];
        for i in (0..k).rev() {
            al[i] = dot(&row(stps, i), &q) * ro[i];
            let a = -al[i];
            // PyTorch's `q.add_(y, alpha=a)` is a fused multiply-add on CPU.
            for (q, &y) in q.iter_mut().zip(&dirs[i * n..(i + 1) * n]) {
                *q = y.mul_add(a, *q);
            }
        }
        let h = T::of(self.h_diag);
        let mut r: Vec<T> = q.iter().map(|&x| x * h).collect();
        for i in 0..k {
            let be_i = dot(&row(dirs, i), &r) * ro[i];
            let a = al[i] - be_i;
            for (r, &s) in r.iter_mut().zip(&stps[i * n..(i + 1) * n]) {
                *r = s.mul_add(a, *r);
            }
        }
        r
    }
}

impl<T: Float> ClosureRule<T> for Lbfgs {
    type State = LbfgsState<T>;
    const NAME: &'static str = "lbfgs";

    fn validate(&self) -> Result<()> {
        let positive = |name: &'static str, v: u64| match v {
            0 => Err(Error::InvalidHyperparameter {
                name,
                value: 0.0,
                reason: "must be >= 1",
            }),
            _ => Ok(()),
        };
        positive("max_iter", self.max_iter)?;
        positive("max_eval", self.max_eval())?;
        positive("history_size", self.history_size)?;
        check_finite_non_negative("tolerance_grad", self.tolerance_grad)?;
        check_finite_non_negative("tolerance_change", self.tolerance_change)
    }

    fn max_groups(&self) -> Option<usize> {
        Some(1)
    }

    fn init(&self, numel: usize) -> Result<LbfgsState<T>> {
        Ok(LbfgsState {
            d: Tensor::zeros([numel])?,
            prev_flat_grad: Tensor::zeros([numel])?,
            old_dirs: Tensor::zeros([0, numel])?,
            old_stps: Tensor::zeros([0, numel])?,
            ro: Tensor::zeros([0])?,
            t: 0.0,
            h_diag: 1.0,
            prev_loss: 0.0,
            n_iter: 0.0,
            func_evals: 0.0,
        })
    }

    fn validate_state(&self, s: &LbfgsState<T>) -> Result<()> {
        check_state_all_finite(s)?;
        let k = s.ro.numel();
        for (name, t) in [("old_dirs", &s.old_dirs), ("old_stps", &s.old_stps)] {
            check_state_scalar(
                name,
                t.dims()[0] as f64,
                |rows| rows as usize == k,
                "must have as many rows as ro has entries",
            )?;
        }
        check_state_scalar(
            "ro",
            k as f64,
            |_| k as u64 <= self.history_size,
            "must hold at most history_size pairs",
        )?;
        for (name, v) in [("n_iter", s.n_iter), ("func_evals", s.func_evals)] {
            check_state_scalar(
                name,
                v,
                |v| v >= 0.0 && v.fract() == 0.0 && v <= crate::common::MAX_STEP as f64,
                "must be a whole number in [0, 2^53]",
            )?;
        }
        check_state_scalar("t", s.t, |t| t >= 0.0, "must be >= 0")
    }

    fn step(&self, cx: &mut ClosureCx<'_, T>, st: &mut LbfgsState<T>) -> Result<f64> {
        let lr = cx.groups()[0].lr;
        let (max_iter, max_eval) = (self.max_iter, self.max_eval());
        let (tol_grad, tol_change) = (self.tolerance_grad, self.tolerance_change);
        let sign = if self.maximize { -1.0 } else { 1.0 };
        let n = cx.numel();
        // Maximising is minimising −f: the algorithm sees the negated loss and gradient.
        let grad_of = |cx: &ClosureCx<'_, T>| -> Result<Vec<T>> {
            let g = cx.flat_grad()?.to_vec();
            Ok(if self.maximize {
                g.into_iter().map(|x| -x).collect()
            } else {
                g
            })
        };

        let orig_loss = cx.evaluate()?;
        let mut loss = sign * orig_loss;
        let mut current_evals: u64 = 1;
        st.func_evals += 1.0;
        let mut flat_grad = grad_of(cx)?;
        if flat_grad.len() != n {
            return Err(Error::Unsupported {
                optimizer: "lbfgs",
                what: "a parameter changed size during the step",
            });
        }
        if max_abs(&flat_grad) <= tol_grad {
            return Ok(orig_loss);
        }

        let mut d: Vec<T> = st.d.to_vec();
        let mut t = st.t;
        let mut n_iter = 0;
        while n_iter < max_iter {
            n_iter += 1;
            st.n_iter += 1.0;

            // Direction.
            if st.n_iter == 1.0 {
                d = flat_grad.iter().map(|&g| -g).collect();
                st.old_dirs = Tensor::zeros([0, n])?;
                st.old_stps = Tensor::zeros([0, n])?;
                st.ro = Tensor::zeros([0])?;
                st.h_diag = 1.0;
            } else {
                let prev = st.prev_flat_grad.as_slice();
                let y: Vec<T> = flat_grad.iter().zip(prev).map(|(&g, &p)| g - p).collect();
                let tt = T::of(t);
                let s: Vec<T> = d.iter().map(|&d| d * tt).collect();
                let ys = dot(&y, &s);
                if ys.as_f64() > 1e-10 {
                    st.push(&y, &s, T::one() / ys, self.history_size as usize);
                    st.h_diag = (ys / dot(&y, &y)).as_f64();
                }
                d = st.direction(&flat_grad);
            }
            st.prev_flat_grad = vec_tensor(flat_grad.clone(), &[n]);
            st.prev_loss = loss;

            // Step length.
            t = if st.n_iter == 1.0 {
                let sum_abs = flat_grad.iter().fold(T::zero(), |s, g| s + g.abs());
                py_min(1.0, 1.0 / sum_abs.as_f64()) * lr
            } else {
                lr
            };
            let gtd = dot(&flat_grad, &d).as_f64();
            if gtd > -tol_change {
                break;
            }

            let dir = vec_tensor(d.clone(), &[n]);
            let mut ls_evals = 0;
            let mut opt_cond = false;
            match self.line_search_fn {
                Some(LineSearch::StrongWolfe) => {
                    let x_init = cx.flat_params()?;
                    let max_ls = max_eval.saturating_sub(current_evals) as usize;
                    let mut phi = |step: f64| -> Result<(f64, Vec<T>)> {
                        cx.add_to_params(step, &dir)?;
                        let f = sign * cx.evaluate()?;
                        let g = grad_of(cx)?;
                        cx.set_flat_params(&x_init)?;
                        Ok((f, g))
                    };
                    let slope = |g: &Vec<T>| dot(g, &d).as_f64();
                    let found = strong_wolfe(
                        &mut phi,
                        &slope,
                        max_abs(&d),
                        t,
                        (loss, &flat_grad, gtd),
                        max_ls,
                    )?;
                    (loss, flat_grad, t, ls_evals) =
                        (found.loss, found.grad, found.t, found.evals as u64);
                    cx.add_to_params(t, &dir)?;
                    opt_cond = max_abs(&flat_grad) <= tol_grad;
                }
                None => {
                    cx.add_to_params(t, &dir)?;
                    if n_iter != max_iter {
                        // No evaluation after the last iteration: in a stochastic setting
                        // it would be wasted (PyTorch's reasoning).
                        loss = sign * cx.evaluate()?;
                        flat_grad = grad_of(cx)?;
                        opt_cond = max_abs(&flat_grad) <= tol_grad;
                        ls_evals = 1;
                    }
                }
            }
            current_evals += ls_evals;
            st.func_evals += ls_evals as f64;

            // Stop tests, in PyTorch's order.
            if n_iter == max_iter || current_evals >= max_eval || opt_cond {
                break;
            }
            let tt = T::of(t);
            if d.iter()
                .fold(T::zero(), |m, &x| m.max((x * tt).abs()))
                .as_f64()
                <= tol_change
            {
                break;
            }
            if (loss - st.prev_loss).abs() < tol_change {
                break;
            }
        }
        st.d = vec_tensor(d, &[n]);
        st.t = t;
        Ok(orig_loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClosureOptim, Optimizer};
    use autograd::{Param, Tape};

    fn quadratic_closure(p: &Param<f64>) -> impl FnMut() -> crate::ClosureResult + '_ {
        move || {
            let tape = Tape::new();
            // L = Σ (p − 3)² · (1, 10): an ill-conditioned bowl
            let w = tape.constant(Tensor::from_vec(vec![1.0, 10.0], [2])?);
            let loss = (w * (tape.param(p) - 3.0).square()).sum();
            let v = loss.item()?;
            loss.backward()?;
            Ok(v)
        }
    }

    #[test]
    fn fixed_steps_evaluate_max_iter_times_per_step() {
        let p = Param::new(Tensor::from_vec(vec![0.0, 0.0], [2]).unwrap());
        let rule = Lbfgs {
            max_iter: 4,
            tolerance_change: 0.0,
            tolerance_grad: 0.0,
            ..Lbfgs::default()
        };
        let mut opt = ClosureOptim::new(vec![p.clone()], 0.1, rule).unwrap();
        let mut calls = 0;
        let mut inner = quadratic_closure(&p);
        let mut counting = || {
            calls += 1;
            inner()
        };
        opt.step_with(&mut counting).unwrap();
        assert_eq!(calls, 4);
        assert_eq!(opt.state().unwrap().func_evals, 4.0);
        assert_eq!(opt.state().unwrap().n_iter, 4.0);
    }

    #[test]
    fn the_line_search_converges_on_a_quadratic() {
        let p = Param::new(Tensor::from_vec(vec![0.0, 0.0], [2]).unwrap());
        let rule = Lbfgs {
            line_search_fn: Some(LineSearch::StrongWolfe),
            ..Lbfgs::default()
        };
        let mut opt = ClosureOptim::new(vec![p.clone()], 1.0, rule).unwrap();
        let mut closure = quadratic_closure(&p);
        opt.step_with(&mut closure).unwrap();
        // It stops once the loss changes by less than tolerance_change (1e-9), so the loss
        // is below that, i.e. |p − 3| below about 3e-5.
        for v in p.value().to_vec() {
            assert!((v - 3.0).abs() < 3e-5, "{v}");
        }
        assert!(closure().unwrap() < 1e-9);
    }

    #[test]
    fn step_without_closure_and_second_group_are_errors() {
        let p = Param::new(Tensor::from_vec(vec![0.0], [1]).unwrap());
        let mut opt = ClosureOptim::new(vec![p.clone()], 1.0, Lbfgs::default()).unwrap();
        let e = opt.step().unwrap_err();
        assert_eq!(
            e.to_string(),
            "lbfgs: step needs a closure that re-evaluates the loss; call step_with"
        );
        let q = Param::new(Tensor::from_vec(vec![0.0], [1]).unwrap());
        let e = ClosureOptim::with_groups(
            vec![
                crate::ParamGroup::new(vec![p], 1.0),
                crate::ParamGroup::new(vec![q], 1.0),
            ],
            Lbfgs::default(),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            Error::Unsupported {
                optimizer: "lbfgs",
                ..
            }
        ));
    }
}
