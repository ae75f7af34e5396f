//! Study: optimiser paths on 2-D test surfaces — SGD, momentum, Nesterov, Adagrad, RMSprop,
//! Adam, NAdam, RAdam and L-BFGS (all from `optim`) on Rosenbrock, Beale and a saddle: each
//! path drawn over the contours in its own panel, and the loss against gradient evaluations.
//!
//! ```text
//! cargo run --release --example study_optimizers [-- --out figures] [-- --sweep]
//! ```
//!
//! Literature (SEED.md §3): plain gradient descent crawls along shallow valleys; momentum
//! speeds it up but overshoots; Nesterov's look-ahead overshoots less; the adaptive methods
//! (Adagrad, RMSprop, Adam, NAdam) rescale each coordinate and cross shallow regions faster;
//! plain SGD lingers at a saddle point. RAdam (Liu et al. 2020) makes Adam less sensitive to
//! its learning rate; a quasi-Newton method with a line search (L-BFGS; Nocedal & Wright,
//! ch. 7) needs far fewer gradient evaluations on smooth low-dimensional problems.
//!
//! Every gradient comes from `loss.backward()` on the surface written with autograd ops.
//! `--sweep` prints steps-to-tolerance over a grid of learning rates: the table the fixed
//! learning rates below were read from.

#[path = "common/surfaces.rs"]
mod surfaces;

// glibc's allocator hands large freed buffers back to the OS and page-faults them in again
// on the next step; on graphs of large tensors that cost 7x in backward (measured:
// tanh forward+backward on 10^6 elements, 11.5 vs 1.3 ns/element). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use anyhow::Result;
use autograd::{Param, Tape, Tensor, Var};
use clap::Parser;
use gradlab::plot::{out_dir, print_table};
use optim::{
    Adagrad, Adam, ClosureOptim, Lbfgs, LineSearch, NAdam, Optim, Optimizer, RAdam, RmsProp, Sgd,
};
use surfaces::{contour_grid, log_log_chart, Grid, Path2, SeriesLabelPosition};

#[derive(Parser)]
struct Args {
    /// Folder for the SVG figures.
    #[arg(long, default_value = "figures")]
    out: String,
    /// Print steps-to-tolerance over a learning-rate grid instead of the study.
    #[arg(long)]
    sweep: bool,
}

/// A surface `f(x, y)`, elementwise over same-shaped `x` and `y`, so that one definition
/// gives both the optimiser's loss (1-element `x`, `y`) and the contour grid (all points).
type Surface = for<'t> fn(Var<'t, f64>, Var<'t, f64>) -> Var<'t, f64>;

fn rosenbrock<'t>(x: Var<'t, f64>, y: Var<'t, f64>) -> Var<'t, f64> {
    (1.0 - x).square() + 100.0 * (y - x.square()).square()
}

fn beale<'t>(x: Var<'t, f64>, y: Var<'t, f64>) -> Var<'t, f64> {
    let term = |c: f64, yk: Var<'t, f64>| (c - x + x * yk).square();
    let y2 = y.square();
    term(1.5, y) + term(2.25, y2) + term(2.625, y2 * y)
}

fn saddle<'t>(x: Var<'t, f64>, y: Var<'t, f64>) -> Var<'t, f64> {
    x.square() - y.square()
}

/// What counts as done on a surface.
#[derive(Clone, Copy)]
enum Goal {
    /// Distance to this minimum below `TOL`.
    Minimum { at: (f64, f64) },
    /// |y| above `ESCAPE` (the saddle has no minimum; leaving along y is the way down).
    Escape,
}

const TOL: f64 = 1e-3;
const ESCAPE: f64 = 1.0;
/// Stop a saddle run once it is this far out: f is unbounded below there.
const SADDLE_STOP: f64 = 2.0;

struct Case {
    name: &'static str,
    file: &'static str,
    f: Surface,
    start: (f64, f64),
    goal: Goal,
    steps: usize,
    /// Learning rates in the order of `OPTIMISERS`.
    lrs: [f64; 9],
    x: (f64, f64),
    y: (f64, f64),
    levels: Vec<f64>,
}

