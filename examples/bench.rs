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

// mimalloc's own option API (linked in by the `mimalloc` crate), declared here rather than
// through `libmimalloc-sys`'s `extended` feature, which would rebuild the C library.
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps freed memory mapped: by default mimalloc hands pages freed for 10 ms back to the
/// OS, and a training step that frees its activations and allocates them again 10+ ms
/// later then pays a page fault and a page clear per 4 KiB (measured on W8: 20,579 page
/// faults in 22 steps, about a quarter of its profile in the kernel's `clear_page`;
/// with purging off, 235).
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an integer option; any value is valid for it.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[path = "common/smoke.rs"]
mod smoke;

use std::time::Instant;

use anyhow::Result;
use autograd::Float;
use autograd::{Param, Tape, Tensor, Var};
use clap::Parser;
use nn::{
    BoolMask, Conv2dConfig, Ctx, Embedding, EncoderInput, FeedForwardActivation, Flatten, Forward,
    LayerNorm, Linear, Lstm, MaxPool2d, Module, ModuleList, Relu, RnnConfig, Sequential, Tanh,
    TransformerEncoderLayer, TransformerLayerConfig,
};
use optim::{Adam, AdamW, Optim, Optimizer, Sgd};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "gradlab benchmark workloads (WORKLOADS.md), JSON lines")]
struct Args {
    /// Threads for the kernels; by default the library's own default
    /// (`GRADLAB_NUM_THREADS`, else the machine's available parallelism).
    #[arg(long)]
    threads: Option<usize>,
    /// Comma-separated workloads to run.
    #[arg(long, default_value = "W1,W2,W3,W4,W5,W6,W7,W8,W9")]
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
    /// Smoke mode (also `GRADLAB_SMOKE=1`): the fewest iterations allowed, no warm-up, no
    /// minimum time, W4 without n = 1024, W5 over 10 steps; the numbers are marked
    /// `"smoke": true` and mean nothing.
    #[arg(long)]
    smoke: bool,
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

/// A workload's JSON line: its tags (`workload`, `name`, extras) followed by its figures.
fn line(mut tags: Value, figures: serde_json::Map<String, Value>) -> Value {
    if let Some(t) = tags.as_object_mut() {
        t.extend(figures);
    }
    tags
}

/// Times one training step (zero grads, forward, loss, backward, optimiser step) of
/// `model` on `x`, returning the summary with GFLOP/s for `flops` per iteration.
fn train_step_bench(
    a: &Args,
    model: &Sequential<f32>,
    opt: &mut dyn Optimizer,
    x: &Tensor<f32>,
    loss: impl for<'t> Fn(Var<'t, f32>) -> nn::Result<Var<'t, f32>>,
    flops: f64,
) -> Result<serde_json::Map<String, Value>> {
    let t = timeit(
        || {
            opt.zero_grad();
            let tape = Tape::new();
            let y = Ctx::new(&tape).call(&model, tape.constant(x.clone()))?;
            loss(y)?.backward()?;
            opt.step()?;
            Ok(())
        },
        a.warmup,
        a.iters,
        a.min_time,
    )?;
    let mut out = summary(t);
    let med = out["median_ms"].as_f64().unwrap_or(f64::NAN);
    out.insert("gflops".into(), json!(flops / (med * 1e-3) / 1e9));
    out.insert("flops_per_iter".into(), json!(flops));
    Ok(out)
}

/// W1: MLP 784-512-512-10, ReLU, softmax cross-entropy, batch 128, Adam(lr=1e-3).
fn w1(a: &Args) -> Result<Value> {
    let mut rng = StdRng::seed_from_u64(0);
    let model = Sequential::new()
        .append(Linear::<f32>::new(784, 512, &mut rng)?)
        .append(Relu)
        .append(Linear::new(512, 512, &mut rng)?)
        .append(Relu)
        .append(Linear::new(512, 10, &mut rng)?);
    let mut opt = Optim::new(model.parameters(), 1e-3, Adam::default())?;
    let x = Tensor::<f32>::randn([128, 784], &mut rng)?;
    let labels: Vec<usize> = (0..128).map(|_| rng.random_range(0..10)).collect();
    let flops = 3.0 * 2.0 * 128.0 * (784.0 * 512.0 + 512.0 * 512.0 + 512.0 * 10.0);
    let out = train_step_bench(
        a,
        &model,
        &mut opt,
        &x,
        |y| nn::loss::cross_entropy(y, &labels),
        flops,
    )?;
    Ok(line(
        json!({"workload": "W1", "name": "mlp-train-step"}),
        out,
    ))
}

