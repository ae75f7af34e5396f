//! Study: weight initialisation — how activations and gradients travel through a deep
//! MLP under N(0, 0.01²), N(0, 1), Xavier and He weights, with tanh and with ReLU.
//!
//! ```text
//! cargo run --release --example study_init [-- --out figures]
//! ```
//!
//! Literature (SEED.md §2): small Gaussian weights make activations (and gradients)
//! collapse towards 0 with depth; large ones saturate tanh; Xavier/Glorot (variance
//! 1/n_in) keeps tanh's activations steady; for ReLU, which zeroes half its inputs,
//! Xavier halves the variance at every layer (std × 1/√2) and He (variance 2/n_in) keeps
//! it steady.
//!
//! Every number comes from gradlab: [`nn::diagnose`] runs the network once on a batch of
//! unit-Gaussian inputs and reports each layer's activation statistics and the loss's
//! gradient with respect to each layer output and each weight (by autograd).

// glibc's allocator hands large freed buffers back to the OS and page-faults them in again
// on the next step; on graphs of large tensors that cost 7x in backward (measured:
// tanh forward+backward on 10^6 elements, 11.5 vs 1.3 ns/element). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/smoke.rs"]
mod smoke;

use anyhow::Result;
use autograd::{Tape, Tensor, Var};
use clap::Parser;
use gradlab::plot::{histogram_grid, line_chart, out_dir, print_table, HistPanel, Series};
use nn::{Ctx, Init, LinearConfig, Relu, Report, Sequential, Tanh};
use rand::{rngs::StdRng, SeedableRng};

#[derive(Parser)]
struct Args {
    /// Folder for the SVG figures.
    #[arg(long, default_value = "figures")]
    out: String,
    /// Smoke mode (also `GRADLAB_SMOKE=1`): a batch of 100 instead of 1000; figures go to
    /// out/smoke/.
    #[arg(long)]
    smoke: bool,
}

const WIDTH: usize = 256;
const DEPTH: usize = 10;
const BATCH: usize = 1000;

#[derive(Clone, Copy, PartialEq)]
enum Act {
    Tanh,
    Relu,
}

struct Config {
    name: &'static str,
    init: Init,
    act: Act,
    /// Literature's per-layer std ratio, or why there is none.
    predicted: &'static str,
}

fn configs() -> Vec<Config> {
    let small = Init::Normal {
        mean: 0.0,
        std: 0.01,
    };
    let unit = Init::Normal {
        mean: 0.0,
        std: 1.0,
    };
    // Glorot's own scheme: gain 1, variance 2/(n_in + n_out) = 1/256 here.
    let xavier = Init::XavierNormal { gain: 1.0 };
    let he = Init::HE_NORMAL;
    // Per-layer std ratios for zero biases: Var z' = n σ² E[a²]. In tanh's linear regime
    // E[a²] ≈ Var z, so the ratio is σ√n; ReLU keeps half the second moment, σ√(n/2).
    vec![
        Config {
            name: "tanh N(0,0.01²)",
            init: small,
            act: Act::Tanh,
            predicted: "0.16 (collapse)",
        },
        Config {
            name: "tanh N(0,1)",
            init: unit,
            act: Act::Tanh,
            predicted: "~1, saturated",
        },
        Config {
            name: "tanh Xavier",
            init: xavier,
            act: Act::Tanh,
            predicted: "~1 (steady)",
        },
        Config {
            name: "tanh He",
            init: he,
            act: Act::Tanh,
            predicted: "-",
        },
        Config {
            name: "relu N(0,0.01²)",
            init: small,
            act: Act::Relu,
            predicted: "0.113 (collapse)",
        },
        Config {
            name: "relu N(0,1)",
            init: unit,
            act: Act::Relu,
            predicted: "11.3 (explode)",
        },
        Config {
            name: "relu Xavier",
            init: xavier,
            act: Act::Relu,
            predicted: "0.707 (halves var)",
        },
        Config {
            name: "relu He",
            init: he,
            act: Act::Relu,
            predicted: "1.0 (steady)",
        },
    ]
}

