//! The strong-Wolfe line search and cubic interpolation of `torch/optim/lbfgs.py`
//! (`_strong_wolfe`, `_cubic_interpolate`, themselves ports of minFunc via torch7's
//! `lswolfe.lua`), step for step, so the number of evaluations matches.

use crate::error::Result;

/// Python's `max(a, b)`: `a` unless `b` is greater.
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)`: `a` unless `b` is smaller.
pub(crate) fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// The minimiser of the cubic through `(x1, f1)` and `(x2, f2)` with slopes `g1`, `g2`,
/// clamped to `bounds` (default: between the two points); the bounds' midpoint when the
/// cubic has no real minimiser.
pub(crate) fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        py_min(py_max(min_pos, lo), hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// One end of a bracket: step length, loss, gradient, directional derivative.
#[derive(Clone)]
struct End<G> {
    t: f64,
    f: f64,
    g: G,
    gtd: f64,
}

/// What the line search returns: the accepted step's loss, gradient and length, and how
/// many times it evaluated.
pub(crate) struct Found<G> {
    pub(crate) loss: f64,
    pub(crate) grad: G,
    pub(crate) t: f64,
    pub(crate) evals: usize,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;
/// The search's own tolerance (PyTorch passes none, so the default), not the group's.
const TOLERANCE_CHANGE: f64 = 1e-9;

/// A strong-Wolfe line search along `d` from loss `f`, gradient `g` and slope
/// `gtd = g·d`, starting at step `t`, with at most `max_ls` iterations after the first
/// evaluation. `phi(t)` evaluates the loss and gradient at `x + t·d` (and restores `x`);
/// `slope(g)` is `g·d`; `d_norm` is `max |d|`.
pub(crate) fn strong_wolfe<G: Clone>(
    phi: &mut dyn FnMut(f64) -> Result<(f64, G)>,
    slope: &dyn Fn(&G) -> f64,
    d_norm: f64,
    mut t: f64,
    (f, g, gtd): (f64, &G, f64),
    max_ls: usize,
) -> Result<Found<G>> {
    let (mut f_new, mut g_new) = phi(t)?;
    let mut evals = 1;
    let mut gtd_new = slope(&g_new);

    let mut prev = End {
        t: 0.0,
        f,
        g: g.clone(),
        gtd,
    };
    let mut done = false;
    let mut ls_iter = 0;
    // The bracket; its second end is absent when a point already satisfies the conditions.
    let mut bracket: Option<(End<G>, Option<End<G>>)> = None;
    while ls_iter < max_ls {
        let new = End {
            t,
            f: f_new,
            g: g_new.clone(),
            gtd: gtd_new,
        };
        if f_new > f + C1 * t * gtd || (ls_iter > 1 && f_new >= prev.f) {
            bracket = Some((prev, Some(new)));
            break;
        }
        if gtd_new.abs() <= -C2 * gtd {
            bracket = Some((new, None));
            done = true;
            break;
        }
        if gtd_new >= 0.0 {
            bracket = Some((prev, Some(new)));
            break;
        }
        let min_step = t + 0.01 * (t - prev.t);
        let max_step = t * 10.0;
        let next = cubic_interpolate(
            (prev.t, prev.f, prev.gtd),
            (t, f_new, gtd_new),
            Some((min_step, max_step)),
        );
        prev = new;
        t = next;
        (f_new, g_new) = phi(t)?;
        evals += 1;
        gtd_new = slope(&g_new);
        ls_iter += 1;
    }
    // Out of iterations: bracket [0, t] (no slopes: the zoom below cannot run then).
    let (mut b0, b1) = match bracket {
        Some(b) if ls_iter < max_ls => b,
        _ => (
            End {
                t: 0.0,
                f,
                g: g.clone(),
                gtd: f64::NAN,
            },
            Some(End {
                t,
                f: f_new,
                g: g_new,
                gtd: f64::NAN,
            }),
        ),
    };
    let Some(mut b1) = b1 else {
        return Ok(Found {
            loss: b0.f,
            grad: b0.g,
            t: b0.t,
            evals,
        });
    };

    // Zoom: shrink the bracket [b0, b1] until a point satisfies the strong Wolfe
    // conditions. `low` is the end with the lower loss (ties: b0).
    let mut insuf_progress = false;
    let mut low_is_0 = b0.f <= b1.f;
    while !done && ls_iter < max_ls {
        if (b1.t - b0.t).abs() * d_norm < TOLERANCE_CHANGE {
            break;
        }
        t = cubic_interpolate((b0.t, b0.f, b0.gtd), (b1.t, b1.f, b1.gtd), None);
        let (bmax, bmin) = (py_max(b0.t, b1.t), py_min(b0.t, b1.t));
        let eps = 0.1 * (bmax - bmin);
        if py_min(bmax - t, t - bmin) < eps {
            if insuf_progress || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() {
                    bmax - eps
                } else {
                    bmin + eps
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        let (f_t, g_t) = phi(t)?;
        evals += 1;
        let new = End {
            t,
            f: f_t,
            gtd: slope(&g_t),
            g: g_t,
        };
        ls_iter += 1;
        let low_f = if low_is_0 { b0.f } else { b1.f };
        if new.f > f + C1 * t * gtd || new.f >= low_f {
            // Armijo fails or no lower than the low end: the new point replaces the high end.
            if low_is_0 {
                b1 = new;
            } else {
                b0 = new;
            }
            low_is_0 = b0.f <= b1.f;
        } else {
            if new.gtd.abs() <= -C2 * gtd {
                done = true;
            } else {
                let (lo_t, hi_t) = if low_is_0 { (b0.t, b1.t) } else { (b1.t, b0.t) };
                if new.gtd * (hi_t - lo_t) >= 0.0 {
                    // The old low end becomes the high end.
                    if low_is_0 {
                        b1 = b0.clone();
                    } else {
                        b0 = b1.clone();
                    }
                }
            }
            if low_is_0 {
                b0 = new;
            } else {
                b1 = new;
            }
        }
    }
    let low = if low_is_0 { b0 } else { b1 };
    Ok(Found {
        loss: low.f,
        grad: low.g,
        t: low.t,
        evals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_interpolation_finds_a_cubics_minimiser() {
        // f(x) = (x - 1)^2 (a quadratic is a cubic): minimiser 1 from any two points.
        let f = |x: f64| (x - 1.0) * (x - 1.0);
        let g = |x: f64| 2.0 * (x - 1.0);
        let m = cubic_interpolate((0.0, f(0.0), g(0.0)), (3.0, f(3.0), g(3.0)), None);
        assert!((m - 1.0).abs() < 1e-12);
        // and clamps to the bounds
        let m = cubic_interpolate(
            (0.0, f(0.0), g(0.0)),
            (3.0, f(3.0), g(3.0)),
            Some((2.0, 5.0)),
        );
        assert_eq!(m, 2.0);
    }

    #[test]
    fn the_search_accepts_a_step_satisfying_strong_wolfe() {
        // φ(t) = (t − 2)² along d = 1 from x = 0: f = 4, slope −4.
        let mut calls = 0;
        let mut phi = |t: f64| -> Result<(f64, f64)> {
            calls += 1;
            Ok(((t - 2.0) * (t - 2.0), 2.0 * (t - 2.0)))
        };
        let found =
            strong_wolfe(&mut phi, &|g: &f64| *g, 1.0, 1.0, (4.0, &-4.0, -4.0), 25).unwrap();
        assert!(found.loss <= 4.0 + C1 * found.t * -4.0);
        assert!(found.grad.abs() <= C2 * 4.0);
        assert_eq!(found.evals, calls);
    }
}
