//! [`Ddp`]: data-parallel training of any [`Module`] with any [`Optimizer`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use autograd::{Float, Param, Tensor};
use mpi::datatype::Equivalence;
use nn::{Buffer, Module};
use optim::Optimizer;

use crate::bucket::{plan, Bucket};
use crate::error::{BoxError, Error, Result};
use crate::world::{panic_message, World};

/// How the ranks' gradients are added up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOrder {
    /// `MPI_Iallreduce` with `MPI_SUM`: the fastest, in whatever order the MPI library
    /// chooses (it may depend on the message size and the number of ranks). Every rank gets
    /// the same result in practice (Open MPI's algorithms reduce once and distribute), but
    /// the rounding may differ from a single process's.
    Native,
    /// Every rank gathers every rank's gradients (`MPI_Iallgather`) and adds them in rank
    /// order, `((g₀ + g₁) + g₂) + …`: the result is bit-identical on every rank, from run to
    /// run, over any network, and equal bit for bit to a single process that accumulates
    /// the same micro-batches in the same order. Moves `N - 1` copies of the gradients into
    /// each rank instead of about two: the same volume for 2 ranks, more beyond.
    RankOrder,
}

/// What the loss computed in a step's closure is, so that the averaged gradient is the
/// gradient of the loss over all ranks' examples — no silent factor of `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossReduction {
    /// The loss was a mean over `examples` examples on this rank (`reduction="mean"`). The
    /// step's gradient is that of the mean over every rank's examples: each rank's gradient
    /// is weighted by its example count, so uneven last batches (and ranks without any
    /// example, `examples: 0`) are averaged correctly. With equal counts this is PyTorch
    /// DDP's average.
    Mean {
        /// Examples the loss averaged over on this rank.
        examples: usize,
    },
    /// The loss was a sum over this rank's examples (`reduction="sum"`): the step's gradient
    /// is that of the sum over every rank's examples (the ranks' gradients are added, not
    /// averaged — PyTorch's DDP would divide them by `N`).
    Sum,
}

impl LossReduction {
    /// `Mean { examples }`.
    pub fn mean(examples: usize) -> Self {
        LossReduction::Mean { examples }
    }
}

/// Settings of a [`Ddp`]. Build with struct update syntax:
/// `DdpOptions { reduce_order: ReduceOrder::RankOrder, ..DdpOptions::default() }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdpOptions {
    /// Largest bucket of gradients reduced by one collective call, in bytes (PyTorch's
    /// `bucket_cap_mb`, 25 MiB by default). A parameter larger than this gets a bucket of
    /// its own.
    pub bucket_cap_bytes: usize,
    /// Broadcast rank 0's buffers (batch-norm running statistics) to every rank before each
    /// step's forward, as PyTorch's DDP does by default (`broadcast_buffers=True`), so
    /// evaluation on any rank uses the same statistics.
    pub broadcast_buffers: bool,
    /// How gradients are added up.
    pub reduce_order: ReduceOrder,
}

impl Default for DdpOptions {
    fn default() -> Self {
        DdpOptions {
            bucket_cap_bytes: 25 << 20,
            broadcast_buffers: true,
            reduce_order: ReduceOrder::Native,
        }
    }
}

/// What the micro-batches since the last synchronised step have contributed.
#[derive(Clone, Copy, Debug)]
struct Pending {
    mean: bool,
    examples: u64,
}

/// Data-parallel training: one replica of a model and its optimiser per rank, kept
/// identical (PyTorch's `DistributedDataParallel`).
///
/// - **Start**: [`Ddp::new`] checks that every rank has the same parameters and buffers
///   (names, shapes, dtype — a mismatch is an error naming the first one that differs)
///   and broadcasts rank 0's values, so the replicas start equal whatever their seeds.
/// - **Step**: [`Ddp::step`] runs a closure that computes this rank's loss and calls
///   `backward`, adds the gradients of all ranks with one collective call per bucket
///   (flattened buffers of at most [`DdpOptions::bucket_cap_bytes`]), scales them as the
///   declared [`LossReduction`] requires, and steps the optimiser on every rank with the
///   same gradients.
/// - **Buffers**: rank 0's are broadcast before each step's forward (as PyTorch does by
///   default; [`DdpOptions::broadcast_buffers`]).
/// - **Gradient accumulation**: [`Ddp::no_sync`] runs a micro-batch without communicating;
///   the next [`Ddp::step`] reduces everything accumulated since the last step.
/// - **Failures**: a closure that returns an error or panics on any rank makes the step
///   fail on every rank ([`Error::StepFailed`] on that rank, [`Error::PeerFailed`] on the
///   others), and no optimiser steps. A rank that never arrives is handled by the
///   collective timeout of the [`World`].
///
/// The gradients cannot be reduced while backward still runs (gradlab's backward has no
/// per-parameter completion hook), so communication follows the backward pass instead of
/// overlapping it.
pub struct Ddp<'w, T: Float, M, O> {
    world: &'w World,
    model: M,
    opt: O,
    opts: DdpOptions,
    params: Vec<(String, Param<T>)>,
    buffers: Vec<(String, Buffer<T>)>,
    buckets: Vec<Bucket>,
    /// Per bucket: this rank's contribution (the status after the last bucket's gradients).
    acc: Vec<Vec<T>>,
    /// Per bucket: the reduced sums.
    out: Vec<Vec<T>>,
    /// Per bucket: every rank's contribution ([`ReduceOrder::RankOrder`] only).
    gathered: Vec<Vec<T>>,
    used: Vec<bool>,
    pending: Option<Pending>,
    poisoned: bool,
    steps: u64,
}