fn mlp(cfg: &Config) -> Result<Sequential<f32>> {
    // The same seed for every configuration: each Gaussian initialiser then draws the
    // same standard-normal matrix and only the scale differs between them.
    let mut rng = StdRng::seed_from_u64(42);
    let mut net = Sequential::new();
    for _ in 0..DEPTH {
        let layer = LinearConfig {
            weight_init: cfg.init,
            // Glorot's and He's analyses assume zero biases.
            bias_init: Some(Init::Zeros),
            ..LinearConfig::new(WIDTH, WIDTH)
        };
        net.push(layer.init::<f32>(&mut rng)?);
        match cfg.act {
            Act::Tanh => net.push(Tanh),
            Act::Relu => net.push(Relu),
        }
    }
    Ok(net)
}

/// The activation outputs of one forward pass, as plain values, for the histograms.
fn activations(net: &Sequential<f32>, x: &Tensor<f32>) -> Result<Vec<Vec<f64>>> {
    let tape = Tape::new();
    let outputs = std::cell::RefCell::new(Vec::new());
    let mut cx = Ctx::new(&tape);
    // A forward hook sees every layer's output; keep the activations'.
    cx.add_forward_hook(|call| {
        if call.module.activation().is_some() {
            let v = call.outputs[0].value();
            outputs
                .borrow_mut()
                .push(v.as_slice().iter().map(|&v| v as f64).collect());
        }
    });
    tape.no_grad(|| cx.call(net, tape.constant(x.clone())))?;
    drop(cx);
    Ok(outputs.into_inner())
}

/// L = Σ c ⊙ y / B.
fn readout<'t>(y: Var<'t, f32>, c: &Tensor<f32>) -> nn::Result<Var<'t, f32>> {
    let c = y.tape().constant(c.clone());
    Ok(y.mul(c)?.sum().mul_scalar(1.0 / y.shape()[0] as f32))
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q) as usize]
}

