//! Attention: [`scaled_dot_product_attention`] (`F.scaled_dot_product_attention`) and
//! [`MultiheadAttention`] (`nn.MultiheadAttention`), both on one kernel of batched
//! matrix products over every leading axis (batch × heads).
//!
//! **A fully masked row** (a query for which every key is blocked, by a [`BoolMask`], a
//! key-padding mask or `-inf` entries of an additive mask) gives an attention output of
//! exactly zero for that query, zero attention weights, and zero gradients through it
//! (to the query, keys, values, projections and additive masks). PyTorch returns NaN
//! there, which then spreads to every parameter's gradient through the batch. Rows that
//! keep at least one key are bit-for-bit what `-inf` masking gives.

use autograd::{Float, Param, Shape, Var};
use rand::Rng;

use super::dropout::dropout_from;
use super::linear::{linear, Linear, LinearConfig};
use super::mask::{mask_error, AttnMask, BoolMask, ScoreMask};
use crate::error::{Error, Result};
use crate::init::{self, Init};
use crate::module::{Ctx, Forward, Generator, Mode};
use crate::Module;
use crate::Vars;

/// The attention kernel: `softmax(q kᵀ·scale + mask) v` over the last two axes, batched
/// (with broadcasting) over the leading ones. Returns the output and the attention
/// weights (after dropout, as PyTorch returns them). Shapes are the caller's to check.
#[track_caller]
pub(crate) fn attend<'t, T: Float>(
    q: Var<'t, T>,
    k: Var<'t, T>,
    v: Var<'t, T>,
    mask: ScoreMask<'t, T>,
    scale: f64,
    dropout_p: Option<(f64, &Generator)>,
) -> Result<(Var<'t, T>, Var<'t, T>)> {
    let tape = q.tape();
    // Scaling q (L·d entries) rather than the scores (L·S) is the cheaper of the two.
    let mut scores = q.mul_scalar(T::of(scale)).matmul_t(k, false, true)?;
    if let Some(a) = mask.additive {
        scores = scores.add(a)?;
    }
    let mut alive = None;
    if let Some(b) = &mask.blocked {
        // An additive constant rather than a `masked_fill`: one broadcast add, and
        // `exp(blocked - max)` is exactly 0 for every row that keeps a key.
        scores = scores.add(tape.constant(b.to_additive()))?;
        alive = b.alive_rows::<T>();
    }
    let mut weights = scores.softmax(-1)?;
    if let Some(alive) = alive {
        // A fully masked row is uniform over blocked keys here; zeroing it makes its
        // output 0 and stops every gradient through it.
        weights = weights.mul(tape.constant(alive))?;
    }
    if let Some((p, generator)) = dropout_p {
        weights = dropout_from(weights, p, generator)?;
    }
    let out = weights.matmul(v)?;
    Ok((out, weights))
}

