//! Peak memory and time of one training step with and without activation checkpointing
//! (`nn::checkpoint`), for a 20-block MLP and for the char_lm transformer
//! (`examples/char_lm.rs`'s model at its default size, and deeper).
//!
//! Memory is counted by a global allocator that tracks the bytes live at once: the figure
//! is the peak of one forward + backward above what was live before it (weights, data and
//! gradient buffers of an earlier step included in the baseline), so it does not depend
//! on the machine's load. Times are medians of a few steps, and do.
//!
//! ```text
//! cargo run --release --example checkpoint_memory
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use autograd::{Tape, Tensor, Var};
use nn::{
    checkpoint, checkpoint_with, BoolMask, Ctx, Embedding, EncoderInput, FeedForwardActivation,
    LayerNorm, Linear, Module, Sequential, Tanh, TransformerEncoderLayer, TransformerLayerConfig,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes above the starting point during `step`, and its median time over `reps`.
fn measure(reps: usize, mut step: impl FnMut()) -> (usize, f64) {
    step(); // warm: gradient buffers exist from here on, as in training
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..reps {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        step();
        times.push(t.elapsed().as_secs_f64());
        peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
    }
    times.sort_by(f64::total_cmp);
    (peak, times[times.len() / 2])
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn report(name: &str, plain: (usize, f64), ck: (usize, f64)) {
    println!(
        "{name:<44} peak {:>8.2} MiB -> {:>8.2} MiB ({:>4.1}x less), step {:>7.1} ms -> {:>7.1} ms ({:+.0}%)",
        mib(plain.0),
        mib(ck.0),
        plain.0 as f64 / ck.0 as f64,
        plain.1 * 1e3,
        ck.1 * 1e3,
        (ck.1 / plain.1 - 1.0) * 100.0
    );
}

fn mlp_step(blocks: &[Rc<Sequential<f32>>], x: &Tensor<f32>, ck: bool) {
    let tape = Tape::new();
    let cx = Ctx::new(&tape);
    let mut h = tape.constant(x.clone());
    for b in blocks {
        h = if ck {
            checkpoint(&cx, b, h).unwrap()
        } else {
            cx.call(b, h).unwrap()
        };
    }
    h.square().mean().backward().unwrap();
}

/// char_lm's model: token + position embeddings, pre-norm GELU blocks with a causal mask,
/// a final LayerNorm and a linear head, cross-entropy on next characters.
struct Gpt {
    tok: Embedding<f32>,
    pos: Embedding<f32>,
    blocks: Vec<Rc<TransformerEncoderLayer<f32>>>,
    norm: LayerNorm<f32>,
    head: Linear<f32>,
}

const VOCAB: usize = 80;

impl Gpt {
    fn new(dim: usize, heads: usize, layers: usize, context: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(0);
        let block = TransformerLayerConfig {
            dim_feedforward: 4 * dim,
            dropout: 0.0,
            activation: FeedForwardActivation::Gelu,
            batch_first: true,
            norm_first: true,
            ..TransformerLayerConfig::new(dim, heads)
        };
        Gpt {
            tok: Embedding::new(VOCAB, dim, &mut rng).unwrap(),
            pos: Embedding::new(context, dim, &mut rng).unwrap(),
            blocks: (0..layers)
                .map(|_| Rc::new(block.encoder(&mut rng).unwrap()))
                .collect(),
            norm: LayerNorm::new(&[dim]).unwrap(),
            head: Linear::new(dim, VOCAB, &mut rng).unwrap(),
        }
    }

    fn step(&self, ids: &Tensor<f32>, targets: &[usize], ck: bool) {
        let tape = Tape::new();
        let cx = Ctx::new(&tape);
        let (n, len) = (ids.dims()[0], ids.dims()[1]);
        let positions: Vec<usize> = (0..len).collect();
        let mut x: Var<'_, f32> = cx
            .call(&self.tok, tape.constant(ids.clone()))
            .unwrap()
            .add(self.pos.lookup(&cx, &positions).unwrap())
            .unwrap();
        for b in &self.blocks {
            x = if ck {
                checkpoint_with(&cx, b, &[x], move |cx, b, xs| {
                    cx.call(
                        b,
                        EncoderInput::new(xs[0]).with_mask(BoolMask::causal(len, len)),
                    )
                })
                .unwrap()
            } else {
                cx.call(
                    b,
                    EncoderInput::new(x).with_mask(BoolMask::causal(len, len)),
                )
                .unwrap()
            };
        }
        let x = cx.call(&self.norm, x).unwrap();
        let logits = cx.call(&self.head, x).unwrap();
        let logits = logits.reshape([n * len, VOCAB]).unwrap();
        nn::loss::cross_entropy(logits, targets)
            .unwrap()
            .backward()
            .unwrap();
    }

    fn zero_grad(&self) {
        for b in &self.blocks {
            b.zero_grad();
        }
    }
}

fn main() {
    let smoke = std::env::var("GRADLAB_SMOKE").is_ok_and(|v| v == "1");
    // The allocator must see every buffer come and go: cached buffers would count as live
    // in the baseline and be reused unseen during the step.
    autograd::set_buffer_cache_limit(0);
    let reps = if smoke { 1 } else { 5 };
    let mut rng = StdRng::seed_from_u64(1);

    // 20 blocks of Linear(w → w) + tanh, a batch of b rows.
    let (w, b) = if smoke { (32, 16) } else { (512, 256) };
    let blocks: Vec<Rc<Sequential<f32>>> = (0..20)
        .map(|_| {
            Rc::new(
                Sequential::new()
                    .append(Linear::new(w, w, &mut rng).unwrap())
                    .append(Tanh),
            )
        })
        .collect();
    let x = Tensor::<f32>::randn([b, w], &mut rng).unwrap();
    let zero = |bs: &[Rc<Sequential<f32>>]| bs.iter().for_each(|m| m.zero_grad());
    let plain = measure(reps, || {
        zero(&blocks);
        mlp_step(&blocks, &x, false)
    });
    let ck = measure(reps, || {
        zero(&blocks);
        mlp_step(&blocks, &x, true)
    });
    report(&format!("20-block MLP, width {w}, batch {b}"), plain, ck);

    // char_lm's defaults: dim 64, 4 heads, context 64, batch 32; 2 blocks, then 8.
    let (dim, heads, context, batch) = if smoke {
        (16, 2, 8, 4)
    } else {
        (64, 4, 64, 32)
    };
    let ids: Vec<f32> = (0..batch * context)
        .map(|_| rng.random_range(0..VOCAB) as f32)
        .collect();
    let ids = Tensor::from_vec(ids, [batch, context]).unwrap();
    let targets: Vec<usize> = (0..batch * context)
        .map(|_| rng.random_range(0..VOCAB))
        .collect();
    for layers in [2, 8] {
        let m = Gpt::new(dim, heads, layers, context);
        let plain = measure(reps, || {
            m.zero_grad();
            m.step(&ids, &targets, false)
        });
        let ck = measure(reps, || {
            m.zero_grad();
            m.step(&ids, &targets, true)
        });
        report(
            &format!("char_lm transformer, {layers} blocks, dim {dim}"),
            plain,
            ck,
        );
    }
}