const OPTIMISERS: [&str; 9] = [
    "SGD", "momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "NAdam", "RAdam", "L-BFGS",
];

/// The first-order methods whose steps are rescaled per coordinate.
const ADAPTIVE: [&str; 5] = ["Adagrad", "RMSprop", "Adam", "NAdam", "RAdam"];

/// The optimiser `name` over the single 2-element parameter `p`. Momentum and Nesterov use
/// PyTorch's `momentum=0.9`; every other hyper-parameter is PyTorch's default, except that
/// L-BFGS does one quasi-Newton iteration per step (`max_iter=1`, strong-Wolfe line search
/// with up to 25 evaluations), so that its path has a point per iteration.
fn optimiser(name: &str, p: &Param<f64>, lr: f64) -> Result<Box<dyn Optimizer>> {
    let params = vec![p.clone()];
    let momentum = |nesterov| Sgd {
        momentum: 0.9,
        nesterov,
        ..Sgd::default()
    };
    Ok(match name {
        "SGD" => Box::new(Optim::new(params, lr, Sgd::default())?),
        "momentum" => Box::new(Optim::new(params, lr, momentum(false))?),
        "Nesterov" => Box::new(Optim::new(params, lr, momentum(true))?),
        "Adagrad" => Box::new(Optim::new(params, lr, Adagrad::default())?),
        "RMSprop" => Box::new(Optim::new(params, lr, RmsProp::default())?),
        "Adam" => Box::new(Optim::new(params, lr, Adam::default())?),
        "NAdam" => Box::new(Optim::new(params, lr, NAdam::default())?),
        "RAdam" => Box::new(Optim::new(params, lr, RAdam::default())?),
        "L-BFGS" => Box::new(ClosureOptim::new(
            params,
            lr,
            Lbfgs {
                max_iter: 1,
                max_eval: Some(25),
                line_search_fn: Some(LineSearch::StrongWolfe),
                ..Lbfgs::default()
            },
        )?),
        other => anyhow::bail!("unknown optimiser {other}"),
    })
}

/// A run: the points visited (the start first), the loss at each, and the gradient
/// evaluations spent before each (one per step for first-order methods).
struct Run {
    points: Vec<(f64, f64)>,
    losses: Vec<f64>,
    evals: Vec<usize>,
}

fn eval(f: Surface, p: &Param<f64>) -> Result<f64> {
    let tape = Tape::new();
    let v = tape.param(p);
    Ok(f(v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?).sum().item()?)
}

fn run(case: &Case, name: &str, lr: f64) -> Result<Run> {
    let p = Param::new(Tensor::from_vec(vec![case.start.0, case.start.1], [2])?);
    let mut opt = optimiser(name, &p, lr)?;
    let mut points = vec![case.start];
    let (mut losses, mut evals, mut spent) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..case.steps {
        // Every optimiser takes the loss as a closure (L-BFGS evaluates it several times).
        let loss = opt.step_with(&mut || {
            spent += 1;
            let tape = Tape::new();
            let v = tape.param(&p);
            let loss = (case.f)(v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?).sum();
            let value = loss.item()?;
            loss.backward()?;
            Ok(value)
        })?;
        losses.push(loss);
        evals.push(spent);
        let w = p.value().to_vec();
        points.push((w[0], w[1]));
        let diverged = !(w[0].is_finite() && w[1].is_finite()) || w[0].hypot(w[1]) > 1e6;
        let escaped = matches!(case.goal, Goal::Escape) && w[1].abs() > SADDLE_STOP;
        if diverged || escaped {
            break;
        }
    }
    losses.push(eval(case.f, &p)?);
    evals.push(spent + 1);
    Ok(Run {
        points,
        losses,
        evals,
    })
}

/// Measurements of one run.
struct Stats {
    /// First step meeting the goal.
    reached: Option<usize>,
    /// Gradient evaluations spent before it.
    reached_evals: Option<usize>,
    /// First step with f − f* below 1 % of its starting value: across the shallow part.
    coarse: Option<usize>,
    final_loss: f64,
    final_dist: f64,
    /// The largest rebound of the distance to the minimum: max over t of
    /// `d(t) − min_{s ≤ t} d(s)`.
    overshoot: f64,
    /// Steps that moved away from the minimum.
    receding: usize,
}

