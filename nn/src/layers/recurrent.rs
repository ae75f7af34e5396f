//! Recurrent layers over whole sequences: [`Rnn`], [`Lstm`], [`Gru`] (`nn.RNN`,
//! `nn.LSTM`, `nn.GRU`): stacked, optionally bidirectional, batch-first or not, with an
//! optional initial state, and PyTorch's parameter names (`weight_ih_l0`,
//! `bias_hh_l1_reverse`, ...), layouts and gate orders, so a PyTorch `state_dict` loads
//! as is.
//!
//! Each layer and direction projects the inputs of every time step with **one** matrix
//! product (`[L·N, in] × [in, G·H]`, both biases folded in where the maths allows); only
//! `h W_hhᵀ` and the gate arithmetic run per step (the step maths is shared with the
//! cells, `rnn_cell.rs`).

use autograd::{Float, Var};
use rand::Rng;

use super::dropout::dropout_from;
use super::rnn_cell::{
    input_projection, recurrent_init, step, CellKind, LstmState, RnnNonlinearity,
};
use crate::error::{Error, Result};
use crate::module::{Ctx, Field, Forward, Generator, Mode, Plain, Visit};
use crate::Module;

/// The hyper-parameters of a recurrent layer (`nn.RNN`, `nn.LSTM`, `nn.GRU` arguments),
/// with PyTorch's defaults from [`RnnConfig::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnConfig {
    /// Input features.
    pub input_size: usize,
    /// Hidden features `H`.
    pub hidden_size: usize,
    /// Stacked layers; layer `k > 0` reads layer `k - 1`'s output sequence (default 1).
    pub num_layers: usize,
    /// [`Rnn`]'s nonlinearity (default tanh); LSTM and GRU have none, and refuse anything
    /// but the default.
    pub nonlinearity: RnnNonlinearity,
    /// Whether there are `bias_ih_l*` and `bias_hh_l*` (default true).
    pub bias: bool,
    /// Input and output `[N, L, *]` (true) or `[L, N, *]` (false, the default). States
    /// are `[layers·directions, N, H]` either way.
    pub batch_first: bool,
    /// Dropout on the output of every layer but the last, in training mode (default 0).
    pub dropout: f64,
    /// A second direction per layer, running from the last step to the first, with its
    /// own weights (suffix `_reverse`); outputs concatenate both (default false).
    pub bidirectional: bool,
}

impl Plain for RnnConfig {}

impl RnnConfig {
    /// One unidirectional layer, tanh, biases, sequence-first, no dropout.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            input_size,
            hidden_size,
            num_layers: 1,
            nonlinearity: RnnNonlinearity::Tanh,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }

    /// Directions per layer (1 or 2).
    pub fn num_directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// An [`Rnn`]: every weight and bias `U(-1/√H, 1/√H)`, as PyTorch initialises them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size or `dropout` outside `[0, 1]`.
    #[track_caller]
    pub fn rnn<T: Float>(&self, rng: &mut impl Rng) -> Result<Rnn<T>> {
        Ok(Rnn(Stack::new(
            CellKind::Rnn(self.nonlinearity),
            self,
            "Rnn",
            rng,
        )?))
    }

    /// An [`Lstm`], initialised as PyTorch's.
    ///
    /// # Errors
    /// As [`RnnConfig::rnn`]; also a nonlinearity other than tanh.
    #[track_caller]
    pub fn lstm<T: Float>(&self, rng: &mut impl Rng) -> Result<Lstm<T>> {
        Ok(Lstm(Stack::new(CellKind::Lstm, self, "Lstm", rng)?))
    }

    /// A [`Gru`], initialised as PyTorch's.
    ///
    /// # Errors
    /// As [`RnnConfig::lstm`].
    #[track_caller]
    pub fn gru<T: Float>(&self, rng: &mut impl Rng) -> Result<Gru<T>> {
        Ok(Gru(Stack::new(CellKind::Gru, self, "Gru", rng)?))
    }
}

