//! Where splitting elementwise work over two threads starts to pay: times `1.5·x + 0.5`
//! (the cheapest kind of map) and `x * y` (a zip) at sizes 2¹⁰..2²⁰ on 1 and 2 threads
//! and prints the medians. The numbers behind `MIN_SPLIT` in `tensor/kernels/par.rs`;
//! sizes below it never split, so lower it temporarily to see where splitting stops paying.
//!
//! ```text
//! cargo run --release --example split_threshold
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/smoke.rs"]
mod smoke;

use std::time::Instant;

use autograd::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn median_us(mut f: impl FnMut(), reps: usize) -> f64 {
    for _ in 0..reps / 10 + 1 {
        f();
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn main() -> anyhow::Result<()> {
    // Smoke mode (`GRADLAB_SMOKE=1` or `--smoke`): a handful of repetitions per size.
    let is_smoke = smoke::enabled(std::env::args().any(|a| a == "--smoke"));
    let mut rng = StdRng::seed_from_u64(0);
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>12}",
        "n", "axpb 1t us", "axpb 2t us", "mul 1t us", "mul 2t us"
    );
    for log in 10..=20 {
        let n = 1usize << log;
        let a = Tensor::<f32>::randn([n], &mut rng)?;
        let b = Tensor::<f32>::randn([n], &mut rng)?;
        let reps = if is_smoke {
            5
        } else {
            (200 * (1 << 20) / n).clamp(200, 20_000)
        };
        let mut row = Vec::new();
        for threads in [1, 2] {
            autograd::set_num_threads(threads);
            row.push(median_us(
                || {
                    std::hint::black_box(a.map(|v| v * 1.5 + 0.5));
                },
                reps,
            ));
        }
        for threads in [1, 2] {
            autograd::set_num_threads(threads);
            row.push(median_us(
                || {
                    std::hint::black_box(a.mul(&b).ok());
                },
                reps,
            ));
        }
        println!(
            "{n:>9} {:>12.2} {:>12.2} {:>12.2} {:>12.2}",
            row[0], row[1], row[2], row[3]
        );
    }
    Ok(())
}
