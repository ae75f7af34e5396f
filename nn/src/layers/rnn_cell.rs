//! Recurrent cells, one time step each: [`RnnCell`], [`LstmCell`], [`GruCell`]
//! (`nn.RNNCell`, `nn.LSTMCell`, `nn.GRUCell`), and the step maths the sequence layers
//! of `recurrent.rs` share with them.
//!
//! With `G` gates, `weight_ih` is `[G·H, input]`, `weight_hh` `[G·H, H]`, and both biases
//! `[G·H]` (PyTorch's layouts and gate orders, so a `state_dict` loads as is):
//!
//! | cell | G | step |
//! | --- | --- | --- |
//! | RNN | 1 | `h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`, `act` tanh or ReLU |
//! | LSTM | 4 (i, f, g, o) | `i, f, o = σ(..)`, `g = tanh(..)`, `c' = f c + i g`, `h' = o tanh(c')` |
//! | GRU | 3 (r, z, n) | `r, z = σ(..)`, `n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn))`, `h' = (1 - z) n + z h` |

use autograd::{Float, Param, Tensor, Var};
use rand::Rng;

use super::linear::linear;
use crate::error::{Error, Result};
use crate::init;
use crate::module::{Ctx, Forward, Plain};
use crate::{Module, Vars};

/// The nonlinearity of an Elman RNN (`nonlinearity='tanh'` or `'relu'`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

impl Plain for RnnNonlinearity {}

/// Which recurrence a layer or cell runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Rnn(RnnNonlinearity),
    Lstm,
    Gru,
}

impl Plain for CellKind {}

impl CellKind {
    /// Gates per step (row blocks of `H` in the weights).
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// Whether `b_hh` can be folded into the input projection (added once for the whole
    /// sequence rather than once per step): not for GRU, whose `b_hn` sits inside `r·(..)`.
    pub(crate) fn folds_hidden_bias(self) -> bool {
        !matches!(self, CellKind::Gru)
    }
}

/// `U(-1/√H, 1/√H)`, PyTorch's initialisation of every recurrent weight and bias.
#[track_caller]
pub(crate) fn recurrent_init<T: Float>(
    shape: &[usize],
    hidden: usize,
    rng: &mut impl Rng,
) -> Result<Param<T>> {
    let bound = 1.0 / (hidden as f64).sqrt();
    Ok(Param::new(init::uniform(
        shape.to_vec(),
        -bound,
        bound,
        rng,
    )?))
}

/// The input projection of every step at once: `x W_ihᵀ + b_ih (+ b_hh when it folds)`.
#[track_caller]
pub(crate) fn input_projection<'t, T: Float>(
    kind: CellKind,
    x: Var<'t, T>,
    w_ih: Var<'t, T>,
    b_ih: Option<Var<'t, T>>,
    b_hh: Option<Var<'t, T>>,
) -> Result<Var<'t, T>> {
    let bias = match (b_ih, b_hh) {
        (Some(a), Some(b)) if kind.folds_hidden_bias() => Some(a.add(b)?),
        (a, _) => a,
    };
    linear(x, w_ih, bias)
}

/// One step from `xw` (`[N, G·H]`, the input projection with its biases) and the state
/// `h`, `c` (`None` = zeros, for which the `h W_hhᵀ` product is skipped where it can be).
/// `b_hh` is passed only when it did not fold into `xw` (GRU). Returns `h'` and, for
/// LSTM, `c'`.
#[track_caller]
pub(crate) fn step<'t, T: Float>(
    kind: CellKind,
    xw: Var<'t, T>,
    h: Option<Var<'t, T>>,
    c: Option<Var<'t, T>>,
    w_hh: Var<'t, T>,
    b_hh: Option<Var<'t, T>>,
) -> Result<(Var<'t, T>, Option<Var<'t, T>>)> {
    let hidden = w_hh.dims()[1];
    match kind {
        CellKind::Rnn(act) => {
            let pre = match h {
                Some(h) => xw.add(h.matmul_t(w_hh, false, true)?)?,
                None => xw,
            };
            let h = match act {
                RnnNonlinearity::Tanh => pre.tanh(),
                RnnNonlinearity::Relu => pre.relu(),
            };
            Ok((h, None))
        }
        CellKind::Lstm => {
            let gates = match h {
                Some(h) => xw.add(h.matmul_t(w_hh, false, true)?)?,
                None => xw,
            };
            let g = gates.split(&[hidden; 4], 1)?;
            let (i, f, g, o) = (g[0].sigmoid(), g[1].sigmoid(), g[2].tanh(), g[3].sigmoid());
            let c = match c {
                Some(c) => f.mul(c)?.add(i.mul(g)?)?,
                None => i.mul(g)?,
            };
            Ok((o.mul(c.tanh())?, Some(c)))
        }
        CellKind::Gru => {
            let h = match h {
                Some(h) => h,
                None => xw.tape().constant(Tensor::zeros([xw.dims()[0], hidden])?),
            };
            let mut hw = h.matmul_t(w_hh, false, true)?;
            if let Some(b) = b_hh {
                hw = hw.add(b)?;
            }
            let x = xw.split(&[2 * hidden, hidden], 1)?;
            let hh = hw.split(&[2 * hidden, hidden], 1)?;
            let rz = x[0].add(hh[0])?.sigmoid().split(&[hidden, hidden], 1)?;
            let (r, z) = (rz[0], rz[1]);
            let n = x[1].add(r.mul(hh[1])?)?.tanh();
            // PyTorch's order: (h - n)·z + n
            Ok((h.sub(n)?.mul(z)?.add(n)?, None))
        }
    }
}

