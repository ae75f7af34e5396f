//! The benchmark workloads of `../shared/bench/WORKLOADS.md`, one JSON line per workload in
//! the format of the PyTorch script `torch_bench.py`, so the two can be compared line by line.
//!
//! ```text
//! cargo run --release --example bench -- --threads 1
//! cargo run --release --example bench -- --threads 2 --only W3,W4
//! ```

// glibc's allocator hands large freed buffers back to the OS and page-faults them in again
// on the next step; on graphs of large tensors that cost 7x in backward (measured:
// tanh forward+backward on 10^6 elements, 11.5 vs 1.3 ns/element). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use anyhow::Result;
use autograd::{Param, Tape, Tensor, Var};
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "gradlab benchmark workloads (WORKLOADS.md), JSON lines")]
struct Args {
    /// Threads for matrix products.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Comma-separated workloads to run.
    #[arg(long, default_value = "W1,W2,W3,W4,W5")]
    only: String,
    /// Minimum timed iterations (WORKLOADS.md asks for at least 20).
    #[arg(long, default_value_t = 25)]
    iters: usize,
    /// Warm-up iterations.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Keep timing fast workloads until this many seconds have passed.
    #[arg(long, default_value_t = 1.0)]
    min_time: f64,
}

/// Runs `f` `warmup` times, then at least `iters` times and until `min_time` seconds have
/// passed (at most 10·iters), as torch_bench.py's `timeit`. Returns seconds per iteration.
fn timeit(
    mut f: impl FnMut() -> Result<()>,
    warmup: usize,
    iters: usize,
    min_time: f64,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < iters
        || (start.elapsed().as_secs_f64() < min_time && times.len() < 10 * iters)
    {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok(times)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    // Python's statistics.quantiles(n=4) "exclusive" method, to match torch_bench.py.
    let n = sorted.len() as f64;
    let pos = q * (n + 1.0) - 1.0;
    let lo = pos.floor().clamp(0.0, n - 1.0) as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = (pos - pos.floor()).clamp(0.0, 1.0);
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn summary(mut t: Vec<f64>) -> serde_json::Map<String, Value> {
    t.sort_by(|a, b| a.total_cmp(b));
    let mut m = serde_json::Map::new();
    m.insert("median_ms".into(), json!(median(&t) * 1e3));
    m.insert("min_ms".into(), json!(t[0] * 1e3));
    m.insert("p25_ms".into(), json!(quantile(&t, 0.25) * 1e3));
    m.insert("p75_ms".into(), json!(quantile(&t, 0.75) * 1e3));
    m.insert("iters".into(), json!(t.len()));
    m
}

/// W3: a chain of 10,000 scalar ops (mul 1.0001, add 0.001, tanh), sum, backward.
fn w3(a: &Args) -> Result<Value> {
    const N_OPS: usize = 10_000;
    let x = Param::new(Tensor::<f32>::from_vec(vec![0.5], [1])?);
    fn chain<'t>(tape: &'t Tape<f32>, x: &Param<f32>) -> Var<'t, f32> {
        let mut h = tape.param(x);
        for i in 0..N_OPS {
            h = match i % 3 {
                0 => h * 1.0001,
                1 => h + 0.001,
                _ => h.tanh(),
            };
        }
        h.sum()
    }
    let step = || -> Result<()> {
        x.zero_grad();
        let tape = Tape::new();
        chain(&tape, &x).backward()?;
        Ok(())
    };
    let t = timeit(step, (a.warmup / 2).max(2), a.iters, 0.0)?;
    let mut out = summary(t);
    let med = out["median_ms"].as_f64().unwrap_or(0.0);
    out.insert("ns_per_op".into(), json!(med * 1e6 / N_OPS as f64));
    out.insert("ops".into(), json!(N_OPS));
    // forward and backward split, median of a few runs
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        x.zero_grad();
        let tape = Tape::new();
        let t0 = Instant::now();
        let h = chain(&tape, &x);
        let t1 = Instant::now();
        h.backward()?;
        let t2 = Instant::now();
        fwd.push((t1 - t0).as_secs_f64());
        bwd.push((t2 - t1).as_secs_f64());
    }
    fwd.sort_by(|a, b| a.total_cmp(b));
    bwd.sort_by(|a, b| a.total_cmp(b));
    out.insert(
        "fwd_ns_per_op".into(),
        json!(median(&fwd) * 1e9 / N_OPS as f64),
    );
    out.insert(
        "bwd_ns_per_op".into(),
        json!(median(&bwd) * 1e9 / N_OPS as f64),
    );
    let mut v = json!({"workload": "W3", "name": "tape-overhead"});
    v.as_object_mut().unwrap().extend(out);
    Ok(v)
}

/// W4: square f32 GEMM at n = 128, 512, 1024.
fn w4(a: &Args) -> Result<Vec<Value>> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut res = Vec::new();
    for n in [128usize, 512, 1024] {
        let x = Tensor::<f32>::randn([n, n], &mut rng);
        let y = Tensor::<f32>::randn([n, n], &mut rng);
        let t = timeit(
            || {
                std::hint::black_box(x.matmul(&y)?);
                Ok(())
            },
            a.warmup,
            a.iters,
            a.min_time,
        )?;
        let mut out = summary(t);
        let med = out["median_ms"].as_f64().unwrap_or(f64::NAN);
        out.insert(
            "gflops".into(),
            json!(2.0 * (n as f64).powi(3) / (med * 1e-3) / 1e9),
        );
        let mut v = json!({"workload": "W4", "name": format!("gemm-{n}"), "n": n});
        v.as_object_mut().unwrap().extend(out);
        res.push(v);
    }
    Ok(res)
}

fn main() -> Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        a.iters >= 20,
        "WORKLOADS.md asks for at least 20 timed iterations"
    );
    autograd::set_num_threads(a.threads);
    let meta = json!({"threads": a.threads, "gradlab": env!("CARGO_PKG_VERSION"), "dtype": "float32", "mode": "tape"});
    for w in a.only.split(',').map(|s| s.trim().to_uppercase()) {
        let lines = match w.as_str() {
            "W3" => vec![w3(&a)?],
            "W4" => w4(&a)?,
            "W1" | "W2" | "W5" => vec![json!({"workload": w, "skipped": "needs nn and optim"})],
            other => anyhow::bail!("unknown workload {other}"),
        };
        for mut l in lines {
            l.as_object_mut()
                .unwrap()
                .extend(meta.as_object().unwrap().clone());
            println!("{l}");
        }
    }
    Ok(())
}
