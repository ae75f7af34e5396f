//! The checks every rank of the `train` scenario runs, in the same order (they call
//! collectives). Each compares a distributed run against a single-process computation that
//! every rank repeats locally on the whole data.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, ensure, Result};
use autograd::{Float, Tape, Tensor};
use distributed::checkpoint::LOADER_FILE;
use distributed::{
    main_println, Ddp, DdpOptions, Error, LossReduction, MainLogger, ReduceOrder, World,
};
use gradlab::data::{
    digits_path, AllExamples, BatchRng, DataError, DataLoader, Dataset, Digits, DistributedSampler,
    LabeledBatch, LoaderOptions, LoaderState, Remainder, Sampler,
};
use gradlab::metrics::At;
use nn::loss::{CrossEntropyLoss, Reduction};
use nn::{BatchNorm1d, Ctx, Linear, Module, Sequential, Tanh};
use optim::{Adam, LrScheduler, Optim, Optimizer, Sgd, StepLr};
use rand::SeedableRng;

type Check = fn(&World) -> Result<()>;

/// Runs every check; returns (passed, failed), the same on every rank.
pub fn all(world: &World) -> (usize, usize) {
    let checks: &[(&str, Check)] = &[
        (
            "sampler_shards_partition_each_epoch",
            sampler_shards_partition_each_epoch,
        ),
        (
            "f32_native_matches_one_process_with_batch_n_times_b",
            f32_native_matches_one_process,
        ),
        (
            "f64_rank_order_is_bitwise_a_single_process_accumulating_the_shards",
            f64_rank_order_bitwise,
        ),
        (
            "f64_native_reduction_matches_a_single_process",
            f64_native_matches,
        ),
        (
            "uneven_last_batches_average_over_examples_not_ranks",
            uneven_last_batches,
        ),
        (
            "sum_reduced_losses_are_not_divided_by_the_world_size",
            sum_reduced_losses,
        ),
        (
            "no_sync_accumulates_micro_batches_without_communicating",
            no_sync_accumulation,
        ),
        (
            "buckets_are_one_collective_each_and_do_not_change_the_result",
            buckets,
        ),
        (
            "buffers_are_rank_0s_broadcast_before_each_forward",
            buffers_follow_rank_0,
        ),
        (
            "a_failing_or_panicking_closure_fails_the_step_on_every_rank",
            failing_closures,
        ),
        (
            "mixed_reductions_are_refused_on_every_rank",
            mixed_reductions,
        ),
        (
            "checkpoints_move_between_distributed_and_single_process_runs",
            checkpoints,
        ),
        (
            "sharded_evaluation_counts_every_example_once",
            sharded_evaluation,
        ),
        ("only_rank_0_logs", only_rank_0_logs),
        ("disagreeing_values_are_found", disagreement),
    ];
    let filter = std::env::var("GRADLAB_DIST_CHECK").ok();
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let start = Instant::now();
        let res = catch_unwind(AssertUnwindSafe(|| check(world)));
        let local_ok = match res {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                eprintln!("[rank {}] check {name} failed: {e:#}", world.rank());
                false
            }
            Err(_) => {
                eprintln!("[rank {}] check {name} panicked", world.rank());
                false
            }
        };
        let failures = world.sum(&[if local_ok { 0.0 } else { 1.0 }])[0];
        let ok = failures == 0.0;
        main_println!(
            world,
            "check {name} ... {} ({:.2} s)",
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    (passed, failed)
}

// --- shared pieces ---

fn digits() -> Result<Digits> {
    Ok(Digits::load(digits_path())?)
}

/// 64 → hidden (tanh) → 10.
fn mlp<T: Float>(seed: u64, hidden: usize) -> Result<Sequential<T>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok(Sequential::new()
        .append(Linear::new(64, hidden, &mut rng)?)
        .append(Tanh)
        .append(Linear::new(hidden, 10, &mut rng)?))
}

/// Every batch of `epochs` epochs of `data` with this sampler (loader seed 3, shuffled).
fn batches<T: Float>(
    data: &Digits,
    sampler: impl Sampler + 'static,
    batch: usize,
    epochs: usize,
) -> Result<Vec<LabeledBatch<T>>> {
    let opts = LoaderOptions {
        seed: 3,
        ..LoaderOptions::new(batch)
    };
    let mut loader = DataLoader::with_sampler(data.clone(), opts, sampler, Digits::collate::<T>)?;
    let mut out = Vec::new();
    for _ in 0..epochs {
        for b in loader.epoch() {
            out.push(b?);
        }
    }
    Ok(out)
}

