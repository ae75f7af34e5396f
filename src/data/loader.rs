//! `DataLoader`: seeded shuffling, batching, collation, optional background workers, and a
//! position that can be saved and resumed.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::dataset::{Collate, DataError, Dataset};
use super::rng::{derive, BatchRng};

/// How a [`DataLoader`] batches. Build with [`LoaderOptions::new`] and struct update syntax:
/// `LoaderOptions { drop_last: true, seed: 7, ..LoaderOptions::new(64) }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Examples per batch (at least 1).
    pub batch_size: usize,
    /// Visit the examples in a new seeded order each epoch (else in index order).
    pub shuffle: bool,
    /// Skip the last batch of an epoch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// The seed every order and batch stream derives from.
    pub seed: u64,
    /// Background threads making batches (0: batches are made in the calling thread when
    /// asked for). The batches are the same whatever the number.
    pub workers: usize,
    /// Batches each worker may make ahead of the consumer.
    pub prefetch: usize,
}

impl LoaderOptions {
    /// Shuffled batches of `batch_size`, the last one kept even when smaller, seed 0, no
    /// worker threads, 2 batches of prefetch once workers are turned on.
    pub fn new(batch_size: usize) -> Self {
        LoaderOptions {
            batch_size,
            shuffle: true,
            drop_last: false,
            seed: 0,
            workers: 0,
            prefetch: 2,
        }
    }
}

/// A loader's position: the next batch it will yield, and what that position means.
///
/// Saved with a checkpoint and handed to [`DataLoader::resume`], it makes the loader yield
/// exactly the batches the interrupted run would have yielded next — mid-epoch included.
/// `dataset_len` and `batch_size` guard against resuming over other data or batching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoaderState {
    /// The seed of every order and batch stream.
    pub seed: u64,
    /// The epoch (from 0); its order is derived from `(seed, epoch)`.
    pub epoch: u64,
    /// The next batch to yield within the epoch (0 at the start of an epoch).
    pub batch: usize,
    /// The dataset's length when the state was taken.
    pub dataset_len: usize,
    /// The batch size when the state was taken.
    pub batch_size: usize,
}

/// Batches of a [`Dataset`], collated by a [`Collate`], in a seeded order that changes every
/// epoch (`torch.utils.data.DataLoader` with a generator, minus the pitfalls).
///
/// - **Deterministic**: epoch `e`'s order is a Fisher-Yates shuffle driven by the stream
///   `(seed, e)`, and batch `i`'s collation gets the stream `(seed, e, i)` (a fixed
///   generator, [`BatchRng`]), so the same seed gives the same batches on every machine,
///   with or without worker threads, and resuming reproduces them.
/// - **Each epoch reshuffles** by itself: the epoch number is part of the stream, there is
///   no `set_epoch` to forget.
/// - **Workers** each make every `workers`-th batch and the loader reassembles them in
///   order; their random draws come from the batch's stream, never from a per-thread
///   generator, so no two workers share a stream.
///
/// ```
/// use gradlab::data::{DataLoader, Digits, LoaderOptions, digits_path};
///
/// let digits = Digits::load(digits_path())?;
/// let opts = LoaderOptions { drop_last: true, seed: 7, ..LoaderOptions::new(64) };
/// let mut loader = DataLoader::new(digits, opts, Digits::collate::<f32>)?;
/// for batch in loader.epoch() {
///     let batch = batch?;                    // inputs [64, 64] f32, labels: Vec<usize>
///     assert_eq!(batch.inputs.dims(), &[64, 64]);
/// }
/// assert_eq!(loader.state().epoch, 1);       // the next epoch gets a new order
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DataLoader<D, C> {
    dataset: Arc<D>,
    collate: Arc<C>,
    opts: LoaderOptions,
    epoch: u64,
    batch: usize,
}

