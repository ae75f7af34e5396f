//! The main job: a digit classifier on the real 8×8 digits data (`data/digits.csv`), that
//! leaves a record of itself in `out/digits/`.
//!
//! ```text
//! cargo run --release --example digits
//! cargo run --release --example digits -- --epochs 60 --patience 8   # early stopping
//! cargo run --release --example digits -- --stop-after 100           # simulate a crash...
//! cargo run --release --example digits -- --resume                   # ...and resume it
//! GRADLAB_SMOKE=1 cargo run --example digits                         # a few seconds
//! ```
//!
//! An MLP 64 → hidden → hidden → 10 (ReLU, dropout after the first layer) with softmax
//! cross-entropy, Adam and a cosine learning-rate schedule, on a seeded 1500/297 split,
//! batched by a [`DataLoader`] with a background worker. It writes
//!
//! - `metrics.jsonl`: loss, gradient norm and learning rate per step; train and held-out
//!   loss and accuracy, and per-layer diagnostics ([`nn::diagnose`]) per epoch — one line
//!   per record, on disk as soon as it is logged;
//! - `checkpoint.safetensors`: the whole train state ([`TrainState`]: weights, Adam's
//!   moments, the schedule, dropout's random stream, the loader's position, the loop's
//!   counters) every `--checkpoint-every` steps and at every epoch's end; `--resume`
//!   continues from it and ends with the weights the uninterrupted run would have had,
//!   bit for bit;
//! - `best.safetensors` (the epoch with the lowest held-out loss) and `model.safetensors`
//!   (the final model: the best epoch's weights with `--patience`, else the last);
//! - `report.html`: configuration, model summary, curves, per-layer diagnostics over
//!   training and the confusion matrix, in one self-contained file.

// glibc's allocator hands large freed buffers back to the OS and page-faults them in again
// on the next step; mimalloc keeps them (measured 7x on backward over 10^6 elements).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/smoke.rs"]
mod smoke;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use autograd::{Tape, Tensor};
use clap::Parser;
use gradlab::checkpoint::TrainState;
use gradlab::data::{digits_path, DataLoader, Digits, LoaderOptions};
use gradlab::metrics::{read_metrics, At, Axis, MetricsLogger};
use gradlab::report::{Confusion, LayerStats, Report};
use indicatif::{ProgressBar, ProgressStyle};
use nn::{Ctx, Dropout, Linear, Module, Relu, Sequential};
use optim::{Adam, CosineAnnealingLr, LrScheduler, Optim, Optimizer};
use rand::{rngs::StdRng, SeedableRng};

const DEFAULT_OUT: &str = "out/digits";

#[derive(Parser, Debug)]
#[command(about = "Train a digit classifier on data/digits.csv and write a report")]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 40)]
    epochs: u64,
    /// Adam's initial learning rate (cosine-annealed to 1/20 of it over the epochs).
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Hidden units per hidden layer.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Dropout probability after the first hidden layer.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Seed of the split, the initialisation, dropout and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The run's folder.
    #[arg(long, default_value = DEFAULT_OUT)]
    out: String,
    /// Early stopping: stop after this many epochs without a lower held-out loss, and
    /// keep the best epoch's weights.
    #[arg(long)]
    patience: Option<u64>,
    /// Continue the run in `--out` from its last checkpoint (same settings required).
    #[arg(long)]
    resume: bool,
    /// Also checkpoint every this many steps (0: at epoch ends only).
    #[arg(long, default_value_t = 25)]
    checkpoint_every: u64,
    /// Stop (after checkpointing) once this step is done, as a crash would; for trying
    /// `--resume`.
    #[arg(long)]
    stop_after: Option<u64>,
    /// Background threads making batches (0: in the training thread).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Smoke mode (also `GRADLAB_SMOKE=1`): 3 epochs, output under out/smoke/.
    #[arg(long)]
    smoke: bool,
}