/// `F.scaled_dot_product_attention(query, key, value, attn_mask, is_causal=..,
/// scale=..)` without dropout: `softmax(q kᵀ·scale + M) v` over the last two axes,
/// batched over the leading ones (batch, heads, ...; they broadcast).
///
/// - `query` `[*, L, E]`, `key` `[*, S, E]`, `value` `[*, S, Ev]` → `[*, L, Ev]`.
/// - `scale` defaults to `1/√E`.
/// - `attn_mask` broadcasts to `[*, L, S]`: a [`BoolMask`] (`true` = blocked) or an
///   additive float mask.
/// - `is_causal`: query `i` attends to keys `j <= i` ([`BoolMask::causal`]). Unlike
///   PyTorch, it may be combined with `attn_mask` (blocked where either blocks).
///
/// A query whose keys are all blocked gets a zero output and zero gradients (PyTorch:
/// NaN); see the [module docs](self).
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::scaled_dot_product_attention;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let tape = Tape::<f64>::new();
/// let q = tape.var(Tensor::randn([2, 4, 5, 8], &mut rng)?); // [N, heads, L, E]
/// let k = tape.var(Tensor::randn([2, 4, 5, 8], &mut rng)?);
/// let v = tape.var(Tensor::randn([2, 4, 5, 3], &mut rng)?);
/// let out = scaled_dot_product_attention(q, k, v, None, true, None)?;
/// assert_eq!(out.dims(), [2, 4, 5, 3]);
/// // the first query sees only the first key
/// let first = out.value().as_slice()[..3].to_vec();
/// assert_eq!(first, v.value().as_slice()[..3].to_vec());
/// # Ok::<(), nn::Error>(())
/// ```
///
/// # Errors
/// [`Error::InputShape`] naming `scaled_dot_product_attention` when a rank is below 2,
/// `query` and `key` differ in feature size, `key` and `value` differ in length, a
/// length is zero, the batch axes do not broadcast, or the mask does not broadcast to
/// the scores; [`Error::InvalidConfig`] for a scale that is not finite.
#[track_caller]
pub fn scaled_dot_product_attention<'t, T: Float>(
    query: Var<'t, T>,
    key: Var<'t, T>,
    value: Var<'t, T>,
    attn_mask: Option<AttnMask<'t, T>>,
    is_causal: bool,
    scale: Option<f64>,
) -> Result<Var<'t, T>> {
    const OP: &str = "scaled_dot_product_attention";
    let (qs, ks, vs) = (query.shape(), key.shape(), value.shape());
    for (name, s) in [("query", &qs), ("key", &ks), ("value", &vs)] {
        if s.rank() < 2 {
            return Err(Error::input(
                OP,
                format!("{name} of rank >= 2 ([*, length, features])"),
                s.clone(),
            ));
        }
    }
    let (l, e) = (qs[qs.rank() - 2], qs[qs.rank() - 1]);
    let s_len = ks[ks.rank() - 2];
    if ks[ks.rank() - 1] != e {
        return Err(Error::input(
            OP,
            format!("key [*, S, {e}] (the query's feature size)"),
            ks,
        ));
    }
    if vs[vs.rank() - 2] != s_len {
        return Err(Error::input(
            OP,
            format!("value [*, {s_len}, Ev] (as many entries as the key)"),
            vs,
        ));
    }
    if l == 0 || s_len == 0 {
        return Err(Error::input(
            OP,
            "non-empty query and key sequences",
            if l == 0 { qs } else { ks },
        ));
    }
    let batch = |s: &Shape| Shape::from(s.dims()[..s.rank() - 2].to_vec());
    let b = match batch(&qs)
        .broadcast(&batch(&ks), OP)
        .and_then(|b| b.broadcast(&batch(&vs), OP))
    {
        Ok(b) => b,
        Err(_) => {
            return Err(Error::input(
                OP,
                format!("batch axes that broadcast: query {qs}, key {ks}, value {vs}"),
                ks,
            ))
        }
    };
    let mut scores_dims = b.to_vec();
    scores_dims.extend([l, s_len]);
    let scores_shape = Shape::from(scores_dims);
    let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
    if !scale.is_finite() {
        return Err(Error::config(
            OP,
            format!("scale must be finite, got {scale}"),
        ));
    }
    let mut mask = ScoreMask::default();
    if let Some(m) = attn_mask {
        check_broadcast(OP, "attn_mask", &m.shape(), &scores_shape)?;
        mask.push(m)?;
    }
    if is_causal {
        mask.push(AttnMask::Block(BoolMask::causal(l, s_len)))?;
    }
    Ok(attend(query, key, value, mask, scale, None)?.0)
}

/// An error unless `mask` broadcasts to exactly `scores` (a mask that would enlarge
/// the scores is a mistake, not a broadcast).
#[track_caller]
fn check_broadcast(layer: &'static str, what: &str, mask: &Shape, scores: &Shape) -> Result<()> {
    match mask.broadcast(scores, layer) {
        Ok(s) if &s == scores => Ok(()),
        _ => Err(mask_error(
            layer,
            format!("{what} broadcasting to the scores {scores}"),
            mask.clone(),
        )),
    }
}

