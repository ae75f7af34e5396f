//! Transformer layers: [`TransformerEncoderLayer`] and [`TransformerDecoderLayer`]
//! (`nn.TransformerEncoderLayer`, `nn.TransformerDecoderLayer`), post-norm or pre-norm,
//! with PyTorch's sub-module names (`self_attn`, `multihead_attn`, `linear1`, `linear2`,
//! `norm1`..`norm3`), so a PyTorch `state_dict` loads as is.
//!
//! With `SA` self-attention, `MHA` attention to the encoder's `memory` and
//! `FF(y) = linear2(dropout(act(linear1(y))))`, each followed by its own dropout:
//!
//! | layer | `norm_first = false` (post-norm, PyTorch's default) | `norm_first = true` (pre-norm) |
//! | --- | --- | --- |
//! | encoder | `x = norm1(x + SA(x))`; `x = norm2(x + FF(x))` | `x = x + SA(norm1(x))`; `x = x + FF(norm2(x))` |
//! | decoder | `x = norm1(x + SA(x))`; `x = norm2(x + MHA(x, mem))`; `x = norm3(x + FF(x))` | `x = x + SA(norm1(x))`; `x = x + MHA(norm2(x), mem)`; `x = x + FF(norm3(x))` |

use autograd::{Float, Var};
use rand::Rng;

use super::attention::{AttentionInput, MultiheadAttention, MultiheadAttentionConfig};
use super::dropout::Dropout;
use super::linear::{Linear, LinearConfig};
use super::mask::AttnMask;
use super::norm::{LayerNorm, LayerNormConfig};
use crate::activation::{Gelu, Relu};
use crate::error::{Error, Result};
use crate::module::{Ctx, Forward, Layer, Plain};
use crate::{Module, Vars};

/// The feed-forward activation of a transformer layer (PyTorch's `activation="relu"` or
/// `"gelu"`; GELU is the exact, erf form). Any other single-`Var` layer can be put in a
/// layer's `activation` field after construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeedForwardActivation {
    /// `relu` (PyTorch's default).
    #[default]
    Relu,
    /// `gelu`, exact.
    Gelu,
}

impl FeedForwardActivation {
    fn layer<T: Float>(self) -> Box<dyn Layer<T>> {
        match self {
            FeedForwardActivation::Relu => Box::new(Relu),
            FeedForwardActivation::Gelu => Box::new(Gelu { tanh_approx: false }),
        }
    }
}

/// The hyper-parameters of a transformer layer, encoder or decoder (the arguments of
/// `nn.TransformerEncoderLayer` and `nn.TransformerDecoderLayer`, with their defaults
/// from [`TransformerLayerConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerLayerConfig {
    /// Model width.
    pub d_model: usize,
    /// Attention heads; must divide `d_model`.
    pub nhead: usize,
    /// Hidden width of the feed-forward block (default 2048).
    pub dim_feedforward: usize,
    /// Dropout after attention, inside and after the feed-forward block, and on the
    /// attention weights, in training mode (default 0.1).
    pub dropout: f64,
    /// The feed-forward activation (default ReLU).
    pub activation: FeedForwardActivation,
    /// LayerNorm's eps (default 1e-5).
    pub layer_norm_eps: f64,
    /// Inputs and output `[N, L, E]` (true) or `[L, N, E]` (false, the default).
    pub batch_first: bool,
    /// Pre-norm (true) or post-norm (false, the default); see the [module docs](self).
    pub norm_first: bool,
    /// Biases in the linear layers, attention projections and norms (default true).
    pub bias: bool,
}

impl Plain for TransformerLayerConfig {}