/// The digits' collate function, as a plain function pointer.
type CollateF64 =
    fn(Vec<([f32; 64], usize)>, &mut BatchRng) -> Result<LabeledBatch<f64>, DataError>;

/// A loader like [`batches`] uses (seed 3, shuffled), over f64 digits.
fn loader_of(
    data: &Digits,
    sampler: impl Sampler + 'static,
    batch: usize,
) -> Result<DataLoader<Digits, CollateF64>> {
    let opts = LoaderOptions {
        seed: 3,
        ..LoaderOptions::new(batch)
    };
    let collate: CollateF64 = Digits::collate::<f64>;
    Ok(DataLoader::with_sampler(
        data.clone(),
        opts,
        sampler,
        collate,
    )?)
}

fn shard(world: &World, remainder: Remainder) -> Result<DistributedSampler> {
    Ok(DistributedSampler::new(
        world.size(),
        world.rank(),
        remainder,
    )?)
}

/// Cross-entropy of `model` on `batch`, backward; the loss.
fn backward<T: Float>(
    model: &Sequential<T>,
    batch: &LabeledBatch<T>,
    reduction: Reduction,
) -> nn::Result<f64> {
    let tape = Tape::new();
    let logits = Ctx::new(&tape).call(model, tape.constant(batch.inputs.clone()))?;
    let loss = CrossEntropyLoss {
        reduction,
        ..CrossEntropyLoss::default()
    }
    .forward(logits, &batch.labels)?;
    loss.backward()?;
    Ok(loss.item()?.as_f64())
}

fn copy_params<T: Float>(to: &impl Module<T>, from: &impl Module<T>) -> Result<()> {
    for (a, b) in to.parameters().iter().zip(from.parameters()) {
        a.set_value(b.value())?;
    }
    Ok(())
}

/// Largest |a - b| / (atol + rtol |b|) over all parameters (≤ 1 passes).
fn worst<T: Float>(a: &impl Module<T>, b: &impl Module<T>, atol: f64, rtol: f64) -> f64 {
    let mut w: f64 = 0.0;
    for (p, q) in a.parameters().iter().zip(b.parameters()) {
        for (x, y) in p.value().as_slice().iter().zip(q.value().as_slice()) {
            let (x, y) = (x.as_f64(), y.as_f64());
            w = w.max((x - y).abs() / (atol + rtol * y.abs()));
        }
    }
    w
}

fn bitwise_equal<T: Float>(a: &impl Module<T>, b: &impl Module<T>) -> bool {
    a.parameters().iter().zip(b.parameters()).all(|(p, q)| {
        p.value()
            .as_slice()
            .iter()
            .zip(q.value().as_slice())
            .all(|(x, y)| x.as_f64().to_bits() == y.as_f64().to_bits())
    })
}

fn sgd<T: Float>(model: &impl Module<T>, lr: f64) -> Result<Optim<Sgd, T>> {
    Ok(Optim::new(
        model.parameters(),
        lr,
        Sgd {
            momentum: 0.9,
            ..Sgd::default()
        },
    )?)
}

fn adam<T: Float>(model: &impl Module<T>) -> Result<Optim<Adam, T>> {
    Ok(Optim::new(model.parameters(), 1e-2, Adam::default())?)
}

/// One step of a single process on `batch` with a mean loss.
fn single_step<T: Float>(
    model: &Sequential<T>,
    opt: &mut dyn Optimizer,
    batch: &LabeledBatch<T>,
    r: Reduction,
) -> Result<()> {
    opt.zero_grad();
    backward(model, batch, r)?;
    opt.step()?;
    Ok(())
}

