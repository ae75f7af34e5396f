//! Why a network will not train: per-layer activation statistics and per-parameter
//! gradient norms for one batch.
//!
//! [`diagnose`] runs the model once through [`Ctx::call`] with a forward hook that
//! records every module call below the model (any module called with `cx.call`, named by
//! its path), computes the loss, and takes gradients of the loss with respect to every
//! recorded output and every parameter (through [`Tape::grad`], so parameters' `.grad()`
//! buffers are left untouched). For each module it reports
//!
//! - the mean and standard deviation of its output (collapsing or exploding activations),
//! - for a saturating activation (its [`Activation`](crate::Activation) descriptor gives a
//!   [`max_derivative`](crate::Activation::max_derivative): sigmoid, tanh, or a user's own), the
//!   **saturated fraction**: outputs where |f'(x)| is below 1 % of that maximum
//!   (`σ' < 0.0025`, `tanh' < 0.01`), i.e. where almost no gradient passes,
//! - for an activation with a dead region (ReLU), the **dead fraction**: units (all
//!   positions but the batch axis) whose f'(x) is 0 for every sample of the batch, so
//!   they pass no gradient at all,
//! - the norm of the loss's gradient with respect to that output (vanishing or exploding
//!   gradients, layer by layer),
//!
//! and for each parameter its norm and its gradient's norm. [`Report`] prints as a table.
//!
//! f'(x) is not written down here: it is the activation op's own backward rule, read as
//! the vector-Jacobian product with ones (exact for an elementwise map). So an activation
//! module a user writes, given an [`Activation`](crate::Activation) descriptor, is measured like the
//! built-in ones.
//!
//! ```
//! use nn::{diagnostics, Linear, Sequential, Sigmoid};
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let net = Sequential::<f64>::new().append(Linear::new(4, 8, &mut rng)?).append(Sigmoid).append(Linear::new(8, 3, &mut rng)?);
//! let x = autograd::Tensor::randn([16, 4], &mut rng)?;
//! let targets: Vec<usize> = (0..16).map(|i| i % 3).collect();
//! let report = diagnostics::diagnose(&net, &x, |y| nn::loss::cross_entropy(y, &targets))?;
//! assert_eq!(report.layers.len(), 3);
//! assert!(report.layers[1].saturated.is_some());
//! println!("{report}");
//! # Ok::<(), nn::Error>(())
//! ```

use std::cell::RefCell;
use std::fmt;

use autograd::{Float, Shape, Tape, Tensor, Var};

use crate::error::{Error, Result};
use crate::module::{Ctx, Forward};

/// Statistics of one module's output over the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStats {
    /// Hierarchical name (`"3"`, `"encoder.1"`).
    pub name: String,
    /// The module's type name.
    pub type_name: &'static str,
    /// The name of the activation it applies ([`Activation::name`](crate::Activation::name)), if it is one.
    pub activation: Option<&'static str>,
    /// Output shape.
    pub shape: Shape,
    /// Mean of the output.
    pub mean: f64,
    /// Standard deviation of the output (population, over every element).
    pub std: f64,
    /// Saturating activations only: fraction of outputs with `|f'| < 0.01·max|f'|`.
    pub saturated: Option<f64>,
    /// Activations with a dead region only: fraction of units with `f' = 0` for every
    /// sample.
    pub dead: Option<f64>,
    /// `‖∂loss/∂output‖₂`.
    pub grad_norm: f64,
}

/// Norms of one parameter and of the loss's gradient with respect to it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamStats {
    /// Hierarchical name (`"3.weight"`).
    pub name: String,
    /// Shape.
    pub shape: Shape,
    /// `‖p‖₂`.
    pub norm: f64,
    /// `‖∂loss/∂p‖₂`.
    pub grad_norm: f64,
}

/// What [`diagnose`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The loss on the batch.
    pub loss: f64,
    /// One entry per module call below the model, in the order the calls finished.
    pub layers: Vec<LayerStats>,
    /// One entry per parameter, in [`Module::named_parameters`](crate::Module::named_parameters) order.
    pub params: Vec<ParamStats>,
}