impl<D, C> DataLoader<D, C>
where
    D: Dataset + Send + Sync + 'static,
    C: Collate<D::Item> + Send + Sync + 'static,
    C::Batch: Send + 'static,
{
    /// A loader at the start of epoch 0.
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] for a batch size of 0.
    pub fn new(dataset: D, opts: LoaderOptions, collate: C) -> Result<Self, DataError> {
        if opts.batch_size == 0 {
            return Err(DataError::InvalidOption {
                name: "batch_size",
                value: "0".into(),
                reason: "a batch needs at least one example",
            });
        }
        Ok(DataLoader {
            dataset: Arc::new(dataset),
            collate: Arc::new(collate),
            opts,
            epoch: 0,
            batch: 0,
        })
    }

    /// The options.
    pub fn options(&self) -> &LoaderOptions {
        &self.opts
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.opts.batch_size);
        if self.opts.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The current position (what a checkpoint saves).
    pub fn state(&self) -> LoaderState {
        LoaderState {
            seed: self.opts.seed,
            epoch: self.epoch,
            batch: self.batch,
            dataset_len: self.dataset.len(),
            batch_size: self.opts.batch_size,
        }
    }

    /// Moves to a saved position (and adopts its seed): the next batches are the ones the
    /// saved loader would have yielded next.
    ///
    /// # Errors
    /// [`DataError::ResumeMismatch`] when the dataset length or batch size differ from the
    /// saved ones; [`DataError::InvalidOption`] when the batch index is past the epoch's end.
    pub fn resume(&mut self, state: LoaderState) -> Result<(), DataError> {
        let checks = [
            ("dataset length", state.dataset_len, self.dataset.len()),
            ("batch size", state.batch_size, self.opts.batch_size),
        ];
        for (field, saved, current) in checks {
            if saved != current {
                return Err(DataError::ResumeMismatch {
                    field,
                    saved: saved as u64,
                    current: current as u64,
                });
            }
        }
        if state.batch > self.batches_per_epoch() {
            return Err(DataError::InvalidOption {
                name: "batch",
                value: state.batch.to_string(),
                reason: "past the last batch of an epoch",
            });
        }
        self.opts.seed = state.seed;
        self.epoch = state.epoch;
        self.batch = state.batch;
        Ok(())
    }

    /// The order in which epoch `epoch` visits the examples.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.dataset.len()).collect();
        if self.opts.shuffle {
            BatchRng::new(derive(self.opts.seed, epoch, 0)).shuffle(&mut idx);
        }
        idx
    }

    /// The remaining batches of the current epoch, from the current position. When the
    /// last one has been yielded the loader moves to the next epoch; stopping early leaves
    /// it at the next unread batch, where the next call (or a resumed loader) goes on.
    pub fn epoch(&mut self) -> Batches<'_, D, C> {
        let order = Arc::new(self.order(self.epoch));
        let end = self.batches_per_epoch();
        let job = Job {
            dataset: self.dataset.clone(),
            collate: self.collate.clone(),
            order,
            batch_size: self.opts.batch_size,
            seed: self.opts.seed,
            epoch: self.epoch,
        };
        let workers = (self.opts.workers > 0 && self.batch < end)
            .then(|| Workers::spawn(&job, self.batch, end, &self.opts));
        Batches {
            loader: self,
            job,
            end,
            workers,
            done: false,
        }
    }
}

/// What every batch of one epoch is made from.
struct Job<D, C> {
    dataset: Arc<D>,
    collate: Arc<C>,
    order: Arc<Vec<usize>>,
    batch_size: usize,
    seed: u64,
    epoch: u64,
}