impl TransformerLayerConfig {
    /// PyTorch's defaults for `d_model` and `nhead`.
    pub fn new(d_model: usize, nhead: usize) -> Self {
        TransformerLayerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: FeedForwardActivation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
        }
    }

    #[track_caller]
    fn attention<T: Float>(&self, rng: &mut impl Rng) -> Result<MultiheadAttention<T>> {
        MultiheadAttentionConfig {
            dropout: self.dropout,
            bias: self.bias,
            batch_first: self.batch_first,
            ..MultiheadAttentionConfig::new(self.d_model, self.nhead)
        }
        .init(rng)
    }

    #[track_caller]
    fn linear<T: Float>(&self, i: usize, o: usize, rng: &mut impl Rng) -> Result<Linear<T>> {
        LinearConfig {
            bias: self.bias,
            ..LinearConfig::new(i, o)
        }
        .init(rng)
    }

    #[track_caller]
    fn norm<T: Float>(&self) -> Result<LayerNorm<T>> {
        LayerNormConfig {
            eps: self.layer_norm_eps,
            bias: self.bias,
            ..LayerNormConfig::new(&[self.d_model])
        }
        .init()
    }

    #[track_caller]
    fn dropout(&self, rng: &mut impl Rng) -> Result<Dropout> {
        Dropout::new(self.dropout, rng.random())
    }

    /// A [`TransformerEncoderLayer`] initialised as PyTorch's (see
    /// [`MultiheadAttentionConfig::init`]; linear layers with `Linear`'s default; norms
    /// at 1 and 0). Dropout streams are seeded from `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero size, `d_model` not divisible by `nhead`,
    /// `dropout` outside `[0, 1]` or a negative `layer_norm_eps`.
    #[track_caller]
    pub fn encoder<T: Float>(&self, rng: &mut impl Rng) -> Result<TransformerEncoderLayer<T>> {
        let (d, f) = (self.d_model, self.dim_feedforward);
        Ok(TransformerEncoderLayer {
            self_attn: self.attention(rng)?,
            linear1: self.linear(d, f, rng)?,
            dropout: self.dropout(rng)?,
            linear2: self.linear(f, d, rng)?,
            norm1: self.norm()?,
            norm2: self.norm()?,
            dropout1: self.dropout(rng)?,
            dropout2: self.dropout(rng)?,
            activation: self.activation.layer(),
            config: *self,
        })
    }

    /// A [`TransformerDecoderLayer`] initialised as PyTorch's.
    ///
    /// # Errors
    /// As [`TransformerLayerConfig::encoder`].
    #[track_caller]
    pub fn decoder<T: Float>(&self, rng: &mut impl Rng) -> Result<TransformerDecoderLayer<T>> {
        let (d, f) = (self.d_model, self.dim_feedforward);
        Ok(TransformerDecoderLayer {
            self_attn: self.attention(rng)?,
            multihead_attn: self.attention(rng)?,
            linear1: self.linear(d, f, rng)?,
            dropout: self.dropout(rng)?,
            linear2: self.linear(f, d, rng)?,
            norm1: self.norm()?,
            norm2: self.norm()?,
            norm3: self.norm()?,
            dropout1: self.dropout(rng)?,
            dropout2: self.dropout(rng)?,
            dropout3: self.dropout(rng)?,
            activation: self.activation.layer(),
            config: *self,
        })
    }
}

/// Checks a transformer input `[N, L, d_model]` / `[L, N, d_model]` (or `[L, d_model]`
/// unbatched) and returns its batch size (1 unbatched).
#[track_caller]
fn check_input<T: Float>(
    layer: &'static str,
    name: &str,
    cfg: &TransformerLayerConfig,
    x: Var<'_, T>,
    rank: Option<usize>,
) -> Result<usize> {
    let d = x.dims();
    let e = cfg.d_model;
    let ok_rank = match rank {
        Some(r) => d.len() == r,
        None => d.len() == 2 || d.len() == 3,
    };
    if !ok_rank || d[d.len() - 1] != e {
        let layout = if cfg.batch_first {
            "[N, L, "
        } else {
            "[L, N, "
        };
        return Err(Error::input(
            layer,
            format!("{name} {layout}{e}] (or [L, {e}] unbatched; the same rank for every input)"),
            x.shape(),
        ));
    }
    Ok(match (d.len(), cfg.batch_first) {
        (2, _) => 1,
        (_, true) => d[0],
        (_, false) => d[1],
    })
}

/// The feed-forward block `linear2(dropout(act(linear1(y))))`.
// `&Box`: `Ctx::call` takes a sized module, and the box is what implements `Forward`.
#[track_caller]
#[allow(clippy::borrowed_box)]
fn feed_forward<'t, T: Float>(
    cx: &Ctx<'t, T>,
    linear1: &Linear<T>,
    activation: &Box<dyn Layer<T>>,
    dropout: &Dropout,
    linear2: &Linear<T>,
    y: Var<'t, T>,
) -> Result<Var<'t, T>> {
    let h = cx.call(linear1, y)?;
    let h = cx.call(activation, h)?;
    let h = cx.call(dropout, h)?;
    cx.call(linear2, h)
}