/// A directory every rank agrees on (rank 0's choice).
fn shared_dir(world: &World, tag: &str) -> PathBuf {
    let mut bytes = std::env::temp_dir()
        .join(format!("gradlab-dist-{}-{tag}", std::process::id()))
        .to_string_lossy()
        .into_owned()
        .into_bytes();
    world.broadcast_bytes(&mut bytes);
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// The examples `0..n`.
#[derive(Clone, Copy)]
struct Numbers(u64);

impl Dataset for Numbers {
    type Item = u64;
    fn len(&self) -> usize {
        self.0 as usize
    }
    fn get(&self, index: usize) -> Result<u64, gradlab::data::DataError> {
        Ok(index as u64)
    }
}

// --- the checks ---

fn sampler_shards_partition_each_epoch(world: &World) -> Result<()> {
    let n = world.size();
    // 23 examples: padded to a multiple of 2 and 3 (24)
    let data = Numbers(23);
    let collate =
        |items: Vec<u64>, _: &mut gradlab::data::BatchRng| Ok::<_, gradlab::data::DataError>(items);
    let opts = LoaderOptions {
        seed: 5,
        ..LoaderOptions::new(4)
    };
    let mut mine =
        DataLoader::with_sampler(data, opts.clone(), shard(world, Remainder::Pad)?, collate)?;
    let single = DataLoader::new(data, opts, collate)?;
    let mut previous = None;
    for epoch in 0..3 {
        let own: Vec<u64> = mine.epoch().collect::<Result<Vec<_>, _>>()?.concat();
        let all = world.all_gather(&own);
        // interleaved back, the shards are the single-process order padded from its start
        let mut expected: Vec<u64> = single.order(epoch).iter().map(|&i| i as u64).collect();
        let total = own.len() * n;
        let pad: Vec<u64> = expected
            .iter()
            .copied()
            .cycle()
            .take(total - expected.len())
            .collect();
        expected.extend(pad);
        let interleaved: Vec<u64> = (0..own.len())
            .flat_map(|i| all.iter().map(move |s| s[i]))
            .collect();
        ensure!(
            interleaved == expected,
            "epoch {epoch}: {interleaved:?} vs {expected:?}"
        );
        ensure!(
            previous.as_ref() != Some(&interleaved),
            "epoch {epoch} repeated the previous order"
        );
        previous = Some(interleaved);
    }
    Ok(())
}

fn f32_native_matches_one_process(world: &World) -> Result<()> {
    let (n, b, steps) = (world.size(), 8, 6);
    let data = digits()?;
    // Different seeds per rank: the broadcast at start must make the replicas equal.
    let model = mlp::<f32>(100 + world.rank() as u64, 16)?;
    let opt = sgd(&model, 0.1)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let reference = mlp::<f32>(7, 16)?;
    copy_params(&reference, ddp.model())?;
    let mut ref_opt = sgd(&reference, 0.1)?;
    let mine = batches::<f32>(&data, shard(world, Remainder::Pad)?, b, 1)?;
    let whole = batches::<f32>(&data, AllExamples, n * b, 1)?;
    for k in 0..steps {
        let batch = &mine[k];
        ddp.step(LossReduction::mean(batch.len()), |m| {
            backward(m, batch, Reduction::Mean)
        })?;
        single_step(&reference, &mut ref_opt, &whole[k], Reduction::Mean)?;
    }
    ddp.check_in_sync()?;
    // f32 rounding: a few ulps of the largest terms per step, over 6 steps
    let w = worst(ddp.model(), &reference, 1e-6, 1e-5);
    main_println!(
        world,
        "    f32: worst deviation from one process {w:.3} of (atol 1e-6, rtol 1e-5)"
    );
    ensure!(
        w <= 1.0,
        "f32 parameters differ from one process with batch {}: {w}",
        n * b
    );
    Ok(())
}

/// Single process, f64: each step runs every rank's shard batch as a micro-batch, weights
/// its gradient by its example count, adds them in rank order and divides by the total —
/// the reduction `ReduceOrder::RankOrder` promises, written out independently.
fn accumulate_like_rank_order(
    reference: &Sequential<f64>,
    opt: &mut dyn Optimizer,
    shards: &[&LabeledBatch<f64>],
) -> Result<()> {
    let mut total: Option<Vec<Vec<f64>>> = None;
    let mut count = 0usize;
    for batch in shards {
        reference.zero_grad();
        backward(reference, batch, Reduction::Mean)?;
        let w = batch.len() as f64;
        count += batch.len();
        let c: Vec<Vec<f64>> = reference
            .parameters()
            .iter()
            .map(|p| {
                p.grad()
                    .expect("every parameter has a gradient")
                    .as_slice()
                    .iter()
                    .map(|&g| 0.0 + w * g)
                    .collect()
            })
            .collect();
        total = Some(match total {
            None => c,
            Some(mut t) => {
                for (t, c) in t.iter_mut().zip(&c) {
                    for (t, c) in t.iter_mut().zip(c) {
                        *t += c;
                    }
                }
                t
            }
        });
    }
    for (p, t) in reference.parameters().iter().zip(total.unwrap_or_default()) {
        let g: Vec<f64> = t.iter().map(|v| v / count as f64).collect();
        p.set_grad(Some(Tensor::from_vec(g, p.shape())?))?;
    }
    opt.step()?;
    Ok(())
}

fn f64_against_single_process(world: &World, order: ReduceOrder) -> Result<(bool, f64)> {
    let (n, b, steps) = (world.size(), 8, 6);
    let data = digits()?;
    let model = mlp::<f64>(200 + world.rank() as u64, 16)?;
    let opt = adam(&model)?;
    let opts = DdpOptions {
        reduce_order: order,
        ..DdpOptions::default()
    };
    let mut ddp = Ddp::new(world, model, opt, opts)?;
    let (acc_ref, batch_ref) = (mlp::<f64>(1, 16)?, mlp::<f64>(1, 16)?);
    copy_params(&acc_ref, ddp.model())?;
    copy_params(&batch_ref, ddp.model())?;
    let (mut acc_opt, mut batch_opt) = (adam(&acc_ref)?, adam(&batch_ref)?);
    let shards: Vec<Vec<LabeledBatch<f64>>> = (0..n)
        .map(|r| batches(&data, DistributedSampler::new(n, r, Remainder::Pad)?, b, 1))
        .collect::<Result<_>>()?;
    let whole = batches::<f64>(&data, AllExamples, n * b, 1)?;
    for k in 0..steps {
        let batch = &shards[world.rank()][k];
        ddp.step(LossReduction::mean(batch.len()), |m| {
            backward(m, batch, Reduction::Mean)
        })?;
        let this_step: Vec<&LabeledBatch<f64>> = shards.iter().map(|s| &s[k]).collect();
        accumulate_like_rank_order(&acc_ref, &mut acc_opt, &this_step)?;
        single_step(&batch_ref, &mut batch_opt, &whole[k], Reduction::Mean)?;
    }
    ddp.check_in_sync()?;
    let w = worst(ddp.model(), &batch_ref, 1e-13, 1e-11);
    ensure!(
        w <= 1.0,
        "f64 parameters differ from one process with batch {}: {w}",
        n * b
    );
    Ok((bitwise_equal(ddp.model(), &acc_ref), w))
}

fn f64_rank_order_bitwise(world: &World) -> Result<()> {
    let (bitwise, w) = f64_against_single_process(world, ReduceOrder::RankOrder)?;
    main_println!(
        world,
        "    f64 rank order: bit for bit {bitwise}; vs one batch of N·B: {w:.3} of (1e-13, 1e-11)"
    );
    ensure!(
        bitwise,
        "RankOrder is not bit-identical to the single-process accumulation"
    );
    Ok(())
}

fn f64_native_matches(world: &World) -> Result<()> {
    let (bitwise, w) = f64_against_single_process(world, ReduceOrder::Native)?;
    main_println!(world, "    f64 native ({} ranks): bit for bit {bitwise}; vs one batch of N·B: {w:.3} of (1e-13, 1e-11)", world.size());
    // Two summands are added the same way in any order (IEEE addition is commutative).
    if world.size() == 2 {
        ensure!(
            bitwise,
            "two ranks: a native all-reduce adds two terms, which is order-free"
        );
    }
    Ok(())
}

fn uneven_last_batches(world: &World) -> Result<()> {
    let (n, b) = (world.size(), 6);
    // n·2b − (n − 1) examples: shards of 2b and 2b − 1, two batches each, the last uneven
    let m = n * 2 * b - (n - 1);
    let (data, _) = digits()?.split(m, 4);
    let s = shard(world, Remainder::Uneven)?;
    ensure!(
        s.batches_agree(m, b, false),
        "the shards must run the same number of batches"
    );
    let model = mlp::<f64>(300, 12)?;
    let opt = sgd(&model, 0.5)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let (reference, naive) = (mlp::<f64>(1, 12)?, mlp::<f64>(1, 12)?);
    copy_params(&reference, ddp.model())?;
    copy_params(&naive, ddp.model())?;
    let (mut ref_opt, mut naive_opt) = (sgd(&reference, 0.5)?, sgd(&naive, 0.5)?);
    let mine = batches::<f64>(&data, s, b, 3)?;
    let shards: Vec<Vec<LabeledBatch<f64>>> = (0..n)
        .map(|r| {
            batches(
                &data,
                DistributedSampler::new(n, r, Remainder::Uneven)?,
                b,
                3,
            )
        })
        .collect::<Result<_>>()?;
    let whole = batches::<f64>(&data, AllExamples, n * b, 3)?;
    ensure!(whole.len() == mine.len() && mine.len() == 6);
    ensure!(
        whole[1].len() == n * b - (n - 1),
        "the second batch of each epoch is short"
    );
    for k in 0..mine.len() {
        ddp.step(LossReduction::mean(mine[k].len()), |m| {
            backward(m, &mine[k], Reduction::Mean)
        })?;
        single_step(&reference, &mut ref_opt, &whole[k], Reduction::Mean)?;
        // PyTorch DDP's rule, the plain average of the ranks' means, for contrast
        naive_opt.zero_grad();
        let mut sum: Vec<Vec<f64>> = Vec::new();
        for s in &shards {
            naive.zero_grad();
            backward(&naive, &s[k], Reduction::Mean)?;
            let g: Vec<Vec<f64>> = naive
                .parameters()
                .iter()
                .map(|p| p.grad().unwrap().to_vec())
                .collect();
            if sum.is_empty() {
                sum = g;
            } else {
                sum.iter_mut()
                    .zip(&g)
                    .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
            }
        }
        for (p, g) in naive.parameters().iter().zip(sum) {
            p.set_grad(Some(Tensor::from_vec(
                g.iter().map(|v| v / n as f64).collect(),
                p.shape(),
            )?))?;
        }
        naive_opt.step()?;
    }
    let w = worst(ddp.model(), &reference, 1e-13, 1e-11);
    let w_naive = worst(&naive, &reference, 1e-13, 1e-11);
    main_println!(
        world,
        "    uneven: {w:.3} of tolerance; averaging the ranks' means instead: {w_naive:.3e}"
    );
    ensure!(w <= 1.0, "uneven batches: {w}");
    ensure!(
        w_naive > 1e3,
        "the test cannot tell a plain average of means apart ({w_naive})"
    );
    Ok(())
}

fn sum_reduced_losses(world: &World) -> Result<()> {
    let (n, b, steps) = (world.size(), 8, 4);
    let data = digits()?;
    let model = mlp::<f64>(400, 16)?;
    let opt = sgd(&model, 0.002)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let reference = mlp::<f64>(1, 16)?;
    copy_params(&reference, ddp.model())?;
    let mut ref_opt = sgd(&reference, 0.002)?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, b, 1)?;
    let whole = batches::<f64>(&data, AllExamples, n * b, 1)?;
    for k in 0..steps {
        ddp.step(LossReduction::Sum, |m| {
            backward(m, &mine[k], Reduction::Sum)
        })?;
        single_step(&reference, &mut ref_opt, &whole[k], Reduction::Sum)?;
    }
    let w = worst(ddp.model(), &reference, 1e-13, 1e-11);
    ensure!(w <= 1.0, "sum-reduced: {w}");
    Ok(())
}

