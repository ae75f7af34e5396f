//! Activation checkpointing: gradients bit for bit those of the run without it (f64),
//! dropout masks replayed, batch-norm statistics updated once, gradients through a
//! checkpoint differentiable again, nested and unused checkpoints.

use std::rc::Rc;

use autograd::{Float, GradcheckOptions, Param, Tape, Tensor, Var};
use nn::{
    checkpoint, checkpoint_with, gradcheck_module, gradgradcheck_module, BatchNorm1d, BoolMask,
    Ctx, Dropout, EncoderInput, Forward, Linear, Module, ModuleList, TransformerEncoderLayer,
    TransformerLayerConfig,
};
use rand::{rngs::StdRng, SeedableRng};

/// x + tanh(dropout(bn(fc(x)))): every kind of state a segment can touch.
#[derive(Module)]
struct Block<T: Float> {
    fc: Linear<T>,
    bn: Option<BatchNorm1d<T>>,
    drop: Option<Dropout>,
}

impl<T: Float> Block<T> {
    fn new(width: usize, stateful: bool, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Block {
            fc: Linear::new(width, width, &mut rng).unwrap(),
            bn: stateful.then(|| BatchNorm1d::new(width).unwrap()),
            drop: stateful.then(|| Dropout::new(0.25, seed + 1000).unwrap()),
        }
    }
}

impl<T: Float> Forward<T> for Block<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let mut h = cx.call(&self.fc, x)?;
        if let Some(bn) = &self.bn {
            h = cx.call(bn, h)?;
        }
        if let Some(d) = &self.drop {
            h = cx.call(d, h)?;
        }
        Ok(x.add(h.tanh())?)
    }
}

/// Blocks in a row, each checkpointed (`every`), in nested pairs (`nested`), or not.
#[derive(Module)]
struct Net<T: Float> {
    blocks: ModuleList<Rc<Block<T>>>,
    #[module(skip)]
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Plain,
    Every,
    Nested,
}

fn net(depth: usize, stateful: bool, mode: Mode) -> Net<f64> {
    let mut blocks = ModuleList::new();
    for i in 0..depth {
        blocks.push(Rc::new(Block::new(8, stateful, i as u64)));
    }
    Net { blocks, mode }
}

/// Two blocks as one module, so a checkpoint of it nests the blocks' own.
#[derive(Module)]
struct Pair<T: Float> {
    a: Rc<Block<T>>,
    b: Rc<Block<T>>,
}

impl<T: Float> Forward<T> for Pair<T> {
    type Input<'t> = Var<'t, T>;
    type Output<'t> = Var<'t, T>;
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: Var<'t, T>) -> nn::Result<Var<'t, T>> {
        let h = checkpoint(cx, &self.a, x)?;
        checkpoint(cx, &self.b, h)
    }
}

impl Forward<f64> for Net<f64> {
    type Input<'t> = Var<'t, f64>;
    type Output<'t> = Var<'t, f64>;
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> nn::Result<Var<'t, f64>> {
        let mut x = x;
        let blocks: Vec<&Rc<Block<f64>>> = self.blocks.iter().collect();
        match self.mode {
            Mode::Plain => {
                for b in blocks {
                    x = cx.call(b, x)?;
                }
            }
            Mode::Every => {
                for b in blocks {
                    x = checkpoint(cx, b, x)?;
                }
            }
            Mode::Nested => {
                for pair in blocks.chunks(2) {
                    let p = Rc::new(Pair {
                        a: pair[0].clone(),
                        b: pair[1].clone(),
                    });
                    x = checkpoint(cx, &p, x)?;
                }
            }
        }
        Ok(x)
    }
}

fn input() -> Tensor<f64> {
    Tensor::randn([16, 8], &mut StdRng::seed_from_u64(99)).unwrap()
}

struct Run {
    grads: Vec<Vec<u64>>,
    input_grad: Vec<u64>,
    stats: Vec<Vec<u64>>,
    loss: u64,
    tape_len_after_forward: usize,
}

fn bits(t: &Tensor<f64>) -> Vec<u64> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

/// Two training steps (so dropout streams and running statistics move between them), the
/// gradients and statistics after them.
fn run(model: &Net<f64>) -> Run {
    let x = Param::new(input());
    let mut out = None;
    for _ in 0..2 {
        model.zero_grad();
        x.zero_grad();
        let tape = Tape::new();
        let cx = Ctx::new(&tape);
        let y = cx.call(model, tape.param(&x)).unwrap();
        let n = tape.len();
        let loss = y.square().mean();
        loss.backward().unwrap();
        out = Some((loss.item().unwrap().to_bits(), n));
    }
    let (loss, n) = out.unwrap();
    let mut stats = Vec::new();
    model.visit_buffers(&mut |_, b| stats.push(bits(&b.value())));
    Run {
        grads: model
            .parameters()
            .iter()
            .map(|p| bits(&p.grad().unwrap()))
            .collect(),
        input_grad: bits(&x.grad().unwrap()),
        stats,
        loss,
        tape_len_after_forward: n,
    }
}

