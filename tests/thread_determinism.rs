//! A training run gives bit-identical weights with 1, 2, 3 and 4 kernel threads (more
//! threads than this machine's cores included).
//!
//! The model is sized so every split kernel splits: an embedding gather, layer norms,
//! GELU and residual adds over ≥ 2¹⁶-element activations, a full-tensor sum, softmax
//! cross-entropy (row max, row sums, the target gather), bias gradients (sums over the
//! batch), GEMMs large enough for the row split and for `gemm`'s own parallel schedule,
//! and AdamW and SGD-with-momentum updates of 2¹⁶-element weights. A small CNN adds
//! convolutions (dense and grouped, both algorithms) and max pooling, split by images
//! and planes.
//!
//! One test in its own binary: the thread count is process-global, and no other test
//! may change it while this one runs.

use autograd::{set_conv_algorithm, Conv2dArgs, ConvAlgorithm, Param, Tape, Tensor, Var};
use nn::{Ctx, Embedding, Gelu, LayerNorm, Linear, Module};
use optim::{AdamW, Optim, Optimizer, Sgd};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VOCAB: usize = 128;
const D: usize = 128;
const HIDDEN: usize = 512;
const TOKENS: usize = 512;

struct Model {
    emb: Embedding<f32>,
    ln1: LayerNorm<f32>,
    up: Linear<f32>,
    down: Linear<f32>,
    ln2: LayerNorm<f32>,
    head: Linear<f32>,
}

impl Model {
    fn new(seed: u64) -> Model {
        let mut rng = StdRng::seed_from_u64(seed);
        Model {
            emb: Embedding::new(VOCAB, D, &mut rng).unwrap(),
            ln1: LayerNorm::new(&[D]).unwrap(),
            up: Linear::new(D, HIDDEN, &mut rng).unwrap(),
            down: Linear::new(HIDDEN, D, &mut rng).unwrap(),
            ln2: LayerNorm::new(&[D]).unwrap(),
            head: Linear::new(D, VOCAB, &mut rng).unwrap(),
        }
    }

    fn parameters(&self) -> Vec<Param<f32>> {
        let mut ps = self.emb.parameters();
        ps.extend(self.ln1.parameters());
        ps.extend(self.up.parameters());
        ps.extend(self.down.parameters());
        ps.extend(self.ln2.parameters());
        ps.extend(self.head.parameters());
        ps
    }

    fn loss<'t>(&self, cx: &Ctx<'t, f32>, ids: &[usize], targets: &[usize]) -> Var<'t, f32> {
        let x = self.emb.lookup(cx, ids).unwrap();
        let h = cx.call(&self.ln1, x).unwrap();
        let h = cx.call(&self.up, h).unwrap();
        let h = cx.call(&Gelu { tanh_approx: false }, h).unwrap();
        // A full-tensor sum over the widest activation.
        let aux = h.square().sum().mul_scalar(1e-6);
        let h = cx.call(&self.down, h).unwrap();
        let h = cx.call(&self.ln2, x.add(h).unwrap()).unwrap();
        let logits = cx.call(&self.head, h).unwrap();
        let probs = logits.softmax(-1).unwrap();
        // softmax's own row sums and division, besides cross-entropy's log-softmax.
        let spread = probs.square().mean().mul_scalar(0.1);
        nn::loss::cross_entropy(logits, targets).unwrap() + aux + spread
    }
}

/// Trains a fresh model for a few steps of each optimiser on `threads` threads; returns
/// every loss and every final weight.
fn train(threads: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
    autograd::set_num_threads(threads);
    let model = Model::new(7);
    let mut rng = StdRng::seed_from_u64(11);
    let ids: Vec<usize> = (0..TOKENS).map(|_| rng.random_range(0..VOCAB)).collect();
    let targets: Vec<usize> = (0..TOKENS).map(|_| rng.random_range(0..VOCAB)).collect();
    let adamw = AdamW {
        weight_decay: 0.01,
        ..AdamW::default()
    };
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let mut opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Optim::new(model.parameters(), 1e-2, adamw).unwrap()),
        Box::new(Optim::new(model.parameters(), 1e-2, sgd).unwrap()),
    ];
    let mut losses = Vec::new();
    for opt in &mut opts {
        for _ in 0..3 {
            opt.zero_grad();
            let tape = Tape::new();
            let loss = model.loss(&Ctx::new(&tape), &ids, &targets);
            losses.push(loss.item().unwrap());
            loss.backward().unwrap();
            opt.step().unwrap();
        }
    }
    let weights = model
        .parameters()
        .iter()
        .map(|p| p.value().to_vec())
        .collect();
    (losses, weights)
}