/// The weights of one direction of one layer: `weight_ih_l{k}` `[G·H, in]` (`in` is the
/// input size for `k = 0`, `directions·H` above), `weight_hh_l{k}` `[G·H, H]`, and the
/// biases `[G·H]`; `G` = 1 (RNN), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n).
#[derive(Debug)]
pub struct RecurrentWeights<T: Float> {
    /// `weight_ih_l{k}[_reverse]`.
    pub weight_ih: autograd::Param<T>,
    /// `weight_hh_l{k}[_reverse]`.
    pub weight_hh: autograd::Param<T>,
    /// `bias_ih_l{k}[_reverse]`, with `bias`.
    pub bias_ih: Option<autograd::Param<T>>,
    /// `bias_hh_l{k}[_reverse]`, with `bias`.
    pub bias_hh: Option<autograd::Param<T>>,
}

/// What the three layer types share: the weights of every layer and direction, the
/// inter-layer dropout, and the sequence loop.
#[derive(Debug)]
struct Stack<T: Float> {
    kind: CellKind,
    config: RnnConfig,
    /// Index `layer·directions + direction`, PyTorch's order.
    weights: Vec<RecurrentWeights<T>>,
    generator: Option<Generator>,
    mode: Mode,
}

/// Slices per split in [`unbind`].
const FANOUT: usize = 4;

/// The slices of `x` along axis 0, each without that axis.
///
/// Split as a tree of fan-out [`FANOUT`]: the gradient of a slice is a scatter into the
/// whole of what it was cut from, so cutting all `L` steps off one tensor would cost
/// `O(L²)` in backward; the tree costs `O(L log L)` and is still plain `Var` ops (so
/// every order of derivative works).
#[track_caller]
pub(crate) fn unbind<'t, T: Float>(x: Var<'t, T>) -> Result<Vec<Var<'t, T>>> {
    let d = x.dims();
    let mut out = Vec::with_capacity(d[0]);
    unbind_into(x, &d[1..], &mut out)?;
    Ok(out)
}

#[track_caller]
fn unbind_into<'t, T: Float>(
    x: Var<'t, T>,
    rest: &[usize],
    out: &mut Vec<Var<'t, T>>,
) -> Result<()> {
    let n = x.dims()[0];
    if n == 1 {
        out.push(x.reshape(rest.to_vec())?);
        return Ok(());
    }
    let parts = n.min(FANOUT);
    let sizes: Vec<usize> = (0..parts)
        .map(|p| n / parts + usize::from(p < n % parts))
        .collect();
    for piece in x.split(&sizes, 0)? {
        unbind_into(piece, rest, out)?;
    }
    Ok(())
}

impl<T: Float> Stack<T> {
    #[track_caller]
    fn new(
        kind: CellKind,
        cfg: &RnnConfig,
        what: &'static str,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (i, h, layers) = (cfg.input_size, cfg.hidden_size, cfg.num_layers);
        if i == 0 || h == 0 || layers == 0 {
            return Err(Error::config(
                what,
                format!(
                    "sizes must be positive, got input_size {i}, hidden_size {h}, num_layers {layers}"
                ),
            ));
        }
        if !(0.0..=1.0).contains(&cfg.dropout) {
            return Err(Error::config(
                what,
                format!("dropout must be in [0, 1], got {}", cfg.dropout),
            ));
        }
        if !matches!(kind, CellKind::Rnn(_)) && cfg.nonlinearity != RnnNonlinearity::Tanh {
            return Err(Error::config(what, "only Rnn has a nonlinearity option"));
        }
        let dirs = cfg.num_directions();
        let overflow = || Error::config(what, "a weight's size overflows");
        let gh = h.checked_mul(kind.gates()).ok_or_else(overflow)?;
        let upper_in = h.checked_mul(dirs).ok_or_else(overflow)?;
        let mut weights = Vec::with_capacity(layers * dirs);
        for layer in 0..layers {
            let input = if layer == 0 { i } else { upper_in };
            for _ in 0..dirs {
                weights.push(RecurrentWeights {
                    weight_ih: recurrent_init(&[gh, input], h, rng)?,
                    weight_hh: recurrent_init(&[gh, h], h, rng)?,
                    bias_ih: cfg
                        .bias
                        .then(|| recurrent_init(&[gh], h, rng))
                        .transpose()?,
                    bias_hh: cfg
                        .bias
                        .then(|| recurrent_init(&[gh], h, rng))
                        .transpose()?,
                });
            }
        }
        Ok(Stack {
            kind,
            config: *cfg,
            weights,
            generator: (cfg.dropout > 0.0 && layers > 1).then(|| Generator::new(rng.random())),
            mode: Mode::new(),
        })
    }