fn stats(case: &Case, r: &Run) -> Stats {
    let last = *r.points.last().expect("a run has its start");
    let final_loss = *r.losses.last().expect("a run has a final loss");
    match case.goal {
        Goal::Minimum { at } => {
            let dist = |p: &(f64, f64)| (p.0 - at.0).hypot(p.1 - at.1);
            let f_min = 0.0;
            let f0 = r.losses[0] - f_min;
            let d: Vec<f64> = r
                .points
                .iter()
                .map(dist)
                .filter(|d| d.is_finite())
                .collect();
            // A path that goes past the minimum and comes back moves away from it after
            // having been closer; plain gradient descent with a stable step never does on
            // a convex bowl.
            let mut closest = f64::INFINITY;
            let mut overshoot = 0.0f64;
            for &di in &d {
                closest = closest.min(di);
                overshoot = overshoot.max(di - closest);
            }
            let reached = r.points.iter().position(|p| dist(p) < TOL);
            Stats {
                reached,
                reached_evals: reached.map(|k| evals_before(r, k)),
                coarse: r.losses.iter().position(|l| l - f_min < 1e-2 * f0),
                final_loss,
                final_dist: dist(&last),
                overshoot,
                receding: d.windows(2).filter(|w| w[1] > w[0]).count(),
            }
        }
        Goal::Escape => Stats {
            reached: r.points.iter().position(|p| p.1.abs() > ESCAPE),
            reached_evals: r
                .points
                .iter()
                .position(|p| p.1.abs() > ESCAPE)
                .map(|k| evals_before(r, k)),
            coarse: r.losses.iter().position(|&l| l < -1.0),
            final_loss,
            final_dist: last.1.abs(),
            overshoot: 0.0,
            receding: 0,
        },
    }
}

/// Gradient evaluations spent to reach point `k` (the start is point 0).
fn evals_before(r: &Run, k: usize) -> usize {
    match k {
        0 => 0,
        k => r.evals[k - 1],
    }
}

fn cases() -> Vec<Case> {
    let log_levels = |lo: i32, hi: i32| -> Vec<f64> {
        (2 * lo..=2 * hi)
            .map(|k| 10f64.powf(k as f64 / 2.0))
            .collect()
    };
    vec![
        Case {
            name: "Rosenbrock (1-x)^2 + 100(y-x^2)^2",
            file: "optimizers_rosenbrock.svg",
            f: rosenbrock,
            start: (-1.2, 1.0),
            goal: Goal::Minimum { at: (1.0, 1.0) },
            steps: 10_000,
            lrs: [1e-3, 1e-3, 1e-3, 1.0, 1e-3, 0.3, 3e-3, 3e-3, 1.0],
            x: (-2.0, 2.0),
            y: (-1.0, 3.0),
            levels: log_levels(-2, 3),
        },
        Case {
            name: "Beale",
            file: "optimizers_beale.svg",
            f: beale,
            start: (1.0, 1.5),
            goal: Goal::Minimum { at: (3.0, 0.5) },
            steps: 10_000,
            lrs: [3e-3, 3e-3, 3e-3, 1.0, 0.3, 0.3, 0.3, 1e-2, 1.0],
            x: (-2.5, 4.5),
            y: (-2.0, 2.5),
            levels: log_levels(-2, 4),
        },
        Case {
            name: "saddle x^2 - y^2",
            file: "optimizers_saddle.svg",
            f: saddle,
            start: (1.0, 1e-3),
            goal: Goal::Escape,
            steps: 2_000,
            lrs: [1e-2; 9],
            x: (-1.5, 1.5),
            y: (-2.0, 2.0),
            levels: (-8..=8).map(|k| k as f64 / 4.0).collect(),
        },
    ]
}