/// The state an LSTM carries: hidden `h` and cell `c`, each `[N, H]` for a cell and
/// `[layers·directions, N, H]` for a layer.
#[derive(Clone, Copy, Debug, Vars)]
pub struct LstmState<'t, T: Float> {
    /// Hidden state (`h_0`, `h_n`).
    pub h: Var<'t, T>,
    /// Cell state (`c_0`, `c_n`).
    pub c: Var<'t, T>,
}

/// The hyper-parameters of a recurrent cell (`nn.RNNCell`, `nn.LSTMCell`, `nn.GRUCell`
/// arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellConfig {
    /// Input features.
    pub input_size: usize,
    /// Hidden features `H`.
    pub hidden_size: usize,
    /// Whether there are `bias_ih` and `bias_hh` (default true).
    pub bias: bool,
    /// The RNN cell's nonlinearity (default tanh); LSTM and GRU cells have none, and
    /// refuse anything but the default.
    pub nonlinearity: RnnNonlinearity,
}

impl Plain for CellConfig {}

impl CellConfig {
    /// PyTorch's defaults: biases, tanh.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        CellConfig {
            input_size,
            hidden_size,
            bias: true,
            nonlinearity: RnnNonlinearity::Tanh,
        }
    }

    #[track_caller]
    fn build<T: Float>(
        &self,
        kind: CellKind,
        what: &'static str,
        rng: &mut impl Rng,
    ) -> Result<CellParams<T>> {
        let (i, h) = (self.input_size, self.hidden_size);
        if i == 0 || h == 0 {
            return Err(Error::config(
                what,
                format!("sizes must be positive, got input_size {i}, hidden_size {h}"),
            ));
        }
        if !matches!(kind, CellKind::Rnn(_)) && self.nonlinearity != RnnNonlinearity::Tanh {
            return Err(Error::config(
                what,
                "only the RNN cell has a nonlinearity option",
            ));
        }
        let gh = h
            .checked_mul(kind.gates())
            .ok_or_else(|| Error::config(what, "gates·hidden_size overflows"))?;
        Ok(CellParams {
            weight_ih: recurrent_init(&[gh, i], h, rng)?,
            weight_hh: recurrent_init(&[gh, h], h, rng)?,
            bias_ih: self
                .bias
                .then(|| recurrent_init(&[gh], h, rng))
                .transpose()?,
            bias_hh: self
                .bias
                .then(|| recurrent_init(&[gh], h, rng))
                .transpose()?,
        })
    }

    /// An [`RnnCell`], every weight and bias `U(-1/√H, 1/√H)` as in PyTorch.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn rnn_cell<T: Float>(&self, rng: &mut impl Rng) -> Result<RnnCell<T>> {
        let p = self.build(CellKind::Rnn(self.nonlinearity), "RnnCell", rng)?;
        Ok(RnnCell {
            weight_ih: p.weight_ih,
            weight_hh: p.weight_hh,
            bias_ih: p.bias_ih,
            bias_hh: p.bias_hh,
            config: *self,
        })
    }

    /// An [`LstmCell`], initialised as PyTorch's.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size or a nonlinearity other than tanh.
    #[track_caller]
    pub fn lstm_cell<T: Float>(&self, rng: &mut impl Rng) -> Result<LstmCell<T>> {
        let p = self.build(CellKind::Lstm, "LstmCell", rng)?;
        Ok(LstmCell {
            weight_ih: p.weight_ih,
            weight_hh: p.weight_hh,
            bias_ih: p.bias_ih,
            bias_hh: p.bias_hh,
            config: *self,
        })
    }

    /// A [`GruCell`], initialised as PyTorch's.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size or a nonlinearity other than tanh.
    #[track_caller]
    pub fn gru_cell<T: Float>(&self, rng: &mut impl Rng) -> Result<GruCell<T>> {
        let p = self.build(CellKind::Gru, "GruCell", rng)?;
        Ok(GruCell {
            weight_ih: p.weight_ih,
            weight_hh: p.weight_hh,
            bias_ih: p.bias_ih,
            bias_hh: p.bias_hh,
            config: *self,
        })
    }
}