/// The input of a [`TransformerEncoderLayer`]: the sequence and optional masks.
#[derive(Clone, Debug, Vars)]
pub struct EncoderInput<'t, T: Float> {
    /// `[N, L, d_model]` (batch first), `[L, N, d_model]` or `[L, d_model]`.
    pub src: Var<'t, T>,
    /// Self-attention mask `[L, L]` (or `[N·nhead, L, L]`), e.g. [`BoolMask::causal`].
    ///
    /// [`BoolMask::causal`]: crate::BoolMask::causal
    pub src_mask: Option<AttnMask<'t, T>>,
    /// Padding `[N, L]`: positions no query attends to.
    pub src_key_padding_mask: Option<AttnMask<'t, T>>,
}

impl<'t, T: Float> EncoderInput<'t, T> {
    /// `src` without masks.
    pub fn new(src: Var<'t, T>) -> Self {
        EncoderInput {
            src,
            src_mask: None,
            src_key_padding_mask: None,
        }
    }

    /// With a self-attention mask.
    pub fn with_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.src_mask = Some(mask.into());
        self
    }

    /// With a key-padding mask.
    pub fn with_key_padding_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.src_key_padding_mask = Some(mask.into());
        self
    }
}

/// `nn.TransformerEncoderLayer`: self-attention and a feed-forward block, each in a
/// residual connection with a LayerNorm, post-norm or pre-norm (see the
/// [module docs](self)).
///
/// Input: an [`EncoderInput`]; output: the same shape as `src`. A query whose keys are
/// all masked gets zero attention (not NaN, as in PyTorch; see
/// [`MultiheadAttention`]).
///
/// ```
/// use autograd::{Tape, Tensor};
/// use nn::{BoolMask, Ctx, EncoderInput, FeedForwardActivation, TransformerLayerConfig};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let block = TransformerLayerConfig {
///     dim_feedforward: 32,
///     dropout: 0.0,
///     activation: FeedForwardActivation::Gelu,
///     batch_first: true,
///     norm_first: true,
///     ..TransformerLayerConfig::new(16, 4)
/// }
/// .encoder::<f32>(&mut rng)?;
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn([2, 10, 16], &mut rng)?);
/// let y = Ctx::new(&tape).call(&block, EncoderInput::new(x).with_mask(BoolMask::causal(10, 10)))?;
/// assert_eq!(y.dims(), [2, 10, 16]);
/// # Ok::<(), nn::Error>(())
/// ```
#[derive(Module)]
pub struct TransformerEncoderLayer<T: Float> {
    /// Self-attention.
    pub self_attn: MultiheadAttention<T>,
    /// `d_model → dim_feedforward`.
    pub linear1: Linear<T>,
    /// Dropout inside the feed-forward block.
    pub dropout: Dropout,
    /// `dim_feedforward → d_model`.
    pub linear2: Linear<T>,
    /// The norm around self-attention.
    pub norm1: LayerNorm<T>,
    /// The norm around the feed-forward block.
    pub norm2: LayerNorm<T>,
    /// Dropout after self-attention.
    pub dropout1: Dropout,
    /// Dropout after the feed-forward block.
    pub dropout2: Dropout,
    /// The feed-forward activation (any single-`Var` layer).
    pub activation: Box<dyn Layer<T>>,
    config: TransformerLayerConfig,
}

impl<T: Float> std::fmt::Debug for TransformerEncoderLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TransformerEncoderLayer({:?}, activation {})",
            self.config,
            self.activation.type_name()
        )
    }
}

impl<T: Float> TransformerEncoderLayer<T> {
    /// PyTorch's defaults for `d_model` and `nhead` (see [`TransformerLayerConfig::new`]).
    ///
    /// # Errors
    /// As [`TransformerLayerConfig::encoder`].
    #[track_caller]
    pub fn new(d_model: usize, nhead: usize, rng: &mut impl Rng) -> Result<Self> {
        TransformerLayerConfig::new(d_model, nhead).encoder(rng)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &TransformerLayerConfig {
        &self.config
    }
}

impl<T: Float> Forward<T> for TransformerEncoderLayer<T> {
    type Input<'t> = EncoderInput<'t, T>;
    type Output<'t> = Var<'t, T>;

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: EncoderInput<'t, T>) -> Result<Var<'t, T>> {
        let EncoderInput {
            src,
            src_mask,
            src_key_padding_mask,
        } = input;
        check_input("TransformerEncoderLayer", "src", &self.config, src, None)?;
        let masks = (&src_mask, &src_key_padding_mask);
        let mut x = src;
        if self.config.norm_first {
            x = x.add(self.sa_block(cx, cx.call(&self.norm1, x)?, masks)?)?;
            x = x.add(self.ff_block(cx, cx.call(&self.norm2, x)?)?)?;
        } else {
            x = cx.call(&self.norm1, x.add(self.sa_block(cx, x, masks)?)?)?;
            x = cx.call(&self.norm2, x.add(self.ff_block(cx, x)?)?)?;
        }
        Ok(x)
    }
}

/// An attention mask and a key-padding mask.
type Masks<'a, 't, T> = (&'a Option<AttnMask<'t, T>>, &'a Option<AttnMask<'t, T>>);

/// `dropout_out(attention(q, kv, kv))`; self-attention when `kv` is `None`.
#[track_caller]
fn attention_block<'t, T: Float>(
    cx: &Ctx<'t, T>,
    attention: &MultiheadAttention<T>,
    dropout_out: &Dropout,
    q: Var<'t, T>,
    kv: Option<Var<'t, T>>,
    (attn_mask, key_padding_mask): Masks<'_, 't, T>,
) -> Result<Var<'t, T>> {
    let kv = kv.unwrap_or(q);
    let input = AttentionInput {
        attn_mask: attn_mask.clone(),
        key_padding_mask: key_padding_mask.clone(),
        ..AttentionInput::new(q, kv, kv)
    };
    let (o, _) = cx.call(attention, input)?;
    cx.call(dropout_out, o)
}

