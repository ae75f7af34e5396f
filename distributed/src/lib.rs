//! Data-parallel training for gradlab on MPI (Open MPI through the `mpi` crate): a
//! [`Ddp`] wrapper around any [`nn::Module`] and [`optim::Optimizer`], a sharded data
//! loader ([`gradlab::data::DistributedSampler`]), rank-aware logging and checkpoints, and
//! failures that stop every rank instead of hanging one.
//!
//! Start a program with `mpirun -np N`; each process is one rank with one replica of the
//! model and its own shard of every epoch:
//!
//! ```no_run
//! use std::process::ExitCode;
//! use autograd::Tape;
//! use distributed::{main_println, Ddp, DdpOptions, LossReduction, World};
//! use gradlab::data::{digits_path, DataLoader, Digits, DistributedSampler, LoaderOptions, Remainder};
//! use nn::{Ctx, Linear, Module, Relu, Sequential};
//! use optim::{Adam, Optim};
//! use rand::SeedableRng;
//!
//! fn train(world: &World) -> Result<(), distributed::BoxError> {
//!     let (train, _) = Digits::load(digits_path())?.split(1500, 0);
//!     let mut rng = rand::rngs::StdRng::seed_from_u64(world.rank() as u64); // any seed:
//!     let model = Sequential::new()                                         // rank 0's wins
//!         .append(Linear::<f32>::new(64, 64, &mut rng)?)
//!         .append(Relu)
//!         .append(Linear::new(64, 10, &mut rng)?);
//!     let opt = Optim::new(model.parameters(), 1e-2, Adam::default())?;
//!     let mut ddp = Ddp::new(world, model, opt, DdpOptions::default())?;
//!
//!     let shard = DistributedSampler::new(world.size(), world.rank(), Remainder::Pad)?;
//!     let opts = LoaderOptions { seed: 7, ..LoaderOptions::new(32) }; // 32 per rank
//!     world.agree("loader seed", &opts.seed)?;
//!     let mut loader = DataLoader::with_sampler(train, opts, shard, Digits::collate::<f32>)?;
//!     for epoch in 0..10 {
//!         for batch in loader.epoch() {                         // reshuffles every epoch
//!             let batch = batch?;
//!             let loss = ddp.step(LossReduction::mean(batch.len()), |model| -> Result<f32, distributed::BoxError> {
//!                 let tape = Tape::new();
//!                 let logits = Ctx::new(&tape).call(model, tape.constant(batch.inputs))?;
//!                 let loss = nn::loss::cross_entropy(logits, &batch.labels)?;
//!                 loss.backward()?;
//!                 Ok(loss.item()?)
//!             })?;
//!             main_println!(world, "epoch {epoch}: loss {loss:.4}");
//!         }
//!     }
//!     ddp.save_checkpoint("out/ckpt", None, Some(&loader.state()))?; // rank 0 writes
//!     Ok(())
//! }
//!
//! fn main() -> ExitCode {
//!     distributed::launch(train)
//! }
//! ```
//!
//! | item | what |
//! | --- | --- |
//! | [`launch`], [`World`] | joining the job; collectives bounded by a timeout; abort instead of hang |
//! | [`Ddp`], [`DdpOptions`], [`LossReduction`], [`ReduceOrder`] | the data-parallel wrapper |
//! | [`checkpoint`] | checkpoints interchangeable with single-process runs |
//! | [`MainLogger`], [`main_println!`] | output from rank 0 only |
//! | [`Error`] | what can go wrong, and which errors every rank returns together |
//!
//! The sampler lives in `gradlab::data` (it needs no MPI): see
//! [`DistributedSampler`](gradlab::data::DistributedSampler). Running across machines:
//! `docs/distributed.md`.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod bucket;
pub mod checkpoint;
mod ddp;
mod error;
mod log;
mod world;

pub use ddp::{Ddp, DdpOptions, LossReduction, ReduceOrder};
pub use error::{BoxError, Error, Result};
pub use log::MainLogger;
pub use world::{
    launch, CommStats, World, DEFAULT_TIMEOUT, FAILURE_EXIT_CODE, PANIC_EXIT_CODE, TIMEOUT_ENV,
    TIMEOUT_EXIT_CODE,
};