struct CellParams<T: Float> {
    weight_ih: Param<T>,
    weight_hh: Param<T>,
    bias_ih: Option<Param<T>>,
    bias_hh: Option<Param<T>>,
}

/// Checks a cell's input `[N, input]` (or `[input]`) and state `[N, H]` (or `[H]`),
/// returning whether the input is unbatched.
#[track_caller]
fn check_cell_input<T: Float>(
    layer: &'static str,
    cfg: &CellConfig,
    x: Var<'_, T>,
    states: &[(&str, Option<Var<'_, T>>)],
) -> Result<bool> {
    let (i, h) = (cfg.input_size, cfg.hidden_size);
    let d = x.dims();
    let unbatched = d.len() == 1;
    if !(d.len() == 1 || d.len() == 2) || d[d.len() - 1] != i {
        return Err(Error::input(
            layer,
            format!("input [N, {i}] (or [{i}] unbatched)"),
            x.shape(),
        ));
    }
    let want: Vec<usize> = if unbatched { vec![h] } else { vec![d[0], h] };
    for (name, s) in states {
        if let Some(s) = s {
            if s.dims() != want {
                return Err(Error::input(
                    layer,
                    format!("{name} {want:?} (the input's batch, hidden_size {h})"),
                    s.shape(),
                ));
            }
        }
    }
    Ok(unbatched)
}

/// Runs one step of a cell on a checked input, un/re-batching a 1-d input.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn cell_step<'t, T: Float>(
    cx: &Ctx<'t, T>,
    kind: CellKind,
    unbatched: bool,
    x: Var<'t, T>,
    h: Option<Var<'t, T>>,
    c: Option<Var<'t, T>>,
    weight_ih: &Param<T>,
    weight_hh: &Param<T>,
    bias_ih: Option<&Param<T>>,
    bias_hh: Option<&Param<T>>,
) -> Result<(Var<'t, T>, Option<Var<'t, T>>)> {
    let x = batch_axis(x, unbatched, true)?;
    let h = match h {
        Some(h) => Some(batch_axis(h, unbatched, true)?),
        None => None,
    };
    let c = match c {
        Some(c) => Some(batch_axis(c, unbatched, true)?),
        None => None,
    };
    let b_ih = cx.param_opt(bias_ih);
    let b_hh = cx.param_opt(bias_hh);
    let xw = input_projection(kind, x, cx.param(weight_ih), b_ih, b_hh)?;
    let extra_bias = if kind.folds_hidden_bias() { None } else { b_hh };
    let (h, c) = step(kind, xw, h, c, cx.param(weight_hh), extra_bias)?;
    let c = match c {
        Some(c) => Some(batch_axis(c, unbatched, false)?),
        None => None,
    };
    Ok((batch_axis(h, unbatched, false)?, c))
}

/// Adds (`add`) or removes a leading batch axis of one for an unbatched input; the
/// identity for a batched one.
#[track_caller]
fn batch_axis<T: Float>(v: Var<'_, T>, unbatched: bool, add: bool) -> Result<Var<'_, T>> {
    Ok(match (unbatched, add) {
        (false, _) => v,
        (true, true) => v.unsqueeze(0)?,
        (true, false) => v.squeeze(0)?,
    })
}

macro_rules! cell_accessors {
    ($ty:ident) => {
        impl<T: Float> $ty<T> {
            /// The hyper-parameters.
            pub fn config(&self) -> &CellConfig {
                &self.config
            }
        }
    };
}

/// `nn.RNNCell`: one Elman step, `h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
///
/// Input `(x, h)`: `x` `[N, input]` (or `[input]`), `h` `[N, H]` (`None` = zeros).
/// Output: `h'` `[N, H]`.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{CellConfig, Ctx};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cell = CellConfig::new(3, 4).rnn_cell::<f64>(&mut rng)?;
/// let tape = Tape::new();
/// let cx = Ctx::new(&tape);
/// let mut h = None;
/// for _ in 0..5 {
///     let x = tape.constant(Tensor::randn([2, 3], &mut rng)?);
///     h = Some(cx.call(&cell, (x, h))?);
/// }
/// assert_eq!(h.unwrap().dims(), [2, 4]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct RnnCell<T: Float> {
    /// `[H, input]`.
    pub weight_ih: Param<T>,
    /// `[H, H]`.
    pub weight_hh: Param<T>,
    /// `[H]`, with `bias`.
    pub bias_ih: Option<Param<T>>,
    /// `[H]`, with `bias`.
    pub bias_hh: Option<Param<T>>,
    config: CellConfig,
}
cell_accessors!(RnnCell);

impl<T: Float> RnnCell<T> {
    /// A tanh cell with biases, initialised as PyTorch's.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut impl Rng) -> Result<Self> {
        CellConfig::new(input_size, hidden_size).rnn_cell(rng)
    }
}