impl Report {
    /// The statistics of the layer named `name`.
    pub fn layer(&self, name: &str) -> Option<&LayerStats> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// The statistics of the parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&ParamStats> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Saturation threshold: |f'| below 1 % of the derivative's maximum.
const SATURATION: f64 = 0.01;

/// What the hook keeps of one call.
struct Record<'t, T: Float> {
    name: String,
    type_name: &'static str,
    activation: Option<&'static str>,
    max_derivative: Option<f64>,
    dead_region: bool,
    input: Option<Var<'t, T>>,
    output: Var<'t, T>,
}

/// Fraction of units (every position but axis 0) whose derivative is 0 for every sample.
fn dead_fraction(d: &[f64], shape: &Shape) -> f64 {
    let n = if shape.rank() == 0 { 1 } else { shape[0] };
    let units = d.len() / n.max(1);
    if units == 0 {
        return 0.0;
    }
    let dead = (0..units)
        .filter(|&u| (0..n).all(|s| d[s * units + u] == 0.0))
        .count();
    dead as f64 / units as f64
}

fn norm<T: Float>(t: &Tensor<T>) -> f64 {
    t.as_slice()
        .iter()
        .map(|v| v.as_f64().powi(2))
        .sum::<f64>()
        .sqrt()
}

fn to_f64<T: Float>(t: &Tensor<T>) -> Vec<f64> {
    t.as_slice().iter().map(|v| v.as_f64()).collect()
}