impl Args {
    /// The settings a resumed run must share with the run it continues.
    fn identity(&self) -> Vec<(&'static str, String)> {
        vec![
            ("epochs", self.epochs.to_string()),
            ("lr", format!("{:?}", self.lr)),
            ("batch", self.batch.to_string()),
            ("hidden", self.hidden.to_string()),
            ("dropout", format!("{:?}", self.dropout)),
            ("seed", self.seed.to_string()),
            ("patience", format!("{:?}", self.patience)),
        ]
    }

    /// A stable fingerprint of [`identity`](Args::identity) (FNV-1a), kept in checkpoints.
    fn fingerprint(&self) -> u64 {
        let text: String = self
            .identity()
            .iter()
            .map(|(k, v)| format!("{k}={v};"))
            .collect();
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    }
}

fn build_model(args: &Args, seed: u64) -> Result<Sequential<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(Sequential::new()
        .append(Linear::<f32>::new(64, args.hidden, &mut rng)?)
        .append(Relu)
        .append(Dropout::new(args.dropout, seed.wrapping_add(1))?)
        .append(Linear::new(args.hidden, args.hidden, &mut rng)?)
        .append(Relu)
        .append(Linear::new(args.hidden, 10, &mut rng)?))
}

/// The row-wise argmax of `[n, classes]` logits.
fn predictions(logits: &Tensor<f32>) -> Result<Vec<usize>> {
    let classes = logits.dims()[1];
    let (_, argmax) = logits.extreme_axes(&[1], false, true)?;
    Ok(argmax
        .iter()
        .enumerate()
        .map(|(n, &flat)| flat - n * classes)
        .collect())
}

/// Held-out loss, accuracy and predictions (the model in eval mode).
fn evaluate(
    model: &Sequential<f32>,
    x: &Tensor<f32>,
    y: &[usize],
) -> Result<(f64, f64, Vec<usize>)> {
    let tape = Tape::new();
    let (loss, logits) = tape.no_grad(|| -> Result<_> {
        let logits = Ctx::new(&tape).call(model, tape.constant(x.clone()))?;
        let loss = nn::loss::cross_entropy(logits, y)?.item()? as f64;
        Ok((loss, logits.value()))
    })?;
    let pred = predictions(&logits)?;
    let right = pred.iter().zip(y).filter(|(p, t)| p == t).count();
    Ok((loss, right as f64 / y.len() as f64, pred))
}