/// Which attention weights [`MultiheadAttention`] returns (PyTorch's `need_weights` and
/// `average_attn_weights`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttnWeights {
    /// None (`need_weights=False`): the output's second element is `None`.
    #[default]
    None,
    /// Averaged over heads, `[N, L, S]` (`need_weights=True`, PyTorch's default).
    Averaged,
    /// Per head, `[N, heads, L, S]` (`average_attn_weights=False`).
    PerHead,
}

/// The input of [`MultiheadAttention`]: query, key and value, optional masks, and which
/// weights to return. Build it with [`AttentionInput::new`] or
/// [`AttentionInput::self_attention`] and the `with_*` methods.
#[derive(Clone, Debug, Vars)]
pub struct AttentionInput<'t, T: Float> {
    /// `[N, L, E]` (batch first), `[L, N, E]`, or `[L, E]` unbatched.
    pub query: Var<'t, T>,
    /// `[N, S, kdim]`, `[S, N, kdim]` or `[S, kdim]`.
    pub key: Var<'t, T>,
    /// `[N, S, vdim]`, `[S, N, vdim]` or `[S, vdim]`.
    pub value: Var<'t, T>,
    /// `[N, S]` (`[S]` unbatched): keys to ignore for every query of a sample.
    pub key_padding_mask: Option<AttnMask<'t, T>>,
    /// `[L, S]`, or `[N·heads, L, S]` (`[heads, L, S]` unbatched) for a mask per sample
    /// and head.
    pub attn_mask: Option<AttnMask<'t, T>>,
    /// Which attention weights to return (none by default; PyTorch's default is
    /// averaged).
    #[vars(skip)]
    pub weights: AttnWeights,
}

impl<'t, T: Float> AttentionInput<'t, T> {
    /// `query` attending to `key`/`value`, without masks or weights.
    pub fn new(query: Var<'t, T>, key: Var<'t, T>, value: Var<'t, T>) -> Self {
        AttentionInput {
            query,
            key,
            value,
            key_padding_mask: None,
            attn_mask: None,
            weights: AttnWeights::None,
        }
    }

    /// Self-attention: `x` as query, key and value (projected with one matrix product).
    pub fn self_attention(x: Var<'t, T>) -> Self {
        Self::new(x, x, x)
    }

    /// With an attention mask (`[L, S]` or `[N·heads, L, S]`).
    pub fn with_attn_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.attn_mask = Some(mask.into());
        self
    }

    /// With a key-padding mask (`[N, S]`).
    pub fn with_key_padding_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.key_padding_mask = Some(mask.into());
        self
    }

    /// Returning the attention weights `weights`.
    pub fn with_weights(mut self, weights: AttnWeights) -> Self {
        self.weights = weights;
        self
    }
}

/// The hyper-parameters of a [`MultiheadAttention`] layer (`nn.MultiheadAttention`'s
/// arguments, with its defaults from [`MultiheadAttentionConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Model width `E` (query features and output features).
    pub embed_dim: usize,
    /// Number of heads; must divide `embed_dim`.
    pub num_heads: usize,
    /// Dropout on the attention weights in training mode (default 0).
    pub dropout: f64,
    /// Biases on the input and output projections (default true).
    pub bias: bool,
    /// Key features; `None` means `embed_dim`.
    pub kdim: Option<usize>,
    /// Value features; `None` means `embed_dim`.
    pub vdim: Option<usize>,
    /// Inputs and output `[N, L, E]` (true) or `[L, N, E]` (false, PyTorch's default).
    pub batch_first: bool,
}

impl MultiheadAttentionConfig {
    /// PyTorch's defaults for `embed_dim` and `num_heads`: no dropout, biases, `kdim =
    /// vdim = embed_dim`, sequence-first.
    pub fn new(embed_dim: usize, num_heads: usize) -> Self {
        MultiheadAttentionConfig {
            embed_dim,
            num_heads,
            dropout: 0.0,
            bias: true,
            kdim: None,
            vdim: None,
            batch_first: false,
        }
    }

