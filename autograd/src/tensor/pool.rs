//! A cache of large tensor buffers, reused instead of returned to the allocator.
//!
//! A training step allocates the same large buffers every iteration (activations,
//! gradients, optimiser temporaries) and frees them when its tape drops. Allocators hand
//! big blocks back to the operating system (glibc above its mmap threshold, mimalloc after
//! its purge delay), so each step paid again for zero-filled pages: a fifth of a wide
//! elementwise step (W9) was the kernel clearing pages. As PyTorch's caching allocators do,
//! a buffer of at least [`MIN_BYTES`] goes back to a per-dtype cache when its last tensor
//! drops and serves the next request of about its size. The cache is bounded (256 MiB
//! unless [`BUFFER_CACHE_ENV`] or [`set_buffer_cache_limit`] says otherwise) and
//! [`empty_buffer_cache`] frees it.
//!
//! Reuse never shows in results: a buffer taken from the cache is empty (`len == 0`), and
//! every kernel writes what it reads.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Buffers smaller than this are left to the allocator, which keeps small blocks anyway.
/// It is glibc's initial mmap threshold: a block from there up is mapped afresh for each
/// allocation until the allocator sees one freed, which with this cache it never does.
pub(crate) const MIN_BYTES: usize = 128 << 10;

/// The environment variable read once for the cache's limit, in MiB (0 turns it off).
pub const BUFFER_CACHE_ENV: &str = "GRADLAB_BUFFER_CACHE_MB";

const DEFAULT_LIMIT: usize = 256 << 20;

/// Free buffers of one element type, oldest first.
struct Cache<T> {
    free: Vec<Vec<T>>,
    bytes: usize,
    /// Per capacity, how many buffers are still to come back: one for each request of that
    /// size, less one for each buffer of it kept since. A buffer is kept only when its
    /// size is wanted, so sizes that code allocating outside the cache frees (or sizes
    /// asked for once) do not pile up in it.
    wanted: BTreeMap<usize, usize>,
}

impl<T> Cache<T> {
    const fn new() -> Self {
        Cache {
            free: Vec::new(),
            bytes: 0,
            wanted: BTreeMap::new(),
        }
    }

    /// The most recently cached buffer of capacity `n`. Only an exact fit is taken: a
    /// training step asks for the same sizes every iteration, and a request served by a
    /// larger buffer leaves the request of that size to the allocator.
    fn take(&mut self, n: usize) -> Option<Vec<T>> {
        *self.wanted.entry(n).or_default() += 1;
        let k = self.free.iter().rposition(|v| v.capacity() == n)?;
        let v = self.free.remove(k);
        self.bytes -= v.capacity() * std::mem::size_of::<T>();
        Some(v)
    }

    /// Keeps `v` (emptied) if its size is wanted, then removes and returns the oldest
    /// buffers until at most `limit` bytes are held (`v` itself when it is not kept).
    fn keep(&mut self, mut v: Vec<T>, limit: usize) -> Vec<Vec<T>> {
        match self.wanted.get_mut(&v.capacity()) {
            Some(w) if *w > 0 => *w -= 1,
            _ => return vec![v],
        }
        v.clear();
        self.bytes += v.capacity() * std::mem::size_of::<T>();
        self.free.push(v);
        self.trim(limit)
    }

    /// Removes and returns the oldest buffers until at most `limit` bytes are held.
    fn trim(&mut self, limit: usize) -> Vec<Vec<T>> {
        let mut k = 0;
        while self.bytes > limit && k < self.free.len() {
            self.bytes -= self.free[k].capacity() * std::mem::size_of::<T>();
            k += 1;
        }
        self.free.drain(..k).collect()
    }
}

static F32: Mutex<Cache<f32>> = Mutex::new(Cache::new());
static F64: Mutex<Cache<f64>> = Mutex::new(Cache::new());

/// The cache for element type `U`, if it has one (only `f32` and `f64` are cached: index
/// lists and masks are small or short-lived).
fn cache<U: 'static>() -> Option<&'static Mutex<Cache<U>>> {
    (&F32 as &dyn Any)
        .downcast_ref()
        .or_else(|| (&F64 as &dyn Any).downcast_ref())
}

fn limit_cell() -> &'static AtomicUsize {
    static LIMIT: OnceLock<AtomicUsize> = OnceLock::new();
    LIMIT.get_or_init(|| {
        let from_env = std::env::var(BUFFER_CACHE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .and_then(|mb| mb.checked_mul(1 << 20));
        AtomicUsize::new(from_env.unwrap_or(DEFAULT_LIMIT))
    })
}

/// Sets how many bytes of freed tensor buffers are kept for reuse (0 turns the cache off),
/// freeing the oldest cached buffers beyond the new limit. The default is 256 MiB, or
/// [`BUFFER_CACHE_ENV`] (in MiB) when set.
///
/// ```
/// autograd::set_buffer_cache_limit(64 << 20);
/// assert_eq!(autograd::buffer_cache_limit(), 64 << 20);
/// ```
pub fn set_buffer_cache_limit(bytes: usize) {
    limit_cell().store(bytes, Ordering::Relaxed);
    trim::<f32>(bytes);
    trim::<f64>(bytes);
}

/// The current limit of the buffer cache in bytes (see [`set_buffer_cache_limit`]).
pub fn buffer_cache_limit() -> usize {
    limit_cell().load(Ordering::Relaxed)
}

