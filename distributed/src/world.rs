//! [`World`]: this process's place in an MPI job, the collectives the rest of the crate is
//! built on (each one bounded in time), and [`launch`], the entry point that turns an error
//! or a panic on one rank into an exit of the whole job rather than a hang.

use std::cell::Cell;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::Equivalence;
use mpi::environment::{Threading, Universe};
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::error::{BoxError, Error, Result};

/// Exit code of a job aborted because a collective timed out.
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// Exit code of a job aborted because a rank failed outside a collective.
pub const FAILURE_EXIT_CODE: i32 = 1;
/// Exit code of a job aborted because a rank panicked.
pub const PANIC_EXIT_CODE: i32 = 101;
/// The environment variable that sets the collective timeout, in seconds.
pub const TIMEOUT_ENV: &str = "GRADLAB_DIST_TIMEOUT";
/// The timeout when [`TIMEOUT_ENV`] is not set: long enough for a slow first step (a large
/// model's start-up, a checkpoint on a network file system), short enough that a lost rank
/// does not hold a cluster allocation for long. PyTorch's default is 10 minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Communication counters of a [`World`] ([`World::comm_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommStats {
    /// Time from the start of each collective to its completion, waiting for slower ranks
    /// included.
    pub time: Duration,
    /// Collective operations started (one per bucket of a gradient reduction).
    pub collectives: u64,
}

/// This process's place in an MPI job: its rank, the number of ranks, and a communicator of
/// its own (a duplicate of `MPI_COMM_WORLD`, so the library's messages never match a user's).
///
/// Every collective waits at most [`timeout`](World::timeout): when a peer has failed,
/// hung or left early, the waiting rank prints what it waited for and **aborts the job**
/// (`MPI_Abort`), since an MPI collective cannot be cancelled. A `World` dropped without
/// [`finish`](World::finish) — on an error or a panic — aborts the job too, so the other
/// ranks never wait for a rank that is gone. [`launch`] wraps all of this.
pub struct World {
    // Field order is drop order: the communicators are freed before MPI is finalised.
    comm: SimpleCommunicator,
    world: SimpleCommunicator,
    _universe: Option<Universe>,
    rank: usize,
    size: usize,
    timeout: Cell<Duration>,
    finished: Cell<bool>,
    comm_time: Cell<Duration>,
    comm_calls: Cell<u64>,
}