fn no_sync_accumulation(world: &World) -> Result<()> {
    let (n, b, steps) = (world.size(), 8, 4);
    let data = digits()?;
    let model = mlp::<f64>(500, 16)?;
    let opt = adam(&model)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let reference = mlp::<f64>(1, 16)?;
    copy_params(&reference, ddp.model())?;
    let mut ref_opt = adam(&reference)?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, b, 1)?;
    let whole = batches::<f64>(&data, AllExamples, n * b, 1)?;
    for k in 0..steps {
        // micro-batches of 5 and 3 examples
        let split = |range: std::ops::Range<usize>| -> Result<LabeledBatch<f64>> {
            let x = mine[k].inputs.to_vec();
            Ok(LabeledBatch {
                inputs: Tensor::from_vec(
                    x[range.start * 64..range.end * 64].to_vec(),
                    [range.len(), 64],
                )?,
                labels: mine[k].labels[range].to_vec(),
            })
        };
        let (first, second) = (split(0..5)?, split(5..8)?);
        let before = world.comm_stats().collectives;
        ddp.no_sync(LossReduction::mean(5), |m| {
            backward(m, &first, Reduction::Mean)
        })?;
        ensure!(
            world.comm_stats().collectives == before,
            "no_sync communicated"
        );
        ddp.step(LossReduction::mean(3), |m| {
            backward(m, &second, Reduction::Mean)
        })?;
        single_step(&reference, &mut ref_opt, &whole[k], Reduction::Mean)?;
    }
    let w = worst(ddp.model(), &reference, 1e-13, 1e-11);
    ensure!(w <= 1.0, "no_sync: {w}");
    ensure!(ddp.steps() == steps as u64);
    Ok(())
}