    /// Builds the layer with PyTorch's initialisation: Xavier-uniform input projections
    /// (over the packed `[3E, E]` matrix when `kdim = vdim = E`), zero input and output
    /// biases, and `Linear`'s default for the output weight. The attention dropout draws
    /// from a generator seeded from `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size, `embed_dim` not divisible by `num_heads`
    /// or `dropout` outside `[0, 1]`.
    #[track_caller]
    pub fn init<T: Float>(&self, rng: &mut impl Rng) -> Result<MultiheadAttention<T>> {
        let e = self.embed_dim;
        let h = self.num_heads;
        let kdim = self.kdim.unwrap_or(e);
        let vdim = self.vdim.unwrap_or(e);
        if e == 0 || h == 0 || kdim == 0 || vdim == 0 {
            return Err(Error::config(
                "MultiheadAttention",
                format!(
                    "sizes must be positive, got embed_dim {e}, num_heads {h}, kdim {kdim}, vdim {vdim}"
                ),
            ));
        }
        if !e.is_multiple_of(h) {
            return Err(Error::config(
                "MultiheadAttention",
                format!("embed_dim {e} is not divisible by num_heads {h}"),
            ));
        }
        if !(0.0..=1.0).contains(&self.dropout) {
            return Err(Error::config(
                "MultiheadAttention",
                format!("dropout must be in [0, 1], got {}", self.dropout),
            ));
        }
        let three_e = e
            .checked_mul(3)
            .ok_or_else(|| Error::config("MultiheadAttention", "3·embed_dim overflows"))?;
        let packed = kdim == e && vdim == e;
        let xavier = |shape: [usize; 2], rng: &mut _| -> Result<Param<T>> {
            Ok(Param::new(init::xavier_uniform(shape, 1.0, rng)?))
        };
        let (in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight) = if packed {
            (Some(xavier([three_e, e], rng)?), None, None, None)
        } else {
            (
                None,
                Some(xavier([e, e], rng)?),
                Some(xavier([e, kdim], rng)?),
                Some(xavier([e, vdim], rng)?),
            )
        };
        let out_proj = LinearConfig {
            bias: self.bias,
            bias_init: Some(Init::Zeros),
            ..LinearConfig::new(e, e)
        }
        .init(rng)?;
        Ok(MultiheadAttention {
            in_proj_weight,
            q_proj_weight,
            k_proj_weight,
            v_proj_weight,
            in_proj_bias: self
                .bias
                .then(|| autograd::Tensor::zeros([three_e]).map(Param::new))
                .transpose()?,
            out_proj,
            generator: (self.dropout > 0.0).then(|| Generator::new(rng.random())),
            mode: Mode::new(),
            config: *self,
        })
    }
}

impl crate::module::Plain for MultiheadAttentionConfig {}