    fn visit_fields<'s>(&'s self, f: &mut dyn FnMut(&str, Field<'s, T>)) {
        let dirs = self.config.num_directions();
        for (idx, w) in self.weights.iter().enumerate() {
            let sfx = if idx % dirs == 1 { "_reverse" } else { "" };
            let k = idx / dirs;
            f(&format!("weight_ih_l{k}{sfx}"), Field::Param(&w.weight_ih));
            f(&format!("weight_hh_l{k}{sfx}"), Field::Param(&w.weight_hh));
            if let Some(b) = &w.bias_ih {
                f(&format!("bias_ih_l{k}{sfx}"), Field::Param(b));
            }
            if let Some(b) = &w.bias_hh {
                f(&format!("bias_hh_l{k}{sfx}"), Field::Param(b));
            }
        }
        if let Some(g) = &self.generator {
            f("generator", Field::Generator(g));
        }
        f("training", Field::Mode(&self.mode));
    }

    /// Checks an initial state `[layers·directions, N, H]` (`[.., H]` unbatched).
    #[track_caller]
    fn check_state(
        &self,
        layer: &'static str,
        name: &str,
        state: Option<Var<'_, T>>,
        n: usize,
        unbatched: bool,
    ) -> Result<()> {
        let Some(s) = state else { return Ok(()) };
        let states = self.config.num_layers * self.config.num_directions();
        let h = self.config.hidden_size;
        let want: Vec<usize> = if unbatched {
            vec![states, h]
        } else {
            vec![states, n, h]
        };
        if s.dims() != want {
            return Err(Error::input(
                layer,
                format!("{name} {want:?} ([layers·directions, N, H] whatever batch_first)"),
                s.shape(),
            ));
        }
        Ok(())
    }