impl<T: Float> Forward<T> for RnnCell<T> {
    type Input<'t> = (Var<'t, T>, Option<Var<'t, T>>);
    type Output<'t> = Var<'t, T>;

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, (x, h): Self::Input<'t>) -> Result<Var<'t, T>> {
        let unbatched = check_cell_input("RnnCell", &self.config, x, &[("hx", h)])?;
        let kind = CellKind::Rnn(self.config.nonlinearity);
        let (h, _) = cell_step(
            cx,
            kind,
            unbatched,
            x,
            h,
            None,
            &self.weight_ih,
            &self.weight_hh,
            self.bias_ih.as_ref(),
            self.bias_hh.as_ref(),
        )?;
        Ok(h)
    }
}

/// `nn.LSTMCell`: one LSTM step, gates i, f, g, o (row blocks of `weight_ih` `[4H,
/// input]` in that order), `c' = f c + i g`, `h' = o tanh(c')`.
///
/// Input `(x, state)`: `x` `[N, input]` (or `[input]`), `state` `[N, H]` each (`None`
/// = zeros). Output: the new [`LstmState`] (`h_1`, `c_1`).
#[derive(Debug, Module)]
pub struct LstmCell<T: Float> {
    /// `[4H, input]` (i, f, g, o).
    pub weight_ih: Param<T>,
    /// `[4H, H]`.
    pub weight_hh: Param<T>,
    /// `[4H]`, with `bias`.
    pub bias_ih: Option<Param<T>>,
    /// `[4H]`, with `bias`.
    pub bias_hh: Option<Param<T>>,
    config: CellConfig,
}
cell_accessors!(LstmCell);

impl<T: Float> LstmCell<T> {
    /// A cell with biases, initialised as PyTorch's.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut impl Rng) -> Result<Self> {
        CellConfig::new(input_size, hidden_size).lstm_cell(rng)
    }
}

impl<T: Float> Forward<T> for LstmCell<T> {
    type Input<'t> = (Var<'t, T>, Option<LstmState<'t, T>>);
    type Output<'t> = LstmState<'t, T>;

    #[track_caller]
    fn forward<'t>(
        &self,
        cx: &Ctx<'t, T>,
        (x, state): Self::Input<'t>,
    ) -> Result<LstmState<'t, T>> {
        let (h, c) = (state.map(|s| s.h), state.map(|s| s.c));
        let unbatched = check_cell_input("LstmCell", &self.config, x, &[("hx", h), ("cx", c)])?;
        let (h, c) = cell_step(
            cx,
            CellKind::Lstm,
            unbatched,
            x,
            h,
            c,
            &self.weight_ih,
            &self.weight_hh,
            self.bias_ih.as_ref(),
            self.bias_hh.as_ref(),
        )?;
        Ok(LstmState {
            h,
            c: c.expect("internal: an LSTM step returns c"),
        })
    }
}

/// `nn.GRUCell`: one GRU step, gates r, z, n (row blocks of `weight_ih` `[3H, input]` in
/// that order), `n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn))` with `b_hn` inside the
/// product, `h' = (1 - z) n + z h`.
///
/// Input `(x, h)` as [`RnnCell`]'s; output `h'`.
#[derive(Debug, Module)]
pub struct GruCell<T: Float> {
    /// `[3H, input]` (r, z, n).
    pub weight_ih: Param<T>,
    /// `[3H, H]`.
    pub weight_hh: Param<T>,
    /// `[3H]`, with `bias`.
    pub bias_ih: Option<Param<T>>,
    /// `[3H]`, with `bias`.
    pub bias_hh: Option<Param<T>>,
    config: CellConfig,
}
cell_accessors!(GruCell);

impl<T: Float> GruCell<T> {
    /// A cell with biases, initialised as PyTorch's.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size.
    #[track_caller]
    pub fn new(input_size: usize, hidden_size: usize, rng: &mut impl Rng) -> Result<Self> {
        CellConfig::new(input_size, hidden_size).gru_cell(rng)
    }
}

impl<T: Float> Forward<T> for GruCell<T> {
    type Input<'t> = (Var<'t, T>, Option<Var<'t, T>>);
    type Output<'t> = Var<'t, T>;

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, (x, h): Self::Input<'t>) -> Result<Var<'t, T>> {
        let unbatched = check_cell_input("GruCell", &self.config, x, &[("hx", h)])?;
        let (h, _) = cell_step(
            cx,
            CellKind::Gru,
            unbatched,
            x,
            h,
            None,
            &self.weight_ih,
            &self.weight_hh,
            self.bias_ih.as_ref(),
            self.bias_hh.as_ref(),
        )?;
        Ok(h)
    }
}