/// `nn.MultiheadAttention`: `out_proj(concat_h(attention(q W_qᵀ + b_q, k W_kᵀ + b_k,
/// v W_vᵀ + b_v)))`, with `E/heads` features per head (a contiguous slice of each
/// projection) and scores scaled by `1/√(E/heads)`.
///
/// Parameters carry PyTorch's `state_dict` keys and layouts, so a PyTorch checkpoint
/// loads as is: `in_proj_weight` `[3E, E]` (rows W_q, W_k, W_v) when `kdim = vdim = E`,
/// else `q_proj_weight` `[E, E]`, `k_proj_weight` `[E, kdim]`, `v_proj_weight`
/// `[E, vdim]`; `in_proj_bias` `[3E]`; `out_proj.weight`, `out_proj.bias`.
///
/// Input: an [`AttentionInput`]; output: `(attn_output, weights)`, `attn_output` shaped
/// like the query but with `E` features, `weights` as asked by
/// [`AttentionInput::weights`] (`[N, L, S]` averaged or `[N, heads, L, S]`, whatever
/// `batch_first`). Masks combine by OR (booleans) and sum (additive); a query whose keys
/// are all masked gets a zero output and zero gradients (PyTorch: NaN), see the
/// [module docs](self). Self-attention (the same `Var` as query, key and value) projects
/// with one matrix product, and key = value with one for both.
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{AttentionInput, AttnWeights, BoolMask, Ctx, MultiheadAttentionConfig};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mha = MultiheadAttentionConfig { batch_first: true, ..MultiheadAttentionConfig::new(8, 2) }
///     .init::<f64>(&mut rng)?;
/// let tape = Tape::new();
/// let x = tape.var(Tensor::randn([3, 5, 8], &mut rng)?); // [N, L, E]
/// let input = AttentionInput::self_attention(x)
///     .with_attn_mask(BoolMask::causal(5, 5))
///     .with_key_padding_mask(BoolMask::key_padding(&[5, 4, 2], 5)?)
///     .with_weights(AttnWeights::Averaged);
/// let (y, w) = Ctx::new(&tape).call(&mha, input)?;
/// assert_eq!(y.dims(), [3, 5, 8]);
/// assert_eq!(w.unwrap().dims(), [3, 5, 5]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct MultiheadAttention<T: Float> {
    /// `[3E, E]`: W_q, W_k, W_v stacked (when `kdim = vdim = E`).
    pub in_proj_weight: Option<Param<T>>,
    /// `[E, E]` (when `kdim` or `vdim` differs from `E`).
    pub q_proj_weight: Option<Param<T>>,
    /// `[E, kdim]` (when `kdim` or `vdim` differs from `E`).
    pub k_proj_weight: Option<Param<T>>,
    /// `[E, vdim]` (when `kdim` or `vdim` differs from `E`).
    pub v_proj_weight: Option<Param<T>>,
    /// `[3E]`: b_q, b_k, b_v stacked (with `bias`).
    pub in_proj_bias: Option<Param<T>>,
    /// The output projection `E → E`.
    pub out_proj: Linear<T>,
    /// The attention dropout's random stream (only with `dropout > 0`).
    generator: Option<Generator>,
    mode: Mode,
    config: MultiheadAttentionConfig,
}

impl<T: Float> MultiheadAttention<T> {
    /// `embed_dim` over `num_heads` heads with PyTorch's defaults (sequence-first, see
    /// [`MultiheadAttentionConfig::new`]).
    ///
    /// # Errors
    /// As [`MultiheadAttentionConfig::init`].
    #[track_caller]
    pub fn new(embed_dim: usize, num_heads: usize, rng: &mut impl Rng) -> Result<Self> {
        MultiheadAttentionConfig::new(embed_dim, num_heads).init(rng)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &MultiheadAttentionConfig {
        &self.config
    }

    /// The generator the attention dropout draws from (with `dropout > 0`).
    pub fn generator(&self) -> Option<&Generator> {
        self.generator.as_ref()
    }

    fn head_dim(&self) -> usize {
        self.config.embed_dim / self.config.num_heads
    }

    /// `x` projected by input projections `i..i + parts` (rows `[i·E, (i + parts)·E)` of
    /// the packed weight and bias, or the separate projection `i`) and split into heads.
    #[track_caller]
    fn project_heads<'t>(
        &self,
        cx: &Ctx<'t, T>,
        x: Var<'t, T>,
        i: usize,
        parts: usize,
        batch_first: bool,
    ) -> Result<Vec<Var<'t, T>>> {
        let e = self.config.embed_dim;
        let (w, b) = match &self.in_proj_weight {
            Some(w) if parts == 3 => (cx.param(w), cx.param_opt(self.in_proj_bias.as_ref())),
            Some(w) => (
                cx.param(w).narrow(0, i * e, parts * e)?,
                self.bias_rows(cx, i, parts)?,
            ),
            None => {
                let sep = [
                    &self.q_proj_weight,
                    &self.k_proj_weight,
                    &self.v_proj_weight,
                ][i];
                let w = cx.param(sep.as_ref().expect("internal: separate projections exist"));
                (w, self.bias_rows(cx, i, parts)?)
            }
        };
        split_heads(linear(x, w, b)?, parts, self.config.num_heads, batch_first)
    }

    /// Rows `[i·E, (i + parts)·E)` of `in_proj_bias`, if there is one.
    #[track_caller]
    fn bias_rows<'t>(&self, cx: &Ctx<'t, T>, i: usize, parts: usize) -> Result<Option<Var<'t, T>>> {
        let e = self.config.embed_dim;
        match &self.in_proj_bias {
            Some(b) => Ok(Some(cx.param(b).narrow(0, i * e, parts * e)?)),
            None => Ok(None),
        }
    }
}