    /// A checked initial state split into one `[N, H]` per layer and direction (`None`s
    /// for a missing one).
    #[track_caller]
    fn per_state<'t>(
        &self,
        state: Option<Var<'t, T>>,
        unbatched: bool,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        let Some(s) = state else {
            return Ok(vec![None; self.weights.len()]);
        };
        let s = if unbatched { s.unsqueeze(1)? } else { s };
        Ok(unbind(s)?.into_iter().map(Some).collect())
    }

    /// Runs the whole stack: `(output, h_n, c_n)` (`c_n` for LSTM).
    #[track_caller]
    #[allow(clippy::type_complexity)]
    fn run<'t>(
        &self,
        cx: &Ctx<'t, T>,
        layer_name: &'static str,
        x: Var<'t, T>,
        h0: Option<Var<'t, T>>,
        c0: Option<Var<'t, T>>,
    ) -> Result<(Var<'t, T>, Var<'t, T>, Option<Var<'t, T>>)> {
        let cfg = &self.config;
        let kind = self.kind;
        let dirs = cfg.num_directions();
        let i = cfg.input_size;
        let d = x.dims();
        let unbatched = d.len() == 2;
        if !(d.len() == 2 || d.len() == 3) || d[d.len() - 1] != i {
            let layout = if cfg.batch_first {
                "[N, L, "
            } else {
                "[L, N, "
            };
            return Err(Error::input(
                layer_name,
                format!("input {layout}{i}] (or [L, {i}] unbatched)"),
                x.shape(),
            ));
        }
        // Time-major from here on: [L, N, features].
        let xt = if unbatched {
            x.unsqueeze(1)?
        } else if cfg.batch_first {
            x.permute(&[1, 0, 2])?
        } else {
            x
        };
        let (l, n) = (xt.dims()[0], xt.dims()[1]);
        if l == 0 || n == 0 {
            return Err(Error::input(
                layer_name,
                "a non-empty sequence and batch",
                x.shape(),
            ));
        }
        self.check_state(layer_name, "h0", h0, n, unbatched)?;
        self.check_state(layer_name, "c0", c0, n, unbatched)?;
        let h_init = self.per_state(h0, unbatched)?;
        let c_init = self.per_state(c0, unbatched)?;

        let training = self.mode.is_training();
        let mut input = xt;
        let mut finals_h = Vec::with_capacity(self.weights.len());
        let mut finals_c = Vec::with_capacity(self.weights.len());
        let mut output = None;
        for layer in 0..cfg.num_layers {
            let mut per_dir = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let idx = layer * dirs + dir;
                let w = &self.weights[idx];
                let b_ih = cx.param_opt(w.bias_ih.as_ref());
                let b_hh = cx.param_opt(w.bias_hh.as_ref());
                // Every step's input projection in one product: [L, N, G·H].
                let xw = input_projection(kind, input, cx.param(&w.weight_ih), b_ih, b_hh)?;
                let steps = unbind(xw)?;
                let w_hh = cx.param(&w.weight_hh);
                let extra_bias = if kind.folds_hidden_bias() { None } else { b_hh };
                let (mut h, mut c) = (h_init[idx], c_init[idx]);
                let mut hs = Vec::with_capacity(l);
                for s in 0..l {
                    let t = if dir == 0 { s } else { l - 1 - s };
                    let (h2, c2) = step(kind, steps[t], h, c, w_hh, extra_bias)?;
                    hs.push(h2);
                    h = Some(h2);
                    c = c2;
                }
                if dir == 1 {
                    hs.reverse();
                }
                finals_h.push(h.expect("internal: the sequence is not empty"));
                finals_c.push(c);
                per_dir.push(hs);
            }
            let last = layer + 1 == cfg.num_layers;
            // The top layer stacks straight into the output layout.
            let time_axis = if last && cfg.batch_first && !unbatched {
                1
            } else {
                0
            };
            let mut stacked = Vec::with_capacity(dirs);
            for hs in &per_dir {
                stacked.push(Var::stack(hs, time_axis)?);
            }
            let out = if stacked.len() == 1 {
                stacked[0]
            } else {
                Var::concat(&stacked, -1)?
            };
            if last {
                output = Some(out);
            } else {
                input = match &self.generator {
                    Some(g) if training => dropout_from(out, cfg.dropout, g)?,
                    _ => out,
                };
            }
        }
        let mut output = output.expect("internal: at least one layer");
        let mut h_n = Var::stack(&finals_h, 0)?;
        let mut c_n = match kind {
            CellKind::Lstm => {
                let cs: Vec<_> = finals_c.into_iter().flatten().collect();
                Some(Var::stack(&cs, 0)?)
            }
            _ => None,
        };
        if unbatched {
            output = output.squeeze(1)?;
            h_n = h_n.squeeze(1)?;
            if let Some(c) = c_n {
                c_n = Some(c.squeeze(1)?);
            }
        }
        Ok((output, h_n, c_n))
    }
}

