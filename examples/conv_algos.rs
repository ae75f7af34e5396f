//! im2col + GEMM against direct loops for the two convolutions of the CNN workload (W6):
//! x [32,1,28,28] * w [16,1,3,3] and x [32,16,14,14] * w [32,16,3,3], padding 1, f32,
//! forward and first-order backward (grad x and grad w, through `Var::backward` and the
//! op's fast path), on 1 and 2 threads. Prints medians in µs. The numbers behind
//! `ConvAlgorithm::Auto` (`Geom::resolve` in `autograd/src/ops/conv_kernels.rs`).
//!
//! A third column times the way `conv2d` was built before it was one op (an index list,
//! a recorded gather, a matmul and a permute back to NCHW), for reference.
//!
//! ```text
//! cargo run --release --example conv_algos
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/smoke.rs"]
mod smoke;

use std::time::Instant;

use autograd::{set_conv_algorithm, Conv2dArgs, ConvAlgorithm, Param, Tape, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Algo(ConvAlgorithm),
    Composed,
}

/// The window index of a stride-1 convolution over `[n, c, h, w]`, laid out
/// `[n, oh, ow, c, kh, kw]`, `usize::MAX` in the padding: what the composed path gathered.
fn windows(n: usize, c: usize, h: usize, w: usize, k: usize, p: usize) -> Vec<usize> {
    let (oh, ow) = (h + 2 * p + 1 - k, w + 2 * p + 1 - k);
    let mut idx = Vec::with_capacity(n * oh * ow * c * k * k);
    for b in 0..n {
        for y in 0..oh {
            for z in 0..ow {
                for ch in 0..c {
                    for i in 0..k {
                        for j in 0..k {
                            let (r, q) =
                                ((y + i) as isize - p as isize, (z + j) as isize - p as isize);
                            let inside = r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w;
                            idx.push(if inside {
                                ((b * c + ch) * h + r as usize) * w + q as usize
                            } else {
                                usize::MAX
                            });
                        }
                    }
                }
            }
        }
    }
    idx
}

/// The composed convolution (stride 1, square kernel `k`, padding `p`), as it was recorded
/// before `conv2d` became one op.
fn composed<'t>(
    x: Var<'t, f32>,
    w: Var<'t, f32>,
    b: Var<'t, f32>,
    p: usize,
) -> autograd::Result<Var<'t, f32>> {
    let (xs, ws) = (x.dims(), w.dims());
    let (n, c, h, wd, co, k) = (xs[0], xs[1], xs[2], xs[3], ws[0], ws[2]);
    let (oh, ow) = (h + 2 * p + 1 - k, wd + 2 * p + 1 - k);
    let idx = windows(n, c, h, wd, k, p);
    let cols = x.gather_flat(idx, [n * oh * ow, c * k * k], 0.0)?;
    let y = cols.matmul_t(w.reshape([co, c * k * k])?, false, true)?;
    y.reshape([n, oh * ow, co])?
        .permute(&[0, 2, 1])?
        .reshape([n, co, oh, ow])?
        .add(b.reshape([1, co, 1, 1])?)
}

/// Median forward and backward times (µs) of `reps` runs.
fn time(
    way: Way,
    x: &Tensor<f32>,
    w: &Tensor<f32>,
    b: &Tensor<f32>,
    reps: usize,
) -> anyhow::Result<(f64, f64)> {
    let (px, pw, pb) = (
        Param::new(x.clone()),
        Param::new(w.clone()),
        Param::new(b.clone()),
    );
    let args = Conv2dArgs {
        padding: (1, 1),
        ..Conv2dArgs::default()
    };
    if let Way::Algo(a) = way {
        set_conv_algorithm(a);
    }
    let mut cot = None;
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for rep in 0..reps + reps / 5 + 1 {
        let tape = Tape::new();
        let (vx, vw, vb) = (tape.param(&px), tape.param(&pw), tape.param(&pb));
        let t0 = Instant::now();
        let y = match way {
            Way::Algo(_) => vx.conv2d(vw, Some(vb), args)?,
            Way::Composed => composed(vx, vw, vb, 1)?,
        };
        let t1 = Instant::now();
        let c = cot.get_or_insert_with(|| {
            Tensor::from_fn(y.shape(), |i| ((i % 13) as f32 - 6.0) * 0.1).unwrap()
        });
        y.backward_with(c.clone())?;
        let t2 = Instant::now();
        // The first runs (a fifth) warm up.
        if rep > reps / 5 {
            fwd.push((t1 - t0).as_secs_f64() * 1e6);
            bwd.push((t2 - t1).as_secs_f64() * 1e6);
        }
        for p in [&px, &pw, &pb] {
            p.zero_grad();
        }
    }
    set_conv_algorithm(ConvAlgorithm::Auto);
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((med(fwd), med(bwd)))
}

fn main() -> anyhow::Result<()> {
    let is_smoke = smoke::enabled(std::env::args().any(|a| a == "--smoke"));
    let reps = if is_smoke { 3 } else { 200 };
    let mut rng = StdRng::seed_from_u64(0);
    let shapes = [
        ([32, 1, 28, 28], [16, 1, 3, 3]),
        ([32, 16, 14, 14], [32, 16, 3, 3]),
    ];
    println!(
        "{:<26} {:>3} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "shape (x * w, pad 1)",
        "thr",
        "gemm fwd",
        "gemm bwd",
        "direct fwd",
        "direct bwd",
        "old fwd",
        "old bwd"
    );
    for (xs, ws) in shapes {
        let x = Tensor::<f32>::randn(xs, &mut rng)?;
        let w = Tensor::<f32>::randn(ws, &mut rng)?;
        let b = Tensor::<f32>::randn([ws[0]], &mut rng)?;
        for threads in [1, 2] {
            autograd::set_num_threads(threads);
            let mut row = Vec::new();
            for way in [
                Way::Algo(ConvAlgorithm::Im2colGemm),
                Way::Algo(ConvAlgorithm::Direct),
                Way::Composed,
            ] {
                let (f, b) = time(way, &x, &w, &b, reps)?;
                row.push(f);
                row.push(b);
            }
            let name = format!("{xs:?}*{:?}", &ws[..2]);
            print!("{name:<26} {threads:>3}");
            for v in row {
                print!(" {v:>11.1}");
            }
            println!();
        }
    }
    Ok(())
}
