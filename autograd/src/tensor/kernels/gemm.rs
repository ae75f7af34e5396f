//! Matrix products through the `gemm` crate.
//!
//! `gemm` was measured against `matrixmultiply` on this project's machine (f32, 1 thread:
//! 105-112 vs 97-103 GFLOP/s; 2 threads at batch 128: 186-206 vs 130) and kept. Its
//! `x86-v4` feature compiles AVX-512 kernels in but picks them at run time
//! (`is_x86_feature_detected!`), falling back to FMA/AVX2 or scalar code, so one binary runs
//! on any x86-64.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Products this small are cheaper as a plain loop than through the packing GEMM.
const SMALL: usize = 16 * 16 * 16;
/// Below this many multiply-adds a second thread costs more than it saves. Measured with 2
/// threads: 128³ products ran at 66 GFLOP/s threaded vs 108 serial, and the deep-MLP
/// workload's 64×256×256 products made its step slower (10.5 ms) than one thread (8.0);
/// 512³ and the 128×784×512 layer of W1 gain ~2× and ~1.3×.
const PARALLEL_MIN: usize = 200 * 200 * 200;
/// From this size, threads split the rows of the output and each runs a serial GEMM (with
/// two threads at every size, with more up to `PARALLEL_MIN`): a layer's 64×256×256
/// product gains from two threads that way where `gemm`'s own schedule on the rayon pool
/// loses to the pool's wake-up latency.
const SPLIT_MIN: usize = 48 * 48 * 48;

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads matrix products may use (default 1). Elementwise ops are always
/// single-threaded: on small graphs the synchronisation would cost more than the work.
pub fn set_num_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The thread count set by [`set_num_threads`].
pub fn num_threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// `c (m×n, contiguous) = a (m×k) · b (k×n)`, operands read through (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: crate::Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    rsa: isize,
    csa: isize,
    b: &[T],
    rsb: isize,
    csb: isize,
    c: &mut [T],
) {
    assert!(c.len() >= m * n, "internal: gemm output too small");
    if m == 0 || n == 0 {
        return;
    }
    let at = |i: usize, p: usize| a[(i as isize * rsa + p as isize * csa) as usize];
    let bt = |p: usize, j: usize| b[(p as isize * rsb + j as isize * csb) as usize];
    if m * n * k <= SMALL {
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::zero();
                for p in 0..k {
                    acc += at(i, p) * bt(p, j);
                }
                c[i * n + j] = acc;
            }
        }
        return;
    }
    let ops = Operands {
        k,
        n,
        a,
        rsa,
        csa,
        b,
        rsb,
        csb,
    };
    let threads = num_threads();
    let work = m * n * k;
    let split = if threads == 2 {
        work >= SPLIT_MIN
    } else {
        (SPLIT_MIN..PARALLEL_MIN).contains(&work)
    };
    if threads > 1 && split && m >= 2 * 16 {
        // Contiguous blocks of output rows; each block reads the matching rows of `a`.
        let rows = m.div_ceil(threads.min(m / 16));
        let (top, bottom) = c[..m * n].split_at_mut(rows * n);
        if threads == 2 {
            // Products this size take tens of microseconds: waking a sleeping pool thread
            // costs as much, so the second half goes to a spinning helper (as OpenMP's
            // active wait does) while this thread computes the first.
            let (top, bottom) = (std::sync::Mutex::new(top), std::sync::Mutex::new(bottom));
            spin::run_pair(
                &|| ops.rows(0, &mut top.lock().expect("internal: gemm half"), SERIAL),
                &|| {
                    ops.rows(
                        rows,
                        &mut bottom.lock().expect("internal: gemm half"),
                        SERIAL,
                    )
                },
            );
            return;
        }
        rayon::scope(|s| {
            let ops = &ops;
            s.spawn(move |_| ops.rows(0, top, SERIAL));
            for (blk, c_rows) in bottom.chunks_mut(rows * n).enumerate() {
                s.spawn(move |_| ops.rows((blk + 1) * rows, c_rows, SERIAL));
            }
        });
        return;
    }
    let par = if threads > 1 && work >= PARALLEL_MIN {
        gemm::Parallelism::Rayon(threads)
    } else {
        SERIAL
    };
    ops.rows(0, &mut c[..m * n], par);
}

const SERIAL: gemm::Parallelism = gemm::Parallelism::None;

/// The operands of one product, so blocks of output rows can be computed separately.
struct Operands<'a, T> {
    k: usize,
    n: usize,
    a: &'a [T],
    rsa: isize,
    csa: isize,
    b: &'a [T],
    rsb: isize,
    csb: isize,
}

