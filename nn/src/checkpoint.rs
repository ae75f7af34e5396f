//! Activation checkpointing ([`checkpoint`], [`checkpoint_with`]): a segment of the
//! forward pass whose intermediate values are not kept, and are recomputed in backward
//! (PyTorch's `torch.utils.checkpoint`), trading compute for memory.
//! See [`checkpoint`] for how it works.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::panic::Location;

use autograd::{BackwardCx, Float, Loc, Op, Param, Tape, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward, Generator, GeneratorState, Module};

/// Runs `module` (an `Rc` or `Arc` of it) on `x` as a checkpointed segment: the same
/// output as `cx.call(&*module, x)`, without keeping the values inside the module for backward;
/// they are recomputed when backward reaches the segment. [`checkpoint_with`] takes
/// modules of other inputs.
///
/// ```
/// use std::rc::Rc;
/// use autograd::{Tape, Tensor};
/// use nn::{checkpoint, Ctx, Linear, Module, Relu, Sequential};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let block = Rc::new(
///     Sequential::<f64>::new()
///         .append(Linear::new(4, 64, &mut rng)?)
///         .append(Relu)
///         .append(Linear::new(64, 4, &mut rng)?),
/// );
/// let tape = Tape::new();
/// let cx = Ctx::new(&tape);
/// let x = tape.constant(Tensor::ones([2, 4])?);
/// let y = checkpoint(&cx, &block, x)?; // the [2, 64] hidden values are not kept
/// y.square().sum().backward()?;        // they are recomputed here
/// assert!(block.parameters().iter().all(|p| p.grad().is_some()));
/// # Ok::<(), nn::Error>(())
/// ```
///
/// # How it works
///
/// The segment first runs on a scratch tape with recording off, so only its
/// inputs and its output stay alive on the caller's tape, as one node. That node's
/// backward rule re-runs the segment on the caller's tape, recording, from stand-ins of
/// the inputs and of the parameters the segment bound, and takes the segment's
/// vector-Jacobian product there:
/// - in [`Var::backward`] by the same first-order sweep (each op's fast path included),
///   so gradients are bit for bit those of the run without the checkpoint;
/// - in [`Tape::grad`]/[`Tape::vjp`] by the differentiable sweep, so gradients through a
///   checkpoint can be differentiated again (gradgradcheck holds).
///
/// Before the re-run the rule puts every [`Generator`] of the module back where it stood
/// when the segment first ran, so dropout draws the same masks, and afterwards puts them
/// back where they were. The re-run context answers
/// [`Ctx::is_recomputing`] with `true`, so batch norm updates its running statistics once
/// per forward pass, not again in backward.
///
/// Why the module comes as a shared handle (`Rc<Block>` or `Arc<Block>`): the tape
/// outlives the borrow of a module that `forward` gets (`&self`), and the rule must run
/// the segment again after `forward` has returned, so it keeps a handle of its own.
/// Parameters, buffers and generators are shared handles already; holding blocks as
/// `Rc<Block>` fields (`ModuleList<Rc<_>>`; `Arc` for a module that is `Send + Sync`)
/// makes a block one too, and an `Rc` or `Arc` of a module is that module for
/// bookkeeping, state files, hooks and `cx.call`.
///
/// [`Var::backward`]: autograd::Var::backward
/// [`Tape::grad`]: autograd::Tape::grad
/// [`Tape::vjp`]: autograd::Tape::vjp
///
/// # Errors
/// The module's errors; tape errors recording the segment.
#[track_caller]
pub fn checkpoint<'t, T, P>(cx: &Ctx<'t, T>, module: &P, x: Var<'t, T>) -> Result<Var<'t, T>>
where
    T: Float,
    P: Deref + Clone + 'static,
    P::Target: for<'s> Forward<T, Input<'s> = Var<'s, T>, Output<'s> = Var<'s, T>> + Sized,
{
    checkpoint_with(cx, module, &[x], |cx, m, xs| cx.call(m, xs[0]))
}