/// W2: input 256, 20 hidden layers of width 256 with tanh, output 10, batch 64, MSE
/// against zero, SGD(lr=0.01) — 21 Linear layers, as torch_bench.py reads it.
fn w2(a: &Args) -> Result<Value> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut model = Sequential::new();
    for _ in 0..20 {
        model = model
            .append(Linear::<f32>::new(256, 256, &mut rng)?)
            .append(Tanh);
    }
    let model = model.append(Linear::new(256, 10, &mut rng)?);
    let mut opt = Optim::new(model.parameters(), 0.01, Sgd::default())?;
    let x = Tensor::<f32>::randn([64, 256], &mut rng)?;
    let flops = 3.0 * 2.0 * 64.0 * (256.0 * 256.0 * 20.0 + 256.0 * 10.0);
    let zero = Tensor::<f32>::zeros([64, 10])?;
    let out = train_step_bench(
        a,
        &model,
        &mut opt,
        &x,
        |y| nn::loss::mse_loss(y, y.tape().constant(zero.clone())),
        flops,
    )?;
    Ok(line(
        json!({"workload": "W2", "name": "deep-mlp", "layers": "256 -> 20 x (256, tanh) -> 10"}),
        out,
    ))
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
    Ok(line(
        json!({"workload": "W3", "name": "tape-overhead"}),
        out,
    ))
}

/// W9: `sum(gelu(x) * sigmoid(x) + x)` over 2²² f32 (exact GELU), backward into `x`;
/// GB/s counts the minimal traffic, 12 bytes per element, as torch_bench.py does.
fn w9(a: &Args) -> Result<Value> {
    const N: usize = 1 << 22;
    let mut rng = StdRng::seed_from_u64(0);
    let x = Param::new(Tensor::<f32>::randn([N], &mut rng)?);
    let t = timeit(
        || {
            x.zero_grad();
            let tape = Tape::new();
            let v = tape.param(&x);
            v.gelu().mul(v.sigmoid())?.add(v)?.sum().backward()?;
            Ok(())
        },
        a.warmup,
        a.iters,
        a.min_time,
    )?;
    let mut out = summary(t);
    let med = out["median_ms"].as_f64().unwrap_or(f64::NAN);
    out.insert(
        "gbytes_per_s".into(),
        json!(12.0 * N as f64 / (med * 1e-3) / 1e9),
    );
    out.insert("elements".into(), json!(N));
    Ok(line(
        json!({"workload": "W9", "name": "wide-elementwise"}),
        out,
    ))
}

/// W4: square f32 GEMM at n = 128, 512, 1024.
fn w4(a: &Args) -> Result<Vec<Value>> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut res = Vec::new();
    let sizes: &[usize] = if a.smoke {
        &[128, 512]
    } else {
        &[128, 512, 1024]
    };
    for &n in sizes {
        let x = Tensor::<f32>::randn([n, n], &mut rng)?;
        let y = Tensor::<f32>::randn([n, n], &mut rng)?;
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
        res.push(line(
            json!({"workload": "W4", "name": format!("gemm-{n}"), "n": n}),
            out,
        ));
    }
    Ok(res)
}

/// Times `step` and adds GFLOP/s for `flops` per iteration, under `workload`/`name`.
fn timed_step(
    a: &Args,
    workload: &str,
    name: &str,
    flops: f64,
    step: impl FnMut() -> Result<()>,
) -> Result<Value> {
    let mut out = summary(timeit(step, a.warmup, a.iters, a.min_time)?);
    let med = out["median_ms"].as_f64().unwrap_or(f64::NAN);
    out.insert("gflops".into(), json!(flops / (med * 1e-3) / 1e9));
    out.insert("flops_per_iter".into(), json!(flops));
    Ok(line(json!({"workload": workload, "name": name}), out))
}