fn buckets(world: &World) -> Result<()> {
    let data = digits()?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, 8, 1)?;
    let mut finals = Vec::new();
    for cap in [usize::MAX, 40 * 8] {
        let model = mlp::<f64>(600, 16)?;
        let opt = adam(&model)?;
        let opts = DdpOptions {
            bucket_cap_bytes: cap,
            reduce_order: ReduceOrder::RankOrder,
            ..DdpOptions::default()
        };
        let mut ddp = Ddp::new(world, model, opt, opts)?;
        // 64·16 | 16 | 16·10 | 10 in reverse: [10], [160], [16], [1024] at 40 elements
        let expected = if cap == usize::MAX { 1 } else { 4 };
        ensure!(
            ddp.num_buckets() == expected,
            "{} buckets, expected {expected}",
            ddp.num_buckets()
        );
        for batch in mine.iter().take(3) {
            let before = world.comm_stats().collectives;
            ddp.step(LossReduction::mean(batch.len()), |m| {
                backward(m, batch, Reduction::Mean)
            })?;
            let calls = world.comm_stats().collectives - before;
            ensure!(
                calls == expected as u64,
                "{calls} collectives for {expected} buckets"
            );
        }
        finals.push(ddp.into_parts().0);
    }
    ensure!(
        bitwise_equal(&finals[0], &finals[1]),
        "bucketing changed the result"
    );
    Ok(())
}