impl<T: Float> TransformerEncoderLayer<T> {
    #[track_caller]
    fn sa_block<'t>(
        &self,
        cx: &Ctx<'t, T>,
        y: Var<'t, T>,
        masks: Masks<'_, 't, T>,
    ) -> Result<Var<'t, T>> {
        attention_block(cx, &self.self_attn, &self.dropout1, y, None, masks)
    }

    #[track_caller]
    fn ff_block<'t>(&self, cx: &Ctx<'t, T>, y: Var<'t, T>) -> Result<Var<'t, T>> {
        let o = feed_forward(
            cx,
            &self.linear1,
            &self.activation,
            &self.dropout,
            &self.linear2,
            y,
        )?;
        cx.call(&self.dropout2, o)
    }
}

/// The input of a [`TransformerDecoderLayer`]: the target sequence, the encoder's
/// output, and optional masks.
#[derive(Clone, Debug, Vars)]
pub struct DecoderInput<'t, T: Float> {
    /// `[N, T, d_model]` (batch first), `[T, N, d_model]` or `[T, d_model]`.
    pub tgt: Var<'t, T>,
    /// `[N, S, d_model]`, `[S, N, d_model]` or `[S, d_model]`: attended to, not normalised.
    pub memory: Var<'t, T>,
    /// Self-attention mask `[T, T]` (or `[N·nhead, T, T]`), usually causal.
    pub tgt_mask: Option<AttnMask<'t, T>>,
    /// Cross-attention mask `[T, S]` (or `[N·nhead, T, S]`).
    pub memory_mask: Option<AttnMask<'t, T>>,
    /// Target padding `[N, T]`.
    pub tgt_key_padding_mask: Option<AttnMask<'t, T>>,
    /// Memory padding `[N, S]`.
    pub memory_key_padding_mask: Option<AttnMask<'t, T>>,
}

impl<'t, T: Float> DecoderInput<'t, T> {
    /// `tgt` attending to `memory`, without masks.
    pub fn new(tgt: Var<'t, T>, memory: Var<'t, T>) -> Self {
        DecoderInput {
            tgt,
            memory,
            tgt_mask: None,
            memory_mask: None,
            tgt_key_padding_mask: None,
            memory_key_padding_mask: None,
        }
    }

    /// With a self-attention mask.
    pub fn with_tgt_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.tgt_mask = Some(mask.into());
        self
    }

    /// With a cross-attention mask.
    pub fn with_memory_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.memory_mask = Some(mask.into());
        self
    }

    /// With a target key-padding mask.
    pub fn with_tgt_key_padding_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.tgt_key_padding_mask = Some(mask.into());
        self
    }

    /// With a memory key-padding mask.
    pub fn with_memory_key_padding_mask(mut self, mask: impl Into<AttnMask<'t, T>>) -> Self {
        self.memory_key_padding_mask = Some(mask.into());
        self
    }
}