fn grid(case: &Case, n: usize) -> Result<Grid> {
    let mut g = Grid {
        x: case.x,
        y: case.y,
        nx: n,
        ny: n,
        z: Vec::new(),
    };
    let (xs, ys): (Vec<f64>, Vec<f64>) = g.points().into_iter().unzip();
    let tape = Tape::new();
    let z = tape.no_grad(|| -> Result<_> {
        let x = tape.constant(Tensor::from_vec(xs, [n * n])?);
        let y = tape.constant(Tensor::from_vec(ys, [n * n])?);
        Ok((case.f)(x, y).value().to_vec())
    })?;
    g.z = z;
    Ok(g)
}

fn fmt_steps(s: Option<usize>) -> String {
    s.map_or_else(|| "never".to_string(), |s| s.to_string())
}

/// The learning-rate grid of `--sweep` (factor ≈ 3).
const SWEEP_LRS: [f64; 9] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0];

fn sweep(cases: &[Case]) -> Result<()> {
    let lrs = SWEEP_LRS;
    for case in cases {
        println!(
            "\n{} — steps to goal (/ final loss) by lr, budget {}",
            case.name, case.steps
        );
        let mut rows = Vec::new();
        for name in OPTIMISERS {
            let mut row = vec![name.to_string()];
            for &lr in &lrs {
                let s = stats(case, &run(case, name, lr)?);
                row.push(match s.reached {
                    Some(n) => n.to_string(),
                    None => format!("({:.0e})", s.final_loss),
                });
            }
            rows.push(row);
        }
        let header: Vec<String> = lrs.iter().map(|lr| format!("{lr:e}")).collect();
        let mut h = vec!["optimiser"];
        h.extend(header.iter().map(String::as_str));
        print_table(&h, &rows);
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = out_dir(&args.out)?;
    let cases = cases();
    if args.sweep {
        return sweep(&cases);
    }
    let t0 = Instant::now();
    let mut all = Vec::new();
    let mut files = Vec::new();
    for case in &cases {
        let mut rows = Vec::new();
        let mut paths = Vec::new();
        let mut curves = Vec::new();
        let mut per_opt = Vec::new();
        for (name, &lr) in OPTIMISERS.iter().zip(&case.lrs) {
            let r = run(case, name, lr)?;
            let s = stats(case, &r);
            let mut row = vec![
                name.to_string(),
                format!("{lr:e}"),
                fmt_steps(s.reached),
                fmt_steps(s.reached_evals),
                fmt_steps(s.coarse),
                format!("{:.3e}", s.final_loss),
            ];
            match case.goal {
                Goal::Minimum { .. } => row.extend([
                    format!("{:.2e}", s.final_dist),
                    format!("{:.3}", s.overshoot),
                    s.receding.to_string(),
                ]),
                Goal::Escape => row.push(format!("{}", r.points.len() - 1)),
            }
            rows.push(row);
            // Loss against gradient evaluations: f − f* where the minimum is 0, and the
            // decrease f(start) − f on the saddle, whose f has no lower bound.
            let f0 = r.losses[0];
            let curve: Vec<(f64, f64)> = r
                .losses
                .iter()
                .zip(std::iter::once(&0).chain(&r.evals))
                .map(|(&l, &e)| {
                    let y = match case.goal {
                        Goal::Minimum { .. } => l,
                        Goal::Escape => f0 - l,
                    };
                    ((e + 1) as f64, y)
                })
                .collect();
            curves.push((format!("{name} (lr {lr:e})"), curve));
            let reached = match (s.reached, case.goal) {
                (Some(n), Goal::Minimum { .. }) => format!("goal in {n} steps"),
                (Some(n), Goal::Escape) => format!("escaped in {n} steps"),
                (None, _) => "goal not reached".to_string(),
            };
            paths.push(Path2 {
                name: format!("{name}, lr {lr:e}: {reached}"),
                points: r.points,
            });
            per_opt.push(s);
        }
        println!(
            "\n{} from {:?}, budget {} steps",
            case.name, case.start, case.steps
        );
        match case.goal {
            Goal::Minimum { at } => {
                println!("goal: distance to the minimum {at:?} < {TOL:e}; 'evals': gradient evaluations to the goal (L-BFGS also evaluates in its line search); 'f < 1% f0': first step with f below 1% of f(start)\n");
                print_table(
                    &[
                        "optimiser",
                        "lr",
                        "steps to goal",
                        "evals",
                        "f < 1% f0",
                        "final f",
                        "final dist",
                        "overshoot",
                        "steps away",
                    ],
                    &rows,
                );
            }
            Goal::Escape => {
                println!("goal: escape, |y| > {ESCAPE}; runs stop at |y| > {SADDLE_STOP}\n");
                print_table(
                    &[
                        "optimiser",
                        "lr",
                        "steps to |y|>1",
                        "evals",
                        "steps to f<-1",
                        "final f",
                        "steps run",
                    ],
                    &rows,
                );
            }
        }
        let marks: Vec<(f64, f64)> = match case.goal {
            Goal::Minimum { at } => vec![at],
            Goal::Escape => vec![(0.0, 0.0)],
        };
        let paths_file = dir.join(case.file);
        contour_grid(
            &paths_file,
            &format!(
                "{}: paths from {:?} (hollow: start, filled: end)",
                case.name, case.start
            ),
            &grid(case, 121)?,
            &case.levels,
            &paths,
            &marks,
            3,
        )?;
        let loss_file = dir.join(case.file.replace(".svg", "_loss.svg"));
        // On the saddle f has no lower bound, and an L-BFGS line search runs off to y ~ 1e8;
        // the runs that stop at |y| > 2 decrease f by about 5, so the axis ends at 20.
        let (y_label, y_max, legend) = match case.goal {
            Goal::Minimum { .. } => ("f (log)", None, SeriesLabelPosition::LowerLeft),
            Goal::Escape => (
                "f(start) - f (log; capped at 20)",
                Some(20.0),
                SeriesLabelPosition::UpperLeft,
            ),
        };
        log_log_chart(
            &loss_file,
            &format!("{}: loss against gradient evaluations", case.name),
            ("gradient evaluations + 1 (log)", y_label),
            &curves,
            y_max,
            legend,
        )?;
        files.extend([paths_file, loss_file]);
        if let Goal::Minimum { .. } = case.goal {
            momentum_table(case)?;
        }
        all.push(per_opt);
    }
    println!("\nfigures: {}", {
        let f: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        f.join(", ")
    });
    let robustness = lr_robustness(&cases)?;
    verdicts(&cases, &all, &robustness);
    println!("\n(run time {:.1} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

/// For Adam and RAdam: on each surface, the learning rates of the sweep grid at which the
/// run reaches its goal.
fn lr_robustness(cases: &[Case]) -> Result<Vec<[Vec<f64>; 2]>> {
    let mut out = Vec::new();
    for case in cases {
        let mut pair = [Vec::new(), Vec::new()];
        for (k, name) in ["Adam", "RAdam"].iter().enumerate() {
            for &lr in &SWEEP_LRS {
                if stats(case, &run(case, name, lr)?).reached.is_some() {
                    pair[k].push(lr);
                }
            }
        }
        out.push(pair);
    }
    Ok(out)
}

/// Overshoot of SGD, momentum and Nesterov over a few shared learning rates, so the
/// comparison does not rest on one step size.
fn momentum_table(case: &Case) -> Result<()> {
    let lrs = [1e-4, 3e-4, 1e-3, 3e-3];
    println!(
        "\n{}: overshoot / steps away from the minimum / steps to goal, by lr",
        case.name
    );
    let mut rows = Vec::new();
    for name in ["SGD", "momentum", "Nesterov"] {
        let mut row = vec![name.to_string()];
        for &lr in &lrs {
            let r = run(case, name, lr)?;
            let s = stats(case, &r);
            row.push(if s.final_loss.is_finite() && s.final_dist < 1e3 {
                format!(
                    "{:.3} / {} / {}",
                    s.overshoot,
                    s.receding,
                    fmt_steps(s.reached)
                )
            } else {
                "diverges".to_string()
            });
        }
        rows.push(row);
    }
    let header: Vec<String> = lrs.iter().map(|lr| format!("lr {lr:e}")).collect();
    let mut h = vec!["optimiser"];
    h.extend(header.iter().map(String::as_str));
    print_table(&h, &rows);
    Ok(())
}

fn verdicts(cases: &[Case], all: &[Vec<Stats>], robustness: &[[Vec<f64>; 2]]) {
    let idx = |n: &str| OPTIMISERS.iter().position(|o| *o == n).expect("known name");
    let holds = |b: bool| if b { "holds" } else { "does NOT hold" };
    let never = |s: Option<usize>| s.unwrap_or(usize::MAX);
    println!("\nLiterature predicts / we measured (at the lrs of the main tables):");
    for ((case, st), rob) in cases.iter().zip(all).zip(robustness) {
        let (sgd, mom, nes) = (&st[idx("SGD")], &st[idx("momentum")], &st[idx("Nesterov")]);
        if let Goal::Minimum { .. } = case.goal {
            println!(
                "- {}: momentum overshoots (vs SGD, same lr): overshoot {:.3} vs {:.3}, steps away {} vs {} -> {}",
                case.name,
                mom.overshoot,
                sgd.overshoot,
                mom.receding,
                sgd.receding,
                holds(mom.overshoot > sgd.overshoot)
            );
            println!(
                "- {}: Nesterov overshoots less than momentum (same lr): overshoot {:.3} vs {:.3}, steps away {} vs {} -> {}",
                case.name,
                nes.overshoot,
                mom.overshoot,
                nes.receding,
                mom.receding,
                holds(nes.overshoot < mom.overshoot)
            );
            let adaptive: Vec<String> = ADAPTIVE
                .iter()
                .map(|n| format!("{n} {}", fmt_steps(st[idx(n)].coarse)))
                .collect();
            let faster = ADAPTIVE
                .iter()
                .filter(|n| never(st[idx(n)].coarse) < never(sgd.coarse))
                .count();
            println!(
                "- {}: adaptive methods cross the shallow part faster than SGD (steps to f < 1% f0): SGD {}; {} -> {} of {} faster: {}",
                case.name,
                fmt_steps(sgd.coarse),
                adaptive.join(", "),
                faster,
                ADAPTIVE.len(),
                holds(faster == ADAPTIVE.len())
            );
        } else {
            let others: Vec<String> = OPTIMISERS
                .iter()
                .zip(st)
                .skip(1)
                .map(|(n, s)| format!("{n} {}", fmt_steps(s.reached)))
                .collect();
            let slower: Vec<&str> = OPTIMISERS
                .iter()
                .zip(st)
                .skip(1)
                .filter(|(_, s)| never(s.reached) >= never(sgd.reached))
                .map(|(n, _)| *n)
                .collect();
            println!(
                "- {}: plain SGD lingers longest at the saddle: SGD escapes after {} steps; {} -> {}{}",
                case.name,
                fmt_steps(sgd.reached),
                others.join(", "),
                holds(slower.is_empty()),
                if slower.is_empty() {
                    String::new()
                } else {
                    format!(" (slower than SGD: {})", slower.join(", "))
                }
            );
        }
        // L-BFGS against the best first-order method, in gradient evaluations.
        let lbfgs = never(st[idx("L-BFGS")].reached_evals);
        let (best, best_evals) = OPTIMISERS
            .iter()
            .zip(st)
            .filter(|(n, _)| **n != "L-BFGS")
            .map(|(n, s)| (*n, never(s.reached_evals)))
            .min_by_key(|(_, e)| *e)
            .expect("nine optimisers");
        let show = |e: usize| match e {
            usize::MAX => "never".to_string(),
            e => e.to_string(),
        };
        println!(
            "- {}: L-BFGS needs fewer gradient evaluations than any first-order method: L-BFGS {}, best first-order {best} {} -> {}",
            case.name,
            show(lbfgs),
            show(best_evals),
            holds(lbfgs < best_evals)
        );
        let fmt_lrs = |v: &[f64]| {
            let s: Vec<String> = v.iter().map(|lr| format!("{lr:e}")).collect();
            format!("{} of {} ({})", v.len(), SWEEP_LRS.len(), s.join(", "))
        };
        println!(
            "- {}: RAdam reaches the goal at more learning rates than Adam: RAdam {}; Adam {} -> {}",
            case.name,
            fmt_lrs(&rob[1]),
            fmt_lrs(&rob[0]),
            holds(rob[1].len() > rob[0].len())
        );
    }
}