/// 64 → 16 → batch norm → tanh → 10.
fn bn_mlp(seed: u64) -> Result<Sequential<f64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok(Sequential::new()
        .append(Linear::new(64, 16, &mut rng)?)
        .append(BatchNorm1d::new(16)?)
        .append(Tanh)
        .append(Linear::new(16, 10, &mut rng)?))
}

fn buffers_follow_rank_0(world: &World) -> Result<()> {
    let data = digits()?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, 8, 1)?;
    let rank0 = batches::<f64>(
        &data,
        DistributedSampler::new(world.size(), 0, Remainder::Pad)?,
        8,
        1,
    )?;
    let model = bn_mlp(700 + world.rank() as u64)?;
    let opt = sgd(&model, 0.1)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    ddp.check_in_sync()?; // buffers broadcast at start too
                          // Rank 0's statistics evolve with rank 0's batches only: replay them on a copy that
                          // takes the synchronised parameters before each forward.
    let replay = bn_mlp(1)?;
    for k in 0..4 {
        copy_params(&replay, ddp.model())?;
        let tape = Tape::new();
        Ctx::new(&tape).call(&replay, tape.constant(rank0[k].inputs.clone()))?;
        ddp.step(LossReduction::mean(8), |m| {
            backward(m, &mine[k], Reduction::Mean)
        })?;
    }
    // right after a step each rank holds the statistics of its own last batch…
    let differs = ddp.check_in_sync().is_err();
    ensure!(
        differs == (world.size() > 1),
        "buffers were averaged or not updated locally"
    );
    // …and the broadcast before the next forward makes them rank 0's
    ddp.sync_buffers()?;
    ddp.check_in_sync()?;
    for ((name, a), (_, b)) in ddp
        .model()
        .named_buffers()
        .iter()
        .zip(replay.named_buffers())
    {
        let same = a
            .value()
            .as_slice()
            .iter()
            .zip(b.value().as_slice())
            .all(|(x, y)| x.to_bits() == y.to_bits());
        ensure!(same, "buffer {name} is not rank 0's replayed statistics");
    }
    Ok(())
}

fn failing_closures(world: &World) -> Result<()> {
    let data = digits()?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, 8, 1)?;
    let model = mlp::<f64>(800, 8)?;
    let opt = sgd(&model, 0.1)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let last = world.size() - 1;
    let before: Vec<Tensor<f64>> = ddp.model().parameters().iter().map(|p| p.value()).collect();
    for how in ["error", "panic"] {
        let res = ddp.step(
            LossReduction::mean(8),
            |m| -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
                if world.rank() == last {
                    if how == "panic" {
                        panic!("deliberate panic on rank {last}");
                    }
                    return Err("deliberate failure".into());
                }
                Ok(backward(m, &mine[0], Reduction::Mean)?)
            },
        );
        match res {
            Err(Error::StepFailed { rank, source, .. }) if world.rank() == last => {
                ensure!(rank == last);
                let text = source.to_string();
                ensure!(text.contains("deliberate"), "{text}");
            }
            Err(Error::PeerFailed { ranks, .. }) if world.rank() != last => {
                ensure!(ranks == vec![last], "{ranks:?}");
            }
            other => return Err(anyhow!("{how}: unexpected {other:?}")),
        }
        let unchanged = ddp
            .model()
            .parameters()
            .iter()
            .zip(&before)
            .all(|(p, b)| p.value() == *b);
        ensure!(unchanged, "a failed step changed the parameters");
    }
    // the next step works again on every rank
    ddp.step(LossReduction::mean(8), |m| {
        backward(m, &mine[1], Reduction::Mean)
    })?;
    ddp.check_in_sync()?;
    Ok(())
}