/// Runs `segment(cx, module, inputs)` as a checkpointed segment ([`checkpoint`] for any
/// module input): the segment builds the module's input from `inputs` and calls it. It
/// must be a function of `inputs`, of parameters bound through the context
/// ([`Ctx::param`], as every layer does) and of the module's [`Generator`]s only, since
/// that is what the re-run reproduces; values it needs besides (sizes, masks built from
/// sizes) are captured by value.
///
/// ```
/// use std::rc::Rc;
/// use autograd::{Tape, Tensor};
/// use nn::{checkpoint_with, BoolMask, Ctx, EncoderInput, TransformerLayerConfig};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let config = TransformerLayerConfig { batch_first: true, ..TransformerLayerConfig::new(8, 2) };
/// let block = Rc::new(config.encoder::<f64>(&mut rng)?);
/// let tape = Tape::new();
/// let cx = Ctx::new(&tape);
/// let x = tape.var(Tensor::ones([1, 5, 8])?);
/// let y = checkpoint_with(&cx, &block, &[x], |cx, block, xs| {
///     cx.call(block, EncoderInput::new(xs[0]).with_mask(BoolMask::causal(5, 5)))
/// })?;
/// assert_eq!(y.dims(), [1, 5, 8]);
/// # Ok::<(), nn::Error>(())
/// ```
///
/// # Errors
/// The segment's errors; tape errors recording it.
#[track_caller]
pub fn checkpoint_with<'t, T, P, F>(
    cx: &Ctx<'t, T>,
    module: &P,
    inputs: &[Var<'t, T>],
    segment: F,
) -> Result<Var<'t, T>>
where
    T: Float,
    P: Deref + Clone + 'static,
    P::Target: Module<T>,
    F: for<'s> Fn(&Ctx<'s, T>, &P::Target, &[Var<'s, T>]) -> Result<Var<'s, T>> + 'static,
{
    let location = Location::caller();
    let tape = cx.tape();
    if !tape.is_grad_enabled() {
        // Nothing would be kept for backward anyway (and a checkpoint nested in a
        // segment's first run lands here).
        return segment(cx, &**module, inputs);
    }
    let generators: Vec<(Generator, GeneratorState)> = (**module)
        .named_generators()
        .into_iter()
        .map(|(_, g)| {
            let s = g.state();
            (g, s)
        })
        .collect();
    // The first run: on a scratch tape, recording nothing, so nothing inside is kept.
    let (value, params) = {
        let scratch = Tape::<T>::new();
        let mut scx = Ctx::for_segment(&scratch, cx.is_recomputing());
        carry_substitutes(cx, &mut scx, &**module, &scratch);
        let xs: Vec<Var<'_, T>> = inputs.iter().map(|v| scratch.constant(v.value())).collect();
        let out = scratch.no_grad(|| segment(&scx, &**module, &xs))?;
        (out.value(), scx.bound_params())
    };
    let mut all: Vec<Var<'t, T>> = inputs.to_vec();
    all.extend(params.iter().map(|p| cx.param(p)));
    let op = Checkpoint {
        module: module.clone(),
        segment,
        inputs: inputs.len(),
        params,
        generators,
        first: RefCell::new(Some(value)),
        location,
    };
    Ok(tape.apply(op, &all)?)
}

/// The substitutes `cx` holds for `module`'s parameters, as constants on `scratch`.
fn carry_substitutes<'s, T: Float, M: Module<T> + ?Sized>(
    cx: &Ctx<'_, T>,
    scx: &mut Ctx<'s, T>,
    module: &M,
    scratch: &'s Tape<T>,
) {
    module.visit_params(&mut |_, p| {
        if let Some(v) = cx.substitute_of(p.id()) {
            scx.substitute(p, scratch.constant(v.value()));
        }
    });
}

/// The recorded segment: its inputs, then the parameters it bound, in; its output out.
struct Checkpoint<T: Float, P, F> {
    /// The caller's shared handle of the module (`Rc` or `Arc`).
    module: P,
    segment: F,
    /// How many of the op's inputs are the segment's; the rest are `params`.
    inputs: usize,
    params: Vec<Param<T>>,
    /// Every generator of the module, where it stood before the first run.
    generators: Vec<(Generator, GeneratorState)>,
    /// The first run's output, handed to the tape when it records the op.
    first: RefCell<Option<Tensor<T>>>,
    location: Loc,
}

impl<T: Float, P, F> fmt::Debug for Checkpoint<T, P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Checkpoint({} inputs, {} params, at {})",
            self.inputs,
            self.params.len(),
            self.location
        )
    }
}

