//! The flagship: a character-level language model of the King James Bible
//! (`data/kjv.txt`), a decoder-only transformer by default or an LSTM.
//!
//! ```text
//! cargo run --release --example char_lm                        # transformer, ~3 min on 2 cores
//! cargo run --release --example char_lm -- --model lstm        # the LSTM instead
//! GRADLAB_SMOKE=1 cargo run --example char_lm                  # a few seconds
//! # the same model in PyTorch, on the same split and batches, then both curves in one figure:
//! /work/venv/bin/python scripts/char_lm_torch.py --run out/char_lm
//! cargo run --release --example char_lm -- --figure out/char_lm/torch_curve.json
//! ```
//!
//! The text is the first `--chars` characters of the corpus, cut into 4096-character
//! blocks of which a seeded 10 % is held out for validation ([`CharCorpus::split`]);
//! training windows of `--context` characters (non-overlapping) are shuffled by a seeded
//! [`DataLoader`]. The transformer is token + learned position embeddings, `--layers`
//! pre-norm blocks (`nn.TransformerEncoderLayer` with `norm_first`, GELU, causal
//! self-attention, no dropout), a final LayerNorm and a linear head; the LSTM is an
//! embedding, an `nn.LSTM` and a head. AdamW, cosine decay per step to 1/10 of `--lr`,
//! gradient norm clipped at 1.
//!
//! It writes to `out/char_lm/`:
//! - `metrics.jsonl`: loss and learning rate per step; train and validation loss (bits per
//!   character) and tokens/s per epoch;
//! - `split.json`: the text slice, vocabulary, blocks, every epoch's window order and the
//!   hyper-parameters, which `scripts/char_lm_torch.py` reads to train the same model on
//!   the same batches;
//! - `init.safetensors` and `model.safetensors`: the initial and trained weights under
//!   PyTorch's `state_dict` keys. The trained model is reloaded into a freshly built one,
//!   whose validation loss must equal the trained model's bit for bit.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/smoke.rs"]
mod smoke;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use autograd::{Float, Tape, Tensor, Var};
use clap::{Parser, ValueEnum};
use gradlab::data::{
    kjv_path, BatchRng, CharCorpus, CharVocab, DataLoader, Dataset, LoaderOptions, TextSplit,
    TextWindows,
};
use gradlab::metrics::{read_metrics, At, Axis, MetricsLogger};
use gradlab::plot::{line_chart, Series};
use indicatif::{ProgressBar, ProgressStyle};
use nn::{
    BoolMask, Ctx, Embedding, EncoderInput, FeedForwardActivation, Forward, LayerNorm, Linear,
    Lstm, Module, ModuleList, RnnConfig, TransformerEncoderLayer, TransformerLayerConfig,
};
use optim::{AdamW, CosineAnnealingLr, LrScheduler, Optim, Optimizer};
use rand::{Rng, SeedableRng};

const DEFAULT_OUT: &str = "out/char_lm";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Arch {
    /// Decoder-only transformer.
    Transformer,
    /// One or more LSTM layers.
    Lstm,
}

#[derive(Parser, Debug)]
#[command(about = "Train a character-level language model on the King James Bible")]
struct Args {
    /// The architecture.
    #[arg(long, value_enum, default_value_t = Arch::Transformer)]
    model: Arch,
    /// Characters of data/kjv.txt used, from its start.
    #[arg(long, default_value_t = 250_000)]
    chars: usize,
    /// Characters of context per window.
    #[arg(long, default_value_t = 64)]
    context: usize,
    /// Passes over the training windows.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Model width (embedding size; the LSTM's hidden size).
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Transformer blocks, or LSTM layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// AdamW's peak learning rate (cosine-decayed per step to a tenth of it).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Seed of the split, the initialisation, the batch order and the sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Characters sampled at the end.
    #[arg(long, default_value_t = 300)]
    sample: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// The text the sample continues.
    #[arg(long, default_value = "And God said")]
    prompt: String,
    /// The run's folder.
    #[arg(long, default_value = DEFAULT_OUT)]
    out: String,
    /// Only draw `docs/char_lm.svg` from this run's metrics and the PyTorch script's
    /// curve (the JSON it wrote), then exit.
    #[arg(long)]
    figure: Option<PathBuf>,
    /// Where `--figure` writes.
    #[arg(long, default_value = "docs/char_lm.svg")]
    figure_out: PathBuf,
    /// Checkpoint each transformer block (`nn::checkpoint_with`): its activations are
    /// recomputed in backward instead of kept, for less memory at more compute; the
    /// gradients, and so the run, are bit for bit the same.
    #[arg(long)]
    checkpoint: bool,
    /// Smoke mode (also `GRADLAB_SMOKE=1`): a tiny slice and model, output under out/smoke/.
    #[arg(long)]
    smoke: bool,
}