/// `[d0, d1, parts·heads·hd]` → `parts` tensors `[N, heads, len, hd]`, where `(d0, d1)`
/// is `(N, len)` batch-first and `(len, N)` otherwise: one reshape and one permute.
#[track_caller]
fn split_heads<'t, T: Float>(
    x: Var<'t, T>,
    parts: usize,
    heads: usize,
    batch_first: bool,
) -> Result<Vec<Var<'t, T>>> {
    let d = x.dims();
    let hd = d[2] / (parts * heads);
    let x = x.reshape([d[0], d[1], parts, heads, hd])?;
    let perm = if batch_first {
        [2, 0, 3, 1, 4]
    } else {
        [2, 1, 3, 0, 4]
    };
    let x = x.permute(&perm)?;
    let (n, len) = if batch_first {
        (d[0], d[1])
    } else {
        (d[1], d[0])
    };
    if parts == 1 {
        return Ok(vec![x.reshape([n, heads, len, hd])?]);
    }
    let mut out = Vec::with_capacity(parts);
    for p in x.split(&vec![1; parts], 0)? {
        out.push(p.reshape([n, heads, len, hd])?);
    }
    Ok(out)
}

impl<T: Float> Forward<T> for MultiheadAttention<T> {
    type Input<'t> = AttentionInput<'t, T>;
    type Output<'t> = (Var<'t, T>, Option<Var<'t, T>>);

