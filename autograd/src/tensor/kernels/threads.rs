//! The kernels' thread pool: run N chunks of work on this thread and a few helpers.
//!
//! Split kernels (today the row blocks of a mid-size GEMM) are tens of microseconds of
//! work, as long as it takes to wake a sleeping thread, so the helpers spin briefly
//! between jobs before they park (as OpenMP's active wait does). Chunks are claimed one at
//! a time from a shared counter, and a job a helper has not picked up yet is taken back:
//! on a loaded machine, where a helper may not be scheduled for a while, the calling
//! thread simply runs every chunk itself instead of waiting.
//!
//! Panics are contained: a panicking chunk stops the others from claiming more, every
//! chunk already running finishes before [`run`] returns or unwinds (the job borrows the
//! caller's stack), and a helper's panic is re-raised on the calling thread with its
//! payload.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::Thread;

use smallvec::SmallVec;

/// The thread count; 0 until it is first read or set.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The environment variable that sets the default thread count.
pub const NUM_THREADS_ENV: &str = "GRADLAB_NUM_THREADS";

/// Sets how many threads kernels may use, replacing the default (see [`num_threads`]);
/// 0 counts as 1.
///
/// Matrix products, elementwise maps, reductions, gathers and the optimisers' updates
/// split across threads once a tensor is large enough for it to pay (see the
/// `kernels::par` module); smaller work stays on the calling thread. Results are
/// bit-identical for every thread count: the work is cut into pieces that depend only on
/// the sizes, and partial sums are added in a fixed order.
///
/// ```
/// autograd::set_num_threads(1);
/// assert_eq!(autograd::num_threads(), 1);
/// ```
pub fn set_num_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The thread count kernels use: the last [`set_num_threads`], else the default, read
/// once: [`NUM_THREADS_ENV`] (`GRADLAB_NUM_THREADS`) when it holds a positive integer,
/// else the machine's available parallelism ([`std::thread::available_parallelism`],
/// 1 if unknown). An unset, empty, zero or unparsable variable falls back to the
/// available parallelism, as `OMP_NUM_THREADS` does for PyTorch.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = default_threads(
                std::env::var(NUM_THREADS_ENV).ok().as_deref(),
                available_parallelism(),
            );
            // A concurrent `set_num_threads` wins over the default.
            match THREADS.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => n,
                Err(set) => set,
            }
        }
        n => n,
    }
}

fn available_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The default thread count for the environment variable's value `env` (see
/// [`num_threads`]): a positive integer (surrounding spaces allowed) is taken as is,
/// anything else gives `fallback`.
pub(crate) fn default_threads(env: Option<&str>, fallback: usize) -> usize {
    env.and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(fallback.max(1))
}

/// Runs `job(i)` for every `i` in `0..chunks`, on this thread and up to
/// [`num_threads`]` - 1` helpers, and returns when all have run.
///
/// # Panics
/// Re-raises the first panic of any chunk (with its payload) once no chunk is running;
/// chunks not yet started when it happened are skipped.
pub(crate) fn run(chunks: usize, job: &(dyn Fn(usize) + Sync)) {
    Pool::global().run(num_threads(), chunks, job);
}

/// `f(i, &mut items[i])` for every item, spread over the pool as [`run`] does.
///
/// # Panics
/// As [`run`].
pub(crate) fn for_each_mut<I: Send>(items: &mut [I], f: impl Fn(usize, &mut I) + Sync) {
    // Each item is claimed by exactly one thread; the locks only make that visible to the
    // type system (they are never contended).
    let cells: SmallVec<[Mutex<&mut I>; 8]> = items.iter_mut().map(Mutex::new).collect();
    run(cells.len(), &|i| {
        let mut item = cells[i].lock().unwrap_or_else(|e| e.into_inner());
        f(i, &mut item);
    });
}