fn slug(name: &str) -> String {
    name.replace("N(0,0.01²)", "small")
        .replace("N(0,1)", "unit")
        .to_lowercase()
        .replace(' ', "_")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let is_smoke = smoke::enabled(args.smoke);
    let dir = out_dir(smoke::out_dir(&args.out, "figures", "study_init", is_smoke))?;
    let mut rng = StdRng::seed_from_u64(0);
    // Smoke mode: a batch of 100 (the statistics are then rough).
    let batch = if is_smoke { 100 } else { BATCH };
    let x = Tensor::<f32>::randn([batch, WIDTH], &mut rng)?;
    // A fixed random linear read-out, L = Σ c ⊙ y / B: the top gradient ∂L/∂y = c/B is
    // then the same for every configuration, so the gradient norms below measure only
    // how the network carries it back, whatever the output's scale.
    let c = Tensor::<f32>::randn([batch, WIDTH], &mut rng)?;
    println!(
        "{DEPTH} x (Linear {WIDTH}->{WIDTH}, zero bias, activation); batch of {batch} N(0,1) inputs; \
         loss = sum(c * y)/{batch} with fixed c ~ N(0,1)\n"
    );

    let cfgs = configs();
    let mut reports: Vec<Report> = Vec::new();
    for cfg in &cfgs {
        let net = mlp(cfg)?;
        let report = nn::diagnose(&net, &x, |y| readout(y, &c))?;
        let acts = activations(&net, &x)?;
        let rows: Vec<Vec<String>> = (0..DEPTH)
            .map(|k| {
                let a = &report.layers[2 * k + 1];
                let w = report.param(&format!("{}.weight", 2 * k)).expect("weight");
                let frac = a.saturated.or(a.dead).unwrap_or(0.0);
                vec![
                    (k + 1).to_string(),
                    format!("{:+.2e}", a.mean),
                    format!("{:.3e}", a.std),
                    format!("{:.1}%", 100.0 * frac),
                    format!("{:.3e}", a.grad_norm),
                    format!("{:.3e}", w.grad_norm),
                ]
            })
            .collect();
        println!("## {}", cfg.name);
        let kind = if cfg.act == Act::Tanh {
            "saturated"
        } else {
            "dead units"
        };
        print_table(&["layer", "mean", "std", kind, "‖dL/da‖", "‖dL/dW‖"], &rows);
        println!();

        let panels: Vec<HistPanel> = acts
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let std = report.layers[2 * k + 1].std;
                match cfg.act {
                    Act::Tanh => {
                        let sat = report.layers[2 * k + 1].saturated.unwrap_or(0.0);
                        HistPanel {
                            title: format!(
                                "layer {}: std {std:.2e}, sat {:.0}%",
                                k + 1,
                                100.0 * sat
                            ),
                            values: v.clone(),
                        }
                    }
                    Act::Relu => {
                        // The exact zeros (about half) would dwarf every other bin.
                        let pos: Vec<f64> = v.iter().copied().filter(|&a| a > 0.0).collect();
                        let zeros = 1.0 - pos.len() as f64 / v.len() as f64;
                        HistPanel {
                            title: format!(
                                "layer {}: std {std:.2e}, {:.0}% = 0",
                                k + 1,
                                100.0 * zeros
                            ),
                            values: pos,
                        }
                    }
                }
            })
            .collect();
        // One x range for all layers of a configuration, so growth and collapse show.
        let range = match cfg.act {
            Act::Tanh => (-1.0, 1.0),
            Act::Relu => {
                let hi = panels
                    .iter()
                    .map(|p| quantile(p.values.clone(), 0.99))
                    .fold(0.0, f64::max);
                (0.0, hi)
            }
        };
        let title = match cfg.act {
            Act::Tanh => format!("{}: tanh outputs per layer", cfg.name),
            Act::Relu => format!("{}: positive ReLU outputs per layer", cfg.name),
        };
        histogram_grid(
            &dir.join(format!("init_hist_{}.svg", slug(cfg.name))),
            &title,
            &panels,
            (2, 5),
            range,
            40,
        )?;
        reports.push(report);
    }

    let act_layers = |r: &Report| -> Vec<nn::diagnostics::LayerStats> {
        r.layers
            .iter()
            .filter(|l| l.activation.is_some())
            .cloned()
            .collect()
    };
    let header: Vec<&str> = std::iter::once("layer")
        .chain(cfgs.iter().map(|c| c.name))
        .collect();
    let combined = |f: &dyn Fn(&Report, usize) -> f64| -> Vec<Vec<String>> {
        (0..DEPTH)
            .map(|k| {
                std::iter::once((k + 1).to_string())
                    .chain(reports.iter().map(|r| format!("{:.2e}", f(r, k))))
                    .collect()
            })
            .collect()
    };
    println!("## activation std, layer x configuration");
    print_table(&header, &combined(&|r, k| act_layers(r)[k].std));
    println!("\n## ‖dL/da‖ (gradient w.r.t. each activation output), layer x configuration");
    print_table(&header, &combined(&|r, k| act_layers(r)[k].grad_norm));
    println!("\n## ‖dL/dW‖ (weight gradient), layer x configuration");
    print_table(
        &header,
        &combined(&|r, k| {
            r.param(&format!("{}.weight", 2 * k))
                .expect("weight")
                .grad_norm
        }),
    );

    // Per-layer std ratio: geometric mean of std_{l+1}/std_l over layers 1..DEPTH.
    let rows: Vec<Vec<String>> = cfgs
        .iter()
        .zip(&reports)
        .map(|(cfg, r)| {
            let a = act_layers(r);
            let ratio = (a[DEPTH - 1].std / a[0].std).powf(1.0 / (DEPTH - 1) as f64);
            let frac = a.iter().map(|l| l.saturated.or(l.dead).unwrap_or(0.0));
            let worst = frac.fold(0.0, f64::max);
            vec![
                cfg.name.to_string(),
                cfg.predicted.to_string(),
                format!("{ratio:.3}"),
                format!("{:.3e}", a[0].std),
                format!("{:.3e}", a[DEPTH - 1].std),
                format!("{:.1}%", 100.0 * worst),
                format!("{:.2e}", a[0].grad_norm / a[DEPTH - 1].grad_norm),
            ]
        })
        .collect();
    println!("\n## literature predicts / we measured");
    print_table(
        &[
            "configuration",
            "predicted std ratio/layer",
            "measured (geo. mean)",
            "std layer 1",
            &format!("std layer {DEPTH}"),
            "max sat/dead",
            &format!("‖dL/da1‖ / ‖dL/da{DEPTH}‖"),
        ],
        &rows,
    );

    // The ReLU + Xavier variance ratio, layer by layer, before and after the ReLU.
    let rx = &reports[cfgs
        .iter()
        .position(|c| c.name == "relu Xavier")
        .expect("cfg")];
    let var_of = |pred: &dyn Fn(&nn::diagnostics::LayerStats) -> bool| -> Vec<f64> {
        rx.layers
            .iter()
            .filter(|l| pred(l))
            .map(|l| l.std * l.std)
            .collect()
    };
    let post = var_of(&|l| l.activation.is_some());
    let pre = var_of(&|l| l.activation.is_none());
    let ratios = |v: &[f64]| -> Vec<f64> { v.windows(2).map(|w| w[1] / w[0]).collect() };
    let (rpost, rpre) = (ratios(&post), ratios(&pre));
    let rows: Vec<Vec<String>> = (0..DEPTH - 1)
        .map(|k| {
            vec![
                format!("{} -> {}", k + 1, k + 2),
                format!("{:.3}", rpre[k]),
                format!("{:.3}", rpost[k]),
            ]
        })
        .collect();
    println!("\n## relu Xavier: measured Var(layer l+1)/Var(layer l) (prediction 0.5)");
    print_table(&["layers", "pre-activation", "post-ReLU"], &rows);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "mean ratio: pre-activation {:.3}, post-ReLU {:.3}; layer-1 pre-activation variance {:.3} (input variance 1)",
        mean(&rpre),
        mean(&rpost),
        pre[0]
    );

    let series = |f: &dyn Fn(&Report, usize) -> f64, with_input: bool| -> Vec<Series> {
        cfgs.iter()
            .zip(&reports)
            .map(|(cfg, r)| {
                let mut pts: Vec<(f64, f64)> = (0..DEPTH)
                    .map(|k| ((k + 1) as f64, f(r, k).log10()))
                    .collect();
                if with_input {
                    // layer 0 is the input batch, std 1
                    pts.insert(0, (0.0, 0.0));
                }
                Series::new(cfg.name, pts)
            })
            .collect()
    };
    line_chart(
        &dir.join("init_std_vs_depth.svg"),
        "activation std vs depth (layer 0 = input)",
        ("layer", "log10 std"),
        &series(&|r, k| act_layers(r)[k].std, true),
        None,
    )?;
    line_chart(
        &dir.join("init_grad_vs_depth.svg"),
        "gradient norm ‖dL/da‖ vs depth (same dL/da at layer 10)",
        ("layer", "log10 ‖dL/da‖"),
        &series(&|r, k| act_layers(r)[k].grad_norm, false),
        None,
    )?;
    println!(
        "\nfigures: {0}/init_std_vs_depth.svg, {0}/init_grad_vs_depth.svg, {0}/init_hist_*.svg (8)",
        dir.display()
    );
    Ok(())
}
