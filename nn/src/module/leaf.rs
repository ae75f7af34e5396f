//! The non-parameter leaves a module can hold: [`Buffer`] (saved state without a
//! gradient), [`Generator`] (a random stream saved with the state) and [`Mode`] (the
//! train/eval flag).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use autograd::{Float, Shape, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::error::{Error, Result};

/// Non-trainable module state saved with the parameters (batch norm's running
/// statistics). A shared handle, like [`Param`](autograd::Param), without a gradient.
#[derive(Clone, Debug)]
pub struct Buffer<T: Float> {
    value: Arc<Mutex<Tensor<T>>>,
    integer: bool,
}

impl<T: Float> Buffer<T> {
    /// A floating-point buffer.
    pub fn new(value: Tensor<T>) -> Self {
        Buffer {
            value: Arc::new(Mutex::new(value)),
            integer: false,
        }
    }

    /// A counter-like buffer whose values are integers, stored as `I64` in state files
    /// (PyTorch's `num_batches_tracked`).
    pub fn integer(value: Tensor<T>) -> Self {
        Buffer {
            integer: true,
            ..Self::new(value)
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tensor<T>> {
        // Every write is a single assignment, so a poisoned lock still holds a whole value.
        self.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current value (a cheap shared clone).
    pub fn value(&self) -> Tensor<T> {
        self.lock().clone()
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.lock().shape().clone()
    }

    /// Whether the buffer holds integers (saved as `I64`).
    pub fn is_integer(&self) -> bool {
        self.integer
    }

    /// Replaces the value; the shape must stay the same.
    ///
    /// # Errors
    /// [`Error::InputShape`] when the shapes differ.
    #[track_caller]
    pub fn set_value(&self, value: Tensor<T>) -> Result<()> {
        let mut v = self.lock();
        if v.shape() != value.shape() {
            return Err(Error::input(
                "Buffer::set_value",
                format!("shape {}", v.shape()),
                value.shape().clone(),
            ));
        }
        *v = value;
        Ok(())
    }
}

/// A train/eval flag: a module field that [`Module::train`](crate::Module::train) and
/// [`Module::eval`](crate::Module::eval) set through `&self`. A derived module with a
/// `Mode` field behaves differently in the two modes by reading
/// [`is_training`](Mode::is_training). New flags start in training mode, as in PyTorch.
#[derive(Debug)]
pub struct Mode(AtomicBool);

impl Default for Mode {
    fn default() -> Self {
        Self::new()
    }
}

impl Mode {
    /// A flag in training mode.
    pub fn new() -> Self {
        Mode(AtomicBool::new(true))
    }

    /// Whether the module is in training mode.
    pub fn is_training(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets training (`true`) or evaluation mode.
    pub fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed)
    }
}

/// A seeded random stream owned by a module (dropout's masks), whose exact position is
/// part of the module's state: [`state::save`](crate::state::save) writes it and
/// [`state::load`](crate::state::load) restores it, so a resumed run draws the same masks
/// bit for bit. A shared handle: clones draw from (and advance) the same stream.
///
/// The stream is ChaCha12 (the generator behind `rand::rngs::StdRng`), seeded as
/// `StdRng::seed_from_u64`; its state is the 32-byte key, the stream number and the
/// position in 32-bit words, so saving and restoring it costs nothing and skips nothing.
///
/// ```
/// use nn::Generator;
/// use rand::Rng;
/// let g = Generator::new(7);
/// let saved = g.state();
/// let a: u64 = g.with_rng(|r| r.random());
/// g.set_state(&saved);
/// let b: u64 = g.with_rng(|r| r.random());
/// assert_eq!(a, b);
/// ```
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Arc<Mutex<ChaCha12Rng>>,
}

/// The exact position of a [`Generator`]: key, stream and word position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratorState {
    /// The ChaCha key (the seed).
    pub seed: [u8; 32],
    /// The ChaCha stream number.
    pub stream: u64,
    /// Words (32-bit) drawn since the start of the stream.
    pub word_pos: u128,
}

impl GeneratorState {
    const HEX_LEN: usize = 2 * (32 + 8 + 16);

    /// Lower-case hex of key, stream (little-endian) and word position (little-endian):
    /// the form state files keep it in.
    pub fn to_hex(&self) -> String {
        let mut bytes = Vec::with_capacity(56);
        bytes.extend_from_slice(&self.seed);
        bytes.extend_from_slice(&self.stream.to_le_bytes());
        bytes.extend_from_slice(&self.word_pos.to_le_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`to_hex`](GeneratorState::to_hex)'s form; `None` if it is not one.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != Self::HEX_LEN || !s.is_ascii() {
            return None;
        }
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        let seed: [u8; 32] = bytes[..32].try_into().ok()?;
        let stream = u64::from_le_bytes(bytes[32..40].try_into().ok()?);
        let word_pos = u128::from_le_bytes(bytes[40..56].try_into().ok()?);
        Some(GeneratorState {
            seed,
            stream,
            word_pos,
        })
    }
}

impl Generator {
    /// A stream seeded with `seed` (the same stream as `StdRng::seed_from_u64(seed)`).
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Arc::new(Mutex::new(ChaCha12Rng::seed_from_u64(seed))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChaCha12Rng> {
        // A panic mid-draw leaves a valid generator state, so a poisoned lock is usable.
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the stream (locked for the duration).
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut dyn rand::RngCore) -> R) -> R {
        f(&mut *self.lock())
    }

    /// The current position.
    pub fn state(&self) -> GeneratorState {
        let rng = self.lock();
        GeneratorState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// Moves the stream to `state` (what [`state`](Generator::state) returned, here or in
    /// another process).
    pub fn set_state(&self, state: &GeneratorState) {
        let mut rng = ChaCha12Rng::from_seed(state.seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos);
        *self.lock() = rng;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::Rng;

    #[test]
    fn generator_draws_the_std_rng_stream_and_restores_its_position_exactly() {
        let g = Generator::new(42);
        let mut std = StdRng::seed_from_u64(42);
        for _ in 0..5 {
            let a: f64 = g.with_rng(|r| r.random());
            assert_eq!(a, std.random::<f64>());
        }
        // an odd number of 32-bit words, to land mid-block
        let _: u32 = g.with_rng(|r| r.random());
        let saved = g.state();
        let want: Vec<u64> = g.with_rng(|r| (0..40).map(|_| r.random()).collect());
        let other = Generator::new(0);
        other.set_state(&GeneratorState::from_hex(&saved.to_hex()).unwrap());
        let got: Vec<u64> = other.with_rng(|r| (0..40).map(|_| r.random()).collect());
        assert_eq!(want, got);
        assert!(GeneratorState::from_hex("zz").is_none());
        assert!(GeneratorState::from_hex(&"g".repeat(112)).is_none());
    }
}