/// One call's work, on the calling thread's stack. Helpers see it through a pointer whose
/// lifetime is erased; see the SAFETY argument in [`Pool::run`].
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    chunks: usize,
    next: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    /// Claims and runs chunks until none are left. A panic cancels the unclaimed chunks
    /// and is kept for the caller (the first one wins).
    fn work(&self) {
        let res = catch_unwind(AssertUnwindSafe(|| loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.chunks {
                break;
            }
            (self.f)(i);
        }));
        if let Err(payload) = res {
            self.next.fetch_max(self.chunks, Ordering::Relaxed);
            lock(&self.panic).get_or_insert(payload);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks can leave their data half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A helper thread and its mailbox.
struct Helper {
    /// The job offered to this helper; null when none. The helper takes it with a swap,
    /// the caller takes it back with a compare-exchange: exactly one of them gets it.
    job: AtomicPtr<Job<'static>>,
    /// Set by the helper when it has finished with a job it took.
    done: AtomicBool,
    thread: Thread,
}

/// About 50 µs of spinning before a helper parks: longer than the gaps between the
/// products of one training step, shorter than anything a user would notice as load.
const SPINS: u32 = 20_000;

impl Helper {
    fn spawn() -> Option<&'static Helper> {
        let (tx, rx) = std::sync::mpsc::channel::<&'static Helper>();
        let handle = std::thread::Builder::new()
            .name("gradlab-kernel".into())
            .spawn(move || {
                if let Ok(h) = rx.recv() {
                    h.serve();
                }
            })
            .ok()?;
        let h: &'static Helper = Box::leak(Box::new(Helper {
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicBool::new(true),
            thread: handle.thread().clone(),
        }));
        tx.send(h).ok()?;
        Some(h)
    }

    fn serve(&self) {
        loop {
            let mut spins = 0u32;
            let job = loop {
                if !self.job.load(Ordering::Relaxed).is_null() {
                    let p = self.job.swap(std::ptr::null_mut(), Ordering::Acquire);
                    if !p.is_null() {
                        break p;
                    }
                }
                spins = spins.saturating_add(1);
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::park();
                }
            };
            // SAFETY: the pointer was published by `Pool::run`, which does not return or
            // unwind (its `Dispatch` guard waits in `drop`) until this helper has set
            // `done` for a job it took; the job and everything it borrows therefore
            // outlive this reference, whose last use is before the store below.
            let job: &Job<'_> = unsafe { &*job };
            job.work();
            self.done.store(true, Ordering::Release);
        }
    }
}

/// The helpers, spawned on first use, and a flag that gives one caller at a time the use
/// of them (a nested or concurrent call runs its chunks on its own thread).
struct Pool {
    helpers: Mutex<Vec<&'static Helper>>,
    busy: AtomicBool,
}

impl Pool {
    fn new() -> Self {
        Pool {
            helpers: Mutex::new(Vec::new()),
            busy: AtomicBool::new(false),
        }
    }

    fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(Pool::new)
    }

    /// Up to `n` helpers, spawning missing ones (fewer if the system refuses a thread).
    fn helpers(&self, n: usize) -> SmallVec<[&'static Helper; 4]> {
        let mut hs = lock(&self.helpers);
        while hs.len() < n {
            match Helper::spawn() {
                Some(h) => hs.push(h),
                None => break,
            }
        }
        SmallVec::from_slice(&hs[..n.min(hs.len())])
    }

    fn run(&self, threads: usize, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        let want = threads.min(chunks).saturating_sub(1);
        if want == 0
            || self
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..chunks).for_each(f);
            return;
        }
        let _busy = Release(&self.busy);
        let job = Job {
            f,
            chunks,
            next: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        let ptr = &job as *const Job<'_> as *mut Job<'static>;
        let dispatch = Dispatch {
            job: &job,
            ptr,
            helpers: self.helpers(want),
        };
        for h in &dispatch.helpers {
            h.done.store(false, Ordering::Relaxed);
            h.job.store(ptr, Ordering::Release);
            h.thread.unpark();
        }
        job.work();
        // Waits for every helper that took the job (also if this thread is unwinding).
        drop(dispatch);
        let payload = lock(&job.panic).take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

/// Clears the pool's busy flag on every exit path.
struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The helpers a job was offered to. Dropping it cancels the unclaimed chunks, takes the
/// job back from helpers that have not picked it up, and waits for the others to finish:
/// after that no helper holds a reference to the job.
struct Dispatch<'a, 'j> {
    job: &'a Job<'j>,
    ptr: *mut Job<'static>,
    helpers: SmallVec<[&'static Helper; 4]>,
}

impl Drop for Dispatch<'_, '_> {
    fn drop(&mut self) {
        // When this thread is unwinding, stop handing out chunks.
        if std::thread::panicking() {
            self.job.next.fetch_max(self.job.chunks, Ordering::Relaxed);
        }
        for h in &self.helpers {
            let taken_back = h
                .job
                .compare_exchange(
                    self.ptr,
                    std::ptr::null_mut(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
            if taken_back {
                continue;
            }
            let mut spins = 0u32;
            while !h.done.load(Ordering::Acquire) {
                spins = spins.saturating_add(1);
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// Serialises the unit tests that set the global thread count, which the test harness
/// would otherwise run concurrently.
#[cfg(test)]
pub(crate) fn thread_count_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock(&LOCK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;
    use std::sync::atomic::AtomicU32;
    use std::time::{Duration, Instant};

    /// A pool of its own, so tests running in parallel never find it busy.
    fn pool() -> &'static Pool {
        Box::leak(Box::new(Pool::new()))
    }

    /// Spins until `flag` is set, for at most two seconds (a helper that never starts
    /// then shows as a failed assertion, not a hang).
    fn wait_for(flag: &AtomicBool) -> bool {
        let t = Instant::now();
        while !flag.load(Ordering::Acquire) {
            if t.elapsed() > Duration::from_secs(2) {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    fn message(payload: &(dyn Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    }

    #[test]
    fn the_environment_variable_gives_the_default_and_bad_values_fall_back() {
        assert_eq!(default_threads(Some("3"), 2), 3);
        assert_eq!(default_threads(Some(" 8 "), 2), 8);
        assert_eq!(default_threads(Some("1"), 4), 1);
        for bad in ["", "0", "-1", "two", "2.5", "99999999999999999999999"] {
            assert_eq!(default_threads(Some(bad), 2), 2, "{bad:?}");
        }
        assert_eq!(default_threads(None, 2), 2);
        assert_eq!(default_threads(None, 0), 1);
    }

    #[test]
    fn every_chunk_runs_exactly_once() {
        let p = pool();
        for threads in [1, 2, 3, 5] {
            for chunks in [0, 1, 2, 3, 7, 64] {
                let counts: Vec<AtomicU32> = (0..chunks).map(|_| AtomicU32::new(0)).collect();
                p.run(threads, chunks, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                    "{threads} threads, {chunks} chunks"
                );
            }
        }
    }

    #[test]
    fn for_each_mut_hands_each_item_to_one_thread() {
        let mut items: Vec<Vec<usize>> = vec![Vec::new(); 9];
        for_each_mut(&mut items, |i, v| v.push(i * 10));
        assert_eq!(items, (0..9).map(|i| vec![i * 10]).collect::<Vec<_>>());
    }

    /// Runs two chunks on `p`, one on this thread and one on a helper: each chunk
    /// announces where it runs and waits for the other, so neither thread can take both.
    /// Then `on_caller` or `on_helper` runs; returns `run`'s outcome.
    fn split_in_two(
        p: &Pool,
        on_caller: &(dyn Fn() + Sync),
        on_helper: &(dyn Fn() + Sync),
    ) -> std::thread::Result<()> {
        let caller = std::thread::current().id();
        let started = [AtomicBool::new(false), AtomicBool::new(false)];
        catch_unwind(AssertUnwindSafe(|| {
            p.run(2, 2, &|_| {
                let me = usize::from(std::thread::current().id() != caller);
                started[me].store(true, Ordering::Release);
                assert!(wait_for(&started[1 - me]), "the other half never started");
                if me == 0 {
                    on_caller()
                } else {
                    on_helper()
                }
            });
        }))
    }

    #[test]
    fn a_panic_on_the_calling_thread_waits_for_the_helper_then_propagates() {
        let p = pool();
        let helper_finished = AtomicBool::new(false);
        let res = split_in_two(p, &|| panic!("caller's chunk failed"), &|| {
            std::thread::sleep(Duration::from_millis(50));
            helper_finished.store(true, Ordering::Release);
        });
        let payload = res.expect_err("the caller's panic must propagate");
        assert_eq!(message(&*payload), "caller's chunk failed");
        // `run` unwound only after the helper's chunk ended: nothing of it still runs.
        assert!(helper_finished.load(Ordering::Acquire));
        // The pool is usable again.
        let n = AtomicU32::new(0);
        p.run(2, 4, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_panic_on_a_helper_reaches_the_caller_with_its_payload() {
        let p = pool();
        let caller_finished = AtomicBool::new(false);
        let res = split_in_two(
            p,
            &|| {
                std::thread::sleep(Duration::from_millis(50));
                caller_finished.store(true, Ordering::Release);
            },
            &|| panic!("helper's chunk failed"),
        );
        let payload = res.expect_err("the helper's panic must not be swallowed");
        assert_eq!(message(&*payload), "helper's chunk failed");
        assert!(caller_finished.load(Ordering::Acquire));
        // The helper survived its panic and serves the next job.
        let n = AtomicU32::new(0);
        p.run(2, 2, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_panic_stops_unclaimed_chunks() {
        let p = pool();
        let ran = AtomicU32::new(0);
        let res = catch_unwind(AssertUnwindSafe(|| {
            p.run(1, 100, &|i| {
                ran.fetch_add(1, Ordering::Relaxed);
                assert!(i != 3, "chunk 3 failed");
            });
        }));
        assert!(res.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 4);
        let res = catch_unwind(AssertUnwindSafe(|| {
            p.run(2, 1000, &|i| assert!(i != 0, "chunk 0 failed"));
        }));
        assert!(res.is_err());
    }
}