/// Token + learned position embeddings, pre-norm transformer blocks with causal
/// self-attention, a final LayerNorm and a linear head: PyTorch's
/// `tok`/`pos` `nn.Embedding`, `blocks` `nn.ModuleList` of `nn.TransformerEncoderLayer`,
/// `norm` `nn.LayerNorm` and `head` `nn.Linear`, key for key.
#[derive(Module)]
struct Gpt<T: Float> {
    tok: Embedding<T>,
    pos: Embedding<T>,
    /// Shared handles (`Rc`), which is what a checkpoint keeps of a block to re-run it.
    blocks: ModuleList<Rc<TransformerEncoderLayer<T>>>,
    norm: LayerNorm<T>,
    head: Linear<T>,
    #[module(skip)]
    checkpoint: bool,
}

impl<T: Float> Gpt<T> {
    fn new(vocab: usize, a: &Args, rng: &mut impl Rng) -> nn::Result<Self> {
        let block = TransformerLayerConfig {
            dim_feedforward: 4 * a.dim,
            dropout: 0.0,
            activation: FeedForwardActivation::Gelu,
            batch_first: true,
            norm_first: true,
            ..TransformerLayerConfig::new(a.dim, a.heads)
        };
        let tok = Embedding::new(vocab, a.dim, rng)?;
        let pos = Embedding::new(a.context, a.dim, rng)?;
        let mut blocks = ModuleList::new();
        for _ in 0..a.layers {
            blocks.push(Rc::new(block.encoder(rng)?));
        }
        Ok(Gpt {
            tok,
            pos,
            blocks,
            norm: LayerNorm::new(&[a.dim])?,
            head: Linear::new(a.dim, vocab, rng)?,
            checkpoint: a.checkpoint,
        })
    }
}

/// Token ids `[N, L]` (as floats, as `nn::Embedding` takes them) → logits `[N, L, vocab]`.
impl<T: Float> Forward<T> for Gpt<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;

    fn forward<'t>(&self, cx: &Ctx<'t, T>, ids: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let len = ids.dims()[1];
        let positions: Vec<usize> = (0..len).collect();
        let mut x = cx
            .call(&self.tok, ids)?
            .add(self.pos.lookup(cx, &positions)?)?;
        for block in self.blocks.iter() {
            x = if self.checkpoint {
                nn::checkpoint_with(cx, block, &[x], move |cx, block, xs| {
                    cx.call(
                        block,
                        EncoderInput::new(xs[0]).with_mask(BoolMask::causal(len, len)),
                    )
                })?
            } else {
                cx.call(
                    block,
                    EncoderInput::new(x).with_mask(BoolMask::causal(len, len)),
                )?
            };
        }
        let x = cx.call(&self.norm, x)?;
        cx.call(&self.head, x)
    }
}

/// An embedding, a (batch-first) `nn.LSTM` and a linear head.
#[derive(Module)]
struct LstmLm<T: Float> {
    emb: Embedding<T>,
    lstm: Lstm<T>,
    head: Linear<T>,
}

impl<T: Float> LstmLm<T> {
    fn new(vocab: usize, a: &Args, rng: &mut impl Rng) -> nn::Result<Self> {
        let lstm = RnnConfig {
            num_layers: a.layers,
            batch_first: true,
            ..RnnConfig::new(a.dim, a.dim)
        };
        Ok(LstmLm {
            emb: Embedding::new(vocab, a.dim, rng)?,
            lstm: lstm.lstm(rng)?,
            head: Linear::new(a.dim, vocab, rng)?,
        })
    }
}