    #[track_caller]
    fn forward<'t>(
        &self,
        cx: &Ctx<'t, T>,
        input: AttentionInput<'t, T>,
    ) -> Result<Self::Output<'t>> {
        const LAYER: &str = "MultiheadAttention";
        let cfg = &self.config;
        let (e, heads) = (cfg.embed_dim, cfg.num_heads);
        let kdim = cfg.kdim.unwrap_or(e);
        let vdim = cfg.vdim.unwrap_or(e);
        let AttentionInput {
            mut query,
            mut key,
            mut value,
            key_padding_mask,
            attn_mask,
            weights: want,
        } = input;
        let self_attention = query.id() == key.id() && key.id() == value.id();
        let kv_shared = key.id() == value.id();

        // --- shapes: [N, L, E] / [L, N, E], or unbatched [L, E] ---
        let unbatched = query.rank() == 2;
        let rank = if unbatched { 2 } else { 3 };
        let layout = match (unbatched, cfg.batch_first) {
            (true, _) => "[L, ",
            (false, true) => "[N, L, ",
            (false, false) => "[L, N, ",
        };
        if !(query.rank() == 2 || query.rank() == 3) || query.dims()[rank - 1] != e {
            return Err(Error::input(
                LAYER,
                format!("query {layout}{e}] (rank 3, or 2 unbatched)"),
                query.shape(),
            ));
        }
        for (name, v, feat) in [("key", key, kdim), ("value", value, vdim)] {
            if v.rank() != rank || v.dims()[rank - 1] != feat {
                let layout = layout.replace('L', "S");
                return Err(Error::input(
                    LAYER,
                    format!("{name} {layout}{feat}] (rank {rank}, as the query)"),
                    v.shape(),
                ));
            }
        }
        if unbatched {
            // As batch-first with one sample.
            query = query.unsqueeze(0)?;
            key = key.unsqueeze(0)?;
            value = value.unsqueeze(0)?;
        }
        let bf = cfg.batch_first || unbatched;
        let (n_ax, t_ax) = if bf { (0, 1) } else { (1, 0) };
        let (n, l) = (query.dims()[n_ax], query.dims()[t_ax]);
        let s = key.dims()[t_ax];
        if key.dims()[n_ax] != n || value.dims()[n_ax] != n {
            let bad = if key.dims()[n_ax] != n { key } else { value };
            return Err(Error::input(
                LAYER,
                format!("key and value with the query's batch size {n}"),
                bad.shape(),
            ));
        }
        if value.dims()[t_ax] != s {
            return Err(Error::input(
                LAYER,
                format!("value with as many entries as the key ({s})"),
                value.shape(),
            ));
        }
        if l == 0 || s == 0 {
            return Err(Error::input(
                LAYER,
                "non-empty query and key sequences",
                if l == 0 { query.shape() } else { key.shape() },
            ));
        }

        // --- masks, as [N, heads, L, S] broadcasts ---
        let mut mask = ScoreMask::default();
        if let Some(m) = attn_mask {
            let d = m.dims();
            let per_head = if unbatched { heads } else { n * heads };
            let shape = if d == [l, s] {
                Shape::from([l, s])
            } else if d == [per_head, l, s] {
                Shape::from([n, heads, l, s])
            } else {
                let expected = if unbatched {
                    format!("attn_mask [{l}, {s}] or [heads={heads}, {l}, {s}]")
                } else {
                    format!("attn_mask [{l}, {s}] or [N·heads={per_head}, {l}, {s}]")
                };
                return Err(mask_error(LAYER, expected, m.shape()));
            };
            mask.push(m.reshape(shape)?)?;
        }
        if let Some(m) = key_padding_mask {
            let want_dims: Vec<usize> = if unbatched { vec![s] } else { vec![n, s] };
            if m.dims() != want_dims {
                return Err(mask_error(
                    LAYER,
                    format!("key_padding_mask {want_dims:?} ([N, S])"),
                    m.shape(),
                ));
            }
            mask.push(m.reshape(Shape::from([n, 1, 1, s]))?)?;
        }

        // --- projections and heads ---
        // PyTorch's `_in_projection_packed`: one product for self-attention, one for
        // key = value (encoder–decoder attention), else one per input.
        let packed = self.in_proj_weight.is_some();
        let (q, k, v) = if packed && self_attention {
            let p = self.project_heads(cx, query, 0, 3, bf)?;
            (p[0], p[1], p[2])
        } else if packed && kv_shared {
            let kv = self.project_heads(cx, key, 1, 2, bf)?;
            (self.project_heads(cx, query, 0, 1, bf)?[0], kv[0], kv[1])
        } else {
            (
                self.project_heads(cx, query, 0, 1, bf)?[0],
                self.project_heads(cx, key, 1, 1, bf)?[0],
                self.project_heads(cx, value, 2, 1, bf)?[0],
            )
        };

        let scale = 1.0 / (self.head_dim() as f64).sqrt();
        let drop = match &self.generator {
            Some(g) if self.mode.is_training() => Some((cfg.dropout, g)),
            _ => None,
        };
        let (out, w) = attend(q, k, v, mask, scale, drop)?;

        // [N, heads, L, hd] → [N, L, E] or [L, N, E]
        let merged = if bf {
            out.permute(&[0, 2, 1, 3])?.reshape([n, l, e])?
        } else {
            out.permute(&[2, 0, 1, 3])?.reshape([l, n, e])?
        };
        let mut y = cx.call(&self.out_proj, merged)?;
        let mut weights = match want {
            AttnWeights::None => None,
            AttnWeights::Averaged => Some(w.mean_axes(&[1], false)?),
            AttnWeights::PerHead => Some(w),
        };
        if unbatched {
            y = y.squeeze(0)?;
            if let Some(w) = weights {
                weights = Some(w.squeeze(0)?);
            }
        }
        Ok((y, weights))
    }
}