/// The dtype's name, as written in model descriptions.
fn dtype_name<T>() -> &'static str {
    std::any::type_name::<T>()
}

impl<'w, T, M, O> Ddp<'w, T, M, O>
where
    T: Float + Equivalence,
    M: Module<T>,
    O: Optimizer,
{
    /// Wraps this rank's replica of `model` and its optimiser `opt` (built over
    /// `model.parameters()`). A collective call: every rank must make it.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] on every rank when the ranks' parameters or buffers differ in
    /// name, shape or dtype; [`Error::InvalidOption`] for a bucket cap of 0 bytes.
    pub fn new(world: &'w World, model: M, opt: O, opts: DdpOptions) -> Result<Self> {
        if opts.bucket_cap_bytes == 0 {
            return Err(Error::InvalidOption {
                name: "bucket_cap_bytes",
                value: "0".into(),
                reason: "a bucket must hold at least one element",
            });
        }
        let params = model.named_parameters();
        let buffers = model.named_buffers();
        check_same_model(world, &params, &buffers)?;
        let numels: Vec<usize> = params.iter().map(|(_, p)| p.numel()).collect();
        let cap = (opts.bucket_cap_bytes / std::mem::size_of::<T>()).max(1);
        let buckets = plan(&numels, cap);
        let mut ddp = Ddp {
            world,
            model,
            opt,
            opts,
            used: vec![false; params.len()],
            params,
            buffers,
            acc: Vec::new(),
            out: Vec::new(),
            gathered: Vec::new(),
            buckets,
            pending: None,
            poisoned: false,
            steps: 0,
        };
        let status = ddp.status_len();
        let last = ddp.buckets.len() - 1;
        ddp.acc = ddp
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| vec![T::zero(); b.len + if i == last { status } else { 0 }])
            .collect();
        ddp.out = ddp.acc.clone();
        if opts.reduce_order == ReduceOrder::RankOrder {
            ddp.gathered = ddp
                .acc
                .iter()
                .map(|a| vec![T::zero(); a.len() * world.size()])
                .collect();
        }
        ddp.broadcast_parameters()?;
        ddp.sync_buffers()?;
        Ok(ddp)
    }

    /// The model (this rank's replica).
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The optimiser (for schedules: `sched.step(ddp.optimizer_mut())`).
    pub fn optimizer(&self) -> &O {
        &self.opt
    }

    /// The optimiser, mutably.
    pub fn optimizer_mut(&mut self) -> &mut O {
        &mut self.opt
    }

    /// The world this wrapper communicates in.
    pub fn world(&self) -> &'w World {
        self.world
    }

    /// The settings.
    pub fn options(&self) -> &DdpOptions {
        &self.opts
    }

    /// Synchronised steps taken (failed ones included).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of buckets (collective calls per step).
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The model and the optimiser, unwrapped.
    pub fn into_parts(self) -> (M, O) {
        (self.model, self.opt)
    }

    /// Status after the last bucket's gradients: a failure flag per rank, the example
    /// count, the number of ranks that declared a mean, and per parameter the number of
    /// ranks that produced a gradient for it.
    fn status_len(&self) -> usize {
        self.world.size() + 2 + self.params.len()
    }

    /// One training step on every rank: `f` computes this rank's loss on its batch and
    /// calls `backward` (binding parameters through the model, e.g. with
    /// `Ctx::new(&tape).call(model, x)`); then the gradients of all ranks are reduced, scaled
    /// as `reduction` says, and the optimiser steps. Returns what `f` returned (its local
    /// loss, say). A collective call: every rank must make it, as often as the others.
    ///
    /// Gradients accumulated by [`no_sync`](Ddp::no_sync) since the last step are reduced
    /// with this step's. After the step, every parameter's gradient is the reduced one
    /// (`None` where no rank produced one, so the optimiser skips it as a single process
    /// would).
    ///
    /// # Errors
    /// On every rank, and with no optimiser step: [`Error::StepFailed`] on a rank whose
    /// closure failed or panicked and [`Error::PeerFailed`] on the others;
    /// [`Error::ReductionMismatch`] when ranks declared different reductions;
    /// [`Error::NoExamples`] when every rank declared a mean over 0 examples. Then the
    /// optimiser's own errors.
    pub fn step<R, E: Into<BoxError>>(
        &mut self,
        reduction: LossReduction,
        f: impl FnOnce(&M) -> std::result::Result<R, E>,
    ) -> Result<R> {
        if self.opts.broadcast_buffers {
            self.sync_buffers()?;
        }
        let local = self.run_local(reduction, f);
        self.reduce_and_step(local)
    }

    /// A micro-batch of gradient accumulation: runs `f` (loss and `backward` on this rank)
    /// and keeps its gradients locally, without communicating them (PyTorch's `no_sync`);
    /// the next [`step`](Ddp::step) reduces them with its own. Buffers are still broadcast
    /// first. Each micro-batch may declare its own example count; all of one step's must
    /// use the same kind of reduction.
    ///
    /// # Errors
    /// [`Error::StepFailed`] when `f` fails or panics here. The failure is also remembered:
    /// the next [`step`](Ddp::step) fails on every rank, so a program that goes on stops
    /// all ranks together, and one that returns the error ends the job through
    /// [`launch`](crate::launch).
    pub fn no_sync<R, E: Into<BoxError>>(
        &mut self,
        reduction: LossReduction,
        f: impl FnOnce(&M) -> std::result::Result<R, E>,
    ) -> Result<R> {
        if self.opts.broadcast_buffers {
            self.sync_buffers()?;
        }
        self.run_local(reduction, f).map_err(|source| {
            self.poisoned = true;
            Error::StepFailed {
                rank: self.world.rank(),
                step: self.steps,
                source,
            }
        })
    }

    /// Runs `f`, then moves the gradients it produced, weighted, into the buckets.
    fn run_local<R, E: Into<BoxError>>(
        &mut self,
        reduction: LossReduction,
        f: impl FnOnce(&M) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, BoxError> {
        self.model.zero_grad();
        let model = &self.model;
        let out = match catch_unwind(AssertUnwindSafe(|| f(model))) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.model.zero_grad();
                return Err(e.into());
            }
            Err(payload) => {
                self.model.zero_grad();
                return Err(format!("panicked: {}", panic_message(&*payload)).into());
            }
        };
        self.absorb(reduction)?;
        Ok(out)
    }

    /// Adds this micro-batch's gradients into the buckets: `n · g` for a mean over `n`
    /// examples (the sum-form gradient, divided by the global count after the reduction),
    /// `g` for a sum.
    fn absorb(&mut self, reduction: LossReduction) -> std::result::Result<(), BoxError> {
        let (mean, n) = match reduction {
            LossReduction::Mean { examples } => (true, examples as u64),
            LossReduction::Sum => (false, 0),
        };
        if let Some(p) = self.pending {
            if p.mean != mean {
                self.model.zero_grad();
                return Err(
                    "the micro-batches of one step mix mean- and sum-reduced losses".into(),
                );
            }
        }
        let examples = self.pending.map_or(0, |p| p.examples) + n;
        // Counts travel in the gradients' dtype: they must be exact there (2^24 in f32).
        if T::of(examples as f64).as_f64() != examples as f64 {
            self.model.zero_grad();
            return Err(format!(
                "{examples} examples in one step cannot be counted exactly in {}",
                dtype_name::<T>()
            )
            .into());
        }
        // A mean over no example has no gradient (it would be NaN): contribute nothing.
        if !(mean && n == 0) {
            let weight = T::of(n as f64);
            for (bucket, acc) in self.buckets.iter().zip(self.acc.iter_mut()) {
                for slot in &bucket.slots {
                    let Some(g) = self.params[slot.param].1.grad() else {
                        continue;
                    };
                    let dst = &mut acc[slot.offset..slot.offset + slot.numel];
                    if mean {
                        for (d, &v) in dst.iter_mut().zip(g.as_slice()) {
                            *d += weight * v;
                        }
                    } else {
                        for (d, &v) in dst.iter_mut().zip(g.as_slice()) {
                            *d += v;
                        }
                    }
                    self.used[slot.param] = true;
                }
            }
        }
        self.pending = Some(Pending { mean, examples });
        self.model.zero_grad();
        Ok(())
    }

    /// The collective part of a step: reduce buckets and status, check the status, write
    /// the gradients back and step the optimiser.
    fn reduce_and_step<R>(&mut self, local: std::result::Result<R, BoxError>) -> Result<R> {
        let step = self.steps;
        self.steps += 1;
        let (size, rank) = (self.world.size(), self.world.rank());
        let failed = local.is_err() || self.poisoned;
        let pending = self.pending.unwrap_or(Pending {
            mean: false,
            examples: 0,
        });
        let last = self.buckets.len() - 1;
        let base = self.buckets[last].len;
        {
            let status = &mut self.acc[last][base..];
            status.fill(T::zero());
            if failed {
                status[rank] = T::one();
            }
            status[size] = T::of(pending.examples as f64);
            status[size + 1] = if pending.mean { T::one() } else { T::zero() };
            for (s, &u) in status[size + 2..].iter_mut().zip(&self.used) {
                *s = if u { T::one() } else { T::zero() };
            }
        }
        self.reduce();
        for a in &mut self.acc {
            a.fill(T::zero());
        }
        self.used.fill(false);
        self.pending = None;
        let poisoned = std::mem::take(&mut self.poisoned);

        let status = &self.out[last][base..];
        let count = |v: T| v.as_f64().round() as usize;
        let failed_ranks: Vec<usize> = (0..size).filter(|&r| count(status[r]) > 0).collect();
        if !failed_ranks.is_empty() {
            self.model.zero_grad();
            return Err(match local {
                Err(source) => Error::StepFailed { rank, step, source },
                Ok(_) if poisoned => Error::StepFailed {
                    rank,
                    step,
                    source: "a no_sync micro-batch of this step failed".into(),
                },
                Ok(_) => Error::PeerFailed {
                    rank,
                    step,
                    ranks: failed_ranks,
                },
            });
        }
        let mean_ranks = count(status[size + 1]);
        if mean_ranks != 0 && mean_ranks != size {
            self.model.zero_grad();
            return Err(Error::ReductionMismatch {
                step,
                mean_ranks,
                world: size,
            });
        }
        let total = status[size];
        if mean_ranks == size && count(total) == 0 {
            self.model.zero_grad();
            return Err(Error::NoExamples { step });
        }
        let used: Vec<bool> = status[size + 2..].iter().map(|&v| count(v) > 0).collect();
        for (bucket, out) in self.buckets.iter().zip(&self.out) {
            for slot in &bucket.slots {
                let p = &self.params[slot.param].1;
                if !used[slot.param] {
                    p.set_grad(None)?;
                    continue;
                }
                let sum = &out[slot.offset..slot.offset + slot.numel];
                let g: Vec<T> = if mean_ranks == size {
                    sum.iter().map(|&v| v / total).collect()
                } else {
                    sum.to_vec()
                };
                p.set_grad(Some(Tensor::from_vec(g, p.shape())?))?;
            }
        }
        self.opt.step()?;
        local.map_err(|source| Error::StepFailed { rank, step, source })
    }

    /// `out[b]` = the sum over ranks of `acc[b]`, for every bucket.
    fn reduce(&mut self) {
        match self.opts.reduce_order {
            ReduceOrder::Native => {
                self.world
                    .all_reduce_sum("gradient all-reduce", &self.acc, &mut self.out)
            }
            ReduceOrder::RankOrder => {
                self.world
                    .all_gather_many("gradient all-gather", &self.acc, &mut self.gathered);
                for (out, all) in self.out.iter_mut().zip(&self.gathered) {
                    let n = out.len();
                    out.copy_from_slice(&all[..n]);
                    for r in 1..self.world.size() {
                        for (o, &v) in out.iter_mut().zip(&all[r * n..(r + 1) * n]) {
                            *o += v;
                        }
                    }
                }
            }
        }
    }

    /// Rank 0's parameter values on every rank, one broadcast per bucket.
    fn broadcast_parameters(&mut self) -> Result<()> {
        let world = self.world;
        for bucket in &self.buckets {
            let mut flat: Vec<T> = Vec::with_capacity(bucket.len);
            for slot in &bucket.slots {
                flat.extend_from_slice(self.params[slot.param].1.value().as_slice());
            }
            world.broadcast(&mut flat);
            if !world.is_main() {
                for slot in &bucket.slots {
                    let p = &self.params[slot.param].1;
                    let v = flat[slot.offset..slot.offset + slot.numel].to_vec();
                    p.set_value(Tensor::from_vec(v, p.shape())?)?;
                }
            }
        }
        Ok(())
    }

    /// Rank 0's buffers on every rank (one broadcast for all of them). Called by
    /// [`step`](Ddp::step) when [`DdpOptions::broadcast_buffers`] is on; call it before
    /// evaluating on several ranks otherwise. A collective call.
    ///
    /// # Errors
    /// None in practice: the buffers' shapes were checked to agree when the wrapper was
    /// built.
    pub fn sync_buffers(&self) -> Result<()> {
        if self.buffers.is_empty() {
            return Ok(());
        }
        let mut flat: Vec<T> = Vec::new();
        for (_, b) in &self.buffers {
            flat.extend_from_slice(b.value().as_slice());
        }
        self.world.broadcast(&mut flat);
        if !self.world.is_main() {
            let mut offset = 0;
            for (_, b) in &self.buffers {
                let n = b.value().numel();
                b.set_value(Tensor::from_vec(
                    flat[offset..offset + n].to_vec(),
                    b.shape(),
                )?)?;
                offset += n;
            }
        }
        Ok(())
    }

    /// Checks that every rank holds bit-identical parameters and buffers (a hash of each,
    /// compared with rank 0's). A collective call, for tests and for hunting
    /// nondeterminism.
    ///
    /// # Errors
    /// [`Error::Disagreement`] on every rank naming the first parameter or buffer that
    /// differs and the first rank where it does.
    pub fn check_in_sync(&self) -> Result<()> {
        let names: Vec<&str> = self
            .params
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.buffers.iter().map(|(n, _)| n.as_str()))
            .collect();
        let hashes: Vec<u64> = self
            .params
            .iter()
            .map(|(_, p)| hash(&p.value()))
            .chain(self.buffers.iter().map(|(_, b)| hash(&b.value())))
            .collect();
        let all = self.world.all_gather(&hashes);
        for (rank, h) in all.iter().enumerate() {
            if let Some(i) = (0..names.len()).find(|&i| h[i] != all[0][i]) {
                return Err(Error::Disagreement {
                    what: format!("the value of `{}`", names[i]),
                    rank,
                    on_rank0: format!("hash {:016x}", all[0][i]),
                    on_other: format!("hash {:016x}", h[i]),
                });
            }
        }
        Ok(())
    }
}