impl<D, C> Job<D, C>
where
    D: Dataset,
    C: Collate<D::Item>,
{
    fn make(&self, b: usize) -> Result<C::Batch, DataError> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let items = self.order[start..end]
            .iter()
            .map(|&i| self.dataset.get(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rng = BatchRng::new(derive(self.seed, self.epoch, b as u64 + 1));
        self.collate.collate(items, &mut rng)
    }
}

impl<D, C> Clone for Job<D, C> {
    fn clone(&self) -> Self {
        Job {
            dataset: self.dataset.clone(),
            collate: self.collate.clone(),
            order: self.order.clone(),
            batch_size: self.batch_size,
            seed: self.seed,
            epoch: self.epoch,
        }
    }
}

/// Background threads, worker `w` making batches `start + w`, `start + w + n`, ….
struct Workers<B> {
    rx: Vec<Receiver<Result<B, DataError>>>,
    handles: Vec<JoinHandle<()>>,
    start: usize,
}

impl<B: Send + 'static> Workers<B> {
    fn spawn<D, C>(job: &Job<D, C>, start: usize, end: usize, opts: &LoaderOptions) -> Self
    where
        D: Dataset + Send + Sync + 'static,
        C: Collate<D::Item, Batch = B> + Send + Sync + 'static,
    {
        let n = opts.workers.min(end - start).max(1);
        let (mut rx, mut handles) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for w in 0..n {
            let (tx, r) = sync_channel(opts.prefetch);
            let job = job.clone();
            handles.push(std::thread::spawn(move || {
                for b in (start + w..end).step_by(n) {
                    // A closed channel means the consumer stopped: stop too.
                    if tx.send(job.make(b)).is_err() {
                        return;
                    }
                }
            }));
            rx.push(r);
        }
        Workers { rx, handles, start }
    }

    fn recv(&self, b: usize, epoch: u64) -> Result<B, DataError> {
        let w = (b - self.start) % self.rx.len();
        // Each worker sends its batches in order, so this is batch b; a closed channel
        // before it means the worker died (a panic in the dataset or the collate function).
        self.rx[w]
            .recv()
            .unwrap_or(Err(DataError::WorkerPanicked { epoch, batch: b }))
    }
}

impl<B> Drop for Workers<B> {
    fn drop(&mut self) {
        // Close the channels first so that workers blocked on a full one return.
        self.rx.clear();
        for h in self.handles.drain(..) {
            // A worker's panic was already reported as `WorkerPanicked`, if it mattered.
            let _ = h.join();
        }
    }
}

/// The remaining batches of one epoch (see [`DataLoader::epoch`]). Yields
/// `Result<Batch, DataError>`; after an error it yields nothing more, and the loader stays
/// at the batch that failed.
pub struct Batches<'a, D, C>
where
    D: Dataset,
    C: Collate<D::Item>,
{
    loader: &'a mut DataLoader<D, C>,
    job: Job<D, C>,
    end: usize,
    workers: Option<Workers<C::Batch>>,
    done: bool,
}