/// Runs `model` on the batch `x`, computes `loss(output)` (a one-element `Var`), and
/// measures every module called below the model and every parameter. The model's mode
/// is left as it is (call [`Module::train`](crate::Module::train) or [`Module::eval`](crate::Module::eval) first), and no
/// parameter's gradient buffer is touched.
///
/// # Errors
/// The model's and the loss's errors; [`Error::InvalidTarget`] when the loss is not a
/// single element.
pub fn diagnose<T, M, L>(model: &M, x: &Tensor<T>, loss: L) -> Result<Report>
where
    T: Float,
    M: for<'t> Forward<T, Input<'t> = Var<'t, T>, Output<'t> = Var<'t, T>>,
    L: for<'t> Fn(Var<'t, T>) -> Result<Var<'t, T>>,
{
    let tape = Tape::new();
    let records: RefCell<Vec<Record<'_, T>>> = RefCell::new(Vec::new());
    let mut cx = Ctx::new(&tape);
    cx.add_forward_hook(|call| {
        if call.path.is_empty() || call.outputs.len() != 1 {
            return;
        }
        let act = call.module.activation();
        records.borrow_mut().push(Record {
            name: call.path.to_string(),
            type_name: call.module.type_name(),
            activation: act.map(|a| a.name()),
            max_derivative: act.and_then(|a| a.max_derivative()),
            dead_region: act.is_some_and(|a| a.has_dead_region()),
            input: (call.inputs.len() == 1).then(|| call.inputs[0]),
            output: call.outputs[0],
        });
    });
    // A variable, not a constant: the activations' derivatives are taken with respect to
    // their inputs, which must then all carry gradients (the first one included).
    let out = cx.call(model, tape.var(x.clone()))?;
    let l = loss(out)?;
    if l.shape().numel() != 1 {
        return Err(Error::target(
            "diagnose",
            format!("the loss must be a single value, got shape {}", l.shape()),
        ));
    }
    let records = records.borrow();
    let params = model.named_parameters();
    let mut wrt: Vec<Var<'_, T>> = records.iter().map(|r| r.output).collect();
    // Bound by the forward already: this returns the same Vars.
    wrt.extend(params.iter().map(|(_, p)| tape.param(p)));
    // Gradients as values only: no need to record the backward graph.
    let grads = tape.no_grad(|| tape.grad(l, &wrt))?;
    let (layer_grads, param_grads) = grads.split_at(records.len());

    let mut layers = Vec::with_capacity(records.len());
    for (r, g) in records.iter().zip(layer_grads) {
        let v = r.output.value();
        let y = to_f64(&v);
        let n = y.len().max(1) as f64;
        let mean = y.iter().sum::<f64>() / n;
        let std = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        // f'(x) from the op's own rule: for an elementwise map, Jᵀ·1 is the derivative.
        let derivative = match (r.input, r.max_derivative.is_some() || r.dead_region) {
            (Some(x), true) if x.shape() == *v.shape() => {
                let ones = tape.constant(v.ones_like());
                let d = tape.no_grad(|| tape.vjp(r.output, ones, &[x]))?;
                Some(to_f64(&d[0].value()))
            }
            _ => None,
        };
        let saturated = match (&derivative, r.max_derivative) {
            (Some(d), Some(max)) => Some(
                d.iter().filter(|&&v| v.abs() < SATURATION * max).count() as f64
                    / d.len().max(1) as f64,
            ),
            _ => None,
        };
        let dead = match &derivative {
            Some(d) if r.dead_region => Some(dead_fraction(d, v.shape())),
            _ => None,
        };
        layers.push(LayerStats {
            name: r.name.clone(),
            type_name: r.type_name,
            activation: r.activation,
            shape: v.shape().clone(),
            mean,
            std,
            saturated,
            dead,
            grad_norm: norm(&g.value()),
        });
    }
    let params = params
        .iter()
        .zip(param_grads)
        .map(|((name, p), g)| ParamStats {
            name: name.clone(),
            shape: p.shape(),
            norm: norm(&p.value()),
            grad_norm: norm(&g.value()),
        })
        .collect();
    Ok(Report {
        loss: l.item()?.as_f64(),
        layers,
        params,
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        writeln!(f, "loss {:.6}", self.loss)?;
        writeln!(
            f,
            "{:<14} {:<12} {:<14} {:>10} {:>10} {:>9} {:>7} {:>11}",
            "layer", "type", "shape", "mean", "std", "saturated", "dead", "grad norm"
        )?;
        for l in &self.layers {
            writeln!(
                f,
                "{:<14} {:<12} {:<14} {:>10.4} {:>10.4} {:>9} {:>7} {:>11.3e}",
                l.name,
                l.type_name,
                l.shape.to_string(),
                l.mean,
                l.std,
                pct(l.saturated),
                pct(l.dead),
                l.grad_norm
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:<14} {:>11} {:>11} {:>11}",
            "parameter", "shape", "norm", "grad norm", "grad/norm"
        )?;
        for p in &self.params {
            let ratio = if p.norm > 0.0 {
                p.grad_norm / p.norm
            } else {
                f64::NAN
            };
            writeln!(
                f,
                "{:<20} {:<14} {:>11.3e} {:>11.3e} {:>11.3e}",
                p.name,
                p.shape.to_string(),
                p.norm,
                p.grad_norm,
                ratio
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{Relu, Sigmoid};
    use crate::init::Init;
    use crate::layers::{Linear, LinearConfig, Sequential};
    use crate::loss;
    use crate::module::Module;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const WIDTH: usize = 256;
    const BATCH: usize = 64;

    fn sigmoid_mlp(weight_init: Init, rng: &mut StdRng) -> Sequential<f64> {
        let mut net = Sequential::new();
        for _ in 0..10 {
            let cfg = LinearConfig {
                weight_init,
                bias_init: Some(Init::Zeros),
                ..LinearConfig::new(WIDTH, WIDTH)
            };
            net.push(cfg.init::<f64>(rng).unwrap());
            net.push(Sigmoid);
        }
        net
    }

    fn mse_to_zero<'t>(y: Var<'t, f64>) -> Result<Var<'t, f64>> {
        let zero = y.tape().constant(Tensor::zeros(y.shape()).unwrap());
        loss::mse_loss(y, zero)
    }

    /// Saturation threshold for the sigmoid, from the maths.
    ///
    /// σ'(z) = s(1 - s) < 0.0025 (1 % of the maximum 1/4) ⇔ s < (1 - √0.99)/2 ≈ 0.002506
    /// (or symmetrically above 1 - that) ⇔ |z| > ln((1 - 0.002506)/0.002506) ≈ 5.99.
    ///
    /// With N(0, 1) weights and zero biases a pre-activation is z = Σ_{i≤256} w_i h_i, so
    /// Var z = Σ h_i² (weights independent of the inputs). Layer 1 sees x ~ N(0, 1):
    /// Var z = 256, sd 16, P(|z| > 5.99) = 2Φ(-0.37) ≈ 0.71. Deeper layers see sigmoid
    /// outputs of such large z, mostly near 0 or 1, with E[h²] ≈ 0.47: Var z ≈ 120, sd ≈ 11,
    /// P(|z| > 5.99) = 2Φ(-0.55) ≈ 0.58. The fraction is estimated over 256 units (the
    /// weights are shared across the batch, so units are the independent draws): its sd is
    /// about √(0.58·0.42/256) ≈ 0.03, so 0.4 is a > 5σ lower bound for every layer.
    ///
    /// Xavier weights (Var w = 2/(256 + 256) = 1/256) give Var z = Σ h²/256 ≤ 1, so |z| >
    /// 5.99 is a > 6σ event: the same net saturates (essentially) nowhere, < 1 %.
    #[test]
    fn ten_layer_sigmoid_mlp_with_unit_gaussian_weights_saturates() {
        let mut rng = StdRng::seed_from_u64(2024);
        let x = Tensor::randn([BATCH, WIDTH], &mut rng).unwrap();
        let naive = sigmoid_mlp(
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
            &mut rng,
        );
        let report = diagnose(&naive, &x, mse_to_zero).unwrap();
        let sig: Vec<&LayerStats> = report
            .layers
            .iter()
            .filter(|l| l.activation == Some("Sigmoid"))
            .collect();
        assert_eq!(sig.len(), 10);
        for l in &sig {
            let s = l.saturated.unwrap();
            assert!(s > 0.4, "layer {} saturated only {s}\n{report}", l.name);
        }
        let xavier = sigmoid_mlp(Init::XavierNormal { gain: 1.0 }, &mut rng);
        let report = diagnose(&xavier, &x, mse_to_zero).unwrap();
        for l in report.layers.iter().filter(|l| l.saturated.is_some()) {
            assert!(l.saturated.unwrap() < 0.01, "{report}");
        }
        // the table names every layer and parameter
        let table = report.to_string();
        assert!(
            table.contains("saturated") && table.contains("18.weight"),
            "{table}"
        );
    }

    /// A ReLU unit is dead on the batch when its pre-activation z = w·x + b ≤ 0 for every
    /// sample. With PyTorch's default weights (|w_i| ≤ 1/√32) and x ~ N(0, 1),
    /// Var(w·x) = Σ w_i² ≤ 1, so with b = -10, z > 0 needs a ≥ 10σ deviation: probability
    /// < 1e-23 per sample, and every such unit is dead. With b = 0, z is symmetric about 0,
    /// so a unit is dead on 64 independent samples with probability 2⁻⁶⁴: none is.
    /// Setting b = -10 on 16 of 64 units therefore gives a dead fraction of exactly 1/4,
    /// and those units' weights get exactly zero gradient.
    #[test]
    fn relu_layer_with_large_negative_bias_has_dead_units_and_zero_gradients() {
        let mut rng = StdRng::seed_from_u64(7);
        let fc = Linear::<f64>::new(32, 64, &mut rng).unwrap();
        let bias = Tensor::from_fn([64], |i| if i < 16 { -10.0 } else { 0.0 }).unwrap();
        fc.bias.as_ref().unwrap().set_value(bias).unwrap();
        let net = Sequential::new()
            .append(fc)
            .append(Relu)
            .append(Linear::new(64, 1, &mut rng).unwrap());
        let x = Tensor::randn([BATCH, 32], &mut rng).unwrap();
        let report = diagnose(&net, &x, |y| Ok(y.square().mean())).unwrap();
        let relu = report.layer("1").unwrap();
        assert_eq!(relu.dead, Some(0.25), "{report}");
        assert_eq!(relu.saturated, None);
        // no gradient reaches the dead units' incoming weights
        let tape = Tape::new();
        let y = Ctx::new(&tape)
            .call(&net, tape.constant(x.clone()))
            .unwrap();
        y.square().mean().backward().unwrap();
        let g = net.named_parameters()[0].1.grad().unwrap();
        assert!(g.as_slice()[..16 * 32].iter().all(|&v| v == 0.0));
        assert!(g.as_slice()[16 * 32..].iter().any(|&v| v != 0.0));
        // and diagnose reports the same gradient norm without touching .grad()
        let gn = report.param("0.weight").unwrap().grad_norm;
        assert!((gn - norm(&g)).abs() < 1e-12 * gn.max(1.0));
    }
}