impl World {
    /// Initialises MPI (threads: only the calling thread talks to MPI, which is how
    /// gradlab uses it: kernels and data loader workers never do) and joins the job.
    /// The collective timeout comes from `GRADLAB_DIST_TIMEOUT` (seconds) or
    /// [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] when MPI was initialised before in this process;
    /// [`Error::InvalidOption`] for an unreadable `GRADLAB_DIST_TIMEOUT`.
    pub fn init() -> Result<World> {
        let timeout = match std::env::var(TIMEOUT_ENV) {
            Ok(v) => match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
                _ => {
                    return Err(Error::InvalidOption {
                        name: TIMEOUT_ENV,
                        value: v,
                        reason: "must be a positive number of seconds",
                    })
                }
            },
            Err(_) => DEFAULT_TIMEOUT,
        };
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or(Error::AlreadyInitialized)?;
        let world = universe.world();
        let comm = world.duplicate();
        Ok(World {
            rank: comm.rank() as usize,
            size: comm.size() as usize,
            comm,
            world,
            _universe: Some(universe),
            timeout: Cell::new(timeout),
            finished: Cell::new(false),
            comm_time: Cell::new(Duration::ZERO),
            comm_calls: Cell::new(0),
        })
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0, the rank that logs, writes reports and saves checkpoints.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Runs `f` on rank 0 only (`None` elsewhere): logging, reports, files.
    pub fn main_only<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        self.is_main().then(f)
    }

    /// How long a collective may wait for the other ranks before the job is aborted.
    pub fn timeout(&self) -> Duration {
        self.timeout.get()
    }

    /// Sets the collective timeout (every rank should set the same).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }

    /// Time spent in this library's collectives so far and how many were started: what
    /// the communication share of a step is measured with.
    pub fn comm_stats(&self) -> CommStats {
        CommStats {
            time: self.comm_time.get(),
            collectives: self.comm_calls.get(),
        }
    }

    /// Leaves the job cleanly: finalises MPI. Every rank must call it (or return normally
    /// from [`launch`]'s closure); a rank that calls it while others still wait in a
    /// collective leaves them to time out.
    pub fn finish(self) {
        self.finished.set(true);
    }

    /// Aborts the whole job with `code` (every rank exits).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// Waits for `req`, polling so that a missing peer ends in a bounded time.
    fn wait<'a, D: ?Sized, S: Scope<'a>>(
        &self,
        op: &dyn Display,
        start: Instant,
        mut req: Request<'a, D, S>,
    ) {
        loop {
            match req.test() {
                Ok(_) => break,
                Err(r) => req = r,
            }
            let waited = start.elapsed();
            if waited > self.timeout.get() {
                say(&format!(
                    "[rank {}] gradlab-distributed: {op} did not complete within {:.1} s: another \
                     rank failed, hung or left early; aborting the job",
                    self.rank,
                    waited.as_secs_f64()
                ));
                self.abort(TIMEOUT_EXIT_CODE);
            }
            // Open MPI progresses non-blocking collectives inside MPI_Test, so poll often;
            // after a while, sleep a little to leave the core to a rank still computing
            // (oversubscribed runs).
            if waited < Duration::from_micros(500) {
                std::hint::spin_loop();
            } else if waited < Duration::from_millis(2) {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    fn account(&self, start: Instant, collectives: usize) {
        self.comm_time.set(self.comm_time.get() + start.elapsed());
        self.comm_calls
            .set(self.comm_calls.get() + collectives as u64);
    }

    /// Element-wise sums of `send` over the ranks, one `MPI_Iallreduce` per buffer, all in
    /// flight together; `recv[i]` gets the sum of every rank's `send[i]`.
    pub(crate) fn all_reduce_sum<T: Equivalence>(
        &self,
        op: &str,
        send: &[Vec<T>],
        recv: &mut [Vec<T>],
    ) {
        let start = Instant::now();
        mpi::request::scope(|scope| {
            let reqs: Vec<_> = send
                .iter()
                .zip(recv.iter_mut())
                .map(|(s, r)| {
                    self.comm.immediate_all_reduce_into(
                        scope,
                        &s[..],
                        &mut r[..],
                        SystemOperation::sum(),
                    )
                })
                .collect();
            let n = reqs.len();
            for (i, req) in reqs.into_iter().enumerate() {
                self.wait(&format_args!("{op} (bucket {} of {n})", i + 1), start, req);
            }
        });
        self.account(start, send.len());
    }

    /// Every rank's `send[i]` gathered into `recv[i]` (rank `r`'s copy at
    /// `r * send[i].len()`), one `MPI_Iallgather` per buffer, all in flight together.
    pub(crate) fn all_gather_many<T: Equivalence>(
        &self,
        op: &str,
        send: &[Vec<T>],
        recv: &mut [Vec<T>],
    ) {
        let start = Instant::now();
        mpi::request::scope(|scope| {
            let reqs: Vec<_> = send
                .iter()
                .zip(recv.iter_mut())
                .map(|(s, r)| {
                    self.comm
                        .immediate_all_gather_into(scope, &s[..], &mut r[..])
                })
                .collect();
            let n = reqs.len();
            for (i, req) in reqs.into_iter().enumerate() {
                self.wait(&format_args!("{op} (bucket {} of {n})", i + 1), start, req);
            }
        });
        self.account(start, send.len());
    }

    /// Every rank's `value` (all of the same length), in rank order.
    pub fn all_gather<T: Equivalence + Clone + Default>(&self, value: &[T]) -> Vec<Vec<T>> {
        let n = value.len();
        if n == 0 {
            // (see `broadcast`: an empty byte slice would read as MPI_IN_PLACE)
            return vec![Vec::new(); self.size];
        }
        let mut recv = vec![vec![T::default(); n * self.size]];
        self.all_gather_many("all-gather", &[value.to_vec()], &mut recv);
        let flat = recv.pop().unwrap_or_default();
        (0..self.size)
            .map(|r| flat[r * n..(r + 1) * n].to_vec())
            .collect()
    }

    /// Every rank's bytes (of any lengths), in rank order.
    pub fn all_gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let lens: Vec<usize> = self
            .all_gather(&[bytes.len() as u64])
            .iter()
            .map(|l| l[0] as usize)
            .collect();
        let max = lens.iter().copied().max().unwrap_or(0);
        let mut padded = bytes.to_vec();
        padded.resize(max, 0);
        let all = self.all_gather(&padded);
        all.into_iter()
            .zip(lens)
            .map(|(mut b, len)| {
                b.truncate(len);
                b
            })
            .collect()
    }

    /// Overwrites `buf` on every rank with rank 0's `buf` (`MPI_Ibcast`). Every rank must
    /// pass a buffer of the same length.
    pub fn broadcast<T: Equivalence>(&self, buf: &mut [T]) {
        if buf.is_empty() {
            // Nothing to move; and an empty slice of bytes points at address 1, which Open
            // MPI reads as MPI_IN_PLACE and rejects (MPI_ERR_ARG).
            return;
        }
        let start = Instant::now();
        mpi::request::scope(|scope| {
            let req = self
                .comm
                .process_at_rank(0)
                .immediate_broadcast_into(scope, buf);
            self.wait(&"broadcast", start, req);
        });
        self.account(start, 1);
    }

    /// Rank 0's bytes on every rank (any length).
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let mut len = [bytes.len() as u64];
        self.broadcast(&mut len);
        bytes.resize(len[0] as usize, 0);
        self.broadcast(&mut bytes[..]);
    }

    /// Blocks until every rank has arrived (within the timeout).
    pub fn barrier(&self) {
        let start = Instant::now();
        let req = self.comm.immediate_barrier();
        self.wait(&"barrier", start, req);
        self.account(start, 1);
    }

    /// The sums of `values` over the ranks, added in rank order on every rank, so that every
    /// rank gets bit-identical results and a rerun the same ones (counts of correct
    /// predictions, summed losses).
    pub fn sum(&self, values: &[f64]) -> Vec<f64> {
        let all = self.all_gather(values);
        let mut out = all.first().cloned().unwrap_or_default();
        for r in all.iter().skip(1) {
            for (o, v) in out.iter_mut().zip(r) {
                *o += v;
            }
        }
        out
    }

    /// The means of `values` over the ranks ([`sum`](World::sum) divided by the size).
    pub fn mean(&self, values: &[f64]) -> Vec<f64> {
        let n = self.size as f64;
        self.sum(values).into_iter().map(|v| v / n).collect()
    }

    /// Checks that every rank holds the same `value` (a loader seed, a configuration).
    ///
    /// # Errors
    /// [`Error::Disagreement`] on every rank, naming the first rank that differs from rank 0
    /// and both values.
    pub fn agree(&self, what: &str, value: &dyn Display) -> Result<()> {
        let all = self.all_gather_bytes(value.to_string().as_bytes());
        if let Some((rank, other)) = all.iter().enumerate().find(|(_, v)| **v != all[0]) {
            return Err(Error::Disagreement {
                what: what.to_string(),
                rank,
                on_rank0: String::from_utf8_lossy(&all[0]).into_owned(),
                on_other: String::from_utf8_lossy(other).into_owned(),
            });
        }
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !self.finished.get() {
            say(&format!(
                "[rank {}] gradlab-distributed: the World was dropped without World::finish \
                 (an error or a panic on this rank); aborting the job so that no rank waits for it",
                self.rank
            ));
            self.abort(if std::thread::panicking() {
                PANIC_EXIT_CODE
            } else {
                FAILURE_EXIT_CODE
            });
        }
        // The fields drop next: the communicators, then `_universe` (MPI_Finalize).
    }
}