fn mixed_reductions(world: &World) -> Result<()> {
    let data = digits()?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, 8, 1)?;
    let model = mlp::<f64>(900, 8)?;
    let opt = sgd(&model, 0.1)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let reduction = if world.is_main() {
        LossReduction::mean(8)
    } else {
        LossReduction::Sum
    };
    match ddp.step(reduction, |m| backward(m, &mine[0], Reduction::Mean)) {
        Err(Error::ReductionMismatch { mean_ranks: 1, .. }) if world.size() > 1 => {}
        Ok(_) if world.size() == 1 => {}
        other => return Err(anyhow!("unexpected {other:?}")),
    }
    Ok(())
}

fn checkpoints(world: &World) -> Result<()> {
    let (n, b) = (world.size(), 8);
    let data = digits()?;
    let mine = batches::<f64>(&data, shard(world, Remainder::Pad)?, b, 1)?;
    let whole = batches::<f64>(&data, AllExamples, n * b, 1)?;
    let build = |seed: u64| -> Result<(Sequential<f64>, Optim<Adam, f64>)> {
        let m = mlp::<f64>(seed, 16)?;
        let o = adam(&m)?;
        Ok((m, o))
    };

    // distributed → single process
    let dir = shared_dir(world, "ckpt-a");
    let (model, mut opt) = build(1000 + world.rank() as u64)?;
    let mut sched = StepLr::new(&mut opt, 2, 0.5)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let mut loader = loader_of(&data, shard(world, Remainder::Pad)?, b)?;
    for batch in loader.epoch().take(3) {
        let batch = batch?;
        ddp.step(LossReduction::mean(b), |m| {
            backward(m, &batch, Reduction::Mean)
        })?;
        sched.step(ddp.optimizer_mut())?;
    }
    ddp.save_checkpoint(&dir, Some(&sched), Some(&loader.state()))?;
    let (model_path, opt_path) = distributed::checkpoint::checkpoint_paths(&dir);
    // every rank plays the single process, with nothing but the single-process API
    let (single, mut single_opt) = build(1)?;
    let mut single_sched = StepLr::new(&mut single_opt, 2, 0.5)?;
    nn::state::load(&single, &model_path)?;
    single_opt.load_with_scheduler(&opt_path, &mut single_sched)?;
    let mut single_loader = loader_of(&data, AllExamples, n * b)?;
    single_loader.resume(LoaderState::load(dir.join(LOADER_FILE))?)?;
    let next = single_loader
        .epoch()
        .next()
        .ok_or_else(|| anyhow!("no batch"))??;
    ensure!(
        next == whole[3],
        "the single process did not resume at batch 3"
    );
    for k in 3..6 {
        ddp.step(LossReduction::mean(b), |m| {
            backward(m, &mine[k], Reduction::Mean)
        })?;
        sched.step(ddp.optimizer_mut())?;
        single_step(&single, &mut single_opt, &whole[k], Reduction::Mean)?;
        single_sched.step(&mut single_opt)?;
    }
    ensure!(
        single_opt.lr() == ddp.optimizer().lr(),
        "schedules diverged"
    );
    let w = worst(ddp.model(), &single, 1e-13, 1e-11);
    ensure!(w <= 1.0, "resumed in one process: {w}");

    // single process → distributed (rank 0 writes with the single-process API)
    let dir = shared_dir(world, "ckpt-b");
    let (single, mut single_opt) = build(2)?;
    let mut single_sched = StepLr::new(&mut single_opt, 2, 0.5)?;
    for batch in &whole[..3] {
        single_step(&single, &mut single_opt, batch, Reduction::Mean)?;
        single_sched.step(&mut single_opt)?;
    }
    if world.is_main() {
        std::fs::create_dir_all(&dir)?;
        let (model_path, opt_path) = distributed::checkpoint::checkpoint_paths(&dir);
        nn::state::save(&single, &model_path)?;
        single_opt.save_with_scheduler(&opt_path, &single_sched)?;
        let mut single_loader = loader_of(&data, AllExamples, n * b)?;
        single_loader.epoch().take(3).for_each(drop);
        single_loader.state().save(dir.join(LOADER_FILE))?;
    }
    let (model, mut opt) = build(3000 + world.rank() as u64)?;
    let mut sched = StepLr::new(&mut opt, 2, 0.5)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    let position = ddp.load_checkpoint(&dir, Some(&mut sched))?;
    let mut loader = loader_of(&data, shard(world, Remainder::Pad)?, b)?;
    loader.resume(position.ok_or_else(|| anyhow!("no loader position"))?)?;
    let next = loader.epoch().next().ok_or_else(|| anyhow!("no batch"))??;
    ensure!(next == mine[3], "the ranks did not resume at their batch 3");
    ensure!(
        sched.last_epoch() == 3,
        "schedule not restored: {}",
        sched.last_epoch()
    );
    for k in 3..6 {
        ddp.step(LossReduction::mean(b), |m| {
            backward(m, &mine[k], Reduction::Mean)
        })?;
        sched.step(ddp.optimizer_mut())?;
        single_step(&single, &mut single_opt, &whole[k], Reduction::Mean)?;
        single_sched.step(&mut single_opt)?;
    }
    let w = worst(ddp.model(), &single, 1e-13, 1e-11);
    ensure!(w <= 1.0, "resumed distributed: {w}");

    // a missing checkpoint is an error on every rank, not a hang
    match ddp.load_checkpoint(dir.join("missing"), None) {
        Err(Error::Checkpoint { .. }) => {}
        other => return Err(anyhow!("missing checkpoint: {other:?}")),
    }
    world.barrier();
    if world.is_main() {
        for d in ["ckpt-a", "ckpt-b"] {
            let _ = std::fs::remove_dir_all(
                std::env::temp_dir().join(format!("gradlab-dist-{}-{d}", std::process::id())),
            );
        }
    }
    Ok(())
}