/// W6: conv 1->16 3x3 pad 1, ReLU, max-pool 2; conv 16->32 3x3 pad 1, ReLU, max-pool 2;
/// flatten; Linear 1568->10; softmax cross-entropy; SGD(lr=0.01, momentum=0.9); batch 32.
fn w6(a: &Args) -> Result<Value> {
    let mut rng = StdRng::seed_from_u64(0);
    let conv = |i, o, rng: &mut StdRng| {
        Conv2dConfig {
            padding: (1, 1),
            ..Conv2dConfig::new(i, o, 3)
        }
        .init::<f32>(rng)
    };
    let model = Sequential::new()
        .append(conv(1, 16, &mut rng)?)
        .append(Relu)
        .append(MaxPool2d::new(2))
        .append(conv(16, 32, &mut rng)?)
        .append(Relu)
        .append(MaxPool2d::new(2))
        .append(Flatten::default())
        .append(Linear::<f32>::new(32 * 7 * 7, 10, &mut rng)?);
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let mut opt = Optim::new(model.parameters(), 0.01, sgd)?;
    let x = Tensor::<f32>::randn([32, 1, 28, 28], &mut rng)?;
    let labels: Vec<usize> = (0..32).map(|_| rng.random_range(0..10)).collect();
    let flops = 3.0
        * 2.0
        * 32.0
        * (28.0 * 28.0 * 16.0 * 9.0 + 14.0 * 14.0 * 32.0 * 16.0 * 9.0 + 1568.0 * 10.0);
    let out = train_step_bench(
        a,
        &model,
        &mut opt,
        &x,
        |y| nn::loss::cross_entropy(y, &labels),
        flops,
    )?;
    Ok(line(
        json!({"workload": "W6", "name": "cnn-train-step"}),
        out,
    ))
}

/// W7's decoder-only language model: token and position embeddings, pre-norm
/// transformer blocks with a causal mask, a final LayerNorm and a linear head.
#[derive(nn::Module)]
struct TransformerLm<T: Float> {
    tok: Embedding<T>,
    pos: Embedding<T>,
    blocks: ModuleList<TransformerEncoderLayer<T>>,
    norm: LayerNorm<T>,
    head: Linear<T>,
}

impl<T: Float> Forward<T> for TransformerLm<T> {
    /// Token indices `[batch][context]`.
    type Input<'t> = &'t [Vec<usize>];
    /// Logits `[batch·context, vocab]`.
    type Output<'t> = Var<'t, T>;

    fn forward<'t>(&self, cx: &Ctx<'t, T>, idx: &'t [Vec<usize>]) -> nn::Result<Var<'t, T>> {
        let (b, t) = (idx.len(), idx.first().map_or(0, Vec::len));
        let flat: Vec<usize> = idx.iter().flatten().copied().collect();
        let positions: Vec<usize> = (0..t).collect();
        let d = self.pos.weight.shape()[1];
        let tok = self.tok.lookup(cx, &flat)?.reshape([b, t, d])?;
        let mut h = tok.add(self.pos.lookup(cx, &positions)?)?;
        for block in &self.blocks {
            h = cx.call(
                block,
                EncoderInput::new(h).with_mask(BoolMask::causal(t, t)),
            )?;
        }
        let logits = cx.call(&self.head, cx.call(&self.norm, h)?)?;
        let v = logits.dims()[2];
        Ok(logits.reshape([b * t, v])?)
    }
}

/// Random tokens `[batch][context]` below `vocab`.
fn tokens(rng: &mut StdRng, batch: usize, context: usize, vocab: usize) -> Vec<Vec<usize>> {
    (0..batch)
        .map(|_| (0..context).map(|_| rng.random_range(0..vocab)).collect())
        .collect()
}