/// Three SGD-with-momentum steps of conv 3→16 (pad 1), ReLU, 2×2 max pool, conv 16→32
/// in 2 groups (pad 1), ReLU, 2×2 max pool and a linear read-out with a squared error,
/// the convolutions computed by `algo`. Returns the losses, then every weight.
fn train_cnn(threads: usize, algo: ConvAlgorithm) -> (Vec<f32>, Vec<Vec<f32>>) {
    autograd::set_num_threads(threads);
    set_conv_algorithm(algo);
    let mut rng = StdRng::seed_from_u64(5);
    let mut randn = |shape: &[usize], scale: f32| {
        Param::new(
            Tensor::<f32>::randn(shape, &mut rng)
                .unwrap()
                .map(|v| v * scale),
        )
    };
    let params = [
        randn(&[16, 3, 3, 3], 0.3),
        randn(&[16], 0.1),
        randn(&[32, 8, 3, 3], 0.1),
        randn(&[32], 0.1),
        randn(&[32 * 6 * 6, 10], 0.02),
    ];
    let x = randn(&[16, 3, 24, 24], 1.0).value();
    let target = randn(&[16, 10], 1.0).value();
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let mut opt = Optim::new(params.to_vec(), 1e-3, sgd).unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        opt.zero_grad();
        let tape = Tape::new();
        let p: Vec<Var<'_, f32>> = params.iter().map(|p| tape.param(p)).collect();
        let pad = Conv2dArgs {
            padding: (1, 1),
            ..Conv2dArgs::default()
        };
        let grouped = Conv2dArgs { groups: 2, ..pad };
        let h = tape
            .constant(x.clone())
            .conv2d(p[0], Some(p[1]), pad)
            .unwrap();
        let h = h.relu().max_pool2d((2, 2), None, (0, 0)).unwrap();
        let h = h.conv2d(p[2], Some(p[3]), grouped).unwrap();
        let h = h.relu().max_pool2d((2, 2), None, (0, 0)).unwrap();
        let y = h.reshape([16, 32 * 6 * 6]).unwrap().matmul(p[4]).unwrap();
        let err = y.sub(tape.constant(target.clone())).unwrap();
        let loss = err.square().sum().mul_scalar(1.0 / 160.0);
        losses.push(loss.item().unwrap());
        loss.backward().unwrap();
        opt.step().unwrap();
    }
    set_conv_algorithm(ConvAlgorithm::Auto);
    (losses, params.iter().map(|p| p.value().to_vec()).collect())
}

fn assert_same_bits(
    what: &str,
    (l, w): &(Vec<f32>, Vec<Vec<f32>>),
    (losses, weights): &(Vec<f32>, Vec<Vec<f32>>),
) {
    let same_losses = l
        .iter()
        .zip(losses)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same_losses, "{what}: losses {l:?} vs {losses:?}");
    for (k, (a, b)) in w.iter().zip(weights).enumerate() {
        let diff = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(diff, 0, "{what}: parameter {k} differs in {diff} elements");
    }
}

#[test]
fn training_gives_the_same_bits_on_any_number_of_threads() {
    for algo in [ConvAlgorithm::Im2colGemm, ConvAlgorithm::Direct] {
        let one = train_cnn(1, algo);
        assert!(one.0.iter().all(|l| l.is_finite()), "{:?}", one.0);
        assert!(one.0[2] < one.0[0], "the CNN must train: {:?}", one.0);
        for threads in [2, 3, 4] {
            let what = format!("CNN, {algo:?}, {threads} threads");
            assert_same_bits(&what, &train_cnn(threads, algo), &one);
        }
    }
    let (losses, weights) = train(1);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    // The run must actually train, or identical weights would prove nothing.
    assert!(losses[2] < losses[0], "{losses:?}");
    for threads in [2, 3, 4] {
        let (l, w) = train(threads);
        let same_losses = l
            .iter()
            .zip(&losses)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same_losses, "{threads} threads: losses {l:?} vs {losses:?}");
        for (k, (a, b)) in w.iter().zip(&weights).enumerate() {
            let diff = a
                .iter()
                .zip(b)
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            assert_eq!(
                diff, 0,
                "{threads} threads: parameter {k} differs in {diff} elements"
            );
        }
    }
}