/// Whether `e` (or an error in its source chain) is a [`Error`] every rank returned
/// together.
fn is_collective(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(d) = c.downcast_ref::<Error>() {
            return d.is_collective();
        }
        cur = c.source();
    }
    false
}

/// Writes `text` and a newline to stderr in one call: `eprintln!` may split a line into
/// several writes, which `mpirun` then interleaves with other ranks' output.
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{text}\n").as_bytes());
}

/// The panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}

/// Runs a data-parallel program: joins the MPI job, runs `f` with the [`World`], and makes
/// sure that no rank is left waiting whatever happens.
///
/// - `f` returns `Ok`: MPI is finalised, exit code 0.
/// - `f` returns an error that every rank returned together ([`Error::is_collective`]: a
///   failed step, a mismatched model, a checkpoint rank 0 could not read): the error is
///   printed with the rank, MPI is finalised, exit code 1.
/// - any other error, or a panic: printed with the rank, then the whole job is aborted
///   (`MPI_Abort`), so the other ranks exit at once instead of waiting in their next
///   collective.
///
/// Use it from `main` (`fn main() -> ExitCode { distributed::launch(|world| { … }) }`) and
/// start the program with `mpirun -np N`.
pub fn launch<E: Into<BoxError>>(f: impl FnOnce(&World) -> Result<(), E>) -> ExitCode {
    let world = match World::init() {
        Ok(w) => w,
        Err(e) => {
            say(&format!("gradlab-distributed: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let rank = world.rank();
    match catch_unwind(AssertUnwindSafe(|| f(&world))) {
        Ok(Ok(())) => {
            world.finish();
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            let e: BoxError = e.into();
            let mut text = format!("[rank {rank}] error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(&format!("\n[rank {rank}]   caused by: {s}"));
                source = s.source();
            }
            if is_collective(&*e) {
                say(&text);
                world.finish();
                ExitCode::FAILURE
            } else {
                say(&format!(
                    "{text}\n[rank {rank}] aborting the job so that no other rank waits for this one"
                ));
                world.abort(FAILURE_EXIT_CODE)
            }
        }
        Err(payload) => {
            say(&format!(
                "[rank {rank}] panicked ({}): aborting the job so that no other rank waits for this one",
                panic_message(&*payload)
            ));
            world.abort(PANIC_EXIT_CODE)
        }
    }
}