/// W7: transformer LM step, vocab 64, context 64, batch 16, d_model 128, 4 heads,
/// 2 pre-norm blocks (feed-forward 512, exact GELU), AdamW(lr=3e-4, weight_decay=0.01).
fn w7(a: &Args) -> Result<Value> {
    let (v, t, b, d, h) = (64, 64, 16, 128, 4);
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = TransformerLayerConfig {
        dim_feedforward: 4 * d,
        dropout: 0.0,
        activation: FeedForwardActivation::Gelu,
        batch_first: true,
        norm_first: true,
        ..TransformerLayerConfig::new(d, h)
    };
    let model = TransformerLm::<f32> {
        tok: Embedding::new(v, d, &mut rng)?,
        pos: Embedding::new(t, d, &mut rng)?,
        blocks: (0..2)
            .map(|_| cfg.encoder(&mut rng))
            .collect::<nn::Result<ModuleList<_>>>()?,
        norm: LayerNorm::new(&[d])?,
        head: Linear::new(d, v, &mut rng)?,
    };
    let adamw = AdamW {
        weight_decay: 0.01,
        ..AdamW::default()
    };
    let mut opt = Optim::new(model.parameters(), 3e-4, adamw)?;
    let idx = tokens(&mut rng, b, t, v);
    let tgt: Vec<usize> = tokens(&mut rng, b, t, v).concat();
    let per_tok = 2 * (4 * d * d + 2 * 4 * d * d) + 2 * 2 * t * d;
    let flops = (3 * b * t * (2 * per_tok + 2 * d * v)) as f64;
    timed_step(a, "W7", "transformer-lm-step", flops, || {
        opt.zero_grad();
        let tape = Tape::new();
        let logits = Ctx::new(&tape).call(&model, &idx)?;
        nn::loss::cross_entropy(logits, &tgt)?.backward()?;
        opt.step()?;
        Ok(())
    })
}

/// W8: LSTM LM step, vocab 64, embedding 64, one LSTM layer of 256 (batch first),
/// Linear 256->64 on every step, sequence 64, batch 16, Adam(lr=1e-3).
fn w8(a: &Args) -> Result<Value> {
    let (v, t, b, e, hd) = (64, 64, 16, 64, 256);
    let mut rng = StdRng::seed_from_u64(0);
    let emb = Embedding::<f32>::new(v, e, &mut rng)?;
    let lstm: Lstm<f32> = RnnConfig {
        batch_first: true,
        ..RnnConfig::new(e, hd)
    }
    .lstm(&mut rng)?;
    let head = Linear::<f32>::new(hd, v, &mut rng)?;
    let params: Vec<_> = [emb.parameters(), lstm.parameters(), head.parameters()].concat();
    let mut opt = Optim::new(params, 1e-3, Adam::default())?;
    let idx: Vec<usize> = tokens(&mut rng, b, t, v).concat();
    let tgt: Vec<usize> = tokens(&mut rng, b, t, v).concat();
    let flops = (3 * b * t * (2 * 4 * hd * (e + hd) + 2 * hd * v)) as f64;
    timed_step(a, "W8", "lstm-lm-step", flops, || {
        opt.zero_grad();
        let tape = Tape::new();
        let cx = Ctx::new(&tape);
        let x = emb.lookup(&cx, &idx)?.reshape([b, t, e])?;
        let (h, _) = cx.call(&lstm, (x, None))?;
        let logits = cx.call(&head, h)?.reshape([b * t, v])?;
        nn::loss::cross_entropy(logits, &tgt)?.backward()?;
        opt.step()?;
        Ok(())
    })
}

/// The 100 two-moons points of W5 (`data/moons.csv`, copied from `../shared/bench`),
/// labels mapped to -1/+1.
fn moons() -> Result<(Vec<[f64; 2]>, Vec<f64>)> {
    let text = include_str!("../data/moons.csv");
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(f.len() == 3, "moons.csv: bad row {line:?}");
        xs.push([f[0], f[1]]);
        ys.push(2.0 * f[2] - 1.0);
    }
    Ok((xs, ys))
}

/// W5's MLP 2 -> 16 -> 16 -> 1 as micrograd builds it: one scalar Param per weight,
/// weights U(-1, 1), biases 0. `layers[l][j] = (weights of neuron j, its bias)`.
type ScalarMlp = Vec<Vec<(Vec<Param<f64>>, Param<f64>)>>;