impl<T: Float> Forward<T> for LstmLm<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;

    fn forward<'t>(&self, cx: &Ctx<'t, T>, ids: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let x = cx.call(&self.emb, ids)?;
        let (h, _) = cx.call(&self.lstm, (x, None))?;
        cx.call(&self.head, h)
    }
}

type Model = Box<dyn nn::Layer<f32>>;

fn build_model(vocab: usize, a: &Args, seed: u64) -> Result<Model> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok(match a.model {
        Arch::Transformer => Box::new(Gpt::<f32>::new(vocab, a, &mut rng)?),
        Arch::Lstm => Box::new(LstmLm::<f32>::new(vocab, a, &mut rng)?),
    })
}

/// Token ids as the float tensor `[n, len]` the embedding takes.
fn ids_tensor(ids: &[usize], n: usize, len: usize) -> Result<Tensor<f32>> {
    Ok(Tensor::from_vec(
        ids.iter().map(|&i| i as f32).collect(),
        [n, len],
    )?)
}

/// Mean next-character cross-entropy (nats) of `ids` → `targets`, `[n, len]` each.
fn batch_loss<'t>(
    model: &Model,
    tape: &'t Tape<f32>,
    ids: &[usize],
    targets: &[usize],
    n: usize,
    len: usize,
) -> Result<Var<'t, f32>> {
    let logits = Ctx::new(tape).call(model, tape.constant(ids_tensor(ids, n, len)?))?;
    let vocab = logits.dims()[2];
    Ok(nn::loss::cross_entropy(
        logits.reshape([n * len, vocab])?,
        targets,
    )?)
}

/// Mean validation cross-entropy in nats per character over every validation window
/// (in batches, weighted by their size), the model in eval mode.
fn evaluate(model: &Model, valid: &TextWindows, batch: usize) -> Result<f64> {
    model.eval();
    let len = valid.context();
    let (mut sum, mut count) = (0.0f64, 0usize);
    let idx: Vec<usize> = (0..valid.len()).collect();
    for chunk in idx.chunks(batch) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for &i in chunk {
            let (a, b) = valid.get(i)?;
            x.extend(a);
            y.extend(b);
        }
        let tape = Tape::new();
        let loss = tape.no_grad(|| batch_loss(model, &tape, &x, &y, chunk.len(), len))?;
        sum += loss.item()? as f64 * (chunk.len() * len) as f64;
        count += chunk.len() * len;
    }
    model.train();
    Ok(sum / count.max(1) as f64)
}

/// `n` characters continuing `prompt`, drawn at `temperature` from a seeded stream; the
/// model sees at most its last `context` characters.
fn sample(
    model: &Model,
    vocab: &CharVocab,
    prompt: &str,
    n: usize,
    context: usize,
    temperature: f64,
    seed: u64,
) -> Result<String> {
    model.eval();
    let mut ids = vocab
        .encode(prompt)
        .context("the prompt has a character outside the text's vocabulary")?;
    let mut rng = BatchRng::new(seed);
    for _ in 0..n {
        let window = &ids[ids.len().saturating_sub(context)..];
        let tape = Tape::new();
        let logits = tape.no_grad(|| -> Result<_> {
            let x = tape.constant(ids_tensor(window, 1, window.len())?);
            Ok(Ctx::new(&tape).call(model, x)?.value())
        })?;
        let v = vocab.len();
        let last = &logits.as_slice()[(window.len() - 1) * v..];
        let max = last.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
        let weights: Vec<f64> = last
            .iter()
            .map(|&x| ((x as f64 - max) / temperature).exp())
            .collect();
        let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
        let mut pick = v - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                pick = i;
                break;
            }
            u -= w;
        }
        ids.push(pick);
    }
    model.train();
    Ok(vocab.decode(&ids)?)
}