/// FNV-1a over the exact bits of every element (widened to f64, which is exact for f32).
fn hash<T: Float>(t: &Tensor<T>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in t.as_slice() {
        for byte in v.as_f64().to_bits().to_le_bytes() {
            h = (h ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Errors on every rank when the ranks' models differ, naming the first entry that does.
fn check_same_model<T: Float + Equivalence>(
    world: &World,
    params: &[(String, Param<T>)],
    buffers: &[(String, Buffer<T>)],
) -> Result<()> {
    let dtype = dtype_name::<T>();
    let mut desc = String::new();
    for (name, p) in params {
        desc.push_str(&format!(
            "parameter\t{name}\t{dtype} {:?}\n",
            p.shape().dims()
        ));
    }
    for (name, b) in buffers {
        desc.push_str(&format!("buffer\t{name}\t{dtype} {:?}\n", b.shape().dims()));
    }
    let all = world.all_gather_bytes(desc.as_bytes());
    let lines = |bytes: &[u8]| -> Vec<(String, String, String)> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| {
                let mut it = l.splitn(3, '\t');
                let what = it.next().unwrap_or_default().to_string();
                let name = it.next().unwrap_or_default().to_string();
                let shape = it.next().unwrap_or_default().to_string();
                (what, name, shape)
            })
            .collect()
    };
    let root = lines(&all[0]);
    for (rank, bytes) in all.iter().enumerate().skip(1) {
        let other = lines(bytes);
        for i in 0..root.len().max(other.len()) {
            let (a, b) = (root.get(i), other.get(i));
            if a == b {
                continue;
            }
            let entry = a.or(b).expect("internal: one of the two lists has entry i");
            let what = if entry.0 == "buffer" {
                "buffer"
            } else {
                "parameter"
            };
            let show = |e: Option<&(String, String, String)>| match e {
                None => "nothing".to_string(),
                Some((w, n, s)) if (w, n) == (&entry.0, &entry.1) => s.clone(),
                Some((w, n, s)) => format!("{w} `{n}` ({s})"),
            };
            return Err(Error::ModelMismatch {
                what,
                name: entry.1.clone(),
                rank,
                on_rank0: show(a),
                on_other: show(b),
            });
        }
    }
    Ok(())
}