#[test]
fn a_checkpointed_20_block_mlp_has_bit_identical_gradients_masks_and_statistics() {
    let plain = run(&net(20, true, Mode::Plain));
    for mode in [Mode::Every, Mode::Nested] {
        let ck = run(&net(20, true, mode));
        assert_eq!(ck.loss, plain.loss, "{mode:?}");
        assert_eq!(ck.grads, plain.grads, "{mode:?}");
        assert_eq!(ck.input_grad, plain.input_grad, "{mode:?}");
        // Running statistics (and num_batches_tracked = 2) updated once per forward.
        assert_eq!(ck.stats, plain.stats, "{mode:?}");
        // Nothing inside a segment is kept: the tape holds the input, then per segment
        // its parameters (4 per block) and the one checkpoint node.
        let segments = if mode == Mode::Every { 20 } else { 10 };
        assert_eq!(ck.tape_len_after_forward, 1 + 20 * 4 + segments, "{mode:?}");
        assert!(plain.tape_len_after_forward > 4 * ck.tape_len_after_forward);
    }
    // The dropout masks really were random (a mask replayed wrongly would show above):
    // the two steps' losses differ only through them and the statistics.
    let tracked: Vec<f64> = {
        let m = net(2, true, Mode::Every);
        run(&m);
        let mut v = Vec::new();
        m.visit_buffers(&mut |n, b| {
            if n.ends_with("num_batches_tracked") {
                v.push(b.value().item().unwrap())
            }
        });
        v
    };
    assert_eq!(tracked, vec![2.0, 2.0]);
}

/// The segment's generators are put back where they were after the re-run: the next
/// forward draws fresh masks, the same as without checkpointing (checked above over two
/// steps) — and the re-run happens in backward, so a segment whose output is unused is
/// never re-run and leaves the generators where its forward left them.
#[test]
fn an_unused_checkpoint_is_never_recomputed() {
    let run_with = |ck: bool| {
        let blocks: Vec<Rc<Block<f64>>> = (0..2).map(|i| Rc::new(Block::new(8, true, i))).collect();
        let x = Param::new(input());
        let tape = Tape::new();
        let cx = Ctx::new(&tape);
        let xv = tape.param(&x);
        let unused = if ck {
            checkpoint(&cx, &blocks[0], xv).unwrap()
        } else {
            cx.call(&blocks[0], xv).unwrap()
        };
        let _ = unused;
        let y = cx.call(&blocks[1], xv).unwrap();
        y.sum().backward().unwrap();
        let mut stats = Vec::new();
        blocks[0].visit_buffers(&mut |_, b| stats.push(bits(&b.value())));
        let gen = blocks[0].named_generators()[0].1.state();
        (
            bits(&x.grad().unwrap()),
            blocks[0].fc.weight.grad().is_none(),
            stats,
            gen,
        )
    };
    assert_eq!(run_with(true), run_with(false));
    assert!(run_with(true).1);
}

/// Through `Tape::grad`, a checkpoint is differentiated by the differentiable sweep, so
/// gradients through it pass gradcheck and gradgradcheck (with respect to the input and,
/// by substitution, the block's parameters).
#[derive(Module)]
struct Checkpointed {
    inner: Rc<Block<f64>>,
}

impl Forward<f64> for Checkpointed {
    type Input<'t> = Var<'t, f64>;
    type Output<'t> = Var<'t, f64>;
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: Var<'t, f64>) -> nn::Result<Var<'t, f64>> {
        let h = checkpoint(cx, &self.inner, x)?;
        checkpoint(cx, &self.inner, h.mul(h)?)
    }
}