/// `nn.TransformerDecoderLayer`: self-attention, attention to `memory`, and a
/// feed-forward block, each in a residual connection with a LayerNorm, post-norm or
/// pre-norm (see the [module docs](self)); `memory` is not normalised.
///
/// Input: a [`DecoderInput`]; output: the same shape as `tgt`.
#[derive(Module)]
pub struct TransformerDecoderLayer<T: Float> {
    /// Self-attention.
    pub self_attn: MultiheadAttention<T>,
    /// Attention to the memory.
    pub multihead_attn: MultiheadAttention<T>,
    /// `d_model → dim_feedforward`.
    pub linear1: Linear<T>,
    /// Dropout inside the feed-forward block.
    pub dropout: Dropout,
    /// `dim_feedforward → d_model`.
    pub linear2: Linear<T>,
    /// The norm around self-attention.
    pub norm1: LayerNorm<T>,
    /// The norm around attention to the memory.
    pub norm2: LayerNorm<T>,
    /// The norm around the feed-forward block.
    pub norm3: LayerNorm<T>,
    /// Dropout after self-attention.
    pub dropout1: Dropout,
    /// Dropout after attention to the memory.
    pub dropout2: Dropout,
    /// Dropout after the feed-forward block.
    pub dropout3: Dropout,
    /// The feed-forward activation (any single-`Var` layer).
    pub activation: Box<dyn Layer<T>>,
    config: TransformerLayerConfig,
}

impl<T: Float> std::fmt::Debug for TransformerDecoderLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TransformerDecoderLayer({:?}, activation {})",
            self.config,
            self.activation.type_name()
        )
    }
}

impl<T: Float> TransformerDecoderLayer<T> {
    /// PyTorch's defaults for `d_model` and `nhead` (see [`TransformerLayerConfig::new`]).
    ///
    /// # Errors
    /// As [`TransformerLayerConfig::decoder`].
    #[track_caller]
    pub fn new(d_model: usize, nhead: usize, rng: &mut impl Rng) -> Result<Self> {
        TransformerLayerConfig::new(d_model, nhead).decoder(rng)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &TransformerLayerConfig {
        &self.config
    }
}

impl<T: Float> Forward<T> for TransformerDecoderLayer<T> {
    type Input<'t> = DecoderInput<'t, T>;
    type Output<'t> = Var<'t, T>;

    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, input: DecoderInput<'t, T>) -> Result<Var<'t, T>> {
        const LAYER: &str = "TransformerDecoderLayer";
        let DecoderInput {
            tgt,
            memory,
            tgt_mask,
            memory_mask,
            tgt_key_padding_mask,
            memory_key_padding_mask,
        } = input;
        let n = check_input(LAYER, "tgt", &self.config, tgt, None)?;
        let nm = check_input(LAYER, "memory", &self.config, memory, Some(tgt.rank()))?;
        if nm != n {
            return Err(Error::input(
                LAYER,
                format!("memory with the target's batch size {n}"),
                memory.shape(),
            ));
        }
        let self_masks = (&tgt_mask, &tgt_key_padding_mask);
        let memory_masks = (&memory_mask, &memory_key_padding_mask);
        let mut x = tgt;
        if self.config.norm_first {
            x = x.add(self.sa_block(cx, cx.call(&self.norm1, x)?, self_masks)?)?;
            x = x.add(self.mha_block(cx, cx.call(&self.norm2, x)?, memory, memory_masks)?)?;
            x = x.add(self.ff_block(cx, cx.call(&self.norm3, x)?)?)?;
        } else {
            x = cx.call(&self.norm1, x.add(self.sa_block(cx, x, self_masks)?)?)?;
            x = cx.call(
                &self.norm2,
                x.add(self.mha_block(cx, x, memory, memory_masks)?)?,
            )?;
            x = cx.call(&self.norm3, x.add(self.ff_block(cx, x)?)?)?;
        }
        Ok(x)
    }
}

impl<T: Float> TransformerDecoderLayer<T> {
    #[track_caller]
    fn sa_block<'t>(
        &self,
        cx: &Ctx<'t, T>,
        y: Var<'t, T>,
        masks: Masks<'_, 't, T>,
    ) -> Result<Var<'t, T>> {
        attention_block(cx, &self.self_attn, &self.dropout1, y, None, masks)
    }

    #[track_caller]
    fn mha_block<'t>(
        &self,
        cx: &Ctx<'t, T>,
        y: Var<'t, T>,
        memory: Var<'t, T>,
        masks: Masks<'_, 't, T>,
    ) -> Result<Var<'t, T>> {
        attention_block(
            cx,
            &self.multihead_attn,
            &self.dropout2,
            y,
            Some(memory),
            masks,
        )
    }

    #[track_caller]
    fn ff_block<'t>(&self, cx: &Ctx<'t, T>, y: Var<'t, T>) -> Result<Var<'t, T>> {
        let o = feed_forward(
            cx,
            &self.linear1,
            &self.activation,
            &self.dropout,
            &self.linear2,
            y,
        )?;
        cx.call(&self.dropout3, o)
    }
}
