//! The digit classifier of `examples/digits.rs`, trained data-parallel under `mpirun`, with
//! its throughput and the share of each step spent communicating.
//!
//! ```text
//! cd distributed
//! cargo build --release --example digits_ddp
//! mpirun -np 1 ../target/release/examples/digits_ddp
//! mpirun -np 2 ../target/release/examples/digits_ddp
//! mpirun -np 2 --mca btl tcp,self ../target/release/examples/digits_ddp   # over TCP
//! ```
//!
//! (`--allow-run-as-root` as root.) The global batch (`--batch`, split evenly over the ranks)
//! and the learning rate stay the same whatever the number of processes, so every run takes
//! the same optimisation steps (the same trajectory up to f32 rounding); only the time changes.
//! Rank 0 prints, evaluates the held-out accuracy with every rank scoring its own shard
//! exactly once, and writes a checkpoint that `examples/digits.rs`-style single-process code
//! reads with `nn::state::load` / `Optimizer::load`. Last, it times steps that compute
//! nothing: the communication alone, without waiting for a slower rank.

// As in examples/digits.rs: glibc's allocator returns freed buffers to the OS each step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use autograd::Tape;
use clap::Parser;
use distributed::{main_println, BoxError, Ddp, DdpOptions, LossReduction, World};
use gradlab::data::{
    digits_path, DataLoader, Digits, DistributedSampler, LabeledBatch, LoaderOptions, Remainder,
};
use nn::{Ctx, Linear, Module, Relu, Sequential};
use optim::{Adam, Optim};
use rand::{rngs::StdRng, SeedableRng};

#[derive(Parser)]
#[command(about = "Train a digit classifier data-parallel (run under mpirun)")]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Global mini-batch size, split evenly over the ranks.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Hidden units (more makes each step heavier and the communication share smaller).
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Seed of the split, the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads per process for matrix products.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where rank 0 saves the final checkpoint.
    #[arg(long, default_value = "out/digits_ddp")]
    save: PathBuf,
}

/// Correct predictions of `model` on `batch`.
fn correct(model: &Sequential<f32>, batch: &LabeledBatch<f32>) -> Result<usize, BoxError> {
    let tape = Tape::new();
    let logits =
        tape.no_grad(|| Ctx::new(&tape).call(model, tape.constant(batch.inputs.clone())))?;
    let (_, argmax) = logits.value().extreme_axes(&[1], false, true)?;
    let classes = logits.shape()[1];
    Ok(argmax
        .iter()
        .enumerate()
        .filter(|&(n, &flat)| flat - n * classes == batch.labels[n])
        .count())
}

fn train(world: &World, args: &Args) -> Result<(), BoxError> {
    let n = world.size();
    if !args.batch.is_multiple_of(n) {
        return Err(format!(
            "--batch {} does not split evenly over {n} ranks",
            args.batch
        )
        .into());
    }
    autograd::set_num_threads(args.threads);
    let (train, test) = Digits::load(digits_path())?.split(1500, args.seed);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let model = Sequential::new()
        .append(Linear::<f32>::new(64, args.hidden, &mut rng)?)
        .append(Relu)
        .append(Linear::new(args.hidden, 10, &mut rng)?);
    model.train();
    let opt = Optim::new(model.parameters(), args.lr, Adam::default())?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;

    let opts = LoaderOptions {
        seed: args.seed,
        ..LoaderOptions::new(args.batch / n)
    };
    world.agree(
        "the loader's seed and batch",
        &format!("{} {}", opts.seed, args.batch),
    )?;
    let shard = DistributedSampler::new(n, world.rank(), Remainder::Pad)?;
    let mut loader = DataLoader::with_sampler(train, opts, shard, Digits::collate::<f32>)?;
    main_println!(
        world,
        "digits_ddp: {n} process(es) × batch {} (global {}), MLP 64-{}-10 ({} parameters, {} bucket(s)), {} thread(s) each",
        args.batch / n,
        args.batch,
        args.hidden,
        ddp.model().num_parameters(),
        ddp.num_buckets(),
        args.threads
    );

    let (mut steps, mut examples) = (0u64, 0u64);
    let mut busy = Duration::ZERO;
    let comm_before = world.comm_stats();
    for epoch in 0..args.epochs {
        let mut loss_sum = 0.0;
        let mut seen = 0usize;
        let start = Instant::now();
        for batch in loader.epoch() {
            let batch = batch?;
            let loss = ddp.step(
                LossReduction::mean(batch.len()),
                |m| -> Result<f64, BoxError> {
                    let tape = Tape::new();
                    let logits = Ctx::new(&tape).call(m, tape.constant(batch.inputs.clone()))?;
                    let loss = nn::loss::cross_entropy(logits, &batch.labels)?;
                    loss.backward()?;
                    Ok(loss.item()? as f64)
                },
            )?;
            loss_sum += loss * batch.len() as f64;
            seen += batch.len();
            steps += 1;
        }
        busy += start.elapsed();
        // every rank's examples of the epoch, padding included (what the steps processed)
        let totals = world.sum(&[loss_sum, seen as f64]);
        examples += totals[1] as u64;
        main_println!(
            world,
            "epoch {epoch:>3}: train loss {:.4}",
            totals[0] / totals[1]
        );
    }
    let comm = world.comm_stats();
    let comm_time = comm.time - comm_before.time;

    // Held-out accuracy: uneven shards, so each example is scored exactly once.
    let eval = LoaderOptions {
        shuffle: false,
        ..LoaderOptions::new(256)
    };
    let shard = DistributedSampler::new(n, world.rank(), Remainder::Uneven)?;
    let mut held_out = DataLoader::with_sampler(test, eval, shard, Digits::collate::<f32>)?;
    let mut score = [0.0, 0.0];
    ddp.model().eval();
    for batch in held_out.epoch() {
        let batch = batch?;
        score[0] += correct(ddp.model(), &batch)? as f64;
        score[1] += batch.len() as f64;
    }
    let score = world.sum(&score);
    // The slowest rank's times are the job's.
    let times = world.all_gather(&[busy.as_secs_f64(), comm_time.as_secs_f64()]);
    let wall = times.iter().map(|t| t[0]).fold(0.0, f64::max);
    let shares: Vec<String> = times
        .iter()
        .map(|t| format!("{:.0}%", 100.0 * t[1] / t[0]))
        .collect();
    main_println!(
        world,
        "held-out accuracy {:.2}% ({} of {})",
        100.0 * score[0] / score[1],
        score[0],
        score[1]
    );
    main_println!(
        world,
        "throughput {:.0} examples/s ({steps} steps of {:.3} ms); time in collectives per rank: {}",
        examples as f64 / wall,
        1e3 * wall / steps.max(1) as f64,
        shares.join(", ")
    );
    ddp.save_checkpoint(&args.save, None, Some(&loader.state()))?;
    main_println!(world, "checkpoint in {}", args.save.display());

    // The cost of the communication alone: steps whose closure computes nothing, so every
    // rank arrives at once and the collective's time is the transfer, not waiting for a
    // slower rank. (No parameter gets a gradient, so the optimiser changes nothing.)
    let reps = 200;
    world.barrier();
    let before = world.comm_stats().time;
    for _ in 0..reps {
        ddp.step(LossReduction::Sum, |_| Ok::<_, BoxError>(()))?;
    }
    let idle = (world.comm_stats().time - before).as_secs_f64() / reps as f64;
    main_println!(
        world,
        "communication alone: {:.3} ms per step ({} bytes of gradients)",
        1e3 * idle,
        ddp.model().num_parameters() * std::mem::size_of::<f32>()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    distributed::launch(|world| train(world, &args))
}