impl<T: crate::Float> Operands<'_, T> {
    /// Output rows `i0 .. i0 + c.len()/n` into `c`.
    fn rows(&self, i0: usize, c: &mut [T], par: gemm::Parallelism) {
        let (k, n) = (self.k, self.n);
        let m = c.len() / n;
        let a = &self.a[(i0 as isize * self.rsa) as usize..];
        let (rsa, csa, rsb, csb) = (self.rsa, self.csa, self.rsb, self.csb);
        // The strides must keep every read inside the slices: the furthest elements are
        // (m-1, k-1) of `a` and (k-1, n-1) of `b`.
        assert!(
            ((m - 1) as isize * rsa + (k - 1) as isize * csa) < a.len() as isize
                && ((k - 1) as isize * rsb + (n - 1) as isize * csb) < self.b.len() as isize,
            "internal: gemm strides exceed the operands"
        );
        // SAFETY: the assert above bounds every operand read, `c` holds m·n elements
        // written with row stride n and column stride 1, and `read_dst = false` means `c`
        // is only written. T is f32 or f64, both supported by `gemm`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                csa,
                rsa,
                self.b.as_ptr(),
                csb,
                rsb,
                T::zero(),
                T::one(),
                false,
                false,
                false,
                par,
            );
        }
    }
}

/// A second thread that spins briefly between jobs, for two-way splits of work too small
/// to pay for a sleeping thread's wake-up.
mod spin {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::thread::Thread;

    type Job<'a> = &'a (dyn Fn() + Sync);

    struct Helper {
        /// Points at the caller's `Job` while one is pending; null otherwise.
        job: AtomicPtr<Job<'static>>,
        done: AtomicBool,
        thread: Thread,
        /// Held by the caller that owns the helper for one job; others run serially.
        busy: Mutex<()>,
    }

    /// About 50 µs of spinning before the helper parks: longer than the gaps between the
    /// products of one training step, shorter than anything a user would notice as load.
    const SPINS: u32 = 20_000;

    fn helper() -> &'static Helper {
        static HELPER: OnceLock<&'static Helper> = OnceLock::new();
        HELPER.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<&'static Helper>();
            let handle = std::thread::Builder::new()
                .name("gradlab-gemm".into())
                .spawn(move || {
                    let h = rx.recv().expect("internal: helper handshake");
                    loop {
                        let mut spins = 0;
                        let job = loop {
                            let p = h.job.load(Ordering::Acquire);
                            if !p.is_null() {
                                break p;
                            }
                            spins += 1;
                            if spins < SPINS {
                                std::hint::spin_loop();
                            } else {
                                std::thread::park();
                            }
                        };
                        // SAFETY: `run_pair` stored a pointer to a live `Job` and does not
                        // return (so the job's borrows stay valid) until `done` is set.
                        let f: Job<'_> = unsafe { *job };
                        // A panic must still release the caller; it is reported as the
                        // caller's own result being incomplete, which cannot happen for a
                        // GEMM kernel whose bounds were checked before the split.
                        let _ = catch_unwind(AssertUnwindSafe(f));
                        h.job.store(std::ptr::null_mut(), Ordering::Relaxed);
                        h.done.store(true, Ordering::Release);
                    }
                })
                .expect("internal: spawning the gemm helper thread");
            let h: &'static Helper = Box::leak(Box::new(Helper {
                job: AtomicPtr::new(std::ptr::null_mut()),
                done: AtomicBool::new(true),
                thread: handle.thread().clone(),
                busy: Mutex::new(()),
            }));
            tx.send(h).expect("internal: helper handshake");
            h
        })
    }

    /// Runs `first` on this thread and `second` on the helper, returning when both are
    /// done; runs both here when another caller is using the helper.
    pub(super) fn run_pair(first: Job<'_>, second: Job<'_>) {
        let h = helper();
        let Ok(_guard) = h.busy.try_lock() else {
            first();
            second();
            return;
        };
        let job: Job<'_> = second;
        h.done.store(false, Ordering::Relaxed);
        // The pointer is only dereferenced while this function waits below.
        h.job.store(
            &job as *const Job<'_> as *mut Job<'static>,
            Ordering::Release,
        );
        h.thread.unpark();
        first();
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

#[cfg(test)]
mod tests {
    use crate::Tensor;
    use rand::{rngs::StdRng, SeedableRng};

    /// Products in the row-split range and the `gemm`-parallel range give the serial
    /// result on every element, transposed operands included.
    #[test]
    fn threaded_products_equal_the_serial_ones() {
        let mut rng = StdRng::seed_from_u64(3);
        for (m, k, n) in [(64, 256, 256), (37, 100, 90), (256, 210, 200)] {
            let a = Tensor::<f64>::randn([m, k], &mut rng);
            let b = Tensor::<f64>::randn([k, n], &mut rng);
            let at = a.transpose(0, 1).unwrap();
            super::set_num_threads(1);
            let serial = a.matmul(&b).unwrap();
            super::set_num_threads(2);
            let threaded = a.matmul(&b).unwrap();
            let threaded_t = at.matmul_t(&b, true, false).unwrap();
            super::set_num_threads(1);
            // Each output element is the same dot product in the same order either way.
            assert_eq!(serial, threaded, "{m}x{k}x{n}");
            let diff = serial
                .as_slice()
                .iter()
                .zip(threaded_t.as_slice())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-12, "{m}x{k}x{n} transposed: {diff}");
        }
    }
}