#[test]
fn gradients_through_a_checkpoint_pass_gradcheck_and_gradgradcheck() {
    let m = Checkpointed {
        inner: Rc::new(Block::new(4, false, 3)),
    };
    let x = Tensor::randn([3, 4], &mut StdRng::seed_from_u64(1)).unwrap();
    let opts = GradcheckOptions::default();
    gradcheck_module(&m, std::slice::from_ref(&x), |v| v[0], &opts).unwrap();
    gradgradcheck_module(&m, std::slice::from_ref(&x), |v| v[0], &opts).unwrap();

    // And Tape::grad through it equals Tape::grad without it, bit for bit.
    let grads = |ck: bool| {
        let tape = Tape::new();
        let cx = Ctx::new(&tape);
        let xv = tape.var(x.clone());
        let y = if ck {
            cx.call(&m, xv).unwrap()
        } else {
            let h = cx.call(&m.inner, xv).unwrap();
            cx.call(&m.inner, h.mul(h).unwrap()).unwrap()
        };
        let g = tape.grad(y.square().sum(), &[xv]).unwrap()[0];
        let gg = tape.grad(g.sum(), &[xv]).unwrap()[0];
        (g.value(), gg.value())
    };
    let ((g1, gg1), (g0, gg0)) = (grads(true), grads(false));
    assert_eq!(bits(&g1), bits(&g0));
    // Second order goes through the re-run's own graph, whose contributions reach x in
    // another order: equal up to rounding (gradgradcheck above is the exact check).
    autograd::assert_close!(gg1, gg0, atol = 1e-12, rtol = 1e-12);
}

/// The char_lm model's blocks: pre-norm transformer encoder layers with a causal mask and
/// dropout, in training mode.
#[test]
fn checkpointed_transformer_blocks_have_bit_identical_gradients() {
    let make = || -> Vec<Rc<TransformerEncoderLayer<f64>>> {
        let mut rng = StdRng::seed_from_u64(4);
        let config = TransformerLayerConfig {
            dim_feedforward: 32,
            dropout: 0.1,
            batch_first: true,
            norm_first: true,
            ..TransformerLayerConfig::new(8, 2)
        };
        (0..3)
            .map(|_| Rc::new(config.encoder(&mut rng).unwrap()))
            .collect()
    };
    let grads = |ck: bool| {
        let blocks = make();
        let x = Param::new(Tensor::randn([2, 6, 8], &mut StdRng::seed_from_u64(2)).unwrap());
        let tape = Tape::new();
        let cx = Ctx::new(&tape);
        let mut h = tape.param(&x);
        for b in &blocks {
            h = if ck {
                checkpoint_with(&cx, b, &[h], |cx, b, xs| {
                    cx.call(
                        b,
                        EncoderInput::new(xs[0]).with_mask(BoolMask::causal(6, 6)),
                    )
                })
                .unwrap()
            } else {
                cx.call(b, EncoderInput::new(h).with_mask(BoolMask::causal(6, 6)))
                    .unwrap()
            };
        }
        h.square().mean().backward().unwrap();
        let mut g: Vec<Vec<u64>> = blocks
            .iter()
            .flat_map(|b| b.parameters())
            .map(|p| bits(&p.grad().unwrap()))
            .collect();
        g.push(bits(&x.grad().unwrap()));
        g
    };
    assert_eq!(grads(true), grads(false));
}

/// A frozen parameter inside a segment gets nothing; the rest of the segment trains.
#[test]
fn a_frozen_parameter_inside_a_checkpoint_gets_no_gradient() {
    let b = Rc::new(Block::<f64>::new(8, false, 0));
    b.fc.weight.set_requires_grad(false);
    let tape = Tape::new();
    let cx = Ctx::new(&tape);
    let y = checkpoint(&cx, &b, tape.var(input())).unwrap();
    y.sum().backward().unwrap();
    assert!(b.fc.weight.grad().is_none());
    assert!(b.fc.bias.as_ref().unwrap().grad().is_some());
}

/// Under `no_grad` a checkpoint is just the module.
#[test]
fn a_checkpoint_without_recording_is_the_plain_call() {
    let b = Rc::new(Block::<f64>::new(8, false, 0));
    let tape = Tape::new();
    let cx = Ctx::new(&tape);
    let x = tape.constant(input());
    let y = tape.no_grad(|| checkpoint(&cx, &b, x)).unwrap();
    let z = cx.call(&b, x).unwrap();
    assert_eq!(bits(&y.value()), bits(&z.value()));
}

/// An `Arc` of a module works as an `Rc` does (for modules that are `Send + Sync`).
#[test]
fn an_arc_handle_checkpoints_like_an_rc() {
    let b = std::sync::Arc::new(Block::<f64>::new(8, false, 0));
    let tape = Tape::new();
    let cx = Ctx::new(&tape);
    let x = tape.var(input());
    let y = checkpoint(&cx, &b, x).unwrap();
    let g = tape.grad(y.sum(), &[x]).unwrap()[0].value();
    let z = cx.call(&*b, x).unwrap();
    let h = tape.grad(z.sum(), &[x]).unwrap()[0].value();
    assert_eq!(bits(&g), bits(&h));
}