/// Frees every cached buffer (the limit stays): for a program that has finished its
/// large computation and wants the memory back, or for measuring live memory.
pub fn empty_buffer_cache() {
    trim::<f32>(0);
    trim::<f64>(0);
}

/// Bytes currently held by the buffer cache, all dtypes.
pub fn buffer_cache_bytes() -> usize {
    held::<f32>() + held::<f64>()
}

fn held<U: 'static>() -> usize {
    cache::<U>().map_or(0, |c| lock(c).bytes)
}

fn lock<U>(c: &Mutex<Cache<U>>) -> std::sync::MutexGuard<'_, Cache<U>> {
    // A panic while holding the lock cannot leave the cache inconsistent (each update is
    // a push or a remove with its byte count), so a poisoned lock is still usable.
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn trim<U: 'static>(limit: usize) {
    if let Some(c) = cache::<U>() {
        let dropped = lock(c).trim(limit);
        // Freed outside the lock.
        drop(dropped);
    }
}

/// An empty vector with room for `n` elements: a cached buffer of capacity `n` when there
/// is one, else a fresh allocation. `None` when the allocation fails.
pub(crate) fn take<U: 'static>(n: usize) -> Option<Vec<U>> {
    let bytes = n.saturating_mul(std::mem::size_of::<U>());
    if bytes >= MIN_BYTES {
        if let Some(v) = cache::<U>().and_then(|c| lock(c).take(n)) {
            return Some(v);
        }
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    Some(v)
}

/// Hands a buffer no tensor uses any more to the cache (or to the allocator when it is
/// small, or the cache is full or off).
pub(crate) fn give<U: 'static>(v: Vec<U>) {
    let bytes = v.capacity() * std::mem::size_of::<U>();
    if bytes < MIN_BYTES {
        return;
    }
    let Some(c) = cache::<U>() else {
        return;
    };
    let limit = buffer_cache_limit();
    if bytes > limit {
        return;
    }
    let evicted = lock(c).keep(v, limit);
    drop(evicted);
}

/// A tensor's buffer: a vector that goes back to the cache when dropped.
///
/// It carries its way back as function pointers rather than naming the cache, so that
/// `Tensor<T>` needs no `T: 'static` bound.
pub(crate) struct Buffer<T> {
    data: Vec<T>,
    give: fn(Vec<T>),
    take: fn(usize) -> Option<Vec<T>>,
}

impl<T: Copy + 'static> Buffer<T> {
    pub(crate) fn new(data: Vec<T>) -> Self {
        Buffer {
            data,
            give: give::<T>,
            take: take::<T>,
        }
    }
}

impl<T: Copy> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        let n = self.data.len();
        let mut data = (self.take)(n).unwrap_or_else(|| Vec::with_capacity(n));
        data.extend_from_slice(&self.data);
        Buffer { data, ..*self }
    }
}

impl<T> std::ops::Deref for Buffer<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.data
    }
}

impl<T> std::ops::DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.data
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        // Only a full buffer is kept: requests are for exact sizes, and a vector grown by
        // pushes (capacity past its length) would sit in the cache unused.
        if self.data.len() == self.data.capacity() {
            (self.give)(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // On a cache of its own: the unit tests run in parallel and share the global ones.
    #[test]
    fn buffers_are_reused_by_size_and_the_limit_evicts_the_oldest() {
        let mut c = Cache::<f32>::new();
        // A size nobody asked for is not kept.
        assert_eq!(c.keep(Vec::with_capacity(1000), usize::MAX).len(), 1);
        assert!(c.take(1000).is_none()); // a miss: the caller allocates, 1000 is now wanted
        let v: Vec<f32> = Vec::with_capacity(1000);
        let p = v.as_ptr();
        assert!(c.keep(v, usize::MAX).is_empty());
        assert_eq!(c.bytes, 4000);
        // A second buffer of that size is not wanted: one request, one buffer kept.
        assert_eq!(c.keep(Vec::with_capacity(1000), usize::MAX).len(), 1);
        // Only a buffer of the capacity asked for is taken.
        assert!(c.take(999).is_none());
        assert!(c.take(1001).is_none());
        let again = c.take(1000).unwrap();
        assert_eq!((again.as_ptr(), again.len(), c.bytes), (p, 0, 0));
        // The limit evicts the oldest first.
        let mut w = Vec::with_capacity(1100);
        w.push(1.0);
        assert!(c.take(1100).is_none());
        c.keep(w, usize::MAX);
        c.keep(again, usize::MAX);
        assert!(c.take(500).is_none());
        assert_eq!(c.take(1000).unwrap().capacity(), 1000);
        assert!(c.take(1000).is_none());
        c.keep(Vec::with_capacity(1000), usize::MAX);
        let evicted = c.keep(Vec::with_capacity(500), 7000);
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].capacity(), 1100);
        assert!(c.free.iter().all(Vec::is_empty));
        assert_eq!(c.bytes, 6000);
        assert_eq!(c.trim(0).len(), 2);
        assert_eq!(c.bytes, 0);
    }

    #[test]
    fn small_buffers_and_other_element_types_bypass_the_cache() {
        assert!(cache::<usize>().is_none() && cache::<f32>().is_some());
        assert!(take::<f64>(10).unwrap().capacity() >= 10);
    }
}