/// One neuron bound into a tape: its weights and bias.
type Neuron<'t> = (Vec<Var<'t, f64>>, Var<'t, f64>);

fn scalar_mlp(rng: &mut StdRng) -> ScalarMlp {
    let sizes = [2, 16, 16, 1];
    sizes
        .windows(2)
        .map(|w| {
            (0..w[1])
                .map(|_| {
                    let ws = (0..w[0])
                        .map(|_| Param::new(Tensor::uniform([], -1.0, 1.0, rng).expect("a scalar")))
                        .collect();
                    (ws, Param::new(Tensor::scalar(0.0)))
                })
                .collect()
        })
        .collect()
}

/// W5, the micrograd demo: hinge loss + 1e-4 L2 on a graph of scalar nodes, full-batch SGD
/// for 100 steps with lr = 1 - 0.9 k/100. Returns (seconds, final loss, final accuracy).
fn w5_scalar(xs: &[[f64; 2]], ys: &[f64], steps: usize) -> Result<(f64, f64, f64)> {
    let mut rng = StdRng::seed_from_u64(1337);
    let model = scalar_mlp(&mut rng);
    let params: Vec<&Param<f64>> = model
        .iter()
        .flatten()
        .flat_map(|(ws, b)| ws.iter().chain([b]))
        .collect();
    let n_layers = model.len();
    let (mut loss_v, mut acc) = (0.0, 0.0);
    let t0 = Instant::now();
    for k in 0..steps {
        let tape = Tape::<f64>::new();
        let bound: Vec<Vec<Neuron<'_>>> = model
            .iter()
            .map(|layer| {
                layer
                    .iter()
                    .map(|(ws, b)| (ws.iter().map(|w| tape.param(w)).collect(), tape.param(b)))
                    .collect()
            })
            .collect();
        let mut data_loss = tape.constant(Tensor::scalar(0.0));
        let mut correct = 0;
        for (x, &y) in xs.iter().zip(ys) {
            let mut h: Vec<Var<'_, f64>> = x
                .iter()
                .map(|&v| tape.constant(Tensor::scalar(v)))
                .collect();
            for (l, layer) in bound.iter().enumerate() {
                h = layer
                    .iter()
                    .map(|(ws, b)| {
                        let act = ws.iter().zip(&h).fold(*b, |acc, (&w, &xi)| acc + w * xi);
                        if l + 1 < n_layers {
                            act.relu()
                        } else {
                            act
                        }
                    })
                    .collect();
            }
            let score = h[0];
            correct += usize::from((y > 0.0) == (score.item()? > 0.0));
            data_loss = data_loss + (score * -y + 1.0).relu();
        }
        let data_loss = data_loss * (1.0 / xs.len() as f64);
        let reg = bound
            .iter()
            .flatten()
            .flat_map(|(ws, b)| ws.iter().chain([b]))
            .fold(tape.constant(Tensor::scalar(0.0)), |acc, &p| acc + p * p);
        let loss = data_loss + reg * 1e-4;
        for p in &params {
            p.zero_grad();
        }
        loss.backward()?;
        let lr = 1.0 - 0.9 * k as f64 / 100.0;
        for p in &params {
            p.update(|v, g| match g {
                Some(g) => v.zip_mut_with(g, |w, g| *w -= lr * g),
                None => Ok(()),
            })?;
        }
        loss_v = loss.item()?;
        acc = correct as f64 / xs.len() as f64;
    }
    Ok((t0.elapsed().as_secs_f64(), loss_v, acc))
}

