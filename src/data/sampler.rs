//! Samplers: which examples an epoch visits, given the loader's order. The default visits all
//! of them; [`DistributedSampler`] gives each of several processes its own shard.

use std::fmt;

use super::dataset::DataError;

/// Chooses the examples of an epoch from the loader's order of the whole dataset (shuffled
/// by the loader's seed and the epoch, or `0..len` without shuffling), like the `sampler`
/// argument of `torch.utils.data.DataLoader`.
///
/// Shuffling stays with the loader (one seeded stream per epoch, see
/// [`DataLoader`](super::DataLoader)), so a sampler only selects and repeats: every epoch
/// reshuffles without a `set_epoch` call, and samplers built with the same seed on
/// different processes see the same order.
pub trait Sampler: fmt::Debug + Send + Sync {
    /// Number of examples an epoch yields from a dataset of `dataset_len` examples.
    fn len(&self, dataset_len: usize) -> usize;

    /// The examples of one epoch, in order, chosen from `order` (a permutation of the
    /// dataset's indices). Must return [`len`](Sampler::len)`(order.len())` indices.
    fn sample(&self, order: Vec<usize>) -> Vec<usize>;
}

/// Every example once, in the loader's order: what a loader without a sampler does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllExamples;

impl Sampler for AllExamples {
    fn len(&self, dataset_len: usize) -> usize {
        dataset_len
    }

    fn sample(&self, order: Vec<usize>) -> Vec<usize> {
        order
    }
}

/// What a [`DistributedSampler`] does when the dataset does not divide evenly among the
/// replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Remainder {
    /// Repeat examples from the start of the epoch's order until every replica has
    /// `ceil(len / replicas)` (PyTorch's default, `drop_last=False`). Every replica runs the
    /// same number of steps; a few examples count twice per epoch.
    Pad,
    /// Drop the tail of the epoch's order so that it divides evenly: `floor(len / replicas)`
    /// each (PyTorch's `drop_last=True`).
    Drop,
    /// Neither: replica `r` gets positions `r, r + replicas, …`, so shard sizes differ by at
    /// most one and every example is visited exactly once across the replicas. What
    /// evaluation needs (no padded duplicates in a metric); in training, the replicas may
    /// then run different numbers of batches — see
    /// [`DistributedSampler::batches_agree`].
    Uneven,
}

/// One replica's shard of each epoch, with the semantics of PyTorch's
/// `torch.utils.data.distributed.DistributedSampler`: the epoch's order is padded (or cut)
/// to a multiple of `replicas`, and replica `rank` takes every `replicas`-th index starting
/// at `rank`.
///
/// The order itself is the loader's (seeded by the loader's seed and the epoch), so with the
/// same seed on every process the shards of an epoch are disjoint (apart from padding) and
/// together they are the single-process order: batch `k` of the `R` replicas with batch size
/// `B` is batch `k` of one process with batch size `R·B`. Each epoch reshuffles by itself.
///
/// ```
/// use gradlab::data::{BatchRng, DataError, DataLoader, Dataset, DistributedSampler, LoaderOptions, Remainder};
///
/// struct Numbers; // the examples 0..10
/// impl Dataset for Numbers {
///     type Item = u32;
///     fn len(&self) -> usize { 10 }
///     fn get(&self, i: usize) -> Result<u32, DataError> { Ok(i as u32) }
/// }
/// let data = Numbers;
/// let collate = |items: Vec<u32>, _: &mut BatchRng| Ok::<_, DataError>(items);
/// let opts = LoaderOptions { shuffle: false, ..LoaderOptions::new(2) };
/// let shard = DistributedSampler::new(3, 1, Remainder::Pad)?; // replica 1 of 3
/// let mut loader = DataLoader::with_sampler(data, opts, shard, collate)?;
/// let seen: Vec<u32> = loader.epoch().collect::<Result<Vec<_>, _>>()?.concat();
/// assert_eq!(seen, [1, 4, 7, 0]); // 10 examples padded to 12 with 0 and 1
/// # Ok::<(), gradlab::data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DistributedSampler {
    replicas: usize,
    rank: usize,
    remainder: Remainder,
}

impl DistributedSampler {
    /// Replica `rank` of `replicas`.
    ///
    /// # Errors
    /// [`DataError::InvalidOption`] when `replicas` is 0 or `rank >= replicas`.
    pub fn new(replicas: usize, rank: usize, remainder: Remainder) -> Result<Self, DataError> {
        if replicas == 0 {
            return Err(DataError::InvalidOption {
                name: "replicas",
                value: "0".into(),
                reason: "a dataset needs at least one replica to be sharded over",
            });
        }
        if rank >= replicas {
            return Err(DataError::InvalidOption {
                name: "rank",
                value: format!("{rank} (of {replicas} replicas)"),
                reason: "the rank must be below the number of replicas",
            });
        }
        Ok(DistributedSampler {
            replicas,
            rank,
            remainder,
        })
    }

    /// Number of replicas.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// This replica's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// What happens to a remainder.
    pub fn remainder(&self) -> Remainder {
        self.remainder
    }

    /// Examples replica `rank` gets from a dataset of `dataset_len`.
    fn len_of(&self, rank: usize, dataset_len: usize) -> usize {
        let (n, r) = (dataset_len, self.replicas);
        match self.remainder {
            Remainder::Pad if n == 0 => 0,
            Remainder::Pad => n.div_ceil(r),
            Remainder::Drop => n / r,
            Remainder::Uneven => n / r + usize::from(rank < n % r),
        }
    }