/// `text`'s unigram entropy in bits per character: the loss of the best model that ignores
/// context, the bar a language model must clear.
fn unigram_bits(tokens: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![0usize; vocab];
    for &t in tokens {
        counts[t as usize] += 1;
    }
    let n = tokens.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// What `scripts/char_lm_torch.py` needs to train the same model on the same batches.
fn write_split(
    path: &Path,
    args: &Args,
    corpus: &CharCorpus,
    train: &TextWindows,
    valid: &TextWindows,
    orders: &[Vec<usize>],
) -> Result<()> {
    let blocks = |w: &TextWindows| -> Vec<[usize; 2]> {
        w.blocks().iter().map(|r| [r.start, r.end]).collect()
    };
    let model = match args.model {
        Arch::Transformer => "transformer",
        Arch::Lstm => "lstm",
    };
    let json = serde_json::json!({
        "corpus": "data/kjv.txt",
        "chars": corpus.len(),
        "vocab": corpus.vocab().chars().iter().collect::<String>(),
        "context": args.context,
        "stride": args.context,
        "train_blocks": blocks(train),
        "valid_blocks": blocks(valid),
        "epoch_orders": orders,
        "model": model,
        "dim": args.dim,
        "layers": args.layers,
        "heads": args.heads,
        "batch": args.batch,
        "epochs": args.epochs,
        "lr": args.lr,
        "eta_min": args.lr / 10.0,
        "weight_decay": args.weight_decay,
        "clip_grad_norm": 1.0,
        "seed": args.seed,
    });
    std::fs::write(path, serde_json::to_string(&json)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `--figure`: both validation curves (bits per character by epoch) in one SVG.
fn figure(args: &Args, out: &Path, torch_json: &Path) -> Result<()> {
    let metrics = read_metrics(out.join("metrics.jsonl"))?;
    let ours = metrics.series("val_bits", Axis::Epoch);
    if ours.points.is_empty() {
        bail!("{} has no val_bits: train first", out.display());
    }
    let text = std::fs::read_to_string(torch_json)
        .with_context(|| format!("reading {}", torch_json.display()))?;
    let torch: serde_json::Value = serde_json::from_str(&text)?;
    let pts = |key: &str| -> Result<Vec<(f64, f64)>> {
        torch[key]
            .as_array()
            .with_context(|| format!("{}: no {key:?} list", torch_json.display()))?
            .iter()
            .map(|p| {
                Ok((
                    p[0].as_f64().context("epoch")?,
                    p[1].as_f64().context("bits")?,
                ))
            })
            .collect()
    };
    let series = [
        Series::new("gradlab", ours.points.clone()),
        Series::new("PyTorch", pts("val_bits")?),
    ];
    line_chart(
        &args.figure_out,
        "char-level LM on KJV: validation loss",
        ("epoch", "bits per character"),
        &series,
        None,
    )?;
    println!("wrote {}", args.figure_out.display());
    Ok(())
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    let smoke = smoke::enabled(args.smoke);
    if smoke {
        (args.chars, args.context, args.epochs) = (12_000, 16, 1);
        (args.dim, args.layers, args.heads, args.sample) = (16, 1, 2, 40);
    }
    let out = PathBuf::from(smoke::out_dir(&args.out, DEFAULT_OUT, "char_lm", smoke));
    if let Some(torch) = &args.figure {
        return figure(&args, &out, torch);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let text = std::fs::read_to_string(kjv_path()).context("reading data/kjv.txt")?;
    let end = text
        .char_indices()
        .nth(args.chars)
        .map_or(text.len(), |(i, _)| i);
    let corpus = CharCorpus::from_text(&text[..end]);
    let split = TextSplit {
        seed: args.seed,
        ..TextSplit::new(args.context)
    };
    let (train, valid) = corpus.split(&split)?;
    let vocab = corpus.vocab().clone();
    let unigram = unigram_bits(corpus.tokens(), vocab.len());
    let (n_train, n_valid) = (train.len(), valid.len());
    let opts = LoaderOptions {
        seed: args.seed,
        workers: 1,
        ..LoaderOptions::new(args.batch)
    };
    let mut loader = DataLoader::new(train.clone(), opts, TextWindows::collate)?;
    let orders: Vec<Vec<usize>> = (0..args.epochs).map(|e| loader.order(e)).collect();
    write_split(
        &out.join("split.json"),
        &args,
        &corpus,
        &train,
        &valid,
        &orders,
    )?;

    let model = build_model(vocab.len(), &args, args.seed)?;
    model.train();
    nn::state::save(&model, out.join("init.safetensors"))?;
    let params = model.parameters();
    let n_params: usize = params.iter().map(|p| p.value().numel()).sum();
    let mut opt = Optim::new(
        params.clone(),
        args.lr,
        AdamW {
            weight_decay: args.weight_decay,
            ..AdamW::default()
        },
    )?;
    let per_epoch = loader.batches_per_epoch() as u64;
    let total = (args.epochs * per_epoch).max(1);
    let mut sched = CosineAnnealingLr::new(&mut opt, total, args.lr / 10.0)?;
    let mut log = MetricsLogger::create(&out)?;
    println!(
        "char_lm: {:?}, {} parameters; first {} characters of KJV ({} distinct, unigram entropy \
         {unigram:.3} bits/char), {n_train} train / {n_valid} validation windows of {}; \
         batch {}, {} epochs, AdamW lr {}{}",
        args.model,
        n_params,
        corpus.len(),
        vocab.len(),
        args.context,
        args.batch,
        args.epochs,
        args.lr,
        if smoke { " (smoke mode)" } else { "" },
    );

    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30.cyan/blue} step {pos:>5}/{len} {msg}",
    )?);
    let mut step = 0u64;
    let started = Instant::now();
    let mut curve = Vec::new();
    for epoch in 1..=args.epochs {
        let (mut loss_sum, mut tokens) = (0.0f64, 0usize);
        let epoch_start = Instant::now();
        for batch in loader.epoch() {
            let b = batch?;
            let tape = Tape::new();
            let loss = batch_loss(&model, &tape, &b.inputs, &b.targets, b.batch, b.len)?;
            opt.zero_grad();
            loss.backward()?;
            let grad_norm = optim::clip_grad_norm(&params, 1.0, 2.0)?;
            let lr = opt.lr();
            opt.step()?;
            sched.step(&mut opt)?;
            step += 1;
            let l = loss.item()? as f64;
            loss_sum += l * (b.batch * b.len) as f64;
            tokens += b.batch * b.len;
            log.log(
                At::step(step),
                &[("loss", l), ("grad_norm", grad_norm), ("lr", lr)],
            )?;
            let rate = tokens as f64 / epoch_start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "epoch {epoch}: loss {:.3} bits/char, {rate:.0} tokens/s",
                l / std::f64::consts::LN_2
            ));
            bar.inc(1);
        }
        let rate = tokens as f64 / epoch_start.elapsed().as_secs_f64();
        let train_bits = loss_sum / tokens.max(1) as f64 / std::f64::consts::LN_2;
        let val_bits = evaluate(&model, &valid, args.batch)? / std::f64::consts::LN_2;
        curve.push(val_bits);
        log.log(
            At::epoch(epoch).at_step(step),
            &[
                ("train_bits", train_bits),
                ("val_bits", val_bits),
                ("tokens_per_s", rate),
            ],
        )?;
        log.sync()?;
        // `suspend`, not `println`: a hidden bar (output not a terminal) drops its lines.
        bar.suspend(|| {
            println!(
                "epoch {epoch}: train {train_bits:.3} bits/char, validation {val_bits:.3} \
                 bits/char, {rate:.0} tokens/s"
            )
        });
    }
    bar.finish_and_clear();
    println!(
        "trained {step} steps in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Save, reload into a model built from another seed, and check the two agree.
    let model_path = out.join("model.safetensors");
    nn::state::save(&model, &model_path)?;
    let fresh = build_model(vocab.len(), &args, args.seed.wrapping_add(1))?;
    nn::state::load(&fresh, &model_path)?;
    let before = evaluate(&model, &valid, args.batch)?;
    let after = evaluate(&fresh, &valid, args.batch)?;
    if before.to_bits() != after.to_bits() {
        bail!("the reloaded model's validation loss {after} differs from the trained {before}");
    }
    println!(
        "saved {} and reloaded it: validation loss {:.6} bits/char, identical",
        model_path.display(),
        before / std::f64::consts::LN_2
    );

    let text = sample(
        &fresh,
        &vocab,
        &args.prompt,
        args.sample,
        args.context,
        args.temperature,
        args.seed,
    )?;
    println!(
        "sample (seed {}, temperature {}):\n{text}",
        args.seed, args.temperature
    );
    let last = curve.last().copied().unwrap_or(f64::NAN);
    println!(
        "validation: {last:.3} bits/char after {} epochs (unigram entropy {unigram:.3})",
        args.epochs
    );
    Ok(())
}