/// Correct predictions of `model` on `batch`.
fn correct<T: Float>(model: &Sequential<T>, batch: &LabeledBatch<T>) -> Result<usize> {
    let tape = Tape::new();
    let logits =
        tape.no_grad(|| Ctx::new(&tape).call(model, tape.constant(batch.inputs.clone())))?;
    let v = logits.value();
    let row = |i: usize| &v.as_slice()[i * 10..(i + 1) * 10];
    Ok((0..batch.len())
        .filter(|&i| {
            let r = row(i);
            let best = (0..10).fold(0, |a, j| if r[j] > r[a] { j } else { a });
            best == batch.labels[i]
        })
        .count())
}

fn sharded_evaluation(world: &World) -> Result<()> {
    // 295 held-out examples: divisible by neither 2 nor 3
    let (train, held_out) = digits()?.split(1502, 0);
    ensure!(held_out.len() == 295);
    let model = mlp::<f32>(1100, 16)?;
    let opt = adam(&model)?;
    let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
    for batch in batches::<f32>(&train, shard(world, Remainder::Pad)?, 32, 1)?
        .iter()
        .take(10)
    {
        ddp.step(LossReduction::mean(batch.len()), |m| {
            backward(m, batch, Reduction::Mean)
        })?;
    }
    let count = |sampler: DistributedSampler| -> Result<Vec<f64>> {
        let mut c = [0.0, 0.0];
        for batch in batches::<f32>(&held_out, sampler, 50, 1)? {
            c[0] += correct(ddp.model(), &batch)? as f64;
            c[1] += batch.len() as f64;
        }
        Ok(world.sum(&c))
    };
    let sharded = count(shard(world, Remainder::Uneven)?)?;
    let all = batches::<f32>(&held_out, AllExamples, held_out.len(), 1)?;
    let single = correct(ddp.model(), &all[0])? as f64;
    ensure!(
        sharded == vec![single, 295.0],
        "sharded {sharded:?}, single process [{single}, 295]"
    );
    // padding would count some examples twice
    let padded = count(shard(world, Remainder::Pad)?)?;
    if world.size() > 1 {
        ensure!(padded[1] > 295.0, "padding counted {} examples", padded[1]);
    }
    main_println!(
        world,
        "    held-out accuracy {:.3} over exactly {} examples",
        single / 295.0,
        sharded[1]
    );
    Ok(())
}

fn only_rank_0_logs(world: &World) -> Result<()> {
    let dir = shared_dir(world, "log");
    let mut log = MainLogger::create(world, &dir)?;
    ensure!(log.path().is_some() == world.is_main());
    for step in 0..3 {
        let loss = world.mean(&[world.rank() as f64])[0];
        log.log(At::step(step), &[("loss", loss)])?;
    }
    world.barrier();
    if world.is_main() {
        let text = std::fs::read_to_string(log.path().unwrap())?;
        ensure!(
            text.lines().count() == 3,
            "{} lines: {text}",
            text.lines().count()
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn disagreement(world: &World) -> Result<()> {
    world.agree("loader seed", &7)?;
    match world.agree("loader seed", &(7 + world.rank())) {
        Err(Error::Disagreement { rank: 1, .. }) if world.size() > 1 => Ok(()),
        Ok(()) if world.size() == 1 => Ok(()),
        other => Err(anyhow!("unexpected {other:?}")),
    }
}