/// Module bookkeeping for a layer type wrapping a [`Stack`]: PyTorch's flat parameter
/// names, which a derive (one name per field) cannot produce.
macro_rules! stack_module {
    ($ty:ident) => {
        impl<T: Float> Module<T> for $ty<T> {
            fn visit_fields<'s>(&'s self, f: &mut dyn FnMut(&str, Field<'s, T>)) {
                self.0.visit_fields(f)
            }
        }

        impl<T: Float> Visit<T> for $ty<T> {
            fn visit<'s>(&'s self, name: &str, f: &mut dyn FnMut(&str, Field<'s, T>)) {
                f(name, Field::Module(self))
            }
        }

        impl<T: Float> $ty<T> {
            /// The hyper-parameters.
            pub fn config(&self) -> &RnnConfig {
                &self.0.config
            }

            /// The weights of `layer` (from 0) in the forward (`reverse = false`) or
            /// backward direction; `None` out of range.
            pub fn weights(&self, layer: usize, reverse: bool) -> Option<&RecurrentWeights<T>> {
                let dirs = self.0.config.num_directions();
                if layer >= self.0.config.num_layers || (reverse && dirs == 1) {
                    return None;
                }
                self.0.weights.get(layer * dirs + usize::from(reverse))
            }

            /// The generator the inter-layer dropout draws from (with `dropout > 0` and
            /// more than one layer).
            pub fn generator(&self) -> Option<&Generator> {
                self.0.generator.as_ref()
            }
        }
    };
}

/// `nn.RNN`: a stack of Elman layers, `h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ +
/// b_hh)` with `act` tanh or ReLU.
///
/// Input `(x, h0)`: `x` `[L, N, input]` (`[N, L, input]` batch-first, `[L, input]`
/// unbatched), `h0` `[layers·directions, N, H]` (`None` = zeros). Output `(output, h_n)`:
/// `output` `[L, N, directions·H]` (the top layer's `h_t` at every step; batch-first
/// `[N, L, ..]`), `h_n` the last state of every layer and direction, index
/// `layer·directions + direction` (the reverse direction's last state is the one after
/// step 0).
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Ctx, Module, RnnConfig};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let rnn = RnnConfig { num_layers: 2, batch_first: true, ..RnnConfig::new(3, 5) }.rnn::<f64>(&mut rng)?;
/// assert_eq!(rnn.named_parameters()[4].0, "weight_ih_l1");
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn([4, 7, 3], &mut rng)?); // [N, L, input]
/// let (out, h_n) = Ctx::new(&tape).call(&rnn, (x, None))?;
/// assert_eq!((out.dims(), h_n.dims()), (vec![4, 7, 5], vec![2, 4, 5]));
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug)]
pub struct Rnn<T: Float>(Stack<T>);
stack_module!(Rnn);

/// `nn.LSTM`: a stack of LSTM layers (gates i, f, g, o; `c_t = f c_{t-1} + i g`,
/// `h_t = o tanh(c_t)`).
///
/// Input `(x, state)`: `x` as [`Rnn`]'s, `state` an [`LstmState`] of `h0`, `c0`, each
/// `[layers·directions, N, H]` (`None` = zeros). Output `(output, LstmState { h: h_n,
/// c: c_n })`, laid out as [`Rnn`]'s.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{Ctx, RnnConfig};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let lstm = RnnConfig { bidirectional: true, ..RnnConfig::new(3, 4) }.lstm::<f64>(&mut rng)?;
/// let tape = Tape::new();
/// let cx = Ctx::new(&tape);
/// let x = tape.constant(Tensor::randn([6, 2, 3], &mut rng)?); // [L, N, input]
/// let (out, state) = cx.call(&lstm, (x, None))?;
/// assert_eq!(out.dims(), [6, 2, 8]); // both directions
/// // carry the state into the next chunk of the sequence
/// let (_, state) = cx.call(&lstm, (x, Some(state)))?;
/// assert_eq!(state.c.dims(), [2, 2, 4]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug)]
pub struct Lstm<T: Float>(Stack<T>);
stack_module!(Lstm);