impl<T, P, F> Checkpoint<T, P, F>
where
    T: Float,
    P: Deref + 'static,
    P::Target: Module<T>,
    F: for<'s> Fn(&Ctx<'s, T>, &P::Target, &[Var<'s, T>]) -> Result<Var<'s, T>> + 'static,
{
    /// Runs `f` with the generators where they stood before the first run, then puts
    /// them back where they are now.
    fn replaying<R>(&self, f: impl FnOnce() -> R) -> R {
        let now: Vec<GeneratorState> = self.generators.iter().map(|(g, _)| g.state()).collect();
        for (g, s) in &self.generators {
            g.set_state(s);
        }
        let out = f();
        for ((g, _), s) in self.generators.iter().zip(&now) {
            g.set_state(s);
        }
        out
    }

    /// The segment on `tape` (recording as the tape is set) at `xs`, its parameters
    /// replaced by `ps`.
    fn run<'s>(
        &self,
        tape: &'s Tape<T>,
        xs: &[Var<'s, T>],
        ps: &[Var<'s, T>],
    ) -> Result<Var<'s, T>> {
        let mut rcx = Ctx::for_segment(tape, true);
        for (p, v) in self.params.iter().zip(ps) {
            rcx.substitute(p, *v);
        }
        self.replaying(|| (self.segment)(&rcx, &*self.module, xs))
    }
}

/// `y = x`, as a node of its own: the re-run's stand-in for an input, so the sweep that
/// differentiates the re-run stops there and never walks back into the rest of the tape.
#[derive(Debug)]
struct StandIn;

impl<T: Float> Op<T> for StandIn {
    fn name(&self) -> &'static str {
        "checkpoint_input"
    }
    fn forward(&self, x: &[&Tensor<T>]) -> autograd::Result<Tensor<T>> {
        Ok(x[0].clone())
    }
    fn backward<'t>(
        &self,
        cx: &BackwardCx<'t, '_, T>,
    ) -> autograd::Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cx.grad())])
    }
}

impl<T, P, F> Op<T> for Checkpoint<T, P, F>
where
    T: Float,
    P: Deref + 'static,
    P::Target: Module<T>,
    F: for<'s> Fn(&Ctx<'s, T>, &P::Target, &[Var<'s, T>]) -> Result<Var<'s, T>> + 'static,
{
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    /// The first run's output when the op is recorded; a fresh run at `inputs` when a
    /// gradient check re-runs the node.
    fn forward(&self, inputs: &[&Tensor<T>]) -> autograd::Result<Tensor<T>> {
        if let Some(v) = self.first.borrow_mut().take() {
            return Ok(v);
        }
        let scratch = Tape::<T>::new();
        let vars: Vec<Var<'_, T>> = inputs
            .iter()
            .map(|t| scratch.constant((*t).clone()))
            .collect();
        let (xs, ps) = vars.split_at(self.inputs);
        let out = scratch.no_grad(|| self.run(&scratch, xs, ps));
        Ok(out.map_err(Error::into_autograd)?.value())
    }

    fn backward<'t>(
        &self,
        cx: &BackwardCx<'t, '_, T>,
    ) -> autograd::Result<Vec<Option<Var<'t, T>>>> {
        let tape = cx.tape();
        // Recording is on in `Tape::grad`'s sweep (whose gradients are differentiated
        // again) and off in `Var::backward`'s.
        let differentiable = tape.is_grad_enabled();
        tape.enable_grad(|| {
            let stand_ins = cx
                .inputs()
                .iter()
                .map(|v| tape.apply(StandIn, &[*v]))
                .collect::<autograd::Result<Vec<_>>>()?;
            let (xs, ps) = stand_ins.split_at(self.inputs);
            let out = self.run(tape, xs, ps).map_err(Error::into_autograd)?;
            if out.shape() != cx.output().shape() {
                return Err(autograd::Error::BadBackward {
                    op: "checkpoint",
                    reason: format!(
                        "a re-run of shape {} for an output of shape {} (the segment is not a function of its inputs)",
                        out.shape(),
                        cx.output().shape()
                    ),
                    location: self.location,
                });
            }
            if differentiable {
                Ok(tape
                    .vjp(out, cx.grad(), &stand_ins)?
                    .into_iter()
                    .map(Some)
                    .collect())
            } else {
                Ok(tape
                    .vjp_values(out, cx.grad().value(), &stand_ins)?
                    .into_iter()
                    .map(|g| Some(tape.constant(g)))
                    .collect())
            }
        })
    }
}