/// ‖∇‖₂ over every parameter.
fn grad_norm(model: &Sequential<f32>) -> f64 {
    model
        .parameters()
        .iter()
        .filter_map(|p| p.grad())
        .flat_map(|g| g.to_vec())
        .map(|v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// FNV-1a over every parameter's bits: equal for two runs exactly when their weights are
/// (up to a hash collision). The model file cannot serve: its metadata order varies.
fn fingerprint(model: &Sequential<f32>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in model.parameters() {
        for v in p.value().as_slice() {
            for b in v.to_bits().to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    h
}

/// The loop's own state, saved in every checkpoint next to the train state.
#[derive(Debug)]
struct Progress {
    step: u64,
    /// Sums over the current epoch's batches so far.
    loss_sum: f64,
    seen: u64,
    correct: u64,
    best_loss: f64,
    best_epoch: u64,
    bad_epochs: u64,
    stopped_early: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            step: 0,
            loss_sum: 0.0,
            seen: 0,
            correct: 0,
            best_loss: f64::INFINITY,
            best_epoch: 0,
            bad_epochs: 0,
            stopped_early: false,
        }
    }

    fn save_into(&self, s: &mut TrainState, fingerprint: u64) {
        s.set_u64("args", fingerprint);
        s.set_u64("step", self.step);
        s.set_f64("epoch_loss_sum", self.loss_sum);
        s.set_u64("epoch_seen", self.seen);
        s.set_u64("epoch_correct", self.correct);
        s.set_f64("best_loss", self.best_loss);
        s.set_u64("best_epoch", self.best_epoch);
        s.set_u64("bad_epochs", self.bad_epochs);
        s.set_u64("stopped_early", self.stopped_early as u64);
    }

    fn load(s: &TrainState) -> Result<Self> {
        Ok(Progress {
            step: s.get_u64("step")?,
            loss_sum: s.get_f64("epoch_loss_sum")?,
            seen: s.get_u64("epoch_seen")?,
            correct: s.get_u64("epoch_correct")?,
            best_loss: s.get_f64("best_loss")?,
            best_epoch: s.get_u64("best_epoch")?,
            bad_epochs: s.get_u64("bad_epochs")?,
            stopped_early: s.get_u64("stopped_early")? != 0,
        })
    }
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    let smoke = smoke::enabled(args.smoke);
    if smoke {
        args.epochs = args.epochs.min(3);
    }
    let out = PathBuf::from(smoke::out_dir(&args.out, DEFAULT_OUT, "digits", smoke));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let ckpt_path = out.join("checkpoint.safetensors");
    let best_path = out.join("best.safetensors");
    let model_path = out.join("model.safetensors");
    let report_path = out.join("report.html");

    let data = Digits::load(digits_path())?;
    let (train, held_out) = data.split(1500, args.seed);
    let all: Vec<usize> = (0..held_out.len()).collect();
    let (x_val, y_val) = held_out.batch::<f32>(&all);
    let n_train = train.len();
    let opts = LoaderOptions {
        seed: args.seed,
        workers: args.workers,
        ..LoaderOptions::new(args.batch)
    };
    let mut loader = DataLoader::new(train, opts, Digits::collate::<f32>)?;

    let model = build_model(&args, args.seed)?;
    model.train();
    let mut opt = Optim::new(model.parameters(), args.lr, Adam::default())?;
    let mut sched = CosineAnnealingLr::new(&mut opt, args.epochs.max(1), args.lr / 20.0)?;

    let mut p = Progress::new();
    let mut log = if args.resume {
        let state = TrainState::load(&ckpt_path)
            .with_context(|| format!("--resume: reading {}", ckpt_path.display()))?;
        if state.get_u64("args")? != args.fingerprint() {
            bail!(
                "--resume: {} was written with other settings; resume with the same \
                 --epochs/--lr/--batch/--hidden/--dropout/--seed/--patience, or start a new run",
                ckpt_path.display()
            );
        }
        state.restore(&model, &mut opt, Some(&mut sched), &mut loader)?;
        p = Progress::load(&state)?;
        println!(
            "resumed {} at step {} (epoch {}, batch {})",
            ckpt_path.display(),
            p.step,
            loader.state().epoch + 1,
            loader.state().batch
        );
        MetricsLogger::resume(&out, p.step)?
    } else {
        MetricsLogger::create(&out)?
    };
    let summary = nn::summary(&model, &Tensor::zeros([1, 64])?)?;
    println!(
        "digits: {} train / {} held out, MLP 64-{h}-{h}-10 ({} parameters), Adam lr {}, {} epochs{}",
        n_train,
        held_out.len(),
        summary.total_params,
        args.lr,
        args.epochs,
        if smoke { " (smoke mode)" } else { "" },
        h = args.hidden,
    );

    let checkpoint = |model: &Sequential<f32>,
                      opt: &Optim<Adam, f32>,
                      sched: &CosineAnnealingLr,
                      position: gradlab::data::LoaderState,
                      p: &Progress|
     -> Result<()> {
        let mut state = TrainState::capture(model, opt, Some(sched), position)?;
        p.save_into(&mut state, args.fingerprint());
        state.save(&ckpt_path)?;
        Ok(())
    };

    let per_epoch = loader.batches_per_epoch() as u64;
    let bar = ProgressBar::new(args.epochs * per_epoch);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30.cyan/blue} step {pos:>5}/{len} {msg}",
    )?);
    bar.set_position(p.step);
    let mut stop_now = false;
    while !p.stopped_early && !stop_now && loader.state().epoch < args.epochs {
        let epoch = loader.state().epoch + 1; // 1-based: "after epoch 1"
        let lr = opt.lr();
        let mut batches = loader.epoch();
        while let Some(batch) = batches.next() {
            let batch = batch?;
            let n = batch.len();
            let tape = Tape::new();
            let logits = Ctx::new(&tape).call(&model, tape.constant(batch.inputs))?;
            let loss = nn::loss::cross_entropy(logits, &batch.labels)?;
            opt.zero_grad();
            loss.backward()?;
            let g = grad_norm(&model);
            opt.step()?;
            p.step += 1;
            let l = loss.item()? as f64;
            let pred = predictions(&logits.value())?;
            p.loss_sum += l * n as f64;
            p.seen += n as u64;
            p.correct += pred
                .iter()
                .zip(&batch.labels)
                .filter(|(a, b)| a == b)
                .count() as u64;
            log.log(
                At::step(p.step),
                &[("loss", l), ("grad_norm", g), ("lr", lr)],
            )?;
            bar.inc(1);
            stop_now = args.stop_after == Some(p.step);
            // After an epoch's last batch the epoch's end comes next and checkpoints
            // itself: a checkpoint here would skip the evaluation and the schedule's step.
            let epoch_done = batches.state().batch == 0;
            let due = args.checkpoint_every > 0 && p.step.is_multiple_of(args.checkpoint_every);
            if !epoch_done && (due || stop_now) {
                checkpoint(&model, &opt, &sched, batches.state(), &p)?;
            }
            if stop_now {
                break;
            }
        }
        drop(batches);
        if loader.state().batch != 0 {
            break; // stopped mid-epoch
        }

        // The epoch's end: schedule, held-out evaluation, diagnostics, early stopping.
        sched.step(&mut opt)?;
        model.eval();
        let (val_loss, val_acc, _) = evaluate(&model, &x_val, &y_val)?;
        let diag = nn::diagnose(&model, &x_val, |y| nn::loss::cross_entropy(y, &y_val))?;
        model.train();
        let train_loss = p.loss_sum / p.seen.max(1) as f64;
        let train_acc = p.correct as f64 / p.seen.max(1) as f64;
        let layer_scalars: Vec<(String, f64)> = LayerStats::from_diagnostics(epoch, &diag)
            .iter()
            .flat_map(LayerStats::to_metrics)
            .collect();
        let mut scalars = vec![
            ("train_loss", train_loss),
            ("train_acc", train_acc),
            ("val_loss", val_loss),
            ("val_acc", val_acc),
            ("lr", lr),
        ];
        scalars.extend(layer_scalars.iter().map(|(k, v)| (k.as_str(), *v)));
        log.log(At::epoch(epoch).at_step(p.step), &scalars)?;
        bar.set_message(format!(
            "epoch {epoch}: train loss {train_loss:.4}, held-out loss {val_loss:.4}, accuracy {:.2}%",
            100.0 * val_acc
        ));
        if val_loss < p.best_loss {
            p.best_loss = val_loss;
            p.best_epoch = epoch;
            p.bad_epochs = 0;
            nn::state::save(&model, &best_path)?;
        } else {
            p.bad_epochs += 1;
            if args.patience.is_some_and(|n| p.bad_epochs >= n) {
                p.stopped_early = true;
            }
        }
        (p.loss_sum, p.seen, p.correct) = (0.0, 0, 0);
        checkpoint(&model, &opt, &sched, loader.state(), &p)?;
        log.sync()?;
    }
    bar.finish();
    if stop_now {
        println!(
            "stopped after step {} (--stop-after); checkpoint in {}; continue with --resume",
            p.step,
            ckpt_path.display()
        );
        return Ok(());
    }
    if p.stopped_early {
        println!(
            "early stopping: no lower held-out loss for {} epochs; best was epoch {}",
            p.bad_epochs, p.best_epoch
        );
    }
    if args.patience.is_some() && p.best_epoch > 0 {
        nn::state::load(&model, &best_path)?;
    }

    model.eval();
    let (val_loss, acc, pred) = evaluate(&model, &x_val, &y_val)?;
    println!(
        "held-out accuracy: {:.2}% ({} of {}), loss {val_loss:.4}",
        100.0 * acc,
        pred.iter().zip(&y_val).filter(|(a, b)| a == b).count(),
        y_val.len()
    );
    println!("weights fingerprint: {:016x}", fingerprint(&model));
    nn::state::save(&model, &model_path)?;
    let reloaded = build_model(&args, 99)?;
    nn::state::load(&reloaded, &model_path)?;
    reloaded.eval();
    let (_, again, _) = evaluate(&reloaded, &x_val, &y_val)?;
    anyhow::ensure!(again == acc, "reloaded model scores {again}, trained {acc}");

    write_report(
        &args,
        &out,
        &report_path,
        &summary,
        &p,
        n_train,
        &y_val,
        &pred,
    )?;
    println!("\n{summary}");
    for (what, path) in [
        ("metrics", out.join(gradlab::metrics::METRICS_FILE)),
        ("report", report_path.clone()),
        ("model", model_path.clone()),
        ("best epoch", best_path.clone()),
        ("checkpoint", ckpt_path.clone()),
    ] {
        println!("{what:>11}: {}", path.display());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    args: &Args,
    out: &Path,
    report_path: &Path,
    summary: &nn::Summary,
    p: &Progress,
    n_train: usize,
    truth: &[usize],
    pred: &[usize],
) -> Result<()> {
    let metrics = read_metrics(out.join(gradlab::metrics::METRICS_FILE))?;
    let mut r = Report::new("digits: an MLP on 8×8 handwritten digits");
    r.config = vec![
        (
            "data".into(),
            format!(
                "data/digits.csv: {n_train} training, {} held-out images (seeded split)",
                truth.len()
            ),
        ),
        (
            "model".into(),
            format!(
                "MLP 64-{h}-{h}-10, ReLU, dropout {} after the first layer",
                args.dropout,
                h = args.hidden
            ),
        ),
        (
            "optimiser".into(),
            format!(
                "Adam, lr {} cosine-annealed to {} over {} epochs",
                args.lr,
                args.lr / 20.0,
                args.epochs
            ),
        ),
        (
            "batches".into(),
            format!(
                "{} per batch, reshuffled every epoch (DataLoader, seed {}, {} worker)",
                args.batch, args.seed, args.workers
            ),
        ),
        (
            "early stopping".into(),
            match args.patience {
                Some(n) => format!(
                    "patience {n} epochs on the held-out loss; best epoch {} (loss {:.4}){}",
                    p.best_epoch,
                    p.best_loss,
                    if p.stopped_early {
                        ", stopped early"
                    } else {
                        ""
                    }
                ),
                None => "off".into(),
            },
        ),
        ("steps".into(), p.step.to_string()),
    ];
    r.model = Some(summary.clone());
    r.curves_from_metrics(
        &metrics,
        Axis::Epoch,
        &["train_loss", "val_loss"],
        &["train_acc", "val_acc"],
        &["lr"],
    );
    for s in r.loss.iter_mut().chain(r.accuracy.iter_mut()) {
        s.name = if s.name.starts_with("train") {
            "train"
        } else {
            "held out"
        }
        .into();
    }
    r.layers_from_metrics(&metrics);
    let classes: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let names: Vec<&str> = classes.iter().map(String::as_str).collect();
    r.confusion = Some(Confusion::from_predictions(&names, truth, pred)?);
    r.notes = vec![
        "Expected (SEED.md): a small MLP reaches about 97 % or better held-out accuracy.".into(),
        "Train loss and accuracy are averaged over each epoch's batches with dropout on; held-out ones are measured after the epoch, dropout off. The layer diagnostics are nn::diagnose on the held-out set after each epoch.".into(),
    ];
    if args.patience.is_some() {
        r.notes.push("Early stopping chooses the epoch on the held-out set, so the held-out accuracy of the chosen model is slightly optimistic.".into());
    }
    r.write(report_path)?;
    Ok(())
}