/// `nn.GRU`: a stack of GRU layers (gates r, z, n; `n = tanh(x W_inᵀ + b_in + r (h
/// W_hnᵀ + b_hn))`, `h_t = (1 - z) n + z h_{t-1}`).
///
/// Input and output as [`Rnn`]'s.
#[derive(Debug)]
pub struct Gru<T: Float>(Stack<T>);
stack_module!(Gru);

impl<T: Float> Rnn<T> {
    /// One tanh layer with PyTorch's defaults (see [`RnnConfig::new`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut impl Rng) -> Result<Self> {
        RnnConfig::new(input_size, hidden_size).rnn(rng)
    }
}

impl<T: Float> Lstm<T> {
    /// One layer with PyTorch's defaults (see [`RnnConfig::new`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut impl Rng) -> Result<Self> {
        RnnConfig::new(input_size, hidden_size).lstm(rng)
    }
}

impl<T: Float> Gru<T> {
    /// One layer with PyTorch's defaults (see [`RnnConfig::new`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut impl Rng) -> Result<Self> {
        RnnConfig::new(input_size, hidden_size).gru(rng)
    }
}

impl<T: Float> Forward<T> for Rnn<T> {
    type Input<'t> = (Var<'t, T>, Option<Var<'t, T>>);
    type Output<'t> = (Var<'t, T>, Var<'t, T>);

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, (x, h0): Self::Input<'t>) -> Result<Self::Output<'t>> {
        let (out, h_n, _) = self.0.run(cx, "Rnn", x, h0, None)?;
        Ok((out, h_n))
    }
}

impl<T: Float> Forward<T> for Gru<T> {
    type Input<'t> = (Var<'t, T>, Option<Var<'t, T>>);
    type Output<'t> = (Var<'t, T>, Var<'t, T>);

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, (x, h0): Self::Input<'t>) -> Result<Self::Output<'t>> {
        let (out, h_n, _) = self.0.run(cx, "Gru", x, h0, None)?;
        Ok((out, h_n))
    }
}

impl<T: Float> Forward<T> for Lstm<T> {
    type Input<'t> = (Var<'t, T>, Option<LstmState<'t, T>>);
    type Output<'t> = (Var<'t, T>, LstmState<'t, T>);

    #[track_caller]
    fn forward<'t>(
        &self,
        cx: &Ctx<'t, T>,
        (x, state): Self::Input<'t>,
    ) -> Result<Self::Output<'t>> {
        let (h0, c0) = (state.map(|s| s.h), state.map(|s| s.c));
        let (out, h, c) = self.0.run(cx, "Lstm", x, h0, c0)?;
        let c = c.expect("internal: an LSTM returns c_n");
        Ok((out, LstmState { h, c }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{Tape, Tensor};

    #[test]
    fn unbind_gives_every_slice_and_routes_each_gradient_back_at_any_length() {
        for l in [1, 2, 3, 4, 5, 7, 16, 17, 40] {
            let tape = Tape::<f64>::new();
            let x = tape.var(Tensor::from_fn([l, 2, 3], |i| i as f64).unwrap());
            let parts = unbind(x).unwrap();
            assert_eq!(parts.len(), l);
            let mut total = None;
            for (t, p) in parts.iter().enumerate() {
                assert_eq!(p.dims(), [2, 3]);
                assert_eq!(
                    p.value().as_slice(),
                    &x.value().as_slice()[t * 6..(t + 1) * 6]
                );
                // Σ_t (t + 1)·sum(slice t): slice t's gradient is t + 1
                let term = p.sum().mul_scalar((t + 1) as f64);
                total = Some(match total {
                    None => term,
                    Some(s) => term.add(s).unwrap(),
                });
            }
            let g = tape.grad(total.unwrap(), &[x]).unwrap()[0].value();
            for (i, v) in g.as_slice().iter().enumerate() {
                assert_eq!(*v, (i / 6 + 1) as f64);
            }
        }
    }
}