impl<D, C> Iterator for Batches<'_, D, C>
where
    D: Dataset + Send + Sync + 'static,
    C: Collate<D::Item> + Send + Sync + 'static,
    C::Batch: Send + 'static,
{
    type Item = Result<C::Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.loader.batch;
        if b >= self.end {
            // An epoch with no (more) batches still counts as passed.
            self.finish_epoch();
            return None;
        }
        let res = match &self.workers {
            Some(w) => w.recv(b, self.job.epoch),
            None => self.job.make(b),
        };
        match res {
            Ok(batch) => {
                self.loader.batch += 1;
                if self.loader.batch == self.end {
                    self.finish_epoch();
                }
                Some(Ok(batch))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.done {
            0
        } else {
            self.end.saturating_sub(self.loader.batch)
        };
        (0, Some(left))
    }
}

impl<D, C> Batches<'_, D, C>
where
    D: Dataset,
    C: Collate<D::Item>,
{
    fn finish_epoch(&mut self) {
        self.loader.epoch += 1;
        self.loader.batch = 0;
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use rand::RngCore;

    use super::*;

    /// Items 0..n; item `fail` (if any) is an error, item `panic` panics.
    struct Numbers {
        n: usize,
        fail: Option<usize>,
        panic: Option<usize>,
    }

    fn numbers(n: usize) -> Numbers {
        Numbers {
            n,
            fail: None,
            panic: None,
        }
    }

    impl Dataset for Numbers {
        type Item = usize;
        fn len(&self) -> usize {
            self.n
        }
        fn get(&self, index: usize) -> Result<usize, DataError> {
            assert!(self.panic != Some(index), "item {index} panics");
            if self.fail == Some(index) || index >= self.n {
                return Err(DataError::Index { index, len: self.n });
            }
            Ok(index)
        }
    }

    /// The items and one draw from the batch's stream (stands in for augmentation).
    type Batch = (Vec<usize>, u64);

    fn collate(items: Vec<usize>, rng: &mut BatchRng) -> Result<Batch, DataError> {
        Ok((items, rng.next_u64()))
    }

    type CollateFn = fn(Vec<usize>, &mut BatchRng) -> Result<Batch, DataError>;

    fn loader(n: usize, opts: LoaderOptions) -> DataLoader<Numbers, CollateFn> {
        DataLoader::new(numbers(n), opts, collate as _).unwrap()
    }

    fn epoch_batches<D, C>(l: &mut DataLoader<D, C>) -> Vec<C::Batch>
    where
        D: Dataset + Send + Sync + 'static,
        C: Collate<D::Item> + Send + Sync + 'static,
        C::Batch: Send + 'static,
    {
        l.epoch().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_batches_and_another_seed_others() {
        let opts = LoaderOptions {
            seed: 9,
            ..LoaderOptions::new(4)
        };
        let (mut a, mut b) = (loader(30, opts.clone()), loader(30, opts.clone()));
        let mut c = loader(30, LoaderOptions { seed: 10, ..opts });
        for _ in 0..3 {
            let ea = epoch_batches(&mut a);
            assert_eq!(ea, epoch_batches(&mut b));
            assert_ne!(ea, epoch_batches(&mut c));
        }
    }

    #[test]
    fn the_order_is_pinned_across_machines_and_versions() {
        // From an independent Python transcription of SplitMix64 + Fisher-Yates with the
        // stream derived from (seed 42, epoch 1, stream 0).
        assert_eq!(
            loader(
                10,
                LoaderOptions {
                    seed: 42,
                    ..LoaderOptions::new(3)
                }
            )
            .order(1),
            vec![3, 5, 1, 8, 9, 7, 2, 0, 4, 6]
        );
    }

    #[test]
    fn each_epoch_reshuffles_and_visits_every_example_once() {
        let mut l = loader(50, LoaderOptions::new(8));
        let mut orders = Vec::new();
        for e in 0..4 {
            assert_eq!(l.state().epoch, e);
            let seen: Vec<usize> = epoch_batches(&mut l)
                .into_iter()
                .flat_map(|b| b.0)
                .collect();
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(sorted, (0..50).collect::<Vec<_>>());
            assert!(
                !orders.contains(&seen),
                "epoch {e} repeats an earlier order"
            );
            orders.push(seen);
        }
        let mut plain = loader(
            5,
            LoaderOptions {
                shuffle: false,
                ..LoaderOptions::new(2)
            },
        );
        let b = epoch_batches(&mut plain);
        assert_eq!(
            b.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
    }

    #[test]
    fn drop_last_skips_only_a_short_last_batch() {
        let sizes = |n, drop_last| {
            let mut l = loader(
                n,
                LoaderOptions {
                    drop_last,
                    ..LoaderOptions::new(4)
                },
            );
            assert_eq!(l.batches_per_epoch(), epoch_batches(&mut l).len());
            epoch_batches(&mut l)
                .iter()
                .map(|b| b.0.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(10, false), vec![4, 4, 2]);
        assert_eq!(sizes(10, true), vec![4, 4]);
        assert_eq!(sizes(8, true), vec![4, 4]);
        assert_eq!(sizes(3, true), Vec::<usize>::new());
        // an epoch without batches still passes
        let mut l = loader(
            3,
            LoaderOptions {
                drop_last: true,
                ..LoaderOptions::new(4)
            },
        );
        assert!(l.epoch().next().is_none());
        assert_eq!(l.state().epoch, 1);
    }

    #[test]
    fn workers_and_prefetch_do_not_change_the_batches() {
        let base = LoaderOptions {
            seed: 3,
            ..LoaderOptions::new(3)
        };
        let mut serial = loader(31, base.clone());
        let reference: Vec<Vec<Batch>> = (0..3).map(|_| epoch_batches(&mut serial)).collect();
        for (workers, prefetch) in [(1, 0), (1, 2), (2, 1), (3, 4), (16, 1)] {
            let mut l = loader(
                31,
                LoaderOptions {
                    workers,
                    prefetch,
                    ..base.clone()
                },
            );
            for (e, r) in reference.iter().enumerate() {
                assert_eq!(&epoch_batches(&mut l), r, "workers {workers}, epoch {e}");
            }
        }
    }

    #[test]
    fn a_resumed_loader_continues_with_the_next_batch() {
        for workers in [0, 2] {
            let opts = LoaderOptions {
                seed: 5,
                workers,
                ..LoaderOptions::new(4)
            };
            let mut full = loader(22, opts.clone());
            let all: Vec<Vec<Batch>> = (0..3).map(|_| epoch_batches(&mut full)).collect();

            // stop after one epoch and 3 batches of the next, at an awkward place
            let mut first = loader(22, opts.clone());
            epoch_batches(&mut first);
            let head: Vec<Batch> = first.epoch().take(3).map(Result::unwrap).collect();
            assert_eq!(head, all[1][..3]);
            let saved = first.state();
            assert_eq!((saved.epoch, saved.batch), (1, 3));

            let mut resumed = loader(22, LoaderOptions { seed: 0, ..opts });
            resumed.resume(saved).unwrap();
            assert_eq!(epoch_batches(&mut resumed), all[1][3..]);
            assert_eq!(epoch_batches(&mut resumed), all[2]);
            // stopping early and calling epoch() again also goes on from there
            assert_eq!(epoch_batches(&mut first), all[1][3..]);
        }
    }

    #[test]
    fn resuming_over_other_data_or_batching_is_refused() {
        let mut l = loader(20, LoaderOptions::new(4));
        let s = l.state();
        let e = loader(21, LoaderOptions::new(4)).resume(s).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::ResumeMismatch {
                    field: "dataset length",
                    saved: 20,
                    current: 21
                }
            ),
            "{e}"
        );
        let e = loader(20, LoaderOptions::new(5)).resume(s).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::ResumeMismatch {
                    field: "batch size",
                    ..
                }
            ),
            "{e}"
        );
        let e = l.resume(LoaderState { batch: 6, ..s }).unwrap_err();
        assert!(
            matches!(e, DataError::InvalidOption { name: "batch", .. }),
            "{e}"
        );
        let e = DataLoader::new(numbers(3), LoaderOptions::new(0), collate)
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                DataError::InvalidOption {
                    name: "batch_size",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_failing_item_stops_the_epoch_at_its_batch() {
        for workers in [0, 2] {
            let opts = LoaderOptions {
                shuffle: false,
                workers,
                ..LoaderOptions::new(2)
            };
            let data = Numbers {
                fail: Some(5),
                ..numbers(10)
            };
            let mut l = DataLoader::new(data, opts, collate).unwrap();
            let got: Vec<_> = l.epoch().collect();
            assert_eq!(got.len(), 3);
            assert!(matches!(got[2], Err(DataError::Index { index: 5, .. })));
            assert_eq!((l.state().epoch, l.state().batch), (0, 2));
        }
    }

    #[test]
    fn a_panicking_worker_is_an_error_not_a_hang() {
        let opts = LoaderOptions {
            shuffle: false,
            workers: 2,
            ..LoaderOptions::new(2)
        };
        let data = Numbers {
            panic: Some(4),
            ..numbers(10)
        };
        let mut l = DataLoader::new(data, opts, collate).unwrap();
        let got: Vec<_> = l.epoch().collect();
        assert_eq!(got.len(), 3);
        assert!(
            matches!(
                got[2],
                Err(DataError::WorkerPanicked { epoch: 0, batch: 2 })
            ),
            "{:?}",
            got[2]
        );
    }
}