/// W5 with batched tensors: one matmul per layer.
fn w5_batched(xs: &[[f64; 2]], ys: &[f64], steps: usize) -> Result<(f64, f64, f64)> {
    let mut rng = StdRng::seed_from_u64(1337);
    let sizes = [2usize, 16, 16, 1];
    let params: Vec<(Param<f32>, Param<f32>)> = sizes
        .windows(2)
        .map(|w| -> Result<_> {
            Ok((
                Param::new(Tensor::uniform([w[0], w[1]], -1.0, 1.0, &mut rng)?),
                Param::new(Tensor::zeros([w[1]])?),
            ))
        })
        .collect::<Result<_>>()?;
    let x = Tensor::from_vec(
        xs.iter().flatten().map(|&v| v as f32).collect(),
        [xs.len(), 2],
    )?;
    let y = Tensor::from_vec(ys.iter().map(|&v| v as f32).collect(), [ys.len(), 1])?;
    let (mut loss_v, mut acc) = (0.0, 0.0);
    let t0 = Instant::now();
    for k in 0..steps {
        let tape = Tape::<f32>::new();
        let mut h = tape.constant(x.clone());
        for (l, (w, b)) in params.iter().enumerate() {
            h = h.matmul(tape.param(w))?.add(tape.param(b))?;
            if l + 1 < params.len() {
                h = h.relu();
            }
        }
        let yv = tape.constant(y.clone());
        let data_loss = h.mul(yv)?.rsub_scalar(1.0).relu().mean();
        let mut reg = tape.constant(Tensor::scalar(0.0));
        for (w, b) in &params {
            reg = reg + tape.param(w).square().sum() + tape.param(b).square().sum();
        }
        let loss = data_loss + reg * 1e-4;
        for (w, b) in &params {
            w.zero_grad();
            b.zero_grad();
        }
        loss.backward()?;
        let lr = 1.0 - 0.9 * k as f32 / 100.0;
        for p in params.iter().flat_map(|(w, b)| [w, b]) {
            p.update(|v, g| match g {
                Some(g) => v.zip_mut_with(g, |w, g| *w -= lr * g),
                None => Ok(()),
            })?;
        }
        loss_v = loss.item()? as f64;
        let s = h.value();
        acc = s
            .as_slice()
            .iter()
            .zip(ys)
            .filter(|(s, y)| (**s > 0.0) == (**y > 0.0))
            .count() as f64
            / ys.len() as f64;
    }
    Ok((t0.elapsed().as_secs_f64(), loss_v, acc))
}

/// W5 over `steps` SGD steps (100 as WORKLOADS.md says; fewer in smoke mode).
fn w5(steps: usize) -> Result<Vec<Value>> {
    let (xs, ys) = moons()?;
    let (t, loss, acc) = w5_scalar(&xs, &ys, steps)?;
    let (tb, lossb, accb) = w5_batched(&xs, &ys, steps)?;
    Ok(vec![
        json!({"workload": "W5", "name": "micrograd-moons", "total_s": t, "final_loss": loss,
               "final_accuracy": acc, "note": "scalar nodes, f64, as micrograd"}),
        json!({"workload": "W5", "name": "moons-batched", "total_s": tb, "final_loss": lossb,
               "final_accuracy": accb, "note": "tensor version, f32, one matmul per layer"}),
    ])
}

fn main() -> Result<()> {
    keep_freed_memory();
    let mut a = Args::parse();
    let is_smoke = smoke::enabled(a.smoke);
    if is_smoke {
        (a.iters, a.warmup, a.min_time, a.smoke) = (20, 0, 0.0, true);
    }
    anyhow::ensure!(
        a.iters >= 20,
        "WORKLOADS.md asks for at least 20 timed iterations"
    );
    if let Some(n) = a.threads {
        autograd::set_num_threads(n);
    }
    let meta = json!({"threads": autograd::num_threads(), "gradlab": env!("CARGO_PKG_VERSION"), "dtype": "float32", "mode": "tape", "smoke": is_smoke});
    for w in a.only.split(',').map(|s| s.trim().to_uppercase()) {
        let lines = match w.as_str() {
            "W3" => vec![w3(&a)?],
            "W4" => w4(&a)?,
            "W1" => vec![w1(&a)?],
            "W2" => vec![w2(&a)?],
            "W5" => w5(if is_smoke { 10 } else { 100 })?,
            "W6" => vec![w6(&a)?],
            "W7" => vec![w7(&a)?],
            "W8" => vec![w8(&a)?],
            "W9" => vec![w9(&a)?],
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