    /// Whether every replica runs the same number of batches per epoch over a dataset of
    /// `dataset_len` with this batch size (always so with [`Remainder::Pad`] and
    /// [`Remainder::Drop`]). Data-parallel training calls one collective per batch, so
    /// replicas that disagree here would wait for each other at the end of an epoch.
    pub fn batches_agree(&self, dataset_len: usize, batch_size: usize, drop_last: bool) -> bool {
        let batches = |rank| {
            let len = self.len_of(rank, dataset_len);
            if batch_size == 0 {
                0
            } else if drop_last {
                len / batch_size
            } else {
                len.div_ceil(batch_size)
            }
        };
        (0..self.replicas).all(|r| batches(r) == batches(0))
    }
}

impl Sampler for DistributedSampler {
    fn len(&self, dataset_len: usize) -> usize {
        self.len_of(self.rank, dataset_len)
    }

    fn sample(&self, mut order: Vec<usize>) -> Vec<usize> {
        let n = order.len();
        let total = match self.remainder {
            Remainder::Uneven => n,
            _ => self.len(n) * self.replicas,
        };
        if total > n && n > 0 {
            // PyTorch's padding: repeat the order from its start (several times over when
            // there are more replicas than examples).
            let pad: Vec<usize> = order.iter().copied().cycle().take(total - n).collect();
            order.extend(pad);
        }
        order.truncate(total);
        order
            .into_iter()
            .skip(self.rank)
            .step_by(self.replicas)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(replicas: usize, rank: usize, rem: Remainder, n: usize) -> Vec<usize> {
        let s = DistributedSampler::new(replicas, rank, rem).unwrap();
        let out = s.sample((0..n).collect());
        assert_eq!(out.len(), s.len(n), "len() disagrees with sample()");
        out
    }

    #[test]
    fn shards_follow_pytorchs_distributed_sampler() {
        // torch.utils.data.distributed.DistributedSampler(range(10), num_replicas=3,
        // rank=r, shuffle=False) yields [0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1];
        // with drop_last=True: [0, 3, 6], [1, 4, 7], [2, 5, 8].
        let pad: Vec<_> = (0..3).map(|r| shard(3, r, Remainder::Pad, 10)).collect();
        assert_eq!(pad, [vec![0, 3, 6, 9], vec![1, 4, 7, 0], vec![2, 5, 8, 1]]);
        let drop: Vec<_> = (0..3).map(|r| shard(3, r, Remainder::Drop, 10)).collect();
        assert_eq!(drop, [vec![0, 3, 6], vec![1, 4, 7], vec![2, 5, 8]]);
        // More replicas than examples: PyTorch repeats the whole list ([0, 1, 0, 1, 0]).
        let tiny: Vec<_> = (0..5).map(|r| shard(5, r, Remainder::Pad, 2)).collect();
        assert_eq!(tiny, [vec![0], vec![1], vec![0], vec![1], vec![0]]);
    }

    #[test]
    fn uneven_shards_visit_every_example_exactly_once() {
        for n in 0..20 {
            for replicas in 1..6 {
                let mut all: Vec<usize> = (0..replicas)
                    .flat_map(|r| shard(replicas, r, Remainder::Uneven, n))
                    .collect();
                all.sort();
                assert_eq!(
                    all,
                    (0..n).collect::<Vec<_>>(),
                    "n {n}, {replicas} replicas"
                );
            }
        }
    }

    #[test]
    fn padded_and_dropped_shards_have_equal_lengths_and_are_disjoint_before_padding() {
        for n in 1..30 {
            for replicas in 1..5 {
                for rem in [Remainder::Pad, Remainder::Drop] {
                    let shards: Vec<_> =
                        (0..replicas).map(|r| shard(replicas, r, rem, n)).collect();
                    assert!(shards.iter().all(|s| s.len() == shards[0].len()));
                    let mut all: Vec<usize> = shards.concat();
                    all.sort();
                    all.dedup();
                    let distinct = if rem == Remainder::Pad {
                        n
                    } else {
                        n / replicas * replicas
                    };
                    assert_eq!(all.len(), distinct, "n {n}, {replicas} replicas, {rem:?}");
                }
            }
        }
    }

    #[test]
    fn batch_counts_agree_unless_uneven_shards_cross_a_batch_boundary() {
        let s = |rank| DistributedSampler::new(3, rank, Remainder::Uneven).unwrap();
        // 22 examples: shards of 8, 7, 7 → 2 batches of 4 each (last ones 4, 3, 3)
        assert!(s(0).batches_agree(22, 4, false));
        // 10 examples: 4, 3, 3 → 2, 1, 1 batches of 3
        assert!(!s(0).batches_agree(10, 3, false));
        assert!(s(0).batches_agree(10, 3, true));
        let pad = DistributedSampler::new(3, 0, Remainder::Pad).unwrap();
        assert!(pad.batches_agree(10, 3, false));
    }

    #[test]
    fn invalid_replicas_or_rank_are_errors() {
        assert!(matches!(
            DistributedSampler::new(0, 0, Remainder::Pad),
            Err(DataError::InvalidOption {
                name: "replicas",
                ..
            })
        ));
        assert!(matches!(
            DistributedSampler::new(2, 2, Remainder::Pad),
            Err(DataError::InvalidOption { name: "rank", .. })
        ));
    }
}
